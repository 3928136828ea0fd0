//! `producer.buffer_bytes`: a writer queue bounded by bytes as well as by count. A stalled
//! broker (the memory transport made unavailable) keeps the writer busy with its first
//! record while the queue fills.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::transport::MemoryTransport;
use kafka_sync::Kafka;
use kafka_sync::{Config, ErrorKind, Producer, RetryPolicy};

/// About 400 bytes of key, envelope and headers: 1,000 bytes hold two.
fn message(n: usize) -> KafkaMessage {
    KafkaMessage::from_json(
        MessageType::new("test"),
        serde_json::json!({ "n": n, "pad": "p".repeat(100) }),
    )
    .with_key("one-partition")
}

fn stalled_producer(memory: &MemoryTransport, enqueue_timeout: Duration) -> Arc<Producer> {
    let mut config = Config::default();
    config.producer.queue_capacity = 10_000;
    // The writer holds one record (retrying it) and takes no more into its batch.
    config.producer.batch_size = 1;
    config.producer.buffer_bytes = 1_000;
    config.producer.enqueue_timeout = enqueue_timeout;
    config.producer.retry = RetryPolicy {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(60),
        max_attempts: 10_000,
        ..RetryPolicy::default()
    };
    memory.set_unavailable(true);
    Kafka::with_transport(config, Arc::new(memory.clone()))
        .map(|k| k.producer())
        .unwrap()
}

/// Sends message 0 and waits until the stalled writer took it off the queue (it then
/// retries it), so what follows fills the queue.
fn first_taken(producer: &Producer, topic: &str) -> kafka_sync::DeliveryHandle {
    let handle = producer.try_send(topic, message(0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while producer.queue_depths() != vec![(topic.to_string(), 0)] {
        assert!(Instant::now() < deadline, "the writer never took message 0");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle
}

/// The payload numbers of `topic`'s records, in log order.
fn written(memory: &MemoryTransport, topic: &str) -> Vec<u64> {
    memory
        .records(topic)
        .iter()
        .map(|r| {
            let m = KafkaMessage::from_bytes(&r.value).unwrap();
            m.payload["n"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn try_send_fails_with_queue_full_once_the_bytes_are_used_and_nothing_is_lost() {
    let memory = MemoryTransport::new();
    let producer = stalled_producer(&memory, Duration::from_secs(5));
    let mut handles = vec![first_taken(&producer, "bytes")];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 1;
    let refused = loop {
        let msg = message(n);
        let id = msg.id;
        match producer.try_send("bytes", msg) {
            Ok(h) => handles.push(h),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
                assert!(e.to_string().contains("producer.buffer_bytes"), "{e}");
                assert_eq!(e.message.id, id, "the refused message comes back");
                break *e.message;
            }
        }
        n += 1;
        assert!(Instant::now() < deadline, "the queue never filled");
    };
    // 10,000 messages would fit by count: the bytes bound refused a few hundred bytes in.
    assert!(n <= 5, "{n} messages were queued within 1,000 bytes");
    assert!(
        n >= 2,
        "a 400-byte message was refused with 1,000 bytes free"
    );
    memory.set_unavailable(false);
    for h in handles {
        h.wait().unwrap();
    }
    // Room again once the writer took the queued records.
    producer.try_send("bytes", refused).unwrap().wait().unwrap();
    let expected: Vec<u64> = (0..=n as u64).collect();
    assert_eq!(
        written(&memory, "bytes"),
        expected,
        "in order, no gap, no duplicate"
    );
}

#[test]
fn send_async_blocks_on_a_byte_full_queue_until_room_comes_or_the_enqueue_timeout() {
    let memory = MemoryTransport::new();
    let producer = stalled_producer(&memory, Duration::from_millis(300));
    let mut handles = vec![first_taken(&producer, "block")];
    // Fill: try_send until refused, so the queue is full by bytes.
    let mut n = 1;
    loop {
        match producer.try_send("block", message(n)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
                break;
            }
        }
        n += 1;
        assert!(n < 100, "the queue never filled");
    }
    let started = Instant::now();
    let e = producer.send_async("block", message(n)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("producer.buffer_bytes"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A caller blocked on the full queue goes through when the broker comes back.
    let blocked = {
        let producer = producer.clone();
        let msg = *e.message;
        std::thread::spawn(move || producer.send_async("block", msg).map(|h| h.wait()))
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !blocked.is_finished(),
        "the queue is full: the caller waits"
    );
    memory.set_unavailable(false);
    blocked.join().unwrap().unwrap().unwrap();
    for h in handles {
        h.wait().unwrap();
    }
    let expected: Vec<u64> = (0..=n as u64).collect();
    assert_eq!(
        written(&memory, "block"),
        expected,
        "in order, no gap, no duplicate"
    );
}
