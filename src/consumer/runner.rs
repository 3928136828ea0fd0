//! The consumer thread of one topic, `kafka-consumer-<topic>`: poll, take each record to
//! its end, commit what ended.
//!
//! ```text
//!  loop until stopped:
//!    commit ended offsets (if the interval passed, or the last poll was idle)
//!    poll (≤ 250 ms) ── error: count, log, back off (100 ms doubling to 5 s), poll again
//!    forget revoked partitions; track every polled offset as pending
//!    for each record: MessageFlow::process ── ended: mark it; commit if due
//!                                         └─ not ended (stopping): leave it and the rest
//!  on stop: commit, measure lag, close the subscription (leave the group), join helpers
//! ```
//!
//! A panic in the loop itself (not in a handler: those are caught per call) is logged,
//! counted in health, and the loop restarts on a fresh subscription from the last commit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::invoke::panic_text;
use super::metrics::{Counter, TopicStats};
use super::offsets::OffsetTracker;
use super::process::MessageFlow;
use super::Shared;
use crate::error::Result;
use crate::transport::{SubscribeOptions, Subscription};

/// Longest single poll, so a stop request is noticed quickly.
const POLL_SLICE: Duration = Duration::from_millis(250);
/// Lag is measured at most this often while busy.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// Longest pause between failed polls.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(5);

/// The caller's side of a topic thread.
pub(crate) struct TopicThread {
    pub(crate) stats: Arc<TopicStats>,
    pub(crate) thread: Option<JoinHandle<()>>,
    /// Disconnects when the thread ends (for a bounded join).
    pub(crate) finished: Receiver<()>,
}

impl TopicThread {
    /// Whether the thread ended (its `finished` channel disconnected).
    pub(crate) fn has_ended(&self) -> bool {
        matches!(
            self.finished.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }
}

/// What a topic's subscription is made from.
pub(crate) fn subscribe_options(shared: &Shared, topic: &str) -> SubscribeOptions {
    let c = &shared.config;
    SubscribeOptions {
        group: c.group_id.clone(),
        topic: topic.to_string(),
        client_id: c.client_id.clone(),
        start_offset: c.consumer.start_offset,
        min_bytes: c.consumer.min_bytes,
        max_bytes: c.consumer.max_bytes,
    }
}

/// Starts the thread for `topic` on an open subscription.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    topic: &str,
    subscription: Box<dyn Subscription>,
) -> Result<TopicThread> {
    let stats = Arc::new(TopicStats::new(topic));
    let (done, finished) = crossbeam_channel::bounded::<()>(0);
    let topic_loop = TopicLoop {
        flow: MessageFlow::new(shared.clone(), stats.clone()),
        shared,
        stats: stats.clone(),
        sub: Some(subscription),
        tracker: OffsetTracker::default(),
        assignment: Vec::new(),
        last_commit: Instant::now(),
        last_lag: None,
    };
    let thread = std::thread::Builder::new()
        .name(format!("kafka-consumer-{topic}"))
        .spawn(move || {
            let _guard = EndGuard {
                stats: topic_loop.stats.clone(),
                _done: done,
            };
            topic_loop.run();
        })
        .map_err(|e| {
            crate::error::Error::new(
                crate::error::ErrorKind::WorkerStopped,
                format!("cannot start the consumer thread: {e}"),
            )
            .with_topic(topic)
        })?;
    Ok(TopicThread {
        stats,
        thread: Some(thread),
        finished,
    })
}

/// Marks the thread dead and disconnects `finished` however the thread ends.
struct EndGuard {
    stats: Arc<TopicStats>,
    _done: Sender<()>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.stats.alive.store(false, Ordering::SeqCst);
    }
}

/// The state a topic thread owns.
pub(super) struct TopicLoop {
    pub(super) shared: Arc<Shared>,
    pub(super) stats: Arc<TopicStats>,
    pub(super) sub: Option<Box<dyn Subscription>>,
    pub(super) tracker: OffsetTracker,
    assignment: Vec<i32>,
    pub(super) flow: MessageFlow,
    pub(super) last_commit: Instant,
    last_lag: Option<Instant>,
}

impl TopicLoop {
    fn run(mut self) {
        let topic = self.stats.topic.clone();
        log::info!(
            "consumer thread for {topic} started (group {})",
            self.shared.config.group_id
        );
        while !self.shared.stop.is_stopped() {
            match catch_unwind(AssertUnwindSafe(|| self.poll_loop())) {
                Ok(()) => break,
                Err(panic) => {
                    let why = panic_text(panic.as_ref());
                    log::error!("consumer loop for {topic} panicked: {why}; restarting it");
                    self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .set_error(format!("consumer loop panicked: {why}"));
                    // Uncommitted progress is given up: the group reads it again.
                    self.tracker = OffsetTracker::default();
                    self.close_subscription();
                    if self.shared.stop.sleep(Duration::from_secs(1)) {
                        break;
                    }
                }
            }
        }
        self.finish();
        log::info!("consumer thread for {topic} stopped");
    }

    fn poll_loop(&mut self) {
        let mut idle = false;
        let mut failed_polls = 0u32;
        while !self.shared.stop.is_stopped() {
            let interval = self.shared.config.consumer.commit_interval;
            let rebalancing = self.sub.as_ref().is_some_and(|s| s.rebalance_pending());
            if idle || rebalancing || self.last_commit.elapsed() >= interval {
                self.commit();
            }
            if idle {
                self.measure_lag(LAG_EVERY / 2);
            }
            let wait = self.shared.config.consumer.max_wait.min(POLL_SLICE);
            let Some(sub) = self.subscription() else {
                return;
            };
            let records = match sub.poll(wait) {
                Ok(records) => records,
                Err(e) => {
                    failed_polls += 1;
                    self.stats
                        .consecutive_poll_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.stats.set_error(format!("poll: {e}"));
                    let backoff = (Duration::from_millis(100) * 2u32.pow(failed_polls.min(6)))
                        .min(MAX_POLL_BACKOFF);
                    if failed_polls >= 5 {
                        log::error!(
                            "poll of {} failed {failed_polls} times in a row: {e}",
                            self.stats.topic
                        );
                    } else {
                        log::warn!(
                            "poll of {} failed: {e}; retrying in {backoff:?}",
                            self.stats.topic
                        );
                    }
                    if self.shared.stop.sleep(backoff) {
                        return;
                    }
                    continue;
                }
            };
            failed_polls = 0;
            self.stats.record_poll();
            self.follow_assignment();
            idle = records.is_empty();
            if idle {
                continue;
            }
            self.stats.add(Counter::Consumed, records.len() as u64);
            for r in &records {
                self.tracker.track(r.partition, r.offset);
            }
            // Stopping midway leaves the rest pending: not committed, read again later.
            self.dispatch(&records);
            self.measure_lag(LAG_EVERY);
        }
    }

    fn subscription(&mut self) -> Option<&mut Box<dyn Subscription>> {
        let mut backoff = Duration::from_millis(200);
        while self.sub.is_none() {
            let options = subscribe_options(&self.shared, &self.stats.topic);
            match self.shared.transport.subscribe(options) {
                Ok(sub) => self.sub = Some(sub),
                Err(e) => {
                    log::error!("subscribing to {} failed: {e}", self.stats.topic);
                    self.stats.set_error(format!("subscribe: {e}"));
                    if self.shared.stop.sleep(backoff) {
                        return None;
                    }
                    backoff = (backoff * 2).min(MAX_POLL_BACKOFF);
                }
            }
        }
        self.sub.as_mut()
    }

    /// Forgets partitions this member lost in a rebalance.
    fn follow_assignment(&mut self) {
        let Some(sub) = self.sub.as_ref() else {
            return;
        };
        let assignment = sub.assignment();
        if assignment != self.assignment {
            log::info!(
                "consumer of {} now reads partitions {assignment:?} (was {:?})",
                self.stats.topic,
                self.assignment
            );
            self.tracker.retain(&assignment);
            self.assignment = assignment;
            self.stats.add(Counter::Rebalances, 1);
        }
    }

    pub(super) fn commit(&mut self) {
        if let Some(sub) = self.sub.as_mut() {
            commit_with(
                sub.as_mut(),
                &mut self.tracker,
                &self.stats,
                &mut self.last_commit,
            );
        }
    }

    fn measure_lag(&mut self, every: Duration) {
        if self.last_lag.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.last_lag = Some(Instant::now());
        if let Some(sub) = self.sub.as_mut() {
            match sub.lag() {
                Ok(lag) => self.stats.set_lag(lag),
                Err(e) => log::debug!("lag of {} unavailable: {e}", self.stats.topic),
            }
        }
    }

    fn close_subscription(&mut self) {
        if let Some(mut sub) = self.sub.take() {
            if let Err(e) = sub.close() {
                log::warn!("leaving the group on {} failed: {e}", self.stats.topic);
            }
        }
        self.assignment.clear();
    }

    /// Final commit, lag, leave the group, join handler helpers.
    fn finish(&mut self) {
        self.commit();
        self.last_lag = None;
        self.measure_lag(Duration::ZERO);
        self.close_subscription();
        self.flow.close(self.shared.stop_deadline());
    }
}

/// Commits what ended; on failure keeps it for the next commit.
pub(super) fn commit_with(
    sub: &mut dyn Subscription,
    tracker: &mut OffsetTracker,
    stats: &TopicStats,
    last_commit: &mut Instant,
) {
    *last_commit = Instant::now();
    let offsets = tracker.committable();
    if offsets.is_empty() {
        return;
    }
    match sub.commit(&offsets) {
        Ok(()) => {
            tracker.mark_committed(&offsets);
            stats.add(Counter::Commits, 1);
            log::trace!("committed {offsets:?} on {}", stats.topic);
        }
        Err(e) => {
            log::warn!(
                "commit of {offsets:?} on {} failed: {e}; will retry",
                stats.topic
            );
            stats.set_error(format!("commit: {e}"));
        }
    }
}
