//! The consumer thread of one topic, `kafka-consumer-<topic>`: poll, take each record to
//! its end without letting one message hold up the others, commit what ended.
//!
//! ```text
//!  loop until stopped:
//!    commit time (commit_interval)? write queued retries / dead letters, commit what ended
//!    a message in the waiting room due? ── its next attempt (dispatch.rs)
//!    else the next record of the backlog (partitions take turns; a held or stopped
//!      partition is passed over; at most max_poll_records between polls; none while
//!      the group rebalances) ── prepare, attempt (dispatch.rs)
//!    else poll (≤ 250 ms, less if something is due sooner), partitions with a backlog
//!      paused ── forget revoked partitions (also when the poll failed: it may have
//!      rejoined first); track every polled offset as pending
//!  taken out of the group by the watchdog (see shared.rs)? drop what it holds, rejoin;
//!    until then nothing is written or committed (flush and commit look first)
//!  on stop (runner/finish.rs): taken out of the group? drop what it holds; else park
//!    waiting messages (retry topic on), write the outbox; commit (tried again until the
//!    stop deadline), measure lag, close the subscription (leave the group)
//! ```
//!
//! A panic in the loop itself (not in a handler: those are caught per call) is logged,
//! counted in health, and the loop restarts on a fresh subscription from the last commit.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

mod finish;

use super::backlog::Backlog;
use super::invoke::panic_text;
use super::metrics::{Counter, TopicStats};
use super::offsets::OffsetTracker;
use super::outbox::Outbox;
use super::process::{MessageFlow, Ready};
use super::waiting::WaitingRoom;
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
        group: shared.group_reading(topic),
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
    stats.set_exit(subscription.group_exit());
    stats.set_probe(subscription.lag_probe());
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
        backlog: Backlog::default(),
        waiting: WaitingRoom::default(),
        outbox: Outbox::default(),
        paused: BTreeSet::new(),
        taken_since_poll: 0,
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
    /// Polled records not started yet.
    pub(super) backlog: Backlog,
    /// Messages waiting for their next in-place attempt.
    pub(super) waiting: WaitingRoom<Box<Ready>>,
    /// Retry entries and dead letters not yet acknowledged.
    pub(super) outbox: Outbox,
    /// Partitions the subscription was told not to fetch.
    paused: BTreeSet<i32>,
    /// Records started since the last poll (bounded by `max_poll_records`).
    pub(super) taken_since_poll: usize,
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
                    self.forget_everything();
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

    fn forget_everything(&mut self) {
        self.tracker = OffsetTracker::default();
        self.backlog = Backlog::default();
        self.waiting = WaitingRoom::default();
        self.outbox.forget(|_| true);
        self.paused.clear();
    }

    fn poll_loop(&mut self) {
        let mut idle = false;
        let mut failed_polls = 0u32;
        let max_records = self.shared.config.consumer.max_poll_records;
        let max_waiting = self.shared.config.consumer.max_waiting_retries;
        while !self.shared.stop.is_stopped() {
            if self.stats.take_evicted() {
                log::error!(
                    "consumer of {} was taken out of its group by the watchdog (a handler call \
                     ran too long, or no poll within consumer.max_poll_interval); dropping what \
                     it held and joining again",
                    self.stats.topic
                );
                self.forget_everything();
            }
            let rebalancing = self.sub.as_ref().is_some_and(|s| s.rebalance_pending());
            let interval = self.shared.config.consumer.commit_interval;
            // One clock read per turn of the loop.
            let mut now = Instant::now();
            if idle || rebalancing || now.saturating_duration_since(self.last_commit) >= interval {
                self.flush_and_commit();
                now = Instant::now();
            } else if self.outbox.len() >= super::outbox::FLUSH_AT {
                self.flush();
                now = Instant::now();
            }
            if self.lag_due(now, if idle { LAG_EVERY / 2 } else { LAG_EVERY }) {
                self.measure_lag(Duration::ZERO);
                now = Instant::now();
            }
            self.publish_gauges();
            if !rebalancing {
                if let Some(w) = self.waiting.take_due(now) {
                    self.retry_waiting(w);
                    idle = false;
                    continue;
                }
                if self.taken_since_poll < max_records && self.waiting.len() < max_waiting {
                    let stopped = self.outbox.stopped();
                    if let Some(record) = self.backlog.next_ready(now, &stopped) {
                        self.taken_since_poll += 1;
                        self.take(record);
                        idle = false;
                        continue;
                    }
                }
            }
            let room = self.waiting.len() < max_waiting;
            let wait = self.poll_wait(rebalancing || !room);
            self.update_pauses();
            let Some(sub) = self.subscription() else {
                return;
            };
            let records = match sub.poll(wait) {
                Ok(records) => records,
                Err(e) => {
                    // A poll can fail after it rejoined the group (the offsets lookup or the
                    // fetch after the join): partitions the new generation gave to another
                    // member are let go now, not at the next poll that succeeds.
                    self.follow_assignment();
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
            self.taken_since_poll = 0;
            self.stats.record_poll();
            self.follow_assignment();
            idle = records.is_empty() && self.backlog.len() == 0 && self.waiting.len() == 0;
            if records.is_empty() {
                continue;
            }
            self.stats.add(Counter::Consumed, records.len() as u64);
            for r in &records {
                self.tracker.track(r.partition, r.offset);
            }
            self.backlog.push(records);
        }
    }

    /// How long the next poll may wait: not past the next due retry, held partition or
    /// outbox write, and not at all while records are ready to start (unless none may be
    /// started now: `holding_back`, a rebalance or a full waiting room).
    fn poll_wait(&self, holding_back: bool) -> Duration {
        let now = Instant::now();
        let stopped = self.outbox.stopped();
        if !holding_back && self.backlog.has_ready(now, &stopped) {
            return Duration::ZERO;
        }
        let mut wait = self.shared.config.consumer.max_wait.min(POLL_SLICE);
        let soonest = [
            self.waiting.next_due(),
            self.backlog.next_release(),
            self.outbox.next_try(),
        ];
        for at in soonest.into_iter().flatten() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        wait
    }

    /// Pauses partitions with a backlog (or stopped by a failing write), resumes the others.
    fn update_pauses(&mut self) {
        let mut want = self.backlog.busy_partitions();
        want.extend(self.outbox.stopped());
        if want == self.paused {
            return;
        }
        let Some(sub) = self.sub.as_mut() else {
            return;
        };
        let pause: Vec<i32> = want.difference(&self.paused).copied().collect();
        let resume: Vec<i32> = self.paused.difference(&want).copied().collect();
        if !pause.is_empty() {
            sub.pause(&pause);
        }
        if !resume.is_empty() {
            sub.resume(&resume);
        }
        self.paused = want;
    }

    fn subscription(&mut self) -> Option<&mut Box<dyn Subscription>> {
        let mut backoff = crate::retry::Doubling::new(Duration::from_millis(200), MAX_POLL_BACKOFF);
        while self.sub.is_none() {
            let options = subscribe_options(&self.shared, &self.stats.topic);
            match self.shared.transport.subscribe(options) {
                Ok(sub) => {
                    self.stats.set_exit(sub.group_exit());
                    self.stats.set_probe(sub.lag_probe());
                    self.sub = Some(sub);
                }
                Err(e) => {
                    log::error!("subscribing to {} failed: {e}", self.stats.topic);
                    self.stats.set_error(format!("subscribe: {e}"));
                    if self.shared.stop.sleep(backoff.next_wait()) {
                        return None;
                    }
                }
            }
        }
        self.sub.as_mut()
    }

    /// Forgets what this thread holds of partitions it lost in a rebalance, or whose
    /// reading the subscription restarted from the group's commit.
    fn follow_assignment(&mut self) {
        let Some(sub) = self.sub.as_mut() else {
            return;
        };
        let assignment = sub.assignment();
        let restarted = sub.take_restarted();
        if assignment == self.assignment && restarted.is_empty() {
            return;
        }
        if assignment != self.assignment {
            log::info!(
                "consumer of {} now reads partitions {assignment:?} (was {:?})",
                self.stats.topic,
                self.assignment
            );
            self.stats.add(Counter::Rebalances, 1);
        }
        let gone = |p: i32| !assignment.contains(&p) || restarted.contains(&p);
        self.tracker.retain(&assignment);
        self.tracker.forget(&restarted);
        self.backlog.retain(|p| !gone(p));
        self.waiting.forget(gone);
        self.outbox.forget(gone);
        self.paused.retain(|p| !gone(*p));
        self.assignment = assignment;
    }

    /// Writes what the outbox holds (what is due); ends the records it acknowledged.
    /// Nothing is written while the watchdog's eviction is not yet taken: the partitions
    /// belong to other members now, who handle those messages themselves.
    pub(super) fn flush(&mut self) {
        if self.stats.is_evicted() {
            return;
        }
        for (partition, offset) in self.outbox.flush(&self.shared, &self.stats) {
            self.tracker.end(partition, offset);
        }
    }

    pub(super) fn flush_and_commit(&mut self) {
        self.flush();
        self.commit();
    }

    pub(super) fn commit(&mut self) {
        let _ = self.try_commit();
    }

    /// Commits what ended; `Err` with the failure if a commit was refused or failed
    /// (logged, and left for the next commit), else `Ok` (also when there was nothing to
    /// commit).
    fn try_commit(&mut self) -> std::result::Result<(), crate::Error> {
        self.last_commit = Instant::now();
        if self.stats.is_evicted() {
            return Ok(()); // taken out of the group: what it holds is dropped, not committed
        }
        let Some(sub) = self.sub.as_mut() else {
            return Ok(());
        };
        let offsets = self.tracker.committable();
        if offsets.is_empty() {
            return Ok(());
        }
        match sub.commit(&offsets) {
            Ok(()) => {
                self.tracker.mark_committed(&offsets);
                self.stats.add(Counter::Commits, 1);
                log::trace!("committed {offsets:?} on {}", self.stats.topic);
                Ok(())
            }
            Err(e) => {
                log::warn!(
                    "commit of {offsets:?} on {} failed: {e}; will retry",
                    self.stats.topic
                );
                self.stats.set_error(format!("commit: {e}"));
                Err(e)
            }
        }
    }

    /// Whether a lag measurement is due at `now` (one every `every`).
    fn lag_due(&self, now: Instant, every: Duration) -> bool {
        self.last_lag
            .is_none_or(|at| now.saturating_duration_since(at) >= every)
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

    fn publish_gauges(&self) {
        self.stats.set_gauges(
            self.waiting.len(),
            self.backlog.len(),
            self.outbox.len(),
            self.outbox.stopped_reasons(),
        );
    }

    fn close_subscription(&mut self) {
        if let Some(mut sub) = self.sub.take() {
            if let Err(e) = sub.close() {
                log::warn!("leaving the group on {} failed: {e}", self.stats.topic);
            }
        }
        self.assignment.clear();
    }
}
