//! The producer's unit of work is a partition: a partition that cannot be written (its
//! leader gone) waits alone while records for the other partitions keep flowing, and its
//! records fail at their delivery timeout without holding anything up. On a scripted
//! three-partition transport; `tests/chaos_producer_partitions.rs` does the same with a
//! leader killed on the 3-node cluster.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_sync::domain::{Delivery, KafkaMessage, MessageType};
use kafka_sync::transport::{
    partition_for_key, OutgoingRecord, ProduceOptions, ProducerSession, SubscribeOptions,
    Subscription, Transport,
};
use kafka_sync::{Config, Error, ErrorKind, Kafka, Result};

const PARTITIONS: usize = 3;

/// A broker of three partitions whose partition 0 has no reachable leader: records for it
/// fail with a retriable connection error, the others are written.
#[derive(Debug, Clone, Default)]
struct OneDeadPartition {
    written: Arc<Mutex<Vec<Written>>>,
}

/// A record the scripted broker wrote: its partition and value.
type Written = (i32, Vec<u8>);

impl Transport for OneDeadPartition {
    fn name(&self) -> &'static str {
        "one-dead-partition"
    }
    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>> {
        Ok(Box::new(self.clone()))
    }
    fn subscribe(&self, _: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        Err(Error::new(ErrorKind::Broker, "not for consuming"))
    }
    fn partition_count(&self, _: &str) -> Result<usize> {
        Ok(PARTITIONS)
    }
    fn health_check(&self, _: Duration) -> Result<()> {
        Ok(())
    }
}

impl ProducerSession for OneDeadPartition {
    fn partition_count(&mut self, _: &str) -> Result<usize> {
        Ok(PARTITIONS)
    }

    fn produce(
        &mut self,
        _topic: &str,
        records: &[OutgoingRecord],
        _options: &ProduceOptions,
    ) -> Vec<Result<Delivery>> {
        // A round trip's worth of time, as a broker takes.
        std::thread::sleep(Duration::from_millis(2));
        let mut written = self.written.lock().unwrap();
        records
            .iter()
            .map(|r| {
                if r.partition == 0 {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        "scripted: the leader of partition 0 is down",
                    )
                    .with_partition(0));
                }
                written.push((r.partition, r.value.clone()));
                Ok(Delivery {
                    partition: r.partition,
                    offset: written.len() as i64 - 1,
                })
            })
            .collect()
    }
}

fn message(n: usize) -> KafkaMessage {
    KafkaMessage::from_json(MessageType::new("part"), serde_json::json!({ "n": n }))
        .with_key(format!("key-{n}"))
}

#[test]
fn records_for_healthy_partitions_flow_while_one_partition_has_no_leader() {
    let broker = OneDeadPartition::default();
    let mut config = Config::in_memory();
    config.producer.delivery_timeout = Duration::from_secs(8);
    config.request_timeout = Duration::from_secs(2);
    config.producer.batch_timeout = Duration::from_millis(5);
    let kafka = Kafka::with_transport(config, Arc::new(broker.clone())).unwrap();
    let producer = kafka.producer();
    let started = Instant::now();
    // Sent over about a second, as a service sends: later records must not wait for the
    // dead partition's earlier ones.
    let handles: Vec<_> = (0..300)
        .map(|n| {
            if n % 30 == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            (n, producer.send_async("t", message(n)).unwrap())
        })
        .collect();
    // The healthy partitions' answers first (a dead one's wait would hide their timing).
    let (dead_handles, healthy): (Vec<_>, Vec<_>) = handles
        .into_iter()
        .partition(|(n, _)| partition_for_key(format!("key-{n}").as_bytes(), PARTITIONS) == 0);
    let mut healthy_late = 0;
    for (n, h) in healthy {
        assert!(h.wait().is_ok(), "message {n} (a healthy partition) failed");
        // Every healthy record is answered within a few seconds of the first send, long
        // before the dead partition's records time out (8 s).
        if started.elapsed() > Duration::from_secs(4) {
            healthy_late += 1;
        }
    }
    let dead: Vec<_> = dead_handles
        .into_iter()
        .map(|(n, h)| (n, h.wait().map(|_| ()).map_err(|e| e.error.kind())))
        .collect();
    assert_eq!(
        healthy_late, 0,
        "records for healthy partitions waited behind the dead one"
    );
    assert!(!dead.is_empty(), "some keys go to partition 0");
    for (n, r) in &dead {
        assert_eq!(*r, Err(ErrorKind::Timeout), "message {n} of partition 0");
    }
    let written = broker.written.lock().unwrap();
    assert!(written.iter().all(|(p, _)| *p != 0));
    let unique: HashSet<&Vec<u8>> = written.iter().map(|(_, v)| v).collect();
    assert_eq!(unique.len(), written.len(), "nothing written twice");
    assert_eq!(written.len(), 300 - dead.len());
}
