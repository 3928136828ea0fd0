//! [`ConsumerHealth`]: is every consumer thread alive and polling, and can the broker be
//! reached?

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::metrics::TopicStats;

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
    /// Handler calls that ran past the timeout and are still running.
    pub stuck_handlers: u64,
    /// The latest error the thread met (poll, commit, retry or dead-letter write, panic).
    pub last_error: Option<String>,
}

impl ThreadHealth {
    pub(crate) fn from_stats(stats: &TopicStats) -> Self {
        ThreadHealth {
            topic: stats.topic.clone(),
            alive: stats.alive.load(Ordering::SeqCst),
            last_poll_age: stats.last_poll_age(),
            consecutive_poll_errors: stats.consecutive_poll_errors.load(Ordering::Relaxed),
            restarts: stats.restarts.load(Ordering::Relaxed),
            stuck_handlers: stats.stuck_handlers.load(Ordering::Relaxed),
            last_error: stats.last_error(),
        }
    }
}

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
    /// Healthy: the broker is reachable, every thread is alive and its last poll succeeded
    /// no longer than `max_poll_age` ago. A thread polls between messages, so choose
    /// `max_poll_age` above the longest handler call and, for the retry topic's thread,
    /// above `consumer.retry_topic_delay` (it waits for due times without polling).
    pub fn is_healthy(&self, max_poll_age: Duration) -> bool {
        self.broker_reachable
            && self.threads.iter().all(|t| {
                t.alive
                    && t.consecutive_poll_errors == 0
                    && t.last_poll_age.is_some_and(|a| a <= max_poll_age)
            })
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

    #[test]
    fn healthy_needs_reachable_alive_and_recent_polls() {
        let stats = TopicStats::new("t");
        let mut h = ConsumerHealth {
            broker_reachable: true,
            broker_error: None,
            threads: vec![ThreadHealth::from_stats(&stats)],
        };
        assert!(!h.is_healthy(Duration::from_secs(5)), "never polled");
        stats.record_poll();
        h.threads = vec![ThreadHealth::from_stats(&stats)];
        assert!(h.is_healthy(Duration::from_secs(5)));
        assert!(h.oldest_poll_age().is_some());
        stats.alive.store(false, Ordering::SeqCst);
        h.threads = vec![ThreadHealth::from_stats(&stats)];
        assert!(!h.is_healthy(Duration::from_secs(5)));
    }
}
