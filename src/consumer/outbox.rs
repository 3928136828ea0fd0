//! [`Outbox`]: retry entries and dead letters on their way to the broker. They are queued
//! as the thread goes on with other messages and written in batches (before each commit,
//! or when many are queued), so a failing message costs one record in a batch instead of a
//! broker round trip on the thread's time. A queued record's offset stays uncommitted until
//! one of its writes is acknowledged.
//!
//! ```text
//!  push(divert) ─▶ queued ──flush──▶ produce per topic, one request each
//!      acknowledged ─▶ the consumed record ends (returned to the caller)
//!      failed, retriable, within divert_timeout ─▶ again after a backoff (100 ms → 5 s)
//!      failed for good, or past divert_timeout ─▶ the next write of the divert (fallback)
//!      no fallback left ─▶ its partition stops (health `down` with the reason); the last
//!                          write is tried again every 5 s until it goes through
//!      outcome unknown (timeout, connection lost: the broker may have stored it) ─▶ the
//!                          same write again, never a fallback: a record ends one way
//! ```
//!
//! A partition stays stopped while any of its diverts has no write left to try, whatever
//! its other diverts do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::divert::Divert;
use super::metrics::TopicStats;
use super::Shared;
use crate::config::{Acks, Compression};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{partition_for_key, OutgoingRecord, ProduceOptions, ProducerSession};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Queued diverts at which the thread writes at once instead of waiting for the next commit.
pub(crate) const FLUSH_AT: usize = 200;

struct Queued {
    divert: Divert,
    /// Index of the write being tried.
    step: usize,
    /// When the current write first failed.
    failing_since: Option<Instant>,
    backoff: Duration,
    next_try: Instant,
    /// Whether a try of the current write may have been stored (a timeout or a lost
    /// connection): then no other write of the divert is tried.
    maybe_stored: bool,
    /// Why its partition is stopped, if no write is left to try.
    stops: Option<String>,
}

/// Whether an error leaves the write's outcome unknown: the request may have reached the
/// broker and been stored though no answer came back.
fn outcome_unknown(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Connection)
}

/// Queued diverts of one consumer thread.
#[derive(Default)]
pub(crate) struct Outbox {
    session: Option<Box<dyn ProducerSession>>,
    queued: Vec<Queued>,
    /// Partitions with a divert whose every write failed: stopped, with the reason.
    stopped: BTreeMap<i32, String>,
    round_robin: usize,
    /// Topics this outbox tried to create (CreateTopics) after they were missing.
    ensured: std::collections::HashSet<String>,
}

impl Outbox {
    /// Queues `divert`.
    pub(crate) fn push(&mut self, divert: Divert) {
        self.queued.push(Queued {
            divert,
            step: 0,
            failing_since: None,
            backoff: FIRST_BACKOFF,
            next_try: Instant::now(),
            maybe_stored: false,
            stops: None,
        });
    }

    /// Diverts queued.
    pub(crate) fn len(&self) -> usize {
        self.queued.len()
    }

    /// Partitions stopped because a divert could not be written at all.
    pub(crate) fn stopped(&self) -> BTreeSet<i32> {
        self.stopped.keys().copied().collect()
    }

    /// Stopped partitions with the reason of each.
    pub(crate) fn stopped_reasons(&self) -> Vec<(i32, String)> {
        self.stopped.iter().map(|(p, r)| (*p, r.clone())).collect()
    }

    /// The earliest time a queued write is tried again, if one waits for a backoff.
    pub(crate) fn next_try(&self) -> Option<Instant> {
        self.queued.iter().map(|q| q.next_try).min()
    }

    /// Forgets diverts of partitions `drop` says yes to (revoked: their new owner reads
    /// the records again).
    pub(crate) fn forget(&mut self, drop: impl Fn(i32) -> bool) {
        self.queued.retain(|q| !drop(q.divert.partition));
        self.stopped.retain(|p, _| !drop(*p));
    }

    /// Writes every queued divert whose time has come; returns the `(partition, offset)` of
    /// the consumed records that ended (a write acknowledged).
    pub(crate) fn flush(&mut self, shared: &Shared, stats: &TopicStats) -> Vec<(i32, i64)> {
        let now = Instant::now();
        if self.queued.is_empty() || self.queued.iter().all(|q| q.next_try > now) {
            return Vec::new();
        }
        let mut by_topic: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, q) in self.queued.iter().enumerate() {
            if q.next_try <= now {
                let topic = q.divert.writes[q.step].topic.clone();
                by_topic.entry(topic).or_default().push(i);
            }
        }
        let mut results: HashMap<usize, Result<()>> = HashMap::new();
        for (topic, indexes) in by_topic {
            for (i, r) in indexes.iter().zip(self.write(shared, &topic, &indexes)) {
                results.insert(*i, r);
            }
        }
        let mut ended = Vec::new();
        let mut kept = Vec::with_capacity(self.queued.len());
        for (i, mut q) in std::mem::take(&mut self.queued).into_iter().enumerate() {
            match results.remove(&i) {
                None => kept.push(q),
                Some(Ok(())) => {
                    let w = &q.divert.writes[q.step];
                    stats.add(w.counts_as, 1);
                    if q.stops.is_some() {
                        log::warn!(
                            "{} of message {} written to {} (partition {} of {})",
                            w.what,
                            q.divert.message,
                            w.topic,
                            q.divert.partition,
                            stats.topic
                        );
                    }
                    ended.push((q.divert.partition, q.divert.offset));
                }
                Some(Err(e)) => {
                    self.failed(shared, stats, &mut q, &e);
                    kept.push(q);
                }
            }
        }
        self.queued = kept;
        self.restop(stats);
        ended
    }

    /// The stopped partitions from the queued diverts: a partition goes on only once none
    /// of its diverts is left without a write to try.
    fn restop(&mut self, stats: &TopicStats) {
        let mut stopped = BTreeMap::new();
        for q in &self.queued {
            if let Some(reason) = &q.stops {
                stopped
                    .entry(q.divert.partition)
                    .or_insert_with(|| reason.clone());
            }
        }
        for p in self.stopped.keys().filter(|p| !stopped.contains_key(*p)) {
            log::warn!(
                "partition {p} of {}: every divert written, it goes on",
                stats.topic
            );
        }
        self.stopped = stopped;
    }

    /// Moves `q` on after a failed write: backoff, the next fallback, or a stopped partition.
    fn failed(&mut self, shared: &Shared, stats: &TopicStats, q: &mut Queued, e: &Error) {
        let now = Instant::now();
        let since = *q.failing_since.get_or_insert(now);
        let w = &q.divert.writes[q.step];
        let (topic, partition) = (&stats.topic, q.divert.partition);
        stats.set_error(format!("writing the {} to {}: {e}", w.what, w.topic));
        q.maybe_stored |= outcome_unknown(e);
        let given_up =
            !e.is_retriable() || now.duration_since(since) >= shared.config.consumer.divert_timeout;
        if given_up && q.step + 1 < q.divert.writes.len() && !q.maybe_stored {
            let next = &q.divert.writes[q.step + 1];
            log::error!(
                "writing the {} of message {} (from {topic}/{partition}@{}) to {} failed: {e}; \
                 writing the {} to {} instead",
                w.what,
                q.divert.message,
                q.divert.offset,
                w.topic,
                next.what,
                next.topic
            );
            q.step += 1;
            q.failing_since = None;
            q.backoff = FIRST_BACKOFF;
            q.next_try = now;
            return;
        }
        if given_up {
            let (id, offset) = (&q.divert.message, q.divert.offset);
            let what = if q.maybe_stored {
                format!(
                    "message {id} at offset {offset} cannot be written (the {} to {}: {e}; an \
                     earlier try may have been stored, so no other write is tried)",
                    w.what, w.topic
                )
            } else {
                format!(
                    "message {id} at offset {offset} cannot be written anywhere (last: the {} \
                     to {}: {e})",
                    w.what, w.topic
                )
            };
            let reason = format!(
                "{what}; partition stopped, nothing committed past it, trying again every \
                 {MAX_BACKOFF:?}"
            );
            if q.stops.is_none() {
                log::error!("consumer of {topic}, partition {partition}: {reason}");
            }
            self.stopped
                .entry(partition)
                .or_insert_with(|| reason.clone());
            q.stops = Some(reason.clone());
            stats.set_error(reason);
        } else {
            log::warn!(
                "writing the {} of message {} to {} failed: {e}; trying again in {:?}",
                w.what,
                q.divert.message,
                w.topic,
                q.backoff
            );
        }
        q.next_try = now + q.backoff;
        q.backoff = (q.backoff * 2).min(MAX_BACKOFF);
    }

    /// Produces the current write of each of `indexes` (all for `topic`) in one request.
    fn write(&mut self, shared: &Shared, topic: &str, indexes: &[usize]) -> Vec<Result<()>> {
        let whole = |e: Error| indexes.iter().map(|_| Err(e.detached())).collect();
        if self.session.is_none() {
            match shared.transport.connect_producer() {
                Ok(s) => self.session = Some(s),
                Err(e) => return whole(e),
            }
        }
        let Some(session) = self.session.as_mut() else {
            return whole(Error::new(ErrorKind::Connection, "no producer session"));
        };
        let count = match session.partition_count(topic) {
            Ok(n) => n.max(1),
            Err(e) if e.kind() == ErrorKind::UnknownTopic && self.ensured.insert(topic.into()) => {
                // Missing and not auto-created: create it where the broker allows.
                match shared.transport.ensure_topic(topic, -1, -1) {
                    Ok(n) => {
                        log::info!("created the missing topic {topic} ({n} partitions)");
                        session.refresh_metadata();
                        n.max(1)
                    }
                    Err(create) => {
                        log::error!("topic {topic} is missing and cannot be created: {create}");
                        return whole(e);
                    }
                }
            }
            Err(e) => {
                session.refresh_metadata();
                return whole(e);
            }
        };
        let records: Vec<OutgoingRecord> = indexes
            .iter()
            .map(|&i| {
                let w = &self.queued[i].divert.writes[self.queued[i].step];
                let partition = match &w.key {
                    Some(k) => partition_for_key(k, count),
                    None => {
                        self.round_robin = self.round_robin.wrapping_add(1);
                        (self.round_robin % count) as i32
                    }
                };
                OutgoingRecord {
                    partition,
                    key: w.key.clone(),
                    value: w.value.clone(),
                    headers: w.headers.clone(),
                }
            })
            .collect();
        let too_big = shared.config.producer.max_message_bytes;
        let options = ProduceOptions {
            acks: Acks::All,
            compression: Compression::None,
            timeout: shared.config.request_timeout,
        };
        // Records over the producer's size limit fail at once (the fallback is smaller).
        let (small, sizes): (Vec<usize>, Vec<bool>) = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let size = r.value.len() + r.key.as_ref().map_or(0, Vec::len);
                (i, size <= too_big)
            })
            .unzip();
        let fitting: Vec<OutgoingRecord> = small
            .iter()
            .filter(|&&i| sizes[i])
            .map(|&i| records[i].clone())
            .collect();
        let mut answers = if fitting.is_empty() {
            Vec::new()
        } else {
            session.produce(topic, &fitting, &options)
        }
        .into_iter();
        let mut out = Vec::with_capacity(records.len());
        let mut refresh = false;
        for (i, r) in records.iter().enumerate() {
            if !sizes[i] {
                out.push(Err(Error::new(
                    ErrorKind::MessageTooLarge,
                    format!(
                        "{} bytes exceed producer.max_message_bytes ({too_big})",
                        r.value.len()
                    ),
                )
                .with_topic(topic)));
                continue;
            }
            match answers.next() {
                Some(Ok(_)) => out.push(Ok(())),
                Some(Err(e)) => {
                    refresh |= e.is_retriable();
                    out.push(Err(e));
                }
                None => out.push(Err(Error::new(
                    ErrorKind::Broker,
                    "the produce request gave fewer results than records",
                )
                .with_topic(topic))),
            }
        }
        if refresh {
            session.refresh_metadata();
        }
        out
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
