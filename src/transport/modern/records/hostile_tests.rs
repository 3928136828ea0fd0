//! Record batches from a hostile or broken broker: small batches with a valid CRC that
//! announce far more records or headers than their bytes hold, and arbitrary bytes or
//! mutations of valid batches. Each becomes a stand-in record or records, never a panic, and
//! never an abort (the cases that aborted the process run in a child process, so a
//! regression fails the test instead of killing the test runner).

use std::process::Command;

use bytes::BufMut;
use kafka_protocol::compression::{Compressor, Gzip};
use proptest::prelude::*;

use super::*;

/// Set in the child process [`in_child`] starts.
const CHILD: &str = "KAFKA_SYNC_HOSTILE_CHILD";

/// Runs the test `name` (this module's) again in a child process, where `body` runs: an
/// abort there fails this test with the child's output instead of ending the runner.
fn in_child(name: &str, body: impl FnOnce()) {
    in_child_at(
        &format!("transport::modern::records::hostile_tests::{name}"),
        body,
    );
}

/// [`in_child`] for the test at `path` (its full path in the library's tests).
pub(crate) fn in_child_at(path: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([path, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("the child test runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child running {path} ended with {} (an abort is signal 6):\n{stdout}\n{stderr}",
        out.status
    );
}

/// One uncompressed batch at offset 0 whose records section is `records` (written as is),
/// announcing `count` records, compressed with `codec` (1: gzip), its CRC valid.
fn batch_with(records: &[u8], count: i32, codec: u16) -> Bytes {
    let template = encode_batch(&[rec_of(b"")], Compression::None, 1, None).unwrap();
    let mut body = BytesMut::new();
    if codec == 1 {
        Gzip::compress(&mut body, |tmp: &mut BytesMut| {
            tmp.put_slice(records);
            Ok(())
        })
        .unwrap();
    } else {
        body.put_slice(records);
    }
    let mut b = template[..BATCH_HEADER].to_vec();
    b.extend_from_slice(&body);
    let length = (b.len() - 12) as i32;
    b[BATCH_LENGTH_AT..12].copy_from_slice(&length.to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b[ATTRIBUTES_AT + 1] |= codec as u8;
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// The records section of a batch of one record `v`, no key, no headers.
fn one_record() -> Vec<u8> {
    // length 8 | attributes | timestamp delta | offset delta | key -1 | value 1 "v" | 0 headers
    vec![16, 0, 0, 0, 1, 2, b'v', 0]
}

/// One record announcing `i32::MAX` headers (and holding none).
fn a_record_announcing_i32_max_headers() -> Vec<u8> {
    // zigzag(i32::MAX) as a varint: fe ff ff ff 0f; body 10 bytes.
    vec![20, 0, 0, 0, 1, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f]
}

fn reason(got: &Decoded) -> String {
    let r = got.records.first().expect("a stand-in record");
    let h = r.headers.iter().find(|h| h.key == UNDECODABLE_BATCH);
    String::from_utf8_lossy(&h.expect("a stand-in record").value).into_owned()
}

#[test]
fn a_batch_announcing_i32_max_records_is_a_stand_in_not_an_abort() {
    in_child(
        "a_batch_announcing_i32_max_records_is_a_stand_in_not_an_abort",
        || {
            for codec in [0, 1] {
                let bad = batch_with(&one_record(), i32::MAX, codec);
                let got = decode_committed("t", 0, &bad, 0, None);
                let why = reason(&got);
                assert!(why.contains("2147483647 records"), "codec {codec}: {why}");
                assert_eq!(got.next_offset, Some(1), "codec {codec}");
            }
        },
    );
}

#[test]
fn a_record_announcing_i32_max_headers_is_a_stand_in_not_an_abort() {
    in_child(
        "a_record_announcing_i32_max_headers_is_a_stand_in_not_an_abort",
        || {
            for codec in [0, 1] {
                let bad = batch_with(&a_record_announcing_i32_max_headers(), 1, codec);
                let got = decode_committed("t", 0, &bad, 0, None);
                let why = reason(&got);
                assert!(why.contains("2147483647 headers"), "codec {codec}: {why}");
            }
        },
    );
}

#[test]
fn a_control_batch_announcing_i32_max_records_is_skipped_not_an_abort() {
    in_child(
        "a_control_batch_announcing_i32_max_records_is_skipped_not_an_abort",
        || {
            let mut b = batch_with(&one_record(), i32::MAX, 0).to_vec();
            b[ATTRIBUTES_AT + 1] |= CONTROL_BIT as u8;
            let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            let got = decode_committed("t", 0, &Bytes::from(b), 0, Some(&[(-1, 0)]));
            assert!(got.records.is_empty());
            assert_eq!(got.next_offset, Some(1));
        },
    );
}

#[test]
fn a_snappy_block_announcing_more_than_it_can_inflate_to_is_refused_before_reserving() {
    // A raw snappy block of 6 bytes announcing 4 GB inflated (the codec would zero 4 GB).
    let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let template = batch_with(&one_record(), 1, 0);
    let mut b = template[..BATCH_HEADER].to_vec();
    b.extend_from_slice(&block);
    let length = (b.len() - 12) as i32;
    b[BATCH_LENGTH_AT..12].copy_from_slice(&length.to_be_bytes());
    b[ATTRIBUTES_AT + 1] |= 2;
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let got = decode_committed("t", 0, &Bytes::from(b), 0, None);
    let why = reason(&got);
    assert!(why.contains("announces 4294967295 bytes"), "{why}");
}

#[test]
fn offsets_near_i64_max_do_not_overflow() {
    let batch = encode_batch(&[rec_of(b"a"), rec_of(b"b")], Compression::None, 1, None).unwrap();
    let mut b = batch.to_vec();
    b[..8].copy_from_slice(&i64::MAX.to_be_bytes());
    let got = decode_committed("t", 0, &Bytes::from(b), 0, None);
    assert_eq!(got.next_offset, Some(i64::MAX));
    let why = reason(&got);
    assert!(why.contains("overflows"), "{why}");
}

fn rec_of(value: &[u8]) -> OutgoingRecord {
    OutgoingRecord {
        partition: 0,
        key: None,
        value: value.to_vec(),
        headers: Vec::new(),
    }
}

/// A valid answer's `records`: batches of each codec built in, some records and headers.
fn valid_batches(values: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<OutgoingRecord> = values
        .iter()
        .map(|v| OutgoingRecord {
            partition: 0,
            key: Some(v.iter().rev().copied().collect()),
            value: v.clone(),
            headers: vec![Header::new("h", v.clone())],
        })
        .collect();
    let mut data = Vec::new();
    for (i, c) in [Compression::None, Compression::Gzip, Compression::Snappy]
        .into_iter()
        .enumerate()
    {
        let batch = encode_batch(&records, c, 1, None).unwrap();
        let mut b = batch.to_vec();
        b[..8].copy_from_slice(&((i * values.len()) as i64).to_be_bytes());
        data.extend_from_slice(&b);
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes at all: stand-ins or records, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_committed("t", 0, &Bytes::from(data), 0, Some(&[(7, 0)]));
    }

    /// Valid batches of every codec with bytes overwritten, the CRCs then made valid again
    /// (so the parsers themselves must notice): stand-ins or records, never a panic.
    #[test]
    fn mutated_valid_batches_never_panic(
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 1..5),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        fix_crc in any::<bool>(),
    ) {
        let mut data = valid_batches(&values);
        for (at, v) in &changes {
            let i = at.index(data.len());
            data[i] = *v;
        }
        if fix_crc {
            let mut at = 0;
            while data.len() >= at + BATCH_HEADER {
                let length = i32::from_be_bytes(data[at + 8..at + 12].try_into().unwrap());
                let Ok(length) = usize::try_from(length) else { break };
                let end = at + 12 + length;
                if length < BATCH_HEADER - 12 || end > data.len() {
                    break;
                }
                let crc = crc32c::crc32c(&data[at + ATTRIBUTES_AT..end]);
                data[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
                at = end;
            }
        }
        let got = decode_committed("t", 0, &Bytes::from(data), 0, None);
        prop_assert!(got.records.len() <= 3 * values.len() + 3);
    }
}
