//! The plumbing between a caller and a writer thread: queued records, reply channels, and
//! [`DeliveryHandle`], what `send_async` returns.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use uuid::Uuid;

use super::reply::{NoReply, Reply, ReplyFrom, ReplyTo};

use crate::domain::{Delivery, KafkaMessage};
use crate::error::{Error, ErrorKind, Result, SendError};
use crate::transport::Header;

/// A serialized message waiting in a writer's queue.
pub(crate) struct QueuedRecord {
    /// The partitioning key's bytes.
    pub key: Vec<u8>,
    /// The encoded envelope.
    pub value: Vec<u8>,
    /// The envelope's id, type and correlation id as record headers.
    pub headers: Vec<Header>,
    /// For log lines (the correlation id is in `headers`).
    pub message_id: Uuid,
    /// A caller is blocked on this record: ship without waiting for the batch to fill.
    pub caller_waiting: bool,
    /// Where the result goes.
    pub reply_to: ReplyTo,
    /// This record's index in its caller's batch.
    pub index: usize,
    /// Key, value and header bytes (what counts against `batch_bytes`).
    pub size: usize,
    /// The end of its `delivery_timeout`: not sent once this has passed.
    pub deadline: Instant,
}

/// How long past a record's deadline its caller keeps waiting for the writer's answer: the
/// writer answers every record by its deadline (an attempt in flight is cut to the time
/// left), and this covers the hand-over, so caller and writer agree on the outcome.
pub(crate) const REPLY_MARGIN: Duration = Duration::from_millis(250);

impl QueuedRecord {
    /// Encodes `message` for the queue; serialization errors go back to the caller here.
    pub fn encode(
        message: &KafkaMessage,
        max_bytes: usize,
        caller_waiting: bool,
        reply_to: ReplyTo,
        index: usize,
        deadline: Instant,
    ) -> Result<Self> {
        let value = envelope_bytes(message)?;
        // The id is formatted once, on the stack, for the key (when the message has none)
        // and the message-id header.
        let mut id_buf = Uuid::encode_buffer();
        let id = message.id.hyphenated().encode_lower(&mut id_buf).as_bytes();
        let key = match &message.key {
            Some(k) => k.as_bytes().to_vec(),
            None => id.to_vec(),
        };
        let headers = vec![
            Header::new(Header::MESSAGE_ID, id),
            Header::new(Header::MESSAGE_TYPE, message.message_type.as_str()),
            Header::new(Header::CORRELATION_ID, message.correlation_id.as_str()),
        ];
        let size = key.len()
            + value.len()
            + headers
                .iter()
                .map(|h| h.key.len() + h.value.len())
                .sum::<usize>();
        if size > max_bytes {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "message {} is {size} bytes (key, encoded envelope and headers), more than \
                     producer.max_message_bytes ({max_bytes})",
                    message.id,
                ),
            ));
        }
        Ok(QueuedRecord {
            key,
            value,
            headers,
            message_id: message.id,
            caller_waiting,
            reply_to,
            index,
            size,
            deadline,
        })
    }
}

/// The correlation id in a produced record's `headers` (for log lines).
pub(crate) fn correlation_of(headers: &[Header]) -> &str {
    headers
        .iter()
        .find(|h| h.key == Header::CORRELATION_ID)
        .and_then(|h| std::str::from_utf8(&h.value).ok())
        .unwrap_or("")
}

/// Room reserved up front for an encoded envelope: most fit, so serializing does not grow
/// (reallocate and copy) the buffer several times.
const ENVELOPE_CAPACITY: usize = 512;

/// The envelope as JSON, the same bytes as [`KafkaMessage::to_bytes`], into a buffer sized
/// for the common case.
fn envelope_bytes(message: &KafkaMessage) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(ENVELOPE_CAPACITY);
    serde_json::to_writer(&mut out, message).map_err(|e| {
        Error::new(
            ErrorKind::Serialization,
            format!("message {} cannot be encoded: {e}", message.id),
        )
    })?;
    Ok(out)
}

/// Gathers a batch's results so that consecutive records of one caller are answered with
/// one delivery (one wake-up) instead of one each.
#[derive(Default)]
pub(crate) struct Answers {
    pending: Option<(ReplyTo, Reply)>,
}

impl Answers {
    /// Adds `record`'s result.
    pub fn push(&mut self, record: &QueuedRecord, result: Result<Delivery>) {
        match &mut self.pending {
            Some((to, reply)) if to.same_inbox(&record.reply_to) => {
                reply.push((record.index, result));
            }
            _ => {
                self.send();
                self.pending = Some((record.reply_to.clone(), vec![(record.index, result)]));
            }
        }
    }

    /// Sends what is gathered (callers may have stopped waiting; that is fine).
    pub fn send(&mut self) {
        if let Some((to, mut reply)) = self.pending.take() {
            to.send(&mut reply);
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.send();
    }
}

/// What a writer thread receives.
pub(crate) enum WriterCommand {
    /// A record to produce.
    Record(QueuedRecord),
    /// Ship everything queued before this, then signal.
    Flush(Sender<()>),
}

/// The error a caller sees when its writer thread went away without answering.
pub(crate) fn writer_gone(topic: &str) -> Error {
    Error::new(
        ErrorKind::WorkerStopped,
        format!("the writer thread kafka-writer-{topic} stopped before answering"),
    )
    .with_topic(topic)
}

/// Waits for one reply within `bound`.
pub(crate) fn wait_reply(rx: &ReplyFrom, topic: &str, bound: Duration) -> Result<Delivery> {
    match rx.take(bound) {
        Ok(mut reply) => match reply.pop() {
            Some((_, result)) => result,
            None => Err(writer_gone(topic)),
        },
        Err(NoReply::Timeout) => {
            Err(Error::timeout("waiting for the broker's acknowledgement", bound).with_topic(topic))
        }
        Err(NoReply::Gone) => Err(writer_gone(topic)),
    }
}

/// A message queued by [`Producer::send_async`](crate::Producer::send_async) or
/// [`Producer::try_send`](crate::Producer::try_send); wait on it for the acknowledgement.
/// Dropping it does not cancel the send.
#[derive(Debug)]
#[must_use = "a DeliveryHandle tells whether the message was written; wait on it"]
pub struct DeliveryHandle {
    rx: ReplyFrom,
    message: KafkaMessage,
    topic: std::sync::Arc<str>,
    deadline: Instant,
}

impl DeliveryHandle {
    pub(crate) fn new(
        rx: ReplyFrom,
        message: KafkaMessage,
        topic: std::sync::Arc<str>,
        deadline: Instant,
    ) -> Self {
        DeliveryHandle {
            rx,
            message,
            topic,
            deadline,
        }
    }

    /// The id of the message this handle waits for.
    pub fn message_id(&self) -> Uuid {
        self.message.id
    }

    /// Whether the result has arrived (a `wait` would not block).
    pub fn is_ready(&self) -> bool {
        self.rx.is_ready()
    }

    /// Blocks until the broker acknowledged the message, or until the producer's
    /// `delivery_timeout` (counted from the send) ran out. On failure the message comes back.
    pub fn wait(self) -> Result<Delivery, SendError> {
        let bound = (self.deadline + REPLY_MARGIN).saturating_duration_since(Instant::now());
        match wait_reply(&self.rx, &self.topic, bound) {
            Ok(d) => Ok(d),
            Err(e) => Err(SendError::new(e, self.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageType;

    fn queued(message: &KafkaMessage, max_bytes: usize) -> Result<QueuedRecord> {
        let (tx, _rx) = crate::producer::reply::inbox();
        QueuedRecord::encode(message, max_bytes, false, tx, 0, Instant::now())
    }

    fn header<'a>(r: &'a QueuedRecord, name: &str) -> &'a [u8] {
        &r.headers.iter().find(|h| h.key == name).expect(name).value
    }

    #[test]
    fn encode_writes_the_envelope_id_key_and_headers() {
        let big = "x".repeat(3 * ENVELOPE_CAPACITY);
        for payload in [serde_json::json!({"n": 1}), serde_json::json!(big)] {
            let message = KafkaMessage::from_json(MessageType::new("order.placed"), payload)
                .with_correlation_id("corr-7");
            let r = queued(&message, usize::MAX).unwrap();
            assert_eq!(r.value, message.to_bytes().unwrap());
            assert_eq!(KafkaMessage::from_bytes(&r.value).unwrap().id, message.id);
            let id = message.id.to_string();
            assert_eq!(r.key, id.as_bytes(), "no key: the id is the key");
            assert_eq!(header(&r, Header::MESSAGE_ID), id.as_bytes());
            assert_eq!(header(&r, Header::MESSAGE_TYPE), b"order.placed");
            assert_eq!(header(&r, Header::CORRELATION_ID), b"corr-7");
            assert_eq!(correlation_of(&r.headers), "corr-7");
            let headers: usize = r.headers.iter().map(|h| h.key.len() + h.value.len()).sum();
            assert_eq!(r.size, r.key.len() + r.value.len() + headers);
        }
    }

    #[test]
    fn encode_uses_the_message_key_and_refuses_oversized_messages() {
        let message = KafkaMessage::from_json(MessageType::new("t"), serde_json::json!(1))
            .with_key("customer-42");
        let r = queued(&message, usize::MAX).unwrap();
        assert_eq!(r.key, b"customer-42");
        let e = queued(&message, r.size - 1)
            .err()
            .expect("one byte over the limit");
        assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
        assert!(e.message().contains("producer.max_message_bytes"), "{e}");
        assert!(queued(&message, r.size).is_ok());
    }
}
