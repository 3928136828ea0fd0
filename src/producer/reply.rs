//! Where a writer thread puts a caller's results: one small shared inbox per `send`,
//! `send_async` or `send_batch` call.
//!
//! A channel per message (what this replaced) cost an aligned allocation of a few hundred
//! bytes and a wake-up call per answer even when nobody waited, a tenth of a producer's
//! time under `send_async`. The inbox is one allocation; the writer appends results under a
//! lock and wakes the caller only if it is waiting. When the last [`ReplyTo`] is dropped
//! without answering (a writer thread that died), the waiting caller hears so at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::domain::Delivery;
use crate::error::Result;

/// Results for one caller, each with the index of its record in the caller's call.
pub(crate) type Reply = Vec<(usize, Result<Delivery>)>;

#[derive(Debug, Default)]
struct Inbox {
    results: Mutex<Reply>,
    arrived: Condvar,
    /// The caller sleeps on `arrived` (so an answer must wake it).
    waiting: AtomicBool,
    /// Live [`ReplyTo`]s: none left and no results means no answer will ever come.
    writers: AtomicUsize,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Reply> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the caller if it sleeps. Called with the lock held (`_held`): the caller checks
    /// and starts waiting under the same lock, so this cannot fall between the two.
    fn wake(&self, _held: &MutexGuard<'_, Reply>) {
        if self.waiting.load(Ordering::SeqCst) {
            self.arrived.notify_all();
        }
    }
}

/// The writer's side: where the results of a caller's records go. Cloned once per record of
/// a batch.
#[derive(Debug)]
pub(crate) struct ReplyTo(Arc<Inbox>);

/// The caller's side: waits for results.
#[derive(Debug)]
pub(crate) struct ReplyFrom(Arc<Inbox>);

/// Why [`ReplyFrom::take`] came back empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoReply {
    /// Nothing arrived within the bound.
    Timeout,
    /// Every [`ReplyTo`] was dropped without answering.
    Gone,
}

/// A new inbox: the writer's side and the caller's.
pub(crate) fn inbox() -> (ReplyTo, ReplyFrom) {
    let inbox = Arc::new(Inbox {
        writers: AtomicUsize::new(1),
        ..Inbox::default()
    });
    (ReplyTo(inbox.clone()), ReplyFrom(inbox))
}

impl ReplyTo {
    /// Delivers `results` (the caller may have stopped waiting; that is fine).
    pub fn send(&self, results: &mut Reply) {
        let mut held = self.0.lock();
        held.append(results);
        self.0.wake(&held);
    }

    /// Whether both lead to the same caller.
    pub fn same_inbox(&self, other: &ReplyTo) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Clone for ReplyTo {
    fn clone(&self) -> Self {
        self.0.writers.fetch_add(1, Ordering::SeqCst);
        ReplyTo(self.0.clone())
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if self.0.writers.fetch_sub(1, Ordering::SeqCst) == 1 {
            let held = self.0.lock();
            self.0.wake(&held);
        }
    }
}

impl ReplyFrom {
    /// Whether results are waiting (a `take` would not block).
    pub fn is_ready(&self) -> bool {
        !self.0.lock().is_empty()
    }

    /// Every result that has arrived, waiting up to `bound` for the first.
    pub fn take(&self, bound: Duration) -> std::result::Result<Reply, NoReply> {
        let deadline = Instant::now() + bound;
        let inbox = &self.0;
        let mut results = inbox.lock();
        loop {
            if !results.is_empty() {
                inbox.waiting.store(false, Ordering::SeqCst);
                return Ok(std::mem::take(&mut *results));
            }
            if inbox.writers.load(Ordering::SeqCst) == 0 {
                inbox.waiting.store(false, Ordering::SeqCst);
                return Err(NoReply::Gone);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                inbox.waiting.store(false, Ordering::SeqCst);
                return Err(NoReply::Timeout);
            }
            inbox.waiting.store(true, Ordering::SeqCst);
            results = inbox
                .arrived
                .wait_timeout(results, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Delivery;

    fn delivered(offset: i64) -> Reply {
        vec![(
            0,
            Ok(Delivery {
                partition: 0,
                offset,
            }),
        )]
    }

    #[test]
    fn a_result_sent_from_another_thread_wakes_the_waiting_caller() {
        let (to, from) = inbox();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            to.send(&mut delivered(7));
        });
        let got = from.take(Duration::from_secs(5)).unwrap();
        assert_eq!(got[0].1.as_ref().unwrap().offset, 7);
        writer.join().unwrap();
    }

    #[test]
    fn results_gather_until_taken_and_an_empty_inbox_times_out() {
        let (to, from) = inbox();
        assert!(!from.is_ready());
        assert_eq!(
            from.take(Duration::from_millis(20)).unwrap_err(),
            NoReply::Timeout
        );
        to.send(&mut delivered(1));
        to.clone().send(&mut delivered(2));
        assert!(from.is_ready());
        assert_eq!(from.take(Duration::ZERO).unwrap().len(), 2);
    }

    #[test]
    fn the_caller_hears_at_once_when_every_writer_side_is_dropped_unanswered() {
        let (to, from) = inbox();
        let copy = to.clone();
        assert!(copy.same_inbox(&to));
        drop(to);
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(copy);
        });
        let started = Instant::now();
        assert_eq!(
            from.take(Duration::from_secs(10)).unwrap_err(),
            NoReply::Gone
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        dropper.join().unwrap();
    }
}
