//! [`Membership`]: one member of a consumer group, on its consumer thread. Finds the
//! coordinator, joins (JoinGroup → the leader computes the assignment → SyncGroup), keeps a
//! heartbeat thread running, rejoins when that thread reports a rebalance, commits with its
//! generation and member id, and leaves on close.
//!
//! The protocol is the classic eager one: at a rebalance every member gives up all its
//! partitions before the group moves on, so no partition has two owners at once.

use crate::retry::Doubling;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::assign::{
    assign, decode_assignment, decode_subscription, encode_assignment, encode_subscription,
    Assignor,
};
use super::cluster::{Cluster, BACKOFF_MAX, BACKOFF_START};
use super::conn::Connection;
use super::coordinator::{self, group_error, Join, Joined};
use super::errors::{code, is_coordinator_moved};
use super::heartbeat::{lock, Heartbeat, MemberState, Shared};
use super::Settings;
use crate::error::{Error, ErrorKind, Result};

/// The outcome of a join: the partitions of our topic, and whether positions of partitions
/// kept from the previous generation are still ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Assigned {
    /// This member's partitions of the topic, sorted.
    pub partitions: Vec<i32>,
    /// Whether the member went straight from the previous generation to this one (same
    /// member id, generation + 1): partitions it kept were nobody else's in between.
    pub continued: bool,
}

/// A group member.
#[derive(Debug)]
pub(super) struct Membership {
    settings: Arc<Settings>,
    group: String,
    topic: String,
    client_id: String,
    /// Static membership: this member's instance id (`<group_instance_id>-<topic>`).
    instance: Option<String>,
    shared: Shared,
    heartbeat: Option<Heartbeat>,
}

impl Membership {
    /// A member of `group` reading `topic`; nothing is sent until [`join`](Self::join).
    pub fn new(settings: Arc<Settings>, group: &str, topic: &str, client_id: &str) -> Self {
        Membership {
            instance: settings
                .group_instance_id
                .as_ref()
                .map(|id| format!("{id}-{topic}")),
            settings,
            group: group.to_string(),
            topic: topic.to_string(),
            client_id: client_id.to_string(),
            shared: Arc::new(Mutex::new(MemberState::default())),
            heartbeat: None,
        }
    }

    /// Whether the member must (re)join before reading: never joined, or a rebalance began.
    pub fn needs_join(&self) -> bool {
        let s = lock(&self.shared);
        s.generation < 0 || s.rejoin
    }

    /// Static membership: this member's instance id.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The generation and member id to commit with.
    pub fn generation(&self) -> (i32, String) {
        let s = lock(&self.shared);
        (s.generation, s.member_id.clone())
    }

    /// Flags a rejoin (a commit was refused because the group rebalanced without us).
    pub fn request_rejoin(&self) {
        lock(&self.shared).rejoin = true;
    }

    /// The coordinator's address, found again if unknown or reported lost.
    pub fn coordinator(&mut self, cluster: &mut Cluster) -> Result<String> {
        {
            let mut s = lock(&self.shared);
            if s.coordinator_lost {
                s.coordinator = None;
                s.coordinator_lost = false;
            }
            if let Some(a) = &s.coordinator {
                return Ok(a.clone());
            }
        }
        let addr = coordinator::find_coordinator(cluster, &self.group)?;
        log::debug!("modern: group {} has its coordinator at {addr}", self.group);
        lock(&self.shared).coordinator = Some(addr.clone());
        Ok(addr)
    }

    /// Forgets the coordinator (it moved or failed); the next call finds it again.
    pub fn forget_coordinator(&self) {
        lock(&self.shared).coordinator = None;
    }

    /// Runs `f` against the coordinator: a "not coordinator" / "loading" answer (`Ok(Err(code))`)
    /// or a connection failure finds the coordinator and tries again, for up to
    /// `request_timeout`; other codes are errors saying `what`.
    pub fn with_coordinator<T>(
        &mut self,
        cluster: &mut Cluster,
        what: &str,
        mut f: impl FnMut(&mut Cluster, &str) -> Result<std::result::Result<T, i16>>,
    ) -> Result<T> {
        let started = Instant::now();
        let wait = self.settings.request_timeout;
        let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            let addr = self.coordinator(cluster)?;
            let last = match f(cluster, &addr) {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(c)) if is_coordinator_moved(c) => group_error(c, what, &self.group, &addr),
                Ok(Err(c)) => return Err(group_error(c, what, &self.group, &addr)),
                Err(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) => e,
                Err(e) => return Err(e),
            };
            self.forget_coordinator();
            if started.elapsed() + backoff.peek() > wait {
                return Err(last);
            }
            log::debug!("modern: {last}; finding the coordinator again");
            std::thread::sleep(backoff.next_wait());
        }
    }

    /// Joins the group and returns this member's partitions of the topic. Blocks until every
    /// member rejoined: at most `rebalance_timeout` plus two `request_timeout`s. After a
    /// failure the member still needs to join (the next poll tries again).
    pub fn join(&mut self, cluster: &mut Cluster) -> Result<Assigned> {
        let joined = self.try_join(cluster);
        if joined.is_err() {
            lock(&self.shared).rejoin = true;
        }
        joined
    }

    fn try_join(&mut self, cluster: &mut Cluster) -> Result<Assigned> {
        let started = Instant::now();
        let settings = self.settings.clone();
        let s = &*settings;
        let bound = s.rebalance_timeout + s.request_timeout * 2;
        let (previous_generation, previous_member) = {
            let mut st = lock(&self.shared);
            st.heartbeating = false;
            st.rejoin = false;
            (st.generation, st.member_id.clone())
        };
        let metadata = encode_subscription(&[&self.topic]);
        let protocols: Vec<(&'static str, Bytes)> = s
            .assignor
            .preference()
            .iter()
            .map(|a| (a.protocol_name(), metadata.clone()))
            .collect();
        let mut backoff = Doubling::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            if started.elapsed() > bound {
                return Err(Error::timeout(
                    format!("joining group {}", self.group),
                    bound,
                ));
            }
            let addr = self.coordinator(cluster)?;
            let member_id = lock(&self.shared).member_id.clone();
            let request = Join {
                group: &self.group,
                member_id: &member_id,
                session_timeout: s.session_timeout,
                rebalance_timeout: s.rebalance_timeout,
                protocols: protocols.clone(),
                instance: self.instance.as_deref(),
            };
            let joined = match coordinator::join(cluster, &addr, &request) {
                Ok(j) => j,
                Err(e) if e.is_retriable() => {
                    log::debug!("modern: JoinGroup of {} failed: {e}", self.group);
                    self.forget_coordinator();
                    std::thread::sleep(backoff.next_wait());
                    continue;
                }
                Err(e) => return Err(e),
            };
            match joined.error {
                code::NONE => {}
                code::MEMBER_ID_REQUIRED => {
                    lock(&self.shared).member_id = joined.member_id;
                    continue;
                }
                code::UNKNOWN_MEMBER_ID => {
                    lock(&self.shared).member_id.clear();
                    continue;
                }
                code::REBALANCE_IN_PROGRESS => continue,
                c if is_coordinator_moved(c) => {
                    self.forget_coordinator();
                    std::thread::sleep(backoff.next_wait());
                    continue;
                }
                c => return Err(group_error(c, "joining", &self.group, &addr)),
            }
            lock(&self.shared).member_id = joined.member_id.clone();
            let protocol = joined
                .protocol
                .clone()
                .unwrap_or_else(|| s.assignor.protocol_name().to_string());
            let assignments = if joined.leader == joined.member_id {
                self.plan(cluster, &joined, &protocol)?
            } else {
                Vec::new()
            };
            let (error, bytes) = match coordinator::sync(
                cluster,
                &addr,
                &self.group,
                joined.generation,
                &joined.member_id,
                &protocol,
                assignments,
                s.rebalance_timeout,
                self.instance.as_deref(),
            ) {
                Ok(answer) => answer,
                Err(e) if e.is_retriable() => {
                    self.forget_coordinator();
                    continue;
                }
                Err(e) => return Err(e),
            };
            match error {
                code::NONE => {}
                code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => continue,
                code::UNKNOWN_MEMBER_ID => {
                    lock(&self.shared).member_id.clear();
                    continue;
                }
                c if is_coordinator_moved(c) => {
                    self.forget_coordinator();
                    continue;
                }
                c => return Err(group_error(c, "syncing", &self.group, &addr)),
            }
            let topics = decode_assignment(&bytes).map_err(|why| {
                Error::new(
                    ErrorKind::Broker,
                    format!("the group leader's assignment: {why}"),
                )
            })?;
            let mut partitions = topics.get(&self.topic).cloned().unwrap_or_default();
            partitions.sort_unstable();
            {
                let mut st = lock(&self.shared);
                st.generation = joined.generation;
                st.heartbeating = true;
            }
            if self.heartbeat.is_none() {
                self.heartbeat = Some(Heartbeat::start(
                    self.settings.clone(),
                    &self.group,
                    &self.client_id,
                    self.instance.clone(),
                    self.shared.clone(),
                )?);
            }
            log::info!(
                "modern: member {} of group {} (generation {}, {protocol}) reads {}/{partitions:?}",
                joined.member_id,
                self.group,
                joined.generation,
                self.topic
            );
            return Ok(Assigned {
                partitions,
                continued: previous_generation >= 0
                    && previous_member == joined.member_id
                    && joined.generation == previous_generation + 1,
            });
        }
    }

    /// The leader's job: every member's partitions, from their subscriptions and fresh
    /// metadata of every topic any member reads.
    fn plan(
        &self,
        cluster: &mut Cluster,
        joined: &Joined,
        protocol: &str,
    ) -> Result<Vec<(String, Bytes)>> {
        let strategy = Assignor::from_protocol_name(protocol).unwrap_or(self.settings.assignor);
        let mut members = Vec::with_capacity(joined.members.len());
        for (id, meta) in &joined.members {
            let topics = decode_subscription(meta).unwrap_or_else(|why| {
                log::warn!(
                    "modern: member {id} of group {}: {why}; assigning it nothing",
                    self.group
                );
                Vec::new()
            });
            members.push((id.clone(), topics));
        }
        let mut counts = BTreeMap::new();
        for (_, topics) in &members {
            for t in topics {
                if counts.contains_key(t) {
                    continue;
                }
                match cluster.topic(t, true) {
                    Ok(meta) => {
                        counts.insert(t.clone(), meta.partitions.len());
                    }
                    Err(e) if e.kind() == ErrorKind::UnknownTopic => {
                        log::warn!("modern: group {} subscribes to {t}: {e}", self.group);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let plan = assign(strategy, &members, &counts);
        log::debug!(
            "modern: group {} leader's plan ({protocol}): {plan:?}",
            self.group
        );
        Ok(plan
            .into_iter()
            .map(|(member, topics)| (member, encode_assignment(&topics)))
            .collect())
    }

    /// Stops heartbeats and tells the coordinator the member leaves (when it is in the group
    /// and the coordinator is known). Bounded by `request_timeout` (and one heartbeat).
    pub fn leave(&mut self, cluster: &mut Cluster) -> Result<()> {
        if let Some(mut h) = self.heartbeat.take() {
            h.stop();
        }
        let (member_id, addr) = {
            let mut s = lock(&self.shared);
            let out = (s.member_id.clone(), s.coordinator.clone());
            *s = MemberState::default();
            out
        };
        let (Some(addr), false) = (addr, member_id.is_empty()) else {
            return Ok(());
        };
        if let Some(instance) = &self.instance {
            log::info!(
                "modern: static member {instance} ({member_id}) of group {} closes without \
                 leaving: its partitions wait for it until the session times out",
                self.group
            );
            return Ok(());
        }
        match coordinator::leave(cluster, &addr, &self.group, &member_id)? {
            code::NONE | code::UNKNOWN_MEMBER_ID => {
                log::info!("modern: member {member_id} left group {}", self.group);
                Ok(())
            }
            c => Err(group_error(c, "leaving", &self.group, &addr)),
        }
    }
}

/// Takes a member out of its group from another thread (see
/// [`GroupExit`](crate::transport::GroupExit)): heartbeats stop, a LeaveGroup goes out on a
/// connection of its own, and the member joins again as a new member at its next poll.
pub(super) struct MemberExit {
    settings: Arc<Settings>,
    group: String,
    client_id: String,
    instance: Option<String>,
    shared: Shared,
}

impl Membership {
    /// A handle to take this member out of its group from another thread.
    pub fn exit_handle(&self) -> MemberExit {
        MemberExit {
            settings: self.settings.clone(),
            group: self.group.clone(),
            client_id: self.client_id.clone(),
            instance: self.instance.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl crate::transport::GroupExit for MemberExit {
    fn leave(&self, reason: &str) {
        let (member_id, coordinator) = {
            let mut s = lock(&self.shared);
            if s.member_id.is_empty() || s.generation < 0 {
                return;
            }
            let out = (std::mem::take(&mut s.member_id), s.coordinator.clone());
            s.generation = -1;
            s.heartbeating = false;
            s.rejoin = true;
            out
        };
        let Some(addr) = coordinator else { return };
        let s = &self.settings;
        let result = Connection::open(
            &addr,
            &self.client_id,
            &s.security,
            s.connect_timeout,
            s.request_timeout,
        )
        .and_then(|mut conn| {
            coordinator::leave_on(
                &mut conn,
                &self.group,
                &member_id,
                self.instance.as_deref(),
                reason,
                s.request_timeout,
            )
        });
        match result {
            Ok(code::NONE | code::UNKNOWN_MEMBER_ID) => log::warn!(
                "modern: member {member_id} left group {} from the watchdog: {reason}",
                self.group
            ),
            Ok(c) => log::warn!(
                "modern: LeaveGroup of {member_id} ({}): {}; heartbeats stopped, the session \
                 expires instead",
                self.group,
                super::errors::code_name(c)
            ),
            Err(e) => log::warn!(
                "modern: LeaveGroup of {member_id} ({}) failed: {e}; heartbeats stopped, the \
                 session expires instead",
                self.group
            ),
        }
    }
}

#[cfg(test)]
impl Membership {
    /// A crash, for tests: heartbeats stop, nothing is sent, the coordinator is left to
    /// notice after the session timeout.
    pub fn crash(&mut self) {
        if let Some(mut h) = self.heartbeat.take() {
            h.stop();
        }
        *lock(&self.shared) = MemberState::default();
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(mut h) = self.heartbeat.take() {
            h.stop();
        }
    }
}
