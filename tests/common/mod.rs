//! Shared helpers for the integration tests: the real broker's address, random topic names,
//! and an independent reader (the `kafka` crate's own consumer, not this crate's code).
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use kafka::consumer::{Consumer, FetchOffset};
use kafka_sync::{Config, TransportKind};

/// The brokers the tests use: `KAFKA_TEST_BROKERS` or `127.0.0.1:9092`. Panics with how to
/// start one when none answers: a broker test never passes or skips without a broker.
pub fn brokers() -> Vec<String> {
    let list = std::env::var("KAFKA_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let brokers: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    let reachable = brokers.iter().any(|b| {
        b.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
            .unwrap_or(false)
    });
    assert!(
        reachable,
        "no Kafka broker at {list}: run `make kafka-up` (or `make test`, which starts one)"
    );
    brokers
}

/// A topic name no other run uses.
pub fn random_topic(prefix: &str) -> String {
    format!("ks-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A config for the real broker with short, test-friendly bounds.
pub fn kafka_config() -> Config {
    Config::builder()
        .brokers(brokers())
        .transport(TransportKind::KafkaCrate)
        .client_id("kafka-sync-tests")
        .group_id(format!("ks-group-{}", uuid::Uuid::new_v4().simple()))
        .build()
        .expect("test config is valid")
}

/// One record as read back by the independent reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Reads `topic` from the earliest offset with the `kafka` crate's own consumer until
/// `expected` records arrived or `timeout` passed; sorted by partition and offset.
pub fn read_back(topic: &str, expected: usize, timeout: Duration) -> Vec<ReadBack> {
    let mut consumer = Consumer::from_hosts(brokers())
        .with_topic(topic.to_string())
        .with_fallback_offset(FetchOffset::Earliest)
        .with_offset_storage(None)
        .with_fetch_max_bytes_per_partition(16 * 1024 * 1024)
        .create()
        .expect("independent reader connects");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        let sets = consumer.poll().expect("independent reader polls");
        for set in sets.iter() {
            for m in set.messages() {
                out.push(ReadBack {
                    partition: set.partition(),
                    offset: m.offset,
                    key: m.key.to_vec(),
                    value: m.value.to_vec(),
                });
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}
