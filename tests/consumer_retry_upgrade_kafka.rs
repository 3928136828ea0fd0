//! Upgrading from a version that read the retry topic as the consumer group itself, against
//! a real Apache Kafka (`KAFKA_TEST_BROKERS`, `KAFKA_TEST_TRANSPORT`; with no broker
//! it fails, never skips): the consumer's retry group of its own starts where the group
//! stopped on the retry topic, so the entries the old version handled are not handled
//! again and those it had not read yet are.

mod common;
mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use consumer_support::{message, park_entry, quick_retries, wait_for};
use kafka_sync::domain::KafkaMessage;
use kafka_sync::transport::{SubscribeOptions, Transport};
use kafka_sync::{Kafka, StartOffset};

/// Commits `next` on partition 0 of `topic` for `group`, as the old version's retry reader
/// did after handling the entries before it.
fn commit_as_old_version(transport: &Arc<dyn Transport>, group: &str, topic: &str, next: i64) {
    let mut sub = transport
        .subscribe(SubscribeOptions {
            group: group.into(),
            topic: topic.into(),
            client_id: "old-version".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 1_000_000,
        })
        .unwrap();
    wait_for("the old reader assigned", Duration::from_secs(30), || {
        sub.poll(Duration::from_millis(100)).unwrap();
        !sub.assignment().is_empty()
    });
    sub.commit(&[(0, next)]).unwrap();
    sub.close().unwrap();
}

#[test]
fn after_an_upgrade_the_retry_group_starts_where_the_group_stopped_on_the_broker() {
    let mut config = common::kafka_config();
    config.consumer.retry = quick_retries(2);
    config.consumer.max_wait = Duration::from_millis(50);
    config.consumer.retry_topic = common::random_topic("retry");
    config.consumer.dead_letter_topic = common::random_topic("dlq");
    config.consumer.retry_topic_delay = Duration::from_millis(200);
    let (retry, topic) = (
        config.consumer.retry_topic.clone(),
        common::random_topic("a"),
    );
    common::create_topic(&retry, 1, &[]);
    common::create_topic(&topic, 1, &[]);
    let kafka = Kafka::connect(config.clone()).unwrap();
    let transport = kafka.transport().clone();
    let group = config.group_id.clone();
    // Entries 0..5 the old version handled (committed by the group), 100..103 not yet.
    for n in 0..5 {
        park_entry(
            &transport,
            &retry,
            0,
            &group,
            &topic,
            message(n),
            SystemTime::now(),
        );
    }
    commit_as_old_version(&transport, &group, &retry, 5);
    for n in 100..103 {
        park_entry(
            &transport,
            &retry,
            0,
            &group,
            &topic,
            message(n),
            SystemTime::now(),
        );
    }

    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let consumer = kafka.consumer().unwrap();
    let s = seen.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        s.lock().unwrap().push(m.payload["n"].as_u64().unwrap());
        Ok(())
    });
    consumer.consume([topic.as_str()]).unwrap();
    wait_for(
        "the unread entries handled",
        Duration::from_secs(60),
        || seen.lock().unwrap().len() >= 3,
    );
    // Entries read again, if any, show up in this time.
    std::thread::sleep(Duration::from_secs(2));
    consumer.close(Duration::from_secs(20)).unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![100, 101, 102],
        "only the entries the old version had not read"
    );
}
