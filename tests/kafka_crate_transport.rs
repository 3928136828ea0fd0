//! The `kafka` crate transport against a real broker at 127.0.0.1:9092
//! (`KAFKA_TEST_BROKERS` overrides), on random topic names; fails, not skips, when no broker
//! answers. Its fake-broker tests (a Kafka 4, a silent broker) live beside the transport.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_sync::transport::{
    ConsumedRecord, KafkaCrateTransport, OutgoingRecord, ProduceOptions, SubscribeOptions,
    Subscription, Transport,
};
use kafka_sync::{Acks, Compression, Config, ErrorKind, StartOffset, TransportKind};

fn broker() -> String {
    common::brokers().join(",")
}

fn config(brokers: &str) -> Config {
    let mut c = Config {
        brokers: brokers.split(',').map(|b| b.trim().to_string()).collect(),
        client_id: "ks-test".to_string(),
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(15),
        transport: TransportKind::KafkaCrate,
        ..Config::default()
    };
    c.consumer.min_bytes = 1;
    c.consumer.max_wait = Duration::from_millis(200);
    c
}

fn transport() -> KafkaCrateTransport {
    KafkaCrateTransport::new(&config(&broker())).unwrap()
}

fn new_topic() -> String {
    format!("ks-test-{}", uuid::Uuid::new_v4())
}

fn options(compression: Compression) -> ProduceOptions {
    ProduceOptions {
        acks: Acks::All,
        compression,
        timeout: Duration::from_secs(10),
    }
}

fn subscribe(
    t: &KafkaCrateTransport,
    topic: &str,
    group: &str,
    start: StartOffset,
) -> Box<dyn Subscription> {
    t.subscribe(SubscribeOptions {
        group: group.to_string(),
        topic: topic.to_string(),
        client_id: "ks-test-consumer".to_string(),
        start_offset: start,
        min_bytes: 1,
        max_bytes: 1_000_000,
    })
    .unwrap()
}

/// `n` records over partitions 0..3: binary values of varied sizes, some without a key.
fn records(n: usize, tag: &str) -> Vec<OutgoingRecord> {
    (0..n)
        .map(|i| OutgoingRecord {
            partition: (i % 3) as i32,
            key: (i % 4 != 0).then(|| format!("key-{tag}-{i}").into_bytes()),
            value: {
                let mut v = format!("value-{tag}-{i}-").into_bytes();
                v.extend((0..(i * 37) % 3000).map(|b| (b % 256) as u8));
                v.extend_from_slice(&[0, 255, 0xfe, b'\n']);
                v
            },
            headers: Vec::new(),
        })
        .collect()
}

/// Polls until `n` records arrived (or 20 s passed).
fn read(sub: &mut dyn Subscription, n: usize) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(sub.poll(Duration::from_millis(500)).unwrap());
    }
    got
}

/// Produces `recs` and returns the (partition, offset) of each, asserting success.
fn produce(
    t: &KafkaCrateTransport,
    topic: &str,
    recs: &[OutgoingRecord],
    c: Compression,
) -> Vec<(i32, i64)> {
    let mut session = t.connect_producer().unwrap();
    session
        .produce(topic, recs, &options(c))
        .into_iter()
        .map(|r| {
            let d = r.unwrap();
            (d.partition, d.offset)
        })
        .collect()
}

/// Checks that `got` holds exactly `sent` at `positions`, in offset order per partition.
fn assert_read_back(sent: &[OutgoingRecord], positions: &[(i32, i64)], got: &[ConsumedRecord]) {
    assert_eq!(got.len(), sent.len(), "record count");
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in got {
        let prev = last.insert(r.partition, r.offset);
        assert!(
            prev.is_none_or(|p| p < r.offset),
            "offset order in {}",
            r.partition
        );
        let i = positions
            .iter()
            .position(|&(p, o)| p == r.partition && o == r.offset)
            .unwrap_or_else(|| panic!("unexpected record at {}/{}", r.partition, r.offset));
        assert_eq!(
            r.value, sent[i].value,
            "value at {}/{}",
            r.partition, r.offset
        );
        assert_eq!(r.key, sent[i].key, "key at {}/{}", r.partition, r.offset);
    }
}

#[test]
fn a_batch_to_three_partitions_reads_back_byte_equal_with_the_right_offsets() {
    let t = transport();
    let topic = new_topic();
    let started = Instant::now();
    assert_eq!(t.partition_count(&topic).unwrap(), 3);
    eprintln!(
        "auto-created {topic} with 3 partitions in {:?}",
        started.elapsed()
    );

    let first = records(30, "a");
    let mut session = t.connect_producer().unwrap();
    assert_eq!(session.partition_count(&topic).unwrap(), 3);
    let started = Instant::now();
    let positions: Vec<(i32, i64)> = session
        .produce(&topic, &first, &options(Compression::None))
        .into_iter()
        .map(|r| r.map(|d| (d.partition, d.offset)).unwrap())
        .collect();
    eprintln!("produced 30 records in {:?}", started.elapsed());
    let expected: Vec<(i32, i64)> = (0..30i32).map(|i| (i % 3, i64::from(i / 3))).collect();
    assert_eq!(positions, expected);

    // A second batch continues each partition's offsets.
    session.refresh_metadata();
    let second = records(6, "b");
    let more: Vec<(i32, i64)> = session
        .produce(&topic, &second, &options(Compression::None))
        .into_iter()
        .map(|r| r.map(|d| (d.partition, d.offset)).unwrap())
        .collect();
    assert_eq!(
        more,
        vec![(0, 10), (1, 10), (2, 10), (0, 11), (1, 11), (2, 11)]
    );

    let mut sub = subscribe(&t, &topic, &new_topic(), StartOffset::Earliest);
    assert_eq!(sub.assignment(), vec![0, 1, 2]);
    let started = Instant::now();
    let got = read(sub.as_mut(), 36);
    eprintln!("read 36 records back in {:?}", started.elapsed());
    let sent: Vec<OutgoingRecord> = first.into_iter().chain(second).collect();
    let all: Vec<(i32, i64)> = positions.into_iter().chain(more).collect();
    assert_read_back(&sent, &all, &got);
    sub.close().unwrap();
}

#[test]
fn a_resubscribed_group_resumes_from_its_commit() {
    let t = transport();
    let topic = new_topic();
    let sent = records(12, "c");
    let positions = produce(&t, &topic, &sent, Compression::None);
    let group = format!("g-{}", uuid::Uuid::new_v4());

    let mut sub = subscribe(&t, &topic, &group, StartOffset::Earliest);
    assert_eq!(read(sub.as_mut(), 12).len(), 12);
    let started = Instant::now();
    sub.commit(&[(0, 2), (1, 4)]).unwrap();
    eprintln!("first commit of a new group took {:?}", started.elapsed());
    sub.close().unwrap();

    let mut again = subscribe(&t, &topic, &group, StartOffset::Earliest);
    let got = read(again.as_mut(), 6);
    let mut at: Vec<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
    at.sort();
    assert_eq!(at, vec![(0, 2), (0, 3), (2, 0), (2, 1), (2, 2), (2, 3)]);
    let expected: Vec<(i32, i64)> = at.clone();
    let sent_at: Vec<OutgoingRecord> = expected
        .iter()
        .map(|pos| sent[positions.iter().position(|p| p == pos).unwrap()].clone())
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(|r| (r.partition, r.offset));
    assert_read_back(&sent_at, &expected, &got_sorted);
    // Nothing more arrives.
    assert!(again.poll(Duration::from_millis(300)).unwrap().is_empty());
}

#[test]
fn lag_goes_to_zero_after_commit() {
    let t = transport();
    let topic = new_topic();
    produce(&t, &topic, &records(9, "d"), Compression::None);
    let mut sub = subscribe(&t, &topic, &new_topic(), StartOffset::Earliest);
    let lag = sub.lag().unwrap();
    assert_eq!(lag.len(), 3);
    for l in &lag {
        assert_eq!((l.high_watermark, l.committed, l.lag()), (3, None, 3));
    }
    let got = read(sub.as_mut(), 9);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &got {
        next.insert(r.partition, r.offset + 1);
    }
    let commits: Vec<(i32, i64)> = next.into_iter().collect();
    sub.commit(&commits).unwrap();
    let lag = sub.lag().unwrap();
    for l in &lag {
        assert_eq!((l.committed, l.lag()), (Some(3), 0), "{l:?}");
    }
}

#[test]
fn gzip_and_snappy_batches_round_trip() {
    let t = transport();
    for compression in [Compression::Gzip, Compression::Snappy] {
        let topic = new_topic();
        let first = records(15, "gz1");
        let second = records(15, "gz2");
        let mut session = t.connect_producer().unwrap();
        let mut positions = Vec::new();
        for batch in [&first, &second] {
            for r in session.produce(&topic, batch, &options(compression)) {
                let d = r.unwrap_or_else(|e| panic!("{compression:?}: {e}"));
                positions.push((d.partition, d.offset));
            }
        }
        let expected: Vec<(i32, i64)> = (0..30)
            .map(|i: i32| (i % 3, i64::from((i % 15) / 3 + (i / 15) * 5)))
            .collect();
        assert_eq!(positions, expected, "{compression:?}");
        let mut sub = subscribe(&t, &topic, &new_topic(), StartOffset::Earliest);
        let mut got = read(sub.as_mut(), 30);
        got.sort_by_key(|r| (r.partition, r.offset));
        let sent: Vec<OutgoingRecord> = first.into_iter().chain(second).collect();
        assert_read_back(&sent, &positions, &got);
    }
}

#[test]
fn a_latest_start_skips_what_was_there_before() {
    let t = transport();
    let topic = new_topic();
    produce(&t, &topic, &records(3, "e"), Compression::None);
    let mut sub = subscribe(&t, &topic, &new_topic(), StartOffset::Latest);
    assert!(sub.poll(Duration::from_millis(300)).unwrap().is_empty());
    produce(&t, &topic, &records(3, "f"), Compression::None);
    let got = read(sub.as_mut(), 3);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.offset == 1), "{got:?}");
}

#[test]
fn a_record_for_a_missing_partition_fails_alone() {
    let t = transport();
    let topic = new_topic();
    let mut session = t.connect_producer().unwrap();
    let recs = vec![
        OutgoingRecord {
            partition: 7,
            key: None,
            value: b"nowhere".to_vec(),
            headers: Vec::new(),
        },
        OutgoingRecord {
            partition: 1,
            key: None,
            value: b"somewhere".to_vec(),
            headers: Vec::new(),
        },
    ];
    let results = session.produce(&topic, &recs, &options(Compression::None));
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownTopic);
    assert_eq!(e.context().partition, Some(7));
    assert_eq!(results[1].as_ref().unwrap().offset, 0);

    // Fire and forget: no answer, so no offset.
    let none = ProduceOptions {
        acks: Acks::None,
        ..options(Compression::None)
    };
    let d = session
        .produce(&topic, &recs[1..], &none)
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!((d.partition, d.offset), (1, -1));
}

#[test]
fn health_check_answers_against_the_broker() {
    let t = transport();
    let started = Instant::now();
    t.health_check(Duration::from_secs(5)).unwrap();
    eprintln!("health check took {:?}", started.elapsed());
}

#[test]
fn a_closed_port_is_a_quick_connection_error() {
    let t = KafkaCrateTransport::new(&config("127.0.0.1:1")).unwrap();
    let started = Instant::now();
    let e = t.health_check(Duration::from_secs(5)).unwrap_err();
    let elapsed = started.elapsed();
    eprintln!("health check of a closed port failed in {elapsed:?}: {e}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");

    let started = Instant::now();
    assert_eq!(
        t.partition_count("t").unwrap_err().kind(),
        ErrorKind::Connection
    );
    let mut session = t.connect_producer().unwrap();
    let recs = records(3, "x");
    for r in session.produce("t", &recs, &options(Compression::None)) {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.context().partition.is_some());
        assert_eq!(e.context().topic.as_deref(), Some("t"));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_record_larger_than_max_bytes_stalls_only_its_partition() {
    let t = transport();
    let topic = new_topic();
    let recs = vec![
        OutgoingRecord {
            partition: 0,
            key: None,
            value: vec![7u8; 5000],
            headers: Vec::new(),
        },
        OutgoingRecord {
            partition: 1,
            key: None,
            value: vec![8u8; 10],
            headers: Vec::new(),
        },
    ];
    produce(&t, &topic, &recs, Compression::None);
    let mut sub = t
        .subscribe(SubscribeOptions {
            group: new_topic(),
            topic: topic.clone(),
            client_id: "ks-test-consumer".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 1000,
        })
        .unwrap();
    let got = read(sub.as_mut(), 1);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].partition, got[0].value.len()), (1, 10));
    // Fetch v0 cannot return the 5000-byte record within 1000 bytes: no error, no record.
    assert!(sub.poll(Duration::from_millis(300)).unwrap().is_empty());
}
