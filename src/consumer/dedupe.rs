//! Duplicate detection: the [`IdempotencyStore`] trait and its default,
//! [`MemoryIdempotencyStore`], bounded by size and age.
//!
//! ```text
//!  message id ──is_processed?──▶ yes: skip, count a duplicate, commit past it
//!                             └▶ no: run the handler ──Ok──▶ mark_processed(id)
//! ```
//!
//! Only handled messages are marked: a message parked on the retry topic keeps its id and
//! must still be handled when it comes back.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::error::Result;

/// Remembers which message ids were handled, so a redelivered message is not handled twice.
///
/// Shared by a consumer's threads. Errors are logged by the consumer and treated as "not
/// processed" (handling twice is preferred to losing a message).
pub trait IdempotencyStore: Send + Sync + fmt::Debug {
    /// Whether `id` was handled already.
    fn is_processed(&self, id: &Uuid) -> Result<bool>;

    /// Records that `id` was handled.
    fn mark_processed(&self, id: Uuid) -> Result<()>;
}

/// An in-memory [`IdempotencyStore`] remembering at most `capacity` ids for at most
/// `max_age` each; the oldest are forgotten first. A capacity of 0 remembers nothing.
///
/// ```
/// use std::time::Duration;
/// use kafka_sync::{IdempotencyStore, MemoryIdempotencyStore};
///
/// let store = MemoryIdempotencyStore::new(2, Duration::from_secs(60));
/// let (a, b, c) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
/// store.mark_processed(a).unwrap();
/// store.mark_processed(b).unwrap();
/// store.mark_processed(c).unwrap(); // a is forgotten: the store holds 2 ids
/// assert!(!store.is_processed(&a).unwrap());
/// assert!(store.is_processed(&c).unwrap());
/// ```
pub struct MemoryIdempotencyStore {
    capacity: usize,
    max_age: Duration,
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    by_id: HashMap<Uuid, Instant>,
    /// Insertion order; an entry whose time no longer matches `by_id` is stale.
    order: VecDeque<(Uuid, Instant)>,
}

impl Seen {
    fn evict(&mut self, capacity: usize, max_age: Duration, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            let too_many = self.by_id.len() > capacity;
            let too_old = now.saturating_duration_since(at) > max_age;
            let stale = self.by_id.get(&id) != Some(&at);
            if !(too_many || too_old || stale) {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.by_id.remove(&id);
            }
        }
    }
}

impl MemoryIdempotencyStore {
    /// A store of at most `capacity` ids, each kept at most `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        MemoryIdempotencyStore {
            capacity,
            max_age,
            inner: Mutex::new(Seen::default()),
        }
    }

    /// How many ids are remembered now.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryIdempotencyStore")
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .field("len", &self.len())
            .finish()
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn is_processed(&self, id: &Uuid) -> Result<bool> {
        let now = Instant::now();
        let seen = self.lock();
        Ok(seen
            .by_id
            .get(id)
            .is_some_and(|&at| now.saturating_duration_since(at) <= self.max_age))
    }

    fn mark_processed(&self, id: Uuid) -> Result<()> {
        self.mark_at(id, Instant::now());
        Ok(())
    }
}

impl MemoryIdempotencyStore {
    /// Records that `id` was handled at `at` (ids must come in time order).
    pub(crate) fn mark_at(&self, id: Uuid, at: Instant) {
        if self.capacity == 0 {
            return;
        }
        let mut seen = self.lock();
        seen.by_id.insert(id, at);
        seen.order.push_back((id, at));
        seen.evict(self.capacity, self.max_age, Instant::now());
        // Re-marked ids leave stale entries behind; keep the queue from growing without end.
        if seen.order.len() > self.capacity.saturating_mul(2) {
            let mut fresh: Vec<(Uuid, Instant)> =
                seen.by_id.iter().map(|(id, at)| (*id, *at)).collect();
            fresh.sort_by_key(|&(_, at)| at);
            seen.order = fresh.into();
        }
    }

    /// Every remembered id with the time it was marked, oldest first.
    pub(crate) fn entries(&self) -> Vec<(Uuid, Instant)> {
        let mut all: Vec<_> = self.lock().by_id.iter().map(|(i, a)| (*i, *a)).collect();
        all.sort_by_key(|&(_, at)| at);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_capacity_oldest_first_out() {
        let store = MemoryIdempotencyStore::new(3, Duration::from_secs(60));
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            store.mark_processed(*id).unwrap();
        }
        assert_eq!(store.len(), 3);
        assert!(!store.is_processed(&ids[0]).unwrap());
        assert!(!store.is_processed(&ids[1]).unwrap());
        assert!(ids[2..].iter().all(|id| store.is_processed(id).unwrap()));
    }

    #[test]
    fn forgets_ids_older_than_max_age() {
        let store = MemoryIdempotencyStore::new(10, Duration::from_millis(20));
        let id = Uuid::new_v4();
        store.mark_processed(id).unwrap();
        assert!(store.is_processed(&id).unwrap());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!store.is_processed(&id).unwrap());
        store.mark_processed(Uuid::new_v4()).unwrap();
        assert_eq!(store.len(), 1, "the old id was evicted on insert");
    }

    #[test]
    fn remarking_an_id_keeps_it_and_bounds_the_queue() {
        let store = MemoryIdempotencyStore::new(2, Duration::from_secs(60));
        let id = Uuid::new_v4();
        for _ in 0..100 {
            store.mark_processed(id).unwrap();
        }
        assert!(store.is_processed(&id).unwrap());
        assert!(store.lock().order.len() <= 4);
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let store = MemoryIdempotencyStore::new(0, Duration::from_secs(60));
        let id = Uuid::new_v4();
        store.mark_processed(id).unwrap();
        assert!(!store.is_processed(&id).unwrap());
    }
}
