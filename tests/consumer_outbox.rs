//! The consumer's outbox on the in-memory transport, through a real consumer: a park on the
//! retry topic whose outcome is unknown (the broker stored it, the answer was lost) is
//! written again, never dead-lettered too (issue 16, scenario 6).

mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::*;
use kafka_sync::domain::{HandlerError, KafkaMessage};
use kafka_sync::ErrorKind;

const T: &str = "input";
const RETRY: &str = "retry";
const DLQ: &str = "dead-letter";
const WAIT: Duration = Duration::from_secs(20);

/// Before the fix, the second lost answer came after `divert_timeout`, so the outbox gave
/// up on the retry topic and wrote the dead letter: the message ended both as a retry entry
/// (stored twice) and as a dead letter.
#[test]
fn a_park_whose_answers_are_lost_is_written_again_and_never_dead_lettered_too() {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    send_all(&transport, T, vec![message(1), message(2)]);
    let mut config = fast_config("g");
    config.consumer.retry_topic_enabled = true;
    config.consumer.retry = quick_retries(1);
    // The second try (100 ms after the first) is past it: a fallback would be due.
    config.consumer.divert_timeout = Duration::from_millis(50);
    let consumer = consumer(config, transport);
    let calls: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let c = calls.clone();
    let b = broker.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        let n = m.payload["n"].as_u64().unwrap();
        let mut calls = c.lock().unwrap();
        let first = !calls.iter().any(|&(seen, _)| seen == n);
        calls.push((n, first));
        if n == 1 && first {
            // The park of this message: stored twice, both answers lost (a timeout).
            b.fail_next_produces_after_storing(2, ErrorKind::Timeout);
            return Err(HandlerError::retriable("not yet"));
        }
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("the input committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    wait_for("the parked message handled again", WAIT, || {
        calls.lock().unwrap().iter().filter(|c| c.0 == 1).count() == 2
    });
    wait_for("the retry topic committed", WAIT, || {
        all_committed(&broker, &retry_group("g", &[T]), RETRY)
    });
    let entries = retry_entries(&broker, RETRY);
    assert!(
        entries.len() >= 2,
        "the lost answers stored copies: {}",
        entries.len()
    );
    let id = entries[0].message.id;
    assert!(
        entries.iter().all(|e| e.message.id == id),
        "every entry is message 1"
    );
    assert!(
        broker.records(DLQ).is_empty(),
        "the message is on the retry topic: not dead-lettered too ({} dead letters)",
        broker.records(DLQ).len()
    );
    // Nothing lost: message 2 handled once, message 1 failed once then handled once (the
    // other copies skipped as duplicates by the idempotency store).
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| c.0 == 2).count(),
        1,
        "calls: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.0 == 1).count(),
        2,
        "calls: {calls:?}"
    );
    let input = handle.metrics().into_iter().find(|m| m.topic == T).unwrap();
    assert_eq!(input.dead_lettered, 0);
    consumer.close(WAIT).unwrap();
}
