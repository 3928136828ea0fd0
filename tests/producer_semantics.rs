//! The producer's delivery rules, the library's own behaviour (the broker's side is in
//! `producer_kafka.rs` and `make chaos`), on a scripted transport that fails, stalls,
//! refuses big batches or panics on command:
//! retries bounded by `delivery_timeout`, never sending a message whose time ran out,
//! batches capped by bytes, too-large batches split, a writer panic failing every queued
//! message at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_sync::domain::{Delivery, KafkaMessage, MessageType};
use kafka_sync::transport::{
    OutgoingRecord, ProduceOptions, ProducerSession, SubscribeOptions, Subscription, Transport,
};
use kafka_sync::{Config, Error, ErrorKind, Kafka, Producer, Result};

/// What the scripted broker does with the next produce calls.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Fail the whole call with this kind.
    Fail(ErrorKind),
    /// Take this long (cut to the call's timeout, then fail with `Timeout`), then write.
    Stall(Duration),
    /// Panic (a bug in a transport, say).
    Panic,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Step>,
    /// Fail every call with `Connection` until this moment.
    down_until: Option<Instant>,
    /// Refuse any call with more value bytes than this with `MessageTooLarge`.
    max_call_bytes: Option<usize>,
    /// Every record written, in order.
    written: Vec<Vec<u8>>,
    /// Value bytes of every call made (written or not).
    calls: Vec<usize>,
}

/// A one-partition broker in memory that does what its script says.
#[derive(Debug, Clone, Default)]
struct Scripted {
    state: Arc<Mutex<State>>,
}

impl Scripted {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn then(&self, step: Step) -> &Self {
        self.state().script.push_back(step);
        self
    }

    /// Whether a message with this envelope was ever written.
    fn wrote(&self, message: &KafkaMessage) -> bool {
        let bytes = message.to_bytes().unwrap();
        self.state().written.contains(&bytes)
    }
}

impl Transport for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>> {
        Ok(Box::new(self.clone()))
    }
    fn subscribe(&self, _: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        Err(Error::new(ErrorKind::Broker, "not for consuming"))
    }
    fn partition_count(&self, _: &str) -> Result<usize> {
        Ok(1)
    }
    fn health_check(&self, _: Duration) -> Result<()> {
        Ok(())
    }
}

impl ProducerSession for Scripted {
    fn partition_count(&mut self, _: &str) -> Result<usize> {
        Ok(1)
    }

    fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
    ) -> Vec<Result<Delivery>> {
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        let every = |e: Error| records.iter().map(|_| Err(e.detached())).collect();
        let (step, down, max) = {
            let mut s = self.state();
            s.calls.push(bytes);
            (s.script.pop_front(), s.down_until, s.max_call_bytes)
        };
        if down.is_some_and(|t| Instant::now() < t) {
            return every(Error::new(ErrorKind::Connection, "scripted: broker down"));
        }
        match step {
            Some(Step::Fail(kind)) => return every(Error::new(kind, "scripted failure")),
            Some(Step::Panic) => panic!("scripted panic in produce"),
            Some(Step::Stall(d)) => {
                std::thread::sleep(d.min(options.timeout));
                if d > options.timeout {
                    return every(Error::timeout("scripted produce", options.timeout));
                }
            }
            None => {}
        }
        if max.is_some_and(|m| bytes > m) {
            return every(
                Error::new(ErrorKind::MessageTooLarge, "scripted: batch too large")
                    .with_topic(topic),
            );
        }
        let mut s = self.state();
        records
            .iter()
            .map(|r| {
                s.written.push(r.value.clone());
                Ok(Delivery {
                    partition: 0,
                    offset: s.written.len() as i64 - 1,
                })
            })
            .collect()
    }
}

/// The one place tests build a producer: the front door over the scripted broker.
fn producer(config: Config, transport: &Scripted) -> Arc<Producer> {
    Kafka::with_transport(config, Arc::new(transport.clone()))
        .unwrap()
        .producer()
}

fn config(change: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config {
        request_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    c.consumer.max_wait = Duration::from_millis(100);
    c.producer.delivery_timeout = Duration::from_millis(1_500);
    change(&mut c);
    c
}

fn message(n: usize, size: usize) -> KafkaMessage {
    KafkaMessage::from_json(
        MessageType::new("test"),
        serde_json::json!({ "n": n, "pad": "x".repeat(size) }),
    )
}

#[test]
fn the_defaults_retry_until_the_delivery_timeout_like_the_java_client() {
    let c = Config::default();
    assert_eq!(c.producer.delivery_timeout, Duration::from_secs(120));
    assert_eq!(c.producer.retry.max_attempts, u32::MAX);
    assert!(c.producer.retry.max_elapsed >= c.producer.delivery_timeout);
    assert!(c.producer.delivery_timeout >= c.request_timeout + c.producer.batch_timeout);
    assert!(c.producer.idempotence);
    assert_eq!(c.producer.max_message_bytes, 1_000_000);
    assert_eq!(c.producer.batch_bytes, 1_000_000);
    assert_eq!(c.metadata_max_age, Duration::from_secs(300));
    assert_eq!(c.max_response_bytes, 100 * 1024 * 1024);
}

#[test]
fn attempts_longer_than_any_retry_budget_are_retried_until_they_succeed() {
    // Each of the first two attempts takes the whole request timeout (1 s) and times out:
    // more than the 1.5 s delivery timeout would allow a budget that starts at the send.
    let broker = Scripted::default();
    broker
        .then(Step::Stall(Duration::from_secs(5)))
        .then(Step::Fail(ErrorKind::BrokerRetriable));
    let p = producer(
        config(|c| c.producer.delivery_timeout = Duration::from_secs(5)),
        &broker,
    );
    let m = message(1, 10);
    let started = Instant::now();
    p.send("t", &m).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(broker.wrote(&m));
    assert_eq!(broker.state().calls.len(), 3);
    assert_eq!(p.metrics()[0].retries, 2);
}

#[test]
fn a_broker_down_for_longer_than_the_delivery_timeout_fails_the_send_with_timeout_in_its_bound() {
    let broker = Scripted::default();
    broker.state().down_until = Some(Instant::now() + Duration::from_secs(3));
    let p = producer(config(|_| {}), &broker);
    let m = message(1, 10);
    let started = Instant::now();
    let e = p.send("t", &m).unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.message().contains("broker down"),
        "names the last error: {e}"
    );
    assert!(
        took >= Duration::from_millis(1_400) && took < Duration::from_millis(2_000),
        "{took:?} for a 1.5 s delivery timeout"
    );
    // The message is never sent once its time ran out, even when the broker is back.
    std::thread::sleep(Duration::from_millis(1_700));
    let later = message(2, 10);
    p.send("t", &later).unwrap();
    assert!(broker.wrote(&later));
    assert!(!broker.wrote(&m), "a timed-out message was sent afterwards");
}

#[test]
fn a_message_whose_time_runs_out_in_the_queue_is_failed_and_never_sent() {
    // Two messages sent together ship one at a time (batch_size 1). The broker stalls the
    // first one's attempts until its delivery timeout, then is healthy again: the second,
    // queued behind it with the same deadline, must fail with a timeout, not be sent late.
    let broker = Scripted::default();
    broker
        .then(Step::Stall(Duration::from_secs(10)))
        .then(Step::Stall(Duration::from_secs(10)));
    let p = producer(config(|c| c.producer.batch_size = 1), &broker);
    let (a, b) = (message(1, 10), message(2, 10));
    let first = p.send_async("t", a).unwrap();
    let second = p.send_async("t", b.clone()).unwrap();
    let started = Instant::now();
    assert_eq!(first.wait().unwrap_err().kind(), ErrorKind::Timeout);
    let e = second.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{}", e.error);
    assert!(
        e.error.message().contains("queue"),
        "says where it expired: {}",
        e.error
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let later = message(3, 10);
    p.send("t", &later).unwrap();
    assert!(broker.wrote(&later));
    assert!(!broker.wrote(&b), "an expired message was sent");
}

#[test]
fn an_attempt_in_flight_is_cut_to_the_time_left() {
    // Every attempt stalls: the first is cut by request_timeout (1 s), the second by the
    // 0.4 s left of the 1.5 s delivery timeout, not by another full request timeout.
    let broker = Scripted::default();
    for _ in 0..5 {
        broker.then(Step::Stall(Duration::from_secs(30)));
    }
    let p = producer(config(|_| {}), &broker);
    let started = Instant::now();
    let e = p.send("t", &message(1, 10)).unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(1_400) && took < Duration::from_millis(1_900),
        "{took:?}"
    );
    assert_eq!(broker.state().calls.len(), 2);
}

#[test]
fn batches_are_capped_by_bytes_as_well_as_by_count() {
    let broker = Scripted::default();
    let p = producer(
        config(|c| {
            c.producer.batch_bytes = 10_000;
            c.producer.batch_timeout = Duration::from_millis(200);
        }),
        &broker,
    );
    let handles: Vec<_> = (0..60)
        .map(|n| p.send_async("t", message(n, 1_000)).unwrap())
        .collect();
    for h in handles {
        h.wait().unwrap();
    }
    let calls = broker.state().calls.clone();
    assert!(calls.len() >= 6, "{calls:?}");
    assert!(calls.iter().all(|&b| b <= 10_000), "{calls:?}");
}

#[test]
fn a_batch_refused_as_too_large_is_split_and_only_a_message_too_large_alone_fails() {
    let broker = Scripted::default();
    broker.state().max_call_bytes = Some(20_000);
    let p = producer(config(|_| {}), &broker);
    let mut batch: Vec<_> = (0..100).map(|n| message(n, 1_000)).collect();
    batch.insert(50, message(999, 30_000));
    let results = p.send_batch("t", batch.clone());
    for (i, r) in results.iter().enumerate() {
        if i == 50 {
            let e = &r.as_ref().unwrap_err().error;
            assert_eq!(e.kind(), ErrorKind::MessageTooLarge, "{e}");
            assert!(e.message().contains("bytes"), "names the size: {e}");
        } else {
            r.as_ref().unwrap();
        }
    }
    for (i, m) in batch.iter().enumerate() {
        assert_eq!(broker.wrote(m), i != 50);
    }
    // Order within the partition is kept through the splits.
    let written = broker.state().written.clone();
    let ns: Vec<u64> = written
        .iter()
        .map(|v| {
            KafkaMessage::from_bytes(v).unwrap().payload["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(ns.windows(2).all(|w| w[0] < w[1]), "{ns:?}");
}

#[test]
fn a_writer_panic_fails_every_queued_message_at_once_with_worker_stopped() {
    let broker = Scripted::default();
    broker
        .then(Step::Stall(Duration::from_millis(300)))
        .then(Step::Panic);
    let p = producer(
        config(|c| {
            c.producer.delivery_timeout = Duration::from_secs(60);
            c.producer.batch_size = 5;
        }),
        &broker,
    );
    let handles: Vec<_> = (0..50)
        .map(|n| p.send_async("t", message(n, 10)).unwrap())
        .collect();
    let started = Instant::now();
    let mut stopped = 0;
    for h in handles {
        match h.wait() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::WorkerStopped, "{}", e.error);
                stopped += 1;
            }
        }
    }
    assert!(stopped >= 45, "{stopped} of 50 failed with WorkerStopped");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}: queued messages waited for the delivery timeout",
        started.elapsed()
    );
    // A new writer takes over for the next send.
    let m = message(1_000, 10);
    p.send("t", &m).unwrap();
    assert!(broker.wrote(&m));
}
