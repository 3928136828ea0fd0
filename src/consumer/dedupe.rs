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

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
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

/// Hashes a message id: a multiply-fold of its two halves, each mixed with a random key
/// drawn per store (from the standard library's randomly keyed SipHash), so ids crafted to
/// collide cannot be known in advance. A v4 id is random already; SipHash's full rounds per
/// lookup were the store's main cost.
#[derive(Clone)]
struct IdHasherBuilder {
    k0: u64,
    k1: u64,
}

impl Default for IdHasherBuilder {
    fn default() -> Self {
        let s = RandomState::new();
        IdHasherBuilder {
            k0: s.hash_one(0x243f_6a88_85a3_08d3u64),
            k1: s.hash_one(0x1319_8a2e_0370_7344u64),
        }
    }
}

impl BuildHasher for IdHasherBuilder {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            k0: self.k0,
            k1: self.k1,
            state: 0,
        }
    }
}

/// See [`IdHasherBuilder`]; any bytes other than an id's are folded in 8 at a time.
struct IdHasher {
    k0: u64,
    k1: u64,
    state: u64,
}

fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a).wrapping_mul(u128::from(b));
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut lo = [0u8; 8];
            let mut hi = [0u8; 8];
            let (a, b) = chunk.split_at(chunk.len().min(8));
            lo[..a.len()].copy_from_slice(a);
            hi[..b.len()].copy_from_slice(b);
            let (lo, hi) = (u64::from_le_bytes(lo), u64::from_le_bytes(hi));
            self.state = fold_mul(lo ^ self.k0 ^ self.state, hi ^ self.k1);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.state = fold_mul(n ^ self.k0 ^ self.state, self.k1);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[derive(Default)]
struct Seen {
    by_id: HashMap<Uuid, Instant, IdHasherBuilder>,
    /// Insertion order; an entry whose time no longer matches `by_id` is stale.
    order: VecDeque<(Uuid, Instant)>,
}

impl Seen {
    /// Forgets the oldest ids while more than `capacity` are held or they are older than
    /// `max_age` at `now`; drops stale queue entries on the way. One hash lookup each.
    fn evict(&mut self, capacity: usize, max_age: Duration, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            let too_many = self.by_id.len() > capacity;
            let too_old = now.saturating_duration_since(at) > max_age;
            match self.by_id.entry(id) {
                Entry::Occupied(e) if *e.get() == at => {
                    if !(too_many || too_old) {
                        break;
                    }
                    e.remove();
                }
                _ => {} // stale: the id was marked again later, or is gone
            }
            self.order.pop_front();
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
        let seen = self.lock();
        // The clock is read only for a known id (a new id is the common case).
        Ok(seen
            .by_id
            .get(id)
            .is_some_and(|&at| Instant::now().saturating_duration_since(at) <= self.max_age))
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
        // `at` is now, or close enough: ids come in time order.
        seen.evict(self.capacity, self.max_age, at);
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

    proptest::proptest! {
        /// Against a model: the store holds the `capacity` ids marked most recently.
        #[test]
        fn holds_the_most_recently_marked_ids(
            marks in proptest::collection::vec(0usize..12, 0..200),
            capacity in 1usize..8,
        ) {
            let pool: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
            let store = MemoryIdempotencyStore::new(capacity, Duration::from_secs(3600));
            let start = Instant::now();
            let mut model: Vec<usize> = Vec::new(); // least recently marked first
            for (i, &m) in marks.iter().enumerate() {
                store.mark_at(pool[m], start + Duration::from_nanos(i as u64 + 1));
                model.retain(|&x| x != m);
                model.push(m);
                if model.len() > capacity {
                    model.remove(0);
                }
                for (j, id) in pool.iter().enumerate() {
                    proptest::prop_assert_eq!(store.is_processed(id).unwrap(), model.contains(&j));
                }
                proptest::prop_assert!(store.lock().order.len() <= 2 * capacity + 1);
            }
            proptest::prop_assert_eq!(store.len(), model.len());
        }
    }

    #[test]
    fn ids_spread_over_hashes() {
        let b = IdHasherBuilder::default();
        let mut low_bits = std::collections::HashSet::new();
        for _ in 0..4096 {
            low_bits.insert(b.hash_one(Uuid::new_v4()) & 0xfff);
        }
        // 4096 random ids into 4096 buckets: about 63% distinct; a broken hash gives a few.
        assert!(low_bits.len() > 2000, "{} distinct", low_bits.len());
        // Ids differing in one byte of either half hash apart.
        let a = Uuid::from_u128(1);
        assert_ne!(b.hash_one(a), b.hash_one(Uuid::from_u128(1 << 64 | 1)));
        assert_ne!(b.hash_one(a), b.hash_one(Uuid::from_u128(2)));
        // Two stores key their hashes differently.
        assert_ne!(b.hash_one(a), IdHasherBuilder::default().hash_one(a));
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let store = MemoryIdempotencyStore::new(0, Duration::from_secs(60));
        let id = Uuid::new_v4();
        store.mark_processed(id).unwrap();
        assert!(!store.is_processed(&id).unwrap());
    }
}
