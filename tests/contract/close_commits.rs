//! Promise: closing a consumer commits what it handled, even if the first commit attempt
//! at close fails with an error that may pass (a coordinator briefly unreachable): the
//! commit is tried again until the stop deadline, as the Java client's `commitSync` on
//! close, so the next owner does not handle those messages again.
//!
//! No commit happens before the close (a 1 h commit interval, the last call still running
//! when close is called); then the first two commit attempts fail.

use std::time::Duration;

use kafka_sync::domain::KafkaMessage;

use crate::env::{message, n_of, wait_for, Env, WAIT};

fn a_failed_commit_at_close_is_tried_again(env: &mut Env) {
    let topic = env.topic("close-commits", 1);
    let mut config = env.config.clone();
    config.consumer.retry_topic_enabled = false;
    config.consumer.commit_interval = Duration::from_secs(3600);

    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let consumer = env.consumer(config.clone());
    consumer.register_handler("test", move |m: &KafkaMessage| {
        if n_of(m) == 4 {
            let _ = entered_tx.try_send(());
            let _ = released.recv_timeout(WAIT);
        }
        Ok(())
    });
    env.send(&topic, &(0..5).map(message).collect::<Vec<_>>());
    consumer.consume([topic.as_str()]).expect("consumes");
    entered.recv_timeout(WAIT).expect("the last call runs");

    let closing = std::thread::spawn(move || consumer.close(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(200));
    env.fail_next_commits(0, 2);
    release.send(()).expect("the last call ends");
    closing.join().expect("close returns").expect("closes");

    let group = config.group_id.clone();
    wait_for("the group's commit covers every message", || {
        env.offsets(&group, &topic)[&0] == (5, Some(5))
    });
}

contract! {
    a_failed_commit_at_close_is_tried_again => super::a_failed_commit_at_close_is_tried_again,
}
