//! Promise: a member taken out of its group by the watchdog (a call past
//! `handler_timeout`) and closed before that call returns writes nothing for the partitions
//! it lost: it does not park its waiting messages on the retry topic nor write its queued
//! retry and dead-letter records, since the partitions' next owner handles those messages.
//!
//! A holds five failing messages in its waiting room (30 s to their next attempt), then
//! its call on a sixth hangs; B joins, A is evicted, B handles all six; A is closed while
//! the call hangs, and the call is let go. No message may be parked by A and handled by B.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_sync::domain::{HandlerError, KafkaMessage};
use uuid::Uuid;

use crate::env::{message, n_of, retries, wait_for, Env, WAIT};

const FAILING: usize = 5;

fn a_closed_evicted_member_parks_nothing(env: &mut Env) {
    let topic = env.topic("close-stuck", 1);
    let mut config = env.config.clone();
    config.consumer.retry_topic_enabled = true;
    config.consumer.retry = retries(2, Duration::from_secs(30));
    config.consumer.handler_timeout = Some(Duration::from_secs(1));

    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let a = env.consumer(config.clone());
    a.register_handler("test", move |m: &KafkaMessage| {
        if n_of(m) == 0 {
            let _ = entered_tx.try_send(());
            let _ = released.recv_timeout(WAIT);
            return Ok(());
        }
        Err(HandlerError::retriable("member A fails these"))
    });
    a.consume([topic.as_str()]).expect("A consumes");
    let failing: Vec<KafkaMessage> = (1..=FAILING).map(message).collect();
    env.send(&topic, &failing);
    wait_for("A holds the failing messages", || {
        a.metrics()
            .iter()
            .any(|m| m.topic == topic && m.waiting_retries == FAILING)
    });
    let stuck = message(0);
    env.send(&topic, std::slice::from_ref(&stuck));
    entered
        .recv_timeout(WAIT)
        .expect("A's call on message 0 hangs");

    let handled_by_b: Arc<Mutex<BTreeSet<Uuid>>> = Arc::default();
    let b = env.consumer(config.clone());
    let seen = handled_by_b.clone();
    b.register_handler("test", move |m: &KafkaMessage| {
        seen.lock().unwrap().insert(m.id);
        Ok(())
    });
    b.consume([topic.as_str()]).expect("B consumes");
    wait_for("B handled every message after A's eviction", || {
        handled_by_b.lock().unwrap().len() == FAILING + 1
    });

    let closing = std::thread::spawn(move || a.close(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(300));
    release.send(()).expect("the call is let go");
    closing.join().expect("close returns").expect("A closes");
    std::thread::sleep(Duration::from_secs(1));
    b.close(Duration::from_secs(20)).expect("B closes");

    let parked: BTreeSet<Uuid> = env.parked_ids(&config).into_iter().collect();
    let handled = handled_by_b.lock().unwrap().clone();
    let both: Vec<&Uuid> = parked.intersection(&handled).collect();
    assert!(
        both.is_empty(),
        "{} message(s) parked by the evicted member A at close and handled by B: {both:?}",
        both.len()
    );
}

contract! {
    a_closed_evicted_member_parks_nothing => super::a_closed_evicted_member_parks_nothing,
}
