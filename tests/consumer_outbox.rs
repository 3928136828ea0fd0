//! The consumer's outbox on the in-memory transport, through a real consumer (issue 16,
//! scenario 6): a park on the retry topic whose outcome is unknown (the broker stored it, the
//! answer was lost) is written again, never dead-lettered too; a partition stopped by a write
//! that cannot be done stays stopped while another write of it lands.

mod consumer_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consumer_support::*;
use kafka_sync::domain::{DeadLetterKind, Delivery, HandlerError, KafkaMessage};
use kafka_sync::transport::{
    MemoryTransport, OutgoingRecord, ProduceOptions, ProducerSession, SubscribeOptions,
    Subscription, Transport,
};
use kafka_sync::{ErrorKind, RetryPolicy};

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

/// A memory broker that refuses (for good, on every topic) each record whose value holds
/// `marker`, while `refusing` is set.
#[derive(Debug, Clone)]
struct RefusingMarked {
    inner: MemoryTransport,
    marker: &'static [u8],
    refusing: Arc<AtomicBool>,
}

struct RefusingSession {
    inner: Box<dyn ProducerSession>,
    refuses: RefusingMarked,
}

impl RefusingMarked {
    fn refuses(&self, r: &OutgoingRecord) -> bool {
        self.refusing.load(Ordering::SeqCst)
            && r.value.windows(self.marker.len()).any(|w| w == self.marker)
    }
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
        if records.iter().any(|r| self.refuses.refuses(r)) {
            return records
                .iter()
                .map(|_| {
                    Err(kafka_sync::Error::new(
                        ErrorKind::Broker,
                        "record refused by the test",
                    ))
                })
                .collect();
        }
        self.inner.produce(topic, records, options)
    }
}

impl Transport for RefusingMarked {
    fn name(&self) -> &'static str {
        "refusing-marked"
    }
    fn connect_producer(&self) -> kafka_sync::Result<Box<dyn ProducerSession>> {
        Ok(Box::new(RefusingSession {
            inner: self.inner.connect_producer()?,
            refuses: self.clone(),
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

fn stopped_partitions(consumer: &kafka_sync::Consumer) -> Vec<i32> {
    consumer
        .health()
        .threads
        .into_iter()
        .find(|t| t.topic == T)
        .map(|t| t.stopped_partitions.into_iter().map(|(p, _)| p).collect())
        .unwrap_or_default()
}

/// Offset 0 cannot be dead-lettered anywhere (its partition stops); offset 1 fails in place
/// for a while, then its dead letter lands. Before the fix that landing un-stopped the
/// partition though offset 0 was still not written (until its next try stopped it again).
#[test]
fn a_stopped_partition_stays_stopped_while_another_write_of_it_lands() {
    let broker = MemoryTransport::new();
    broker.create_topic(T, 1).unwrap();
    let refusing = Arc::new(AtomicBool::new(true));
    let transport: Arc<dyn Transport> = Arc::new(RefusingMarked {
        inner: broker.clone(),
        marker: b"poison",
        refusing: refusing.clone(),
    });
    // Offset 0: not JSON (a decode dead letter, holding the raw text, as its fallback does).
    let plain: Arc<dyn Transport> = Arc::new(broker.clone());
    send_raw(&plain, T, 0, b"poison{");
    send_all(&plain, T, vec![message(1), message(2)]);
    let mut config = fast_config("g");
    config.consumer.commit_interval = Duration::from_millis(20);
    // Message 1 is dead-lettered after 2 attempts 600 ms apart: after offset 0 stopped.
    config.consumer.retry = RetryPolicy {
        initial_interval: Duration::from_millis(600),
        multiplier: 1.0,
        max_interval: Duration::from_millis(600),
        max_elapsed: Duration::from_secs(5),
        max_attempts: 2,
        randomization_factor: 0.0,
    };
    let consumer = consumer(config, transport);
    consumer.register_handler("test", |m: &KafkaMessage| {
        if m.payload["n"] == 1 {
            return Err(HandlerError::retriable("busy"));
        }
        Ok(())
    });
    let _handle = consumer.consume([T]).unwrap();
    wait_for("partition 0 stopped", WAIT, || {
        stopped_partitions(&consumer) == vec![0]
    });
    wait_for("message 1 dead-lettered", WAIT, || {
        !broker.records(DLQ).is_empty()
    });
    // Offset 0 still has no write left: the partition stays stopped, whatever lands.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(
            stopped_partitions(&consumer),
            vec![0],
            "offset 0 is not written: its partition is still stopped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        broker.committed("g", T, 0).unwrap_or(0),
        0,
        "nothing is committed past offset 0"
    );
    // The broker takes it again: offset 0 is written, the partition goes on.
    refusing.store(false, Ordering::SeqCst);
    wait_for("everything committed", WAIT, || {
        all_committed(&broker, "g", T)
    });
    wait_for("partition 0 goes on", WAIT, || {
        stopped_partitions(&consumer).is_empty()
    });
    let mut kinds: Vec<DeadLetterKind> = dead_letters(&broker, DLQ)
        .into_iter()
        .map(|l| l.kind)
        .collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, vec![DeadLetterKind::Decode, DeadLetterKind::Handler]);
    consumer.close(WAIT).unwrap();
}
