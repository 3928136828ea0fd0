//! `dlq replay`: publish the originals again, record each replay.

use std::time::SystemTime;

use kafka_sync::domain::Delivery;
use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::transport::{partition_for_key, OutgoingRecord, ProduceOptions, Transport};
use kafka_sync::{Acks, Compression};
use serde::Serialize;

use super::format::{replay_topic, rfc3339, Entry, Replay, REPLAY_TYPE};
use crate::output::{opt, print_json, Table};
use crate::Ctx;

type Res = Result<(), Box<dyn std::error::Error>>;

pub fn replay(
    ctx: &Ctx,
    dlq: &str,
    chosen: Vec<Entry>,
    to: Option<&str>,
    dry_run: bool,
    force: bool,
    one: bool,
) -> Res {
    #[derive(Serialize)]
    struct Outcome {
        id: String,
        message_id: Option<String>,
        to: String,
        result: String,
    }
    let mut outcomes = Vec::new();
    let kafka = if dry_run { None } else { Some(ctx.kafka()?) };
    let replays_topic = replay_topic(dlq);
    if !dry_run {
        ctx.admin.ensure_topic(&replays_topic, 1, -1)?;
    }
    let mut failures = 0;
    for e in chosen {
        let target = to
            .map(str::to_string)
            .unwrap_or_else(|| e.origin_topic.clone());
        let mut outcome = Outcome {
            id: e.id.clone(),
            message_id: e.message_id.clone(),
            to: target.clone(),
            result: String::new(),
        };
        if !e.replays.is_empty() && !force {
            outcome.result = format!(
                "skipped: replayed {} time(s) already (--force to replay again)",
                e.replays.len()
            );
            if one {
                failures += 1;
            }
            outcomes.push(outcome);
            continue;
        }
        let Some(bytes) = e.original.clone() else {
            outcome.result = "skipped: the dead letter holds no original message".into();
            failures += 1;
            outcomes.push(outcome);
            continue;
        };
        if target.is_empty() {
            outcome.result = "skipped: no original topic recorded (use --to)".into();
            failures += 1;
            outcomes.push(outcome);
            continue;
        }
        let Some(kafka) = &kafka else {
            outcome.result = "would replay (dry run)".into();
            outcomes.push(outcome);
            continue;
        };
        let producer = kafka.producer();
        let sent = match KafkaMessage::from_bytes(&bytes) {
            Ok(mut m) => {
                m.attempt = 0;
                producer.send(&target, &m)
            }
            // Bytes that were not an envelope go back as they were, key included.
            Err(_) => send_raw(ctx, &target, &e, &bytes),
        };
        let d = match sent {
            Ok(d) => d,
            Err(err) => {
                outcome.result = format!("failed: {err}");
                failures += 1;
                outcomes.push(outcome);
                continue;
            }
        };
        let record = Replay {
            dead_letter_topic: dlq.to_string(),
            dead_letter_id: e.id.clone(),
            message_id: e.message_id.clone(),
            replayed_to: target.clone(),
            replayed_at: rfc3339(SystemTime::now()).unwrap_or_default(),
            partition: d.partition,
            offset: d.offset,
        };
        let marker = KafkaMessage::new(MessageType::new(REPLAY_TYPE), &record)?
            .with_correlation_id(e.correlation_id.clone().unwrap_or_default())
            .with_source_service("kafka-sync-cli");
        outcome.result = match producer.send(&replays_topic, &marker) {
            Ok(_) => format!("replayed to {target}/{}@{}", d.partition, d.offset),
            Err(err) => {
                failures += 1;
                format!(
                    "replayed to {target}/{}@{} but NOT recorded on {replays_topic}: {err}",
                    d.partition, d.offset
                )
            }
        };
        outcomes.push(outcome);
    }
    if let Some(k) = kafka {
        k.close(ctx.config.request_timeout * 2)?;
    }
    if ctx.cli_json {
        print_json(&serde_json::json!({"topic": dlq, "dry_run": dry_run, "entries": outcomes}))?;
    } else {
        let mut t = Table::new(&["ID", "MESSAGE", "TO", "RESULT"]);
        for o in &outcomes {
            t.row(vec![
                o.id.clone(),
                opt(o.message_id.clone()),
                o.to.clone(),
                o.result.clone(),
            ]);
        }
        if t.is_empty() {
            println!("nothing to replay on {dlq}");
        } else {
            t.print();
        }
    }
    if failures > 0 {
        return Err(format!(
            "{failures} entr{} not replayed",
            if failures == 1 { "y" } else { "ies" }
        )
        .into());
    }
    Ok(())
}

/// Appends the original bytes to `topic` as they were (key included): on the origin
/// partition when `topic` has it (the order the original had), else on the partition the
/// key hashes to, else partition 0.
fn send_raw(ctx: &Ctx, topic: &str, e: &Entry, bytes: &[u8]) -> kafka_sync::Result<Delivery> {
    let partitions = ctx.admin.partition_ids(topic)?.len();
    let partition = match &e.original_key {
        _ if e.origin_partition >= 0 && (e.origin_partition as usize) < partitions => {
            e.origin_partition
        }
        Some(key) => partition_for_key(key, partitions),
        None => 0,
    };
    let record = OutgoingRecord {
        partition,
        key: e.original_key.clone(),
        value: bytes.to_vec(),
        headers: Vec::new(),
    };
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: ctx.config.request_timeout,
    };
    let mut session = ctx.admin.connect_producer()?;
    session
        .produce(topic, &[record], &options)
        .pop()
        .unwrap_or_else(|| {
            Err(kafka_sync::Error::new(
                kafka_sync::ErrorKind::Broker,
                "no answer to the produce request",
            ))
        })
}
