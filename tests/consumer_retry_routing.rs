//! A retry entry always comes back to a consumer that has its handler, whatever consumers
//! share a group: two consumers from one `Kafka` in one group, one handling type `a` on
//! topic A (every message fails its first round, then succeeds from the retry topic), the
//! other type `b` on topic B. Run on the in-memory transport and on the real broker
//! (`KAFKA_TEST_BROKERS`, `KAFKA_TEST_TRANSPORT`; with no broker the broker test fails,
//! never skips).
//!
//! Before the retry groups of their own, both consumers read the retry topic as members of
//! the one group and split its partitions: about a third of the entries were read by the
//! consumer without handler `a` and dead-lettered as `unknown_type` (65 of 200 in memory).

mod common;
mod consumer_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{quick_retries, wait_for};
use kafka_sync::domain::{HandlerError, KafkaMessage, MessageType};
use kafka_sync::transport::MemoryTransport;
use kafka_sync::{Config, ConsumerHandle, Kafka};

const MESSAGES_A: usize = 200;
const MESSAGES_B: usize = 20;
const SETTLE: Duration = Duration::from_secs(90);

/// Ids handled successfully, with how many times each.
type Handled = Arc<Mutex<HashMap<String, usize>>>;

fn tune(config: &mut Config) {
    config.consumer.retry_topic_enabled = true;
    config.consumer.retry = quick_retries(2);
    config.consumer.retry_topic_delay = Duration::from_millis(200);
    config.consumer.max_wait = Duration::from_millis(50);
    config.consumer.shutdown_timeout = Duration::from_secs(10);
}

fn messages(kind: &'static str, n: usize) -> Vec<KafkaMessage> {
    (0..n)
        .map(|i| {
            KafkaMessage::from_json(MessageType::new(kind), serde_json::json!({ "n": i }))
                .with_key(format!("{kind}-key-{i}"))
        })
        .collect()
}

fn sum(
    handles: &[&ConsumerHandle],
    f: impl Fn(&kafka_sync::metrics::ConsumerTopicMetrics) -> u64,
) -> u64 {
    handles
        .iter()
        .flat_map(|h| h.metrics())
        .map(|m| f(&m))
        .sum()
}

/// The scenario on `kafka`, whose topics `topic_a`, `topic_b` and retry topic exist with
/// several partitions each.
fn two_consumers_one_group(kafka: &Kafka, topic_a: &str, topic_b: &str) {
    let handled_a: Handled = Arc::default();
    let handled_b: Handled = Arc::default();

    let first = kafka.consumer().unwrap();
    let seen = handled_a.clone();
    first.register_handler("a", move |m: &KafkaMessage| {
        if m.attempt == 0 {
            // The first round fails every in-place attempt: the message is parked.
            return Err(HandlerError::retriable("a fails its first round"));
        }
        *seen.lock().unwrap().entry(m.id.to_string()).or_default() += 1;
        Ok(())
    });
    let second = kafka.consumer().unwrap();
    let seen = handled_b.clone();
    second.register_handler("b", move |m: &KafkaMessage| {
        *seen.lock().unwrap().entry(m.id.to_string()).or_default() += 1;
        Ok(())
    });
    let h1 = first.consume([topic_a]).unwrap();
    let h2 = second.consume([topic_b]).unwrap();
    // Every thread (each topic's and each consumer's retry topic reader) has partitions
    // before anything is sent: on today's code the two retry readers then split the retry
    // topic's partitions.
    wait_for("every consumer thread assigned", SETTLE, || {
        [&h1, &h2]
            .iter()
            .all(|h| h.metrics().len() == 2 && h.metrics().iter().all(|m| !m.lag.is_empty()))
    });

    let producer = kafka.producer();
    let sent_a = messages("a", MESSAGES_A);
    for r in producer.send_batch(topic_a, sent_a.clone()) {
        r.expect("a is written");
    }
    for r in producer.send_batch(topic_b, messages("b", MESSAGES_B)) {
        r.expect("b is written");
    }

    // Settled: every `a` ended one way or another (handled, dead-lettered or skipped).
    let ended = || {
        handled_a.lock().unwrap().len() as u64
            + sum(&[&h1, &h2], |m| m.dead_lettered + m.skipped_unknown_type)
    };
    wait_for("every message of type a ended", SETTLE, || {
        ended() >= MESSAGES_A as u64 && handled_b.lock().unwrap().len() == MESSAGES_B
    });
    // Anything still on its way shows up in this time.
    std::thread::sleep(Duration::from_secs(1));

    let dead = sum(&[&h1, &h2], |m| m.dead_lettered);
    let skipped = sum(&[&h1, &h2], |m| m.skipped_unknown_type);
    let parked = sum(&[&h1], |m| m.sent_to_retry);
    let a = handled_a.lock().unwrap().clone();
    let b = handled_b.lock().unwrap().clone();
    first.close(Duration::from_secs(20)).unwrap();
    second.close(Duration::from_secs(20)).unwrap();

    assert_eq!(
        (dead, skipped),
        (0, 0),
        "retry entries read by the consumer without their handler"
    );
    assert_eq!(parked, MESSAGES_A as u64, "each `a` parked once");
    for m in &sent_a {
        assert_eq!(
            a.get(&m.id.to_string()),
            Some(&1),
            "message {} handled once",
            m.id
        );
    }
    assert_eq!(a.len(), MESSAGES_A);
    assert!(
        b.values().all(|&n| n == 1) && b.len() == MESSAGES_B,
        "{b:?}"
    );
}

#[test]
fn a_retry_entry_comes_back_to_the_consumer_with_its_handler_in_memory() {
    let broker = MemoryTransport::new();
    for topic in ["topic-a", "topic-b", "retry"] {
        broker.create_topic(topic, 3).unwrap();
    }
    let mut config = Config {
        group_id: "shared-group".into(),
        ..Config::in_memory()
    };
    tune(&mut config);
    let kafka = Kafka::with_transport(config, Arc::new(broker)).unwrap();
    two_consumers_one_group(&kafka, "topic-a", "topic-b");
}

/// The scenario on the real broker; `instance`: static membership.
fn on_the_broker(instance: Option<String>) {
    let mut config = common::kafka_config();
    tune(&mut config);
    config.consumer.retry_topic = common::random_topic("retry");
    config.consumer.dead_letter_topic = common::random_topic("dlq");
    config.consumer.group_instance_id = instance;
    let (a, b) = (common::random_topic("a"), common::random_topic("b"));
    for topic in [&a, &b, &config.consumer.retry_topic] {
        common::create_topic(topic, 3, &[]);
    }
    let kafka = Kafka::connect(config).unwrap();
    two_consumers_one_group(&kafka, &a, &b);
}

#[test]
fn a_retry_entry_comes_back_to_the_consumer_with_its_handler_on_the_broker() {
    on_the_broker(None);
}

/// With `group_instance_id`, both retry readers were `<id>-retry` in one group and fenced
/// each other.
#[test]
fn a_retry_entry_comes_back_to_the_consumer_with_its_handler_with_static_members_on_the_broker() {
    on_the_broker(Some(format!("routing-{}", uuid::Uuid::new_v4().simple())));
}

/// The retry reader's group is derived from the consumer's topics: a later `consume` call
/// adding a topic would leave that topic's retry entries to no one, and is refused.
#[test]
fn adding_a_topic_once_the_retry_topic_is_read_is_refused_with_the_reason() {
    let broker = MemoryTransport::new();
    let mut config = Config {
        group_id: "g".into(),
        ..Config::in_memory()
    };
    tune(&mut config);
    let kafka = Kafka::with_transport(config, Arc::new(broker.clone())).unwrap();
    let consumer = kafka.consumer().unwrap();
    consumer.consume(["topic-a"]).unwrap();
    let err = consumer.consume(["topic-b"]).unwrap_err().to_string();
    assert!(
        err.contains("topic-b") && err.contains("in one `consume`"),
        "{err}"
    );
    consumer.close(Duration::from_secs(10)).unwrap();
    // The retry topic was read under the consumer's own retry group.
    let group = kafka.config().consumer.retry_group_of("g", &["topic-a"]);
    assert!(group.starts_with("g.retry."), "{group}");
}

/// A consumer of the dead-letter topic alone parks nothing: it does not read the retry
/// topic (it would take every entry of its group, having none of their handlers).
#[test]
fn a_consumer_of_the_dead_letter_topic_alone_does_not_read_the_retry_topic() {
    let broker = MemoryTransport::new();
    let mut config = Config {
        group_id: "g".into(),
        ..Config::in_memory()
    };
    tune(&mut config);
    let dead_letter_topic = config.consumer.dead_letter_topic.clone();
    let kafka = Kafka::with_transport(config, Arc::new(broker)).unwrap();
    let consumer = kafka.consumer().unwrap();
    consumer.register_dead_letter_handler(|_| Ok(()));
    let handle = consumer.consume([dead_letter_topic.as_str()]).unwrap();
    let topics: Vec<String> = handle.metrics().into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, vec![dead_letter_topic]);
    consumer.close(Duration::from_secs(10)).unwrap();
}
