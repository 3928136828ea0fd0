//! The accumulator: a writer thread's records, kept per partition as the Java client keeps
//! them, so that one partition's trouble never holds up another's records.
//!
//! ```text
//!  queue ──take──▶ route by key ──▶ partition 0: [sent batch?] [waiting records …]
//!                  (unrouted while   partition 1: [sent batch?] [waiting records …]
//!                   no metadata)     …
//!        ready partitions ──drain──▶ one round: a batch per partition ──▶ Shipper
//! ```
//!
//! Rules, per partition:
//! - **A batch is fixed once it has been sent.** It is retried as it is (same records, so the
//!   idempotent producer can reuse its sequence) until the broker answers it, fails it, or
//!   it expires; new records wait behind it. Only a broker refusing it as too large breaks it
//!   up again (its records go back to the front, at most half as many per batch).
//! - **It expires as a whole**, when its earliest record's `delivery_timeout` is (all but)
//!   over: every record fails with [`ErrorKind::Timeout`], none is sent again.
//! - **A record not sent yet expires alone** at its own deadline, checked right before
//!   batches are drained, so a record whose time passed is never sent.
//! - **Ready** means: a sent batch to retry and its backoff over; or waiting records that
//!   fill a batch (`batch_size` records or `batch_bytes` framed bytes), whose linger
//!   (`batch_timeout`) ended, that a caller blocks on, or a flush or close waits for.
//! - A retriable failure backs off that partition alone (`producer.retry`, per partition);
//!   the others keep being drained.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::delivery::{correlation_of, Answers, QueuedRecord};
use super::metrics::WriterMetrics;
use super::partition_queue::{PartitionQueue, Pending, MIN_ATTEMPT};
use crate::config::Config;
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetrySchedule;
use crate::transport::partition_for_key;

/// The most bytes one round puts on the wire: well under the broker's
/// `socket.request.max.bytes` (100 MB) even when one leader gets every partition's batch.
const ROUND_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The records of one round, a batch per partition, and the time it may take.
pub(super) struct Round {
    pub batches: Vec<(i32, Vec<Pending>)>,
    /// Bound on the produce request: `request_timeout`, or less when a batch's deadline
    /// comes sooner.
    pub timeout: Duration,
}

/// A writer's records by partition, with whom to answer.
pub(super) struct Accumulator {
    topic: String,
    config: Config,
    partitions: BTreeMap<i32, PartitionQueue>,
    /// Records taken before the topic's partition count was known.
    unrouted: VecDeque<Pending>,
    /// The topic's partition count, as last learnt.
    partition_count: Option<usize>,
    /// Backoff of the partition-count lookup while it fails.
    routing_backoff: Option<(Instant, RetrySchedule)>,
    /// Records held (sent or not), and their bytes.
    records: usize,
    bytes: usize,
}

impl Accumulator {
    /// An empty accumulator for `topic`.
    pub fn new(topic: &str, config: &Config) -> Self {
        Accumulator {
            topic: topic.to_string(),
            config: config.clone(),
            partitions: BTreeMap::new(),
            unrouted: VecDeque::new(),
            partition_count: None,
            routing_backoff: None,
            records: 0,
            bytes: 0,
        }
    }

    /// Records held and not answered yet.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Key, value and header bytes held (the writer bounds what it takes by them).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The topic's partition count, once learnt.
    pub fn partition_count(&self) -> Option<usize> {
        self.partition_count
    }

    /// Whether records wait for the topic's partition count.
    pub fn needs_routing(&self) -> bool {
        !self.unrouted.is_empty()
    }

    /// Takes a queued record.
    pub fn add(&mut self, ticket: QueuedRecord, now: Instant) {
        let p = Pending::new(ticket);
        self.records += 1;
        self.bytes += p.ticket.size;
        match self.partition_count {
            Some(n) if self.unrouted.is_empty() => self.place(p, n, now),
            _ => self.unrouted.push_back(p),
        }
    }

    /// The partition count learnt from metadata: routes every record waiting for it.
    pub fn set_partition_count(&mut self, n: usize, now: Instant) {
        self.partition_count = Some(n);
        self.routing_backoff = None;
        while let Some(p) = self.unrouted.pop_front() {
            self.place(p, n, now);
        }
    }

    /// Looking up the partition count failed, as an attempt of the unrouted records: a
    /// final error fails them, a retriable one backs them off (`producer.retry`) or, once
    /// the retries ran out, fails them too. Returns when to look again.
    pub fn routing_failed(
        &mut self,
        e: &Error,
        answers: &mut Answers,
        metrics: &WriterMetrics,
    ) -> Option<Duration> {
        let now = Instant::now();
        let delay = if e.is_retriable() {
            let (started, schedule) = self
                .routing_backoff
                .get_or_insert_with(|| (now, self.config.producer.retry.schedule()));
            schedule.next_delay(started.elapsed())
        } else {
            None
        };
        if delay.is_none() {
            self.routing_backoff = None;
            for p in std::mem::take(&mut self.unrouted) {
                self.fail(answers, metrics, p, e.detached());
            }
        } else {
            for p in &mut self.unrouted {
                p.attempts += 1;
                p.last_error = Some(e.detached());
            }
        }
        delay
    }

    fn place(&mut self, mut p: Pending, partitions: usize, now: Instant) {
        let key = p.record.key.as_deref().unwrap_or_default();
        let partition = partition_for_key(key, partitions);
        p.record.partition = partition;
        self.partitions
            .entry(partition)
            .or_insert_with(PartitionQueue::new)
            .push(p, now);
    }

    /// When the next partition becomes ready or the next record expires (`None`: nothing
    /// held).
    pub fn next_wake(&self, all_now: bool, now: Instant) -> Option<Instant> {
        let ready = self
            .partitions
            .values()
            .filter_map(|q| q.ready_at(&self.config, all_now, now))
            .min();
        let expiry = self
            .partitions
            .values()
            .flat_map(|q| {
                q.sent
                    .iter()
                    .flat_map(|b| b.first())
                    .chain(q.waiting.front())
            })
            .chain(self.unrouted.front())
            .map(|p| p.ticket.deadline.checked_sub(MIN_ATTEMPT).unwrap_or(now))
            .min();
        match (ready, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fails every record whose `delivery_timeout` has (all but) run out: a sent batch as a
    /// whole (by its earliest record), records not sent yet alone. None of them is sent.
    pub fn expire(&mut self, now: Instant, answers: &mut Answers, metrics: &WriterMetrics) {
        let expired = |p: &Pending| p.expired(now);
        let mut gone = Vec::new();
        for q in self.partitions.values_mut() {
            if q.sent.as_ref().is_some_and(|b| b.iter().any(expired)) {
                gone.extend(q.sent.take().expect("checked"));
                q.retry_at = None;
                q.backoff = None;
            }
            // Deadlines follow arrival order (within a batch call's skew): the front tells;
            // a drained batch is checked record by record (`drain_ready`).
            if q.waiting.front().is_some_and(expired) {
                let (old, kept): (Vec<Pending>, Vec<Pending>) =
                    q.waiting.drain(..).partition(|p| expired(p));
                gone.extend(old);
                q.waiting = kept.into();
                q.bytes = q.waiting.iter().map(Pending::framed).sum();
                q.urgent = q.waiting.iter().any(|p| p.ticket.caller_waiting);
                if q.waiting.is_empty() {
                    q.since = None;
                }
            }
        }
        while self.unrouted.front().is_some_and(expired) {
            gone.push(self.unrouted.pop_front().expect("front exists"));
        }
        self.partitions
            .retain(|_, q| !q.is_empty() || q.retry_at.is_some());
        for p in gone {
            let e = self.timed_out(&p);
            self.fail(answers, metrics, p, e);
        }
    }

    /// The error of a record whose delivery timeout ran out.
    fn timed_out(&self, p: &Pending) -> Error {
        let bound = self.config.producer.delivery_timeout;
        let why = match (&p.last_error, p.attempts) {
            (None, 0) => "while it waited in the writer queue".to_string(),
            (Some(e), 0) => format!("before it could be sent; last error: {e}"),
            (None, n) => format!("after {n} attempt(s)"),
            (Some(e), n) => format!("after {n} attempt(s); last error: {e}"),
        };
        Error::new(
            ErrorKind::Timeout,
            format!(
                "producer.delivery_timeout ({bound:?}) ran out {why}; the message was not sent \
                 again"
            ),
        )
        .with_topic(self.topic.as_str())
    }

    /// Answers a record with its final error.
    pub fn fail(&mut self, answers: &mut Answers, metrics: &WriterMetrics, p: Pending, e: Error) {
        log::error!(
            "message {} (correlation {}) to topic {} failed after {} attempt(s): {e}",
            p.ticket.message_id,
            correlation_of(&p.record.headers),
            self.topic,
            p.attempts
        );
        metrics.failed(1, &e.to_string());
        self.forget(&p);
        answers.push(&p.ticket, Err(e));
    }

    fn forget(&mut self, p: &Pending) {
        self.records -= 1;
        self.bytes -= p.ticket.size;
    }

    /// Drains a batch from every ready partition (all of them when `all_now`), within
    /// [`ROUND_MAX_BYTES`]; `None` when no partition is ready. A drained record whose
    /// deadline (all but) passed fails here with a timeout instead of being sent.
    pub fn drain_ready(
        &mut self,
        all_now: bool,
        now: Instant,
        answers: &mut Answers,
        metrics: &WriterMetrics,
    ) -> Option<Round> {
        let expired = |p: &Pending| p.expired(now);
        let mut batches = Vec::new();
        let mut late = Vec::new();
        let mut bytes = 0usize;
        for (&partition, q) in self.partitions.iter_mut() {
            if q.ready_at(&self.config, all_now, now)
                .is_none_or(|at| at > now)
            {
                continue;
            }
            if !batches.is_empty() && bytes >= ROUND_MAX_BYTES {
                break;
            }
            let mut batch = q.drain(&self.config);
            if batch.iter().any(expired) {
                // A sent batch expires whole (`expire` ran first), so these were not sent.
                let (old, kept): (Vec<Pending>, Vec<Pending>) =
                    batch.into_iter().partition(|p| expired(p));
                late.extend(old);
                batch = kept;
            }
            if batch.is_empty() {
                continue;
            }
            bytes += batch.iter().map(Pending::framed).sum::<usize>();
            batches.push((partition, batch));
        }
        for p in late {
            let e = self.timed_out(&p);
            self.fail(answers, metrics, p, e);
        }
        // Drained partitions stay (empty) until `settle`: their backoff lives there.
        if batches.is_empty() {
            return None;
        }
        let earliest = batches
            .iter()
            .flat_map(|(_, b)| b.iter().map(|p| p.ticket.deadline))
            .min()
            .expect("a batch has records");
        let timeout = self
            .config
            .request_timeout
            .min(earliest.saturating_duration_since(now))
            .max(MIN_ATTEMPT);
        Some(Round { batches, timeout })
    }

    /// Takes a round's results (one per record, in the round's order): answers what is
    /// settled, keeps what is to be retried (backing its partition off), splits what the
    /// broker refused as too large.
    pub fn settle(
        &mut self,
        round: Vec<(i32, Vec<Pending>)>,
        results: &mut dyn Iterator<Item = Result<Delivery>>,
        answers: &mut Answers,
        metrics: &WriterMetrics,
    ) -> Settled {
        let now = Instant::now();
        let mut settled = Settled::default();
        for (partition, batch) in round {
            let n = batch.len();
            let mut retry = Vec::new();
            let mut too_large = false;
            for p in batch {
                let result = results.next().unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Broker,
                        "the transport gave no result for this record",
                    ))
                });
                match result {
                    Ok(delivery) => {
                        settled.delivered += 1;
                        settled.delivered_bytes += p.record.value.len() as u64;
                        self.forget(&p);
                        answers.push(&p.ticket, Ok(delivery));
                    }
                    Err(e) if e.kind() == ErrorKind::MessageTooLarge && n > 1 => {
                        too_large = true;
                        retry.push(Pending {
                            last_error: Some(e),
                            ..p
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
                        let e = self.too_large(e, &p.ticket);
                        self.fail(answers, metrics, p, e);
                    }
                    Err(e) if e.is_retriable() => retry.push(Pending {
                        last_error: Some(e),
                        ..p
                    }),
                    Err(e) => self.fail(answers, metrics, p, e),
                }
            }
            let q = self
                .partitions
                .entry(partition)
                .or_insert_with(PartitionQueue::new);
            if retry.is_empty() {
                q.retry_at = None;
                q.backoff = None;
                continue;
            }
            if too_large {
                // Refused before anything was written: sent again in smaller batches.
                q.max_records = (n / 2).max(1);
                for p in retry.into_iter().rev() {
                    q.bytes += p.framed();
                    q.waiting.push_front(p);
                }
                q.since.get_or_insert(now);
                settled.split.push((partition, n));
                continue;
            }
            let retrying = retry.len();
            let (started, schedule) = q
                .backoff
                .get_or_insert_with(|| (now, self.config.producer.retry.schedule()));
            match schedule.next_delay(started.elapsed()) {
                Some(delay) => {
                    log::warn!(
                        "topic {} partition {partition}: {retrying} message(s) failed with a \
                         retriable error ({}); attempt {} in {delay:?}",
                        self.topic,
                        retry[0]
                            .last_error
                            .as_ref()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                        schedule.attempts() + 1
                    );
                    q.retry_at = Some(now + delay);
                    q.sent = Some(retry);
                    settled.retried += retrying as u64;
                    settled.retriable = true;
                }
                None => {
                    // producer.retry gave up (max_attempts or max_elapsed below the
                    // delivery timeout): the batch fails with its last error.
                    q.retry_at = None;
                    q.backoff = None;
                    for p in retry {
                        let e = p
                            .last_error
                            .as_ref()
                            .map(Error::detached)
                            .unwrap_or_else(|| Error::new(ErrorKind::Broker, "retries ran out"));
                        self.fail(answers, metrics, p, e);
                    }
                }
            }
        }
        self.partitions
            .retain(|_, q| !q.is_empty() || q.retry_at.is_some());
        settled
    }

    /// The error for a record the broker refused alone as too large: its size added.
    fn too_large(&self, e: Error, ticket: &QueuedRecord) -> Error {
        let limit = self.config.producer.max_message_bytes;
        let context = e.context().clone();
        let mut out = Error::new(
            ErrorKind::MessageTooLarge,
            format!(
                "{}: the message is {} bytes, within producer.max_message_bytes ({limit}) but \
                 over the broker's limit for this topic (message.max.bytes / max.message.bytes)",
                e.message(),
                ticket.size
            ),
        )
        .with_topic(self.topic.as_str());
        if let Some(p) = context.partition {
            out = out.with_partition(p);
        }
        if let Some(b) = context.broker {
            out = out.with_broker(b);
        }
        if let Some(c) = e.broker_code() {
            out = out.with_broker_code(c);
        }
        out
    }
}

/// What a round came to.
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// Records written, and their value bytes.
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Records kept for another attempt after a retriable error.
    pub retried: u64,
    /// Some partition failed with a retriable error (metadata may be stale).
    pub retriable: bool,
    /// Partitions whose batch the broker refused as too large, with the batch's size.
    pub split: Vec<(i32, usize)>,
}
