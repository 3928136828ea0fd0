//! The writer thread: one per topic, named `kafka-writer-<topic>`, fed by a bounded channel.
//!
//! ```text
//!  callers ──send──▶ [bounded queue] ──▶ writer: gather a batch ──▶ ship with retries ──▶ reply
//!                                          │ full (batch_size)            │
//!                                          │ linger ended (batch_timeout) │ one result per
//!                                          │ a caller waits & queue empty │ record, in order
//! ```
//!
//! A batch ships when it is full, when its linger ends, or at once when a synchronous caller
//! waits and nothing else is queued, so a lone caller never pays the batch timeout.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::delivery::{QueuedRecord, WriterCommand};
use super::metrics::WriterMetrics;
use crate::config::{Compression, Config};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{
    partition_for_key, OutgoingRecord, ProduceOptions, ProducerSession, Transport,
};

/// The caller's side of a writer thread.
pub(crate) struct WriterHandle {
    pub sender: Sender<WriterCommand>,
    pub metrics: Arc<WriterMetrics>,
    pub thread: JoinHandle<()>,
    /// Receives one unit when the thread has finished (for a bounded join).
    pub finished: Receiver<()>,
}

impl WriterHandle {
    /// Starts the writer thread for `topic`.
    pub fn spawn(topic: &str, config: &Config, transport: Arc<dyn Transport>) -> Result<Self> {
        let (sender, queue) = crossbeam_channel::bounded(config.producer.queue_capacity);
        let (done_tx, finished) = crossbeam_channel::bounded(1);
        let metrics = Arc::new(WriterMetrics::default());
        let writer = Writer {
            topic: topic.to_string(),
            config: config.clone(),
            transport,
            session: None,
            partitions: None,
            queue,
            metrics: metrics.clone(),
        };
        let name = format!("kafka-writer-{topic}");
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let topic = writer.topic.clone();
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| writer.run())) {
                    let why = panic_text(&panic);
                    log::error!("writer thread for topic {topic} panicked: {why}; queued messages get a worker-stopped error");
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| {
                Error::new(ErrorKind::WorkerStopped, format!("cannot start thread {name}: {e}"))
                    .with_topic(topic)
            })?;
        Ok(WriterHandle {
            sender,
            metrics,
            thread,
            finished,
        })
    }

    /// Whether the thread is still running.
    pub fn is_alive(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic payload".to_string()
    }
}

/// The state a writer thread owns.
struct Writer {
    topic: String,
    config: Config,
    transport: Arc<dyn Transport>,
    session: Option<Box<dyn ProducerSession>>,
    partitions: Option<usize>,
    queue: Receiver<WriterCommand>,
    metrics: Arc<WriterMetrics>,
}

/// A batch being gathered.
#[derive(Default)]
struct Batch {
    records: Vec<QueuedRecord>,
    flushes: Vec<Sender<()>>,
    caller_waiting: bool,
}

impl Batch {
    fn take(&mut self, command: WriterCommand) {
        match command {
            WriterCommand::Record(r) => {
                self.caller_waiting |= r.caller_waiting;
                self.records.push(r);
            }
            WriterCommand::Flush(done) => self.flushes.push(done),
        }
    }

    /// Ship now rather than linger: a caller blocks on a record, or someone flushes.
    fn urgent(&self) -> bool {
        self.caller_waiting || !self.flushes.is_empty()
    }
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    fn run(mut self) {
        log::debug!("writer for topic {} started", self.topic);
        while let Ok(first) = self.queue.recv() {
            let batch = self.gather(first);
            if !batch.records.is_empty() {
                self.ship(batch.records);
            }
            for done in batch.flushes {
                let _ = done.send(());
            }
        }
        log::debug!(
            "writer for topic {} stopped: queue closed and drained",
            self.topic
        );
    }

    /// Collects a batch starting with `first`.
    fn gather(&self, first: WriterCommand) -> Batch {
        let size = self.config.producer.batch_size;
        let deadline = Instant::now() + self.config.producer.batch_timeout;
        let mut batch = Batch::default();
        batch.take(first);
        while batch.records.len() < size {
            match self.queue.try_recv() {
                Ok(c) => {
                    batch.take(c);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if batch.urgent() => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.queue.recv_timeout(deadline - now) {
                Ok(c) => batch.take(c),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        batch
    }

    /// Produces `records`, retrying retriable failures with backoff, and answers every caller.
    fn ship(&mut self, records: Vec<QueuedRecord>) {
        let started = Instant::now();
        let mut schedule = self.config.producer.retry.schedule();
        let mut pending: Vec<(QueuedRecord, Option<i32>)> =
            records.into_iter().map(|r| (r, None)).collect();
        loop {
            let results = self.attempt(&mut pending);
            let mut failed = Vec::new();
            let mut retriable = false;
            let mut delivered = (0u64, 0u64);
            for ((record, partition), result) in pending.into_iter().zip(results) {
                match result {
                    Ok(delivery) => {
                        delivered.0 += 1;
                        delivered.1 += record.value.len() as u64;
                        record.answer(Ok(delivery));
                    }
                    Err(e) => {
                        retriable |= e.is_retriable();
                        failed.push((record, partition, e));
                    }
                }
            }
            if delivered.0 > 0 {
                self.metrics.batch_sent();
                self.metrics.delivered(delivered.0, delivered.1);
            }
            if failed.is_empty() {
                return;
            }
            let delay = if retriable {
                schedule.next_delay(started.elapsed())
            } else {
                None
            };
            let mut again = Vec::new();
            for (record, partition, e) in failed {
                if delay.is_some() && e.is_retriable() {
                    again.push((record, partition));
                } else {
                    self.fail(record, e, schedule.attempts());
                }
            }
            let Some(delay) = delay else { return };
            self.metrics.retried(again.len() as u64);
            log::warn!(
                "topic {}: {} message(s) failed with a retriable error; attempt {} in {delay:?}",
                self.topic,
                again.len(),
                schedule.attempts()
            );
            std::thread::sleep(delay);
            pending = again;
        }
    }

    /// Answers a record with its final error.
    fn fail(&self, record: QueuedRecord, error: Error, attempts: u32) {
        log::error!(
            "message {} (correlation {}) to topic {} failed after {attempts} attempt(s): {error}",
            record.message_id,
            record.correlation_id,
            self.topic
        );
        self.metrics.failed(1, &error.to_string());
        record.answer(Err(error));
    }

    /// One produce request for `pending`, choosing partitions for records that have none.
    fn attempt(&mut self, pending: &mut [(QueuedRecord, Option<i32>)]) -> Vec<Result<Delivery>> {
        let count = pending.len();
        let every = |e: Error| (0..count).map(|_| Err(e.detached())).collect();
        let partitions = match self.partition_count() {
            Ok(n) => n,
            Err(e) => return every(e),
        };
        let mut bytes = 0;
        let outgoing: Vec<OutgoingRecord> = pending
            .iter_mut()
            .map(|(record, partition)| {
                let p =
                    *partition.get_or_insert_with(|| partition_for_key(&record.key, partitions));
                bytes += record.value.len();
                OutgoingRecord {
                    partition: p,
                    key: Some(record.key.clone()),
                    value: record.value.clone(),
                }
            })
            .collect();
        let p = &self.config.producer;
        let compress = p.compression_threshold == 0 || bytes > p.compression_threshold;
        let options = ProduceOptions {
            acks: p.acks,
            compression: if compress {
                p.compression
            } else {
                Compression::None
            },
            timeout: self.config.request_timeout,
        };
        let topic = self.topic.clone();
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return every(e),
        };
        let results = session.produce(&topic, &outgoing, &options);
        if results.iter().any(|r| r.is_err()) {
            self.after_error(&results);
        }
        results
    }

    /// Drops what a failure may have made stale: the connection after connection errors,
    /// cached metadata after any retriable error.
    fn after_error(&mut self, results: &[Result<Delivery>]) {
        let kinds: Vec<ErrorKind> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.kind()))
            .collect();
        if kinds.contains(&ErrorKind::Connection) {
            self.session = None;
        } else if let Some(s) = self.session.as_mut() {
            if kinds.iter().any(|k| k.is_retriable()) {
                s.refresh_metadata();
            }
        }
        if kinds.contains(&ErrorKind::UnknownTopic) {
            self.partitions = None;
        }
    }

    fn session(&mut self) -> Result<&mut Box<dyn ProducerSession>> {
        if self.session.is_none() {
            self.session = Some(self.transport.connect_producer()?);
        }
        Ok(self.session.as_mut().expect("session was just set"))
    }

    fn partition_count(&mut self) -> Result<usize> {
        if let Some(n) = self.partitions {
            return Ok(n);
        }
        let topic = self.topic.clone();
        let result = self.session().and_then(|s| s.partition_count(&topic));
        match result {
            Ok(0) => Err(Error::new(
                ErrorKind::BrokerRetriable,
                "the topic has no partitions yet (leader election in progress?)",
            )
            .with_topic(topic)),
            Ok(n) => {
                self.partitions = Some(n);
                Ok(n)
            }
            Err(e) => {
                if e.kind() == ErrorKind::Connection {
                    self.session = None;
                }
                Err(e)
            }
        }
    }
}
