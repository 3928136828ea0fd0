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
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::delivery::{Answers, QueuedRecord, WriterCommand};
use super::metrics::WriterMetrics;
use crate::config::{Compression, Config};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{
    partition_for_key, OutgoingRecord, ProduceOptions, ProducerSession, Transport,
};
use crate::wait::recv_soon;

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

/// A batch being gathered: the records to produce (partition `UNASSIGNED` until the first
/// attempt) and, in the same order, whom to answer.
#[derive(Default)]
struct Batch {
    tickets: Vec<QueuedRecord>,
    records: Vec<OutgoingRecord>,
    flushes: Vec<Sender<()>>,
    caller_waiting: bool,
}

/// How often an idle writer wakes up to wait again (it stops when every sender is gone, not
/// by this timeout).
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// Partition of a record that has not been routed yet.
const UNASSIGNED: i32 = -1;

/// How long a lingering writer sleeps between looks at its queue. Sleeping (rather than
/// blocking on the channel) spares the senders a wake-up call per message.
const LINGER_STEP: Duration = Duration::from_micros(500);

impl Batch {
    fn take(&mut self, command: WriterCommand) {
        match command {
            WriterCommand::Record(mut r) => {
                self.caller_waiting |= r.caller_waiting;
                self.records.push(OutgoingRecord {
                    partition: UNASSIGNED,
                    key: Some(std::mem::take(&mut r.key)),
                    value: std::mem::take(&mut r.value),
                    headers: std::mem::take(&mut r.headers),
                });
                self.tickets.push(r);
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
        loop {
            // A lone synchronous caller sends again right after its answer: looking for a
            // moment before parking spares both threads a wake-up per message.
            let first = match recv_soon(&self.queue, IDLE_WAKE) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let batch = self.gather(first);
            let flushes = self.ship(batch);
            for done in flushes {
                let _ = done.send(());
            }
        }
        log::debug!(
            "writer for topic {} stopped: queue closed and drained",
            self.topic
        );
    }

    /// Collects a batch starting with `first`: ships when full, when a caller waits and the
    /// queue is empty, or when the linger (`batch_timeout`) ends.
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
            std::thread::sleep(LINGER_STEP.min(deadline - now));
        }
        batch
    }

    /// Produces the batch, retrying retriable failures with backoff, answers every caller,
    /// and returns the flushes waiting on it.
    fn ship(&mut self, batch: Batch) -> Vec<Sender<()>> {
        let Batch {
            mut tickets,
            mut records,
            flushes,
            ..
        } = batch;
        let started = Instant::now();
        let mut schedule = self.config.producer.retry.schedule();
        while !records.is_empty() {
            let results = self.attempt(&mut records);
            let mut again = (Vec::new(), Vec::new());
            let mut retriable = false;
            let mut delivered = (0u64, 0u64);
            let mut failed = Vec::new();
            let mut answers = Answers::default();
            for ((ticket, record), result) in tickets.into_iter().zip(records).zip(results) {
                match result {
                    Ok(delivery) => {
                        delivered.0 += 1;
                        delivered.1 += record.value.len() as u64;
                        answers.push(&ticket, Ok(delivery));
                    }
                    Err(e) => {
                        retriable |= e.is_retriable();
                        failed.push((ticket, record, e));
                    }
                }
            }
            if delivered.0 > 0 {
                self.metrics.batch_sent();
                self.metrics.delivered(delivered.0, delivered.1);
            }
            let delay = match (failed.is_empty(), retriable) {
                (false, true) => schedule.next_delay(started.elapsed()),
                _ => None,
            };
            for (ticket, record, e) in failed {
                if delay.is_some() && e.is_retriable() {
                    again.0.push(ticket);
                    again.1.push(record);
                } else {
                    self.fail(&mut answers, ticket, e, schedule.attempts());
                }
            }
            answers.send();
            (tickets, records) = again;
            if let Some(delay) = delay.filter(|_| !records.is_empty()) {
                self.metrics.retried(records.len() as u64);
                log::warn!(
                    "topic {}: {} message(s) failed with a retriable error; attempt {} in {delay:?}",
                    self.topic,
                    records.len(),
                    schedule.attempts()
                );
                std::thread::sleep(delay);
            }
        }
        flushes
    }

    /// Answers a record with its final error.
    fn fail(&self, answers: &mut Answers, record: QueuedRecord, error: Error, attempts: u32) {
        log::error!(
            "message {} (correlation {}) to topic {} failed after {attempts} attempt(s): {error}",
            record.message_id,
            record.correlation_id,
            self.topic
        );
        self.metrics.failed(1, &error.to_string());
        answers.push(&record, Err(error));
    }

    /// One produce request for `records`, routing those not routed yet by their key.
    fn attempt(&mut self, records: &mut [OutgoingRecord]) -> Vec<Result<Delivery>> {
        let count = records.len();
        let every = |e: Error| (0..count).map(|_| Err(e.detached())).collect();
        if records.iter().any(|r| r.partition == UNASSIGNED) {
            let partitions = match self.partition_count() {
                Ok(n) => n,
                Err(e) => return every(e),
            };
            for r in records.iter_mut().filter(|r| r.partition == UNASSIGNED) {
                let key = r.key.as_deref().unwrap_or_default();
                r.partition = partition_for_key(key, partitions);
            }
        }
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
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
        let results = session.produce(&topic, records, &options);
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
