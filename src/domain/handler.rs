//! The [`MessageHandler`] trait the consumer runs for each message.

use std::fmt;

use crate::domain::KafkaMessage;

/// Why a handler did not handle a message; decides what the consumer does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// May succeed later (a timeout, a busy dependency): retried with backoff, then parked
    /// on the retry topic, then dead-lettered.
    Retriable(String),
    /// Will never succeed (invalid content): dead-lettered at once.
    Permanent(String),
}

impl HandlerError {
    /// A retriable failure with a reason.
    pub fn retriable(reason: impl fmt::Display) -> Self {
        HandlerError::Retriable(reason.to_string())
    }

    /// A permanent failure with a reason.
    pub fn permanent(reason: impl fmt::Display) -> Self {
        HandlerError::Permanent(reason.to_string())
    }

    /// Whether the consumer should try again.
    pub fn is_retriable(&self) -> bool {
        matches!(self, HandlerError::Retriable(_))
    }

    /// The reason given by the handler.
    pub fn reason(&self) -> &str {
        match self {
            HandlerError::Retriable(r) | HandlerError::Permanent(r) => r,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Retriable(r) => write!(f, "retriable: {r}"),
            HandlerError::Permanent(r) => write!(f, "permanent: {r}"),
        }
    }
}

impl std::error::Error for HandlerError {}

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;

/// Handles messages of one type. Any `Fn(&KafkaMessage) -> HandlerResult` closure that is
/// `Send + Sync` is a handler.
///
/// ```
/// use kafka_sync::domain::{HandlerError, KafkaMessage, MessageHandler};
///
/// let handler = |msg: &KafkaMessage| {
///     if msg.payload.is_null() {
///         return Err(HandlerError::permanent("empty payload"));
///     }
///     Ok(())
/// };
/// let msg = KafkaMessage::from_json("custom".into(), serde_json::json!({"x": 1}));
/// assert!(handler.handle(&msg).is_ok());
/// ```
pub trait MessageHandler: Send + Sync {
    /// Handles one message.
    fn handle(&self, message: &KafkaMessage) -> HandlerResult;

    /// Handles several messages at once, one result per message in order. The default
    /// calls [`handle`](Self::handle) for each; override it to batch work.
    fn handle_batch(&self, messages: &[KafkaMessage]) -> Vec<HandlerResult> {
        messages.iter().map(|m| self.handle(m)).collect()
    }
}

impl<F> MessageHandler for F
where
    F: Fn(&KafkaMessage) -> HandlerResult + Send + Sync,
{
    fn handle(&self, message: &KafkaMessage) -> HandlerResult {
        self(message)
    }
}
