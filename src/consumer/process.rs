//! The per-message state machine: one step of one consumed record at a time.
//!
//! ```text
//!  bytes ─decode─┬─ not an envelope ─────────────────────────────────▶ divert: dead letter
//!                ├─ retry entry of another group (header, else payload) ─▶ skipped
//!                ├─ retry entry of this group, not due ───────────────▶ not due (set aside)
//!                ├─ due beyond retry_topic_max_delay ────────────────▶ divert: written again
//!                ▼
//!         envelope ─ id handled already? ──────────────────────────▶ duplicate (skipped)
//!                  ─ no handler for the type ──────────────────────▶ dead letter / skip
//!                  ─ attempt ─┬─ Ok ───────────────────────────────▶ handled (id marked)
//!                             ├─ permanent / payload decode error ─▶ divert: dead letter
//!                             └─ retriable, panic, timeout:
//!                                  max total attempts reached ─────▶ divert: dead letter
//!                                  in-place retry left ────────────▶ again after a backoff
//!                                  retry topic on ─────────────────▶ divert: retry topic
//!                                  else ───────────────────────────▶ divert: dead letter
//! ```
//!
//! Nothing here waits: a backoff or a due time is handed back to the thread, which goes on
//! with other records meanwhile (see `runner.rs`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::dedupe::IdempotencyStore;
use super::divert::{self, headers, Cause, Divert, Failures, Letter, Subject};
use super::invoke::panic_text;
use super::invoke::{HandlerRunner, Outcome};
use super::metrics::{Counter, TopicStats};
use super::records::{DeadLetterKind, DeadLetterRecord, Origin, RetryRecord};
use super::registry::Entry;
use super::Shared;
use crate::config::UnknownTypePolicy;
use crate::domain::{HandlerError, KafkaMessage, MessageType};
use crate::retry::RetrySchedule;
use crate::transport::ConsumedRecord;

/// How a record ended at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A handler returned `Ok`.
    Handled,
    /// Its id was handled before.
    Duplicate,
    /// Passed over by rule (unknown type with the skip policy, another group's retry).
    Skipped,
}

/// What happens next to a record.
pub(crate) enum Step {
    /// It ended: commit past it.
    Ended(Ending),
    /// It ends once one of these writes is acknowledged.
    Divert(Divert),
    /// Its next attempt is due at this time.
    Again(Box<Ready>, Instant),
    /// A retry entry of this group, not due before this time.
    NotDue(Instant),
    /// In a batch, after a record of the same key that failed and waits for its retry:
    /// its result in the batch call is set aside (not counted, its id not marked) and it
    /// is handled again once that record ended, so a key's records never end out of order
    /// (as Spring redelivers the records after a batch's failed index).
    Behind,
}

/// When a retry entry may run.
enum Due {
    Now,
    Later(Instant),
    /// Further away than `retry_topic_max_delay`, by this much.
    TooFar(Duration),
}

/// A decoded message with its handler, between attempts.
pub(crate) struct Ready {
    message: Arc<KafkaMessage>,
    origin: Origin,
    failures: Failures,
    entry: Entry,
    /// Its in-place retries, from its first failure on (most messages never fail).
    schedule: Option<RetrySchedule>,
    /// When its first attempt started (the retry schedule's clock).
    started: Option<Instant>,
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
    /// Its next step is known without a handler.
    Done(Step),
    /// It waits for its handler.
    Ready(Box<Ready>),
}

/// Runs the state machine for one consumer thread.
pub(crate) struct MessageFlow {
    /// Whether this thread reads the dead-letter topic (the dead-letter handler's role).
    dead_letter_role: bool,
    shared: Arc<Shared>,
    stats: Arc<TopicStats>,
    runner: HandlerRunner,
    store: Arc<dyn IdempotencyStore>,
}

fn header<'a>(record: &'a ConsumedRecord, name: &str) -> Option<&'a [u8]> {
    record
        .headers
        .iter()
        .rev()
        .find(|h| h.key == name)
        .map(|h| h.value.as_slice())
}

impl MessageFlow {
    /// A flow for the thread consuming `stats.topic`.
    pub(crate) fn new(shared: Arc<Shared>, stats: Arc<TopicStats>) -> Self {
        let runner = HandlerRunner::new(stats.clone(), shared.config.consumer.handler_timeout);
        let store = shared.store();
        MessageFlow {
            dead_letter_role: shared.config.consumer.is_dead_letter_topic(&stats.topic),
            shared,
            stats,
            runner,
            store,
        }
    }

    /// One attempt of a prepared message.
    pub(crate) fn attempt(&mut self, ready: Box<Ready>, record: &ConsumedRecord) -> Step {
        self.step(ready, record, None)
    }

    /// The first attempt of `batch` (prepared messages of one batch handler) in one call;
    /// each record with its next step.
    pub(crate) fn attempt_batch(
        &mut self,
        batch: Vec<(Box<Ready>, ConsumedRecord)>,
    ) -> Vec<(ConsumedRecord, Step)> {
        let Some((invoker, _)) = batch.first().and_then(|(r, _)| r.entry.batch.clone()) else {
            return Vec::new();
        };
        let messages = batch.iter().map(|(r, _)| (*r.message).clone()).collect();
        let started = Instant::now();
        let outcomes = self.runner.run_batch(&invoker, messages);
        self.stats.record_latency(started.elapsed());
        // Keys of records that failed in this call and wait for a retry.
        let mut waiting_keys: Vec<Vec<u8>> = Vec::new();
        batch
            .into_iter()
            .zip(outcomes)
            .map(|((ready, record), outcome)| {
                if record
                    .key
                    .as_ref()
                    .is_some_and(|k| waiting_keys.contains(k))
                {
                    return (record, Step::Behind);
                }
                let step = self.step(ready, &record, Some(outcome));
                if let (Step::Again(..), Some(key)) = (&step, &record.key) {
                    waiting_keys.push(key.clone());
                }
                (record, step)
            })
            .collect()
    }

    /// Decodes `record` and checks what comes before a handler runs.
    pub(crate) fn prepare(&mut self, record: &ConsumedRecord) -> Prepared {
        if self.dead_letter_role {
            return Prepared::Done(self.dead_letter_record(record));
        }
        let origin = Origin {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        };
        if let Some(why) = header(record, crate::transport::UNDECODABLE_BATCH) {
            self.stats.add(Counter::DecodeErrors, 1);
            let letter = Letter {
                subject: Subject::Raw,
                kind: DeadLetterKind::UndecodableBatch,
                error: format!("undecodable record batch: {}", String::from_utf8_lossy(why)),
                origin,
                record,
            };
            return Prepared::Done(self.dead_letter(letter, &Failures::none()));
        }
        if record.null_value {
            // A tombstone (compaction's delete marker) carries no message.
            self.stats.add(Counter::Tombstones, 1);
            log::info!(
                "{}/{}@{}: null value (tombstone, key {:?}); passed over",
                record.topic,
                record.partition,
                record.offset,
                record.key.as_deref().map(String::from_utf8_lossy)
            );
            return Prepared::Done(Step::Ended(Ending::Skipped));
        }
        // A retry entry says whose it is and when it is due in its headers: another
        // group's entry is passed over without decoding it.
        let mut due_checked = false;
        if let Some(group) = header(record, headers::RETRY_GROUP) {
            if group != self.shared.config.group_id.as_bytes() {
                return self.other_group(&String::from_utf8_lossy(group));
            }
            // Another consumer's of this group (parked from a topic this one does not
            // read) is passed over before its due time is looked at (routing.rs).
            let origin = header(record, headers::RETRY_ORIGIN_TOPIC);
            if let Some(from) = origin.filter(|o| !self.shared.takes_retry(&record.topic, o)) {
                let (group, from) = (
                    String::from_utf8_lossy(group),
                    String::from_utf8_lossy(from),
                );
                return self.other_group(&format!("{group} (parked from {from})"));
            }
            if origin.is_none() && self.shared.routes_retry(&record.topic) {
                // Written before the origin header: its origin is in the payload.
            } else if let Some(until) =
                header(record, headers::RETRY_DUE_AT).and_then(due_from_header)
            {
                match self.due(until) {
                    Due::Later(at) => return Prepared::Done(Step::NotDue(at)),
                    Due::Now => due_checked = true,
                    // Decoded below, to be written again due sooner.
                    Due::TooFar(_) => {}
                }
            }
        }
        let message = match KafkaMessage::from_bytes(&record.value) {
            Ok(m) => m,
            Err(e) => {
                self.stats.add(Counter::DecodeErrors, 1);
                let letter = Letter {
                    subject: Subject::Raw,
                    kind: DeadLetterKind::Decode,
                    error: e.chain_text(),
                    origin,
                    record,
                };
                return Prepared::Done(self.dead_letter(letter, &Failures::none()));
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
                    record,
                };
                return Prepared::Done(self.dead_letter(letter, &Failures::none()));
            }
        };
        if entry.group != self.shared.config.group_id
            || !self
                .shared
                .takes_retry(&record.topic, entry.origin.topic.as_bytes())
        {
            return self.other_group(&format!(
                "{} (parked from {})",
                entry.group, entry.origin.topic
            ));
        }
        if !due_checked {
            match self.due(entry.due_at) {
                Due::Now => {}
                Due::Later(at) => return Prepared::Done(Step::NotDue(at)),
                Due::TooFar(wait) => {
                    let max = self.shared.config.consumer.retry_topic_max_delay;
                    log::warn!(
                        "retry entry at {}/{}@{} is due in {wait:?}, beyond \
                         consumer.retry_topic_max_delay ({max:?}): written again due in {max:?}",
                        record.topic,
                        record.partition,
                        record.offset
                    );
                    let step = divert::reschedule(&self.shared, &entry, record, max);
                    return Prepared::Done(Step::Divert(step));
                }
            }
        }
        let failures = Failures::from_retry(&entry);
        self.lookup(Arc::new(entry.message), entry.origin, failures, record)
    }

    /// The dead-letter handler's role: read the record back as a dead letter and hand it to
    /// the dead-letter handler, retrying in place on this thread (it reads only the
    /// dead-letter topic); what still fails is logged and skipped, never written back.
    fn dead_letter_record(&mut self, record: &ConsumedRecord) -> Step {
        let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
        let skip = |stats: &TopicStats, why: String| {
            stats.add(Counter::DeadLetterFailures, 1);
            log::error!("dead-letter record {at}: {why}; skipped (never written back)");
            stats.set_error(format!("dead-letter record {at}: {why}"));
            Step::Ended(Ending::Skipped)
        };
        let letter = match DeadLetterRecord::from_record(record) {
            Ok(letter) => letter,
            Err(e) => return skip(&self.stats, e.to_string()),
        };
        let Some(handler) = self.shared.dead_letter_handler() else {
            return skip(&self.stats, "no dead-letter handler is registered".into());
        };
        let id = letter.message_id.unwrap_or_default();
        let mut schedule = self.shared.config.consumer.retry.schedule();
        let started = Instant::now();
        loop {
            let call_started = Instant::now();
            self.stats.busy_with(id, call_started);
            let result = catch_unwind(AssertUnwindSafe(|| handler(&letter)));
            self.stats.idle();
            self.stats.record_latency(call_started.elapsed());
            let why = match result {
                Ok(Ok(())) => {
                    self.stats.add(Counter::Handled, 1);
                    return Step::Ended(Ending::Handled);
                }
                Ok(Err(HandlerError::Permanent(why))) => {
                    return skip(
                        &self.stats,
                        format!("permanent error in the handler: {why}"),
                    )
                }
                Ok(Err(HandlerError::Retriable(why))) => why,
                Err(panic) => format!("the handler panicked: {}", panic_text(panic.as_ref())),
            };
            match schedule.next_delay(started.elapsed()) {
                Some(delay) => {
                    log::warn!("dead-letter record {at} (message {id}): {why}; retrying");
                    self.stats.add(Counter::RetriedInPlace, 1);
                    if self.shared.stop.sleep(delay) {
                        // Not ended: read again by the group.
                        return Step::NotDue(Instant::now());
                    }
                }
                None => {
                    return skip(
                        &self.stats,
                        format!("message {id}: retries used up in the dead-letter handler: {why}"),
                    )
                }
            }
        }
    }

    fn other_group(&self, group: &str) -> Prepared {
        self.stats.add(Counter::SkippedOtherGroup, 1);
        log::debug!("retry entry of group {group}: not this consumer's; passing over it");
        Prepared::Done(Step::Ended(Ending::Skipped))
    }

    /// When a retry entry due at `due` may run. A due time further away than
    /// `retry_topic_max_delay` (a skewed or crafted clock) is `TooFar`: the entry is written
    /// again due after that delay, so the clamp lives in the entry, not in this thread's
    /// memory (a member restarting more often than the delay still gets past it).
    fn due(&self, due: SystemTime) -> Due {
        let Ok(wait) = due.duration_since(SystemTime::now()) else {
            return Due::Now;
        };
        if wait.is_zero() {
            return Due::Now;
        }
        // The rewritten entry's due time is rounded up to the millisecond.
        let max = self.shared.config.consumer.retry_topic_max_delay;
        if wait <= max + Duration::from_millis(10) {
            return Due::Later(Instant::now() + wait);
        }
        Due::TooFar(wait)
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
                return Prepared::Done(Step::Ended(Ending::Duplicate));
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
            Ok(entry) => Prepared::Ready(Box::new(Ready {
                message,
                origin,
                failures,
                entry,
                schedule: None,
                started: None,
            })),
            Err(_) if self.shared.config.consumer.unknown_type == UnknownTypePolicy::Skip => {
                self.stats.add(Counter::SkippedUnknownType, 1);
                let t = &message.message_type;
                log::warn!("{tag}: no handler for type `{t}`; skipping");
                Prepared::Done(Step::Ended(Ending::Skipped))
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
                    record,
                };
                Prepared::Done(self.dead_letter(letter, &failures))
            }
        }
    }

    /// One attempt (its outcome is `first` when a batch call made it already), and what
    /// comes next.
    fn step(
        &mut self,
        mut ready: Box<Ready>,
        record: &ConsumedRecord,
        first: Option<Outcome>,
    ) -> Step {
        let message = ready.message.clone();
        let attempt = ready.failures.attempts.saturating_add(1);
        let tag = Tag {
            message: &message,
            origin: &ready.origin,
        };
        log::debug!("{tag} attempt {attempt}: handling");
        let outcome = match first {
            Some(outcome) => outcome,
            None => {
                let (outcome, call_started) = self.runner.run(&ready.entry.single, &message);
                ready.started.get_or_insert(call_started);
                outcome
            }
        };
        if outcome == Outcome::Handled {
            // The common case, before anything a failure needs is copied.
            let tag = Tag {
                message: &message,
                origin: &ready.origin,
            };
            if let Err(e) = self.store.mark_processed(message.id) {
                log::warn!("{tag}: idempotency store failed to record it: {e}");
            }
            self.stats.add(Counter::Handled, 1);
            log::debug!("{tag} attempt {attempt}: handled");
            return Step::Ended(Ending::Handled);
        }
        let origin = ready.origin.clone();
        let tag = Tag {
            message: &message,
            origin: &origin,
        };
        let letter = |kind, error| Letter {
            subject: Subject::Envelope(&message),
            kind,
            error,
            origin: origin.clone(),
            record,
        };
        let failures = &mut ready.failures;
        let (cause, error) = match outcome {
            Outcome::Handled => return Step::Ended(Ending::Handled), // returned above
            Outcome::Decode(e) => {
                failures.attempted();
                self.stats.add(Counter::DecodeErrors, 1);
                let error = format!("decode error: {e}");
                let failures = failures.clone();
                return self.dead_letter(letter(DeadLetterKind::Decode, error), &failures);
            }
            Outcome::Failed(HandlerError::Permanent(reason)) => {
                failures.record(Cause::Handler, format!("permanent handler error: {reason}"));
                let error = failures.last_error.clone();
                let failures = failures.clone();
                return self.dead_letter(letter(DeadLetterKind::Permanent, error), &failures);
            }
            Outcome::Failed(HandlerError::Retriable(reason)) => {
                (Cause::Handler, format!("retriable handler error: {reason}"))
            }
            Outcome::Panicked(text) => (Cause::Panic, format!("handler panicked: {text}")),
            Outcome::TimedOut(t, why) => (
                Cause::Timeout,
                format!("handler ran {t:?}, past consumer.handler_timeout, and failed: {why}"),
            ),
        };
        failures.record(cause, error);
        log::warn!("{tag} attempt {attempt} failed: {}", failures.last_error);
        let consumer = &self.shared.config.consumer;
        if failures.attempts >= consumer.max_total_attempts {
            let error = format!(
                "gave up after {} attempts (consumer.max_total_attempts): {}",
                failures.attempts, failures.last_error
            );
            let failures = failures.clone();
            return self.dead_letter(letter(DeadLetterKind::Exhausted, error), &failures);
        }
        let elapsed = ready.started.get_or_insert_with(Instant::now).elapsed();
        let retry = &self.shared.config.consumer.retry;
        let schedule = ready.schedule.get_or_insert_with(|| retry.schedule());
        match schedule.next_delay(elapsed) {
            Some(delay) => {
                self.stats.add(Counter::RetriedInPlace, 1);
                Step::Again(ready, Instant::now() + delay)
            }
            None => self.give_up(ready, record),
        }
    }

    /// The in-place retries of `ready` are over (or the consumer is stopping): the retry
    /// topic if that is on, else the dead-letter topic.
    pub(crate) fn give_up(&mut self, ready: Box<Ready>, record: &ConsumedRecord) -> Step {
        let Ready {
            message,
            origin,
            failures,
            ..
        } = *ready;
        let kind = match failures.cause {
            Cause::Handler => DeadLetterKind::Handler,
            Cause::Timeout => DeadLetterKind::Timeout,
            Cause::Panic => DeadLetterKind::Panic,
        };
        let consumer = &self.shared.config.consumer;
        let why = if consumer.retry_topic_enabled {
            "in-place retries used up, and the retry topic could not be written"
        } else {
            "in-place retries used up, retry topic off"
        };
        let error = format!(
            "gave up after {} attempts ({why}): {}",
            failures.attempts, failures.last_error
        );
        let letter = Letter {
            subject: Subject::Envelope(&message),
            kind,
            error,
            origin: origin.clone(),
            record,
        };
        let dead = divert::dead_letter(&self.shared, letter, &failures);
        if !consumer.retry_topic_enabled {
            return Step::Divert(dead);
        }
        Step::Divert(divert::park(
            &self.shared,
            &message,
            origin,
            &failures,
            dead,
        ))
    }

    fn dead_letter(&self, letter: Letter<'_>, failures: &Failures) -> Step {
        Step::Divert(divert::dead_letter(&self.shared, letter, failures))
    }
}

fn due_from_header(value: &[u8]) -> Option<SystemTime> {
    let millis: u64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
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
