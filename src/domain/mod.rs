//! The domain layer: what services exchange, independent of threads and transports.
//!
//! - [`KafkaMessage`], the envelope every message travels in;
//! - [`MessageType`] and the [`topics`] of the scraping pipeline;
//! - typed payloads [`ScrapingTask`], [`ScrapedData`], [`ParsedData`];
//! - the traits services depend on: [`KafkaProducer`] to send and [`MessageHandler`] to
//!   handle;
//! - what the library writes when a message cannot be handled now: [`DeadLetterRecord`]
//!   (with its [`DeadLetterKind`]) and [`RetryRecord`].

mod handler;
mod message;
mod payloads;
mod producer;
pub(crate) mod timestamp;
pub mod topics;

pub use handler::{HandlerError, HandlerResult, MessageHandler};
pub use message::{KafkaMessage, MessageType};
pub use payloads::{ParsedData, ScrapedData, ScrapingTask};
pub use producer::{Delivery, KafkaProducer};

pub use crate::consumer::{
    headers, DeadLetterKind, DeadLetterRecord, Origin, RawBytes, RetryRecord,
};
