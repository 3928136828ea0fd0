//! [`Config::from_env`]: configuration from `KAFKA_*` environment variables.

use std::time::Duration;

use super::{Acks, Compression, Config, StartOffset, TransportKind};
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
    /// | `KAFKA_BATCH_BYTES` | `producer.batch_bytes` | `1000000` |
    /// | `KAFKA_MAX_MESSAGE_BYTES` | `producer.max_message_bytes` | `1000000` |
    /// | `KAFKA_ENABLE_IDEMPOTENCE` | `producer.idempotence`: `true` or `false` | `true` |
    /// | `KAFKA_ACKS` | `producer.acks`: `all`, `1`, `0` (`1` and `0` need idempotence off) | `all` |
    /// | `KAFKA_DELIVERY_TIMEOUT_MS` | `producer.delivery_timeout` | `120000` |
    /// | `KAFKA_METADATA_MAX_AGE_MS` | `metadata_max_age` | `300000` |
    /// | `KAFKA_MAX_RESPONSE_BYTES` | `max_response_bytes` | `104857600` |
    /// | `KAFKA_COMPRESSION` | `producer.compression`: `none`, `gzip`, `snappy`, `lz4`, `zstd` (the last two need their cargo feature) | `snappy` |
    /// | `KAFKA_START_OFFSET` | `consumer.start_offset`: `earliest`, `latest` | `earliest` |
    /// | `KAFKA_REQUEST_TIMEOUT_MS` | `request_timeout` | `30000` |
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
        if let Some(v) = lookup("KAFKA_BATCH_BYTES") {
            c.producer.batch_bytes = number("KAFKA_BATCH_BYTES", &v)? as usize;
        }
        if let Some(v) = lookup("KAFKA_MAX_MESSAGE_BYTES") {
            c.producer.max_message_bytes = number("KAFKA_MAX_MESSAGE_BYTES", &v)? as usize;
        }
        if let Some(v) = lookup("KAFKA_ENABLE_IDEMPOTENCE") {
            c.producer.idempotence = match v.trim() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(bad(
                        "KAFKA_ENABLE_IDEMPOTENCE",
                        &v,
                        "expected true or false",
                    ))
                }
            };
        }
        if let Some(v) = lookup("KAFKA_ACKS") {
            c.producer.acks = match v.trim() {
                "all" | "-1" => Acks::All,
                "1" => Acks::One,
                "0" => Acks::None,
                _ => return Err(bad("KAFKA_ACKS", &v, "expected all, 1 or 0")),
            };
        }
        if let Some(v) = lookup("KAFKA_DELIVERY_TIMEOUT_MS") {
            c.producer.delivery_timeout =
                Duration::from_millis(number("KAFKA_DELIVERY_TIMEOUT_MS", &v)?);
        }
        if let Some(v) = lookup("KAFKA_METADATA_MAX_AGE_MS") {
            c.metadata_max_age = Duration::from_millis(number("KAFKA_METADATA_MAX_AGE_MS", &v)?);
        }
        if let Some(v) = lookup("KAFKA_MAX_RESPONSE_BYTES") {
            c.max_response_bytes = number("KAFKA_MAX_RESPONSE_BYTES", &v)? as usize;
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
        c.security = super::Security::from_lookup(&lookup)?;
        c.validate()?;
        Ok(c)
    }
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
    fn the_producer_and_metadata_settings_are_read() {
        let c = from(&[
            ("KAFKA_BATCH_BYTES", "500000"),
            ("KAFKA_MAX_MESSAGE_BYTES", "2000000"),
            ("KAFKA_ENABLE_IDEMPOTENCE", "false"),
            ("KAFKA_ACKS", "1"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "60000"),
            ("KAFKA_METADATA_MAX_AGE_MS", "1000"),
            ("KAFKA_MAX_RESPONSE_BYTES", "2000000"),
        ])
        .unwrap();
        assert_eq!(c.producer.batch_bytes, 500_000);
        assert_eq!(c.producer.max_message_bytes, 2_000_000);
        assert!(!c.producer.idempotence);
        assert_eq!(c.producer.acks, Acks::One);
        assert_eq!(c.producer.delivery_timeout, Duration::from_secs(60));
        assert_eq!(c.metadata_max_age, Duration::from_secs(1));
        assert_eq!(c.max_response_bytes, 2_000_000);
        let e = from(&[("KAFKA_ENABLE_IDEMPOTENCE", "yes")]).unwrap_err();
        assert!(e.to_string().contains("KAFKA_ENABLE_IDEMPOTENCE"), "{e}");
        let e = from(&[("KAFKA_ACKS", "1")]).unwrap_err();
        assert!(e.to_string().contains("producer.idempotence"), "{e}");
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
