//! [`ProducerHealth`]: what [`Producer::health`](crate::Producer::health) reports.

/// Whether a producer can deliver: the broker answered and every writer thread runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerHealth {
    /// The broker answered a metadata request within the connect timeout.
    pub broker_reachable: bool,
    /// Why the broker check failed, if it did.
    pub broker_error: Option<String>,
    /// Topics whose writer thread is running.
    pub live_writers: Vec<String>,
    /// Topics whose writer thread stopped (it is restarted by the next send).
    pub dead_writers: Vec<String>,
}

impl ProducerHealth {
    /// Broker reachable and no dead writer.
    pub fn is_healthy(&self) -> bool {
        self.broker_reachable && self.dead_writers.is_empty()
    }
}
