//! The blocking consumer: a thread per topic, handlers by message type, retries that never
//! hold up the healthy messages, the retry topic, dead letters, commits that never pass a
//! message that has not ended.
//!
//! ```text
//!  Consumer::consume(["scraping-tasks"])   (+ "retry" when consumer.retry_topic_enabled)
//!        │ subscribe group+topic (Transport::subscribe), one named thread per topic
//!        ▼
//!  kafka-consumer-<topic>: poll ─▶ backlog (per partition) ─▶ one record at a time:
//!        decode envelope ── bad bytes ─────────────────────────────▶ dead-letter (decode)
//!        retry entry? other group or topic (header) ─▶ skip; own, not due ─▶ set aside
//!        duplicate id (IdempotencyStore) ─────────────────────────▶ skip, count
//!        handler by type ── none ─────────────────────────────────▶ dead-letter / skip
//!        run handler inline (panic caught; the watchdog watches the time)
//!           Ok ─▶ handled │ permanent ─▶ dead-letter │ retriable ─▶ waiting room:
//!           the next records go on; its key's later records queue behind it;
//!           attempt again after the backoff; in-place budget used up ─▶ retry topic
//!        ▼ ended (handled / written to the retry or dead-letter topic / skipped)
//!  OffsetTracker ─▶ Subscription::commit (every commit_interval; never past a pending one)
//! ```
//!
//! At-least-once: an offset is committed only once its message ended. The idempotency
//! store skips ids this process handled already (the README's "What holds, exactly" says
//! what it does not cover: other members, restarts, the crash window).
//!
//! Design notes (the README has the reasons and the outcome table):
//! - **Failures never wait on the thread's time.** A retriable failure puts the message in
//!   the thread's waiting room with its next attempt due after the backoff; the thread goes
//!   on with the other records (and partitions). Retry entries and dead letters are queued
//!   in an outbox and written in batches before each commit. A retry entry not yet due
//!   is set aside until its time (bounded); its partition goes on.
//! - **Handler timeout.** Handlers run inline on the consumer thread, so a message is never
//!   handled by two calls at once in one member (after an eviction the partition's next
//!   owner can, while the stuck call runs) and the thread count is fixed. The watchdog
//!   (`kafka-watchdog-<group>`) marks a thread whose call runs past `handler_timeout` (or
//!   that has not polled within `max_poll_interval`) stuck: an error log line with the
//!   message id, [`ThreadHealth::stuck`], and its member leaves the group so the partitions
//!   move. The call's late result counts when it returns.
//! - **Commits.** Each polled offset is tracked as pending until its message ends; the commit
//!   position of a partition is its lowest pending offset (or one past the highest ended),
//!   so a commit never passes a message that has not ended.
//! - **Stopping.** A stop request is seen between records and within a poll (at most
//!   250 ms). The message in hand is finished; messages in the waiting room are parked on
//!   the retry topic if that is on, else left uncommitted for the group to read again.
//!
//! ```
//! use std::time::Duration;
//! use kafka_sync::domain::{HandlerError, KafkaMessage, MessageType, ScrapingTask};
//! use kafka_sync::Kafka;
//! use kafka_sync::transport::MemoryTransport;
//! use std::sync::Arc;
//!
//! let broker = Arc::new(MemoryTransport::new());
//! let kafka = Kafka::with_transport(kafka_sync::Config::in_memory(), broker.clone()).unwrap();
//! let task = KafkaMessage::new(MessageType::SCRAPING_TASK, &ScrapingTask::new("https://a.b")).unwrap();
//! kafka.producer().send("scraping-tasks", &task).unwrap();
//!
//! let consumer = kafka.consumer().unwrap();
//! consumer.register_typed(MessageType::SCRAPING_TASK, |_msg: &KafkaMessage, task: ScrapingTask| {
//!     if task.url.is_empty() {
//!         return Err(HandlerError::permanent("no url"));
//!     }
//!     Ok(())
//! });
//! let handle = consumer.consume(["scraping-tasks"]).unwrap();
//! while handle.metrics().iter().map(|m| m.handled).sum::<u64>() < 1 {
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//! consumer.close(Duration::from_secs(5)).unwrap();
//! assert_eq!(broker.committed("kafka-sync", "scraping-tasks", 0).unwrap_or(0)
//!     + broker.committed("kafka-sync", "scraping-tasks", 1).unwrap_or(0)
//!     + broker.committed("kafka-sync", "scraping-tasks", 2).unwrap_or(0), 1);
//! ```

mod backlog;
mod dedupe;
mod dedupe_file;
mod dispatch;
mod divert;
mod health;
mod invoke;
mod metrics;
mod offsets;
mod outbox;
mod process;
mod records;
mod registry;
mod routing;
mod runner;
mod shared;
mod stop;
mod waiting;
mod watchdog;
mod wrapper;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::domain::{HandlerResult, KafkaMessage, MessageHandler, MessageType};
use crate::error::Result;
use crate::transport::Transport;
pub(crate) use shared::Shared;

pub use dedupe::{IdempotencyStore, MemoryIdempotencyStore};
pub use dedupe_file::FileIdempotencyStore;
pub use divert::headers;
pub use health::{ConsumerHealth, RunningCall, ThreadHealth};
pub use metrics::ConsumerTopicMetrics;
pub use records::{DeadLetterKind, DeadLetterRecord, Origin, RawBytes, RetryRecord};
pub use wrapper::KafkaConsumerWrapper;

/// Consumes topics with a thread per topic and runs the handler registered for each
/// message's type; the README's table "What happens to each consumed message" says how each
/// message ends.
///
/// Get one from [`Kafka::consumer`](crate::Kafka::consumer), register handlers, then
/// [`consume`](Self::consume). [`close`](Self::close) (or dropping the consumer, bounded by
/// `consumer.shutdown_timeout`, or [`Kafka::close`](crate::Kafka::close)) stops gracefully:
/// each thread finishes the message in hand, commits, and leaves the group.
pub struct Consumer {
    shared: Arc<Shared>,
}

/// A cheap, cloneable handle on a consumer's threads, returned by
/// [`Consumer::consume`]: wait for them, read their metrics and health from any thread.
/// The threads belong to the [`Consumer`]: closing or dropping it stops them.
#[derive(Clone)]
pub struct ConsumerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.shared.config.group_id)
            .field("transport", &self.shared.transport.name())
            .field("running", &self.shared.is_running())
            .finish()
    }
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("group_id", &self.shared.config.group_id)
            .field("running", &self.shared.is_running())
            .finish()
    }
}

impl Consumer {
    /// A consumer over `transport`, with the default [`MemoryIdempotencyStore`] sized by
    /// `consumer.dedupe_capacity` and `consumer.dedupe_max_age`. Fails if `config` is
    /// invalid.
    pub(crate) fn new(config: Config, transport: Arc<dyn Transport>) -> Result<Self> {
        config.validate()?;
        let store = Arc::new(MemoryIdempotencyStore::new(
            config.consumer.dedupe_capacity,
            config.consumer.dedupe_max_age,
        ));
        Ok(Consumer {
            shared: Arc::new(Shared::new(config, transport, store)?),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Replaces the idempotency store; threads started by later `consume` calls use it.
    pub fn set_idempotency_store(&self, store: Arc<dyn IdempotencyStore>) {
        *self.shared.store.write().unwrap_or_else(|e| e.into_inner()) = store;
    }

    /// Registers `handler` for messages of `message_type` (a closure
    /// `Fn(&KafkaMessage) -> HandlerResult` or any [`MessageHandler`]), replacing any
    /// earlier one. May be called while consuming.
    pub fn register_handler(
        &self,
        message_type: impl Into<MessageType>,
        handler: impl MessageHandler + 'static,
    ) {
        self.register(
            message_type.into(),
            registry::single(registry::plain(handler)),
        );
    }

    /// Registers a handler that takes batches: the first attempt of up to `max_batch`
    /// consecutive messages of `message_type` from one poll goes through
    /// [`MessageHandler::handle_batch`] (one result per message); a message that failed is
    /// then retried on its own through [`MessageHandler::handle`], by the same rules as any
    /// other. A panic or timeout of the batch call counts for every message in it.
    pub fn register_batch_handler(
        &self,
        message_type: impl Into<MessageType>,
        handler: impl MessageHandler + 'static,
        max_batch: usize,
    ) {
        self.register(message_type.into(), registry::batched(handler, max_batch));
    }

    /// Registers a handler that receives the payload decoded into `T`. A payload that does
    /// not decode is dead-lettered with kind [`DeadLetterKind::Decode`] (never retried).
    pub fn register_typed<T, F>(&self, message_type: impl Into<MessageType>, handler: F)
    where
        T: DeserializeOwned + 'static,
        F: Fn(&KafkaMessage, T) -> HandlerResult + Send + Sync + 'static,
    {
        self.register(
            message_type.into(),
            registry::single(registry::typed(handler)),
        );
    }

    /// Registers the handler of the dead-letter topic's records (`consumer.dead_letter_topic`):
    /// the only way to consume that topic (`consume` refuses it otherwise, so records
    /// without a handler are never dead-lettered into the topic they came from). Each
    /// record is read back with [`DeadLetterRecord::from_record`] (either form) and given to
    /// `handler`; a retriable error or panic is retried in place per `consumer.retry` on
    /// that topic's own thread; a record that still fails, or does not read back as a dead
    /// letter, is logged at error and skipped. It is never written back to the dead-letter
    /// topic, nor to the retry topic.
    pub fn register_dead_letter_handler<F>(&self, handler: F)
    where
        F: Fn(&DeadLetterRecord) -> HandlerResult + Send + Sync + 'static,
    {
        *self
            .shared
            .dead_letter_handler
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
    }

    fn register(&self, message_type: MessageType, entry: registry::Entry) {
        self.shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(message_type, entry);
    }

    /// Joins the group on each topic and starts its thread `kafka-consumer-<topic>`;
    /// returns at once. With `consumer.retry_topic_enabled` the retry topic is read too,
    /// under a retry group of this consumer's own derived from its topics
    /// ([`ConsumerConfig::retry_group_of`](crate::ConsumerConfig::retry_group_of)), so give
    /// every topic in one call. Fails (starting nothing) for an invalid or already consumed
    /// topic, a topic added once the retry topic is read, or a failed subscription, and with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) after a shutdown.
    pub fn consume<I, S>(&self, topics: I) -> Result<ConsumerHandle>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        self.shared.start(&topics)?;
        Ok(self.handle())
    }

    /// A handle on this consumer's threads.
    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops every thread: each finishes the message in hand (a message waiting for a
    /// retry backoff or a due time is left uncommitted, or parked on the retry topic if
    /// that is on), commits what ended and leaves the group. Returns within `timeout`:
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if a thread is still busy then
    /// (it stops on its own later; [`ConsumerHandle::wait`] joins it). Calling it again
    /// does nothing.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        self.shared.shutdown(timeout)
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    pub(crate) fn close_shared(shared: &Arc<Shared>, timeout: Duration) -> Result<()> {
        shared.shutdown(timeout)
    }

    pub(crate) fn health_of(shared: &Arc<Shared>) -> ConsumerHealth {
        shared.health()
    }

    /// See [`ConsumerHandle::metrics`].
    pub fn metrics(&self) -> Vec<ConsumerTopicMetrics> {
        self.shared.metrics()
    }

    /// See [`ConsumerHandle::health`].
    pub fn health(&self) -> ConsumerHealth {
        self.shared.health()
    }
}

impl ConsumerHandle {
    /// Blocks until every thread stopped (after a close from another thread). Not
    /// bounded; see [`wait_timeout`](Self::wait_timeout).
    pub fn wait(&self) {
        self.shared.wait(None);
    }

    /// Like [`wait`](Self::wait), for at most `timeout`; returns whether all stopped.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.shared.wait(Some(timeout))
    }

    /// Whether any consumer thread is running.
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// A snapshot of each topic's counters, sorted by topic.
    pub fn metrics(&self) -> Vec<ConsumerTopicMetrics> {
        self.shared.metrics()
    }

    /// Threads alive, age of each one's last successful poll, and whether a broker answers
    /// a metadata request within `connect_timeout`.
    pub fn health(&self) -> ConsumerHealth {
        self.shared.health()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.shared.is_running() {
            if let Err(e) = self
                .shared
                .shutdown(self.shared.config.consumer.shutdown_timeout)
            {
                log::error!("stopping the consumer on drop: {e}");
            }
        } else {
            self.shared.stop.stop();
        }
    }
}
