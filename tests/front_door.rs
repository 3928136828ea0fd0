//! The front door as a newcomer meets it: defaults that target a real broker, no silent
//! in-memory broker, one producer and consumers that share a transport, an ordered close,
//! and envelopes written by other clients.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_sync::domain::{KafkaMessage, MessageType, ScrapingTask};
use kafka_sync::{Config, ErrorKind, Kafka, TransportKind};

#[test]
fn a_config_naming_a_dead_broker_fails_the_first_send_with_a_connection_error_in_its_bound() {
    let mut config = Config {
        brokers: vec!["127.0.0.1:1".into()],
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    config.consumer.max_wait = Duration::from_millis(500);
    config.producer.retry.max_elapsed = Duration::from_secs(1);
    config.producer.delivery_timeout = Duration::from_secs(3);
    let kafka = Kafka::connect(config).unwrap();
    assert_eq!(kafka.transport().name(), "modern");
    let started = Instant::now();
    let msg = KafkaMessage::new(
        MessageType::SCRAPING_TASK,
        &ScrapingTask::new("https://a.b"),
    )
    .unwrap();
    let err = kafka.producer().send("scraping-tasks", &msg).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_environment_without_brokers_targets_localhost_9092_on_the_modern_transport() {
    let config =
        Config::from_lookup(|name| (name == "KAFKA_CLIENT_ID").then(|| "t".into())).unwrap();
    assert_eq!(config.brokers, vec!["localhost:9092"]);
    assert_eq!(config.transport, TransportKind::Modern);
    let kafka = Kafka::connect(config).unwrap();
    assert_eq!(kafka.transport().name(), "modern");
    assert!(format!("{kafka:?}").contains("localhost:9092"));
}

#[test]
fn the_in_memory_broker_is_only_used_by_name_and_never_with_brokers() {
    assert_eq!(Kafka::in_memory().unwrap().transport().name(), "memory");
    let e = Kafka::connect(Config {
        brokers: vec!["kafka-1:9092".into()],
        transport: TransportKind::Memory,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let text = e.to_string();
    assert!(
        text.contains("transport") && text.contains("brokers"),
        "{text}"
    );
}

#[test]
fn a_producer_and_a_consumer_of_one_front_door_exchange_a_message() {
    let kafka = Kafka::in_memory().unwrap();
    let msg = KafkaMessage::new(
        MessageType::SCRAPING_TASK,
        &ScrapingTask::new("https://a.b"),
    )
    .unwrap()
    .with_correlation_id("req-1");
    kafka.producer().send("scraping-tasks", &msg).unwrap();
    let consumer = kafka.consumer().unwrap();
    let (tx, rx) = mpsc::channel();
    consumer.register_typed(
        MessageType::SCRAPING_TASK,
        move |m: &KafkaMessage, task: ScrapingTask| {
            tx.send((m.correlation_id.clone(), task.url)).ok();
            Ok(())
        },
    );
    consumer.consume(["scraping-tasks"]).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, ("req-1".to_string(), "https://a.b".to_string()));
    assert!(std::ptr::eq(
        std::sync::Arc::as_ptr(&kafka.producer()),
        std::sync::Arc::as_ptr(&kafka.producer())
    ));
}

#[test]
fn close_stops_consumers_then_the_producer_within_its_bound() {
    let kafka = Kafka::in_memory().unwrap();
    let producer = kafka.producer();
    let consumer = kafka.consumer().unwrap();
    consumer.register_handler(MessageType::SCRAPING_TASK, |_m: &KafkaMessage| Ok(()));
    let handle = consumer.consume(["scraping-tasks"]).unwrap();
    assert!(handle.is_running());
    assert_eq!(kafka.health().consumers.len(), 1);
    let started = Instant::now();
    kafka.close(Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!handle.is_running(), "the consumer stopped");
    let msg = KafkaMessage::from_json(MessageType::new("t"), serde_json::json!(1));
    let e = producer.send("t", &msg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    assert!(kafka.health().producer.is_some());
}

#[test]
fn envelopes_written_by_kafkas_java_producer_are_handled_not_dead_lettered() {
    let topic = common::random_topic("java-envelopes");
    let id_new = uuid::Uuid::new_v4();
    let id_old = uuid::Uuid::new_v4();
    common::java_produce(
        &topic,
        &[
            format!(
                r#"{{"id":"{id_new}","type":"scraping_task","correlation_id":"java-1","created_at":"2026-01-01T00:00:00Z","source_service":"java-service","payload":{{"url":"https://java.example"}}}}"#
            ),
            format!(
                r#"{{"id":"{id_old}","type":"scraping_task","correlation_id":"old-1","created_at":{{"secs_since_epoch":1767225600,"nanos_since_epoch":0}},"attempt":0,"source_service":"kafka-sync 0.1","payload":{{"url":"https://old.example"}}}}"#
            ),
        ],
    );
    let mut config = common::kafka_config();
    config.consumer.min_bytes = 1;
    config.consumer.max_wait = Duration::from_millis(200);
    let kafka = Kafka::connect(config).unwrap();
    let consumer = kafka.consumer().unwrap();
    let (tx, rx) = mpsc::channel();
    consumer.register_typed(
        MessageType::SCRAPING_TASK,
        move |m: &KafkaMessage, task: ScrapingTask| {
            tx.send((m.id, m.created_at, task.url)).ok();
            Ok(())
        },
    );
    let handle = consumer.consume([topic.as_str()]).unwrap();
    let mut got: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(60)).expect("handled"))
        .collect();
    got.sort_by_key(|g| g.2.clone());
    let jan_1 = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    assert_eq!(got[0], (id_new, jan_1, "https://java.example".to_string()));
    assert_eq!(got[1], (id_old, jan_1, "https://old.example".to_string()));
    let dead: u64 = handle.metrics().iter().map(|m| m.dead_lettered).sum();
    assert_eq!(dead, 0);
    kafka.close(Duration::from_secs(10)).unwrap();
}
