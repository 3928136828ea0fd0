//! Decoders that cannot be made to panic or abort: a hostile or broken broker (a fake one
//! here, speaking the wire protocol on a local port) sends small answers announcing
//! `i32::MAX` entries, and every decoder of what the broker or another client wrote (the
//! JSON envelope, retry and dead-letter records) gets arbitrary bytes and mutations of
//! valid encodings. Each expects an error or a stand-in record, never a panic or an abort.
//!
//! The cases that aborted the process before the decoders were bounded run in a child
//! process ([`in_child`]), so a regression fails the test instead of killing the runner.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use kafka_sync::domain::{
    headers, DeadLetterKind, DeadLetterRecord, KafkaMessage, MessageType, Origin, RawBytes,
    RetryRecord,
};
use kafka_sync::transport::{ConsumedRecord, Header, ModernTransport};
use kafka_sync::{Config, TransportKind};
use proptest::prelude::*;

/// Set in the child process [`in_child`] starts.
const CHILD: &str = "KAFKA_SYNC_DECODERS_CHILD";

/// Runs the test `name` again in a child process, where `body` runs: an abort there fails
/// this test with the child's output instead of ending the runner.
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("the child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child running {name} ended with {} (an abort is signal 6):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- a fake broker -------------------------------------------------------------------

/// API keys the fake broker answers.
const FETCH: i16 = 1;
const METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;

/// What the fake broker answers to (api key, version): the body after the header.
type Answers = Arc<Mutex<Box<dyn FnMut(i16, i16) -> Vec<u8> + Send>>>;

/// A broker on a local port answering every connection's requests with `answers`; its
/// address. Advertises itself as node 1 in the metadata answers built here.
fn fake_broker(answers: Answers) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let answers = answers.clone();
            thread::spawn(move || serve(stream, answers));
        }
    });
    addr
}

fn serve(mut s: TcpStream, answers: Answers) {
    loop {
        let mut size = [0u8; 4];
        if s.read_exact(&mut size).is_err() {
            return;
        }
        let mut request = vec![0u8; i32::from_be_bytes(size) as usize];
        if s.read_exact(&mut request).is_err() {
            return;
        }
        let key = i16::from_be_bytes([request[0], request[1]]);
        let version = i16::from_be_bytes([request[2], request[3]]);
        let id = &request[4..8];
        let mut frame = id.to_vec();
        // Response header v1 (tagged fields) for flexible versions, except ApiVersions.
        let flexible = match key {
            METADATA => version >= 9,
            FETCH => version >= 12,
            _ => false,
        };
        if flexible {
            frame.push(0);
        }
        frame.extend(answers.lock().unwrap()(key, version));
        let mut out = (frame.len() as i32).to_be_bytes().to_vec();
        out.extend(frame);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn uvarint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn compact_str(out: &mut Vec<u8>, s: &str) {
    uvarint(out, s.len() as u32 + 1);
    out.extend_from_slice(s.as_bytes());
}

/// ApiVersions v3: Fetch and Metadata at v12 only, so the client speaks flexible v12.
fn api_versions() -> Vec<u8> {
    let mut b = vec![0, 0]; // error_code
    let ranges: [(i16, i16, i16); 3] = [(FETCH, 12, 12), (2, 1, 1), (METADATA, 12, 12)];
    uvarint(&mut b, ranges.len() as u32 + 1);
    for (k, min, max) in ranges {
        for v in [k, min, max] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.push(0); // tagged fields
    }
    b.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
    b.push(0);
    b
}

/// Metadata v12: this broker (node 1 at `addr`) leads partition 0 of `topic`.
fn metadata(addr: &str, topic: &str) -> Vec<u8> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut b = 0i32.to_be_bytes().to_vec(); // throttle_time_ms
    uvarint(&mut b, 2); // one broker
    b.extend_from_slice(&1i32.to_be_bytes());
    compact_str(&mut b, host);
    b.extend_from_slice(&port.parse::<i32>().unwrap().to_be_bytes());
    b.push(0); // rack: null
    b.push(0);
    b.push(0); // cluster_id: null
    b.extend_from_slice(&1i32.to_be_bytes()); // controller_id
    uvarint(&mut b, 2); // one topic
    b.extend_from_slice(&0i16.to_be_bytes());
    compact_str(&mut b, topic);
    b.extend_from_slice(&[7; 16]); // topic_id
    b.push(0); // is_internal
    uvarint(&mut b, 2); // one partition
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition_index
    b.extend_from_slice(&1i32.to_be_bytes()); // leader_id
    b.extend_from_slice(&0i32.to_be_bytes()); // leader_epoch
    for _ in 0..2 {
        uvarint(&mut b, 2); // replicas, isr: node 1
        b.extend_from_slice(&1i32.to_be_bytes());
    }
    uvarint(&mut b, 1); // offline replicas: none
    b.push(0);
    b.extend_from_slice(&0i32.to_be_bytes()); // topic_authorized_operations
    b.push(0);
    b.push(0);
    b
}

/// Fetch v12: partition 0 of `topic` with `records`.
fn fetch(topic: &str, records: &[u8]) -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec(); // throttle_time_ms
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // session_id
    uvarint(&mut b, 2); // one topic
    compact_str(&mut b, topic);
    uvarint(&mut b, 2); // one partition
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    for _ in 0..3 {
        b.extend_from_slice(&100i64.to_be_bytes()); // high watermark, LSO, log start
    }
    b.push(0); // aborted_transactions: null
    b.extend_from_slice(&(-1i32).to_be_bytes()); // preferred_read_replica
    uvarint(&mut b, records.len() as u32 + 1);
    b.extend_from_slice(records);
    b.push(0);
    b.push(0);
    b.push(0);
    b
}

/// An uncompressed v2 batch at offset 0 with one record "v", announcing `count` records,
/// its CRC valid.
fn batch(count: i32) -> Vec<u8> {
    let record = [14u8, 0, 0, 0, 1, 2, b'v', 0];
    let mut b = 0i64.to_be_bytes().to_vec();
    b.extend_from_slice(&((49 + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // CRC below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&1i64.to_be_bytes());
    b.extend_from_slice(&1i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&record);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A transport on the fake broker at `addr`, with short bounds.
fn transport(addr: &str) -> ModernTransport {
    let mut c = Config {
        brokers: vec![addr.to_string()],
        transport: TransportKind::Modern,
        client_id: "ks-decoders".into(),
        ..Config::default()
    };
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(3);
    ModernTransport::new(&c).expect("transport")
}

/// A fake broker answering ApiVersions, Metadata for `topic` and Fetch as given.
fn broker_with(
    topic: &'static str,
    api_versions_answer: fn() -> Vec<u8>,
    metadata_answer: Option<Vec<u8>>,
    fetch_answer: Vec<u8>,
) -> String {
    let addr = Arc::new(Mutex::new(String::new()));
    let seen = addr.clone();
    let answers: Answers = Arc::new(Mutex::new(Box::new(move |key, _| match key {
        API_VERSIONS => api_versions_answer(),
        METADATA => metadata_answer
            .clone()
            .unwrap_or_else(|| metadata(&seen.lock().unwrap(), topic)),
        _ => fetch_answer.clone(),
    })));
    let a = fake_broker(answers);
    *addr.lock().unwrap() = a.clone();
    a
}

fn read_once(addr: &str, topic: &str) -> kafka_sync::Result<Vec<ConsumedRecord>> {
    let mut positions = BTreeMap::from([(0, 0)]);
    transport(addr).read(topic, &mut positions, Duration::from_millis(300))
}

#[test]
fn a_good_answer_from_the_fake_broker_reads_its_record() {
    let addr = broker_with("t", api_versions, None, fetch("t", &batch(1)));
    let got = read_once(&addr, "t").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, b"v");
}

#[test]
fn a_fetched_batch_announcing_i32_max_records_is_a_stand_in_not_an_abort() {
    in_child(
        "a_fetched_batch_announcing_i32_max_records_is_a_stand_in_not_an_abort",
        || {
            let addr = broker_with("t", api_versions, None, fetch("t", &batch(i32::MAX)));
            let got = read_once(&addr, "t").unwrap();
            assert_eq!(got.len(), 1, "{got:?}");
            let why = got[0]
                .headers
                .iter()
                .find(|h| h.key == "kafka-sync-undecodable-batch")
                .map(|h| String::from_utf8_lossy(&h.value).into_owned())
                .expect("a stand-in record");
            assert!(why.contains("2147483647 records"), "{why}");
        },
    );
}

#[test]
fn an_api_versions_answer_announcing_billions_of_apis_is_an_error_not_an_abort() {
    in_child(
        "an_api_versions_answer_announcing_billions_of_apis_is_an_error_not_an_abort",
        || {
            fn hostile() -> Vec<u8> {
                let mut b = vec![0, 0];
                uvarint(&mut b, u32::MAX); // api_keys: 4 294 967 294 entries
                b.extend_from_slice(&[0; 8]);
                b
            }
            let addr = broker_with("t", hostile, None, Vec::new());
            let e = read_once(&addr, "t").unwrap_err();
            assert!(
                e.message()
                    .contains("ApiVersionsResponse v3 announces 4294967294 entries in api_keys"),
                "{e}"
            );
        },
    );
}

#[test]
fn metadata_and_fetch_answers_announcing_i32_max_entries_are_errors_not_aborts() {
    in_child(
        "metadata_and_fetch_answers_announcing_i32_max_entries_are_errors_not_aborts",
        || {
            let mut topics = 0i32.to_be_bytes().to_vec();
            uvarint(&mut topics, 1); // no brokers
            topics.push(0); // cluster id
            topics.extend_from_slice(&1i32.to_be_bytes());
            uvarint(&mut topics, i32::MAX as u32); // topics
            let addr = broker_with("t", api_versions, Some(topics), Vec::new());
            let e = read_once(&addr, "t").unwrap_err();
            assert!(e.message().contains("entries in topics"), "{e}");

            let mut partitions = 0i32.to_be_bytes().to_vec();
            partitions.extend_from_slice(&[0; 6]);
            uvarint(&mut partitions, 2);
            compact_str(&mut partitions, "t");
            uvarint(&mut partitions, i32::MAX as u32); // partitions
            let addr = broker_with("t", api_versions, None, partitions);
            let e = read_once(&addr, "t").unwrap_err();
            assert!(
                e.message().contains("entries in responses.partitions"),
                "{e}"
            );
        },
    );
}

/// A Fetch answer with bytes overwritten (or arbitrary bytes): records, stand-ins or an
/// error, never a panic or an abort (48 cases, in a child process).
#[test]
fn mutated_fetch_answers_never_panic() {
    in_child("mutated_fetch_answers_never_panic", || {
        let cases = (
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..120)),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
        runner
            .run(&cases, |(changes, arbitrary)| {
                let mut answer = fetch("t", &batch(1));
                for (at, v) in &changes {
                    let i = at.index(answer.len());
                    answer[i] = *v;
                }
                let answer = arbitrary.unwrap_or(answer);
                let addr = broker_with("t", api_versions, None, answer);
                let _ = read_once(&addr, "t");
                Ok(())
            })
            .unwrap();
    });
}

/// A "broker" that answers the first request on every connection with `raw` as is (no
/// frame of its own: `raw` is read as size, header and body), then hangs up.
fn raw_broker(raw: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut size = [0u8; 4];
            if s.read_exact(&mut size).is_err() {
                continue;
            }
            let mut request = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
            let _ = s.read_exact(&mut request);
            let _ = s.write_all(&raw);
        }
    });
    addr
}

/// Arbitrary bytes where a frame should be, and valid ApiVersions frames with bytes
/// overwritten (the size prefix included): an error naming what was wrong, never a panic,
/// an abort or an allocation of the announced size (48 cases, in a child process).
#[test]
fn arbitrary_frames_are_errors_not_panics() {
    in_child("arbitrary_frames_are_errors_not_panics", || {
        let cases = (
            prop::collection::vec(any::<u8>(), 0..80),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            any::<bool>(),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
        runner
            .run(&cases, |(noise, changes, arbitrary)| {
                let raw = if arbitrary {
                    noise
                } else {
                    let mut frame = 1i32.to_be_bytes().to_vec(); // correlation id
                    frame.extend(api_versions());
                    let mut raw = (frame.len() as i32).to_be_bytes().to_vec();
                    raw.extend(frame);
                    mutate(raw, &changes)
                };
                let e = read_once(&raw_broker(raw), "t");
                prop_assert!(
                    e.is_err(),
                    "a broker answering only ApiVersions cannot be read"
                );
                Ok(())
            })
            .unwrap();
    });
}

// ---- what other clients wrote: envelopes, retry and dead-letter records --------------

fn envelope_bytes() -> Vec<u8> {
    let m = KafkaMessage::from_json(
        MessageType::new("order"),
        serde_json::json!({"id": 7, "items": ["a", "b"], "note": "é"}),
    )
    .with_correlation_id("corr-1")
    .with_key("k");
    m.to_bytes().unwrap()
}

fn mutate(mut bytes: Vec<u8>, changes: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    for (at, v) in changes {
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
    }
    bytes
}

/// A retry entry as the consumer parks it: an envelope carrying a [`RetryRecord`].
fn retry_entry() -> Vec<u8> {
    let now = std::time::SystemTime::now();
    let msg: KafkaMessage = KafkaMessage::from_bytes(&envelope_bytes()).unwrap();
    let r = RetryRecord {
        message: msg,
        attempts: 2,
        due_at: now,
        origin: Origin {
            topic: "t".into(),
            partition: 1,
            offset: 9,
        },
        group: "g".into(),
        service: "s".into(),
        first_failure_at: now,
        last_failure_at: now,
        last_error: "boom".into(),
    };
    KafkaMessage::new(MessageType::new("retry"), &r)
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Reads a retry entry back as the consumer does: the envelope, then its payload.
fn read_retry_entry(bytes: &[u8]) -> kafka_sync::Result<RetryRecord> {
    KafkaMessage::from_bytes(bytes)?.payload_as::<RetryRecord>()
}

/// A dead letter as the consumer writes it: an envelope of type `dead_letter`.
fn dead_letter_entry() -> Vec<u8> {
    let now = std::time::SystemTime::now();
    let d = DeadLetterRecord {
        kind: DeadLetterKind::Decode,
        error: "bad".into(),
        original: None,
        raw_value: Some(RawBytes::from_slice(b"{oops")),
        key: Some(RawBytes::from_slice(&[0xff, 1])),
        message_id: None,
        message_type: None,
        correlation_id: Some("c".into()),
        attempts: 3,
        first_failure_at: now,
        last_failure_at: now,
        origin: Origin {
            topic: "t".into(),
            partition: 0,
            offset: 3,
        },
        group: "g".into(),
        service: "s".into(),
    };
    KafkaMessage::new(MessageType::DEAD_LETTER, &d)
        .unwrap()
        .to_bytes()
        .unwrap()
}

#[test]
fn the_valid_encodings_the_mutations_start_from_decode() {
    KafkaMessage::from_bytes(&envelope_bytes()).unwrap();
    read_retry_entry(&retry_entry()).unwrap();
    DeadLetterRecord::from_record(&record(dead_letter_entry(), Vec::new())).unwrap();
}

fn record(value: Vec<u8>, headers: Vec<Header>) -> ConsumedRecord {
    ConsumedRecord {
        topic: "dlt".into(),
        partition: 0,
        offset: 1,
        key: Some(b"k".to_vec()),
        value,
        null_value: false,
        headers,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn envelopes_from_arbitrary_or_mutated_bytes_are_errors_not_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let _ = KafkaMessage::from_bytes(&bytes);
        let _ = KafkaMessage::from_bytes(&mutate(envelope_bytes(), &changes));
    }

    #[test]
    fn retry_records_from_arbitrary_or_mutated_bytes_are_errors_not_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let _ = read_retry_entry(&bytes);
        let _ = read_retry_entry(&mutate(retry_entry(), &changes));
    }

    #[test]
    fn dead_letters_from_arbitrary_records_are_errors_not_panics(
        value in prop::collection::vec(any::<u8>(), 0..200),
        header_values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 11),
        original_form in any::<bool>(),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        use headers as h;
        let names = [
            h::DLT_KIND, h::DLT_ERROR, h::DLT_ATTEMPTS, h::DLT_FIRST_FAILURE_AT,
            h::DLT_LAST_FAILURE_AT, h::DLT_ORIGINAL_TOPIC, h::DLT_ORIGINAL_PARTITION,
            h::DLT_ORIGINAL_OFFSET, h::DLT_GROUP, h::DLT_SERVICE, Header::MESSAGE_ID,
        ];
        let mut headers: Vec<Header> = names
            .iter()
            .zip(header_values)
            .map(|(n, v)| Header::new(*n, v))
            .collect();
        if original_form {
            headers.push(Header::new(h::DLT_FORM, "original"));
        }
        let _ = DeadLetterRecord::from_record(&record(value, headers.clone()));
        let mutated = mutate(dead_letter_entry(), &changes);
        let _ = DeadLetterRecord::from_record(&record(mutated.clone(), Vec::new()));
        let _ = DeadLetterRecord::from_record(&record(mutated, headers));
    }
}
