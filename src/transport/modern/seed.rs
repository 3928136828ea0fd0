//! Copying one group's committed offsets on a topic to another group that has none there:
//! the consumer's retry reader moved from the group itself to a retry group of its own
//! (`<group>.retry.<hash>`), and the new group starts where the old one stopped instead of
//! at `start_offset` (which would read every retained entry again, or skip the unread ones).
//!
//! ```text
//!  OffsetFetch(to, topic): any committed? ── yes ─▶ nothing to do (it ran before)
//!  OffsetFetch(from, topic) ── none ─▶ nothing to do
//!  OffsetCommit(to, generation -1, no member) ─▶ accepted while `to` has no members
//! ```

use super::cluster::Cluster;
use super::coordinator::{find_coordinator, group_error};
use super::errors::code;
use super::offsets::{commit, fetch_committed, Committer};
use crate::error::Result;

/// Copies `from`'s committed offsets of `topic` to `to` unless `to` committed any there;
/// returns how many partitions were copied.
pub(super) fn copy_group_offsets(
    cluster: &mut Cluster,
    from: &str,
    to: &str,
    topic: &str,
) -> Result<usize> {
    let partitions: Vec<i32> = cluster
        .topic(topic, false)?
        .partitions
        .iter()
        .map(|p| p.id)
        .collect();
    if partitions.is_empty() {
        return Ok(0);
    }
    let target = find_coordinator(cluster, to)?;
    let existing = fetch_committed(cluster, &target, to, topic, &partitions)?
        .map_err(|c| group_error(c, "reading committed offsets", to, &target))?;
    if !existing.is_empty() {
        return Ok(0);
    }
    let source = find_coordinator(cluster, from)?;
    let offsets = fetch_committed(cluster, &source, from, topic, &partitions)?
        .map_err(|c| group_error(c, "reading committed offsets", from, &source))?;
    if offsets.is_empty() {
        return Ok(0);
    }
    let mut offsets: Vec<(i32, i64)> = offsets.into_iter().collect();
    offsets.sort_unstable();
    let who = Committer {
        group: to,
        generation: -1,
        member_id: "",
        instance: None,
    };
    match commit(cluster, &target, &who, topic, &offsets)? {
        code::NONE => Ok(offsets.len()),
        c => Err(group_error(c, "copying committed offsets", to, &target)),
    }
}
