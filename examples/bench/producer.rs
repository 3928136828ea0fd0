//! Producer scenarios (a)–(d) and (h): ours, and the bare `kafka` crate doing the same work
//! with the same bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::producer::{Producer as BareProducer, Record, RequiredAcks};
use kafka_sync::domain::KafkaMessage;
use kafka_sync::Producer;

use crate::support::{
    brokers, cpu_self, fresh, percentile, rate, topic, warm_topic, Measured, RssWatch,
};

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

/// (a) one thread, `send` one message at a time, with p50 / p99 of each call.
pub fn sequential(producer: &Producer, msg: &KafkaMessage, n: usize) -> Measured {
    let t = warm_topic(producer, "seq", msg);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let m = fresh(msg);
        let s = Instant::now();
        producer.send(&t, &m).expect("send");
        latencies.push(s.elapsed());
    }
    let r = rate(n, started.elapsed());
    latencies.sort();
    Measured {
        rate: r,
        latency: Some((percentile(&latencies, 0.5), percentile(&latencies, 0.99))),
        cpu: None,
    }
}

pub fn sequential_bare(producer: &Producer, msg: &KafkaMessage, n: usize) -> Measured {
    let bytes = msg.to_bytes().unwrap();
    let bt = topic("seq-bare");
    let mut p = bare(producer, &bt, msg);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let key = i.to_string();
        let s = Instant::now();
        p.send(&Record::from_key_value(&bt, key.as_bytes(), &bytes[..]))
            .expect("bare send");
        latencies.push(s.elapsed());
    }
    let r = rate(n, started.elapsed());
    latencies.sort();
    Measured {
        rate: r,
        latency: Some((percentile(&latencies, 0.5), percentile(&latencies, 0.99))),
        cpu: None,
    }
}

/// (b) `threads` threads, `send` one at a time each.
pub fn threads(
    producer: &Arc<Producer>,
    msg: &KafkaMessage,
    threads: usize,
    per: usize,
) -> Measured {
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
    Measured::rate(rate(threads * per, started.elapsed()))
}

pub fn threads_bare(
    producer: &Producer,
    msg: &KafkaMessage,
    threads: usize,
    per: usize,
) -> Measured {
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
    Measured::rate(rate(threads * per, started.elapsed()))
}

/// (c) one `send_batch` of `n`.
pub fn batch(producer: &Producer, msg: &KafkaMessage, n: usize) -> Measured {
    let t = warm_topic(producer, "batch", msg);
    let msgs: Vec<_> = (0..n).map(|_| fresh(msg)).collect();
    let started = Instant::now();
    let results = producer.send_batch(&t, msgs);
    let r = rate(n, started.elapsed());
    assert!(results.iter().all(|r| r.is_ok()), "send_batch failed");
    Measured::rate(r)
}

/// (c) the bare crate's single-request `send_all` of the same `n`.
pub fn batch_bare(producer: &Producer, msg: &KafkaMessage, n: usize) -> Measured {
    let t = topic("batch-bare");
    let bytes = msg.to_bytes().unwrap();
    let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let records: Vec<_> = keys
        .iter()
        .map(|k| Record::from_key_value(&t, k.as_bytes(), &bytes[..]))
        .collect();
    let mut p = bare(producer, &t, msg);
    let started = Instant::now();
    p.send_all(&records).expect("bare send_all");
    Measured::rate(rate(n, started.elapsed()))
}

/// Queues `n` fresh copies of `msg` to `t` with `send_async` (handles dropped: a handle
/// keeps its message, and a million of them would be the bench's memory, not the
/// producer's), then flushes; failures show in the producer's error count.
fn async_into(producer: &Producer, t: &str, msg: &KafkaMessage, n: usize) {
    let errors = |p: &Producer| p.metrics().iter().map(|m| m.errors).sum::<u64>();
    let before = errors(producer);
    for _ in 0..n {
        drop(producer.send_async(t, fresh(msg)).expect("queue"));
    }
    producer.flush().expect("flush");
    assert_eq!(errors(producer), before, "an async send failed");
}

/// (d) `send_async` ×`n` then `flush`, with this process's CPU, and its resident set
/// before and at its peak (MB).
pub fn asynchronous(producer: &Producer, msg: &KafkaMessage, n: usize) -> (Measured, (f64, f64)) {
    let t = warm_topic(producer, "async", msg);
    let rss = RssWatch::start();
    let cpu = cpu_self();
    let started = Instant::now();
    async_into(producer, &t, msg, n);
    let took = started.elapsed();
    let cpu = cpu_self() - cpu;
    let before = rss.before;
    let peak = rss.stop();
    let m = Measured {
        rate: rate(n, took),
        latency: None,
        cpu: Some(cpu),
    };
    (m, (before, peak))
}

/// (d) the bare crate: `send_all` in chunks of `chunk`.
pub fn asynchronous_bare(
    producer: &Producer,
    msg: &KafkaMessage,
    n: usize,
    chunk: usize,
) -> Measured {
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
    Measured::rate(rate(n, started.elapsed()))
}

/// (h) `topics` threads each `send_async` `n / topics` to a topic of its own, then flush:
/// the aggregate rate.
pub fn many_topics(
    producer: &Arc<Producer>,
    msg: &KafkaMessage,
    topics: usize,
    n: usize,
) -> Measured {
    let names: Vec<String> = (0..topics)
        .map(|_| warm_topic(producer, "multi", msg))
        .collect();
    let per = n / topics;
    let started = Instant::now();
    let workers: Vec<_> = names
        .into_iter()
        .map(|t| {
            let (p, msg) = (producer.clone(), msg.clone());
            std::thread::spawn(move || async_into(&p, &t, &msg, per))
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    Measured::rate(rate(per * topics, started.elapsed()))
}

/// (h)'s reference: the same `n` from one thread to one topic.
pub fn one_topic(producer: &Producer, msg: &KafkaMessage, n: usize) -> Measured {
    let t = warm_topic(producer, "single", msg);
    let started = Instant::now();
    async_into(producer, &t, msg, n);
    Measured::rate(rate(n, started.elapsed()))
}
