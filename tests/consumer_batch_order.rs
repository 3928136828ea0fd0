//! A batch handler keeps a key's order across a failure: A and B of key k in one
//! `handle_batch`, A fails and waits for its in-place retry, B succeeds in the same call.
//! B is handled again after A's retry (its result in the batch set aside, as Spring
//! redelivers every record after the failed index), never ending before A. Records of other
//! keys in the batch keep their result. On the in-memory transport and the real broker.

mod common;
mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{quick_retries, wait_for};
use kafka_sync::domain::{HandlerError, HandlerResult, KafkaMessage, MessageHandler, MessageType};
use kafka_sync::transport::MemoryTransport;
use kafka_sync::{Config, Kafka};

/// Each successful handling, in order: (message label, attempt kind).
type Log = Arc<Mutex<Vec<String>>>;

struct Recorder {
    log: Log,
    /// Whether A failed once already.
    a_failed: Mutex<bool>,
}

impl Recorder {
    fn one(&self, m: &KafkaMessage, how: &str) -> HandlerResult {
        let label = m.payload["label"].as_str().unwrap().to_string();
        if label == "A" {
            let mut failed = self.a_failed.lock().unwrap();
            if !*failed {
                *failed = true;
                return Err(HandlerError::retriable("A fails its first attempt"));
            }
        }
        self.log.lock().unwrap().push(format!("{label}:{how}"));
        Ok(())
    }
}

struct Batches(Arc<Recorder>);

impl MessageHandler for Batches {
    fn handle(&self, m: &KafkaMessage) -> HandlerResult {
        self.0.one(m, "single")
    }
    fn handle_batch(&self, ms: &[KafkaMessage]) -> Vec<HandlerResult> {
        ms.iter().map(|m| self.0.one(m, "batch")).collect()
    }
}

fn labelled(label: &str, key: &str) -> KafkaMessage {
    KafkaMessage::from_json(
        MessageType::new("test"),
        serde_json::json!({ "label": label }),
    )
    .with_key(key)
}

fn scenario(kafka: &Kafka, topic: &str) {
    let producer = kafka.producer();
    // A and B of key k, C of another key between them: one partition (one key) for A and
    // B; C may land elsewhere.
    let sent = vec![
        labelled("A", "k"),
        labelled("C", "other"),
        labelled("B", "k"),
    ];
    for r in producer.send_batch(topic, sent) {
        r.expect("written");
    }
    let recorder = Arc::new(Recorder {
        log: Log::default(),
        a_failed: Mutex::new(false),
    });
    let consumer = kafka.consumer().unwrap();
    consumer.register_batch_handler("test", Batches(recorder.clone()), 10);
    let handle = consumer.consume([topic]).unwrap();
    let log = recorder.log.clone();
    wait_for(
        "A handled after its failure",
        Duration::from_secs(60),
        || {
            let log = log.lock().unwrap();
            log.iter().any(|l| l.starts_with("A:")) && log.iter().any(|l| l.starts_with("C:"))
        },
    );
    // B's handling after A, if any, shows up in this time.
    std::thread::sleep(Duration::from_millis(1500));
    let log = log.lock().unwrap().clone();
    let metrics = handle.metrics();
    consumer.close(Duration::from_secs(20)).unwrap();
    let a = log.iter().position(|l| l.starts_with("A:")).unwrap();
    let last_b = log.iter().rposition(|l| l.starts_with("B:"));
    assert!(
        last_b.is_some_and(|b| b > a),
        "B's last handling must come after A's retry: {log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("C:")).count(),
        1,
        "another key keeps its batch result: {log:?}"
    );
    let m = &metrics[0];
    assert_eq!((m.handled, m.dead_lettered), (3, 0), "{m:?}");
}

#[test]
fn a_later_record_of_a_failed_key_in_a_batch_is_handled_again_after_it_in_memory() {
    let broker = MemoryTransport::new();
    broker.create_topic("batches", 1).unwrap();
    let mut config = Config {
        group_id: "g".into(),
        ..Config::in_memory()
    };
    config.consumer.retry = quick_retries(3);
    config.consumer.max_wait = Duration::from_millis(50);
    let kafka = Kafka::with_transport(config, Arc::new(broker)).unwrap();
    scenario(&kafka, "batches");
}

#[test]
fn a_later_record_of_a_failed_key_in_a_batch_is_handled_again_after_it_on_the_broker() {
    let mut config = common::kafka_config();
    config.consumer.retry = quick_retries(3);
    config.consumer.max_wait = Duration::from_millis(50);
    config.consumer.retry_topic = common::random_topic("retry");
    config.consumer.dead_letter_topic = common::random_topic("dlq");
    let topic = common::random_topic("batches");
    common::create_topic(&topic, 1, &[]);
    let kafka = Kafka::connect(config).unwrap();
    scenario(&kafka, &topic);
}
