//! The handler registry: one entry per [`MessageType`], built from a plain
//! [`MessageHandler`], from a typed closure that decodes the payload first, or from a
//! handler that takes batches (first attempts in batches, retries one by one).

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::domain::{HandlerError, HandlerResult, KafkaMessage, MessageHandler, MessageType};

/// Why an invocation did not succeed, before panics and timeouts are considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The handler's own error.
    Handler(HandlerError),
    /// The payload did not decode into the typed handler's type (never retried).
    Decode(String),
}

/// A registered handler, ready to be called on any thread.
pub(crate) type Invoker = Arc<dyn Fn(&KafkaMessage) -> Result<(), Failure> + Send + Sync>;

/// A batch handler, ready to be called on any thread: one result per message, in order.
pub(crate) type BatchInvoker = Arc<dyn Fn(&[KafkaMessage]) -> Vec<HandlerResult> + Send + Sync>;

/// What is registered for one message type.
#[derive(Clone)]
pub(crate) struct Entry {
    /// Handles one message (every attempt of an unbatched handler; retries of a batched one).
    pub(crate) single: Invoker,
    /// First attempts of up to `.1` consecutive messages at once.
    pub(crate) batch: Option<(BatchInvoker, usize)>,
}

/// Handlers by message type.
#[derive(Default)]
pub(crate) struct Registry {
    handlers: HashMap<MessageType, Entry>,
}

impl Registry {
    /// Registers `entry` for `message_type`, replacing (and logging) any earlier one.
    pub(crate) fn insert(&mut self, message_type: MessageType, entry: Entry) {
        if self.handlers.insert(message_type.clone(), entry).is_some() {
            log::warn!("handler for message type `{message_type}` replaced");
        }
    }

    /// The handler for `message_type`, if any.
    pub(crate) fn get(&self, message_type: &MessageType) -> Option<Entry> {
        self.handlers.get(message_type).cloned()
    }

    /// The registered types, sorted.
    pub(crate) fn types(&self) -> Vec<MessageType> {
        let mut types: Vec<_> = self.handlers.keys().cloned().collect();
        types.sort();
        types
    }
}

/// Wraps a plain handler.
pub(crate) fn plain(handler: impl MessageHandler + 'static) -> Invoker {
    Arc::new(move |message: &KafkaMessage| handler.handle(message).map_err(Failure::Handler))
}

/// An entry for a plain handler.
pub(crate) fn single(invoker: Invoker) -> Entry {
    Entry {
        single: invoker,
        batch: None,
    }
}

/// An entry whose first attempts go through `handler.handle_batch`, `max` messages at most.
pub(crate) fn batched(handler: impl MessageHandler + 'static, max: usize) -> Entry {
    let handler = Arc::new(handler);
    let one = handler.clone();
    Entry {
        single: Arc::new(move |m: &KafkaMessage| one.handle(m).map_err(Failure::Handler)),
        batch: Some((
            Arc::new(move |ms: &[KafkaMessage]| handler.handle_batch(ms)),
            max.max(1),
        )),
    }
}

/// Wraps a typed handler: the payload is decoded into `T` first; a payload that does not
/// decode is a [`Failure::Decode`].
pub(crate) fn typed<T, F>(handler: F) -> Invoker
where
    T: DeserializeOwned + 'static,
    F: Fn(&KafkaMessage, T) -> HandlerResult + Send + Sync + 'static,
{
    Arc::new(move |message: &KafkaMessage| {
        let payload: T = message
            .payload_as()
            .map_err(|e| Failure::Decode(e.to_string()))?;
        handler(message, payload).map_err(Failure::Handler)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScrapingTask;

    #[test]
    fn typed_handlers_decode_first_and_report_decode_failures() {
        let invoker = typed(|_m: &KafkaMessage, task: ScrapingTask| {
            if task.url.is_empty() {
                Err(HandlerError::permanent("empty url"))
            } else {
                Ok(())
            }
        });
        let good = KafkaMessage::new(MessageType::SCRAPING_TASK, &ScrapingTask::new("u")).unwrap();
        assert_eq!(invoker(&good), Ok(()));
        let empty = KafkaMessage::new(MessageType::SCRAPING_TASK, &ScrapingTask::new("")).unwrap();
        assert!(matches!(
            invoker(&empty),
            Err(Failure::Handler(HandlerError::Permanent(_)))
        ));
        let wrong = KafkaMessage::from_json(MessageType::SCRAPING_TASK, serde_json::json!([1]));
        match invoker(&wrong) {
            Err(Failure::Decode(text)) => assert!(text.contains("ScrapingTask"), "{text}"),
            other => panic!("expected a decode failure, got {other:?}"),
        }
    }

    #[test]
    fn registering_twice_replaces() {
        let mut r = Registry::default();
        r.insert(
            MessageType::new("a"),
            single(plain(|_: &KafkaMessage| Ok(()))),
        );
        r.insert(
            MessageType::new("a"),
            batched(|_: &KafkaMessage| Err(HandlerError::permanent("x")), 0),
        );
        let m = KafkaMessage::from_json(MessageType::new("a"), serde_json::Value::Null);
        let entry = r.get(&MessageType::new("a")).unwrap();
        assert!((entry.single)(&m).is_err());
        let (batch, max) = entry.batch.unwrap();
        assert_eq!(max, 1, "a batch holds at least one message");
        assert_eq!(batch(&[m.clone(), m]).len(), 2);
        assert!(r.get(&MessageType::new("b")).is_none());
        assert_eq!(r.types(), vec![MessageType::new("a")]);
    }
}
