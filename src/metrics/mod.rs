//! Health and counters of producers and consumers, one [`MetricsSnapshot`] over both (totals,
//! rates over the last interval, lag per partition, handler latency), its Prometheus text
//! rendering, an HTTP endpoint serving it, and one [`HealthReport`] (ok / degraded / down,
//! with reasons).
//!
//! ```
//! use std::time::Duration;
//! use kafka_sync::domain::{KafkaMessage, MessageType};
//! use kafka_sync::metrics::{render_prometheus, HealthReport, HealthStatus, MetricsRecorder};
//! use kafka_sync::Kafka;
//!
//! let kafka = Kafka::in_memory().unwrap();
//! let producer = kafka.producer();
//! producer.send("t", &KafkaMessage::from_json(MessageType::new("x"), serde_json::json!(1))).unwrap();
//! let recorder = MetricsRecorder::new().with_producer(producer.clone());
//! let text = render_prometheus(&recorder.snapshot());
//! assert!(text.contains("kafka_sync_messages_sent_total{topic=\"t\"} 1"), "{text}");
//! assert_eq!(HealthReport::from_health(&kafka.health()).status, HealthStatus::Ok);
//! kafka.close(Duration::from_secs(5)).unwrap();
//! ```

mod health;
mod prometheus;
mod serve;
mod snapshot;

pub use crate::consumer::{ConsumerHealth, ConsumerTopicMetrics, RunningCall, ThreadHealth};
pub use crate::producer::{ProducerHealth, ProducerTopicMetrics};
pub use health::{HealthReport, HealthStatus};
pub use prometheus::render_prometheus;
pub use serve::MetricsServer;
pub use snapshot::{
    ConsumerGroupSample, ConsumerTopicSample, LagSample, LogStartFn, MetricsRecorder,
    MetricsSnapshot, ProducerTopicSample,
};
