//! A group member's [`Subscription`] on the in-process broker: follows the group's
//! assignment, keeps a fetch position per partition, polls fairly, commits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::state::{Broker, State};
use crate::config::StartOffset;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{ConsumedRecord, GroupExit, PartitionLag, SubscribeOptions, Subscription};

/// Most records one poll returns, over all partitions.
pub(super) const MAX_POLL_RECORDS: usize = 500;

/// Who a member is, shared with its [`GroupExit`] handle.
#[derive(Default)]
struct Identity {
    member: String,
    /// Set when another thread took the member out of its group: join again at the next
    /// poll.
    evicted: bool,
}

/// Takes a memory member out of its group from another thread.
struct MemoryExit {
    broker: Arc<Broker>,
    group: String,
    topic: String,
    identity: Arc<Mutex<Identity>>,
}

impl GroupExit for MemoryExit {
    fn leave(&self, reason: &str) {
        let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        if id.evicted {
            return;
        }
        id.evicted = true;
        log::warn!(
            "memory broker: member {} leaves group {} on {}: {reason}",
            id.member,
            self.group,
            self.topic
        );
        self.broker
            .lock()
            .leave(&self.group, &self.topic, &id.member);
        self.broker.membership_changed();
        self.broker.notify();
    }
}

/// Measures a group's lag on the in-process broker from any thread.
struct MemoryLagProbe {
    broker: Arc<Broker>,
    group: String,
    topic: String,
}

impl crate::transport::LagProbe for MemoryLagProbe {
    fn lag(&mut self, partitions: &[i32]) -> Result<Vec<PartitionLag>> {
        let state = self.broker.lock();
        state
            .check_available()
            .map_err(|e| e.with_topic(&self.topic))?;
        Ok(partition_lags(&state, &self.group, &self.topic, partitions))
    }
}

/// High watermark and `group`'s commit of each of `partitions` of `topic`.
fn partition_lags(
    state: &State,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<PartitionLag> {
    let group = state.group(group, topic);
    let t = state.existing(topic);
    partitions
        .iter()
        .map(|&partition| PartitionLag {
            partition,
            high_watermark: t.and_then(|t| t.high_watermark(partition)).unwrap_or(0),
            committed: group.and_then(|g| g.committed.get(&partition).copied()),
        })
        .collect()
}

/// One member of a group on one topic.
pub(super) struct MemorySubscription {
    broker: Arc<Broker>,
    options: SubscribeOptions,
    member: String,
    identity: Arc<Mutex<Identity>>,
    /// The group generation `assignment` and `positions` belong to.
    generation: u64,
    assignment: Vec<i32>,
    /// Next offset to fetch, per assigned partition.
    positions: BTreeMap<i32, i64>,
    /// Rotates the partition a poll starts with, so none is starved.
    next_start: usize,
    /// Partitions not fetched until resumed.
    paused: std::collections::BTreeSet<i32>,
    /// Partitions kept across a generation whose position was reset to the commit.
    restarted: Vec<i32>,
    /// The broker's membership change count when this member last saw its group settled.
    seen_changes: std::cell::Cell<u64>,
    closed: bool,
}

impl MemorySubscription {
    /// Joins the group (the topic must exist) and takes the first assignment.
    pub(super) fn join(broker: Arc<Broker>, state: &mut State, options: SubscribeOptions) -> Self {
        let member = state.join(&options.group, &options.topic, &options.client_id);
        broker.membership_changed();
        let identity = Arc::new(Mutex::new(Identity {
            member: member.clone(),
            evicted: false,
        }));
        let mut sub = MemorySubscription {
            broker,
            options,
            member,
            identity,
            generation: 0,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            next_start: 0,
            paused: std::collections::BTreeSet::new(),
            restarted: Vec::new(),
            seen_changes: std::cell::Cell::new(0),
            closed: false,
        };
        sub.sync(state);
        sub
    }

    /// Adopts the group's current assignment if the generation changed: positions of lost
    /// partitions are dropped; a partition newly owned starts at the committed offset, else
    /// at the start offset; a partition kept keeps its position.
    fn sync(&mut self, state: &State) {
        let (group, topic) = (&self.options.group, &self.options.topic);
        let Some(g) = state.group(group, topic) else {
            return;
        };
        if g.generation == self.generation {
            return;
        }
        let assignment = g.assignment(&self.member);
        let mut positions = BTreeMap::new();
        for &p in &assignment {
            let kept = g.owned_since(p) <= self.generation;
            if !kept && self.positions.contains_key(&p) {
                self.restarted.push(p);
            }
            let position = match self.positions.get(&p) {
                Some(&pos) if kept => pos,
                _ => g.committed.get(&p).copied().unwrap_or_else(|| {
                    match self.options.start_offset {
                        StartOffset::Earliest => 0,
                        StartOffset::Latest => state
                            .existing(topic)
                            .and_then(|t| t.high_watermark(p))
                            .unwrap_or(0),
                    }
                }),
            };
            positions.insert(p, position);
        }
        log::debug!(
            "memory broker: member {} of group {group} on {topic}: generation {}, partitions {assignment:?}",
            self.member,
            g.generation
        );
        self.generation = g.generation;
        self.paused.retain(|p| assignment.contains(p));
        self.assignment = assignment;
        self.positions = positions;
    }

    /// Takes available records after each position: at most [`MAX_POLL_RECORDS`] in all and
    /// `max_bytes` per partition, but always one record of a partition that has any.
    fn fetch(&mut self, state: &State) -> Vec<ConsumedRecord> {
        let mut out = Vec::new();
        let Some(topic) = state.existing(&self.options.topic) else {
            return out;
        };
        let n = self.assignment.len();
        if n == 0 {
            return out;
        }
        let start = self.next_start % n;
        self.next_start = self.next_start.wrapping_add(1);
        for i in 0..n {
            let p = self.assignment[(start + i) % n];
            if self.paused.contains(&p) {
                continue;
            }
            let Some(position) = self.positions.get_mut(&p) else {
                continue;
            };
            let (max_bytes, room) = (self.options.max_bytes, MAX_POLL_RECORDS - out.len());
            let (mut taken, mut bytes) = (0usize, 0usize);
            *position = topic.read(&self.options.topic, p, *position, &mut out, |size| {
                let fits = taken == 0 || bytes.saturating_add(size) <= max_bytes;
                if taken >= room || !fits {
                    return false;
                }
                taken += 1;
                bytes = bytes.saturating_add(size);
                true
            });
            if out.len() >= MAX_POLL_RECORDS {
                break;
            }
        }
        out
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::new(ErrorKind::Closed, "the subscription was closed")
                .with_topic(&self.options.topic));
        }
        Ok(())
    }

    fn is_evicted(&self) -> bool {
        self.identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .evicted
    }

    /// Joins again as a new member after an eviction: every position restarts from the
    /// group's commit.
    fn rejoin(&mut self, state: &mut State) {
        let member = state.join(
            &self.options.group,
            &self.options.topic,
            &self.options.client_id,
        );
        self.broker.membership_changed();
        log::info!(
            "memory broker: member {} of group {} on {} joins again as {member}",
            self.member,
            self.options.group,
            self.options.topic
        );
        {
            let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
            id.member = member.clone();
            id.evicted = false;
        }
        self.member = member;
        self.restarted.extend(self.positions.keys().copied());
        self.positions.clear();
        self.assignment.clear();
        self.generation = 0;
        self.sync(state);
    }
}

impl Subscription for MemorySubscription {
    /// The partitions of the generation this member last saw: a rebalance shows here after
    /// the next [`poll`](Subscription::poll).
    fn assignment(&self) -> Vec<i32> {
        self.assignment.clone()
    }

    /// Returns records as soon as any assigned partition has some (`min_bytes` is not
    /// waited for), else waits for a produce to the topic, a rebalance, or `max_wait`.
    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>> {
        self.check_open()?;
        let deadline = Instant::now().checked_add(max_wait);
        let broker = Arc::clone(&self.broker);
        let mut state = broker.lock();
        if self.is_evicted() {
            self.rejoin(&mut state);
            drop(state);
            broker.notify();
            state = broker.lock();
        }
        loop {
            state
                .check_available()
                .map_err(|e| e.with_topic(&self.options.topic))?;
            self.sync(&state);
            let records = self.fetch(&state);
            if !records.is_empty() {
                return Ok(records);
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return Ok(records),
                },
                None => None,
            };
            state = broker.wait(state, remaining);
        }
    }

    fn pause(&mut self, partitions: &[i32]) {
        self.paused.extend(partitions.iter().copied());
    }

    fn resume(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.paused.remove(p);
        }
        // A poller waiting on the broker would not notice: wake it to look again.
        self.broker.notify();
    }

    fn take_restarted(&mut self) -> Vec<i32> {
        std::mem::take(&mut self.restarted)
    }

    /// Whether the group moved to a new generation this member has not followed yet (it
    /// follows at its next poll). Costs an atomic load unless some membership changed.
    fn rebalance_pending(&self) -> bool {
        let changes = self.broker.membership_changes();
        if changes == self.seen_changes.get() || self.closed {
            return false;
        }
        let state = self.broker.lock();
        let moved = state
            .group(&self.options.group, &self.options.topic)
            .is_some_and(|g| g.generation != self.generation);
        if !moved {
            self.seen_changes.set(changes);
        }
        moved && !self.assignment.is_empty()
    }

    fn lag_probe(&self) -> Option<Box<dyn crate::transport::LagProbe>> {
        Some(Box::new(MemoryLagProbe {
            broker: self.broker.clone(),
            group: self.options.group.clone(),
            topic: self.options.topic.clone(),
        }))
    }

    fn group_exit(&self) -> Option<Arc<dyn GroupExit>> {
        Some(Arc::new(MemoryExit {
            broker: self.broker.clone(),
            group: self.options.group.clone(),
            topic: self.options.topic.clone(),
            identity: self.identity.clone(),
        }))
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
        self.check_open()?;
        if self.is_evicted() {
            return Err(Error::new(
                ErrorKind::BrokerRetriable,
                "this member was taken out of its group; it joins again at its next poll",
            )
            .with_topic(&self.options.topic));
        }
        let mut state = self.broker.lock();
        state
            .check_available()
            .map_err(|e| e.with_topic(&self.options.topic))?;
        state.commit(&self.options.group, &self.options.topic, offsets)
    }

    /// Lag of the partitions [`assignment`](Subscription::assignment) returns.
    fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        self.check_open()?;
        let state = self.broker.lock();
        let topic = &self.options.topic;
        state.check_available().map_err(|e| e.with_topic(topic))?;
        Ok(partition_lags(
            &state,
            &self.options.group,
            topic,
            &self.assignment,
        ))
    }

    /// Leaves the group (its partitions go to the other members). Always succeeds, even
    /// while the broker is unavailable; closing twice is harmless.
    fn close(&mut self) -> Result<()> {
        if !self.closed {
            self.closed = true;
            if !self.is_evicted() {
                self.broker
                    .lock()
                    .leave(&self.options.group, &self.options.topic, &self.member);
                self.broker.membership_changed();
            }
            self.broker.notify();
            self.assignment.clear();
            self.positions.clear();
        }
        Ok(())
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
