//! The [`KafkaProducer`] trait services depend on, and [`Delivery`], what a send returns.

use crate::domain::{topics, KafkaMessage, MessageType, ParsedData, ScrapedData, ScrapingTask};
use crate::error::Result;

/// Where the broker stored an acknowledged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The partition the message was written to.
    pub partition: i32,
    /// The message's offset within that partition.
    pub offset: i64,
}

/// Sends domain messages; services hold an `Arc<dyn KafkaProducer>`.
///
/// Implemented by [`KafkaProducerWrapper`](crate::KafkaProducerWrapper) over the real
/// producer and by [`MockKafkaProducer`](crate::testing::MockKafkaProducer) for tests. Only
/// [`send_message`](Self::send_message) must be written; the helpers build the envelope.
pub trait KafkaProducer: Send + Sync {
    /// Sends `message` to `topic` and blocks until the broker acknowledged it.
    fn send_message(&self, topic: &str, message: &KafkaMessage) -> Result<Delivery>;

    /// Sends a [`ScrapingTask`] to `scraping-tasks` under `correlation_id`.
    fn send_scraping_task(&self, task: &ScrapingTask, correlation_id: &str) -> Result<Delivery> {
        let msg = KafkaMessage::new(MessageType::SCRAPING_TASK, task)?
            .with_correlation_id(correlation_id)
            .with_key(task.url.clone());
        self.send_message(topics::SCRAPING_TASKS, &msg)
    }

    /// Sends [`ScrapedData`] to `scraped-data` under `correlation_id`.
    fn send_scraped_data(&self, data: &ScrapedData, correlation_id: &str) -> Result<Delivery> {
        let msg = KafkaMessage::new(MessageType::SCRAPED_DATA, data)?
            .with_correlation_id(correlation_id)
            .with_key(data.url.clone());
        self.send_message(topics::SCRAPED_DATA, &msg)
    }

    /// Sends [`ParsedData`] to `parsed-data` under `correlation_id`.
    fn send_parsed_data(&self, data: &ParsedData, correlation_id: &str) -> Result<Delivery> {
        let msg = KafkaMessage::new(MessageType::PARSED_DATA, data)?
            .with_correlation_id(correlation_id)
            .with_key(data.url.clone());
        self.send_message(topics::PARSED_DATA, &msg)
    }
}
