//! Consumer scenarios on the in-memory transport: how each kind of message ends.

mod consumer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::*;
use kafka_sync::domain::ScrapingTask;
use kafka_sync::domain::{DeadLetterKind, HandlerError, KafkaMessage, MessageType, RawBytes};
use kafka_sync::Kafka;
use kafka_sync::UnknownTypePolicy;

const T: &str = "input";
const DLQ: &str = "dead-letter";
const WAIT: Duration = Duration::from_secs(10);

fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Fn(&KafkaMessage) -> kafka_sync::domain::HandlerResult {
    let calls = calls.clone();
    move |_m: &KafkaMessage| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn every_message_is_handled_once_and_every_offset_committed() {
    let (broker, transport) = memory();
    send_all(&transport, T, (0..300).map(message).collect());
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let s = seen.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        *s.lock().unwrap().entry(m.id).or_insert(0) += 1;
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("all committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(seen.lock().unwrap().len(), 300);
    assert!(seen.lock().unwrap().values().all(|&n| n == 1));
    wait_for("lag 0", WAIT, || {
        let m = &handle.metrics()[0];
        m.lag.len() == 3 && m.total_lag() == 0
    });
    let m = &handle.metrics()[0];
    assert_eq!((m.consumed, m.handled, m.dead_lettered), (300, 300, 0));
    assert!(m.handler_latency_p50.is_some() && m.handler_latency_p99.is_some());
    assert!(m.last_poll.is_some());
    consumer.close(WAIT).unwrap();
    assert!(!handle.is_running());
}

#[test]
fn a_retriable_error_is_retried_in_place_until_it_succeeds() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1)]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        match c.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err(HandlerError::retriable("busy")),
            _ => Ok(()),
        }
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let m = &handle.metrics()[0];
    assert_eq!((m.handled, m.retried_in_place, m.dead_lettered), (1, 2, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(broker.records(DLQ).is_empty());
}

#[test]
fn a_handler_that_panics_is_retried_and_then_dead_lettered() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1), message(2)]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        c.fetch_add(1, Ordering::SeqCst);
        if m.payload["n"] == 1 {
            panic!("handler bug");
        }
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let letters = dead_letters(&broker, DLQ);
    assert_eq!(letters.len(), 1);
    let dl = &letters[0];
    assert_eq!(dl.kind, DeadLetterKind::Panic);
    assert_eq!(dl.attempts, 3);
    assert!(dl.error.contains("handler bug"), "{}", dl.error);
    assert_eq!(dl.correlation_id.as_deref(), Some("corr-1"));
    let m = &handle.metrics()[0];
    assert_eq!((m.handled, m.dead_lettered), (1, 1), "the thread lived on");
    assert!(handle.health().threads[0].alive);
}

#[test]
fn a_permanent_error_goes_straight_to_the_dead_letter_topic_with_every_field() {
    let (broker, transport) = memory();
    let original = message(7).with_key("k7");
    send_all(&transport, T, vec![original.clone()]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.register_handler("test", |_m: &KafkaMessage| {
        Err(HandlerError::permanent("invalid url"))
    });
    consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.kind, DeadLetterKind::Permanent);
    assert_eq!(dl.original.as_ref(), Some(&original));
    assert_eq!(dl.raw_value, None);
    assert_eq!(dl.message_id, Some(original.id));
    assert_eq!(dl.message_type, Some(MessageType::new("test")));
    assert_eq!(dl.correlation_id.as_deref(), Some("corr-7"));
    assert_eq!(dl.attempts, 1);
    assert!(dl.first_failure_at <= dl.last_failure_at);
    assert_eq!(dl.origin.topic, T);
    assert_eq!(
        (dl.group.as_str(), dl.service.as_str()),
        ("g", "consumer-tests")
    );
    assert!(dl.error.contains("invalid url"));
    let dl_records = broker.records(DLQ);
    assert_eq!(
        dl_records[0].key.as_deref(),
        Some(&b"k7"[..]),
        "keyed like the original"
    );
}

fn ends_as_decode_dead_letter(value: &[u8], error_part: &str) {
    let (broker, transport) = memory();
    send_raw(&transport, T, 1, value);
    send_all(&transport, T, vec![message(1)]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    consumer.register_handler("test", counting(&calls));
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.kind, DeadLetterKind::Decode);
    assert_eq!(dl.original, None);
    assert_eq!(
        dl.raw_value.as_ref().map(RawBytes::to_vec).as_deref(),
        Some(value)
    );
    assert_eq!(dl.key, Some(RawBytes::Utf8("raw-key".into())));
    assert_eq!((dl.origin.partition, dl.origin.offset), (1, 0));
    assert!(dl.error.contains(error_part), "{}", dl.error);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the good message is still handled"
    );
    assert_eq!(handle.metrics()[0].decode_errors, 1);
}

#[test]
fn malformed_json_is_dead_lettered_as_raw_bytes_and_committed() {
    ends_as_decode_dead_letter(b"{\"id\": oops", "not a message envelope");
}

#[test]
fn an_empty_value_is_dead_lettered_and_committed() {
    ends_as_decode_dead_letter(b"", "empty value");
}

#[test]
fn bytes_that_are_not_utf8_are_dead_lettered_losslessly() {
    ends_as_decode_dead_letter(&[0xff, 0x00, 0xfe], "not a message envelope");
}

#[test]
fn valid_json_of_the_wrong_shape_is_dead_lettered_with_its_ids_salvaged() {
    let id = uuid::Uuid::new_v4();
    let value = format!(r#"{{"id":"{id}","correlation_id":"req-9","type":42}}"#);
    ends_as_decode_dead_letter(value.as_bytes(), "not a message envelope");
    let (broker, transport) = memory();
    send_raw(&transport, T, 0, value.as_bytes());
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.message_id, Some(id));
    assert_eq!(dl.correlation_id.as_deref(), Some("req-9"));
}

#[test]
fn an_unknown_message_type_is_dead_lettered_by_default() {
    let (broker, transport) = memory();
    let stranger = KafkaMessage::from_json(MessageType::new("stranger"), serde_json::json!(1));
    send_all(&transport, T, vec![stranger.clone()]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.register_handler("test", |_m: &KafkaMessage| Ok(()));
    consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.kind, DeadLetterKind::UnknownType);
    assert_eq!(dl.original, Some(stranger));
    assert_eq!(dl.attempts, 0);
    assert!(dl.error.contains("stranger"), "{}", dl.error);
}

#[test]
fn an_unknown_message_type_is_skipped_with_a_warning_when_configured() {
    let (broker, transport) = memory();
    send_all(
        &transport,
        T,
        vec![KafkaMessage::from_json(
            MessageType::new("x"),
            serde_json::json!(1),
        )],
    );
    let mut config = fast_config("g");
    config.consumer.unknown_type = UnknownTypePolicy::Skip;
    let consumer = Kafka::with_transport(config, transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert!(broker.records(DLQ).is_empty());
    assert_eq!(handle.metrics()[0].skipped_unknown_type, 1);
}

#[test]
fn a_payload_near_the_1_mb_default_limit_is_handled() {
    let (broker, transport) = memory();
    const SIZE: usize = 900_000;
    let big = KafkaMessage::from_json(
        MessageType::new("test"),
        serde_json::json!("x".repeat(SIZE)),
    );
    send_all(&transport, T, vec![big]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let size = Arc::new(AtomicUsize::new(0));
    let s = size.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        s.store(m.payload.as_str().map_or(0, str::len), Ordering::SeqCst);
        Ok(())
    });
    consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(size.load(Ordering::SeqCst), SIZE);
    assert!(broker.records(DLQ).is_empty());
}

#[test]
fn a_payload_that_does_not_decode_into_the_typed_handlers_type_is_dead_lettered() {
    let (broker, transport) = memory();
    let good =
        KafkaMessage::new(MessageType::SCRAPING_TASK, &ScrapingTask::new("https://a")).unwrap();
    let bad = KafkaMessage::from_json(MessageType::SCRAPING_TASK, serde_json::json!({"url": 5}));
    send_all(&transport, T, vec![good, bad.clone()]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let urls = Arc::new(Mutex::new(Vec::new()));
    let u = urls.clone();
    consumer.register_typed(
        MessageType::SCRAPING_TASK,
        move |_m: &KafkaMessage, t: ScrapingTask| {
            u.lock().unwrap().push(t.url);
            Ok(())
        },
    );
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(*urls.lock().unwrap(), vec!["https://a".to_string()]);
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.kind, DeadLetterKind::Decode);
    assert_eq!(dl.original, Some(bad));
    assert!(dl.error.contains("ScrapingTask"), "{}", dl.error);
    assert_eq!(handle.metrics()[0].decode_errors, 1);
}

#[test]
fn duplicate_ids_are_skipped_and_counted() {
    let (broker, transport) = memory();
    let m = message(1);
    send_all(&transport, T, vec![m.clone(), m.clone(), message(2), m]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    consumer.register_handler("test", counting(&calls));
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(handle.metrics()[0].duplicates, 2);
}

#[test]
fn a_handler_running_past_its_timeout_that_then_fails_ends_as_timeout() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1)]);
    let mut config = fast_config("g");
    config.consumer.handler_timeout = Some(Duration::from_millis(50));
    config.consumer.retry.max_attempts = 2;
    let consumer = Kafka::with_transport(config, transport)
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.register_handler("test", |_m: &KafkaMessage| {
        std::thread::sleep(Duration::from_millis(120));
        Err(HandlerError::retriable("slow and failing"))
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.kind, DeadLetterKind::Timeout);
    assert_eq!(dl.attempts, 2);
    assert!(dl.error.contains("slow and failing"), "{}", dl.error);
    assert_eq!(handle.metrics()[0].handled, 0);
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_late_success_counts_as_handled_and_is_never_run_twice_at_once() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1), message(2)]);
    let mut config = fast_config("g");
    config.consumer.handler_timeout = Some(Duration::from_millis(30));
    let consumer = Kafka::with_transport(config, transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, m, c) = (running.clone(), most.clone(), calls.clone());
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        c.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        r.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let m = &handle.metrics()[0];
    assert_eq!((m.handled, m.dead_lettered), (2, 0), "late successes count");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one call per message");
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two calls at once");
    assert!(broker.records(DLQ).is_empty());
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_dead_letter_write_that_fails_is_retried_and_the_offset_waits_for_it() {
    let (broker, transport) = memory();
    send_raw(&transport, T, 0, b"garbage");
    let calls_before = broker.produce_calls();
    broker.fail_next_produces(3, kafka_sync::ErrorKind::Broker);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let handle = consumer.consume([T]).unwrap();
    wait_for("a failed write", WAIT, || {
        broker.produce_calls() >= calls_before + 2
    });
    assert_eq!(
        broker.committed("g", T, 0),
        None,
        "not committed before the write lands"
    );
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(dead_letters(&broker, DLQ).len(), 1);
    assert!(broker.produce_calls() >= calls_before + 4);
    let health = handle.health();
    assert!(health.threads[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains(DLQ));
}

#[test]
fn a_batch_handler_gets_consecutive_messages_together_and_failures_are_retried_one_by_one() {
    struct Batches {
        sizes: Mutex<Vec<usize>>,
        singles: AtomicUsize,
    }
    impl kafka_sync::domain::MessageHandler for Batches {
        fn handle(&self, _m: &KafkaMessage) -> kafka_sync::domain::HandlerResult {
            self.singles.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn handle_batch(&self, ms: &[KafkaMessage]) -> Vec<kafka_sync::domain::HandlerResult> {
            self.sizes.lock().unwrap().push(ms.len());
            ms.iter()
                .map(|m| match m.payload["n"].as_u64().unwrap() % 3 {
                    0 => Err(HandlerError::retriable("one in three fails at first")),
                    _ => Ok(()),
                })
                .collect()
        }
    }
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, (1..=10).map(message).collect());
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let handler = Arc::new(Batches {
        sizes: Mutex::new(Vec::new()),
        singles: AtomicUsize::new(0),
    });
    struct Shared(Arc<Batches>);
    impl kafka_sync::domain::MessageHandler for Shared {
        fn handle(&self, m: &KafkaMessage) -> kafka_sync::domain::HandlerResult {
            self.0.handle(m)
        }
        fn handle_batch(&self, ms: &[KafkaMessage]) -> Vec<kafka_sync::domain::HandlerResult> {
            self.0.handle_batch(ms)
        }
    }
    consumer.register_batch_handler("test", Shared(handler.clone()), 4);
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(*handler.sizes.lock().unwrap(), vec![4, 4, 2]);
    // 3, 6 and 9 failed in their batch and were retried alone (and succeeded).
    assert_eq!(handler.singles.load(Ordering::SeqCst), 3);
    let m = &handle.metrics()[0];
    assert_eq!((m.handled, m.retried_in_place, m.dead_lettered), (10, 3, 0));
}

#[test]
fn a_second_copy_of_a_message_in_a_batch_is_skipped_as_a_duplicate() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    let m = message(1);
    send_all(&transport, T, vec![m.clone(), m, message(2)]);
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    consumer.register_batch_handler("test", counting(&calls), 10);
    let handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(handle.metrics()[0].duplicates, 1);
}
