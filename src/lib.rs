//! # kafka-sync
//!
//! A blocking, thread-based Kafka messaging library for synchronous Rust programs: send
//! domain messages with a call that returns once the broker acknowledged them, run handlers
//! on consumed messages, retry what fails, park what cannot succeed in a dead-letter topic,
//! and lose nothing.
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_sync::domain::{topics, KafkaMessage, KafkaProducer, MessageType, ScrapingTask};
//! use kafka_sync::{Config, Kafka};
//!
//! fn main() -> kafka_sync::Result<()> {
//!     // A real broker: localhost:9092 by default, KAFKA_BROKERS=host:port,... to change it.
//!     let kafka = Kafka::connect(Config::from_env()?)?;
//!     let producer = kafka.producer();
//!     producer.send_scraping_task(&ScrapingTask::new("https://example.com"), "req-1")?;
//!
//!     let consumer = kafka.consumer()?;
//!     consumer.register_typed(MessageType::SCRAPING_TASK, |msg: &KafkaMessage, task: ScrapingTask| {
//!         println!("scraping {} (correlation {})", task.url, msg.correlation_id);
//!         Ok(())
//!     });
//!     consumer.consume([topics::SCRAPING_TASKS])?;
//!     std::thread::sleep(Duration::from_secs(1));
//!     kafka.close(Duration::from_secs(10))
//! }
//! ```
//!
//! ## Map
//!
//! | start here | what it is |
//! |---|---|
//! | [`Kafka`] | the front door: one config, one transport; hands out the producer and consumers, closes them in order; [`Health`] |
//! | [`Config`], [`ProducerConfig`], [`ConsumerConfig`] | every setting, its default in its doc, `from_env` for `KAFKA_*` variables |
//! | [`TransportKind`], [`Acks`], [`Compression`], [`StartOffset`], [`Assignor`], [`IsolationLevel`], [`UnknownTypePolicy`], [`RetryPolicy`] ([`RetrySchedule`]) | the typed values those settings take |
//! | [`Producer`], [`DeliveryHandle`] | blocking `send`, `send_batch`, `send_async`, `try_send`, `flush`, `close` |
//! | [`Consumer`], [`ConsumerHandle`] | handlers by message type, a thread per topic, retries, dead letters, commits |
//! | [`IdempotencyStore`], [`MemoryIdempotencyStore`], [`FileIdempotencyStore`] | handle each message id once |
//! | [`KafkaProducerWrapper`], [`KafkaConsumerWrapper`] | the Go package's names for the domain-facing adapters |
//! | [`Error`], [`ErrorKind`], [`ErrorContext`], [`Result`], [`SendError`] | one error type: `kind()`, `is_retriable()`, broker code, context |
//! | [`domain`] | the envelope [`KafkaMessage`](domain::KafkaMessage), message types, topics, payloads, the `KafkaProducer` / `MessageHandler` traits, dead-letter and retry records |
//! | [`metrics`] | health and counters of producers and consumers; one snapshot, Prometheus text, an HTTP endpoint, ok / degraded / down |
//! | [`logging`] | JSON log lines (`KAFKA_SYNC_LOG_FORMAT=json`) that carry message and correlation ids |
//! | [`security`] | TLS and SASL settings |
//! | [`transport`] | the seam to a broker, for implementers and tests: memory, `kafka` crate, modern |
//! | [`testing`] | [`MockKafkaProducer`](testing::MockKafkaProducer) for services' unit tests |
//!
//! ```text
//!  service code ── KafkaProducer / MessageHandler traits, KafkaMessage envelope   (domain)
//!        │
//!  Kafka ── Producer (writer thread per topic, batching, acks, retries)
//!        └─ Consumer (thread per topic, handlers, retry topic, dead letters, commits)
//!        │
//!  Transport (the one seam: produce batch, subscribe/poll/commit, metadata, health)
//!        │
//!  ModernTransport (Kafka 2.1–4.x, the default)  KafkaCrateTransport (≤ 3.9)  MemoryTransport
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod config;
mod consumer;
pub mod domain;
mod error;
mod kafka;
pub mod logging;
pub mod metrics;
mod mock;
mod producer;
mod retry;
pub mod transport;
mod wait;

pub use config::{
    Acks, Assignor, Compression, Config, ConsumerConfig, IsolationLevel, ProducerConfig,
    StartOffset, TransportKind, UnknownTypePolicy,
};
pub use consumer::{
    Consumer, ConsumerHandle, FileIdempotencyStore, IdempotencyStore, KafkaConsumerWrapper,
    MemoryIdempotencyStore,
};
pub use error::{Error, ErrorContext, ErrorKind, Result, SendError};
pub use kafka::{Health, Kafka};
pub use producer::{DeliveryHandle, KafkaProducerWrapper, Producer};
pub use retry::{RetryPolicy, RetrySchedule};

/// TLS and SASL settings ([`Config::security`](crate::Config::security)), modern transport
/// only.
pub mod security {
    pub use crate::config::{Sasl, SaslMechanism, Security, SecurityProtocol, TlsConfig};
}

/// Test doubles for services' unit tests.
pub mod testing {
    pub use crate::mock::MockKafkaProducer;
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
