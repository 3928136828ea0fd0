//! Typed configuration: one [`Config`] with a [`ProducerConfig`] and a [`ConsumerConfig`]
//! section. Every setting is a public field with its default in its doc; start from
//! [`Config::default`] (a real broker at `localhost:9092`, modern transport) or
//! [`Config::from_env`] and change fields. [`Kafka::connect`](crate::Kafka::connect) checks
//! the whole config once ([`Config::validate`]).
//!
//! Defaults follow the Go package this crate ports (kafka-go's writer and reader settings):
//! batches of 100 messages or 10 ms, acks from all in-sync replicas, fetches of up to 10 MB
//! waiting at most 1 s (answered as soon as one record is there, like the Java client's
//! `fetch.min.bytes` of 1, rather than kafka-go's 10 KB).
//!
//! ```
//! use std::time::Duration;
//! use kafka_sync::{Compression, Config};
//!
//! let mut config = Config::default();
//! config.brokers = vec!["127.0.0.1:9092".into()];
//! config.client_id = "url-manager".into();
//! config.producer.batch_size = 500;
//! config.producer.batch_timeout = Duration::from_millis(5);
//! config.producer.compression = Compression::Snappy;
//! config.validate().unwrap();
//!
//! config.producer.batch_size = 0;
//! let err = config.validate().unwrap_err();
//! assert!(err.to_string().contains("producer.batch_size"));
//! ```

mod env;
mod security;
mod validate;

use std::time::Duration;

use crate::retry::RetryPolicy;

pub use security::{Sasl, SaslMechanism, Security, SecurityProtocol, TlsConfig};
pub(crate) use validate::validate_topic_name;

/// Which transport carries messages to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// The in-process broker: no network, for demos and tests. Never a default: chosen only
    /// by name (`TransportKind::Memory`, `KAFKA_TRANSPORT=memory`, or
    /// [`Kafka::in_memory`](crate::Kafka::in_memory)); messages vanish when the process exits.
    Memory,
    /// The `kafka` crate (Kafka protocol v0 requests): brokers up to Kafka 3.9.
    KafkaCrate,
    /// Kafka's current protocol, negotiated per broker: brokers from Kafka 2.1 to 4.x, with
    /// consumer groups that rebalance (see
    /// [`ModernTransport`](crate::transport::ModernTransport)). The default.
    Modern,
}

/// How the group leader spreads partitions over members.
///
/// Each member offers both strategies, its preferred one first; the coordinator picks one
/// every member offers (a group shared with Java consumers, whose default list is `range`
/// then `cooperative-sticky`, ends up on `range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Assignor {
    /// Per topic, consecutive ranges of partitions to members sorted by id; the first
    /// `partitions % members` members get one more. The default (as in the Java client).
    #[default]
    Range,
    /// All partitions, sorted, dealt to members in turn.
    RoundRobin,
}

impl Assignor {
    /// The strategy's name in the group protocol.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// The strategy called `name`, if we implement it.
    pub fn from_protocol_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }
}

/// How many broker acknowledgements a produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acks {
    /// Fire and forget: no acknowledgement (messages can be lost).
    None,
    /// The partition leader wrote the message.
    One,
    /// Every in-sync replica wrote the message. The default.
    All,
}

/// Compression applied to produced batches.
///
/// Every variant exists in every build, so a `match` on it compiles whatever features are
/// on. [`Lz4`](Self::Lz4) and [`Zstd`](Self::Zstd) need the crate built with the cargo
/// feature of the same name (they compile C code) and the modern or memory transport:
/// [`Config::validate`] rejects them otherwise with an
/// [`ErrorKind::Config`](crate::ErrorKind::Config) error naming the feature or the
/// transport ([`Compression::is_available`] tells in advance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression. The default.
    None,
    /// gzip: smallest output, most CPU.
    Gzip,
    /// snappy: fast, moderate ratio.
    Snappy,
    /// lz4: fast, moderate ratio. Needs the `lz4` cargo feature.
    Lz4,
    /// zstd: ratio close to gzip at a fraction of its CPU. Needs the `zstd` cargo feature.
    Zstd,
}

impl Compression {
    /// The cargo feature this codec needs, if any: `Some("lz4")`, `Some("zstd")`.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Compression::Lz4 => Some("lz4"),
            Compression::Zstd => Some("zstd"),
            Compression::None | Compression::Gzip | Compression::Snappy => None,
        }
    }

    /// Whether this build can produce with the codec (its cargo feature, if any, is on).
    ///
    /// ```
    /// use kafka_sync::Compression;
    /// assert!(Compression::Snappy.is_available());
    /// assert_eq!(Compression::Zstd.is_available(), cfg!(feature = "zstd"));
    /// ```
    pub fn is_available(self) -> bool {
        match self {
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(feature = "zstd"),
            Compression::None | Compression::Gzip | Compression::Snappy => true,
        }
    }

    /// A [`ErrorKind::Config`](crate::ErrorKind::Config) error on `field` when this build
    /// cannot produce with the codec.
    pub(crate) fn check_available(self, field: &'static str) -> crate::Result<()> {
        match self.feature() {
            Some(feature) if !self.is_available() => Err(crate::Error::config(
                field,
                format!("{self:?}"),
                format!("{self:?} compression needs kafka-sync built with the `{feature}` cargo feature"),
            )),
            _ => Ok(()),
        }
    }
}

/// Where a consumer group with no committed offset starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartOffset {
    /// The oldest message still stored. The default: nothing produced before the group
    /// first ran is missed.
    Earliest,
    /// Only messages produced after the group joined.
    Latest,
}

/// The whole configuration: start from [`Config::default`] or [`Config::from_env`], change
/// the fields that differ, hand it to [`Kafka::connect`](crate::Kafka::connect) (which calls
/// [`Config::validate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Bootstrap brokers as `host:port`. Default: `["localhost:9092"]`.
    pub brokers: Vec<String>,
    /// Client id sent to the broker and used in thread names. Default: `"kafka-sync"`.
    pub client_id: String,
    /// Consumer group id. Default: `"kafka-sync"`.
    pub group_id: String,
    /// The service name stamped on messages the library writes (retries, dead letters).
    /// Default: `"kafka-sync"`.
    pub service_name: String,
    /// The transport. Default: [`TransportKind::Modern`] (Kafka 2.1 to 4.x, real consumer
    /// groups). [`TransportKind::Memory`] only when asked for by name, and then `brokers`
    /// must stay at its default (a config naming brokers for the in-memory transport is an
    /// error naming both fields). Env: `KAFKA_TRANSPORT` (`modern`, `kafka-crate`, `memory`).
    pub transport: TransportKind,
    /// Bound on opening a TCP connection to a broker. Default: 5 s.
    pub connect_timeout: Duration,
    /// Bound on one request to a broker, acknowledgement wait included. Default: 30 s.
    pub request_timeout: Duration,
    /// Cached topic metadata (partitions, leaders) older than this is asked for again, so
    /// partitions added to a topic are produced to and consumed (modern transport).
    /// Default: 5 min (the Java client's `metadata.max.age.ms`).
    pub metadata_max_age: Duration,
    /// Largest broker answer accepted, checked against the size the answer announces before
    /// anything is allocated; a bigger one breaks the connection with an error naming this
    /// field (modern transport). Default: 100 MB (104,857,600 bytes).
    pub max_response_bytes: usize,
    /// Producer settings.
    pub producer: ProducerConfig,
    /// Consumer settings.
    pub consumer: ConsumerConfig,
    /// TLS and SASL (modern transport only). Default: plain TCP, no authentication.
    pub security: Security,
}

/// Producer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    /// Most messages in one partition's batch (a produce request carries a batch for each
    /// ready partition its broker leads). Default: 10,000, so that with
    /// common message sizes `batch_bytes` is what ends a batch, as in the Java client
    /// (whose batches are bounded by bytes only). Batches of 100 cost a round trip per
    /// 100 messages and held `send_async` to half the Java producer's rate.
    pub batch_size: usize,
    /// Most bytes in one partition's batch: keys, values and headers, plus each record's
    /// framing and the batch header, so a full batch stays under the broker's limit; a
    /// message bigger than this goes alone. A batch the broker still refuses as too large is split
    /// and sent again before any message fails. Default: 1 MB (1,000,000 bytes), under
    /// Kafka's default `message.max.bytes` (1,048,588).
    pub batch_bytes: usize,
    /// Longest a message waits for its batch to fill. A synchronous caller never waits this
    /// long when nothing else is queued: its batch ships at once. Default: 10 ms.
    pub batch_timeout: Duration,
    /// Acknowledgements required. Default: [`Acks::All`].
    pub acks: Acks,
    /// The idempotent producer (modern transport): the broker recognises a batch sent again
    /// after its answer was lost and writes it once, so retries do not duplicate. Needs
    /// `acks` = [`Acks::All`]. The `kafka` crate transport cannot do it and ignores it.
    /// Default: `true` (like the Java client since Kafka 3.0). Env:
    /// `KAFKA_ENABLE_IDEMPOTENCE` (`true` / `false`).
    pub idempotence: bool,
    /// Messages a topic's writer queue holds; a full queue blocks `send` (up to
    /// `enqueue_timeout`) and fails `try_send`. Default: 10,000.
    pub queue_capacity: usize,
    /// Bytes (key, encoded envelope and headers) a topic's writer queue holds, besides
    /// `queue_capacity` messages: a record that does not fit blocks `send` (up to
    /// `enqueue_timeout`) and fails `try_send` with `QueueFull`, so memory stays bounded
    /// with large messages. A record alone in the queue is always let in. Default: 32 MB
    /// (33,554,432 bytes, the Java client's `buffer.memory`). Env: `KAFKA_BUFFER_BYTES`.
    pub buffer_bytes: usize,
    /// Longest `send` blocks on a full queue before failing with a timeout. Default: 30 s.
    pub enqueue_timeout: Duration,
    /// Compression codec. Default: [`Compression::None`]. `Lz4` and `Zstd` need their
    /// cargo feature and the modern (or memory) transport.
    pub compression: Compression,
    /// Compress only batches of more than this many bytes (0: always). Default: 0.
    pub compression_threshold: usize,
    /// Largest message accepted (key, encoded envelope and headers); a bigger one fails
    /// alone with [`ErrorKind::MessageTooLarge`](crate::ErrorKind::MessageTooLarge) naming
    /// its size and this limit. Default: 1 MB (1,000,000 bytes), like Kafka's own limit.
    pub max_message_bytes: usize,
    /// Spacing of retries after connection and retriable broker errors (leader elections,
    /// not enough replicas, timeouts). A message is retried until its `delivery_timeout`
    /// runs out (or `max_attempts` / `max_elapsed`, if set lower). Default: 100 ms doubling
    /// to 1 s, unlimited attempts, `max_elapsed` 120 s.
    pub retry: RetryPolicy,
    /// Longest a message may take from `send` to its answer, queueing and retries included;
    /// also bounds `flush` and `close`. A message whose time runs out while queued or
    /// between attempts fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) and is
    /// never sent afterwards; an attempt in flight is cut to the time left. Must be at least
    /// `request_timeout + batch_timeout`. Default: 120 s (the Java client's
    /// `delivery.timeout.ms`).
    pub delivery_timeout: Duration,
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    /// Smallest response a fetch waits for (bytes): 1 answers as soon as any record is
    /// there (lowest latency); more trades latency for fewer, larger fetches. Default: 1
    /// (the Java client's `fetch.min.bytes`).
    pub min_bytes: usize,
    /// Largest response a fetch returns per partition (bytes); also bounds the largest
    /// message that can be read. Default: 10 MB (10,000,000).
    pub max_bytes: usize,
    /// Longest a fetch waits for `min_bytes`. Default: 1 s.
    pub max_wait: Duration,
    /// Where a group with no committed offset starts. Default: [`StartOffset::Earliest`].
    pub start_offset: StartOffset,
    /// In-place retries of a handler's retriable errors. Default: 100 ms doubling to 2 s,
    /// 3 attempts, 10 s in all.
    pub retry: RetryPolicy,
    /// The dead-letter topic. Default: `"dead-letter"`.
    pub dead_letter_topic: String,
    /// The retry topic. Default: `"retry"`.
    pub retry_topic: String,
    /// Whether a message whose in-place retries ran out is parked on `retry_topic` for a
    /// later attempt (else it is dead-lettered). When on, [`Consumer::consume`](crate::Consumer::consume)
    /// also consumes `retry_topic` (a thread of its own) if it is not among the topics given.
    /// Default: `true` (the seed's non-blocking retries: a failing message never holds up
    /// the healthy ones). Env: `KAFKA_RETRY_TOPIC_ENABLED`.
    pub retry_topic_enabled: bool,
    /// Most records a consumer thread takes from one poll before it looks at the group
    /// again (rebalances are also seen between any two records). Default: 500, as Kafka's
    /// `max.poll.records`. Env: `KAFKA_MAX_POLL_RECORDS`.
    pub max_poll_records: usize,
    /// Whether each consumer group parks its messages on a retry topic of its own,
    /// `<retry_topic>.<group_id>` (characters a topic name cannot hold become `_`), instead
    /// of the shared `retry_topic`. Shared (the default, the seed's design): one topic for
    /// every group; each group reads every entry and skips other groups' entries by their
    /// `retry-group` header without decoding them. Per group: no group reads another's
    /// entries (for deployments with many groups), at the cost of a topic per group.
    /// Default: `false`. Env: `KAFKA_RETRY_TOPIC_PER_GROUP`.
    pub retry_topic_per_group: bool,
    /// Whether each consumed topic's dead letters go to a topic of its own,
    /// `<topic>.<dead_letter_topic>` (Spring's `<topic>-dlt`), instead of the shared
    /// `dead_letter_topic`. Default: `false`. Env: `KAFKA_DEAD_LETTER_TOPIC_PER_TOPIC`.
    pub dead_letter_topic_per_topic: bool,
    /// Static membership (KIP-345, modern transport, Kafka 2.3+): this process's stable
    /// identity in the group. Each consumed topic's member joins as `<id>-<topic>`; a member
    /// that restarts within `session_timeout` gets its partitions back without a rebalance,
    /// and closing does not leave the group (its partitions wait for it until the session
    /// expires). Give every process its own id. Default: `None` (dynamic members).
    /// Env: `KAFKA_GROUP_INSTANCE_ID`.
    pub group_instance_id: Option<String>,
    /// Which records of transactional producers are read (modern transport; the others
    /// read with fetch versions that know no transactions). Default:
    /// [`IsolationLevel::ReadCommitted`]. Env: `KAFKA_ISOLATION_LEVEL`
    /// (`read_committed`, `read_uncommitted`).
    pub isolation_level: IsolationLevel,
    /// Longest a consumer thread may stay away from its poll loop (one handler call)
    /// before its member leaves the group, so its partitions move to a member that works
    /// (reported in health as `stuck`). Default: 5 min, as Kafka's `max.poll.interval.ms`.
    /// Env: `KAFKA_MAX_POLL_INTERVAL_MS`.
    pub max_poll_interval: Duration,
    /// Most messages a consumer thread keeps in memory waiting for an in-place retry (each
    /// waits without holding up the others); when full, the thread waits for the earliest
    /// one. Default: 5,000 (about 1.5 KB each for a 230-byte envelope: at most ~8 MB; at
    /// 300 ms of in-place backoff that is 16,000 failing messages a second). The same bound
    /// applies to retry-topic entries not yet due that a thread sets aside while it reads on
    /// (past it, a not-due entry holds its partition until its time). Env:
    /// `KAFKA_MAX_WAITING_RETRIES`.
    pub max_waiting_retries: usize,
    /// Longest a retry-topic entry is held back, and the cap of the doubling
    /// `retry_topic_delay`: an entry due later than this from now (a skewed or crafted
    /// clock) is written again to the retry topic due after this delay (logged at warn,
    /// counted as `rescheduled`), so the clamp survives restarts. Default: 1 h.
    /// Env: `KAFKA_RETRY_TOPIC_MAX_DELAY_MS`.
    pub retry_topic_max_delay: Duration,
    /// How long a retry or dead-letter write may keep failing (retried with backoff, other
    /// messages go on meanwhile) before the next fallback is tried: retry topic, then the
    /// dead-letter record, then the original bytes with the error in headers; if all fail
    /// the partition stops (health `down`, nothing committed past the message) and the
    /// writes are tried again slowly. Default: 30 s. Env: `KAFKA_DIVERT_TIMEOUT_MS`.
    pub divert_timeout: Duration,
    /// How long a message parked on the retry topic for the first time waits before it is
    /// handled again; each later round waits twice as long as the one before, at most
    /// `retry_topic_max_delay` (Spring's exponential retry topics, on one topic: the due
    /// time travels with the entry). Default: 30 s.
    pub retry_topic_delay: Duration,
    /// Most handler attempts for one message over all rounds (in place and from the retry
    /// topic); past it the message is dead-lettered as exhausted. Default: 10.
    pub max_total_attempts: u32,
    /// Bound on one handler call: a call still running after it counts as a retriable
    /// failure (the handler runs on a helper thread so the consumer is not held up; the
    /// late call is left to finish on its own). `None` runs handlers on the consumer thread
    /// itself, unbounded and a little faster. Default: `Some(30 s)`.
    pub handler_timeout: Option<Duration>,
    /// How often ended offsets are committed: `Duration::ZERO` commits after every message;
    /// otherwise at most this often, whenever a poll finds nothing new, before a rebalance,
    /// and on shutdown (so at most one interval of handled messages is handled again after a
    /// crash). Default: 100 ms — a commit is a broker round trip (≈0.5 ms on Kafka 3.9,
    /// ≈7 ms on Kafka 4, whose coordinator batches its writes), so committing after every
    /// message caps a consumer at a few hundred to a few thousand messages a second.
    pub commit_interval: Duration,
    /// What happens to a message whose type has no handler. Default:
    /// [`UnknownTypePolicy::DeadLetter`].
    pub unknown_type: UnknownTypePolicy,
    /// Message ids the default idempotency store remembers (0 turns duplicate detection
    /// off). Default: 100,000.
    pub dedupe_capacity: usize,
    /// How long the default idempotency store remembers a handled id. Default: 1 h.
    pub dedupe_max_age: Duration,
    /// Bound on the graceful stop a dropped consumer performs. Default: 30 s.
    pub shutdown_timeout: Duration,
    /// Group membership (modern transport): the coordinator drops a member it has not heard
    /// from for this long (the broker accepts 6 s to 5 min by default). Default: 10 s. Env:
    /// `KAFKA_SESSION_TIMEOUT_MS`.
    pub session_timeout: Duration,
    /// How often a member heartbeats (modern transport); at most a third of
    /// `session_timeout`. Default: 1 s. Env: `KAFKA_HEARTBEAT_INTERVAL_MS`.
    pub heartbeat_interval: Duration,
    /// Longest a rebalance waits for every member to rejoin (modern transport; the memory
    /// broker when set with `MemoryTransport::set_group_timeouts`). Default: 5 min, as
    /// `max_poll_interval` (the Java client sends `max.poll.interval.ms`): a member busy in
    /// a handler call within `handler_timeout` is waited for, ends the call, commits and
    /// rejoins, instead of being dropped from the generation while its message is handled
    /// again elsewhere. Members that crash are dropped after `session_timeout`, stuck ones
    /// leave through the watchdog. Env: `KAFKA_REBALANCE_TIMEOUT_MS`.
    pub rebalance_timeout: Duration,
    /// The assignment strategy this member offers first (both are always offered; modern
    /// transport). Default: [`Assignor::Range`], as the Java client. Env: `KAFKA_ASSIGNOR`
    /// (`range`, `roundrobin`).
    pub assignor: Assignor,
}

/// Which records of transactional producers a consumer reads (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Only records of committed transactions (and non-transactional ones), up to the last
    /// stable offset. The default, as Spring Kafka's; Kafka's Java consumer defaults to
    /// `read_uncommitted`.
    ReadCommitted,
    /// Every record, aborted transactions included.
    ReadUncommitted,
}

/// What the consumer does with a message whose type has no registered handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownTypePolicy {
    /// Write it to the dead-letter topic with kind `unknown_type`. The default: nothing is
    /// skipped without a record.
    DeadLetter,
    /// Log a warning, count it as skipped and commit past it.
    Skip,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            brokers: vec![DEFAULT_BROKER.to_string()],
            client_id: "kafka-sync".to_string(),
            group_id: "kafka-sync".to_string(),
            service_name: "kafka-sync".to_string(),
            transport: TransportKind::Modern,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            metadata_max_age: Duration::from_secs(300),
            max_response_bytes: 104_857_600,
            producer: ProducerConfig::default(),
            consumer: ConsumerConfig::default(),
            security: Security::default(),
        }
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_size: 10_000,
            batch_bytes: 1_000_000,
            batch_timeout: Duration::from_millis(10),
            acks: Acks::All,
            idempotence: true,
            queue_capacity: 10_000,
            buffer_bytes: 32 * 1024 * 1024,
            enqueue_timeout: Duration::from_secs(30),
            compression: Compression::None,
            compression_threshold: 0,
            max_message_bytes: 1_000_000,
            retry: RetryPolicy {
                max_interval: Duration::from_secs(1),
                max_elapsed: Duration::from_secs(120),
                max_attempts: u32::MAX,
                ..RetryPolicy::default()
            },
            delivery_timeout: Duration::from_secs(120),
        }
    }
}

impl ConsumerConfig {
    /// Where dead letters of records read from `topic` go: `dead_letter_topic`, or
    /// `<topic>.<dead_letter_topic>` with
    /// [`dead_letter_topic_per_topic`](Self::dead_letter_topic_per_topic).
    ///
    /// ```
    /// let mut c = kafka_sync::ConsumerConfig::default();
    /// assert_eq!(c.dead_letter_topic_of("orders"), "dead-letter");
    /// c.dead_letter_topic_per_topic = true;
    /// assert_eq!(c.dead_letter_topic_of("orders"), "orders.dead-letter");
    /// assert!(c.is_dead_letter_topic("orders.dead-letter"));
    /// ```
    pub fn dead_letter_topic_of(&self, topic: &str) -> String {
        if !self.dead_letter_topic_per_topic {
            return self.dead_letter_topic.clone();
        }
        let mut name = format!("{topic}.{}", self.dead_letter_topic);
        name.truncate(249);
        name
    }

    /// Whether `topic` is a dead-letter topic (the shared one, or with
    /// [`dead_letter_topic_per_topic`](Self::dead_letter_topic_per_topic) any
    /// `<topic>.<dead_letter_topic>`): only a dead-letter handler consumes it.
    pub fn is_dead_letter_topic(&self, topic: &str) -> bool {
        topic == self.dead_letter_topic
            || (self.dead_letter_topic_per_topic
                && topic.ends_with(&format!(".{}", self.dead_letter_topic)))
    }

    /// The retry topic members of `group` park on and read: `retry_topic`, or
    /// `<retry_topic>.<group>` with [`retry_topic_per_group`](Self::retry_topic_per_group).
    ///
    /// ```
    /// let mut c = kafka_sync::ConsumerConfig::default();
    /// assert_eq!(c.retry_topic_of("scrapers"), "retry");
    /// c.retry_topic_per_group = true;
    /// assert_eq!(c.retry_topic_of("scrapers/eu"), "retry.scrapers_eu");
    /// ```
    pub fn retry_topic_of(&self, group: &str) -> String {
        if !self.retry_topic_per_group {
            return self.retry_topic.clone();
        }
        let safe: String = group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut topic = format!("{}.{safe}", self.retry_topic);
        topic.truncate(249);
        topic
    }

    /// The topics whose retry entries a consumer of `group` consuming `topics` takes back
    /// from the retry topic: `topics` without the retry topic and the dead-letter topics,
    /// sorted. Empty (a consumer of the retry topic alone) takes every entry of its group.
    pub fn retry_origins<S: AsRef<str>>(&self, group: &str, topics: &[S]) -> Vec<String> {
        let retry = self.retry_topic_of(group);
        let mut origins: Vec<String> = topics
            .iter()
            .map(|t| t.as_ref().to_string())
            .filter(|t| *t != retry && !self.is_dead_letter_topic(t))
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    /// The consumer group a consumer of `group` consuming `topics` reads the retry topic
    /// under: `<group>.retry.<h>`, `h` 12 hex digits of a stable hash (FNV-1a, 64 bits) of
    /// its [`retry_origins`](Self::retry_origins). Processes of one service (same group,
    /// same topics) share it and split the retry topic's partitions; consumers of other
    /// topics in the same group each read every entry under a group of their own and take
    /// only the entries parked from their topics, so an entry always comes back to a
    /// consumer that has its handler.
    ///
    /// ```
    /// let c = kafka_sync::ConsumerConfig::default();
    /// let a = c.retry_group_of("scrapers", &["tasks", "retry"]);
    /// assert!(a.starts_with("scrapers.retry."));
    /// assert_eq!(a, c.retry_group_of("scrapers", &["tasks"]));
    /// assert_ne!(a, c.retry_group_of("scrapers", &["results"]));
    /// // Stable across releases and platforms (a changed name would start a new group).
    /// assert_eq!(
    ///     c.retry_group_of("pipeline-scraper", &["scraping-tasks"]),
    ///     "pipeline-scraper.retry.41c60b5f790a"
    /// );
    /// ```
    pub fn retry_group_of<S: AsRef<str>>(&self, group: &str, topics: &[S]) -> String {
        // FNV-1a: the same on every platform and release (std's hasher promises neither).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for topic in self.retry_origins(group, topics) {
            for byte in topic.bytes().chain(std::iter::once(b'\n')) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{group}.retry.{:012x}", hash >> 16)
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            min_bytes: 1,
            max_bytes: 10_000_000,
            max_wait: Duration::from_secs(1),
            start_offset: StartOffset::Earliest,
            retry: RetryPolicy {
                max_attempts: 3,
                max_elapsed: Duration::from_secs(10),
                ..RetryPolicy::default()
            },
            dead_letter_topic: crate::domain::topics::DEAD_LETTER.to_string(),
            retry_topic: crate::domain::topics::RETRY.to_string(),
            retry_topic_enabled: true,
            max_poll_records: 500,
            retry_topic_per_group: false,
            dead_letter_topic_per_topic: false,
            group_instance_id: None,
            isolation_level: IsolationLevel::ReadCommitted,
            max_poll_interval: Duration::from_secs(300),
            max_waiting_retries: 5_000,
            retry_topic_max_delay: Duration::from_secs(3600),
            divert_timeout: Duration::from_secs(30),
            retry_topic_delay: Duration::from_secs(30),
            max_total_attempts: 10,
            handler_timeout: Some(Duration::from_secs(30)),
            commit_interval: Duration::from_millis(100),
            unknown_type: UnknownTypePolicy::DeadLetter,
            dedupe_capacity: 100_000,
            dedupe_max_age: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            rebalance_timeout: Duration::from_secs(300),
            assignor: Assignor::Range,
        }
    }
}

impl Config {
    /// The defaults on the in-memory transport (no brokers: nothing leaves the process).
    /// Used by [`Kafka::in_memory`](crate::Kafka::in_memory), demos and tests.
    pub fn in_memory() -> Config {
        Config {
            transport: TransportKind::Memory,
            ..Config::default()
        }
    }

    /// Whether `brokers` is still the default list (`["localhost:9092"]`).
    pub(crate) fn brokers_are_default(&self) -> bool {
        self.brokers.len() == 1 && self.brokers[0] == DEFAULT_BROKER
    }
}

/// The broker every Kafka client targets when none is named.
pub(crate) const DEFAULT_BROKER: &str = "localhost:9092";
