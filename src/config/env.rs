//! [`Config::from_env`]: configuration from `KAFKA_*` environment variables, one row of
//! [`VARIABLES`] per setting.

use std::time::Duration;

use super::{Acks, Assignor, Compression, Config, StartOffset, TransportKind, UnknownTypePolicy};
use crate::error::{Error, Result};

/// One environment variable: its name, the field it sets, how it is parsed, and a value the
/// tests set it to (different from the default).
pub(super) struct Variable {
    pub(super) name: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) field: &'static str,
    apply: fn(&mut Config, &str) -> Result<()>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) sample: &'static str,
}

macro_rules! var {
    ($name:literal, $field:literal, $sample:literal, |$c:ident, $v:ident| $body:expr) => {
        Variable {
            name: $name,
            field: $field,
            sample: $sample,
            apply: |$c: &mut Config, $v: &str| -> Result<()> {
                $body;
                Ok(())
            },
        }
    };
}

/// Every variable [`Config::from_env`] reads, besides the security ones (read by
/// [`Security::from_lookup`](super::Security)), in the order they are applied.
pub(super) const VARIABLES: &[Variable] = &[
    var!("KAFKA_BROKERS", "brokers", "a:1,b:2", |c, v| c.brokers =
        list(v)),
    var!("KAFKA_TRANSPORT", "transport", "kafka-crate", |c, v| c
        .transport =
        transport(v)?),
    var!("KAFKA_CLIENT_ID", "client_id", "scraper-1", |c, v| c
        .client_id =
        v.to_string()),
    var!("KAFKA_GROUP_ID", "group_id", "scrapers", |c, v| c
        .group_id =
        v.to_string()),
    var!("KAFKA_SERVICE_NAME", "service_name", "scraper", |c, v| c
        .service_name =
        v.to_string()),
    var!(
        "KAFKA_CONNECT_TIMEOUT_MS",
        "connect_timeout",
        "2000",
        |c, v| c.connect_timeout = millis("KAFKA_CONNECT_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_REQUEST_TIMEOUT_MS",
        "request_timeout",
        "20000",
        |c, v| c.request_timeout = millis("KAFKA_REQUEST_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_METADATA_MAX_AGE_MS",
        "metadata_max_age",
        "10000",
        |c, v| c.metadata_max_age = millis("KAFKA_METADATA_MAX_AGE_MS", v)?
    ),
    var!(
        "KAFKA_MAX_RESPONSE_BYTES",
        "max_response_bytes",
        "2000000",
        |c, v| c.max_response_bytes = number("KAFKA_MAX_RESPONSE_BYTES", v)?
    ),
    // producer
    var!(
        "KAFKA_BATCH_BYTES",
        "producer.batch_bytes",
        "500000",
        |c, v| c.producer.batch_bytes = number("KAFKA_BATCH_BYTES", v)?
    ),
    var!("KAFKA_BATCH_SIZE", "producer.batch_size", "500", |c, v| c
        .producer
        .batch_size =
        number("KAFKA_BATCH_SIZE", v)?),
    var!(
        "KAFKA_BATCH_TIMEOUT_MS",
        "producer.batch_timeout",
        "5",
        |c, v| c.producer.batch_timeout = millis("KAFKA_BATCH_TIMEOUT_MS", v)?
    ),
    var!("KAFKA_ACKS", "producer.acks", "1", |c, v| c.producer.acks =
        acks(v)?),
    var!(
        "KAFKA_QUEUE_CAPACITY",
        "producer.queue_capacity",
        "500",
        |c, v| c.producer.queue_capacity = number("KAFKA_QUEUE_CAPACITY", v)?
    ),
    var!(
        "KAFKA_BUFFER_BYTES",
        "producer.buffer_bytes",
        "67108864",
        |c, v| c.producer.buffer_bytes = number("KAFKA_BUFFER_BYTES", v)?
    ),
    var!(
        "KAFKA_ENQUEUE_TIMEOUT_MS",
        "producer.enqueue_timeout",
        "1000",
        |c, v| c.producer.enqueue_timeout = millis("KAFKA_ENQUEUE_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_COMPRESSION",
        "producer.compression",
        "snappy",
        |c, v| c.producer.compression = compression(v)?
    ),
    var!(
        "KAFKA_COMPRESSION_THRESHOLD",
        "producer.compression_threshold",
        "1024",
        |c, v| c.producer.compression_threshold = number("KAFKA_COMPRESSION_THRESHOLD", v)?
    ),
    var!(
        "KAFKA_MAX_MESSAGE_BYTES",
        "producer.max_message_bytes",
        "500000",
        |c, v| c.producer.max_message_bytes = number("KAFKA_MAX_MESSAGE_BYTES", v)?
    ),
    var!(
        "KAFKA_DELIVERY_TIMEOUT_MS",
        "producer.delivery_timeout",
        "60000",
        |c, v| c.producer.delivery_timeout = millis("KAFKA_DELIVERY_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_ENABLE_IDEMPOTENCE",
        "producer.idempotence",
        "false",
        |c, v| c.producer.idempotence = boolean("KAFKA_ENABLE_IDEMPOTENCE", v)?
    ),
    // consumer
    var!(
        "KAFKA_FETCH_MIN_BYTES",
        "consumer.min_bytes",
        "10000",
        |c, v| c.consumer.min_bytes = number("KAFKA_FETCH_MIN_BYTES", v)?
    ),
    var!(
        "KAFKA_FETCH_MAX_BYTES",
        "consumer.max_bytes",
        "2000000",
        |c, v| c.consumer.max_bytes = number("KAFKA_FETCH_MAX_BYTES", v)?
    ),
    var!(
        "KAFKA_FETCH_MAX_WAIT_MS",
        "consumer.max_wait",
        "200",
        |c, v| c.consumer.max_wait = millis("KAFKA_FETCH_MAX_WAIT_MS", v)?
    ),
    var!(
        "KAFKA_START_OFFSET",
        "consumer.start_offset",
        "latest",
        |c, v| c.consumer.start_offset = start_offset(v)?
    ),
    var!(
        "KAFKA_DEAD_LETTER_TOPIC",
        "consumer.dead_letter_topic",
        "dlq",
        |c, v| c.consumer.dead_letter_topic = v.to_string()
    ),
    var!(
        "KAFKA_RETRY_TOPIC",
        "consumer.retry_topic",
        "retry-later",
        |c, v| c.consumer.retry_topic = v.to_string()
    ),
    var!(
        "KAFKA_RETRY_TOPIC_ENABLED",
        "consumer.retry_topic_enabled",
        "false",
        |c, v| c.consumer.retry_topic_enabled = boolean("KAFKA_RETRY_TOPIC_ENABLED", v)?
    ),
    var!(
        "KAFKA_RETRY_TOPIC_DELAY_MS",
        "consumer.retry_topic_delay",
        "5000",
        |c, v| c.consumer.retry_topic_delay = millis("KAFKA_RETRY_TOPIC_DELAY_MS", v)?
    ),
    var!(
        "KAFKA_MAX_TOTAL_ATTEMPTS",
        "consumer.max_total_attempts",
        "4",
        |c, v| c.consumer.max_total_attempts = number("KAFKA_MAX_TOTAL_ATTEMPTS", v)?
    ),
    var!(
        "KAFKA_HANDLER_TIMEOUT_MS",
        "consumer.handler_timeout",
        "none",
        |c, v| c.consumer.handler_timeout = optional_millis("KAFKA_HANDLER_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_COMMIT_INTERVAL_MS",
        "consumer.commit_interval",
        "0",
        |c, v| c.consumer.commit_interval = millis("KAFKA_COMMIT_INTERVAL_MS", v)?
    ),
    var!(
        "KAFKA_UNKNOWN_TYPE",
        "consumer.unknown_type",
        "skip",
        |c, v| c.consumer.unknown_type = unknown_type(v)?
    ),
    var!(
        "KAFKA_DEDUPE_CAPACITY",
        "consumer.dedupe_capacity",
        "10",
        |c, v| c.consumer.dedupe_capacity = number("KAFKA_DEDUPE_CAPACITY", v)?
    ),
    var!(
        "KAFKA_DEDUPE_MAX_AGE_MS",
        "consumer.dedupe_max_age",
        "60000",
        |c, v| c.consumer.dedupe_max_age = millis("KAFKA_DEDUPE_MAX_AGE_MS", v)?
    ),
    var!(
        "KAFKA_SHUTDOWN_TIMEOUT_MS",
        "consumer.shutdown_timeout",
        "5000",
        |c, v| c.consumer.shutdown_timeout = millis("KAFKA_SHUTDOWN_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_SESSION_TIMEOUT_MS",
        "consumer.session_timeout",
        "45000",
        |c, v| c.consumer.session_timeout = millis("KAFKA_SESSION_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_HEARTBEAT_INTERVAL_MS",
        "consumer.heartbeat_interval",
        "3000",
        |c, v| c.consumer.heartbeat_interval = millis("KAFKA_HEARTBEAT_INTERVAL_MS", v)?
    ),
    var!(
        "KAFKA_REBALANCE_TIMEOUT_MS",
        "consumer.rebalance_timeout",
        "60000",
        |c, v| c.consumer.rebalance_timeout = millis("KAFKA_REBALANCE_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_RETRY_TOPIC_PER_GROUP",
        "consumer.retry_topic_per_group",
        "true",
        |c, v| c.consumer.retry_topic_per_group = boolean("KAFKA_RETRY_TOPIC_PER_GROUP", v)?
    ),
    var!(
        "KAFKA_DEAD_LETTER_TOPIC_PER_TOPIC",
        "consumer.dead_letter_topic_per_topic",
        "true",
        |c, v| c.consumer.dead_letter_topic_per_topic =
            boolean("KAFKA_DEAD_LETTER_TOPIC_PER_TOPIC", v)?
    ),
    var!(
        "KAFKA_GROUP_INSTANCE_ID",
        "consumer.group_instance_id",
        "scraper-7",
        |c, v| c.consumer.group_instance_id = Some(v.to_string())
    ),
    var!(
        "KAFKA_ISOLATION_LEVEL",
        "consumer.isolation_level",
        "read_uncommitted",
        |c, v| c.consumer.isolation_level = isolation_level(v)?
    ),
    var!(
        "KAFKA_MAX_POLL_RECORDS",
        "consumer.max_poll_records",
        "50",
        |c, v| c.consumer.max_poll_records = number("KAFKA_MAX_POLL_RECORDS", v)?
    ),
    var!(
        "KAFKA_MAX_POLL_INTERVAL_MS",
        "consumer.max_poll_interval",
        "60000",
        |c, v| c.consumer.max_poll_interval = millis("KAFKA_MAX_POLL_INTERVAL_MS", v)?
    ),
    var!(
        "KAFKA_MAX_WAITING_RETRIES",
        "consumer.max_waiting_retries",
        "7",
        |c, v| c.consumer.max_waiting_retries = number("KAFKA_MAX_WAITING_RETRIES", v)?
    ),
    var!(
        "KAFKA_RETRY_TOPIC_MAX_DELAY_MS",
        "consumer.retry_topic_max_delay",
        "120000",
        |c, v| c.consumer.retry_topic_max_delay = millis("KAFKA_RETRY_TOPIC_MAX_DELAY_MS", v)?
    ),
    var!(
        "KAFKA_DIVERT_TIMEOUT_MS",
        "consumer.divert_timeout",
        "2500",
        |c, v| c.consumer.divert_timeout = millis("KAFKA_DIVERT_TIMEOUT_MS", v)?
    ),
    var!(
        "KAFKA_ASSIGNOR",
        "consumer.assignor",
        "roundrobin",
        |c, v| c.consumer.assignor = assignor(v)?
    ),
];

/// The security section's variables (read by `Security::from_lookup`).
const SECURITY_VARIABLES: &[&str] = &[
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_TLS_CA",
    "KAFKA_TLS_SERVER_NAME",
];

impl Config {
    /// The defaults (a real broker at `localhost:9092`, modern transport), overridden by
    /// whichever `KAFKA_*` variables are set, then validated. The README's configuration
    /// table lists every variable with its field; among them:
    ///
    /// | variable | field | example |
    /// |---|---|---|
    /// | `KAFKA_BROKERS` | `brokers` (comma-separated) | `127.0.0.1:9092` |
    /// | `KAFKA_TRANSPORT` | `transport`: `modern`, `kafka-crate` or `memory` (the in-memory broker, only with `KAFKA_BROKERS` unset) | `memory` |
    /// | `KAFKA_GROUP_ID` | `group_id` | `scraper-group` |
    /// | `KAFKA_BATCH_TIMEOUT_MS` | `producer.batch_timeout` | `10` |
    /// | `KAFKA_COMPRESSION` | `producer.compression`: `none`, `gzip`, `snappy`, `lz4`, `zstd` | `snappy` |
    /// | `KAFKA_ENABLE_IDEMPOTENCE` | `producer.idempotence` | `true` |
    /// | `KAFKA_HANDLER_TIMEOUT_MS` | `consumer.handler_timeout` (`none`: unbounded) | `30000` |
    /// | `KAFKA_SESSION_TIMEOUT_MS` | `consumer.session_timeout` | `10000` |
    /// | `KAFKA_SECURITY_PROTOCOL` | `security.protocol`: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` | `SASL_SSL` |
    ///
    /// A variable that does not parse is an error naming the variable and its value;
    /// `KAFKA_TRANSPORT=memory` together with `KAFKA_BROKERS` is an error naming both. A set
    /// variable with the `KAFKA_` prefix that is not one of these but close to one (a typo)
    /// is logged at warn with the nearest known name.
    pub fn from_env() -> Result<Config> {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        for warning in unknown_variable_warnings(names.iter().map(String::as_str)) {
            log::warn!("{warning}");
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests and
    /// for programs with their own settings source).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut c = Config::default();
        for var in VARIABLES {
            if let Some(value) = lookup(var.name) {
                (var.apply)(&mut c, &value)?;
            }
        }
        if c.transport == TransportKind::Memory && lookup("KAFKA_BROKERS").is_some() {
            return Err(Error::config(
                "KAFKA_TRANSPORT",
                "memory",
                "the in-memory transport never contacts a broker, but KAFKA_BROKERS is set: \
                 unset one of KAFKA_TRANSPORT and KAFKA_BROKERS",
            ));
        }
        c.security = super::Security::from_lookup(&lookup)?;
        c.validate()?;
        Ok(c)
    }
}

/// A warning for each name with the `KAFKA_` prefix that is not a known variable but is
/// within two edits of one, naming the nearest.
pub(crate) fn unknown_variable_warnings<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let known: Vec<&str> = VARIABLES
        .iter()
        .map(|v| v.name)
        .chain(SECURITY_VARIABLES.iter().copied())
        .collect();
    names
        .filter(|n| n.starts_with("KAFKA_") && !known.contains(n))
        .filter_map(|n| {
            let (distance, nearest) = known
                .iter()
                .map(|k| (strsim::levenshtein(n, k), *k))
                .min()?;
            (distance <= 2).then(|| {
                format!(
                    "environment variable {n} is not a kafka-sync setting; did you mean {nearest}?"
                )
            })
        })
        .collect()
}

fn isolation_level(v: &str) -> Result<super::IsolationLevel> {
    match v.trim() {
        "read_committed" => Ok(super::IsolationLevel::ReadCommitted),
        "read_uncommitted" => Ok(super::IsolationLevel::ReadUncommitted),
        _ => Err(bad(
            "KAFKA_ISOLATION_LEVEL",
            v,
            "expected read_committed or read_uncommitted",
        )),
    }
}

fn bad(variable: &'static str, value: &str, why: &str) -> Error {
    Error::config(variable, value, why)
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect()
}

fn number<T: std::str::FromStr>(variable: &'static str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(variable, value, "expected a whole number"))
}

fn millis(variable: &'static str, value: &str) -> Result<Duration> {
    Ok(Duration::from_millis(number(variable, value)?))
}

fn optional_millis(variable: &'static str, value: &str) -> Result<Option<Duration>> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    millis(variable, value).map(Some)
}

fn boolean(variable: &'static str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(variable, value, "expected true or false")),
    }
}

fn transport(v: &str) -> Result<TransportKind> {
    match v {
        "memory" => Ok(TransportKind::Memory),
        "kafka-crate" => Ok(TransportKind::KafkaCrate),
        "modern" => Ok(TransportKind::Modern),
        _ => Err(bad(
            "KAFKA_TRANSPORT",
            v,
            "expected modern, kafka-crate or memory",
        )),
    }
}

fn acks(v: &str) -> Result<Acks> {
    match v {
        "all" | "-1" => Ok(Acks::All),
        "1" | "one" => Ok(Acks::One),
        "0" | "none" => Ok(Acks::None),
        _ => Err(bad("KAFKA_ACKS", v, "expected all, 1 or 0")),
    }
}

fn compression(v: &str) -> Result<Compression> {
    match v {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(bad(
            "KAFKA_COMPRESSION",
            v,
            "expected none, gzip, snappy, lz4 or zstd",
        )),
    }
}

fn start_offset(v: &str) -> Result<StartOffset> {
    match v {
        "earliest" => Ok(StartOffset::Earliest),
        "latest" => Ok(StartOffset::Latest),
        _ => Err(bad("KAFKA_START_OFFSET", v, "expected earliest or latest")),
    }
}

fn unknown_type(v: &str) -> Result<UnknownTypePolicy> {
    match v {
        "dead-letter" => Ok(UnknownTypePolicy::DeadLetter),
        "skip" => Ok(UnknownTypePolicy::Skip),
        _ => Err(bad("KAFKA_UNKNOWN_TYPE", v, "expected dead-letter or skip")),
    }
}

fn assignor(v: &str) -> Result<Assignor> {
    Assignor::from_protocol_name(v)
        .ok_or_else(|| bad("KAFKA_ASSIGNOR", v, "expected range or roundrobin"))
}

#[cfg(test)]
mod tests;
