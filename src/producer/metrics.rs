//! Per-topic producer counters, updated by the writer thread and read as snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of one topic's writer; cheap to update from the writer thread.
#[derive(Debug, Default)]
pub(crate) struct WriterMetrics {
    messages: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl WriterMetrics {
    pub(crate) fn delivered(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn batch_sent(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self, records: u64) {
        self.retries.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, records: u64, error: &str) {
        self.errors.fetch_add(records, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    pub(crate) fn snapshot(&self, topic: &str) -> ProducerTopicMetrics {
        ProducerTopicMetrics {
            topic: topic.to_string(),
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A point-in-time copy of one topic's producer counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerTopicMetrics {
    /// The topic.
    pub topic: String,
    /// Messages acknowledged by the broker.
    pub messages: u64,
    /// Value bytes acknowledged by the broker.
    pub bytes: u64,
    /// Produce requests that succeeded at least in part.
    pub batches: u64,
    /// Messages whose send failed for good.
    pub errors: u64,
    /// Message re-sends after retriable errors.
    pub retries: u64,
    /// The text of the latest error, if any.
    pub last_error: Option<String>,
}
