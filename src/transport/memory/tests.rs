//! Scenario tests of the in-process broker, named as sentences.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use super::subscription::MAX_POLL_RECORDS;
use super::MemoryTransport;
use crate::config::{Acks, Compression, StartOffset};
use crate::error::ErrorKind;
use crate::transport::{
    ConsumedRecord, Header, OutgoingRecord, ProduceOptions, SubscribeOptions, Subscription,
    Transport,
};

const SHORT: Duration = Duration::from_millis(20);

fn options() -> ProduceOptions {
    ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(1),
    }
}

fn record(partition: i32, value: &str) -> OutgoingRecord {
    OutgoingRecord {
        partition,
        key: Some(format!("k-{value}").into_bytes()),
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

/// Produces one record per `(partition, value)` and checks every one was stored.
fn produce(t: &MemoryTransport, topic: &str, records: &[(i32, &str)]) {
    let batch: Vec<_> = records.iter().map(|&(p, v)| record(p, v)).collect();
    let mut session = t.connect_producer().unwrap();
    for r in session.produce(topic, &batch, &options()) {
        r.unwrap();
    }
}

fn subscribe(
    t: &MemoryTransport,
    group: &str,
    topic: &str,
    start: StartOffset,
) -> Box<dyn Subscription> {
    t.subscribe(SubscribeOptions {
        group: group.into(),
        topic: topic.into(),
        client_id: "test".into(),
        start_offset: start,
        min_bytes: 1,
        max_bytes: 1_000_000,
    })
    .unwrap()
}

fn values(records: &[ConsumedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone()).unwrap())
        .collect()
}

/// Polls until a poll comes back empty, returning everything read.
fn drain(sub: &mut dyn Subscription) -> Vec<ConsumedRecord> {
    let mut all = Vec::new();
    loop {
        let batch = sub.poll(SHORT).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

#[test]
fn produced_records_get_consecutive_offsets_in_each_partition() {
    let t = MemoryTransport::new();
    let mut session = t.connect_producer().unwrap();
    assert_eq!(session.partition_count("orders").unwrap(), 3);
    let batch = [
        record(0, "a"),
        record(2, "b"),
        record(0, "c"),
        record(2, "d"),
    ];
    let deliveries: Vec<_> = session
        .produce("orders", &batch, &options())
        .into_iter()
        .map(|r| r.unwrap())
        .map(|d| (d.partition, d.offset))
        .collect();
    assert_eq!(deliveries, [(0, 0), (2, 0), (0, 1), (2, 1)]);
    let d = session.produce("orders", &[record(0, "e")], &options());
    assert_eq!(d[0].as_ref().unwrap().offset, 2);

    assert_eq!(t.high_watermarks("orders"), [3, 0, 2]);
    assert_eq!(values(&t.records("orders")), ["a", "c", "e", "b", "d"]);
    let p2 = t.partition_records("orders", 2);
    assert_eq!(p2[1].offset, 1);
    assert_eq!(p2[1].key.as_deref(), Some(&b"k-d"[..]));
    assert_eq!(t.produce_calls(), 2);
    assert_eq!(t.name(), "memory");
}

#[test]
fn headers_and_every_codec_round_trip_through_the_memory_broker() {
    let t = MemoryTransport::new();
    let mut session = t.connect_producer().unwrap();
    let mut with = record(1, "h");
    with.headers = vec![
        Header::new("message-id", "42"),
        Header::new("bin", vec![0u8, 255]),
        Header::new("empty", Vec::new()),
    ];
    for compression in [Compression::Lz4, Compression::Zstd, Compression::Gzip] {
        let opts = ProduceOptions {
            compression,
            ..options()
        };
        let r = session.produce("hdrs", &[with.clone(), record(1, "plain")], &opts);
        assert!(r.iter().all(|r| r.is_ok()), "{compression:?}: {r:?}");
    }
    let mut sub = subscribe(&t, "g", "hdrs", StartOffset::Earliest);
    let got = drain(sub.as_mut());
    assert_eq!(got.len(), 6);
    for pair in got.chunks(2) {
        assert_eq!(pair[0].headers, with.headers);
        assert!(pair[1].headers.is_empty());
    }
}

#[test]
fn a_record_for_a_missing_partition_fails_alone_with_its_partition_named() {
    let t = MemoryTransport::with_default_partitions(2);
    let mut session = t.connect_producer().unwrap();
    let results = session.produce("orders", &[record(0, "a"), record(5, "b")], &options());
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTopic);
    assert_eq!(err.context().topic.as_deref(), Some("orders"));
    assert_eq!(err.context().partition, Some(5));
    assert_eq!(t.high_watermarks("orders"), [1, 0]);
}

#[test]
fn with_auto_create_off_an_unknown_topic_fails_with_unknown_topic() {
    let t = MemoryTransport::new();
    t.set_auto_create(false);
    let mut session = t.connect_producer().unwrap();
    let results = session.produce("missing", &[record(0, "a"), record(1, "b")], &options());
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownTopic);
        assert!(e.to_string().contains("missing"), "{e}");
    }
    assert_eq!(
        t.partition_count("missing").unwrap_err().kind(),
        ErrorKind::UnknownTopic
    );
    let sub = t.subscribe(SubscribeOptions {
        group: "g".into(),
        topic: "missing".into(),
        client_id: "c".into(),
        start_offset: StartOffset::Earliest,
        min_bytes: 1,
        max_bytes: 100,
    });
    assert_eq!(sub.err().unwrap().kind(), ErrorKind::UnknownTopic);

    t.create_topic("missing", 5).unwrap();
    assert_eq!(t.partition_count("missing").unwrap(), 5);
    assert!(t.records("never-created").is_empty());
}

#[test]
fn create_topic_is_idempotent_but_rejects_another_partition_count_or_a_bad_name() {
    let t = MemoryTransport::new();
    t.create_topic("events", 4).unwrap();
    t.create_topic("events", 4).unwrap();
    assert_eq!(
        t.create_topic("events", 2).unwrap_err().kind(),
        ErrorKind::Broker
    );
    assert_eq!(
        t.create_topic("bad topic", 1).unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(
        t.create_topic("zero", 0).unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(
        t.partition_count("bad topic").unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(t.high_watermarks("events"), [0, 0, 0, 0]);
}

#[test]
fn a_clone_is_another_handle_to_the_same_broker() {
    let t = MemoryTransport::default();
    let other = t.clone();
    produce(&other, "shared", &[(1, "x")]);
    assert_eq!(t.high_watermarks("shared"), [0, 1, 0]);
    assert!(format!("{t:?}").contains("topics: 1"));
}

#[test]
fn two_members_of_a_group_split_three_partitions_and_together_see_every_record_once() {
    let t = MemoryTransport::new();
    let mut a = subscribe(&t, "g", "jobs", StartOffset::Earliest);
    assert_eq!(a.assignment(), [0, 1, 2]);
    let mut b = subscribe(&t, "g", "jobs", StartOffset::Earliest);
    // Eager rebalance: b gets nothing until a gave up its partitions (at its next poll).
    assert_eq!(b.assignment(), Vec::<i32>::new());
    let sent: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    let batch: Vec<(i32, &str)> = sent
        .iter()
        .enumerate()
        .map(|(i, v)| ((i % 3) as i32, v.as_str()))
        .collect();
    produce(&t, "jobs", &batch);

    let from_a = drain(a.as_mut());
    assert_eq!(a.assignment(), [0, 1]);
    let from_b = drain(b.as_mut());
    assert!(from_a.iter().all(|r| r.partition < 2));
    assert!(from_b.iter().all(|r| r.partition == 2));
    assert_eq!(from_a.len() + from_b.len(), 30);
    let seen: BTreeSet<String> = values(&from_a).into_iter().chain(values(&from_b)).collect();
    assert_eq!(seen, sent.into_iter().collect::<BTreeSet<_>>());
    // Another group reads everything again, independently.
    let mut other = subscribe(&t, "other", "jobs", StartOffset::Earliest);
    assert_eq!(drain(other.as_mut()).len(), 30);
}

#[test]
fn a_member_leaving_hands_its_partitions_to_the_other_which_resumes_from_the_committed_offset() {
    let t = MemoryTransport::new();
    let mut a = subscribe(&t, "g", "jobs", StartOffset::Earliest);
    let mut b = subscribe(&t, "g", "jobs", StartOffset::Earliest);
    produce(
        &t,
        "jobs",
        &[
            (0, "a0"),
            (0, "a1"),
            (1, "b0"),
            (2, "c0"),
            (2, "c1"),
            (2, "c2"),
        ],
    );
    assert_eq!(drain(a.as_mut()).len(), 3);
    let from_b = drain(b.as_mut());
    assert_eq!(values(&from_b), ["c0", "c1", "c2"]);
    // b handled only c0 before leaving; its fetch position (3) is not committed.
    b.commit(&[(2, 1)]).unwrap();
    assert_eq!(t.committed("g", "jobs", 2), Some(1));
    let lag = b.lag().unwrap();
    assert_eq!(
        (lag[0].partition, lag[0].high_watermark, lag[0].committed),
        (2, 3, Some(1))
    );
    assert_eq!(lag[0].lag(), 2);
    b.close().unwrap();
    b.close().unwrap();
    assert_eq!(b.poll(SHORT).unwrap_err().kind(), ErrorKind::Closed);

    let resumed = drain(a.as_mut());
    assert_eq!(a.assignment(), [0, 1, 2]);
    assert_eq!(values(&resumed), ["c1", "c2"]);

    // Dropping a subscription leaves too: a newcomer takes part of the partitions and the
    // group gets them all back when it goes.
    let mut c = subscribe(&t, "g", "jobs", StartOffset::Earliest);
    assert_eq!(c.assignment(), Vec::<i32>::new());
    a.poll(SHORT).unwrap();
    assert_eq!(a.assignment(), [0, 1]);
    c.poll(SHORT).unwrap();
    assert_eq!(c.assignment(), [2]);
    drop(c);
    a.poll(SHORT).unwrap();
    assert_eq!(a.assignment(), [0, 1, 2]);
}

#[test]
fn latest_starts_at_the_high_watermark_and_earliest_at_the_first_record() {
    let t = MemoryTransport::with_default_partitions(1);
    produce(&t, "news", &[(0, "old")]);
    let mut latest = subscribe(&t, "late", "news", StartOffset::Latest);
    let mut earliest = subscribe(&t, "early", "news", StartOffset::Earliest);
    produce(&t, "news", &[(0, "new")]);
    assert_eq!(values(&drain(latest.as_mut())), ["new"]);
    assert_eq!(values(&drain(earliest.as_mut())), ["old", "new"]);

    // A committed offset wins over the start offset.
    earliest.commit(&[(0, 1)]).unwrap();
    earliest.close().unwrap();
    let mut again = subscribe(&t, "early", "news", StartOffset::Earliest);
    assert_eq!(values(&drain(again.as_mut())), ["new"]);
}

#[test]
fn poll_waits_up_to_max_wait_and_wakes_early_on_a_produce_from_another_thread() {
    let t = MemoryTransport::new();
    let mut sub = subscribe(&t, "g", "wake", StartOffset::Earliest);

    let started = Instant::now();
    assert!(sub.poll(Duration::from_millis(100)).unwrap().is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");

    let producer = t.clone();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        produce(&producer, "wake", &[(1, "ping")]);
    });
    let started = Instant::now();
    let got = sub.poll(Duration::from_secs(30)).unwrap();
    let waited = started.elapsed();
    writer.join().unwrap();
    assert_eq!(values(&got), ["ping"]);
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
}

#[test]
fn poll_is_bounded_and_fair_across_partitions() {
    let t = MemoryTransport::with_default_partitions(2);
    // Enough on partition 0 for two full polls: without rotation, partition 1 waits a third.
    let many: Vec<String> = (0..2 * MAX_POLL_RECORDS + 100)
        .map(|i| i.to_string())
        .collect();
    let batch: Vec<(i32, &str)> = many.iter().map(|v| (0, v.as_str())).collect();
    produce(&t, "busy", &batch);
    produce(&t, "busy", &[(1, "quiet")]);
    let mut sub = subscribe(&t, "g", "busy", StartOffset::Earliest);
    let first = sub.poll(SHORT).unwrap();
    let second = sub.poll(SHORT).unwrap();
    assert!(first.len() <= MAX_POLL_RECORDS && second.len() <= MAX_POLL_RECORDS);
    let both: Vec<_> = first.iter().chain(&second).collect();
    assert!(
        both.iter().any(|r| r.partition == 1),
        "partition 1 was starved"
    );
    // Records of a partition come in offset order, with no gap.
    let offsets: Vec<i64> = both
        .iter()
        .filter(|r| r.partition == 0)
        .map(|r| r.offset)
        .collect();
    assert!(offsets.iter().enumerate().all(|(i, &o)| o == i as i64));
}

#[test]
fn max_bytes_caps_a_partition_per_poll_but_a_bigger_record_still_comes_through() {
    let t = MemoryTransport::with_default_partitions(1);
    let big = "x".repeat(50);
    produce(&t, "sized", &[(0, big.as_str()), (0, "small")]);
    let mut sub = t
        .subscribe(SubscribeOptions {
            group: "g".into(),
            topic: "sized".into(),
            client_id: "c".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 10,
        })
        .unwrap();
    assert_eq!(values(&sub.poll(SHORT).unwrap()), [big]);
    assert_eq!(values(&sub.poll(SHORT).unwrap()), ["small"]);
}

#[test]
fn injected_failures_fail_every_record_of_the_next_produce_calls_only() {
    let t = MemoryTransport::new();
    t.fail_next_produces(2, ErrorKind::Connection);
    let mut session = t.connect_producer().unwrap();
    for _ in 0..2 {
        let results = session.produce("flaky", &[record(0, "a"), record(1, "b")], &options());
        for r in results {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Connection);
            assert!(e.is_retriable());
            assert_eq!(e.context().topic.as_deref(), Some("flaky"));
        }
    }
    assert!(session.produce("flaky", &[record(0, "a")], &options())[0].is_ok());
    assert_eq!(t.produce_calls(), 3);
    assert_eq!(t.records("flaky").len(), 1);
}

#[test]
fn an_unavailable_broker_fails_every_call_with_a_connection_error_until_it_is_back() {
    let t = MemoryTransport::new();
    let mut sub = subscribe(&t, "g", "down", StartOffset::Earliest);
    let mut session = t.connect_producer().unwrap();
    t.set_unavailable(true);

    let is_down = |kind: ErrorKind| assert_eq!(kind, ErrorKind::Connection);
    is_down(
        session.produce("down", &[record(0, "a")], &options())[0]
            .as_ref()
            .unwrap_err()
            .kind(),
    );
    is_down(session.partition_count("down").unwrap_err().kind());
    is_down(t.partition_count("down").unwrap_err().kind());
    is_down(t.health_check(SHORT).unwrap_err().kind());
    is_down(sub.poll(SHORT).unwrap_err().kind());
    is_down(sub.commit(&[(0, 0)]).unwrap_err().kind());
    is_down(sub.lag().unwrap_err().kind());
    let err = t
        .subscribe(SubscribeOptions {
            group: "g".into(),
            topic: "down".into(),
            client_id: "c".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 100,
        })
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("memory broker is unavailable"),
        "{err}"
    );

    t.set_unavailable(false);
    t.health_check(SHORT).unwrap();
    produce(&t, "down", &[(0, "a")]);
    assert_eq!(values(&sub.poll(SHORT).unwrap()), ["a"]);
}

#[test]
fn a_waiting_poll_fails_when_the_broker_becomes_unavailable() {
    let t = MemoryTransport::new();
    let mut sub = subscribe(&t, "g", "cut", StartOffset::Earliest);
    let switch = t.clone();
    let cutter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        switch.set_unavailable(true);
    });
    let err = sub.poll(Duration::from_secs(30)).unwrap_err();
    cutter.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Connection);
}

#[test]
fn a_commit_past_the_high_watermark_is_accepted_as_a_broker_does_and_a_negative_one_is_rejected() {
    let t = MemoryTransport::new();
    produce(&t, "c", &[(0, "a"), (0, "b")]);
    let mut sub = subscribe(&t, "g", "c", StartOffset::Earliest);
    sub.commit(&[(0, 2), (1, 0)]).unwrap();
    sub.commit(&[(0, 3)]).unwrap();
    assert_eq!(t.committed("g", "c", 0), Some(3));
    // A partition the member does not own (here: the topic has none) is not sent.
    sub.commit(&[(7, 0)]).unwrap();
    let negative = sub.commit(&[(0, -1)]).unwrap_err();
    assert_eq!(negative.kind(), ErrorKind::Broker);
    assert_eq!(negative.context().partition, Some(0));
    // A rejected commit stores none of its offsets.
    assert!(sub.commit(&[(2, 0), (0, -9)]).is_err());
    assert_eq!(t.committed("g", "c", 0), Some(3));
    assert_eq!(t.committed("g", "c", 2), None);
}
