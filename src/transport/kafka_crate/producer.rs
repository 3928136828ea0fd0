//! [`KafkaProducerSession`]: one writer thread's `KafkaClient`.

use std::collections::HashMap;
use std::time::Duration;

use kafka::client::{Compression as KCompression, ProduceMessage, RequiredAcks};

use super::errors::{assign_offsets, code_error, code_means_stale_metadata, error_code, map_error};
use super::link::{clamp_duration, Link, TopicInfo};
use super::Settings;
use crate::config::{Acks, Compression};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{OutgoingRecord, ProduceOptions, ProducerSession};

/// A producing session: its own client, metadata cached per topic until
/// [`ProducerSession::refresh_metadata`] or a not-leader answer.
#[derive(Debug)]
pub(super) struct KafkaProducerSession {
    link: Link,
}

impl KafkaProducerSession {
    /// A session that connects on first use.
    pub fn new(settings: Settings) -> Self {
        let client_id = settings.client_id.clone();
        KafkaProducerSession {
            link: Link::new(settings, &client_id, 1, 1),
        }
    }

    fn wait(&self, options_timeout: Duration) -> Duration {
        options_timeout.min(self.link.settings().request_timeout)
    }

    /// Metadata for `topic` in which every partition of `records` has a leader, reloading
    /// (within the request bound) when one is missing or unknown.
    fn metadata_for(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        wait: Duration,
    ) -> Result<TopicInfo> {
        let info = self.link.topic(topic, false, wait)?;
        let usable = |info: &TopicInfo| records.iter().all(|r| info.leader(r.partition).is_some());
        if usable(&info) {
            return Ok(info);
        }
        self.link.topic(topic, true, wait)
    }

    fn try_produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
    ) -> Result<Vec<Result<Delivery>>> {
        let codec = match options.compression {
            Compression::None => KCompression::NONE,
            Compression::Gzip => KCompression::GZIP,
            Compression::Snappy => KCompression::SNAPPY,
            c @ (Compression::Lz4 | Compression::Zstd) => {
                return Err(Error::config(
                    "producer.compression",
                    format!("{c:?}"),
                    "the kafka-crate transport (message format v0/v1) cannot produce lz4 or \
                     zstd; use the modern transport, or none, gzip or snappy",
                ))
            }
        };
        let timeout = clamp_duration(options.timeout);
        let info = self.metadata_for(topic, records, self.wait(timeout))?;

        // Records whose partition is unknown or leaderless fail alone; the rest are sent.
        let mut results: Vec<Option<Result<Delivery>>> = records
            .iter()
            .map(|r| {
                if !info.has(r.partition) {
                    Some(Err(Error::new(
                        ErrorKind::UnknownTopic,
                        format!(
                            "partition {} does not exist (the topic has {} partitions)",
                            r.partition,
                            info.partitions.len()
                        ),
                    )
                    .with_topic(topic)
                    .with_partition(r.partition)))
                } else if info.leader(r.partition).is_none() {
                    Some(Err(code_error(
                        kafka::error::KafkaCode::LeaderNotAvailable,
                        "partition has no leader in metadata",
                    )
                    .with_topic(topic)
                    .with_partition(r.partition)))
                } else {
                    None
                }
            })
            .collect();
        let sendable: Vec<usize> = (0..records.len())
            .filter(|i| results[*i].is_none())
            .collect();
        if sendable.is_empty() {
            return Ok(results.into_iter().map(|r| r.expect("set")).collect());
        }

        let client = self.link.client()?;
        client.set_compression(codec);
        let acks = match options.acks {
            Acks::None => RequiredAcks::None,
            Acks::One => RequiredAcks::One,
            Acks::All => RequiredAcks::All,
        };
        let messages: Vec<ProduceMessage<'_, '_>> = sendable
            .iter()
            .map(|&i| {
                // Produce v0 (message format v0/v1) has no headers: `r.headers` is dropped.
                let r = &records[i];
                ProduceMessage::new(
                    topic,
                    r.partition,
                    r.key.as_deref(),
                    Some(r.value.as_slice()),
                )
            })
            .collect();
        let sent = client.produce_messages(acks, timeout, messages);
        let partitions: Vec<i32> = sendable.iter().map(|&i| records[i].partition).collect();
        let leader = |p: i32| info.leader(p).unwrap_or("?").to_string();

        match sent {
            Err(e) => {
                let stale = error_code(&e).is_some_and(code_means_stale_metadata);
                let e = map_error(e, "produce request failed").with_topic(topic);
                if stale {
                    self.link.forget_metadata();
                }
                let e = self.link.fail(e);
                for (&i, &p) in sendable.iter().zip(&partitions) {
                    results[i] = Some(Err(e.detached().with_partition(p).with_broker(leader(p))));
                }
            }
            Ok(_) if matches!(options.acks, Acks::None) => {
                for (&i, &p) in sendable.iter().zip(&partitions) {
                    results[i] = Some(Ok(Delivery {
                        partition: p,
                        offset: -1,
                    }));
                }
            }
            Ok(confirms) => {
                let mut bases = HashMap::new();
                for c in confirms.iter().filter(|c| c.topic == topic) {
                    for pc in &c.partition_confirms {
                        bases.insert(pc.partition, pc.offset);
                    }
                }
                let mut stale = false;
                for ((&i, &p), offset) in sendable
                    .iter()
                    .zip(&partitions)
                    .zip(assign_offsets(&partitions, &bases))
                {
                    results[i] = Some(match offset {
                        Some(Ok(offset)) => Ok(Delivery {
                            partition: p,
                            offset,
                        }),
                        Some(Err(code)) => {
                            stale |= code_means_stale_metadata(code);
                            let e = code_error(code, "produce rejected");
                            // A leader that has not heard of the partition yet (just created
                            // or added): retried after a metadata refresh, like the Java
                            // client; a topic that cannot exist fails in metadata instead.
                            let e = if code == kafka::error::KafkaCode::UnknownTopicOrPartition {
                                Error::new(ErrorKind::BrokerRetriable, e.message().to_string())
                                    .with_broker_code(code as i16)
                            } else {
                                e
                            };
                            Err(e.with_topic(topic).with_partition(p).with_broker(leader(p)))
                        }
                        None => Err(Error::new(
                            ErrorKind::Broker,
                            "the broker's answer did not confirm this partition",
                        )
                        .with_topic(topic)
                        .with_partition(p)
                        .with_broker(leader(p))),
                    });
                }
                if stale {
                    self.link.forget_metadata();
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record has a result"))
            .collect())
    }
}

impl ProducerSession for KafkaProducerSession {
    fn partition_count(&mut self, topic: &str) -> Result<usize> {
        let wait = self.link.settings().request_timeout;
        Ok(self.link.topic(topic, false, wait)?.partitions.len())
    }

    fn produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
    ) -> Vec<Result<Delivery>> {
        if records.is_empty() {
            return Vec::new();
        }
        match self.try_produce(topic, records, options) {
            Ok(results) => results,
            Err(e) => {
                let e = e.with_topic(topic);
                records
                    .iter()
                    .map(|r| Err(e.detached().with_partition(r.partition)))
                    .collect()
            }
        }
    }

    fn refresh_metadata(&mut self) {
        self.link.forget_metadata();
    }
}
