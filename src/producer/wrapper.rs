//! [`KafkaProducerWrapper`]: the domain [`KafkaProducer`] trait over a [`Producer`].

use std::sync::Arc;

use super::Producer;
use crate::domain::{Delivery, KafkaMessage, KafkaProducer};
use crate::error::Result;

/// Implements the domain [`KafkaProducer`] over a [`Producer`], so services depend on the
/// trait (`Arc<dyn KafkaProducer>`) and tests can swap in
/// [`MockKafkaProducer`](crate::MockKafkaProducer).
#[derive(Debug, Clone)]
pub struct KafkaProducerWrapper {
    producer: Arc<Producer>,
}

impl KafkaProducerWrapper {
    /// Wraps `producer`.
    pub fn new(producer: Producer) -> Self {
        KafkaProducerWrapper {
            producer: Arc::new(producer),
        }
    }

    /// Wraps a producer that is shared with other code.
    pub fn from_shared(producer: Arc<Producer>) -> Self {
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
