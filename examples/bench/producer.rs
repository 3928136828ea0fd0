//! Producer scenarios (a)–(d), each next to the bare `kafka` crate producer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::producer::{Producer as BareProducer, Record, RequiredAcks};
use kafka_sync::domain::KafkaMessage;
use kafka_sync::Producer;

use crate::support::{brokers, fresh, percentile, rate, topic, warm_topic, Row};

/// A bare producer for `topic`. The bare crate neither creates topics nor refreshes metadata,
/// so the topic is created first (one message through our producer) and the bare producer
/// connects afterwards.
pub fn bare(ours: &Producer, topic: &str, msg: &KafkaMessage) -> BareProducer {
    ours.send(topic, &fresh(msg))
        .expect("creating the bare scenario's topic");
    BareProducer::from_hosts(brokers())
        .with_required_acks(RequiredAcks::All)
        .with_ack_timeout(Duration::from_secs(30))
        .create()
        .expect("bare kafka producer connects")
}

pub fn sequential(producer: &Producer, msg: &KafkaMessage, n: usize) -> Row {
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

pub fn threads(producer: &Arc<Producer>, msg: &KafkaMessage, threads: usize, per: usize) -> Row {
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

pub fn batch(producer: &Producer, msg: &KafkaMessage, n: usize) -> Row {
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

pub fn asynchronous(producer: &Producer, msg: &KafkaMessage, n: usize, chunk: usize) -> Row {
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
