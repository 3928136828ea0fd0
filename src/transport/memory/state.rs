//! The broker's state behind the lock: topics and their partitions, consumer groups with
//! their members, assignments and committed offsets, and the fault-injection switches.

use std::collections::{BTreeMap, HashMap};

mod groups;

use super::group::{Group, GroupTimeouts};
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::config::validate_topic_name;
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{ConsumedRecord, Header, OutgoingRecord};

/// The partition count of auto-created topics unless told otherwise (our brokers' default).
pub(super) const DEFAULT_PARTITIONS: usize = 3;

/// The state and the condition variable that announces produces, rebalances and
/// availability changes to waiting pollers.
pub(super) struct Broker {
    state: Mutex<State>,
    changed: Condvar,
    /// Bumped at every join and leave of any group, so members can tell cheaply (without
    /// the lock) whether a rebalance may be under way.
    membership: std::sync::atomic::AtomicU64,
}

impl Broker {
    pub(super) fn new(default_partitions: usize) -> Self {
        Broker {
            state: Mutex::new(State::new(default_partitions)),
            changed: Condvar::new(),
            membership: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records that some group's membership changed.
    pub(super) fn membership_changed(&self) {
        self.membership
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many membership changes happened so far.
    pub(super) fn membership_changes(&self) -> u64 {
        self.membership.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Locks the state; a poisoned lock (a panic while it was held) is taken over, since every
    /// update leaves the state consistent before anything can panic.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every thread waiting in [`Broker::wait`].
    pub(super) fn notify(&self) {
        self.changed.notify_all();
    }

    /// Releases the lock until [`Broker::notify`] or `timeout` (forever if `None`), then
    /// takes it back.
    pub(super) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Option<std::time::Duration>,
    ) -> MutexGuard<'a, State> {
        match timeout {
            Some(t) => {
                self.changed
                    .wait_timeout(guard, t)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self.changed.wait(guard).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

impl fmt::Debug for Broker {
    /// A summary (topic and group counts), never the stored records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Broker");
        match self.state.try_lock() {
            Ok(s) => d
                .field("topics", &s.topics.len())
                .field("groups", &s.groups.len())
                .field("default_partitions", &s.default_partitions)
                .field("auto_create", &s.auto_create)
                .field("unavailable", &s.unavailable)
                .finish(),
            Err(_) => d.finish_non_exhaustive(),
        }
    }
}

/// One stored record; its offset is its index in the partition.
struct Stored {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    /// A tombstone: the value is null (only [`State::append_tombstone`] writes them).
    null_value: bool,
    headers: Vec<Header>,
}

/// A topic: its partitions, each a log of records.
pub(super) struct Topic {
    partitions: Vec<Vec<Stored>>,
}

impl Topic {
    pub(super) fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// The next offset of `partition`, or `None` if the partition does not exist.
    pub(super) fn high_watermark(&self, partition: i32) -> Option<i64> {
        self.log(partition).map(|log| log.len() as i64)
    }

    pub(super) fn high_watermarks(&self) -> Vec<i64> {
        self.partitions.iter().map(|l| l.len() as i64).collect()
    }

    fn log(&self, partition: i32) -> Option<&Vec<Stored>> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
    }

    /// Appends records of `partition` from `offset` to `out` while `take` says yes for the
    /// record's size; returns the offset after the last record taken.
    pub(super) fn read(
        &self,
        name: &str,
        partition: i32,
        offset: i64,
        out: &mut Vec<ConsumedRecord>,
        mut take: impl FnMut(usize) -> bool,
    ) -> i64 {
        let Some(log) = self.log(partition) else {
            return offset;
        };
        let mut next = offset.max(0);
        while let Some(r) = usize::try_from(next).ok().and_then(|i| log.get(i)) {
            let size = r.key.as_ref().map_or(0, Vec::len)
                + r.value.len()
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.len())
                    .sum::<usize>();
            if !take(size) {
                break;
            }
            out.push(ConsumedRecord {
                topic: name.to_string(),
                partition,
                offset: next,
                key: r.key.clone(),
                value: r.value.clone(),
                null_value: r.null_value,
                headers: r.headers.clone(),
            });
            next += 1;
        }
        next
    }
}

/// Everything the broker knows.
pub(super) struct State {
    pub(super) default_partitions: usize,
    pub(super) auto_create: bool,
    pub(super) unavailable: bool,
    /// Produce calls still to fail, and with which kind.
    pub(super) injected_failures: (usize, ErrorKind),
    /// Produce calls still to fail after storing their records (an unknown outcome: the
    /// acknowledgement was lost), and with which kind.
    pub(super) failures_after_storing: (usize, ErrorKind),
    /// Polls still to fail right after they followed a new generation.
    pub(super) polls_failing_after_rejoin: usize,
    /// Commits still to fail.
    pub(super) commits_failing: usize,
    /// Rejoins still to fail (before they reach the group).
    pub(super) joins_failing: usize,
    /// Session and rebalance timeouts of every group.
    pub(super) timeouts: GroupTimeouts,
    pub(super) produce_calls: u64,
    pub(super) topics: BTreeMap<String, Topic>,
    /// group → topic → group state.
    groups: HashMap<String, HashMap<String, Group>>,
    next_member: u64,
}

/// The error every call gets while the broker is marked unavailable.
pub(super) fn unavailable() -> Error {
    Error::new(ErrorKind::Connection, "memory broker is unavailable")
}

impl State {
    fn new(default_partitions: usize) -> Self {
        State {
            default_partitions: default_partitions.max(1),
            auto_create: true,
            unavailable: false,
            injected_failures: (0, ErrorKind::Connection),
            failures_after_storing: (0, ErrorKind::Connection),
            polls_failing_after_rejoin: 0,
            commits_failing: 0,
            joins_failing: 0,
            timeouts: GroupTimeouts::default(),
            produce_calls: 0,
            topics: BTreeMap::new(),
            groups: HashMap::new(),
            next_member: 0,
        }
    }

    /// `Err(Connection)` while the broker is marked unavailable.
    pub(super) fn check_available(&self) -> Result<()> {
        if self.unavailable {
            Err(unavailable())
        } else {
            Ok(())
        }
    }

    /// The topic, if it exists (never creates it).
    pub(super) fn existing(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    /// The topic, created with the default partition count if it is missing and
    /// auto-creation is on.
    pub(super) fn topic(&mut self, name: &str) -> Result<&Topic> {
        validate_topic_name(name)?;
        if !self.topics.contains_key(name) {
            if !self.auto_create {
                return Err(Error::new(
                    ErrorKind::UnknownTopic,
                    format!("topic {name:?} does not exist and auto-creation is off"),
                )
                .with_topic(name));
            }
            self.insert_topic(name, self.default_partitions);
        }
        Ok(&self.topics[name])
    }

    /// Creates `name` with `partitions`; fine if it already has exactly that many.
    pub(super) fn create_topic(&mut self, name: &str, partitions: usize) -> Result<()> {
        validate_topic_name(name)?;
        if partitions == 0 || partitions > i32::MAX as usize {
            return Err(Error::config(
                "partitions",
                partitions,
                "a topic has from 1 to 2147483647 partitions",
            ));
        }
        match self.topics.get(name) {
            Some(t) if t.partition_count() == partitions => Ok(()),
            Some(t) => Err(Error::new(
                ErrorKind::Broker,
                format!(
                    "topic {name:?} already exists with {} partitions, not {partitions}",
                    t.partition_count()
                ),
            )
            .with_topic(name)),
            None => {
                self.insert_topic(name, partitions);
                Ok(())
            }
        }
    }

    fn insert_topic(&mut self, name: &str, partitions: usize) {
        let partitions = (0..partitions).map(|_| Vec::new()).collect();
        self.topics.insert(name.to_string(), Topic { partitions });
    }

    /// Counts the call, then applies unavailability, injected failures and the topic checks
    /// to the whole batch; appends each record with a valid partition.
    pub(super) fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
    ) -> Vec<Result<Delivery>> {
        self.produce_calls += 1;
        let whole = |e: Error| -> Vec<Result<Delivery>> {
            records.iter().map(|_| Err(e.detached())).collect()
        };
        if self.unavailable {
            return whole(unavailable().with_topic(topic));
        }
        if self.injected_failures.0 > 0 {
            self.injected_failures.0 -= 1;
            let kind = self.injected_failures.1;
            return whole(Error::new(kind, "injected produce failure").with_topic(topic));
        }
        if let Err(e) = self.topic(topic) {
            return whole(e);
        }
        let Some(t) = self.topics.get_mut(topic) else {
            return whole(Error::new(ErrorKind::UnknownTopic, "topic vanished").with_topic(topic));
        };
        let count = t.partitions.len();
        let lost_ack = match &mut self.failures_after_storing {
            (0, _) => None,
            (n, kind) => {
                *n -= 1;
                Some(*kind)
            }
        };
        let stored: Vec<Result<Delivery>> = records
            .iter()
            .map(|r| {
                let log = usize::try_from(r.partition)
                    .ok()
                    .and_then(|p| t.partitions.get_mut(p))
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UnknownTopic,
                            format!(
                                "partition {} does not exist (topic has {count} partitions)",
                                r.partition
                            ),
                        )
                        .with_topic(topic)
                        .with_partition(r.partition)
                    })?;
                log.push(Stored {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    null_value: false,
                    headers: r.headers.clone(),
                });
                Ok(Delivery {
                    partition: r.partition,
                    offset: log.len() as i64 - 1,
                })
            })
            .collect();
        match lost_ack {
            None => stored,
            Some(kind) => stored
                .into_iter()
                .map(|r| {
                    r.and_then(|_| {
                        Err(Error::new(
                            kind,
                            "injected failure after the records were stored (the \
                             acknowledgement was lost)",
                        )
                        .with_topic(topic))
                    })
                })
                .collect(),
        }
    }

    /// Appends a record with a null value (a tombstone) to `partition` of `topic`; returns
    /// its offset.
    pub(super) fn append_tombstone(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<Vec<u8>>,
    ) -> Result<i64> {
        self.topic(topic)?;
        let log = self
            .topics
            .get_mut(topic)
            .and_then(|t| {
                usize::try_from(partition)
                    .ok()
                    .and_then(|p| t.partitions.get_mut(p))
            })
            .ok_or_else(|| {
                Error::new(ErrorKind::UnknownTopic, format!("no partition {partition}"))
                    .with_topic(topic)
            })?;
        log.push(Stored {
            key,
            value: Vec::new(),
            null_value: true,
            headers: Vec::new(),
        });
        Ok(log.len() as i64 - 1)
    }

    pub(super) fn group(&self, group: &str, topic: &str) -> Option<&Group> {
        self.groups.get(group).and_then(|g| g.get(topic))
    }

    /// Stores the group's committed offsets, as Kafka's coordinator does: `member` must be
    /// in the group in `generation` (see [`Group::check_commit`]), every partition must
    /// exist and every offset be 0 or more (past the high watermark is accepted, as a
    /// broker does).
    pub(super) fn commit(
        &mut self,
        group: &str,
        topic: &str,
        member: (&str, u64),
        offsets: &[(i32, i64)],
    ) -> Result<()> {
        if let Some(g) = self.group(group, topic) {
            g.check_commit(member.0, member.1)
                .map_err(|e| e.with_topic(topic))?;
        }
        let t = self.topics.get(topic).ok_or_else(|| {
            Error::new(
                ErrorKind::UnknownTopic,
                format!("topic {topic:?} does not exist"),
            )
            .with_topic(topic)
        })?;
        for &(partition, offset) in offsets {
            t.high_watermark(partition).ok_or_else(|| {
                Error::new(
                    ErrorKind::Broker,
                    format!(
                        "cannot commit to partition {partition}: the topic has {} partitions",
                        t.partition_count()
                    ),
                )
                .with_topic(topic)
                .with_partition(partition)
            })?;
            if offset < 0 {
                return Err(Error::new(
                    ErrorKind::Broker,
                    format!("cannot commit offset {offset}: offsets are 0 or more"),
                )
                .with_topic(topic)
                .with_partition(partition));
            }
        }
        let g = self
            .groups
            .entry(group.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default();
        g.committed.extend(offsets.iter().copied());
        Ok(())
    }
}
