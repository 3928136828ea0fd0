//! The broker's side of group membership: members join, leave, rejoin and are heard
//! from; each call settles the group (see `group.rs`).

use super::super::group::Group;
use super::{State, Topic};

impl State {
    /// The group of `topic`, created empty if needed.
    pub(in crate::transport::memory) fn group_mut(
        &mut self,
        group: &str,
        topic: &str,
    ) -> &mut Group {
        self.groups
            .entry(group.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default()
    }

    /// The partition count of `topic` (0 if it does not exist).
    pub(in crate::transport::memory) fn partition_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, Topic::partition_count)
    }

    /// Adds a member to `group` for `topic` (which must exist); returns its id. A rebalance
    /// starts (see `group.rs`) unless a static member with `instance` is back.
    pub(in crate::transport::memory) fn join(
        &mut self,
        group: &str,
        topic: &str,
        client_id: &str,
        instance: Option<&str>,
        heartbeat: std::sync::Weak<()>,
    ) -> String {
        self.next_member += 1;
        let member = format!("{client_id}-{:08}", self.next_member);
        let (partitions, timeouts) = (self.partition_count(topic), self.timeouts);
        self.group_mut(group, topic)
            .join(&member, instance, heartbeat, partitions, timeouts);
        member
    }

    /// Removes a member and rebalances the others; nothing happens if it is not a member.
    pub(in crate::transport::memory) fn leave(&mut self, group: &str, topic: &str, member: &str) {
        let (partitions, timeouts) = (self.partition_count(topic), self.timeouts);
        if let Some(g) = self.groups.get_mut(group).and_then(|g| g.get_mut(topic)) {
            g.leave(member, partitions, timeouts);
        }
    }

    /// Expires sessions and completes a rebalance of `group` on `topic` where due; notes
    /// that `member` (if any) called. Returns whether the group changed.
    pub(in crate::transport::memory) fn settle(
        &mut self,
        group: &str,
        topic: &str,
        member: Option<&str>,
    ) -> bool {
        let (partitions, timeouts) = (self.partition_count(topic), self.timeouts);
        let Some(g) = self.groups.get_mut(group).and_then(|g| g.get_mut(topic)) else {
            return false;
        };
        if let Some(m) = member {
            g.seen(m);
        }
        g.settle(partitions, timeouts)
    }

    /// `member` gives up its partitions for the rebalance under way.
    pub(in crate::transport::memory) fn rejoin(&mut self, group: &str, topic: &str, member: &str) {
        let (partitions, timeouts) = (self.partition_count(topic), self.timeouts);
        if let Some(g) = self.groups.get_mut(group).and_then(|g| g.get_mut(topic)) {
            g.rejoin(member, partitions, timeouts);
        }
    }
}
