//! Property tests: the retry policy's timing, and the consumer's per-message state machine
//! against a model, on the in-memory transport.

mod consumer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::*;
use kafka_sync::domain::{DeadLetterKind, HandlerError, KafkaMessage};
use kafka_sync::Kafka;
use kafka_sync::RetryPolicy;
use proptest::prelude::*;

const T: &str = "input";
const RETRY: &str = "retry";
const DLQ: &str = "dead-letter";

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (
        1u64..200,
        1.0f64..3.0,
        0u64..2000,
        1u32..15,
        0u64..5000,
        0.0f64..=1.0,
    )
        .prop_map(
            |(initial, multiplier, extra, max_attempts, max_elapsed, f)| RetryPolicy {
                initial_interval: Duration::from_millis(initial),
                multiplier,
                max_interval: Duration::from_millis(initial + extra),
                max_elapsed: Duration::from_millis(max_elapsed),
                max_attempts,
                randomization_factor: f,
            },
        )
}

/// The delays a schedule gives when every attempt fails at once (a simulated clock).
fn delays(p: &RetryPolicy) -> Vec<Duration> {
    let mut schedule = p.schedule();
    let mut elapsed = Duration::ZERO;
    let mut out = Vec::new();
    while let Some(d) = schedule.next_delay(elapsed) {
        elapsed += d;
        out.push(d);
    }
    out
}

proptest! {
    #[test]
    fn retry_delays_stay_within_the_jitter_bounds_and_the_limits(p in policy()) {
        let ds = delays(&p);
        let tolerance = 1e-6;
        let mut total = Duration::ZERO;
        for (i, d) in ds.iter().enumerate() {
            let base = (p.initial_interval.as_secs_f64() * p.multiplier.powi(i as i32))
                .min(p.max_interval.as_secs_f64());
            let f = p.randomization_factor;
            let d = d.as_secs_f64();
            prop_assert!(d >= base * (1.0 - f) - tolerance, "delay {} = {} below {}", i + 1, d, base);
            prop_assert!(d <= base * (1.0 + f) + tolerance, "delay {} = {} above {}", i + 1, d, base);
            total += Duration::from_secs_f64(d);
        }
        prop_assert!((ds.len() as u32) < p.max_attempts, "{} attempts", ds.len() + 1);
        prop_assert!(total <= p.max_elapsed + p.max_interval.mul_f64(1.0 + p.randomization_factor));
    }

    #[test]
    fn without_jitter_retry_delays_never_decrease_and_stop_at_the_cap(p in policy()) {
        let p = RetryPolicy { randomization_factor: 0.0, ..p };
        let ds = delays(&p);
        for w in ds.windows(2) {
            prop_assert!(w[0] <= w[1] + Duration::from_micros(1), "{:?}", ds);
        }
        prop_assert!(ds.iter().all(|d| *d <= p.max_interval + Duration::from_micros(1)));
    }
}

/// What a handler does on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ok,
    Retriable,
    Permanent,
    Panic,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Ok),
        4 => Just(Step::Retriable),
        1 => Just(Step::Permanent),
        1 => Just(Step::Panic),
    ]
}

/// How the model says a message ends: handled, or dead-lettered with a kind; with the
/// number of attempts made.
fn model(
    steps: &[Step],
    in_place: u32,
    total: u32,
    retry_topic: bool,
) -> (Option<DeadLetterKind>, u32) {
    let mut attempts = 0;
    loop {
        for i in 0..in_place {
            attempts += 1;
            match steps
                .get(attempts as usize - 1)
                .copied()
                .unwrap_or(Step::Ok)
            {
                Step::Ok => return (None, attempts),
                Step::Permanent => return (Some(DeadLetterKind::Permanent), attempts),
                s => {
                    if attempts >= total {
                        return (Some(DeadLetterKind::Exhausted), attempts);
                    }
                    if i + 1 == in_place && !retry_topic {
                        let kind = if s == Step::Panic {
                            DeadLetterKind::Panic
                        } else {
                            DeadLetterKind::Handler
                        };
                        return (Some(kind), attempts);
                    }
                }
            }
        }
    }
}

/// Handler panics are expected here: keep them out of the test output.
fn quiet_handler_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            if !name.starts_with("kafka-handler-") {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_message_ends_exactly_once_as_the_model_says_and_commits_never_pass_it(
        scripts in proptest::collection::vec(proptest::collection::vec(step(), 0..6), 1..25),
        in_place in 1u32..4,
        total in 1u32..7,
        retry_topic in any::<bool>(),
    ) {
        quiet_handler_panics();
        let (broker, transport) = memory();
        let mut config = fast_config("g");
        config.consumer.retry = quick_retries(in_place);
        config.consumer.retry.initial_interval = Duration::from_millis(1);
        config.consumer.max_total_attempts = total;
        config.consumer.retry_topic_enabled = retry_topic;
        config.consumer.retry_topic_delay = Duration::from_millis(5);
        let producer = Kafka::with_transport(fast_config("p"), transport.clone()).map(|k| k.producer()).unwrap();
        let mut placed = HashMap::new();
        let mut by_id = HashMap::new();
        for (n, script) in scripts.iter().enumerate() {
            let m = message(n);
            let d = producer.send(T, &m).unwrap();
            placed.insert(m.id, (d.partition, d.offset));
            by_id.insert(m.id, script.clone());
        }
        let attempts = Arc::new(Mutex::new(HashMap::<uuid::Uuid, u32>::new()));
        let handled = Arc::new(Mutex::new(HashMap::<uuid::Uuid, u32>::new()));
        let passed_unended = Arc::new(AtomicBool::new(false));
        let consumer = Kafka::with_transport(config, transport.clone()).and_then(|k| k.consumer()).unwrap();
        let scripted = by_id.clone();
        let (a, h, bad, b2) = (attempts.clone(), handled.clone(), passed_unended.clone(), broker.clone());
        consumer.register_handler("test", move |m: &KafkaMessage| {
            if m.attempt == 0 {
                // Read from the input topic: its offset must not be committed yet.
                let (p, o) = placed[&m.id];
                if b2.committed("g", T, p).unwrap_or(0) > o {
                    bad.store(true, Ordering::SeqCst);
                }
            }
            let n = {
                let mut a = a.lock().unwrap();
                let n = a.entry(m.id).or_default();
                *n += 1;
                *n
            };
            match scripted[&m.id].get(n as usize - 1).copied().unwrap_or(Step::Ok) {
                Step::Ok => {
                    *h.lock().unwrap().entry(m.id).or_default() += 1;
                    Ok(())
                }
                Step::Retriable => Err(HandlerError::retriable("scripted")),
                Step::Permanent => Err(HandlerError::permanent("scripted")),
                Step::Panic => panic!("scripted panic"),
            }
        });
        consumer.consume([T, RETRY]).unwrap();
        let n = scripts.len();
        wait_for("every message ended", Duration::from_secs(20), || {
            handled.lock().unwrap().len() + broker.records(DLQ).len() >= n
                && all_committed(&broker, "g", T)
                && all_committed(&broker, &retry_group("g", &[T]), RETRY)
        });
        consumer.close(Duration::from_secs(5)).unwrap();
        prop_assert!(!passed_unended.load(Ordering::SeqCst), "a commit passed an unended message");
        let handled = handled.lock().unwrap().clone();
        let attempts = attempts.lock().unwrap().clone();
        let letters: HashMap<_, _> = dead_letters(&broker, DLQ)
            .into_iter()
            .map(|dl| (dl.message_id.unwrap(), dl))
            .collect();
        prop_assert_eq!(letters.len() + handled.len(), n, "ended twice or never");
        for (id, script) in &by_id {
            let (kind, tries) = model(script, in_place, total, retry_topic);
            prop_assert_eq!(attempts[id], tries, "attempts of {:?}", script);
            match kind {
                None => prop_assert_eq!(handled.get(id), Some(&1)),
                Some(k) => {
                    prop_assert_eq!(letters[id].kind, k, "{:?}", script);
                    prop_assert_eq!(letters[id].attempts, tries);
                    prop_assert!(!handled.contains_key(id));
                }
            }
        }
    }
}
