//! Tests of the record batch codec (pure functions, no broker).

use super::*;

fn rec(key: Option<&str>, value: &[u8]) -> OutgoingRecord {
    OutgoingRecord {
        partition: 0,
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.to_vec(),
        headers: Vec::new(),
    }
}

/// A batch as the broker stores it: the base offset rewritten.
fn at_offset(batch: &Bytes, base: i64) -> Bytes {
    let mut b = batch.to_vec();
    b[..8].copy_from_slice(&base.to_be_bytes());
    Bytes::from(b)
}

#[test]
fn a_batch_round_trips_with_every_codec() {
    let mut first = rec(Some("k1"), b"v1");
    first.headers = vec![
        Header::new("message-id", "id-1"),
        Header::new("bin", vec![0u8, 255, 10]),
        Header::new("empty", Vec::new()),
    ];
    let records = vec![first.clone(), rec(None, &[0, 255, 1]), rec(Some(""), b"")];
    for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
        let batch = encode_batch(&records, c, 1_700_000_000_000, None).unwrap();
        let got = decode_batches("t", 3, &at_offset(&batch, 100), 0).unwrap();
        assert_eq!(got.next_offset, Some(103), "{c:?}");
        let offsets: Vec<i64> = got.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![100, 101, 102]);
        assert_eq!(got.records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(got.records[1].key, None);
        assert_eq!(got.records[1].value, vec![0, 255, 1]);
        assert_eq!(got.records[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(got.records[2].partition, 3);
        assert_eq!(got.records[0].headers, first.headers, "{c:?}");
        assert!(got.records[1].headers.is_empty());
    }
}

/// lz4 / zstd batches are written and read when the features are on.
#[cfg(any(feature = "lz4", feature = "zstd"))]
#[test]
fn lz4_and_zstd_batches_round_trip_with_their_features() {
    let mut first = rec(Some("k"), b"lz4 or zstd");
    first.headers = vec![Header::new("h", "v")];
    let records = vec![first, rec(None, &[7; 300])];
    let codecs = [Compression::Lz4, Compression::Zstd];
    for c in codecs.into_iter().filter(|c| c.is_available()) {
        let batch = encode_batch(&records, c, 1, None).unwrap();
        let got = decode_batches("t", 0, &at_offset(&batch, 9), 0).unwrap();
        assert_eq!(got.records.len(), 2, "{c:?}");
        assert_eq!(got.records[1].value, vec![7; 300]);
        assert_eq!(got.records[0].headers, records[0].headers);
    }
}

/// Without its feature, a codec is refused by the encoder (the session refuses it
/// earlier with a `Config` error naming the feature).
#[cfg(not(all(feature = "lz4", feature = "zstd")))]
#[test]
fn a_codec_not_compiled_in_is_refused() {
    let records = vec![rec(None, b"x")];
    let codecs = [Compression::Lz4, Compression::Zstd];
    for c in codecs.into_iter().filter(|c| !c.is_available()) {
        let e = encode_batch(&records, c, 1, None).unwrap_err();
        assert!(e.contains("not enabled"), "{c:?}: {e}");
    }
}

#[test]
fn one_batch_per_partition_without_a_producer_id() {
    let records: Vec<_> = (0..50)
        .map(|i| rec(None, format!("{i}").as_bytes()))
        .collect();
    let batch = encode_batch(&records, Compression::None, 1, None).unwrap();
    let length = i32::from_be_bytes(batch[8..12].try_into().unwrap()) as usize;
    assert_eq!(12 + length, batch.len(), "a single batch");
    // Base sequence -1 and producer id -1, as the Java client writes them.
    assert_eq!(&batch[43..51], &(-1i64).to_be_bytes());
    assert_eq!(&batch[53..57], &(-1i32).to_be_bytes());
}

#[test]
fn idempotent_batches_carry_producer_id_epoch_and_base_sequence() {
    let records = vec![rec(None, b"a"), rec(None, b"b")];
    let seq = Sequence {
        producer_id: 42,
        epoch: 3,
        base: 7,
    };
    let batch = encode_batch(&records, Compression::None, 1, Some(seq)).unwrap();
    assert_eq!(&batch[43..51], &42i64.to_be_bytes());
    assert_eq!(&batch[51..53], &3i16.to_be_bytes());
    assert_eq!(&batch[53..57], &7i32.to_be_bytes());
}

#[test]
fn records_before_the_position_are_dropped_and_a_cut_batch_is_left() {
    let first = encode_batch(
        &[rec(None, b"a"), rec(None, b"b")],
        Compression::None,
        1,
        None,
    )
    .unwrap();
    let second = encode_batch(&[rec(None, b"c")], Compression::Gzip, 1, None).unwrap();
    let mut data = at_offset(&first, 10).to_vec();
    data.extend_from_slice(&at_offset(&second, 12));
    let whole = Bytes::from(data.clone());
    let got = decode_batches("t", 0, &whole, 11).unwrap();
    assert_eq!(
        got.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![11, 12]
    );
    assert_eq!(got.next_offset, Some(13));

    let cut = Bytes::from(data[..data.len() - 5].to_vec());
    let got = decode_batches("t", 0, &cut, 10).unwrap();
    assert_eq!(got.records.len(), 2);
    assert_eq!(got.next_offset, Some(12), "the cut batch is fetched again");
    assert_eq!(
        decode_batches("t", 0, &Bytes::new(), 0).unwrap(),
        Decoded::default()
    );
}

#[test]
fn control_batches_are_skipped_but_advance_the_position() {
    let batch = encode_batch(&[rec(None, b"marker")], Compression::None, 1, None).unwrap();
    let mut b = at_offset(&batch, 5).to_vec();
    b[ATTRIBUTES_AT + 1] |= CONTROL_BIT as u8; // the CRC is not checked for skipped batches
    let got = decode_batches("t", 0, &Bytes::from(b), 0).unwrap();
    assert!(got.records.is_empty());
    assert_eq!(got.next_offset, Some(6));
}

/// One record of producer `pid` as a batch at `base`: data or a control marker.
fn txn_batch(base: i64, pid: i64, value: Option<&[u8]>, control: Option<bool>) -> Vec<u8> {
    let record = Record {
        transactional: true,
        control: control.is_some(),
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: base,
        sequence: 0,
        timestamp: 1,
        // A control record's key: version 0, type 0 (abort) or 1 (commit).
        key: control.map(|commit| Bytes::from(vec![0, 0, 0, u8::from(commit)])),
        value: value.map(Bytes::copy_from_slice),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: WireCompression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
    buf.to_vec()
}

#[test]
fn read_committed_drops_aborted_transactions_and_keeps_committed_ones() {
    let mut data = Vec::new();
    data.extend(txn_batch(0, 7, Some(b"aborted"), None));
    data.extend(txn_batch(1, 8, Some(b"committed"), None));
    data.extend(txn_batch(2, 7, None, Some(false))); // abort marker of 7
    data.extend(txn_batch(3, 8, None, Some(true))); // commit marker of 8
    data.extend(txn_batch(4, 7, Some(b"later, committed"), None));
    let data = Bytes::from(data);
    let got = decode_committed("t", 0, &data, 0, Some(&[(7, 0)]));
    let values: Vec<&[u8]> = got.records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, vec![&b"committed"[..], b"later, committed"]);
    assert_eq!(got.next_offset, Some(5));
    let all = decode_committed("t", 0, &data, 0, None);
    assert_eq!(
        all.records.len(),
        3,
        "read_uncommitted keeps the aborted record"
    );
}

#[test]
fn a_null_value_is_told_from_an_empty_one() {
    let mut data = txn_batch(0, 1, None, None);
    data.extend(txn_batch(1, 1, Some(b""), None));
    let got = decode_committed("t", 0, &Bytes::from(data), 0, None);
    let nulls: Vec<bool> = got.records.iter().map(|r| r.null_value).collect();
    assert_eq!(nulls, vec![true, false]);
}

#[test]
fn an_undecodable_batch_becomes_a_stand_in_and_reading_goes_on_after_it() {
    let good = |base| {
        at_offset(
            &encode_batch(&[rec(None, b"ok")], Compression::None, 1, None).unwrap(),
            base,
        )
        .to_vec()
    };
    // Message format v1, a CRC mismatch, then a good batch.
    let mut v1 = good(0);
    v1[MAGIC_AT] = 1;
    let mut crc = good(1);
    let last = crc.len() - 1;
    crc[last] ^= 0xff;
    let mut data = v1.clone();
    data.extend(crc.clone());
    data.extend(good(2));
    let got = decode_committed("t", 4, &Bytes::from(data), 0, None);
    assert_eq!(got.next_offset, Some(3));
    let offsets: Vec<i64> = got.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    let why = |r: &ConsumedRecord| {
        r.headers
            .iter()
            .find(|h| h.key == UNDECODABLE_BATCH)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
    };
    assert!(why(&got.records[0]).unwrap().contains("message format v1"));
    assert_eq!(got.records[0].value, v1, "the batch's bytes as fetched");
    assert!(why(&got.records[1]).is_some(), "CRC mismatch");
    assert_eq!(got.records[1].value, crc);
    assert_eq!(why(&got.records[2]), None);
    assert_eq!(got.records[2].value, b"ok");
    // A size that makes no sense: the rest stands in, one offset further.
    let mut garbage = good(9);
    garbage[8..12].copy_from_slice(&3i32.to_be_bytes());
    let got = decode_committed("t", 0, &Bytes::from(garbage), 9, None);
    assert_eq!((got.records.len(), got.next_offset), (1, Some(10)));
}

/// `batch` with the bytes from the attributes on changed by `change`, its CRC made right.
fn patched(batch: &Bytes, change: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut b = batch.to_vec();
    change(&mut b);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn stand_in_reason(got: &Decoded) -> Option<String> {
    got.records.first().and_then(|r| {
        r.headers
            .iter()
            .find(|h| h.key == UNDECODABLE_BATCH)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
    })
}

#[test]
fn a_header_name_that_is_not_utf8_makes_its_batch_a_stand_in() {
    let mut r = rec(None, b"v");
    r.headers = vec![Header::new("zq", "x")];
    let batch = encode_batch(&[r], Compression::None, 1, None).unwrap();
    let bad = patched(&batch, |b| {
        let at = b
            .windows(2)
            .position(|w| w == b"zq")
            .expect("the header name");
        b[at] = 0xff;
        b[at + 1] = 0xfe;
    });
    let got = decode_committed("t", 0, &bad, 0, None);
    let why = stand_in_reason(&got).expect("a stand-in");
    assert!(why.contains("UTF-8"), "{why}");
    assert_eq!(got.next_offset, Some(1));
}

#[cfg(not(feature = "lz4"))]
#[test]
fn an_lz4_batch_without_the_feature_makes_a_stand_in_naming_the_feature() {
    let batch = encode_batch(&[rec(None, b"v")], Compression::None, 1, None).unwrap();
    // Claims lz4 (codec 3): this build cannot inflate it.
    let bad = patched(&batch, |b| b[ATTRIBUTES_AT + 1] |= 3);
    let got = decode_committed("t", 0, &bad, 0, None);
    let why = stand_in_reason(&got).expect("a stand-in");
    assert!(why.contains("lz4"), "{why}");
    assert_eq!(got.next_offset, Some(1));
}
