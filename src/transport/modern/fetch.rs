//! One fetch round: a Fetch request to every leader of the assigned partitions, all written
//! before any answer is read (so the round waits `max_wait` once, not once per broker), and
//! the answers turned into records, new positions, and what needs attention (offsets out
//! of range, stale metadata, other errors).
//!
//! A round can be written now and read later ([`send_round`], then [`receive_round`]): the
//! subscription writes the next round before it hands the records of this one over, so the
//! broker prepares the next answer while the records are handled. Routing (metadata, which
//! broker leads what) and the connections the requests travel on may then be two
//! [`Cluster`]s: an answer still unread on a connection must not be met by another call's
//! read.

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
    /// Per partition answered without error: the offset it was fetched at and the offset
    /// after its last complete batch, if it had one.
    pub advanced: Vec<(i32, i64, Option<i64>)>,
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

/// Where a round goes: per leader's address, its partitions and their fetch offsets.
#[derive(Debug, Default)]
pub(super) struct Route {
    targets: Vec<(String, Vec<(i32, i64)>)>,
    /// A partition had no leader, or a leader no address: reload metadata.
    stale: bool,
    errors: Vec<Error>,
}

/// Groups `positions` (partition → next offset) of `topic` by leader, from `cluster`'s
/// metadata.
pub(super) fn route(
    cluster: &mut Cluster,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Result<Route> {
    let meta = cluster.topic(topic, false)?;
    let mut out = Route::default();
    let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
    for (&p, &offset) in positions {
        match meta.leader(p) {
            Some(node) => by_leader.entry(node).or_default().push((p, offset)),
            None => out.stale = true,
        }
    }
    for (node, parts) in by_leader {
        match cluster.node_addr(node) {
            Ok(addr) => out.targets.push((addr, parts)),
            Err(e) => {
                out.stale = true;
                out.errors.push(e);
            }
        }
    }
    Ok(out)
}

/// One request of a round: the broker's address, the correlation id and version to read
/// its answer with, the partitions asked for at their offsets.
type Sent = (String, (i32, i16), Vec<(i32, i64)>);

/// A round written and not read yet.
#[derive(Debug)]
pub(super) struct InFlight {
    /// One request per broker.
    sent: Vec<Sent>,
    deadline: Instant,
    read_committed: bool,
    stale: bool,
    errors: Vec<Error>,
}

impl InFlight {
    /// The partitions asked for, with the offsets asked at.
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.sent
            .iter()
            .flat_map(|(_, _, parts)| parts.iter().copied())
            .collect()
    }
}

/// Writes the requests of `route` on `conns`' connections without waiting for answers.
pub(super) fn send_round(
    conns: &mut Cluster,
    topic: &str,
    route: Route,
    limits: FetchLimits,
) -> InFlight {
    let bound = limits.max_wait + conns.settings().request_timeout;
    let mut flight = InFlight {
        sent: Vec::new(),
        deadline: Instant::now() + bound,
        read_committed: limits.read_committed,
        stale: route.stale,
        errors: route.errors,
    };
    for (addr, parts) in route.targets {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(clamp_i32(limits.max_wait.as_millis()))
            .with_min_bytes(clamp_i32(limits.min_bytes as u128))
            .with_max_bytes(clamp_i32(
                (limits.partition_max_bytes as u128).saturating_mul(parts.len() as u128),
            ))
            .with_isolation_level(i8::from(limits.read_committed))
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
        match conns.send(&addr, &request, flight.deadline) {
            Ok(s) => flight.sent.push((addr, s, parts)),
            Err(e) => {
                flight.stale = true;
                flight.errors.push(e);
            }
        }
    }
    flight
}

/// Reads the answers of `flight` from `conns` (by the round's own deadline, never the
/// caller's: a read given up half-way would leave the connection unusable) and decodes them.
pub(super) fn receive_round(conns: &mut Cluster, topic: &str, flight: InFlight) -> Round {
    let mut round = Round {
        stale: flight.stale,
        errors: flight.errors,
        ..Round::default()
    };
    let read_committed = flight.read_committed;
    // A prefetch read long after it was written (its partitions stayed paused) still gets
    // `request_timeout` for its answer.
    let deadline = flight
        .deadline
        .max(Instant::now() + conns.settings().request_timeout);
    for (addr, s, parts) in flight.sent {
        let answer = match conns.receive::<FetchRequest>(&addr, s, deadline) {
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
                let Some(&(_, position)) = parts.iter().find(|&&(q, _)| q == p) else {
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
                    round.advanced.push((p, position, None));
                    continue;
                };
                let aborted: Option<Vec<(i64, i64)>> = read_committed.then(|| {
                    pd.aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect()
                });
                let decoded = decode_committed(topic, p, data, position, aborted.as_deref());
                round.advanced.push((p, position, decoded.next_offset));
                round.records.extend(decoded.records);
            }
        }
    }
    round
}

/// Fetches `positions` (partition → next offset) of `topic` and waits for the answers,
/// advancing each position past what was read.
pub(super) fn fetch_round(
    cluster: &mut Cluster,
    topic: &str,
    positions: &mut BTreeMap<i32, i64>,
    limits: FetchLimits,
) -> Result<Round> {
    let route = route(cluster, topic, positions)?;
    let flight = send_round(cluster, topic, route, limits);
    let round = receive_round(cluster, topic, flight);
    for &(p, _, next) in &round.advanced {
        if let (Some(position), Some(next)) = (positions.get_mut(&p), next) {
            *position = (*position).max(next);
        }
    }
    Ok(round)
}
