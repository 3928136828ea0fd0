//! [`Config::from_env`]: configuration from `KAFKA_*` environment variables.

use std::time::Duration;

use super::{Compression, Config, StartOffset, TransportKind};
use crate::error::{Error, Result};

impl Config {
    /// The defaults, overridden by whichever of these variables are set, then validated:
    ///
    /// | variable | field | example |
    /// |---|---|---|
    /// | `KAFKA_BROKERS` | `brokers` (comma-separated); also selects the modern transport | `127.0.0.1:9092` |
    /// | `KAFKA_TRANSPORT` | `transport`: `memory`, `kafka-crate` or `modern` | `modern` |
    /// | `KAFKA_CLIENT_ID` | `client_id` | `scraper-1` |
    /// | `KAFKA_GROUP_ID` | `group_id` | `scraper-group` |
    /// | `KAFKA_SERVICE_NAME` | `service_name` | `scraper` |
    /// | `KAFKA_BATCH_SIZE` | `producer.batch_size` | `100` |
    /// | `KAFKA_BATCH_TIMEOUT_MS` | `producer.batch_timeout` | `10` |
    /// | `KAFKA_COMPRESSION` | `producer.compression`: `none`, `gzip`, `snappy`, `lz4`, `zstd` (the last two need their cargo feature) | `snappy` |
    /// | `KAFKA_START_OFFSET` | `consumer.start_offset`: `earliest`, `latest` | `earliest` |
    /// | `KAFKA_REQUEST_TIMEOUT_MS` | `request_timeout` | `30000` |
    /// | `KAFKA_RETRY_TOPIC_ENABLED` | `consumer.retry_topic_enabled`: `true`, `false` | `true` |
    /// | `KAFKA_MAX_POLL_RECORDS` | `consumer.max_poll_records` | `500` |
    /// | `KAFKA_MAX_POLL_INTERVAL_MS` | `consumer.max_poll_interval` | `300000` |
    /// | `KAFKA_MAX_WAITING_RETRIES` | `consumer.max_waiting_retries` | `1000` |
    /// | `KAFKA_RETRY_TOPIC_MAX_DELAY_MS` | `consumer.retry_topic_max_delay` | `3600000` |
    /// | `KAFKA_DIVERT_TIMEOUT_MS` | `consumer.divert_timeout` | `30000` |
    /// | `KAFKA_SECURITY_PROTOCOL` | `security.protocol`: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` | `SASL_SSL` |
    /// | `KAFKA_SASL_MECHANISM` | `security.sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` | `SCRAM-SHA-512` |
    /// | `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` | `security.sasl.username`, `.password` | `alice` |
    /// | `KAFKA_TLS_CA` | `security.tls.ca_pem_path` | `/etc/kafka/ca.pem` |
    /// | `KAFKA_TLS_SERVER_NAME` | `security.tls.server_name` | `kafka.internal` |
    ///
    /// A variable that does not parse is an error naming the variable and its value.
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests and
    /// for programs with their own settings source).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut c = Config::default();
        if let Some(brokers) = lookup("KAFKA_BROKERS") {
            c.brokers = brokers
                .split(',')
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect();
            c.transport = TransportKind::Modern;
        }
        if let Some(t) = lookup("KAFKA_TRANSPORT") {
            c.transport = match t.as_str() {
                "memory" => TransportKind::Memory,
                "kafka-crate" => TransportKind::KafkaCrate,
                "modern" => TransportKind::Modern,
                _ => {
                    return Err(bad(
                        "KAFKA_TRANSPORT",
                        &t,
                        "expected memory, kafka-crate or modern",
                    ))
                }
            };
        }
        if let Some(v) = lookup("KAFKA_CLIENT_ID") {
            c.client_id = v;
        }
        if let Some(v) = lookup("KAFKA_GROUP_ID") {
            c.group_id = v;
        }
        if let Some(v) = lookup("KAFKA_SERVICE_NAME") {
            c.service_name = v;
        }
        if let Some(v) = lookup("KAFKA_BATCH_SIZE") {
            c.producer.batch_size = number("KAFKA_BATCH_SIZE", &v)? as usize;
        }
        if let Some(v) = lookup("KAFKA_BATCH_TIMEOUT_MS") {
            c.producer.batch_timeout = Duration::from_millis(number("KAFKA_BATCH_TIMEOUT_MS", &v)?);
        }
        if let Some(v) = lookup("KAFKA_REQUEST_TIMEOUT_MS") {
            c.request_timeout = Duration::from_millis(number("KAFKA_REQUEST_TIMEOUT_MS", &v)?);
        }
        if let Some(v) = lookup("KAFKA_COMPRESSION") {
            c.producer.compression = match v.as_str() {
                "none" => Compression::None,
                "gzip" => Compression::Gzip,
                "snappy" => Compression::Snappy,
                "lz4" => Compression::Lz4,
                "zstd" => Compression::Zstd,
                _ => {
                    return Err(bad(
                        "KAFKA_COMPRESSION",
                        &v,
                        "expected none, gzip, snappy, lz4 or zstd",
                    ))
                }
            };
        }
        if let Some(v) = lookup("KAFKA_START_OFFSET") {
            c.consumer.start_offset = match v.as_str() {
                "earliest" => StartOffset::Earliest,
                "latest" => StartOffset::Latest,
                _ => return Err(bad("KAFKA_START_OFFSET", &v, "expected earliest or latest")),
            };
        }
        consumer_from_lookup(&mut c, &lookup)?;
        c.security = super::Security::from_lookup(&lookup)?;
        c.validate()?;
        Ok(c)
    }
}

/// The consumer's variables (see the table on [`Config::from_env`]).
fn consumer_from_lookup(c: &mut Config, lookup: &impl Fn(&str) -> Option<String>) -> Result<()> {
    let millis = |name: &'static str| -> Result<Option<Duration>> {
        lookup(name)
            .map(|v| number(name, &v).map(Duration::from_millis))
            .transpose()
    };
    if let Some(v) = lookup("KAFKA_RETRY_TOPIC_ENABLED") {
        c.consumer.retry_topic_enabled = match v.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(bad(
                    "KAFKA_RETRY_TOPIC_ENABLED",
                    &v,
                    "expected true or false",
                ))
            }
        };
    }
    if let Some(v) = lookup("KAFKA_MAX_POLL_RECORDS") {
        c.consumer.max_poll_records = number("KAFKA_MAX_POLL_RECORDS", &v)? as usize;
    }
    if let Some(v) = lookup("KAFKA_MAX_WAITING_RETRIES") {
        c.consumer.max_waiting_retries = number("KAFKA_MAX_WAITING_RETRIES", &v)? as usize;
    }
    if let Some(d) = millis("KAFKA_MAX_POLL_INTERVAL_MS")? {
        c.consumer.max_poll_interval = d;
    }
    if let Some(d) = millis("KAFKA_RETRY_TOPIC_MAX_DELAY_MS")? {
        c.consumer.retry_topic_max_delay = d;
    }
    if let Some(d) = millis("KAFKA_DIVERT_TIMEOUT_MS")? {
        c.consumer.divert_timeout = d;
    }
    Ok(())
}

fn bad(variable: &'static str, value: &str, why: &str) -> Error {
    Error::config(variable, value, why)
}

fn number(variable: &'static str, value: &str) -> Result<u64> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(variable, value, "expected a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_variables_gives_the_defaults_on_the_memory_transport() {
        let c = from(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.transport, TransportKind::Memory);
    }

    #[test]
    fn brokers_select_the_modern_transport_and_are_split() {
        let c = from(&[("KAFKA_BROKERS", "a:1, b:2"), ("KAFKA_GROUP_ID", "g")]).unwrap();
        assert_eq!(c.brokers, vec!["a:1", "b:2"]);
        assert_eq!(c.transport, TransportKind::Modern);
        assert_eq!(c.group_id, "g");
    }

    #[test]
    fn the_modern_transport_is_selected_by_name() {
        let c = from(&[("KAFKA_BROKERS", "a:1"), ("KAFKA_TRANSPORT", "modern")]).unwrap();
        assert_eq!(c.transport, TransportKind::Modern);
        let e = from(&[("KAFKA_TRANSPORT", "modren")]).unwrap_err();
        assert!(e.to_string().contains("modern"), "{e}");
    }

    #[test]
    fn lz4_and_zstd_are_read_and_need_their_feature() {
        for (name, c) in [("lz4", Compression::Lz4), ("zstd", Compression::Zstd)] {
            let got = from(&[("KAFKA_BROKERS", "a:1"), ("KAFKA_COMPRESSION", name)]);
            match got {
                Ok(config) => assert_eq!(config.producer.compression, c),
                Err(e) => {
                    assert!(!c.is_available());
                    assert!(
                        e.to_string().contains(&format!("`{name}` cargo feature")),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_consumer_variable_sets_its_field() {
        let c = from(&[
            ("KAFKA_RETRY_TOPIC_ENABLED", "false"),
            ("KAFKA_MAX_POLL_RECORDS", "50"),
            ("KAFKA_MAX_POLL_INTERVAL_MS", "60000"),
            ("KAFKA_MAX_WAITING_RETRIES", "7"),
            ("KAFKA_RETRY_TOPIC_MAX_DELAY_MS", "120000"),
            ("KAFKA_DIVERT_TIMEOUT_MS", "2500"),
        ])
        .unwrap();
        assert!(!c.consumer.retry_topic_enabled);
        assert_eq!(c.consumer.max_poll_records, 50);
        assert_eq!(c.consumer.max_poll_interval, Duration::from_secs(60));
        assert_eq!(c.consumer.max_waiting_retries, 7);
        assert_eq!(c.consumer.retry_topic_max_delay, Duration::from_secs(120));
        assert_eq!(c.consumer.divert_timeout, Duration::from_millis(2500));
        let e = from(&[("KAFKA_RETRY_TOPIC_ENABLED", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("KAFKA_RETRY_TOPIC_ENABLED"), "{e}");
        let e = from(&[("KAFKA_MAX_POLL_RECORDS", "0")]).unwrap_err();
        assert!(e.to_string().contains("consumer.max_poll_records"), "{e}");
    }

    #[test]
    fn unparsable_variables_are_named() {
        let e = from(&[("KAFKA_BATCH_SIZE", "lots")]).unwrap_err();
        assert!(e.to_string().contains("KAFKA_BATCH_SIZE"), "{e}");
        let e = from(&[("KAFKA_COMPRESSION", "lz5")]).unwrap_err();
        assert!(e.to_string().contains("lz5"), "{e}");
        let e = from(&[("KAFKA_BROKERS", "nohost")]).unwrap_err();
        assert!(e.to_string().contains("brokers"), "{e}");
    }
}
