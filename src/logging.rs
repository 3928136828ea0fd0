//! Log lines as JSON, one object per line, so that a URL's whole path through the pipeline
//! is one filter away (`jq 'select(.correlation_id=="run-42")'`).
//!
//! The library logs through the [`log`] facade and never installs a logger; a program
//! chooses one. [`init`] installs `env_logger` (filter from `RUST_LOG`, default `info`) in
//! the format `KAFKA_SYNC_LOG_FORMAT` names: `text` (the default, human-readable) or `json`.
//!
//! A JSON line carries `time` (RFC 3339, UTC), `level`, `target`, `message`, and every
//! key-value pair the call site attached (`log::info!(correlation_id = id, topic = t; "…")`).
//! The library's own lines about a message name it in one fixed form,
//! `message <id> (correlation <cid>, …) at <topic>/<partition>@<offset>`; the formatter lifts
//! those into the fields `message_id`, `correlation_id`, `topic`, `partition` and `offset`
//! when the call site did not set them, so they can be filtered like the rest.
//!
//! ```
//! use kafka_sync::logging::json_line;
//! let line = json_line(
//!     &log::Record::builder()
//!         .level(log::Level::Warn)
//!         .target("kafka_sync::consumer")
//!         .args(format_args!("dead-lettering message 6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50 (correlation run-7) from scraping-tasks/2@41 after 1 attempt(s)"))
//!         .build(),
//! );
//! assert_eq!(line["correlation_id"], "run-7");
//! assert_eq!(line["topic"], "scraping-tasks");
//! assert_eq!(line["partition"], 2);
//! assert_eq!(line["offset"], 41);
//! ```

use std::io::Write;

use log::kv::{Key, Value, VisitSource};
use serde_json::{Map, Value as Json};

/// The environment variable that selects the log format: `json` or `text`.
pub const FORMAT_VAR: &str = "KAFKA_SYNC_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `env_logger`'s human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format `KAFKA_SYNC_LOG_FORMAT` names (`json`, else text).
    pub fn from_env() -> LogFormat {
        match std::env::var(FORMAT_VAR) {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs `env_logger` in the format `KAFKA_SYNC_LOG_FORMAT` names, filtered by `RUST_LOG`
/// (default `info`). Does nothing if a logger is installed already.
pub fn init() {
    init_with(LogFormat::from_env(), "info");
}

/// Installs `env_logger` writing `format` to stderr, filtered by `RUST_LOG` (else
/// `default_filter`, e.g. `"info"` or `"warn,kafka_sync=info"`). Does nothing if a logger is
/// installed already.
pub fn init_with(format: LogFormat, default_filter: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    if format == LogFormat::Json {
        builder.format(|buf, record| writeln!(buf, "{}", ordered_line(record)));
    }
    let _ = builder.try_init();
}

/// The JSON object for one log record (what a JSON line holds).
pub fn json_line(record: &log::Record<'_>) -> Json {
    let mut line = Map::new();
    line.insert("time".into(), Json::String(now_rfc3339()));
    line.insert("level".into(), Json::String(record.level().to_string()));
    line.insert("target".into(), Json::String(record.target().to_string()));
    let message = record.args().to_string();
    let mut fields = Fields(Map::new());
    let _ = record.key_values().visit(&mut fields);
    for (k, v) in lift_from_text(&message) {
        fields.0.entry(k).or_insert(v);
    }
    line.insert("message".into(), Json::String(message));
    for (k, v) in fields.0 {
        line.entry(k).or_insert(v);
    }
    Json::Object(line)
}

/// [`json_line`] as text with `time`, `level`, `target` and `message` first, the other
/// fields after them by name.
pub fn ordered_line(record: &log::Record<'_>) -> String {
    let Json::Object(mut map) = json_line(record) else {
        return String::new();
    };
    let mut out = String::from("{");
    let mut first = true;
    let mut put = |k: &str, v: &Json| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Json::String(k.to_string()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    };
    for k in ["time", "level", "target", "message"] {
        if let Some(v) = map.remove(k) {
            put(k, &v);
        }
    }
    for (k, v) in &map {
        put(k, v);
    }
    out.push('}');
    out
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Collects key-value pairs as JSON: numbers and booleans as such, the rest as text.
struct Fields(Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            Json::from(n)
        } else if let Some(n) = value.to_i64() {
            Json::from(n)
        } else if let Some(b) = value.to_bool() {
            Json::Bool(b)
        } else if let Some(f) = value.to_f64() {
            serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
        } else {
            Json::String(value.to_string())
        };
        self.0.insert(key.as_str().to_string(), json);
        Ok(())
    }
}

/// The ids the library's lines name in text: `message <uuid>`, `correlation <id>`, and
/// `<topic>/<partition>@<offset>` after ` at ` or ` from `.
fn lift_from_text(text: &str) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    if let Some(rest) = text.split_once("message ").map(|(_, r)| r) {
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
            .collect();
        if id.len() == 36 {
            out.push(("message_id".to_string(), Json::String(id)));
        }
    }
    if let Some(rest) = text.split_once("(correlation ").map(|(_, r)| r) {
        let id: String = rest
            .chars()
            .take_while(|c| !matches!(c, ',' | ')'))
            .collect();
        if !id.is_empty() && id != "?" {
            out.push(("correlation_id".to_string(), Json::String(id)));
        }
    }
    for marker in [" at ", " from "] {
        for (_, rest) in text
            .match_indices(marker)
            .map(|(i, m)| text.split_at(i + m.len()))
        {
            let word: &str = rest.split_whitespace().next().unwrap_or("");
            let word = word.trim_end_matches([',', ':', ';', ')']);
            let Some((topic, place)) = word.rsplit_once('/') else {
                continue;
            };
            let Some((partition, offset)) = place.split_once('@') else {
                continue;
            };
            if let (Ok(p), Ok(o)) = (partition.parse::<i32>(), offset.parse::<i64>()) {
                if !topic.is_empty() {
                    out.push(("topic".to_string(), Json::String(topic.to_string())));
                    out.push(("partition".to_string(), Json::from(p)));
                    out.push(("offset".to_string(), Json::from(o)));
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: std::fmt::Arguments<'_>) -> Json {
        json_line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("t")
                .args(args)
                .build(),
        )
    }

    #[test]
    fn the_consumers_tag_is_lifted_into_fields() {
        let l = line(format_args!(
            "message 6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50 (correlation req-1, type scraping_task) at scraping-tasks/0@7 attempt 2 failed: boom"
        ));
        assert_eq!(l["message_id"], "6f1c2a8e-3b4d-4c5e-8f9a-0b1c2d3e4f50");
        assert_eq!(l["correlation_id"], "req-1");
        assert_eq!(
            (
                l["topic"].as_str(),
                l["partition"].as_i64(),
                l["offset"].as_i64()
            ),
            (Some("scraping-tasks"), Some(0), Some(7))
        );
        assert_eq!(l["level"], "INFO");
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn lines_start_with_time_level_target_message_and_parse() {
        let text = ordered_line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("t")
                .args(format_args!("say \"hi\""))
                .build(),
        );
        assert!(text.starts_with("{\"time\":"), "{text}");
        let back: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(back["message"], "say \"hi\"");
    }

    #[test]
    fn plain_lines_get_no_invented_fields() {
        let l = line(format_args!("consumer thread for retry stopped at noon"));
        assert!(l.get("correlation_id").is_none());
        assert!(l.get("topic").is_none());
        assert_eq!(l["message"], "consumer thread for retry stopped at noon");
    }

    #[test]
    fn key_values_become_typed_fields() {
        let kvs: [(&str, Value<'_>); 3] = [
            ("correlation_id", Value::from("c-9")),
            ("partition", Value::from(3i32)),
            ("retried", Value::from(true)),
        ];
        let l = json_line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("t")
                .args(format_args!("x"))
                .key_values(&kvs)
                .build(),
        );
        assert_eq!(l["correlation_id"], "c-9");
        assert_eq!(l["partition"], 3);
        assert_eq!(l["retried"], true);
    }
}
