//! The consumer against a real Apache Kafka (started by `make test` / `make kafka-up`).
//! Each test uses random topics (`ks-…`) and a random group; with no broker they fail
//! (never skip) with "no Kafka broker at …: run `make kafka-up`".

mod common;
mod consumer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{kafka_config, random_topic, read_back};
use consumer_support::{message, quick_retries, wait_for};
use kafka_sync::domain::{
    DeadLetterKind, DeadLetterRecord, HandlerError, KafkaMessage, MessageType,
};
use kafka_sync::transport::{OutgoingRecord, ProduceOptions, SubscribeOptions, Transport};
use kafka_sync::Kafka;
use kafka_sync::StartOffset;
use kafka_sync::{Acks, Compression, Config};

const WAIT: Duration = Duration::from_secs(30);

/// A consumer config for the real broker: random group, random retry and dead-letter
/// topics, fast polls and retries.
fn config() -> Config {
    let mut c = kafka_config();
    c.service_name = "consumer-kafka-tests".into();
    c.consumer.min_bytes = 1;
    c.consumer.max_wait = Duration::from_millis(100);
    c.consumer.retry = quick_retries(3);
    c.consumer.dead_letter_topic = random_topic("dlq");
    c.consumer.retry_topic = random_topic("retry");
    c.consumer.retry_topic_delay = Duration::from_millis(500);
    c.consumer.shutdown_timeout = Duration::from_secs(10);
    // In-place retries ending in the dead-letter topic; the retry topic has tests of its own.
    c.consumer.retry_topic_enabled = false;
    c
}

fn transport(c: &Config) -> Arc<dyn Transport> {
    kafka_sync::Kafka::connect(c.clone())
        .expect("transport")
        .transport()
        .clone()
}

fn produce(t: &Arc<dyn Transport>, topic: &str, messages: Vec<KafkaMessage>) {
    let mut config = kafka_config();
    config.producer.max_message_bytes = 2_000_000;
    let producer = Kafka::with_transport(config, t.clone())
        .map(|k| k.producer())
        .unwrap();
    for r in producer.send_batch(topic, messages) {
        r.expect("input is written");
    }
}

/// `group`'s lag on `topic`, measured on a fresh subscription.
fn group_lag(t: &Arc<dyn Transport>, group: &str, topic: &str) -> (i64, usize) {
    let mut sub = t
        .subscribe(SubscribeOptions {
            group: group.into(),
            topic: topic.into(),
            client_id: "lag-probe".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 1_000_000,
        })
        .unwrap();
    let lag = sub.lag().unwrap();
    let _ = sub.close();
    (lag.iter().map(|l| l.lag()).sum(), lag.len())
}

/// The dead letters on `topic`, once `handle` counted `expected` of them.
fn dead_letters(
    handle: &kafka_sync::ConsumerHandle,
    topic: &str,
    expected: usize,
) -> Vec<DeadLetterRecord> {
    wait_for("dead letters written", WAIT, || {
        handle
            .metrics()
            .iter()
            .map(|m| m.dead_lettered)
            .sum::<u64>()
            >= expected as u64
    });
    read_back(topic, expected, WAIT)
        .iter()
        .map(|r| {
            let env = KafkaMessage::from_bytes(&r.value).unwrap();
            assert_eq!(env.message_type, MessageType::DEAD_LETTER);
            env.payload_as().unwrap()
        })
        .collect()
}

#[test]
fn ten_thousand_messages_over_three_partitions_are_each_handled_exactly_once_and_committed() {
    let c = config();
    let t = transport(&c);
    let topic = random_topic("bulk");
    produce(&t, &topic, (0..10_000).map(message).collect());
    let consumer = Kafka::with_transport(c.clone(), t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let seen = Arc::new(Mutex::new(HashMap::<uuid::Uuid, u32>::new()));
    let s = seen.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        *s.lock().unwrap().entry(m.id).or_default() += 1;
        Ok(())
    });
    let handle = consumer.consume([topic.as_str()]).unwrap();
    wait_for("10,000 handled", WAIT, || {
        handle.metrics()[0].handled == 10_000
    });
    wait_for("lag 0", WAIT, || {
        let m = &handle.metrics()[0];
        m.lag.len() == 3 && m.total_lag() == 0
    });
    consumer.close(WAIT).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10_000);
    assert!(
        seen.values().all(|&n| n == 1),
        "a message was handled twice"
    );
    assert_eq!(group_lag(&t, &c.group_id, &topic), (0, 3));
    let m = &consumer.metrics()[0];
    assert_eq!((m.consumed, m.duplicates, m.dead_lettered), (10_000, 0, 0));
}

#[test]
fn ten_percent_failing_their_first_two_attempts_are_all_handled_and_none_dead_lettered() {
    let c = config();
    let t = transport(&c);
    let topic = random_topic("flaky");
    produce(&t, &topic, (0..500).map(message).collect());
    let consumer = Kafka::with_transport(c.clone(), t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let attempts = Arc::new(Mutex::new(HashMap::<uuid::Uuid, u32>::new()));
    let a = attempts.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        let mut attempts = a.lock().unwrap();
        let n = attempts.entry(m.id).or_default();
        *n += 1;
        if m.payload["n"].as_u64().unwrap().is_multiple_of(10) && *n <= 2 {
            return Err(HandlerError::retriable("flaky dependency"));
        }
        Ok(())
    });
    let handle = consumer.consume([topic.as_str()]).unwrap();
    wait_for("all handled", WAIT, || handle.metrics()[0].handled == 500);
    consumer.close(WAIT).unwrap();
    let m = &consumer.metrics()[0];
    assert_eq!(
        (m.retried_in_place, m.dead_lettered, m.sent_to_retry),
        (100, 0, 0)
    );
    assert_eq!(group_lag(&t, &c.group_id, &topic), (0, 3));
    assert_eq!(group_lag(&t, "nobody", &c.consumer.dead_letter_topic).0, 0);
}

#[test]
fn always_failing_and_panicking_handlers_end_in_dead_letters_that_carry_every_field() {
    let c = config();
    let t = transport(&c);
    let topic = random_topic("doomed");
    let messages: Vec<_> = (0..6).map(message).collect();
    produce(&t, &topic, messages.clone());
    let started = SystemTime::now();
    let consumer = Kafka::with_transport(c.clone(), t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.register_handler("test", |m: &KafkaMessage| {
        if m.payload["n"].as_u64().unwrap().is_multiple_of(2) {
            panic!("handler bug on {}", m.id);
        }
        Err(HandlerError::retriable("never works"))
    });
    let handle = consumer.consume([topic.as_str()]).unwrap();
    let letters = dead_letters(&handle, &c.consumer.dead_letter_topic, 6);
    assert_eq!(letters.len(), 6);
    for dl in &letters {
        let original = dl.original.as_ref().expect("the original envelope");
        assert!(messages.contains(original));
        let even = original.payload["n"].as_u64().unwrap() % 2 == 0;
        let (kind, text) = if even {
            (DeadLetterKind::Panic, "handler panicked")
        } else {
            (DeadLetterKind::Handler, "never works")
        };
        assert_eq!(dl.kind, kind);
        assert!(dl.error.contains(text), "{}", dl.error);
        assert_eq!(dl.attempts, 3);
        assert!(started <= dl.first_failure_at && dl.first_failure_at < dl.last_failure_at);
        assert_eq!(dl.origin.topic, topic);
        assert!((0..3).contains(&dl.origin.partition) && dl.origin.offset >= 0);
        assert_eq!(dl.group, c.group_id);
        assert_eq!(dl.service, "consumer-kafka-tests");
        assert_eq!(
            dl.correlation_id.as_deref(),
            Some(original.correlation_id.as_str())
        );
        assert_eq!(dl.message_id, Some(original.id));
        assert_eq!(dl.message_type, Some(MessageType::new("test")));
    }
    assert!(handle.health().threads[0].alive);
    wait_for("committed", WAIT, || {
        group_lag(&t, &c.group_id, &topic).0 == 0
    });
    consumer.close(WAIT).unwrap();
}

#[test]
fn bad_input_is_dead_lettered_as_raw_bytes_and_committed() {
    let c = config();
    let t = transport(&c);
    let topic = random_topic("bad");
    // Created (with leaders) first where the transport can (the kafka crate's cannot): a
    // raw session does not retry a topic still being made.
    if let Err(e) = t.ensure_topic(&topic, 3, -1) {
        assert_eq!(e.kind(), kafka_sync::ErrorKind::UnsupportedBroker, "{e}");
    }
    let bad: [&[u8]; 3] = [b"{not json", b"", br#"{"id": 3}"#];
    let mut session = t.connect_producer().unwrap();
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(10),
    };
    let records: Vec<_> = bad
        .iter()
        .map(|v| OutgoingRecord {
            partition: 0,
            key: None,
            value: v.to_vec(),
            headers: Vec::new(),
        })
        .collect();
    for r in session.produce(&topic, &records, &options) {
        r.unwrap();
    }
    let consumer = Kafka::with_transport(c.clone(), t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let handle = consumer.consume([topic.as_str()]).unwrap();
    let mut letters = dead_letters(&handle, &c.consumer.dead_letter_topic, 3);
    letters.sort_by_key(|dl| dl.origin.offset);
    assert_eq!(letters.len(), 3);
    for (dl, value) in letters.iter().zip(bad) {
        assert_eq!(dl.kind, DeadLetterKind::Decode);
        assert_eq!(dl.raw_value.as_ref().unwrap().to_vec(), value);
        assert_eq!(dl.original, None);
    }
    wait_for("committed", WAIT, || {
        group_lag(&t, &c.group_id, &topic).0 == 0
    });
    assert_eq!(handle.metrics()[0].decode_errors, 3);
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_parked_message_is_handled_after_its_due_time_by_its_own_group_only() {
    let mut c = config();
    c.consumer.retry = quick_retries(1);
    c.consumer.retry_topic_enabled = true;
    let t = transport(&c);
    let topic = random_topic("parked");
    produce(&t, &topic, vec![message(1)]);
    let calls = Arc::new(AtomicUsize::new(0));
    let handled_at = Arc::new(Mutex::new(None));
    let consumer = Kafka::with_transport(c.clone(), t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let (k, h) = (calls.clone(), handled_at.clone());
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        if k.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(HandlerError::retriable("try later"));
        }
        *h.lock().unwrap() = Some(SystemTime::now());
        Ok(())
    });
    // Another group reads the same retry topic and must pass over this group's entry.
    let mut other_config = c.clone();
    other_config.group_id = format!("{}-other", c.group_id);
    let other = Kafka::with_transport(other_config, t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let other_calls = Arc::new(AtomicUsize::new(0));
    let oc = other_calls.clone();
    other.register_handler("test", move |_m: &KafkaMessage| {
        oc.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let other_handle = other.consume([c.consumer.retry_topic.as_str()]).unwrap();
    let handle = consumer
        .consume([topic.as_str(), c.consumer.retry_topic.as_str()])
        .unwrap();
    wait_for("handled from the retry topic", WAIT, || {
        handled_at.lock().unwrap().is_some()
    });
    let parked = read_back(&c.consumer.retry_topic, 1, WAIT);
    let entry: kafka_sync::domain::RetryRecord = KafkaMessage::from_bytes(&parked[0].value)
        .unwrap()
        .payload_as()
        .unwrap();
    assert_eq!(
        (entry.group.as_str(), entry.attempts),
        (c.group_id.as_str(), 1)
    );
    assert!(handled_at.lock().unwrap().unwrap() >= entry.due_at);
    wait_for("the other group passed over it", WAIT, || {
        other_handle.metrics()[0].skipped_other_group == 1
    });
    assert_eq!(other_calls.load(Ordering::SeqCst), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let sent: u64 = handle.metrics().iter().map(|m| m.sent_to_retry).sum();
    assert_eq!(sent, 1);
    consumer.close(WAIT).unwrap();
    other.close(WAIT).unwrap();
}

#[test]
fn a_1_mb_payload_is_handled_and_unknown_or_mistyped_messages_are_dead_lettered() {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[allow(dead_code)]
        count: u32,
    }
    let c = config();
    let t = transport(&c);
    let topic = random_topic("shapes");
    // The broker's default limit is 1 MB: this topic takes up to 2 MB.
    common::create_topic(&topic, 3, &[("max.message.bytes", "2000000")]);
    let big = KafkaMessage::from_json(MessageType::new("big"), "x".repeat(1 << 20).into());
    let stranger = KafkaMessage::from_json(MessageType::new("stranger"), 1.into());
    let mistyped = KafkaMessage::from_json(
        MessageType::new("typed"),
        serde_json::json!({"count": "no"}),
    );
    produce(&t, &topic, vec![big, stranger.clone(), mistyped.clone()]);
    let consumer = Kafka::with_transport(c.clone(), t.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let big_len = Arc::new(AtomicUsize::new(0));
    let b = big_len.clone();
    consumer.register_handler("big", move |m: &KafkaMessage| {
        b.store(m.payload.as_str().map_or(0, str::len), Ordering::SeqCst);
        Ok(())
    });
    consumer.register_typed("typed", |_m: &KafkaMessage, _t: Typed| Ok(()));
    let handle = consumer.consume([topic.as_str()]).unwrap();
    let mut letters = dead_letters(&handle, &c.consumer.dead_letter_topic, 2);
    letters.sort_by_key(|dl| dl.kind == DeadLetterKind::Decode);
    assert_eq!(letters[0].kind, DeadLetterKind::UnknownType);
    assert_eq!(letters[0].original.as_ref(), Some(&stranger));
    assert_eq!(letters[1].kind, DeadLetterKind::Decode);
    assert_eq!(letters[1].original.as_ref(), Some(&mistyped));
    wait_for("committed", WAIT, || {
        group_lag(&t, &c.group_id, &topic).0 == 0
    });
    assert_eq!(big_len.load(Ordering::SeqCst), 1 << 20);
    consumer.close(WAIT).unwrap();
}
