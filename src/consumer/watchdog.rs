//! The watchdog thread, `kafka-watchdog-<group>`: one per consumer, looking at every topic
//! thread ten times a second. A thread whose handler call runs past
//! `consumer.handler_timeout`, or that has not polled within `consumer.max_poll_interval`,
//! is marked stuck (health, an error log line with the message id) and its member is taken
//! out of the group, so the partitions move to members that work. The call is not stopped
//! (it cannot be): when it returns, its result counts, and the thread joins the group again.
//! While a call runs longer than a second, the watchdog also measures the thread's lag
//! (through [`Subscription::lag_probe`](crate::transport::Subscription::lag_probe)), so the
//! metric stays fresh whatever the handler does.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::metrics::TopicStats;
use super::Shared;
use crate::error::{Error, ErrorKind, Result};

const TICK: Duration = Duration::from_millis(100);
/// Lag is kept at most this old while a handler call runs long.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Starts the watchdog of `shared`; it ends when the consumer stops or is dropped.
pub(crate) fn start(shared: &Arc<Shared>) -> Result<JoinHandle<()>> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name(format!("kafka-watchdog-{}", shared.config.group_id))
        .spawn(move || loop {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            for stats in shared.all_stats() {
                look_at(&shared, &stats);
            }
            let stop = shared.stop.sleep(TICK);
            drop(shared);
            if stop {
                return;
            }
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::WorkerStopped,
                format!("cannot start the consumer's watchdog thread: {e}"),
            )
        })
}

fn look_at(shared: &Shared, stats: &TopicStats) {
    if !stats.alive.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    // The thread measures its lag between records; during a long call, the watchdog does.
    if stats.busy().is_some_and(|(running, _)| running > LAG_EVERY) {
        stats.probe_lag(LAG_EVERY);
    }
    if stats.stuck().is_some() {
        return;
    }
    let c = &shared.config.consumer;
    let why = match (stats.busy(), c.handler_timeout, stats.last_poll_age()) {
        (Some((running, id)), Some(limit), _) if running > limit => format!(
            "the handler call on message {id} has run {running:?}, past \
             consumer.handler_timeout ({limit:?})"
        ),
        (_, _, Some(age)) if age > c.max_poll_interval => format!(
            "no poll for {age:?}, past consumer.max_poll_interval ({:?}){}",
            c.max_poll_interval,
            stats
                .busy()
                .map(|(_, id)| format!(" (handling message {id})"))
                .unwrap_or_default()
        ),
        _ => return,
    };
    let left = stats.evict(&why);
    let what = if left {
        "its member leaves the group so the partitions move; the call's result still counts"
    } else {
        "the transport has no group to leave"
    };
    log::error!("consumer thread of {} is stuck: {why}; {what}", stats.topic);
    stats.set_stuck(why);
}
