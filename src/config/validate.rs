//! [`Config::validate`] and [`validate_topic_name`]: every rejection names the field and the
//! value.

use std::time::Duration;

use super::{Acks, Config, TransportKind};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// The longest topic name Kafka accepts.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules (see
/// [`domain::topics::validate_topic_name`](crate::domain::topics::validate_topic_name)).
pub(crate) fn validate_topic_name(name: &str) -> Result<()> {
    topic_rule("topic", name)
}

fn topic_rule(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::config(field, name, "a topic name cannot be empty"));
    }
    if name == "." || name == ".." {
        return Err(Error::config(
            field,
            name,
            "`.` and `..` are not topic names",
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(Error::config(
            field,
            name,
            format!("a topic name has at most {MAX_TOPIC_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::config(
            field,
            name,
            format!("character {c:?} is not allowed in a topic name (only a-z A-Z 0-9 . _ -)"),
        ));
    }
    Ok(())
}

fn broker_rule(broker: &str) -> Result<()> {
    let field = "brokers";
    let Some((host, port)) = broker.rsplit_once(':') else {
        return Err(Error::config(field, broker, "expected host:port"));
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Error::config(
            field,
            broker,
            "the host part is empty or has spaces",
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(Error::config(
            field,
            broker,
            "the port must be a number from 1 to 65535",
        )),
    }
}

/// Kafka's largest request by default (`socket.request.max.bytes`, 100 MiB).
const MAX_REQUEST_BYTES: usize = 104_857_600;

/// The longest bound a duration setting may have: a day (longer is a typo or "forever").
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Above zero and at most `max`.
fn within(field: &'static str, value: Duration, max: Duration) -> Result<()> {
    positive(field, value)?;
    if value > max {
        return Err(Error::config(
            field,
            format!("{value:?}"),
            format!("must be at most {max:?}"),
        ));
    }
    Ok(())
}

fn positive(field: &'static str, value: Duration) -> Result<()> {
    if value.is_zero() {
        return Err(Error::config(
            field,
            format!("{value:?}"),
            "must be more than zero",
        ));
    }
    Ok(())
}

/// The config field names of one section's retry policy.
struct RetryFields {
    multiplier: &'static str,
    max_attempts: &'static str,
    max_interval: &'static str,
    randomization_factor: &'static str,
}

const PRODUCER_RETRY: RetryFields = RetryFields {
    multiplier: "producer.retry.multiplier",
    max_attempts: "producer.retry.max_attempts",
    max_interval: "producer.retry.max_interval",
    randomization_factor: "producer.retry.randomization_factor",
};

const CONSUMER_RETRY: RetryFields = RetryFields {
    multiplier: "consumer.retry.multiplier",
    max_attempts: "consumer.retry.max_attempts",
    max_interval: "consumer.retry.max_interval",
    randomization_factor: "consumer.retry.randomization_factor",
};

fn retry_rule(fields: &RetryFields, r: &RetryPolicy) -> Result<()> {
    if !(r.multiplier >= 1.0 && r.multiplier.is_finite()) {
        return Err(Error::config(
            fields.multiplier,
            r.multiplier,
            "must be at least 1.0",
        ));
    }
    if r.max_attempts == 0 {
        return Err(Error::config(fields.max_attempts, 0, "must be at least 1"));
    }
    if r.max_interval < r.initial_interval {
        return Err(Error::config(
            fields.max_interval,
            format!("{:?}", r.max_interval),
            format!(
                "must not be below initial_interval ({:?})",
                r.initial_interval
            ),
        ));
    }
    if !(0.0..=1.0).contains(&r.randomization_factor) {
        return Err(Error::config(
            fields.randomization_factor,
            r.randomization_factor,
            "must be between 0.0 and 1.0",
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every field; the error names the first field at fault and its value.
    pub fn validate(&self) -> Result<()> {
        if self.brokers.is_empty() {
            return Err(Error::config(
                "brokers",
                "[]",
                "at least one broker is needed",
            ));
        }
        self.brokers.iter().try_for_each(|b| broker_rule(b))?;
        if self.transport == TransportKind::Memory && !self.brokers_are_default() {
            return Err(Error::config(
                "transport",
                "Memory",
                format!(
                    "the in-memory transport never contacts a broker, but brokers names {}: \
                     choose TransportKind::Modern (or KafkaCrate) for a real broker, or leave \
                     brokers at its default for the in-memory one",
                    self.brokers.join(",")
                ),
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(Error::config("group_id", &self.group_id, "cannot be empty"));
        }
        if self.client_id.contains(char::is_control) {
            return Err(Error::config(
                "client_id",
                &self.client_id,
                "has control characters",
            ));
        }
        within("connect_timeout", self.connect_timeout, MAX_DURATION)?;
        within("request_timeout", self.request_timeout, MAX_DURATION)?;
        within("metadata_max_age", self.metadata_max_age, MAX_DURATION)?;
        if self.metadata_max_age < Duration::from_millis(100) {
            return Err(Error::config(
                "metadata_max_age",
                format!("{:?}", self.metadata_max_age),
                "must be at least 100 ms (every request would ask for metadata first)",
            ));
        }
        if self.max_response_bytes < 1024 || self.max_response_bytes > i32::MAX as usize {
            return Err(Error::config(
                "max_response_bytes",
                self.max_response_bytes,
                format!("must be from 1024 to {} bytes", i32::MAX),
            ));
        }

        let p = &self.producer;
        if p.batch_size == 0 {
            return Err(Error::config(
                "producer.batch_size",
                0,
                "must be at least 1",
            ));
        }
        if p.buffer_bytes == 0 {
            return Err(Error::config(
                "producer.buffer_bytes",
                0,
                "must be at least 1",
            ));
        }
        if p.queue_capacity == 0 {
            return Err(Error::config(
                "producer.queue_capacity",
                0,
                "must be at least 1",
            ));
        }
        if p.max_message_bytes < 64 {
            return Err(Error::config(
                "producer.max_message_bytes",
                p.max_message_bytes,
                "must be at least 64 bytes",
            ));
        }
        if p.max_message_bytes > MAX_REQUEST_BYTES {
            return Err(Error::config(
                "producer.max_message_bytes",
                p.max_message_bytes,
                format!("must not exceed {MAX_REQUEST_BYTES} bytes (Kafka's largest request)"),
            ));
        }
        if p.batch_bytes == 0 || p.batch_bytes > MAX_REQUEST_BYTES {
            return Err(Error::config(
                "producer.batch_bytes",
                p.batch_bytes,
                format!("must be from 1 to {MAX_REQUEST_BYTES} bytes (Kafka's largest request)"),
            ));
        }
        if p.idempotence && p.acks != Acks::All {
            return Err(Error::config(
                "producer.idempotence",
                true,
                format!(
                    "the idempotent producer needs producer.acks = All (it is {:?}); set \
                     producer.idempotence = false to use other acks",
                    p.acks
                ),
            ));
        }
        positive("producer.enqueue_timeout", p.enqueue_timeout)?;
        within(
            "producer.delivery_timeout",
            p.delivery_timeout,
            MAX_DURATION,
        )?;
        if p.delivery_timeout < self.request_timeout + p.batch_timeout {
            return Err(Error::config(
                "producer.delivery_timeout",
                format!("{:?}", p.delivery_timeout),
                format!(
                    "must be at least request_timeout + producer.batch_timeout ({:?}), so one \
                     attempt fits",
                    self.request_timeout + p.batch_timeout
                ),
            ));
        }
        retry_rule(&PRODUCER_RETRY, &p.retry)?;
        p.compression.check_available("producer.compression")?;
        if self.transport == TransportKind::KafkaCrate && p.compression.feature().is_some() {
            return Err(Error::config(
                "producer.compression",
                format!("{:?}", p.compression),
                "the kafka-crate transport (message format v0/v1) cannot produce lz4 or zstd; \
                 use the modern transport, or none, gzip or snappy",
            ));
        }

        let c = &self.consumer;
        if c.max_bytes == 0 {
            return Err(Error::config(
                "consumer.max_bytes",
                0,
                "must be more than zero",
            ));
        }
        if c.min_bytes > c.max_bytes {
            return Err(Error::config(
                "consumer.min_bytes",
                c.min_bytes,
                format!("must not exceed consumer.max_bytes ({})", c.max_bytes),
            ));
        }
        positive("consumer.max_wait", c.max_wait)?;
        if c.max_wait >= self.request_timeout {
            return Err(Error::config(
                "consumer.max_wait",
                format!("{:?}", c.max_wait),
                format!("must be below request_timeout ({:?})", self.request_timeout),
            ));
        }
        retry_rule(&CONSUMER_RETRY, &c.retry)?;
        topic_rule("consumer.dead_letter_topic", &c.dead_letter_topic)?;
        topic_rule("consumer.retry_topic", &c.retry_topic)?;
        if c.retry_topic == c.dead_letter_topic {
            return Err(Error::config(
                "consumer.retry_topic",
                &c.retry_topic,
                "must differ from consumer.dead_letter_topic",
            ));
        }
        if c.max_total_attempts == 0 {
            return Err(Error::config(
                "consumer.max_total_attempts",
                0,
                "must be at least 1",
            ));
        }
        if let Some(t) = c.handler_timeout {
            positive("consumer.handler_timeout", t)?;
        }
        positive("consumer.shutdown_timeout", c.shutdown_timeout)?;
        if c.max_poll_records == 0 {
            return Err(Error::config(
                "consumer.max_poll_records",
                0,
                "must be at least 1",
            ));
        }
        positive("consumer.max_poll_interval", c.max_poll_interval)?;
        if c.max_waiting_retries == 0 {
            return Err(Error::config(
                "consumer.max_waiting_retries",
                0,
                "must be at least 1",
            ));
        }
        positive("consumer.divert_timeout", c.divert_timeout)?;
        if let Some(id) = &c.group_instance_id {
            if id.trim().is_empty() || id.len() > 200 || id.contains(char::is_control) {
                return Err(Error::config(
                    "consumer.group_instance_id",
                    id,
                    "must be 1 to 200 characters without control characters",
                ));
            }
        }
        if c.retry_topic_max_delay < c.retry_topic_delay {
            return Err(Error::config(
                "consumer.retry_topic_max_delay",
                format!("{:?}", c.retry_topic_max_delay),
                format!(
                    "must not be below consumer.retry_topic_delay ({:?})",
                    c.retry_topic_delay
                ),
            ));
        }
        positive("consumer.session_timeout", c.session_timeout)?;
        positive("consumer.heartbeat_interval", c.heartbeat_interval)?;
        positive("consumer.rebalance_timeout", c.rebalance_timeout)?;
        if c.heartbeat_interval * 3 > c.session_timeout {
            return Err(Error::config(
                "consumer.heartbeat_interval",
                format!("{:?}", c.heartbeat_interval),
                format!(
                    "must be at most a third of consumer.session_timeout ({:?})",
                    c.session_timeout
                ),
            ));
        }
        self.security.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One edit of a valid config.
    type Change = Box<dyn FnOnce(&mut Config)>;

    fn rejected(change: impl FnOnce(&mut Config)) -> String {
        let mut c = Config::default();
        change(&mut c);
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn each_bad_field_is_named_with_its_value() {
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                Box::new(|c| c.brokers.clear()),
                "`brokers`",
                "at least one broker",
            ),
            (
                Box::new(|c| c.brokers = vec!["localhost".into()]),
                "\"localhost\"",
                "host:port",
            ),
            (
                Box::new(|c| c.brokers = vec!["h:99999".into()]),
                "\"h:99999\"",
                "port",
            ),
            (
                Box::new(|c| c.brokers = vec![":9092".into()]),
                "\":9092\"",
                "host part",
            ),
            (
                Box::new(|c| c.group_id = " ".into()),
                "`group_id`",
                "cannot be empty",
            ),
            (
                Box::new(|c| c.producer.batch_size = 0),
                "`producer.batch_size`",
                "at least 1",
            ),
            (
                Box::new(|c| c.producer.buffer_bytes = 0),
                "`producer.buffer_bytes`",
                "at least 1",
            ),
            (
                Box::new(|c| c.producer.queue_capacity = 0),
                "`producer.queue_capacity`",
                "at least 1",
            ),
            (
                Box::new(|c| c.request_timeout = Duration::ZERO),
                "`request_timeout`",
                "more than zero",
            ),
            (
                Box::new(|c| c.producer.retry.multiplier = 0.5),
                "`producer.retry.multiplier`",
                "0.5",
            ),
            (
                Box::new(|c| c.consumer.retry.max_attempts = 0),
                "`consumer.retry.max_attempts`",
                "at least 1",
            ),
            (
                Box::new(|c| c.consumer.min_bytes = 20_000_000),
                "`consumer.min_bytes`",
                "20000000",
            ),
            (
                Box::new(|c| c.consumer.dead_letter_topic = "dead letter".into()),
                "`consumer.dead_letter_topic`",
                "' '",
            ),
            (
                Box::new(|c| c.consumer.retry_topic = String::new()),
                "`consumer.retry_topic`",
                "cannot be empty",
            ),
            (
                Box::new(|c| c.consumer.retry_topic = "..".into()),
                "\"..\"",
                "are not topic names",
            ),
            (
                Box::new(|c| c.consumer.retry_topic = "x".repeat(250)),
                "`consumer.retry_topic`",
                "at most 249",
            ),
            (
                Box::new(|c| c.consumer.retry_topic = "dead-letter".into()),
                "`consumer.retry_topic`",
                "must differ",
            ),
            (
                Box::new(|c| c.consumer.max_total_attempts = 0),
                "`consumer.max_total_attempts`",
                "at least 1",
            ),
            (
                Box::new(|c| c.consumer.handler_timeout = Some(Duration::ZERO)),
                "`consumer.handler_timeout`",
                "more than zero",
            ),
            (
                Box::new(|c| c.consumer.shutdown_timeout = Duration::ZERO),
                "`consumer.shutdown_timeout`",
                "more than zero",
            ),
            (
                Box::new(|c| c.consumer.max_poll_records = 0),
                "`consumer.max_poll_records`",
                "at least 1",
            ),
            (
                Box::new(|c| c.consumer.max_poll_interval = Duration::ZERO),
                "`consumer.max_poll_interval`",
                "more than zero",
            ),
            (
                Box::new(|c| c.consumer.max_waiting_retries = 0),
                "`consumer.max_waiting_retries`",
                "at least 1",
            ),
            (
                Box::new(|c| c.consumer.divert_timeout = Duration::ZERO),
                "`consumer.divert_timeout`",
                "more than zero",
            ),
            (
                Box::new(|c| c.consumer.retry_topic_max_delay = Duration::from_secs(1)),
                "`consumer.retry_topic_max_delay`",
                "must not be below",
            ),
            (
                Box::new(|c| c.producer.batch_bytes = 0),
                "`producer.batch_bytes`",
                "from 1 to",
            ),
            (
                Box::new(|c| c.producer.batch_bytes = 200_000_000),
                "200000000",
                "largest request",
            ),
            (
                Box::new(|c| c.producer.max_message_bytes = 200_000_000),
                "`producer.max_message_bytes`",
                "largest request",
            ),
            (
                Box::new(|c| c.producer.acks = Acks::One),
                "`producer.idempotence`",
                "acks = All",
            ),
            (
                Box::new(|c| c.producer.delivery_timeout = Duration::from_secs(5)),
                "`producer.delivery_timeout`",
                "request_timeout + producer.batch_timeout",
            ),
            (
                Box::new(|c| c.producer.delivery_timeout = Duration::from_secs(86_401)),
                "`producer.delivery_timeout`",
                "at most",
            ),
            (
                Box::new(|c| c.request_timeout = Duration::from_secs(1 << 40)),
                "`request_timeout`",
                "at most",
            ),
            (
                Box::new(|c| c.metadata_max_age = Duration::ZERO),
                "`metadata_max_age`",
                "more than zero",
            ),
            (
                Box::new(|c| c.metadata_max_age = Duration::from_millis(5)),
                "`metadata_max_age`",
                "at least 100 ms",
            ),
            (
                Box::new(|c| c.max_response_bytes = 10),
                "`max_response_bytes`",
                "from 1024",
            ),
        ];
        for (change, field, why) in cases {
            let text = rejected(change);
            assert!(text.contains(field), "{text:?} should name {field}");
            assert!(text.contains(why), "{text:?} should say {why}");
        }
    }

    #[test]
    fn lz4_and_zstd_need_their_feature_and_a_transport_that_writes_them() {
        use crate::config::Compression;
        for c in [Compression::Lz4, Compression::Zstd] {
            let feature = c.feature().unwrap();
            let mut config = Config::default();
            config.producer.compression = c;
            match config.validate() {
                Ok(()) => assert!(c.is_available()),
                Err(e) => {
                    assert!(!c.is_available());
                    let text = e.to_string();
                    assert!(
                        text.contains(&format!("`{feature}` cargo feature")),
                        "{text}"
                    );
                }
            }
            config.transport = TransportKind::KafkaCrate;
            let text = config.validate().unwrap_err().to_string();
            assert!(text.contains("`producer.compression`"), "{text}");
            if c.is_available() {
                assert!(text.contains("kafka-crate transport"), "{text}");
            }
        }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name("ümlaut").is_err());
    }
}
