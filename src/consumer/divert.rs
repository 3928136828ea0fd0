//! Diverting a message that cannot be handled now: parked on the retry topic or written to
//! the dead-letter topic, each write acknowledged by the broker before the message counts
//! as ended.
//!
//! ```text
//!  failure history ──▶ RetryRecord / DeadLetterRecord ──▶ envelope (type retry / dead_letter)
//!        ──▶ Producer::send (blocks until acked) ──▶ failed? back off, retry until written
//!                                                     or the consumer stops (not ended)
//! ```

use std::time::{Duration, SystemTime};

use super::metrics::{Counter, TopicStats};
use super::records::{
    salvage_ids, DeadLetterKind, DeadLetterRecord, Origin, RawBytes, RetryRecord,
};
use super::Shared;
use crate::domain::{KafkaMessage, MessageType};
use crate::transport::ConsumedRecord;

/// What made the latest attempt fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Handler,
    Timeout,
    Panic,
}

/// A message's failed attempts so far, over all rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failures {
    pub(crate) attempts: u32,
    pub(crate) first: Option<SystemTime>,
    pub(crate) last: Option<SystemTime>,
    pub(crate) last_error: String,
    pub(crate) cause: Cause,
}

impl Failures {
    /// No attempt made yet.
    pub(crate) fn none() -> Self {
        Failures {
            attempts: 0,
            first: None,
            last: None,
            last_error: String::new(),
            cause: Cause::Handler,
        }
    }

    /// The history carried by a retry-topic entry.
    pub(crate) fn from_retry(entry: &RetryRecord) -> Self {
        Failures {
            attempts: entry.attempts,
            first: Some(entry.first_failure_at),
            last: Some(entry.last_failure_at),
            last_error: entry.last_error.clone(),
            cause: Cause::Handler,
        }
    }

    /// Records one more failed attempt.
    pub(crate) fn record(&mut self, cause: Cause, error: String) {
        let now = SystemTime::now();
        self.attempts += 1;
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.last_error = error;
        self.cause = cause;
    }

    /// Records that an attempt was made (and did not fail in a retriable way).
    pub(crate) fn attempted(&mut self) {
        self.attempts += 1;
    }

    fn times(&self) -> (SystemTime, SystemTime) {
        let now = SystemTime::now();
        (self.first.unwrap_or(now), self.last.unwrap_or(now))
    }
}

/// What the dead letter is about: the decoded envelope, or the raw record.
pub(crate) enum Subject<'a> {
    Envelope(&'a KafkaMessage),
    Raw(&'a ConsumedRecord),
}

/// A verdict: why a message goes to the dead-letter topic, and where it came from.
pub(crate) struct Letter<'a> {
    pub(crate) subject: Subject<'a>,
    pub(crate) kind: DeadLetterKind,
    pub(crate) error: String,
    pub(crate) origin: Origin,
    /// The consumed record's key.
    pub(crate) key: Option<&'a [u8]>,
}

/// Writes a dead letter. Returns `false` only if the consumer stopped before the write was
/// acknowledged (the message has then not ended).
pub(crate) fn dead_letter(
    shared: &Shared,
    stats: &TopicStats,
    letter: Letter<'_>,
    failures: &Failures,
) -> bool {
    let Letter {
        subject,
        kind,
        error,
        origin,
        key,
    } = letter;
    let (first, last) = failures.times();
    let (original, raw_value, message_id, message_type, correlation_id) = match subject {
        Subject::Envelope(m) => (
            Some(m.clone()),
            None,
            Some(m.id),
            Some(m.message_type.clone()),
            Some(m.correlation_id.clone()),
        ),
        Subject::Raw(r) => {
            let (id, correlation) = salvage_ids(&r.value);
            (
                None,
                Some(RawBytes::from_slice(&r.value)),
                id,
                None,
                correlation,
            )
        }
    };
    log::warn!(
        "dead-lettering message {} (correlation {}) from {}/{}@{} after {} attempt(s): {kind}: {error}",
        message_id.map_or_else(|| "?".to_string(), |id| id.to_string()),
        correlation_id.as_deref().unwrap_or("?"),
        origin.topic,
        origin.partition,
        origin.offset,
        failures.attempts
    );
    let partition_key = original.as_ref().map(KafkaMessage::partition_key);
    let record = DeadLetterRecord {
        kind,
        error,
        original,
        raw_value,
        key: key.map(RawBytes::from_slice),
        message_id,
        message_type,
        correlation_id: correlation_id.clone(),
        attempts: failures.attempts,
        first_failure_at: first,
        last_failure_at: last,
        origin,
        group: shared.config.group_id.clone(),
        service: shared.config.service_name.clone(),
    };
    let topic = &shared.config.consumer.dead_letter_topic;
    let written = envelope(
        &MessageType::DEAD_LETTER,
        &record,
        correlation_id,
        partition_key,
    )
    .is_some_and(|env| write(shared, stats, topic, &env));
    if written {
        stats.add(Counter::DeadLettered, 1);
    }
    written
}

/// Parks `message` on the retry topic, due after `consumer.retry_topic_delay`. Returns
/// `false` only if the consumer stopped before the write was acknowledged.
pub(crate) fn park(
    shared: &Shared,
    stats: &TopicStats,
    message: &KafkaMessage,
    origin: Origin,
    failures: &Failures,
) -> bool {
    let (first, last) = failures.times();
    let mut parked = message.clone();
    parked.attempt = failures.attempts;
    let due_at = SystemTime::now() + shared.config.consumer.retry_topic_delay;
    let record = RetryRecord {
        message: parked,
        attempts: failures.attempts,
        due_at,
        origin,
        group: shared.config.group_id.clone(),
        service: shared.config.service_name.clone(),
        first_failure_at: first,
        last_failure_at: last,
        last_error: failures.last_error.clone(),
    };
    log::warn!(
        "parking message {} (correlation {}) on {} after {} attempt(s), due in {:?}: {}",
        message.id,
        message.correlation_id,
        shared.config.consumer.retry_topic,
        failures.attempts,
        shared.config.consumer.retry_topic_delay,
        failures.last_error
    );
    let topic = &shared.config.consumer.retry_topic;
    let correlation = Some(message.correlation_id.clone());
    let written = envelope(
        &MessageType::RETRY,
        &record,
        correlation,
        Some(message.partition_key()),
    )
    .is_some_and(|env| write(shared, stats, topic, &env));
    if written {
        stats.add(Counter::SentToRetry, 1);
    }
    written
}

fn envelope<T: serde::Serialize>(
    message_type: &MessageType,
    payload: &T,
    correlation_id: Option<String>,
    key: Option<String>,
) -> Option<KafkaMessage> {
    match KafkaMessage::new(message_type.clone(), payload) {
        Ok(mut env) => {
            if let Some(c) = correlation_id {
                env.correlation_id = c;
            }
            env.key = key;
            Some(env)
        }
        Err(e) => {
            // Only a timestamp before 1970 can fail here; nothing sensible can be written.
            log::error!("cannot encode a {message_type} record: {e}");
            None
        }
    }
}

/// Sends `env` to `topic` until the broker acknowledges it; backs off between failures.
/// Gives up (returns `false`) only when the consumer is stopping.
fn write(shared: &Shared, stats: &TopicStats, topic: &str, env: &KafkaMessage) -> bool {
    let env = env
        .clone()
        .with_source_service(shared.config.service_name.clone());
    let mut backoff = Duration::from_millis(100);
    loop {
        match shared.producer.send(topic, &env) {
            Ok(_) => return true,
            Err(e) => {
                log::error!(
                    "writing message {} to {topic} failed: {e}; will retry",
                    env.id
                );
                stats.set_error(format!("writing to {topic}: {e}"));
                if shared.stop.sleep(backoff) {
                    log::warn!("stopping before message {} was written to {topic}", env.id);
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
