//! [`MockKafkaProducer`]: a [`KafkaProducer`] for services' unit tests.

use std::sync::{Mutex, MutexGuard};

use crate::domain::{Delivery, KafkaMessage, KafkaProducer, MessageType};
use crate::error::{Error, ErrorKind, Result};

/// Records every message sent through it, in order, and can be told to fail the next sends.
///
/// ```
/// use kafka_sync::domain::{topics, KafkaProducer, ScrapingTask};
/// use kafka_sync::testing::MockKafkaProducer;
/// use kafka_sync::ErrorKind;
///
/// let mock = MockKafkaProducer::new();
/// mock.fail_next(1, ErrorKind::Connection);
/// let task = ScrapingTask::new("https://example.com");
/// assert!(mock.send_scraping_task(&task, "c1").is_err());
/// mock.send_scraping_task(&task, "c1").unwrap();
/// let sent = mock.sent_to(topics::SCRAPING_TASKS);
/// assert_eq!(sent.len(), 1);
/// assert_eq!(sent[0].payload_as::<ScrapingTask>().unwrap(), task);
/// ```
#[derive(Debug, Default)]
pub struct MockKafkaProducer {
    state: Mutex<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    sent: Vec<(String, KafkaMessage)>,
    failures_left: usize,
    failure_kind: Option<ErrorKind>,
    attempts: usize,
}

impl MockKafkaProducer {
    /// An empty mock that accepts every send.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` sends fail with an error of `kind` (and not be recorded).
    pub fn fail_next(&self, n: usize, kind: ErrorKind) {
        let mut s = self.lock();
        s.failures_left = n;
        s.failure_kind = Some(kind);
    }

    /// Every successful send as `(topic, message)`, in order.
    pub fn sent(&self) -> Vec<(String, KafkaMessage)> {
        self.lock().sent.clone()
    }

    /// The messages successfully sent to `topic`, in order.
    pub fn sent_to(&self, topic: &str) -> Vec<KafkaMessage> {
        self.lock()
            .sent
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The messages of type `message_type` successfully sent anywhere, in order.
    pub fn sent_of_type(&self, message_type: &MessageType) -> Vec<KafkaMessage> {
        self.lock()
            .sent
            .iter()
            .filter(|(_, m)| &m.message_type == message_type)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Sends attempted, failed ones included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Forgets what was sent.
    pub fn clear(&self) {
        self.lock().sent.clear();
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KafkaProducer for MockKafkaProducer {
    fn send_message(&self, topic: &str, message: &KafkaMessage) -> Result<Delivery> {
        crate::config::validate_topic_name(topic)?;
        let mut s = self.lock();
        s.attempts += 1;
        if s.failures_left > 0 {
            s.failures_left -= 1;
            let kind = s.failure_kind.unwrap_or(ErrorKind::Connection);
            return Err(Error::new(kind, "failure injected by MockKafkaProducer").with_topic(topic));
        }
        let offset = s.sent.iter().filter(|(t, _)| t == topic).count() as i64;
        s.sent.push((topic.to_string(), message.clone()));
        Ok(Delivery {
            partition: 0,
            offset,
        })
    }
}
