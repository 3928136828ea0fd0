//! [`OffsetTracker`]: which offsets may be committed, per partition.
//!
//! ```text
//!  poll ──track(p, o)──▶ pending {o…}      a message ends ──end(p, o)──▶ ended up to o
//!                                  commit position = min(lowest pending, highest ended + 1)
//! ```
//!
//! The position never passes a tracked offset that has not ended, whatever order messages
//! end in; the consumer commits it and records it with [`OffsetTracker::mark_committed`].

use std::collections::{BTreeMap, VecDeque};

/// Per-partition progress: offsets polled but not ended, and how far ended offsets reach.
#[derive(Debug, Default, Clone)]
struct Partition {
    /// Tracked offsets in increasing order, each with whether it ended; the front one has
    /// not (ended ones at the front are dropped). Offsets are polled in order, so tracking
    /// appends and an in-order end pops: no allocation per offset, as a tree set has.
    pending: VecDeque<(i64, bool)>,
    /// One past the highest ended offset.
    ended_to: Option<i64>,
    committed: Option<i64>,
}

impl Partition {
    fn position(&self) -> Option<i64> {
        let ended_to = self.ended_to?;
        Some(match self.pending.front() {
            Some(&(low, _)) => low.min(ended_to),
            None => ended_to,
        })
    }

    fn track(&mut self, offset: i64) {
        if self.pending.back().is_none_or(|&(last, _)| last < offset) {
            self.pending.push_back((offset, false));
            return;
        }
        match self.pending.binary_search_by_key(&offset, |&(o, _)| o) {
            Ok(i) => self.pending[i].1 = false,
            Err(i) => self.pending.insert(i, (offset, false)),
        }
    }

    /// Where `offset` is in `pending`: first where it would be if the offsets were
    /// consecutive (they are but for compaction gaps and control records), else searched.
    fn find(&self, offset: i64) -> Option<usize> {
        let &(first, _) = self.pending.front()?;
        let guess = usize::try_from(offset.checked_sub(first)?).ok()?;
        if self.pending.get(guess).is_some_and(|&(o, _)| o == offset) {
            return Some(guess);
        }
        self.pending.binary_search_by_key(&offset, |&(o, _)| o).ok()
    }

    fn end(&mut self, offset: i64) {
        if let Some(i) = self.find(offset) {
            self.pending[i].1 = true;
        }
        while self.pending.front().is_some_and(|&(_, ended)| ended) {
            self.pending.pop_front();
        }
    }
}

/// Tracks polled and ended offsets of the partitions a consumer thread reads.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetTracker {
    partitions: BTreeMap<i32, Partition>,
}

impl OffsetTracker {
    /// Records that `offset` of `partition` was polled and has not ended yet.
    pub(crate) fn track(&mut self, partition: i32, offset: i64) {
        self.partitions.entry(partition).or_default().track(offset);
    }

    /// Records that `offset` of `partition` ended (handled, or durably parked or
    /// dead-lettered, or skipped by rule).
    pub(crate) fn end(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.end(offset);
        let next = offset.saturating_add(1);
        p.ended_to = Some(p.ended_to.map_or(next, |e| e.max(next)));
    }

    /// The `(partition, next_offset)` pairs that moved since the last commit: for each
    /// partition the lowest offset that has not ended (or one past the highest ended).
    pub(crate) fn committable(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(&partition, p)| {
                let position = p.position()?;
                p.committed
                    .is_none_or(|c| position > c)
                    .then_some((partition, position))
            })
            .collect()
    }

    /// Whether a commit would move anything.
    #[cfg(test)]
    pub(crate) fn has_uncommitted(&self) -> bool {
        !self.committable().is_empty()
    }

    /// Records a successful commit of `offsets`.
    pub(crate) fn mark_committed(&mut self, offsets: &[(i32, i64)]) {
        for &(partition, offset) in offsets {
            let p = self.partitions.entry(partition).or_default();
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// Forgets partitions not in `assignment` (they were revoked: another member owns them
    /// and restarts from the group's committed offset).
    pub(crate) fn retain(&mut self, assignment: &[i32]) {
        self.partitions.retain(|p, _| assignment.contains(p));
    }

    /// Forgets `partitions` (their reading restarted from the group's commit).
    pub(crate) fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.partitions.remove(p);
        }
    }

    /// How many tracked offsets have not ended.
    #[cfg(test)]
    pub(crate) fn pending_count(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.pending.iter().filter(|(_, ended)| !ended).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_up_to_the_first_unended_offset() {
        let mut t = OffsetTracker::default();
        for o in 0..5 {
            t.track(0, o);
        }
        assert!(t.committable().is_empty(), "nothing ended yet");
        t.end(0, 0);
        t.end(0, 1);
        t.end(0, 3);
        assert_eq!(t.committable(), vec![(0, 2)]);
        t.mark_committed(&[(0, 2)]);
        assert!(!t.has_uncommitted());
        t.end(0, 2);
        assert_eq!(t.committable(), vec![(0, 4)]);
        t.end(0, 4);
        assert_eq!(t.committable(), vec![(0, 5)]);
        assert_eq!(t.pending_count(), 0);
    }

    #[test]
    fn gaps_in_offsets_do_not_block_commits() {
        let mut t = OffsetTracker::default();
        t.track(1, 10);
        t.track(1, 15);
        t.end(1, 10);
        assert_eq!(t.committable(), vec![(1, 11)]);
        t.end(1, 15);
        assert_eq!(t.committable(), vec![(1, 16)]);
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut t = OffsetTracker::default();
        t.track(0, 0);
        t.track(1, 0);
        t.end(0, 0);
        t.end(1, 0);
        t.retain(&[1]);
        assert_eq!(t.committable(), vec![(1, 1)]);
    }

    proptest! {
        /// Against a model (a set of pending offsets, as the tracker kept before): any mix
        /// of tracks and ends, in any order, re-tracks included, gives the same position.
        #[test]
        fn positions_match_a_pending_set_model(
            ops in proptest::collection::vec((any::<bool>(), 0i64..24), 0..120),
        ) {
            let mut t = Partition::default();
            let mut pending = std::collections::BTreeSet::new();
            let mut ended_to: Option<i64> = None;
            for (track, o) in ops {
                if track {
                    t.track(o);
                    pending.insert(o);
                } else {
                    t.end(o);
                    pending.remove(&o);
                    ended_to = Some(ended_to.map_or(o + 1, |e: i64| e.max(o + 1)));
                    t.ended_to = ended_to;
                }
                let want = ended_to.map(|e| pending.first().map_or(e, |&low| low.min(e)));
                prop_assert_eq!(t.position(), want);
            }
        }

        #[test]
        fn the_position_never_passes_an_unended_offset(
            ends in proptest::collection::vec(any::<bool>(), 1..60),
            order in any::<u64>(),
        ) {
            let mut t = OffsetTracker::default();
            let n = ends.len() as i64;
            for o in 0..n {
                t.track(0, o);
            }
            // End the chosen offsets in a scrambled order.
            let mut chosen: Vec<i64> = (0..n).filter(|&o| ends[o as usize]).collect();
            let len = chosen.len();
            if len > 1 {
                for i in 0..len {
                    chosen.swap(i, (order as usize).wrapping_mul(i + 7) % len);
                }
            }
            let mut ended = std::collections::BTreeSet::new();
            for &o in &chosen {
                t.end(0, o);
                ended.insert(o);
                if let Some(&(_, pos)) = t.committable().first() {
                    if let Some(u) = (0..n).find(|x| !ended.contains(x)) {
                        prop_assert!(pos <= u, "position {} passes unended {}", pos, u);
                    } else {
                        prop_assert_eq!(pos, n);
                    }
                    t.mark_committed(&[(0, pos)]);
                }
            }
        }
    }
}
