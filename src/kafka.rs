//! [`Kafka`]: the front door. One validated config, one transport, and the producer and
//! consumers that share it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::consumer::{Consumer, ConsumerHealth};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerHealth};
use crate::transport::{self, Transport};

/// A connection to a Kafka cluster (or to the in-memory broker): validates the config once,
/// builds the one transport, and hands out the [`Producer`] and the [`Consumer`]s that share
/// it.
///
/// ```
/// use std::time::Duration;
/// use kafka_sync::domain::{topics, KafkaMessage, MessageType, ScrapingTask};
/// use kafka_sync::Kafka;
///
/// // The in-memory broker, chosen by name: producer and consumer see each other.
/// let kafka = Kafka::in_memory().unwrap();
/// let producer = kafka.producer();
/// let task = KafkaMessage::new(MessageType::SCRAPING_TASK, &ScrapingTask::new("https://a.b")).unwrap();
/// producer.send(topics::SCRAPING_TASKS, &task).unwrap();
///
/// let consumer = kafka.consumer().unwrap();
/// let (seen, got) = std::sync::mpsc::channel();
/// consumer.register_handler(MessageType::SCRAPING_TASK, move |m: &KafkaMessage| {
///     seen.send(m.id).ok();
///     Ok(())
/// });
/// consumer.consume([topics::SCRAPING_TASKS]).unwrap();
/// assert_eq!(got.recv_timeout(Duration::from_secs(5)).unwrap(), task.id);
/// kafka.close(Duration::from_secs(5)).unwrap(); // consumers leave, then the producer flushes
/// ```
///
/// Against a real broker, [`Kafka::connect`] with [`Config::default`] (modern transport,
/// `localhost:9092`) or [`Config::from_env`] (`KAFKA_BROKERS=…`).
///
/// Dropping a `Kafka` does not stop what it handed out: the producer closes when its last
/// `Arc` is dropped, a consumer when it is dropped. [`close`](Self::close) stops them all,
/// in order, within one bound.
pub struct Kafka {
    config: Config,
    transport: Arc<dyn Transport>,
    producer: OnceLock<Arc<Producer>>,
    consumers: Mutex<Vec<Weak<crate::consumer::Shared>>>,
}

impl fmt::Debug for Kafka {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kafka")
            .field("transport", &self.transport.name())
            .field("brokers", &self.config.brokers)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    /// Validates `config` and builds the transport it names (`config.transport`: modern by
    /// default, the `kafka` crate, or the in-memory broker when chosen by name). Does not
    /// contact a broker: the first send or poll does, within the config's bounds. Logs at
    /// info which transport and brokers it chose.
    pub fn connect(config: Config) -> Result<Kafka> {
        config.validate()?;
        let transport = transport::connect(&config)?;
        Ok(Kafka::build(config, transport))
    }

    /// The in-memory broker (no network, nothing survives the process) with the default
    /// settings: for demos and tests of your handlers.
    pub fn in_memory() -> Result<Kafka> {
        Kafka::connect(Config::in_memory())
    }

    /// Like [`connect`](Self::connect) over a transport of your own (a
    /// [`MemoryTransport`](crate::transport::MemoryTransport) you keep a handle on to
    /// inspect, or your own [`Transport`] implementation).
    pub fn with_transport(config: Config, transport: Arc<dyn Transport>) -> Result<Kafka> {
        config.validate()?;
        Ok(Kafka::build(config, transport))
    }

    fn build(config: Config, transport: Arc<dyn Transport>) -> Kafka {
        if transport.name() == "memory" {
            log::info!(
                "kafka-sync: using the in-memory transport (client id {}): messages stay in this process",
                config.client_id
            );
        } else {
            log::info!(
                "kafka-sync: using the {} transport to {} (client id {})",
                transport.name(),
                config.brokers.join(","),
                config.client_id
            );
        }
        Kafka {
            config,
            transport,
            producer: OnceLock::new(),
            consumers: Mutex::new(Vec::new()),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The transport every producer and consumer of this `Kafka` goes through (for admin
    /// calls such as [`Transport::ensure_topic`]).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The producer: one per `Kafka`, created on first use, shared by every caller (it is
    /// `Send + Sync`; each topic gets a writer thread).
    pub fn producer(&self) -> Arc<Producer> {
        self.producer
            .get_or_init(|| {
                Arc::new(
                    Producer::new(self.config.clone(), self.transport.clone())
                        .expect("the config was validated when the Kafka was made"),
                )
            })
            .clone()
    }

    /// A new consumer in `config.group_id`. Register handlers, then
    /// [`consume`](Consumer::consume) topics.
    pub fn consumer(&self) -> Result<Consumer> {
        self.consumer_in_group(&self.config.group_id)
    }

    /// A new consumer in the consumer group `group` (the rest of the config as it is).
    pub fn consumer_in_group(&self, group: &str) -> Result<Consumer> {
        let mut config = self.config.clone();
        config.group_id = group.to_string();
        let consumer = Consumer::new(config, self.transport.clone())?;
        let mut all = self.lock_consumers();
        all.retain(|c| c.strong_count() > 0);
        all.push(consumer.downgrade());
        Ok(consumer)
    }

    /// Stops everything this `Kafka` handed out, in order, within `timeout`: first every
    /// consumer (each finishes the message in hand, commits and leaves its group), then the
    /// producer (delivers what is queued and joins its writers). Returns the first error,
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if something was still busy at the bound. Calling it again
    /// does nothing.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut first_error: Option<Error> = None;
        let consumers: Vec<_> = self.lock_consumers().drain(..).collect();
        for shared in consumers.iter().filter_map(Weak::upgrade) {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = Consumer::close_shared(&shared, left) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(producer) = self.producer.get() {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = producer.close_within(left) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The producer's and every live consumer's health in one report.
    pub fn health(&self) -> Health {
        let consumers = self
            .lock_consumers()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| Consumer::health_of(&s))
            .collect();
        Health {
            producer: self.producer.get().map(|p| p.health()),
            consumers,
        }
    }

    fn lock_consumers(&self) -> MutexGuard<'_, Vec<Weak<crate::consumer::Shared>>> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The health of everything a [`Kafka`] handed out ([`Kafka::health`]).
#[derive(Debug, Clone)]
pub struct Health {
    /// The producer's, if one was made.
    pub producer: Option<ProducerHealth>,
    /// Each live consumer's.
    pub consumers: Vec<ConsumerHealth>,
}
