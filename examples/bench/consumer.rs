//! Consumer scenarios (e)–(g), each next to the bare `kafka` crate consumer reading the same
//! topic in the same run (under its own group).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::client::GroupOffsetStorage;
use kafka::consumer::{Consumer as BareConsumer, FetchOffset};
use kafka::producer::{Producer as BareProducer, Record, RequiredAcks};
use kafka_sync::domain::KafkaMessage;
use kafka_sync::Kafka;
use kafka_sync::{Config, Consumer, Producer};

use crate::support::{brokers, fresh, rate, topic, Row};

/// A new topic holding `n` copies of `msg` (fresh ids), written with `send_async` + `flush`.
pub fn prefill(producer: &Producer, name: &str, msg: &KafkaMessage, n: usize) -> String {
    let t = topic(name);
    let handles: Vec<_> = (0..n)
        .map(|_| producer.send_async(&t, fresh(msg)).expect("queue"))
        .collect();
    producer.flush().expect("flush");
    assert!(
        handles.into_iter().all(|h| h.wait().is_ok()),
        "prefill failed"
    );
    t
}

fn group() -> String {
    format!("bench-group-{}", uuid::Uuid::new_v4().simple())
}

/// Runs `consumer` on `topic` until `n` messages were handled; returns the elapsed time.
fn run_ours(consumer: Consumer, topic: &str, n: usize) -> Duration {
    let started = Instant::now();
    let handle = consumer.consume([topic.to_string()]).expect("consume");
    let deadline = started + Duration::from_secs(600);
    while handle.metrics().iter().map(|m| m.handled).sum::<u64>() < n as u64 {
        assert!(
            Instant::now() < deadline,
            "consumer did not finish in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    consumer.close(Duration::from_secs(30)).expect("shutdown");
    took
}

/// The bare crate's consumer: poll, decode each envelope, `handle` it, commit per poll.
fn run_bare(topic: &str, n: usize, mut handle: impl FnMut(KafkaMessage)) -> Duration {
    let mut c = BareConsumer::from_hosts(brokers())
        .with_topic(topic.to_string())
        .with_group(group())
        .with_fallback_offset(FetchOffset::Earliest)
        .with_offset_storage(Some(GroupOffsetStorage::Kafka))
        .create()
        .expect("bare consumer connects");
    let started = Instant::now();
    let mut seen = 0;
    while seen < n {
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
    started.elapsed()
}

fn consumer_config(base: &Config, commit_interval: Duration) -> Config {
    let mut c = base.clone();
    c.group_id = group();
    c.consumer.commit_interval = commit_interval;
    c
}

/// (e)/(f): consume + decode + no-op handler + commit.
pub fn noop(
    base: &Config,
    producer: &Producer,
    msg: &KafkaMessage,
    n: usize,
    commit_interval: Duration,
    name: &'static str,
) -> Row {
    let t = prefill(producer, "consume", msg, n);
    let consumer = Kafka::connect(consumer_config(base, commit_interval))
        .and_then(|k| k.consumer())
        .expect("consumer");
    consumer.register_handler("bench", |_m: &KafkaMessage| Ok(()));
    let ours = rate(n, run_ours(consumer, &t, n));
    let bare = rate(n, run_bare(&t, n, |_| {}));
    Row {
        name,
        ours,
        bare,
        latency: None,
    }
}

/// (g): the scraper shape: consume, handle, produce the result to the next topic
/// (synchronously, acks=all) before the message counts as handled.
pub fn scraper(base: &Config, producer: &Arc<Producer>, msg: &KafkaMessage, n: usize) -> Row {
    let input = prefill(producer, "scrape-in", msg, n);
    let output = topic("scrape-out");
    producer
        .send(&output, &fresh(msg))
        .expect("create the output topic");
    let consumer = Kafka::connect(consumer_config(base, Duration::from_millis(100)))
        .and_then(|k| k.consumer())
        .expect("consumer");
    let (p, out) = (producer.clone(), output.clone());
    consumer.register_handler("bench", move |m: &KafkaMessage| {
        let next = KafkaMessage::from_json("bench-out".into(), m.payload.clone())
            .with_correlation_id(m.correlation_id.clone());
        p.send(&out, &next)
            .map(|_| ())
            .map_err(kafka_sync::domain::HandlerError::retriable)
    });
    let ours = rate(n, run_ours(consumer, &input, n));
    let mut bare_out = BareProducer::from_hosts(brokers())
        .with_required_acks(RequiredAcks::All)
        .create()
        .expect("bare producer");
    let bare = rate(
        n,
        run_bare(&input, n, |m| {
            let next = KafkaMessage::from_json("bench-out".into(), m.payload)
                .with_correlation_id(m.correlation_id);
            let bytes = next.to_bytes().expect("encode");
            bare_out
                .send(&Record::from_value(&output, &bytes[..]))
                .expect("bare send");
        }),
    );
    Row {
        name: "(g) scraper: consume, handle, produce",
        ours,
        bare,
        latency: None,
    }
}
