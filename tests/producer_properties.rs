//! Property: for any interleaving of sends from several threads and any batch size and
//! timeout, every message is acknowledged exactly once and each partition holds each
//! thread's messages in that thread's send order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::transport::MemoryTransport;
use kafka_sync::Config;
use kafka_sync::Kafka;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Call {
    Send,
    Async,
    Batch(usize),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::Send),
        Just(Call::Async),
        (1usize..5).prop_map(Call::Batch)
    ]
}

fn msg(thread: usize, seq: usize) -> KafkaMessage {
    KafkaMessage::from_json(
        MessageType::new("prop"),
        serde_json::json!({ "thread": thread, "seq": seq }),
    )
    .with_key(format!("thread-{thread}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_message_is_acknowledged_once_in_each_threads_order(
        batch_size in 1usize..20,
        batch_timeout_ms in 0u64..5,
        plans in prop::collection::vec(prop::collection::vec(call(), 1..12), 1..5),
    ) {
        let memory = MemoryTransport::new();
        let mut config = Config::default();
        config.producer.batch_size = batch_size;
        config.producer.batch_timeout = Duration::from_millis(batch_timeout_ms);
        let producer = Arc::new(Kafka::with_transport(config, Arc::new(memory.clone())).map(|k| k.producer()).unwrap());
        let threads: Vec<_> = plans.into_iter().enumerate().map(|(t, plan)| {
            let producer = producer.clone();
            std::thread::spawn(move || {
                let mut seq = 0;
                let mut acked = Vec::new();
                let mut pending = Vec::new();
                for c in plan {
                    match c {
                        Call::Send => {
                            acked.push(producer.send("prop", &msg(t, seq)).unwrap());
                            seq += 1;
                        }
                        Call::Async => {
                            pending.push(producer.send_async("prop", msg(t, seq)).unwrap());
                            seq += 1;
                        }
                        Call::Batch(n) => {
                            let batch = (seq..seq + n).map(|s| msg(t, s)).collect();
                            for r in producer.send_batch("prop", batch) {
                                acked.push(r.unwrap());
                            }
                            seq += n;
                        }
                    }
                }
                for h in pending {
                    acked.push(h.wait().unwrap());
                }
                (seq, acked)
            })
        }).collect();
        let mut sent = 0;
        let mut acks = HashSet::new();
        for t in threads {
            let (count, acked) = t.join().unwrap();
            sent += count;
            for d in acked {
                prop_assert!(acks.insert((d.partition, d.offset)), "offset acknowledged twice: {:?}", d);
            }
        }
        prop_assert_eq!(acks.len(), sent);
        let stored = memory.records("prop");
        prop_assert_eq!(stored.len(), sent);
        let mut last_seq: HashMap<u64, i64> = HashMap::new();
        let mut seen = HashSet::new();
        for r in &stored {
            let m = KafkaMessage::from_bytes(&r.value).unwrap();
            prop_assert!(seen.insert(m.id), "message stored twice");
            let thread = m.payload["thread"].as_u64().unwrap();
            let seq = m.payload["seq"].as_i64().unwrap();
            let prev = last_seq.insert(thread, seq).unwrap_or(-1);
            prop_assert!(seq > prev, "thread {} seq {} stored after {}", thread, seq, prev);
        }
    }
}
