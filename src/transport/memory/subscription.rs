//! A group member's [`Subscription`] on the in-process broker: follows the group's
//! assignment, keeps a fetch position per partition, polls fairly, commits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod follow;

use self::follow::Followed;
use super::state::{Broker, State};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{ConsumedRecord, GroupExit, PartitionLag, SubscribeOptions, Subscription};

/// Most records one poll returns, over all partitions.
pub(super) const MAX_POLL_RECORDS: usize = 500;
/// How often a poll waiting for a rebalance looks at the group again (for its timeout).
const REBALANCE_CHECK: Duration = Duration::from_millis(50);

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
    /// Static membership: the instance id it joined with.
    instance: Option<String>,
    /// The member's heartbeat, as the broker sees it: alive while this subscription is
    /// open (dropped at close, so a static member's session then runs out).
    heartbeat: Arc<()>,
    member: String,
    identity: Arc<Mutex<Identity>>,
    /// The group generation `assignment` and `positions` belong to (0: none yet).
    generation: u64,
    assignment: Vec<i32>,
    /// Next offset to fetch, per assigned partition.
    positions: BTreeMap<i32, i64>,
    /// Positions of the partitions given up for a rebalance under way in this poll: kept
    /// if the next generation gives them back before the poll returns (nobody else owned
    /// them in between), else forgotten (the reader is told: `restarted`).
    given_up: BTreeMap<i32, i64>,
    /// Rotates the partition a poll starts with, so none is starved.
    next_start: usize,
    /// Partitions not fetched until resumed.
    paused: std::collections::BTreeSet<i32>,
    /// Partitions whose position was reset to the commit while the reader may hold records
    /// of them (given up, or kept across a rejoin as a new member).
    restarted: Vec<i32>,
    /// The broker's membership change count when this member last saw its group settled.
    seen_changes: std::cell::Cell<u64>,
    /// Polls still to fail (fault injection, taken at a rejoin).
    failing_polls: usize,
    closed: bool,
}

impl MemorySubscription {
    /// Joins the group (the topic must exist), with `instance` as a static member, and
    /// takes the first assignment if the group settles at once.
    pub(super) fn join(
        broker: Arc<Broker>,
        state: &mut State,
        options: SubscribeOptions,
        instance: Option<String>,
    ) -> Self {
        let heartbeat = Arc::new(());
        let member = state.join(
            &options.group,
            &options.topic,
            &options.client_id,
            instance.as_deref(),
            Arc::downgrade(&heartbeat),
        );
        broker.membership_changed();
        let identity = Arc::new(Mutex::new(Identity {
            member: member.clone(),
            evicted: false,
        }));
        let mut sub = MemorySubscription {
            broker,
            options,
            instance,
            member,
            heartbeat,
            identity,
            generation: 0,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            given_up: BTreeMap::new(),
            next_start: 0,
            paused: std::collections::BTreeSet::new(),
            restarted: Vec::new(),
            seen_changes: std::cell::Cell::new(0),
            failing_polls: 0,
            closed: false,
        };
        if let Err(e) = sub.follow(state) {
            log::debug!("memory broker: {e}");
        }
        sub
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
}

impl Subscription for MemorySubscription {
    /// The partitions of the generation this member last saw: a rebalance shows here after
    /// the next [`poll`](Subscription::poll).
    fn assignment(&self) -> Vec<i32> {
        self.assignment.clone()
    }

    /// Returns records as soon as any assigned partition has some (`min_bytes` is not
    /// waited for), else waits for a produce to the topic, a rebalance, or `max_wait`. A
    /// rebalance under way makes the member give up its partitions and wait (within
    /// `max_wait`) for the others; if the poll ends before the group settles, it returns
    /// with no partitions, and those it held restart from the group's commit.
    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>> {
        self.check_open()?;
        let deadline = Instant::now().checked_add(max_wait);
        let broker = Arc::clone(&self.broker);
        let mut state = broker.lock();
        if self.is_evicted() {
            self.rejoin(&mut state);
        }
        loop {
            state
                .check_available()
                .map_err(|e| e.with_topic(&self.options.topic))?;
            let followed = self.follow(&mut state)?;
            if let Followed::Current { adopted: true } = followed {
                self.failing_polls += std::mem::take(&mut state.polls_failing_after_rejoin);
            }
            if self.failing_polls > 0 {
                self.failing_polls -= 1;
                return Err(Error::new(
                    ErrorKind::Connection,
                    "injected fetch failure after a rejoin \
                     (MemoryTransport::fail_polls_after_rejoin)",
                )
                .with_topic(&self.options.topic));
            }
            let waiting = matches!(followed, Followed::Waiting);
            if !waiting {
                let records = self.fetch(&state);
                if !records.is_empty() {
                    return Ok(records);
                }
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => {
                        if waiting {
                            // Returns holding nothing: what it gave up restarts.
                            self.forget_given_up(&BTreeMap::new());
                        }
                        return Ok(Vec::new());
                    }
                },
                None => None,
            };
            // A rebalance's timeout is checked by whoever calls: look again now and then.
            let slice = if waiting {
                Some(remaining.map_or(REBALANCE_CHECK, |r| r.min(REBALANCE_CHECK)))
            } else {
                remaining
            };
            state = broker.wait(state, slice);
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

    /// Whether a rebalance waits for this member to give up its partitions (it does at its
    /// next poll): the moment to commit. Costs an atomic load unless some membership
    /// changed.
    fn rebalance_pending(&self) -> bool {
        let changes = self.broker.membership_changes();
        if changes == self.seen_changes.get() || self.closed {
            return false;
        }
        let state = self.broker.lock();
        let group = state.group(&self.options.group, &self.options.topic);
        let waits = group.is_some_and(|g| g.waits_for(&self.member));
        let settled = group.is_none_or(|g| !g.rebalancing() && g.generation == self.generation);
        if settled {
            self.seen_changes.set(changes);
        }
        waits && !self.assignment.is_empty()
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

    /// Commits with this member's id and generation, which the broker checks as Kafka does
    /// (a member taken out of the group gets UNKNOWN_MEMBER_ID, an old generation
    /// ILLEGAL_GENERATION). Offsets of partitions not assigned to it are not sent.
    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
        self.check_open()?;
        let ours: Vec<(i32, i64)> = offsets
            .iter()
            .copied()
            .filter(|(p, _)| self.assignment.contains(p))
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        let member = self
            .identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .member
            .clone();
        let mut state = self.broker.lock();
        state
            .check_available()
            .map_err(|e| e.with_topic(&self.options.topic))?;
        if state.commits_failing > 0 {
            state.commits_failing -= 1;
            return Err(Error::new(
                ErrorKind::Connection,
                "injected commit failure (MemoryTransport::fail_next_commits)",
            )
            .with_topic(&self.options.topic));
        }
        let (group, topic) = (&self.options.group, &self.options.topic);
        if let Some(g) = state.group(group, topic) {
            if g.has(&member) {
                let _ = state.settle(group, topic, Some(&member));
            }
        }
        state.commit(group, topic, (&member, self.generation), &ours)
    }

    /// Lag of the partitions [`assignment`](Subscription::assignment) returns.
    fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        self.check_open()?;
        let mut state = self.broker.lock();
        let topic = &self.options.topic;
        state.check_available().map_err(|e| e.with_topic(topic))?;
        if state.settle(&self.options.group, topic, Some(&self.member)) {
            self.broker.membership_changed();
            self.broker.notify();
        }
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
            self.heartbeat = Arc::new(()); // the broker's weak handle to the old one dies
            if self.instance.is_some() {
                log::info!(
                    "memory broker: static member {} closes without leaving group {}: its \
                     partitions wait for it until its session expires",
                    self.member,
                    self.options.group
                );
            } else if !self.is_evicted() {
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
