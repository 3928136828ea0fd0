//! The consumer's outbox against a real Apache Kafka (issue 16, scenario 6a): a partition
//! stopped by a dead letter the broker refuses for good stays stopped while another dead
//! letter of the same partition lands. With no broker it fails (never skips) with "no Kafka
//! broker at …: run `make kafka-up`".

mod common;
mod consumer_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_topic, kafka_config, random_topic};
use consumer_support::{message, send_all, send_raw, wait_for};
use kafka_sync::domain::{HandlerError, KafkaMessage};
use kafka_sync::transport::Transport;
use kafka_sync::{Kafka, RetryPolicy};

const WAIT: Duration = Duration::from_secs(30);

fn stopped_partitions(consumer: &kafka_sync::Consumer, topic: &str) -> Vec<i32> {
    consumer
        .health()
        .threads
        .into_iter()
        .find(|t| t.topic == topic)
        .map(|t| t.stopped_partitions.into_iter().map(|(p, _)| p).collect())
        .unwrap_or_default()
}

/// Offset 0 is 20 KB of text that is not JSON: its dead letter and the fallback (the
/// original bytes) are both refused by the dead-letter topic (`max.message.bytes` 10000,
/// MESSAGE_TOO_LARGE, for good), so its partition stops. Message 1 behind it fails in place
/// for 600 ms, then its small dead letter lands. Before the fix that landing un-stopped the
/// partition while offset 0 was still not written.
#[test]
fn a_stopped_partition_stays_stopped_while_another_dead_letter_of_it_lands() {
    let topic = random_topic("outbox-stop");
    let dlq = random_topic("outbox-stop-dlq");
    create_topic(&topic, 1, &[]);
    create_topic(&dlq, 1, &[("max.message.bytes", "10000")]);
    let mut config = kafka_config();
    config.group_id = random_topic("outbox-stop-group");
    config.service_name = "consumer-outbox-kafka-tests".into();
    config.consumer.min_bytes = 1;
    config.consumer.max_wait = Duration::from_millis(100);
    config.consumer.commit_interval = Duration::from_millis(20);
    config.consumer.dead_letter_topic = dlq.clone();
    config.consumer.retry_topic = random_topic("outbox-stop-retry");
    config.consumer.retry_topic_enabled = false;
    config.consumer.shutdown_timeout = Duration::from_secs(5);
    config.consumer.retry = RetryPolicy {
        initial_interval: Duration::from_millis(600),
        multiplier: 1.0,
        max_interval: Duration::from_millis(600),
        max_elapsed: Duration::from_secs(5),
        max_attempts: 2,
        randomization_factor: 0.0,
    };
    let kafka = Kafka::connect(config.clone()).expect("connect");
    let transport: Arc<dyn Transport> = kafka.transport().clone();
    let mut poison = b"poison ".to_vec();
    poison.extend(std::iter::repeat_n(b'x', 20_000));
    send_raw(&transport, &topic, 0, &poison);
    send_all(&transport, &topic, vec![message(1), message(2)]);
    let consumer = kafka.consumer().expect("consumer");
    consumer.register_handler("test", |m: &KafkaMessage| {
        if m.payload["n"] == 1 {
            return Err(HandlerError::retriable("busy"));
        }
        Ok(())
    });
    let handle = consumer.consume([topic.clone()]).expect("consume");
    let dead_lettered = || {
        handle
            .metrics()
            .into_iter()
            .find(|m| m.topic == topic)
            .map_or(0, |m| m.dead_lettered)
    };
    wait_for("partition 0 stopped", WAIT, || {
        stopped_partitions(&consumer, &topic) == vec![0]
    });
    assert_eq!(dead_lettered(), 0, "message 1 is still failing in place");
    wait_for("message 1 dead-lettered", WAIT, || dead_lettered() == 1);
    // Offset 0 has no write left: the partition stays stopped, whatever else lands.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(
            stopped_partitions(&consumer, &topic),
            vec![0],
            "offset 0 is not written: its partition is still stopped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let reasons = consumer.health().problems().join("\n");
    assert!(reasons.contains("cannot be written anywhere"), "{reasons}");
    assert_eq!(dead_lettered(), 1, "offset 0 never counted as written");
    // Offset 0 is never written here: it stays uncommitted, read again by the next owner.
    let _ = consumer.close(Duration::from_secs(3));
}
