//! [`ConsumerHealth`]: is every consumer thread alive, polling and moving, can the broker be
//! reached, and if not, why? Every stall the consumer knows of shows here with its reason:
//! a dead thread, failing polls, a handler call past its timeout (stuck), a partition
//! stopped because a retry or dead-letter write cannot be done.

use std::sync::atomic::Ordering;
use std::time::Duration;

use uuid::Uuid;

use super::metrics::TopicStats;

/// A handler call running now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningCall {
    /// The id of the message it handles.
    pub message_id: Uuid,
    /// How long it has run.
    pub running_for: Duration,
}

/// The health of one topic's consumer thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadHealth {
    /// The topic the thread consumes (thread `kafka-consumer-<topic>`).
    pub topic: String,
    /// Whether the thread is running (false once it stopped, after shutdown or a fatal
    /// error).
    pub alive: bool,
    /// Time since the last successful poll, if any succeeded.
    pub last_poll_age: Option<Duration>,
    /// Polls failed in a row (0 when the last poll succeeded).
    pub consecutive_poll_errors: u64,
    /// Times the thread's loop panicked and was restarted.
    pub restarts: u64,
    /// 1 while the thread's handler call runs past `consumer.handler_timeout` (the thread
    /// is then [`stuck`](Self::stuck)), else 0. Handlers run on the consumer thread, so
    /// there is never more than one.
    pub stuck_handlers: u64,
    /// The handler call running now, if any.
    pub running_call: Option<RunningCall>,
    /// Why the thread is stuck (a call past `handler_timeout`, or no poll within
    /// `max_poll_interval`): its member left the group so the partitions moved.
    pub stuck: Option<String>,
    /// Partitions stopped because a message's retry entry and dead letters could not be
    /// written at all, with the reason: nothing is committed past that message.
    pub stopped_partitions: Vec<(i32, String)>,
    /// The latest error the thread met (poll, commit, retry or dead-letter write, panic).
    pub last_error: Option<String>,
}

impl ThreadHealth {
    pub(crate) fn from_stats(stats: &TopicStats) -> Self {
        let stuck = stats.stuck();
        ThreadHealth {
            topic: stats.topic.clone(),
            alive: stats.alive.load(Ordering::SeqCst),
            last_poll_age: stats.last_poll_age(),
            consecutive_poll_errors: stats.consecutive_poll_errors.load(Ordering::Relaxed),
            restarts: stats.restarts.load(Ordering::Relaxed),
            stuck_handlers: u64::from(stuck.is_some()),
            running_call: stats.busy().map(|(running_for, message_id)| RunningCall {
                message_id,
                running_for,
            }),
            stuck,
            stopped_partitions: stats.gauges().stopped,
            last_error: stats.last_error(),
        }
    }
}

pub use crate::metrics::HealthStatus;

/// A consumer's health: see [`Consumer::health`](crate::Consumer::health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHealth {
    /// Whether a broker answered a metadata request within `connect_timeout`.
    pub broker_reachable: bool,
    /// Why the broker could not be reached.
    pub broker_error: Option<String>,
    /// One entry per consumed topic, sorted by topic.
    pub threads: Vec<ThreadHealth>,
}

impl ConsumerHealth {
    /// Healthy: the broker is reachable, every thread is alive, not stuck, has no stopped
    /// partition, and its last poll succeeded no longer than `max_poll_age` ago. Threads
    /// poll between records (at least every 250 ms when idle, also while retry entries wait
    /// for their due time), so `max_poll_age` only needs to exceed the longest handler call.
    pub fn is_healthy(&self, max_poll_age: Duration) -> bool {
        self.broker_reachable
            && self.threads.iter().all(|t| {
                t.alive
                    && t.stuck.is_none()
                    && t.stopped_partitions.is_empty()
                    && t.consecutive_poll_errors == 0
                    && t.last_poll_age.is_some_and(|a| a <= max_poll_age)
            })
    }

    /// `Down` when something does not move (see [`HealthStatus::Down`]), `Degraded` when
    /// polls fail, else `Ok`.
    pub fn status(&self) -> HealthStatus {
        let down = !self.broker_reachable
            || self
                .threads
                .iter()
                .any(|t| !t.alive || t.stuck.is_some() || !t.stopped_partitions.is_empty());
        if down {
            HealthStatus::Down
        } else if self.threads.iter().any(|t| t.consecutive_poll_errors > 0) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        }
    }

    /// Every stall and trouble, one line each with its reason (empty when all is well).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.broker_reachable {
            out.push(format!(
                "broker unreachable: {}",
                self.broker_error.as_deref().unwrap_or("no answer")
            ));
        }
        for t in &self.threads {
            if !t.alive {
                out.push(format!("{}: thread stopped", t.topic));
            }
            if let Some(why) = &t.stuck {
                out.push(format!("{}: stuck: {why}", t.topic));
            }
            for (p, why) in &t.stopped_partitions {
                out.push(format!("{}/{p}: stopped: {why}", t.topic));
            }
            if t.consecutive_poll_errors > 0 {
                out.push(format!(
                    "{}: {} poll(s) failed in a row: {}",
                    t.topic,
                    t.consecutive_poll_errors,
                    t.last_error.as_deref().unwrap_or("?")
                ));
            }
        }
        out
    }

    /// The oldest last-poll age over all threads (`None` if some thread never polled).
    pub fn oldest_poll_age(&self) -> Option<Duration> {
        self.threads
            .iter()
            .map(|t| t.last_poll_age)
            .try_fold(Duration::ZERO, |acc, age| age.map(|a| acc.max(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(stats: &TopicStats) -> ConsumerHealth {
        ConsumerHealth {
            broker_reachable: true,
            broker_error: None,
            threads: vec![ThreadHealth::from_stats(stats)],
        }
    }

    #[test]
    fn healthy_needs_reachable_alive_and_recent_polls() {
        let stats = TopicStats::new("t");
        assert!(
            !health(&stats).is_healthy(Duration::from_secs(5)),
            "never polled"
        );
        stats.record_poll();
        let h = health(&stats);
        assert!(h.is_healthy(Duration::from_secs(5)));
        assert_eq!(h.status(), HealthStatus::Ok);
        assert!(h.problems().is_empty());
        assert!(h.oldest_poll_age().is_some());
        stats.alive.store(false, Ordering::SeqCst);
        let h = health(&stats);
        assert!(!h.is_healthy(Duration::from_secs(5)));
        assert_eq!(h.status(), HealthStatus::Down);
    }

    #[test]
    fn a_stuck_thread_and_a_stopped_partition_are_down_with_their_reasons() {
        let stats = TopicStats::new("t");
        stats.record_poll();
        stats.busy_with(Uuid::nil(), std::time::Instant::now());
        stats.set_stuck("handler past 30s".into());
        stats.set_gauges(0, 0, 1, vec![(2, "dead-letter topic missing".into())]);
        let h = health(&stats);
        assert_eq!(h.status(), HealthStatus::Down);
        assert_eq!(h.threads[0].stuck_handlers, 1);
        assert!(h.threads[0].running_call.is_some());
        let problems = h.problems().join("\n");
        assert!(problems.contains("handler past 30s"), "{problems}");
        assert!(
            problems.contains("t/2: stopped: dead-letter topic missing"),
            "{problems}"
        );
        stats.idle();
        assert!(health(&stats).threads[0].stuck.is_none());
    }
}
