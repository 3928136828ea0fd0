//! Promise: a member gives up a partition at the rejoin that moves it, even when the poll
//! that rejoined then fails (the offsets lookup or fetch after a join meets a leader that
//! moved): it never goes on retrying, dead-lettering or parking messages of a partition
//! the new generation gave to another member. (Java's eager protocol gives up every
//! partition before JoinGroup; its fetcher drops records of partitions no longer assigned.)
//!
//! Member A fails every message (two attempts, 3 s apart, then the dead-letter topic:
//! retry topic off) and holds all of them in its waiting room when B joins; A's poll
//! that rejoins, and its next five, fail (or its next six joins fail before reaching the
//! group). B handles what it now owns. No message may end both ways: handled by B and
//! dead-lettered by A.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_sync::domain::{HandlerError, KafkaMessage};
use uuid::Uuid;

use crate::env::{message, retries, wait_for, Env};

const MESSAGES: usize = 10;

fn waiting_of(c: &kafka_sync::Consumer, topic: &str) -> usize {
    c.metrics()
        .iter()
        .find(|m| m.topic == topic)
        .map_or(0, |m| m.waiting_retries)
}

fn dead_lettered_by(c: &kafka_sync::Consumer, topic: &str) -> u64 {
    c.metrics()
        .iter()
        .find(|m| m.topic == topic)
        .map_or(0, |m| m.dead_lettered)
}

fn partitions_are_let_go_at_the_rejoin_even_if_the_poll_then_fails(env: &mut Env) {
    no_message_ends_two_ways(env, |env| env.fail_polls_after_rejoin(0, 6));
}

/// The same when the join itself fails (the coordinator moving): every partition is given
/// up before JoinGroup, and B gets them all once A's rebalance timeout passed.
fn partitions_are_let_go_before_a_join_that_fails(env: &mut Env) {
    no_message_ends_two_ways(env, |env| env.fail_next_joins(0, 6));
}

/// A fails every message and holds them all when B joins; `fault` is armed on A first.
fn no_message_ends_two_ways(env: &mut Env, fault: impl FnOnce(&Env)) {
    let topic = env.topic("rejoin-fails", 2);
    let mut config = env.config.clone();
    config.consumer.retry_topic_enabled = false;
    config.consumer.retry = retries(2, Duration::from_secs(3));

    let a = env.consumer(config.clone());
    a.register_handler("test", |_: &KafkaMessage| {
        Err(HandlerError::retriable("member A fails every message"))
    });
    a.consume([topic.as_str()]).expect("A consumes");
    let messages: Vec<KafkaMessage> = (0..MESSAGES).map(message).collect();
    env.send(&topic, &messages);
    wait_for("A holds every message for its second attempt", || {
        waiting_of(&a, &topic) == MESSAGES
    });

    fault(env);
    let handled_by_b: Arc<Mutex<BTreeSet<Uuid>>> = Arc::default();
    let b = env.consumer(config.clone());
    let seen = handled_by_b.clone();
    b.register_handler("test", move |m: &KafkaMessage| {
        seen.lock().unwrap().insert(m.id);
        Ok(())
    });
    b.consume([topic.as_str()]).expect("B consumes");

    wait_for(
        "every message ended: handled by B or dead-lettered by A",
        || {
            handled_by_b.lock().unwrap().len() as u64 + dead_lettered_by(&a, &topic)
                >= MESSAGES as u64
                && waiting_of(&a, &topic) == 0
        },
    );
    // Any late write of A lands meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    a.close(Duration::from_secs(20)).expect("A closes");
    b.close(Duration::from_secs(20)).expect("B closes");

    let handled = handled_by_b.lock().unwrap().clone();
    assert!(
        !handled.is_empty(),
        "B got a partition and handled its messages"
    );
    let dead: BTreeSet<Uuid> = env
        .dead_letters(&config)
        .iter()
        .filter_map(|d| d.message_id)
        .collect();
    let both: Vec<&Uuid> = handled.intersection(&dead).collect();
    assert!(
        both.is_empty(),
        "{} message(s) of a partition A lost were handled by B and dead-lettered by A: {both:?}",
        both.len()
    );
    let ended: BTreeSet<Uuid> = handled.union(&dead).copied().collect();
    let all: BTreeSet<Uuid> = messages.iter().map(|m| m.id).collect();
    assert_eq!(ended, all, "every message ended one way");
}

contract! {
    partitions_are_let_go_at_the_rejoin_even_if_the_poll_then_fails =>
        super::partitions_are_let_go_at_the_rejoin_even_if_the_poll_then_fails,
    partitions_are_let_go_before_a_join_that_fails =>
        super::partitions_are_let_go_before_a_join_that_fails,
}
