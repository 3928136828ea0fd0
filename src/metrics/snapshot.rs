//! [`MetricsRecorder`]: one [`MetricsSnapshot`] over a producer and consumers, with rates
//! over the last interval and lag per partition counted from the log start offset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::consumer::ConsumerHandle;
use crate::error::Result;
use crate::kafka::Health;
use crate::metrics::{ConsumerTopicMetrics, HealthReport, ProducerTopicMetrics};
use crate::producer::Producer;

/// Rates are computed against a sample at least this old (the previous one is kept until
/// then), so two snapshots taken a moment apart still show a meaningful rate.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Gives a topic's log start offset per partition (the first offset still stored): the lag
/// of a partition the group never committed is counted from there, not from 0.
/// [`ModernTransport::topic_offsets`](crate::transport::ModernTransport::topic_offsets)
/// answers it for a real broker.
pub type LogStartFn = Box<dyn Fn(&str) -> Result<HashMap<i32, i64>> + Send + Sync>;

/// One producer topic: totals and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerTopicSample {
    /// The totals since the producer started.
    pub totals: ProducerTopicMetrics,
    /// Messages acknowledged per second over the last interval.
    pub messages_per_second: f64,
    /// Value bytes acknowledged per second over the last interval.
    pub bytes_per_second: f64,
    /// Failed sends per second over the last interval.
    pub errors_per_second: f64,
    /// Messages queued and not yet taken by the topic's writer.
    pub queue_depth: usize,
}

/// One partition's lag for a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    /// The partition.
    pub partition: i32,
    /// The offset of the next record the broker writes.
    pub high_watermark: i64,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// The first offset still stored (0 when unknown).
    pub log_start: i64,
    /// `high_watermark − committed`, or `high_watermark − log_start` when nothing is
    /// committed.
    pub lag: i64,
}

/// One consumed topic of a group: totals, rates, lag.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerTopicSample {
    /// The totals since `consume` started.
    pub totals: ConsumerTopicMetrics,
    /// Records polled per second over the last interval.
    pub consumed_per_second: f64,
    /// Messages handled per second over the last interval.
    pub handled_per_second: f64,
    /// Records dead-lettered per second over the last interval.
    pub dead_lettered_per_second: f64,
    /// Lag per assigned partition.
    pub lag: Vec<LagSample>,
}

/// A consumer group's topics.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroupSample {
    /// The consumer group.
    pub group: String,
    /// Each consumed topic, by name.
    pub topics: Vec<ConsumerTopicSample>,
    /// Consumer threads restarted after a panic, over all topics.
    pub thread_restarts: u64,
    /// Whether a broker answered this consumer's metadata request.
    pub broker_reachable: bool,
}

/// Everything at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// When it was taken.
    pub taken_at: SystemTime,
    /// The interval the rates are over (`None` for the first snapshot: rates are 0).
    pub interval: Option<Duration>,
    /// The producer's topics, by name (empty without a producer).
    pub producer: Vec<ProducerTopicSample>,
    /// Whether a broker answered the producer's metadata request (`None` without a
    /// producer).
    pub producer_broker_reachable: Option<bool>,
    /// Each consumer.
    pub consumers: Vec<ConsumerGroupSample>,
    /// The verdict over producer and consumers.
    pub health: HealthReport,
}

impl MetricsSnapshot {
    /// The producer's total for `topic` (0 when it sent nothing there).
    pub fn messages_sent(&self, topic: &str) -> u64 {
        self.producer
            .iter()
            .find(|p| p.totals.topic == topic)
            .map_or(0, |p| p.totals.messages)
    }
}

#[derive(Debug, Default, Clone)]
struct Totals {
    at: Option<Instant>,
    values: HashMap<String, u64>,
}

/// Takes [`MetricsSnapshot`]s of one producer and any number of consumers.
pub struct MetricsRecorder {
    producer: Option<Arc<Producer>>,
    consumers: Vec<(String, ConsumerHandle)>,
    log_start: Option<LogStartFn>,
    previous: Mutex<Totals>,
}

impl std::fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRecorder")
            .field("producer", &self.producer.is_some())
            .field(
                "groups",
                &self.consumers.iter().map(|(g, _)| g).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for MetricsRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRecorder {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        MetricsRecorder {
            producer: None,
            consumers: Vec::new(),
            log_start: None,
            previous: Mutex::new(Totals::default()),
        }
    }

    /// Records `producer`.
    pub fn with_producer(mut self, producer: Arc<Producer>) -> Self {
        self.producer = Some(producer);
        self
    }

    /// Records a consumer of `group` through its [`handle`](crate::Consumer::handle).
    pub fn with_consumer(mut self, group: impl Into<String>, consumer: ConsumerHandle) -> Self {
        self.consumers.push((group.into(), consumer));
        self
    }

    /// Counts lag from the log start `log_start` gives (else from 0).
    pub fn with_log_start(mut self, log_start: LogStartFn) -> Self {
        self.log_start = Some(log_start);
        self
    }

    /// A snapshot now. Rates are over the time since an earlier snapshot at least a
    /// second old (the first snapshot's rates are 0). Checks broker reachability (one
    /// metadata round trip per producer and consumer, within `connect_timeout`).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = Instant::now();
        let previous = self
            .previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let interval = previous.at.map(|at| now.duration_since(at));
        let mut current = HashMap::new();
        let mut rate = |key: String, value: u64| -> f64 {
            current.insert(key.clone(), value);
            match (interval, previous.values.get(&key)) {
                (Some(i), Some(&before)) if !i.is_zero() => {
                    value.saturating_sub(before) as f64 / i.as_secs_f64()
                }
                _ => 0.0,
            }
        };
        let depths: HashMap<String, usize> = self
            .producer
            .iter()
            .flat_map(|p| p.queue_depths())
            .collect();
        let producer: Vec<ProducerTopicSample> = self
            .producer
            .iter()
            .flat_map(|p| p.metrics())
            .map(|m| ProducerTopicSample {
                queue_depth: depths.get(&m.topic).copied().unwrap_or(0),
                messages_per_second: rate(format!("p/{}/messages", m.topic), m.messages),
                bytes_per_second: rate(format!("p/{}/bytes", m.topic), m.bytes),
                errors_per_second: rate(format!("p/{}/errors", m.topic), m.errors),
                totals: m,
            })
            .collect();
        let mut log_starts: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        let mut consumers = Vec::new();
        let mut health = Health {
            producer: self.producer.as_ref().map(|p| p.health()),
            consumers: Vec::new(),
        };
        for (group, handle) in &self.consumers {
            let consumer_health = handle.health();
            let thread_restarts = consumer_health.threads.iter().map(|t| t.restarts).sum();
            let broker_reachable = consumer_health.broker_reachable;
            health.consumers.push(consumer_health);
            let mut topics = Vec::new();
            for m in handle.metrics() {
                let key = |what: &str| format!("c/{group}/{}/{what}", m.topic);
                let needs_start = m.lag.iter().any(|l| l.committed.is_none());
                if needs_start && !log_starts.contains_key(&m.topic) {
                    let starts = self
                        .log_start
                        .as_ref()
                        .and_then(|f| f(&m.topic).ok())
                        .unwrap_or_default();
                    log_starts.insert(m.topic.clone(), starts);
                }
                let lag = m
                    .lag
                    .iter()
                    .map(|l| {
                        let log_start = log_starts
                            .get(&m.topic)
                            .and_then(|s| s.get(&l.partition))
                            .copied()
                            .unwrap_or(0);
                        let from = l.committed.unwrap_or(log_start);
                        LagSample {
                            partition: l.partition,
                            high_watermark: l.high_watermark,
                            committed: l.committed,
                            log_start,
                            lag: (l.high_watermark - from).max(0),
                        }
                    })
                    .collect();
                topics.push(ConsumerTopicSample {
                    consumed_per_second: rate(key("consumed"), m.consumed),
                    handled_per_second: rate(key("handled"), m.handled),
                    dead_lettered_per_second: rate(key("dead"), m.dead_lettered),
                    lag,
                    totals: m,
                });
            }
            consumers.push(ConsumerGroupSample {
                group: group.clone(),
                topics,
                thread_restarts,
                broker_reachable,
            });
        }
        if interval.is_none_or(|i| i >= MIN_INTERVAL) {
            *self.previous.lock().unwrap_or_else(|e| e.into_inner()) = Totals {
                at: Some(now),
                values: current,
            };
        }
        MetricsSnapshot {
            taken_at: SystemTime::now(),
            interval,
            producer,
            producer_broker_reachable: health.producer.as_ref().map(|p| p.broker_reachable),
            consumers,
            health: HealthReport::from_health(&health),
        }
    }
}
