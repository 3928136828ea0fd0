//! [`MemoryTransport`]: an in-process broker with topics, partitions, offsets and consumer
//! groups, the embedded default transport and the fast test double.
//!
//! - `state`: the broker state behind one mutex (topics, groups, range assignment, commits,
//!   fault injection) and the condition variable pollers wait on;
//! - `subscription`: a group member's fetch positions, fair polling, commits and lag;
//! - this file: the cloneable handle, its test helpers, and the producing session.

mod group;
#[cfg(test)]
mod group_tests;
mod state;
mod subscription;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use self::state::{Broker, DEFAULT_PARTITIONS};
use self::subscription::MemorySubscription;
use super::{
    ConsumedRecord, OutgoingRecord, ProduceOptions, ProducerSession, SubscribeOptions,
    Subscription, Transport,
};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};

/// An in-process Kafka broker: topics of partitions holding records at consecutive offsets,
/// consumer groups whose members share a topic's partitions by range assignment, committed
/// offsets per group, and switches to make it fail for tests of retry logic.
///
/// A `MemoryTransport` is a handle: [`clone`](Clone::clone) gives another handle to the same
/// broker, so a test can keep one while the producer and consumer use others.
///
/// Topics are created on first use (produce, metadata or subscribe) with 3 partitions unless
/// [`with_default_partitions`](Self::with_default_partitions) says otherwise, or
/// [`set_auto_create`](Self::set_auto_create) turns that off. Acks, compression and
/// timeouts are accepted and ignored (every codec, lz4 and zstd too); headers are kept: a produce is stored (and visible to pollers) before it
/// returns. Polls return as soon as any record is available (`min_bytes` is not waited for).
///
/// ```
/// use std::time::Duration;
/// use kafka_sync::transport::{
///     Header, OutgoingRecord, ProduceOptions, SubscribeOptions, Transport,
/// };
/// use kafka_sync::transport::MemoryTransport;
/// use kafka_sync::{Acks, Compression, StartOffset};
///
/// let broker = MemoryTransport::new();
/// let mut session = broker.connect_producer().unwrap();
/// let record = OutgoingRecord {
///     partition: 1,
///     key: None,
///     value: b"hello".to_vec(),
///     headers: vec![Header::new("trace", "abc")],
/// };
/// let options = ProduceOptions {
///     acks: Acks::All,
///     compression: Compression::None,
///     timeout: Duration::from_secs(1),
/// };
/// let delivery = session.produce("greetings", &[record], &options).remove(0).unwrap();
/// assert_eq!((delivery.partition, delivery.offset), (1, 0));
///
/// let mut sub = broker
///     .subscribe(SubscribeOptions {
///         group: "readers".into(),
///         topic: "greetings".into(),
///         client_id: "reader-1".into(),
///         start_offset: StartOffset::Earliest,
///         min_bytes: 1,
///         max_bytes: 1_000_000,
///     })
///     .unwrap();
/// let records = sub.poll(Duration::from_secs(1)).unwrap();
/// assert_eq!(records[0].value, b"hello");
/// assert_eq!(records[0].headers, vec![Header::new("trace", "abc")]);
/// sub.commit(&[(1, records[0].offset + 1)]).unwrap();
/// assert_eq!(broker.committed("readers", "greetings", 1), Some(1));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    broker: Arc<Broker>,
}

impl Default for MemoryTransport {
    fn default() -> Self {
        MemoryTransport::new()
    }
}

impl MemoryTransport {
    /// An empty broker creating topics with 3 partitions on first use.
    pub fn new() -> Self {
        MemoryTransport::with_default_partitions(DEFAULT_PARTITIONS)
    }

    /// An empty broker creating topics with `partitions` partitions on first use (0 counts
    /// as 1).
    pub fn with_default_partitions(partitions: usize) -> Self {
        MemoryTransport {
            broker: Arc::new(Broker::new(partitions)),
        }
    }

    /// Creates `topic` with `partitions` partitions. Succeeds if it already exists with that
    /// many; fails with [`ErrorKind::Broker`] if it exists with another count and with
    /// [`ErrorKind::Config`] for an invalid name or a count of 0.
    pub fn create_topic(&self, topic: &str, partitions: usize) -> Result<()> {
        self.broker.lock().create_topic(topic, partitions)
    }

    /// Whether producing to, subscribing to or asking the partition count of an unknown
    /// topic creates it (the default) or fails with [`ErrorKind::UnknownTopic`].
    pub fn set_auto_create(&self, auto_create: bool) {
        self.broker.lock().auto_create = auto_create;
    }

    /// Makes the next `calls` produce calls fail every record with an error of `kind`
    /// (for example [`ErrorKind::Connection`], which is retriable). Replaces any failures
    /// still pending; calls made while the broker is unavailable do not use them up.
    pub fn fail_next_produces(&self, calls: usize, kind: ErrorKind) {
        self.broker.lock().injected_failures = (calls, kind);
    }

    /// Makes the next `calls` produce calls store their records and then fail every one of
    /// them with an error of `kind`, as when a broker appended a batch and the
    /// acknowledgement was lost: a retry writes the records a second time.
    pub fn fail_next_produces_after_storing(&self, calls: usize, kind: ErrorKind) {
        self.broker.lock().failures_after_storing = (calls, kind);
    }

    /// Makes the next poll (of any member) that takes a new generation's assignment fail
    /// right after taking it, with [`ErrorKind::Connection`], and that member's next
    /// `polls - 1` polls too: as on Kafka when the offsets lookup or the fetch after a
    /// rejoin meets a leader that moved. 0 turns it off.
    pub fn fail_polls_after_rejoin(&self, polls: usize) {
        self.broker.lock().polls_failing_after_rejoin = polls;
    }

    /// Makes the next `joins` rejoins (of any member: a poll that finds a rebalance waiting
    /// for it) fail with [`ErrorKind::Connection`] after the member gave up its partitions
    /// and before the group heard of it: the group goes on without it once the rebalance
    /// timeout passes.
    pub fn fail_next_joins(&self, joins: usize) {
        self.broker.lock().joins_failing = joins;
    }

    /// Makes the next `commits` commits (of any member) fail with
    /// [`ErrorKind::Connection`], storing nothing (a coordinator that cannot be reached).
    pub fn fail_next_commits(&self, commits: usize) {
        self.broker.lock().commits_failing = commits;
    }

    /// The groups' session timeout (a member whose subscription is gone without leaving
    /// the group, as a static member's at close, is removed this long after and the others
    /// rebalance; an open subscription keeps its session, as Kafka's heartbeat thread
    /// does; default 45 s) and rebalance timeout
    /// (members that have not rejoined this long after a rebalance began are removed;
    /// default 30 s).
    pub fn set_group_timeouts(&self, session: Duration, rebalance: Duration) {
        self.broker.lock().timeouts = group::GroupTimeouts { session, rebalance };
        self.broker.notify();
    }

    /// Joins `options.group` as a static member named `instance_id` (Kafka's
    /// `group.instance.id`): a member joining with the instance id of one still in the group
    /// takes its place and partitions without a rebalance (the old one is fenced:
    /// FENCED_INSTANCE_ID), and closing does not leave the group (its partitions wait for
    /// it until its session expires).
    pub fn subscribe_static(
        &self,
        options: SubscribeOptions,
        instance_id: &str,
    ) -> Result<Box<dyn Subscription>> {
        let mut state = self.broker.lock();
        state
            .check_available()
            .map_err(|e| e.with_topic(&options.topic))?;
        state.topic(&options.topic)?;
        let sub = MemorySubscription::join(
            Arc::clone(&self.broker),
            &mut state,
            options,
            Some(instance_id.to_string()),
        );
        drop(state);
        self.broker.notify();
        Ok(Box::new(sub))
    }

    /// While `true`, produce, subscribe, poll, commit, lag, partition count and health
    /// check fail with [`ErrorKind::Connection`] ("memory broker is unavailable"); waiting
    /// polls wake up and fail. Closing a subscription and the inspection helpers still work.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.broker.lock().unavailable = unavailable;
        self.broker.notify();
    }

    /// Appends a record whose value is null (a tombstone, as other clients write for log
    /// compaction) to `partition` of `topic`, creating the topic if auto-creation is on;
    /// returns its offset. The producer never writes null values; this is for tests of what
    /// consumers do with them.
    pub fn append_tombstone(&self, topic: &str, partition: i32, key: Option<&[u8]>) -> Result<i64> {
        let offset =
            self.broker
                .lock()
                .append_tombstone(topic, partition, key.map(<[u8]>::to_vec))?;
        self.broker.notify();
        Ok(offset)
    }

    /// How many produce calls this broker received, failed ones included.
    pub fn produce_calls(&self) -> u64 {
        self.broker.lock().produce_calls
    }

    /// Every record of `topic`, ordered by partition then offset (empty for an unknown
    /// topic, which is not created).
    pub fn records(&self, topic: &str) -> Vec<ConsumedRecord> {
        let state = self.broker.lock();
        let mut out = Vec::new();
        if let Some(t) = state.existing(topic) {
            for p in 0..t.partition_count() {
                t.read(topic, p as i32, 0, &mut out, |_| true);
            }
        }
        out
    }

    /// The records of one partition of `topic`, in offset order (empty if either does not
    /// exist).
    pub fn partition_records(&self, topic: &str, partition: i32) -> Vec<ConsumedRecord> {
        let state = self.broker.lock();
        let mut out = Vec::new();
        if let Some(t) = state.existing(topic) {
            t.read(topic, partition, 0, &mut out, |_| true);
        }
        out
    }

    /// The offset `group` committed for `partition` of `topic` (the next record to read).
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let state = self.broker.lock();
        state
            .group(group, topic)
            .and_then(|g| g.committed.get(&partition).copied())
    }

    /// The next offset to be written in each partition of `topic`, by partition (empty for
    /// an unknown topic).
    pub fn high_watermarks(&self, topic: &str) -> Vec<i64> {
        let state = self.broker.lock();
        state
            .existing(topic)
            .map(|t| t.high_watermarks())
            .unwrap_or_default()
    }

    fn partition_count_of(&self, topic: &str) -> Result<usize> {
        let mut state = self.broker.lock();
        state.check_available().map_err(|e| e.with_topic(topic))?;
        Ok(state.topic(topic)?.partition_count())
    }
}

impl Transport for MemoryTransport {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>> {
        Ok(Box::new(MemoryProducerSession {
            transport: self.clone(),
        }))
    }

    fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        if options.group.is_empty() {
            return Err(Error::config(
                "group_id",
                "",
                "a consumer group id cannot be empty",
            ));
        }
        let mut state = self.broker.lock();
        state
            .check_available()
            .map_err(|e| e.with_topic(&options.topic))?;
        state.topic(&options.topic)?;
        let sub = MemorySubscription::join(Arc::clone(&self.broker), &mut state, options, None);
        drop(state);
        self.broker.notify();
        Ok(Box::new(sub))
    }

    fn partition_count(&self, topic: &str) -> Result<usize> {
        self.partition_count_of(topic)
    }

    /// `Ok` unless the broker is marked unavailable; never waits.
    fn health_check(&self, _timeout: Duration) -> Result<()> {
        self.broker.lock().check_available()
    }

    /// Creates the topic unless it exists (`partitions` -1: the default count); the
    /// replication is ignored.
    fn ensure_topic(&self, topic: &str, partitions: i32, _replication: i16) -> Result<usize> {
        let mut state = self.broker.lock();
        state.check_available().map_err(|e| e.with_topic(topic))?;
        if let Some(t) = state.topics.get(topic) {
            return Ok(t.partition_count());
        }
        let count = if partitions < 1 {
            state.default_partitions
        } else {
            partitions as usize
        };
        state.create_topic(topic, count)?;
        Ok(count)
    }
}

/// A producing session: every call goes straight to the shared broker (there is no
/// metadata to cache).
struct MemoryProducerSession {
    transport: MemoryTransport,
}

impl ProducerSession for MemoryProducerSession {
    fn partition_count(&mut self, topic: &str) -> Result<usize> {
        self.transport.partition_count_of(topic)
    }

    /// Stores the records and wakes pollers; acks, compression and the timeout are ignored.
    fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        _options: &ProduceOptions,
    ) -> Vec<Result<Delivery>> {
        let results = self.transport.broker.lock().produce(topic, records);
        if results.iter().any(Result::is_ok) {
            self.transport.broker.notify();
        }
        results
    }
}
