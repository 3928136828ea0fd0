use std::time::Duration;

use kafka_sync::domain::{topics, KafkaMessage, KafkaProducer, MessageType, ScrapingTask};
use kafka_sync::{Config, Kafka};

fn main() -> kafka_sync::Result<()> {
    // localhost:9092 on the modern transport unless KAFKA_BROKERS=host:port,... says otherwise.
    let kafka = Kafka::connect(Config::from_env()?)?;

    // Handlers first; `consume` starts a thread per topic.
    let consumer = kafka.consumer()?;
    let (seen, handled) = std::sync::mpsc::channel();
    consumer.register_typed(
        MessageType::SCRAPING_TASK,
        move |msg: &KafkaMessage, task: ScrapingTask| {
            println!("scraping {} (correlation {})", task.url, msg.correlation_id);
            seen.send(msg.correlation_id.clone()).ok();
            Ok(()) // Err(HandlerError::retriable(..)) retries; ::permanent(..) dead-letters
        },
    );
    consumer.consume([topics::SCRAPING_TASKS])?;

    // `send` returns once every in-sync replica has the message.
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let task = ScrapingTask::new("https://example.com");
    let delivery = kafka
        .producer()
        .send_scraping_task(&task, &correlation_id)?;
    println!(
        "stored at partition {} offset {}",
        delivery.partition, delivery.offset
    );

    // Wait for our own message (the group may also read older ones first).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while handled
        .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        .map_err(|_| {
            kafka_sync::Error::timeout("waiting for the handler", Duration::from_secs(60))
        })?
        != correlation_id
    {}

    // Consumers commit and leave their group, then the producer flushes.
    kafka.close(Duration::from_secs(10))
}
