//! The outbox against a scripted broker: which writes are tried, which partitions stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::consumer::divert::Write;
use crate::consumer::metrics::Counter;
use crate::consumer::MemoryIdempotencyStore;
use crate::domain::Delivery;
use crate::transport::{SubscribeOptions, Subscription, Transport};

/// What the scripted broker answers for a record: `Ok(stored)` or an error (`stored`: kept
/// anyway, as a broker that stored a record whose answer was lost).
type Script = dyn Fn(&str, &OutgoingRecord) -> (bool, Result<()>) + Send + Sync;

/// A broker that answers each record by `script` and keeps what it stored.
struct Scripted {
    script: Box<Script>,
    stored: Mutex<Vec<(String, Vec<u8>)>>,
}

#[derive(Clone)]
struct Broker(Arc<Scripted>);

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted broker")
    }
}

impl Broker {
    fn new(
        script: impl Fn(&str, &OutgoingRecord) -> (bool, Result<()>) + Send + Sync + 'static,
    ) -> Self {
        Broker(Arc::new(Scripted {
            script: Box::new(script),
            stored: Mutex::new(Vec::new()),
        }))
    }

    fn stored(&self, topic: &str) -> Vec<Vec<u8>> {
        let stored = self.0.stored.lock().unwrap();
        stored
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl Transport for Broker {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>> {
        Ok(Box::new(self.clone()))
    }
    fn subscribe(&self, _: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        Err(Error::new(ErrorKind::Broker, "not for these tests"))
    }
    fn partition_count(&self, _: &str) -> Result<usize> {
        Ok(1)
    }
    fn health_check(&self, _: Duration) -> Result<()> {
        Ok(())
    }
}

impl ProducerSession for Broker {
    fn partition_count(&mut self, _: &str) -> Result<usize> {
        Ok(1)
    }
    fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        _: &ProduceOptions,
    ) -> Vec<Result<Delivery>> {
        records
            .iter()
            .map(|r| {
                let (stored, answer) = (self.0.script)(topic, r);
                if stored {
                    let mut all = self.0.stored.lock().unwrap();
                    all.push((topic.to_string(), r.value.clone()));
                }
                answer.map(|()| Delivery {
                    partition: 0,
                    offset: 0,
                })
            })
            .collect()
    }
}

fn shared(broker: &Broker, divert_timeout: Duration) -> Shared {
    let mut config = crate::Config::in_memory();
    config.consumer.divert_timeout = divert_timeout;
    let store = Arc::new(MemoryIdempotencyStore::new(10, Duration::from_secs(60)));
    Shared::new(config, Arc::new(broker.clone()), store).unwrap()
}

fn write(topic: &str, value: &str) -> Write {
    Write {
        topic: topic.into(),
        key: None,
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
        counts_as: Counter::DeadLettered,
        what: "test record",
    }
}

fn divert(partition: i32, offset: i64, writes: Vec<Write>) -> Divert {
    Divert {
        partition,
        offset,
        message: format!("m{offset}"),
        writes,
    }
}

/// Flushes until `ended` holds `n` records or `tries` flushes passed (waiting out backoffs).
fn flush_until(
    outbox: &mut Outbox,
    shared: &Shared,
    stats: &TopicStats,
    n: usize,
    tries: usize,
) -> Vec<(i32, i64)> {
    let mut ended = Vec::new();
    for _ in 0..tries {
        ended.extend(outbox.flush(shared, stats));
        if ended.len() >= n {
            break;
        }
        if let Some(at) = outbox.next_try() {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
    }
    ended
}

#[test]
fn a_partition_stays_stopped_while_one_of_its_writes_has_none_left_though_another_lands() {
    let broker = Broker::new(|_, r| {
        if r.value == b"never" {
            (
                false,
                Err(Error::new(ErrorKind::Broker, "refused for good")),
            )
        } else {
            (true, Ok(()))
        }
    });
    let shared = shared(&broker, Duration::from_millis(10));
    let stats = TopicStats::new("input");
    let mut outbox = Outbox::default();
    outbox.push(divert(0, 1, vec![write("dead-letter", "never")]));
    assert!(outbox.flush(&shared, &stats).is_empty());
    assert_eq!(outbox.stopped(), [0].into(), "nothing left to try: stopped");
    // A later divert of the same partition goes through: the first is still not written.
    outbox.push(divert(0, 2, vec![write("dead-letter", "fine")]));
    assert_eq!(outbox.flush(&shared, &stats), vec![(0, 2)]);
    assert_eq!(outbox.stopped(), [0].into(), "still stopped for offset 1");
    assert!(outbox.stopped_reasons()[0].1.contains("offset 1"));
    // Revoked: forgotten, the partition is no longer stopped here.
    outbox.forget(|p| p == 0);
    assert!(outbox.stopped().is_empty());
}

#[test]
fn after_a_write_whose_outcome_is_unknown_no_fallback_is_written() {
    let tries = Arc::new(Mutex::new(0usize));
    let t = tries.clone();
    // The first try of the retry entry is stored but its answer is lost (a timeout); the
    // next tries time out too, past divert_timeout; then the broker answers again.
    let broker = Broker::new(move |topic, _| {
        if topic != "retry" {
            return (true, Ok(()));
        }
        let mut n = t.lock().unwrap();
        *n += 1;
        match *n {
            1 => (true, Err(Error::new(ErrorKind::Timeout, "no answer"))),
            2..=4 => (false, Err(Error::new(ErrorKind::Timeout, "no answer"))),
            _ => (true, Ok(())),
        }
    });
    let shared = shared(&broker, Duration::from_millis(1));
    let stats = TopicStats::new("input");
    let mut outbox = Outbox::default();
    let mut retry = write("retry", "entry");
    retry.counts_as = Counter::SentToRetry;
    outbox.push(divert(0, 7, vec![retry, write("dead-letter", "letter")]));
    let ended = flush_until(&mut outbox, &shared, &stats, 1, 20);
    assert_eq!(ended, vec![(0, 7)]);
    assert!(
        broker.stored("dead-letter").is_empty(),
        "the record may be on the retry topic: it is not dead-lettered too"
    );
    // Written again after the unknown outcome: possibly twice on the retry topic (the
    // reader's idempotency store skips the second copy by its message id).
    assert_eq!(broker.stored("retry").len(), 2);
    assert_eq!(stats.get(Counter::SentToRetry), 1);
    assert!(outbox.stopped().is_empty());
}

#[test]
fn a_write_refused_for_good_falls_back_to_the_next_one() {
    let broker = Broker::new(|topic, _| {
        if topic == "retry" {
            (false, Err(Error::new(ErrorKind::Broker, "no ACL")))
        } else {
            (true, Ok(()))
        }
    });
    let shared = shared(&broker, Duration::from_secs(30));
    let stats = TopicStats::new("input");
    let mut outbox = Outbox::default();
    outbox.push(divert(
        0,
        3,
        vec![write("retry", "entry"), write("dead-letter", "letter")],
    ));
    assert_eq!(
        flush_until(&mut outbox, &shared, &stats, 1, 5),
        vec![(0, 3)]
    );
    assert_eq!(broker.stored("dead-letter"), vec![b"letter".to_vec()]);
}
