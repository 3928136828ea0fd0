//! Diverting a message that cannot be handled now: what to write where. A [`Divert`] is
//! the list of writes to try in turn (each one a fallback for the one before), built here
//! and carried out by the [`Outbox`](super::outbox::Outbox); the consumed record ends once
//! one of them is acknowledged.
//!
//! ```text
//!  park:        retry entry (envelope, headers retry-group / retry-due-at) on `retry`
//!                 └▶ dead-letter record (envelope) └▶ original bytes + error headers
//!  dead letter: dead-letter record (envelope) on `dead-letter`
//!                 └▶ original bytes + error headers (never larger than the original)
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::metrics::Counter;
use super::records::{
    salvage_ids, DeadLetterKind, DeadLetterRecord, Origin, RawBytes, RetryRecord,
};
use super::Shared;
use crate::domain::{KafkaMessage, MessageType};
use crate::transport::{ConsumedRecord, Header};

/// Longest error text written into a record (the rest is cut, marked with `…`).
const MAX_ERROR_TEXT: usize = 4096;

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

    /// Records one more failed attempt (the count saturates: a crafted `u32::MAX` cannot
    /// overflow it).
    pub(crate) fn record(&mut self, cause: Cause, error: String) {
        let now = SystemTime::now();
        self.attempts = self.attempts.saturating_add(1);
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.last_error = error;
        self.cause = cause;
    }

    /// Records that an attempt was made (and did not fail in a retriable way).
    pub(crate) fn attempted(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
    }

    fn times(&self) -> (SystemTime, SystemTime) {
        let now = SystemTime::now();
        (self.first.unwrap_or(now), self.last.unwrap_or(now))
    }
}

/// What the dead letter is about: the decoded envelope, or the raw record.
pub(crate) enum Subject<'a> {
    Envelope(&'a KafkaMessage),
    Raw,
}

/// A verdict: why a message goes to the dead-letter topic, and where it came from.
pub(crate) struct Letter<'a> {
    pub(crate) subject: Subject<'a>,
    pub(crate) kind: DeadLetterKind,
    pub(crate) error: String,
    pub(crate) origin: Origin,
    /// The consumed record (its key and bytes are kept).
    pub(crate) record: &'a ConsumedRecord,
}

/// One write: a record for `topic`.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Vec<u8>,
    pub(crate) headers: Vec<Header>,
    /// The counter a successful write adds one to.
    pub(crate) counts_as: Counter,
    /// What the write is, for logs: "retry entry", "dead-letter record", …
    pub(crate) what: &'static str,
}

/// The writes that end one consumed record: the first that is acknowledged ends it.
#[derive(Debug, Clone)]
pub(crate) struct Divert {
    /// The consumed record's partition and offset (on the thread's own topic).
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The message's id, or `?`, for logs.
    pub(crate) message: String,
    /// Writes to try, first to last.
    pub(crate) writes: Vec<Write>,
}

/// Record header names written by the consumer.
pub mod headers {
    /// On a retry entry: the consumer group that parked it (another group skips the entry
    /// without decoding it).
    pub const RETRY_GROUP: &str = "retry-group";
    /// On a retry entry: the topic the message was first read from (the consumers of the
    /// group that do not read it pass over the entry without decoding it).
    pub const RETRY_ORIGIN_TOPIC: &str = "retry-origin-topic";
    /// On a retry entry: when it is due, in milliseconds since the Unix epoch.
    pub const RETRY_DUE_AT: &str = "retry-due-at";
    /// On a dead-letter record: its [`DeadLetterKind`](crate::domain::DeadLetterKind).
    pub const DLT_KIND: &str = "dlt-kind";
    /// On a dead-letter record: the error, as text.
    pub const DLT_ERROR: &str = "dlt-error";
    /// On a dead-letter record: the topic the message was first read from.
    pub const DLT_ORIGINAL_TOPIC: &str = "dlt-original-topic";
    /// On a dead-letter record: its partition there.
    pub const DLT_ORIGINAL_PARTITION: &str = "dlt-original-partition";
    /// On a dead-letter record: its offset there.
    pub const DLT_ORIGINAL_OFFSET: &str = "dlt-original-offset";
    /// On a dead-letter record: handler attempts made.
    pub const DLT_ATTEMPTS: &str = "dlt-attempts";
    /// On a dead-letter record: the consumer group that gave up on it.
    pub const DLT_GROUP: &str = "dlt-group";
    /// On a dead-letter record: the service that gave up on it.
    pub const DLT_SERVICE: &str = "dlt-service";
    /// On a dead-letter record: first and last failure, in milliseconds since the epoch.
    pub const DLT_FIRST_FAILURE_AT: &str = "dlt-first-failure-at";
    /// See [`DLT_FIRST_FAILURE_AT`].
    pub const DLT_LAST_FAILURE_AT: &str = "dlt-last-failure-at";
    /// On a dead-letter record: `envelope` (the value is a JSON dead-letter record) or
    /// `original` (the value is the original bytes, unchanged).
    pub const DLT_FORM: &str = "dlt-form";
}

pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

fn cut(text: String) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text;
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A dead letter: the JSON record (first), then the original bytes with the error in
/// headers (fallback, never larger than the original).
pub(crate) fn dead_letter(shared: &Shared, letter: Letter<'_>, failures: &Failures) -> Divert {
    let Letter {
        subject,
        kind,
        error,
        origin,
        record,
    } = letter;
    let error = cut(error);
    let (first, last) = failures.times();
    let (original, raw_value, message_id, message_type, correlation_id) = match subject {
        Subject::Envelope(m) => (
            Some(m.clone()),
            None,
            Some(m.id),
            Some(m.message_type.clone()),
            Some(m.correlation_id.clone()),
        ),
        Subject::Raw => {
            let (id, correlation) = salvage_ids(&record.value);
            (
                None,
                Some(RawBytes::from_slice(&record.value)),
                id,
                None,
                correlation,
            )
        }
    };
    let id_text = message_id.map_or_else(|| "?".to_string(), |id| id.to_string());
    log::warn!(
        "dead-lettering message {id_text} (correlation {}) from {}/{}@{} after {} attempt(s): {kind}: {error}",
        correlation_id.as_deref().unwrap_or("?"),
        origin.topic,
        origin.partition,
        origin.offset,
        failures.attempts
    );
    let c = &shared.config;
    let topic = c.consumer.dead_letter_topic_of(&origin.topic);
    let mut meta = vec![
        Header::new(headers::DLT_KIND, kind.to_string()),
        Header::new(headers::DLT_ERROR, error.as_str()),
        Header::new(headers::DLT_ORIGINAL_TOPIC, origin.topic.as_str()),
        Header::new(
            headers::DLT_ORIGINAL_PARTITION,
            origin.partition.to_string(),
        ),
        Header::new(headers::DLT_ORIGINAL_OFFSET, origin.offset.to_string()),
        Header::new(headers::DLT_ATTEMPTS, failures.attempts.to_string()),
        Header::new(headers::DLT_GROUP, c.group_id.as_str()),
        Header::new(headers::DLT_SERVICE, c.service_name.as_str()),
        Header::new(
            headers::DLT_FIRST_FAILURE_AT,
            unix_millis(first).to_string(),
        ),
        Header::new(headers::DLT_LAST_FAILURE_AT, unix_millis(last).to_string()),
    ];
    if let Some(id) = message_id {
        meta.push(Header::new(Header::MESSAGE_ID, id.to_string()));
    }
    if let Some(corr) = &correlation_id {
        meta.push(Header::new(Header::CORRELATION_ID, corr.as_str()));
    }
    let key = record.key.clone();
    let dl = DeadLetterRecord {
        kind,
        error,
        original,
        raw_value,
        key: key.as_deref().map(RawBytes::from_slice),
        message_id,
        message_type,
        correlation_id: correlation_id.clone(),
        attempts: failures.attempts,
        first_failure_at: first,
        last_failure_at: last,
        origin,
        group: c.group_id.clone(),
        service: c.service_name.clone(),
    };
    let mut writes = Vec::with_capacity(2);
    if let Some(env) = envelope(shared, &MessageType::DEAD_LETTER, &dl, correlation_id) {
        if let Ok(value) = env.to_bytes() {
            let mut h = meta.clone();
            h.push(Header::new(headers::DLT_FORM, "envelope"));
            h.push(Header::new(
                Header::MESSAGE_TYPE,
                MessageType::DEAD_LETTER.as_str(),
            ));
            writes.push(Write {
                topic: topic.clone(),
                key: key.clone(),
                value,
                headers: h,
                counts_as: Counter::DeadLettered,
                what: "dead-letter record",
            });
        }
    }
    meta.push(Header::new(headers::DLT_FORM, "original"));
    writes.push(Write {
        topic,
        key,
        value: record.value.clone(),
        headers: meta,
        counts_as: Counter::DeadLettered,
        what: "original bytes with the error in headers",
    });
    Divert {
        partition: record.partition,
        offset: record.offset,
        message: id_text,
        writes,
    }
}

/// Parks `message` on the retry topic, due after `consumer.retry_topic_delay`; falls back
/// to `fallback` (the dead letter for when the retry topic cannot be written).
pub(crate) fn park(
    shared: &Shared,
    message: &KafkaMessage,
    origin: Origin,
    failures: &Failures,
    fallback: Divert,
) -> Divert {
    let (first, last) = failures.times();
    let mut parked = message.clone();
    parked.attempt = failures.attempts;
    let c = &shared.config;
    let delay = round_delay(
        c.consumer.retry_topic_delay,
        c.consumer.retry_topic_max_delay,
        failures.attempts,
        c.consumer.retry.max_attempts,
    );
    let due_at = SystemTime::now() + delay;
    let record = RetryRecord {
        message: parked,
        attempts: failures.attempts,
        due_at,
        origin,
        group: c.group_id.clone(),
        service: c.service_name.clone(),
        first_failure_at: first,
        last_failure_at: last,
        last_error: cut(failures.last_error.clone()),
    };
    log::warn!(
        "parking message {} (correlation {}) on {} after {} attempt(s), due in {delay:?}: {}",
        message.id,
        message.correlation_id,
        c.consumer.retry_topic_of(&c.group_id),
        failures.attempts,
        failures.last_error
    );
    let mut writes = Vec::with_capacity(1 + fallback.writes.len());
    let topic = c.consumer.retry_topic_of(&c.group_id);
    let key = message.partition_key().into_bytes();
    writes.extend(retry_write(
        shared,
        &record,
        topic,
        key,
        Counter::SentToRetry,
    ));
    writes.extend(fallback.writes);
    Divert { writes, ..fallback }
}

/// The write of retry entry `record` to `topic`, with its headers.
fn retry_write(
    shared: &Shared,
    record: &RetryRecord,
    topic: String,
    key: Vec<u8>,
    counts_as: Counter,
) -> Option<Write> {
    let message = &record.message;
    let correlation = Some(message.correlation_id.clone());
    let env = envelope(shared, &MessageType::RETRY, record, correlation)?;
    let value = env.to_bytes().ok()?;
    Some(Write {
        topic,
        key: Some(key),
        value,
        headers: vec![
            Header::new(Header::MESSAGE_ID, message.id.to_string()),
            Header::new(Header::MESSAGE_TYPE, MessageType::RETRY.as_str()),
            Header::new(Header::CORRELATION_ID, message.correlation_id.as_str()),
            Header::new(headers::RETRY_GROUP, record.group.as_str()),
            Header::new(headers::RETRY_ORIGIN_TOPIC, record.origin.topic.as_str()),
            // Rounded up: never due before the entry's own due time.
            Header::new(
                headers::RETRY_DUE_AT,
                (unix_millis(record.due_at + Duration::from_nanos(999_999))).to_string(),
            ),
        ],
        counts_as,
        what: "retry entry",
    })
}

/// Writes retry entry `entry` (read from `record`, due further away than `max`) again to
/// the topic it was read from, due after `max`: the clamp is kept in the entry, and the
/// original ends once the copy is acknowledged. The copy keeps the entry's key, so one
/// key's entries stay in one partition.
pub(crate) fn reschedule(
    shared: &Shared,
    entry: &RetryRecord,
    record: &ConsumedRecord,
    max: Duration,
) -> Divert {
    let mut copy = entry.clone();
    copy.due_at = SystemTime::now() + max;
    let key = record
        .key
        .clone()
        .unwrap_or_else(|| entry.message.partition_key().into_bytes());
    let writes = retry_write(
        shared,
        &copy,
        record.topic.clone(),
        key,
        Counter::Rescheduled,
    );
    Divert {
        partition: record.partition,
        offset: record.offset,
        message: entry.message.id.to_string(),
        writes: writes.into_iter().collect(),
    }
}

/// The wait of a message's next round on the retry topic: `first`, doubled for each round
/// it already had (`attempts` over the in-place attempts per round), at most `max`.
pub(crate) fn round_delay(
    first: Duration,
    max: Duration,
    attempts: u32,
    per_round: u32,
) -> Duration {
    let rounds_before = (attempts.saturating_sub(1) / per_round.max(1)).min(32);
    first
        .checked_mul(1u32 << rounds_before.min(31))
        .unwrap_or(max)
        .min(max)
}

fn envelope<T: serde::Serialize>(
    shared: &Shared,
    message_type: &MessageType,
    payload: &T,
    correlation_id: Option<String>,
) -> Option<KafkaMessage> {
    match KafkaMessage::new(message_type.clone(), payload) {
        Ok(mut env) => {
            if let Some(c) = correlation_id {
                env.correlation_id = c;
            }
            Some(env.with_source_service(shared.config.service_name.clone()))
        }
        Err(e) => {
            // Only a timestamp before 1970 can fail here; the fallback is written instead.
            log::error!("cannot encode a {message_type} record: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_saturate_instead_of_overflowing() {
        let mut f = Failures::none();
        f.attempts = u32::MAX;
        f.record(Cause::Handler, "x".into());
        f.attempted();
        assert_eq!(f.attempts, u32::MAX);
    }

    #[test]
    fn each_round_on_the_retry_topic_waits_twice_as_long_up_to_the_maximum() {
        let (first, max) = (Duration::from_secs(30), Duration::from_secs(3600));
        let waits: Vec<u64> = [3, 6, 9, 12, u32::MAX]
            .into_iter()
            .map(|attempts| round_delay(first, max, attempts, 3).as_secs())
            .collect();
        assert_eq!(waits, vec![30, 60, 120, 240, 3600]);
    }

    #[test]
    fn long_error_texts_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = cut(long);
        assert!(cut.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
