//! Decoders that cannot be made to panic or abort: a hostile or broken broker (a fake one
//! here, speaking the wire protocol on a local port) sends small answers announcing
//! `i32::MAX` entries, and every decoder of what the broker or another client wrote (the
//! JSON envelope, retry and dead-letter records) gets arbitrary bytes and mutations of
//! valid encodings. Each expects an error or a stand-in record, never a panic or an abort.
//!
//! The cases that aborted the process before the decoders were bounded run in a child
//! process ([`in_child`]), so a regression fails the test instead of killing the runner.

mod decoders_support;

use decoders_support::*;
use kafka_sync::domain::{
    headers, DeadLetterKind, DeadLetterRecord, KafkaMessage, MessageType, Origin, RawBytes,
    RetryRecord,
};
use kafka_sync::transport::{ConsumedRecord, Header};
use proptest::prelude::*;

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
