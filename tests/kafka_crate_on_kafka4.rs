//! The `kafka` crate transport against Apache Kafka 4 (which removed protocol v0, KIP-896):
//! it must fail at once, saying the broker is too new and naming the modern transport.

mod modern_support;

use std::time::{Duration, Instant};

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::Kafka;
use kafka_sync::{Config, ErrorKind, TransportKind};
use modern_support::{random_name, Broker};

fn kafka_crate_on_kafka4() -> Config {
    Config {
        brokers: Broker::Kafka4.addrs(),
        transport: TransportKind::KafkaCrate,
        ..Config::default()
    }
}

fn assert_too_new(e: &kafka_sync::Error) {
    assert_eq!(e.kind(), ErrorKind::UnsupportedBroker, "{e}");
    let text = e.to_string();
    assert!(text.contains("too new"), "{text}");
    assert!(text.contains("modern transport"), "{text}");
}

#[test]
fn health_check_fails_at_once_naming_the_modern_transport() {
    let transport = kafka_sync::Kafka::connect(kafka_crate_on_kafka4())
        .unwrap()
        .transport()
        .clone();
    let started = Instant::now();
    let e = transport.health_check(Duration::from_secs(5)).unwrap_err();
    assert_too_new(&e);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_send_fails_at_once_naming_the_modern_transport() {
    let producer = Kafka::connect(kafka_crate_on_kafka4())
        .map(|k| k.producer())
        .unwrap();
    let msg = KafkaMessage::from_json(MessageType::new("t"), serde_json::json!(1));
    let started = Instant::now();
    let e = producer.send(&random_name("too-new"), &msg).unwrap_err();
    assert_too_new(&e);
    // Not retried: a newer broker will not start speaking v0 on a later attempt.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(producer.metrics()[0].retries, 0);
}
