//! Runs the pipeline demo (`examples/pipeline.rs`) as a user would, against the real broker,
//! once per test binary, and keeps what it printed, logged, served and summed up.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The example's binary, built first if needed (cargo's own lock makes this safe while
/// other tests build).
pub fn example_binary(name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build --example");
    assert!(status.success(), "building the {name} example failed");
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test> → target/debug/examples/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("examples").join(name)
}

/// What one run of the demo left.
#[derive(Debug)]
pub struct DemoRun {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub summary: serde_json::Value,
    /// `GET /metrics` while the demo lingered after its summary.
    pub metrics: String,
    pub prefix: String,
}

/// Runs the demo on the broker with failures on, JSON logs and the metrics endpoint.
pub fn demo_run(brokers: &[String]) -> &'static DemoRun {
    static RUN: OnceLock<DemoRun> = OnceLock::new();
    RUN.get_or_init(|| run_demo(brokers))
}

fn run_demo(brokers: &[String]) -> DemoRun {
    let bin = example_binary("pipeline");
    let prefix = format!(
        "ks-demo-{}.",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let dir = std::env::temp_dir().join(format!("ks-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let summary_path = dir.join("summary.json");
    let mut child = Command::new(&bin)
        .args([
            "--urls",
            "400",
            "--transient-rate",
            "0.1",
            "--permanent-rate",
            "0.05",
        ])
        .args([
            "--partitions",
            "3",
            "--json-logs",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--linger",
            "3",
            "--drain-timeout",
            "120",
            "--topic-prefix",
            &prefix,
        ])
        .arg("--summary-json")
        .arg(&summary_path)
        .arg("--out-dir")
        .arg(&dir)
        .env("KAFKA_BROKERS", brokers.join(","))
        .env_remove("RUST_LOG")
        .env_remove("KAFKA_TRANSPORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the demo");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).ok();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    // The summary appears before the linger: scrape the endpoint then.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if let Some(addr) = std::fs::read(&summary_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|s| s["metrics_addr"].as_str().map(str::to_string))
        {
            metrics = http_get(&addr, "/metrics");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let summary = std::fs::read(&summary_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    DemoRun {
        exit_code: status.code(),
        stdout,
        stderr,
        summary,
        metrics,
        prefix,
    }
}

/// A bounded HTTP GET with std only.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connecting to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}
