//! Shipping rounds from a writer's [`Accumulator`]: one produce call per round (one request
//! per partition leader, made by the transport's session), the way the Java client's
//! sender drains ready batches.
//!
//! - **Retries are bounded by each message's `delivery_timeout`**, not by a budget of their
//!   own: connection errors, timeouts and retriable broker answers (leader elections, not
//!   enough replicas, unknown partitions) are tried again, spaced by `producer.retry` per
//!   partition, with fresh metadata, until the message's time runs out (or
//!   `retry.max_attempts` / `retry.max_elapsed`, if set lower). Other partitions go on.
//! - **A message whose time ran out is never sent afterwards**: expiry is checked right
//!   before batches are drained into a round, and a round is given at most the time left to
//!   the earliest deadline among its batches, so every caller is answered by its deadline.
//!   A batch whose answer was cut short that way expires as a whole and is not sent again.
//! - **A batch the broker refuses as too large is split**: sent again in halves (then
//!   quarters ...) before any message fails; a message refused alone fails alone with
//!   [`ErrorKind::MessageTooLarge`](crate::error::ErrorKind::MessageTooLarge) naming its size.
//! - Messages of a partition stay in order: a batch being retried goes before every record
//!   that came after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::accumulator::{Accumulator, Round};
use super::delivery::Answers;
use super::metrics::WriterMetrics;
use super::partition_queue::UNROUTED;
use crate::config::{Compression, Config};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{OutgoingRecord, ProduceOptions, ProducerSession, Transport};

/// How long a partition count learnt from metadata is used before asking the session again
/// (the session itself refreshes its metadata after `metadata_max_age`).
const ROUTING_AGE: Duration = Duration::from_secs(1);
/// Longest sleep of [`Shipper::drive`] between looks, while partitions back off.
const DRIVE_STEP: Duration = Duration::from_millis(50);

/// An empty record, left behind while a record is lent to a round.
fn placeholder() -> OutgoingRecord {
    OutgoingRecord {
        partition: UNROUTED,
        key: None,
        value: Vec::new(),
        headers: Vec::new(),
    }
}

/// What shipping needs: one topic's producer session, settings and counters. The writer
/// thread holds it while it ships a round; a lone synchronous caller that finds the writer
/// idle ships its own record with it (see `WriterLane::ship_now`).
pub(super) struct Shipper {
    pub(super) topic: String,
    pub(super) config: Config,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) session: Option<Box<dyn ProducerSession>>,
    pub(super) metrics: Arc<WriterMetrics>,
    /// The topic's partition count (0: none known) and when to ask for it again.
    pub(super) routing: Option<(usize, Instant)>,
}

impl Shipper {
    /// One step of a writer: routes records waiting for the partition count, fails what
    /// expired, and ships one round of the ready partitions (all partitions with records
    /// when `all_now`). Returns whether a round went out.
    pub(super) fn step(&mut self, acc: &mut Accumulator, all_now: bool) -> bool {
        let mut answers = Answers::default();
        self.route(acc, &mut answers);
        let now = Instant::now();
        acc.expire(now, &mut answers, &self.metrics);
        let round = acc.drain_ready(all_now, now, &mut answers, &self.metrics);
        // Expired callers hear at once, not after the round.
        answers.send();
        let Some(Round {
            mut batches,
            timeout,
        }) = round
        else {
            return false;
        };
        let mut records: Vec<OutgoingRecord> = batches
            .iter_mut()
            .flat_map(|(_, batch)| batch.iter_mut())
            .map(|p| {
                p.attempts += 1;
                std::mem::replace(&mut p.record, placeholder())
            })
            .collect();
        let results = self.produce(&mut records, timeout);
        let mut lent = records.into_iter();
        for p in batches.iter_mut().flat_map(|(_, b)| b.iter_mut()) {
            p.record = lent.next().expect("one record per pending");
        }
        let settled = acc.settle(
            batches,
            &mut results.into_iter(),
            &mut answers,
            &self.metrics,
        );
        answers.send();
        if settled.delivered > 0 {
            self.metrics.batch_sent();
            self.metrics
                .delivered(settled.delivered, settled.delivered_bytes);
        }
        if settled.retried > 0 {
            self.metrics.retried(settled.retried);
        }
        for (partition, n) in &settled.split {
            log::info!(
                "topic {} partition {partition}: the broker refused a batch of {n} message(s) \
                 as too large; sending at most {} at a time",
                self.topic,
                (n / 2).max(1)
            );
        }
        if settled.retriable {
            // Leaders may have moved or partitions appeared: ask again before the retry. The
            // session drops broken connections itself and keeps the healthy ones.
            if let Some(s) = self.session.as_mut() {
                s.refresh_metadata();
            }
            self.routing = None;
        }
        true
    }

    /// Ships until `acc` is empty: every record answered (a lone caller's record, or what is
    /// left when the writer closes). Bounded by the records' delivery timeouts.
    pub(super) fn drive(&mut self, acc: &mut Accumulator) {
        while !acc.is_empty() {
            if self.step(acc, true) {
                continue;
            }
            let now = Instant::now();
            let wake = acc.next_wake(true, now).unwrap_or(now);
            std::thread::sleep(wake.saturating_duration_since(now).min(DRIVE_STEP));
        }
    }

    /// Gives records waiting for the topic's partition count their partitions. The count
    /// is asked of the session again once it is older than [`ROUTING_AGE`]; a failed lookup
    /// keeps the count known before, so it never holds up records already routed; with no
    /// count known, it is an attempt of the waiting records (see
    /// [`Accumulator::routing_failed`]).
    fn route(&mut self, acc: &mut Accumulator, answers: &mut Answers) {
        let now = Instant::now();
        if let Some((n, at)) = self.routing {
            if now < at {
                if acc.needs_routing() && n > 0 {
                    acc.set_partition_count(n, now);
                }
                return;
            }
        }
        match self.partition_count() {
            Ok(n) => {
                self.routing = Some((n, now + ROUTING_AGE));
                acc.set_partition_count(n, now);
            }
            Err(e) => match self.routing {
                Some((n, _)) if n > 0 => {
                    self.routing = Some((n, now + ROUTING_AGE));
                    acc.set_partition_count(n, now);
                }
                _ => {
                    let again = acc.routing_failed(&e, answers, &self.metrics);
                    self.routing = Some((0, now + again.unwrap_or_default()));
                }
            },
        }
    }

    /// One produce call for `records` (each already routed) within `timeout`.
    fn produce(
        &mut self,
        records: &mut [OutgoingRecord],
        timeout: Duration,
    ) -> Vec<Result<Delivery>> {
        let count = records.len();
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
        match self.session() {
            Ok(session) => session.produce(&topic, records, &options),
            Err(e) => (0..count).map(|_| Err(e.detached())).collect(),
        }
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
