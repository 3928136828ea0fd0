//! The pipeline demo against the real broker with failures on: its own accounting, its JSON
//! logs traced by correlation id, and its metrics endpoint parsed as Prometheus text.

mod common;
mod pipeline_support;

use std::collections::HashMap;

use pipeline_support::{demo_run, DemoRun};

fn run() -> &'static DemoRun {
    let run = demo_run(&common::brokers());
    assert_eq!(
        run.exit_code,
        Some(0),
        "the demo failed:\n{}\n{}",
        run.stdout,
        run.stderr
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    run
}

fn n(run: &DemoRun, field: &str) -> u64 {
    run.summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no {field}: {}", run.summary))
}

#[test]
fn every_url_is_stored_or_dead_lettered_with_retries_and_dead_letters_on_the_way() {
    let run = run();
    assert_eq!(run.summary["transport"], "modern");
    let (scheduled, stored, dead) = (
        n(run, "scheduled"),
        n(run, "stored"),
        n(run, "dead_lettered"),
    );
    assert_eq!(scheduled, 400);
    assert_eq!(scheduled, stored + dead, "{}", run.summary);
    assert!(n(run, "retried") > 0, "{}", run.summary);
    assert!(dead > 0, "{}", run.summary);
    assert_eq!(run.summary["unaccounted"], 0);
    assert!(
        run.stdout
            .contains("every scheduled URL was stored or dead-lettered"),
        "{}",
        run.stdout
    );
    // What storage wrote: one line per stored URL, each correlation id once.
    let file = std::fs::read_to_string(run.summary["stored_file"].as_str().unwrap()).unwrap();
    let ids: std::collections::HashSet<String> = file
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["correlation_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len() as u64, stored);
    assert_eq!(file.lines().count() as u64, stored);
}

#[test]
fn every_log_line_is_json_and_every_line_about_a_traced_url_carries_its_correlation_id() {
    let run = run();
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 400, "only {} log lines", lines.len());
    for field in ["time", "level", "target", "message"] {
        assert!(
            lines.iter().all(|l| l.get(field).is_some()),
            "a line without {field}"
        );
    }
    for sample in ["sample_transient", "sample_permanent"] {
        let cid = run.summary[sample].as_str().unwrap();
        let index: usize = cid.rsplit('-').next().unwrap().parse().unwrap();
        let url = format!("https://shop-{}.example.com/item/{index}", index % 7);
        let about: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| {
                let m = l["message"].as_str().unwrap();
                l["correlation_id"] == cid
                    || m.contains(cid)
                    || m.contains(&format!("{url} "))
                    || m.ends_with(&url)
            })
            .collect();
        for l in &about {
            assert_eq!(
                l["correlation_id"], cid,
                "a line about {cid} without its id: {l}"
            );
        }
        let services: std::collections::BTreeSet<&str> =
            about.iter().filter_map(|l| l["service"].as_str()).collect();
        let expected: &[&str] = if sample == "sample_transient" {
            &["url-manager", "scraper", "parser", "storage"]
        } else {
            &["url-manager", "scraper", "dead-letter-handler"]
        };
        for s in expected {
            assert!(
                services.contains(s),
                "{cid}: no line from {s}; services {services:?}"
            );
        }
        // The library's own lines about it (retry, dead-lettering) carry it too.
        assert!(
            about
                .iter()
                .any(|l| l["target"].as_str().unwrap().starts_with("kafka_sync")),
            "{cid}: no library line: {about:?}"
        );
    }
}

#[test]
fn the_metrics_endpoint_is_prometheus_text_whose_counters_match_the_summary() {
    let run = run();
    let lines: Vec<std::io::Result<String>> =
        run.metrics.lines().map(|l| Ok(l.to_string())).collect();
    let scrape =
        prometheus_parse::Scrape::parse(lines.into_iter()).expect("Prometheus text parses");
    assert!(scrape.samples.len() > 20, "{}", run.metrics);
    // Every sample's family was declared with # TYPE, and names follow the conventions.
    for s in &scrape.samples {
        assert!(s.metric.starts_with("kafka_sync_"), "{}", s.metric);
        assert!(
            s.metric
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "{}",
            s.metric
        );
        assert!(
            run.metrics.contains(&format!("# TYPE {} ", s.metric)),
            "{} has no TYPE",
            s.metric
        );
    }
    let value = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{metric}: unexpected value type"),
            })
            .sum()
    };
    let p = &run.prefix;
    let tasks = format!("{p}scraping-tasks");
    let scraped = format!("{p}scraped-data");
    let parsed = format!("{p}parsed-data");
    let scraper = format!("{p}pipeline-scraper");
    let storage = format!("{p}pipeline-storage");
    let expect: HashMap<&str, (f64, u64)> = HashMap::from([
        (
            "sent to scraping-tasks = scheduled",
            (
                value("kafka_sync_messages_sent_total", &[("topic", &tasks)]),
                n(run, "scheduled"),
            ),
        ),
        (
            "sent to scraped-data = scraped",
            (
                value("kafka_sync_messages_sent_total", &[("topic", &scraped)]),
                n(run, "scraped"),
            ),
        ),
        (
            "sent to parsed-data = parsed",
            (
                value("kafka_sync_messages_sent_total", &[("topic", &parsed)]),
                n(run, "parsed"),
            ),
        ),
        (
            "storage handled = stored + duplicates",
            (
                value(
                    "kafka_sync_messages_handled_total",
                    &[("group", &storage), ("topic", &parsed)],
                ),
                n(run, "stored") + n(run, "duplicates"),
            ),
        ),
        (
            "scraper dead-lettered = dead-lettered",
            (
                value(
                    "kafka_sync_messages_dead_lettered_total",
                    &[("group", &scraper)],
                ),
                n(run, "dead_lettered"),
            ),
        ),
        (
            "scraper retries = retried",
            (
                value("kafka_sync_handler_retries_total", &[("group", &scraper)]),
                n(run, "retried"),
            ),
        ),
    ]);
    for (what, (metric, summary)) in expect {
        assert_eq!(metric, summary as f64, "{what}");
    }
    assert_eq!(
        value("kafka_sync_health_status", &[("status", "ok")]),
        1.0,
        "{}",
        run.metrics
    );
}
