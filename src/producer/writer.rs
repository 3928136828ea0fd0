//! The writer thread: one per topic, named `kafka-writer-<topic>`, fed by a bounded channel.
//!
//! ```text
//!  callers ──send──▶ [bounded queue] ──▶ writer: accumulator (a batch per partition)
//!                                          │ ready partitions ──▶ one round ──▶ reply
//!                                          │ (full, linger over, a caller     one result
//!                                          │  waits, flush; backoff over)     per record
//! ```
//!
//! The writer takes what is queued into its accumulator (`accumulator.rs`), then ships a
//! round of the partitions that are ready: a batch is full (`batch_size` messages or
//! `batch_bytes` bytes), its linger ended, a synchronous caller waits on it (so a lone
//! caller never pays the batch timeout), or a flush or close waits for everything. A
//! partition backing off after a retriable error waits alone while the others flow.
//! Rounds, retries, expiry and splitting are in `ship.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::accumulator::Accumulator;
use super::budget::ByteBudget;
use super::delivery::{Answers, QueuedRecord, WriterCommand};
use super::metrics::WriterMetrics;
use super::ship::Shipper;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::Transport;
use crate::wait::recv_soon;

/// The caller's side of a writer thread.
pub(crate) struct WriterHandle {
    pub sender: Sender<WriterCommand>,
    /// The queue's byte bound (`producer.buffer_bytes`), shared with the thread.
    pub budget: Arc<ByteBudget>,
    pub metrics: Arc<WriterMetrics>,
    pub thread: JoinHandle<()>,
    /// Receives one unit when the thread has finished (for a bounded join).
    pub finished: Receiver<()>,
    /// Set when the thread panicked: it takes no more records.
    stopped: Arc<AtomicBool>,
    /// The session and its settings, shared with callers shipping their own record.
    shipper: Arc<Mutex<Shipper>>,
    topic: Arc<str>,
    /// Records queued or being shipped and not answered yet.
    outstanding: Arc<AtomicUsize>,
}

impl WriterHandle {
    /// Starts the writer thread for `topic`.
    pub fn spawn(topic: &str, config: &Config, transport: Arc<dyn Transport>) -> Result<Self> {
        let (sender, queue) = crossbeam_channel::bounded(config.producer.queue_capacity);
        let (done_tx, finished) = crossbeam_channel::bounded(1);
        let metrics = Arc::new(WriterMetrics::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let budget = Arc::new(ByteBudget::new(config.producer.buffer_bytes));
        let (stop_flag, leftovers, leftover_budget) =
            (stopped.clone(), queue.clone(), budget.clone());
        let shipper = Arc::new(Mutex::new(Shipper {
            topic: topic.to_string(),
            config: config.clone(),
            transport,
            session: None,
            metrics: metrics.clone(),
            routing: None,
        }));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            topic: topic.to_string(),
            config: config.clone(),
            shipper: shipper.clone(),
            outstanding: outstanding.clone(),
            queue,
            budget: budget.clone(),
        };
        let name = format!("kafka-writer-{topic}");
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let topic = writer.topic.clone();
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| writer.run())) {
                    let why = crate::error::panic_text(panic.as_ref());
                    log::error!("writer thread for topic {topic} panicked: {why}; queued messages get a worker-stopped error");
                    // The batch in hand was dropped with the writer (its callers see the
                    // reply channel close); everything still queued is answered now rather
                    // than left to wait for its delivery timeout.
                    stop_flag.store(true, Ordering::SeqCst);
                    fail_leftovers(&leftovers, &leftover_budget, &topic, &why);
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| {
                Error::new(ErrorKind::WorkerStopped, format!("cannot start thread {name}: {e}"))
                    .with_topic(topic)
            })?;
        Ok(WriterHandle {
            sender,
            budget,
            metrics,
            thread,
            finished,
            stopped,
            shipper,
            outstanding,
            topic: Arc::from(topic),
        })
    }

    /// What a caller needs to queue a record (or ship it itself), without holding the
    /// producer's map of writers.
    pub fn lane(&self) -> WriterLane {
        WriterLane {
            topic: self.topic.clone(),
            sender: self.sender.clone(),
            budget: self.budget.clone(),
            shipper: self.shipper.clone(),
            outstanding: self.outstanding.clone(),
            stopped: self.stopped.clone(),
        }
    }

    /// Whether the thread is still running and taking records.
    pub fn is_alive(&self) -> bool {
        !self.thread.is_finished() && !self.stopped.load(Ordering::SeqCst)
    }
}

/// A caller's way into one topic's writer: its queue, the queue's byte bound, and the
/// shared session for [`ship_now`](Self::ship_now).
#[derive(Clone)]
pub(crate) struct WriterLane {
    /// The topic's name, shared by every handle waiting on it.
    pub topic: Arc<str>,
    pub sender: Sender<WriterCommand>,
    pub budget: Arc<ByteBudget>,
    shipper: Arc<Mutex<Shipper>>,
    outstanding: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
}

impl WriterLane {
    /// Counts a record about to be queued as not answered yet (undo with
    /// [`unqueued`](Self::unqueued) if it could not be queued).
    pub fn queued(&self) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes back a [`queued`](Self::queued) record that never reached the queue.
    pub fn unqueued(&self) {
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
    }

    /// Ships `record` on the caller's thread when the writer is idle: nothing queued,
    /// nothing being shipped or awaiting its answer. A lone synchronous caller then pays
    /// no hand-off to the writer thread and back (two wake-ups, a tenth of a millisecond
    /// on a busy 2-core machine). Order is kept: any record of this topic not answered yet
    /// (the caller's own earlier `send_async` included) sends this one through the queue.
    /// The record comes back (`Some`) when the writer is busy.
    pub fn ship_now(&self, record: QueuedRecord) -> Option<QueuedRecord> {
        if self.outstanding.load(Ordering::SeqCst) != 0 || self.stopped.load(Ordering::SeqCst) {
            return Some(record);
        }
        let mut shipper = match self.shipper.try_lock() {
            Ok(s) => s,
            Err(TryLockError::WouldBlock) | Err(TryLockError::Poisoned(_)) => return Some(record),
        };
        // Checked again with the session in hand: a record queued since waits for this one.
        if self.outstanding.load(Ordering::SeqCst) != 0 {
            return Some(record);
        }
        let mut acc = Accumulator::new(&self.topic, &shipper.config);
        acc.add(record, Instant::now());
        shipper.drive(&mut acc);
        None
    }
}

/// How long a writer that panicked keeps answering records that were on their way into its
/// queue when it stopped (senders that picked its channel just before it was marked dead).
const LEFTOVER_GRACE: Duration = Duration::from_millis(20);

/// Answers every record left in `queue` with `WorkerStopped` and releases every flush.
fn fail_leftovers(queue: &Receiver<WriterCommand>, budget: &ByteBudget, topic: &str, why: &str) {
    let error = Error::new(
        ErrorKind::WorkerStopped,
        format!(
            "the writer thread kafka-writer-{topic} panicked ({why}) before sending this message"
        ),
    )
    .with_topic(topic);
    let mut answers = Answers::default();
    let mut failed = 0usize;
    let until = Instant::now() + LEFTOVER_GRACE;
    loop {
        match queue.try_recv() {
            Ok(WriterCommand::Record(r)) => {
                budget.give(r.size);
                failed += 1;
                answers.push(&r, Err(error.detached()));
            }
            Ok(WriterCommand::Flush(done)) => {
                let _ = done.send(());
            }
            Err(TryRecvError::Empty) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => break,
        }
    }
    answers.send();
    if failed > 0 {
        log::error!(
            "writer for topic {topic}: {failed} queued message(s) failed with worker-stopped"
        );
    }
}

/// The state a writer thread owns.
pub(super) struct Writer {
    topic: String,
    config: Config,
    shipper: Arc<Mutex<Shipper>>,
    /// Records queued or being shipped and not answered yet (shared with the handle).
    outstanding: Arc<AtomicUsize>,
    queue: Receiver<WriterCommand>,
    /// Room in the queue's byte bound, given back as each record is taken off the queue.
    budget: Arc<ByteBudget>,
}

/// How often an idle writer wakes up to wait again (it stops when every sender is gone, not
/// by this timeout).
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// How long a lingering writer sleeps between looks at its queue. Sleeping (rather than
/// blocking on the channel) spares the senders a wake-up call per message.
const LINGER_STEP: Duration = Duration::from_micros(500);

impl Writer {
    /// Runs until every sender is gone, the queue is drained and every record answered.
    fn run(self) {
        log::debug!("writer for topic {} started", self.topic);
        let mut acc = Accumulator::new(&self.topic, &self.config);
        // Flushes taken: nothing more is taken off the queue until every record held is
        // answered, then they are released.
        let mut flushes: Vec<Sender<()>> = Vec::new();
        let mut closing = false;
        loop {
            if flushes.is_empty() && !closing {
                if acc.is_empty() {
                    // A lone synchronous caller sends again right after its answer: looking
                    // for a moment before parking spares both threads a wake-up per message.
                    match recv_soon(&self.queue, IDLE_WAKE) {
                        Ok(command) => self.take(command, &mut acc, &mut flushes),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => closing = true,
                    }
                }
                closing |= self.take_queued(&mut acc, &mut flushes);
            }
            let all_now = closing || !flushes.is_empty();
            if acc.is_empty() {
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
                if closing {
                    break;
                }
                continue;
            }
            let records = acc.len();
            let shipped = lock_shipper(&self.shipper).step(&mut acc, all_now);
            // Answered: the writer is idle again once nothing else is outstanding.
            self.outstanding
                .fetch_sub(records - acc.len(), Ordering::SeqCst);
            if shipped {
                continue;
            }
            let now = Instant::now();
            let wake = acc.next_wake(all_now, now).unwrap_or(now);
            if wake > now {
                std::thread::sleep(LINGER_STEP.min(wake - now));
            }
        }
        log::debug!(
            "writer for topic {} stopped: queue closed and drained",
            self.topic
        );
    }

    /// Takes what is queued now (without waiting), stopping at a flush and once the
    /// accumulator holds `batch_size` records or two batches' bytes (`batch_bytes`) per
    /// partition: records past that wait in the queue, bounded by `queue_capacity` and
    /// `buffer_bytes`, so the writer's memory stays about what the queue's is. Returns
    /// whether every sender is gone.
    fn take_queued(&self, acc: &mut Accumulator, flushes: &mut Vec<Sender<()>>) -> bool {
        let p = &self.config.producer;
        let partitions = acc.partition_count().unwrap_or(1).max(1);
        let most_records = p.batch_size.saturating_mul(partitions);
        let most_bytes = p.batch_bytes.saturating_mul(2 * partitions);
        while flushes.is_empty() && acc.len() < most_records && acc.bytes() < most_bytes {
            match self.queue.try_recv() {
                Ok(command) => self.take(command, acc, flushes),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    /// One command off the queue: a record's bytes no longer count against
    /// `buffer_bytes` (the accumulator holds them now).
    fn take(&self, command: WriterCommand, acc: &mut Accumulator, flushes: &mut Vec<Sender<()>>) {
        match command {
            WriterCommand::Record(r) => {
                self.budget.give(r.size);
                acc.add(r, Instant::now());
            }
            WriterCommand::Flush(done) => flushes.push(done),
        }
    }
}

/// Locks the shipper, whether or not a caller panicked while holding it.
fn lock_shipper(shipper: &Mutex<Shipper>) -> MutexGuard<'_, Shipper> {
    shipper.lock().unwrap_or_else(|e| e.into_inner())
}
