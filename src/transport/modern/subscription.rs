//! [`ModernSubscription`]: a group member reading one topic. Joins at its first poll (so
//! several members can be created one after another without waiting for each other), rejoins
//! at the poll after the heartbeat thread reported a rebalance, starts newly assigned
//! partitions at the group's commit (else per the start offset), drops the positions of lost
//! ones, and leaves the group on close or drop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::errors::code;
use super::fetch::{fetch_round, FetchLimits};
use super::group::Membership;
use super::offsets::{self, Committer, EARLIEST, LATEST};
use super::Settings;
use crate::config::StartOffset;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{ConsumedRecord, PartitionLag, SubscribeOptions, Subscription};

/// Sleep between checks for a rejoin while the member has no partitions.
const IDLE_SLICE: Duration = Duration::from_millis(50);

/// A member's subscription to one topic.
#[derive(Debug)]
pub(super) struct ModernSubscription {
    cluster: Cluster,
    member: Membership,
    topic: String,
    group: String,
    start_offset: StartOffset,
    limits: FetchLimits,
    /// This member's partitions, sorted.
    assignment: Vec<i32>,
    /// The next offset to fetch, per assigned partition that has one.
    positions: BTreeMap<i32, i64>,
    /// Partitions not fetched until resumed.
    paused: std::collections::BTreeSet<i32>,
    /// Partitions kept across a rejoin whose positions were reset to the commit.
    restarted: Vec<i32>,
    /// What it was opened with (for lag probes).
    settings: Arc<Settings>,
    options: SubscribeOptions,
    closed: bool,
}

/// Measures a group's lag from another thread: a subscription of its own that never
/// polls, so it never joins the group (opened on first use).
struct ModernLagProbe {
    settings: Arc<Settings>,
    options: SubscribeOptions,
    probe: Option<ModernSubscription>,
}

impl crate::transport::LagProbe for ModernLagProbe {
    fn lag(&mut self, partitions: &[i32]) -> Result<Vec<PartitionLag>> {
        if self.probe.is_none() {
            self.probe = Some(ModernSubscription::open(
                self.settings.clone(),
                self.options.clone(),
            )?);
        }
        let Some(probe) = self.probe.as_mut() else {
            return Ok(Vec::new());
        };
        let all = probe.lag();
        if all.is_err() {
            self.probe = None;
        }
        Ok(all?
            .into_iter()
            .filter(|l| partitions.contains(&l.partition))
            .collect())
    }
}

impl ModernSubscription {
    /// Checks the topic exists (creating it where the broker auto-creates topics); joins the
    /// group at the first poll.
    pub fn open(settings: Arc<Settings>, options: SubscribeOptions) -> Result<Self> {
        if options.group.trim().is_empty() {
            return Err(Error::config(
                "group_id",
                &options.group,
                "a consumer group needs a name",
            ));
        }
        let mut cluster = Cluster::new(settings.clone(), &options.client_id);
        cluster.topic(&options.topic, false)?;
        let limits = FetchLimits {
            max_wait: settings.fetch_max_wait,
            min_bytes: options.min_bytes,
            partition_max_bytes: options.max_bytes.max(1),
            read_committed: settings.read_committed,
        };
        Ok(ModernSubscription {
            member: Membership::new(
                settings.clone(),
                &options.group,
                &options.topic,
                &options.client_id,
            ),
            cluster,
            settings,
            options: options.clone(),
            topic: options.topic,
            group: options.group,
            start_offset: options.start_offset,
            limits,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            paused: std::collections::BTreeSet::new(),
            restarted: Vec::new(),
            closed: false,
        })
    }

    fn closed_error(&self) -> Error {
        Error::new(
            ErrorKind::Closed,
            format!("the subscription of group {} was closed", self.group),
        )
        .with_topic(self.topic.clone())
    }

    /// Joins when needed and follows the new assignment.
    fn follow_group(&mut self) -> Result<()> {
        if !self.member.needs_join() {
            return Ok(());
        }
        let assigned = self.member.join(&mut self.cluster)?;
        if !assigned.continued {
            self.restarted.extend(
                self.positions
                    .keys()
                    .filter(|p| assigned.partitions.contains(p)),
            );
            self.positions.clear();
        }
        self.paused.retain(|p| assigned.partitions.contains(p));
        self.positions
            .retain(|p, _| assigned.partitions.contains(p));
        if assigned.partitions != self.assignment {
            log::info!(
                "modern: group {} on {}: partitions {:?} (were {:?})",
                self.group,
                self.topic,
                assigned.partitions,
                self.assignment
            );
        }
        self.assignment = assigned.partitions;
        Ok(())
    }

    /// Gives each assigned partition without a position the group's commit, else the start
    /// offset.
    fn start_positions(&mut self) -> Result<()> {
        let missing: Vec<i32> = self
            .assignment
            .iter()
            .copied()
            .filter(|p| !self.positions.contains_key(p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = self.committed(&missing)?;
        let need_start: Vec<i32> = missing
            .iter()
            .copied()
            .filter(|p| !committed.contains_key(p))
            .collect();
        self.positions.extend(committed);
        if !need_start.is_empty() {
            let which = match self.start_offset {
                StartOffset::Earliest => EARLIEST,
                StartOffset::Latest => LATEST,
            };
            let starts = offsets::list_offsets(&mut self.cluster, &self.topic, &need_start, which)?;
            self.positions.extend(starts);
        }
        Ok(())
    }

    fn committed(&mut self, partitions: &[i32]) -> Result<std::collections::HashMap<i32, i64>> {
        let (group, topic) = (self.group.clone(), self.topic.clone());
        self.member.with_coordinator(
            &mut self.cluster,
            "fetching committed offsets",
            |cluster, addr| offsets::fetch_committed(cluster, addr, &group, &topic, partitions),
        )
    }

    /// Resets `partitions` whose positions the broker no longer stores, per the start offset.
    fn reset(&mut self, partitions: &[i32]) -> Result<()> {
        let which = match self.start_offset {
            StartOffset::Earliest => EARLIEST,
            StartOffset::Latest => LATEST,
        };
        let starts = offsets::list_offsets(&mut self.cluster, &self.topic, partitions, which)?;
        for (p, offset) in starts {
            log::warn!(
                "modern: {}/{p} offset {:?} is out of range; resetting to {:?} offset {offset}",
                self.topic,
                self.positions.get(&p),
                self.start_offset
            );
            self.positions.insert(p, offset);
        }
        Ok(())
    }

    fn idle(&self, deadline: Instant) {
        while Instant::now() < deadline && !self.member.needs_join() {
            std::thread::sleep(IDLE_SLICE.min(deadline.saturating_duration_since(Instant::now())));
        }
    }
}

impl Subscription for ModernSubscription {
    fn assignment(&self) -> Vec<i32> {
        self.assignment.clone()
    }

    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>> {
        if self.closed {
            return Err(self.closed_error());
        }
        let deadline = Instant::now() + max_wait;
        self.follow_group()?;
        self.start_positions()?;
        if self.positions.keys().all(|p| self.paused.contains(p)) {
            self.idle(deadline);
            return Ok(Vec::new());
        }
        loop {
            let round_started = Instant::now();
            let limits = FetchLimits {
                max_wait: deadline
                    .saturating_duration_since(round_started)
                    .min(self.limits.max_wait),
                ..self.limits
            };
            let round = if self.paused.is_empty() {
                fetch_round(&mut self.cluster, &self.topic, &mut self.positions, limits)?
            } else {
                let mut active: BTreeMap<i32, i64> = self
                    .positions
                    .iter()
                    .filter(|(p, _)| !self.paused.contains(p))
                    .map(|(p, o)| (*p, *o))
                    .collect();
                let round = fetch_round(&mut self.cluster, &self.topic, &mut active, limits)?;
                self.positions.extend(active);
                round
            };
            if round.stale {
                self.cluster.forget(&self.topic);
            }
            if !round.out_of_range.is_empty() {
                self.reset(&round.out_of_range)?;
            }
            let mut errors = round.errors.into_iter();
            if !round.records.is_empty() {
                if let Some(e) = errors.next() {
                    log::warn!("modern: {e} (records of other partitions returned)");
                }
                return Ok(round.records);
            }
            if let Some(e) = errors.next() {
                return Err(e.with_topic(self.topic.clone()));
            }
            if Instant::now() >= deadline || self.member.needs_join() {
                return Ok(Vec::new());
            }
            // An answer that came back at once with nothing (no leader, a reset): do not spin.
            if round_started.elapsed() < Duration::from_millis(5) {
                std::thread::sleep(
                    Duration::from_millis(20)
                        .min(deadline.saturating_duration_since(Instant::now())),
                );
            }
        }
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
        if self.closed {
            return Err(self.closed_error());
        }
        let ours: Vec<(i32, i64)> = offsets
            .iter()
            .copied()
            .filter(|(p, _)| self.assignment.contains(p))
            .collect();
        if ours.len() < offsets.len() {
            log::debug!(
                "modern: not committing {:?} of {}: no longer assigned to this member",
                offsets
                    .iter()
                    .filter(|(p, _)| !self.assignment.contains(p))
                    .collect::<Vec<_>>(),
                self.topic
            );
        }
        if ours.is_empty() {
            return Ok(());
        }
        let (generation, member_id) = self.member.generation();
        let (group, topic) = (self.group.clone(), self.topic.clone());
        let instance = self.member.instance().map(str::to_string);
        let who = Committer {
            group: &group,
            generation,
            member_id: &member_id,
            instance: instance.as_deref(),
        };
        let mut rebalancing = false;
        let result = self
            .member
            .with_coordinator(&mut self.cluster, "commit", |cluster, addr| {
                let c = offsets::commit(cluster, addr, &who, &topic, &ours)?;
                rebalancing |= matches!(
                    c,
                    code::REBALANCE_IN_PROGRESS
                        | code::ILLEGAL_GENERATION
                        | code::UNKNOWN_MEMBER_ID
                );
                Ok(if c == code::NONE { Ok(()) } else { Err(c) })
            });
        if rebalancing {
            // The group moved on without this member: rejoin at the next poll; the records
            // are read again by whoever owns their partitions then.
            self.member.request_rejoin();
        }
        result.map_err(|e| e.with_topic(self.topic.clone()))
    }

    /// The lag of this member's partitions; before its first join (no poll yet), of every
    /// partition of the topic, so a subscription opened just to measure a group's lag sees
    /// all of it without joining (and so without disturbing) the group.
    fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        let partitions = if self.member.generation().0 < 0 {
            let meta = self.cluster.topic(&self.topic, false)?;
            meta.partitions.iter().map(|p| p.id).collect()
        } else {
            self.assignment.clone()
        };
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let latest = offsets::list_offsets(&mut self.cluster, &self.topic, &partitions, LATEST)?;
        let committed = self.committed(&partitions)?;
        Ok(partitions
            .iter()
            .filter_map(|&p| {
                latest.get(&p).map(|&high_watermark| PartitionLag {
                    partition: p,
                    high_watermark,
                    committed: committed.get(&p).copied(),
                })
            })
            .collect())
    }

    fn pause(&mut self, partitions: &[i32]) {
        self.paused.extend(partitions.iter().copied());
    }

    fn resume(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.paused.remove(p);
        }
    }

    fn take_restarted(&mut self) -> Vec<i32> {
        std::mem::take(&mut self.restarted)
    }

    fn lag_probe(&self) -> Option<Box<dyn crate::transport::LagProbe>> {
        Some(Box::new(ModernLagProbe {
            settings: self.settings.clone(),
            options: self.options.clone(),
            probe: None,
        }))
    }

    fn group_exit(&self) -> Option<Arc<dyn crate::transport::GroupExit>> {
        Some(Arc::new(self.member.exit_handle()))
    }

    fn rebalance_pending(&self) -> bool {
        !self.assignment.is_empty() && self.member.needs_join()
    }

    fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.assignment.clear();
        self.positions.clear();
        let left = self.member.leave(&mut self.cluster);
        self.cluster.reset();
        left
    }
}

#[cfg(test)]
impl ModernSubscription {
    /// A crash, for tests: the member stops heartbeating without leaving the group.
    pub fn crash(mut self) {
        self.member.crash();
        self.closed = true;
    }
}

impl Drop for ModernSubscription {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("modern: leaving group {} on drop failed: {e}", self.group);
        }
    }
}
