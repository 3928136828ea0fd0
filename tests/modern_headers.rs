//! The producer on the modern transport against Apache Kafka 3.9.1 (port 9092) and 4.1.2
//! (port 9094): every record carries the envelope's id, type and correlation id as record
//! headers, so consumers that ignore the envelope still see them.

mod modern_support;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::transport::{Header, Transport};
use kafka_sync::Kafka;
use kafka_sync::StartOffset;
use modern_support::{random_name, read, subscribe, Broker};

/// Messages sent through [`Producer`] on the modern transport carry the envelope's id, type
/// and correlation id as record headers.
fn producer_writes_envelope_headers(broker: Broker) {
    let t = broker.transport();
    let topic = random_name("envelope");
    t.ensure_topic(&topic, 2, 1).unwrap();
    let producer = Kafka::connect(broker.config())
        .map(|k| k.producer())
        .unwrap();
    let messages: Vec<KafkaMessage> = (0..5)
        .map(|n| {
            KafkaMessage::from_json(
                MessageType::new("header-test"),
                serde_json::json!({ "n": n }),
            )
            .with_correlation_id(format!("corr-{n}"))
        })
        .collect();
    let mut by_offset = BTreeMap::new();
    for m in &messages {
        let d = producer.send(&topic, m).unwrap();
        by_offset.insert((d.partition, d.offset), m.clone());
    }
    producer.close().unwrap();
    let mut sub = subscribe(&t, &topic, &random_name("g"), StartOffset::Earliest);
    let got = read(sub.as_mut(), messages.len(), Duration::from_secs(20));
    assert_eq!(got.len(), messages.len());
    for r in &got {
        let m = &by_offset[&(r.partition, r.offset)];
        let expected = vec![
            Header::new(Header::MESSAGE_ID, m.id.to_string()),
            Header::new(Header::MESSAGE_TYPE, "header-test"),
            Header::new(Header::CORRELATION_ID, m.correlation_id.clone()),
        ];
        assert_eq!(
            r.headers, expected,
            "{broker:?} {}/{}",
            r.partition, r.offset
        );
    }
    sub.close().unwrap();
}

#[test]
fn the_producer_writes_id_type_and_correlation_headers_on_kafka_3() {
    producer_writes_envelope_headers(Broker::Kafka3);
}

#[test]
fn the_producer_writes_id_type_and_correlation_headers_on_kafka_4() {
    producer_writes_envelope_headers(Broker::Kafka4);
}
