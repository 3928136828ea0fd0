//! Helpers for the consumer's tests: fast configs, input producers, readers of the
//! dead-letter and retry topics, waiting for a condition.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_sync::domain::{DeadLetterRecord, KafkaMessage, MessageType, RetryRecord};
use kafka_sync::transport::MemoryTransport;
use kafka_sync::transport::{OutgoingRecord, ProduceOptions, Transport};
use kafka_sync::Kafka;
use kafka_sync::{Acks, Compression, Config, RetryPolicy};

/// In-place retries that take milliseconds: 3 attempts, 5 ms doubling, no jitter.
pub fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Duration::from_millis(5),
        multiplier: 2.0,
        max_interval: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(5),
        max_attempts,
        randomization_factor: 0.0,
    }
}

/// A consumer config for `group` with fast polls and retries.
pub fn fast_config(group: &str) -> Config {
    let mut c = Config {
        group_id: group.into(),
        service_name: "consumer-tests".into(),
        ..Config::in_memory()
    };
    c.consumer.retry = quick_retries(3);
    c.consumer.max_wait = Duration::from_millis(50);
    c.consumer.retry_topic_delay = Duration::from_millis(200);
    // These scenarios are about in-place retries ending in the dead-letter topic; the
    // default (retry topic on) has scenarios of its own.
    c.consumer.retry_topic_enabled = false;
    c.consumer.handler_timeout = Some(Duration::from_secs(5));
    c.consumer.shutdown_timeout = Duration::from_secs(5);
    c.validate().expect("test config is valid");
    c
}

/// A memory broker handle plus the same broker as a transport.
pub fn memory() -> (MemoryTransport, Arc<dyn Transport>) {
    let broker = MemoryTransport::new();
    let transport: Arc<dyn Transport> = Arc::new(broker.clone());
    (broker, transport)
}

/// A message of type `test` with payload `{"n": n}`.
pub fn message(n: usize) -> KafkaMessage {
    KafkaMessage::from_json(MessageType::new("test"), serde_json::json!({ "n": n }))
        .with_correlation_id(format!("corr-{n}"))
}

/// Sends `messages` to `topic` through this crate's producer; returns them.
pub fn send_all(transport: &Arc<dyn Transport>, topic: &str, messages: Vec<KafkaMessage>) {
    let producer = Kafka::with_transport(Config::default(), transport.clone())
        .map(|k| k.producer())
        .expect("producer");
    for m in &messages {
        producer.send(topic, m).expect("input is written");
    }
}

/// Writes raw bytes to a partition of `topic`, bypassing the envelope.
pub fn send_raw(transport: &Arc<dyn Transport>, topic: &str, partition: i32, value: &[u8]) {
    let mut session = transport.connect_producer().expect("producer session");
    let record = OutgoingRecord {
        partition,
        key: Some(b"raw-key".to_vec()),
        value: value.to_vec(),
        headers: Vec::new(),
    };
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(10),
    };
    for result in session.produce(topic, &[record], &options) {
        result.expect("raw record is written");
    }
}

/// Polls `condition` every 5 ms until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The dead-letter records on the memory broker's `topic`.
pub fn dead_letters(broker: &MemoryTransport, topic: &str) -> Vec<DeadLetterRecord> {
    broker
        .records(topic)
        .iter()
        .map(|r| DeadLetterRecord::from_record(r).expect("a dead letter"))
        .collect()
}

/// The retry entries on the memory broker's `topic`.
pub fn retry_entries(broker: &MemoryTransport, topic: &str) -> Vec<RetryRecord> {
    broker
        .records(topic)
        .iter()
        .filter_map(|r| KafkaMessage::from_bytes(&r.value).ok())
        .filter(|env| env.message_type == MessageType::RETRY)
        .map(|env| env.payload_as().expect("retry payload"))
        .collect()
}

/// Whether `group` committed every record of `topic` on the memory broker.
pub fn all_committed(broker: &MemoryTransport, group: &str, topic: &str) -> bool {
    broker
        .high_watermarks(topic)
        .iter()
        .enumerate()
        .all(|(p, &hw)| broker.committed(group, topic, p as i32).unwrap_or(0) == hw)
}

/// A consumer of `config.group_id` over `transport`, through the front door.
pub fn consumer(config: Config, transport: Arc<dyn Transport>) -> kafka_sync::Consumer {
    kafka_sync::Kafka::with_transport(config, transport)
        .and_then(|k| k.consumer())
        .expect("consumer")
}

/// The group a consumer of `group` consuming `topics` reads the retry topic under (default
/// retry topic settings).
pub fn retry_group(group: &str, topics: &[&str]) -> String {
    kafka_sync::ConsumerConfig::default().retry_group_of(group, topics)
}

/// Writes a retry entry of `group` for `message`, parked from `origin`, due at `due`, to
/// `partition` of `topic`, with the headers the consumer writes (`retry-group`,
/// `retry-origin-topic`, `retry-due-at`).
pub fn park_entry(
    transport: &Arc<dyn Transport>,
    topic: &str,
    partition: i32,
    group: &str,
    origin: &str,
    message: KafkaMessage,
    due: std::time::SystemTime,
) {
    let now = std::time::SystemTime::now();
    let entry = RetryRecord {
        message,
        attempts: 1,
        due_at: due,
        origin: kafka_sync::domain::Origin {
            topic: origin.into(),
            partition: 0,
            offset: 0,
        },
        group: group.into(),
        service: "tests".into(),
        first_failure_at: now,
        last_failure_at: now,
        last_error: "earlier failure".into(),
    };
    let env = KafkaMessage::new(MessageType::RETRY, &entry).unwrap();
    let due_ms = due
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let record = OutgoingRecord {
        partition,
        key: None,
        value: env.to_bytes().unwrap(),
        headers: vec![
            kafka_sync::transport::Header::new("retry-group", group),
            kafka_sync::transport::Header::new("retry-origin-topic", origin),
            kafka_sync::transport::Header::new("retry-due-at", due_ms.to_string()),
        ],
    };
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(10),
    };
    let mut session = transport.connect_producer().expect("producer session");
    for r in session.produce(topic, &[record], &options) {
        r.expect("retry entry is written");
    }
}
