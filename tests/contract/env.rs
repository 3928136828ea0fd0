//! The two places a contract scenario runs: the in-memory broker, and the modern transport
//! against the real broker (`KAFKA_TEST_BROKERS`, default 127.0.0.1:9092). A scenario gets
//! an [`Env`] and sees the same calls on both; only how the records and commits are read
//! back differs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_sync::domain::{DeadLetterRecord, KafkaMessage, MessageType, RetryRecord};
use kafka_sync::transport::{
    ConsumedRecord, MemoryTransport, ModernTransport, OutgoingRecord, ProduceOptions,
    SubscribeOptions, Subscription, Transport,
};
use kafka_sync::{
    Acks, Compression, Config, Consumer, Kafka, RetryPolicy, StartOffset, TransportKind,
};
use uuid::Uuid;

/// Which transport a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The in-process broker.
    Memory,
    /// The modern transport on the real broker.
    Kafka,
}

/// The broker a scenario runs against, and the config its consumers start from.
pub struct Env {
    /// The consumers' config: a fresh group, fast polls, its own retry and dead-letter
    /// topics; scenarios change what they need before they make members.
    pub config: Config,
    memory: Option<MemoryTransport>,
    /// The transports made so far (the Kafka env: one per member, so a fault hook set on one
    /// hits only that member).
    made: Vec<Arc<ModernTransport>>,
    /// For each consumer made, the index of its transport in `made`.
    members: Vec<usize>,
}

/// Long enough for any scenario step on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// In-place retries: `attempts` in all, `interval` apart, no jitter.
pub fn retries(attempts: u32, interval: Duration) -> RetryPolicy {
    RetryPolicy {
        initial_interval: interval,
        multiplier: 1.0,
        max_interval: interval,
        max_elapsed: Duration::from_secs(120),
        max_attempts: attempts,
        randomization_factor: 0.0,
    }
}

impl Env {
    /// A fresh environment of `kind`.
    pub fn new(kind: Kind) -> Env {
        let mut config = match kind {
            Kind::Memory => Config {
                service_name: "contract".into(),
                ..Config::in_memory()
            },
            Kind::Kafka => {
                let mut c = Config {
                    brokers: crate::common::brokers(),
                    transport: TransportKind::Modern,
                    ..Config::default()
                };
                c.client_id = "kafka-sync-contract".into();
                c.service_name = "contract".into();
                c
            }
        };
        let id = Uuid::new_v4().simple().to_string();
        config.group_id = format!("ks-contract-{id}");
        config.consumer.retry_topic = format!("ks-contract-retry-{id}");
        config.consumer.dead_letter_topic = format!("ks-contract-dlt-{id}");
        config.consumer.max_wait = Duration::from_millis(50);
        config.consumer.session_timeout = Duration::from_secs(6);
        config.consumer.heartbeat_interval = Duration::from_millis(500);
        config.consumer.rebalance_timeout = Duration::from_secs(5);
        config.consumer.shutdown_timeout = Duration::from_secs(10);
        config.consumer.retry_topic_delay = Duration::from_secs(3600);
        let memory = (kind == Kind::Memory).then(MemoryTransport::new);
        Env {
            config,
            memory,
            made: Vec::new(),
            members: Vec::new(),
        }
    }

    /// A transport for one more member, made from the current config: the one memory broker
    /// (its group timeouts set from the config), or a new modern transport.
    pub fn transport(&mut self) -> Arc<dyn Transport> {
        match &self.memory {
            Some(m) => {
                let c = &self.config.consumer;
                m.set_group_timeouts(c.session_timeout, c.rebalance_timeout);
                Arc::new(m.clone())
            }
            None => {
                let t = Arc::new(ModernTransport::new(&self.config).expect("modern transport"));
                self.made.push(t.clone());
                t
            }
        }
    }

    /// Makes the next poll that rejoins a group fail right after the join, and that
    /// member's next `polls - 1` polls: on the memory broker the first member to take a new
    /// generation, on Kafka the `member`-th consumer made (counting from 0).
    pub fn fail_polls_after_rejoin(&self, member: usize, polls: usize) {
        match &self.memory {
            Some(m) => m.fail_polls_after_rejoin(polls),
            None => self.made[self.members[member]].fail_polls_after_rejoin(polls),
        }
    }

    /// Makes the next `joins` rejoins fail before they reach the group: on the memory
    /// broker any member's, on Kafka those of the `member`-th consumer made.
    pub fn fail_next_joins(&self, member: usize, joins: usize) {
        match &self.memory {
            Some(m) => m.fail_next_joins(joins),
            None => self.made[self.members[member]].fail_next_joins(joins),
        }
    }

    /// Makes the next `commits` commits fail with a connection error: on the memory broker
    /// any member's, on Kafka those of the `member`-th consumer made.
    pub fn fail_next_commits(&self, member: usize, commits: usize) {
        match &self.memory {
            Some(m) => m.fail_next_commits(commits),
            None => self.made[self.members[member]].fail_next_commits(commits),
        }
    }

    /// A topic of `partitions` partitions no other run uses, created.
    pub fn topic(&mut self, prefix: &str, partitions: usize) -> String {
        let name = format!("ks-contract-{prefix}-{}", Uuid::new_v4().simple());
        let t = self.transport();
        t.ensure_topic(&name, partitions as i32, -1)
            .expect("topic created");
        name
    }

    /// A consumer with `config` on a transport of its own (see [`transport`](Self::transport)).
    pub fn consumer(&mut self, config: Config) -> Consumer {
        let transport = self.transport();
        self.members.push(self.made.len().saturating_sub(1));
        Kafka::with_transport(config, transport)
            .and_then(|k| k.consumer())
            .expect("consumer")
    }

    /// Sends `messages` to `topic` through this crate's producer.
    pub fn send(&mut self, topic: &str, messages: &[KafkaMessage]) {
        let transport = self.transport();
        let producer = Kafka::with_transport(self.config.clone(), transport)
            .expect("producer")
            .producer();
        for m in messages {
            producer.send(topic, m).expect("input is written");
        }
        producer.flush().expect("flushed");
    }

    /// Writes `value` as a record of `partition` of `topic`, bypassing the envelope.
    pub fn send_raw(&mut self, topic: &str, partition: i32, value: &[u8]) {
        let mut session = self
            .transport()
            .connect_producer()
            .expect("producer session");
        let record = OutgoingRecord {
            partition,
            key: None,
            value: value.to_vec(),
            headers: Vec::new(),
        };
        let options = ProduceOptions {
            acks: Acks::All,
            compression: Compression::None,
            timeout: Duration::from_secs(10),
        };
        for result in session.produce(topic, &[record], &options) {
            result.expect("raw record is written");
        }
    }

    /// Joins `group` on `topic` as a bare subscription (no consumer around it).
    pub fn subscribe(&mut self, group: &str, topic: &str) -> Box<dyn Subscription> {
        self.transport()
            .subscribe(options(group, topic))
            .expect("subscribed")
    }

    /// High watermark and `group`'s commit of each partition of `topic`, by partition.
    pub fn offsets(&mut self, group: &str, topic: &str) -> BTreeMap<i32, (i64, Option<i64>)> {
        if let Some(m) = &self.memory {
            let hw = m.high_watermarks(topic);
            return hw
                .iter()
                .enumerate()
                .map(|(p, &h)| (p as i32, (h, m.committed(group, topic, p as i32))))
                .collect();
        }
        // A subscription that never polls never joins: its lag is every partition's.
        let mut probe = self.subscribe(group, topic);
        let lag = probe.lag().expect("lag");
        lag.into_iter()
            .map(|l| (l.partition, (l.high_watermark, l.committed)))
            .collect()
    }

    /// Every record of `topic` (read from the start by a group of its own on Kafka).
    pub fn records(&mut self, topic: &str) -> Vec<ConsumedRecord> {
        if let Some(m) = &self.memory {
            return m.records(topic);
        }
        let group = format!("ks-contract-reader-{}", Uuid::new_v4().simple());
        let total: i64 = self
            .offsets(&group, topic)
            .values()
            .map(|(hw, _)| *hw)
            .sum();
        let mut sub = self.subscribe(&group, topic);
        let mut out = Vec::new();
        let deadline = Instant::now() + WAIT;
        // Offsets count transaction markers too, which are never returned: read until the
        // records stop coming once the count is near.
        let mut quiet = 0;
        while (out.len() as i64) < total && Instant::now() < deadline && quiet < 20 {
            let got = sub.poll(Duration::from_millis(250)).expect("read back");
            quiet = if got.is_empty() { quiet + 1 } else { 0 };
            out.extend(got);
        }
        let _ = sub.close();
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }

    /// The message ids of the retry entries on `config.consumer.retry_topic`.
    pub fn parked_ids(&mut self, config: &Config) -> Vec<Uuid> {
        let topic = config.consumer.retry_topic.clone();
        self.records(&topic)
            .iter()
            .filter_map(|r| KafkaMessage::from_bytes(&r.value).ok())
            .filter(|env| env.message_type == MessageType::RETRY)
            .map(|env| env.payload_as::<RetryRecord>().expect("retry payload"))
            .map(|entry| entry.message.id)
            .collect()
    }

    /// The dead letters on `config.consumer.dead_letter_topic`.
    pub fn dead_letters(&mut self, config: &Config) -> Vec<DeadLetterRecord> {
        let topic = config.consumer.dead_letter_topic.clone();
        self.records(&topic)
            .iter()
            .map(|r| DeadLetterRecord::from_record(r).expect("a dead letter"))
            .collect()
    }
}

/// Subscribe options for `group` on `topic`, from the earliest offset.
pub fn options(group: &str, topic: &str) -> SubscribeOptions {
    SubscribeOptions {
        group: group.into(),
        topic: topic.into(),
        client_id: "kafka-sync-contract".into(),
        start_offset: StartOffset::Earliest,
        min_bytes: 1,
        max_bytes: 1 << 20,
    }
}

/// A message of type `test` with payload `{"n": n}`.
pub fn message(n: usize) -> KafkaMessage {
    KafkaMessage::from_json(MessageType::new("test"), serde_json::json!({ "n": n }))
}

/// The `n` of a [`message`].
pub fn n_of(m: &KafkaMessage) -> usize {
    m.payload["n"].as_u64().expect("a test message") as usize
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after [`WAIT`].
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
