//! (i) end-to-end latency, `send_async` to the handler's call, at a steady offered rate.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::{Config, Producer};

use crate::support::{connect_consumer, group, percentile, topic, Measured};

/// The clock both ends read: payloads carry nanoseconds since it.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// An envelope carrying its send time, padded near the bench's 234 bytes.
fn stamped(seq: u64) -> KafkaMessage {
    let t = epoch().elapsed().as_nanos() as u64;
    KafkaMessage::from_json(
        MessageType::new("bench"),
        serde_json::json!({ "t": t, "seq": seq, "pad": "x".repeat(40) }),
    )
    .with_correlation_id("bench")
}

/// Sends `per_sec` messages a second for `secs` seconds to a new topic a consumer (default
/// settings, new group) reads; the achieved rate and p50 / p99 of send → handler call.
pub fn steady(base: &Config, producer: &Producer, per_sec: u64, secs: f64) -> Measured {
    let t = topic("e2e");
    producer.send(&t, &stamped(0)).expect("creating the topic");
    let mut config = base.clone();
    config.group_id = group();
    if let Ok(v) = std::env::var("BENCH_E2E_MIN_BYTES") {
        config.consumer.min_bytes = v.parse().expect("BENCH_E2E_MIN_BYTES");
    }
    let consumer = connect_consumer(&config);
    let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let s = seen.clone();
    consumer.register_handler("bench", move |m: &KafkaMessage| {
        let now = epoch().elapsed();
        let sent = m.payload["t"].as_u64().unwrap_or(0);
        s.lock()
            .unwrap()
            .push(now.saturating_sub(Duration::from_nanos(sent)));
        Ok(())
    });
    let _handle = consumer.consume([t.clone()]).expect("consume");
    // Wait until the first message went through: the group is joined.
    let ready = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < ready,
            "the e2e consumer never got its first message"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    seen.lock().unwrap().clear();
    let n = (per_sec as f64 * secs) as u64;
    let started = Instant::now();
    // Every millisecond, the messages due by then: a steady stream without a core spent
    // spinning on the schedule (2 cores are shared with the broker and the consumer).
    let mut sent = 0u64;
    while sent < n {
        let due = ((started.elapsed().as_secs_f64() * per_sec as f64) as u64 + 1).min(n);
        while sent < due {
            sent += 1;
            drop(producer.send_async(&t, stamped(sent)).expect("queue"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let offered = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.lock().unwrap().len() as u64) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    consumer.close(Duration::from_secs(30)).expect("close");
    let mut all = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        all.len() as u64,
        n,
        "e2e: not every message reached the handler in 60 s"
    );
    all.sort();
    Measured {
        rate: n as f64 / offered.as_secs_f64(),
        latency: Some((percentile(&all, 0.5), percentile(&all, 0.99))),
        cpu: None,
    }
}
