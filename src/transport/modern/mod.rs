//! [`ModernTransport`]: Kafka's current wire protocol (brokers from Kafka 2.1 to 4.x) behind
//! the [`Transport`] seam, with real consumer-group membership. Blocking, on
//! `std::net::TcpStream`, no async runtime; the `kafka-protocol` crate supplies the request,
//! response and record-batch codecs generated from Kafka's schemas, and this module is the
//! client around them. It is the only place in the crate that names `kafka_protocol` types.
//!
//! | file | concept |
//! |---|---|
//! | `conn.rs` | one TCP connection: framing, correlation ids, deadlines, ApiVersions on connect |
//! | `api.rs` | version negotiation: the versions we speak, the highest common one per broker |
//! | `cluster.rs` | metadata and routing: leaders, one connection per broker, refresh |
//! | `records.rs` | record batches v2: encode per partition, decode fetch answers |
//! | `produce.rs` | the producer session |
//! | `idempotence.rs` | the idempotent producer's producer id and sequence numbers |
//! | `fetch.rs` | one fetch round over every leader at once |
//! | `offsets.rs` | ListOffsets, OffsetFetch, OffsetCommit |
//! | `coordinator.rs` | FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup on the wire |
//! | `assign.rs` | range and round-robin assignment, the consumer protocol's bytes |
//! | `group.rs` | a member's join / rejoin / leave logic |
//! | `heartbeat.rs` | the heartbeat thread |
//! | `subscription.rs` | the subscription: poll, commit, lag, close |
//! | `admin.rs` | CreateTopics |
//! | `errors.rs` | error codes and I/O failures as [`Error`] |
//! | `stream.rs`, `tls.rs`, `sasl.rs`, `scram.rs` | security: plain or TLS (rustls) streams, SASL PLAIN and SCRAM |
//! | `broker_tests.rs` | a member that crashes without leaving (needs Kafka 4.1.2 on 9094) |
//!
//! # Why this route
//!
//! Issue 4 named two candidates: (a) the `kafka-protocol` crate's codecs under a small
//! blocking client of our own, and (b) `rustfs-kafka`, a young synchronous fork of the `kafka`
//! crate rebuilt on `kafka-protocol`. We took (a):
//!
//! - The hard part is the same either way. (b)'s own notes leave heartbeats and rebalance
//!   scheduling to the caller, so the group membership (join, sync, assignment, heartbeat
//!   thread, rejoin, leave) is ours to write and test on both routes. What (b) would add
//!   over (a) is connection handling, metadata and produce/fetch plumbing, which are the
//!   easy, well-specified parts (see the line counts below).
//! - (a) keeps every wait under our control: every read and write has a deadline, every
//!   version is negotiated per broker, every error maps to our [`ErrorKind`] with the
//!   broker's code name. (b) carries the `kafka` crate's API shape and its timeout model.
//! - `kafka-protocol` is maintained, generated from Kafka's own schemas (so new broker
//!   versions are a dependency bump), and with `client,gzip,snappy` needs no C compiler.
//!   (b) was not built or measured here; it is not on this machine's package lists.
//!
//! What passed, measured on this machine (2 vCPU, Apache Kafka 3.9.1 and 4.1.2 from the
//! project's harness on loopback; `tests/modern_wire.rs`, `tests/modern_groups.rs`):
//!
//! - Both brokers: produce and read back byte-equal with none, gzip and snappy; offsets
//!   `0..n` per partition without gaps; start offsets earliest / latest; commit, leave and
//!   resume at the commit; lag; CreateTopics (new, existing, bad replication); auto-created
//!   topics; unknown partitions; acks none.
//! - Both brokers: 3 members on a 6-partition topic own 2 partitions each (within 0.1–1 s
//!   of starting); one leaves, the other two own all 6 about 0.5 s later (one heartbeat
//!   interval); every record handled, none by two members at once, none twice in practice.
//! - Kafka 4.1: a member that crashes (no LeaveGroup, no more heartbeats) is replaced
//!   when the session timeout (6 s) expires, and a new member brings the group back to two
//!   partitions each.
//! - Both brokers, idempotent producer: a batch whose answer was lost (a timeout after the
//!   broker wrote it) sent again comes back with its first offsets and is stored once.
//! - Kafka 3.9: what the modern transport writes the `kafka` crate transport reads, and the
//!   reverse.
//! - The project's producer and consumer broker suites (`tests/producer_kafka.rs`,
//!   `tests/consumer_kafka.rs`, `tests/consumer_kill.rs`) run on this transport against
//!   both 3.9.1 and 4.1.2 in `make test` (`tests/matrix.sh`), read back by Kafka's own Java
//!   consumer: all pass. Kafka 4's group coordinator takes about 7 ms per OffsetCommit (it
//!   lingers to batch its log appends; 0.2–0.8 ms on 3.9), which is why the consumer
//!   commits every 100 ms by default rather than after every message.
//! - Throughput, one session, debug build, records of 200 bytes in batches of 500: produce
//!   220–260 k records/s on 3.9 (the `kafka` crate transport: 50–65 k in the same run),
//!   110–270 k on 4.1; reading by one member 360–450 k records/s on 3.9 (the `kafka` crate
//!   transport: 75–90 k), 340–390 k on 4.1.
//! - Lines we own: about 3,200 lines of code (without comments, blank lines and unit tests)
//!   in 16 files; the group membership (coordinator, group, heartbeat, assignment,
//!   subscription) is about 1,100 of them, the idempotent producer 120, the wire plumbing
//!   the rest.
//!
//! [`Transport`]: super::Transport
//! [`Error`]: crate::Error
//! [`ErrorKind`]: crate::ErrorKind

mod admin;
mod api;
mod assign;
#[cfg(test)]
mod broker_tests;
mod cluster;
mod conn;
mod coordinator;
mod errors;
mod faults;
mod fetch;
mod group;
mod heartbeat;
mod idempotence;
mod inspect;
mod offsets;
mod produce;
mod produce_answer;
mod records;
#[cfg(feature = "sasl")]
mod sasl;
#[cfg(feature = "sasl")]
mod scram;
mod seed;
mod stream;
mod subscription;
#[cfg(feature = "tls")]
mod tls;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;

use self::cluster::Cluster;
use self::conn::Connection;
pub use self::inspect::{
    BrokerDescription, ClusterDescription, GroupDescription, GroupListing, GroupMember,
    PartitionDescription, PartitionOffsets, TopicDescription,
};
use self::stream::Security;
use super::{net, ConsumedRecord, ProducerSession, SubscribeOptions, Subscription, Transport};
use crate::config::Assignor;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// What every connection of this transport is built from: derived once from [`Config`]
/// ([`Settings::from_config`]), the only place the transport reads settings.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    brokers: Vec<String>,
    client_id: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    fetch_max_wait: Duration,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    rebalance_timeout: Duration,
    assignor: Assignor,
    idempotent: bool,
    security: Security,
    /// Static membership: the consumer's `group_instance_id`.
    group_instance_id: Option<String>,
    /// The consumer's isolation level is read_committed.
    read_committed: bool,
    /// Cached topic metadata older than this is asked for again.
    metadata_max_age: Duration,
    /// Largest answer accepted (checked before allocating).
    max_response_bytes: usize,
    /// Failures tests inject ([`ModernTransport::fail_polls_after_rejoin`]).
    faults: faults::Faults,
}

impl Settings {
    /// The transport's settings from `config` (already validated).
    fn from_config(config: &Config) -> Result<Self> {
        let c = &config.consumer;
        Ok(Settings {
            brokers: net::bootstrap_brokers(config, "modern")?,
            client_id: config.client_id.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            fetch_max_wait: c.max_wait,
            session_timeout: c.session_timeout,
            heartbeat_interval: c.heartbeat_interval,
            rebalance_timeout: c.rebalance_timeout,
            assignor: c.assignor,
            idempotent: config.producer.idempotence,
            security: Security::new(&config.security)?,
            group_instance_id: c.group_instance_id.clone(),
            read_committed: c.isolation_level == crate::config::IsolationLevel::ReadCommitted,
            metadata_max_age: config.metadata_max_age,
            max_response_bytes: config.max_response_bytes,
            faults: faults::Faults::default(),
        })
    }

    #[cfg(test)]
    fn for_tests(brokers: Vec<String>) -> Self {
        Settings {
            brokers,
            client_id: "t".into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            fetch_max_wait: Duration::from_millis(100),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(100),
            rebalance_timeout: Duration::from_secs(5),
            assignor: Assignor::Range,
            idempotent: false,
            security: Security::default(),
            group_instance_id: None,
            read_committed: true,
            metadata_max_age: Duration::from_secs(300),
            max_response_bytes: 100 << 20,
            faults: faults::Faults::default(),
        }
    }
}

/// A [`Transport`] speaking Kafka's current protocol to brokers from Kafka 2.1 to 4.x, with
/// consumer groups that rebalance.
///
/// Creating it does not connect; the first call does.
///
/// # What it does
///
/// - **Versions.** Every connection asks the broker for its API versions and sends each
///   request at the highest version both sides speak. A broker too old (before Kafka 2.1)
///   fails with [`ErrorKind::UnsupportedBroker`] naming the API and both version ranges.
/// - **Produce.** Record batches v2 with headers (compression none, gzip, snappy; lz4 and
///   zstd, written and read, when the crate is built with its `lz4` / `zstd` features, else
///   producing them is an [`ErrorKind::Config`] error), one batch per partition, one
///   request per partition leader, requests to several leaders in flight at once. Record `i`
///   of a partition gets `base offset + i`. Not-leader and unknown-partition answers and
///   connection losses make the session ask for metadata again. Optionally idempotent
///   (`producer.idempotence` in [`Config`]): retries never duplicate.
/// - **Consume.** A [`Subscription`] is a member of a consumer group (JoinGroup / SyncGroup,
///   `range` or `roundrobin` assignment computed by the group leader, heartbeats on a thread
///   named `kafka-heartbeat-<group>`). It joins at its first poll, rejoins at the poll after
///   a rebalance began (members joining, leaving, or timing out), starts new partitions at the
///   group's commit or else at the start offset, forgets lost ones, commits with its
///   generation and member id, and sends LeaveGroup on close or drop, so the others take over
///   its partitions at once. Fetches skip transaction markers.
/// - **Admin.** [`ensure_topic`](Self::ensure_topic) creates a topic with the partitions and
///   replication a service needs; [`Transport::partition_count`] and
///   [`Transport::health_check`] use metadata.
///
/// # Timeouts: what bounds each wait
///
/// | wait | bound |
/// |---|---|
/// | TCP connect | `connect_timeout`, per address |
/// | ApiVersions, metadata, offsets, commits, FindCoordinator, LeaveGroup, CreateTopics | `request_timeout` per request; retriable answers (leader moving, coordinator loading, topic being created) are asked again for at most `request_timeout` in all |
/// | produce | the batch's [`ProduceOptions::timeout`](super::ProduceOptions::timeout) for the whole request, broker acknowledgement included (the broker is given 90 % of it) |
/// | fetch | `min(poll max_wait, consumer.max_wait)` at the broker, plus `request_timeout` for the answer |
/// | joining a group (inside `poll`) | the group waits for every member to rejoin: at most the rebalance timeout (default 30 s) plus two `request_timeout`s |
/// | a heartbeat | `min(request_timeout, session timeout)`; closing waits for at most one |
///
/// A `poll` that has to (re)join can therefore take longer than its `max_wait`: as long as
/// the slowest member of the group takes to come back to its own `poll`.
///
/// # Limits
///
/// - Eager rebalancing: every member stops reading all its partitions while the group
///   rebalances (the classic protocol; no cooperative-sticky, no KIP-848 protocol).
/// - Of several record headers with one name, only the last is written or read.
/// - Not yet: transactions, mutual TLS, SASL re-authentication, OAUTHBEARER, GSSAPI.
///
/// # Security
///
/// [`Config::security`](crate::Config::security) selects TLS (rustls, cargo feature `tls`)
/// and SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 (cargo feature `sasl`). Each connection
/// does TCP, the TLS handshake, ApiVersions, then SaslHandshake and SaslAuthenticate, each
/// step within `request_timeout`. Refused credentials and untrusted certificates fail with
/// [`ErrorKind::Authentication`](crate::ErrorKind::Authentication) naming the mechanism or
/// TLS and the broker.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_sync::Config;
/// use kafka_sync::transport::{ModernTransport, Transport};
///
/// let mut config = Config::default();
/// config.brokers = vec!["127.0.0.1:9092".into()];
/// let transport = ModernTransport::new(&config).unwrap();
/// transport.health_check(Duration::from_secs(2)).unwrap();
/// let partitions = transport.ensure_topic("scraping-tasks", 6, 1).unwrap();
/// assert_eq!(partitions, 6);
/// ```
///
/// [`Transport`]: super::Transport
/// [`Subscription`]: super::Subscription
/// [`Transport::partition_count`]: super::Transport::partition_count
/// [`Transport::health_check`]: super::Transport::health_check
/// [`ErrorKind::UnsupportedBroker`]: crate::ErrorKind::UnsupportedBroker
pub struct ModernTransport {
    settings: Arc<Settings>,
    /// Connections and metadata for `partition_count` and `ensure_topic`.
    admin: Mutex<Cluster>,
}

impl fmt::Debug for ModernTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("ModernTransport")
            .field("brokers", &s.brokers)
            .field("client_id", &s.client_id)
            .field("request_timeout", &s.request_timeout)
            .field("session_timeout", &s.session_timeout)
            .field("assignor", &s.assignor)
            .finish_non_exhaustive()
    }
}

impl ModernTransport {
    /// A transport for `config.brokers` with every setting from `config` (timeouts, group
    /// membership, assignor, idempotence, security). Does not connect. Fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when `config` is invalid, when
    /// `config.security` is invalid or its CA bundle cannot be read.
    pub fn new(config: &Config) -> Result<Self> {
        config.validate()?;
        Ok(Self::from_settings(Settings::from_config(config)?))
    }

    fn from_settings(settings: Settings) -> Self {
        let settings = Arc::new(settings);
        let admin = Cluster::new(settings.clone(), &settings.client_id);
        ModernTransport {
            settings,
            admin: Mutex::new(admin),
        }
    }

    /// Fault injection for tests: the next poll (of any subscription of this transport)
    /// that rejoins its group fails right after the join with a connection error, and so do
    /// that subscription's next `polls - 1` polls: as when the offsets lookup or the fetch
    /// that follows a rebalance meets a leader that moved. 0 turns it off.
    pub fn fail_polls_after_rejoin(&self, polls: usize) {
        self.settings.faults.fail_polls_after_rejoin(polls);
    }

    /// Fault injection for tests: the next `joins` joins (of any subscription of this
    /// transport) fail with a connection error before JoinGroup is sent (after the member
    /// gave up its partitions): the group goes on without it once the rebalance timeout
    /// passes. 0 turns it off.
    pub fn fail_next_joins(&self, joins: usize) {
        self.settings.faults.fail_next_joins(joins);
    }

    /// Fault injection for tests: the next `commits` commits (of any subscription of this
    /// transport) fail with a connection error before anything is sent, as when the
    /// coordinator cannot be reached. 0 turns it off.
    pub fn fail_next_commits(&self, commits: usize) {
        self.settings.faults.fail_next_commits(commits);
    }

    fn admin(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The brokers, the controller, and `topics` with leaders, replicas and ISR (every
    /// topic when `None`). Never creates a topic: an unknown one is
    /// [`ErrorKind::UnknownTopic`]. Bounded by `request_timeout`.
    pub fn describe_cluster(&self, topics: Option<&[&str]>) -> Result<ClusterDescription> {
        inspect::describe(&mut self.admin(), topics)
    }

    /// Earliest (log start) and latest (high watermark) offset of each partition of an
    /// existing `topic`.
    pub fn topic_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        inspect::offsets(&mut self.admin(), topic)
    }

    /// Every consumer group the brokers know (ListGroups to each broker).
    pub fn list_groups(&self) -> Result<Vec<GroupListing>> {
        inspect::list_groups(&mut self.admin())
    }

    /// A group's state and members (DescribeGroups); an unknown group is an error naming it.
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        inspect::describe_group(&mut self.admin(), group)
    }

    /// A group's committed offsets (OffsetFetch of every topic): topic → partition → the
    /// next offset the group reads.
    pub fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<i32, i64>>> {
        inspect::committed(&mut self.admin(), group)
    }

    /// The partition ids of an existing `topic` (an unknown one is
    /// [`ErrorKind::UnknownTopic`]; never creates it).
    pub fn partition_ids(&self, topic: &str) -> Result<Vec<i32>> {
        inspect::partition_ids(&mut self.admin(), topic)
    }

    /// Reads `topic` without joining a group, from `positions` (partition → next offset,
    /// advanced past what was returned): waits up to `wait` for at least one record.
    pub fn read(
        &self,
        topic: &str,
        positions: &mut std::collections::BTreeMap<i32, i64>,
        wait: Duration,
    ) -> Result<Vec<ConsumedRecord>> {
        inspect::read(&mut self.admin(), topic, positions, wait)
    }

    /// Like [`Transport::ensure_topic`], creating the topic with topic-level `configs`
    /// (name, value), e.g. `[("max.message.bytes", "2000000")]`; an existing topic's configs
    /// are left as they are.
    pub fn ensure_topic_with_configs(
        &self,
        topic: &str,
        partitions: i32,
        replication: i16,
        configs: &[(&str, &str)],
    ) -> Result<usize> {
        let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        admin::ensure_topic(&mut admin, topic, partitions, replication, configs)
    }
}

impl Transport for ModernTransport {
    fn name(&self) -> &'static str {
        "modern"
    }

    /// Creates the topic unless it exists and waits until every partition has a leader;
    /// bounded by about two `request_timeout`s.
    fn ensure_topic(&self, topic: &str, partitions: i32, replication: i16) -> Result<usize> {
        self.ensure_topic_with_configs(topic, partitions, replication, &[])
    }

    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>> {
        Ok(Box::new(produce::ModernProducerSession::new(
            self.settings.clone(),
        )))
    }

    fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        Ok(Box::new(subscription::ModernSubscription::open(
            self.settings.clone(),
            options,
        )?))
    }

    fn partition_count(&self, topic: &str) -> Result<usize> {
        let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        Ok(admin.topic(topic, false)?.partitions.len())
    }

    fn copy_group_offsets(&self, from: &str, to: &str, topic: &str) -> Result<usize> {
        seed::copy_group_offsets(&mut self.lock_admin(), from, to, topic)
    }

    fn health_check(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let s = &self.settings;
        let mut failures = Vec::new();
        // Every broker known, not only the bootstrap list: a cluster whose bootstrap broker
        // died after start is still healthy if the brokers metadata named answer.
        let known = self.lock_admin().known_addrs();
        for b in &known {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let connect = left.min(s.connect_timeout);
            let answered =
                Connection::open(b, &s.client_id, &s.security, connect, left).and_then(|mut c| {
                    let left = timeout
                        .saturating_sub(started.elapsed())
                        .max(Duration::from_millis(1));
                    c.call(
                        &MetadataRequest::default().with_topics(Some(Vec::new())),
                        left,
                    )
                });
            match answered {
                Ok(answer) => {
                    self.lock_admin().learn_brokers(&answer);
                    return Ok(());
                }
                Err(e) if cluster::is_final(&e) => return Err(e),
                Err(e) => failures.push(format!("{b}: {}", e.detached().message())),
            }
        }
        let why = if failures.is_empty() {
            format!("no broker answered within {timeout:?}")
        } else {
            failures.join("; ")
        };
        Err(Error::new(
            ErrorKind::Connection,
            format!("health check failed ({why})"),
        )
        .with_broker(known.join(",")))
    }
}

impl ModernTransport {
    fn lock_admin(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
