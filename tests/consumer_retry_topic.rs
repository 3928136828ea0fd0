//! Consumer scenarios on the in-memory transport: the retry topic's due times, groups and
//! layout (shared or per group).

mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consumer_support::*;
use kafka_sync::domain::{HandlerError, KafkaMessage, MessageType, Origin, RetryRecord};
use kafka_sync::transport::{Header, OutgoingRecord, ProduceOptions, Transport};
use kafka_sync::{Acks, Compression, Consumer};

const T: &str = "input";
const RETRY: &str = "retry";
const DLQ: &str = "dead-letter";
const WAIT: Duration = Duration::from_secs(20);

/// Writes a retry entry of `group` for `message`, due at `due`, to `partition` of the retry
/// topic, with the headers the consumer writes (or none, as the `kafka` crate transport).
fn park(
    transport: &Arc<dyn Transport>,
    partition: i32,
    group: &str,
    message: KafkaMessage,
    due: SystemTime,
    with_headers: bool,
) {
    let now = SystemTime::now();
    let entry = RetryRecord {
        message,
        attempts: 1,
        due_at: due,
        origin: Origin {
            topic: T.into(),
            partition: 0,
            offset: 0,
        },
        group: group.into(),
        service: "tests".into(),
        first_failure_at: now,
        last_failure_at: now,
        last_error: "earlier failure".into(),
    };
    let env = KafkaMessage::new(MessageType::RETRY, &entry).unwrap();
    let due_ms = due
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let headers = if with_headers {
        vec![
            Header::new("retry-group", group),
            Header::new("retry-due-at", due_ms.to_string()),
        ]
    } else {
        Vec::new()
    };
    raw(transport, partition, env.to_bytes().unwrap(), headers);
}

fn raw(transport: &Arc<dyn Transport>, partition: i32, value: Vec<u8>, headers: Vec<Header>) {
    let mut session = transport.connect_producer().unwrap();
    let record = OutgoingRecord {
        partition,
        key: None,
        value,
        headers,
    };
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(5),
    };
    for r in session.produce(RETRY, &[record], &options) {
        r.unwrap();
    }
}

fn recording(consumer: &Consumer) -> Arc<Mutex<Vec<(u64, Instant)>>> {
    let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let s = seen.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        s.lock()
            .unwrap()
            .push((m.payload["n"].as_u64().unwrap(), Instant::now()));
        Ok(())
    });
    seen
}

#[test]
fn an_entry_not_yet_due_holds_only_its_partition_while_the_thread_keeps_polling() {
    let (broker, transport) = memory();
    broker.create_topic(RETRY, 2).unwrap();
    let started = Instant::now();
    let later = SystemTime::now() + Duration::from_millis(1500);
    park(&transport, 0, "g", message(1), later, true);
    park(&transport, 1, "g", message(2), SystemTime::now(), true);
    let mut config = fast_config("g");
    config.consumer.retry_topic_max_delay = Duration::from_secs(60);
    let consumer = consumer(config, transport);
    let seen = recording(&consumer);
    let _handle = consumer.consume([RETRY]).unwrap();
    wait_for("the due entry handled", WAIT, || {
        seen.lock().unwrap().len() == 1
    });
    assert_eq!(
        seen.lock().unwrap()[0].0,
        2,
        "the other partition went first"
    );
    // While the first entry waits, the thread goes on polling (health stays fresh).
    std::thread::sleep(Duration::from_millis(600));
    let age = consumer.health().threads[0].last_poll_age.unwrap();
    assert!(age < Duration::from_millis(500), "last poll {age:?} ago");
    wait_for("the later entry handled", WAIT, || {
        seen.lock().unwrap().len() == 2
    });
    let (n, at) = seen.lock().unwrap()[1];
    assert_eq!(n, 1);
    assert!(at.duration_since(started) >= Duration::from_millis(1400));
    wait_for("committed", WAIT, || {
        all_committed(&broker, &retry_group("g", &[]), RETRY)
    });
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_due_time_a_year_ahead_is_clamped_to_the_maximum_delay() {
    let (broker, transport) = memory();
    let year = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    park(&transport, 0, "g", message(1), year, true);
    let mut config = fast_config("g");
    config.consumer.retry_topic_max_delay = Duration::from_millis(300);
    let consumer = consumer(config, transport);
    let seen = recording(&consumer);
    let _handle = consumer.consume([RETRY]).unwrap();
    wait_for("handled after the clamped delay", WAIT, || {
        seen.lock().unwrap().len() == 1
    });
    wait_for("committed", WAIT, || {
        all_committed(&broker, &retry_group("g", &[]), RETRY)
    });
    consumer.close(WAIT).unwrap();
}

#[test]
fn another_groups_entry_is_skipped_by_its_header_without_being_decoded() {
    let (broker, transport) = memory();
    // Not even JSON: only the header is looked at.
    raw(
        &transport,
        0,
        b"\xff not json".to_vec(),
        vec![Header::new("retry-group", "someone-else")],
    );
    // Without headers (as the kafka crate transport writes): decoded to find the group.
    park(
        &transport,
        1,
        "retired-group",
        message(7),
        SystemTime::now(),
        false,
    );
    let consumer = consumer(fast_config("g"), transport);
    let seen = recording(&consumer);
    let handle = consumer.consume([RETRY]).unwrap();
    wait_for("committed", WAIT, || {
        all_committed(&broker, &retry_group("g", &[]), RETRY)
    });
    let m = handle
        .metrics()
        .into_iter()
        .find(|m| m.topic == RETRY)
        .unwrap();
    assert_eq!((m.skipped_other_group, m.decode_errors), (2, 0));
    assert!(seen.lock().unwrap().is_empty());
    assert!(broker.records(DLQ).is_empty());
    consumer.close(WAIT).unwrap();
}

#[test]
fn per_group_retry_topics_keep_each_groups_entries_on_its_own_topic() {
    let (broker, transport) = memory();
    send_all(&transport, T, vec![message(1)]);
    let mut config = fast_config("g/eu");
    config.consumer.retry_topic_enabled = true;
    config.consumer.retry_topic_per_group = true;
    config.consumer.retry = quick_retries(1);
    let consumer = consumer(config, transport);
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    consumer.register_handler("test", move |_m: &KafkaMessage| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n == 1 {
            return Err(HandlerError::retriable("later"));
        }
        Ok(())
    });
    let handle = consumer.consume([T]).unwrap();
    wait_for("handled from its own retry topic", WAIT, || {
        *calls.lock().unwrap() == 2
    });
    assert_eq!(retry_entries(&broker, "retry.g_eu").len(), 1);
    assert!(
        broker.records(RETRY).is_empty(),
        "the shared topic is not used"
    );
    assert!(handle.metrics().iter().any(|m| m.topic == "retry.g_eu"));
    consumer.close(WAIT).unwrap();
}

#[test]
fn an_entry_not_yet_due_is_set_aside_and_later_entries_of_its_partition_due_sooner_go_first() {
    let (broker, transport) = memory();
    broker.create_topic(RETRY, 1).unwrap();
    let started = Instant::now();
    // Offset 0 is due in 2 s (a longer round); offset 1, behind it, is due now.
    park(
        &transport,
        0,
        "g",
        message(1),
        SystemTime::now() + Duration::from_secs(2),
        true,
    );
    park(&transport, 0, "g", message(2), SystemTime::now(), true);
    let mut config = fast_config("g");
    config.consumer.retry_topic_max_delay = Duration::from_secs(60);
    let consumer = consumer(config, transport);
    let seen = recording(&consumer);
    let _handle = consumer.consume([RETRY]).unwrap();
    wait_for("the entry due now handled", WAIT, || {
        !seen.lock().unwrap().is_empty()
    });
    let (n, at) = seen.lock().unwrap()[0];
    assert_eq!(n, 2, "the entry due now went first");
    assert!(
        at.duration_since(started) < Duration::from_millis(1500),
        "not held behind the later one: {:?}",
        at.duration_since(started)
    );
    // Nothing is committed past the entry still waiting.
    std::thread::sleep(Duration::from_millis(300));
    let group = retry_group("g", &[]);
    assert_eq!(broker.committed(&group, RETRY, 0).unwrap_or(0), 0);
    wait_for("the later entry handled", WAIT, || {
        seen.lock().unwrap().len() == 2
    });
    let (n, at) = seen.lock().unwrap()[1];
    assert_eq!(n, 1);
    assert!(at.duration_since(started) >= Duration::from_millis(1900));
    wait_for("committed", WAIT, || all_committed(&broker, &group, RETRY));
    consumer.close(WAIT).unwrap();
}

/// A clamp lived in memory: a member restarting more often than `retry_topic_max_delay`
/// clamped the far-future entry again each time and never got past it. The clamp is now
/// written into the entry (a copy due after the maximum delay, the original committed).
#[test]
fn a_clamped_entry_is_handled_though_its_member_restarts_more_often_than_the_clamp() {
    let (broker, transport) = memory();
    broker.create_topic(RETRY, 1).unwrap();
    let year = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    park(&transport, 0, "g", message(1), year, true);
    let started = Instant::now();
    let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let mut rescheduled = 0;
    for _ in 0..5 {
        let mut config = fast_config("g");
        config.consumer.retry_topic_max_delay = Duration::from_millis(1000);
        let consumer = consumer(config, transport.clone());
        let s = seen.clone();
        consumer.register_handler("test", move |m: &KafkaMessage| {
            s.lock()
                .unwrap()
                .push((m.payload["n"].as_u64().unwrap(), Instant::now()));
            Ok(())
        });
        let handle = consumer.consume([RETRY]).unwrap();
        std::thread::sleep(Duration::from_millis(700));
        consumer.close(WAIT).unwrap();
        rescheduled += handle.metrics()[0].rescheduled;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "handled once, after the clamped delay: {seen:?}"
    );
    assert!(seen[0].1.duration_since(started) >= Duration::from_millis(950));
    assert_eq!(rescheduled, 1, "the clamp is written once");
    assert!(all_committed(&broker, &retry_group("g", &[]), RETRY));
}
