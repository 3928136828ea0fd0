//! The peers from Apache Kafka itself: `ProducerPerformance`, `ConsumerPerformance` and
//! `EndToEndLatency` (org.apache.kafka:kafka-tools, fetched by `java-tools.sh` with Maven),
//! each run as a child process; its own figures are parsed from its output and its process
//! CPU read with `getrusage(RUSAGE_CHILDREN)`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{brokers, cpu_children, Measured, ENVELOPE_BYTES};

/// Longest any one tool run may take.
const TOOL_BOUND: Duration = Duration::from_secs(300);

fn script() -> String {
    format!(
        "{}/examples/bench/java-tools.sh",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Fetches the tools' jars (once) so no timed run includes Maven.
pub fn prepare() {
    let out = Command::new("bash")
        .arg(script())
        .arg("classpath")
        .stderr(Stdio::inherit())
        .output()
        .expect("running examples/bench/java-tools.sh");
    assert!(
        out.status.success(),
        "examples/bench/java-tools.sh could not fetch Kafka's kafka-tools jars (needs mvn and java)"
    );
}

/// Runs `org.apache.kafka.tools.<class>` with `args`; its standard output and process CPU.
fn run(class: &str, args: &[String]) -> (String, f64) {
    let cpu_before = cpu_children();
    let mut child = Command::new("bash")
        .arg(script())
        .arg("run")
        .arg(class)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {class}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + TOOL_BOUND;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for a Java tool") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{class} did not finish within {TOOL_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu = cpu_children() - cpu_before;
    let out = reader.join().expect("stdout reader").unwrap_or_default();
    let err = err_reader
        .join()
        .expect("stderr reader")
        .unwrap_or_default();
    assert!(status.success(), "{class} failed ({status}):\n{out}\n{err}");
    (out, cpu)
}

/// The number just before `suffix` in a `, `-separated line
/// (`"323.5 records/sec (72.2 MB/sec)"` with `"records/sec"`: 323.5).
fn field(line: &str, suffix: &str) -> Option<f64> {
    line.split(", ").find_map(|part| {
        let at = part.find(suffix)?;
        part[..at].split_whitespace().last()?.parse().ok()
    })
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1e3)
}

/// `ProducerPerformance`: `n` records of 234 bytes to `topic`, acks=all, linger.ms=5.
pub fn producer_performance(topic: &str, n: usize) -> Measured {
    producer_performance_at(&brokers(), topic, n)
}

/// `ProducerPerformance` as [`producer_performance`], against `bootstrap`.
pub fn producer_performance_at(bootstrap: &[String], topic: &str, n: usize) -> Measured {
    let args: Vec<String> = [
        "--topic",
        topic,
        "--num-records",
        &n.to_string(),
        "--record-size",
        &ENVELOPE_BYTES.to_string(),
        "--throughput",
        "-1",
        "--producer-props",
        &format!("bootstrap.servers={}", bootstrap.join(",")),
        "acks=all",
        "linger.ms=5",
    ]
    .map(str::to_string)
    .to_vec();
    let (out, cpu) = run("ProducerPerformance", &args);
    let last = out
        .lines()
        .rfind(|l| l.contains("records/sec") && l.contains("50th"))
        .unwrap_or_else(|| panic!("no summary in ProducerPerformance output:\n{out}"));
    Measured {
        rate: field(last, "records/sec").expect("records/sec"),
        latency: field(last, "ms 50th")
            .zip(field(last, "ms 99th"))
            .map(|(a, b)| (ms(a), ms(b))),
        cpu: Some(cpu),
    }
}

/// `ConsumerPerformance`: `n` records from `topic` under a new group. The rate is its
/// `nMsg.sec` (from subscribing to the last record, joining the group included, as ours).
pub fn consumer_performance(topic: &str, n: usize, group: &str) -> Measured {
    let args: Vec<String> = [
        "--bootstrap-server",
        &brokers().join(","),
        "--topic",
        topic,
        "--messages",
        &n.to_string(),
        "--group",
        group,
        "--timeout",
        "30000",
    ]
    .map(str::to_string)
    .to_vec();
    let (out, cpu) = run("ConsumerPerformance", &args);
    let mut lines = out.lines().skip_while(|l| !l.starts_with("start.time"));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("no header in ConsumerPerformance output:\n{out}"))
        .split(", ")
        .collect();
    let values: Vec<&str> = lines.next().expect("a result line").split(", ").collect();
    let get = |name: &str| -> f64 {
        let i = header.iter().position(|h| h.trim() == name).expect(name);
        values[i].trim().parse().expect(name)
    };
    assert_eq!(
        get("data.consumed.in.nMsg") as usize,
        n,
        "ConsumerPerformance read short"
    );
    Measured {
        rate: get("nMsg.sec"),
        latency: None,
        cpu: Some(cpu),
    }
}

/// `EndToEndLatency`: `n` records of 234 bytes one at a time through a new one-partition
/// `topic` (acks=all), each sent when the last was consumed. The rate is one over its mean
/// latency; its percentiles are whole milliseconds.
pub fn end_to_end_latency(topic: &str, n: usize) -> Measured {
    let args: Vec<String> = [
        &brokers().join(","),
        topic,
        &n.to_string(),
        "all",
        &ENVELOPE_BYTES.to_string(),
    ]
    .map(|s| s.to_string())
    .to_vec();
    let (out, cpu) = run("EndToEndLatency", &args);
    let avg = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("Avg latency:")?
                .trim()
                .strip_suffix("ms")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no average in EndToEndLatency output:\n{out}"));
    let pct = out
        .lines()
        .find_map(|l| l.strip_prefix("Percentiles:"))
        .expect("EndToEndLatency percentiles");
    let at = |name: &str| -> f64 {
        pct.split(',')
            .find_map(|p| {
                p.trim()
                    .strip_prefix(name)?
                    .trim()
                    .strip_prefix('=')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in {pct}"))
    };
    Measured {
        rate: 1e3 / avg,
        latency: Some((ms(at("50th")), ms(at("99th")))),
        cpu: Some(cpu),
    }
}
