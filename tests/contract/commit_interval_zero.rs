//! Promise: with `commit_interval = 0`, a call that returns after its member was taken out
//! of the group (past `handler_timeout`) writes no retry or dead-letter record: the
//! message's next owner handles it, so a record written by the old member would end it a
//! second way.
//!
//! A's call on the message hangs, B takes the partition over and handles it, then A's call
//! returns a permanent error: no dead letter may appear.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::{HandlerError, KafkaMessage};

use crate::env::{message, wait_for, Env, WAIT};

fn a_late_failure_after_eviction_writes_no_dead_letter(env: &mut Env) {
    let topic = env.topic("interval-zero", 1);
    let mut config = env.config.clone();
    config.consumer.commit_interval = Duration::ZERO;
    config.consumer.handler_timeout = Some(Duration::from_secs(1));

    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let a = env.consumer(config.clone());
    a.register_handler("test", move |_: &KafkaMessage| {
        let _ = entered_tx.try_send(());
        let _ = released.recv_timeout(WAIT);
        Err(HandlerError::permanent("member A's late call fails"))
    });
    a.consume([topic.as_str()]).expect("A consumes");
    let m = message(0);
    env.send(&topic, std::slice::from_ref(&m));
    entered.recv_timeout(WAIT).expect("A's call hangs");

    let handled_by_b = Arc::new(AtomicUsize::new(0));
    let b = env.consumer(config.clone());
    let seen = handled_by_b.clone();
    b.register_handler("test", move |_: &KafkaMessage| {
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    b.consume([topic.as_str()]).expect("B consumes");
    wait_for("B handled the message", || {
        handled_by_b.load(Ordering::SeqCst) >= 1
    });

    release.send(()).expect("the call is let go");
    wait_for("A's late call ended", || {
        a.health().threads.iter().all(|t| t.running_call.is_none())
    });
    std::thread::sleep(Duration::from_secs(1));
    a.close(Duration::from_secs(20)).expect("A closes");
    b.close(Duration::from_secs(20)).expect("B closes");

    let zombies: Vec<_> = env
        .dead_letters(&config)
        .into_iter()
        .filter(|d| d.message_id == Some(m.id))
        .collect();
    assert!(
        zombies.is_empty(),
        "the evicted member dead-lettered a message its next owner handled: {zombies:?}"
    );
}

contract! {
    a_late_failure_after_eviction_writes_no_dead_letter =>
        super::a_late_failure_after_eviction_writes_no_dead_letter,
}
