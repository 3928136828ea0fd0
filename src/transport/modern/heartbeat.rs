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
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::cluster::Cluster;
use super::conn::Connection;
use super::coordinator::{find_coordinator, heartbeat};
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
        instance: Option<String>,
        shared: Shared,
    ) -> Result<Heartbeat> {
        let (stop, stopped) = bounded::<()>(1);
        let group = group.to_string();
        let client_id = client_id.to_string();
        let handle = std::thread::Builder::new()
            .name(format!("kafka-heartbeat-{group}"))
            .spawn(move || {
                let who = Who {
                    group: &group,
                    client_id: &client_id,
                    instance: instance.as_deref(),
                };
                run(&settings, &who, &shared, &stopped)
            })
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

/// Which member the thread keeps alive.
struct Who<'a> {
    group: &'a str,
    client_id: &'a str,
    instance: Option<&'a str>,
}

fn run(settings: &Arc<Settings>, who: &Who<'_>, shared: &Shared, stopped: &Receiver<()>) {
    let group = who.group;
    let bound = settings.request_timeout.min(settings.session_timeout);
    let mut conn: Option<Connection> = None;
    // For finding the coordinator again on its own (the consumer thread may be busy).
    let mut cluster: Option<Cluster> = None;
    // The generation the last answered heartbeat was for, and when.
    let mut last_ok: Option<(i32, Instant)> = None;
    loop {
        match stopped.recv_timeout(settings.heartbeat_interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let (coordinator, generation, member_id) = {
            let s = lock(shared);
            if !s.heartbeating || s.generation < 0 {
                last_ok = None;
                continue;
            }
            let known = s.coordinator.clone().filter(|_| !s.coordinator_lost);
            (known, s.generation, s.member_id.clone())
        };
        // No answer within the session timeout: the coordinator has dropped the member.
        let since = match last_ok {
            Some((g, at)) if g == generation => at,
            _ => {
                let now = Instant::now();
                last_ok = Some((generation, now));
                now
            }
        };
        if since.elapsed() > settings.session_timeout {
            expired(shared, group, generation, since.elapsed());
            last_ok = None;
            conn = None;
            continue;
        }
        let addr = match coordinator {
            Some(a) => a,
            None => {
                let c =
                    cluster.get_or_insert_with(|| Cluster::new(settings.clone(), who.client_id));
                match find_coordinator(c, group) {
                    Ok(a) => {
                        log::info!(
                            "modern: heartbeat of group {group} found its coordinator at {a}"
                        );
                        let mut s = lock(shared);
                        if s.generation == generation {
                            s.coordinator = Some(a.clone());
                            s.coordinator_lost = false;
                        }
                        a
                    }
                    Err(e) => {
                        log::warn!(
                            "modern: heartbeat of group {group} cannot find its coordinator: {e}"
                        );
                        c.reset();
                        continue;
                    }
                }
            }
        };
        if conn
            .as_ref()
            .is_none_or(|c| c.is_broken() || c.addr() != addr)
        {
            let security = &settings.security;
            conn = match Connection::open(
                &addr,
                who.client_id,
                security,
                settings.connect_timeout,
                bound,
            ) {
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
        match heartbeat(c, group, generation, &member_id, who.instance, bound) {
            // A rebalance answer is an answer too: the member is still in the group.
            Ok(code::NONE) => last_ok = Some((generation, Instant::now())),
            Ok(code::REBALANCE_IN_PROGRESS) => {
                last_ok = Some((generation, Instant::now()));
                react(
                    shared,
                    group,
                    generation,
                    code::REBALANCE_IN_PROGRESS,
                    &mut conn,
                );
            }
            Ok(answer) => react(shared, group, generation, answer, &mut conn),
            Err(e) => {
                log::warn!("modern: heartbeat of group {group} failed: {e}");
                conn = None;
                lock(shared).coordinator_lost = true;
            }
        }
    }
}

/// The member's session expired without an answered heartbeat: it is out of the group.
fn expired(shared: &Shared, group: &str, generation: i32, silent: Duration) {
    let mut s = lock(shared);
    if s.generation != generation || !s.heartbeating {
        return;
    }
    log::error!(
        "modern: no heartbeat of member {} in group {group} answered for {silent:?}, past the \
         session timeout: the coordinator has dropped it; joining again",
        s.member_id
    );
    s.member_id.clear();
    s.heartbeating = false;
    s.rejoin = true;
    s.coordinator_lost = true;
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
        let mut hb = Heartbeat::start(settings, "grp", "c", None, shared.clone()).unwrap();
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

    #[test]
    fn an_expired_session_forgets_the_member_and_asks_for_a_rejoin() {
        let s = joined(4);
        expired(&s, "g", 3, Duration::from_secs(11));
        assert_eq!(
            lock(&s).member_id,
            "m-1",
            "an older generation is left alone"
        );
        expired(&s, "g", 4, Duration::from_secs(11));
        let st = lock(&s);
        assert!(st.member_id.is_empty() && st.rejoin && !st.heartbeating);
    }
}
