//! What every scenario shares: the broker address, sizes, the 234-byte envelope, topics
//! and the result row.

use std::time::Duration;

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::Producer;

pub const ENVELOPE_BYTES: usize = 234;

pub fn brokers() -> Vec<String> {
    std::env::var("KAFKA_TEST_BROKERS")
        .or_else(|_| std::env::var("KAFKA_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".into())
        .split(',')
        .map(str::to_string)
        .collect()
}

pub fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// A message whose encoded envelope is exactly `ENVELOPE_BYTES` long.
pub fn envelope() -> KafkaMessage {
    let mut pad = String::new();
    loop {
        let m =
            KafkaMessage::from_json(MessageType::new("bench"), serde_json::json!({ "pad": pad }))
                .with_correlation_id("bench");
        let len = m.to_bytes().unwrap().len();
        if len >= ENVELOPE_BYTES {
            assert_eq!(
                len, ENVELOPE_BYTES,
                "cannot pad the envelope to {ENVELOPE_BYTES} bytes"
            );
            return m;
        }
        pad.push('x');
    }
}

pub fn fresh(m: &KafkaMessage) -> KafkaMessage {
    let mut c = m.clone();
    c.id = uuid::Uuid::new_v4();
    c
}

pub fn topic(name: &str) -> String {
    format!("bench-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A new topic, created (and its writer started) by one untimed send, so that neither
/// side's timing includes topic creation.
pub fn warm_topic(producer: &Producer, name: &str, msg: &KafkaMessage) -> String {
    let t = topic(name);
    producer.send(&t, &fresh(msg)).expect("warm-up send");
    t
}

/// One line of the table: our rate next to the bare crate's.
pub struct Row {
    pub name: &'static str,
    pub ours: f64,
    pub bare: f64,
    pub latency: Option<(Duration, Duration)>,
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}
