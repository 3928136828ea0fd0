//! The modern subscription's prefetch (the next fetch written before a poll hands its
//! records over, on connections of its own), against Apache Kafka 3.9.1: no record lost or
//! returned twice across pauses and resumes, commits and lag lookups between polls (they
//! share the broker with the fetch in flight), a rebalance to a second member, and a
//! committed position the broker no longer stores (reset to the earliest offset).
//!
//! Small fetches (`max_bytes` 2 KB per partition) make every poll leave a prefetch behind.

mod modern_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_sync::transport::{
    ConsumedRecord, OutgoingRecord, ProduceOptions, SubscribeOptions, Subscription, Transport,
};
use kafka_sync::{Acks, Compression, StartOffset};
use modern_support::{random_name, Broker};

const PARTITIONS: i32 = 3;

/// A topic of `per_partition` records in each of 3 partitions, 100-byte values.
fn topic_with(t: &dyn Transport, per_partition: usize) -> String {
    let topic = random_name("prefetch");
    t.ensure_topic(&topic, PARTITIONS, 1).unwrap();
    produce(t, &topic, per_partition);
    topic
}

fn produce(t: &dyn Transport, topic: &str, per_partition: usize) {
    let records: Vec<OutgoingRecord> = (0..per_partition * PARTITIONS as usize)
        .map(|i| OutgoingRecord {
            partition: i as i32 % PARTITIONS,
            key: None,
            value: vec![b'v'; 100],
            headers: Vec::new(),
        })
        .collect();
    let mut session = t.connect_producer().unwrap();
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(10),
    };
    for chunk in records.chunks(500) {
        for r in session.produce(topic, chunk, &options) {
            r.expect("produce");
        }
    }
}

fn subscribe(t: &dyn Transport, topic: &str, group: &str) -> Box<dyn Subscription> {
    t.subscribe(SubscribeOptions {
        group: group.to_string(),
        topic: topic.to_string(),
        client_id: "ks-prefetch-test".to_string(),
        start_offset: StartOffset::Earliest,
        min_bytes: 1,
        max_bytes: 2_048,
    })
    .expect("subscribe")
}

/// What one member read, checked as it comes: each partition's offsets follow each other
/// without a gap or a repeat from where the member started reading it.
#[derive(Default)]
struct Reader {
    next: BTreeMap<i32, i64>,
    seen: BTreeSet<(i32, i64)>,
}

impl Reader {
    fn take(&mut self, records: &[ConsumedRecord], paused: &BTreeSet<i32>) {
        for r in records {
            assert!(
                !paused.contains(&r.partition),
                "partition {} is paused but {} came back",
                r.partition,
                r.offset
            );
            if let Some(&want) = self.next.get(&r.partition) {
                assert_eq!(
                    r.offset, want,
                    "partition {}: offset {} after {}",
                    r.partition, r.offset, want
                );
            }
            self.next.insert(r.partition, r.offset + 1);
            assert!(self.seen.insert((r.partition, r.offset)), "{r:?} twice");
        }
    }

    fn commit_all(&self, sub: &mut dyn Subscription) -> bool {
        let offsets: Vec<(i32, i64)> = self.next.iter().map(|(p, o)| (*p, *o)).collect();
        sub.commit(&offsets).is_ok()
    }
}

#[test]
fn no_record_is_lost_or_repeated_across_pauses_commits_and_lag_lookups() {
    let t = Broker::Kafka3.transport();
    let per_partition = 1_000;
    let topic = topic_with(&t, per_partition);
    let group = random_name("group");
    let mut sub = subscribe(&t, &topic, &group);
    let mut reader = Reader::default();
    let mut paused: BTreeSet<i32> = BTreeSet::new();
    let want = per_partition * PARTITIONS as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut polls = 0u32;
    let mut paused_polls_with_records = 0;
    while reader.seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "read {} of {want}",
            reader.seen.len()
        );
        let got = sub.poll(Duration::from_millis(300)).expect("poll");
        reader.take(&got, &paused);
        polls += 1;
        // Pause one partition for three polls out of every seven, turn by turn; a fetch
        // for it is usually in flight when it is paused.
        let p = (polls / 7) as i32 % PARTITIONS;
        match polls % 7 {
            1 => {
                sub.pause(&[p]);
                paused.insert(p);
            }
            4 => {
                sub.resume(&[p]);
                paused.remove(&p);
            }
            _ if !paused.is_empty() && !got.is_empty() => paused_polls_with_records += 1,
            _ => {}
        }
        // A commit and a lag lookup between polls talk to the broker the prefetch waits on.
        if polls.is_multiple_of(3) {
            assert!(reader.commit_all(sub.as_mut()), "commit");
            let lag = sub.lag().expect("lag");
            assert_eq!(lag.len(), PARTITIONS as usize);
        }
    }
    assert!(
        paused_polls_with_records > 0,
        "the other partitions went on while one was paused"
    );
    // Nothing more arrives, paused or not.
    sub.resume(&paused.iter().copied().collect::<Vec<_>>());
    let more = sub.poll(Duration::from_millis(500)).expect("poll");
    assert!(
        more.is_empty(),
        "{} records beyond the topic's end",
        more.len()
    );
    for p in 0..PARTITIONS {
        assert_eq!(
            reader.next.get(&p),
            Some(&(per_partition as i64)),
            "partition {p}"
        );
    }
    assert!(reader.commit_all(sub.as_mut()));
    sub.close().unwrap();

    // The group goes on from its commit: only what was written after it.
    produce(&t, &topic, 10);
    let mut again = subscribe(&t, &topic, &group);
    let mut reader = Reader::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.seen.len() < 30 && Instant::now() < deadline {
        let got = again.poll(Duration::from_millis(300)).expect("poll");
        reader.take(&got, &BTreeSet::new());
    }
    let firsts: BTreeSet<i64> = reader
        .seen
        .iter()
        .filter(|(_, o)| (*o as usize) < per_partition)
        .map(|(_, o)| *o)
        .collect();
    assert!(firsts.is_empty(), "read again below the commit: {firsts:?}");
    assert_eq!(reader.seen.len(), 30);
    again.close().unwrap();
}

/// Every record the members of one group read, and those read but not committed.
#[derive(Default)]
struct Tally {
    /// How often each `(partition, offset)` was read.
    all: BTreeMap<(i32, i64), usize>,
    /// Offsets a member read but could not commit (a commit refused during the rebalance):
    /// the next owner may read them again.
    uncommitted: BTreeSet<(i32, i64)>,
}

impl Tally {
    /// One poll of `sub`, checked by `reader`, then a commit of everything it read.
    fn step(&mut self, sub: &mut dyn Subscription, reader: &mut Reader) -> usize {
        let got = sub.poll(Duration::from_millis(200)).expect("poll");
        self.took(sub, reader, got)
    }

    /// Checks and counts what a poll of `sub` returned, then commits everything read.
    fn took(
        &mut self,
        sub: &mut dyn Subscription,
        reader: &mut Reader,
        got: Vec<ConsumedRecord>,
    ) -> usize {
        // Lost partitions, and those restarted from the group's commit, start afresh.
        let assignment = sub.assignment();
        reader.next.retain(|p, _| assignment.contains(p));
        for p in sub.take_restarted() {
            reader.next.remove(&p);
        }
        reader.seen.clear();
        reader.take(&got, &BTreeSet::new());
        if !reader.commit_all(sub) {
            self.uncommitted
                .extend(got.iter().map(|r| (r.partition, r.offset)));
        }
        for r in &got {
            *self.all.entry((r.partition, r.offset)).or_default() += 1;
        }
        got.len()
    }
}

#[test]
fn a_member_joining_mid_read_takes_over_partitions_without_gaps_or_repeats() {
    let t = Broker::Kafka3.transport();
    let per_partition = 1_500;
    let topic = topic_with(&t, per_partition);
    let group = random_name("group");
    let mut first = subscribe(&t, &topic, &group);
    let mut readers = [Reader::default(), Reader::default()];
    let mut tally = Tally::default();
    let want = per_partition * PARTITIONS as usize;
    // The first member reads a while alone (prefetches in flight), then a second joins;
    // each polls on its own thread (a join waits for the other member's next poll).
    let mut read = 0;
    while read < want / 4 {
        read += tally.step(first.as_mut(), &mut readers[0]);
    }
    let tally = std::sync::Mutex::new(tally);
    let deadline = Instant::now() + Duration::from_secs(90);
    let [r0, r1] = &mut readers;
    let mut second = subscribe(&t, &topic, &group);
    let run = |sub: &mut dyn Subscription, reader: &mut Reader| loop {
        let read = tally.lock().unwrap().all.len();
        assert!(Instant::now() < deadline, "read {read} of {want}");
        if read >= want {
            return;
        }
        let got = sub.poll(Duration::from_millis(200)).expect("poll");
        tally.lock().unwrap().took(sub, reader, got);
    };
    std::thread::scope(|s| {
        let (a, b) = (first.as_mut(), second.as_mut());
        s.spawn(|| run(a, r0));
        s.spawn(|| run(b, r1));
    });
    let tally = tally.into_inner().unwrap();
    let repeated: Vec<_> = tally
        .all
        .iter()
        .filter(|(k, n)| **n > 1 && !tally.uncommitted.contains(k))
        .collect();
    assert!(
        repeated.is_empty(),
        "read twice past a commit: {repeated:?}"
    );
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = tally
            .all
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..per_partition as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
    first.close().unwrap();
    second.close().unwrap();
}

#[test]
fn a_committed_position_past_the_log_end_is_reset_to_the_earliest_offset() {
    let t = Broker::Kafka3.transport();
    let per_partition = 300;
    let topic = topic_with(&t, per_partition);
    let group = random_name("group");
    // The group's commit for partition 1 lies far past what the broker stores.
    let mut setter = subscribe(&t, &topic, &group);
    while setter.assignment().is_empty() {
        setter.poll(Duration::from_millis(200)).expect("poll");
    }
    setter.commit(&[(1, 1_000_000)]).expect("commit");
    setter.close().unwrap();

    let mut sub = subscribe(&t, &topic, &group);
    let mut reader = Reader::default();
    let want = per_partition * PARTITIONS as usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "read {} of {want}",
            reader.seen.len()
        );
        let got = sub.poll(Duration::from_millis(300)).expect("poll");
        reader.take(&got, &BTreeSet::new());
    }
    for p in 0..PARTITIONS {
        let first = reader.seen.iter().find(|(q, _)| *q == p).map(|(_, o)| *o);
        assert_eq!(
            first,
            Some(0),
            "partition {p} starts at the earliest offset"
        );
        assert_eq!(reader.next.get(&p), Some(&(per_partition as i64)));
    }
    sub.close().unwrap();
}
