//! [`ModernProducerSession`]: one writer thread's produce path. A round becomes one record
//! batch per partition and one Produce request per partition leader; requests to different
//! leaders are all written before any answer is read, so a round over several brokers costs
//! one round trip. Record `i` of a partition gets `base offset + i`.
//!
//! A round is bounded by its timeout from the moment it starts: a metadata lookup that uses
//! it up sends nothing (the records are retried or expire), and once the first leader's
//! answer has used the time, answers already on their way from the other leaders are still
//! read for a moment ([`LATE_ANSWER_GRACE`]) rather than thrown away.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;

use super::cluster::{topic_name, Cluster};
use super::idempotence::{outcome_of, Idempotence, Outcome};
use super::produce_answer::apply_answer;
use super::records::{encode_batch_reusing, now_millis, Sequence};
use super::Settings;
use crate::config::{Acks, Compression};
use crate::domain::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{OutgoingRecord, ProduceOptions, ProducerSession};

/// How long an answer is still waited for once the round's time is used up, when it may
/// already be on its way (the requests to other leaders went out together).
const LATE_ANSWER_GRACE: Duration = Duration::from_millis(20);

/// A producing session: its own connections and metadata; with the idempotent producer,
/// its own producer ids and sequences, per topic (never shared with another session).
#[derive(Debug)]
pub(super) struct ModernProducerSession {
    cluster: Cluster,
    /// Per topic: the idempotent producer's state (`None`: idempotence is off).
    idempotence: Option<HashMap<String, Idempotence>>,
    /// Memory the record batches are encoded into, reused from one request to the next.
    scratch: BytesMut,
}

/// The wire value of `acks`.
fn acks_value(acks: Acks) -> i16 {
    match acks {
        Acks::None => 0,
        Acks::One => 1,
        Acks::All => -1,
    }
}

/// What was sent to one leader and is awaiting its answer.
pub(super) struct InFlight {
    pub(super) addr: String,
    pub(super) sent: (i32, i16),
    pub(super) partitions: Vec<i32>,
}

/// Tells the idempotence state what became of the batches of `partitions`.
fn settle<'r>(
    idem: &mut Option<&mut Idempotence>,
    sequences: &BTreeMap<i32, Sequence>,
    partitions: &[(i32, Outcome)],
    refs: &dyn Fn(i32) -> Vec<&'r OutgoingRecord>,
) {
    if let Some(state) = idem.as_deref_mut() {
        for &(p, outcome) in partitions {
            if let Some(&seq) = sequences.get(&p) {
                state.done(p, seq, &refs(p), outcome);
            }
        }
    }
}

impl ModernProducerSession {
    /// A session that connects on first use; idempotent when `settings` say so.
    pub fn new(settings: Arc<Settings>) -> Self {
        let client_id = settings.client_id.clone();
        ModernProducerSession {
            idempotence: settings.idempotent.then(HashMap::new),
            cluster: Cluster::new(settings, &client_id),
            scratch: BytesMut::new(),
        }
    }

    fn try_produce(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
    ) -> Result<Vec<Result<Delivery>>> {
        options
            .compression
            .check_available("producer.compression")?;
        // Config validation keeps the producer's acks at All when idempotence is on; a
        // request for fewer acks made through the session directly goes without sequence
        // numbers (the broker cannot deduplicate what it does not acknowledge to all).
        let Some(states) = self
            .idempotence
            .as_mut()
            .filter(|_| options.acks == Acks::All)
        else {
            return self.produce_with(topic, records, options, None);
        };
        // Taken out while producing (the session is borrowed for I/O), put back after.
        let mut state = states.remove(topic).unwrap_or_default();
        let produced = self.produce_with(topic, records, options, Some(&mut state));
        if let Some(states) = self.idempotence.as_mut() {
            states.insert(topic.to_string(), state);
        }
        produced
    }

    fn produce_with(
        &mut self,
        topic: &str,
        records: &[OutgoingRecord],
        options: &ProduceOptions,
        mut idem: Option<&mut Idempotence>,
    ) -> Result<Vec<Result<Delivery>>> {
        let started = Instant::now();
        let deadline = started + options.timeout;
        let mut meta = self.cluster.topic(topic, false)?;
        if records
            .iter()
            .any(|r| !meta.partitions.iter().any(|m| m.id == r.partition))
        {
            // A partition this metadata does not know may have been added since: ask again.
            meta = self.cluster.topic(topic, true)?;
        }
        if Instant::now() >= deadline {
            // Nothing was sent: the records are retried or expire in the writer.
            return Err(Error::timeout(
                "looking up the topic's leaders before producing",
                options.timeout,
            ));
        }
        let mut results: Vec<Option<Result<Delivery>>> = (0..records.len()).map(|_| None).collect();
        let by_partition = index_by_partition(records);
        let refs = |p: i32| -> Vec<&OutgoingRecord> {
            by_partition
                .get(&p)
                .map(|ix| ix.iter().map(|&i| &records[i]).collect())
                .unwrap_or_default()
        };
        let mut sequences: BTreeMap<i32, Sequence> = BTreeMap::new();

        // Partition → leader; records of unknown or leaderless partitions fail at once.
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut stale = false;
        for (&p, indices) in &by_partition {
            let failure = if !meta.partitions.iter().any(|m| m.id == p) {
                // Routed by a partition count some broker gave: a broker whose metadata
                // lags may not show it yet. Retried until the delivery timeout.
                Some(Error::new(
                    ErrorKind::BrokerRetriable,
                    format!(
                        "partition {p} is not in the metadata yet (it shows {} partitions)",
                        meta.partitions.len()
                    ),
                ))
            } else {
                match meta.leader(p) {
                    Some(node) => {
                        by_leader.entry(node).or_default().push(p);
                        None
                    }
                    None => Some(Error::new(
                        ErrorKind::BrokerRetriable,
                        "the partition has no leader (election in progress?)",
                    )),
                }
            };
            if let Some(e) = failure {
                stale = true;
                for &i in indices {
                    results[i] = Some(Err(e.detached().with_partition(p)));
                }
            }
        }

        // Room for every partition's batch at once, so that none of them reallocates and the
        // next request reuses this memory (reclaimed once these batches are dropped). Only
        // uncompressed batches are encoded there.
        if options.compression == Compression::None {
            self.scratch.reserve(batch_room(records));
        }
        let timestamp = now_millis();
        let acks = acks_value(options.acks);
        // Broker-side wait for replicas: most of the bound, leaving time for the answer.
        let ack_ms = (options.timeout.as_millis() * 9 / 10).clamp(1, i32::MAX as u128) as i32;
        let mut in_flight = Vec::new();
        for (node, partitions) in by_leader {
            let mut data = Vec::with_capacity(partitions.len());
            let mut failure = None;
            for &p in &partitions {
                let batch = refs(p);
                let seq = match idem
                    .as_deref_mut()
                    .map(|i| i.prepare(&mut self.cluster, p, &batch))
                {
                    Some(Ok(seq)) => Some(seq),
                    Some(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                    None => None,
                };
                if let Some(seq) = seq {
                    sequences.insert(p, seq);
                }
                match encode_batch_reusing(
                    &mut self.scratch,
                    batch,
                    options.compression,
                    timestamp,
                    seq,
                ) {
                    Ok(bytes) => data.push(
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(bytes)),
                    ),
                    Err(why) => {
                        failure = Some(Error::new(
                            ErrorKind::Serialization,
                            format!("encoding the record batch failed: {why}"),
                        ));
                        break;
                    }
                }
            }
            let sent = match failure {
                Some(e) => Err((e, Outcome::Refused)),
                None => {
                    let request = ProduceRequest::default()
                        .with_acks(acks)
                        .with_timeout_ms(ack_ms)
                        .with_topic_data(vec![TopicProduceData::default()
                            .with_name(topic_name(topic))
                            .with_partition_data(data)]);
                    // No connection: nothing left this client. A write that fails half-way
                    // may have reached the broker.
                    match self
                        .cluster
                        .node_addr(node)
                        .and_then(|addr| self.cluster.conn(&addr).map(|_| addr))
                        .and_then(|addr| {
                            // Not sent once the round's time is up (connecting may take it).
                            if Instant::now() >= deadline {
                                Err(Error::timeout(
                                    "connecting to the partition leader",
                                    options.timeout,
                                ))
                            } else {
                                Ok(addr)
                            }
                        }) {
                        Err(e) => Err((e, Outcome::Refused)),
                        Ok(addr) => match self.cluster.send(&addr, &request, deadline) {
                            Ok(sent) => Ok(InFlight {
                                addr,
                                sent,
                                partitions: partitions.clone(),
                            }),
                            Err(e) => Err((e.with_broker(addr), Outcome::Unknown)),
                        },
                    }
                }
            };
            let sent = sent.map_err(|(e, outcome)| {
                stale = true;
                (e, outcome)
            });
            match sent {
                Ok(f) => in_flight.push(f),
                Err((e, outcome)) => {
                    // Possibly written: the same records sent again reuse the sequence.
                    let settled: Vec<(i32, Outcome)> =
                        partitions.iter().map(|&p| (p, outcome)).collect();
                    settle(&mut idem, &sequences, &settled, &refs);
                    for &p in &partitions {
                        for &i in &by_partition[&p] {
                            results[i] = Some(Err(e.detached().with_partition(p)));
                        }
                    }
                }
            }
        }

        for (i, f) in in_flight.into_iter().enumerate() {
            if acks == 0 {
                // No answer comes: offsets are unknown.
                for &p in &f.partitions {
                    for &i in &by_partition[&p] {
                        results[i] = Some(Ok(Delivery {
                            partition: p,
                            offset: -1,
                        }));
                    }
                }
                continue;
            }
            let answer = self.cluster.receive::<ProduceRequest>(
                &f.addr,
                f.sent,
                if i == 0 {
                    deadline
                } else {
                    deadline.max(Instant::now() + LATE_ANSWER_GRACE)
                },
            );
            match answer {
                Ok(answer) => {
                    self.cluster.throttle(&f.addr, answer.throttle_time_ms);
                    let (s, codes) = apply_answer(&answer, topic, &f, &by_partition, &mut results);
                    stale |= s;
                    let outcomes: Vec<(i32, Outcome)> = f
                        .partitions
                        .iter()
                        .map(|&p| {
                            let c = codes.iter().find(|(q, _)| *q == p).map(|&(_, c)| c);
                            (p, c.map_or(Outcome::Unknown, outcome_of))
                        })
                        .collect();
                    settle(&mut idem, &sequences, &outcomes, &refs);
                }
                Err(e) => {
                    stale = true;
                    let unknown: Vec<(i32, Outcome)> = f
                        .partitions
                        .iter()
                        .map(|&p| (p, Outcome::Unknown))
                        .collect();
                    settle(&mut idem, &sequences, &unknown, &refs);
                    let e = e.with_broker(f.addr.clone());
                    for &p in &f.partitions {
                        for &i in &by_partition[&p] {
                            results[i] = Some(Err(e.detached().with_partition(p)));
                        }
                    }
                }
            }
        }
        if stale {
            self.cluster.forget(topic);
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Broker,
                        "the broker's answer did not confirm this record's partition",
                    ))
                })
            })
            .collect())
    }
}

/// At least the encoded size of `records` split into batches per partition: each record's
/// bytes plus the most its framing takes, and a batch header per partition.
fn batch_room(records: &[OutgoingRecord]) -> usize {
    const RECORD_FRAMING: usize = 32;
    const BATCH_HEADER_MAX: usize = 64;
    let partitions = 1 + records.len().min(1024);
    records
        .iter()
        .map(|r| {
            let headers: usize = r
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.len() + 2 * 5)
                .sum();
            r.key.as_ref().map_or(0, Vec::len) + r.value.len() + headers + RECORD_FRAMING
        })
        .sum::<usize>()
        + partitions * BATCH_HEADER_MAX
}

/// Each partition's record indices, in order. Counted first so that every list is allocated
/// once at its size (growing a list per record was an eighth of a writer's time).
fn index_by_partition(records: &[OutgoingRecord]) -> BTreeMap<i32, Vec<usize>> {
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for r in records {
        *counts.entry(r.partition).or_default() += 1;
    }
    let mut by_partition: BTreeMap<i32, Vec<usize>> = counts
        .into_iter()
        .map(|(p, n)| (p, Vec::with_capacity(n)))
        .collect();
    for (i, r) in records.iter().enumerate() {
        if let Some(list) = by_partition.get_mut(&r.partition) {
            list.push(i);
        }
    }
    by_partition
}

impl ProducerSession for ModernProducerSession {
    fn partition_count(&mut self, topic: &str) -> Result<usize> {
        Ok(self.cluster.topic(topic, false)?.partitions.len())
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
            Ok(results) => results
                .into_iter()
                .map(|r| r.map_err(|e| e.with_topic(topic)))
                .collect(),
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
        self.cluster.forget_all();
    }
}
