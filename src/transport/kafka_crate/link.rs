//! [`Link`]: one `KafkaClient` with the bounds the crate lacks around it.
//!
//! A link builds its client lazily, after a probe of the bootstrap brokers (connect within
//! `connect_timeout`, ApiVersions answer within `request_timeout`), points the crate at the
//! broker that answered, probes each partition leader once before the crate connects to it,
//! and drops the client after a connection error or a long idle spell, so that the crate never
//! reuses a broken socket and never opens one we have not probed first.

use crate::retry::Doubling;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use kafka::client::{FetchOffset, GroupOffsetStorage, KafkaClient};

use super::errors::{code_kind, error_code, map_error};
use super::probe;
use super::Settings;
use crate::error::{Error, ErrorKind, Result};

/// Idle time after which the crate closes and reopens a pooled connection by itself (kept
/// below Kafka's default `connections.max.idle.ms` of 10 minutes).
pub(super) const CRATE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A link unused this long drops its client and rebuilds (and re-probes) on the next call, so
/// the crate's own unbounded reconnect after [`CRATE_IDLE_TIMEOUT`] does not happen.
const LINK_IDLE_REBUILD: Duration = Duration::from_secs(240);

/// Wait between metadata requests while a topic has no partitions or leaders yet.
const METADATA_BACKOFF: Duration = Duration::from_millis(50);
const METADATA_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Longest wait for a topic to show partitions (auto-creation takes ~30 ms on Kafka 3.9).
const NO_PARTITIONS_WAIT: Duration = Duration::from_secs(5);

/// The crate's own retries (group coordinator lookup, offset commit/fetch while the group
/// loads): this wait between attempts, at most `request_timeout / wait` attempts, capped.
const CRATE_RETRY_BACKOFF: Duration = Duration::from_millis(100);
const CRATE_RETRY_MAX_ATTEMPTS: u32 = 100;

/// A topic's partitions as metadata last described them.
#[derive(Debug, Clone, Default)]
pub(super) struct TopicInfo {
    /// `(partition id, leader host:port if any)`, by id.
    pub partitions: Vec<(i32, Option<String>)>,
}

impl TopicInfo {
    /// The leader of `partition`, `None` if unknown or the partition does not exist.
    pub fn leader(&self, partition: i32) -> Option<&str> {
        self.partitions
            .iter()
            .find(|(id, _)| *id == partition)
            .and_then(|(_, l)| l.as_deref())
    }

    /// Whether `partition` exists.
    pub fn has(&self, partition: i32) -> bool {
        self.partitions.iter().any(|(id, _)| *id == partition)
    }

    /// The partition ids.
    pub fn ids(&self) -> Vec<i32> {
        self.partitions.iter().map(|(id, _)| *id).collect()
    }
}

/// One `KafkaClient`, built on demand, with probe and reset logic around it.
#[derive(Debug)]
pub(super) struct Link {
    settings: Settings,
    client_id: String,
    min_bytes: usize,
    max_bytes: usize,
    client: Option<KafkaClient>,
    /// Hosts probed since the client was built (the crate may connect to them).
    probed: HashSet<String>,
    /// Topics whose metadata the client holds.
    loaded: HashSet<String>,
    last_used: Instant,
}

impl Link {
    /// A link whose client will use `client_id` and these fetch sizes.
    pub fn new(settings: Settings, client_id: &str, min_bytes: usize, max_bytes: usize) -> Self {
        Link {
            settings,
            client_id: client_id.to_string(),
            min_bytes,
            max_bytes,
            client: None,
            probed: HashSet::new(),
            loaded: HashSet::new(),
            last_used: Instant::now(),
        }
    }

    /// The settings the link was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Drops the client; the next call builds a new one (after a new probe).
    pub fn reset(&mut self) {
        self.client = None;
        self.probed.clear();
        self.loaded.clear();
    }

    /// Forgets loaded metadata; the next call reloads it.
    pub fn forget_metadata(&mut self) {
        if let Some(c) = self.client.as_mut() {
            c.reset_metadata();
        }
        self.loaded.clear();
    }

    /// Passes `e` through, dropping the client first when the error means the connection is
    /// broken or silent (the crate would otherwise reuse the dead socket).
    pub fn fail(&mut self, e: Error) -> Error {
        if matches!(
            e.kind(),
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::UnsupportedBroker
        ) {
            self.reset();
        }
        e
    }

    /// Probes the bootstrap brokers and (re)builds the client if needed: when there is none,
    /// when it sat idle, or when its first bootstrap broker no longer answers.
    fn probe_bootstrap(&mut self) -> Result<()> {
        if self.client.is_some() && self.last_used.elapsed() >= LINK_IDLE_REBUILD {
            self.reset();
        }
        let s = &self.settings;
        let first = probe::first_reachable(
            &s.brokers,
            &self.client_id,
            s.connect_timeout,
            s.request_timeout,
        )?;
        let first_host = &s.brokers[first];
        let current = self
            .client
            .as_ref()
            .and_then(|c| c.hosts().first().cloned());
        if current.as_deref() != Some(first_host.as_str()) {
            let mut hosts = vec![first_host.clone()];
            hosts.extend(
                s.brokers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != first)
                    .map(|(_, b)| b.clone()),
            );
            self.client = Some(self.build(hosts)?);
            self.probed.clear();
            self.loaded.clear();
        }
        self.probed.insert(first_host.clone());
        Ok(())
    }

    fn build(&self, hosts: Vec<String>) -> Result<KafkaClient> {
        let s = &self.settings;
        let mut c = KafkaClient::new(hosts);
        c.set_client_id(self.client_id.clone());
        // The default storage is none: commits and group-offset fetches would fail.
        c.set_group_offset_storage(Some(GroupOffsetStorage::Kafka));
        c.set_fetch_max_wait_time(s.fetch_max_wait)
            .map_err(|e| map_error(e, "consumer.max_wait"))?;
        c.set_fetch_min_bytes(clamp_i32(self.min_bytes));
        c.set_fetch_max_bytes_per_partition(clamp_i32(self.max_bytes));
        c.set_retry_backoff_time(CRATE_RETRY_BACKOFF);
        let attempts = (s.request_timeout.as_millis() / CRATE_RETRY_BACKOFF.as_millis()) as u32;
        c.set_retry_max_attempts(attempts.clamp(1, CRATE_RETRY_MAX_ATTEMPTS));
        c.set_connection_idle_timeout(CRATE_IDLE_TIMEOUT);
        Ok(c)
    }

    /// The client, built if needed. Callers that need a topic call [`Link::topic`] first.
    pub fn client(&mut self) -> Result<&mut KafkaClient> {
        if self.client.is_none() || self.last_used.elapsed() >= LINK_IDLE_REBUILD {
            self.probe_bootstrap()?;
        }
        self.last_used = Instant::now();
        Ok(self
            .client
            .as_mut()
            .expect("client built by probe_bootstrap"))
    }

    /// The brokers for error context: the client's first host, or every bootstrap broker.
    pub fn broker_label(&self) -> String {
        match self.client.as_ref().and_then(|c| c.hosts().first()) {
            Some(h) => h.clone(),
            None => self.settings.brokers.join(","),
        }
    }

    /// `topic`'s partitions, from loaded metadata unless `reload` or not loaded yet.
    ///
    /// Loading asks the broker for the topic (which auto-creates it where the broker allows),
    /// repeating until the topic has partitions and every partition a leader, or until
    /// `wait` has passed: then a topic with some leaderless partitions is returned as it is.
    /// A topic still without partitions after `min(wait, 5 s)` is `UnknownTopic`. Each new leader is probed before the
    /// crate may connect to it.
    pub fn topic(&mut self, topic: &str, reload: bool, wait: Duration) -> Result<TopicInfo> {
        if self.last_used.elapsed() >= LINK_IDLE_REBUILD {
            self.reset();
        }
        if !reload && self.loaded.contains(topic) && self.client.is_some() {
            if let Some(info) = self.cached(topic) {
                self.last_used = Instant::now();
                return Ok(info);
            }
        }
        let started = Instant::now();
        let mut backoff = Doubling::new(METADATA_BACKOFF, METADATA_BACKOFF_MAX);
        let mut created = false;
        loop {
            self.probe_bootstrap()?;
            self.last_used = Instant::now();
            let broker = self.broker_label();
            let client = self
                .client
                .as_mut()
                .expect("client built by probe_bootstrap");
            if let Err(e) = client.load_metadata(&[topic]) {
                let e = map_error(e, "metadata request failed")
                    .with_topic(topic)
                    .with_broker(broker);
                return Err(self.fail(e));
            }
            self.loaded.insert(topic.to_string());
            let info = self.cached(topic).unwrap_or_default();
            created |= info.partitions.is_empty();
            let complete =
                !info.partitions.is_empty() && info.partitions.iter().all(|(_, l)| l.is_some());
            // Without partitions, the crate cannot tell "being created" from "does not
            // exist" (it drops the topic's error code): give up sooner.
            let bound = if info.partitions.is_empty() {
                wait.min(NO_PARTITIONS_WAIT)
            } else {
                wait
            };
            if complete || started.elapsed() + backoff.peek() > bound {
                if info.partitions.is_empty() {
                    self.loaded.remove(topic);
                    return Err(Error::new(
                        ErrorKind::UnknownTopic,
                        format!(
                            "the topic has no partitions after {:?}: it does not exist and the \
                             broker did not create it (auto.create.topics.enable=false?), or it \
                             was just created and has no leader yet",
                            started.elapsed()
                        ),
                    )
                    .with_topic(topic)
                    .with_broker(broker));
                }
                if !complete {
                    log::warn!(
                        "kafka-crate: topic {topic} has partitions without a leader after {:?}",
                        started.elapsed()
                    );
                }
                self.probe_leaders(&info)?;
                if created && complete {
                    self.await_leaders_ready(topic, started, wait)?;
                }
                if started.elapsed() > Duration::from_millis(200) {
                    log::debug!(
                        "kafka-crate: metadata for {topic} complete after {:?}",
                        started.elapsed()
                    );
                }
                return Ok(info);
            }
            std::thread::sleep(backoff.next_wait());
        }
    }

    /// After a topic was auto-created, metadata names leaders a moment before they accept
    /// requests (Kafka 3.9 KRaft answers `NotLeaderForPartition` for a few milliseconds):
    /// asks every leader for its latest offset until all answer, or `wait` has passed since
    /// `started` (then the producer's retries take over).
    fn await_leaders_ready(&mut self, topic: &str, started: Instant, wait: Duration) -> Result<()> {
        let mut backoff = Doubling::new(METADATA_BACKOFF, METADATA_BACKOFF_MAX);
        loop {
            let broker = self.broker_label();
            let client = self
                .client
                .as_mut()
                .expect("client built by probe_bootstrap");
            let err = match client.fetch_topic_offsets(topic, FetchOffset::Latest) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let retriable = error_code(&err).is_some_and(|c| code_kind(c).is_retriable());
            if !retriable {
                let e = map_error(err, "listing offsets of a new topic failed")
                    .with_topic(topic)
                    .with_broker(broker);
                return Err(self.fail(e));
            }
            if started.elapsed() + backoff.peek() > wait {
                log::warn!(
                    "kafka-crate: new topic {topic} not ready after {:?}",
                    started.elapsed()
                );
                return Ok(());
            }
            std::thread::sleep(backoff.next_wait());
        }
    }

    fn cached(&self, topic: &str) -> Option<TopicInfo> {
        let client = self.client.as_ref()?;
        let topics = client.topics();
        let partitions = topics.partitions(topic)?;
        let mut list: Vec<(i32, Option<String>)> = partitions
            .iter()
            .map(|p| (p.id(), p.leader().map(|b| b.host().to_string())))
            .collect();
        list.sort_by_key(|(id, _)| *id);
        Some(TopicInfo { partitions: list })
    }

    /// Probes every leader of `info` not probed since the client was built.
    fn probe_leaders(&mut self, info: &TopicInfo) -> Result<()> {
        let mut hosts: Vec<String> = info
            .partitions
            .iter()
            .filter_map(|(_, l)| l.clone())
            .filter(|h| !self.probed.contains(h))
            .collect();
        hosts.sort();
        hosts.dedup();
        for host in hosts {
            let s = &self.settings;
            match probe::check_broker(&host, &self.client_id, s.connect_timeout, s.request_timeout)
            {
                Ok(()) => {
                    self.probed.insert(host);
                }
                Err(e) => {
                    let e = Error::new(
                        e.kind(),
                        format!(
                            "partition leader {host} (as advertised by the cluster; check the \
                             broker's advertised.listeners) is not usable: {}",
                            e.detached().message()
                        ),
                    )
                    .with_broker(host);
                    return Err(self.fail(e));
                }
            }
        }
        Ok(())
    }
}

/// `n` as the protocol's i32, saturating.
pub(super) fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `d` in whole milliseconds, saturating at the protocol's i32 and at least 0.
pub(super) fn clamp_duration(d: Duration) -> Duration {
    d.min(Duration::from_millis(i32::MAX as u64))
}
