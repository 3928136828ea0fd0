//! [`KafkaProducerWrapper`]: the Go package's name for the domain producer over a
//! [`Producer`].

use std::sync::Arc;

use super::Producer;
use crate::domain::{Delivery, KafkaMessage, KafkaProducer};
use crate::error::Result;

/// The Go package's `KafkaProducerWrapper`: the domain [`KafkaProducer`] over a shared
/// [`Producer`]. A thin adapter: [`Producer`] implements [`KafkaProducer`] itself, so
/// `Arc<Producer>` is already an `Arc<dyn KafkaProducer>`; this type exists for code ported
/// from the Go package. Tests swap in
/// [`MockKafkaProducer`](crate::testing::MockKafkaProducer).
///
/// ```
/// use std::sync::Arc;
/// use kafka_sync::domain::{KafkaProducer, ScrapingTask};
/// use kafka_sync::{Kafka, KafkaProducerWrapper};
///
/// let kafka = Kafka::in_memory().unwrap();
/// let service: Arc<dyn KafkaProducer> = Arc::new(KafkaProducerWrapper::new(kafka.producer()));
/// let delivery = service.send_scraping_task(&ScrapingTask::new("https://a.b"), "req-1").unwrap();
/// assert_eq!(delivery.offset, 0);
/// ```
#[derive(Debug, Clone)]
pub struct KafkaProducerWrapper {
    producer: Arc<Producer>,
}

impl KafkaProducerWrapper {
    /// Wraps `producer` (from [`Kafka::producer`](crate::Kafka::producer)).
    pub fn new(producer: Arc<Producer>) -> Self {
        KafkaProducerWrapper { producer }
    }

    /// The underlying producer (for flush, close, health and metrics).
    pub fn producer(&self) -> &Arc<Producer> {
        &self.producer
    }
}

impl KafkaProducer for KafkaProducerWrapper {
    fn send_message(&self, topic: &str, message: &KafkaMessage) -> Result<Delivery> {
        self.producer.send(topic, message)
    }
}
