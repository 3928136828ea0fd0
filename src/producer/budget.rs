//! The byte bound of a writer queue (`producer.buffer_bytes`): callers take room for a record
//! before queueing it, the writer thread gives it back when it takes the record off the
//! queue. A record alone always fits, so one larger than the bound is not refused here
//! (`max_message_bytes` does that).
//!
//! The common case (room left) is one atomic compare-and-swap; only a caller that has to
//! wait takes the lock, and the writer wakes waiters only when there are some.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes queued for one writer, bounded by `limit`.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    room: Condvar,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ByteBudget {
            limit,
            used: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            room: Condvar::new(),
        }
    }

    /// The bound, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes taken and not given back.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Takes `size` bytes if they fit (or nothing else is queued); never blocks.
    pub fn try_take(&self, size: usize) -> bool {
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            if used > 0 && used.saturating_add(size) > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + size,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Takes `size` bytes, waiting up to `bound` for room; `false` if none came.
    pub fn take(&self, size: usize, bound: Duration) -> bool {
        if self.try_take(size) {
            return true;
        }
        let deadline = Instant::now() + bound;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let taken = loop {
            // Checked under the lock after announcing the wait: a `give` after this check
            // sees the waiter and notifies only once the wait below has released the lock.
            if self.try_take(size) {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            guard = match self.room.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        taken
    }

    /// Gives back `size` bytes and wakes waiting callers, if any.
    pub fn give(&self, size: usize) {
        self.used.fetch_sub(size, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.room.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn room_is_bounded_but_a_record_alone_always_fits() {
        let b = ByteBudget::new(100);
        assert!(b.try_take(500), "alone in the queue, a record fits");
        assert!(!b.try_take(1));
        b.give(500);
        assert!(b.try_take(60));
        assert!(b.try_take(40));
        assert!(!b.try_take(1), "100 of 100 bytes used");
        assert_eq!(b.used(), 100);
        b.give(40);
        assert!(!b.try_take(41));
        assert!(b.try_take(40));
    }

    #[test]
    fn take_times_out_without_room_and_wakes_when_room_is_given() {
        let b = Arc::new(ByteBudget::new(10));
        assert!(b.try_take(10));
        let started = Instant::now();
        assert!(!b.take(5, Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.take(5, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(30));
        assert!(!waiter.is_finished(), "no room yet: the caller waits");
        b.give(10);
        assert!(
            waiter.join().unwrap(),
            "room given: the waiting caller gets it"
        );
        assert_eq!(b.used(), 5);
    }
}
