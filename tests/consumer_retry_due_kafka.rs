//! Retry entries' due times against a real Apache Kafka (`KAFKA_TEST_BROKERS`,
//! `KAFKA_TEST_TRANSPORT`; with no broker these fail, never skip): an entry not yet due
//! does not hold up the entries behind it, and a due time clamped to
//! `retry_topic_max_delay` is kept in the entry, so a member restarting more often than
//! the delay still handles it. The in-memory versions are in `consumer_retry_topic.rs`.

mod common;
mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consumer_support::{message, quick_retries, wait_for};
use kafka_sync::domain::{KafkaMessage, MessageType, Origin, RetryRecord};
use kafka_sync::transport::{Header, OutgoingRecord, ProduceOptions};
use kafka_sync::{Acks, Compression, Config, Kafka};

type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

fn config() -> Config {
    let mut c = common::kafka_config();
    c.consumer.retry = quick_retries(2);
    c.consumer.max_wait = Duration::from_millis(50);
    c.consumer.retry_topic = common::random_topic("retry");
    c.consumer.dead_letter_topic = common::random_topic("dlq");
    c.consumer.shutdown_timeout = Duration::from_secs(10);
    c.consumer.retry_topic_delay = Duration::from_millis(200);
    common::create_topic(&c.consumer.retry_topic, 1, &[]);
    c
}

/// Writes a retry entry of `config`'s group for `message`, due at `due`, with the headers
/// the consumer writes.
fn park(kafka: &Kafka, config: &Config, message: KafkaMessage, due: SystemTime) {
    let now = SystemTime::now();
    let entry = RetryRecord {
        message,
        attempts: 1,
        due_at: due,
        origin: Origin {
            topic: "input".into(),
            partition: 0,
            offset: 0,
        },
        group: config.group_id.clone(),
        service: "tests".into(),
        first_failure_at: now,
        last_failure_at: now,
        last_error: "earlier failure".into(),
    };
    let env = KafkaMessage::new(MessageType::RETRY, &entry).unwrap();
    let due_ms = due.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let record = OutgoingRecord {
        partition: 0,
        key: None,
        value: env.to_bytes().unwrap(),
        headers: vec![
            Header::new("retry-group", config.group_id.as_str()),
            Header::new("retry-due-at", due_ms.to_string()),
        ],
    };
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(10),
    };
    let mut session = kafka.transport().connect_producer().unwrap();
    for r in session.produce(&config.consumer.retry_topic, &[record], &options) {
        r.unwrap();
    }
}

fn recording(consumer: &kafka_sync::Consumer, seen: &Seen) {
    let s = seen.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        s.lock()
            .unwrap()
            .push((m.payload["n"].as_u64().unwrap(), Instant::now()));
        Ok(())
    });
}

#[test]
fn an_entry_not_yet_due_does_not_hold_up_the_entries_behind_it_on_the_broker() {
    let mut config = config();
    config.consumer.retry_topic_max_delay = Duration::from_secs(60);
    let kafka = Kafka::connect(config.clone()).unwrap();
    let far = SystemTime::now() + Duration::from_secs(6);
    park(&kafka, &config, message(1), far);
    park(&kafka, &config, message(2), SystemTime::now());
    let seen = Seen::default();
    let consumer = kafka.consumer().unwrap();
    recording(&consumer, &seen);
    let started = Instant::now();
    let retry = config.consumer.retry_topic.clone();
    consumer.consume([retry.as_str()]).unwrap();
    wait_for("the entry due now handled", Duration::from_secs(30), || {
        !seen.lock().unwrap().is_empty()
    });
    let (n, at) = seen.lock().unwrap()[0];
    assert_eq!(n, 2, "the entry due now went first");
    wait_for("the later entry handled", Duration::from_secs(30), || {
        seen.lock().unwrap().len() == 2
    });
    let (n, later) = seen.lock().unwrap()[1];
    consumer.close(Duration::from_secs(20)).unwrap();
    assert_eq!(n, 1);
    assert!(
        later.duration_since(at) > Duration::from_secs(2),
        "the first was handled well before the second was due ({:?} after start)",
        at.duration_since(started)
    );
    assert!(SystemTime::now() >= far, "not handled before its due time");
}

#[test]
fn a_clamped_entry_is_handled_though_its_member_restarts_more_often_than_the_clamp_on_the_broker() {
    let mut config = config();
    config.consumer.retry_topic_max_delay = Duration::from_secs(3);
    let kafka = Kafka::connect(config.clone()).unwrap();
    let year = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    park(&kafka, &config, message(1), year);
    let seen = Seen::default();
    let retry = config.consumer.retry_topic.clone();
    let mut rescheduled = 0;
    for _ in 0..5 {
        let consumer = kafka.consumer().unwrap();
        recording(&consumer, &seen);
        let handle = consumer.consume([retry.as_str()]).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        consumer.close(Duration::from_secs(20)).unwrap();
        rescheduled += handle.metrics()[0].rescheduled;
        if !seen.lock().unwrap().is_empty() {
            break;
        }
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "handled once, after the clamped delay: {seen:?}"
    );
    assert_eq!(rescheduled, 1, "the clamp is written once");
}
