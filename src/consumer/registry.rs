//! The handler registry: one invoker per [`MessageType`], built from a plain
//! [`MessageHandler`] or from a typed closure that decodes the payload first.

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

/// Handlers by message type.
#[derive(Default)]
pub(crate) struct Registry {
    handlers: HashMap<MessageType, Invoker>,
}

impl Registry {
    /// Registers `invoker` for `message_type`, replacing (and logging) any earlier one.
    pub(crate) fn insert(&mut self, message_type: MessageType, invoker: Invoker) {
        if self.handlers.insert(message_type.clone(), invoker).is_some() {
            log::warn!("handler for message type `{message_type}` replaced");
        }
    }

    /// The handler for `message_type`, if any.
    pub(crate) fn get(&self, message_type: &MessageType) -> Option<Invoker> {
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
        assert!(matches!(invoker(&empty), Err(Failure::Handler(HandlerError::Permanent(_)))));
        let wrong = KafkaMessage::from_json(MessageType::SCRAPING_TASK, serde_json::json!([1]));
        match invoker(&wrong) {
            Err(Failure::Decode(text)) => assert!(text.contains("ScrapingTask"), "{text}"),
            other => panic!("expected a decode failure, got {other:?}"),
        }
    }

    #[test]
    fn registering_twice_replaces() {
        let mut r = Registry::default();
        r.insert(MessageType::new("a"), plain(|_: &KafkaMessage| Ok(())));
        r.insert(
            MessageType::new("a"),
            plain(|_: &KafkaMessage| Err(HandlerError::permanent("x"))),
        );
        let m = KafkaMessage::from_json(MessageType::new("a"), serde_json::Value::Null);
        assert!(r.get(&MessageType::new("a")).unwrap()(&m).is_err());
        assert!(r.get(&MessageType::new("b")).is_none());
        assert_eq!(r.types(), vec![MessageType::new("a")]);
    }
}
