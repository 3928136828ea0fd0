//! Shipping one batch from a writer thread: attempts, retries, expiry and splitting, the way
//! the Java client's sender does it.
//!
//! - **Retries are bounded by each message's `delivery_timeout`**, not by a budget of their
//!   own: connection errors, timeouts and retriable broker answers (leader elections, not
//!   enough replicas, unknown partitions) are tried again, spaced by `producer.retry`, with
//!   fresh metadata, until the message's time runs out (or `retry.max_attempts` /
//!   `retry.max_elapsed`, if set lower).
//! - **A message whose time ran out is never sent afterwards**: before each attempt, every
//!   message whose deadline passed (while queued or between attempts) is failed with
//!   [`ErrorKind::Timeout`] naming its last error, and an attempt is given at most the time
//!   left to the earliest deadline among its messages, so every caller is answered by its
//!   deadline.
//! - **A batch the broker refuses as too large is split**: it is sent again in halves (then
//!   quarters ...) before any message fails; a message refused alone fails alone with
//!   [`ErrorKind::MessageTooLarge`] naming its size.
//! - Messages stay in order: what is retried goes before what was not tried yet.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::delivery::{correlation_of, Answers, QueuedRecord};
use super::metrics::WriterMetrics;
use super::writer::{Batch, UNASSIGNED};
use crate::config::{Compression, Config};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{
    partition_for_key, OutgoingRecord, ProduceOptions, ProducerSession, Transport,
};
use std::sync::Arc;

/// A message with less time left than this fails with a timeout instead of being sent.
const MIN_ATTEMPT: Duration = Duration::from_millis(5);

/// A message on its way: whom to answer, what to send, what happened so far.
struct Pending {
    ticket: QueuedRecord,
    record: OutgoingRecord,
    attempts: u32,
    last_error: Option<Error>,
}

/// An empty record, left behind while a record is lent to an attempt.
fn placeholder() -> OutgoingRecord {
    OutgoingRecord {
        partition: UNASSIGNED,
        key: None,
        value: Vec::new(),
        headers: Vec::new(),
    }
}

/// What shipping needs: one topic's producer session, settings and counters. The writer
/// thread holds it while it ships a batch; a lone synchronous caller that finds the writer
/// idle ships its own record with it (see `WriterLane::ship_now`).
pub(super) struct Shipper {
    pub(super) topic: String,
    pub(super) config: Config,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) session: Option<Box<dyn ProducerSession>>,
    pub(super) metrics: Arc<WriterMetrics>,
}

impl Shipper {
    /// Produces the batch, answers every caller, and returns the flushes waiting on it.
    pub(super) fn ship(&mut self, batch: Batch) -> Vec<Sender<()>> {
        let Batch {
            tickets,
            records,
            flushes,
            ..
        } = batch;
        let mut pending: VecDeque<Pending> = tickets
            .into_iter()
            .zip(records)
            .map(|(ticket, record)| Pending {
                ticket,
                record,
                attempts: 0,
                last_error: None,
            })
            .collect();
        let started = Instant::now();
        let mut schedule = self.config.producer.retry.schedule();
        // Most messages per attempt: halved each time the broker says "too large".
        let mut chunk = usize::MAX;
        while !pending.is_empty() {
            let mut answers = Answers::default();
            self.expire(&mut pending, &mut answers);
            if pending.is_empty() {
                break;
            }
            let n = chunk.min(pending.len());
            let mut round: Vec<Pending> = pending.drain(..n).collect();
            let earliest = round
                .iter()
                .map(|p| p.ticket.deadline)
                .min()
                .expect("a round has messages");
            let timeout = self
                .config
                .request_timeout
                .min(earliest.saturating_duration_since(Instant::now()))
                .max(MIN_ATTEMPT);
            let mut records: Vec<OutgoingRecord> = round
                .iter_mut()
                .map(|p| {
                    p.attempts += 1;
                    std::mem::replace(&mut p.record, placeholder())
                })
                .collect();
            let results = self.attempt(&mut records, timeout);
            let mut again = Vec::new();
            let (mut split, mut retriable) = (false, false);
            let mut delivered = (0u64, 0u64);
            for ((mut p, record), result) in round.into_iter().zip(records).zip(results) {
                p.record = record;
                match result {
                    Ok(delivery) => {
                        delivered.0 += 1;
                        delivered.1 += p.record.value.len() as u64;
                        answers.push(&p.ticket, Ok(delivery));
                    }
                    Err(e) if e.kind() == ErrorKind::MessageTooLarge && n > 1 => {
                        split = true;
                        p.last_error = Some(e);
                        again.push(p);
                    }
                    Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
                        let e = self.too_large(e, &p.ticket);
                        self.fail(&mut answers, p, e);
                    }
                    Err(e) if e.is_retriable() => {
                        retriable = true;
                        p.last_error = Some(e);
                        again.push(p);
                    }
                    Err(e) => self.fail(&mut answers, p, e),
                }
            }
            if delivered.0 > 0 {
                self.metrics.batch_sent();
                self.metrics.delivered(delivered.0, delivered.1);
            }
            answers.send();
            let retrying = again.len();
            for p in again.into_iter().rev() {
                pending.push_front(p);
            }
            if retrying == 0 {
                continue;
            }
            if split {
                chunk = (n / 2).max(1);
                log::info!(
                    "topic {}: the broker refused a batch of {n} message(s) as too large; \
                     sending at most {chunk} at a time",
                    self.topic
                );
                continue;
            }
            debug_assert!(retriable);
            match schedule.next_delay(started.elapsed()) {
                Some(delay) => {
                    self.metrics.retried(retrying as u64);
                    let why = pending[0]
                        .last_error
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    log::warn!(
                        "topic {}: {retrying} message(s) failed with a retriable error ({why}); \
                         attempt {} in {delay:?}",
                        self.topic,
                        schedule.attempts()
                    );
                    let earliest = pending
                        .iter()
                        .map(|p| p.ticket.deadline)
                        .min()
                        .unwrap_or_else(Instant::now);
                    std::thread::sleep(
                        delay.min(earliest.saturating_duration_since(Instant::now())),
                    );
                }
                None => {
                    // producer.retry gave up (max_attempts or max_elapsed set below the
                    // delivery timeout): the retried messages fail with their last error.
                    let mut answers = Answers::default();
                    for p in pending.drain(..retrying).collect::<Vec<_>>() {
                        let e = p
                            .last_error
                            .as_ref()
                            .map(Error::detached)
                            .unwrap_or_else(|| Error::new(ErrorKind::Broker, "retries ran out"));
                        self.fail(&mut answers, p, e);
                    }
                }
            }
        }
        flushes
    }

    /// Fails every message whose `delivery_timeout` has (all but) run out; they are not sent.
    fn expire(&self, pending: &mut VecDeque<Pending>, answers: &mut Answers) {
        let now = Instant::now();
        if pending
            .iter()
            .all(|p| p.ticket.deadline.saturating_duration_since(now) >= MIN_ATTEMPT)
        {
            return;
        }
        let bound = self.config.producer.delivery_timeout;
        let all: Vec<Pending> = pending.drain(..).collect();
        for p in all {
            if p.ticket.deadline.saturating_duration_since(now) >= MIN_ATTEMPT {
                pending.push_back(p);
                continue;
            }
            let why = match (&p.last_error, p.attempts) {
                (_, 0) | (None, _) => "while it waited in the writer queue".to_string(),
                (Some(e), n) => format!("after {n} attempt(s); last error: {e}"),
            };
            let e = Error::new(
                ErrorKind::Timeout,
                format!(
                    "producer.delivery_timeout ({bound:?}) ran out {why}; the message was not \
                     sent again"
                ),
            )
            .with_topic(self.topic.as_str());
            self.fail(answers, p, e);
        }
    }

    /// The error for a message the broker refused alone as too large: its size added.
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

    /// Answers a message with its final error.
    fn fail(&self, answers: &mut Answers, p: Pending, error: Error) {
        log::error!(
            "message {} (correlation {}) to topic {} failed after {} attempt(s): {error}",
            p.ticket.message_id,
            correlation_of(&p.record.headers),
            self.topic,
            p.attempts
        );
        self.metrics.failed(1, &error.to_string());
        answers.push(&p.ticket, Err(error));
    }

    /// One produce request for `records` within `timeout`, routing those not routed yet by
    /// their key.
    fn attempt(
        &mut self,
        records: &mut [OutgoingRecord],
        timeout: Duration,
    ) -> Vec<Result<Delivery>> {
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
            timeout,
        };
        let topic = self.topic.clone();
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => return every(e),
        };
        let results = session.produce(&topic, records, &options);
        if results
            .iter()
            .any(|r| r.as_ref().is_err_and(Error::is_retriable))
        {
            // Leaders may have moved or partitions appeared: ask again before the retry. The
            // session drops broken connections itself and keeps the healthy ones.
            session.refresh_metadata();
        }
        results
    }

    fn session(&mut self) -> Result<&mut Box<dyn ProducerSession>> {
        if self.session.is_none() {
            self.session = Some(self.transport.connect_producer()?);
        }
        Ok(self.session.as_mut().expect("session was just set"))
    }

    /// The topic's partition count, from the session's metadata (asked again once it is
    /// older than `metadata_max_age`, so added partitions are used).
    fn partition_count(&mut self) -> Result<usize> {
        let topic = self.topic.clone();
        match self.session()?.partition_count(&topic)? {
            0 => Err(Error::new(
                ErrorKind::BrokerRetriable,
                "the topic has no partitions yet (leader election in progress?)",
            )
            .with_topic(topic)),
            n => Ok(n),
        }
    }
}
