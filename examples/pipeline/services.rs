//! The pipeline's services. Each is a small struct that knows only the domain: it sends
//! with a `KafkaProducer` and handles one message type; `main` wires them to consumers.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kafka_sync::domain::{
    DeadLetterRecord, HandlerError, HandlerResult, KafkaMessage, KafkaProducer, MessageType,
    ParsedData, ScrapedData, ScrapingTask,
};

use crate::tally::Tally;

/// The pipeline's topic names (with the run's prefix, if any).
#[derive(Debug, Clone)]
pub struct Topics {
    pub scraping_tasks: String,
    pub scraped_data: String,
    pub parsed_data: String,
    pub dead_letter: String,
    pub retry: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Topics {
        use kafka_sync::domain::topics;
        Topics {
            scraping_tasks: format!("{prefix}{}", topics::SCRAPING_TASKS),
            scraped_data: format!("{prefix}{}", topics::SCRAPED_DATA),
            parsed_data: format!("{prefix}{}", topics::PARSED_DATA),
            dead_letter: format!("{prefix}{}", topics::DEAD_LETTER),
            retry: format!("{prefix}{}", topics::RETRY),
        }
    }

    pub fn all(&self) -> [&str; 5] {
        [
            &self.scraping_tasks,
            &self.scraped_data,
            &self.parsed_data,
            &self.dead_letter,
            &self.retry,
        ]
    }
}

/// What "fetching" a URL does, decided by a seeded hash of the URL: the same seed gives the
/// same failures on every run.
#[derive(Debug, Clone, Copy)]
pub struct FailurePlan {
    pub seed: u64,
    /// Share of URLs that time out `transient_failures` times, then succeed.
    pub transient_rate: f64,
    /// Share of URLs that can never succeed (410 Gone).
    pub permanent_rate: f64,
    /// How many attempts of a transient URL fail.
    pub transient_failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeds,
    Transient,
    Permanent,
}

impl FailurePlan {
    pub fn outcome(&self, url: &str) -> Outcome {
        // FNV-1a over the seed and the URL, then a splitmix finalizer: uniform in [0, 1).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in url.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        let x = (h >> 11) as f64 / (1u64 << 53) as f64;
        if x < self.permanent_rate {
            Outcome::Permanent
        } else if x < self.permanent_rate + self.transient_rate {
            Outcome::Transient
        } else {
            Outcome::Succeeds
        }
    }
}

/// Schedules URLs: one scraping task each, under a correlation id of its own.
pub struct UrlManager {
    pub producer: Arc<dyn KafkaProducer>,
    pub topics: Topics,
    pub tally: Arc<Tally>,
}

impl UrlManager {
    /// The correlation id of the `i`th URL of `run`.
    pub fn correlation_id(run: &str, i: usize) -> String {
        format!("{run}-{i:05}")
    }

    pub fn url(i: usize) -> String {
        format!("https://shop-{}.example.com/item/{i}", i % 7)
    }

    pub fn schedule(&self, run: &str, count: usize) -> kafka_sync::Result<()> {
        for i in 0..count {
            let url = Self::url(i);
            let cid = Self::correlation_id(run, i);
            let mut task = ScrapingTask::new(url.clone());
            task.priority = (i % 3) as i32;
            let msg = KafkaMessage::new(MessageType::SCRAPING_TASK, &task)?
                .with_correlation_id(cid.clone())
                .with_source_service("url-manager")
                .with_key(url.clone());
            let d = self
                .producer
                .send_message(&self.topics.scraping_tasks, &msg)?;
            self.tally.add(&self.tally.scheduled);
            log::info!(
                target: "pipeline::url_manager",
                service = "url-manager", correlation_id = cid.as_str(),
                message_id:% = msg.id, topic = self.topics.scraping_tasks.as_str(),
                partition = d.partition, offset = d.offset;
                "scheduled {url}"
            );
        }
        Ok(())
    }
}

/// "Fetches" a page without network: the HTML is made from the URL; the failure plan
/// decides which URLs time out (retriable) or are gone (permanent).
pub struct Scraper {
    pub producer: Arc<dyn KafkaProducer>,
    pub topics: Topics,
    pub plan: FailurePlan,
    pub tally: Arc<Tally>,
    pub attempts: Mutex<HashMap<uuid::Uuid, u32>>,
}

impl Scraper {
    pub fn handle(&self, msg: &KafkaMessage, task: ScrapingTask) -> HandlerResult {
        let attempt = {
            let mut seen = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(msg.id).or_insert(msg.attempt);
            *n += 1;
            *n
        };
        let cid = msg.correlation_id.as_str();
        if attempt > 1 {
            self.tally.add(&self.tally.retried);
        }
        match self.plan.outcome(&task.url) {
            Outcome::Permanent => {
                log::info!(target: "pipeline::scraper", service = "scraper", correlation_id = cid,
                    message_id:% = msg.id, attempt = attempt; "{} answers 410 Gone", task.url);
                return Err(HandlerError::permanent(format!(
                    "{} answers 410 Gone",
                    task.url
                )));
            }
            Outcome::Transient if attempt <= self.plan.transient_failures => {
                log::info!(target: "pipeline::scraper", service = "scraper", correlation_id = cid,
                    message_id:% = msg.id, attempt = attempt; "{} timed out", task.url);
                return Err(HandlerError::retriable(format!("{} timed out", task.url)));
            }
            _ => {}
        }
        let page = ScrapedData {
            url: task.url.clone(),
            status_code: 200,
            html: format!(
                "<html><head><title>Item at {0}</title></head><body><a href=\"{0}/reviews\">reviews</a> <a href=\"{0}/similar\">similar</a></body></html>",
                task.url
            ),
            headers: Default::default(),
        };
        let out = KafkaMessage::new(MessageType::SCRAPED_DATA, &page)
            .map_err(HandlerError::permanent)?
            .with_correlation_id(cid)
            .with_source_service("scraper")
            .with_key(task.url.clone());
        self.producer
            .send_message(&self.topics.scraped_data, &out)
            .map_err(HandlerError::retriable)?;
        self.tally.add(&self.tally.scraped);
        log::info!(target: "pipeline::scraper", service = "scraper", correlation_id = cid,
            message_id:% = msg.id, attempt = attempt; "scraped {} ({} bytes)", task.url, page.html.len());
        Ok(())
    }
}

/// Extracts the title and the links of a page.
pub struct Parser {
    pub producer: Arc<dyn KafkaProducer>,
    pub topics: Topics,
    pub tally: Arc<Tally>,
}

impl Parser {
    pub fn handle(&self, msg: &KafkaMessage, page: ScrapedData) -> HandlerResult {
        let title = page
            .html
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map(|(t, _)| t.to_string())
            .ok_or_else(|| HandlerError::permanent("page has no title"))?;
        let links: Vec<String> = page
            .html
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split_once('"').map(|(l, _)| l.to_string()))
            .collect();
        let parsed = ParsedData {
            url: page.url.clone(),
            title,
            content: String::new(),
            links,
            metadata: Default::default(),
        };
        let out = KafkaMessage::new(MessageType::PARSED_DATA, &parsed)
            .map_err(HandlerError::permanent)?
            .with_correlation_id(msg.correlation_id.clone())
            .with_source_service("parser")
            .with_key(page.url.clone());
        self.producer
            .send_message(&self.topics.parsed_data, &out)
            .map_err(HandlerError::retriable)?;
        self.tally.add(&self.tally.parsed);
        log::info!(target: "pipeline::parser", service = "parser",
            correlation_id = msg.correlation_id.as_str(), message_id:% = msg.id;
            "parsed {} ({} links)", page.url, parsed.links.len());
        Ok(())
    }
}

/// Appends each parsed page to a JSON-lines file, once per correlation id.
pub struct Storage {
    pub file: Mutex<BufWriter<File>>,
    pub path: PathBuf,
    pub seen: Mutex<HashSet<String>>,
    pub tally: Arc<Tally>,
}

impl Storage {
    pub fn create(path: PathBuf, tally: Arc<Tally>) -> std::io::Result<Storage> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Storage {
            file: Mutex::new(BufWriter::new(File::create(&path)?)),
            path,
            seen: Mutex::new(HashSet::new()),
            tally,
        })
    }

    pub fn handle(&self, msg: &KafkaMessage, parsed: ParsedData) -> HandlerResult {
        let cid = msg.correlation_id.as_str();
        if !self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cid.to_string())
        {
            self.tally.add(&self.tally.duplicates);
            log::info!(target: "pipeline::storage", service = "storage", correlation_id = cid,
                message_id:% = msg.id; "already stored {}; skipping the duplicate", parsed.url);
            return Ok(());
        }
        let line = serde_json::json!({
            "correlation_id": cid,
            "url": parsed.url,
            "title": parsed.title,
            "links": parsed.links,
        });
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(file, "{line}")
            .and_then(|_| file.flush())
            .map_err(|e| {
                HandlerError::retriable(format!("writing {}: {e}", self.path.display()))
            })?;
        self.tally.add(&self.tally.stored);
        log::info!(target: "pipeline::storage", service = "storage", correlation_id = cid,
            message_id:% = msg.id; "stored {}", parsed.url);
        Ok(())
    }
}

/// Reads the dead-letter topic and sums up this run's failures by kind.
pub struct DeadLetterHandler {
    pub run: String,
    pub tally: Arc<Tally>,
}

impl DeadLetterHandler {
    pub fn handle(&self, record: &DeadLetterRecord) -> HandlerResult {
        let cid = record.correlation_id.clone().unwrap_or_default();
        if !cid.starts_with(&format!("{}-", self.run)) {
            return Ok(()); // an earlier run's, or another program's
        }
        self.tally.dead_letter(&record.kind.to_string());
        log::info!(target: "pipeline::dead_letters", service = "dead-letter-handler",
            correlation_id = cid.as_str(), kind:% = record.kind,
            topic = record.origin.topic.as_str(), partition = record.origin.partition,
            offset = record.origin.offset;
            "dead letter from {}: {}", record.service, record.error);
        Ok(())
    }
}
