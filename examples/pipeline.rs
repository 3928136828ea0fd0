//! `make demo`: the scraping pipeline's producing half. A URL-scheduler service sends a few
//! hundred scraping tasks through the blocking producer, then prints per-topic counts,
//! partitions and elapsed time.
//!
//! Runs on the embedded in-memory transport by default; set `KAFKA_BROKERS=127.0.0.1:9092`
//! to run the same code against a real broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kafka_sync::domain::{topics, ScrapingTask};
use kafka_sync::{Config, KafkaProducer, KafkaProducerWrapper, Producer};

/// The service under demonstration: it only knows the domain trait.
struct UrlScheduler {
    producer: Arc<dyn KafkaProducer>,
}

impl UrlScheduler {
    /// Schedules one task per URL; returns how many went to each partition.
    fn schedule(&self, urls: &[String], run_id: &str) -> kafka_sync::Result<BTreeMap<i32, usize>> {
        let mut per_partition = BTreeMap::new();
        for (i, url) in urls.iter().enumerate() {
            let mut task = ScrapingTask::new(url.clone());
            task.priority = (i % 3) as i32;
            let delivery = self
                .producer
                .send_scraping_task(&task, &format!("{run_id}-{i}"))?;
            *per_partition.entry(delivery.partition).or_insert(0) += 1;
        }
        Ok(per_partition)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let config = Config::from_env()?;
    println!(
        "kafka-sync demo: transport {:?}, brokers {:?}",
        config.transport, config.brokers
    );
    let producer = Arc::new(Producer::connect(config)?);
    let scheduler = UrlScheduler {
        producer: Arc::new(KafkaProducerWrapper::from_shared(producer.clone())),
    };

    let urls: Vec<String> = (0..300)
        .map(|i| format!("https://shop-{}.example.com/item/{i}", i % 7))
        .collect();
    let started = Instant::now();
    let per_partition = scheduler.schedule(&urls, "demo")?;
    let elapsed = started.elapsed();

    println!(
        "\nURL scheduler sent {} tasks to `{}` in {elapsed:.2?}",
        urls.len(),
        topics::SCRAPING_TASKS
    );
    for (partition, count) in &per_partition {
        println!("  partition {partition}: {count} tasks");
    }
    println!("\nper-topic producer counters:");
    for m in producer.metrics() {
        println!(
            "  {:<16} messages {:>5}  bytes {:>7}  batches {:>4}  retries {}  errors {}",
            m.topic, m.messages, m.bytes, m.batches, m.retries, m.errors
        );
    }
    let health = producer.health();
    println!(
        "\nhealth: {}",
        if health.is_healthy() { "ok" } else { "NOT OK" }
    );
    producer.close()?;
    if per_partition.values().sum::<usize>() != urls.len() {
        return Err("some tasks were not acknowledged".into());
    }
    Ok(())
}
