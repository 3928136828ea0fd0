//! Per-topic counters written by a consumer thread and read as a
//! [`ConsumerTopicMetrics`] snapshot from any thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use uuid::Uuid;

use crate::transport::{GroupExit, LagProbe, PartitionLag};

/// How many recent handler latencies the percentiles are computed over.
const LATENCY_WINDOW: usize = 4096;

/// A snapshot of one consumed topic's counters (totals since `consume` started).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerTopicMetrics {
    /// The topic.
    pub topic: String,
    /// Records polled.
    pub consumed: u64,
    /// Messages a handler returned `Ok` for.
    pub handled: u64,
    /// Extra handler attempts made in place after a retriable failure.
    pub retried_in_place: u64,
    /// Messages parked on the retry topic.
    pub sent_to_retry: u64,
    /// Records written to the dead-letter topic.
    pub dead_lettered: u64,
    /// Messages skipped because their id was handled already.
    pub duplicates: u64,
    /// Records whose bytes were not an envelope, or whose payload did not decode into a
    /// typed handler's type.
    pub decode_errors: u64,
    /// Messages of a type with no handler skipped by [`UnknownTypePolicy::Skip`](crate::config::UnknownTypePolicy::Skip).
    pub skipped_unknown_type: u64,
    /// Retry-topic entries of other groups, or of this group parked from topics this
    /// consumer does not read (another consumer's), passed over.
    pub skipped_other_group: u64,
    /// Records with a null value (tombstones), passed over.
    pub tombstones: u64,
    /// Retry entries due further away than `retry_topic_max_delay`, written again to the
    /// retry topic due after that delay (the clamp is kept in the entry, not in memory).
    pub rescheduled: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Dead-letter records that failed in the dead-letter handler (or did not read back as
    /// dead letters): logged at error and skipped, never written back.
    pub dead_letter_failures: u64,
    /// Times this member's assignment changed (the first assignment included): a
    /// rebalance that moved partitions.
    pub rebalances: u64,
    /// Median handler call time over the recent calls, if any.
    pub handler_latency_p50: Option<Duration>,
    /// 99th percentile handler call time over the recent calls, if any.
    pub handler_latency_p99: Option<Duration>,
    /// High watermark and committed offset per assigned partition, as last measured.
    pub lag: Vec<PartitionLag>,
    /// When the last successful poll returned.
    pub last_poll: Option<SystemTime>,
    /// Messages (and the records of their keys queued behind them) waiting in memory for
    /// an in-place retry, as last seen.
    pub waiting_retries: usize,
    /// Polled records not started yet, as last seen.
    pub backlog: usize,
    /// Retry entries and dead letters not yet acknowledged, as last seen.
    pub unacknowledged_writes: usize,
}

impl ConsumerTopicMetrics {
    /// Records not yet committed, over all partitions.
    pub fn total_lag(&self) -> i64 {
        self.lag.iter().map(PartitionLag::lag).sum()
    }
}

/// Names the counters of [`TopicStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Consumed,
    Handled,
    RetriedInPlace,
    SentToRetry,
    DeadLettered,
    Duplicates,
    DecodeErrors,
    SkippedUnknownType,
    SkippedOtherGroup,
    Commits,
    DeadLetterFailures,
    Tombstones,
    Rebalances,
    Rescheduled,
}

const COUNTERS: usize = 14;

/// The live state of one topic's consumer thread: counters and health.
pub(crate) struct TopicStats {
    pub(crate) topic: String,
    counters: [AtomicU64; COUNTERS],
    latencies: Mutex<VecDeque<Duration>>,
    lag: Mutex<Vec<PartitionLag>>,
    last_poll: Mutex<Option<(Instant, SystemTime)>>,
    pub(crate) alive: AtomicBool,
    pub(crate) consecutive_poll_errors: AtomicU64,
    pub(crate) restarts: AtomicU64,
    last_error: Mutex<Option<String>>,
    gauges: Mutex<Gauges>,
    /// The moment `busy_since` counts from.
    epoch: Instant,
    /// Nanoseconds after `epoch` the running handler call started (0: no call running).
    busy_since: AtomicU64,
    /// The id of the message the running call handles (two halves of the UUID).
    busy_id: [AtomicU64; 2],
    /// Set by the watchdog when it took the member out of its group; taken by the thread.
    evicted: AtomicBool,
    /// Why the watchdog says the thread is stuck (cleared when the call returns).
    stuck: Mutex<Option<String>>,
    /// Whether `stuck` may hold something (so a call's end looks at it without a lock).
    stuck_set: AtomicBool,
    /// How the watchdog takes this thread's member out of its group.
    exit: Mutex<Option<Arc<dyn GroupExit>>>,
    /// How the watchdog measures lag while the thread is in a long handler call.
    probe: Mutex<Option<Box<dyn LagProbe>>>,
    /// When the lag was last measured.
    lag_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for TopicStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicStats")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// What a thread holds, as last published.
#[derive(Debug, Default, Clone)]
pub(crate) struct Gauges {
    pub(crate) waiting: usize,
    pub(crate) backlog: usize,
    pub(crate) outbox: usize,
    /// Partitions stopped by a write that cannot be done, with the reason.
    pub(crate) stopped: Vec<(i32, String)>,
}

impl TopicStats {
    /// Fresh stats for `topic`'s thread, marked alive.
    pub(crate) fn new(topic: &str) -> Self {
        TopicStats {
            topic: topic.to_string(),
            counters: Default::default(),
            latencies: Mutex::new(VecDeque::with_capacity(LATENCY_WINDOW)),
            lag: Mutex::new(Vec::new()),
            last_poll: Mutex::new(None),
            alive: AtomicBool::new(true),
            consecutive_poll_errors: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            last_error: Mutex::new(None),
            gauges: Mutex::new(Gauges::default()),
            epoch: Instant::now(),
            busy_since: AtomicU64::new(0),
            busy_id: [AtomicU64::new(0), AtomicU64::new(0)],
            evicted: AtomicBool::new(false),
            stuck: Mutex::new(None),
            stuck_set: AtomicBool::new(false),
            exit: Mutex::new(None),
            probe: Mutex::new(None),
            lag_at: Mutex::new(None),
        }
    }

    /// Remembers how to measure this thread's lag from another thread.
    pub(crate) fn set_probe(&self, probe: Option<Box<dyn LagProbe>>) {
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) = probe;
    }

    /// Measures the lag of the partitions last measured, through the probe (from the
    /// watchdog, while the thread is busy) when the last measurement is older than `every`.
    pub(crate) fn probe_lag(&self, every: Duration) {
        let due = self
            .lag_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= every);
        if !due {
            return;
        }
        let partitions: Vec<i32> = self
            .lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| l.partition)
            .collect();
        if partitions.is_empty() {
            return;
        }
        let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = probe.as_mut() else { return };
        match p.lag(&partitions) {
            Ok(lag) => {
                drop(probe);
                self.set_lag(lag);
            }
            Err(e) => log::debug!("lag of {} through the probe: {e}", self.topic),
        }
    }

    /// Announces a handler call on message `id`, started at `at`.
    pub(crate) fn busy_with(&self, id: Uuid, at: Instant) {
        let (hi, lo) = id.as_u64_pair();
        self.busy_id[0].store(hi, Ordering::Relaxed);
        self.busy_id[1].store(lo, Ordering::Relaxed);
        let since = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.busy_since.store(since.max(1), Ordering::Release);
    }

    /// The running call is over.
    pub(crate) fn idle(&self) {
        self.busy_since.store(0, Ordering::Release);
        if self.stuck_set.swap(false, Ordering::AcqRel) {
            *self.stuck.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// How long the running handler call has run, and on which message.
    pub(crate) fn busy(&self) -> Option<(Duration, Uuid)> {
        let since = self.busy_since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let started = self.epoch + Duration::from_nanos(since);
        let id = Uuid::from_u64_pair(
            self.busy_id[0].load(Ordering::Relaxed),
            self.busy_id[1].load(Ordering::Relaxed),
        );
        Some((started.elapsed(), id))
    }

    /// Marks the thread stuck with `why` (by the watchdog).
    pub(crate) fn set_stuck(&self, why: String) {
        *self.stuck.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.stuck_set.store(true, Ordering::Release);
    }

    /// Why the thread is stuck, if it is.
    pub(crate) fn stuck(&self) -> Option<String> {
        self.stuck.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Remembers how to take this thread's member out of its group (`None`: no group).
    pub(crate) fn set_exit(&self, exit: Option<Arc<dyn GroupExit>>) {
        *self.exit.lock().unwrap_or_else(|e| e.into_inner()) = exit;
    }

    /// Takes the member out of its group (from the watchdog); the thread sees it with
    /// [`take_evicted`](Self::take_evicted). Returns whether there was a group to leave.
    pub(crate) fn evict(&self, reason: &str) -> bool {
        let exit = self.exit.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match exit {
            Some(exit) => {
                self.evicted.store(true, Ordering::SeqCst);
                exit.leave(reason);
                true
            }
            None => false,
        }
    }

    /// Whether the watchdog took the member out of its group and the thread has not taken
    /// that in yet (with [`take_evicted`](Self::take_evicted)).
    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }

    /// Whether the watchdog took the member out of its group since the last call.
    pub(crate) fn take_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed) && self.evicted.swap(false, Ordering::SeqCst)
    }

    /// Publishes what the thread holds.
    pub(crate) fn set_gauges(
        &self,
        waiting: usize,
        backlog: usize,
        outbox: usize,
        stopped: Vec<(i32, String)>,
    ) {
        let mut g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        g.waiting = waiting;
        g.backlog = backlog;
        g.outbox = outbox;
        if g.stopped != stopped {
            g.stopped = stopped;
        }
    }

    /// What the thread holds, as last published.
    pub(crate) fn gauges(&self) -> Gauges {
        self.gauges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }

    /// Records one handler call's duration.
    pub(crate) fn record_latency(&self, d: Duration) {
        let mut l = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == LATENCY_WINDOW {
            l.pop_front();
        }
        l.push_back(d);
    }

    /// Records a successful poll.
    pub(crate) fn record_poll(&self) {
        *self.last_poll.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), SystemTime::now()));
        self.consecutive_poll_errors.store(0, Ordering::Relaxed);
        // The thread polls again (no call of it runs now): a stuck mark for polls it
        // missed (consumer.max_poll_interval) is over, traffic or not.
        if self.stuck_set.swap(false, Ordering::AcqRel) {
            *self.stuck.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// How long ago the last successful poll returned.
    pub(crate) fn last_poll_age(&self) -> Option<Duration> {
        let last = *self.last_poll.lock().unwrap_or_else(|e| e.into_inner());
        last.map(|(at, _)| at.elapsed())
    }

    /// Stores the latest lag measurement.
    pub(crate) fn set_lag(&self, lag: Vec<PartitionLag>) {
        *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
        *self.lag_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Remembers the latest error of the thread (poll, commit, write, panic).
    pub(crate) fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// The latest error, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A snapshot of the counters.
    pub(crate) fn snapshot(&self) -> ConsumerTopicMetrics {
        let mut latencies: Vec<Duration> = self
            .latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        latencies.sort();
        let gauges = self.gauges();
        ConsumerTopicMetrics {
            topic: self.topic.clone(),
            consumed: self.get(Counter::Consumed),
            handled: self.get(Counter::Handled),
            retried_in_place: self.get(Counter::RetriedInPlace),
            sent_to_retry: self.get(Counter::SentToRetry),
            dead_lettered: self.get(Counter::DeadLettered),
            duplicates: self.get(Counter::Duplicates),
            decode_errors: self.get(Counter::DecodeErrors),
            skipped_unknown_type: self.get(Counter::SkippedUnknownType),
            skipped_other_group: self.get(Counter::SkippedOtherGroup),
            tombstones: self.get(Counter::Tombstones),
            rescheduled: self.get(Counter::Rescheduled),
            commits: self.get(Counter::Commits),
            dead_letter_failures: self.get(Counter::DeadLetterFailures),
            rebalances: self.get(Counter::Rebalances),
            handler_latency_p50: percentile(&latencies, 50),
            handler_latency_p99: percentile(&latencies, 99),
            lag: self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            last_poll: self
                .last_poll
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|(_, at)| at),
            waiting_retries: gauges.waiting,
            backlog: gauges.backlog,
            unacknowledged_writes: gauges.outbox,
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 99), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&samples[..1], 99),
            Some(Duration::from_millis(1))
        );
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn snapshot_reflects_counters_and_lag() {
        let s = TopicStats::new("t");
        s.add(Counter::Consumed, 3);
        s.add(Counter::Handled, 2);
        s.record_latency(Duration::from_millis(4));
        s.record_poll();
        s.set_lag(vec![PartitionLag {
            partition: 0,
            high_watermark: 10,
            committed: Some(7),
        }]);
        let m = s.snapshot();
        assert_eq!((m.consumed, m.handled), (3, 2));
        assert_eq!(m.handler_latency_p99, Some(Duration::from_millis(4)));
        assert_eq!(m.total_lag(), 3);
        assert!(m.last_poll.is_some());
        assert!(s.last_poll_age().unwrap() < Duration::from_secs(1));
    }
}
