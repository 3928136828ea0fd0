//! One fetch round: a Fetch request to every leader of the assigned partitions, all written
//! before any answer is read (so the round waits `max_wait` once, not once per broker), and
//! the answers turned into records, new positions, and what needs attention (offsets out
//! of range, stale metadata, other errors).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{topic_name, Cluster};
use super::errors::{code, code_error, code_kind, is_stale_metadata};
use super::records::decode_committed;
use crate::error::{Error, Result};
use crate::transport::ConsumedRecord;

/// Sizes and wait of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FetchLimits {
    /// How long the broker may wait for `min_bytes`.
    pub max_wait: Duration,
    /// Smallest answer worth returning early.
    pub min_bytes: usize,
    /// Largest answer per partition (the first batch is returned even when larger).
    pub partition_max_bytes: usize,
    /// Isolation level read_committed: records of aborted transactions are dropped, and
    /// reading stops at the last stable offset.
    pub read_committed: bool,
}

/// What one round brought.
#[derive(Debug, Default)]
pub(super) struct Round {
    /// Records, each partition's in offset order.
    pub records: Vec<ConsumedRecord>,
    /// Partitions whose position is no longer stored (reset per the start offset).
    pub out_of_range: Vec<i32>,
    /// Whether a leader moved or is unknown: reload metadata before the next round.
    pub stale: bool,
    /// Other per-partition or per-broker failures.
    pub errors: Vec<Error>,
}

fn clamp_i32(n: u128) -> i32 {
    n.min(i32::MAX as u128) as i32
}

/// Fetches `positions` (partition → next offset) of `topic`, advancing each position past
/// what was read.
pub(super) fn fetch_round(
    cluster: &mut Cluster,
    topic: &str,
    positions: &mut BTreeMap<i32, i64>,
    limits: FetchLimits,
) -> Result<Round> {
    let mut round = Round::default();
    let read_committed = limits.read_committed;
    let meta = cluster.topic(topic, false)?;
    let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
    for (&p, &offset) in positions.iter() {
        match meta.leader(p) {
            Some(node) => by_leader.entry(node).or_default().push((p, offset)),
            None => round.stale = true,
        }
    }
    let bound = limits.max_wait + cluster.settings().request_timeout;
    let deadline = Instant::now() + bound;
    let mut sent = Vec::new();
    for (node, parts) in by_leader {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(clamp_i32(limits.max_wait.as_millis()))
            .with_min_bytes(clamp_i32(limits.min_bytes as u128))
            .with_max_bytes(clamp_i32(
                (limits.partition_max_bytes as u128).saturating_mul(parts.len() as u128),
            ))
            .with_isolation_level(i8::from(read_committed))
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&(p, offset)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(clamp_i32(
                                    limits.partition_max_bytes as u128,
                                ))
                        })
                        .collect(),
                )])
            .with_rack_id(StrBytes::new());
        let addr = match cluster.node_addr(node) {
            Ok(a) => a,
            Err(e) => {
                round.stale = true;
                round.errors.push(e);
                continue;
            }
        };
        match cluster.send(&addr, &request, deadline) {
            Ok(s) => sent.push((addr, s)),
            Err(e) => {
                round.stale = true;
                round.errors.push(e);
            }
        }
    }
    for (addr, s) in sent {
        let answer = match cluster.receive::<FetchRequest>(&addr, s, deadline) {
            Ok(a) => a,
            Err(e) => {
                round.stale = true;
                round.errors.push(e);
                continue;
            }
        };
        if answer.error_code != code::NONE {
            round.stale |= is_stale_metadata(answer.error_code);
            round
                .errors
                .push(code_error(answer.error_code, "fetch").with_broker(addr.clone()));
            continue;
        }
        for t in answer
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == topic)
        {
            for pd in &t.partitions {
                let p = pd.partition_index;
                let Some(position) = positions.get_mut(&p) else {
                    continue;
                };
                match pd.error_code {
                    code::NONE => {}
                    code::OFFSET_OUT_OF_RANGE => {
                        round.out_of_range.push(p);
                        continue;
                    }
                    c if is_stale_metadata(c) || code_kind(c).is_retriable() => {
                        log::debug!("modern: fetch {topic}/{p}: {}", super::errors::code_name(c));
                        round.stale = true;
                        continue;
                    }
                    c => {
                        round.errors.push(
                            code_error(c, "fetch")
                                .with_topic(topic)
                                .with_partition(p)
                                .with_broker(addr.clone()),
                        );
                        continue;
                    }
                }
                let Some(data) = pd.records.as_ref() else {
                    continue;
                };
                let aborted: Option<Vec<(i64, i64)>> = read_committed.then(|| {
                    pd.aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect()
                });
                let decoded = decode_committed(topic, p, data, *position, aborted.as_deref());
                if let Some(next) = decoded.next_offset {
                    *position = (*position).max(next);
                }
                round.records.extend(decoded.records);
            }
        }
    }
    Ok(round)
}
