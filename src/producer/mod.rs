//! The blocking producer: a writer thread per topic, batching, acknowledgements, retries.
//!
//! ```text
//!  send / send_batch / send_async / try_send
//!        │  encode the envelope (errors return here), choose the writer
//!        ▼
//!  kafka-writer-<topic>  (one thread per topic, started on first use)
//!        │  accumulator: a batch per partition, by count, bytes and time; ready at once
//!        │  when a caller waits; a partition backing off waits alone
//!        ▼
//!  Transport::produce (one round: a batch per ready partition, a request per leader)
//!        │  retriable errors: that partition backs off, retried until delivery_timeout;
//!        │  too large: split and retry; expired: Timeout (a sent batch as a whole), never sent
//!        ▼  partition and offset (or the error) back to each caller
//! ```
//!
//! ```
//! use kafka_sync::domain::{KafkaMessage, MessageType};
//! use kafka_sync::Kafka;
//!
//! let kafka = Kafka::in_memory().unwrap();
//! let producer = kafka.producer();
//! let msg = KafkaMessage::from_json(MessageType::new("greeting"), serde_json::json!("hi"));
//! let delivery = producer.send("greetings", &msg).unwrap();
//! assert_eq!(delivery.offset, 0);
//! producer.close().unwrap();
//! ```

mod accumulator;
mod budget;
mod delivery;
mod health;
mod metrics;
mod partition_queue;
mod reply;
mod ship;
mod wrapper;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};

use crate::config::{validate_topic_name, Config};
use crate::domain::{Delivery, KafkaMessage};
use crate::error::{Error, ErrorKind, Result, SendError};
use crate::transport::Transport;
use delivery::{wait_reply, writer_gone, QueuedRecord, WriterCommand, REPLY_MARGIN};
use reply::{NoReply, ReplyTo};
use writer::{WriterHandle, WriterLane};

pub use delivery::DeliveryHandle;
pub use health::ProducerHealth;
pub use metrics::ProducerTopicMetrics;
pub use wrapper::KafkaProducerWrapper;

/// Sends messages to Kafka with blocking calls; share it between threads behind an `Arc`.
///
/// Each topic gets a writer thread (`kafka-writer-<topic>`) on first use, fed by a bounded
/// queue. [`close`](Self::close) (or `Drop`) delivers what is queued and joins every writer.
pub struct Producer {
    config: Config,
    transport: Arc<dyn Transport>,
    writers: Mutex<HashMap<String, WriterHandle>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("transport", &self.transport.name())
            .field("client_id", &self.config.client_id)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Producer {
    /// A producer over `transport`; fails if `config` is invalid. Users get theirs from
    /// [`Kafka::producer`](crate::Kafka::producer).
    pub(crate) fn new(config: Config, transport: Arc<dyn Transport>) -> Result<Self> {
        config.validate()?;
        Ok(Producer {
            config,
            transport,
            writers: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sends `message` to `topic` and blocks until the broker acknowledged it (with
    /// `acks` from the config), returning its partition and offset. Blocks while the
    /// topic's queue is full, up to `enqueue_timeout`; the whole call is bounded by
    /// `delivery_timeout`.
    pub fn send(&self, topic: &str, message: &KafkaMessage) -> Result<Delivery> {
        let deadline = Instant::now() + self.config.producer.delivery_timeout;
        let (tx, rx) = reply::inbox();
        let record = self.encode(topic, message, true, tx, 0, deadline)?;
        log::debug!(
            "sending message {} (correlation {}) to {topic}",
            message.id,
            message.correlation_id
        );
        let lane = self.writer_for(topic)?;
        if let Some(record) = lane.ship_now(record) {
            self.enqueue_on(&lane, topic, record)?;
        }
        let bound = (deadline + REPLY_MARGIN).saturating_duration_since(Instant::now());
        wait_reply(&rx, topic, bound)
    }

    /// Sends every message and blocks until all are answered: one result per message, in
    /// order. Failed messages come back inside their [`SendError`].
    pub fn send_batch(
        &self,
        topic: &str,
        messages: Vec<KafkaMessage>,
    ) -> Vec<Result<Delivery, SendError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + self.config.producer.delivery_timeout;
        let (tx, rx) = reply::inbox();
        let mut results: Vec<Option<Result<Delivery>>> = Vec::with_capacity(messages.len());
        let mut expected = 0;
        let last = messages.len() - 1;
        // The writer is looked up once for the whole batch, not once per message.
        let lane = self.writer_for(topic);
        for (i, message) in messages.iter().enumerate() {
            // Only the last record marks a waiting caller: the batch fills without lingering.
            let queued = lane.as_ref().map_err(Error::detached).and_then(|lane| {
                let record = self.encode(topic, message, i == last, tx.clone(), i, deadline)?;
                self.enqueue_on(lane, topic, record)
            });
            match queued {
                Ok(()) => {
                    results.push(None);
                    expected += 1;
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        drop(tx);
        while expected > 0 {
            let bound = (deadline + REPLY_MARGIN).saturating_duration_since(Instant::now());
            match rx.take(bound) {
                Ok(reply) => {
                    for (i, result) in reply {
                        results[i] = Some(result);
                        expected -= 1;
                    }
                }
                Err(e) => {
                    let error = if e == NoReply::Timeout {
                        Error::timeout("waiting for the batch's acknowledgements", bound)
                    } else {
                        writer_gone(topic)
                    };
                    for slot in results.iter_mut().filter(|r| r.is_none()) {
                        *slot = Some(Err(error.detached()));
                    }
                    break;
                }
            }
        }
        messages
            .into_iter()
            .zip(results)
            .map(
                |(message, result)| match result.expect("every slot is answered") {
                    Ok(d) => Ok(d),
                    Err(e) => Err(SendError::new(e, message)),
                },
            )
            .collect()
    }

    /// Queues `message` (blocking while the queue is full, up to `enqueue_timeout`) and
    /// returns at once with a handle to wait on. The message lingers up to `batch_timeout`
    /// so that many such sends share a batch.
    pub fn send_async(
        &self,
        topic: &str,
        message: KafkaMessage,
    ) -> Result<DeliveryHandle, SendError> {
        self.queue_owned(topic, message, false)
    }

    /// Like [`send_async`](Self::send_async), but never blocks: a full queue gives
    /// [`ErrorKind::QueueFull`] with the message back.
    pub fn try_send(
        &self,
        topic: &str,
        message: KafkaMessage,
    ) -> Result<DeliveryHandle, SendError> {
        self.queue_owned(topic, message, true)
    }

    /// Blocks until everything queued before this call was answered, bounded by
    /// `delivery_timeout`.
    pub fn flush(&self) -> Result<()> {
        let bound = self.config.producer.delivery_timeout;
        let deadline = Instant::now() + bound;
        let senders: Vec<(String, Sender<WriterCommand>)> = self
            .lock_writers()
            .iter()
            .map(|(t, w)| (t.clone(), w.sender.clone()))
            .collect();
        let mut waits = Vec::new();
        for (topic, sender) in senders {
            let (done, rx) = crossbeam_channel::bounded(1);
            let left = deadline.saturating_duration_since(Instant::now());
            match sender.send_timeout(WriterCommand::Flush(done), left) {
                Ok(()) => waits.push((topic, rx)),
                Err(SendTimeoutError::Timeout(_)) => {
                    return Err(Error::timeout("flush", bound).with_topic(topic))
                }
                Err(SendTimeoutError::Disconnected(_)) => return Err(writer_gone(&topic)),
            }
        }
        for (topic, rx) in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left).map_err(|e| {
                if e.is_timeout() {
                    Error::timeout("flush", bound).with_topic(topic.as_str())
                } else {
                    writer_gone(&topic)
                }
            })?;
        }
        Ok(())
    }

    /// Stops accepting sends, delivers everything queued and joins every writer thread,
    /// bounded by `delivery_timeout`. Calling it again does nothing.
    pub fn close(&self) -> Result<()> {
        self.close_within(self.config.producer.delivery_timeout)
    }

    /// Like [`close`](Self::close), bounded by `timeout` instead (a writer still busy then
    /// is reported as [`ErrorKind::Timeout`] and stops on its own later).
    pub fn close_within(&self, timeout: std::time::Duration) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        let writers: Vec<(String, WriterHandle)> = self.lock_writers().drain().collect();
        let deadline = Instant::now() + timeout;
        let mut first_error = None;
        for (topic, writer) in writers {
            let WriterHandle {
                sender,
                thread,
                finished,
                ..
            } = writer;
            drop(sender);
            let left = deadline.saturating_duration_since(Instant::now());
            if finished.recv_timeout(left).is_ok() || thread.is_finished() {
                let _ = thread.join();
            } else {
                log::error!("writer for topic {topic} did not stop within {timeout:?}");
                first_error.get_or_insert(Error::timeout(
                    format!("closing the writer thread kafka-writer-{topic}"),
                    timeout,
                ));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Broker reachability (a metadata round trip within `connect_timeout`) and writer
    /// threads' liveness.
    pub fn health(&self) -> ProducerHealth {
        let check = self.transport.health_check(self.config.connect_timeout);
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        for (topic, w) in self.lock_writers().iter() {
            if w.is_alive() {
                live.push(topic.clone());
            } else {
                dead.push(topic.clone());
            }
        }
        live.sort();
        dead.sort();
        ProducerHealth {
            broker_reachable: check.is_ok(),
            broker_error: check.err().map(|e| e.to_string()),
            live_writers: live,
            dead_writers: dead,
        }
    }

    /// A snapshot of every topic's counters, sorted by topic.
    pub fn metrics(&self) -> Vec<ProducerTopicMetrics> {
        let mut all: Vec<_> = self
            .lock_writers()
            .iter()
            .map(|(t, w)| w.metrics.snapshot(t))
            .collect();
        all.sort_by(|a, b| a.topic.cmp(&b.topic));
        all
    }

    /// Messages queued per topic and not yet taken by the topic's writer thread (the
    /// writer's batch in flight not included), sorted by topic.
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        let mut all: Vec<(String, usize)> = self
            .lock_writers()
            .iter()
            .map(|(t, w)| (t.clone(), w.sender.len()))
            .collect();
        all.sort();
        all
    }

    fn queue_owned(
        &self,
        topic: &str,
        message: KafkaMessage,
        never_block: bool,
    ) -> Result<DeliveryHandle, SendError> {
        let (tx, rx) = reply::inbox();
        let deadline = Instant::now() + self.config.producer.delivery_timeout;
        let queued = self.writer_for(topic).and_then(|lane| {
            let record = self.encode(topic, &message, false, tx, 0, deadline)?;
            if never_block {
                self.try_enqueue_on(&lane, topic, record)?;
            } else {
                self.enqueue_on(&lane, topic, record)?;
            }
            Ok(lane.topic)
        });
        match queued {
            Ok(name) => Ok(DeliveryHandle::new(rx, message, name, deadline)),
            Err(e) => Err(SendError::new(e, message)),
        }
    }

    fn encode(
        &self,
        topic: &str,
        message: &KafkaMessage,
        caller_waiting: bool,
        reply_to: ReplyTo,
        index: usize,
        deadline: Instant,
    ) -> Result<QueuedRecord> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Closed, "the producer is closed").with_topic(topic));
        }
        let max = self.config.producer.max_message_bytes;
        QueuedRecord::encode(message, max, caller_waiting, reply_to, index, deadline)
            .map_err(|e| e.with_topic(topic))
    }

    /// Puts a record on the queue of `lane`'s writer, waiting up to `enqueue_timeout` if it
    /// is full (`queue_capacity` messages or `buffer_bytes` bytes).
    fn enqueue_on(&self, lane: &WriterLane, topic: &str, record: QueuedRecord) -> Result<()> {
        let (sender, budget) = (&lane.sender, &lane.budget);
        let bound = self.config.producer.enqueue_timeout;
        let deadline = Instant::now() + bound;
        let size = record.size;
        if !budget.take(size, bound) {
            return Err(Error::timeout(
                format!(
                    "waiting for room in the writer queue (producer.buffer_bytes {} bytes)",
                    budget.limit()
                ),
                bound,
            )
            .with_topic(topic));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        lane.queued();
        sender
            .send_timeout(WriterCommand::Record(record), left)
            .map_err(|e| {
                lane.unqueued();
                budget.give(size);
                match e {
                    SendTimeoutError::Timeout(_) => {
                        Error::timeout("waiting for room in the writer queue", bound)
                            .with_topic(topic)
                    }
                    SendTimeoutError::Disconnected(_) => writer_gone(topic),
                }
            })
    }

    fn try_enqueue_on(&self, lane: &WriterLane, topic: &str, record: QueuedRecord) -> Result<()> {
        let (sender, budget) = (&lane.sender, &lane.budget);
        let size = record.size;
        if !budget.try_take(size) {
            return Err(Error::new(
                ErrorKind::QueueFull,
                format!(
                    "the writer queue is full: {} of producer.buffer_bytes ({}) bytes queued, \
                     this message is {size}",
                    budget.used(),
                    budget.limit()
                ),
            )
            .with_topic(topic));
        }
        lane.queued();
        sender.try_send(WriterCommand::Record(record)).map_err(|e| {
            lane.unqueued();
            budget.give(size);
            match e {
                TrySendError::Full(_) => Error::new(
                    ErrorKind::QueueFull,
                    format!(
                        "the writer queue is full ({} messages)",
                        self.config.producer.queue_capacity
                    ),
                )
                .with_topic(topic),
                TrySendError::Disconnected(_) => writer_gone(topic),
            }
        })
    }

    /// The way into `topic`'s writer, starting the writer (or restarting a dead one).
    fn writer_for(&self, topic: &str) -> Result<WriterLane> {
        let mut writers = self.lock_writers();
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Closed, "the producer is closed").with_topic(topic));
        }
        if let Some(w) = writers.get(topic) {
            if w.is_alive() {
                return Ok(w.lane());
            }
            log::warn!("writer thread for topic {topic} had stopped; starting a new one");
            if let Some(dead) = writers.remove(topic) {
                let _ = dead.thread.join();
            }
        }
        // Checked once per topic, when its writer starts: a topic with a writer is valid.
        validate_topic_name(topic)?;
        let w = WriterHandle::spawn(topic, &self.config, self.transport.clone())?;
        let lane = w.lane();
        writers.insert(topic.to_string(), w);
        Ok(lane)
    }

    fn lock_writers(&self) -> MutexGuard<'_, HashMap<String, WriterHandle>> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl crate::domain::KafkaProducer for Producer {
    fn send_message(&self, topic: &str, message: &KafkaMessage) -> Result<Delivery> {
        self.send(topic, message)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the producer on drop: {e}");
        }
    }
}
