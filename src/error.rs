//! One error type for the whole crate: [`Error`], classified by [`ErrorKind`].
//!
//! Every error carries the context that explains it (topic, partition, broker, the config field
//! and value at fault) and answers [`Error::is_retriable`]. Calls that take ownership of a
//! message and fail hand it back inside a [`SendError`].

use std::fmt;
use std::time::Duration;

use crate::domain::KafkaMessage;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in one word. Match on this rather than on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value was rejected; the error names the field and the value.
    Config,
    /// The broker could not be reached or the connection broke. Retriable.
    Connection,
    /// A bounded wait ran out (request, delivery, flush, shutdown). Retriable.
    Timeout,
    /// The broker answered with an error code that a later attempt may not see
    /// (leader election, not enough replicas, ...). Retriable.
    BrokerRetriable,
    /// The broker answered with an error code that retrying will not fix.
    Broker,
    /// The topic does not exist and the broker did not create it.
    UnknownTopic,
    /// The record is larger than the broker or the config allows.
    MessageTooLarge,
    /// A message could not be turned into bytes.
    Serialization,
    /// Bytes could not be turned into a message (bad JSON, wrong shape, empty value).
    Decode,
    /// `try_send` found the topic's writer queue full.
    QueueFull,
    /// The producer or consumer was closed before the call could finish.
    Closed,
    /// A background thread stopped unexpectedly (a panic); the error says which.
    WorkerStopped,
    /// The broker speaks a protocol version this transport cannot use.
    UnsupportedBroker,
    /// A local file could not be read or written (the file-backed idempotency store).
    Io,
    /// The broker refused our credentials (SASL), or a TLS handshake failed (the broker's
    /// certificate is not trusted or not valid for its name). The error names the mechanism
    /// or TLS, and the broker. Not retriable: the configuration has to change.
    Authentication,
}

impl ErrorKind {
    /// Whether an operation that failed with this kind may succeed if tried again later.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::BrokerRetriable
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::BrokerRetriable => "retriable broker error",
            ErrorKind::Broker => "broker error",
            ErrorKind::UnknownTopic => "unknown topic",
            ErrorKind::MessageTooLarge => "message too large",
            ErrorKind::Serialization => "serialization error",
            ErrorKind::Decode => "decode error",
            ErrorKind::QueueFull => "queue full",
            ErrorKind::Closed => "closed",
            ErrorKind::WorkerStopped => "worker thread stopped",
            ErrorKind::UnsupportedBroker => "unsupported broker",
            ErrorKind::Io => "file error",
            ErrorKind::Authentication => "authentication failed",
        };
        f.write_str(name)
    }
}

/// Where an error happened: whichever of these are known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    /// The topic involved.
    pub topic: Option<String>,
    /// The partition involved.
    pub partition: Option<i32>,
    /// The broker address involved (`host:port`).
    pub broker: Option<String>,
    /// The configuration field at fault (for [`ErrorKind::Config`]).
    pub field: Option<&'static str>,
    /// The offending value, as text.
    pub value: Option<String>,
    /// Kafka's numeric error code, when a broker answered with one (`Errors.java`
    /// numbering: 6 is `NOT_LEADER_OR_FOLLOWER`, 10 `MESSAGE_TOO_LARGE`, …).
    pub broker_code: Option<i16>,
}

/// The crate's error: a kind, a human sentence, its context and an optional cause.
///
/// One pointer wide, so `Result<T, Error>` stays small on the hot path.
#[derive(Debug)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    context: ErrorContext,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a sentence saying what happened.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                context: ErrorContext::default(),
                source: None,
            }),
        }
    }

    /// A configuration error naming the field and the rejected value.
    pub fn config(field: &'static str, value: impl fmt::Display, why: impl Into<String>) -> Self {
        let value = value.to_string();
        let mut e = Error::new(
            ErrorKind::Config,
            format!("config field `{field}` = {value:?}: {}", why.into()),
        );
        e.inner.context.field = Some(field);
        e.inner.context.value = Some(value);
        e
    }

    /// A timeout error for an operation bounded by `bound`.
    pub fn timeout(what: impl fmt::Display, bound: Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            format!("{what} did not finish within {bound:?}"),
        )
    }

    /// Adds the topic to the context.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.inner.context.topic = Some(topic.into());
        self
    }

    /// Adds the partition to the context.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.inner.context.partition = Some(partition);
        self
    }

    /// Adds the broker address to the context.
    pub fn with_broker(mut self, broker: impl Into<String>) -> Self {
        self.inner.context.broker = Some(broker.into());
        self
    }

    /// Records the error code the broker answered with.
    pub fn with_broker_code(mut self, code: i16) -> Self {
        self.inner.context.broker_code = Some(code);
        self
    }

    /// Kafka's numeric error code where a broker sent one (the same on every network
    /// transport), e.g. `Some(10)` for a record the broker found too large.
    pub fn broker_code(&self) -> Option<i16> {
        self.inner.context.broker_code
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The sentence describing the failure, without context.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Where the failure happened.
    pub fn context(&self) -> &ErrorContext {
        &self.inner.context
    }

    /// Whether trying again later may succeed.
    pub fn is_retriable(&self) -> bool {
        self.inner.kind.is_retriable()
    }

    /// The error and all its causes as one line of text, outermost first.
    pub fn chain_text(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// A copy of this error without its source (sources are not `Clone`); the source's
    /// text is kept in the message so nothing is lost.
    pub fn detached(&self) -> Error {
        let i = &self.inner;
        Error {
            inner: Box::new(Inner {
                kind: i.kind,
                message: match &i.source {
                    Some(s) => format!("{}: {s}", i.message),
                    None => i.message.clone(),
                },
                context: i.context.clone(),
                source: None,
            }),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)?;
        let c = &self.inner.context;
        if let Some(t) = &c.topic {
            write!(f, " (topic {t}")?;
            if let Some(p) = c.partition {
                write!(f, ", partition {p}")?;
            }
            f.write_str(")")?;
        }
        if let Some(b) = &c.broker {
            write!(f, " (broker {b})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        let kind = if e.is_io() {
            ErrorKind::Serialization
        } else {
            ErrorKind::Decode
        };
        Error::new(kind, e.to_string())
    }
}

/// A failed call that took a message by value hands it back with the reason.
#[derive(Debug)]
pub struct SendError {
    /// Why the message was not delivered.
    pub error: Error,
    /// The message, returned to the caller untouched.
    pub message: Box<KafkaMessage>,
}

impl SendError {
    /// Pairs an error with the message it concerns.
    pub fn new(error: Error, message: KafkaMessage) -> Self {
        SendError {
            error,
            message: Box::new(message),
        }
    }

    /// The kind of the underlying error.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// Takes the message back.
    pub fn into_message(self) -> KafkaMessage {
        *self.message
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message {} not sent: {}", self.message.id, self.error)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The text of a caught panic's payload (`panic!("…")` gives a `&str` or a `String`), for
/// logs and errors: the one place a panic payload becomes words.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_names_field_and_value() {
        let e = Error::config("producer.batch_size", 0, "must be at least 1");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("producer.batch_size"));
        assert!(e.to_string().contains("\"0\""));
        assert_eq!(e.context().field, Some("producer.batch_size"));
        assert!(!e.is_retriable());
    }

    #[test]
    fn connection_and_timeout_are_retriable_and_context_is_shown() {
        let e = Error::new(ErrorKind::Connection, "refused")
            .with_topic("t")
            .with_partition(2)
            .with_broker("127.0.0.1:1");
        assert!(e.is_retriable());
        assert_eq!(
            e.to_string(),
            "connection error: refused (topic t, partition 2) (broker 127.0.0.1:1)"
        );
        assert!(Error::timeout("flush", Duration::from_secs(1)).is_retriable());
    }

    #[test]
    fn chain_text_includes_causes() {
        let io = std::io::Error::other("boom");
        let e = Error::new(ErrorKind::Connection, "send failed").with_source(io);
        assert_eq!(e.chain_text(), "connection error: send failed: boom");
        assert_eq!(e.detached().message(), "send failed: boom");
    }
}
