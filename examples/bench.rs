//! `make bench`: producer throughput and latency against the local broker, each scenario
//! next to the bare `kafka` crate producer sending the same bytes in the same run.
//!
//! Envelopes of 234 bytes, acks=all. Scenarios:
//! (a) one thread, sequential `send`            vs bare `Producer::send` one record at a time
//! (b) 16 threads, sequential `send` each       vs 16 bare producers, one record at a time
//! (c) `send_batch` of 10,000                   vs bare `send_all` of the same 10,000
//! (d) `send_async` ×100,000 then `flush`       vs bare `send_all` in chunks of batch_size
//!
//! Sizes shrink with `BENCH_SCALE` (e.g. `BENCH_SCALE=0.1`) for a quick look.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::producer::{Producer as BareProducer, Record, RequiredAcks};
use kafka_sync::{Config, KafkaMessage, MessageType, Producer, TransportKind};

const ENVELOPE_BYTES: usize = 234;

fn brokers() -> Vec<String> {
    std::env::var("KAFKA_TEST_BROKERS")
        .or_else(|_| std::env::var("KAFKA_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".into())
        .split(',')
        .map(str::to_string)
        .collect()
}

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// A message whose encoded envelope is exactly `ENVELOPE_BYTES` long.
fn envelope() -> KafkaMessage {
    let mut pad = String::new();
    loop {
        let m =
            KafkaMessage::from_json(MessageType::new("bench"), serde_json::json!({ "pad": pad }))
                .with_correlation_id("bench");
        let len = m.to_bytes().unwrap().len();
        if len >= ENVELOPE_BYTES {
            assert_eq!(
                len, ENVELOPE_BYTES,
                "cannot pad the envelope to {ENVELOPE_BYTES} bytes"
            );
            return m;
        }
        pad.push('x');
    }
}

fn fresh(m: &KafkaMessage) -> KafkaMessage {
    let mut c = m.clone();
    c.id = uuid::Uuid::new_v4();
    c
}

fn topic(name: &str) -> String {
    format!("bench-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A new topic, created (and its writer started) by one untimed send, so that neither
/// side's timing includes topic creation.
fn warm_topic(producer: &Producer, name: &str, msg: &KafkaMessage) -> String {
    let t = topic(name);
    producer.send(&t, &fresh(msg)).expect("warm-up send");
    t
}

/// A bare producer for `topic`. The bare crate neither creates topics nor refreshes metadata,
/// so the topic is created first (one message through our producer) and the bare producer
/// connects afterwards.
fn bare(ours: &Producer, topic: &str, msg: &KafkaMessage) -> BareProducer {
    ours.send(topic, &fresh(msg))
        .expect("creating the bare scenario's topic");
    BareProducer::from_hosts(brokers())
        .with_required_acks(RequiredAcks::All)
        .with_ack_timeout(Duration::from_secs(30))
        .create()
        .expect("bare kafka producer connects")
}

struct Row {
    name: &'static str,
    ours: f64,
    bare: f64,
    latency: Option<(Duration, Duration)>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn sequential(producer: &Producer, msg: &KafkaMessage, n: usize) -> Row {
    let t = warm_topic(producer, "seq", msg);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let m = fresh(msg);
        let s = Instant::now();
        producer.send(&t, &m).expect("send");
        latencies.push(s.elapsed());
    }
    let ours = rate(n, started.elapsed());
    latencies.sort();
    let bytes = msg.to_bytes().unwrap();
    let bt = topic("seq-bare");
    let mut p = bare(producer, &bt, msg);
    let started = Instant::now();
    for i in 0..n {
        let key = i.to_string();
        p.send(&Record::from_key_value(&bt, key.as_bytes(), &bytes[..]))
            .expect("bare send");
    }
    Row {
        name: "(a) 1 thread send",
        ours,
        bare: rate(n, started.elapsed()),
        latency: Some((percentile(&latencies, 0.5), percentile(&latencies, 0.99))),
    }
}

fn threads(producer: &Arc<Producer>, msg: &KafkaMessage, threads: usize, per: usize) -> Row {
    let t = warm_topic(producer, "threads", msg);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (p, t, msg) = (producer.clone(), t.clone(), msg.clone());
            std::thread::spawn(move || {
                (0..per).for_each(|_| {
                    p.send(&t, &fresh(&msg)).expect("send");
                })
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let ours = rate(threads * per, started.elapsed());
    let bytes = Arc::new(msg.to_bytes().unwrap());
    let bt = topic("threads-bare");
    let bares: Vec<_> = (0..threads).map(|_| bare(producer, &bt, msg)).collect();
    let started = Instant::now();
    let workers: Vec<_> = bares
        .into_iter()
        .enumerate()
        .map(|(w, mut p)| {
            let (bt, bytes) = (bt.clone(), bytes.clone());
            std::thread::spawn(move || {
                for i in 0..per {
                    let key = format!("{w}-{i}");
                    p.send(&Record::from_key_value(&bt, key.as_bytes(), &bytes[..]))
                        .expect("bare send");
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    Row {
        name: "(b) 16 threads send",
        ours,
        bare: rate(threads * per, started.elapsed()),
        latency: None,
    }
}

fn batch(producer: &Producer, msg: &KafkaMessage, n: usize) -> Row {
    let t = warm_topic(producer, "batch", msg);
    let msgs: Vec<_> = (0..n).map(|_| fresh(msg)).collect();
    let started = Instant::now();
    let results = producer.send_batch(&t, msgs);
    let ours = rate(n, started.elapsed());
    assert!(results.iter().all(|r| r.is_ok()), "send_batch failed");
    let bytes = msg.to_bytes().unwrap();
    let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let records: Vec<_> = keys
        .iter()
        .map(|k| Record::from_key_value(&t, k.as_bytes(), &bytes[..]))
        .collect();
    let mut p = bare(producer, &t, msg);
    let started = Instant::now();
    p.send_all(&records).expect("bare send_all");
    Row {
        name: "(c) send_batch 10k",
        ours,
        bare: rate(n, started.elapsed()),
        latency: None,
    }
}

fn asynchronous(producer: &Producer, msg: &KafkaMessage, n: usize, chunk: usize) -> Row {
    let t = warm_topic(producer, "async", msg);
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| producer.send_async(&t, fresh(msg)).expect("queue"))
        .collect();
    producer.flush().expect("flush");
    let ours = rate(n, started.elapsed());
    assert!(
        handles.into_iter().all(|h| h.wait().is_ok()),
        "an async send failed"
    );
    let bytes = msg.to_bytes().unwrap();
    let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let bt = topic("async-bare");
    let mut p = bare(producer, &bt, msg);
    let started = Instant::now();
    for part in keys.chunks(chunk) {
        let records: Vec<_> = part
            .iter()
            .map(|k| Record::from_key_value(&bt, k.as_bytes(), &bytes[..]))
            .collect();
        p.send_all(&records).expect("bare send_all");
    }
    Row {
        name: "(d) send_async 100k+flush",
        ours,
        bare: rate(n, started.elapsed()),
        latency: None,
    }
}

fn main() {
    let config = Config::builder()
        .brokers(brokers())
        .transport(TransportKind::KafkaCrate)
        .client_id("kafka-sync-bench")
        .build()
        .expect("bench config");
    let chunk = config.producer.batch_size;
    let producer = Arc::new(Producer::connect(config).expect("producer"));
    let msg = envelope();
    // Warm up connections and topic creation paths.
    producer
        .send(&topic("warmup"), &fresh(&msg))
        .expect("warm-up send");

    let rows = vec![
        sequential(&producer, &msg, scaled(5_000)),
        threads(&producer, &msg, 16, scaled(1_000)),
        batch(&producer, &msg, scaled(10_000)),
        asynchronous(&producer, &msg, scaled(100_000), chunk),
    ];
    println!("\nkafka-sync producer vs bare kafka crate, {ENVELOPE_BYTES}-byte envelopes, acks=all, brokers {:?}\n", brokers());
    println!("| scenario | kafka-sync msgs/s | bare kafka msgs/s | ratio | p50 / p99 |");
    println!("|---|---:|---:|---:|---|");
    for r in rows {
        let lat = r
            .latency
            .map_or("".to_string(), |(a, b)| format!("{a:.2?} / {b:.2?}"));
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {lat} |",
            r.name,
            r.ours,
            r.bare,
            r.ours / r.bare
        );
    }
}
