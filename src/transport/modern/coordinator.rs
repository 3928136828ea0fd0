//! Group membership on the wire: FindCoordinator, JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup, each built for the version the coordinator speaks. What the answers mean for
//! the member is decided in `group.rs`.

use crate::retry::Doubling;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Cluster, BACKOFF_MAX, BACKOFF_START};
use super::conn::Connection;
use super::errors::{code, code_error_with, code_kind};
use super::offsets::group_id;
use crate::error::{Error, ErrorKind, Result};

/// The group protocol type of consumers.
const CONSUMER: &str = "consumer";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// The address of `group`'s coordinator. A broker still creating `__consumer_offsets` (the
/// first group on a new cluster) answers "not available": asked again for up to
/// `request_timeout`.
pub(super) fn find_coordinator(cluster: &mut Cluster, group: &str) -> Result<String> {
    let started = Instant::now();
    let wait = cluster.settings().request_timeout;
    let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
    loop {
        let addr = cluster.any_addr()?;
        let version = cluster.version::<FindCoordinatorRequest>(&addr)?;
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.coordinator_keys = vec![text(group)];
        } else {
            request.key = text(group);
        }
        let answer = cluster.call_at(&addr, &request, version, wait)?;
        let (error, message, host, port) = if version >= 4 {
            match answer.coordinators.first() {
                Some(c) => (
                    c.error_code,
                    c.error_message.clone(),
                    c.host.clone(),
                    c.port,
                ),
                None => (code::COORDINATOR_NOT_AVAILABLE, None, StrBytes::new(), -1),
            }
        } else {
            (
                answer.error_code,
                answer.error_message.clone(),
                answer.host.clone(),
                answer.port,
            )
        };
        if error == code::NONE {
            return Ok(format!("{}:{port}", host.as_str()));
        }
        let e = code_error_with(
            error,
            &format!("finding the coordinator of group {group}"),
            message.as_deref(),
        )
        .with_broker(addr);
        if !code_kind(error).is_retriable() || started.elapsed() + backoff.peek() > wait {
            return Err(e);
        }
        log::debug!("modern: {e}; asking again");
        std::thread::sleep(backoff.next_wait());
    }
}

/// A JoinGroup as this member sends it.
#[derive(Debug, Clone)]
pub(super) struct Join<'a> {
    /// The group.
    pub group: &'a str,
    /// The member id ("" on a first join).
    pub member_id: &'a str,
    /// How long the coordinator waits for a heartbeat before removing the member.
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin.
    pub rebalance_timeout: Duration,
    /// The strategies offered, preferred first, with this member's subscription bytes.
    pub protocols: Vec<(&'static str, Bytes)>,
    /// Static membership: the member's stable instance id.
    pub instance: Option<&'a str>,
}

/// What the coordinator answered to a JoinGroup.
#[derive(Debug, Clone, Default)]
pub(super) struct Joined {
    /// The error code (`MemberIdRequired` carries the id to join with in `member_id`).
    pub error: i16,
    /// The new generation.
    pub generation: i32,
    /// This member's id.
    pub member_id: String,
    /// The leader's member id.
    pub leader: String,
    /// The strategy the coordinator chose.
    pub protocol: Option<String>,
    /// For the leader: every member's id and subscription bytes.
    pub members: Vec<(String, Bytes)>,
}

/// Sends a JoinGroup to `coordinator`; it answers once every member rejoined or
/// `rebalance_timeout` passed, so the wait is bounded by that plus `request_timeout`.
pub(super) fn join(cluster: &mut Cluster, coordinator: &str, j: &Join<'_>) -> Result<Joined> {
    let version = cluster.version::<JoinGroupRequest>(coordinator)?;
    let mut request = JoinGroupRequest::default()
        .with_group_id(group_id(j.group))
        .with_session_timeout_ms(millis(j.session_timeout))
        .with_member_id(text(j.member_id))
        .with_protocol_type(StrBytes::from_static_str(CONSUMER))
        .with_protocols(
            j.protocols
                .iter()
                .map(|(name, meta)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_metadata(meta.clone())
                })
                .collect(),
        );
    if version >= 1 {
        request.rebalance_timeout_ms = millis(j.rebalance_timeout);
    }
    if let Some(id) = j.instance {
        if version >= 5 {
            request.group_instance_id = Some(text(id));
        } else {
            log::warn!(
                "modern: the coordinator speaks JoinGroup v{version} (before Kafka 2.3): no \
                 static membership, joining group {} as a dynamic member",
                j.group
            );
        }
    }
    let bound = j.rebalance_timeout + cluster.settings().request_timeout;
    let a = cluster.call_at(coordinator, &request, version, bound)?;
    Ok(Joined {
        error: a.error_code,
        generation: a.generation_id,
        member_id: a.member_id.as_str().to_string(),
        leader: a.leader.as_str().to_string(),
        protocol: a.protocol_name.as_ref().map(|p| p.as_str().to_string()),
        members: a
            .members
            .iter()
            .map(|m| (m.member_id.as_str().to_string(), m.metadata.clone()))
            .collect(),
    })
}

/// Sends a SyncGroup (the leader with every member's assignment, the others with none) and
/// returns the error code and this member's assignment bytes.
#[allow(clippy::too_many_arguments)]
pub(super) fn sync(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
    generation: i32,
    member_id: &str,
    protocol: &str,
    assignments: Vec<(String, Bytes)>,
    rebalance_timeout: Duration,
    instance: Option<&str>,
) -> Result<(i16, Bytes)> {
    let version = cluster.version::<SyncGroupRequest>(coordinator)?;
    let mut request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(text(member_id))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(&m))
                        .with_assignment(a)
                })
                .collect(),
        );
    if version >= 5 {
        request.protocol_type = Some(StrBytes::from_static_str(CONSUMER));
        request.protocol_name = Some(text(protocol));
    }
    if version >= 3 {
        request.group_instance_id = instance.map(text);
    }
    let bound = rebalance_timeout + cluster.settings().request_timeout;
    let a = cluster.call_at(coordinator, &request, version, bound)?;
    Ok((a.error_code, a.assignment))
}

/// One heartbeat on the heartbeat thread's own connection; returns the error code.
pub(super) fn heartbeat(
    conn: &mut Connection,
    group: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
    bound: Duration,
) -> Result<i16> {
    let version = conn.version::<HeartbeatRequest>()?;
    let mut request = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(text(member_id));
    if version >= 3 {
        request.group_instance_id = instance.map(text);
    }
    Ok(conn.call_at(&request, version, bound)?.error_code)
}

/// Tells the coordinator this member leaves, so the others rebalance at once instead of
/// after the session timeout. Returns the error code.
pub(super) fn leave(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
    member_id: &str,
) -> Result<i16> {
    let version = cluster.version::<LeaveGroupRequest>(coordinator)?;
    let request = leave_request(version, group, member_id, "the consumer is closing");
    let bound = cluster.settings().request_timeout;
    let a = cluster.call_at(coordinator, &request, version, bound)?;
    Ok(leave_answer(&a))
}

/// Like [`leave`], on a connection of its own (another thread takes a busy member out).
pub(super) fn leave_on(
    conn: &mut Connection,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    reason: &str,
    bound: Duration,
) -> Result<i16> {
    let version = conn.version::<LeaveGroupRequest>()?;
    let mut request = leave_request(version, group, member_id, reason);
    if let (Some(id), Some(who)) = (instance, request.members.first_mut()) {
        who.group_instance_id = Some(text(id));
    }
    Ok(leave_answer(&conn.call_at(&request, version, bound)?))
}

fn leave_answer(a: &kafka_protocol::messages::LeaveGroupResponse) -> i16 {
    if a.error_code != code::NONE {
        return a.error_code;
    }
    a.members
        .iter()
        .map(|m| m.error_code)
        .find(|&c| c != code::NONE)
        .unwrap_or(code::NONE)
}

fn leave_request(version: i16, group: &str, member_id: &str, reason: &str) -> LeaveGroupRequest {
    let mut request = LeaveGroupRequest::default().with_group_id(group_id(group));
    if version >= 3 {
        let mut who = MemberIdentity::default().with_member_id(text(member_id));
        if version >= 5 {
            who.reason = Some(text(reason));
        }
        request.members = vec![who];
    } else {
        request.member_id = text(member_id);
    }
    request
}

/// The error for a group answer `c` while doing `what`.
pub(super) fn group_error(c: i16, what: &str, group: &str, coordinator: &str) -> Error {
    let e = code_error_with(c, &format!("{what} (group {group})"), None).with_broker(coordinator);
    if c == code::UNSUPPORTED_VERSION {
        return Error::new(ErrorKind::UnsupportedBroker, e.message().to_string())
            .with_broker(coordinator);
    }
    e
}
