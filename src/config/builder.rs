//! [`ConfigBuilder`]: set what differs from the defaults, then `build()` validates.

use std::time::Duration;

use super::{Acks, Compression, Config, StartOffset, TransportKind};
use crate::error::Result;
use crate::retry::RetryPolicy;

/// Builds a [`Config`]; [`build`](Self::build) rejects invalid values with an error naming
/// the field and the value.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Starts from an existing config instead of the defaults.
    pub fn from_config(config: Config) -> Self {
        ConfigBuilder { config }
    }

    /// Bootstrap brokers as `host:port`.
    pub fn brokers<I, S>(mut self, brokers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.brokers = brokers.into_iter().map(Into::into).collect();
        self
    }

    /// Client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self
    }

    /// Consumer group id.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.config.group_id = id.into();
        self
    }

    /// Service name stamped on retry and dead-letter records.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = name.into();
        self
    }

    /// Transport.
    pub fn transport(mut self, kind: TransportKind) -> Self {
        self.config.transport = kind;
        self
    }

    /// Bound on opening a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Bound on one broker request.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Most messages per produce request.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.config.producer.batch_size = size;
        self
    }

    /// Longest a message waits for its batch to fill.
    pub fn batch_timeout(mut self, timeout: Duration) -> Self {
        self.config.producer.batch_timeout = timeout;
        self
    }

    /// Acknowledgements required.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.config.producer.acks = acks;
        self
    }

    /// Capacity of each topic's writer queue.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.producer.queue_capacity = capacity;
        self
    }

    /// Compression codec.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.producer.compression = compression;
        self
    }

    /// Compress only batches larger than this many bytes.
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.config.producer.compression_threshold = bytes;
        self
    }

    /// Producer retry policy.
    pub fn producer_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.producer.retry = policy;
        self
    }

    /// Consumer in-place retry policy.
    pub fn consumer_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.consumer.retry = policy;
        self
    }

    /// Where a group with no committed offset starts.
    pub fn start_offset(mut self, start: StartOffset) -> Self {
        self.config.consumer.start_offset = start;
        self
    }

    /// Smallest fetch response to wait for.
    pub fn min_bytes(mut self, bytes: usize) -> Self {
        self.config.consumer.min_bytes = bytes;
        self
    }

    /// Largest fetch response per partition.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.config.consumer.max_bytes = bytes;
        self
    }

    /// Longest a fetch waits.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.config.consumer.max_wait = wait;
        self
    }

    /// Changes anything else, then continues building.
    pub fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<Config> {
        self.config.validate()?;
        Ok(self.config)
    }
}
