//! [`KafkaSubscription`]: a group's reader of one topic, over its own `KafkaClient`.
//!
//! **Every partition of the topic is read** (the crate has no group membership): see the
//! parent module's docs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka::client::{CommitOffset, FetchOffset, FetchPartition};
use kafka::error::KafkaCode;

use super::errors::{code_kind, code_means_stale_metadata, error_code, map_error};
use super::link::{clamp_duration, Link};
use super::Settings;
use crate::config::StartOffset;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{ConsumedRecord, PartitionLag, SubscribeOptions, Subscription};

/// Fetches in a row that return nothing for a partition whose high watermark is ahead of the
/// position before a warning is logged (likely a record larger than `max_bytes`); the warning
/// repeats every 1000 such fetches.
const STUCK_POLLS: u32 = 3;

/// A subscription: positions of every partition, the group's commits through the crate.
#[derive(Debug)]
pub(super) struct KafkaSubscription {
    link: Link,
    group: String,
    topic: String,
    start_offset: StartOffset,
    max_bytes: usize,
    /// The next offset to fetch, per partition.
    positions: BTreeMap<i32, i64>,
    /// Reload metadata before the next fetch (a leader moved).
    stale: bool,
    /// Consecutive empty fetches of a partition that has records past its position.
    stuck: HashMap<i32, u32>,
    /// Partitions not fetched until resumed.
    paused: std::collections::BTreeSet<i32>,
}

impl KafkaSubscription {
    /// Loads the topic's metadata and starts every partition at the group's committed offset,
    /// or per `options.start_offset` where the group has none.
    pub fn open(settings: Settings, options: SubscribeOptions) -> Result<Self> {
        let link = Link::new(
            settings,
            &options.client_id,
            options.min_bytes,
            options.max_bytes,
        );
        let mut sub = KafkaSubscription {
            link,
            group: options.group,
            topic: options.topic,
            start_offset: options.start_offset,
            max_bytes: options.max_bytes,
            positions: BTreeMap::new(),
            stale: false,
            stuck: HashMap::new(),
            paused: std::collections::BTreeSet::new(),
        };
        let ids = sub.metadata(false)?;
        sub.add_partitions(&ids)?;
        log::debug!(
            "kafka-crate: group {} reads all {} partitions of {} from {:?}",
            sub.group,
            sub.positions.len(),
            sub.topic,
            sub.positions
        );
        Ok(sub)
    }

    fn request_timeout(&self) -> Duration {
        self.link.settings().request_timeout
    }

    /// The topic's partition ids, reloading metadata when `reload`.
    fn metadata(&mut self, reload: bool) -> Result<Vec<i32>> {
        let wait = self.request_timeout();
        Ok(self.link.topic(&self.topic, reload, wait)?.ids())
    }

    fn fail(&mut self, e: kafka::Error, what: &str) -> Error {
        let e = map_error(e, &format!("{what} (group {})", self.group))
            .with_topic(self.topic.clone())
            .with_broker(self.link.broker_label());
        self.link.fail(e)
    }

    /// Starts `ids` at the group's commits, or at the start offset where there is none.
    fn add_partitions(&mut self, ids: &[i32]) -> Result<()> {
        let committed = self.committed()?;
        let mut missing = Vec::new();
        for &p in ids {
            match committed.get(&p) {
                Some(&offset) => {
                    self.positions.insert(p, offset);
                }
                None => missing.push(p),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let starts = self.start_offsets()?;
        for p in missing {
            let offset = *starts.get(&p).ok_or_else(|| {
                Error::new(
                    ErrorKind::BrokerRetriable,
                    "no start offset for the partition (no leader?)",
                )
                .with_topic(self.topic.clone())
                .with_partition(p)
            })?;
            self.positions.insert(p, offset);
        }
        Ok(())
    }

    /// The group's committed offsets (partitions without a commit are absent).
    fn committed(&mut self) -> Result<HashMap<i32, i64>> {
        let client = self.link.client()?;
        match client.fetch_group_topic_offset(&self.group, &self.topic) {
            Ok(list) => Ok(list
                .into_iter()
                .filter(|po| po.offset >= 0)
                .map(|po| (po.partition, po.offset))
                .collect()),
            Err(e) => Err(self.fail(e, "fetching the group's committed offsets failed")),
        }
    }

    /// The earliest or latest offset of every partition, per the start offset.
    fn start_offsets(&mut self) -> Result<HashMap<i32, i64>> {
        let which = match self.start_offset {
            StartOffset::Earliest => FetchOffset::Earliest,
            StartOffset::Latest => FetchOffset::Latest,
        };
        self.list_offsets(which)
    }

    fn list_offsets(&mut self, which: FetchOffset) -> Result<HashMap<i32, i64>> {
        let client = self.link.client()?;
        match client.fetch_topic_offsets(&self.topic, which) {
            Ok(list) => Ok(list
                .into_iter()
                .map(|po| (po.partition, po.offset))
                .collect()),
            Err(e) => Err(self.fail(e, "listing partition offsets failed")),
        }
    }

    /// One fetch of every partition, the broker waiting at most `wait`.
    fn fetch_once(&mut self, wait: Duration) -> Result<Vec<ConsumedRecord>> {
        let reload = std::mem::take(&mut self.stale);
        let ids = self.metadata(reload)?;
        let new: Vec<i32> = ids
            .into_iter()
            .filter(|p| !self.positions.contains_key(p))
            .collect();
        if !new.is_empty() {
            log::info!("kafka-crate: topic {} grew partitions {new:?}", self.topic);
            self.add_partitions(&new)?;
        }

        let topic = self.topic.clone();
        let client = self.link.client()?;
        if let Err(e) = client.set_fetch_max_wait_time(clamp_duration(wait)) {
            return Err(map_error(e, "poll max_wait"));
        }
        let requests: Vec<FetchPartition<'_>> = self
            .positions
            .iter()
            .filter(|(p, _)| !self.paused.contains(p))
            .map(|(&p, &offset)| FetchPartition::new(&topic, p, offset))
            .collect();
        if requests.is_empty() {
            std::thread::sleep(wait.min(Duration::from_millis(50)));
            return Ok(Vec::new());
        }
        let responses = match client.fetch_messages(requests) {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e, "fetch failed")),
        };

        let mut records = Vec::new();
        let mut out_of_range = Vec::new();
        let mut first_error: Option<Error> = None;
        for response in &responses {
            for t in response.topics() {
                if t.topic() != topic {
                    continue;
                }
                for part in t.partitions() {
                    let p = part.partition();
                    let Some(position) = self.positions.get_mut(&p) else {
                        continue;
                    };
                    match part.data() {
                        Ok(data) => {
                            let before = *position;
                            for m in data.messages() {
                                // Compressed sets may start before the requested offset.
                                if m.offset < *position {
                                    continue;
                                }
                                records.push(ConsumedRecord {
                                    topic: topic.clone(),
                                    partition: p,
                                    offset: m.offset,
                                    key: (!m.key.is_empty()).then(|| m.key.to_vec()),
                                    value: m.value.to_vec(),
                                    // Fetch v0 does not tell a null value from an empty one.
                                    null_value: false,
                                    // Message format v0/v1 has no headers.
                                    headers: Vec::new(),
                                });
                                *position = m.offset + 1;
                            }
                            let stuck = self.stuck.entry(p).or_insert(0);
                            if *position == before && data.highwatermark_offset() > before {
                                *stuck += 1;
                                if *stuck == STUCK_POLLS || stuck.is_multiple_of(1000) {
                                    log::warn!(
                                        "kafka-crate: {topic}/{p} has records from offset \
                                         {before} (high watermark {}) but fetches return none: \
                                         a record larger than consumer.max_bytes ({}) cannot \
                                         be read with Fetch v0",
                                        data.highwatermark_offset(),
                                        self.max_bytes
                                    );
                                }
                            } else {
                                *stuck = 0;
                            }
                        }
                        Err(e) => match error_code(&e) {
                            Some(KafkaCode::OffsetOutOfRange) => out_of_range.push(p),
                            Some(code)
                                if code_means_stale_metadata(code)
                                    || code_kind(code).is_retriable() =>
                            {
                                log::debug!("kafka-crate: fetch {topic}/{p}: {code:?}");
                                self.stale = true;
                            }
                            _ => {
                                let err = map_error(kafka::Error::ArcSelf(e), "fetch failed")
                                    .with_topic(topic.clone())
                                    .with_partition(p);
                                first_error.get_or_insert(err);
                            }
                        },
                    }
                }
            }
        }

        if !out_of_range.is_empty() {
            let starts = self.start_offsets()?;
            for p in out_of_range {
                if let Some(&offset) = starts.get(&p) {
                    log::warn!(
                        "kafka-crate: {topic}/{p} offset {} out of range; resetting to {:?} \
                         offset {offset}",
                        self.positions[&p],
                        self.start_offset
                    );
                    self.positions.insert(p, offset);
                }
            }
        }
        match first_error {
            Some(e) if records.is_empty() => Err(e),
            Some(e) => {
                log::warn!("kafka-crate: {e} (records of other partitions returned)");
                Ok(records)
            }
            None => Ok(records),
        }
    }
}

impl Subscription for KafkaSubscription {
    fn assignment(&self) -> Vec<i32> {
        self.positions.keys().copied().collect()
    }

    fn pause(&mut self, partitions: &[i32]) {
        self.paused.extend(partitions.iter().copied());
    }

    fn resume(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.paused.remove(p);
        }
    }

    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>> {
        let started = Instant::now();
        let cap = self.link.settings().fetch_max_wait;
        loop {
            let remaining = max_wait.saturating_sub(started.elapsed());
            let round = Instant::now();
            let records = self.fetch_once(remaining.min(cap))?;
            if !records.is_empty() || started.elapsed() >= max_wait {
                return Ok(records);
            }
            // A fetch that came back at once with nothing (no leaders, all out of range):
            // do not spin.
            if round.elapsed() < Duration::from_millis(5) {
                let remaining = max_wait.saturating_sub(started.elapsed());
                std::thread::sleep(remaining.min(Duration::from_millis(20)));
            }
        }
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.metadata(false)?;
        let topic = self.topic.clone();
        let commits: Vec<CommitOffset<'_>> = offsets
            .iter()
            .map(|&(p, offset)| CommitOffset::new(&topic, p, offset))
            .collect();
        let client = self.link.client()?;
        match client.commit_offsets(&self.group, commits) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e, "commit failed")),
        }
    }

    fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        self.metadata(false)?;
        let latest = self.list_offsets(FetchOffset::Latest)?;
        let committed = self.committed()?;
        self.positions
            .keys()
            .map(|&p| {
                let high_watermark = *latest.get(&p).ok_or_else(|| {
                    Error::new(
                        ErrorKind::BrokerRetriable,
                        "no high watermark for the partition (no leader?)",
                    )
                    .with_topic(self.topic.clone())
                    .with_partition(p)
                })?;
                Ok(PartitionLag {
                    partition: p,
                    high_watermark,
                    committed: committed.get(&p).copied(),
                })
            })
            .collect()
    }

    fn close(&mut self) -> Result<()> {
        // No group to leave (the crate has no membership); drop the connections.
        self.link.reset();
        Ok(())
    }
}
