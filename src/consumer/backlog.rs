//! [`Backlog`]: records a consumer thread polled and has not started yet, per partition,
//! taken round-robin; a retry-topic entry that is not due yet is set aside until its time
//! (its partition goes on: later entries due sooner are not held up), or, when too many
//! are set aside, holds its partition; a partition can be stopped (a write that keeps
//! failing), without holding up the others.
//!
//! ```text
//!  poll ─▶ push ─▶ [p0: r r r] [p1: r] [p2: held until t: r r]   deferred: {t1: r, t2: r}
//!                    next_ready(now) takes a deferred record whose time came, else the
//!                    front record of the next partition that is neither held (until
//!                    later) nor stopped, rotating over partitions
//! ```
//!
//! A deferred record's offset stays pending in the offset tracker, so commits never pass it
//! before it ended.

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
    /// Retry entries not due yet, read past: (due, partition, offset) → record.
    deferred: BTreeMap<(Instant, i32, i64), ConsumedRecord>,
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

    /// Sets `record` aside until `until` (its partition goes on), unless `limit` records
    /// are set aside already: then it is given back (for [`hold`](Self::hold)).
    pub(crate) fn defer(
        &mut self,
        record: ConsumedRecord,
        until: Instant,
        limit: usize,
    ) -> Result<(), ConsumedRecord> {
        if self.deferred.len() >= limit {
            return Err(record);
        }
        self.len += 1;
        self.deferred
            .insert((until, record.partition, record.offset), record);
        Ok(())
    }

    /// The earliest set-aside record due at `now` outside `stopped`.
    fn deferred_due(&self, now: Instant, stopped: &BTreeSet<i32>) -> Option<(Instant, i32, i64)> {
        self.deferred
            .keys()
            .take_while(|(t, _, _)| *t <= now)
            .find(|(_, p, _)| !stopped.contains(p))
            .copied()
    }

    /// A set-aside record whose time came, else the front record of the next partition
    /// (round-robin) that is not held past `now`, both outside `stopped`.
    pub(crate) fn next_ready(
        &mut self,
        now: Instant,
        stopped: &BTreeSet<i32>,
    ) -> Option<ConsumedRecord> {
        if let Some(slot) = self.deferred_due(now, stopped) {
            self.len -= 1;
            return self.deferred.remove(&slot);
        }
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
        self.deferred_due(now, stopped).is_some()
            || self.queues.iter().any(|(p, q)| {
                !q.records.is_empty()
                    && q.held_until.is_none_or(|t| t <= now)
                    && !stopped.contains(p)
            })
    }

    /// The earliest time a held partition or a set-aside record becomes ready.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        let deferred = self.deferred.keys().next().map(|(t, _, _)| *t);
        self.queues
            .values()
            .filter(|q| !q.records.is_empty())
            .filter_map(|q| q.held_until)
            .chain(deferred)
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
        self.deferred.retain(|(_, p, _), _| keep(*p));
        self.len =
            self.queues.values().map(|q| q.records.len()).sum::<usize>() + self.deferred.len();
    }

    /// Records waiting, over all partitions (set-aside ones included).
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
    fn a_deferred_record_lets_its_partition_go_on_and_comes_back_at_its_time() {
        let mut b = Backlog::default();
        b.push(vec![rec(0, 0), rec(0, 1)]);
        let now = Instant::now();
        let none = BTreeSet::new();
        let first = b.next_ready(now, &none).unwrap();
        let later = now + Duration::from_secs(5);
        b.defer(first, later, 1).unwrap();
        assert_eq!(
            b.next_ready(now, &none).unwrap().offset,
            1,
            "the partition goes on"
        );
        assert!(
            b.busy_partitions().is_empty(),
            "not paused for a deferred record"
        );
        assert_eq!((b.len(), b.next_release()), (1, Some(later)));
        assert!(
            b.defer(rec(0, 2), later, 1).is_err(),
            "over the limit: given back"
        );
        assert!(!b.has_ready(now, &none));
        assert!(!b.has_ready(later, &[0].into()), "its partition stopped");
        assert_eq!(b.next_ready(later, &none).unwrap().offset, 0);
        b.defer(rec(1, 3), later, 1).unwrap();
        b.retain(|p| p != 1);
        assert_eq!(b.len(), 0, "revoked: forgotten");
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
