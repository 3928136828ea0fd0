//! The one seam between this crate and a broker.
//!
//! The producer and consumer talk to Kafka only through [`Transport`]: open a
//! [`ProducerSession`] to produce batches (one result per record), [`subscribe`] a group to a
//! topic to get a [`Subscription`] that polls and commits, ask for metadata and health. No
//! client crate's type crosses this seam.
//!
//! Implementations:
//! - [`MemoryTransport`]: an in-process broker (topics, partitions, offsets, consumer groups);
//!   the embedded default and the fast test double.
//! - [`KafkaCrateTransport`]: the `kafka` crate, for brokers up to Kafka 3.9.
//! - [`ModernTransport`]: Kafka's current protocol, brokers from Kafka 2.1 to 4.x, with
//!   consumer groups that rebalance.
//!
//! [`subscribe`]: Transport::subscribe

mod broker_code;
mod kafka_crate;
mod memory;
mod modern;
mod net;
mod partitioner;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Acks, Compression, Config, StartOffset, TransportKind};
use crate::domain::Delivery;
use crate::error::Result;

pub use kafka_crate::KafkaCrateTransport;
pub use memory::MemoryTransport;
pub use modern::{
    BrokerDescription, ClusterDescription, GroupDescription, GroupListing, GroupMember,
    ModernTransport, PartitionDescription, PartitionOffsets, TopicDescription,
};
pub use partitioner::partition_for_key;

/// A record header: a name and a value, carried beside the record's key and value.
///
/// The producer puts the envelope's id, type and correlation id on every record under
/// [`MESSAGE_ID`](Self::MESSAGE_ID), [`MESSAGE_TYPE`](Self::MESSAGE_TYPE) and
/// [`CORRELATION_ID`](Self::CORRELATION_ID) (UTF-8 values), so consumers that ignore the
/// envelope still see them. Headers need message format v2: the modern and memory
/// transports keep them; the `kafka` crate transport drops them on produce and reads none.
///
/// ```
/// use kafka_sync::transport::Header;
/// let h = Header::new(Header::CORRELATION_ID, "req-42");
/// assert_eq!((&*h.key, h.value.as_slice()), ("correlation-id", &b"req-42"[..]));
/// // Names known when the program is built are not copied; others are owned.
/// let custom = Header::new(format!("trace-{}", 7), "on");
/// assert_eq!(custom.key, "trace-7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header's name: borrowed when it is a name known when the program is built (the
    /// three the producer writes, or any `&'static str`), so writing a record does not
    /// allocate it; owned otherwise.
    pub key: Cow<'static, str>,
    /// The header's value (a header written by another client with a null value reads back
    /// as empty).
    pub value: Vec<u8>,
}

impl Header {
    /// The name of the header holding the message id (a UUID).
    pub const MESSAGE_ID: &'static str = "message-id";
    /// The name of the header holding the message type.
    pub const MESSAGE_TYPE: &'static str = "message-type";
    /// The name of the header holding the correlation id.
    pub const CORRELATION_ID: &'static str = "correlation-id";

    /// A header named `key` with `value`.
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A header name read off the wire: one of the producer's three names is borrowed (no
    /// allocation per consumed record), any other is copied.
    pub(crate) fn name_from_wire(name: &str) -> Cow<'static, str> {
        match name {
            Self::MESSAGE_ID => Cow::Borrowed(Self::MESSAGE_ID),
            Self::MESSAGE_TYPE => Cow::Borrowed(Self::MESSAGE_TYPE),
            Self::CORRELATION_ID => Cow::Borrowed(Self::CORRELATION_ID),
            other => Cow::Owned(other.to_string()),
        }
    }
}

/// A record on its way to a broker, its partition already chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The partition to append to.
    pub partition: i32,
    /// The record key (used by compaction and by readers; partitioning is already done).
    pub key: Option<Vec<u8>>,
    /// The record value.
    pub value: Vec<u8>,
    /// The record headers, in order (dropped by the `kafka` crate transport; on the modern
    /// transport, of several headers with one name only the last is written).
    pub headers: Vec<Header>,
}

/// How a batch is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOptions {
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// Compression codec for this batch.
    pub compression: Compression,
    /// Bound on the whole request, acknowledgement included.
    pub timeout: Duration,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset within the partition.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value (empty if the record had none).
    pub value: Vec<u8>,
    /// Whether the value was null (a tombstone, as log compaction uses them), not merely
    /// empty. Only the modern transport can tell; the others report `false`.
    pub null_value: bool,
    /// Its headers, in order (always empty on the `kafka` crate transport; on the modern
    /// transport, of several headers with one name only the last is kept).
    pub headers: Vec<Header>,
}

/// How a group member subscribes to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// This member's client id (for logs and broker-side tooling).
    pub client_id: String,
    /// Where to start on partitions with no committed offset.
    pub start_offset: StartOffset,
    /// Smallest fetch response to wait for, in bytes.
    pub min_bytes: usize,
    /// Largest fetch response per partition, in bytes.
    pub max_bytes: usize,
}

/// A partition's progress for a group: how far behind the group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// The offset of the next record the broker will write.
    pub high_watermark: i64,
    /// The group's committed offset (the next record to read), if any.
    pub committed: Option<i64>,
}

impl PartitionLag {
    /// Records not yet committed by the group: `high_watermark − committed` (all of them if
    /// nothing was committed).
    pub fn lag(&self) -> i64 {
        (self.high_watermark - self.committed.unwrap_or(0)).max(0)
    }
}

/// A connection to a broker cluster: the seam every producer and consumer goes through.
/// Implementations are shared between threads (`Arc<dyn Transport>`).
pub trait Transport: Send + Sync + fmt::Debug {
    /// A short name for logs: `"memory"`, `"kafka-crate"`.
    fn name(&self) -> &'static str;

    /// Opens a producing session; each writer thread owns one.
    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>>;

    /// Joins `options.group` as a member consuming `options.topic`.
    fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>>;

    /// The number of partitions of `topic` (creating it if the broker auto-creates topics).
    fn partition_count(&self, topic: &str) -> Result<usize>;

    /// A metadata round trip within `timeout`: `Ok` when a broker answered.
    fn health_check(&self, timeout: Duration) -> Result<()>;

    /// Copies group `from`'s committed offsets of `topic` to group `to` unless `to` has
    /// committed any there, and returns how many partitions were copied; `to` must have no
    /// members then (its offsets are committed outside a generation). The consumer's retry
    /// reader uses it once when it starts, so its retry group of its own begins where the
    /// group reading the retry topic before stopped. Transports that cannot (memory) fail
    /// with [`ErrorKind::UnsupportedBroker`](crate::ErrorKind::UnsupportedBroker).
    fn copy_group_offsets(&self, from: &str, to: &str, topic: &str) -> Result<usize> {
        let _ = (from, to);
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedBroker,
            format!(
                "the {} transport cannot copy committed offsets of {topic}",
                self.name()
            ),
        )
        .with_topic(topic))
    }

    /// Creates `topic` with `partitions` partitions and `replication` replicas (-1 for
    /// either: the broker's default) unless it exists, and returns its partition count (an
    /// existing topic is left as it is). Transports that cannot create topics (the `kafka`
    /// crate speaks no CreateTopics) fail with [`ErrorKind::UnsupportedBroker`](crate::ErrorKind::UnsupportedBroker).
    fn ensure_topic(&self, topic: &str, partitions: i32, replication: i16) -> Result<usize> {
        let _ = (partitions, replication);
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedBroker,
            format!(
                "the {} transport cannot create topic {topic}: create it with the broker's tools",
                self.name()
            ),
        )
        .with_topic(topic))
    }
}

/// One thread's producing connection.
pub trait ProducerSession: Send {
    /// The number of partitions of `topic`, from cached metadata when possible.
    fn partition_count(&mut self, topic: &str) -> Result<usize>;

    /// Appends `records` to `topic`, returning one result per record, in order. A failure
    /// of the whole request is reported on every record. Errors carry topic and partition.
    fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
    ) -> Vec<Result<Delivery>>;

    /// Forgets cached metadata, so the next call asks the broker again (after not-leader or
    /// connection errors).
    fn refresh_metadata(&mut self) {}
}

/// The header a transport puts on the stand-in record of a record batch it could not decode
/// (its value is the batch's bytes as fetched, the header's value the reason); the consumer
/// dead-letters it and goes on past the batch.
pub(crate) const UNDECODABLE_BATCH: &str = "kafka-sync-undecodable-batch";

/// Takes a group member out of its group from another thread, while the member's own
/// consumer thread is busy (a handler call past its timeout): the member leaves (or stops
/// heartbeating) so its partitions move to the other members; its next poll joins again as
/// a new member, reading from the group's commits.
pub trait GroupExit: Send + Sync {
    /// Leaves the group now; `reason` is for the broker's and our logs.
    fn leave(&self, reason: &str);
}

/// A group member's view of one topic.
pub trait Subscription: Send {
    /// The partitions this member currently reads.
    fn assignment(&self) -> Vec<i32>;

    /// Returns the next records of the assigned partitions, waiting up to `max_wait` for at
    /// least one. Each partition's records come in offset order; an empty vector means
    /// nothing arrived in time.
    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>>;

    /// Commits, for each `(partition, next_offset)`, that every record before `next_offset`
    /// has ended.
    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()>;

    /// High watermark and committed offset of each assigned partition.
    fn lag(&mut self) -> Result<Vec<PartitionLag>>;

    /// Leaves the group; the subscription is not used afterwards.
    fn close(&mut self) -> Result<()>;

    /// Whether the group is rebalancing and this member gives up its partitions at its next
    /// [`poll`](Self::poll): the moment to [`commit`](Self::commit) what has been handled, so
    /// the partitions' next owners do not read it again. Always `false` for transports
    /// without group membership (the default).
    fn rebalance_pending(&self) -> bool {
        false
    }

    /// Stops fetching `partitions` (they stay assigned; their positions are kept) until
    /// [`resume`](Self::resume)d: the consumer pauses a partition while it still holds
    /// records of it, or while it waits for a retry entry's due time, so the others go on.
    /// The default does nothing (polls then return records of paused partitions too).
    fn pause(&mut self, partitions: &[i32]) {
        let _ = partitions;
    }

    /// Fetches `partitions` again after a [`pause`](Self::pause).
    fn resume(&mut self, partitions: &[i32]) {
        let _ = partitions;
    }

    /// Partitions whose reading restarted from the group's committed offset since the last
    /// call, though they stayed assigned (the member rejoined the group as a new member):
    /// records of them the caller still holds will be read again. Default: none.
    fn take_restarted(&mut self) -> Vec<i32> {
        Vec::new()
    }

    /// A handle another thread can take this member out of its group with (see
    /// [`GroupExit`]). Default: `None` (no group membership).
    fn group_exit(&self) -> Option<Arc<dyn GroupExit>> {
        None
    }

    /// A way for another thread to measure the group's lag on this topic while the
    /// member's own thread is busy (a long handler call), without joining the group.
    /// Default: `None`.
    fn lag_probe(&self) -> Option<Box<dyn LagProbe>> {
        None
    }
}

/// Measures a group's lag on one topic from any thread (see [`Subscription::lag_probe`]).
pub trait LagProbe: Send {
    /// High watermark and committed offset of each of `partitions`.
    fn lag(&mut self, partitions: &[i32]) -> Result<Vec<PartitionLag>>;
}

/// The transport `config` selects: a [`ModernTransport`] or [`KafkaCrateTransport`] over
/// `config.brokers`, or a new [`MemoryTransport`] when [`TransportKind::Memory`] is named.
/// Reached through [`Kafka::connect`](crate::Kafka::connect).
pub(crate) fn connect(config: &Config) -> Result<Arc<dyn Transport>> {
    config.validate()?;
    Ok(match config.transport {
        TransportKind::Memory => Arc::new(MemoryTransport::new()),
        TransportKind::KafkaCrate => Arc::new(KafkaCrateTransport::new(config)?),
        TransportKind::Modern => Arc::new(ModernTransport::new(config)?),
    })
}
