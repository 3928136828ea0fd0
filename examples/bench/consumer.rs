//! Consumer scenarios (e)–(g) and (j): ours, and the bare `kafka` crate consumer reading
//! the same topic under its own group.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::client::GroupOffsetStorage;
use kafka::consumer::{Consumer as BareConsumer, FetchOffset};
use kafka::producer::{Producer as BareProducer, Record, RequiredAcks};
use kafka_sync::domain::{HandlerError, KafkaMessage};
use kafka_sync::{Config, Consumer, Producer};

use crate::support::{brokers, connect_consumer, cpu_self, fresh, group, rate, topic, Measured};

/// The bare consumer's fetch size per partition: more than one of our producer's batches.
const BARE_FETCH_BYTES: i32 = 2 * 1024 * 1024;

/// The longest one consume run may take.
const CONSUME_BOUND: Duration = Duration::from_secs(600);

/// A new topic holding `n` copies of `msg` (fresh ids), written with `send_async` + `flush`.
pub fn prefill(producer: &Producer, name: &str, msg: &KafkaMessage, n: usize) -> String {
    let t = topic(name);
    producer.send(&t, &fresh(msg)).expect("creating the topic");
    for _ in 1..n {
        drop(producer.send_async(&t, fresh(msg)).expect("queue"));
    }
    producer.flush().expect("flush");
    assert!(
        producer.metrics().iter().all(|m| m.errors == 0),
        "prefill failed"
    );
    t
}

/// Messages a consumer is done with: handled, or given up on (dead-lettered or parked).
fn done(consumer: &Consumer) -> u64 {
    consumer
        .metrics()
        .iter()
        .map(|m| m.handled + m.dead_lettered + m.sent_to_retry)
        .sum()
}

/// Counts a bench handler's successful calls (cheaper to watch than the consumer's metrics,
/// whose percentiles are computed on each read).
#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

impl Count {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `consumer` on `topic` until `finished` says `n` messages are done or `bound`
/// passed, looking every `every`; the rate of those done (joining the group included) and
/// this process's CPU for it.
fn run_ours(
    consumer: Consumer,
    topic: &str,
    n: usize,
    bound: Duration,
    every: Duration,
    finished: impl Fn(&Consumer) -> u64,
) -> Measured {
    let cpu = cpu_self();
    let started = Instant::now();
    let _handle = consumer.consume([topic.to_string()]).expect("consume");
    let deadline = started + bound;
    let mut got = finished(&consumer);
    while got < n as u64 && Instant::now() < deadline {
        std::thread::sleep(every);
        got = finished(&consumer);
    }
    let took = started.elapsed();
    let cpu = cpu_self() - cpu;
    if got < n as u64 {
        eprintln!(
            "bench: consumer on {topic} did {got} of {n} in {bound:?}; its rate counts those"
        );
    }
    consumer.close(Duration::from_secs(30)).expect("close");
    Measured {
        rate: rate(got as usize, took),
        latency: None,
        cpu: Some(cpu),
    }
}

/// The bare crate's consumer: poll, decode each envelope, `handle` it, commit per poll.
fn run_bare(topic: &str, n: usize, mut handle: impl FnMut(KafkaMessage)) -> Measured {
    let started = Instant::now();
    let mut c = BareConsumer::from_hosts(brokers())
        .with_topic(topic.to_string())
        .with_group(group())
        .with_fallback_offset(FetchOffset::Earliest)
        .with_offset_storage(Some(GroupOffsetStorage::Kafka))
        // Our producer's batches reach `batch_bytes` (1 MB); the crate's default limit
        // (32 KB) cannot take one.
        .with_fetch_max_bytes_per_partition(BARE_FETCH_BYTES)
        .create()
        .expect("bare consumer connects");
    let mut seen = 0;
    while seen < n {
        assert!(started.elapsed() < CONSUME_BOUND, "bare consumer too slow");
        let sets = c.poll().expect("bare poll");
        for set in sets.iter() {
            for m in set.messages() {
                handle(KafkaMessage::from_bytes(m.value).expect("decode"));
                seen += 1;
            }
            c.consume_messageset(set).expect("mark consumed");
        }
        c.commit_consumed().expect("bare commit");
    }
    Measured::rate(rate(n, started.elapsed()))
}

fn consumer_config(base: &Config, commit_interval: Duration) -> Config {
    let mut c = base.clone();
    c.group_id = group();
    c.consumer.commit_interval = commit_interval;
    c
}

/// (e)/(f): consume `n` of `topic` + decode + no-op handler + commit every `commit_interval`.
pub fn noop(base: &Config, topic: &str, n: usize, commit_interval: Duration) -> Measured {
    let consumer = connect_consumer(&consumer_config(base, commit_interval));
    let count = Count::default();
    let c = count.clone();
    consumer.register_handler("bench", move |_m: &KafkaMessage| {
        c.add();
        Ok(())
    });
    let every = Duration::from_millis(1);
    run_ours(consumer, topic, n, CONSUME_BOUND, every, |_| count.get())
}

pub fn noop_bare(topic: &str, n: usize) -> Measured {
    run_bare(topic, n, |_| {})
}

/// (j) measured: the healthy messages' rate while about 1% keep failing, and how long the
/// failing ones took to leave the topic (parked on the retry topic or dead-lettered).
pub struct Failing {
    /// Healthy messages handled ÷ the time until the last of them was handled (joining the
    /// group included, as in the failure-free run).
    pub healthy: Measured,
    /// `key=value` figures for the row's note.
    pub note: String,
}

/// (j): as (e), but about 1% of the messages (by id) fail every attempt with a retriable
/// error under the default retry settings. The clock for the rate stops when every healthy
/// message is handled (every message seen once, every one not failing handled); the run
/// then goes on until every failing one was parked on the retry topic or dead-lettered, or
/// `bound` passed.
pub fn failing(base: &Config, topic: &str, n: usize, bound: Duration) -> Failing {
    let consumer = connect_consumer(&consumer_config(base, Duration::from_millis(100)));
    let healthy = Count::default();
    let failing_ids = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let (h, f) = (healthy.clone(), failing_ids.clone());
    consumer.register_handler("bench", move |m: &KafkaMessage| {
        if m.id.as_u128().is_multiple_of(100) {
            f.lock().unwrap_or_else(|e| e.into_inner()).insert(m.id);
            Err(HandlerError::retriable("bench: 1% fail every attempt"))
        } else {
            h.add();
            Ok(())
        }
    });
    let seen_failing = || failing_ids.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
    let cpu = cpu_self();
    let started = Instant::now();
    let _handle = consumer.consume([topic.to_string()]).expect("consume");
    let deadline = started + bound;
    let n = n as u64;
    while healthy.get() + seen_failing() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let healthy_took = started.elapsed();
    let healthy_done = healthy.get();
    let cpu = cpu_self() - cpu;
    while done(&consumer) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out_took = started.elapsed();
    let (parked, dead): (u64, u64) = consumer.metrics().iter().fold((0, 0), |(p, d), m| {
        (p + m.sent_to_retry, d + m.dead_lettered)
    });
    let failing = seen_failing();
    if healthy_done + failing < n || parked + dead < failing {
        eprintln!(
            "bench: (j) on {topic} within {bound:?}: {healthy_done} healthy handled, {failing} \
             failing seen of {n}; {parked} parked, {dead} dead-lettered"
        );
    }
    consumer.close(Duration::from_secs(30)).expect("close");
    Failing {
        healthy: Measured {
            rate: rate(healthy_done as usize, healthy_took),
            latency: None,
            cpu: Some(cpu),
        },
        note: format!(
            "healthy={healthy_done} healthy_done_after={:.2}s failing={failing} \
             failing_out_after={:.2}s (parked_on_retry_topic={parked} dead_lettered={dead})",
            healthy_took.as_secs_f64(),
            out_took.as_secs_f64()
        ),
    }
}

/// (g): the scraper shape: consume, handle, produce the result to the next topic
/// (synchronously, acks=all) before the message counts as handled.
pub fn scraper(
    base: &Config,
    producer: &Arc<Producer>,
    msg: &KafkaMessage,
    input: &str,
    n: usize,
) -> Measured {
    let output = topic("scrape-out");
    producer
        .send(&output, &fresh(msg))
        .expect("create the output topic");
    let consumer = connect_consumer(&consumer_config(base, Duration::from_millis(100)));
    let p = producer.clone();
    let count = Count::default();
    let c = count.clone();
    consumer.register_handler("bench", move |m: &KafkaMessage| {
        let next = KafkaMessage::from_json("bench-out".into(), m.payload.clone())
            .with_correlation_id(m.correlation_id.clone());
        p.send(&output, &next)
            .map(|_| c.add())
            .map_err(HandlerError::retriable)
    });
    let every = Duration::from_millis(1);
    run_ours(consumer, input, n, CONSUME_BOUND, every, |_| count.get())
}

pub fn scraper_bare(producer: &Producer, msg: &KafkaMessage, input: &str, n: usize) -> Measured {
    let output = topic("scrape-out-bare");
    producer
        .send(&output, &fresh(msg))
        .expect("create the output topic");
    let mut out = BareProducer::from_hosts(brokers())
        .with_required_acks(RequiredAcks::All)
        .create()
        .expect("bare producer");
    run_bare(input, n, |m| {
        let next = KafkaMessage::from_json("bench-out".into(), m.payload)
            .with_correlation_id(m.correlation_id);
        let bytes = next.to_bytes().expect("encode");
        out.send(&Record::from_value(&output, &bytes[..]))
            .expect("bare send");
    })
}
