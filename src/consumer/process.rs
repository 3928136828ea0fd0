//! The per-message state machine: how one consumed record ends.
//!
//! ```text
//!  bytes ─decode─┬─ not an envelope ─────────────────────────────────▶ dead-letter (decode)
//!                ├─ retry entry of another group ────────────────────▶ skipped
//!                ├─ retry entry of this group: wait for its due time ─┐
//!                ▼                                                   ▼
//!         envelope ─ id handled already? ──────────────────────────▶ duplicate (skipped)
//!                  ─ no handler for the type ──────────────────────▶ dead-letter / skip
//!                  ─ attempt ─┬─ Ok ───────────────────────────────▶ handled (id marked)
//!                             ├─ permanent / payload decode error ─▶ dead-letter
//!                             └─ retriable, panic, timeout:
//!                                  max total attempts reached ─────▶ dead-letter (exhausted)
//!                                  in-place retry left ── back off ─▶ attempt again
//!                                  retry topic on ─────────────────▶ parked on retry topic
//!                                  else ───────────────────────────▶ dead-letter
//! ```
//!
//! Every branch but "not ended" is an end: the caller may commit past the record. A record
//! is "not ended" only when the consumer stops while it waits (a backoff, a due time, a
//! failing write); it is then read again by the group.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::dedupe::IdempotencyStore;
use super::divert::{self, Cause, Failures, Letter, Subject};
use super::invoke::{HandlerRunner, Outcome};
use super::metrics::{Counter, TopicStats};
use super::records::{DeadLetterKind, Origin, RetryRecord};
use super::registry::Entry;
use super::Shared;
use crate::config::UnknownTypePolicy;
use crate::domain::{HandlerError, KafkaMessage, MessageType};
use crate::transport::ConsumedRecord;

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A handler returned `Ok`.
    Handled,
    /// Its id was handled before.
    Duplicate,
    /// Passed over by rule (unknown type with the skip policy, another group's retry).
    Skipped,
    /// Written to the retry topic.
    Parked,
    /// Written to the dead-letter topic.
    DeadLettered(DeadLetterKind),
    /// Not ended: the consumer is stopping; do not commit past it.
    NotEnded,
}

/// A decoded message with its handler, before its first attempt.
pub(crate) struct Ready {
    message: Arc<KafkaMessage>,
    origin: Origin,
    failures: Failures,
    entry: Entry,
}

impl Ready {
    /// The most messages a batch starting with this one may hold (`None`: no batching).
    pub(crate) fn batch_limit(&self) -> Option<usize> {
        self.entry.batch.as_ref().map(|(_, max)| *max)
    }

    /// Whether `other` is a copy of this message (same id).
    pub(crate) fn same_id(&self, other: &Ready) -> bool {
        self.message.id == other.message.id
    }

    /// Whether `other` may join a batch with this one (same batched message type).
    pub(crate) fn batches_with(&self, other: &Ready) -> bool {
        self.batch_limit().is_some() && self.message.message_type == other.message.message_type
    }
}

/// Where a record stands before its handler runs.
pub(crate) enum Prepared {
    /// It ended already (or, when stopping, did not end).
    Ended(Ending),
    /// It waits for its handler.
    Ready(Ready),
}

/// Runs the state machine for one consumer thread.
pub(crate) struct MessageFlow {
    shared: Arc<Shared>,
    stats: Arc<TopicStats>,
    runner: HandlerRunner,
    store: Arc<dyn IdempotencyStore>,
}

impl MessageFlow {
    /// A flow for the thread consuming `stats.topic`.
    pub(crate) fn new(shared: Arc<Shared>, stats: Arc<TopicStats>) -> Self {
        let runner = HandlerRunner::new(&stats.topic, shared.config.consumer.handler_timeout);
        let store = shared.store();
        MessageFlow {
            shared,
            stats,
            runner,
            store,
        }
    }

    /// Stops the handler helper, waiting for late calls until `deadline`.
    pub(crate) fn close(&mut self, deadline: Instant) {
        self.runner.close(deadline);
    }

    /// Takes a prepared message to its end.
    pub(crate) fn finish(&mut self, ready: Ready, record: &ConsumedRecord) -> Ending {
        self.attempt(ready, record, None)
    }

    /// Takes `batch` (prepared messages of one batch handler) to their ends: the first
    /// attempt of all in one batch call, then each on its own.
    pub(crate) fn process_batch(&mut self, batch: Vec<(Ready, &ConsumedRecord)>) -> Vec<Ending> {
        let Some((invoker, _)) = batch.first().and_then(|(r, _)| r.entry.batch.clone()) else {
            return Vec::new();
        };
        let messages = batch.iter().map(|(r, _)| (*r.message).clone()).collect();
        let started = Instant::now();
        let outcomes = self.runner.run_batch(&invoker, messages);
        self.stats.record_latency(started.elapsed());
        batch
            .into_iter()
            .zip(outcomes)
            .map(|((ready, record), outcome)| self.attempt(ready, record, Some(outcome)))
            .collect()
    }

    /// Decodes `record` and checks what comes before a handler runs: an end already
    /// (dead-lettered, skipped, duplicate, not ended) or a message ready for its handler.
    /// `before_wait` runs before a long wait (a retry entry's due time), so the caller can
    /// commit what already ended.
    pub(crate) fn prepare(
        &mut self,
        record: &ConsumedRecord,
        before_wait: &mut dyn FnMut(),
    ) -> Prepared {
        let origin = Origin {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        };
        let message = match KafkaMessage::from_bytes(&record.value) {
            Ok(m) => m,
            Err(e) => {
                self.stats.add(Counter::DecodeErrors, 1);
                let letter = Letter {
                    subject: Subject::Raw(record),
                    kind: DeadLetterKind::Decode,
                    error: e.chain_text(),
                    origin,
                    key: record.key.as_deref(),
                };
                return Prepared::Ended(self.dead_letter(letter, &Failures::none()));
            }
        };
        if message.message_type != MessageType::RETRY {
            return self.lookup(Arc::new(message), origin, Failures::none(), record);
        }
        let entry: RetryRecord = match message.payload_as() {
            Ok(entry) => entry,
            Err(e) => {
                self.stats.add(Counter::DecodeErrors, 1);
                let letter = Letter {
                    subject: Subject::Envelope(&message),
                    kind: DeadLetterKind::Decode,
                    error: e.chain_text(),
                    origin,
                    key: record.key.as_deref(),
                };
                return Prepared::Ended(self.dead_letter(letter, &Failures::none()));
            }
        };
        if entry.group != self.shared.config.group_id {
            self.stats.add(Counter::SkippedOtherGroup, 1);
            log::debug!(
                "retry entry for message {} belongs to group {}; passing over it",
                entry.message.id,
                entry.group
            );
            return Prepared::Ended(Ending::Skipped);
        }
        if let Ok(wait) = entry.due_at.duration_since(SystemTime::now()) {
            log::debug!("message {} is due in {wait:?}; waiting", entry.message.id);
            before_wait();
            if self.shared.stop.sleep(wait) {
                return Prepared::Ended(Ending::NotEnded);
            }
        }
        let failures = Failures::from_retry(&entry);
        self.lookup(Arc::new(entry.message), entry.origin, failures, record)
    }

    /// Dedupe and handler lookup.
    fn lookup(
        &mut self,
        message: Arc<KafkaMessage>,
        origin: Origin,
        failures: Failures,
        record: &ConsumedRecord,
    ) -> Prepared {
        let tag = Tag {
            message: &message,
            origin: &origin,
        };
        match self.store.is_processed(&message.id) {
            Ok(true) => {
                self.stats.add(Counter::Duplicates, 1);
                log::info!("{tag}: handled before; skipping the duplicate");
                return Prepared::Ended(Ending::Duplicate);
            }
            Ok(false) => {}
            Err(e) => log::warn!("{tag}: idempotency store failed ({e}); handling anyway"),
        }
        let found = {
            let registry = self.shared.registry();
            let found = registry.get(&message.message_type);
            found.ok_or_else(|| registry.types())
        };
        match found {
            Ok(entry) => Prepared::Ready(Ready {
                message,
                origin,
                failures,
                entry,
            }),
            Err(_) if self.shared.config.consumer.unknown_type == UnknownTypePolicy::Skip => {
                self.stats.add(Counter::SkippedUnknownType, 1);
                let t = &message.message_type;
                log::warn!("{tag}: no handler for type `{t}`; skipping");
                Prepared::Ended(Ending::Skipped)
            }
            Err(known) => {
                let error = format!(
                    "no handler for message type `{}` (handlers: {known:?})",
                    message.message_type
                );
                let letter = Letter {
                    subject: Subject::Envelope(&message),
                    kind: DeadLetterKind::UnknownType,
                    error,
                    origin: origin.clone(),
                    key: record.key.as_deref(),
                };
                Prepared::Ended(self.dead_letter(letter, &failures))
            }
        }
    }

    /// Attempts until the message ends; the first attempt's outcome is `first` when a batch
    /// call made it already.
    fn attempt(&mut self, ready: Ready, record: &ConsumedRecord, first: Option<Outcome>) -> Ending {
        let Ready {
            message,
            origin,
            mut failures,
            entry,
        } = ready;
        let tag = Tag {
            message: &message,
            origin: &origin,
        };
        let letter = |kind, error| Letter {
            subject: Subject::Envelope(&message),
            kind,
            error,
            origin: origin.clone(),
            key: record.key.as_deref(),
        };
        let mut first = first;
        let consumer = &self.shared.config.consumer;
        let mut schedule = consumer.retry.schedule();
        let started = Instant::now();
        loop {
            let attempt = failures.attempts + 1;
            log::debug!("{tag} attempt {attempt}: handling");
            let outcome = match first.take() {
                Some(outcome) => outcome,
                None => {
                    let call_started = Instant::now();
                    let outcome = self.runner.run(&entry.single, &message);
                    self.stats.record_latency(call_started.elapsed());
                    outcome
                }
            };
            let stuck = self.runner.stuck() as u64;
            self.stats
                .stuck_handlers
                .store(stuck, std::sync::atomic::Ordering::Relaxed);
            let (cause, error) = match outcome {
                Outcome::Handled => {
                    if let Err(e) = self.store.mark_processed(message.id) {
                        log::warn!("{tag}: idempotency store failed to record it: {e}");
                    }
                    self.stats.add(Counter::Handled, 1);
                    log::debug!("{tag} attempt {attempt}: handled");
                    return Ending::Handled;
                }
                Outcome::Decode(e) => {
                    failures.attempted();
                    self.stats.add(Counter::DecodeErrors, 1);
                    let error = format!("decode error: {e}");
                    return self.dead_letter(letter(DeadLetterKind::Decode, error), &failures);
                }
                Outcome::Failed(HandlerError::Permanent(reason)) => {
                    failures.record(Cause::Handler, format!("permanent handler error: {reason}"));
                    let error = failures.last_error.clone();
                    return self.dead_letter(letter(DeadLetterKind::Permanent, error), &failures);
                }
                Outcome::Failed(HandlerError::Retriable(reason)) => {
                    (Cause::Handler, format!("retriable handler error: {reason}"))
                }
                Outcome::Panicked(text) => (Cause::Panic, format!("handler panicked: {text}")),
                Outcome::TimedOut(t) => (Cause::Timeout, format!("handler timed out after {t:?}")),
            };
            failures.record(cause, error);
            log::warn!("{tag} attempt {attempt} failed: {}", failures.last_error);
            if failures.attempts >= consumer.max_total_attempts {
                let error = format!(
                    "gave up after {} attempts (consumer.max_total_attempts): {}",
                    failures.attempts, failures.last_error
                );
                return self.dead_letter(letter(DeadLetterKind::Exhausted, error), &failures);
            }
            let Some(delay) = schedule.next_delay(started.elapsed()) else {
                break;
            };
            self.stats.add(Counter::RetriedInPlace, 1);
            if self.shared.stop.sleep(delay) {
                if consumer.retry_topic_enabled {
                    break;
                }
                log::info!("{tag}: stopping during its retries; it will be read again");
                return Ending::NotEnded;
            }
        }
        if consumer.retry_topic_enabled {
            return if divert::park(&self.shared, &self.stats, &message, origin, &failures) {
                Ending::Parked
            } else {
                Ending::NotEnded
            };
        }
        let kind = match failures.cause {
            Cause::Handler => DeadLetterKind::Handler,
            Cause::Timeout => DeadLetterKind::Timeout,
            Cause::Panic => DeadLetterKind::Panic,
        };
        let error = format!(
            "gave up after {} attempts (in-place retries used up, retry topic off): {}",
            failures.attempts, failures.last_error
        );
        self.dead_letter(letter(kind, error), &failures)
    }

    fn dead_letter(&self, letter: Letter<'_>, failures: &Failures) -> Ending {
        let kind = letter.kind;
        if divert::dead_letter(&self.shared, &self.stats, letter, failures) {
            Ending::DeadLettered(kind)
        } else {
            Ending::NotEnded
        }
    }
}

/// The identity of a message in log lines: id, correlation id, topic, partition, offset.
struct Tag<'a> {
    message: &'a KafkaMessage,
    origin: &'a Origin,
}

impl std::fmt::Display for Tag<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "message {} (correlation {}, type {}) at {}/{}@{}",
            self.message.id,
            self.message.correlation_id,
            self.message.message_type,
            self.origin.topic,
            self.origin.partition,
            self.origin.offset
        )
    }
}
