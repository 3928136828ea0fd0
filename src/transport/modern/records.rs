//! Record batches (message format v2): one batch per partition on produce, and the records
//! of a fetch answer back out (control batches skipped, a batch cut short at the end of the
//! answer left for the next fetch). Pure functions, tested without a broker.
//!
//! Uncompressed batches (the default) are written and read by hand ([`plain`]); compressed
//! ones through `kafka-protocol`'s codec.

mod compressed;
mod plain;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
#[cfg(test)]
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::records::{
    Compression as WireCompression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::super::{ConsumedRecord, Header, OutgoingRecord, UNDECODABLE_BATCH};
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
#[cfg(test)]
pub(super) fn encode_batch<'a>(
    records: impl IntoIterator<Item = &'a OutgoingRecord>,
    compression: Compression,
    timestamp: i64,
    sequence: Option<Sequence>,
) -> Result<Bytes, String> {
    encode_batch_reusing(
        &mut BytesMut::new(),
        records,
        compression,
        timestamp,
        sequence,
    )
}

/// [`encode_batch`] into `scratch`'s memory when the batches split from it before have all
/// been dropped (a writer's batches are sent and dropped before the next is encoded), so a
/// megabyte batch does not cost a fresh allocation and its page faults each time.
pub(super) fn encode_batch_reusing<'a>(
    scratch: &mut BytesMut,
    records: impl IntoIterator<Item = &'a OutgoingRecord>,
    compression: Compression,
    timestamp: i64,
    sequence: Option<Sequence>,
) -> Result<Bytes, String> {
    let records: Vec<&OutgoingRecord> = records.into_iter().collect();
    match compression {
        Compression::None => plain::encode(scratch, &records, timestamp, sequence),
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
                        StrBytes::from_string(h.key.to_string()),
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
/// keeping records at or after `position`, with no transaction filtering (see
/// [`decode_committed`]).
#[cfg(test)]
pub(super) fn decode_batches(
    topic: &str,
    partition: i32,
    data: &Bytes,
    position: i64,
) -> Result<Decoded, String> {
    Ok(decode_committed(topic, partition, data, position, None))
}

/// Byte positions of a v2 batch's producer id.
const PRODUCER_ID_AT: usize = 43;
const TRANSACTIONAL_BIT: u16 = 0x10;

/// Decodes the batches of `data` (one partition's `records` field) for `topic`/`partition`,
/// keeping records at or after `position`. A last batch cut short by the answer's size limit
/// is left for the next fetch; control batches (transaction markers) are skipped.
///
/// With `aborted` (read_committed: the answer's aborted transactions as `(producer id,
/// first offset)`), batches of aborted transactions are dropped, as Kafka's own consumer
/// does: from an aborted transaction's first offset, its producer's transactional batches
/// are skipped until that producer's abort marker.
///
/// A batch that cannot be decoded (message format v0/v1, a CRC mismatch, a codec this
/// build lacks, a header key that is not UTF-8, a size that makes no sense) never stops the
/// partition: it becomes one stand-in record at its first offset, its value the batch's
/// bytes as fetched, its [`UNDECODABLE_BATCH`] header the reason, and reading goes on
/// after it.
pub(super) fn decode_committed(
    topic: &str,
    partition: i32,
    data: &Bytes,
    position: i64,
    aborted: Option<&[(i64, i64)]>,
) -> Decoded {
    let mut out = Decoded::default();
    let mut aborted: Vec<(i64, i64)> = aborted.map(<[_]>::to_vec).unwrap_or_default();
    aborted.sort_by_key(|&(_, first)| first);
    let mut aborted = aborted.into_iter().peekable();
    let mut aborting: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let mut at = 0usize;
    let stand_in = |out: &mut Decoded, offset: i64, bytes: &[u8], why: String| {
        log::error!(
            "modern: {topic}/{partition}: undecodable record batch at offset {offset}: {why}"
        );
        out.records.push(ConsumedRecord {
            topic: topic.to_string(),
            partition,
            offset,
            key: None,
            value: bytes.to_vec(),
            null_value: false,
            headers: vec![Header::new(UNDECODABLE_BATCH, why)],
        });
    };
    while data.len() - at >= 17 {
        let head = &data[at..];
        let base = i64::from_be_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let length = i32::from_be_bytes(head[BATCH_LENGTH_AT..12].try_into().unwrap_or([0; 4]));
        let magic = head[MAGIC_AT] as i8;
        let min = if magic == 2 { BATCH_HEADER - 12 } else { 14 };
        if length < min as i32 {
            // Nothing after this can be framed: stand in for the rest, move one offset on.
            let offset = base.max(position);
            let why = format!("a record batch announcing {length} bytes");
            stand_in(&mut out, offset, &data[at..], why);
            out.next_offset = Some(offset.saturating_add(1));
            return out;
        }
        let total = 12 + length as usize;
        if data.len() - at < total || (magic == 2 && data.len() - at < BATCH_HEADER) {
            break; // cut short by max_bytes: the next fetch starts at this batch
        }
        let bytes = &data[at..at + total];
        if magic != 2 {
            // v0/v1 message sets: one (possibly compressed) message per entry; its offset
            // is the last of what it holds.
            if base >= position {
                let why = format!("message format v{magic}: only v2 record batches are read");
                stand_in(&mut out, base, bytes, why);
            }
            let after = base.saturating_add(1);
            out.next_offset = Some(out.next_offset.map_or(after, |n: i64| n.max(after)));
            at += total;
            continue;
        }
        let attributes = u16::from_be_bytes([head[ATTRIBUTES_AT], head[ATTRIBUTES_AT + 1]]);
        let last_delta = i32::from_be_bytes(
            head[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        let producer_id = i64::from_be_bytes(
            head[PRODUCER_ID_AT..PRODUCER_ID_AT + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let end = base.saturating_add(i64::from(last_delta)).saturating_add(1);
        let last = end - 1;
        while let Some(&(pid, _)) = aborted.peek().filter(|(_, first)| *first <= last) {
            aborting.insert(pid);
            aborted.next();
        }
        let control = attributes & CONTROL_BIT != 0;
        let transactional = attributes & TRANSACTIONAL_BIT != 0;
        if control {
            // An abort marker ends its producer's aborted transaction.
            if is_abort_marker(&data.slice(at..at + total), attributes & CODEC_BITS) {
                aborting.remove(&producer_id);
            }
        } else if transactional && aborting.contains(&producer_id) {
            log::debug!("modern: {topic}/{partition}: skipping aborted batch {base}..{end}");
        } else if end > position {
            let batch = data.slice(at..at + total);
            let mut records = Vec::new();
            let codec = attributes & CODEC_BITS;
            let decoded = if codec == 0 {
                plain::decode(topic, partition, &batch, position, &mut records)
            } else {
                compressed::decode(topic, partition, &batch, codec, position, &mut records)
            };
            match decoded {
                Ok(()) => out.records.append(&mut records),
                Err(why) => stand_in(&mut out, base.max(position), bytes, why),
            }
        }
        out.next_offset = Some(out.next_offset.map_or(end, |n: i64| n.max(end)));
        at += total;
    }
    out
}

/// Whether a control batch holds an abort marker (its record's key: version, type 0).
fn is_abort_marker(batch: &Bytes, codec: u16) -> bool {
    let (base, count) = plain::base_and_count(batch);
    let markers = plain::Records {
        topic: "",
        partition: 0,
        base,
        count,
    };
    let mut records = Vec::new();
    let read = plain::check_crc(batch)
        .and_then(|()| compressed::inflate(batch.slice(BATCH_HEADER..), codec))
        .and_then(|data| markers.decode(&data, i64::MIN, &mut records));
    read.is_ok()
        && records.iter().any(|r| {
            r.key
                .as_ref()
                .is_some_and(|k| k.len() >= 4 && k[2] == 0 && k[3] == 0)
        })
}

/// Appends the records of the whole batch `batch` at or after `position` to `out`, through
/// `kafka-protocol`'s decoder (any codec): the reference the bounded decoders are tested
/// against, never used on fetched data (it reserves what a batch announces).
#[cfg(test)]
fn decode_with_kafka_protocol(
    topic: &str,
    partition: i32,
    mut batch: Bytes,
    position: i64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<(), String> {
    let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| format!("{e:#}"))?;
    for r in set.records {
        if r.offset < position || r.control {
            continue;
        }
        out.push(ConsumedRecord {
            topic: topic.to_string(),
            partition,
            offset: r.offset,
            key: r.key.map(|k| k.to_vec()),
            null_value: r.value.is_none(),
            value: r.value.map(|v| v.to_vec()).unwrap_or_default(),
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| Header {
                    key: Header::name_from_wire(&k),
                    value: v.map(|v| v.to_vec()).unwrap_or_default(),
                })
                .collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod hostile_tests;
#[cfg(test)]
mod tests;
