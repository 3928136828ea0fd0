//! [`HealthReport`]: one verdict over a producer and its consumers, with reasons.

use std::fmt;
use std::time::Duration;

use crate::kafka::Health;

/// A consumer thread whose last successful poll is older than this is reported degraded.
const STALE_POLL: Duration = Duration::from_secs(60);

/// The verdict of a [`HealthReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything works.
    Ok,
    /// Working, with problems worth a look (a dead writer restarted, poll errors, a
    /// stuck handler, a stale poll).
    Degraded,
    /// Not working: the broker is unreachable, or no consumer thread is alive.
    Down,
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Down => "down",
        })
    }
}

/// One verdict over a [`Kafka`](crate::Kafka)'s producer and consumers, with a reason for
/// each problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthReport {
    /// The worst status found.
    pub status: HealthStatus,
    /// One line per problem (empty when ok).
    pub reasons: Vec<String>,
}

impl HealthReport {
    /// Judges `health` ([`Kafka::health`](crate::Kafka::health)):
    /// - down: a broker unreachable from the producer or a consumer, or a consumer whose
    ///   threads are all dead;
    /// - degraded: a dead writer thread, a dead consumer thread (others alive), poll errors
    ///   in a row, handlers stuck past their timeout, threads restarted after a panic, or a
    ///   last poll older than a minute;
    /// - ok otherwise.
    pub fn from_health(health: &Health) -> HealthReport {
        let mut report = HealthReport {
            status: HealthStatus::Ok,
            reasons: Vec::new(),
        };
        if let Some(p) = &health.producer {
            if !p.broker_reachable {
                report.add(
                    HealthStatus::Down,
                    format!(
                        "producer: broker unreachable ({})",
                        p.broker_error.as_deref().unwrap_or("no answer")
                    ),
                );
            }
            for topic in &p.dead_writers {
                report.add(
                    HealthStatus::Degraded,
                    format!("producer: writer thread for {topic} is dead (restarted on next send)"),
                );
            }
        }
        for (i, c) in health.consumers.iter().enumerate() {
            // The consumer judges itself (stuck handlers, stopped partitions, failing
            // polls); a stale last poll is worth a look on top.
            let status = c.status();
            for problem in c.problems() {
                report.add(
                    status.max(HealthStatus::Degraded),
                    format!("consumer {i}: {problem}"),
                );
            }
            for t in &c.threads {
                if t.restarts > 0 {
                    report.add(
                        HealthStatus::Degraded,
                        format!(
                            "consumer {i}: thread for {} restarted {} time(s) after a panic",
                            t.topic, t.restarts
                        ),
                    );
                }
                if t.alive && t.last_poll_age.is_some_and(|a| a > STALE_POLL) {
                    report.add(
                        HealthStatus::Degraded,
                        format!(
                            "consumer {i}: last poll on {} is older than {STALE_POLL:?}",
                            t.topic
                        ),
                    );
                }
            }
        }
        report
    }

    fn add(&mut self, status: HealthStatus, reason: String) {
        self.status = self.status.max(status);
        self.reasons.push(reason);
    }
}

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        for r in &self.reasons {
            write!(f, "\n  - {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ConsumerHealth, ProducerHealth, ThreadHealth};

    fn thread(alive: bool, poll_errors: u64) -> ThreadHealth {
        ThreadHealth {
            topic: "t".into(),
            alive,
            last_poll_age: Some(Duration::from_millis(5)),
            consecutive_poll_errors: poll_errors,
            restarts: 0,
            stuck_handlers: 0,
            running_call: None,
            stuck: None,
            stopped_partitions: Vec::new(),
            last_error: Some("boom".into()),
        }
    }

    #[test]
    fn the_worst_problem_decides_and_each_has_a_reason() {
        let ok = Health {
            producer: Some(ProducerHealth {
                broker_reachable: true,
                broker_error: None,
                live_writers: vec!["t".into()],
                dead_writers: vec![],
            }),
            consumers: vec![ConsumerHealth {
                broker_reachable: true,
                broker_error: None,
                threads: vec![thread(true, 0)],
            }],
        };
        assert_eq!(HealthReport::from_health(&ok).status, HealthStatus::Ok);
        let mut degraded = ok.clone();
        degraded.consumers[0].threads = vec![thread(true, 3)];
        let r = HealthReport::from_health(&degraded);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert_eq!(r.reasons.len(), 1, "{r}");
        assert!(r.reasons[0].contains("3 poll(s) failed"), "{r}");
        let mut stopped = ok.clone();
        stopped.consumers[0].threads = vec![thread(true, 0), thread(false, 0)];
        let r = HealthReport::from_health(&stopped);
        assert_eq!(
            r.status,
            HealthStatus::Down,
            "a stopped thread stalls its topic"
        );
        assert!(r.reasons[0].contains("thread stopped"), "{r}");
        let mut down = degraded.clone();
        down.producer.as_mut().unwrap().broker_reachable = false;
        down.producer.as_mut().unwrap().broker_error = Some("refused".into());
        let r = HealthReport::from_health(&down);
        assert_eq!(r.status, HealthStatus::Down);
        assert!(r.reasons[0].contains("refused"), "{r}");
    }
}
