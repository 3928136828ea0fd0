//! [`ModernSubscription`]: a group member reading one topic. Joins at its first poll (so
//! several members can be created one after another without waiting for each other), rejoins
//! at the poll after the heartbeat thread reported a rebalance, starts newly assigned
//! partitions at the group's commit (else per the start offset), drops the positions of lost
//! ones, and leaves the group on close or drop.
//!
//! Prefetch: when a poll hands records over, it first writes the next fetch (the broker
//! answers at once with what it has: `max_wait` 0) for the partitions not paused and holding
//! nothing unreturned, so the broker prepares the next answer while these records are
//! handled; the next poll reads it. Fetches travel on connections of their own (a second
//! [`Cluster`], as the Java client gives its coordinator its own connection), so a commit,
//! an offset lookup or a group call between polls never meets the fetch's answer. Records
//! of a partition paused meanwhile wait in the subscription until it is resumed; an answer
//! for a partition whose position moved meanwhile (a rejoin, a reset) is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod follow;

use super::cluster::Cluster;
use super::errors::code;
use super::fetch::{receive_round, route, send_round, FetchLimits, InFlight, Round};
use super::group::Membership;
use super::offsets::{self, Committer, LATEST};
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
    /// Connections for fetches only (routing comes from `cluster`'s metadata).
    fetcher: Cluster,
    /// A fetch written and not read yet (the prefetch, or a round whose poll ended).
    in_flight: Option<InFlight>,
    /// Fetched records not returned yet, per partition (paused when their answer came);
    /// the partition's position is past them.
    buffered: BTreeMap<i32, Vec<ConsumedRecord>>,
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
    /// Polls still to fail (fault injection, taken at a rejoin).
    failing_polls: usize,
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
            fetcher: Cluster::new(settings.clone(), &options.client_id),
            in_flight: None,
            buffered: BTreeMap::new(),
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
            failing_polls: 0,
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

    /// Takes the buffered records of partitions not paused, each partition's in order.
    fn take_buffered(&mut self) -> Vec<ConsumedRecord> {
        let ready: Vec<i32> = self
            .buffered
            .keys()
            .copied()
            .filter(|p| !self.paused.contains(p))
            .collect();
        let mut out = Vec::new();
        for p in ready {
            if let Some(mut records) = self.buffered.remove(&p) {
                if out.is_empty() {
                    out = records;
                } else {
                    out.append(&mut records);
                }
            }
        }
        out
    }

    /// The partitions a round asks for now, at their positions: not paused, holding no
    /// unreturned records.
    fn to_fetch(&self) -> BTreeMap<i32, i64> {
        self.positions
            .iter()
            .filter(|(p, _)| !self.paused.contains(p) && !self.buffered.contains_key(p))
            .map(|(p, o)| (*p, *o))
            .collect()
    }

    /// Writes a round for [`to_fetch`](Self::to_fetch) on the fetch connections.
    fn send(&mut self, limits: FetchLimits) -> Result<Option<InFlight>> {
        let wanted = self.to_fetch();
        if wanted.is_empty() {
            return Ok(None);
        }
        let route = route(&mut self.cluster, &self.topic, &wanted)?;
        Ok(Some(send_round(
            &mut self.fetcher,
            &self.topic,
            route,
            limits,
        )))
    }

    /// Writes the next round before records are handed over (see the module notes); an
    /// error is left for the next poll to meet.
    fn prefetch(&mut self) {
        if self.in_flight.is_some() || self.member.needs_join() {
            return;
        }
        let limits = FetchLimits {
            max_wait: Duration::ZERO,
            ..self.limits
        };
        match self.send(limits) {
            Ok(flight) => self.in_flight = flight,
            Err(e) => log::debug!("modern: prefetch of {} not sent: {e}", self.topic),
        }
    }

    /// Reads `flight`'s answers; keeps the records of partitions still at the position
    /// they were asked at (others moved meanwhile: dropped) and advances those positions.
    fn receive(&mut self, flight: Option<InFlight>) -> Option<Round> {
        let flight = flight?;
        let asked = flight.offsets();
        let mut round = receive_round(&mut self.fetcher, &self.topic, flight);
        if round.stale {
            // A fetch connection failed or a leader moved: routing is asked again.
            self.cluster.forget(&self.topic);
        }
        let current = |positions: &BTreeMap<i32, i64>, p: i32| {
            asked
                .get(&p)
                .is_some_and(|at| positions.get(&p) == Some(at))
        };
        round.out_of_range.retain(|&p| current(&self.positions, p));
        let mut kept: BTreeMap<i32, i64> = BTreeMap::new();
        for &(p, at, next) in &round.advanced {
            if current(&self.positions, p) {
                kept.insert(p, next.map_or(at, |n| n.max(at)));
            }
        }
        for r in std::mem::take(&mut round.records) {
            if kept.contains_key(&r.partition) {
                self.buffered.entry(r.partition).or_default().push(r);
            }
        }
        for (p, next) in kept {
            self.positions.insert(p, next);
        }
        Some(round)
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
        let rejoined = self.member.needs_join();
        self.follow_group()?;
        self.injected_poll_failure(rejoined)?;
        self.start_positions()?;
        if self.positions.keys().all(|p| self.paused.contains(p)) {
            self.idle(deadline);
            return Ok(Vec::new());
        }
        loop {
            let ready = self.take_buffered();
            if !ready.is_empty() {
                self.prefetch();
                return Ok(ready);
            }
            let round_started = Instant::now();
            let (round, prefetched) = match self.in_flight.take() {
                Some(flight) => (self.receive(Some(flight)), true),
                None => {
                    let limits = FetchLimits {
                        max_wait: deadline
                            .saturating_duration_since(round_started)
                            .min(self.limits.max_wait),
                        ..self.limits
                    };
                    let flight = self.send(limits)?;
                    (self.receive(flight), false)
                }
            };
            let Some(round) = round else {
                return Ok(Vec::new()); // nothing to ask for (every position was reset away)
            };
            if !round.out_of_range.is_empty() {
                self.reset(&round.out_of_range)?;
            }
            let mut errors = round.errors.into_iter();
            if self.buffered.keys().any(|p| !self.paused.contains(p)) {
                if let Some(e) = errors.next() {
                    log::warn!("modern: {e} (records of other partitions returned)");
                }
                continue;
            }
            if prefetched {
                // The prefetch found nothing new, or failed (a connection the broker closed
                // while a partition stayed paused): a round that may wait asks again.
                if let Some(e) = errors.next() {
                    log::debug!("modern: prefetch of {}: {e}; fetching again", self.topic);
                }
                continue;
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
        if self.settings.faults.take_commit_failure() {
            return Err(Error::new(
                ErrorKind::Connection,
                "injected commit failure (ModernTransport::fail_next_commits)",
            )
            .with_topic(self.topic.clone()));
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
        self.buffered.clear();
        self.in_flight = None;
        self.fetcher.reset();
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
