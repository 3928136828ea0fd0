//! Consumer scenarios on the in-memory transport: failing messages never hold up healthy
//! ones, per-key order, bounded polls, writes that cannot be done.

mod consumer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::*;
use kafka_sync::domain::{HandlerError, KafkaMessage, RetryRecord};
use kafka_sync::metrics::HealthStatus;
use kafka_sync::{Config, Consumer};

const T: &str = "input";
const RETRY: &str = "retry";
const WAIT: Duration = Duration::from_secs(20);

/// The library's defaults, on the memory transport, with a group name.
fn default_config(group: &str) -> Config {
    Config {
        group_id: group.into(),
        ..Config::in_memory()
    }
}

/// A consumer of `config.group_id` over `transport`.
#[test]
fn healthy_messages_behind_a_failing_one_are_handled_during_its_backoff() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    let mut messages = vec![message(0)];
    messages.extend((1..200).map(message));
    send_all(&transport, T, messages);
    let consumer = consumer(default_config("g"), transport);
    let attempts_of_0 = Arc::new(AtomicUsize::new(0));
    // For each healthy message: how often message 0 had been tried when it was handled.
    let seen_at = Arc::new(Mutex::new(Vec::new()));
    let (a, s) = (attempts_of_0.clone(), seen_at.clone());
    consumer.register_handler("test", move |m: &KafkaMessage| {
        if m.payload["n"] == 0 {
            a.fetch_add(1, Ordering::SeqCst);
            return Err(HandlerError::retriable("downstream busy"));
        }
        s.lock().unwrap().push(a.load(Ordering::SeqCst));
        Ok(())
    });
    let _handle = consumer.consume([T]).unwrap();
    wait_for("the healthy messages", WAIT, || {
        seen_at.lock().unwrap().len() == 199
    });
    let worst = seen_at.lock().unwrap().iter().copied().max().unwrap();
    assert!(
        worst < 3,
        "healthy messages waited for message 0's in-place retries (it had {worst} attempts)"
    );
    wait_for("message 0 parked", WAIT, || {
        retry_entries(&broker, RETRY).len() == 1
    });
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    assert_eq!(
        attempts_of_0.load(Ordering::SeqCst),
        3,
        "the in-place budget"
    );
    consumer.close(WAIT).unwrap();
}

#[test]
fn one_percent_failing_every_attempt_leaves_every_healthy_message_handled_and_all_committed() {
    let (broker, transport) = memory();
    let total = 3000;
    send_all(&transport, T, (0..total).map(message).collect());
    let consumer = consumer(default_config("g"), transport);
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        if m.payload["n"].as_u64().unwrap() % 100 == 7 {
            return Err(HandlerError::retriable("always fails"));
        }
        h.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("every healthy message", WAIT, || {
        handled.load(Ordering::SeqCst) == total - total / 100
    });
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    let parked: Vec<RetryRecord> = retry_entries(&broker, RETRY);
    assert_eq!(parked.len(), total / 100);
    assert!(parked.iter().all(|e| e.group == "g" && e.attempts == 3));
    // The retry entries say whose they are and when they are due without being decoded.
    for r in broker.records(RETRY) {
        let names: Vec<&str> = r.headers.iter().map(|h| &*h.key).collect();
        assert!(names.contains(&"retry-group") && names.contains(&"retry-due-at"));
    }
    let input = handle.metrics().into_iter().find(|m| m.topic == T).unwrap();
    assert_eq!(input.sent_to_retry, (total / 100) as u64);
    assert_eq!(input.dead_lettered, 0);
    wait_for("lag measured at 0", WAIT, || {
        let m = handle.metrics().into_iter().find(|m| m.topic == T).unwrap();
        m.lag.len() == 3 && m.total_lag() == 0
    });
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_later_message_of_the_same_key_waits_behind_one_being_retried() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    let first = message(1).with_key("order-42");
    let other = message(2).with_key("order-7");
    let second = message(3).with_key("order-42");
    send_all(&transport, T, vec![first, other, second]);
    let mut config = default_config("g");
    config.consumer.retry = quick_retries(3);
    let consumer = consumer(config, transport);
    let order = Arc::new(Mutex::new(Vec::new()));
    let tries: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
    let (o, t) = (order.clone(), tries.clone());
    consumer.register_handler("test", move |m: &KafkaMessage| {
        let n = m.payload["n"].as_u64().unwrap();
        let mut tries = t.lock().unwrap();
        let k = tries.entry(n).or_insert(0);
        *k += 1;
        if n == 1 && *k < 3 {
            return Err(HandlerError::retriable("not yet"));
        }
        o.lock().unwrap().push(n);
        Ok(())
    });
    let _handle = consumer.consume([T]).unwrap();
    wait_for("all committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(
        *order.lock().unwrap(),
        vec![2, 1, 3],
        "another key goes ahead; the same key keeps its order"
    );
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_handler_that_never_returns_is_reported_stuck_and_its_partitions_move_to_another_member() {
    let (broker, transport) = memory();
    broker.create_topic(T, 2).unwrap();
    let messages: Vec<KafkaMessage> = (0..20).map(message).collect();
    let stuck_id = messages[3].id;
    send_all(&transport, T, messages);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let blocked_once = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let make = || {
        let mut config = default_config("g");
        config.consumer.handler_timeout = Some(Duration::from_millis(200));
        let consumer = consumer(config, transport.clone());
        let (b, s, r) = (blocked_once.clone(), seen.clone(), released.clone());
        consumer.register_handler("test", move |m: &KafkaMessage| {
            let n = m.payload["n"].as_u64().unwrap();
            if n == 3 && b.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first call on message 3 hangs until the test lets it go.
                let _ = r.recv_timeout(Duration::from_secs(60));
            }
            s.lock().unwrap().push(n);
            Ok(())
        });
        consumer.consume([T]).unwrap();
        consumer
    };
    let (one, two) = (make(), make());
    let stuck_member = |c: &Consumer| {
        c.health()
            .threads
            .iter()
            .any(|t| t.topic == T && t.stuck.is_some())
    };
    wait_for("a member reported stuck", WAIT, || {
        stuck_member(&one) || stuck_member(&two)
    });
    let (stuck, other) = if stuck_member(&one) {
        (&one, &two)
    } else {
        (&two, &one)
    };
    let health = stuck.health();
    assert_eq!(health.status(), HealthStatus::Down);
    let thread = health.threads.iter().find(|t| t.topic == T).unwrap();
    assert_eq!(thread.running_call.unwrap().message_id, stuck_id);
    assert!(
        health.problems().join(" ").contains(&stuck_id.to_string()),
        "{:?}",
        health.problems()
    );
    // Its partitions moved: the other member handles every message, message 3 included.
    wait_for("every message handled by the other member", WAIT, || {
        let s = seen.lock().unwrap();
        (0..20).all(|n| s.contains(&n))
    });
    assert!(other
        .metrics()
        .iter()
        .any(|m| m.topic == T && m.handled > 0));
    release.send(()).unwrap();
    wait_for("the late call counted", WAIT, || {
        stuck
            .metrics()
            .iter()
            .any(|m| m.topic == T && m.handled >= 1)
            && !stuck_member(stuck)
    });
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    one.close(WAIT).unwrap();
    two.close(WAIT).unwrap();
}

#[test]
fn a_full_waiting_room_holds_new_records_back_and_everything_still_ends() {
    let (broker, transport) = memory();
    send_all(&transport, T, (0..40).map(message).collect());
    let mut config = default_config("g");
    config.consumer.max_waiting_retries = 2;
    config.consumer.retry = quick_retries(3);
    let consumer = consumer(config, transport);
    consumer.register_handler("test", |m: &KafkaMessage| {
        if m.payload["n"].as_u64().unwrap().is_multiple_of(2) {
            return Err(HandlerError::retriable("every other one fails"));
        }
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    let m = handle.metrics().into_iter().find(|m| m.topic == T).unwrap();
    assert_eq!((m.handled, m.sent_to_retry), (20, 20));
    assert!(m.waiting_retries <= 2);
    consumer.close(WAIT).unwrap();
}

#[test]
fn lag_stays_fresh_while_a_handler_call_runs_long() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, vec![message(0)]);
    let consumer = consumer(default_config("g"), transport.clone());
    consumer.register_handler("test", |m: &KafkaMessage| {
        if m.payload["n"] == 0 {
            std::thread::sleep(Duration::from_millis(3000));
        }
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    let input = || handle.metrics().into_iter().find(|m| m.topic == T).unwrap();
    wait_for("the long call running", WAIT, || {
        consumer
            .health()
            .threads
            .iter()
            .any(|t| t.running_call.is_some())
    });
    send_all(&transport, T, (1..=30).map(message).collect());
    wait_for(
        "the lag measured during the call",
        Duration::from_millis(2500),
        || input().lag.first().is_some_and(|l| l.high_watermark == 31),
    );
    assert_eq!(input().handled, 0, "measured while the call still ran");
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    consumer.close(WAIT).unwrap();
}
