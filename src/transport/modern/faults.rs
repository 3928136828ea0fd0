//! [`Faults`]: switches a test flips on a [`ModernTransport`](super::ModernTransport) to make
//! a real broker's rare failures happen on cue (the in-memory transport has the same hooks).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Failures still to inject, shared by every subscription of one transport.
#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    /// Polls still to fail right after they rejoined the group (as when the offsets lookup
    /// or the fetch meets a leader that moved).
    polls_after_rejoin: Arc<AtomicUsize>,
    /// Commits still to fail (a coordinator that cannot be reached).
    commits: Arc<AtomicUsize>,
    /// Joins still to fail before JoinGroup is sent.
    joins: Arc<AtomicUsize>,
}

impl Faults {
    /// Makes the next poll that rejoins its group fail after the join, and that member's
    /// next `polls - 1` polls too.
    pub(super) fn fail_polls_after_rejoin(&self, polls: usize) {
        self.polls_after_rejoin.store(polls, Ordering::SeqCst);
    }

    /// Makes the next `commits` commits fail before they are sent.
    pub(super) fn fail_next_commits(&self, commits: usize) {
        self.commits.store(commits, Ordering::SeqCst);
    }

    /// Uses up one commit failure if any is pending; `true` if this commit is to fail.
    pub(super) fn take_commit_failure(&self) -> bool {
        self.commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Makes the next `joins` joins fail before JoinGroup is sent.
    pub(super) fn fail_next_joins(&self, joins: usize) {
        self.joins.store(joins, Ordering::SeqCst);
    }

    /// Uses up one join failure if any is pending; `true` if this join is to fail.
    pub(super) fn take_join_failure(&self) -> bool {
        self.joins
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Takes every pending poll failure (for the member that just rejoined).
    pub(super) fn take_poll_failures(&self) -> usize {
        self.polls_after_rejoin.swap(0, Ordering::SeqCst)
    }
}

/// Faults are not settings: two settings differing only in them are equal.
impl PartialEq for Faults {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
