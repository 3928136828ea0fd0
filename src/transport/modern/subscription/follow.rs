//! How a modern member follows its group and where it reads from: joining (every partition
//! given up before JoinGroup, the eager protocol), keeping the positions a continued
//! generation leaves valid, starting the others at the group's commit or the start offset,
//! resetting positions the broker no longer stores.

use super::super::offsets::{self, EARLIEST, LATEST};
use super::ModernSubscription;
use crate::config::StartOffset;
use crate::error::{Error, ErrorKind, Result};

impl ModernSubscription {
    /// Joins when needed and follows the new assignment.
    pub(super) fn follow_group(&mut self) -> Result<()> {
        if !self.member.needs_join() {
            // As the leader, partitions added to a topic start a rebalance, joined at the
            // next poll (after the owner committed: `rebalance_pending` says so).
            self.member.check_partition_counts(&mut self.cluster);
            return Ok(());
        }
        // The eager protocol: every partition is given up before JoinGroup. Until the join
        // succeeds this member owns nothing, so a join that fails leaves no partition the
        // reader may go on with (its positions restart from the group's commit).
        let given_up = std::mem::take(&mut self.assignment);
        let joined = if self.settings.faults.take_join_failure() {
            self.member.request_rejoin();
            Err(Error::new(
                ErrorKind::Connection,
                "injected join failure (ModernTransport::fail_next_joins)",
            ))
        } else {
            self.member.join(&mut self.cluster)
        };
        let assigned = match joined {
            Ok(assigned) => assigned,
            Err(e) => {
                if !given_up.is_empty() {
                    log::info!(
                        "modern: group {} on {}: partitions {given_up:?} given up; the join \
                         failed: {e}",
                        self.group,
                        self.topic
                    );
                }
                self.forget_positions();
                return Err(e);
            }
        };
        if !assigned.continued {
            let restarted: Vec<i32> = self
                .positions
                .keys()
                .copied()
                .filter(|p| assigned.partitions.contains(p))
                .collect();
            // The reader forgets everything it held of a restarted partition, its pause
            // included (`take_restarted`): so does the subscription, or the partition would
            // stay paused with nobody left to resume it.
            for p in &restarted {
                self.paused.remove(p);
            }
            self.restarted.extend(restarted);
            self.positions.clear();
            self.buffered.clear();
        }
        self.buffered.retain(|p, _| assigned.partitions.contains(p));
        self.paused.retain(|p| assigned.partitions.contains(p));
        self.positions
            .retain(|p, _| assigned.partitions.contains(p));
        if assigned.partitions != given_up {
            log::info!(
                "modern: group {} on {}: partitions {:?} (were {given_up:?})",
                self.group,
                self.topic,
                assigned.partitions,
            );
        }
        self.assignment = assigned.partitions;
        Ok(())
    }

    /// Forgets every position, buffered record, pause and fetch in flight (the partitions
    /// were given up); partitions that had a position are reported restarted, so the reader
    /// drops what it holds of them even if it gets them back.
    pub(super) fn forget_positions(&mut self) {
        self.restarted.extend(self.positions.keys().copied());
        self.restarted.sort_unstable();
        self.restarted.dedup();
        self.positions.clear();
        self.buffered.clear();
        self.paused.clear();
    }

    /// Fault injection for tests: whether this poll fails (after a rejoin that took the
    /// transport's pending failures, and the polls after it).
    pub(super) fn injected_poll_failure(&mut self, rejoined: bool) -> Result<()> {
        if rejoined {
            self.failing_polls += self.settings.faults.take_poll_failures();
        }
        if self.failing_polls > 0 {
            self.failing_polls -= 1;
            return Err(Error::new(
                ErrorKind::Connection,
                "injected fetch failure after a rejoin (ModernTransport::fail_polls_after_rejoin)",
            )
            .with_topic(self.topic.clone()));
        }
        Ok(())
    }

    /// Gives each assigned partition without a position the group's commit, else the start
    /// offset.
    pub(super) fn start_positions(&mut self) -> Result<()> {
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

    pub(super) fn committed(
        &mut self,
        partitions: &[i32],
    ) -> Result<std::collections::HashMap<i32, i64>> {
        let (group, topic) = (self.group.clone(), self.topic.clone());
        self.member.with_coordinator(
            &mut self.cluster,
            "fetching committed offsets",
            |cluster, addr| offsets::fetch_committed(cluster, addr, &group, &topic, partitions),
        )
    }

    /// Resets `partitions` whose positions the broker no longer stores, per the start offset.
    pub(super) fn reset(&mut self, partitions: &[i32]) -> Result<()> {
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
            self.buffered.remove(&p);
            self.positions.insert(p, offset);
        }
        Ok(())
    }
}
