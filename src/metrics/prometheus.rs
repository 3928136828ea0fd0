//! [`render_prometheus`]: a [`MetricsSnapshot`] as Prometheus text exposition format 0.0.4
//! (`# HELP`, `# TYPE`, one sample per line; counters end in `_total`, durations are in
//! seconds, label values escaped).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::metrics::{HealthStatus, MetricsSnapshot};

/// One metric family: name, type, help, samples (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Every family of a snapshot, in a fixed order.
struct Families(BTreeMap<&'static str, Family>, Vec<&'static str>);

impl Families {
    fn add(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        if !self.0.contains_key(name) {
            self.1.push(name);
        }
        self.0
            .entry(name)
            .or_insert_with(|| Family {
                name,
                kind,
                help,
                samples: Vec::new(),
            })
            .samples
            .push((labels, value));
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// The snapshot as Prometheus text (what `GET /metrics` answers). Families:
///
/// | family | type | labels |
/// |---|---|---|
/// | `kafka_sync_messages_sent_total`, `kafka_sync_bytes_sent_total`, `kafka_sync_batches_sent_total`, `kafka_sync_send_errors_total`, `kafka_sync_send_retries_total` | counter | `topic` |
/// | `kafka_sync_messages_sent_per_second`, `kafka_sync_bytes_sent_per_second`, `kafka_sync_send_errors_per_second`, `kafka_sync_producer_queue_depth` | gauge | `topic` |
/// | `kafka_sync_messages_consumed_total`, `kafka_sync_messages_handled_total`, `kafka_sync_messages_dead_lettered_total`, `kafka_sync_duplicates_skipped_total`, `kafka_sync_commits_total`, `kafka_sync_consumer_rebalances_total` | counter | `group`, `topic` |
/// | `kafka_sync_handler_retries_total` | counter | `group`, `topic`, `path` (`in_place`, `retry_topic`) |
/// | `kafka_sync_consumer_errors_total` | counter | `group`, `topic`, `kind` (`decode`, `unknown_type`) |
/// | `kafka_sync_messages_consumed_per_second`, `kafka_sync_messages_handled_per_second`, `kafka_sync_messages_dead_lettered_per_second` | gauge | `group`, `topic` |
/// | `kafka_sync_consumer_lag` | gauge | `group`, `topic`, `partition` |
/// | `kafka_sync_handler_latency_seconds` | gauge | `group`, `topic`, `quantile` (`0.5`, `0.99`) |
/// | `kafka_sync_consumer_thread_restarts_total` | counter | `group` |
/// | `kafka_sync_broker_reachable` | gauge | `client` (`producer`, `consumer`), `group` |
/// | `kafka_sync_health_status` | gauge | `status` (1 for the current one) |
pub fn render_prometheus(snapshot: &MetricsSnapshot) -> String {
    let mut f = Families(BTreeMap::new(), Vec::new());
    for p in &snapshot.producer {
        let t = || vec![("topic", p.totals.topic.clone())];
        let m = &p.totals;
        f.add(
            "kafka_sync_messages_sent_total",
            "counter",
            "Messages the broker acknowledged.",
            t(),
            m.messages as f64,
        );
        f.add(
            "kafka_sync_bytes_sent_total",
            "counter",
            "Value bytes the broker acknowledged.",
            t(),
            m.bytes as f64,
        );
        f.add(
            "kafka_sync_batches_sent_total",
            "counter",
            "Produce requests that succeeded at least in part.",
            t(),
            m.batches as f64,
        );
        f.add(
            "kafka_sync_send_errors_total",
            "counter",
            "Messages whose send failed for good.",
            t(),
            m.errors as f64,
        );
        f.add(
            "kafka_sync_send_retries_total",
            "counter",
            "Message re-sends after retriable errors.",
            t(),
            m.retries as f64,
        );
        f.add(
            "kafka_sync_messages_sent_per_second",
            "gauge",
            "Messages acknowledged per second over the last interval.",
            t(),
            p.messages_per_second,
        );
        f.add(
            "kafka_sync_bytes_sent_per_second",
            "gauge",
            "Value bytes acknowledged per second over the last interval.",
            t(),
            p.bytes_per_second,
        );
        f.add(
            "kafka_sync_send_errors_per_second",
            "gauge",
            "Failed sends per second over the last interval.",
            t(),
            p.errors_per_second,
        );
        f.add(
            "kafka_sync_producer_queue_depth",
            "gauge",
            "Messages queued and not yet taken by the topic's writer thread.",
            t(),
            p.queue_depth as f64,
        );
    }
    if let Some(up) = snapshot.producer_broker_reachable {
        f.add(
            "kafka_sync_broker_reachable",
            "gauge",
            "1 when a broker answered the client's metadata request.",
            vec![("client", "producer".into())],
            if up { 1.0 } else { 0.0 },
        );
    }
    for g in &snapshot.consumers {
        for s in &g.topics {
            let m = &s.totals;
            let gt = || vec![("group", g.group.clone()), ("topic", m.topic.clone())];
            let with = |k: &'static str, v: &str| {
                let mut l = gt();
                l.push((k, v.to_string()));
                l
            };
            f.add(
                "kafka_sync_messages_consumed_total",
                "counter",
                "Records polled.",
                gt(),
                m.consumed as f64,
            );
            f.add(
                "kafka_sync_messages_handled_total",
                "counter",
                "Messages a handler returned Ok for.",
                gt(),
                m.handled as f64,
            );
            f.add(
                "kafka_sync_messages_dead_lettered_total",
                "counter",
                "Records written to the dead-letter topic.",
                gt(),
                m.dead_lettered as f64,
            );
            f.add(
                "kafka_sync_duplicates_skipped_total",
                "counter",
                "Messages skipped because their id was handled already.",
                gt(),
                m.duplicates as f64,
            );
            f.add(
                "kafka_sync_commits_total",
                "counter",
                "Successful offset commits.",
                gt(),
                m.commits as f64,
            );
            f.add(
                "kafka_sync_consumer_rebalances_total",
                "counter",
                "Times the member's assignment changed (the first assignment included).",
                gt(),
                m.rebalances as f64,
            );
            f.add(
                "kafka_sync_handler_retries_total",
                "counter",
                "Handler retries after retriable failures, by path.",
                with("path", "in_place"),
                m.retried_in_place as f64,
            );
            f.add(
                "kafka_sync_handler_retries_total",
                "counter",
                "Handler retries after retriable failures, by path.",
                with("path", "retry_topic"),
                m.sent_to_retry as f64,
            );
            f.add(
                "kafka_sync_consumer_errors_total",
                "counter",
                "Records that could not be handled, by kind.",
                with("kind", "decode"),
                m.decode_errors as f64,
            );
            f.add(
                "kafka_sync_consumer_errors_total",
                "counter",
                "Records that could not be handled, by kind.",
                with("kind", "unknown_type"),
                m.skipped_unknown_type as f64,
            );
            f.add(
                "kafka_sync_messages_consumed_per_second",
                "gauge",
                "Records polled per second over the last interval.",
                gt(),
                s.consumed_per_second,
            );
            f.add(
                "kafka_sync_messages_handled_per_second",
                "gauge",
                "Messages handled per second over the last interval.",
                gt(),
                s.handled_per_second,
            );
            f.add(
                "kafka_sync_messages_dead_lettered_per_second",
                "gauge",
                "Records dead-lettered per second over the last interval.",
                gt(),
                s.dead_lettered_per_second,
            );
            for l in &s.lag {
                f.add("kafka_sync_consumer_lag", "gauge", "Records not yet committed by the group (from the log start when nothing is committed).", with("partition", &l.partition.to_string()), l.lag as f64);
            }
            for (q, v) in [
                ("0.5", m.handler_latency_p50),
                ("0.99", m.handler_latency_p99),
            ] {
                if let Some(d) = v {
                    f.add(
                        "kafka_sync_handler_latency_seconds",
                        "gauge",
                        "Handler call time over the recent calls, by quantile.",
                        with("quantile", q),
                        d.as_secs_f64(),
                    );
                }
            }
        }
        f.add(
            "kafka_sync_broker_reachable",
            "gauge",
            "1 when a broker answered the client's metadata request.",
            vec![("client", "consumer".into()), ("group", g.group.clone())],
            if g.broker_reachable { 1.0 } else { 0.0 },
        );
        f.add(
            "kafka_sync_consumer_thread_restarts_total",
            "counter",
            "Consumer threads restarted after a panic.",
            vec![("group", g.group.clone())],
            g.thread_restarts as f64,
        );
    }
    for status in [HealthStatus::Ok, HealthStatus::Degraded, HealthStatus::Down] {
        let on = snapshot.health.status == status;
        f.add(
            "kafka_sync_health_status",
            "gauge",
            "1 for the current health verdict (ok, degraded, down).",
            vec![("status", status.to_string())],
            if on { 1.0 } else { 0.0 },
        );
    }
    let mut out = String::new();
    for name in &f.1 {
        let fam = &f.0[name];
        let _ = writeln!(out, "# HELP {} {}", fam.name, fam.help);
        let _ = writeln!(out, "# TYPE {} {}", fam.name, fam.kind);
        for (labels, value) in &fam.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{} {}", fam.name, number(*value));
            } else {
                let _ = writeln!(
                    out,
                    "{}{{{}}} {}",
                    fam.name,
                    labels.join(","),
                    number(*value)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_numbers_plain() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }
}
