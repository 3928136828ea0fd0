//! [`KafkaCrateTransport`]: the `kafka` crate (kafka-rust 0.10) behind the [`Transport`] seam,
//! for brokers up to Kafka 3.9. This module is the only place in the crate that names
//! `kafka::` types.
//!
//! The user-facing documentation (what it does, the missing group membership, what bounds
//! each wait) is on [`KafkaCrateTransport`], since this module is private.

mod errors;
mod link;
mod probe;
mod producer;
mod subscription;

#[cfg(test)]
mod fake_broker_tests;

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use self::link::Link;
use super::{net, ProducerSession, SubscribeOptions, Subscription, Transport};
use crate::config::Config;
use crate::error::{Error, Result};

/// What every client of this transport is built from (copied from [`Config`]).
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    brokers: Vec<String>,
    client_id: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    fetch_min_bytes: usize,
    fetch_max_bytes: usize,
    fetch_max_wait: Duration,
}

/// A [`Transport`] over the `kafka` crate's `KafkaClient`: Kafka protocol v0 requests, for
/// brokers from Kafka 0.10 up to 3.9 (Kafka 4.0 removed v0; such a broker is reported as
/// [`ErrorKind::UnsupportedBroker`](crate::ErrorKind::UnsupportedBroker)).
///
/// Creating it does not connect; the first call does, within `config.connect_timeout`.
///
/// # What it does
///
/// - A [`ProducerSession`] owns its own `KafkaClient`: one per writer thread, no lock. A batch
///   becomes one produce request per partition leader; the broker confirms the offset of the
///   first record of each partition's set and record `i` gets `base + its index among that
///   partition's records`.
/// - A [`Subscription`] owns its own `KafkaClient`, starts each partition at the group's
///   committed offset (or at the earliest/latest offset per [`StartOffset`]), fetches from all
///   partitions in one request per leader, commits through the group coordinator (offsets
///   stored in Kafka, `__consumer_offsets`).
/// - [`Transport::partition_count`] and [`Transport::health_check`] use one shared admin client.
///
/// # No consumer-group membership
///
/// **The `kafka` crate has no JoinGroup/SyncGroup/Heartbeat.** A subscription therefore reads
/// **every partition** of its topic: two members of the same group (two processes, or two
/// consumers in one process) both receive every record, and their commits overwrite each
/// other's. Run one member per group and topic with this transport. The modern-wire transport
/// (Kafka 2.1+ group protocol) will bring partition assignment and rebalancing.
///
/// # Timeouts: what bounds each wait
///
/// | wait | bound |
/// |---|---|
/// | TCP connect to a bootstrap broker | `connect_timeout`: every client is built only after a probe connected to a bootstrap broker with `TcpStream::connect_timeout`; the crate is pointed at the broker that answered. No broker answers → `Connection` error naming each broker, in about `connect_timeout` per unreachable broker (milliseconds for a refused port). |
/// | TCP connect to a partition leader | `connect_timeout`: each leader named by metadata is probed once per client before the crate connects to it (a bad `advertised.listeners` fails fast). |
/// | the broker still speaking v0 | one ApiVersions v0 exchange per probe, bounded by `request_timeout`; a broker that dropped the v0 requests the crate sends (Kafka 4.0, KIP-896) is `UnsupportedBroker` before any v0 request is sent. |
/// | produce acknowledgement | the produce request's ack timeout is the batch's `ProduceOptions::timeout`, so the broker answers within it. |
/// | fetch | the broker answers within `min(poll max_wait, consumer.max_wait)`. |
/// | metadata, offsets, commits | answered by the broker at once; the crate retries coordinator lookup and "group loading" answers every 100 ms, at most `request_timeout / 100 ms` times (≤ 100). |
///
/// What remains bounded **only by the crate's fixed 120 s socket read/write timeout**: a broker
/// that accepted the connection and then stops answering (frozen process, half-open TCP after
/// a network partition). The calling thread (a writer or consumer thread) then blocks up to
/// 120 s per request and gets a `Timeout` error; the client is dropped and rebuilt (probed) on
/// the next call. Also unbounded by us: DNS resolution of broker names, and the crate's own
/// reconnect of a pooled connection idle for 5 minutes inside an otherwise busy client (only
/// to a host probed earlier; a client idle for 4 minutes is rebuilt and re-probed instead).
/// The crate never reuses a socket after an I/O error here: any `Connection`/`Timeout` error
/// drops the whole client.
///
/// # Other limits of the crate
///
/// - No producer retries and no metadata refresh on not-leader errors: the producer above
///   retries `BrokerRetriable`/`Connection` errors and calls
///   [`ProducerSession::refresh_metadata`]; this transport forgets metadata itself after a
///   not-leader or unknown-partition answer.
/// - Compression: none, gzip, snappy; producing lz4 or zstd is a `Config` error (also caught
///   by [`Config::validate`](crate::Config::validate)). Records written by other clients
///   with lz4 or zstd cannot be read (`Broker` error).
/// - No record headers (message format v0/v1): [`OutgoingRecord::headers`] are dropped on
///   produce, and consumed records carry none.
/// - Fetch decodes only the first compressed wrapper of each partition per response, so a
///   compressed topic is read one produce batch per partition per poll (nothing is lost).
/// - A record larger than `consumer.max_bytes` cannot be fetched (Fetch v0 returns a partial
///   record that the crate drops): its partition stops; this is logged as a warning.
/// - With [`Acks::None`] the broker sends no answer, so deliveries carry offset `-1`.
/// - The crate cannot tell an empty key from no key: both read back as `None`.
/// - Right after a topic is auto-created, metadata names leaders a moment before they accept
///   requests; the first load of a new topic waits (within `request_timeout`) until every
///   leader answers a ListOffsets request.
/// - The crate drops a topic's error code from metadata, so "being auto-created" and "does not
///   exist" look alike: a topic still without partitions after 5 s is `UnknownTopic`.
/// - A crate bug: if the group coordinator keeps answering "group loading" or "not
///   coordinator" past the crate's retry attempts, its commit loops without end.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_sync::transport::{KafkaCrateTransport, Transport};
/// use kafka_sync::{Config, TransportKind};
///
/// let config = Config {
///     brokers: vec!["127.0.0.1:9092".into()],
///     transport: TransportKind::KafkaCrate,
///     ..Config::default()
/// };
/// let transport = KafkaCrateTransport::new(&config).unwrap();
/// transport.health_check(Duration::from_secs(2)).unwrap();
/// let partitions = transport.partition_count("scraping-tasks").unwrap();
/// # let _ = partitions;
/// ```
///
/// [`Transport`]: super::Transport
/// [`ProducerSession`]: super::ProducerSession
/// [`ProducerSession::refresh_metadata`]: super::ProducerSession::refresh_metadata
/// [`Subscription`]: super::Subscription
/// [`OutgoingRecord::headers`]: super::OutgoingRecord::headers
/// [`Transport::partition_count`]: super::Transport::partition_count
/// [`Transport::health_check`]: super::Transport::health_check
/// [`StartOffset`]: crate::config::StartOffset
/// [`Acks::None`]: crate::config::Acks::None
pub struct KafkaCrateTransport {
    settings: Settings,
    /// The admin client (metadata for `partition_count`), built on first use and dropped
    /// after a connection error.
    admin: Mutex<Link>,
}

impl fmt::Debug for KafkaCrateTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("KafkaCrateTransport")
            .field("brokers", &s.brokers)
            .field("client_id", &s.client_id)
            .field("connect_timeout", &s.connect_timeout)
            .field("request_timeout", &s.request_timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaCrateTransport {
    /// A transport for `config.brokers`, with its client id, timeouts and consumer fetch
    /// settings. Does not connect. Fails with [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// when there is no broker, or when `config.security` asks for TLS or SASL (this transport
    /// speaks plain TCP only; the modern transport does both).
    pub fn new(config: &Config) -> Result<Self> {
        let brokers = net::bootstrap_brokers(config, "kafka-crate")?;
        let protocol = config.security.protocol;
        if protocol != crate::config::SecurityProtocol::Plaintext {
            return Err(crate::Error::config(
                "security.protocol",
                protocol,
                "the kafka-crate transport speaks PLAINTEXT only; use the modern transport \
                 (transport = modern) for TLS and SASL",
            ));
        }
        let settings = Settings {
            brokers,
            client_id: config.client_id.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            fetch_min_bytes: config.consumer.min_bytes,
            fetch_max_bytes: config.consumer.max_bytes,
            fetch_max_wait: link::clamp_duration(config.consumer.max_wait),
        };
        let admin = Link::new(
            settings.clone(),
            &settings.client_id,
            settings.fetch_min_bytes,
            settings.fetch_max_bytes,
        );
        Ok(KafkaCrateTransport {
            settings,
            admin: Mutex::new(admin),
        })
    }
}

impl Transport for KafkaCrateTransport {
    fn name(&self) -> &'static str {
        "kafka-crate"
    }

    fn connect_producer(&self) -> Result<Box<dyn ProducerSession>> {
        Ok(Box::new(producer::KafkaProducerSession::new(
            self.settings.clone(),
        )))
    }

    fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        Ok(Box::new(subscription::KafkaSubscription::open(
            self.settings.clone(),
            options,
        )?))
    }

    fn partition_count(&self, topic: &str) -> Result<usize> {
        let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let wait = self.settings.request_timeout;
        Ok(admin.topic(topic, true, wait)?.partitions.len())
    }

    /// Through the crate's offset calls (the crate commits outside any generation).
    fn copy_group_offsets(&self, from: &str, to: &str, topic: &str) -> Result<usize> {
        let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        // The crate asks only about topics its metadata knows.
        admin.topic(topic, true, self.settings.request_timeout)?;
        let client = admin.client()?;
        let committed = |client: &mut kafka::client::KafkaClient, group: &str| {
            client
                .fetch_group_topic_offset(group, topic)
                .map(|list| {
                    list.into_iter()
                        .filter(|po| po.offset >= 0)
                        .map(|po| (po.partition, po.offset))
                        .collect::<Vec<_>>()
                })
                .map_err(|e| errors::map_error(e, "fetching committed offsets failed"))
        };
        if !committed(client, to)?.is_empty() {
            return Ok(0);
        }
        let offsets = committed(client, from)?;
        if offsets.is_empty() {
            return Ok(0);
        }
        let commits: Vec<kafka::client::CommitOffset<'_>> = offsets
            .iter()
            .map(|&(p, offset)| kafka::client::CommitOffset::new(topic, p, offset))
            .collect();
        client
            .commit_offsets(to, commits)
            .map_err(|e| errors::map_error(e, "copying committed offsets failed"))?;
        Ok(offsets.len())
    }

    fn health_check(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let s = &self.settings;
        let first = probe::first_reachable(
            &s.brokers,
            &s.client_id,
            timeout.min(s.connect_timeout),
            timeout,
        )?;
        // A fresh client pointed at the broker that just answered: a metadata round trip
        // through the crate itself, without waiting on the admin lock.
        let mut client = kafka::client::KafkaClient::new(vec![s.brokers[first].clone()]);
        client.set_client_id(s.client_id.clone());
        client.load_metadata_all().map_err(|e| {
            errors::map_error(e, "health check metadata request failed")
                .with_broker(s.brokers[first].clone())
        })?;
        if started.elapsed() > timeout {
            return Err(
                Error::timeout("health check", timeout).with_broker(s.brokers[first].clone())
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn new_stores_settings_without_connecting_and_rejects_no_brokers() {
        let config = Config {
            brokers: vec!["127.0.0.1:1".into()],
            ..Config::default()
        };
        let t = KafkaCrateTransport::new(&config).unwrap();
        assert_eq!(t.name(), "kafka-crate");
        assert_eq!(t.settings.brokers, vec!["127.0.0.1:1".to_string()]);
        assert_eq!(t.settings.fetch_max_wait, config.consumer.max_wait);
        let debug = format!("{t:?}");
        assert!(debug.contains("127.0.0.1:1"), "{debug}");

        let e = KafkaCrateTransport::new(&Config {
            brokers: vec![" ".into()],
            ..Config::default()
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn security_other_than_plaintext_is_refused_naming_the_modern_transport() {
        let mut config = Config::default();
        config.security.protocol = crate::config::SecurityProtocol::SaslSsl;
        let e = KafkaCrateTransport::new(&config).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let text = e.to_string();
        assert!(
            text.contains("security.protocol") && text.contains("SASL_SSL"),
            "{text}"
        );
        assert!(text.contains("modern transport"), "{text}");
    }
}
