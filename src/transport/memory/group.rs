//! A consumer group on one topic, as strict as Kafka's classic (eager) protocol:
//!
//! ```text
//!  a member joins, leaves, or its session expires
//!    ─▶ a rebalance starts: every member gives up all its partitions when it next polls
//!       (rejoins); until then it keeps reading and may still commit in its generation
//!    ─▶ once every member rejoined (or the rebalance timeout dropped those that did not):
//!       generation + 1, range assignment over the members, each takes its partitions
//!  commits carry the member id and generation: an unknown member gets UNKNOWN_MEMBER_ID,
//!  an old generation ILLEGAL_GENERATION, a member that already rejoined
//!  REBALANCE_IN_PROGRESS, a replaced static member FENCED_INSTANCE_ID
//!  static members (an instance id) keep their partitions across a restart: the new member
//!  takes the old one's place without a rebalance, and closing does not leave the group
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::transport::broker_code::{code, code_kind};

/// Session and rebalance timeouts of the in-memory broker's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupTimeouts {
    /// A member whose subscription is gone (closed without leaving: a static member, or
    /// crashed) for this long is removed.
    pub(super) session: Duration,
    /// Members that have not rejoined this long after a rebalance started are removed.
    pub(super) rebalance: Duration,
}

impl Default for GroupTimeouts {
    /// Kafka's defaults: a 45 s session; the rebalance timeout as the Java consumer's
    /// `max.poll.interval.ms` (300 s) would be too long for tests, so 30 s.
    fn default() -> Self {
        GroupTimeouts {
            session: Duration::from_secs(45),
            rebalance: Duration::from_secs(30),
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone)]
struct Member {
    /// Static membership: the instance id it joined with.
    instance: Option<String>,
    /// Alive while the member's subscription is (Kafka's heartbeat thread runs while the
    /// client does, whatever its handlers do): its session goes on meanwhile.
    heartbeat: Weak<()>,
    /// When it was last known alive (a call, or a settle that found its heartbeat).
    last_seen: Instant,
}

/// A rebalance under way.
#[derive(Debug, Clone)]
struct Rebalance {
    started: Instant,
    /// Members that gave up their partitions and wait for the new generation.
    rejoined: BTreeSet<String>,
}

/// A consumer group's view of one topic: members, the range assignment among them, and the
/// committed offsets (kept after every member has left).
#[derive(Debug, Default)]
pub(super) struct Group {
    /// The current generation (its assignments); 0 before the first.
    pub(super) generation: u64,
    members: BTreeMap<String, Member>,
    /// The partitions of each member in the current generation.
    assignments: HashMap<String, Vec<i32>>,
    rebalance: Option<Rebalance>,
    /// Member ids replaced by a new member with their instance id.
    fenced: HashSet<String>,
    /// Next offset to read, per partition.
    pub(super) committed: HashMap<i32, i64>,
}

/// The error Kafka answers with `c`, for `what` of `member`.
fn refused(c: i16, what: &str, member: &str, why: &str) -> Error {
    Error::new(
        code_kind(c),
        format!(
            "{what} of member {member}: broker answered {} (code {c}): {why}",
            crate::transport::broker_code::code_name(c)
        ),
    )
    .with_broker_code(c)
}

impl Group {
    /// The partitions assigned to `member` in the current generation.
    pub(super) fn assignment(&self, member: &str) -> Vec<i32> {
        self.assignments.get(member).cloned().unwrap_or_default()
    }

    /// Whether `member` belongs to the group.
    pub(super) fn has(&self, member: &str) -> bool {
        self.members.contains_key(member)
    }

    /// Whether a rebalance waits for `member` to rejoin (give up its partitions).
    pub(super) fn waits_for(&self, member: &str) -> bool {
        self.rebalance
            .as_ref()
            .is_some_and(|r| !r.rejoined.contains(member))
            && self.has(member)
    }

    /// Whether a rebalance is under way.
    pub(super) fn rebalancing(&self) -> bool {
        self.rebalance.is_some()
    }

    /// Whether `member` was replaced by another member with its instance id.
    pub(super) fn is_fenced(&self, member: &str) -> bool {
        self.fenced.contains(member)
    }

    /// Adds `member` (which gave up nothing: it holds nothing); with an `instance` id a
    /// member already holds, the new one takes its place and partitions, and the old one is
    /// fenced. Anything else starts a rebalance (the new member counts as rejoined).
    pub(super) fn join(
        &mut self,
        member: &str,
        instance: Option<&str>,
        heartbeat: Weak<()>,
        partitions: usize,
        timeouts: GroupTimeouts,
    ) {
        let now = Instant::now();
        let entry = Member {
            instance: instance.map(str::to_string),
            heartbeat,
            last_seen: now,
        };
        if let Some(instance) = instance {
            let old = self
                .members
                .iter()
                .find(|(_, m)| m.instance.as_deref() == Some(instance))
                .map(|(id, _)| id.clone());
            if let Some(old) = old {
                self.members.remove(&old);
                self.fenced.insert(old.clone());
                self.members.insert(member.to_string(), entry);
                if let Some(parts) = self.assignments.remove(&old) {
                    self.assignments.insert(member.to_string(), parts);
                }
                if let Some(r) = self.rebalance.as_mut() {
                    if r.rejoined.remove(&old) {
                        r.rejoined.insert(member.to_string());
                    }
                }
                log::info!(
                    "memory broker: static member {instance} is back as {member} (was {old}): \
                     no rebalance"
                );
                self.settle(partitions, timeouts);
                return;
            }
        }
        self.members.insert(member.to_string(), entry);
        self.start_rebalance(now);
        if let Some(r) = self.rebalance.as_mut() {
            r.rejoined.insert(member.to_string());
        }
        self.settle(partitions, timeouts);
    }

    /// Removes `member` (a leave, or the watchdog taking it out); the others rebalance.
    pub(super) fn leave(&mut self, member: &str, partitions: usize, timeouts: GroupTimeouts) {
        if self.members.remove(member).is_none() {
            return;
        }
        self.assignments.remove(member);
        if let Some(r) = self.rebalance.as_mut() {
            r.rejoined.remove(member);
        }
        if !self.members.is_empty() {
            self.start_rebalance(Instant::now());
        }
        self.settle(partitions, timeouts);
    }

    /// `member` gives up its partitions and waits for the new generation.
    pub(super) fn rejoin(&mut self, member: &str, partitions: usize, timeouts: GroupTimeouts) {
        if let Some(r) = self.rebalance.as_mut() {
            r.rejoined.insert(member.to_string());
        }
        self.settle(partitions, timeouts);
    }

    /// Notes that `member` called the broker (its session goes on).
    pub(super) fn seen(&mut self, member: &str) {
        if let Some(m) = self.members.get_mut(member) {
            m.last_seen = Instant::now();
        }
    }

    fn start_rebalance(&mut self, now: Instant) {
        if self.rebalance.is_none() {
            self.rebalance = Some(Rebalance {
                started: now,
                rejoined: BTreeSet::new(),
            });
        }
    }

    /// Removes members whose session expired and, past the rebalance timeout, members that
    /// did not rejoin; completes the rebalance once every member rejoined. Returns whether
    /// anything changed.
    pub(super) fn settle(&mut self, partitions: usize, timeouts: GroupTimeouts) -> bool {
        let now = Instant::now();
        for m in self.members.values_mut() {
            if m.heartbeat.strong_count() > 0 {
                m.last_seen = now;
            }
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) > timeouts.session)
            .map(|(id, _)| id.clone())
            .collect();
        let late: Vec<String> = match &self.rebalance {
            Some(r) if now.saturating_duration_since(r.started) > timeouts.rebalance => self
                .members
                .keys()
                .filter(|id| !r.rejoined.contains(*id))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let mut changed = false;
        for id in expired.iter().chain(&late) {
            if self.members.remove(id).is_some() {
                log::warn!(
                    "memory broker: member {id} removed from its group ({})",
                    if expired.contains(id) {
                        "session expired"
                    } else {
                        "did not rejoin within the rebalance timeout"
                    }
                );
                self.assignments.remove(id);
                if let Some(r) = self.rebalance.as_mut() {
                    r.rejoined.remove(id);
                }
                changed = true;
            }
        }
        if changed && !self.members.is_empty() {
            self.start_rebalance(now);
        }
        let complete = self
            .rebalance
            .as_ref()
            .is_some_and(|r| self.members.keys().all(|id| r.rejoined.contains(id)));
        if complete {
            self.rebalance = None;
            self.assign(partitions);
            changed = true;
        }
        changed
    }

    /// Starts a new generation: partitions in contiguous ranges over the sorted members, the
    /// first `partitions % members` members taking one more.
    fn assign(&mut self, partitions: usize) {
        self.generation += 1;
        self.assignments.clear();
        let count = self.members.len();
        if count == 0 {
            return;
        }
        let (base, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (i, member) in self.members.keys().enumerate() {
            let n = base + usize::from(i < extra);
            let parts: Vec<i32> = (next..next + n).map(|p| p as i32).collect();
            next += n;
            self.assignments.insert(member.clone(), parts);
        }
    }

    /// Checks a commit of `member` in `generation` as Kafka's coordinator does.
    pub(super) fn check_commit(&self, member: &str, generation: u64) -> Result<()> {
        if self.fenced.contains(member) {
            return Err(refused(
                code::FENCED_INSTANCE_ID,
                "commit",
                member,
                "another member took its instance id",
            ));
        }
        if !self.has(member) {
            return Err(refused(
                code::UNKNOWN_MEMBER_ID,
                "commit",
                member,
                "not a member of the group (it left, was taken out, or its session expired)",
            ));
        }
        if self
            .rebalance
            .as_ref()
            .is_some_and(|r| r.rejoined.contains(member))
        {
            return Err(refused(
                code::REBALANCE_IN_PROGRESS,
                "commit",
                member,
                "it gave up its partitions; the group is rebalancing",
            ));
        }
        if generation != self.generation {
            return Err(refused(
                code::ILLEGAL_GENERATION,
                "commit",
                member,
                &format!(
                    "generation {generation}, the group is at {}",
                    self.generation
                ),
            ));
        }
        Ok(())
    }
}
