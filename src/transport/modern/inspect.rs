//! Inspection for operators (the `kafka-sync` CLI, the metrics' lag): the cluster's topics
//! with leaders, replicas and ISR (Metadata), earliest and latest offsets (ListOffsets), the
//! consumer groups (ListGroups, DescribeGroups), a group's committed offsets (OffsetFetch),
//! and reading a partition without joining a group (Fetch). Nothing here creates a topic:
//! a topic the broker does not know is [`ErrorKind::UnknownTopic`], a group it does not know
//! [`ErrorKind::Broker`] naming the group.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetFetchRequest,
};

use super::api::Api;
use super::assign::decode_assignment;
use super::cluster::{Cluster, BACKOFF_MAX, BACKOFF_START};
use super::coordinator::find_coordinator;
use super::errors::{code, code_error, code_kind};
use super::fetch::{fetch_round, FetchLimits};
use super::offsets::{group_id, list_offsets, EARLIEST, LATEST};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::Doubling;
use crate::transport::ConsumedRecord;

impl Api for ListGroupsRequest {
    const KEY: ApiKey = ApiKey::ListGroups;
    const NAME: &'static str = "ListGroups";
    const MIN: i16 = 0;
    // v5 adds a group-type filter we do not send.
    const MAX: i16 = 4;
    type Response = ListGroupsResponse;
}

impl Api for DescribeGroupsRequest {
    const KEY: ApiKey = ApiKey::DescribeGroups;
    const NAME: &'static str = "DescribeGroups";
    const MIN: i16 = 0;
    const MAX: i16 = 5;
    type Response = DescribeGroupsResponse;
}

/// A broker of the cluster, as metadata names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokerDescription {
    /// The broker's node id.
    pub id: i32,
    /// `host:port` clients connect to.
    pub address: String,
}

/// One partition as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionDescription {
    /// The partition id.
    pub partition: i32,
    /// The leader's node id, `None` while it has no leader.
    pub leader: Option<i32>,
    /// Node ids of every replica.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Node ids of replicas that are offline.
    pub offline: Vec<i32>,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicDescription {
    /// The topic name.
    pub name: String,
    /// Whether it is one of Kafka's own (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionDescription>,
}

/// The cluster: brokers, controller, topics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterDescription {
    /// The brokers, by node id.
    pub brokers: Vec<BrokerDescription>,
    /// The controller's node id, when metadata names one.
    pub controller: Option<i32>,
    /// The topics asked for (every topic when none was named), by name.
    pub topics: Vec<TopicDescription>,
}

/// A partition's first stored offset and the offset the next record will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionOffsets {
    /// The partition id.
    pub partition: i32,
    /// The log start offset: the first record still stored.
    pub earliest: i64,
    /// The high watermark: the offset of the next record written.
    pub latest: i64,
}

/// A consumer group as ListGroups names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupListing {
    /// The group id.
    pub group: String,
    /// `consumer` for consumer groups (empty for groups that only commit offsets).
    pub protocol_type: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, ... (empty on brokers before Kafka 2.6).
    pub state: String,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// The client id it connected with.
    pub client_id: String,
    /// The host it connected from.
    pub client_host: String,
    /// Its assigned partitions, by topic (empty while the group rebalances).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A group's state and members (DescribeGroups).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, `CompletingRebalance`.
    pub state: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// The assignor the group chose (`range`, `roundrobin`, ...).
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMember>,
}

/// The brokers, the controller and `topics` (every topic when `None`). A named topic the
/// broker does not know is [`ErrorKind::UnknownTopic`].
pub(super) fn describe(
    cluster: &mut Cluster,
    topics: Option<&[&str]>,
) -> Result<ClusterDescription> {
    let answer = cluster.metadata(topics, false)?;
    let mut brokers: Vec<BrokerDescription> = answer
        .brokers
        .iter()
        .map(|b| BrokerDescription {
            id: b.node_id.0,
            address: format!("{}:{}", b.host.as_str(), b.port),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let mut out = Vec::new();
    for t in &answer.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code == code::UNKNOWN_TOPIC_OR_PARTITION {
            return Err(unknown_topic(&name));
        }
        if t.error_code != code::NONE {
            return Err(code_error(t.error_code, "metadata request").with_topic(&name));
        }
        let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
        let mut partitions: Vec<PartitionDescription> = t
            .partitions
            .iter()
            .map(|p| PartitionDescription {
                partition: p.partition_index,
                leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                replicas: ids(&p.replica_nodes),
                isr: ids(&p.isr_nodes),
                offline: ids(&p.offline_replicas),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        out.push(TopicDescription {
            name,
            internal: t.is_internal,
            partitions,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ClusterDescription {
        brokers,
        controller: (answer.controller_id.0 >= 0).then_some(answer.controller_id.0),
        topics: out,
    })
}

fn unknown_topic(name: &str) -> Error {
    Error::new(
        ErrorKind::UnknownTopic,
        format!("the broker does not know the topic {name:?}"),
    )
    .with_topic(name)
}

/// The partition ids of an existing `topic` (never creates it).
fn partitions_of(cluster: &mut Cluster, topic: &str) -> Result<Vec<i32>> {
    let d = describe(cluster, Some(&[topic]))?;
    let t = d
        .topics
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| unknown_topic(topic))?;
    Ok(t.partitions.iter().map(|p| p.partition).collect())
}

/// Earliest and latest offset of each partition of `topic`.
pub(super) fn offsets(cluster: &mut Cluster, topic: &str) -> Result<Vec<PartitionOffsets>> {
    let ids = partitions_of(cluster, topic)?;
    let earliest = list_offsets(cluster, topic, &ids, EARLIEST)?;
    let latest = list_offsets(cluster, topic, &ids, LATEST)?;
    Ok(ids
        .iter()
        .map(|&p| PartitionOffsets {
            partition: p,
            earliest: earliest.get(&p).copied().unwrap_or(0),
            latest: latest.get(&p).copied().unwrap_or(0),
        })
        .collect())
}

/// Every group known to any broker of the cluster, by name.
pub(super) fn list_groups(cluster: &mut Cluster) -> Result<Vec<GroupListing>> {
    let answer = cluster.metadata(Some(&[]), false)?;
    let addrs: Vec<String> = answer
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host.as_str(), b.port))
        .collect();
    let bound = cluster.settings().request_timeout;
    let mut groups = Vec::new();
    for addr in addrs {
        let answer = cluster.call(&addr, &ListGroupsRequest::default(), bound)?;
        if answer.error_code != code::NONE {
            return Err(code_error(answer.error_code, "listing groups").with_broker(addr));
        }
        groups.extend(answer.groups.iter().map(|g| GroupListing {
            group: g.group_id.0.to_string(),
            protocol_type: g.protocol_type.to_string(),
            state: g.group_state.to_string(),
        }));
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    groups.dedup_by(|a, b| a.group == b.group);
    Ok(groups)
}

/// The error for a group the coordinator does not know.
fn unknown_group(group: &str) -> Error {
    Error::new(
        ErrorKind::Broker,
        format!(
            "unknown consumer group {group:?}: the broker has no members and no committed \
             offsets for it (see `kafka-sync groups`)"
        ),
    )
    .with_broker_code(GROUP_ID_NOT_FOUND)
}

/// Kafka's GroupIdNotFound.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// `group`'s state and members; a group the coordinator does not know is an error naming it.
pub(super) fn describe_group(cluster: &mut Cluster, group: &str) -> Result<GroupDescription> {
    let bound = cluster.settings().request_timeout;
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let started = Instant::now();
    let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
    let g = loop {
        let coordinator = find_coordinator(cluster, group)?;
        let answer = cluster.call(&coordinator, &request, bound)?;
        let g = answer
            .groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| unknown_group(group))?;
        // A coordinator still loading (a broker just started) or moving: ask again, within
        // request_timeout.
        let retriable = g.error_code != code::NONE && code_kind(g.error_code).is_retriable();
        if retriable && started.elapsed() + backoff.peek() <= bound {
            std::thread::sleep(backoff.next_wait());
            continue;
        }
        break g;
    };
    // GroupIdNotFound on newer brokers; older ones answer the state "Dead".
    if g.error_code == GROUP_ID_NOT_FOUND || g.group_state.as_str() == "Dead" {
        return Err(unknown_group(group));
    }
    if g.error_code != code::NONE {
        return Err(code_error(
            g.error_code,
            &format!("describing group {group}"),
        ));
    }
    let members = g
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: decode_assignment(&m.member_assignment).unwrap_or_default(),
        })
        .collect();
    Ok(GroupDescription {
        group: group.to_string(),
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
    })
}

/// `group`'s committed offsets: topic → partition → next offset to read.
pub(super) fn committed(
    cluster: &mut Cluster,
    group: &str,
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>> {
    let coordinator = find_coordinator(cluster, group)?;
    let bound = cluster.settings().request_timeout;
    // Topics `None`: every topic the group committed (OffsetFetch v2 and later).
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let answer = cluster.call(&coordinator, &request, bound)?;
    if answer.error_code != code::NONE {
        return Err(code_error(
            answer.error_code,
            &format!("fetching the committed offsets of group {group}"),
        ));
    }
    let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for t in &answer.topics {
        for p in &t.partitions {
            if p.error_code == code::NONE && p.committed_offset >= 0 {
                out.entry(t.name.0.to_string())
                    .or_default()
                    .insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Reads `topic` from `positions` (partition → next offset, advanced past what was read)
/// without joining a group: fetch rounds until at least one record came or `wait` passed.
pub(super) fn read(
    cluster: &mut Cluster,
    topic: &str,
    positions: &mut BTreeMap<i32, i64>,
    wait: Duration,
) -> Result<Vec<ConsumedRecord>> {
    let started = Instant::now();
    loop {
        let left = wait.saturating_sub(started.elapsed());
        let limits = FetchLimits {
            max_wait: left.min(Duration::from_millis(500)),
            min_bytes: 1,
            partition_max_bytes: 1 << 20,
            read_committed: true,
        };
        let round = fetch_round(cluster, topic, positions, limits)?;
        if let Some(e) = round.errors.into_iter().next() {
            return Err(e.with_topic(topic));
        }
        if round.stale {
            cluster.forget(topic);
        }
        if !round.out_of_range.is_empty() {
            let ids = round.out_of_range.clone();
            let earliest = list_offsets(cluster, topic, &ids, EARLIEST)?;
            for (p, o) in earliest {
                positions.insert(p, o);
            }
        }
        if !round.records.is_empty() || started.elapsed() >= wait {
            return Ok(round.records);
        }
    }
}

/// Partition ids of `topic`, checking that it exists.
pub(super) fn partition_ids(cluster: &mut Cluster, topic: &str) -> Result<Vec<i32>> {
    partitions_of(cluster, topic)
}
