//! `dlq list` and `dlq replay`. The one module that knows what a dead letter looks like on
//! the wire, so a change of format is a change here only. Two forms are read:
//!
//! - the envelope form: a [`KafkaMessage`] of type `dead_letter` whose payload is a
//!   [`DeadLetterRecord`] (what the consumer writes today);
//! - the headers form: the original value unchanged, the metadata in record headers named
//!   `dead-letter-kind`, `dead-letter-error`, `dead-letter-origin-topic`,
//!   `dead-letter-origin-partition`, `dead-letter-origin-offset`, `dead-letter-group`,
//!   `dead-letter-service`, `dead-letter-attempts`, `dead-letter-failed-at` (prefixes
//!   `dlq-` / `x-dead-letter-` and `_` for `-` are accepted too).
//!
//! A replay re-publishes the original message to its original topic (or `--to`) with its
//! attempt count reset, same id and correlation id, then records the replay on the topic
//! `<dead-letter topic>-replays`; `list` shows which entries were replayed and `replay`
//! skips them unless `--force`, so nothing is replayed twice by accident.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use kafka_sync::domain::{DeadLetterRecord, KafkaMessage, MessageType};
use kafka_sync::transport::ConsumedRecord;
use kafka_sync::transport::Transport;
use kafka_sync::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::output::{opt, print_json, Table};
use crate::tail::read_all;
use crate::Ctx;

type Res = Result<(), Box<dyn std::error::Error>>;

/// The message type of a replay record.
const REPLAY_TYPE: &str = "dead_letter_replay";

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters: id, kind, message type, correlation id, origin, error, replayed.
    List {
        /// The dead-letter topic (default: KAFKA_DEAD_LETTER_TOPIC or dead-letter).
        #[arg(long)]
        topic: Option<String>,
        /// Only messages of this type.
        #[arg(long = "type", value_name = "TYPE")]
        message_type: Option<String>,
        /// Only this kind (decode, handler, permanent, unknown_type, exhausted, timeout, panic).
        #[arg(long)]
        kind: Option<String>,
        /// Only dead letters since TIME: RFC 3339 (2026-01-01T00:00:00Z) or an age (30s, 10m, 2h, 1d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Re-publish dead letters to their original topic with attempts reset, and record it.
    Replay {
        /// The entry to replay: its id from `dlq list` (PARTITION:OFFSET) or its message id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every entry not replayed yet (with --type / --kind filters).
        #[arg(long)]
        all: bool,
        /// Publish to this topic instead of each message's original one.
        #[arg(long)]
        to: Option<String>,
        /// Show what would be replayed; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replay entries that were replayed before too.
        #[arg(long)]
        force: bool,
        /// The dead-letter topic (default: KAFKA_DEAD_LETTER_TOPIC or dead-letter).
        #[arg(long)]
        topic: Option<String>,
        /// With --all: only messages of this type.
        #[arg(long = "type", value_name = "TYPE")]
        message_type: Option<String>,
        /// With --all: only this kind.
        #[arg(long)]
        kind: Option<String>,
    },
}

/// A dead letter, whichever form it was written in.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `PARTITION:OFFSET` on the dead-letter topic.
    pub id: String,
    pub partition: i32,
    pub offset: i64,
    pub kind: String,
    pub error: String,
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub correlation_id: Option<String>,
    pub origin_topic: String,
    pub origin_partition: i32,
    pub origin_offset: i64,
    pub group: String,
    pub service: String,
    pub attempts: u32,
    /// RFC 3339.
    pub failed_at: Option<String>,
    /// `envelope` or `headers`.
    pub format: &'static str,
    /// Replays recorded for it.
    pub replays: Vec<Replay>,
    #[serde(skip)]
    failed_at_time: Option<SystemTime>,
    /// The bytes to publish again (the original envelope or value).
    #[serde(skip)]
    original: Option<Vec<u8>>,
    #[serde(skip)]
    original_key: Option<Vec<u8>>,
}

/// What the replay topic records for each replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replay {
    pub dead_letter_topic: String,
    pub dead_letter_id: String,
    pub message_id: Option<String>,
    pub replayed_to: String,
    pub replayed_at: String,
    pub partition: i32,
    pub offset: i64,
}

fn rfc3339(t: SystemTime) -> Option<String> {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The record as a dead letter, in either form; `None` if it is neither.
pub fn decode(r: &ConsumedRecord) -> Option<Entry> {
    let base = |format| Entry {
        id: format!("{}:{}", r.partition, r.offset),
        partition: r.partition,
        offset: r.offset,
        kind: String::new(),
        error: String::new(),
        message_id: None,
        message_type: None,
        correlation_id: None,
        origin_topic: String::new(),
        origin_partition: -1,
        origin_offset: -1,
        group: String::new(),
        service: String::new(),
        attempts: 0,
        failed_at: None,
        format,
        replays: Vec::new(),
        failed_at_time: None,
        original: None,
        original_key: None,
    };
    if let Ok(envelope) = KafkaMessage::from_bytes(&r.value) {
        if envelope.message_type == MessageType::DEAD_LETTER {
            let d: DeadLetterRecord = envelope.payload_as().ok()?;
            let mut e = base("envelope");
            e.kind = d.kind.to_string();
            e.error = d.error.clone();
            e.message_id = d.message_id.map(|i| i.to_string());
            e.message_type = d.message_type.as_ref().map(|t| t.to_string());
            e.correlation_id = d.correlation_id.clone();
            e.origin_topic = d.origin.topic.clone();
            e.origin_partition = d.origin.partition;
            e.origin_offset = d.origin.offset;
            e.group = d.group.clone();
            e.service = d.service.clone();
            e.attempts = d.attempts;
            e.failed_at = rfc3339(d.last_failure_at);
            e.failed_at_time = Some(d.last_failure_at);
            let bytes = d.replay_bytes();
            e.original = (!bytes.is_empty()).then_some(bytes);
            e.original_key = d.key.as_ref().map(|k| k.to_vec());
            return Some(e);
        }
    }
    let headers: HashMap<String, String> = r
        .headers
        .iter()
        .filter_map(|h| {
            let k = h.key.to_ascii_lowercase().replace('_', "-");
            let k = ["x-dead-letter-", "dead-letter-", "dlq-"]
                .iter()
                .find_map(|p| k.strip_prefix(p))?
                .to_string();
            Some((k, String::from_utf8_lossy(&h.value).into_owned()))
        })
        .collect();
    if !headers.contains_key("kind") && !headers.contains_key("error") {
        return None;
    }
    let mut e = base("headers");
    let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
    e.kind = h("kind");
    e.error = h("error");
    e.origin_topic = h("origin-topic");
    e.origin_partition = h("origin-partition").parse().unwrap_or(-1);
    e.origin_offset = h("origin-offset").parse().unwrap_or(-1);
    e.group = h("group");
    e.service = h("service");
    e.attempts = h("attempts").parse().unwrap_or(0);
    e.failed_at = headers.get("failed-at").cloned();
    e.failed_at_time = e.failed_at.as_deref().and_then(parse_time);
    if let Ok(m) = KafkaMessage::from_bytes(&r.value) {
        e.message_id = Some(m.id.to_string());
        e.message_type = Some(m.message_type.to_string());
        e.correlation_id = Some(m.correlation_id.clone());
    }
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|x| x.key == name)
            .map(|x| String::from_utf8_lossy(&x.value).into_owned())
    };
    e.message_id = e.message_id.or_else(|| header("message-id"));
    e.message_type = e.message_type.or_else(|| header("message-type"));
    e.correlation_id = e.correlation_id.or_else(|| header("correlation-id"));
    e.original = Some(r.value.clone());
    e.original_key = r.key.clone();
    Some(e)
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let dt =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_nanos(u64::try_from(dt.unix_timestamp_nanos()).ok()?),
    )
}

/// `--since`: RFC 3339 or an age such as `30s`, `10m`, `2h`, `1d`.
pub fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Some(t) = parse_time(text) {
        return Ok(t);
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().map_err(|_| format!("--since {text:?}: expected RFC 3339 (2026-01-01T00:00:00Z) or an age like 30s, 10m, 2h, 1d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "--since {text:?}: unknown unit {unit:?} (s, m, h, d)"
            ))
        }
    };
    Ok(SystemTime::now() - Duration::from_secs(secs))
}

fn replay_topic(dlq: &str) -> String {
    format!("{dlq}-replays")
}

/// Every dead letter of `dlq` with the replays recorded for it.
fn entries(ctx: &Ctx, dlq: &str) -> kafka_sync::Result<Vec<Entry>> {
    let bound = ctx.config.request_timeout * 4;
    let mut all: Vec<Entry> = read_all(ctx, dlq, bound)?
        .iter()
        .filter_map(decode)
        .collect();
    let replays = match read_all(ctx, &replay_topic(dlq), bound) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::UnknownTopic => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut by_id: HashMap<String, Vec<Replay>> = HashMap::new();
    for r in replays {
        if let Ok(m) = KafkaMessage::from_bytes(&r.value) {
            if let Ok(replay) = m.payload_as::<Replay>() {
                if replay.dead_letter_topic == dlq {
                    by_id
                        .entry(replay.dead_letter_id.clone())
                        .or_default()
                        .push(replay);
                }
            }
        }
    }
    for e in &mut all {
        e.replays = by_id.remove(&e.id).unwrap_or_default();
    }
    Ok(all)
}

fn filter(
    all: Vec<Entry>,
    message_type: Option<&str>,
    kind: Option<&str>,
    since: Option<SystemTime>,
) -> Vec<Entry> {
    all.into_iter()
        .filter(|e| message_type.is_none_or(|t| e.message_type.as_deref() == Some(t)))
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .filter(|e| since.is_none_or(|s| e.failed_at_time.is_some_and(|t| t >= s)))
        .collect()
}

pub fn run(ctx: &Ctx, cmd: DlqCommand) -> Res {
    let default_topic = ctx.config.consumer.dead_letter_topic.clone();
    match cmd {
        DlqCommand::List {
            topic,
            message_type,
            kind,
            since,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let dlq = topic.unwrap_or(default_topic);
            let list = filter(
                entries(ctx, &dlq)?,
                message_type.as_deref(),
                kind.as_deref(),
                since,
            );
            if ctx.cli_json {
                return print_json(&serde_json::json!({"topic": dlq, "entries": list}));
            }
            let mut t = Table::new(&[
                "ID",
                "KIND",
                "TYPE",
                "CORRELATION",
                "ORIGIN",
                "ATTEMPTS",
                "FAILED-AT",
                "REPLAYED",
                "ERROR",
            ]);
            for e in &list {
                let mut error = e.error.replace('\n', " ");
                if error.chars().count() > 60 {
                    error = error.chars().take(59).collect::<String>() + "…";
                }
                t.row(vec![
                    e.id.clone(),
                    e.kind.clone(),
                    opt(e.message_type.clone()),
                    opt(e.correlation_id.clone()),
                    format!(
                        "{}/{}@{}",
                        e.origin_topic, e.origin_partition, e.origin_offset
                    ),
                    e.attempts.to_string(),
                    opt(e.failed_at.clone()),
                    if e.replays.is_empty() {
                        "no".into()
                    } else {
                        format!("{}x", e.replays.len())
                    },
                    error,
                ]);
            }
            println!("topic {dlq}: {} dead letter(s)", list.len());
            if !t.is_empty() {
                t.print();
            }
            Ok(())
        }
        DlqCommand::Replay {
            id,
            all: _,
            to,
            dry_run,
            force,
            topic,
            message_type,
            kind,
        } => {
            let dlq = topic.unwrap_or(default_topic);
            let everything = entries(ctx, &dlq)?;
            let chosen: Vec<Entry> = match &id {
                Some(id) => {
                    let found: Vec<Entry> = everything
                        .into_iter()
                        .filter(|e| &e.id == id || e.message_id.as_deref() == Some(id.as_str()))
                        .collect();
                    if found.is_empty() {
                        return Err(format!(
                            "no dead letter {id:?} on {dlq} (see `kafka-sync dlq list`)"
                        )
                        .into());
                    }
                    found
                }
                None => filter(everything, message_type.as_deref(), kind.as_deref(), None),
            };
            replay(
                ctx,
                &dlq,
                chosen,
                to.as_deref(),
                dry_run,
                force,
                id.is_some(),
            )
        }
    }
}

fn replay(
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
            Err(_) => {
                outcome.result = "skipped: the original is not an envelope (raw bytes cannot be re-sent through the producer)".into();
                failures += 1;
                outcomes.push(outcome);
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_sync::transport::Header;

    #[test]
    fn the_headers_form_is_read_with_the_original_value() {
        let original = KafkaMessage::from_json(MessageType::new("t"), serde_json::json!({"a": 1}))
            .with_correlation_id("c-1");
        let r = ConsumedRecord {
            topic: "dead-letter".into(),
            partition: 1,
            offset: 9,
            key: None,
            value: original.to_bytes().unwrap(),
            headers: vec![
                Header::new("dead-letter-kind", "permanent"),
                Header::new("dead_letter_error", "gone"),
                Header::new("dead-letter-origin-topic", "scraping-tasks"),
                Header::new("dead-letter-origin-partition", "2"),
                Header::new("dead-letter-origin-offset", "40"),
            ],
        };
        let e = decode(&r).unwrap();
        assert_eq!(
            (e.id.as_str(), e.kind.as_str(), e.error.as_str(), e.format),
            ("1:9", "permanent", "gone", "headers")
        );
        assert_eq!(
            (e.origin_topic.as_str(), e.origin_partition, e.origin_offset),
            ("scraping-tasks", 2, 40)
        );
        assert_eq!(e.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(e.original.as_deref(), Some(&r.value[..]));
        let plain = ConsumedRecord {
            headers: vec![],
            ..r
        };
        assert!(
            decode(&plain).is_none(),
            "an ordinary message is not a dead letter"
        );
    }

    #[test]
    fn since_takes_rfc3339_or_an_age() {
        assert!(parse_since("2026-01-01T00:00:00Z").is_ok());
        let ten_minutes = parse_since("10m").unwrap();
        let age = SystemTime::now().duration_since(ten_minutes).unwrap();
        assert!(age >= Duration::from_secs(600) && age < Duration::from_secs(605));
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_since("5y").unwrap_err().contains("unknown unit"));
    }
}
