//! One partition's records in a writer's accumulator: the batch sent and not settled yet,
//! the records waiting behind it, and the partition's backoff; when it is ready and how the
//! next batch is drained from it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::delivery::QueuedRecord;
use crate::config::Config;
use crate::error::Error;
use crate::retry::RetrySchedule;
use crate::transport::OutgoingRecord;

/// What a record costs in a record batch beyond its key, value and header bytes: the
/// length, attributes, timestamp and offset deltas, key and value lengths and header count
/// as varints, at their largest.
const RECORD_FRAMING: usize = 36;
/// The varints of one header's name and value lengths, at their largest.
const HEADER_FRAMING: usize = 10;
/// A record batch's own header (v2).
pub(super) const BATCH_HEADER: usize = 61;

/// The partition of a record not routed yet.
pub(super) const UNROUTED: i32 = -1;

/// A record with less time left than this fails with a timeout instead of being sent.
pub(super) const MIN_ATTEMPT: Duration = Duration::from_millis(5);

/// A record on its way: whom to answer, what to send, what happened so far.
pub(super) struct Pending {
    pub ticket: QueuedRecord,
    pub record: OutgoingRecord,
    pub attempts: u32,
    pub last_error: Option<Error>,
}

impl Pending {
    /// Takes a queued record's bytes into a record to produce (partition not chosen yet).
    pub fn new(mut ticket: QueuedRecord) -> Self {
        let record = OutgoingRecord {
            partition: UNROUTED,
            key: Some(std::mem::take(&mut ticket.key)),
            value: std::mem::take(&mut ticket.value),
            headers: std::mem::take(&mut ticket.headers),
        };
        Pending {
            ticket,
            record,
            attempts: 0,
            last_error: None,
        }
    }

    /// Whether its `delivery_timeout` has (all but) run out at `now`: too little time is left
    /// to send it ([`MIN_ATTEMPT`]).
    pub fn expired(&self, now: Instant) -> bool {
        self.ticket.deadline.saturating_duration_since(now) < MIN_ATTEMPT
    }

    /// Its size in a record batch: its bytes and the most its framing takes.
    pub fn framed(&self) -> usize {
        self.ticket.size + RECORD_FRAMING + HEADER_FRAMING * self.record.headers.len()
    }
}

/// One partition's records.
pub(super) struct PartitionQueue {
    /// A batch sent at least once and not settled: retried as it is.
    pub sent: Option<Vec<Pending>>,
    /// Records not sent yet, in order.
    pub waiting: VecDeque<Pending>,
    /// Framed bytes of `waiting`.
    pub bytes: usize,
    /// A caller blocks on one of `waiting`.
    pub urgent: bool,
    /// When the oldest of `waiting` arrived (its linger's start).
    pub since: Option<Instant>,
    /// Not tried again before this (after a retriable failure).
    pub retry_at: Option<Instant>,
    /// Backoff since the first of the current run of failures.
    pub backoff: Option<(Instant, RetrySchedule)>,
    /// Most records per batch: halved each time the broker says "too large".
    pub max_records: usize,
}

impl PartitionQueue {
    pub fn new() -> Self {
        PartitionQueue {
            sent: None,
            waiting: VecDeque::new(),
            bytes: 0,
            urgent: false,
            since: None,
            retry_at: None,
            backoff: None,
            max_records: usize::MAX,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_none() && self.waiting.is_empty()
    }

    pub fn push(&mut self, p: Pending, now: Instant) {
        self.bytes += p.framed();
        self.urgent |= p.ticket.caller_waiting;
        self.since.get_or_insert(now);
        self.waiting.push_back(p);
    }

    /// When it becomes ready (`None`: nothing to send), given the writer's settings and
    /// whether everything is to go now (a flush or close).
    pub fn ready_at(&self, config: &Config, all_now: bool, now: Instant) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        if let Some(at) = self.retry_at.filter(|&at| at > now) {
            return Some(at);
        }
        let p = &config.producer;
        if self.sent.is_some()
            || all_now
            || self.urgent
            || self.waiting.len() >= p.batch_size.min(self.max_records)
            || self.bytes + BATCH_HEADER >= p.batch_bytes
        {
            return Some(now);
        }
        Some(self.since.unwrap_or(now) + p.batch_timeout)
    }

    /// The next batch: the sent one, or the oldest waiting records up to the limits.
    pub fn drain(&mut self, config: &Config) -> Vec<Pending> {
        if let Some(batch) = self.sent.take() {
            return batch;
        }
        let p = &config.producer;
        let most = p.batch_size.min(self.max_records).max(1);
        let mut bytes = BATCH_HEADER;
        let mut batch = Vec::new();
        while let Some(next) = self.waiting.front() {
            let size = next.framed();
            if !batch.is_empty() && (batch.len() >= most || bytes + size > p.batch_bytes) {
                break;
            }
            bytes += size;
            self.bytes -= size;
            batch.push(self.waiting.pop_front().expect("front exists"));
        }
        self.urgent = self.waiting.iter().any(|p| p.ticket.caller_waiting);
        self.since = if self.waiting.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        batch
    }
}
