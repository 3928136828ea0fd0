//! How a topic thread stops: its waiting messages parked (retry topic on), the outbox
//! written until the stop deadline, a last commit tried again until then, the lag measured,
//! the group left; a member the watchdog took out of its group drops what it holds first.

use std::time::{Duration, Instant};

use super::super::waiting::WaitingRoom;
use super::TopicLoop;

impl TopicLoop {
    /// The last commit before leaving the group: tried again after a failure that may pass
    /// (as the Java client's `commitSync` on close) until `deadline`; not after the group
    /// refused it (the partitions moved on: their next owners read those records again).
    fn final_commit(&mut self, deadline: Instant) {
        let mut backoff =
            crate::retry::Doubling::new(Duration::from_millis(50), Duration::from_secs(1));
        while let Err(e) = self.try_commit() {
            let refused = matches!(e.broker_code(), Some(22 | 25 | 27 | 82));
            let wait = backoff.next_wait();
            if refused || !e.is_retriable() || Instant::now() + wait >= deadline {
                log::warn!(
                    "final commit on {} not done ({e}); what it did not cover is read again \
                     by the partitions' next owners",
                    self.stats.topic
                );
                return;
            }
            std::thread::sleep(wait);
        }
    }

    /// Parks waiting messages (retry topic on; else they stay uncommitted), writes the
    /// outbox until the stop deadline, commits, measures lag, leaves the group.
    pub(super) fn finish(&mut self) {
        let deadline = self.shared.stop_deadline();
        if self.stats.take_evicted() {
            // Stopped while (or right after) the watchdog took the member out of its group:
            // its partitions are other members' now; parking its waiting messages or writing
            // its outbox would end them a second way beside their next owner.
            log::warn!(
                "consumer of {} stops after being taken out of its group: dropping {} waiting \
                 message(s), {} queued write(s) and {} backlog record(s) for the next owners",
                self.stats.topic,
                self.waiting.len(),
                self.outbox.len(),
                self.backlog.len()
            );
            self.forget_everything();
        }
        if self.shared.config.consumer.retry_topic_enabled {
            while let Some(w) = self.waiting.take_first() {
                let step = self.flow.give_up(w.item, &w.record);
                self.apply(w.record, step);
            }
        }
        self.waiting = WaitingRoom::default();
        loop {
            self.flush();
            let next = self.outbox.next_try();
            match next {
                Some(at) if at < deadline && self.outbox.len() > 0 => {
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                }
                _ => break,
            }
        }
        if self.outbox.len() > 0 {
            log::warn!(
                "{} retry / dead-letter write(s) of {} not done at shutdown; their messages \
                 stay uncommitted and are read again",
                self.outbox.len(),
                self.stats.topic
            );
        }
        self.final_commit(deadline);
        self.last_lag = None;
        self.measure_lag(Duration::ZERO);
        self.publish_gauges();
        self.close_subscription();
    }
}
