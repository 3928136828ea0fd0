//! `produce`: JSON lines from stdin, one envelope each. Every line is checked before
//! anything is sent, so a bad line stops the command with nothing half-sent.

use std::io::BufRead;

use kafka_sync::domain::{KafkaMessage, MessageType};
use serde::Serialize;

use crate::output::{print_json, Table};
use crate::Ctx;

type Res = Result<(), Box<dyn std::error::Error>>;

/// The envelopes of `input`'s lines (blank lines skipped), or the first bad line's error.
pub fn parse_lines(
    input: impl BufRead,
    message_type: Option<&str>,
    correlation_id: Option<&str>,
    source: &str,
) -> Result<Vec<KafkaMessage>, String> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: cannot be read: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let message = match message_type {
            Some(t) => {
                let payload: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| format!("line {n}: not JSON: {e}"))?;
                let m = KafkaMessage::from_json(MessageType::new(t.to_string()), payload)
                    .with_source_service(source);
                match correlation_id {
                    Some(c) => m.with_correlation_id(c),
                    None => m,
                }
            }
            None => KafkaMessage::from_bytes(line.as_bytes()).map_err(|e| {
                format!(
                    "line {n}: {} (without --type each line must be a whole envelope with id, type, correlation_id, created_at and payload)",
                    e.message()
                )
            })?,
        };
        out.push(message);
    }
    Ok(out)
}

pub fn produce(
    ctx: &Ctx,
    topic: &str,
    message_type: Option<&str>,
    correlation_id: Option<&str>,
    source: &str,
    input: impl BufRead,
) -> Res {
    let messages = parse_lines(input, message_type, correlation_id, source)?;
    ctx.admin.partition_ids(topic)?; // an unknown topic is an error, not created by accident
    if messages.is_empty() {
        return Err("no lines on stdin: nothing to send".into());
    }
    let kafka = ctx.kafka()?;
    let producer = kafka.producer();
    #[derive(Serialize)]
    struct Sent {
        line: usize,
        partition: i32,
        offset: i64,
    }
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in producer.send_batch(topic, messages).into_iter().enumerate() {
        match r {
            Ok(d) => sent.push(Sent {
                line: i + 1,
                partition: d.partition,
                offset: d.offset,
            }),
            Err(e) => failed.push(format!("message {} of the input: {}", i + 1, e.error)),
        }
    }
    producer.close()?;
    if !failed.is_empty() {
        return Err(format!(
            "{} of {} not sent: {}",
            failed.len(),
            failed.len() + sent.len(),
            failed.join("; ")
        )
        .into());
    }
    if ctx.cli_json {
        return print_json(
            &serde_json::json!({"topic": topic, "sent": sent.len(), "deliveries": sent}),
        );
    }
    let mut t = Table::new(&["MESSAGE", "PARTITION", "OFFSET"]);
    for s in &sent {
        t.row(vec![
            s.line.to_string(),
            s.partition.to_string(),
            s.offset.to_string(),
        ]);
    }
    t.print();
    println!("sent {} message(s) to {topic}", sent.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let input = "{\"url\":\"a\"}\n\n{\"url\":\"b\"}\n{oops\n{\"url\":\"c\"}\n";
        let e = parse_lines(input.as_bytes(), Some("scraping_task"), None, "cli").unwrap_err();
        assert!(e.starts_with("line 4: not JSON"), "{e}");
        let ok = parse_lines(
            "{\"url\":\"a\"}\n\n[1]\n".as_bytes(),
            Some("t"),
            Some("c-1"),
            "cli",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].correlation_id, "c-1");
        let e = parse_lines("{\"url\":\"a\"}\n".as_bytes(), None, None, "cli").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
    }
}
