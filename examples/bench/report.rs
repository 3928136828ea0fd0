//! The bench's output: a markdown table, then one `bench:` line per scenario.

use std::time::Duration;

use crate::support::{Measured, ENVELOPE_BYTES};

/// One scenario's figures.
pub struct Row {
    /// Short name for the `bench:` line, e.g. `d-send-async`.
    pub id: &'static str,
    /// What was measured, for the table.
    pub name: String,
    /// The `kafka` crate transport and the bare crate measured beside it, where run.
    pub kafka_crate: Option<(Measured, Measured)>,
    /// The modern transport.
    pub ours: Measured,
    /// The peer measured beside the modern transport.
    pub peer_name: &'static str,
    pub peer: Measured,
    /// Extra figures for the line and the table (`key=value` pairs).
    pub note: String,
}

fn lat(m: &Measured) -> String {
    m.latency
        .map_or(String::new(), |(a, b)| format!("{} / {}", ms(a), ms(b)))
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1e3)
}

pub fn print(rows: &[Row], brokers: &[String]) {
    println!(
        "\nkafka-sync vs its peers in the same run: {ENVELOPE_BYTES}-byte envelopes, acks=all, brokers {brokers:?}, best of {} passes, ours and peer alternated",
        crate::support::passes()
    );
    println!();
    println!("| scenario | kafka-crate transport msg/s | bare crate beside it | ÷ | modern transport msg/s | peer beside it | peer msg/s | modern ÷ peer | p50 / p99 modern | p50 / p99 peer | notes |");
    println!("|---|---:|---:|---:|---:|---|---:|---:|---|---|---|");
    for r in rows {
        let (kc, kb, kr) = match &r.kafka_crate {
            Some((c, b)) => (
                format!("{:.0}", c.rate),
                format!("{:.0}", b.rate),
                format!("{:.2}", c.rate / b.rate),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {} | {kc} | {kb} | {kr} | {:.0} | {} | {:.0} | {:.2} | {} | {} | {} |",
            r.name,
            r.ours.rate,
            r.peer_name,
            r.peer.rate,
            r.ours.rate / r.peer.rate,
            lat(&r.ours),
            lat(&r.peer),
            r.note
        );
    }
    println!();
    for r in rows {
        if let Some((c, b)) = &r.kafka_crate {
            println!(
                "bench: {}/kafka-crate ours={:.0} peer=bare-kafka-crate:{:.0} ratio={:.2}",
                r.id,
                c.rate,
                b.rate,
                c.rate / b.rate
            );
        }
    }
    for r in rows {
        let mut extra = String::new();
        if let Some((a, b)) = r.ours.latency {
            extra += &format!(" p50={} p99={}", ms(a), ms(b));
        }
        if let Some((a, b)) = r.peer.latency {
            extra += &format!(" peer_p50={} peer_p99={}", ms(a), ms(b));
        }
        if !r.note.is_empty() {
            extra += &format!(" {}", r.note);
        }
        println!(
            "bench: {} ours={:.0} peer={}:{:.0} ratio={:.2}{extra}",
            r.id,
            r.ours.rate,
            r.peer_name,
            r.peer.rate,
            r.ours.rate / r.peer.rate
        );
    }
}
