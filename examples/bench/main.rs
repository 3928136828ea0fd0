//! `make bench`: throughput and latency against the local broker, each scenario next to the
//! bare `kafka` crate doing the same work with the same bytes in the same run.
//!
//! Envelopes of 234 bytes, acks=all.
//!
//! Every scenario runs on the `kafka` crate transport and then on the modern transport,
//! each time with the bare crate measured beside it.
//!
//! | scenario | kafka-sync | bare `kafka` crate |
//! |---|---|---|
//! | (a) | one thread, sequential `send` | `Producer::send`, one record at a time |
//! | (b) | 16 threads, sequential `send` each | 16 producers, one record at a time |
//! | (c) | `send_batch` of 10,000 | `send_all` of the same 10,000 |
//! | (d) | `send_async` ×100,000 then `flush` | `send_all` in chunks of `batch_size` |
//! | (e) | consume 100,000 + decode + no-op handler, commit every 100 ms | poll, decode, commit per poll |
//! | (f) | as (e), 10,000, default commit after every message | as (e) |
//! | (g) | 10,000: consume, handle, `send` to the next topic | poll, decode, send one by one, commit per poll |
//!
//! Sizes shrink with `BENCH_SCALE` (e.g. `BENCH_SCALE=0.1`) for a quick look.

mod consumer;
mod producer;
mod support;

use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::KafkaMessage;
use kafka_sync::Kafka;
use kafka_sync::{Config, Producer, TransportKind};
use support::{brokers, envelope, scaled, topic, Row, ENVELOPE_BYTES};

/// One transport under test: its config and producer.
struct Side {
    config: Config,
    producer: Arc<Producer>,
}

fn side(kind: TransportKind) -> Side {
    let config = Config {
        brokers: brokers(),
        transport: kind,
        client_id: "kafka-sync-bench".into(),
        ..Config::default()
    };
    let producer = Kafka::connect(config.clone())
        .expect("bench config")
        .producer();
    producer
        .send(&topic("warmup"), &support::fresh(&envelope()))
        .expect("warm-up send");
    Side { config, producer }
}

/// Scenario `index` on one side (each row also holds the bare crate's figure measured right
/// beside it).
fn scenario(index: usize, s: &Side, msg: &KafkaMessage) -> Row {
    let (config, producer) = (&s.config, &s.producer);
    match index {
        0 => producer::sequential(producer, msg, scaled(5_000)),
        1 => producer::threads(producer, msg, 16, scaled(1_000)),
        2 => producer::batch(producer, msg, scaled(10_000)),
        3 => producer::asynchronous(producer, msg, scaled(100_000), config.producer.batch_size),
        4 => consumer::noop(
            config,
            producer,
            msg,
            scaled(100_000),
            Duration::from_millis(100),
            "(e) consume 100k, commit every 100 ms",
        ),
        5 => consumer::noop(
            config,
            producer,
            msg,
            scaled(10_000),
            Duration::ZERO,
            "(f) consume 10k, commit each message",
        ),
        _ => consumer::scraper(config, producer, msg, scaled(10_000)),
    }
}

const SCENARIOS: usize = 7;

fn latency(r: &Row) -> String {
    r.latency
        .map_or(String::new(), |(a, b)| format!("{a:.2?} / {b:.2?}"))
}

/// Untimed traffic on both transports first: a broker just started runs its JIT-cold code
/// for the first tens of thousands of requests, which would handicap whichever pass ran
/// first.
fn warm_up() {
    for kind in [TransportKind::KafkaCrate, TransportKind::Modern] {
        let config = Config {
            brokers: brokers(),
            transport: kind,
            ..Config::default()
        };
        let producer = Kafka::connect(config.clone())
            .expect("warm-up config")
            .producer();
        let msg = envelope();
        producer::asynchronous(&producer, &msg, 20_000, config.producer.batch_size);
        producer::sequential(&producer, &msg, 2_000);
        consumer::noop(
            &config,
            &producer,
            &msg,
            5_000,
            Duration::from_millis(100),
            "warm-up",
        );
    }
}

fn main() {
    warm_up();
    let sides = [side(TransportKind::KafkaCrate), side(TransportKind::Modern)];
    let msg = envelope();
    // Each scenario runs on both transports back to back, so slow drifts of the machine or
    // the broker touch both columns alike.
    let rows: Vec<(Row, Row)> = (0..SCENARIOS)
        .map(|i| (scenario(i, &sides[0], &msg), scenario(i, &sides[1], &msg)))
        .collect();
    println!(
        "\nkafka-sync on each transport vs the bare kafka crate, {ENVELOPE_BYTES}-byte envelopes, acks=all, brokers {:?}",
        brokers()
    );
    println!(
        "(the bare crate measured beside each transport's run; each ratio is against its own)\n"
    );
    println!("| scenario | kafka-crate transport msgs/s | modern transport msgs/s | bare kafka msgs/s (beside each) | kafka-crate ÷ bare | modern ÷ bare | p50 / p99 kafka-crate | p50 / p99 modern |");
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for (c, m) in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.2} | {:.2} | {} | {} |",
            c.name,
            c.ours,
            m.ours,
            c.bare,
            m.bare,
            c.ours / c.bare,
            m.ours / m.bare,
            latency(c),
            latency(m)
        );
    }
}
