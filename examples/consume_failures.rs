//! Issue 11 target (j), measured on its own: consuming with 1% of messages failing every
//! attempt (default retry settings) against the failure-free rate, on the same topic
//! contents. `KAFKA_BROKERS=127.0.0.1:9092 cargo run --release --example consume_failures`
//! (without `KAFKA_BROKERS`: the in-memory transport). `N` sets the message count.
//!
//! The rate with failures counts the healthy messages handled per second until the last of
//! them was handled; the failing ones are parked on the retry topic meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_sync::domain::{HandlerError, KafkaMessage, MessageType};
use kafka_sync::{Config, Kafka};

fn run(kafka: &Kafka, topic: &str, n: usize, fail: bool) -> f64 {
    let group = format!("j-{}", uuid::Uuid::new_v4().simple());
    let consumer = kafka.consumer_in_group(&group).expect("consumer");
    let healthy = Arc::new(AtomicUsize::new(0));
    let h = healthy.clone();
    consumer.register_handler("bench", move |m: &KafkaMessage| {
        if fail && m.payload["n"].as_u64().unwrap_or(0) % 100 == 7 {
            return Err(HandlerError::retriable("always fails"));
        }
        h.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let want = if fail { n - n / 100 } else { n };
    let started = Instant::now();
    let _handle = consumer.consume([topic.to_string()]).expect("consume");
    while healthy.load(Ordering::Relaxed) < want {
        assert!(started.elapsed() < Duration::from_secs(600), "too slow");
        std::thread::sleep(Duration::from_micros(500));
    }
    let took = started.elapsed();
    consumer.close(Duration::from_secs(30)).expect("shutdown");
    want as f64 / took.as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let kafka = match std::env::var("KAFKA_BROKERS") {
        Ok(_) => Kafka::connect(Config::from_env().expect("config")),
        Err(_) => Kafka::in_memory(),
    }
    .expect("kafka");
    let producer = kafka.producer();
    let topic = format!("j-input-{}", uuid::Uuid::new_v4().simple());
    let pad = "x".repeat(150);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let m = KafkaMessage::from_json(
                MessageType::new("bench"),
                serde_json::json!({ "n": i, "pad": pad }),
            );
            producer.send_async(&topic, m).expect("queue")
        })
        .collect();
    producer.flush().expect("flush");
    assert!(handles.into_iter().all(|h| h.wait().is_ok()));
    // Alternate, so drift of the machine touches both.
    let mut clean = Vec::new();
    let mut failing = Vec::new();
    for _ in 0..2 {
        clean.push(run(&kafka, &topic, n, false));
        failing.push(run(&kafka, &topic, n, true));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "bench: (j) 1% failing ours={:.0} peer=failure-free:{:.0} ratio={:.2} (transport {}, runs {clean:.0?} / {failing:.0?})",
        best(&failing),
        best(&clean),
        best(&failing) / best(&clean),
        kafka.transport().name()
    );
    kafka.close(Duration::from_secs(30)).expect("close");
}
