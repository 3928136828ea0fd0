//! Helpers for the modern transport's broker tests: the two brokers (Apache Kafka 3.9.1 on
//! 9092 and 4.1.2 on 9094, both started by `tests/broker/kafka.sh`), random names, and a
//! reader that polls until enough records arrived.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use kafka_sync::transport::{
    ConsumedRecord, ModernTransport, SubscribeOptions, Subscription, Transport,
};
use kafka_sync::{Config, StartOffset, TransportKind};

#[path = "../reach/mod.rs"]
pub mod reach;

/// A broker the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// Apache Kafka 3.9.1: `KAFKA_TEST_BROKERS`, default 127.0.0.1:9092.
    Kafka3,
    /// Apache Kafka 4.1.2: `KAFKA4_TEST_BROKERS`, default 127.0.0.1:9094.
    Kafka4,
}

impl Broker {
    /// The broker's addresses; panics with how to start it when none answers (a broker test
    /// never passes or skips without its broker).
    pub fn addrs(self) -> Vec<String> {
        let (var, default, how) = match self {
            Broker::Kafka3 => ("KAFKA_TEST_BROKERS", "127.0.0.1:9092", "`make kafka-up`"),
            Broker::Kafka4 => (
                "KAFKA4_TEST_BROKERS",
                "127.0.0.1:9094",
                "`KAFKA_VERSION=4.1.2 KAFKA_PORT=9094 make kafka-up`",
            ),
        };
        let list = std::env::var(var).unwrap_or_else(|_| default.to_string());
        let addrs: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
        reach::require(addrs, how)
    }

    /// A config for this broker with test-friendly bounds.
    pub fn config(self) -> Config {
        let mut c = Config {
            brokers: self.addrs(),
            transport: TransportKind::Modern,
            client_id: "ks-modern-tests".into(),
            group_id: random_name("group"),
            ..Config::default()
        };
        c.connect_timeout = Duration::from_secs(3);
        c.request_timeout = Duration::from_secs(15);
        c.consumer.min_bytes = 1;
        c.consumer.max_wait = Duration::from_millis(200);
        // Bare subscriptions here stop polling once they read what they wanted while still
        // members: a rebalance then waits the whole rebalance timeout for them (30 s, not
        // the 5 min default, which is for consumers that always poll).
        c.consumer.rebalance_timeout = Duration::from_secs(30);
        c
    }

    /// The modern transport for this broker.
    pub fn transport(self) -> ModernTransport {
        ModernTransport::new(&self.config()).expect("transport")
    }
}

/// A name no other run uses.
pub fn random_name(prefix: &str) -> String {
    format!("ks-modern-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Joins `group` on `topic`.
pub fn subscribe(
    t: &dyn Transport,
    topic: &str,
    group: &str,
    start: StartOffset,
) -> Box<dyn Subscription> {
    t.subscribe(SubscribeOptions {
        group: group.to_string(),
        topic: topic.to_string(),
        client_id: "ks-modern-consumer".to_string(),
        start_offset: start,
        min_bytes: 1,
        max_bytes: 1_000_000,
    })
    .expect("subscribe")
}

/// Polls until `n` records arrived or `timeout` passed.
pub fn read(sub: &mut dyn Subscription, n: usize, timeout: Duration) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(sub.poll(Duration::from_millis(300)).expect("poll"));
    }
    got
}
