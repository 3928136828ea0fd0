//! Shared helpers for the integration tests: the real broker's address, random topic names,
//! and an independent reader (Apache Kafka's own Java consumer, not this crate's code).
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kafka_sync::Config;

#[path = "../reach/mod.rs"]
pub mod reach;

/// The brokers the tests use: `KAFKA_TEST_BROKERS` or `127.0.0.1:9092`. Panics with how to
/// start one when none answers: a broker test never passes or skips without a broker.
pub fn brokers() -> Vec<String> {
    let list = std::env::var("KAFKA_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let brokers: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    reach::require(
        brokers,
        "`make kafka-up` (or `make test`, which starts one)",
    )
}

/// A topic name no other run uses.
pub fn random_topic(prefix: &str) -> String {
    format!("ks-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The transport the broker tests run on: `KAFKA_TEST_TRANSPORT` (`kafka-crate` or
/// `modern`), default `kafka-crate`. `make test` runs the broker suites once per transport
/// and broker version.
pub fn transport_name() -> String {
    std::env::var("KAFKA_TEST_TRANSPORT").unwrap_or_else(|_| "kafka-crate".into())
}

/// A config for the real broker on the transport under test, with a fresh group id.
pub fn kafka_config() -> Config {
    config_for(&brokers())
}

/// Like [`kafka_config`], for other brokers (a spare broker on its own port).
pub fn config_for(brokers: &[String]) -> Config {
    let (brokers, transport) = (brokers.join(","), transport_name());
    let mut config = Config::from_lookup(|name| match name {
        "KAFKA_BROKERS" => Some(brokers.clone()),
        "KAFKA_TRANSPORT" => Some(transport.clone()),
        _ => None,
    })
    .expect("test config is valid");
    config.client_id = "kafka-sync-tests".into();
    config.group_id = format!("ks-group-{}", uuid::Uuid::new_v4().simple());
    config
}

/// One record as read back by the independent reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The record headers as `(name, value)`, in order (a null value reads as empty).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The classpath of the independent reader (`tests/broker/ReadBack.java`, compiled against
/// the jars of `KAFKA_TEST_VERSION`, default 3.9.1).
fn reader_classpath() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let version = std::env::var("KAFKA_TEST_VERSION").unwrap_or_else(|_| "3.9.1".into());
        let out = Command::new("bash")
            .arg(format!("{root}/tests/broker/kafka.sh"))
            .arg("reader-classpath")
            .env("KAFKA_VERSION", version)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "building the independent reader failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// The reader's header column: `-`, or `hexname=hexvalue` joined by `,`.
fn headers(text: &str) -> Vec<(String, Vec<u8>)> {
    if text == "-" {
        return Vec::new();
    }
    text.split(',')
        .map(|h| {
            let (name, value) = h.split_once('=').expect("name=value from the reader");
            let name = String::from_utf8(unhex(name)).expect("a UTF-8 header name");
            (name, unhex(value))
        })
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    if text == "-" {
        return Vec::new();
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from the reader"))
        .collect()
}

/// Reads `topic` from the earliest offset with Apache Kafka's own Java consumer (not this
/// crate's code) until `expected` records arrived or `timeout` passed; sorted by partition
/// and offset.
pub fn read_back(topic: &str, expected: usize, timeout: Duration) -> Vec<ReadBack> {
    read_back_from(&brokers().join(","), topic, expected, timeout)
}

/// `expected` for [`read_back_from`]: every record the topic holds when the reader starts.
pub const ALL: usize = usize::MAX - 1;

/// Like [`read_back`], from the brokers `bootstrap` (comma-separated `host:port`).
pub fn read_back_from(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<ReadBack> {
    let out = Command::new("java")
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
        ])
        .arg(reader_classpath())
        .arg("ReadBack")
        .arg(bootstrap)
        .arg(topic)
        .arg(if expected == ALL {
            "-1".to_string()
        } else {
            expected.min(i64::MAX as usize).to_string()
        })
        .arg(timeout.as_millis().to_string())
        .output()
        .expect("java runs");
    assert!(
        out.status.success(),
        "the independent reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records: Vec<ReadBack> = String::from_utf8(out.stdout)
        .expect("the reader prints text")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            ReadBack {
                partition: f[0].parse().expect("partition"),
                offset: f[1].parse().expect("offset"),
                key: unhex(f[2]),
                value: unhex(f[3]),
                headers: headers(f.get(4).expect("a headers column")),
            }
        })
        .collect();
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Creates `topic` on the test broker with `partitions` partitions and topic-level `configs`
/// (e.g. `[("max.message.bytes", "2000000")]`: the test broker keeps Kafka's default 1 MB
/// limit, so a test that needs more says so on its own topic).
pub fn create_topic(topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let config = Config {
        brokers: brokers(),
        transport: kafka_sync::TransportKind::Modern,
        ..Config::default()
    };
    let t = kafka_sync::transport::ModernTransport::new(&config).expect("transport");
    t.ensure_topic_with_configs(topic, partitions, -1, configs)
        .expect("topic created");
}

/// Writes each of `lines` as one record value to `topic` with Apache Kafka's own Java
/// producer (`kafka.tools.ConsoleProducer` from the broker's jars, acks=all): records
/// exactly as a Java service would write them.
pub fn java_produce(topic: &str, lines: &[String]) {
    use std::io::Write;
    let mut child = Command::new("java")
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
        ])
        .arg(reader_classpath())
        .args(["kafka.tools.ConsoleProducer", "--bootstrap-server"])
        .arg(brokers().join(","))
        .args(["--topic", topic, "--producer-property", "acks=all"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("java runs");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for line in lines {
            writeln!(stdin, "{line}").expect("the Java producer reads stdin");
        }
    }
    let out = child.wait_with_output().expect("the Java producer ends");
    assert!(
        out.status.success(),
        "the Java producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
