//! [`Backlog`]: records a consumer thread polled and has not started yet, per partition,
//! taken round-robin; a partition can be held until a time (a retry-topic entry that is not
//! due yet) or stopped (a write that keeps failing), without holding up the others.
//!
//! ```text
//!  poll ─▶ push ─▶ [p0: r r r] [p1: r] [p2: held until t: r r]
//!                    next_ready(now) takes the front record of the next partition that is
//!                    neither held (until later) nor stopped, rotating over partitions
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use crate::transport::ConsumedRecord;

#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<ConsumedRecord>,
    /// The front record is not started before this time.
    held_until: Option<Instant>,
}

/// Polled records not started yet, per partition.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    queues: BTreeMap<i32, Queue>,
    /// The partition the next round-robin look starts after.
    last: Option<i32>,
    len: usize,
}

impl Backlog {
    /// Appends polled records (each partition's in offset order).
    pub(crate) fn push(&mut self, records: Vec<ConsumedRecord>) {
        self.len += records.len();
        for r in records {
            self.queues
                .entry(r.partition)
                .or_default()
                .records
                .push_back(r);
        }
    }

    /// Puts records back at the front of their partition, in the order given (followers
    /// released from the waiting room, a record whose turn is not yet).
    pub(crate) fn push_front(&mut self, records: Vec<ConsumedRecord>) {
        self.len += records.len();
        for r in records.into_iter().rev() {
            self.queues
                .entry(r.partition)
                .or_default()
                .records
                .push_front(r);
        }
    }

    /// Puts `record` back at the front of its partition and holds the partition until
    /// `until`.
    pub(crate) fn hold(&mut self, record: ConsumedRecord, until: Instant) {
        let q = self.queues.entry(record.partition).or_default();
        q.records.push_front(record);
        q.held_until = Some(until);
        self.len += 1;
    }

    /// The front record of the next partition (round-robin) that is not held past `now`
    /// and not in `stopped`.
    pub(crate) fn next_ready(
        &mut self,
        now: Instant,
        stopped: &BTreeSet<i32>,
    ) -> Option<ConsumedRecord> {
        let after = self.last;
        let pick = {
            let ready = |(p, q): (&i32, &Queue)| {
                (!q.records.is_empty()
                    && q.held_until.is_none_or(|t| t <= now)
                    && !stopped.contains(p))
                .then_some(*p)
            };
            let later = after.map_or_else(
                || self.queues.range(..).find_map(ready),
                |a| self.queues.range(a + 1..).find_map(ready),
            );
            later.or_else(|| self.queues.range(..).find_map(ready))
        }?;
        self.last = Some(pick);
        let q = self.queues.get_mut(&pick)?;
        q.held_until = None;
        let r = q.records.pop_front()?;
        self.len -= 1;
        Some(r)
    }

    /// The next record of `partition` if it is ready and `fits` it (for batches).
    pub(crate) fn next_of_if(
        &mut self,
        partition: i32,
        now: Instant,
        fits: impl FnOnce(&ConsumedRecord) -> bool,
    ) -> Option<ConsumedRecord> {
        let q = self.queues.get_mut(&partition)?;
        if q.held_until.is_some_and(|t| t > now) || !q.records.front().is_some_and(fits) {
            return None;
        }
        let r = q.records.pop_front()?;
        self.len -= 1;
        Some(r)
    }

    /// Whether any partition outside `stopped` has a record startable at `now`.
    pub(crate) fn has_ready(&self, now: Instant, stopped: &BTreeSet<i32>) -> bool {
        self.queues.iter().any(|(p, q)| {
            !q.records.is_empty() && q.held_until.is_none_or(|t| t <= now) && !stopped.contains(p)
        })
    }

    /// The earliest time a held partition becomes ready.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter(|q| !q.records.is_empty())
            .filter_map(|q| q.held_until)
            .min()
    }

    /// Partitions with records waiting (fetching them again would only pile up more).
    pub(crate) fn busy_partitions(&self) -> BTreeSet<i32> {
        self.queues
            .iter()
            .filter(|(_, q)| !q.records.is_empty())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Forgets the records of partitions not in `keep`.
    pub(crate) fn retain(&mut self, keep: impl Fn(i32) -> bool) {
        self.queues.retain(|p, _| keep(*p));
        self.len = self.queues.values().map(|q| q.records.len()).sum();
    }

    /// Records waiting, over all partitions.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(p: i32, o: i64) -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition: p,
            offset: o,
            key: None,
            value: Vec::new(),
            null_value: false,
            headers: Vec::new(),
        }
    }

    #[test]
    fn partitions_take_turns_and_a_held_one_waits_alone() {
        let mut b = Backlog::default();
        b.push(vec![rec(0, 0), rec(0, 1), rec(1, 0), rec(1, 1)]);
        let now = Instant::now();
        let none = BTreeSet::new();
        let first = b.next_ready(now, &none).unwrap();
        let second = b.next_ready(now, &none).unwrap();
        assert_ne!(first.partition, second.partition, "round-robin");
        let held = b.next_ready(now, &none).unwrap();
        b.hold(held.clone(), now + Duration::from_secs(60));
        let other = b.next_ready(now, &none).unwrap();
        assert_ne!(other.partition, held.partition);
        assert!(
            b.next_ready(now, &none).is_none(),
            "only the held one is left"
        );
        assert_eq!(b.next_release(), Some(now + Duration::from_secs(60)));
        let later = now + Duration::from_secs(61);
        assert_eq!(b.next_ready(later, &none), Some(held));
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn stopped_partitions_are_passed_over_and_revoked_ones_forgotten() {
        let mut b = Backlog::default();
        b.push(vec![rec(0, 0), rec(1, 0), rec(2, 5)]);
        let stopped: BTreeSet<i32> = [0].into();
        let now = Instant::now();
        assert_ne!(b.next_ready(now, &stopped).unwrap().partition, 0);
        b.retain(|p| p != 2);
        assert_eq!(b.len(), 1);
        assert!(!b.has_ready(now, &stopped));
        assert_eq!(b.busy_partitions(), [0].into());
        b.push_front(vec![rec(0, 7)]);
        assert_eq!(b.next_ready(now, &BTreeSet::new()).unwrap().offset, 7);
    }
}
