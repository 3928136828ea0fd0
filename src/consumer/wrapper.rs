//! [`KafkaConsumerWrapper`]: the Go package's simplified consumer surface.

use super::Consumer;
use crate::domain::{MessageHandler, MessageType};
use crate::error::Result;

/// The seed's simplified surface over a [`Consumer`]: register a handler per message type,
/// consume topics, close.
///
/// ```
/// use kafka_sync::domain::{topics, KafkaMessage, MessageType};
/// use kafka_sync::{Kafka, KafkaConsumerWrapper};
///
/// let kafka = Kafka::in_memory().unwrap();
/// let kafka_consumer = KafkaConsumerWrapper::new(kafka.consumer().unwrap());
/// kafka_consumer.register_handler(MessageType::SCRAPING_TASK, |_msg: &KafkaMessage| Ok(()));
/// kafka_consumer.consume(&[topics::SCRAPING_TASKS]).unwrap();
/// kafka_consumer.close().unwrap();
/// ```
#[derive(Debug)]
pub struct KafkaConsumerWrapper {
    consumer: Consumer,
}

impl KafkaConsumerWrapper {
    /// Wraps `consumer`.
    pub fn new(consumer: Consumer) -> Self {
        KafkaConsumerWrapper { consumer }
    }

    /// Registers `handler` for `message_type`.
    pub fn register_handler(
        &self,
        message_type: impl Into<MessageType>,
        handler: impl MessageHandler + 'static,
    ) {
        self.consumer.register_handler(message_type, handler);
    }

    /// Starts consuming `topics` (a thread per topic) and returns at once.
    pub fn consume(&self, topics: &[&str]) -> Result<()> {
        self.consumer.consume(topics.iter().copied()).map(|_| ())
    }

    /// Stops gracefully, bounded by `consumer.shutdown_timeout`.
    pub fn close(&self) -> Result<()> {
        self.consumer
            .close(self.consumer.config().consumer.shutdown_timeout)
    }

    /// The wrapped consumer (metrics, health, typed handlers).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }
}
