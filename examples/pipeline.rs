//! `make demo`: the scraping system end to end, checked by its own accounting.
//!
//! ```text
//!  url-manager ─▶ scraping-tasks ─▶ scraper ─▶ scraped-data ─▶ parser ─▶ parsed-data ─▶ storage
//!                                     │  times out: retried in place, then via `retry`          (target/pipeline/*.jsonl)
//!                                     └─ gone (permanent) ─▶ dead-letter ─▶ dead-letter handler
//! ```
//!
//! Each URL gets a correlation id (`<run>-00042`) that every stage, every log line and any
//! dead-letter record carries. The scraper's failures follow a seeded hash of the URL:
//! `--transient-rate` of the URLs time out twice (one retry in place, then one round on the
//! `retry` topic) and then succeed; `--permanent-rate` can never succeed and are
//! dead-lettered. The run ends when every scheduled URL is stored or dead-lettered (or at
//! `--drain-timeout`); it exits 1 if scheduled ≠ stored + dead-lettered.
//!
//! Runs on the in-memory transport unless `KAFKA_BROKERS` names a broker (then the same
//! code runs there: topics created with `--partitions`, groups `pipeline-<service>`).
//!
//! ```text
//! cargo run --example pipeline -- --urls 1000 --transient-rate 0.1 --permanent-rate 0.05
//! KAFKA_BROKERS=127.0.0.1:9092 cargo run --example pipeline -- --json-logs --metrics-addr 127.0.0.1:9464
//! ```

#[path = "pipeline/services.rs"]
mod services;
#[path = "pipeline/tally.rs"]
mod tally;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser as _;
use kafka_sync::domain::{
    DeadLetterRecord, KafkaProducer, MessageType, ParsedData, ScrapedData, ScrapingTask,
};
use kafka_sync::logging::{self, LogFormat};
use kafka_sync::metrics::{render_prometheus, MetricsRecorder, MetricsServer};
use kafka_sync::transport::{MemoryTransport, ModernTransport, Transport};
use kafka_sync::{
    Config, Consumer, Kafka, KafkaProducerWrapper, RetryPolicy, StartOffset, TransportKind,
};

use services::{
    DeadLetterHandler, FailurePlan, Outcome, Parser, Scraper, Storage, Topics, UrlManager,
};
use tally::{Progress, Tally};

/// The scraping pipeline demo: URL manager → scraper → parser → storage, with retries and
/// dead letters, on the in-memory broker or (KAFKA_BROKERS=host:port) a real one.
#[derive(Debug, clap::Parser)]
#[command(name = "pipeline")]
struct Args {
    /// URLs to schedule.
    #[arg(long, default_value_t = 300)]
    urls: usize,
    /// Share of URLs whose first two fetches time out (retriable).
    #[arg(long, default_value_t = 0.10)]
    transient_rate: f64,
    /// Share of URLs that can never be fetched (permanent: dead-lettered).
    #[arg(long, default_value_t = 0.05)]
    permanent_rate: f64,
    /// Seed of the failure plan (same seed, same failures).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Partitions of each pipeline topic (created when missing).
    #[arg(long, default_value_t = 3)]
    partitions: usize,
    /// Log one JSON object per line on stderr (same as KAFKA_SYNC_LOG_FORMAT=json).
    #[arg(long)]
    json_logs: bool,
    /// Serve Prometheus metrics on this address while running (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Prefix for topic and group names (to keep runs apart on a shared broker).
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// Seconds to wait for every URL to end.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    /// Seconds to keep serving metrics after the summary.
    #[arg(long, default_value_t = 0)]
    linger: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Directory for the stored pages.
    #[arg(long, default_value = "target/pipeline")]
    out_dir: PathBuf,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("pipeline: {e}");
            std::process::exit(2);
        }
    }
}

/// A consumer of its own group and service name, on the shared transport.
fn stage(
    base: &Config,
    transport: &Arc<dyn Transport>,
    prefix: &str,
    service: &str,
) -> kafka_sync::Result<(Kafka, Consumer)> {
    let mut c = base.clone();
    c.group_id = format!("{prefix}pipeline-{service}");
    c.service_name = service.to_string();
    let kafka = Kafka::with_transport(c, transport.clone())?;
    let consumer = kafka.consumer()?;
    Ok((kafka, consumer))
}

fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let json = args.json_logs || LogFormat::from_env() == LogFormat::Json;
    logging::init_with(
        if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
        if json { "info" } else { "error" },
    );
    for (name, rate) in [
        ("--transient-rate", args.transient_rate),
        ("--permanent-rate", args.permanent_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{name} {rate}: must be between 0 and 1").into());
        }
    }
    if args.transient_rate + args.permanent_rate > 1.0 {
        return Err("--transient-rate plus --permanent-rate must not exceed 1".into());
    }
    let topics = Topics::with_prefix(&args.topic_prefix);
    let on_broker = std::env::var_os("KAFKA_BROKERS").is_some();
    let mut config = if on_broker {
        Config::from_env()?
    } else {
        Config {
            transport: TransportKind::Memory,
            ..Config::from_env()?
        }
    };
    // Quick rounds so the demo finishes fast: one retry in place after 10 ms, then the
    // retry topic for 200 ms, then dead letters after 10 attempts in all.
    config.producer.batch_timeout = Duration::from_millis(2);
    config.consumer.max_wait = Duration::from_millis(100);
    config.consumer.min_bytes = 1;
    config.consumer.start_offset = StartOffset::Earliest;
    config.consumer.retry = RetryPolicy {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    config.consumer.retry_topic_enabled = true;
    config.consumer.retry_topic_delay = Duration::from_millis(200);
    config.consumer.retry_topic = topics.retry.clone();
    config.consumer.dead_letter_topic = topics.dead_letter.clone();

    let mut inspector: Option<Arc<ModernTransport>> = None;
    let transport: Arc<dyn Transport> = if on_broker {
        let admin = Arc::new(ModernTransport::new(&config)?);
        for t in topics.all() {
            admin.ensure_topic(t, args.partitions as i32, -1)?;
        }
        inspector = Some(admin.clone());
        if config.transport == TransportKind::Modern {
            admin
        } else {
            // KAFKA_TRANSPORT=kafka-crate: that transport for the services, the modern one
            // for creating topics and reading log starts.
            Kafka::connect(config.clone())?.transport().clone()
        }
    } else {
        let memory = MemoryTransport::new();
        for t in topics.all() {
            memory.create_topic(t, args.partitions)?;
        }
        Arc::new(memory)
    };
    let kafka = Kafka::with_transport(config.clone(), transport.clone())?;
    println!(
        "pipeline: {} URLs on the {} transport{} (transient {:.0} %, permanent {:.0} %, seed {})",
        args.urls,
        transport.name(),
        if on_broker {
            format!(" at {}", config.brokers.join(","))
        } else {
            String::new()
        },
        args.transient_rate * 100.0,
        args.permanent_rate * 100.0,
        args.seed
    );

    let run_id = format!("run{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let tally = Arc::new(Tally::default());
    let producer = kafka.producer();
    let out: Arc<dyn KafkaProducer> = Arc::new(KafkaProducerWrapper::new(producer.clone()));
    let plan = FailurePlan {
        seed: args.seed,
        transient_rate: args.transient_rate,
        permanent_rate: args.permanent_rate,
        transient_failures: 2,
    };

    // The services and the consumers that run them.
    let prefix = args.topic_prefix.as_str();
    let scraper = Arc::new(Scraper {
        producer: out.clone(),
        topics: topics.clone(),
        plan,
        tally: tally.clone(),
        attempts: Mutex::new(HashMap::new()),
    });
    let (k1, scraping) = stage(&config, &transport, prefix, "scraper")?;
    scraping.register_typed(MessageType::SCRAPING_TASK, move |m: &_, t: ScrapingTask| {
        scraper.handle(m, t)
    });
    let parser = Arc::new(Parser {
        producer: out.clone(),
        topics: topics.clone(),
        tally: tally.clone(),
    });
    let (k2, parsing) = stage(&config, &transport, prefix, "parser")?;
    parsing.register_typed(MessageType::SCRAPED_DATA, move |m: &_, p: ScrapedData| {
        parser.handle(m, p)
    });
    let stored_path = args.out_dir.join(format!("stored-{run_id}.jsonl"));
    let storage = Arc::new(Storage::create(stored_path.clone(), tally.clone())?);
    let (k3, storing) = stage(&config, &transport, prefix, "storage")?;
    storing.register_typed(MessageType::PARSED_DATA, move |m: &_, p: ParsedData| {
        storage.handle(m, p)
    });
    let dead = Arc::new(DeadLetterHandler {
        run: run_id.clone(),
        tally: tally.clone(),
    });
    let (k4, dead_letters) = stage(&config, &transport, prefix, "dead-letters")?;
    dead_letters.register_dead_letter_handler(move |r: &DeadLetterRecord| dead.handle(r));
    let stages = [
        (&k1, &scraping, &topics.scraping_tasks),
        (&k2, &parsing, &topics.scraped_data),
        (&k3, &storing, &topics.parsed_data),
    ];
    for (_, consumer, topic) in stages {
        consumer.consume([topic.as_str(), topics.retry.as_str()])?;
    }
    dead_letters.consume([topics.dead_letter.as_str()])?;

    let mut recorder = MetricsRecorder::new().with_producer(producer.clone());
    for (k, c) in [
        (&k1, &scraping),
        (&k2, &parsing),
        (&k3, &storing),
        (&k4, &dead_letters),
    ] {
        recorder = recorder.with_consumer(k.config().group_id.clone(), c.handle());
    }
    if let Some(admin) = inspector.clone() {
        recorder = recorder.with_log_start(Box::new(move |topic| {
            Ok(admin
                .topic_offsets(topic)?
                .iter()
                .map(|p| (p.partition, p.earliest))
                .collect())
        }));
    }
    let recorder = Arc::new(recorder);
    let mut server = match &args.metrics_addr {
        Some(addr) => {
            let (m, h) = (recorder.clone(), recorder.clone());
            let s = MetricsServer::start(
                addr,
                Arc::new(move || render_prometheus(&m.snapshot())),
                Arc::new(move || serde_json::to_string(&h.snapshot().health).unwrap_or_default()),
            )?;
            println!("metrics: http://{}/metrics", s.local_addr());
            Some(s)
        }
        None => None,
    };

    // Schedule, watch, drain.
    let started = Instant::now();
    let progress = Progress::start(tally.clone(), started);
    UrlManager {
        producer: out.clone(),
        topics: topics.clone(),
        tally: tally.clone(),
    }
    .schedule(&run_id, args.urls)?;
    let deadline = started + Duration::from_secs(args.drain_timeout);
    while !tally.drained() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    progress.stop();
    let final_metrics = recorder.snapshot();

    let planned = |o| {
        (0..args.urls)
            .filter(|&i| plan.outcome(&UrlManager::url(i)) == o)
            .count()
    };
    let sample = |o| {
        (0..args.urls)
            .find(|&i| plan.outcome(&UrlManager::url(i)) == o)
            .map(|i| UrlManager::correlation_id(&run_id, i))
    };
    println!("\n{}", render_prometheus(&final_metrics));
    println!("health: {}", final_metrics.health);
    println!("run {run_id}: stored pages in {}", stored_path.display());
    println!(
        "failure plan: {} succeed, {} time out twice then succeed, {} never succeed",
        planned(Outcome::Succeeds),
        planned(Outcome::Transient),
        planned(Outcome::Permanent)
    );
    print!("{}", tally.table(elapsed));
    let ok = tally.unaccounted() == 0;
    if ok {
        println!("every scheduled URL was stored or dead-lettered.");
    } else {
        println!(
            "UNACCOUNTED: scheduled {} != stored + dead-lettered (difference {}) after {:?}",
            tally.counts()[0].1,
            tally.unaccounted(),
            elapsed
        );
    }
    if let Some(path) = &args.summary_json {
        let mut summary = tally.to_json(elapsed);
        summary["run"] = run_id.clone().into();
        summary["transport"] = transport.name().into();
        summary["stored_file"] = stored_path.display().to_string().into();
        summary["metrics_addr"] = server.as_ref().map(|s| s.local_addr().to_string()).into();
        summary["sample_transient"] = sample(Outcome::Transient).into();
        summary["sample_permanent"] = sample(Outcome::Permanent).into();
        summary["topics"] = serde_json::to_value(topics.all())?;
        summary["groups"] =
            serde_json::to_value([&k1, &k2, &k3, &k4].map(|k| k.config().group_id.clone()))?;
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)?;
    }
    if args.linger > 0 && server.is_some() {
        println!("serving metrics for {} s more", args.linger);
        std::thread::sleep(Duration::from_secs(args.linger));
    }
    if let Some(s) = server.as_mut() {
        s.stop();
    }
    for c in [&scraping, &parsing, &storing, &dead_letters] {
        c.close(Duration::from_secs(10))?;
    }
    kafka.close(Duration::from_secs(10))?;
    Ok(ok)
}
