//! # kafka-sync
//!
//! A blocking, thread-based Kafka messaging library for synchronous Rust programs: send
//! domain messages with a call that returns once the broker acknowledged them, run handlers
//! on consumed messages, retry what fails, park what cannot succeed in a dead-letter topic,
//! and lose nothing.
//!
//! ```text
//!  service code ── KafkaProducer / MessageHandler traits, KafkaMessage envelope
//!        │
//!  Producer (writer thread per topic, batching, acks, retries)
//!        │
//!  Transport (the one seam: produce batch, subscribe/poll/commit, metadata, health)
//!        │
//!  MemoryTransport (in-process)   KafkaCrateTransport (Kafka ≤ 3.9)   ModernTransport (2.1–4.x)
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use kafka_sync::{Config, KafkaProducer, KafkaProducerWrapper, MemoryTransport, Producer};
//! use kafka_sync::domain::ScrapingTask;
//!
//! let producer = Producer::new(Config::default(), Arc::new(MemoryTransport::new())).unwrap();
//! let service: Arc<dyn KafkaProducer> = Arc::new(KafkaProducerWrapper::new(producer));
//! let delivery = service
//!     .send_scraping_task(&ScrapingTask::new("https://example.com"), "req-1")
//!     .unwrap();
//! assert_eq!(delivery.offset, 0);
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod consumer;
pub mod domain;
mod error;
mod mock;
pub mod producer;
mod retry;
pub mod transport;
mod wait;

pub use config::{Acks, Compression, Config, ConfigBuilder, StartOffset, TransportKind};
pub use consumer::{
    Consumer, ConsumerHandle, ConsumerHealth, ConsumerTopicMetrics, DeadLetterKind,
    DeadLetterRecord, IdempotencyStore, KafkaConsumerWrapper, MemoryIdempotencyStore, RawBytes,
    RetryRecord,
};
pub use domain::{
    Delivery, HandlerError, HandlerResult, KafkaMessage, KafkaProducer, MessageHandler, MessageType,
};
pub use error::{Error, ErrorContext, ErrorKind, Result, SendError};
pub use mock::MockKafkaProducer;
pub use producer::{
    DeliveryHandle, KafkaProducerWrapper, Producer, ProducerHealth, ProducerTopicMetrics,
};
pub use retry::{RetryPolicy, RetrySchedule};
pub use transport::{KafkaCrateTransport, MemoryTransport, ModernTransport, Transport};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
