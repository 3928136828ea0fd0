//! Kill and resume against a real Apache Kafka: a consumer in a child process (this test
//! binary, re-run with the child's variables set) is killed with SIGKILL after N messages; a
//! new member of the same group resumes from the last commit.
//!
//! It has its own `main` (`harness = false` in Cargo.toml) so that the child's entry point
//! is not a test that passes without testing anything.

mod common;
mod consumer_support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{kafka_config, random_topic};
use consumer_support::{message, wait_for};
use kafka_sync::domain::KafkaMessage;
use kafka_sync::transport::Transport;
use kafka_sync::Kafka;

const CHILD_TOPIC: &str = "KS_KILL_CHILD_TOPIC";
const CHILD_GROUP: &str = "KS_KILL_CHILD_GROUP";
const MESSAGES: usize = 2000;
const KILL_AFTER: usize = 500;

/// The id in a child's `handled <id>` line (the test harness may print its own text first
/// on the same line).
fn handled_id(line: &str) -> Option<uuid::Uuid> {
    let (_, id) = line.split_once("handled ")?;
    Some(id.trim().parse().expect("a message id"))
}

fn main() {
    if let (Ok(topic), Ok(group)) = (std::env::var(CHILD_TOPIC), std::env::var(CHILD_GROUP)) {
        child_consumer(topic, group);
        return;
    }
    let name = "a_killed_consumer_is_resumed_from_its_last_commit_by_a_new_member_of_its_group";
    println!("\nrunning 1 test");
    a_killed_consumer_is_resumed_from_its_last_commit_by_a_new_member_of_its_group();
    println!("test {name} ... ok\n");
}

/// In the child process: consume the topic, print `handled <id>` per message, run until
/// killed (at most 60 s).
fn child_consumer(topic: String, group: String) {
    let mut config = kafka_config();
    config.group_id = group;
    config.consumer.min_bytes = 1;
    config.consumer.max_wait = Duration::from_millis(100);
    // Commit after every message: at most the message in hand is handled twice.
    config.consumer.commit_interval = Duration::ZERO;
    let consumer = Kafka::connect(config).and_then(|k| k.consumer()).unwrap();
    consumer.register_handler("test", |m: &KafkaMessage| {
        std::thread::sleep(Duration::from_millis(1));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "handled {}", m.id);
        let _ = out.flush();
        Ok(())
    });
    consumer.consume([topic]).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

fn a_killed_consumer_is_resumed_from_its_last_commit_by_a_new_member_of_its_group() {
    let config = kafka_config();
    let transport: Arc<dyn Transport> = kafka_sync::Kafka::connect(config.clone())
        .unwrap()
        .transport()
        .clone();
    let topic = random_topic("kill");
    let messages: Vec<_> = (0..MESSAGES).map(message).collect();
    let all: HashSet<_> = messages.iter().map(|m| m.id).collect();
    let producer = Kafka::with_transport(config.clone(), transport.clone())
        .map(|k| k.producer())
        .unwrap();
    for r in producer.send_batch(&topic, messages) {
        r.unwrap();
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_TOPIC, &topic)
        .env(CHILD_GROUP, &config.group_id)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut by_child = Vec::new();
    while by_child.len() < KILL_AFTER {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some(id) = handled_id(&line) {
            by_child.push(id);
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines the child printed before it died.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = handled_id(&line) {
            by_child.push(id);
        }
    }
    assert!(
        by_child.len() < MESSAGES,
        "the child finished before it was killed"
    );

    let mut config = config;
    config.consumer.min_bytes = 1;
    config.consumer.max_wait = Duration::from_millis(100);
    let resumed = Kafka::with_transport(config, transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let by_new = Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = by_new.clone();
    resumed.register_handler("test", move |m: &KafkaMessage| {
        b.lock().unwrap().push(m.id);
        Ok(())
    });
    let handle = resumed.consume([topic.as_str()]).unwrap();
    wait_for(
        "the rest handled and committed",
        Duration::from_secs(30),
        || {
            let m = &handle.metrics()[0];
            m.lag.len() == 3 && m.total_lag() == 0
        },
    );
    resumed.close(Duration::from_secs(10)).unwrap();

    let by_new = by_new.lock().unwrap();
    let child_set: HashSet<_> = by_child.iter().copied().collect();
    let new_set: HashSet<_> = by_new.iter().copied().collect();
    assert_eq!(
        child_set.len(),
        by_child.len(),
        "the child handled a message twice"
    );
    let missing = all.difference(&(&child_set | &new_set)).count();
    assert_eq!(
        missing,
        0,
        "{missing} messages never handled (child handled {}, new member {})",
        child_set.len(),
        new_set.len()
    );
    // Commits after every message: only a message handled but not yet committed when the
    // child died is handled again.
    let duplicates = child_set.intersection(&new_set).count();
    assert!(duplicates <= 1, "{duplicates} messages handled twice");
}
