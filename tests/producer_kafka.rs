//! The producer against a real Apache Kafka (started by `make test` / `make kafka-up`).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kafka_config, random_topic, read_back};
use kafka_sync::domain::{topics, ScrapingTask};
use kafka_sync::domain::{KafkaMessage, KafkaProducer, MessageType};
use kafka_sync::Kafka;
use kafka_sync::{Compression, ErrorKind, KafkaProducerWrapper, RetryPolicy};

fn task_message(n: usize) -> KafkaMessage {
    KafkaMessage::new(
        MessageType::SCRAPING_TASK,
        &ScrapingTask::new(format!("https://example.com/{n}")),
    )
    .unwrap()
    .with_correlation_id(format!("corr-{n}"))
}

#[test]
fn send_and_send_batch_round_trip_byte_equal_through_an_independent_reader() {
    let topic = random_topic("roundtrip");
    let producer = Kafka::connect(kafka_config())
        .map(|k| k.producer())
        .unwrap();
    let mut sent: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    for n in 0..20 {
        let m = task_message(n);
        let d = producer.send(&topic, &m).unwrap();
        sent.insert((d.partition, d.offset), m.to_bytes().unwrap());
    }
    let batch: Vec<_> = (20..220).map(task_message).collect();
    let bytes: Vec<_> = batch.iter().map(|m| m.to_bytes().unwrap()).collect();
    for (r, b) in producer.send_batch(&topic, batch).into_iter().zip(bytes) {
        let d = r.unwrap();
        assert!(
            sent.insert((d.partition, d.offset), b).is_none(),
            "offset reused"
        );
    }
    let read = read_back(&topic, 220, Duration::from_secs(30));
    assert_eq!(read.len(), 220);
    // Message format v2 carries the envelope's id, type and correlation id as headers too.
    let modern = common::transport_name() == "modern";
    let mut ids = HashSet::new();
    for r in &read {
        assert_eq!(
            Some(&r.value),
            sent.get(&(r.partition, r.offset)),
            "bytes differ"
        );
        let m = KafkaMessage::from_bytes(&r.value).unwrap();
        assert!(ids.insert(m.id), "duplicate id {}", m.id);
        assert_eq!(r.key, m.partition_key().into_bytes());
        if modern {
            let expected = vec![
                ("message-id".to_string(), m.id.to_string().into_bytes()),
                ("message-type".to_string(), m.message_type.as_str().into()),
                ("correlation-id".to_string(), m.correlation_id.into_bytes()),
            ];
            assert_eq!(
                r.headers, expected,
                "headers at {}/{}",
                r.partition, r.offset
            );
        } else {
            assert!(r.headers.is_empty(), "the kafka crate writes no headers");
        }
    }
    let partitions: HashSet<_> = read.iter().map(|r| r.partition).collect();
    assert_eq!(
        partitions.len(),
        3,
        "ids as keys spread over the 3 partitions"
    );
}

#[test]
fn eight_threads_of_synchronous_sends_lose_nothing_and_keep_per_key_order() {
    let topic = random_topic("threads");
    let producer = Arc::new(
        Kafka::connect(kafka_config())
            .map(|k| k.producer())
            .unwrap(),
    );
    const THREADS: usize = 8;
    const PER_THREAD: usize = 5_000;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let producer = producer.clone();
            let topic = topic.clone();
            std::thread::spawn(move || {
                let mut offsets = Vec::with_capacity(PER_THREAD);
                for seq in 0..PER_THREAD {
                    let m = KafkaMessage::from_json(
                        MessageType::new("seq"),
                        serde_json::json!({ "thread": t, "seq": seq }),
                    )
                    .with_key(format!("thread-{t}"));
                    let d = producer.send(&topic, &m).unwrap();
                    offsets.push(d);
                }
                offsets
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for w in workers {
        let deliveries = w.join().unwrap();
        assert!(
            deliveries
                .windows(2)
                .all(|p| p[0].partition == p[1].partition && p[0].offset < p[1].offset),
            "one key, one partition, rising offsets"
        );
        for d in deliveries {
            assert!(
                acked.insert((d.partition, d.offset)),
                "offset acknowledged twice"
            );
        }
    }
    assert_eq!(acked.len(), THREADS * PER_THREAD);
    let read = read_back(&topic, THREADS * PER_THREAD, Duration::from_secs(60));
    assert_eq!(
        read.len(),
        THREADS * PER_THREAD,
        "every message is on the broker"
    );
    let mut next_seq = [0u64; THREADS];
    for r in &read {
        let m = KafkaMessage::from_bytes(&r.value).unwrap();
        let t = m.payload["thread"].as_u64().unwrap() as usize;
        assert_eq!(
            m.payload["seq"].as_u64().unwrap(),
            next_seq[t],
            "order of thread {t}"
        );
        next_seq[t] += 1;
    }
}

/// gzip and snappy everywhere; lz4 and zstd too on the modern transport when built with
/// `--features lz4,zstd` (read back by the Java consumer, so another client decodes them).
#[test]
fn compressed_batches_round_trip() {
    let mut codecs = vec![Compression::Gzip, Compression::Snappy];
    if common::transport_name() == "modern" {
        codecs.extend(
            [Compression::Lz4, Compression::Zstd]
                .into_iter()
                .filter(|c| c.is_available()),
        );
    }
    for compression in codecs {
        let topic = random_topic("compressed");
        let mut config = kafka_config();
        config.producer.compression = compression;
        let producer = Kafka::connect(config).map(|k| k.producer()).unwrap();
        let msgs: Vec<_> = (0..100).map(task_message).collect();
        let bytes: HashSet<_> = msgs.iter().map(|m| m.to_bytes().unwrap()).collect();
        assert!(producer.send_batch(&topic, msgs).iter().all(|r| r.is_ok()));
        let read = read_back(&topic, 100, Duration::from_secs(30));
        let got: HashSet<_> = read.into_iter().map(|r| r.value).collect();
        assert_eq!(got, bytes, "{compression:?}");
    }
}

#[test]
fn the_domain_wrapper_sends_pipeline_messages() {
    let producer = Kafka::connect(kafka_config())
        .map(|k| k.producer())
        .unwrap();
    let service: Arc<dyn KafkaProducer> = Arc::new(KafkaProducerWrapper::new(producer));
    let task = ScrapingTask::new("https://example.com/wrapped");
    let d = service.send_scraping_task(&task, "wrapped-corr").unwrap();
    assert!(d.offset >= 0);
    // The pipeline topic is shared between runs: find our message by its correlation id.
    let read = read_back(topics::SCRAPING_TASKS, usize::MAX, Duration::from_secs(5));
    let ours: Vec<_> = read
        .iter()
        .filter(|r| r.partition == d.partition && r.offset == d.offset)
        .map(|r| KafkaMessage::from_bytes(&r.value).unwrap())
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].correlation_id, "wrapped-corr");
    assert_eq!(ours[0].payload_as::<ScrapingTask>().unwrap(), task);
}

#[test]
fn health_reports_a_reachable_broker_and_live_writers() {
    let producer = Kafka::connect(kafka_config())
        .map(|k| k.producer())
        .unwrap();
    producer
        .send(&random_topic("health"), &task_message(0))
        .unwrap();
    let h = producer.health();
    assert!(h.is_healthy(), "{h:?}");
    assert_eq!(h.live_writers.len(), 1);
}

/// A second broker on its own port, so stopping it leaves the shared one alone: the
/// version under test (`KAFKA_TEST_VERSION`, default 3.9.1) on port 9110 (3.x) or 9114 (4.x).
struct SpareBroker {
    port: u16,
    version: String,
}

impl SpareBroker {
    fn new() -> Self {
        let version = std::env::var("KAFKA_TEST_VERSION").unwrap_or_else(|_| "3.9.1".into());
        let port = if version.starts_with('3') { 9110 } else { 9114 };
        SpareBroker { port, version }
    }

    fn script(&self, action: &str) {
        let root = env!("CARGO_MANIFEST_DIR");
        let status = Command::new("bash")
            .arg(format!("{root}/tests/broker/kafka.sh"))
            .arg(action)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_VERSION", &self.version)
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "kafka.sh {action} on port {} failed",
            self.port
        );
    }
}

impl Drop for SpareBroker {
    fn drop(&mut self) {
        self.script("down");
    }
}

#[test]
fn a_send_to_a_stopped_broker_fails_within_its_bound_and_works_again_once_it_is_back() {
    common::brokers(); // the harness (and its jars) must be there
    let spare = SpareBroker::new();
    spare.script("up");
    let mut config = common::config_for(&[format!("127.0.0.1:{}", spare.port)]);
    config.connect_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(5);
    config.producer.retry = RetryPolicy {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_millis(500),
        max_elapsed: Duration::from_secs(3),
        ..RetryPolicy::default()
    };
    let topic = random_topic("outage");
    let producer = Kafka::connect(config).map(|k| k.producer()).unwrap();
    producer
        .send(&topic, &task_message(1).with_key("outage"))
        .unwrap();

    spare.script("down");
    let started = Instant::now();
    let e = producer
        .send(&topic, &task_message(2).with_key("outage"))
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        took < Duration::from_secs(10),
        "failed after {took:?}, bound is 3 s of retries"
    );
    assert!(!producer.health().broker_reachable);

    spare.script("up");
    let d = producer
        .send(&topic, &task_message(3).with_key("outage"))
        .unwrap();
    assert_eq!(
        d.offset, 1,
        "the same producer writes again after the outage"
    );
}

fn padded(n: usize, bytes: usize) -> KafkaMessage {
    KafkaMessage::from_json(
        MessageType::new("padded"),
        serde_json::json!({ "n": n, "pad": "x".repeat(bytes) }),
    )
    .with_key("one-partition")
}

/// Kafka's default limit (1 MB per batch): 100 records of 15 KB to one partition fit one by
/// one but not together; the byte cap ships them in batches the broker takes.
#[test]
fn records_that_fit_alone_but_not_together_all_arrive_on_a_broker_with_the_default_limit() {
    let topic = random_topic("bytes");
    let kafka = Kafka::connect(kafka_config()).unwrap();
    let producer = kafka.producer();
    let msgs: Vec<_> = (0..100).map(|n| padded(n, 15_000)).collect();
    let ids: HashSet<_> = msgs.iter().map(|m| m.id).collect();
    for r in producer.send_batch(&topic, msgs) {
        r.unwrap();
    }
    let read = read_back(&topic, 100, Duration::from_secs(30));
    let got: HashSet<_> = read
        .iter()
        .map(|r| KafkaMessage::from_bytes(&r.value).unwrap().id)
        .collect();
    assert_eq!(got, ids);
}

/// A topic whose own limit (200 KB) is below the producer's batch cap: the broker refuses
/// the first batches as too large, the producer splits them until they fit; one message
/// over the topic's limit fails alone, naming its size; the others arrive in order.
#[test]
fn a_batch_over_the_topics_limit_is_split_and_only_a_message_over_it_fails() {
    let topic = random_topic("split");
    common::create_topic(&topic, 1, &[("max.message.bytes", "200000")]);
    let kafka = Kafka::connect(kafka_config()).unwrap();
    let producer = kafka.producer();
    let mut msgs: Vec<_> = (0..60).map(|n| padded(n, 15_000)).collect();
    msgs.insert(30, padded(999, 300_000));
    let results = producer.send_batch(&topic, msgs.clone());
    for (i, r) in results.iter().enumerate() {
        if i == 30 {
            let e = &r.as_ref().unwrap_err().error;
            assert_eq!(e.kind(), ErrorKind::MessageTooLarge, "{e}");
            assert!(e.message().contains("bytes"), "{e}");
        } else {
            r.as_ref().unwrap();
        }
    }
    let read = read_back(&topic, 60, Duration::from_secs(30));
    let ns: Vec<u64> = read
        .iter()
        .map(|r| {
            KafkaMessage::from_bytes(&r.value).unwrap().payload["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ns,
        (0..60).collect::<Vec<u64>>(),
        "all but the big one, in order"
    );
}

/// A raised limit, where a service needs it: the topic takes 3 MB and the producer is told
/// so; a 2 MB message is written and read back whole.
#[test]
fn a_raised_limit_on_topic_and_producer_carries_a_2_mb_message() {
    let topic = random_topic("raised");
    common::create_topic(&topic, 1, &[("max.message.bytes", "3000000")]);
    let mut config = kafka_config();
    config.producer.max_message_bytes = 2_500_000;
    config.producer.batch_bytes = 2_500_000;
    let kafka = Kafka::connect(config).unwrap();
    let big = padded(1, 2_000_000);
    kafka.producer().send(&topic, &big).unwrap();
    let read = read_back(&topic, 1, Duration::from_secs(30));
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].value, big.to_bytes().unwrap());
    // Without the raise the producer refuses it before it leaves, naming size and limit.
    let kafka = Kafka::connect(kafka_config()).unwrap();
    let e = kafka.producer().send(&topic, &big).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert!(e.message().contains("1000000"), "{e}");
}

/// The writer answers a batch while the broker works on the next one: answers must not wait
/// for the queue to run dry. Two threads keep the queue full for three seconds (requests of
/// 10 messages, so the broker is always behind); the first message's answer must come long
/// before that.
#[test]
fn async_answers_arrive_while_the_queue_stays_busy() {
    let topic = random_topic("busy");
    let mut config = kafka_config();
    config.producer.batch_size = 10;
    let producer = Kafka::connect(config).map(|k| k.producer()).unwrap();
    producer.send(&topic, &task_message(0)).unwrap();
    let first = producer.send_async(&topic, task_message(1)).unwrap();
    let streamers: Vec<_> = (0..2)
        .map(|_| {
            let (producer, topic, m) = (producer.clone(), topic.clone(), task_message(2));
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(3);
                let mut n = 0usize;
                while Instant::now() < until {
                    drop(producer.send_async(&topic, m.clone()).unwrap());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let started = Instant::now();
    first.wait().unwrap();
    let waited = started.elapsed();
    let depth_then: usize = producer.queue_depths().iter().map(|(_, d)| d).sum();
    let streamed: usize = streamers.into_iter().map(|s| s.join().unwrap()).sum();
    producer.flush().unwrap();
    assert!(streamed > 0);
    assert!(
        waited < Duration::from_millis(1500),
        "the first answer took {waited:?} while the queue was busy ({depth_then} queued then)"
    );
    let failed: u64 = producer.metrics().iter().map(|m| m.errors).sum();
    assert_eq!(failed, 0);
}

/// A synchronous `send` may ship on the caller's thread when the writer is idle, but never
/// ahead of the caller's own earlier `send_async` records: with one key (one partition),
/// each synchronous send lands after every record queued before it.
#[test]
fn a_send_never_overtakes_earlier_async_sends_of_its_key() {
    let topic = random_topic("order");
    let producer = Kafka::connect(kafka_config())
        .map(|k| k.producer())
        .unwrap();
    producer
        .send(&topic, &task_message(0).with_key("k"))
        .unwrap();
    for round in 0..5 {
        let queued: Vec<_> = (0..200)
            .map(|n| {
                producer
                    .send_async(&topic, task_message(n).with_key("k"))
                    .unwrap()
            })
            .collect();
        let sync = producer
            .send(&topic, &task_message(999).with_key("k"))
            .unwrap();
        for h in queued {
            let d = h.wait().unwrap();
            assert_eq!(d.partition, sync.partition);
            assert!(
                d.offset < sync.offset,
                "round {round}: a record queued before the send has offset {} after the send's {}",
                d.offset,
                sync.offset
            );
        }
        // Alone again: the next send goes straight out and still lands last.
        let alone = producer
            .send(&topic, &task_message(1000).with_key("k"))
            .unwrap();
        assert_eq!(alone.offset, sync.offset + 1);
    }
}
