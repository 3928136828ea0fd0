//! Running one handler attempt: panics caught, time bounded.
//!
//! ```text
//!  consumer thread ──job──▶ kafka-handler-<topic> (helper thread) ──catch_unwind(handler)
//!        │ recv_timeout(handler_timeout)                               │
//!        ◀──────────────── outcome ◀───────────────────────────────────┘
//!        └─ timeout: the helper is abandoned (it finishes the late call, then exits);
//!           a fresh helper takes the next job; abandoned ones are joined at shutdown
//! ```
//!
//! With `handler_timeout: None` the handler runs on the consumer thread itself (panics are
//! still caught; there is no bound).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::registry::{BatchInvoker, Failure, Invoker};
use crate::domain::{HandlerError, KafkaMessage};
use crate::wait::recv_soon;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler returned `Ok`.
    Handled,
    /// The handler returned an error.
    Failed(HandlerError),
    /// A typed handler's payload did not decode.
    Decode(String),
    /// The handler panicked; the text of the panic.
    Panicked(String),
    /// The handler was still running when its time ran out.
    TimedOut(Duration),
}

/// Work for the helper: one call (one outcome) or one batch call (one outcome each).
type Work = Box<dyn FnOnce() -> Vec<Outcome> + Send>;

struct Job {
    work: Work,
    reply: Sender<Vec<Outcome>>,
}

struct Helper {
    jobs: Sender<Job>,
    thread: JoinHandle<()>,
}

/// Runs handler attempts for one consumer thread.
pub(crate) struct HandlerRunner {
    topic: String,
    timeout: Option<Duration>,
    helper: Option<Helper>,
    /// Helpers whose call timed out; still running it, or finished and not joined yet.
    abandoned: Vec<JoinHandle<()>>,
}

impl HandlerRunner {
    /// A runner for the consumer thread of `topic`.
    pub(crate) fn new(topic: &str, timeout: Option<Duration>) -> Self {
        HandlerRunner {
            topic: topic.to_string(),
            timeout,
            helper: None,
            abandoned: Vec::new(),
        }
    }

    /// Runs one attempt of `invoker` on `message`.
    pub(crate) fn run(&mut self, invoker: &Invoker, message: &Arc<KafkaMessage>) -> Outcome {
        let (invoker, msg) = (invoker.clone(), message.clone());
        let work: Work = Box::new(move || vec![call(&invoker, &msg)]);
        let what = format!("message {}", message.id);
        self.run_work(work, 1, &what).pop().unwrap_or_else(|| {
            Outcome::Failed(HandlerError::retriable("the handler gave no result"))
        })
    }

    /// Runs one batch attempt on `messages`: one outcome per message, in order. A panic or a
    /// timeout is every message's outcome; missing results count as retriable failures.
    pub(crate) fn run_batch(
        &mut self,
        invoker: &BatchInvoker,
        messages: Vec<KafkaMessage>,
    ) -> Vec<Outcome> {
        let n = messages.len();
        let what = format!("a batch of {n} messages");
        let invoker = invoker.clone();
        let work: Work =
            Box::new(
                move || match catch_unwind(AssertUnwindSafe(|| invoker(&messages))) {
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
                },
            );
        self.run_work(work, n, &what)
    }

    fn run_work(&mut self, work: Work, n: usize, what: &str) -> Vec<Outcome> {
        let Some(timeout) = self.timeout else {
            return work();
        };
        let jobs = match self.helper() {
            Ok(jobs) => jobs,
            Err(e) => {
                let why = format!("cannot start a handler thread: {e}");
                return vec![Outcome::Panicked(why); n];
            }
        };
        let (reply, outcome) = crossbeam_channel::bounded(1);
        if jobs.send(Job { work, reply }).is_err() {
            self.abandon();
            return vec![Outcome::Panicked("the handler thread had stopped".into()); n];
        }
        match recv_soon(&outcome, timeout) {
            Ok(outcomes) => outcomes,
            Err(RecvTimeoutError::Timeout) => {
                log::warn!(
                    "handler for {what} on topic {} still running after {timeout:?}; \
                     leaving it to finish on its own thread",
                    self.topic
                );
                self.abandon();
                vec![Outcome::TimedOut(timeout); n]
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.abandon();
                vec![Outcome::Panicked("the handler thread stopped during the call".into()); n]
            }
        }
    }

    /// Handler calls that timed out and are still running.
    pub(crate) fn stuck(&mut self) -> usize {
        self.reap();
        self.abandoned.len()
    }

    /// Stops the helper and joins abandoned helpers until `deadline`; any still running
    /// then are logged and left behind (a running call cannot be stopped).
    pub(crate) fn close(&mut self, deadline: Instant) {
        if let Some(helper) = self.helper.take() {
            drop(helper.jobs);
            // The helper is idle (attempts are synchronous): it exits at once.
            let _ = helper.thread.join();
        }
        while !self.abandoned.is_empty() && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(Duration::from_millis(5));
        }
        self.reap();
        if !self.abandoned.is_empty() {
            log::error!(
                "{} timed-out handler call(s) on topic {} still running at shutdown; not joined",
                self.abandoned.len(),
                self.topic
            );
        }
    }

    fn helper(&mut self) -> std::io::Result<Sender<Job>> {
        if let Some(h) = &self.helper {
            return Ok(h.jobs.clone());
        }
        self.reap();
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(1);
        let thread = std::thread::Builder::new()
            .name(format!("kafka-handler-{}", self.topic))
            .spawn(move || {
                // Ends when the runner drops its sender (close or abandon); wakes every
                // minute while idle only to wait again.
                loop {
                    match recv_soon(&queue, Duration::from_secs(60)) {
                        // The consumer may have given up waiting; then nobody reads the reply.
                        Ok(job) => drop(job.reply.send((job.work)())),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        let sender = jobs.clone();
        self.helper = Some(Helper { jobs, thread });
        Ok(sender)
    }

    /// Gives up on the current helper: it exits once its call returns.
    fn abandon(&mut self) {
        if let Some(helper) = self.helper.take() {
            drop(helper.jobs);
            self.abandoned.push(helper.thread);
        }
    }

    fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) =
            self.abandoned.drain(..).partition(|t| t.is_finished());
        for t in done {
            let _ = t.join();
        }
        self.abandoned = running;
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

/// The text of a panic payload.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

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

    #[test]
    fn outcomes_are_reported_inline_and_on_the_helper() {
        for timeout in [None, Some(Duration::from_secs(5))] {
            let mut r = HandlerRunner::new("t", timeout);
            assert_eq!(
                r.run(&plain(|_: &KafkaMessage| Ok(())), &msg()),
                Outcome::Handled
            );
            let fail = plain(|_: &KafkaMessage| Err(HandlerError::retriable("busy")));
            assert_eq!(
                r.run(&fail, &msg()),
                Outcome::Failed(HandlerError::retriable("busy"))
            );
            let boom = plain(|_: &KafkaMessage| -> crate::domain::HandlerResult { panic!("boom") });
            assert_eq!(r.run(&boom, &msg()), Outcome::Panicked("boom".into()));
            r.close(Instant::now() + Duration::from_secs(1));
        }
    }

    #[test]
    fn a_batch_gets_one_outcome_per_message_and_shares_a_panic() {
        for timeout in [None, Some(Duration::from_secs(5))] {
            let mut r = HandlerRunner::new("t", timeout);
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
            r.close(Instant::now() + Duration::from_secs(1));
        }
    }

    #[test]
    fn a_slow_handler_times_out_and_the_next_call_gets_a_fresh_helper() {
        let mut r = HandlerRunner::new("t", Some(Duration::from_millis(50)));
        let slow = plain(|_: &KafkaMessage| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        });
        let started = Instant::now();
        assert_eq!(
            r.run(&slow, &msg()),
            Outcome::TimedOut(Duration::from_millis(50))
        );
        assert!(started.elapsed() < Duration::from_millis(250));
        assert_eq!(r.stuck(), 1);
        assert_eq!(
            r.run(&plain(|_: &KafkaMessage| Ok(())), &msg()),
            Outcome::Handled
        );
        r.close(Instant::now() + Duration::from_secs(2));
        assert_eq!(
            r.stuck(),
            0,
            "the late call finished and its thread was joined"
        );
    }
}
