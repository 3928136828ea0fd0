//! The envelope [`KafkaMessage`] and its [`MessageType`].

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

/// The kind of a message; the consumer routes each message to the handler registered for
/// its type. The pipeline's types are constants; services may define their own with
/// [`MessageType::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageType(Cow<'static, str>);

impl MessageType {
    /// A task for a scraper: payload [`ScrapingTask`](crate::domain::ScrapingTask).
    pub const SCRAPING_TASK: MessageType = MessageType(Cow::Borrowed("scraping_task"));
    /// A scraped page: payload [`ScrapedData`](crate::domain::ScrapedData).
    pub const SCRAPED_DATA: MessageType = MessageType(Cow::Borrowed("scraped_data"));
    /// Parsed content: payload [`ParsedData`](crate::domain::ParsedData).
    pub const PARSED_DATA: MessageType = MessageType(Cow::Borrowed("parsed_data"));
    /// A dead-letter record written by the consumer.
    pub const DEAD_LETTER: MessageType = MessageType(Cow::Borrowed("dead_letter"));
    /// A retry record written by the consumer.
    pub const RETRY: MessageType = MessageType(Cow::Borrowed("retry"));

    /// A message type with any name.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        MessageType(name.into())
    }

    /// The type's name as it travels on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&'static str> for MessageType {
    fn from(s: &'static str) -> Self {
        MessageType(Cow::Borrowed(s))
    }
}

/// The envelope every message travels in, serialized as JSON.
///
/// ```
/// use kafka_sync::domain::{KafkaMessage, MessageType, ScrapingTask};
///
/// let task = ScrapingTask::new("https://example.com");
/// let msg = KafkaMessage::new(MessageType::SCRAPING_TASK, &task)
///     .unwrap()
///     .with_correlation_id("req-42")
///     .with_source_service("url-manager");
/// let back: ScrapingTask = msg.payload_as().unwrap();
/// assert_eq!(back, task);
/// assert_eq!(msg.partition_key(), msg.id.to_string());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaMessage {
    /// Unique id (UUID v4); consumers use it to drop duplicates.
    pub id: Uuid,
    /// What the payload is; selects the handler.
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// Ties together every message caused by one original request; logged on every line.
    pub correlation_id: String,
    /// When the message was created. On the wire an RFC 3339 timestamp in UTC with
    /// nanoseconds (`"2026-01-01T00:00:00.123456789Z"`); any RFC 3339 offset and the struct
    /// form earlier versions wrote (`{"secs_since_epoch":…,"nanos_since_epoch":…}`) are read.
    #[serde(with = "crate::domain::timestamp")]
    pub created_at: SystemTime,
    /// How many times handling was attempted before this copy was sent (0 for a new message).
    #[serde(default)]
    pub attempt: u32,
    /// The service that created the message.
    #[serde(default)]
    pub source_service: String,
    /// The domain payload, as JSON.
    pub payload: serde_json::Value,
    /// Partition key; when absent the message id is used, which spreads messages evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KafkaMessage {
    /// A new message with a fresh id, its own id as correlation id, and `payload` encoded
    /// as JSON. Fails with [`ErrorKind::Serialization`] if the payload cannot be encoded.
    pub fn new<T: Serialize + ?Sized>(message_type: MessageType, payload: &T) -> Result<Self> {
        let payload = serde_json::to_value(payload).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("payload of a `{message_type}` message cannot be encoded as JSON: {e}"),
            )
        })?;
        Ok(Self::from_json(message_type, payload))
    }

    /// A new message around an already-built JSON payload.
    pub fn from_json(message_type: MessageType, payload: serde_json::Value) -> Self {
        let id = Uuid::new_v4();
        KafkaMessage {
            id,
            message_type,
            correlation_id: id.to_string(),
            created_at: SystemTime::now(),
            attempt: 0,
            source_service: String::new(),
            payload,
            key: None,
        }
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    /// Sets the source service.
    pub fn with_source_service(mut self, service: impl Into<String>) -> Self {
        self.source_service = service.into();
        self
    }

    /// Sets the partition key: messages with the same key land on the same partition, in
    /// order.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The key used for partitioning: [`key`](Self::key) or else the id.
    pub fn partition_key(&self) -> String {
        match &self.key {
            Some(k) => k.clone(),
            None => self.id.to_string(),
        }
    }

    /// Decodes the payload into `T`; fails with [`ErrorKind::Decode`] naming the type.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.payload).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "payload of message {} (type `{}`) does not decode into {}: {e}",
                    self.id,
                    self.message_type,
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// The envelope as JSON bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("message {} cannot be encoded: {e}", self.id),
            )
        })
    }

    /// Decodes an envelope from bytes; the error says what was wrong (empty, not JSON,
    /// wrong shape).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::new(
                ErrorKind::Decode,
                "empty value is not a message envelope",
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("value is not a message envelope: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_through_bytes() {
        let msg = KafkaMessage::from_json(MessageType::new("custom"), serde_json::json!({"a": 1}))
            .with_key("k");
        let back = KafkaMessage::from_bytes(&msg.to_bytes().unwrap()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(back.partition_key(), "k");
    }

    #[test]
    fn created_at_is_written_as_rfc3339_utc_with_nanoseconds() {
        let mut msg = KafkaMessage::from_json(MessageType::new("t"), serde_json::json!(1));
        msg.created_at = std::time::UNIX_EPOCH + std::time::Duration::new(1_767_225_600, 5);
        let json: serde_json::Value = serde_json::from_slice(&msg.to_bytes().unwrap()).unwrap();
        assert_eq!(json["created_at"], "2026-01-01T00:00:00.000000005Z");
    }

    #[test]
    fn an_envelope_written_by_a_go_or_java_service_decodes() {
        let go = br#"{"id":"6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50","type":"scraping_task",
            "correlation_id":"req-7","created_at":"2026-01-01T00:00:00Z","attempt":0,
            "source_service":"url-manager","payload":{"url":"https://a.b"}}"#;
        let msg = KafkaMessage::from_bytes(go).unwrap();
        assert_eq!(msg.correlation_id, "req-7");
        assert_eq!(
            msg.created_at,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600)
        );
        let offset = br#"{"id":"6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50","type":"t",
            "correlation_id":"c","created_at":"2026-01-01T02:00:00.5+02:00","payload":null}"#;
        let msg = KafkaMessage::from_bytes(offset).unwrap();
        assert_eq!(
            msg.created_at,
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_767_225_600_500)
        );
    }

    #[test]
    fn the_struct_form_of_earlier_versions_still_decodes() {
        let old = br#"{"id":"6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50","type":"t","correlation_id":"c",
            "created_at":{"secs_since_epoch":1767225600,"nanos_since_epoch":7},"payload":null}"#;
        let msg = KafkaMessage::from_bytes(old).unwrap();
        assert_eq!(
            msg.created_at,
            std::time::UNIX_EPOCH + std::time::Duration::new(1_767_225_600, 7)
        );
        let bad = br#"{"id":"6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50","type":"t","correlation_id":"c",
            "created_at":"last tuesday","payload":null}"#;
        let e = KafkaMessage::from_bytes(bad).unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }

    #[test]
    fn decode_errors_say_what_was_wrong() {
        let empty = KafkaMessage::from_bytes(b"").unwrap_err();
        assert_eq!(empty.kind(), ErrorKind::Decode);
        assert!(empty.to_string().contains("empty value"));
        let shape = KafkaMessage::from_bytes(br#"{"id": 3}"#).unwrap_err();
        assert!(
            shape.to_string().contains("not a message envelope"),
            "{shape}"
        );
    }

    #[test]
    fn ids_are_unique_and_type_serializes_as_plain_string() {
        let a = KafkaMessage::from_json(MessageType::SCRAPING_TASK, serde_json::Value::Null);
        let b = KafkaMessage::from_json(MessageType::SCRAPING_TASK, serde_json::Value::Null);
        assert_ne!(a.id, b.id);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["type"], "scraping_task");
    }
}
