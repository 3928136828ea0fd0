//! Offsets: ListOffsets (earliest / latest, to the partition leaders), and a group's
//! OffsetFetch / OffsetCommit (to its coordinator).

use crate::retry::Doubling;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{topic_name, Cluster, BACKOFF_MAX, BACKOFF_START};
use super::errors::{code, code_error, code_kind, is_stale_metadata};
use crate::error::{Error, ErrorKind, Result};

/// ListOffsets' timestamp for the first offset still stored.
pub(super) const EARLIEST: i64 = -2;
/// ListOffsets' timestamp for the offset the next record will get (the high watermark).
pub(super) const LATEST: i64 = -1;

/// A group name for a request.
pub(super) fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// The `EARLIEST` or `LATEST` offset of each of `partitions`, asking each leader. Retriable
/// answers (a leader moving, a topic just created) are asked again with fresh metadata for
/// up to `request_timeout`.
pub(super) fn list_offsets(
    cluster: &mut Cluster,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<HashMap<i32, i64>> {
    let started = Instant::now();
    let wait = cluster.settings().request_timeout;
    let mut found = HashMap::new();
    let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
    loop {
        let missing: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !found.contains_key(p))
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let last = match list_once(cluster, topic, &missing, timestamp, &mut found) {
            Ok(()) => None,
            Err(e) if e.is_retriable() || e.kind() == ErrorKind::UnknownTopic => Some(e),
            Err(e) => return Err(e.with_topic(topic)),
        };
        if found.len() >= partitions.len() {
            return Ok(found);
        }
        if started.elapsed() + backoff.peek() > wait {
            let e = last.unwrap_or_else(|| {
                Error::new(
                    ErrorKind::BrokerRetriable,
                    format!("no offsets for partitions {missing:?} within {wait:?}"),
                )
            });
            return Err(e.with_topic(topic));
        }
        cluster.forget(topic);
        std::thread::sleep(backoff.next_wait());
    }
}

/// One round of ListOffsets to each leader of `partitions`, adding answers to `found`. The
/// first retriable failure is returned after every leader was asked.
fn list_once(
    cluster: &mut Cluster,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
    found: &mut HashMap<i32, i64>,
) -> Result<()> {
    let meta = cluster.topic(topic, false)?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let mut first_error = None;
    for &p in partitions {
        match meta.leader(p) {
            Some(node) => by_leader.entry(node).or_default().push(p),
            None => {
                first_error.get_or_insert_with(|| {
                    Error::new(ErrorKind::BrokerRetriable, "the partition has no leader")
                        .with_partition(p)
                });
            }
        }
    }
    let bound = cluster.settings().request_timeout;
    for (node, ps) in by_leader {
        let addr = match cluster.node_addr(node) {
            Ok(a) => a,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let version = cluster.version::<ListOffsetsRequest>(&addr)?;
        let timeout_ms = if version >= 10 {
            bound.as_millis().min(i32::MAX as u128) as i32
        } else {
            0
        };
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    ps.iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )])
            .with_timeout_ms(timeout_ms);
        let answer = cluster.call_at(&addr, &request, version, bound);
        let answer = match answer {
            Ok(a) => a,
            Err(e) if e.is_retriable() => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        for t in answer.topics.iter().filter(|t| t.name.0.as_str() == topic) {
            for pr in &t.partitions {
                if pr.error_code == code::NONE {
                    found.insert(pr.partition_index, pr.offset);
                } else if is_stale_metadata(pr.error_code)
                    || code_kind(pr.error_code).is_retriable()
                {
                    first_error.get_or_insert_with(|| {
                        code_error(pr.error_code, "list offsets").with_partition(pr.partition_index)
                    });
                } else {
                    return Err(code_error(pr.error_code, "list offsets")
                        .with_partition(pr.partition_index));
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The group's committed offsets of `partitions` (absent: nothing committed), from the
/// coordinator at `coordinator`. `Ok(Err(code))` when the broker answered an error code
/// (the caller finds the coordinator again after "not coordinator").
pub(super) fn fetch_committed(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<std::result::Result<HashMap<i32, i64>, i16>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let bound = cluster.settings().request_timeout;
    let answer = cluster.call(coordinator, &request, bound)?;
    if answer.error_code != code::NONE {
        return Ok(Err(answer.error_code));
    }
    let mut out = HashMap::new();
    for t in answer.topics.iter().filter(|t| t.name.0.as_str() == topic) {
        for pr in &t.partitions {
            match pr.error_code {
                code::NONE if pr.committed_offset >= 0 => {
                    out.insert(pr.partition_index, pr.committed_offset);
                }
                code::NONE | code::UNKNOWN_TOPIC_OR_PARTITION => {}
                c => return Ok(Err(c)),
            }
        }
    }
    Ok(Ok(out))
}

/// Who commits: the group, and the member's generation and id (`-1` and `""` outside a
/// group generation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Committer<'a> {
    /// The group.
    pub group: &'a str,
    /// The generation the member belongs to.
    pub generation: i32,
    /// The member id the coordinator gave.
    pub member_id: &'a str,
    /// Static membership: the member's instance id.
    pub instance: Option<&'a str>,
}

/// Commits `offsets` (`(partition, next offset)`) of `topic` for `who` at `coordinator`.
/// Returns the first partition's error code ([`code::NONE`] when all were committed; a
/// rebalance answers `RebalanceInProgress`, `IllegalGeneration` or `UnknownMemberId`).
pub(super) fn commit(
    cluster: &mut Cluster,
    coordinator: &str,
    who: &Committer<'_>,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<i16> {
    let version = cluster.version::<OffsetCommitRequest>(coordinator)?;
    let mut request = OffsetCommitRequest::default()
        .with_group_id(group_id(who.group))
        .with_generation_id_or_member_epoch(who.generation)
        .with_member_id(StrBytes::from_string(who.member_id.to_string()))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|&(p, offset)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_metadata(Some(StrBytes::new()))
                    })
                    .collect(),
            )]);
    if version >= 7 {
        request.group_instance_id = who.instance.map(|i| StrBytes::from_string(i.to_string()));
    }
    let bound = cluster.settings().request_timeout;
    let answer = cluster.call_at(coordinator, &request, version, bound)?;
    Ok(answer
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .find(|&c| c != code::NONE)
        .unwrap_or(code::NONE))
}
