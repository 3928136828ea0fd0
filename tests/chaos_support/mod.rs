//! What every chaos scenario shares: the 3-node cluster and single brokers it breaks, the
//! stalling proxy, counting by message id through the independent Java reader, and the one
//! line each scenario prints for `tests/chaos/run.sh`:
//!
//! ```text
//! chaos-scenario: name=<name> acked=<N> lost=<M> duplicated=<D> errors=<E>
//! ```
//!
//! A scenario is an `#[ignore]`d test in a `tests/chaos_*.rs` file (run by
//! `tests/chaos/run.sh` with `--ignored --test-threads=1`, never by a plain `cargo test`):
//! it breaks something, counts what it sent, what was acknowledged and what failed, reads
//! the topic back, prints its line with [`Report::print`], asserts its own expectations,
//! and puts everything back as it found it (guards that restart what they killed).
#![allow(dead_code)]

pub mod answer_proxy;
pub mod proxy;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use kafka_sync::domain::KafkaMessage;
use uuid::Uuid;

#[path = "../common/mod.rs"]
mod common;

#[allow(unused_imports)]
pub use common::{random_topic, read_back_from, ALL};

/// Whether the short version runs (`CHAOS_SHORT=1`, inside `make test`): fewer messages,
/// the same faults.
pub fn short() -> bool {
    std::env::var("CHAOS_SHORT").is_ok_and(|v| v == "1")
}

/// `full` normally, `short` in the short version.
pub fn scale(full: usize, short_: usize) -> usize {
    if short() {
        short_
    } else {
        full
    }
}

/// What one scenario counted.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub name: &'static str,
    /// Sends that returned `Ok`.
    pub acked: usize,
    /// Acknowledged messages missing from the topic.
    pub lost: usize,
    /// Records on the topic beyond the first of their message id (0 where the scenario
    /// does not read the topic back by id).
    pub duplicated: usize,
    /// Calls that returned an error (expected or not; each scenario asserts which it allows).
    pub errors: usize,
}

impl Report {
    /// Prints the scenario's line (the runner adds them up).
    pub fn print(&self) {
        // On a line of its own whatever the test harness printed before it.
        println!(
            "\nchaos-scenario: name={} acked={} lost={} duplicated={} errors={}",
            self.name, self.acked, self.lost, self.duplicated, self.errors
        );
    }
}

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

fn run(script: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{}/tests/broker/{script}", root()))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash runs");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The 3-node cluster of `tests/broker/cluster.sh` (the runner starts it).
pub mod cluster {
    use super::run;

    /// Its bootstrap addresses.
    pub fn brokers() -> Vec<String> {
        vec![
            "127.0.0.1:9192".to_string(),
            "127.0.0.1:9292".to_string(),
            "127.0.0.1:9392".to_string(),
        ]
    }

    /// Node `n`'s address.
    pub fn addr(n: u32) -> String {
        format!("127.0.0.1:{}", 9192 + 100 * (n - 1))
    }

    /// The node leading `topic`'s `partition` (1..=3).
    pub fn leader(topic: &str, partition: i32) -> u32 {
        let out = run(
            "cluster.sh",
            &["leader", topic, &partition.to_string()],
            &[],
        );
        out.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no leader in {out:?}"))
    }

    /// `kill -9` of node `n`.
    pub fn kill(n: u32) {
        run("cluster.sh", &["kill", &n.to_string()], &[]);
    }

    /// Starts node `n` again and waits until it answers.
    pub fn start(n: u32) {
        run("cluster.sh", &["start", &n.to_string()], &[]);
    }

    /// Grows `topic` to `count` partitions (CreatePartitions through the probe).
    pub fn add_partitions(topic: &str, count: i32) {
        let root = super::root();
        let out = std::process::Command::new("python3")
            .arg(format!("{root}/tests/broker/kafka_probe.py"))
            .args(["partitions", "127.0.0.1", "9192", topic, &count.to_string()])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts node `n` when dropped (also when the scenario panics).
    pub struct Restart(pub u32);

    impl Drop for Restart {
        fn drop(&mut self) {
            start(self.0);
        }
    }
}

/// A single-node broker of its own (Kafka 3.9.1) on `port`, stopped when dropped.
pub struct SingleBroker {
    pub port: u16,
    advertised: Option<u16>,
}

impl SingleBroker {
    /// Starts it; `advertised`: the port metadata names instead (a proxy in front).
    pub fn up(port: u16, advertised: Option<u16>) -> SingleBroker {
        let b = SingleBroker { port, advertised };
        b.script("up");
        b
    }

    fn script(&self, action: &str) {
        let mut env = vec![("KAFKA_PORT", self.port.to_string())];
        if let Some(a) = self.advertised {
            env.push(("KAFKA_ADVERTISED_PORT", a.to_string()));
        }
        run("kafka.sh", &[action], &env);
    }

    /// Its address.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kill -9`.
    pub fn kill(&self) {
        self.script("kill");
    }

    /// Starts it again (same data) and waits until it answers.
    pub fn start(&self) {
        self.script("up");
    }
}

impl Drop for SingleBroker {
    fn drop(&mut self) {
        self.script("down");
    }
}

/// The message ids of every record on `topic` (to its end offsets when the reader starts),
/// read from `bootstrap` by Kafka's own Java consumer within `timeout`. Reading to the end
/// rather than to a count matters: a send that timed out may still have been written, so the
/// topic can hold more records than were acknowledged.
pub fn ids_on_topic(bootstrap: &[String], topic: &str, timeout: Duration) -> HashSet<Uuid> {
    id_counts_on_topic(bootstrap, topic, timeout)
        .into_keys()
        .collect()
}

/// Like [`ids_on_topic`], with how many records carry each id.
pub fn id_counts_on_topic(
    bootstrap: &[String],
    topic: &str,
    timeout: Duration,
) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for r in read_back_from(&bootstrap.join(","), topic, common::ALL, timeout) {
        let id = KafkaMessage::from_bytes(&r.value).expect("our envelope").id;
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Records beyond the first of their id.
pub fn duplicates(counts: &HashMap<Uuid, usize>) -> usize {
    counts.values().map(|&c| c.saturating_sub(1)).sum()
}

/// How many of `acked` are missing from `on_topic`.
pub fn missing(acked: &HashSet<Uuid>, on_topic: &HashSet<Uuid>) -> usize {
    acked.difference(on_topic).count()
}
