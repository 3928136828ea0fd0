//! `make bench`: throughput, latency and CPU against the local broker, each scenario next to
//! a peer doing the same work in the same run: Apache Kafka's own Java tools
//! (`ProducerPerformance`, `ConsumerPerformance`, `EndToEndLatency`, fetched with Maven by
//! `java-tools.sh`), the bare `kafka` crate, or our own reference figure.
//!
//! Envelopes of 234 bytes, acks=all. Each duel runs `BENCH_PASSES` (default 2) times,
//! alternating which side goes first; the best pass of each side counts. Scenarios (a)–(g)
//! also run on the `kafka` crate transport with the bare crate beside it.
//!
//! | scenario | kafka-sync (modern transport) | peer |
//! |---|---|---|
//! | (a) | one thread, sequential `send` ×5,000 | bare crate `send`, one at a time |
//! | (b) | 16 threads, sequential `send` ×1,000 each | 16 bare producers |
//! | (c) | `send_batch` of 10,000 | bare `send_all` of the same 10,000 (one request) |
//! | (d) | `send_async` ×1,000,000 then `flush` | Java `ProducerPerformance` 1,000,000, acks=all, linger.ms=5 |
//! | (k) | as (d) on the 3-node cluster (RF 3, min ISR 2; `BENCH_CLUSTER`) | Java `ProducerPerformance` on the same cluster |
//! | (e) | consume 1,000,000 + decode + no-op handler, commit every 100 ms | Java `ConsumerPerformance`, same topic |
//! | (e) inline | as (e) with `handler_timeout: None` (handlers on the consumer thread) | the same |
//! | (f) | as (e), 10,000, commit after every message | bare consumer, commit per poll |
//! | (g) | 10,000: consume, handle, `send` to the next topic | bare: poll, decode, send, commit |
//! | (h) | 8 threads `send_async` to 8 topics, 400,000 in all | ours, one thread, one topic |
//! | (i) | send → handler latency at a steady 1k and 10k msg/s | Java `EndToEndLatency`, 2,000 |
//! | (j) | as (e), 100,000, 1% failing every attempt (default retries): the healthy ones' rate | ours, failure-free |
//! | cpu | this process's CPU for (d) + (e), per 1M messages | the Java tools' process CPU |
//!
//! On the `kafka` crate transport (d) and (e) use 100,000 messages and the bare crate.
//! Sizes shrink with `BENCH_SCALE` (e.g. `BENCH_SCALE=0.1`) for a quick look; `BENCH_ONLY=d,e`
//! runs only those scenarios (the CPU row needs both); `BENCH_WARMUP=0` skips the warm-up.
//! Progress goes to stderr.

mod consumer;
mod java;
mod latency;
mod producer;
mod report;
mod support;

use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::KafkaMessage;
use kafka_sync::{Config, Producer, TransportKind};
use report::Row;
use support::{brokers, connect_producer, duel, envelope, scaled, topic, Measured};

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
    let producer = connect_producer(&config);
    producer
        .send(&topic("warmup"), &support::fresh(&envelope()))
        .expect("warm-up send");
    Side { config, producer }
}

/// Untimed traffic on both transports first: a broker just started runs its JIT-cold code
/// for the first tens of thousands of requests, which would handicap whichever ran first.
fn warm_up(sides: &[Side; 2], msg: &KafkaMessage) {
    for s in sides {
        producer::one_topic(&s.producer, msg, 50_000);
        producer::sequential(&s.producer, msg, 2_000);
        let t = consumer::prefill(&s.producer, "warm", msg, 20_000);
        consumer::noop(&s.config, &t, 20_000, Duration::from_millis(100));
    }
}

/// The same pair on the `kafka` crate transport, once (ours then the bare crate).
fn on_crate(
    ours: impl FnOnce() -> Measured,
    bare: impl FnOnce() -> Measured,
) -> Option<(Measured, Measured)> {
    let o = ours();
    Some((o, bare()))
}

fn row(
    id: &'static str,
    name: &str,
    peer_name: &'static str,
    (ours, peer): (Measured, Measured),
) -> Row {
    Row {
        id,
        name: name.to_string(),
        kafka_crate: None,
        ours,
        peer_name,
        peer,
        note: String::new(),
    }
}

/// Whether scenario `id` runs: `BENCH_ONLY` (e.g. `d,e`) names the scenarios to run; all
/// run without it.
fn only(id: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |v| v.split(',').any(|w| w.trim() == id))
}

fn main() {
    java::prepare();
    let warm = std::env::var("BENCH_WARMUP").map_or(true, |v| v != "0");
    let sides = [side(TransportKind::KafkaCrate), side(TransportKind::Modern)];
    let msg = envelope();
    if warm {
        warm_up(&sides, &msg);
    }
    let (kc, m) = (&sides[0], &sides[1]);
    let mut rows = Vec::new();

    let mut produce_cpu = None;
    let mut consume_cpu = None;
    // (a)
    if only("a") {
        let n = scaled(5_000);
        let mut r = row(
            "a-send",
            &format!("(a) 1 thread send ×{n}"),
            "bare-kafka-crate",
            duel(
                "a",
                || producer::sequential(&m.producer, &msg, n),
                || producer::sequential_bare(&m.producer, &msg, n),
            ),
        );
        r.kafka_crate = on_crate(
            || producer::sequential(&kc.producer, &msg, n),
            || producer::sequential_bare(&kc.producer, &msg, n),
        );
        rows.push(r);
    }

    // (b)
    if only("b") {
        let per = scaled(1_000);
        let mut r = row(
            "b-16-threads",
            &format!("(b) 16 threads send ×{per} each"),
            "bare-kafka-crate",
            duel(
                "b",
                || producer::threads(&m.producer, &msg, 16, per),
                || producer::threads_bare(&m.producer, &msg, 16, per),
            ),
        );
        r.kafka_crate = on_crate(
            || producer::threads(&kc.producer, &msg, 16, per),
            || producer::threads_bare(&kc.producer, &msg, 16, per),
        );
        rows.push(r);
    }

    // (c)
    if only("c") {
        let n = scaled(10_000);
        let mut r = row(
            "c-send-batch",
            &format!("(c) send_batch {n}"),
            "bare-kafka-crate",
            duel(
                "c",
                || producer::batch(&m.producer, &msg, n),
                || producer::batch_bare(&m.producer, &msg, n),
            ),
        );
        r.kafka_crate = on_crate(
            || producer::batch(&kc.producer, &msg, n),
            || producer::batch_bare(&kc.producer, &msg, n),
        );
        rows.push(r);
    }

    // (d), with this process's CPU and peak RSS.
    if only("d") {
        let n = scaled(1_000_000);
        let (mut rss_before, mut peak_rss) = (0f64, 0f64);
        let pair = duel(
            "d",
            || {
                let (measured, (before, peak)) = producer::asynchronous(&m.producer, &msg, n);
                if peak > peak_rss {
                    (rss_before, peak_rss) = (before, peak);
                }
                measured
            },
            || {
                let t = support::warm_topic(&m.producer, "java-pp", &msg);
                java::producer_performance(&t, n)
            },
        );
        let mut r = row(
            "d-send-async",
            &format!("(d) send_async {n}+flush"),
            "java-ProducerPerformance",
            pair,
        );
        let small = scaled(100_000);
        r.kafka_crate = on_crate(
            || producer::asynchronous(&kc.producer, &msg, small).0,
            || {
                // Requests as large as ours: `batch_size` records, but no more bytes than
                // `batch_bytes` (the envelope and its id key).
                let p = &kc.config.producer;
                let per_request = p
                    .batch_size
                    .min(p.batch_bytes / (support::ENVELOPE_BYTES + 36))
                    .max(1);
                producer::asynchronous_bare(&kc.producer, &msg, small, per_request)
            },
        );
        r.note = format!("rss_peak={peak_rss:.0}MB rss_before={rss_before:.0}MB");
        produce_cpu = Some((r.ours.cpu, r.peer.cpu, n));
        rows.push(r);
    }

    // (k): (d) on the 3-node cluster, replicated (auto-created topics there have RF 3).
    if only("k") {
        let cluster = support::cluster_brokers();
        let config = Config {
            brokers: cluster.clone(),
            ..m.config.clone()
        };
        let producer = connect_producer(&config);
        let n = scaled(1_000_000);
        rows.push(row(
            "k-send-async-cluster",
            &format!("(k) send_async {n}+flush, 3-node cluster, RF 3"),
            "java-ProducerPerformance",
            duel(
                "k",
                || producer::asynchronous(&producer, &msg, n).0,
                || {
                    let t = support::warm_topic(&producer, "java-pp-cluster", &msg);
                    java::producer_performance_at(&cluster, &t, n)
                },
            ),
        ));
    }

    // (e) ours and Java's consumer read the same topic, each under a new group.
    if only("e") {
        let n = scaled(1_000_000);
        let small = scaled(100_000);
        let t = consumer::prefill(&m.producer, "consume", &msg, n);
        let pair = duel(
            "e",
            || consumer::noop(&m.config, &t, n, Duration::from_millis(100)),
            || java::consumer_performance(&t, n, &support::group()),
        );
        let mut r = row(
            "e-consume",
            &format!("(e) consume {n}, commit every 100 ms"),
            "java-ConsumerPerformance",
            pair,
        );
        let t_small = consumer::prefill(&m.producer, "consume-kc", &msg, small);
        r.kafka_crate = on_crate(
            || consumer::noop(&kc.config, &t_small, small, Duration::from_millis(100)),
            || consumer::noop_bare(&t_small, small),
        );
        consume_cpu = Some((r.ours.cpu, r.peer.cpu, n));
        rows.push(r);

        // The same with handlers called on the consumer thread (`handler_timeout: None`),
        // against Java's consumer reading the same topic again.
        let mut inline = m.config.clone();
        inline.consumer.handler_timeout = None;
        rows.push(row(
            "e-consume-inline-handler",
            "(e) as above, handler_timeout: None (handlers inline)",
            "java-ConsumerPerformance",
            duel(
                "e",
                || consumer::noop(&inline, &t, n, Duration::from_millis(100)),
                || java::consumer_performance(&t, n, &support::group()),
            ),
        ));
    }

    // (f)
    if only("f") {
        let n = scaled(10_000);
        let t = consumer::prefill(&m.producer, "commit-each", &msg, n);
        let mut r = row(
            "f-consume-commit-each",
            &format!("(f) consume {n}, commit each message"),
            "bare-kafka-crate",
            duel(
                "f",
                || consumer::noop(&m.config, &t, n, Duration::ZERO),
                || consumer::noop_bare(&t, n),
            ),
        );
        r.kafka_crate = on_crate(
            || consumer::noop(&kc.config, &t, n, Duration::ZERO),
            || consumer::noop_bare(&t, n),
        );
        rows.push(r);
    }

    // (g)
    if only("g") {
        let n = scaled(10_000);
        let t = consumer::prefill(&m.producer, "scrape-in", &msg, n);
        let mut r = row(
            "g-scraper",
            &format!("(g) scraper: consume, handle, produce {n}"),
            "bare-kafka-crate",
            duel(
                "g",
                || consumer::scraper(&m.config, &m.producer, &msg, &t, n),
                || consumer::scraper_bare(&m.producer, &msg, &t, n),
            ),
        );
        r.kafka_crate = on_crate(
            || consumer::scraper(&kc.config, &kc.producer, &msg, &t, n),
            || consumer::scraper_bare(&kc.producer, &msg, &t, n),
        );
        rows.push(r);
    }

    // (h)
    if only("h") {
        let n = scaled(400_000);
        rows.push(row(
            "h-8-topics",
            &format!("(h) 8 topics from 8 threads, send_async {n} in all"),
            "ours-1-topic",
            duel(
                "h",
                || producer::many_topics(&m.producer, &msg, 8, n),
                || producer::one_topic(&m.producer, &msg, n),
            ),
        ));
    }

    // (i), with the default linger and with `batch_timeout` 1 ms (Java's tool sends one
    // record at a time and waits, so it never lingers).
    if only("i") {
        let e2e = scaled(2_000);
        let mut short = m.config.clone();
        short.producer.batch_timeout = Duration::from_millis(1);
        let short_producer = connect_producer(&short);
        let lingers = [
            ("", &m.config, &m.producer),
            ("-linger-1ms", &short, &short_producer),
        ];
        for (suffix, config, producer) in lingers {
            for (rate_id, per_sec, secs) in [("1k", 1_000, 5.0), ("10k", 10_000, 3.0)] {
                let secs = secs * scaled(1_000) as f64 / 1_000.0;
                let id: &'static str =
                    Box::leak(format!("i-e2e-{rate_id}{suffix}").into_boxed_str());
                let mut r = row(
                    id,
                    &format!(
                        "(i) send → handler at {per_sec}/s, batch_timeout {}",
                        report::ms(config.producer.batch_timeout)
                    ),
                    "java-EndToEndLatency",
                    duel(
                        "i",
                        || latency::steady(config, producer, per_sec, secs),
                        || java::end_to_end_latency(&topic("java-e2e"), e2e),
                    ),
                );
                r.note = format!(
                    "batch_timeout={}",
                    report::ms(config.producer.batch_timeout)
                );
                rows.push(r);
            }
        }
    }

    // (j): the healthy messages' rate while 1% keep failing, against the failure-free rate
    // of the same topic, passes alternated; the best of each side counts.
    if only("j") {
        let n = scaled(100_000);
        let t = consumer::prefill(&m.producer, "failing", &msg, n);
        let mut free = Measured::default();
        let mut best: Option<consumer::Failing> = None;
        for pass in 0..support::passes() {
            let mut run_free = || {
                let f = consumer::noop(&m.config, &t, n, Duration::from_millis(100));
                eprintln!("bench: j pass {pass}: failure-free {:.0} msg/s", f.rate);
                if f.rate > free.rate {
                    free = f;
                }
            };
            if pass % 2 == 0 {
                run_free();
            }
            let f = consumer::failing(&m.config, &t, n, Duration::from_secs(60));
            eprintln!(
                "bench: j pass {pass}: healthy {:.0} msg/s, {}",
                f.healthy.rate, f.note
            );
            if best
                .as_ref()
                .is_none_or(|b| f.healthy.rate > b.healthy.rate)
            {
                best = Some(f);
            }
            if pass % 2 == 1 {
                run_free();
            }
        }
        if let Some(failing) = best {
            let mut r = row(
                "j-consume-1pct-failing",
                &format!("(j) consume {n}, 1% failing every attempt: healthy messages' rate"),
                "ours-failure-free",
                (failing.healthy, free),
            );
            r.note = failing.note;
            rows.push(r);
        }
    }

    // CPU per 1M messages produced and consumed.
    if let (Some(p), Some(c)) = (produce_cpu, consume_cpu) {
        let per_million = |(ours, peer, n): (Option<f64>, Option<f64>, usize)| {
            (
                ours.unwrap_or(f64::NAN) * 1e6 / n as f64,
                peer.unwrap_or(f64::NAN) * 1e6 / n as f64,
            )
        };
        let (op, jp) = per_million(p);
        let (oc, jc) = per_million(c);
        let (ours_cpu, java_cpu) = (op + oc, jp + jc);
        let mut r = row(
            "cpu-per-1M",
            "CPU-seconds per 1M produced (d) + consumed (e); msg per CPU-second",
            "java-tools",
            (
                Measured::rate(1e6 / ours_cpu),
                Measured::rate(1e6 / java_cpu),
            ),
        );
        r.note = format!("ours_cpu_s={ours_cpu:.2} (produce {op:.2} + consume {oc:.2}) peer_cpu_s={java_cpu:.2} (produce {jp:.2} + consume {jc:.2})");
        rows.push(r);
    }

    report::print(&rows, &brokers());
}
