//! Consumer scenarios on the in-memory transport: the retry topic, shutdown, commits,
//! groups, health.

mod consumer_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use consumer_support::*;
use kafka_sync::domain::{DeadLetterKind, HandlerError, KafkaMessage};
use kafka_sync::Kafka;
use kafka_sync::{ErrorKind, KafkaConsumerWrapper};

const T: &str = "input";
const RETRY: &str = "retry";
const DLQ: &str = "dead-letter";
const WAIT: Duration = Duration::from_secs(10);

fn with_retry_topic(group: &str, in_place: u32, total: u32) -> kafka_sync::Config {
    let mut c = fast_config(group);
    c.consumer.retry = quick_retries(in_place);
    c.consumer.retry_topic_enabled = true;
    c.consumer.max_total_attempts = total;
    c
}

#[test]
fn a_message_failing_in_place_is_parked_and_handled_after_its_due_time_by_its_own_group_only() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1)]);
    // Group "a" fails the first two attempts (both in place), then succeeds from the retry
    // topic; group "b" handles everything at once and must ignore a's retry entry.
    let a = Kafka::with_transport(with_retry_topic("a", 2, 10), transport.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let handled_at = Arc::new(Mutex::new(None));
    let (c, h) = (calls.clone(), handled_at.clone());
    a.register_handler("test", move |_m: &KafkaMessage| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err(HandlerError::retriable("dependency down"));
        }
        *h.lock().unwrap() = Some(SystemTime::now());
        Ok(())
    });
    let b = Kafka::with_transport(with_retry_topic("b", 2, 10), transport.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let b_calls = Arc::new(AtomicUsize::new(0));
    let bc = b_calls.clone();
    b.register_handler("test", move |_m: &KafkaMessage| {
        bc.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let ha = a.consume([T, RETRY]).unwrap();
    let hb = b.consume([T, RETRY]).unwrap();
    wait_for("a handled it", WAIT, || {
        handled_at.lock().unwrap().is_some()
    });
    let entry = retry_entries(&broker, RETRY).remove(0);
    assert_eq!((entry.group.as_str(), entry.attempts), ("a", 2));
    assert_eq!((entry.origin.topic.as_str(), entry.message.attempt), (T, 2));
    assert!(entry.last_error.contains("dependency down"));
    let handled = handled_at.lock().unwrap().unwrap();
    assert!(handled >= entry.due_at, "handled before its due time");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    for g in ["a", "b"] {
        wait_for("all committed", WAIT, || {
            all_committed(&broker, g, T) && all_committed(&broker, &retry_group(g, &[T]), RETRY)
        });
    }
    assert_eq!(
        b_calls.load(Ordering::SeqCst),
        1,
        "b handled only its own copy"
    );
    let by_topic = |h: &kafka_sync::ConsumerHandle, t: &str| {
        h.metrics().into_iter().find(|m| m.topic == t).unwrap()
    };
    assert_eq!(by_topic(&ha, T).sent_to_retry, 1);
    assert_eq!(by_topic(&ha, RETRY).handled, 1);
    wait_for("b skipped a's entry", WAIT, || {
        by_topic(&hb, RETRY).skipped_other_group == 1
    });
    assert!(broker.records(DLQ).is_empty());
}

#[test]
fn a_message_that_keeps_failing_is_dead_lettered_as_exhausted_at_the_attempt_limit() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1)]);
    let consumer = Kafka::with_transport(with_retry_topic("g", 2, 5), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        c.fetch_add(1, Ordering::SeqCst);
        Err(HandlerError::retriable("always"))
    });
    consumer.consume([T, RETRY]).unwrap();
    wait_for("dead letter", WAIT, || !broker.records(DLQ).is_empty());
    let dl = dead_letters(&broker, DLQ).remove(0);
    assert_eq!(dl.kind, DeadLetterKind::Exhausted);
    assert_eq!(dl.attempts, 5);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!((dl.origin.topic.as_str(), dl.origin.offset), (T, 0));
    assert_eq!(
        retry_entries(&broker, RETRY).len(),
        2,
        "parked after attempts 2 and 4"
    );
    assert!(dl.first_failure_at < dl.last_failure_at);
    wait_for("committed", WAIT, || {
        all_committed(&broker, &retry_group("g", &[T]), RETRY)
    });
}

#[test]
fn shutdown_while_handlers_are_busy_returns_within_the_timeout_and_commits_what_was_handled() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, (0..50).map(message).collect());
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        std::thread::sleep(Duration::from_millis(40));
        h.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("some handled", WAIT, || handled.load(Ordering::SeqCst) >= 3);
    let started = Instant::now();
    consumer.close(Duration::from_secs(2)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let n = handled.load(Ordering::SeqCst);
    assert!(n < 50, "shutdown did not wait for the whole backlog");
    assert_eq!(
        broker.committed("g", T, 0),
        Some(n as i64),
        "exactly the handled ones"
    );
    assert!(!handle.is_running());
    assert!(!handle.health().threads[0].alive);
    assert_eq!(consumer.consume([T]).unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn shutdown_reports_a_timeout_when_a_handler_outlasts_it_and_wait_joins_later() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, vec![message(1)]);
    let mut config = fast_config("g");
    config.consumer.handler_timeout = None;
    let consumer = Kafka::with_transport(config, transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        s.store(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(600));
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("handler started", WAIT, || {
        started.load(Ordering::SeqCst) == 1
    });
    let t = Instant::now();
    let err = consumer.close(Duration::from_millis(100)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(t.elapsed() < Duration::from_millis(400));
    assert!(handle.wait_timeout(WAIT));
    assert_eq!(
        broker.committed("g", T, 0),
        Some(1),
        "the message in hand was finished"
    );
}

#[test]
fn a_stop_during_in_place_retries_leaves_the_message_for_the_next_member() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, vec![message(1)]);
    let mut config = fast_config("g");
    config.consumer.retry.initial_interval = Duration::from_secs(30);
    config.consumer.retry.max_interval = Duration::from_secs(30);
    config.consumer.retry.max_elapsed = Duration::from_secs(60);
    let first = Kafka::with_transport(config, transport.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    first.register_handler("test", move |_m: &KafkaMessage| {
        c.fetch_add(1, Ordering::SeqCst);
        Err(HandlerError::retriable("later"))
    });
    first.consume([T]).unwrap();
    wait_for("first attempt", WAIT, || calls.load(Ordering::SeqCst) == 1);
    first.close(Duration::from_secs(2)).unwrap();
    assert_eq!(
        broker.committed("g", T, 0),
        None,
        "not ended, not committed"
    );
    let second = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    second.register_handler("test", |_m: &KafkaMessage| Ok(()));
    second.consume([T]).unwrap();
    wait_for("committed by the next member", WAIT, || {
        all_committed(&broker, "g", T)
    });
    assert!(broker.records(DLQ).is_empty());
}

#[test]
fn with_a_commit_interval_commits_are_batched_and_flushed_on_shutdown() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, (0..200).map(message).collect());
    let mut config = fast_config("g");
    config.consumer.commit_interval = Duration::from_secs(60);
    let consumer = Kafka::with_transport(config, transport.clone())
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.register_handler("test", |_m: &KafkaMessage| Ok(()));
    let handle = consumer.consume([T]).unwrap();
    wait_for("handled", WAIT, || handle.metrics()[0].handled == 200);
    wait_for("idle commit", WAIT, || all_committed(&broker, "g", T));
    assert!(
        handle.metrics()[0].commits <= 3,
        "{} commits",
        handle.metrics()[0].commits
    );
    send_all(&transport, T, vec![message(999)]);
    wait_for("handled", WAIT, || handle.metrics()[0].handled == 201);
    consumer.close(WAIT).unwrap();
    assert_eq!(broker.committed("g", T, 0), Some(201));
}

#[test]
fn two_members_of_a_group_share_the_partitions_and_handle_each_message_once() {
    let (broker, transport) = memory();
    send_all(&transport, T, (0..300).map(message).collect());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let make = |seen: &Arc<Mutex<Vec<uuid::Uuid>>>| {
        let consumer = Kafka::with_transport(fast_config("g"), transport.clone())
            .and_then(|k| k.consumer())
            .unwrap();
        let s = seen.clone();
        consumer.register_handler("test", move |m: &KafkaMessage| {
            s.lock().unwrap().push(m.id);
            Ok(())
        });
        consumer.consume([T]).unwrap();
        consumer
    };
    let (one, two) = (make(&seen), make(&seen));
    wait_for("all committed", WAIT, || all_committed(&broker, "g", T));
    let ids = seen.lock().unwrap().clone();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 300);
    assert!(
        ids.len() <= 300 + 10,
        "few duplicates from the rebalance: {}",
        ids.len()
    );
    drop(one);
    send_all(&transport, T, (300..330).map(message).collect());
    wait_for("the survivor takes every partition", WAIT, || {
        all_committed(&broker, "g", T)
    });
    assert!(two.metrics()[0].handled > 0);
}

#[test]
fn health_shows_failing_polls_and_an_unreachable_broker_then_recovers() {
    let (broker, transport) = memory();
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let handle = consumer.consume([T]).unwrap();
    wait_for("healthy", WAIT, || {
        handle.health().is_healthy(Duration::from_secs(5))
    });
    broker.set_unavailable(true);
    wait_for("poll errors", WAIT, || {
        handle.health().threads[0].consecutive_poll_errors >= 2
    });
    let h = handle.health();
    assert!(!h.broker_reachable && !h.is_healthy(Duration::from_secs(5)));
    assert!(h.threads[0].alive);
    assert!(h.threads[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("poll"));
    broker.set_unavailable(false);
    wait_for("recovered", WAIT, || {
        handle.health().is_healthy(Duration::from_secs(5))
    });
}

#[test]
fn consuming_a_topic_twice_or_no_topic_is_rejected() {
    let (_broker, transport) = memory();
    let consumer = Kafka::with_transport(fast_config("g"), transport)
        .and_then(|k| k.consumer())
        .unwrap();
    consumer.consume([T]).unwrap();
    assert_eq!(consumer.consume([T]).unwrap_err().kind(), ErrorKind::Config);
    assert_eq!(
        consumer.consume(["a", "a"]).unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(
        consumer.consume(Vec::<String>::new()).unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(
        consumer.consume(["bad topic"]).unwrap_err().kind(),
        ErrorKind::Config
    );
    consumer.consume(["other"]).unwrap();
    assert_eq!(consumer.metrics().len(), 2);
}

#[test]
fn the_wrapper_registers_consumes_and_closes() {
    let (broker, transport) = memory();
    send_all(&transport, T, (0..5).map(message).collect());
    let wrapper = KafkaConsumerWrapper::new(
        Kafka::with_transport(fast_config("g"), transport)
            .and_then(|k| k.consumer())
            .unwrap(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    wrapper.register_handler("test", move |_m: &KafkaMessage| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    wrapper.consume(&[T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    wrapper.close().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}
