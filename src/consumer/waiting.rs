//! [`WaitingRoom`]: messages waiting for their next in-place attempt, in memory, without
//! holding up anything else; later records with the same key queue behind them, so a key's
//! order is kept while its message waits.
//!
//! ```text
//!  attempt failed, retry left ─▶ insert(due, item, record) ──────────┐
//!  a later record of the same (partition, key) ─▶ follow(record) ────┤ held behind it
//!  due ─▶ take_due(now) ─▶ attempt again ─▶ insert again, or ended ──┘
//!                                             └─▶ its followers go back to the backlog front
//! ```
//!
//! Records without a key have no order to keep: they never queue behind anything.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use crate::transport::ConsumedRecord;

/// One message waiting, with the records of its key held behind it.
pub(crate) struct Waiting<T> {
    /// What the next attempt needs.
    pub(crate) item: T,
    /// The record the message came in.
    pub(crate) record: ConsumedRecord,
    /// Later records of the same partition and key, in offset order.
    pub(crate) followers: VecDeque<ConsumedRecord>,
}

type Slot = (Instant, u64);

/// Messages waiting for a retry, ordered by due time.
pub(crate) struct WaitingRoom<T> {
    entries: BTreeMap<Slot, Waiting<T>>,
    /// (partition, key) of each waiting keyed message → its slot.
    keys: HashMap<(i32, Vec<u8>), Slot>,
    next_seq: u64,
    /// Messages and followers held, in all.
    len: usize,
}

impl<T> Default for WaitingRoom<T> {
    fn default() -> Self {
        WaitingRoom {
            entries: BTreeMap::new(),
            keys: HashMap::new(),
            next_seq: 0,
            len: 0,
        }
    }
}

fn key_of(record: &ConsumedRecord) -> Option<(i32, Vec<u8>)> {
    record.key.as_ref().map(|k| (record.partition, k.clone()))
}

impl<T> WaitingRoom<T> {
    /// Messages and followers held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `record` must queue behind a waiting message of its key.
    pub(crate) fn is_blocked(&self, record: &ConsumedRecord) -> bool {
        !self.keys.is_empty() && key_of(record).is_some_and(|k| self.keys.contains_key(&k))
    }

    /// Queues `record` behind the waiting message of its key; gives it back if there is
    /// none.
    pub(crate) fn follow(&mut self, record: ConsumedRecord) -> Result<(), ConsumedRecord> {
        let Some(slot) = key_of(&record).and_then(|k| self.keys.get(&k).copied()) else {
            return Err(record);
        };
        match self.entries.get_mut(&slot) {
            Some(w) => {
                w.followers.push_back(record);
                self.len += 1;
                Ok(())
            }
            None => Err(record),
        }
    }

    /// Adds a message due at `due` (with the followers it already had).
    pub(crate) fn insert(&mut self, due: Instant, waiting: Waiting<T>) {
        let slot = (due, self.next_seq);
        self.next_seq += 1;
        if let Some(k) = key_of(&waiting.record) {
            self.keys.insert(k, slot);
        }
        self.len += 1 + waiting.followers.len();
        self.entries.insert(slot, waiting);
    }

    /// The earliest due time.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.entries.keys().next().map(|(t, _)| *t)
    }

    /// Removes and returns the earliest message if it is due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Waiting<T>> {
        let (&slot, _) = self.entries.iter().next().filter(|((t, _), _)| *t <= now)?;
        self.remove(slot)
    }

    /// Removes and returns the earliest message, due or not.
    pub(crate) fn take_first(&mut self) -> Option<Waiting<T>> {
        let slot = *self.entries.keys().next()?;
        self.remove(slot)
    }

    fn remove(&mut self, slot: Slot) -> Option<Waiting<T>> {
        let w = self.entries.remove(&slot)?;
        if let Some(k) = key_of(&w.record) {
            if self.keys.get(&k) == Some(&slot) {
                self.keys.remove(&k);
            }
        }
        self.len -= 1 + w.followers.len();
        Some(w)
    }

    /// Forgets every message (and follower) of partitions `drop` says yes to.
    pub(crate) fn forget(&mut self, drop: impl Fn(i32) -> bool) {
        let gone: Vec<Slot> = self
            .entries
            .iter()
            .filter(|(_, w)| drop(w.record.partition))
            .map(|(s, _)| *s)
            .collect();
        for slot in gone {
            self.remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(p: i32, o: i64, key: Option<&str>) -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition: p,
            offset: o,
            key: key.map(|k| k.as_bytes().to_vec()),
            value: Vec::new(),
            null_value: false,
            headers: Vec::new(),
        }
    }

    fn waiting(record: ConsumedRecord) -> Waiting<&'static str> {
        Waiting {
            item: "x",
            record,
            followers: VecDeque::new(),
        }
    }

    #[test]
    fn later_records_of_a_waiting_key_queue_behind_it() {
        let mut room = WaitingRoom::default();
        let now = Instant::now();
        room.insert(
            now + Duration::from_millis(10),
            waiting(rec(0, 1, Some("k"))),
        );
        assert!(room.is_blocked(&rec(0, 2, Some("k"))));
        assert!(!room.is_blocked(&rec(1, 2, Some("k"))), "another partition");
        assert!(!room.is_blocked(&rec(0, 2, Some("j"))), "another key");
        assert!(!room.is_blocked(&rec(0, 2, None)), "no key, no order");
        assert!(room.follow(rec(0, 2, Some("k"))).is_ok());
        assert!(room.follow(rec(0, 3, None)).is_err());
        assert_eq!(room.len(), 2);
        assert!(room.take_due(now).is_none(), "not due yet");
        let w = room.take_due(now + Duration::from_millis(10)).unwrap();
        assert_eq!(w.followers.len(), 1);
        assert_eq!(room.len(), 0);
        assert!(!room.is_blocked(&rec(0, 4, Some("k"))));
    }

    #[test]
    fn the_earliest_due_comes_first_and_revoked_partitions_are_forgotten() {
        let mut room = WaitingRoom::default();
        let now = Instant::now();
        room.insert(now + Duration::from_millis(30), waiting(rec(0, 1, None)));
        room.insert(
            now + Duration::from_millis(20),
            waiting(rec(1, 1, Some("a"))),
        );
        assert_eq!(room.next_due(), Some(now + Duration::from_millis(20)));
        room.forget(|p| p == 1);
        assert_eq!(room.len(), 1);
        assert!(!room.is_blocked(&rec(1, 2, Some("a"))));
        assert_eq!(room.take_first().unwrap().record.partition, 0);
    }
}
