//! Promise: a thread marked stuck because it missed its polls (`max_poll_interval`; here:
//! every poll after a rejoin fails for a while, as when a leader moves) is reported healthy
//! again as soon as it polls again, whether or not a message comes to be handled.

use std::time::Duration;

use kafka_sync::domain::KafkaMessage;

use crate::env::{wait_for, Env};

fn stuck(c: &kafka_sync::Consumer) -> bool {
    c.health().threads.iter().any(|t| t.stuck.is_some())
}

fn the_stuck_mark_of_missed_polls_ends_when_polls_succeed_again(env: &mut Env) {
    let topic = env.topic("missed-polls", 2);
    let mut config = env.config.clone();
    // One thread per member (the retry topic's would take the fault on the memory broker).
    config.consumer.retry_topic_enabled = false;
    config.consumer.max_poll_interval = Duration::from_secs(1);

    let a = env.consumer(config.clone());
    a.register_handler("test", |_: &KafkaMessage| Ok(()));
    a.consume([topic.as_str()]).expect("A consumes");
    wait_for("A polled", || {
        a.metrics().iter().any(|m| m.last_poll.is_some())
    });
    // B's arrival makes A rejoin; A's poll then fails, and its next ones: ~3 s without a
    // successful poll.
    env.fail_polls_after_rejoin(0, 5);
    let b = env.consumer(config.clone());
    b.register_handler("test", |_: &KafkaMessage| Ok(()));
    b.consume([topic.as_str()]).expect("B consumes");
    wait_for("A marked stuck for the polls it missed", || stuck(&a));
    wait_for(
        "A's stuck mark gone once it polls again, with no message",
        || !stuck(&a),
    );
    a.close(Duration::from_secs(20)).expect("A closes");
    b.close(Duration::from_secs(20)).expect("B closes");
}

contract! {
    the_stuck_mark_of_missed_polls_ends_when_polls_succeed_again =>
        super::the_stuck_mark_of_missed_polls_ends_when_polls_succeed_again,
}
