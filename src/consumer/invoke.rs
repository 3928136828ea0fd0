//! Running one handler attempt on the consumer thread itself: panics caught, the call
//! announced to the watchdog while it runs.
//!
//! ```text
//!  consumer thread: busy(message id, now) ─▶ catch_unwind(handler) ─▶ idle
//!        watchdog (shared.rs): a call busy past handler_timeout ─▶ stuck: logged at error
//!        with the message id, shown in health, the member leaves its group so the
//!        partitions move; the call's late result still counts (a late Ok is handled)
//! ```
//!
//! Why inline: a call cannot be stopped, so running the next attempt beside a call that is
//! still running (the previous design) let one message run twice at once and leaked a
//! thread per stuck call. Inline, a message is never handled by two calls at once in one
//! member (after an eviction another member can: the README's "What holds, exactly"), the
//! thread count is fixed (one per topic), and a call costs no thread hand-off.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::TopicStats;
use super::registry::{BatchInvoker, Failure, Invoker};
use crate::domain::{HandlerError, KafkaMessage};

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler returned `Ok` (however long it took).
    Handled,
    /// The handler returned an error.
    Failed(HandlerError),
    /// A typed handler's payload did not decode.
    Decode(String),
    /// The handler panicked; the text of the panic.
    Panicked(String),
    /// The call ran past `handler_timeout` and then failed (retriably or by a panic): how
    /// long it ran, and the failure.
    TimedOut(Duration, String),
}

/// Runs handler attempts for one consumer thread.
pub(crate) struct HandlerRunner {
    stats: Arc<TopicStats>,
    timeout: Option<Duration>,
}

impl HandlerRunner {
    /// A runner for the consumer thread whose counters are `stats`.
    pub(crate) fn new(stats: Arc<TopicStats>, timeout: Option<Duration>) -> Self {
        HandlerRunner { stats, timeout }
    }

    /// Runs one attempt of `invoker` on `message`, recording its duration; the outcome and
    /// when the call started (two clock reads per call in all).
    pub(crate) fn run(
        &mut self,
        invoker: &Invoker,
        message: &Arc<KafkaMessage>,
    ) -> (Outcome, Instant) {
        let started = Instant::now();
        self.stats.busy_with(message.id, started);
        let outcome = call(invoker, message);
        self.stats.idle();
        let took = started.elapsed();
        self.stats.record_latency(took);
        (self.late(outcome, took), started)
    }

    /// Runs one batch attempt on `messages`: one outcome per message, in order. A panic is
    /// every message's outcome; missing results count as retriable failures.
    pub(crate) fn run_batch(
        &mut self,
        invoker: &BatchInvoker,
        messages: Vec<KafkaMessage>,
    ) -> Vec<Outcome> {
        let n = messages.len();
        let started = Instant::now();
        if let Some(first) = messages.first() {
            self.stats.busy_with(first.id, started);
        }
        let outcomes = match catch_unwind(AssertUnwindSafe(|| invoker(&messages))) {
            Ok(results) => {
                let got = results.len();
                let mut outcomes: Vec<Outcome> = results
                    .into_iter()
                    .take(n)
                    .map(|r| match r {
                        Ok(()) => Outcome::Handled,
                        Err(e) => Outcome::Failed(e),
                    })
                    .collect();
                let missing = HandlerError::retriable(format!(
                    "the batch handler returned {got} results for {n} messages"
                ));
                outcomes.resize(n, Outcome::Failed(missing));
                outcomes
            }
            Err(panic) => vec![Outcome::Panicked(panic_text(panic.as_ref())); n],
        };
        self.stats.idle();
        let took = started.elapsed();
        outcomes.into_iter().map(|o| self.late(o, took)).collect()
    }

    /// A failure of a call that ran past the timeout counts as a timeout.
    fn late(&self, outcome: Outcome, took: Duration) -> Outcome {
        let Some(limit) = self.timeout else {
            return outcome;
        };
        if took <= limit {
            return outcome;
        }
        match outcome {
            Outcome::Failed(HandlerError::Retriable(why)) => Outcome::TimedOut(took, why),
            Outcome::Panicked(why) => Outcome::TimedOut(took, format!("then panicked: {why}")),
            other => {
                if other == Outcome::Handled {
                    log::warn!(
                        "a handler call on {} ran {took:?}, past consumer.handler_timeout \
                         ({limit:?}), and then succeeded: counted as handled",
                        self.stats.topic
                    );
                }
                other
            }
        }
    }
}

/// Calls the handler on this thread, catching a panic.
fn call(invoker: &Invoker, message: &KafkaMessage) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| invoker(message))) {
        Ok(Ok(())) => Outcome::Handled,
        Ok(Err(Failure::Handler(e))) => Outcome::Failed(e),
        Ok(Err(Failure::Decode(e))) => Outcome::Decode(e),
        Err(panic) => Outcome::Panicked(panic_text(panic.as_ref())),
    }
}

pub(crate) use crate::error::panic_text;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::registry::plain;
    use crate::domain::MessageType;

    fn msg() -> Arc<KafkaMessage> {
        Arc::new(KafkaMessage::from_json(
            MessageType::new("t"),
            serde_json::Value::Null,
        ))
    }

    fn runner(timeout: Option<Duration>) -> HandlerRunner {
        HandlerRunner::new(Arc::new(TopicStats::new("t")), timeout)
    }

    #[test]
    fn outcomes_are_reported_and_panics_caught() {
        let mut r = runner(Some(Duration::from_secs(5)));
        assert_eq!(
            r.run(&plain(|_: &KafkaMessage| Ok(())), &msg()).0,
            Outcome::Handled
        );
        let fail = plain(|_: &KafkaMessage| Err(HandlerError::retriable("busy")));
        assert_eq!(
            r.run(&fail, &msg()).0,
            Outcome::Failed(HandlerError::retriable("busy"))
        );
        let boom = plain(|_: &KafkaMessage| -> crate::domain::HandlerResult { panic!("boom") });
        assert_eq!(r.run(&boom, &msg()).0, Outcome::Panicked("boom".into()));
    }

    #[test]
    fn a_batch_gets_one_outcome_per_message_and_shares_a_panic() {
        let mut r = runner(None);
        let halves: BatchInvoker =
            Arc::new(|ms: &[KafkaMessage]| (0..ms.len() - 1).map(|_| Ok(())).collect());
        let batch = vec![(*msg()).clone(), (*msg()).clone()];
        let outcomes = r.run_batch(&halves, batch.clone());
        assert_eq!(outcomes[0], Outcome::Handled);
        assert!(matches!(&outcomes[1], Outcome::Failed(e) if e.is_retriable()));
        let boom: BatchInvoker = Arc::new(|_: &[KafkaMessage]| panic!("batch boom"));
        assert_eq!(
            r.run_batch(&boom, batch),
            vec![Outcome::Panicked("batch boom".into()); 2]
        );
    }

    #[test]
    fn a_late_success_counts_and_a_late_failure_is_a_timeout() {
        let mut r = runner(Some(Duration::from_millis(20)));
        let slow_ok = plain(|_: &KafkaMessage| {
            std::thread::sleep(Duration::from_millis(40));
            Ok(())
        });
        assert_eq!(r.run(&slow_ok, &msg()).0, Outcome::Handled);
        let slow_fail = plain(|_: &KafkaMessage| {
            std::thread::sleep(Duration::from_millis(40));
            Err(HandlerError::retriable("db down"))
        });
        assert!(
            matches!(r.run(&slow_fail, &msg()).0, Outcome::TimedOut(_, why) if why == "db down")
        );
        assert!(r.stats.busy().is_none(), "idle again after the call");
    }
}
