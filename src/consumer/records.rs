//! What the consumer writes when a message cannot be handled now: [`RetryRecord`] on the
//! retry topic, [`DeadLetterRecord`] on the dead-letter topic. Both travel as the payload of
//! an ordinary [`KafkaMessage`] envelope (types [`MessageType::RETRY`] and
//! [`MessageType::DEAD_LETTER`]), so any consumer can read them with
//! [`KafkaMessage::payload_as`].
//!
//! ```
//! use kafka_sync::domain::{DeadLetterKind, DeadLetterRecord, RawBytes};
//!
//! // Raw bytes are kept losslessly: as text when they are UTF-8, else as base64 (never
//! // more than 4/3 of their size; the old `{"bytes": [..]}` form is still read).
//! assert_eq!(RawBytes::from_slice(b"{oops"), RawBytes::Utf8("{oops".into()));
//! assert_eq!(RawBytes::from_slice(&[0xff, 0]).to_vec(), vec![0xff, 0]);
//! assert_eq!(serde_json::to_value(DeadLetterKind::UnknownType).unwrap(), "unknown_type");
//! ```

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{KafkaMessage, MessageType};

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// The bytes are not an envelope (bad JSON, wrong shape, empty value), or the payload
    /// does not decode into a typed handler's type.
    Decode,
    /// A handler's retriable error, after the in-place retries ran out with no retry topic.
    Handler,
    /// The handler returned a permanent error.
    Permanent,
    /// No handler is registered for the message's type.
    UnknownType,
    /// The message used up `consumer.max_total_attempts` over all rounds.
    Exhausted,
    /// The last attempt ran past `consumer.handler_timeout` and no retry was left.
    Timeout,
    /// The last attempt panicked and no retry was left.
    Panic,
    /// A record batch the transport could not decode (message format v0/v1, a CRC
    /// mismatch, a codec this build lacks, a header key that is not UTF-8): the raw value
    /// is the batch as fetched; the partition goes on after it.
    UndecodableBatch,
}

impl fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeadLetterKind::Decode => "decode",
            DeadLetterKind::Handler => "handler",
            DeadLetterKind::Permanent => "permanent",
            DeadLetterKind::UnknownType => "unknown_type",
            DeadLetterKind::Exhausted => "exhausted",
            DeadLetterKind::Timeout => "timeout",
            DeadLetterKind::Panic => "panic",
            DeadLetterKind::UndecodableBatch => "undecodable_batch",
        })
    }
}

/// Bytes kept without loss in JSON: `{"utf8": "..."}` when they are valid UTF-8, else
/// `{"base64": "..."}` (standard alphabet, padded). `{"bytes": [..]}` (a number per byte,
/// written by earlier versions) is still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBytesWire", into = "RawBytesWire")]
pub enum RawBytes {
    /// The bytes were valid UTF-8: the text itself.
    Utf8(String),
    /// The bytes were not UTF-8 (written as base64).
    Bytes(Vec<u8>),
}

/// [`RawBytes`] as it travels in JSON.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawBytesWire {
    Utf8(String),
    Base64(String),
    Bytes(Vec<u8>),
}

impl From<RawBytes> for RawBytesWire {
    fn from(raw: RawBytes) -> Self {
        use base64::Engine;
        match raw {
            RawBytes::Utf8(text) => RawBytesWire::Utf8(text),
            RawBytes::Bytes(bytes) => {
                RawBytesWire::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

impl TryFrom<RawBytesWire> for RawBytes {
    type Error = String;

    fn try_from(wire: RawBytesWire) -> Result<Self, String> {
        use base64::Engine;
        Ok(match wire {
            RawBytesWire::Utf8(text) => RawBytes::Utf8(text),
            RawBytesWire::Bytes(bytes) => RawBytes::Bytes(bytes),
            RawBytesWire::Base64(text) => RawBytes::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .map_err(|e| format!("raw bytes: invalid base64: {e}"))?,
            ),
        })
    }
}

impl RawBytes {
    /// Keeps `bytes`, as text when possible.
    pub fn from_slice(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => RawBytes::Utf8(text.to_string()),
            Err(_) => RawBytes::Bytes(bytes.to_vec()),
        }
    }

    /// The original bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            RawBytes::Utf8(text) => text.as_bytes().to_vec(),
            RawBytes::Bytes(bytes) => bytes.clone(),
        }
    }
}

/// Where a message was first read: what a dead letter or retry entry points back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The topic the message was read from (never the retry topic).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A message parked on the retry topic for a later attempt by the group that failed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryRecord {
    /// The original envelope, its `attempt` set to [`attempts`](Self::attempts).
    pub message: KafkaMessage,
    /// Handler attempts made so far, over all rounds.
    pub attempts: u32,
    /// Not handled again before this time.
    pub due_at: SystemTime,
    /// Where the message was first read.
    pub origin: Origin,
    /// The consumer group that failed it; only that group handles it again.
    pub group: String,
    /// The service that parked it.
    pub service: String,
    /// When the first attempt failed.
    pub first_failure_at: SystemTime,
    /// When the last attempt failed.
    pub last_failure_at: SystemTime,
    /// The last failure, as text.
    pub last_error: String,
}

/// Everything needed to understand and replay a message that could not be handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// Why it was dead-lettered.
    pub kind: DeadLetterKind,
    /// The error chain as text, outermost first.
    pub error: String,
    /// The original envelope, when the bytes decoded into one.
    pub original: Option<KafkaMessage>,
    /// The original bytes, when they did not decode into an envelope.
    pub raw_value: Option<RawBytes>,
    /// The original record key, if it had one.
    pub key: Option<RawBytes>,
    /// The message id (from the envelope, or found in undecodable JSON).
    pub message_id: Option<Uuid>,
    /// The message type, when known.
    pub message_type: Option<MessageType>,
    /// The correlation id (from the envelope, or found in undecodable JSON).
    pub correlation_id: Option<String>,
    /// Handler attempts made, over all rounds (0 when no handler ran).
    pub attempts: u32,
    /// When the first failure happened.
    pub first_failure_at: SystemTime,
    /// When the last failure happened.
    pub last_failure_at: SystemTime,
    /// Where the message was first read.
    pub origin: Origin,
    /// The consumer group that gave up on it.
    pub group: String,
    /// The service that gave up on it.
    pub service: String,
}

impl DeadLetterRecord {
    /// The bytes to produce again to replay the message: the envelope or the raw bytes.
    pub fn replay_bytes(&self) -> Vec<u8> {
        match (&self.original, &self.raw_value) {
            (Some(envelope), _) => envelope.to_bytes().unwrap_or_default(),
            (None, Some(raw)) => raw.to_vec(),
            (None, None) => Vec::new(),
        }
    }
}

impl DeadLetterRecord {
    /// Reads back a record of the dead-letter topic, in either form the consumer writes: the
    /// JSON record inside an envelope of type [`MessageType::DEAD_LETTER`] (header
    /// `dlt-form: envelope`, or no headers at all on the `kafka` crate transport), or the
    /// original key and value unchanged with the error in `dlt-*` headers (`dlt-form:
    /// original`, the fallback when the JSON record cannot be written, e.g. too large).
    /// Fails with [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) naming what
    /// is missing.
    pub fn from_record(record: &crate::transport::ConsumedRecord) -> crate::Result<Self> {
        use super::divert::headers as h;
        let get = |name: &str| {
            record
                .headers
                .iter()
                .rev()
                .find(|x| x.key == name)
                .map(|x| String::from_utf8_lossy(&x.value).into_owned())
        };
        let bad = |what: String| {
            crate::Error::new(
                crate::ErrorKind::Serialization,
                format!(
                    "record {}/{}@{} is not a dead letter: {what}",
                    record.topic, record.partition, record.offset
                ),
            )
        };
        if get(h::DLT_FORM).as_deref() != Some("original") {
            let env = KafkaMessage::from_bytes(&record.value)
                .map_err(|e| bad(format!("not an envelope: {e}")))?;
            if env.message_type != MessageType::DEAD_LETTER {
                return Err(bad(format!("an envelope of type {}", env.message_type)));
            }
            return env.payload_as().map_err(|e| bad(format!("payload: {e}")));
        }
        let need = |name: &'static str| get(name).ok_or_else(|| bad(format!("no {name} header")));
        let number = |name: &'static str| -> crate::Result<i64> {
            need(name)?
                .parse()
                .map_err(|_| bad(format!("header {name} is not a number")))
        };
        let time = |name: &'static str| -> crate::Result<SystemTime> {
            let ms = u64::try_from(number(name)?).unwrap_or(0);
            Ok(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        };
        let kind: DeadLetterKind =
            serde_json::from_value(serde_json::Value::String(need(h::DLT_KIND)?))
                .map_err(|_| bad("unknown dlt-kind".into()))?;
        let original = KafkaMessage::from_bytes(&record.value).ok();
        let (salvaged_id, salvaged_corr) = salvage_ids(&record.value);
        Ok(DeadLetterRecord {
            kind,
            error: need(h::DLT_ERROR)?,
            raw_value: original
                .is_none()
                .then(|| RawBytes::from_slice(&record.value)),
            key: record.key.as_deref().map(RawBytes::from_slice),
            message_id: get(crate::transport::Header::MESSAGE_ID)
                .and_then(|t| Uuid::parse_str(&t).ok())
                .or(original.as_ref().map(|m| m.id))
                .or(salvaged_id),
            message_type: original.as_ref().map(|m| m.message_type.clone()),
            correlation_id: get(crate::transport::Header::CORRELATION_ID).or(salvaged_corr),
            attempts: u32::try_from(number(h::DLT_ATTEMPTS)?).unwrap_or(u32::MAX),
            first_failure_at: time(h::DLT_FIRST_FAILURE_AT)?,
            last_failure_at: time(h::DLT_LAST_FAILURE_AT)?,
            origin: Origin {
                topic: need(h::DLT_ORIGINAL_TOPIC)?,
                partition: i32::try_from(number(h::DLT_ORIGINAL_PARTITION)?).unwrap_or(-1),
                offset: number(h::DLT_ORIGINAL_OFFSET)?,
            },
            group: need(h::DLT_GROUP)?,
            service: need(h::DLT_SERVICE)?,
            original,
        })
    }
}

/// Best-effort id and correlation id of bytes that are JSON but not an envelope.
pub(crate) fn salvage_ids(bytes: &[u8]) -> (Option<Uuid>, Option<String>) {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return (None, None);
    };
    let id = map
        .get("id")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok());
    let correlation = map
        .get("correlation_id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    (id, correlation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_round_trip_through_json_without_loss() {
        for bytes in [&b""[..], b"plain", &[0xff, 0xfe, 0, 1], "é😀".as_bytes()] {
            let raw = RawBytes::from_slice(bytes);
            let json = serde_json::to_string(&raw).unwrap();
            let back: RawBytes = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_vec(), bytes);
        }
        let json = serde_json::to_value(RawBytes::from_slice(&[0xff, 0xfe, 0xfd])).unwrap();
        assert_eq!(json, serde_json::json!({"base64": "//79"}));
        let old: RawBytes = serde_json::from_value(serde_json::json!({"bytes": [255]})).unwrap();
        assert_eq!(
            old.to_vec(),
            vec![0xff],
            "the number-array form of earlier versions"
        );
        let big = vec![0xffu8; 30_000];
        let text = serde_json::to_string(&RawBytes::from_slice(&big)).unwrap();
        assert!(text.len() <= big.len() * 4 / 3 + 16, "{} bytes", text.len());
    }

    #[test]
    fn ids_are_salvaged_from_json_of_the_wrong_shape() {
        let id = Uuid::new_v4();
        let bytes = format!(r#"{{"id":"{id}","correlation_id":"req-7","type":5}}"#);
        assert_eq!(
            salvage_ids(bytes.as_bytes()),
            (Some(id), Some("req-7".into()))
        );
        assert_eq!(salvage_ids(b"not json"), (None, None));
        assert_eq!(salvage_ids(b"[1,2]"), (None, None));
    }

    #[test]
    fn replay_bytes_are_the_original_bytes() {
        let now = SystemTime::now();
        let record = DeadLetterRecord {
            kind: DeadLetterKind::Decode,
            error: "bad".into(),
            original: None,
            raw_value: Some(RawBytes::from_slice(b"{oops")),
            key: None,
            message_id: None,
            message_type: None,
            correlation_id: None,
            attempts: 0,
            first_failure_at: now,
            last_failure_at: now,
            origin: Origin {
                topic: "t".into(),
                partition: 0,
                offset: 3,
            },
            group: "g".into(),
            service: "s".into(),
        };
        assert_eq!(record.replay_bytes(), b"{oops");
        let back: DeadLetterRecord =
            serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
        assert_eq!(back, record);
    }
}
