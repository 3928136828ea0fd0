//! Consumer scenarios on the in-memory transport: retry and dead-letter writes that fail
//! (bounded retries, then each fallback, then a stopped partition reported in health), and
//! the dead-letter handler's role (no self-feeding loops).

mod consumer_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::*;
use kafka_sync::domain::{DeadLetterKind, DeadLetterRecord, Delivery, HandlerError, KafkaMessage};
use kafka_sync::metrics::HealthStatus;
use kafka_sync::transport::{
    MemoryTransport, OutgoingRecord, ProduceOptions, ProducerSession, SubscribeOptions,
    Subscription, Transport,
};
use kafka_sync::{Consumer, ErrorKind};

const T: &str = "input";
const DLQ: &str = "dead-letter";
const WAIT: Duration = Duration::from_secs(20);

fn thread_health(c: &Consumer, topic: &str) -> kafka_sync::metrics::ThreadHealth {
    c.health()
        .threads
        .into_iter()
        .find(|t| t.topic == topic)
        .expect("a thread for the topic")
}

#[test]
fn a_dead_letter_that_cannot_be_written_anywhere_stops_only_its_partition_until_it_can() {
    let (broker, transport) = memory();
    broker.create_topic(T, 2).unwrap();
    send_raw(&transport, T, 0, b"{not json");
    for n in 0..5 {
        send_raw(
            &transport,
            T,
            1,
            &message(n).to_bytes().expect("an envelope"),
        );
    }
    // Every write from now on fails, for good (not retriable): the dead letter, then its
    // fallback (the original bytes with the error in headers).
    broker.fail_next_produces(1_000_000, ErrorKind::Broker);
    let mut config = fast_config("g");
    config.consumer.divert_timeout = Duration::from_millis(200);
    let consumer = consumer(config, transport);
    consumer.register_handler("test", |_m: &KafkaMessage| Ok(()));
    let _handle = consumer.consume([T]).unwrap();
    wait_for("partition 0 stopped", WAIT, || {
        !thread_health(&consumer, T).stopped_partitions.is_empty()
    });
    let health = consumer.health();
    assert_eq!(health.status(), HealthStatus::Down);
    let problems = health.problems().join("\n");
    assert!(problems.contains("input/0: stopped"), "{problems}");
    assert!(
        problems.contains("cannot be written anywhere"),
        "{problems}"
    );
    wait_for("partition 1 goes on", WAIT, || {
        broker.committed("g", T, 1) == Some(5)
    });
    assert_eq!(
        broker.committed("g", T, 0),
        None,
        "nothing passes the message"
    );
    // The broker heals: the parked write goes through, the partition goes on.
    broker.fail_next_produces(0, ErrorKind::Broker);
    wait_for("partition 0 committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    wait_for("health up again", WAIT, || {
        thread_health(&consumer, T).stopped_partitions.is_empty()
    });
    let letters = dead_letters(&broker, DLQ);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Decode);
    assert_eq!(
        letters[0].raw_value.as_ref().unwrap().to_vec(),
        b"{not json"
    );
    consumer.close(WAIT).unwrap();
}

/// A memory broker whose produces to one topic always fail (for good).
#[derive(Debug)]
struct RefusingTopic {
    inner: MemoryTransport,
    topic: &'static str,
}

struct RefusingSession {
    inner: Box<dyn ProducerSession>,
    topic: &'static str,
}

impl ProducerSession for RefusingSession {
    fn partition_count(&mut self, topic: &str) -> kafka_sync::Result<usize> {
        self.inner.partition_count(topic)
    }

    fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
    ) -> Vec<kafka_sync::Result<Delivery>> {
        if topic == self.topic {
            return records
                .iter()
                .map(|_| {
                    Err(kafka_sync::Error::new(
                        ErrorKind::Broker,
                        "not allowed to write this topic",
                    ))
                })
                .collect();
        }
        self.inner.produce(topic, records, options)
    }
}

impl Transport for RefusingTopic {
    fn name(&self) -> &'static str {
        "refusing"
    }
    fn connect_producer(&self) -> kafka_sync::Result<Box<dyn ProducerSession>> {
        Ok(Box::new(RefusingSession {
            inner: self.inner.connect_producer()?,
            topic: self.topic,
        }))
    }
    fn subscribe(&self, options: SubscribeOptions) -> kafka_sync::Result<Box<dyn Subscription>> {
        self.inner.subscribe(options)
    }
    fn partition_count(&self, topic: &str) -> kafka_sync::Result<usize> {
        self.inner.partition_count(topic)
    }
    fn health_check(&self, timeout: Duration) -> kafka_sync::Result<()> {
        self.inner.health_check(timeout)
    }
}

#[test]
fn a_retry_entry_that_cannot_be_written_falls_back_to_the_dead_letter_topic() {
    let broker = MemoryTransport::new();
    let transport: Arc<dyn Transport> = Arc::new(RefusingTopic {
        inner: broker.clone(),
        topic: "retry",
    });
    send_all(&transport, T, vec![message(1)]);
    let mut config = fast_config("g");
    config.consumer.retry_topic_enabled = true;
    let consumer = consumer(config, transport);
    consumer.register_handler("test", |_m: &KafkaMessage| {
        Err(HandlerError::retriable("always busy"))
    });
    let _handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let letters = dead_letters(&broker, DLQ);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, DeadLetterKind::Handler);
    assert!(
        letters[0]
            .error
            .contains("retry topic could not be written"),
        "{}",
        letters[0].error
    );
    assert!(broker.records("retry").is_empty());
    consumer.close(WAIT).unwrap();
}

#[test]
fn a_dead_letter_too_large_for_its_envelope_keeps_the_original_bytes_with_the_error_in_headers() {
    let (broker, transport) = memory();
    let big = KafkaMessage::from_json(
        kafka_sync::domain::MessageType::new("test"),
        serde_json::json!({ "n": 1, "blob": "x".repeat(1500) }),
    );
    let original = big.to_bytes().unwrap();
    send_all(&transport, T, vec![big]);
    let mut config = fast_config("g");
    config.producer.max_message_bytes = original.len() + 100;
    let consumer = consumer(config, transport);
    consumer.register_handler("test", |_m: &KafkaMessage| {
        Err(HandlerError::permanent("invalid"))
    });
    let _handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    let records = broker.records(DLQ);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value, original, "the original bytes, unchanged");
    let form = records[0]
        .headers
        .iter()
        .find(|h| h.key == "dlt-form")
        .unwrap();
    assert_eq!(form.value, b"original");
    let letter = DeadLetterRecord::from_record(&records[0]).unwrap();
    assert_eq!(letter.kind, DeadLetterKind::Permanent);
    assert_eq!(letter.origin.topic, T);
    assert!(letter.original.is_some());
    assert!(letter.error.contains("invalid"), "{}", letter.error);
    consumer.close(WAIT).unwrap();
}

#[test]
fn consuming_the_dead_letter_topic_needs_a_dead_letter_handler() {
    let (_broker, transport) = memory();
    let consumer = consumer(fast_config("g"), transport);
    let e = consumer.consume([T, DLQ]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("dead-letter handler"), "{e}");
}

#[test]
fn the_dead_letter_handler_gets_each_record_and_one_that_keeps_failing_is_never_written_back() {
    let (broker, transport) = memory();
    send_raw(&transport, T, 0, b"garbage one");
    send_raw(&transport, T, 1, b"garbage two");
    let producer_side = consumer(fast_config("g"), transport.clone());
    let _h = producer_side.consume([T]).unwrap();
    wait_for("two dead letters", WAIT, || broker.records(DLQ).len() == 2);
    producer_side.close(WAIT).unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let dlq = consumer(fast_config("dlq-readers"), transport);
    let (s, c) = (seen.clone(), calls.clone());
    dlq.register_dead_letter_handler(move |letter: &DeadLetterRecord| {
        c.fetch_add(1, Ordering::SeqCst);
        let raw = letter
            .raw_value
            .as_ref()
            .map(|r| r.to_vec())
            .unwrap_or_default();
        if raw == b"garbage two" {
            return Err(HandlerError::retriable("the archive is down"));
        }
        s.lock().unwrap().push(raw);
        Ok(())
    });
    let handle = dlq.consume([DLQ]).unwrap();
    wait_for("the dead-letter topic committed", WAIT, || {
        all_committed(&broker, "dlq-readers", DLQ)
    });
    assert_eq!(*seen.lock().unwrap(), vec![b"garbage one".to_vec()]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1 + 3,
        "the failing one tried 3 times"
    );
    let m = handle
        .metrics()
        .into_iter()
        .find(|m| m.topic == DLQ)
        .unwrap();
    assert_eq!((m.handled, m.dead_letter_failures), (1, 1));
    assert_eq!(broker.records(DLQ).len(), 2, "nothing written back");
    dlq.close(WAIT).unwrap();
}

#[test]
fn with_a_dead_letter_topic_per_topic_each_topics_dead_letters_go_to_its_own() {
    let (broker, transport) = memory();
    send_raw(&transport, T, 0, b"not an envelope");
    let mut config = fast_config("g");
    config.consumer.dead_letter_topic_per_topic = true;
    let consumer = consumer(config, transport);
    let e = consumer.consume(["input.dead-letter"]).unwrap_err();
    assert!(e.to_string().contains("dead-letter handler"), "{e}");
    let _handle = consumer.consume([T]).unwrap();
    wait_for("committed", WAIT, || all_committed(&broker, "g", T));
    assert_eq!(dead_letters(&broker, "input.dead-letter").len(), 1);
    assert!(broker.records(DLQ).is_empty(), "not the shared topic");
    consumer.close(WAIT).unwrap();
}
