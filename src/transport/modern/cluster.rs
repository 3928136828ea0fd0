//! [`Cluster`]: metadata and routing. Which broker leads which partition, one connection per
//! broker, opened on first use, dropped after a failure; metadata forgotten after a
//! not-leader or unknown-partition answer, after a connection loss and once older than
//! `metadata_max_age`, and asked again on the next call.
//!
//! Requests for "any broker" (metadata, producer ids, coordinators) go to every broker the
//! client knows, the bootstrap list and the brokers metadata named, starting at a random one;
//! a broker that refused a connection is tried last until its reconnect backoff (50 ms
//! doubling to 1 s) has passed. A partition without a leader does not hold the others up:
//! metadata with it is returned at once, its records wait for the next round.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::api::Api;
use super::conn::Connection;
use super::errors::{code, code_error};
use super::Settings;
use crate::error::{Error, ErrorKind, Result};

/// How long a topic the broker calls unknown is asked for again before `UnknownTopic` (a
/// topic created a moment ago by another client may not be in this broker's metadata yet).
const UNKNOWN_TOPIC_WAIT: Duration = Duration::from_secs(2);

/// A connection unused this long is closed and opened again before its next request
/// (brokers close idle connections after `connections.max.idle.ms`, 10 minutes by default;
/// a request on a socket the broker closed would fail).
const IDLE_REOPEN: Duration = Duration::from_secs(240);

/// Reconnect backoff after a failed connection to one broker: starts here, doubles per
/// failure, capped at [`RECONNECT_MAX`] (the Java client's `reconnect.backoff.ms` and
/// `reconnect.backoff.max.ms`).
const RECONNECT_START: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// Waits between metadata requests while a topic has no partitions or leaders yet.
pub(super) const BACKOFF_START: Duration = Duration::from_millis(20);
pub(super) const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// One partition as metadata describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PartitionMeta {
    /// The partition id.
    pub id: i32,
    /// The leader's node id, if it has one.
    pub leader: Option<i32>,
}

/// A topic's partitions, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TopicMeta {
    /// The partitions, sorted by id.
    pub partitions: Vec<PartitionMeta>,
}

impl TopicMeta {
    /// The leader of `partition`, `None` when unknown or the partition does not exist.
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partitions
            .iter()
            .find(|p| p.id == partition)
            .and_then(|p| p.leader)
    }

    fn complete(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.leader.is_some())
    }
}

/// Whether `e`, met while connecting to one bootstrap broker, is to be reported at once
/// rather than trying the next: a broker too old, refused credentials, an untrusted
/// certificate.
pub(super) fn is_final(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnsupportedBroker | ErrorKind::Authentication
    )
}

/// Connections and metadata for one owner (a producer session, a subscription, the admin).
#[derive(Debug)]
pub(super) struct Cluster {
    settings: Arc<Settings>,
    client_id: String,
    /// Node id → `host:port`, from the last metadata answer.
    nodes: HashMap<i32, String>,
    controller: Option<i32>,
    conns: HashMap<String, Connection>,
    /// Topic metadata and when it was asked for.
    topics: HashMap<String, (TopicMeta, Instant)>,
    /// Broker address → (not before, current backoff) after a failed connection.
    backoff: HashMap<String, (Instant, Duration)>,
}

/// A pseudo-random number (std's per-process random hash keys; no extra crate needed for
/// picking a starting broker).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

impl Cluster {
    /// No connection yet; the first call connects.
    pub fn new(settings: Arc<Settings>, client_id: &str) -> Self {
        Cluster {
            settings,
            client_id: client_id.to_string(),
            nodes: HashMap::new(),
            controller: None,
            conns: HashMap::new(),
            topics: HashMap::new(),
            backoff: HashMap::new(),
        }
    }

    /// The transport's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The address of node `id`, from metadata.
    pub fn node_addr(&self, id: i32) -> Result<String> {
        self.nodes.get(&id).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::BrokerRetriable,
                format!("node {id} is not in the cluster metadata"),
            )
        })
    }

    /// The controller's address when metadata named one.
    pub fn controller_addr(&self) -> Option<String> {
        self.controller.and_then(|id| self.nodes.get(&id).cloned())
    }

    /// The connection to `addr`, opened (within `connect_timeout`, ApiVersions within
    /// `request_timeout`) if there is none.
    pub fn conn(&mut self, addr: &str) -> Result<&mut Connection> {
        if self
            .conns
            .get(addr)
            .is_some_and(|c| c.is_broken() || c.idle_for() > IDLE_REOPEN)
        {
            self.conns.remove(addr);
        }
        if !self.conns.contains_key(addr) {
            let s = &self.settings;
            let opened = Connection::open(
                addr,
                &self.client_id,
                &s.security,
                s.connect_timeout,
                s.request_timeout,
            );
            let mut c = match opened {
                Ok(c) => c,
                Err(e) => {
                    let next = self
                        .backoff
                        .get(addr)
                        .map_or(RECONNECT_START, |&(_, b)| (b * 2).min(RECONNECT_MAX));
                    self.backoff
                        .insert(addr.to_string(), (Instant::now() + next, next));
                    return Err(e);
                }
            };
            self.backoff.remove(addr);
            c.limit_responses(s.max_response_bytes);
            self.conns.insert(addr.to_string(), c);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| Error::new(ErrorKind::Connection, "connection vanished"))
    }

    /// Remembers the brokers and controller a metadata answer names.
    pub(super) fn learn_brokers(&mut self, answer: &kafka_protocol::messages::MetadataResponse) {
        self.nodes = answer
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.controller = (answer.controller_id.0 >= 0).then_some(answer.controller_id.0);
    }

    /// Records one broker as if metadata had named it (tests).
    #[cfg(test)]
    pub(super) fn learn_node(&mut self, id: i32, addr: &str) {
        self.nodes.insert(id, addr.to_string());
    }

    /// Every broker address known: the bootstrap list, then those metadata named.
    pub(super) fn known_addrs(&self) -> Vec<String> {
        let mut all = self.settings.brokers.clone();
        let mut learned: Vec<&String> = self.nodes.values().collect();
        learned.sort();
        for a in learned {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }

    /// The address of a broker that answers: one already connected, else the first of every
    /// known broker (bootstrap and metadata, from a random start, those in reconnect backoff
    /// last) that accepts a connection. The error names every broker tried.
    pub fn any_addr(&mut self) -> Result<String> {
        if let Some(addr) = self
            .conns
            .iter()
            .find(|(_, c)| !c.is_broken() && c.idle_for() <= IDLE_REOPEN)
            .map(|(a, _)| a)
        {
            return Ok(addr.clone());
        }
        let mut failures = Vec::new();
        let mut brokers = self.known_addrs();
        let start = (random() % brokers.len().max(1) as u64) as usize;
        brokers.rotate_left(start);
        let now = Instant::now();
        brokers.sort_by_key(|b| self.backoff.get(b).is_some_and(|&(until, _)| until > now));
        for b in &brokers {
            match self.conn(b) {
                Ok(_) => return Ok(b.clone()),
                Err(e) if is_final(&e) => return Err(e),
                Err(e) => failures.push(format!("{b}: {}", e.detached().message())),
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!("no Kafka broker reachable ({})", failures.join("; ")),
        )
        .with_broker(brokers.join(",")))
    }

    /// Sends `request` to `addr` and waits up to `bound`. A connection that failed is
    /// dropped and all metadata forgotten (leaders may have moved).
    pub fn call<R: Api>(
        &mut self,
        addr: &str,
        request: &R,
        bound: Duration,
    ) -> Result<R::Response> {
        let conn = self.conn(addr)?;
        let answer = conn.call(request, bound);
        if conn.is_broken() {
            self.lost(addr);
        }
        answer
    }

    /// The version of `R` to send to `addr` (connecting if needed), for requests whose
    /// fields depend on it.
    pub fn version<R: Api>(&mut self, addr: &str) -> Result<i16> {
        self.conn(addr)?.version::<R>()
    }

    /// Sends `request` to `addr` at `version` and waits up to `bound` (see [`call`](Self::call)).
    pub fn call_at<R: Api>(
        &mut self,
        addr: &str,
        request: &R,
        version: i16,
        bound: Duration,
    ) -> Result<R::Response> {
        let conn = self.conn(addr)?;
        let answer = conn.call_at(request, version, bound);
        if conn.is_broken() {
            self.lost(addr);
        }
        answer
    }

    /// Writes `request` to `addr` at the negotiated version by `deadline` without waiting;
    /// returns the correlation id and version to [`receive`](Self::receive) the answer with.
    pub fn send<R: Api>(
        &mut self,
        addr: &str,
        request: &R,
        deadline: Instant,
    ) -> Result<(i32, i16)> {
        let conn = self.conn(addr)?;
        let sent = conn
            .version::<R>()
            .and_then(|v| conn.send(request, v, deadline).map(|id| (id, v)));
        if conn.is_broken() {
            self.lost(addr);
        }
        sent
    }

    /// Reads the answer to a request [`send`](Self::send) wrote to `addr`, by `deadline`.
    pub fn receive<R: Api>(
        &mut self,
        addr: &str,
        (id, version): (i32, i16),
        deadline: Instant,
    ) -> Result<R::Response> {
        let Some(conn) = self.conns.get_mut(addr) else {
            return Err(Error::new(
                ErrorKind::Connection,
                "the connection closed before the answer was read",
            )
            .with_broker(addr));
        };
        let answer = conn.receive::<R>(id, version, deadline);
        if conn.is_broken() {
            self.lost(addr);
        }
        answer
    }

    /// Sends `request` to any broker that answers.
    pub fn call_any<R: Api>(&mut self, request: &R, bound: Duration) -> Result<R::Response> {
        let addr = self.any_addr()?;
        self.call(&addr, request, bound)
    }

    /// Makes the next request to `addr` wait `ms` milliseconds (the broker asked for it in an
    /// answer's `throttle_time_ms`: a quota was exceeded).
    pub fn throttle(&mut self, addr: &str, ms: i32) {
        if let Some(c) = self.conns.get_mut(addr) {
            c.throttle(ms);
        }
    }

    /// Forgets the connection to `addr` (it failed) and all topic metadata.
    pub fn lost(&mut self, addr: &str) {
        self.conns.remove(addr);
        self.topics.clear();
    }

    /// Drops every connection and all metadata.
    pub fn reset(&mut self) {
        self.conns.clear();
        self.topics.clear();
    }

    /// Forgets all topic metadata.
    pub fn forget_all(&mut self) {
        self.topics.clear();
    }

    /// Forgets `topic`'s metadata; the next [`topic`](Self::topic) asks again.
    pub fn forget(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// One metadata request for `topics` (`None`: all), updating the node map.
    pub fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let bound = self.settings.request_timeout;
        let addr = self.any_addr()?;
        let answer = self.call(&addr, &request, bound)?;
        self.throttle(&addr, answer.throttle_time_ms);
        self.learn_brokers(&answer);
        Ok(answer)
    }

    /// `topic`'s partitions, from cached metadata unless `reload`, none is cached or it is
    /// older than `metadata_max_age`.
    ///
    /// Asks the broker (which creates the topic where it auto-creates topics) until the topic
    /// has partitions, for at most `request_timeout`; partitions without a leader are
    /// returned as they are (their records wait for the next round; the metadata is not
    /// cached, so the next call asks again). A topic the broker still calls unknown after
    /// 2 s is `UnknownTopic`.
    pub fn topic(&mut self, topic: &str, reload: bool) -> Result<TopicMeta> {
        self.topic_waiting(topic, reload, false)
    }

    /// Like [`topic`](Self::topic), always asking, and waiting (up to `request_timeout`)
    /// until every partition has a leader: for a topic just created.
    pub fn topic_with_leaders(&mut self, topic: &str) -> Result<TopicMeta> {
        self.topic_waiting(topic, true, true)
    }

    fn topic_waiting(&mut self, topic: &str, reload: bool, leaders: bool) -> Result<TopicMeta> {
        if !reload {
            let max_age = self.settings.metadata_max_age;
            if let Some((meta, at)) = self.topics.get(topic) {
                if at.elapsed() < max_age {
                    return Ok(meta.clone());
                }
            }
        }
        let started = Instant::now();
        let wait = self.settings.request_timeout;
        let mut backoff = crate::retry::Doubling::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            let answer = self.metadata(Some(&[topic]), true)?;
            let found = answer
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic));
            let (error, meta) = match found {
                Some(t) => {
                    let mut partitions: Vec<PartitionMeta> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionMeta {
                            id: p.partition_index,
                            leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.id);
                    (t.error_code, TopicMeta { partitions })
                }
                None => (code::UNKNOWN_TOPIC_OR_PARTITION, TopicMeta::default()),
            };
            let elapsed = started.elapsed();
            let out_of_time = elapsed + backoff.peek() > wait;
            let usable = !meta.partitions.is_empty() && (!leaders || out_of_time);
            match error {
                code::NONE if meta.complete() || usable => {
                    if meta.complete() {
                        self.topics
                            .insert(topic.to_string(), (meta.clone(), Instant::now()));
                    } else {
                        log::debug!(
                            "modern: topic {topic} has partitions without a leader; the others go on"
                        );
                    }
                    return Ok(meta);
                }
                code::UNKNOWN_TOPIC_OR_PARTITION
                    if elapsed + backoff.peek() > UNKNOWN_TOPIC_WAIT.min(wait) =>
                {
                    return Err(Error::new(
                        ErrorKind::UnknownTopic,
                        format!(
                            "the broker does not know the topic after {elapsed:?}: it does not \
                             exist and the broker does not create topics on request \
                             (auto.create.topics.enable=false?)"
                        ),
                    )
                    .with_topic(topic));
                }
                c if c != code::NONE
                    && !super::errors::code_kind(c).is_retriable()
                    && c != code::UNKNOWN_TOPIC_OR_PARTITION =>
                {
                    return Err(code_error(c, "metadata request").with_topic(topic));
                }
                c if out_of_time => {
                    let why = if c == code::NONE {
                        "no partitions yet".to_string()
                    } else {
                        super::errors::code_name(c)
                    };
                    return Err(Error::new(
                        ErrorKind::BrokerRetriable,
                        format!("the topic is not ready after {elapsed:?} ({why})"),
                    )
                    .with_topic(topic));
                }
                _ => {}
            }
            std::thread::sleep(backoff.next_wait());
        }
    }
}

/// A topic name for a request.
pub(super) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_meta_finds_leaders_and_completeness() {
        let meta = TopicMeta {
            partitions: vec![
                PartitionMeta {
                    id: 0,
                    leader: Some(1),
                },
                PartitionMeta {
                    id: 1,
                    leader: None,
                },
            ],
        };
        assert_eq!(meta.leader(0), Some(1));
        assert_eq!(meta.leader(1), None);
        assert_eq!(meta.leader(7), None);
        assert!(!meta.complete());
        assert!(!TopicMeta::default().complete());
    }

    #[test]
    fn brokers_learned_from_metadata_are_tried_and_refused_ones_back_off() {
        let settings = Arc::new(Settings::for_tests(vec!["127.0.0.1:1".to_string()]));
        let mut c = Cluster::new(settings, "t");
        c.nodes.insert(2, "127.0.0.1:2".to_string());
        c.nodes.insert(3, "127.0.0.1:1".to_string());
        assert_eq!(c.known_addrs(), vec!["127.0.0.1:1", "127.0.0.1:2"]);
        let e = c.any_addr().unwrap_err();
        assert!(
            e.message().contains("127.0.0.1:2"),
            "learned broker tried: {e}"
        );
        let (until, first) = c.backoff["127.0.0.1:2"];
        assert!(until > Instant::now() && first == RECONNECT_START);
        let _ = c.any_addr();
        assert_eq!(c.backoff["127.0.0.1:2"].1, RECONNECT_START * 2, "doubles");
    }

    #[test]
    fn no_reachable_broker_names_each() {
        let settings = Arc::new(Settings::for_tests(vec![
            "127.0.0.1:1".to_string(),
            "127.0.0.1:2".to_string(),
        ]));
        let mut c = Cluster::new(settings, "t");
        let e = c.any_addr().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.message().contains("127.0.0.1:1"), "{e}");
        assert!(e.message().contains("127.0.0.1:2"), "{e}");
    }
}
