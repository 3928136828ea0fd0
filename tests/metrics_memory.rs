//! The metrics snapshot on the in-memory broker: rates over the last interval, lag counted
//! from the log start, queue depth and rebalances, the Prometheus text a parser accepts, the
//! HTTP endpoint, and the health verdict (down, with its reason, when no broker answers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::metrics::{
    render_prometheus, HealthReport, HealthStatus, MetricsRecorder, MetricsServer,
};
use kafka_sync::transport::{MemoryTransport, ModernTransport};
use kafka_sync::{Config, Kafka, StartOffset, TransportKind};

fn message(i: usize) -> KafkaMessage {
    KafkaMessage::from_json(MessageType::new("m"), serde_json::json!({ "i": i }))
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text parses")
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn rates_are_over_the_last_interval_not_since_the_start() {
    let kafka = Kafka::in_memory().unwrap();
    let producer = kafka.producer();
    for i in 0..100 {
        producer.send("rates", &message(i)).unwrap();
    }
    let recorder = MetricsRecorder::new().with_producer(producer.clone());
    let first = recorder.snapshot();
    assert_eq!(first.interval, None);
    assert_eq!(first.producer[0].messages_per_second, 0.0);
    assert_eq!(first.messages_sent("rates"), 100);
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..50 {
        producer.send("rates", &message(i)).unwrap();
    }
    let second = recorder.snapshot();
    let interval = second.interval.unwrap().as_secs_f64();
    assert!(interval >= 1.1, "{interval}");
    let rate = second.producer[0].messages_per_second;
    assert!(
        (rate - 50.0 / interval).abs() < 1e-6,
        "{rate} over {interval}"
    );
    assert_eq!(second.producer[0].totals.messages, 150);
    let text = render_prometheus(&second);
    let scrape = parse(&text);
    assert_eq!(
        value(
            &scrape,
            "kafka_sync_messages_sent_total",
            &[("topic", "rates")]
        ),
        Some(150.0)
    );
    assert!(
        value(
            &scrape,
            "kafka_sync_messages_sent_per_second",
            &[("topic", "rates")]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        value(
            &scrape,
            "kafka_sync_producer_queue_depth",
            &[("topic", "rates")]
        ),
        Some(0.0)
    );
    kafka.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn lag_of_an_uncommitted_partition_counts_from_the_log_start() {
    let broker = Arc::new(MemoryTransport::new());
    broker.create_topic("lagged", 1).unwrap();
    let mut config = Config::in_memory();
    config.consumer.start_offset = StartOffset::Latest;
    config.consumer.max_wait = Duration::from_millis(20);
    let kafka = Kafka::with_transport(config, broker.clone()).unwrap();
    for i in 0..10 {
        kafka.producer().send("lagged", &message(i)).unwrap();
    }
    let consumer = kafka.consumer().unwrap();
    consumer.register_handler(MessageType::new("m"), |_m: &KafkaMessage| Ok(()));
    let handle = consumer.consume(["lagged"]).unwrap();
    let starts: HashMap<i32, i64> = HashMap::from([(0, 7)]);
    let recorder = MetricsRecorder::new()
        .with_consumer("kafka-sync", handle.clone())
        .with_log_start(Box::new(move |_topic| Ok(starts.clone())));
    let plain = MetricsRecorder::new().with_consumer("kafka-sync", handle.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let snapshot = loop {
        let s = recorder.snapshot();
        let lagged = s.consumers[0]
            .topics
            .iter()
            .find(|t| t.totals.topic == "lagged");
        // The lag probe can answer before the consumer's first poll counted its assignment.
        if lagged.is_some_and(|t| !t.lag.is_empty() && t.totals.rebalances >= 1) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no lag measured or no assignment counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let lagged = |s: &kafka_sync::metrics::MetricsSnapshot| {
        s.consumers[0]
            .topics
            .iter()
            .find(|t| t.totals.topic == "lagged")
            .expect("the lagged topic is sampled")
            .lag[0]
    };
    let lag = lagged(&snapshot);
    assert_eq!(
        (lag.high_watermark, lag.committed, lag.log_start),
        (10, None, 7)
    );
    assert_eq!(lag.lag, 3, "from the log start, not from 0");
    assert_eq!(
        lagged(&plain.snapshot()).lag,
        10,
        "no log start known: from 0"
    );
    let text = render_prometheus(&snapshot);
    let scrape = parse(&text);
    assert_eq!(
        value(
            &scrape,
            "kafka_sync_consumer_lag",
            &[("topic", "lagged"), ("partition", "0")]
        ),
        Some(3.0)
    );
    assert!(
        value(
            &scrape,
            "kafka_sync_consumer_rebalances_total",
            &[("topic", "lagged")]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert_eq!(
        snapshot.health.status,
        HealthStatus::Ok,
        "{}",
        snapshot.health
    );
    consumer.close(Duration::from_secs(5)).unwrap();
    kafka.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn the_endpoint_serves_metrics_and_health_and_nothing_else() {
    let kafka = Kafka::in_memory().unwrap();
    kafka.producer().send("served", &message(1)).unwrap();
    let recorder = Arc::new(MetricsRecorder::new().with_producer(kafka.producer()));
    let (m, h) = (recorder.clone(), recorder.clone());
    let mut server = MetricsServer::start(
        "127.0.0.1:0",
        Arc::new(move || render_prometheus(&m.snapshot())),
        Arc::new(move || serde_json::to_string(&h.snapshot().health).unwrap()),
    )
    .unwrap();
    let addr = server.local_addr().to_string();
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    let metrics = get("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(metrics.contains("Content-Type: text/plain; version=0.0.4"));
    let body = metrics.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        value(
            &parse(body),
            "kafka_sync_messages_sent_total",
            &[("topic", "served")]
        ),
        Some(1.0)
    );
    let health = get("/health");
    let json: serde_json::Value =
        serde_json::from_str(health.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(json["status"], "ok");
    assert!(get("/nope").starts_with("HTTP/1.1 404"));
    server.stop();
    assert!(std::net::TcpStream::connect(&addr).is_err(), "stopped");
    let taken = MetricsServer::start("256.0.0.1:1", Arc::new(String::new), Arc::new(String::new))
        .unwrap_err();
    assert!(taken.to_string().contains("256.0.0.1:1"), "{taken}");
    kafka.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn health_is_down_with_the_reason_when_no_broker_answers() {
    let mut config = Config {
        transport: TransportKind::Modern,
        ..Config::default()
    };
    // Nothing listens on 127.0.0.1:9898 (this suite's port range).
    config.brokers = vec!["127.0.0.1:9898".into()];
    config.connect_timeout = Duration::from_millis(500);
    let transport = Arc::new(ModernTransport::new(&config).unwrap());
    let kafka = Kafka::with_transport(config, transport).unwrap();
    let _producer = kafka.producer();
    let report = HealthReport::from_health(&kafka.health());
    assert_eq!(report.status, HealthStatus::Down);
    assert!(
        report.reasons[0].contains("broker unreachable")
            && report.reasons[0].contains("127.0.0.1:9898"),
        "{report}"
    );
    let recorder = MetricsRecorder::new().with_producer(kafka.producer());
    let scrape = parse(&render_prometheus(&recorder.snapshot()));
    assert_eq!(
        value(&scrape, "kafka_sync_health_status", &[("status", "down")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            "kafka_sync_broker_reachable",
            &[("client", "producer")]
        ),
        Some(0.0)
    );
}
