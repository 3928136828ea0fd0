//! `make demo`: the scraping pipeline end to end.
//!
//! ```text
//!  URL scheduler ──▶ scraping-tasks ──▶ scraper ──▶ scraped-data ──▶ parser ──▶ parsed-data
//!                                          │ fails transiently: retried in place
//!                                          └ fails permanently ──▶ dead-letter
//! ```
//!
//! The scraper's outcome per task follows a seeded rule on the URL: most succeed, some fail
//! twice before succeeding, some can never succeed. The summary shows handled, retried and
//! dead-lettered counts, and checks that they add up to what was sent.
//!
//! Runs on the embedded in-memory transport by default; set `KAFKA_BROKERS=127.0.0.1:9092`
//! to run the same code against a real broker (consumer groups then start at the latest
//! offset, so earlier runs' messages are left alone).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_sync::domain::{topics, ParsedData, ScrapedData, ScrapingTask};
use kafka_sync::domain::{HandlerError, KafkaMessage, KafkaProducer, MessageType};
use kafka_sync::transport::Transport;
use kafka_sync::Kafka;
use kafka_sync::{Config, Consumer, KafkaProducerWrapper, RetryPolicy, StartOffset, TransportKind};

const TASKS: usize = 300;

/// What the scraper does with a URL: a seeded rule, so every run behaves the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeds,
    FailsTwiceThenSucceeds,
    NeverSucceeds,
}

fn outcome(url: &str) -> Outcome {
    let seed = url
        .bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    match seed % 20 {
        0 => Outcome::NeverSucceeds,
        1..=3 => Outcome::FailsTwiceThenSucceeds,
        _ => Outcome::Succeeds,
    }
}

/// The URL-scheduler service: knows only the domain trait.
struct UrlScheduler {
    producer: Arc<dyn KafkaProducer>,
}

impl UrlScheduler {
    fn schedule(&self, urls: &[String], run: &str) -> kafka_sync::Result<BTreeMap<i32, usize>> {
        let mut per_partition = BTreeMap::new();
        for (i, url) in urls.iter().enumerate() {
            let mut task = ScrapingTask::new(url.clone());
            task.priority = (i % 3) as i32;
            let delivery = self
                .producer
                .send_scraping_task(&task, &format!("{run}-{i}"))?;
            *per_partition.entry(delivery.partition).or_insert(0) += 1;
        }
        Ok(per_partition)
    }
}

fn stage_config(base: &Config, group: &str) -> Config {
    let mut c = base.clone();
    c.group_id = group.to_string();
    c.service_name = group.to_string();
    c.consumer.max_wait = Duration::from_millis(100);
    c.consumer.min_bytes = 1;
    // Quick in-place retries so the demo finishes fast: 5 ms, 10 ms, then give up.
    c.consumer.retry = RetryPolicy {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(50),
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    if base.transport != TransportKind::Memory {
        c.consumer.start_offset = StartOffset::Latest;
    }
    c
}

/// The scraper stage: consumes tasks, "fetches" the page, sends what it scraped on.
fn scraper(
    base: &Config,
    transport: Arc<dyn Transport>,
    out: Arc<dyn KafkaProducer>,
) -> kafka_sync::Result<Consumer> {
    let consumer = Kafka::with_transport(stage_config(base, "demo-scraper"), transport)
        .and_then(|k| k.consumer())?;
    let attempts: Mutex<HashMap<uuid::Uuid, u32>> = Mutex::new(HashMap::new());
    consumer.register_typed(
        MessageType::SCRAPING_TASK,
        move |msg: &KafkaMessage, task: ScrapingTask| {
            let attempt = {
                let mut seen = attempts.lock().unwrap_or_else(|e| e.into_inner());
                let n = seen.entry(msg.id).or_insert(0);
                *n += 1;
                *n
            };
            match outcome(&task.url) {
                Outcome::NeverSucceeds => {
                    return Err(HandlerError::permanent(format!(
                        "{} answers 410 Gone",
                        task.url
                    )))
                }
                Outcome::FailsTwiceThenSucceeds if attempt <= 2 => {
                    return Err(HandlerError::retriable(format!("{} timed out", task.url)))
                }
                _ => {}
            }
            let page = ScrapedData {
                url: task.url.clone(),
                status_code: 200,
                html: format!(
                    "<html><title>{}</title><a href=\"{}/next\">next</a></html>",
                    task.url, task.url
                ),
                headers: Default::default(),
            };
            out.send_scraped_data(&page, &msg.correlation_id)
                .map(|_| ())
                .map_err(HandlerError::retriable)
        },
    );
    consumer.consume([topics::SCRAPING_TASKS])?;
    Ok(consumer)
}

/// The parser stage: extracts the title and links.
fn parser(
    base: &Config,
    transport: Arc<dyn Transport>,
    out: Arc<dyn KafkaProducer>,
) -> kafka_sync::Result<Consumer> {
    let consumer = Kafka::with_transport(stage_config(base, "demo-parser"), transport)
        .and_then(|k| k.consumer())?;
    consumer.register_typed(
        MessageType::SCRAPED_DATA,
        move |msg: &KafkaMessage, page: ScrapedData| {
            let title = page
                .html
                .split_once("<title>")
                .and_then(|(_, rest)| rest.split_once("</title>"))
                .map(|(t, _)| t.to_string())
                .ok_or_else(|| HandlerError::permanent("page has no title"))?;
            let links = page
                .html
                .split("href=\"")
                .skip(1)
                .filter_map(|s| s.split_once('"').map(|(l, _)| l.to_string()))
                .collect();
            let parsed = ParsedData {
                url: page.url,
                title,
                content: String::new(),
                links,
                metadata: Default::default(),
            };
            out.send_parsed_data(&parsed, &msg.correlation_id)
                .map(|_| ())
                .map_err(HandlerError::retriable)
        },
    );
    consumer.consume([topics::SCRAPED_DATA])?;
    Ok(consumer)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    // The embedded default: the in-memory broker, chosen by name, unless KAFKA_BROKERS
    // names a real one.
    let config = if std::env::var_os("KAFKA_BROKERS").is_some() {
        Config::from_env()?
    } else {
        Config {
            transport: TransportKind::Memory,
            ..Config::from_env()?
        }
    };
    println!(
        "kafka-sync demo: transport {:?}, brokers {:?}",
        config.transport, config.brokers
    );
    let kafka = Kafka::connect(config.clone())?;
    let transport = kafka.transport().clone();
    let producer = kafka.producer();
    let service: Arc<dyn KafkaProducer> = Arc::new(KafkaProducerWrapper::new(producer.clone()));

    // Consumers first, so that on a real broker they start at the latest offset before
    // anything of this run is sent.
    let scraper = scraper(&config, transport.clone(), service.clone())?;
    let parser = parser(&config, transport.clone(), service.clone())?;

    let run = uuid::Uuid::new_v4().simple().to_string();
    let urls: Vec<String> = (0..TASKS)
        .map(|i| format!("https://shop-{}.example.com/item/{i}", i % 7))
        .collect();
    let started = Instant::now();
    let per_partition = UrlScheduler {
        producer: service.clone(),
    }
    .schedule(&urls, &run)?;
    println!(
        "\nURL scheduler sent {TASKS} tasks to `{}` in {:.2?}",
        topics::SCRAPING_TASKS,
        started.elapsed()
    );
    for (partition, count) in &per_partition {
        println!("  partition {partition}: {count} tasks");
    }

    let expected_ok = urls
        .iter()
        .filter(|u| outcome(u) != Outcome::NeverSucceeds)
        .count();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |c: &Consumer| {
        c.metrics()
            .iter()
            .map(|m| m.handled + m.dead_lettered)
            .sum::<u64>()
    };
    while (done(&scraper) < TASKS as u64 || done(&parser) < expected_ok as u64)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    scraper.close(Duration::from_secs(10))?;
    parser.close(Duration::from_secs(10))?;

    println!("\npipeline finished in {elapsed:.2?}\n");
    println!("| stage   | consumed | handled | retried in place | dead-lettered | p50 handler |");
    println!("|---------|---------:|--------:|-----------------:|--------------:|------------:|");
    let (mut handled, mut dead) = (0, 0);
    for (name, c) in [("scraper", &scraper), ("parser", &parser)] {
        for m in c.metrics() {
            println!(
                "| {name:<7} | {:>8} | {:>7} | {:>16} | {:>13} | {:>11.2?} |",
                m.consumed,
                m.handled,
                m.retried_in_place,
                m.dead_lettered,
                m.handler_latency_p50.unwrap_or_default()
            );
            if name == "scraper" {
                handled = m.handled;
                dead = m.dead_lettered;
            }
        }
    }
    println!("\nproducer counters:");
    for m in producer.metrics() {
        println!(
            "  {:<14} messages {:>4}  batches {:>4}  retries {}  errors {}",
            m.topic, m.messages, m.batches, m.retries, m.errors
        );
    }
    let rule = |o| urls.iter().filter(|u| outcome(u) == o).count();
    println!(
        "\nseeded rule: {} succeed, {} fail twice then succeed, {} never succeed",
        rule(Outcome::Succeeds),
        rule(Outcome::FailsTwiceThenSucceeds),
        rule(Outcome::NeverSucceeds)
    );
    println!(
        "scraper: {handled} handled + {dead} dead-lettered = {} of {TASKS} tasks",
        handled + dead
    );
    producer.close()?;
    if handled + dead != TASKS as u64 || dead != rule(Outcome::NeverSucceeds) as u64 {
        return Err("the counts do not add up: a message was lost or ended twice".into());
    }
    println!("every task ended exactly once.");
    Ok(())
}
