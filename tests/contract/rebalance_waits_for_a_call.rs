//! Promise: with the default settings, a rebalance waits for a member busy in a handler
//! call within `handler_timeout` (the library's default rebalance timeout is
//! `max_poll_interval`, as the Java client sends `max.poll.interval.ms`): the member ends
//! the call, commits and rejoins, so its message is not handled a second time by the member
//! whose arrival started the rebalance.
//!
//! A's call on the one message takes 35 s (past the old 30 s rebalance timeout, within a
//! 60 s handler timeout); B joins meanwhile. B must never handle it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::KafkaMessage;
use kafka_sync::Config;

use crate::env::{message, wait_for, Env, WAIT};

const CALL: Duration = Duration::from_secs(35);

fn a_rebalance_waits_for_a_call_within_the_handler_timeout(env: &mut Env) {
    env.config.consumer.rebalance_timeout = Config::default().consumer.rebalance_timeout;
    let topic = env.topic("long-call", 1);
    let mut config = env.config.clone();
    config.consumer.retry_topic_enabled = false;
    config.consumer.handler_timeout = Some(Duration::from_secs(60));

    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let by_a = Arc::new(AtomicUsize::new(0));
    let a = env.consumer(config.clone());
    let seen = by_a.clone();
    a.register_handler("test", move |_: &KafkaMessage| {
        let _ = entered_tx.try_send(());
        std::thread::sleep(CALL);
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    a.consume([topic.as_str()]).expect("A consumes");
    env.send(&topic, &[message(0)]);
    entered.recv_timeout(WAIT).expect("A's call runs");

    let by_b = Arc::new(AtomicUsize::new(0));
    let b = env.consumer(config.clone());
    let seen = by_b.clone();
    b.register_handler("test", move |_: &KafkaMessage| {
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    b.consume([topic.as_str()]).expect("B consumes");
    wait_for("A's call ended", || by_a.load(Ordering::SeqCst) == 1);
    let group = config.group_id.clone();
    wait_for("A's commit", || {
        env.offsets(&group, &topic)[&0].1 == Some(1)
    });
    std::thread::sleep(Duration::from_secs(2));
    a.close(Duration::from_secs(20)).expect("A closes");
    b.close(Duration::from_secs(20)).expect("B closes");
    assert_eq!(
        by_b.load(Ordering::SeqCst),
        0,
        "the rebalance went on without A while its call ran: B handled the message too"
    );
}

contract! {
    a_rebalance_waits_for_a_call_within_the_handler_timeout =>
        super::a_rebalance_waits_for_a_call_within_the_handler_timeout,
}
