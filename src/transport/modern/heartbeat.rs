//! The heartbeat thread (`kafka-heartbeat-<group>`): keeps a member alive while its consumer
//! thread handles records, and tells it, through the shared [`MemberState`], when the group
//! is rebalancing (the consumer rejoins at its next poll) or the coordinator moved.
//!
//! It has its own connection to the coordinator, so a long fetch on the consumer's
//! connection never delays a heartbeat. It sends nothing while the member joins (the join
//! itself keeps the member alive) and stops when the [`Heartbeat`] handle is stopped or
//! dropped: the handle joins it, waiting at most one heartbeat request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::conn::Connection;
use super::coordinator::heartbeat;
use super::errors::{code, code_name, is_coordinator_moved};
use super::Settings;
use crate::error::{Error, ErrorKind, Result};

/// What the consumer thread and the heartbeat thread share about the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemberState {
    /// The id the coordinator gave ("" before the first join or after it forgot us).
    pub member_id: String,
    /// The current generation; -1 outside one.
    pub generation: i32,
    /// The coordinator's address, once found.
    pub coordinator: Option<String>,
    /// Whether heartbeats are due (a generation is complete and no join is under way).
    pub heartbeating: bool,
    /// Set by the heartbeat thread: the group is rebalancing, rejoin at the next poll.
    pub rejoin: bool,
    /// Set by the heartbeat thread: the coordinator moved or cannot be reached, find it again.
    pub coordinator_lost: bool,
}

impl Default for MemberState {
    fn default() -> Self {
        MemberState {
            member_id: String::new(),
            generation: -1,
            coordinator: None,
            heartbeating: false,
            rejoin: false,
            coordinator_lost: false,
        }
    }
}

/// The shared state.
pub(super) type Shared = Arc<Mutex<MemberState>>;

/// Locks `shared`, whether or not a thread panicked while holding it (the state stays
/// meaningful: every write is a single field).
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, MemberState> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The handle of a running heartbeat thread.
#[derive(Debug)]
pub(super) struct Heartbeat {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts the thread for `group`, heartbeating every `settings.heartbeat_interval`.
    pub fn start(
        settings: Arc<Settings>,
        group: &str,
        client_id: &str,
        shared: Shared,
    ) -> Result<Heartbeat> {
        let (stop, stopped) = bounded::<()>(1);
        let group = group.to_string();
        let client_id = client_id.to_string();
        let handle = std::thread::Builder::new()
            .name(format!("kafka-heartbeat-{group}"))
            .spawn(move || run(&settings, &group, &client_id, &shared, &stopped))
            .map_err(|e| {
                Error::new(
                    ErrorKind::WorkerStopped,
                    format!("cannot start the heartbeat thread: {e}"),
                )
            })?;
        Ok(Heartbeat {
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it (at most one heartbeat request, bounded by
    /// `min(request_timeout, session_timeout)`).
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                log::error!("modern: the heartbeat thread panicked");
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(settings: &Settings, group: &str, client_id: &str, shared: &Shared, stopped: &Receiver<()>) {
    let bound = settings.request_timeout.min(settings.session_timeout);
    let mut conn: Option<Connection> = None;
    loop {
        match stopped.recv_timeout(settings.heartbeat_interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let (addr, generation, member_id) = {
            let s = lock(shared);
            match &s.coordinator {
                Some(a) if s.heartbeating && s.generation >= 0 && !s.coordinator_lost => {
                    (a.clone(), s.generation, s.member_id.clone())
                }
                _ => continue,
            }
        };
        if conn
            .as_ref()
            .is_none_or(|c| c.is_broken() || c.addr() != addr)
        {
            let security = &settings.security;
            conn =
                match Connection::open(&addr, client_id, security, settings.connect_timeout, bound)
                {
                    Ok(c) => Some(c),
                    Err(e) => {
                        log::warn!(
                            "modern: heartbeat of group {group} cannot reach its coordinator: {e}"
                        );
                        lock(shared).coordinator_lost = true;
                        continue;
                    }
                };
        }
        let Some(c) = conn.as_mut() else { continue };
        match heartbeat(c, group, generation, &member_id, bound) {
            Ok(code::NONE) => {}
            Ok(answer) => react(shared, group, generation, answer, &mut conn),
            Err(e) => {
                log::warn!("modern: heartbeat of group {group} failed: {e}");
                conn = None;
                lock(shared).coordinator_lost = true;
            }
        }
    }
}

/// Acts on a heartbeat answer `c` for `generation`: flags a rejoin or a coordinator search.
fn react(shared: &Shared, group: &str, generation: i32, c: i16, conn: &mut Option<Connection>) {
    let mut s = lock(shared);
    if s.generation != generation || !s.heartbeating {
        return; // a join happened meanwhile: the answer is about an older generation
    }
    match c {
        code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION | code::FENCED_INSTANCE_ID => {
            log::debug!("modern: group {group} is rebalancing ({})", code_name(c));
            s.rejoin = true;
        }
        code::UNKNOWN_MEMBER_ID => {
            log::info!(
                "modern: group {group} forgot member {}; joining again",
                s.member_id
            );
            s.member_id.clear();
            s.rejoin = true;
        }
        c if is_coordinator_moved(c) => {
            s.coordinator_lost = true;
            *conn = None;
        }
        c => log::warn!(
            "modern: heartbeat of group {group}: {} (code {c})",
            code_name(c)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(generation: i32) -> Shared {
        Arc::new(Mutex::new(MemberState {
            member_id: "m-1".into(),
            generation,
            coordinator: Some("h:1".into()),
            heartbeating: true,
            ..MemberState::default()
        }))
    }

    #[test]
    fn a_rebalance_answer_flags_a_rejoin_for_the_current_generation_only() {
        let s = joined(3);
        react(&s, "g", 2, code::REBALANCE_IN_PROGRESS, &mut None);
        assert!(!lock(&s).rejoin, "stale generation ignored");
        react(&s, "g", 3, code::REBALANCE_IN_PROGRESS, &mut None);
        assert!(lock(&s).rejoin);
    }

    #[test]
    fn unknown_member_forgets_the_id_and_coordinator_moves_are_flagged() {
        let s = joined(1);
        react(&s, "g", 1, code::UNKNOWN_MEMBER_ID, &mut None);
        assert_eq!(lock(&s).member_id, "");
        assert!(lock(&s).rejoin);
        let s = joined(1);
        react(&s, "g", 1, code::NOT_COORDINATOR, &mut None);
        assert!(lock(&s).coordinator_lost);
        assert!(!lock(&s).rejoin);
    }

    #[test]
    fn the_thread_is_named_idle_until_joined_and_stops_promptly() {
        let settings = Arc::new(Settings::for_tests(vec!["127.0.0.1:1".into()]));
        let shared: Shared = Arc::new(Mutex::new(MemberState::default()));
        let mut hb = Heartbeat::start(settings, "grp", "c", shared.clone()).unwrap();
        let name = hb
            .handle
            .as_ref()
            .map(|h| h.thread().name().map(str::to_string));
        assert_eq!(name, Some(Some("kafka-heartbeat-grp".to_string())));
        let started = std::time::Instant::now();
        hb.stop();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(*lock(&shared), MemberState::default());
    }
}
