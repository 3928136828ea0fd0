//! Record batches (message format v2): one batch per partition on produce, and the records
//! of a fetch answer back out (control batches skipped, a batch cut short at the end of the
//! answer left for the next fetch). Pure functions, tested without a broker.
//!
//! Uncompressed batches (the default) are written and read by hand ([`plain`]); compressed
//! ones through `kafka-protocol`'s codec.

mod plain;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as WireCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};

use super::super::{ConsumedRecord, Header, OutgoingRecord};
use crate::config::Compression;

/// Byte positions inside a v2 batch header.
const BATCH_LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
/// Header bytes before the records (`baseOffset` … `recordCount`).
const BATCH_HEADER: usize = 61;
const CONTROL_BIT: u16 = 0x20;
/// The attributes' compression codec (0: none).
const CODEC_BITS: u16 = 0x07;

/// The idempotent producer's identity for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sequence {
    /// The producer id the broker handed out.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The sequence number of the batch's first record.
    pub base: i32,
}

/// The codec for `c`.
pub(super) fn wire_compression(c: Compression) -> WireCompression {
    match c {
        Compression::None => WireCompression::None,
        Compression::Gzip => WireCompression::Gzip,
        Compression::Snappy => WireCompression::Snappy,
        Compression::Lz4 => WireCompression::Lz4,
        Compression::Zstd => WireCompression::Zstd,
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `records` as one v2 record batch with `compression` (an error when the codec is not
/// compiled in), stamped with `timestamp` (ms).
/// Without `sequence` the batch carries no producer id (not idempotent).
pub(super) fn encode_batch<'a>(
    records: impl IntoIterator<Item = &'a OutgoingRecord>,
    compression: Compression,
    timestamp: i64,
    sequence: Option<Sequence>,
) -> Result<Bytes, String> {
    let records: Vec<&OutgoingRecord> = records.into_iter().collect();
    match compression {
        Compression::None => plain::encode(&records, timestamp, sequence),
        _ => encode_with_codec(records, compression, timestamp, sequence),
    }
}

/// [`encode_batch`] through `kafka-protocol`'s encoder (any codec).
fn encode_with_codec<'a>(
    records: impl IntoIterator<Item = &'a OutgoingRecord>,
    compression: Compression,
    timestamp: i64,
    sequence: Option<Sequence>,
) -> Result<Bytes, String> {
    let (producer_id, epoch, base) = match sequence {
        Some(s) => (s.producer_id, s.epoch, s.base),
        // The encoder starts a new batch wherever `offset - sequence` changes and writes the
        // first record's sequence as the batch's base: -1 ("none") keeps one batch.
        None => (-1, -1, -1),
    };
    let wire: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base.wrapping_add(i as i32),
            timestamp,
            key: r.key.as_ref().map(|k| Bytes::copy_from_slice(k)),
            value: Some(Bytes::copy_from_slice(&r.value)),
            // An IndexMap: of several headers with one name, the last is written.
            headers: r
                .headers
                .iter()
                .map(|h| {
                    (
                        StrBytes::from_string(h.key.clone()),
                        Some(Bytes::copy_from_slice(&h.value)),
                    )
                })
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::with_capacity(
        BATCH_HEADER
            + wire
                .iter()
                .map(|r| {
                    24 + r.key.as_ref().map_or(0, |k| k.len())
                        + r.value.as_ref().map_or(0, |v| v.len())
                        + r.headers
                            .iter()
                            .map(|(k, v)| 4 + k.len() + v.as_ref().map_or(0, |v| v.len()))
                            .sum::<usize>()
                })
                .sum::<usize>(),
    );
    let options = RecordEncodeOptions {
        version: 2,
        compression: wire_compression(compression),
    };
    RecordBatchEncoder::encode(&mut buf, wire.iter(), &options).map_err(|e| format!("{e:#}"))?;
    Ok(buf.freeze())
}

/// The records of one partition's fetch answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Decoded {
    /// Data records at or after the requested position, in offset order.
    pub records: Vec<ConsumedRecord>,
    /// The offset after the last complete batch (control batches included), if any batch
    /// was complete.
    pub next_offset: Option<i64>,
}

/// Decodes the batches of `data` (one partition's `records` field) for `topic`/`partition`,
/// keeping records at or after `position`. A last batch cut short by the answer's size limit
/// is left for the next fetch; control batches (transaction markers) are skipped.
pub(super) fn decode_batches(
    topic: &str,
    partition: i32,
    data: &Bytes,
    position: i64,
) -> Result<Decoded, String> {
    let mut out = Decoded::default();
    let mut at = 0usize;
    while data.len() - at >= BATCH_HEADER {
        let head = &data[at..];
        let base = i64::from_be_bytes(head[..8].try_into().map_err(|_| "short batch")?);
        let length = i32::from_be_bytes(
            head[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4]
                .try_into()
                .map_err(|_| "short batch")?,
        );
        if length < (BATCH_HEADER - 12) as i32 {
            return Err(format!(
                "record batch at offset {base} announces {length} bytes"
            ));
        }
        let total = 12 + length as usize;
        if data.len() - at < total {
            break; // cut short by max_bytes: the next fetch starts at this batch
        }
        let magic = head[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(format!(
                "record batch at offset {base} has message format v{magic}; only v2 is supported"
            ));
        }
        let attributes = u16::from_be_bytes([head[ATTRIBUTES_AT], head[ATTRIBUTES_AT + 1]]);
        let last_delta = i32::from_be_bytes(
            head[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .map_err(|_| "short batch")?,
        );
        let end = base + i64::from(last_delta) + 1;
        if attributes & CONTROL_BIT == 0 && end > position {
            let batch = data.slice(at..at + total);
            if attributes & CODEC_BITS == 0 {
                plain::decode(topic, partition, &batch, position, &mut out.records)?;
            } else {
                decode_with_codec(topic, partition, batch, position, &mut out.records)?;
            }
        }
        out.next_offset = Some(out.next_offset.map_or(end, |n: i64| n.max(end)));
        at += total;
    }
    Ok(out)
}

/// Appends the records of the whole batch `batch` at or after `position` to `out`, through
/// `kafka-protocol`'s decoder (any codec).
fn decode_with_codec(
    topic: &str,
    partition: i32,
    mut batch: Bytes,
    position: i64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<(), String> {
    let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
        let why = format!("{e:#}");
        if why.contains("not enabled") {
            format!("{why} (build kafka-sync with the `lz4` / `zstd` feature to read it)")
        } else {
            why
        }
    })?;
    for r in set.records {
        if r.offset < position || r.control {
            continue;
        }
        out.push(ConsumedRecord {
            topic: topic.to_string(),
            partition,
            offset: r.offset,
            key: r.key.map(|k| k.to_vec()),
            value: r.value.map(|v| v.to_vec()).unwrap_or_default(),
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| Header {
                    key: k.to_string(),
                    value: v.map(|v| v.to_vec()).unwrap_or_default(),
                })
                .collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn old_message_formats_and_garbage_are_errors() {
        let batch = encode_batch(&[rec(None, b"x")], Compression::None, 1, None).unwrap();
        let mut b = batch.to_vec();
        b[MAGIC_AT] = 1;
        let e = decode_batches("t", 0, &Bytes::from(b), 0).unwrap_err();
        assert!(e.contains("message format v1"), "{e}");
        let mut b = batch.to_vec();
        b[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert!(decode_batches("t", 0, &Bytes::from(b), 0).is_err());
        let mut b = batch.to_vec();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(
            decode_batches("t", 0, &Bytes::from(b), 0).is_err(),
            "CRC mismatch"
        );
    }
}
