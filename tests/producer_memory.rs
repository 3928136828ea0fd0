//! Producer scenarios on the in-memory transport: batching, retries, errors, lifecycle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::transport::MemoryTransport;
use kafka_sync::Kafka;
use kafka_sync::{Config, ErrorKind, Producer, RetryPolicy};

fn message(n: usize) -> KafkaMessage {
    KafkaMessage::from_json(MessageType::new("test"), serde_json::json!({ "n": n }))
}

fn producer_with(memory: &MemoryTransport, change: impl FnOnce(&mut Config)) -> Arc<Producer> {
    let mut config = Config::default();
    change(&mut config);
    Kafka::with_transport(config, Arc::new(memory.clone()))
        .map(|k| k.producer())
        .unwrap()
}

fn quick_retries(max_elapsed_ms: u64) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
        max_elapsed: Duration::from_millis(max_elapsed_ms),
        max_attempts: 100,
        ..RetryPolicy::default()
    }
}

#[test]
fn a_lone_synchronous_caller_does_not_wait_for_the_batch_timeout() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| {
        c.producer.batch_timeout = Duration::from_secs(5)
    });
    let started = Instant::now();
    for n in 0..3 {
        producer.send("lone", &message(n)).unwrap();
    }
    // Three sends would take 15 s if each paid the linger.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(memory.records("lone").len(), 3);
}

#[test]
fn async_sends_share_batches_and_flush_waits_for_all_of_them() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| c.producer.batch_size = 100);
    let handles: Vec<_> = (0..1000)
        .map(|n| producer.send_async("many", message(n)).unwrap())
        .collect();
    producer.flush().unwrap();
    assert!(
        handles.iter().all(|h| h.is_ready()),
        "flush returned before every answer"
    );
    let mut offsets = std::collections::HashSet::new();
    for h in handles {
        let d = h.wait().unwrap();
        assert!(
            offsets.insert((d.partition, d.offset)),
            "duplicate delivery {d:?}"
        );
    }
    let m = &producer.metrics()[0];
    assert_eq!(m.messages, 1000);
    assert!(
        m.batches < 1000 / 10,
        "{} batches for 1000 async sends",
        m.batches
    );
    assert_eq!(memory.records("many").len(), 1000);
}

#[test]
fn send_batch_returns_one_result_per_message_in_order() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |_| {});
    let msgs: Vec<_> = (0..250).map(message).collect();
    let ids: Vec<_> = msgs.iter().map(|m| m.id).collect();
    let results = producer.send_batch("batch", msgs);
    assert_eq!(results.len(), 250);
    let stored = memory.records("batch");
    for (id, r) in ids.iter().zip(&results) {
        let d = r.as_ref().unwrap();
        let rec = stored
            .iter()
            .find(|s| s.partition == d.partition && s.offset == d.offset)
            .unwrap();
        assert_eq!(KafkaMessage::from_bytes(&rec.value).unwrap().id, *id);
    }
}

#[test]
fn retriable_failures_are_retried_until_they_succeed() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| c.producer.retry = quick_retries(5_000));
    memory.fail_next_produces(2, ErrorKind::Connection);
    producer.send("flaky", &message(1)).unwrap();
    let m = &producer.metrics()[0];
    assert_eq!(m.retries, 2);
    assert_eq!(m.errors, 0);
    assert_eq!(memory.records("flaky").len(), 1);
}

#[test]
fn a_permanent_broker_error_reaches_the_caller_without_retries() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| c.producer.retry = quick_retries(5_000));
    memory.fail_next_produces(1, ErrorKind::Broker);
    let e = producer.send("broken", &message(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broker);
    assert_eq!(producer.metrics()[0].retries, 0);
    assert_eq!(producer.metrics()[0].errors, 1);
    assert!(producer.metrics()[0].last_error.is_some());
}

#[test]
fn an_unreachable_broker_fails_the_send_within_the_retry_bound() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| c.producer.retry = quick_retries(300));
    memory.set_unavailable(true);
    let started = Instant::now();
    let e = producer.send("down", &message(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!producer.health().is_healthy());
    memory.set_unavailable(false);
    producer.send("down", &message(2)).unwrap();
    assert!(producer.health().is_healthy());
}

#[test]
fn try_send_on_a_full_queue_hands_the_message_back() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| {
        c.producer.queue_capacity = 1;
        c.producer.retry = quick_retries(2_000);
    });
    memory.set_unavailable(true);
    // The writer takes the first message and retries it; the second fills the queue.
    let first = producer.try_send("full", message(1)).unwrap();
    let mut handles = vec![first];
    let deadline = Instant::now() + Duration::from_secs(2);
    let refused = loop {
        let msg = message(2);
        let id = msg.id;
        match producer.try_send("full", msg) {
            Ok(h) => handles.push(h),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::QueueFull);
                assert_eq!(e.message.id, id, "the refused message comes back");
                break true;
            }
        }
        assert!(Instant::now() < deadline, "the queue never filled");
    };
    assert!(refused);
    memory.set_unavailable(false);
    for h in handles {
        h.wait().unwrap();
    }
}

#[test]
fn an_oversized_message_is_refused_with_a_clear_error() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| c.producer.max_message_bytes = 1_000);
    let big = KafkaMessage::from_json(
        MessageType::new("big"),
        serde_json::json!("x".repeat(2_000)),
    );
    let e = producer.send("big", &big).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert!(e.to_string().contains(&big.id.to_string()), "{e}");
    assert!(memory.records("big").is_empty());
}

#[test]
fn an_invalid_topic_name_is_refused_by_name() {
    let producer = producer_with(&MemoryTransport::new(), |_| {});
    let e = producer.send("no spaces allowed", &message(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("no spaces allowed"), "{e}");
}

#[test]
fn an_unknown_topic_is_a_clear_error_when_the_broker_does_not_create_it() {
    let memory = MemoryTransport::new();
    memory.set_auto_create(false);
    let producer = producer_with(&memory, |c| c.producer.retry = quick_retries(200));
    let e = producer.send("missing", &message(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownTopic);
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn close_delivers_what_is_queued_and_later_sends_are_refused() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| {
        c.producer.batch_timeout = Duration::from_secs(1)
    });
    let handles: Vec<_> = (0..50)
        .map(|n| producer.send_async("closing", message(n)).unwrap())
        .collect();
    producer.close().unwrap();
    assert_eq!(memory.records("closing").len(), 50);
    for h in handles {
        h.wait().unwrap();
    }
    let e = producer.send("closing", &message(99)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    assert!(producer.health().live_writers.is_empty());
}

#[test]
fn dropping_the_producer_delivers_what_is_queued() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| {
        c.producer.batch_timeout = Duration::from_secs(1)
    });
    for n in 0..20 {
        let _ = producer.send_async("dropped", message(n)).unwrap();
    }
    drop(producer);
    assert_eq!(memory.records("dropped").len(), 20);
}

#[test]
fn messages_with_one_key_keep_their_order_on_one_partition() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |_| {});
    let msgs: Vec<_> = (0..30).map(|n| message(n).with_key("same-key")).collect();
    let results = producer.send_batch("keyed", msgs);
    let partitions: std::collections::HashSet<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().partition)
        .collect();
    assert_eq!(partitions.len(), 1);
    let offsets: Vec<_> = results.iter().map(|r| r.as_ref().unwrap().offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
}

/// With nothing more queued, the last batch's answers are delivered at once, not held for
/// the next batch (there is none) or the delivery timeout.
#[test]
fn the_last_batch_is_answered_without_a_flush_when_nothing_follows() {
    let memory = MemoryTransport::new();
    let producer = producer_with(&memory, |c| {
        c.producer.batch_timeout = Duration::from_millis(20);
        c.producer.delivery_timeout = Duration::from_secs(60);
    });
    let handles: Vec<_> = (0..50)
        .map(|n| producer.send_async("quiet", message(n)).unwrap())
        .collect();
    let started = Instant::now();
    for h in handles {
        h.wait().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
