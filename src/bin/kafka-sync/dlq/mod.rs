//! `dlq list` and `dlq replay`. What a dead letter looks like on the wire is in
//! [`format`] only.
//!
//! A replay re-publishes the original message to its original topic (or `--to`) with its
//! attempt count reset, same id and correlation id, then records the replay on the topic
//! `<dead-letter topic>-replays`; `list` shows which entries were replayed and `replay`
//! skips them unless `--force`, so nothing is replayed twice by accident.

mod format;
mod replay;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use kafka_sync::domain::KafkaMessage;
use kafka_sync::ErrorKind;

use self::format::{decode, parse_time, replay_topic, Entry, Replay};
use crate::output::{opt, print_json, Table};
use crate::tail::read_all;
use crate::Ctx;

type Res = Result<(), Box<dyn std::error::Error>>;

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
            replay::replay(
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

#[cfg(test)]
mod tests {
    use super::*;

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
