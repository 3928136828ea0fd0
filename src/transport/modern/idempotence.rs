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
//!   first write's offsets). The writer keeps such a batch as it is until it is settled or
//!   expires whole; different records on that partition mean it was given up, so the
//!   partition moves to a new producer identity (its sequence there cannot be known);
//! - the broker saying the sequence or producer is unknown or fenced on a partition moves
//!   that partition to a new identity.
//!
//! **Each partition keeps the identity its sequence belongs to.** A new identity (asked for
//! when a partition needs one and still uses the newest) never touches another partition's
//! unsettled batch: that batch is retried under the identity and sequence it was first sent
//! with, and the partition moves to the newest identity, at sequence 0, only once it has
//! nothing unsettled, as the Java client bumps its epoch per partition.
//!
//! The state belongs to one producer session and one topic: sessions never share it (two
//! sessions are two producers, each with its own id).

use crate::retry::Doubling;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use kafka_protocol::messages::InitProducerIdRequest;

use super::cluster::{Cluster, BACKOFF_MAX, BACKOFF_START};
use super::errors::{code, code_error};
use super::records::Sequence;
use crate::error::Result;
use crate::transport::OutgoingRecord;

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

/// A producer id and its epoch.
type Identity = (i64, i16);

/// One partition's place in its identity's sequence.
#[derive(Debug, Clone, Copy)]
struct PartitionSequence {
    identity: Identity,
    next: i32,
    /// (base sequence, fingerprint) of a batch whose answer was lost.
    unresolved: Option<(i32, u64)>,
}

/// One topic's producer identities and sequences.
#[derive(Debug, Default)]
pub(super) struct Idempotence {
    /// The newest identity; partitions move to it once they have nothing unsettled.
    newest: Option<Identity>,
    partitions: HashMap<i32, PartitionSequence>,
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

/// The sequence after `base` and `count` records: Kafka's sequences wrap from `i32::MAX` to 0.
pub(super) fn advance(base: i32, count: usize) -> i32 {
    ((i64::from(base) + count as i64) % (i64::from(i32::MAX) + 1)) as i32
}

impl Idempotence {
    /// The producer id, epoch and base sequence for `records` to `partition`, asking the
    /// cluster for a producer id first when one is needed.
    pub fn prepare(
        &mut self,
        cluster: &mut Cluster,
        partition: i32,
        records: &[&OutgoingRecord],
    ) -> Result<Sequence> {
        if let Some(state) = self.partitions.get(&partition).copied() {
            match state.unresolved {
                // Only a partition with a batch of unknown outcome needs the fingerprint.
                Some((base, seen)) if seen == fingerprint(records) => {
                    return Ok(sequence(state.identity, base));
                }
                Some(_) => {
                    log::info!(
                        "modern: partition {partition}: a batch whose outcome is unknown was                          given up; the partition moves to a new producer identity"
                    );
                    self.partitions.remove(&partition);
                    if self.newest == Some(state.identity) {
                        self.newest = None;
                    }
                }
                None if Some(state.identity) != self.newest => {
                    // Settled under an older identity: start afresh under the newest.
                    self.partitions.remove(&partition);
                }
                None => return Ok(sequence(state.identity, state.next)),
            }
        }
        let identity = match self.newest {
            Some(id) => id,
            None => {
                let id = init_producer_id(cluster)?;
                self.newest = Some(id);
                id
            }
        };
        self.partitions.insert(
            partition,
            PartitionSequence {
                identity,
                next: 0,
                unresolved: None,
            },
        );
        Ok(sequence(identity, 0))
    }

    /// Records what became of `records`, sent to `partition` with `seq`.
    pub fn done(
        &mut self,
        partition: i32,
        seq: Sequence,
        records: &[&OutgoingRecord],
        outcome: Outcome,
    ) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.identity != (seq.producer_id, seq.epoch) {
            return; // sent under an identity this partition gave up since
        }
        match outcome {
            Outcome::Written => {
                state.unresolved = None;
                state.next = advance(seq.base, records.len());
            }
            Outcome::Refused => {}
            Outcome::Unknown => state.unresolved = Some((seq.base, fingerprint(records))),
            Outcome::Fenced => {
                // The broker holds no usable state for this identity on this partition (so
                // an unsettled batch of it was not written): a new identity for it alone.
                let identity = state.identity;
                self.partitions.remove(&partition);
                if self.newest == Some(identity) {
                    self.newest = None;
                }
            }
        }
    }
}

fn sequence((producer_id, epoch): Identity, base: i32) -> Sequence {
    Sequence {
        producer_id,
        epoch,
        base,
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
    use std::sync::Arc;

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
            newest: Some((7, 0)),
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
        assert!(i.newest.is_none());
    }

    #[test]
    fn a_new_identity_for_one_partition_leaves_another_partitions_unsettled_batch_alone() {
        // p0's answer was lost; p1 is fenced (UNKNOWN_PRODUCER_ID) in the same round. p0's
        // batch must go again under producer 7 at its sequence, whatever p1 gets.
        let (a, b, c2) = (rec("a"), rec("b"), rec("c"));
        let mut i = with_id();
        let mut c = cluster();
        let s0 = i.prepare(&mut c, 0, &[&a]).unwrap();
        i.done(0, s0, &[&a], Outcome::Written);
        let s0 = i.prepare(&mut c, 0, &[&b]).unwrap();
        let s1 = i.prepare(&mut c, 1, &[&c2]).unwrap();
        i.done(0, s0, &[&b], Outcome::Unknown);
        i.done(1, s1, &[&c2], Outcome::Fenced);
        assert!(i.newest.is_none(), "p1 needs a new identity");
        i.newest = Some((8, 0)); // what InitProducerId would answer
        let again = i.prepare(&mut c, 0, &[&b]).unwrap();
        assert_eq!(
            (again.producer_id, again.base),
            (7, 1),
            "p0's unsettled batch keeps its identity and sequence"
        );
        let p1 = i.prepare(&mut c, 1, &[&c2]).unwrap();
        assert_eq!((p1.producer_id, p1.base), (8, 0));
        // Once settled, p0 moves to the newest identity at sequence 0.
        i.done(0, again, &[&b], Outcome::Written);
        let next = i.prepare(&mut c, 0, &[&a]).unwrap();
        assert_eq!((next.producer_id, next.base), (8, 0));
    }

    #[test]
    fn sequences_wrap_to_zero_after_the_largest() {
        assert_eq!(advance(i32::MAX, 1), 0);
        assert_eq!(advance(i32::MAX - 1, 3), 1);
        assert_eq!(advance(5, 3), 8);
    }

    #[test]
    fn fencing_starts_over_and_late_outcomes_of_old_identities_are_ignored() {
        let a = rec("a");
        let mut i = with_id();
        let mut c = cluster();
        let s = i.prepare(&mut c, 0, &[&a]).unwrap();
        i.done(0, s, &[&a], Outcome::Fenced);
        assert!(i.newest.is_none());
        i.newest = Some((8, 0));
        let fresh = i.prepare(&mut c, 0, &[&a]).unwrap();
        i.done(0, s, &[&a], Outcome::Written);
        assert_eq!(
            i.prepare(&mut c, 0, &[&a]).unwrap().base,
            fresh.base,
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
