//! The idempotent producer's bookkeeping: a producer id and epoch from InitProducerId, and a
//! sequence number per partition, so that a batch sent again after its answer was lost is
//! recognised by the broker and written once.
//!
//! The rules, per partition:
//! - a batch the broker confirmed moves the next sequence past its records;
//! - a batch the broker refused (an error code) wrote nothing: the sequence stays, and the
//!   retry reuses it;
//! - a batch whose answer never came (timeout, connection lost) may or may not be written:
//!   the same records sent again reuse its sequence (the broker answers a duplicate with the
//!   first write's offsets); different records start over under a new producer id, since
//!   their sequence cannot be known;
//! - the broker saying the sequence or producer is unknown or fenced starts over under a new
//!   producer id.
//!
//! The state lives in the transport, one per topic, so it outlives a producer session that
//! is rebuilt after a connection error.

use crate::retry::Doubling;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kafka_protocol::messages::InitProducerIdRequest;

use super::cluster::{Cluster, BACKOFF_MAX, BACKOFF_START};
use super::errors::{code, code_error};
use super::records::Sequence;
use crate::error::Result;
use crate::transport::OutgoingRecord;

/// Per-topic states, shared by the transport's producer sessions.
pub(super) type Store = Arc<Mutex<HashMap<String, Idempotence>>>;

/// What became of a batch sent with a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Confirmed by the broker.
    Written,
    /// Refused with an error code: nothing was written.
    Refused,
    /// No answer: written or not, nobody knows.
    Unknown,
    /// The broker no longer accepts this producer id or sequence: start over.
    Fenced,
}

/// Codes a broker answers a produce request with before appending anything (Kafka's
/// `Errors.java` numbering), besides those in the shared table.
mod refused {
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const INVALID_RECORD: i16 = 87;
}

/// The outcome a produce answer's error code means. Only codes the broker sends before it
/// appends anything count as refused; any other error (a request timed out, not enough
/// replicas *after* the append, the leader moving while the batch waited for its replicas,
/// a storage error) may have left the batch written, so its outcome is unknown: the same
/// records go again under the same sequence, or different ones under a new producer id,
/// and never different records under a sequence the broker may already hold.
pub(super) fn outcome_of(error_code: i16) -> Outcome {
    match error_code {
        code::NONE | code::DUPLICATE_SEQUENCE_NUMBER => Outcome::Written,
        code::OUT_OF_ORDER_SEQUENCE_NUMBER
        | code::INVALID_PRODUCER_EPOCH
        | code::UNKNOWN_PRODUCER_ID
        | code::INVALID_PRODUCER_ID_MAPPING => Outcome::Fenced,
        code::UNKNOWN_TOPIC_OR_PARTITION
        | code::LEADER_NOT_AVAILABLE
        | code::MESSAGE_TOO_LARGE
        | code::RECORD_LIST_TOO_LARGE
        | code::INVALID_MESSAGE_SIZE
        | code::NOT_ENOUGH_REPLICAS
        | code::UNSUPPORTED_VERSION
        | refused::CORRUPT_MESSAGE
        | refused::INVALID_REQUIRED_ACKS
        | refused::TOPIC_AUTHORIZATION_FAILED
        | refused::CLUSTER_AUTHORIZATION_FAILED
        | refused::INVALID_TIMESTAMP
        | refused::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | refused::UNSUPPORTED_COMPRESSION_TYPE
        | refused::INVALID_RECORD => Outcome::Refused,
        _ => Outcome::Unknown,
    }
}

/// One topic's producer identity and sequences.
#[derive(Debug, Default)]
pub(super) struct Idempotence {
    producer: Option<(i64, i16)>,
    next: HashMap<i32, i32>,
    /// Partition → (base sequence, fingerprint) of a batch whose answer was lost.
    unresolved: HashMap<i32, (i32, u64)>,
}

/// A fingerprint of a batch's keys and values.
fn fingerprint(records: &[&OutgoingRecord]) -> u64 {
    let mut h = DefaultHasher::new();
    records.len().hash(&mut h);
    for r in records {
        r.key.hash(&mut h);
        r.value.hash(&mut h);
    }
    h.finish()
}

impl Idempotence {
    /// The producer id, epoch and base sequence for `records` to `partition`, asking the
    /// cluster for a producer id first when there is none.
    pub fn prepare(
        &mut self,
        cluster: &mut Cluster,
        partition: i32,
        records: &[&OutgoingRecord],
    ) -> Result<Sequence> {
        // Only a partition with a batch of unknown outcome needs the (costly) fingerprint.
        match self.unresolved.get(&partition) {
            Some(&(base, seen)) if self.producer.is_some() && seen == fingerprint(records) => {
                return Ok(self.sequence(base));
            }
            Some(_) => {
                log::info!(
                    "modern: a batch whose outcome is unknown was not sent again; starting over \
                     under a new producer id"
                );
                self.start_over();
            }
            None => {}
        }
        if self.producer.is_none() {
            self.producer = Some(init_producer_id(cluster)?);
        }
        let base = self.next.get(&partition).copied().unwrap_or(0);
        Ok(self.sequence(base))
    }

    fn sequence(&self, base: i32) -> Sequence {
        let (producer_id, epoch) = self.producer.unwrap_or((-1, -1));
        Sequence {
            producer_id,
            epoch,
            base,
        }
    }

    /// Records what became of `records`, sent to `partition` with `seq`.
    pub fn done(
        &mut self,
        partition: i32,
        seq: Sequence,
        records: &[&OutgoingRecord],
        outcome: Outcome,
    ) {
        if self.producer != Some((seq.producer_id, seq.epoch)) {
            return; // sent under an identity given up since
        }
        match outcome {
            Outcome::Written => {
                self.unresolved.remove(&partition);
                let next = seq.base.wrapping_add(records.len() as i32) & i32::MAX;
                self.next.insert(partition, next);
            }
            Outcome::Refused => {}
            Outcome::Unknown => {
                self.unresolved
                    .insert(partition, (seq.base, fingerprint(records)));
            }
            Outcome::Fenced => self.start_over(),
        }
    }

    /// Forgets the producer id and every sequence.
    fn start_over(&mut self) {
        *self = Idempotence::default();
    }
}

/// A new producer id and epoch (idempotent only: no transactional id). Retriable answers
/// (the first call on a new cluster creates the transaction log: "loading") are asked again
/// for up to `request_timeout`.
fn init_producer_id(cluster: &mut Cluster) -> Result<(i64, i16)> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let started = Instant::now();
    let bound = cluster.settings().request_timeout;
    let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
    loop {
        let answer = cluster.call_any(&request, bound)?;
        if answer.error_code == code::NONE {
            log::debug!(
                "modern: producer id {} epoch {}",
                answer.producer_id.0,
                answer.producer_epoch
            );
            return Ok((answer.producer_id.0, answer.producer_epoch));
        }
        let e = code_error(answer.error_code, "asking for a producer id");
        if !e.is_retriable() || started.elapsed() + backoff.peek() > bound {
            return Err(e);
        }
        std::thread::sleep(backoff.next_wait());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str) -> OutgoingRecord {
        OutgoingRecord {
            partition: 0,
            key: None,
            value: v.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }

    /// A state that already has a producer id (no cluster needed).
    fn with_id() -> Idempotence {
        Idempotence {
            producer: Some((7, 0)),
            ..Idempotence::default()
        }
    }

    fn cluster() -> Cluster {
        let s = super::super::Settings::for_tests(vec!["127.0.0.1:1".into()]);
        Cluster::new(Arc::new(s), "t")
    }

    #[test]
    fn confirmed_batches_advance_and_refused_ones_are_retried_with_the_same_sequence() {
        let (a, b) = (rec("a"), rec("b"));
        let batch = [&a, &b];
        let mut i = with_id();
        let mut c = cluster();
        let s = i.prepare(&mut c, 0, &batch).unwrap();
        assert_eq!((s.producer_id, s.epoch, s.base), (7, 0, 0));
        i.done(0, s, &batch, Outcome::Refused);
        assert_eq!(i.prepare(&mut c, 0, &batch).unwrap().base, 0);
        i.done(0, s, &batch, Outcome::Written);
        assert_eq!(i.prepare(&mut c, 0, &batch).unwrap().base, 2);
        assert_eq!(
            i.prepare(&mut c, 1, &batch).unwrap().base,
            0,
            "per partition"
        );
    }

    #[test]
    fn a_lost_answer_is_retried_with_the_same_sequence_only_for_the_same_records() {
        let (a, b) = (rec("a"), rec("b"));
        let mut i = with_id();
        let mut c = cluster();
        let s = i.prepare(&mut c, 0, &[&a]).unwrap();
        i.done(0, s, &[&a], Outcome::Written);
        let s = i.prepare(&mut c, 0, &[&b]).unwrap();
        assert_eq!(s.base, 1);
        i.done(0, s, &[&b], Outcome::Unknown);
        assert_eq!(
            i.prepare(&mut c, 0, &[&b]).unwrap().base,
            1,
            "same records: same sequence"
        );
        // Different records after an unknown outcome: a new producer id is needed (the
        // cluster here is unreachable, so asking for one fails).
        assert!(i.prepare(&mut c, 0, &[&a]).is_err());
        assert!(i.producer.is_none());
    }

    #[test]
    fn fencing_starts_over_and_late_outcomes_of_old_identities_are_ignored() {
        let a = rec("a");
        let mut i = with_id();
        let mut c = cluster();
        let s = i.prepare(&mut c, 0, &[&a]).unwrap();
        i.done(0, s, &[&a], Outcome::Fenced);
        assert!(i.producer.is_none());
        i.producer = Some((8, 0));
        i.done(0, s, &[&a], Outcome::Written);
        assert!(
            i.next.is_empty(),
            "an outcome under producer 7 does not count for 8"
        );
        assert_eq!(
            outcome_of(code::DUPLICATE_SEQUENCE_NUMBER),
            Outcome::Written
        );
        assert_eq!(
            outcome_of(code::OUT_OF_ORDER_SEQUENCE_NUMBER),
            Outcome::Fenced
        );
        // The batch may be written when these come back: never reuse its sequence for others.
        for c in [
            code::NOT_LEADER_OR_FOLLOWER,
            code::REQUEST_TIMED_OUT,
            code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            code::KAFKA_STORAGE_ERROR,
            code::NETWORK_EXCEPTION,
        ] {
            assert_eq!(outcome_of(c), Outcome::Unknown, "code {c}");
        }
        for c in [code::NOT_ENOUGH_REPLICAS, code::MESSAGE_TOO_LARGE] {
            assert_eq!(outcome_of(c), Outcome::Refused, "code {c}");
        }
    }
}
