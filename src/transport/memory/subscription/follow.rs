//! How a memory member follows its group (the eager protocol of `group.rs`): giving up
//! its partitions when a rebalance waits for it, taking the next generation's with the
//! positions that stay valid, joining again as a new member when the group dropped it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::state::State;
use super::MemorySubscription;
use crate::config::StartOffset;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::broker_code::{code, code_kind};

/// What a look at the group found, for [`MemorySubscription::follow`].
pub(super) enum Followed {
    /// The member has the group's current generation (it may have just taken it).
    Current {
        /// Whether this look took it.
        adopted: bool,
    },
    /// A rebalance waits for other members; this member holds nothing meanwhile.
    Waiting,
}

impl MemorySubscription {
    /// Follows the group: a rebalance that waits for this member makes it give up every
    /// partition (eager protocol); a new generation is adopted once the rebalance is over:
    /// a partition given up in the generation just before keeps its position, one newly
    /// owned starts at the committed offset, else at the start offset.
    pub(super) fn follow(&mut self, state: &mut State) -> Result<Followed> {
        let (group, topic) = (self.options.group.clone(), self.options.topic.clone());
        if state.settle(&group, &topic, Some(&self.member)) {
            self.broker.membership_changed();
            self.broker.notify();
        }
        let Some(g) = state.group(&group, &topic) else {
            return Ok(Followed::Current { adopted: false });
        };
        if g.is_fenced(&self.member) {
            return Err(Error::new(
                code_kind(code::FENCED_INSTANCE_ID),
                format!(
                    "member {} of group {group}: broker answered FencedInstanceId (code {}): \
                     another member took its instance id {:?}",
                    self.member,
                    code::FENCED_INSTANCE_ID,
                    self.instance
                ),
            )
            .with_broker_code(code::FENCED_INSTANCE_ID)
            .with_topic(&topic));
        }
        if !g.has(&self.member) {
            // Its session expired, or it did not rejoin in time: join again as a new member.
            self.rejoin(state);
            return self.follow(state);
        }
        if g.waits_for(&self.member) {
            log::debug!(
                "memory broker: member {} of group {group} on {topic} gives up {:?}",
                self.member,
                self.assignment
            );
            self.given_up.append(&mut self.positions);
            self.assignment.clear();
            self.paused.clear();
            if state.joins_failing > 0 {
                // The join does not reach the coordinator: the partitions are given up
                // (eager protocol: before JoinGroup), the group waits for this member.
                state.joins_failing -= 1;
                self.forget_given_up(&BTreeMap::new());
                return Err(Error::new(
                    ErrorKind::Connection,
                    "injected join failure (MemoryTransport::fail_next_joins)",
                )
                .with_topic(&topic));
            }
            state.rejoin(&group, &topic, &self.member);
            self.broker.membership_changed();
            self.broker.notify();
            return self.follow(state);
        }
        if g.rebalancing() {
            return Ok(Followed::Waiting);
        }
        if g.generation == self.generation {
            return Ok(Followed::Current { adopted: false });
        }
        let continued = self.generation + 1 == g.generation;
        let assignment = g.assignment(&self.member);
        let mut positions = BTreeMap::new();
        for &p in &assignment {
            let kept = self.given_up.get(&p).copied().filter(|_| continued);
            let position = kept.unwrap_or_else(|| {
                g.committed
                    .get(&p)
                    .copied()
                    .unwrap_or_else(|| match self.options.start_offset {
                        StartOffset::Earliest => 0,
                        StartOffset::Latest => state
                            .existing(&topic)
                            .and_then(|t| t.high_watermark(p))
                            .unwrap_or(0),
                    })
            });
            positions.insert(p, position);
        }
        self.forget_given_up(&positions);
        log::debug!(
            "memory broker: member {} of group {group} on {topic}: generation {}, partitions {assignment:?}",
            self.member,
            g.generation
        );
        self.generation = g.generation;
        self.paused.retain(|p| assignment.contains(p));
        self.assignment = assignment;
        self.positions = positions;
        Ok(Followed::Current { adopted: true })
    }

    /// Partitions given up and not kept (not in `kept`) are reported restarted.
    pub(super) fn forget_given_up(&mut self, kept: &BTreeMap<i32, i64>) {
        let given_up = std::mem::take(&mut self.given_up);
        self.restarted
            .extend(given_up.keys().filter(|p| !kept.contains_key(p)));
    }

    /// Joins again as a new member (after an eviction, an expired session, or a rebalance
    /// it missed): every position restarts from the group's commit; the caller follows
    /// the group next.
    pub(super) fn rejoin(&mut self, state: &mut State) {
        let member = state.join(
            &self.options.group,
            &self.options.topic,
            &self.options.client_id,
            self.instance.as_deref(),
            Arc::downgrade(&self.heartbeat),
        );
        self.broker.membership_changed();
        self.broker.notify();
        log::info!(
            "memory broker: member {} of group {} on {} joins again as {member}",
            self.member,
            self.options.group,
            self.options.topic
        );
        {
            let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
            id.member = member.clone();
            id.evicted = false;
        }
        self.member = member;
        self.restarted.extend(self.positions.keys().copied());
        self.restarted.extend(self.given_up.keys().copied());
        self.positions.clear();
        self.given_up.clear();
        self.assignment.clear();
        self.paused.clear();
        self.generation = 0;
    }
}
