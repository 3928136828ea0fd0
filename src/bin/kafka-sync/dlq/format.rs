//! The one module that knows what a dead letter looks like on the wire, so a change of
//! format is a change here only. Two forms are read, through the library's own
//! `DeadLetterRecord::from_record` first, then by the tolerant header reading below (for
//! records other tools wrote):
//!
//! - the envelope form: a [`KafkaMessage`] of type `dead_letter` whose payload is a
//!   [`DeadLetterRecord`] (what the consumer writes today);
//! - the headers form: the original value unchanged, the metadata in record headers
//!   `dlt-kind`, `dlt-error`, `dlt-original-topic`, `dlt-original-partition`,
//!   `dlt-original-offset`, `dlt-attempts`, `dlt-group`, `dlt-service`,
//!   `dlt-last-failure-at` (milliseconds since the epoch, or RFC 3339) — the names the
//!   consumer's header-based dead letters use; the prefixes `dead-letter-`, `dlq-` and
//!   `x-dead-letter-`, `origin-` for `original-`, and `_` for `-` are read too.
//!
//! Replays are recorded as envelopes of type `dead_letter_replay` on
//! `<dead-letter topic>-replays`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use kafka_sync::domain::{DeadLetterRecord, KafkaMessage};
use kafka_sync::transport::ConsumedRecord;
use serde::{Deserialize, Serialize};

/// The message type of a replay record.
pub const REPLAY_TYPE: &str = "dead_letter_replay";

/// The topic replays of `dlq` are recorded on.
pub fn replay_topic(dlq: &str) -> String {
    format!("{dlq}-replays")
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `PARTITION:OFFSET` on the dead-letter topic.
    pub id: String,
    pub partition: i32,
    pub offset: i64,
    pub kind: String,
    pub error: String,
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub correlation_id: Option<String>,
    pub origin_topic: String,
    pub origin_partition: i32,
    pub origin_offset: i64,
    pub group: String,
    pub service: String,
    pub attempts: u32,
    /// RFC 3339.
    pub failed_at: Option<String>,
    /// `envelope` or `headers`.
    pub format: &'static str,
    /// Replays recorded for it.
    pub replays: Vec<Replay>,
    #[serde(skip)]
    pub failed_at_time: Option<SystemTime>,
    /// The bytes to publish again (the original envelope or value).
    #[serde(skip)]
    pub original: Option<Vec<u8>>,
    #[serde(skip)]
    pub original_key: Option<Vec<u8>>,
}

/// What the replay topic records for each replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replay {
    pub dead_letter_topic: String,
    pub dead_letter_id: String,
    pub message_id: Option<String>,
    pub replayed_to: String,
    pub replayed_at: String,
    pub partition: i32,
    pub offset: i64,
}

pub fn rfc3339(t: SystemTime) -> Option<String> {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The record as a dead letter, in either form; `None` if it is neither.
pub fn decode(r: &ConsumedRecord) -> Option<Entry> {
    let base = |format| Entry {
        id: format!("{}:{}", r.partition, r.offset),
        partition: r.partition,
        offset: r.offset,
        kind: String::new(),
        error: String::new(),
        message_id: None,
        message_type: None,
        correlation_id: None,
        origin_topic: String::new(),
        origin_partition: -1,
        origin_offset: -1,
        group: String::new(),
        service: String::new(),
        attempts: 0,
        failed_at: None,
        format,
        replays: Vec::new(),
        failed_at_time: None,
        original: None,
        original_key: None,
    };
    // The library's own reader first: both forms the consumer writes.
    if let Ok(d) = DeadLetterRecord::from_record(r) {
        let original_form = r
            .headers
            .iter()
            .any(|h| h.key == "dlt-form" && h.value == b"original");
        {
            let mut e = base(if original_form { "headers" } else { "envelope" });
            e.kind = d.kind.to_string();
            e.error = d.error.clone();
            e.message_id = d.message_id.map(|i| i.to_string());
            e.message_type = d.message_type.as_ref().map(|t| t.to_string());
            e.correlation_id = d.correlation_id.clone();
            e.origin_topic = d.origin.topic.clone();
            e.origin_partition = d.origin.partition;
            e.origin_offset = d.origin.offset;
            e.group = d.group.clone();
            e.service = d.service.clone();
            e.attempts = d.attempts;
            e.failed_at = rfc3339(d.last_failure_at);
            e.failed_at_time = Some(d.last_failure_at);
            let bytes = d.replay_bytes();
            e.original = (!bytes.is_empty()).then_some(bytes);
            e.original_key = d.key.as_ref().map(|k| k.to_vec());
            return Some(e);
        }
    }
    let headers: HashMap<String, String> = r
        .headers
        .iter()
        .filter_map(|h| {
            let k = h.key.to_ascii_lowercase().replace('_', "-");
            let k = ["x-dead-letter-", "dead-letter-", "dlq-", "dlt-"]
                .iter()
                .find_map(|p| k.strip_prefix(p))?
                .replace("original-", "origin-");
            Some((k, String::from_utf8_lossy(&h.value).into_owned()))
        })
        .collect();
    if !headers.contains_key("kind") && !headers.contains_key("error") {
        return None;
    }
    let mut e = base("headers");
    let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
    e.kind = h("kind");
    e.error = h("error");
    e.origin_topic = h("origin-topic");
    e.origin_partition = h("origin-partition").parse().unwrap_or(-1);
    e.origin_offset = h("origin-offset").parse().unwrap_or(-1);
    e.group = h("group");
    e.service = h("service");
    e.attempts = h("attempts").parse().unwrap_or(0);
    e.failed_at_time = ["last-failure-at", "failed-at"]
        .iter()
        .find_map(|k| headers.get(*k))
        .and_then(|v| match v.parse::<u64>() {
            Ok(millis) => Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis)),
            Err(_) => parse_time(v),
        });
    e.failed_at = e.failed_at_time.and_then(rfc3339);
    if let Ok(m) = KafkaMessage::from_bytes(&r.value) {
        e.message_id = Some(m.id.to_string());
        e.message_type = Some(m.message_type.to_string());
        e.correlation_id = Some(m.correlation_id.clone());
    }
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|x| x.key == name)
            .map(|x| String::from_utf8_lossy(&x.value).into_owned())
    };
    e.message_id = e.message_id.or_else(|| header("message-id"));
    e.message_type = e.message_type.or_else(|| header("message-type"));
    e.correlation_id = e.correlation_id.or_else(|| header("correlation-id"));
    e.original = Some(r.value.clone());
    e.original_key = r.key.clone();
    Some(e)
}

pub fn parse_time(text: &str) -> Option<SystemTime> {
    let dt =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_nanos(u64::try_from(dt.unix_timestamp_nanos()).ok()?),
    )
}

/// `--since`: RFC 3339 or an age such as `30s`, `10m`, `2h`, `1d`.
#[cfg(test)]
mod tests {
    use super::*;
    use kafka_sync::domain::MessageType;
    use kafka_sync::transport::Header;

    #[test]
    fn the_headers_form_is_read_with_the_original_value() {
        let original = KafkaMessage::from_json(MessageType::new("t"), serde_json::json!({"a": 1}))
            .with_correlation_id("c-1");
        let r = ConsumedRecord {
            topic: "dead-letter".into(),
            partition: 1,
            offset: 9,
            key: None,
            value: original.to_bytes().unwrap(),
            null_value: false,
            headers: vec![
                Header::new("dead-letter-kind", "permanent"),
                Header::new("dead_letter_error", "gone"),
                Header::new("dlt-original-topic", "scraping-tasks"),
                Header::new("dlt-original-partition", "2"),
                Header::new("dead-letter-origin-offset", "40"),
                Header::new("dlt-last-failure-at", "1767225600000"),
            ],
        };
        let e = decode(&r).unwrap();
        assert_eq!(
            (e.id.as_str(), e.kind.as_str(), e.error.as_str(), e.format),
            ("1:9", "permanent", "gone", "headers")
        );
        assert_eq!(
            (e.origin_topic.as_str(), e.origin_partition, e.origin_offset),
            ("scraping-tasks", 2, 40)
        );
        assert_eq!(e.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(e.failed_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(e.original.as_deref(), Some(&r.value[..]));
        let plain = ConsumedRecord {
            headers: vec![],
            ..r
        };
        assert!(
            decode(&plain).is_none(),
            "an ordinary message is not a dead letter"
        );
    }
}
