//! `tail`: a topic's records as decoded envelopes, one per line; and reading a whole topic
//! (for the dead-letter queue) without joining a group.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use kafka_sync::domain::{KafkaMessage, RawBytes};
use kafka_sync::transport::ConsumedRecord;

use crate::output::safe_bytes;
use crate::Ctx;

type Res = Result<(), Box<dyn std::error::Error>>;

/// One record as `tail --json` prints it.
pub fn record_json(r: &ConsumedRecord) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                serde_json::to_value(RawBytes::from_slice(&h.value)).unwrap_or_default(),
            )
        })
        .collect();
    let mut out = serde_json::json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "key": r.key.as_deref().map(RawBytes::from_slice),
        "headers": headers,
    });
    match KafkaMessage::from_bytes(&r.value) {
        Ok(m) => out["envelope"] = serde_json::to_value(m).unwrap_or_default(),
        Err(e) => {
            out["decode_error"] = e.to_string().into();
            out["raw_value"] =
                serde_json::to_value(RawBytes::from_slice(&r.value)).unwrap_or_default();
        }
    }
    out
}

/// One record as a table line.
pub fn record_line(r: &ConsumedRecord) -> String {
    let place = format!("{}@{}", r.partition, r.offset);
    match KafkaMessage::from_bytes(&r.value) {
        Ok(m) => format!(
            "{place:<10} {:<14} id={} correlation={} attempt={} source={} payload={}",
            m.message_type,
            m.id,
            m.correlation_id,
            m.attempt,
            if m.source_service.is_empty() {
                "-"
            } else {
                &m.source_service
            },
            m.payload
        ),
        Err(e) => format!(
            "{place:<10} (undecodable: {}) raw={}",
            e.message(),
            safe_bytes(&r.value)
        ),
    }
}

pub fn tail(
    ctx: &Ctx,
    topic: &str,
    from_beginning: bool,
    max: Option<usize>,
    partition: Option<i32>,
    idle: Option<u64>,
) -> Res {
    let offsets = ctx.admin.topic_offsets(topic)?;
    if let Some(p) = partition {
        if !offsets.iter().any(|o| o.partition == p) {
            return Err(format!(
                "topic {topic:?} has no partition {p} (it has {})",
                offsets.len()
            )
            .into());
        }
    }
    let mut positions: BTreeMap<i32, i64> = offsets
        .iter()
        .filter(|o| partition.is_none_or(|p| p == o.partition))
        .map(|o| {
            (
                o.partition,
                if from_beginning { o.earliest } else { o.latest },
            )
        })
        .collect();
    let mut printed = 0usize;
    let mut last_record = Instant::now();
    let mut out = std::io::stdout().lock();
    loop {
        if max.is_some_and(|m| printed >= m) {
            break;
        }
        if idle.is_some_and(|s| last_record.elapsed() >= Duration::from_secs(s)) {
            break;
        }
        let records = ctx
            .admin
            .read(topic, &mut positions, Duration::from_millis(500))?;
        if !records.is_empty() {
            last_record = Instant::now();
        }
        for r in records {
            if max.is_some_and(|m| printed >= m) {
                break;
            }
            let line = if ctx.cli_json {
                record_json(&r).to_string()
            } else {
                record_line(&r)
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // stdout closed (a pipe into `head`)
            }
            printed += 1;
        }
        let _ = out.flush();
    }
    Ok(())
}

/// Every record of `topic` from its earliest offsets up to the latest ones as of the call
/// (bounded: gives up after `bound` without progress).
pub fn read_all(
    ctx: &Ctx,
    topic: &str,
    bound: Duration,
) -> kafka_sync::Result<Vec<ConsumedRecord>> {
    let offsets = ctx.admin.topic_offsets(topic)?;
    let end: BTreeMap<i32, i64> = offsets.iter().map(|o| (o.partition, o.latest)).collect();
    let mut positions: BTreeMap<i32, i64> = offsets
        .iter()
        .filter(|o| o.latest > o.earliest)
        .map(|o| (o.partition, o.earliest))
        .collect();
    let mut all = Vec::new();
    let mut progress_at = Instant::now();
    while positions.iter().any(|(p, o)| *o < end[p]) {
        if progress_at.elapsed() > bound {
            return Err(kafka_sync::Error::timeout(
                format!("reading {topic} to its end (at {positions:?}, end {end:?})"),
                bound,
            ));
        }
        positions.retain(|p, o| *o < end[p]);
        let records = ctx
            .admin
            .read(topic, &mut positions, Duration::from_millis(500))?;
        if !records.is_empty() {
            progress_at = Instant::now();
        }
        all.extend(records.into_iter().filter(|r| r.offset < end[&r.partition]));
    }
    all.sort_by_key(|r| (r.partition, r.offset));
    Ok(all)
}
