//! Bad input, table-driven: each row of the README's table "What happens to each consumed
//! message" for input that is not a plain good message is one test here (memory transport).
//! A row writes its record(s) to a fresh 1-partition topic, runs one consumer with the
//! row's handler until every offset is committed, and checks where the record went.

mod consumer_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use consumer_support::*;
use kafka_sync::domain::{
    DeadLetterKind, DeadLetterRecord, HandlerError, HandlerResult, KafkaMessage, MessageType,
    Origin, RetryRecord, ScrapingTask,
};
use kafka_sync::metrics::ConsumerTopicMetrics;
use kafka_sync::transport::{Header, MemoryTransport, OutgoingRecord, ProduceOptions, Transport};
use kafka_sync::{Acks, Compression, Config, Kafka};

const T: &str = "input";
const DLQ: &str = "dead-letter";
const WAIT: Duration = Duration::from_secs(20);

/// What a row's handler does.
#[derive(Clone, Copy)]
enum Handler {
    /// Returns `Ok`.
    Ok,
    /// Always a retriable error.
    Fails,
    /// Panics.
    Panics,
    /// Typed: wants a `ScrapingTask`.
    Typed,
}

/// Where a row's record must end.
enum Ends {
    /// A handler returned `Ok` for it.
    Handled,
    /// On the dead-letter topic with this kind.
    DeadLetter(DeadLetterKind),
    /// Passed over; the counter that says why must be 1.
    Skipped(fn(&ConsumerTopicMetrics) -> u64),
    /// Parked on the retry topic.
    Parked,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Ok => "ok",
            Handler::Fails => "fails",
            Handler::Panics => "panics",
            Handler::Typed => "typed",
        })
    }
}

fn write(t: &Arc<dyn Transport>, key: Option<Vec<u8>>, value: Vec<u8>, headers: Vec<Header>) {
    let mut s = t.connect_producer().unwrap();
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(5),
    };
    let record = OutgoingRecord {
        partition: 0,
        key,
        value,
        headers,
    };
    for r in s.produce(T, &[record], &options) {
        r.unwrap();
    }
}

fn envelope_json(id: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"test","correlation_id":"c","created_at":"2026-01-01T00:00:00Z","payload":{{"n":1}}{extra}}}"#
    )
    .into_bytes()
}

fn retry_entry(group: &str, attempts: u32, due: SystemTime, message: KafkaMessage) -> Vec<u8> {
    let now = SystemTime::now();
    let entry = RetryRecord {
        message,
        attempts,
        due_at: due,
        origin: Origin {
            topic: "elsewhere".into(),
            partition: 0,
            offset: 0,
        },
        group: group.into(),
        service: "s".into(),
        first_failure_at: now,
        last_failure_at: now,
        last_error: "before".into(),
    };
    KafkaMessage::new(MessageType::RETRY, &entry)
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Runs a row: `input` writes the record, then one consumer of group "g" with `handler`
/// consumes `input` until all is committed; returns the broker and the metrics.
fn run(
    config: impl FnOnce(&mut Config),
    input: impl FnOnce(&MemoryTransport, &Arc<dyn Transport>),
    handler: Handler,
) -> (MemoryTransport, ConsumerTopicMetrics, usize) {
    let (broker, transport) = memory();
    broker.create_topic(T, 1).unwrap();
    input(&broker, &transport);
    let mut c = fast_config("g");
    c.consumer.retry_topic_delay = Duration::from_millis(100);
    c.consumer.retry_topic_max_delay = Duration::from_millis(300);
    config(&mut c);
    let consumer = Kafka::with_transport(c, transport)
        .and_then(|k| k.consumer())
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    match handler {
        Handler::Typed => consumer.register_typed("test", move |_m, _t: ScrapingTask| {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
        h => consumer.register_handler("test", move |_m: &KafkaMessage| -> HandlerResult {
            n.fetch_add(1, Ordering::SeqCst);
            match h {
                Handler::Fails => Err(HandlerError::retriable("always fails")),
                Handler::Panics => panic!("handler bug"),
                _ => Ok(()),
            }
        }),
    }
    let handle = consumer.consume([T]).unwrap();
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    let m = handle.metrics().into_iter().find(|m| m.topic == T).unwrap();
    consumer.close(WAIT).unwrap();
    (broker, m, calls.load(Ordering::SeqCst))
}

/// Checks that the single record of a row ended as `ends`; returns its dead letter if any.
fn check(
    broker: &MemoryTransport,
    m: &ConsumerTopicMetrics,
    ends: Ends,
) -> Option<DeadLetterRecord> {
    let letters = dead_letters(broker, DLQ);
    match ends {
        Ends::Handled => {
            assert_eq!(m.handled, 1, "{m:?}");
            assert!(letters.is_empty(), "{letters:?}");
            None
        }
        Ends::DeadLetter(kind) => {
            assert_eq!(letters.len(), 1, "{m:?}");
            assert_eq!(letters[0].kind, kind, "{}", letters[0].error);
            assert_eq!(m.handled, 0);
            letters.into_iter().next()
        }
        Ends::Skipped(counter) => {
            assert_eq!(counter(m), 1, "{m:?}");
            assert_eq!((m.handled, m.dead_lettered), (0, 0), "{m:?}");
            assert!(letters.is_empty());
            None
        }
        Ends::Parked => {
            assert_eq!(m.sent_to_retry, 1, "{m:?}");
            assert!(letters.is_empty());
            None
        }
    }
}

macro_rules! row {
    ($name:ident, $input:expr, $handler:expr, $ends:expr) => {
        row!($name, |_c: &mut Config| {}, $input, $handler, $ends);
    };
    ($name:ident, $config:expr, $input:expr, $handler:expr, $ends:expr) => {
        #[test]
        fn $name() {
            let (broker, m, _calls) = run($config, $input, $handler);
            check(&broker, &m, $ends);
        }
    };
}

fn raw(bytes: &'static [u8]) -> impl FnOnce(&MemoryTransport, &Arc<dyn Transport>) {
    move |_b, t| write(t, None, bytes.to_vec(), Vec::new())
}

fn good(
    change: impl FnOnce(KafkaMessage) -> KafkaMessage,
) -> impl FnOnce(&MemoryTransport, &Arc<dyn Transport>) {
    move |_b, t| send_all(t, T, vec![change(message(1))])
}

// 1–8: bytes that are not an envelope.
row!(
    malformed_json,
    raw(b"{\"id\": "),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    truncated_utf8,
    raw(b"{\"id\":\"\xe2\x82"),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    empty_value,
    raw(b""),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    missing_fields,
    raw(br#"{"type":"test","payload":{}}"#),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    wrong_field_types,
    raw(br#"{"id":5,"type":["test"],"correlation_id":1,"created_at":true,"payload":{}}"#),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    id_not_a_uuid,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        envelope_json("not-a-uuid", ""),
        Vec::new()
    ),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    negative_attempt,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        envelope_json(&uuid::Uuid::new_v4().to_string(), r#","attempt":-1"#),
        Vec::new()
    ),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    unknown_fields_are_ignored,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        envelope_json(&uuid::Uuid::new_v4().to_string(), r#","colour":"blue""#),
        Vec::new()
    ),
    Handler::Ok,
    Ends::Handled
);

// 9–12: records that are not messages.
row!(
    null_value_tombstone,
    |b: &MemoryTransport, _t: &Arc<dyn Transport>| {
        b.append_tombstone(T, 0, Some(b"deleted-key")).unwrap();
    },
    Handler::Ok,
    Ends::Skipped(|m| m.tombstones)
);
row!(
    undecodable_batch,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        vec![0, 0, 0, 0, 1, 2, 3],
        vec![Header::new("kafka-sync-undecodable-batch", "CRC mismatch")]
    ),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::UndecodableBatch)
);
row!(null_key, good(|m| m), Handler::Ok, Ends::Handled);
row!(
    huge_key,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        Some(vec![b'k'; 100_000]),
        message(1).to_bytes().unwrap(),
        Vec::new()
    ),
    Handler::Ok,
    Ends::Handled
);

// 13–16: envelopes the handler cannot take.
row!(
    unknown_type,
    good(|mut m| {
        m.message_type = MessageType::new("no-such-type");
        m
    }),
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::UnknownType)
);
row!(
    payload_not_the_typed_handlers_type,
    good(|m| m),
    Handler::Typed,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    created_at_far_future,
    good(|mut m| {
        m.created_at = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        m
    }),
    Handler::Ok,
    Ends::Handled
);
row!(
    created_at_far_past,
    good(|mut m| {
        m.created_at = SystemTime::UNIX_EPOCH;
        m
    }),
    Handler::Ok,
    Ends::Handled
);
row!(
    attempt_u32_max_in_the_envelope,
    good(|mut m| {
        m.attempt = u32::MAX;
        m
    }),
    Handler::Ok,
    Ends::Handled
);

// 17–20: handlers that fail.
row!(
    handler_panics,
    good(|m| m),
    Handler::Panics,
    Ends::DeadLetter(DeadLetterKind::Panic)
);
row!(
    handler_fails_every_attempt_retry_topic_off,
    good(|m| m),
    Handler::Fails,
    Ends::DeadLetter(DeadLetterKind::Handler)
);
row!(
    handler_fails_every_attempt_by_default_is_parked,
    |c: &mut Config| c.consumer.retry_topic_enabled = true,
    good(|m| m),
    Handler::Fails,
    Ends::Parked
);
row!(
    duplicate_id_is_skipped,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| {
        let m = message(1);
        send_all(t, T, vec![m.clone(), m]);
    },
    Handler::Ok,
    Ends::Handled
);

// 21–26: retry entries.
row!(
    retry_entry_of_another_group,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        retry_entry("retired-group", 1, SystemTime::now(), message(1)),
        Vec::new()
    ),
    Handler::Ok,
    Ends::Skipped(|m| m.skipped_other_group)
);
row!(
    retry_entry_due_a_year_ahead_is_clamped,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        retry_entry(
            "g",
            1,
            SystemTime::now() + Duration::from_secs(365 * 24 * 3600),
            message(1)
        ),
        Vec::new()
    ),
    Handler::Ok,
    Ends::Handled
);
row!(
    retry_entry_with_u32_max_attempts_is_exhausted_without_overflow,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| write(
        t,
        None,
        retry_entry("g", u32::MAX, SystemTime::now(), message(1)),
        Vec::new()
    ),
    Handler::Fails,
    Ends::DeadLetter(DeadLetterKind::Exhausted)
);
row!(
    retry_entry_with_negative_attempts,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| {
        let text = String::from_utf8(retry_entry("g", 1, SystemTime::now(), message(1))).unwrap();
        let bad = text.replacen("\"attempts\":1", "\"attempts\":-1", 1);
        assert_ne!(text, bad);
        write(t, None, bad.into_bytes(), Vec::new());
    },
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    retry_entry_whose_payload_is_not_a_retry_record,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| {
        let env = KafkaMessage::from_json(MessageType::RETRY, serde_json::json!({"oops": 1}));
        write(t, None, env.to_bytes().unwrap(), Vec::new());
    },
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::Decode)
);
row!(
    retry_entry_of_a_type_without_handler,
    |_b: &MemoryTransport, t: &Arc<dyn Transport>| {
        let mut m = message(1);
        m.message_type = MessageType::new("gone");
        write(
            t,
            None,
            retry_entry("g", 1, SystemTime::now(), m),
            Vec::new(),
        );
    },
    Handler::Ok,
    Ends::DeadLetter(DeadLetterKind::UnknownType)
);

// 27–29: sizes and missing topics.
#[test]
fn value_near_the_message_size_limit_is_handled() {
    let big = "x".repeat(990_000);
    let (broker, m, _) = run(
        |_c| {},
        move |_b, t| {
            let env = KafkaMessage::from_json(
                MessageType::new("test"),
                serde_json::json!({ "n": 1, "blob": big }),
            );
            write(t, None, env.to_bytes().unwrap(), Vec::new());
        },
        Handler::Ok,
    );
    check(&broker, &m, Ends::Handled);
}

#[test]
fn value_over_the_message_size_limit_once_dead_lettered_keeps_its_original_bytes() {
    let env = KafkaMessage::from_json(
        MessageType::new("test"),
        serde_json::json!({ "n": 1, "blob": "y".repeat(990_000) }),
    );
    let bytes = env.to_bytes().unwrap();
    let original = bytes.clone();
    // The original fits; wrapped with the error and the ids it does not.
    let limit = bytes.len() + 200;
    let (broker, m, _) = run(
        move |c| c.producer.max_message_bytes = limit,
        move |_b, t| write(t, None, bytes, Vec::new()),
        Handler::Fails,
    );
    let dl = check(&broker, &m, Ends::DeadLetter(DeadLetterKind::Handler)).unwrap();
    assert!(broker.records(DLQ)[0].value == original, "not inflated");
    assert!(dl.original.is_some());
}

#[test]
fn dead_letter_topic_missing_with_auto_creation_off_is_created_where_allowed() {
    let (broker, m, _) = run(
        |_c| {},
        |b, t| {
            write(t, None, b"not json".to_vec(), Vec::new());
            b.set_auto_create(false);
        },
        Handler::Ok,
    );
    check(&broker, &m, Ends::DeadLetter(DeadLetterKind::Decode));
}

#[test]
fn raw_bytes_that_are_not_utf8_travel_as_base64_not_numbers() {
    let (broker, m, _) = run(|_c| {}, raw(&[0xff, 0xfe, 0x00, 0x01]), Handler::Ok);
    let dl = check(&broker, &m, Ends::DeadLetter(DeadLetterKind::Decode)).unwrap();
    assert_eq!(dl.raw_value.unwrap().to_vec(), vec![0xff, 0xfe, 0x00, 0x01]);
    let text = String::from_utf8(broker.records(DLQ)[0].value.clone()).unwrap();
    assert!(text.contains("\"base64\":\"//4AAQ==\""), "{text}");
}
