//! Uncompressed v2 record batches written and read by hand, straight between our record
//! types and the wire bytes: one buffer of the exact size per batch on produce, no
//! intermediate record structs, header maps or per-field buffers. Compressed batches go
//! through `kafka-protocol`'s codec (see the parent module).
//!
//! ```text
//! batch:  baseOffset i64 | length i32 | leaderEpoch i32 | magic i8 | crc u32 (CRC-32C of
//!         the rest) | attributes i16 | lastOffsetDelta i32 | firstTimestamp i64 |
//!         maxTimestamp i64 | producerId i64 | producerEpoch i16 | baseSequence i32 |
//!         count i32 | records…
//! record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//!         keyLength varint (-1: null) | key | valueLength varint | value |
//!         headerCount varint | (keyLength varint | key | valueLength varint | value)…
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::{Sequence, BATCH_HEADER};
use crate::transport::{ConsumedRecord, Header, OutgoingRecord};

/// Where the CRC-covered part of a batch starts (the attributes).
pub(super) const CRC_FROM: usize = 21;
const CRC_AT: usize = 17;

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn varint_len(n: i64) -> usize {
    let z = zigzag(n);
    // 7 bits a byte; 0 still takes one byte.
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut BytesMut, n: i64) {
    let mut z = zigzag(n);
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

/// The headers as they go on the wire: of several with one name, the last value at the
/// first one's place (what the `kafka-protocol` header map did).
pub(super) fn effective_headers(headers: &[Header]) -> Vec<(&str, &[u8])> {
    let mut out: Vec<(&str, &[u8])> = Vec::with_capacity(headers.len());
    for h in headers {
        match out.iter_mut().find(|(k, _)| *k == h.key) {
            Some(slot) => slot.1 = &h.value,
            None => out.push((&h.key, &h.value)),
        }
    }
    out
}

/// A record's wire headers without a copy when no name repeats (the usual case).
enum WireHeaders<'a> {
    Distinct(&'a [Header]),
    Merged(Vec<(&'a str, &'a [u8])>),
}

impl<'a> WireHeaders<'a> {
    fn of(headers: &'a [Header]) -> Self {
        let repeats = headers
            .iter()
            .enumerate()
            .any(|(i, h)| headers[..i].iter().any(|e| e.key == h.key));
        if repeats {
            WireHeaders::Merged(effective_headers(headers))
        } else {
            WireHeaders::Distinct(headers)
        }
    }

    fn len(&self) -> usize {
        match self {
            WireHeaders::Distinct(h) => h.len(),
            WireHeaders::Merged(v) => v.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        let (distinct, merged) = match self {
            WireHeaders::Distinct(h) => (Some(h.iter().map(|h| (&*h.key, &h.value[..]))), None),
            WireHeaders::Merged(v) => (None, Some(v.iter().copied())),
        };
        distinct
            .into_iter()
            .flatten()
            .chain(merged.into_iter().flatten())
    }
}

/// A length-prefixed optional byte string's size.
fn bytes_len(b: Option<&[u8]>) -> usize {
    b.map_or(varint_len(-1), |b| varint_len(b.len() as i64) + b.len())
}

/// The record's body size (everything after its length varint).
fn body_len(r: &OutgoingRecord, offset_delta: i64, headers: &WireHeaders<'_>) -> usize {
    1 + varint_len(0)
        + varint_len(offset_delta)
        + bytes_len(r.key.as_deref())
        + bytes_len(Some(&r.value))
        + varint_len(headers.len() as i64)
        + headers
            .iter()
            .map(|(k, v)| bytes_len(Some(k.as_bytes())) + bytes_len(Some(v)))
            .sum::<usize>()
}

fn put_bytes(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

/// `records` as one uncompressed v2 batch stamped with `timestamp`; `None` for no records.
pub(super) fn encode(
    scratch: &mut BytesMut,
    records: &[&OutgoingRecord],
    timestamp: i64,
    sequence: Option<Sequence>,
) -> Result<Bytes, String> {
    let count = records.len();
    let (producer_id, epoch, base) = match sequence {
        Some(s) => (s.producer_id, s.epoch, s.base),
        None => (-1, -1, -1),
    };
    let size = BATCH_HEADER
        + records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let body = body_len(r, i as i64, &WireHeaders::of(&r.headers));
                varint_len(body as i64) + body
            })
            .sum::<usize>();
    let length = i32::try_from(size - 12)
        .map_err(|_| format!("a record batch of {size} bytes is too large to encode"))?;
    // Reclaims the scratch's memory when nothing split from it is alive any more.
    scratch.clear();
    scratch.reserve(size);
    let buf = scratch;
    buf.put_i64(0); // base offset: the broker assigns it
    buf.put_i32(length);
    buf.put_i32(-1); // partition leader epoch
    buf.put_i8(2); // magic
    buf.put_u32(0); // CRC, filled in below
    buf.put_i16(0); // attributes: no compression, create time, not transactional
    buf.put_i32(count as i32 - 1);
    buf.put_i64(timestamp);
    buf.put_i64(timestamp);
    buf.put_i64(producer_id);
    buf.put_i16(epoch);
    buf.put_i32(base);
    buf.put_i32(count as i32);
    for (i, r) in records.iter().enumerate() {
        let headers = WireHeaders::of(&r.headers);
        put_varint(buf, body_len(r, i as i64, &headers) as i64);
        buf.put_i8(0); // record attributes
        put_varint(buf, 0); // timestamp delta
        put_varint(buf, i as i64); // offset delta
        put_bytes(buf, r.key.as_deref());
        put_bytes(buf, Some(&r.value));
        put_varint(buf, headers.len() as i64);
        for (k, v) in headers.iter() {
            put_bytes(buf, Some(k.as_bytes()));
            put_bytes(buf, Some(v));
        }
    }
    debug_assert_eq!(buf.len(), size, "the batch's size was computed exactly");
    let crc = crc32c::crc32c(&buf[CRC_FROM..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.split().freeze())
}

/// Reads the wire forward: a cursor over one batch's records.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.data.get(self.at).ok_or("a record is cut short")?;
            self.at += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err("a varint runs over 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or("a record's field runs past its batch")?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// A length-prefixed byte string; `None` for null (length -1).
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(format!("a record field announces {n} bytes")),
            n => self.take(n as usize).map(Some),
        }
    }
}

/// The fewest bytes a record takes on the wire: its length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, a byte each. A batch cannot
/// hold more records than its bytes divided by this, nor a record more headers than its
/// bytes divided by [`MIN_HEADER`]: counts beyond that are refused before anything is
/// reserved for them (a 70-byte batch announcing `i32::MAX` records would otherwise reserve
/// 240 GB and abort the process).
pub(super) const MIN_RECORD: usize = 7;
/// The fewest bytes a header takes: its name's length and its value's length.
const MIN_HEADER: usize = 2;

/// Checks the CRC-32C of one whole v2 batch `batch` (header included).
pub(super) fn check_crc(batch: &[u8]) -> Result<(), String> {
    let stored = u32::from_be_bytes(batch[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes"));
    let actual = crc32c::crc32c(&batch[CRC_FROM..]);
    if stored != actual {
        return Err(format!(
            "Cyclic redundancy check failed ({stored} != {actual})"
        ));
    }
    Ok(())
}

/// The base offset and the announced record count of the v2 batch `batch`.
pub(super) fn base_and_count(batch: &[u8]) -> (i64, i32) {
    let base = i64::from_be_bytes(batch[..8].try_into().expect("8 bytes"));
    let count = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
    (base, count)
}

/// Appends the records of one whole uncompressed batch `batch` (header included, CRC not
/// yet checked) at or after `position` to `out`, for `topic`/`partition`.
pub(super) fn decode(
    topic: &str,
    partition: i32,
    batch: &[u8],
    position: i64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<(), String> {
    check_crc(batch)?;
    let (base, count) = base_and_count(batch);
    let records = Records {
        topic,
        partition,
        base,
        count,
    };
    records.decode(&batch[BATCH_HEADER..], position, out)
}

/// What the header of a batch says about its records.
pub(super) struct Records<'a> {
    /// The topic they were read from.
    pub topic: &'a str,
    /// Their partition.
    pub partition: i32,
    /// The batch's base offset.
    pub base: i64,
    /// How many records the batch announces.
    pub count: i32,
}

impl Records<'_> {
    /// Appends the records of `data` (the batch's records, uncompressed) at or after
    /// `position` to `out`. Reserves only what `data` can hold.
    pub(super) fn decode(
        &self,
        data: &[u8],
        position: i64,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), String> {
        let count = self.count;
        if count < 0 || count as usize > data.len() / MIN_RECORD {
            return Err(format!(
                "a record batch announces {count} records in {} bytes",
                data.len()
            ));
        }
        out.reserve(count as usize);
        let mut c = Cursor { data, at: 0 };
        for _ in 0..count {
            let length = c.varint()?;
            let body = usize::try_from(length)
                .map_err(|_| format!("a record announces {length} bytes"))?;
            let start = c.at;
            let end = start
                .checked_add(body)
                .filter(|&e| e <= data.len())
                .ok_or("a record runs past its batch")?;
            c.take(1)?; // attributes
            c.varint()?; // timestamp delta
            let delta = c.varint()?;
            let offset = self
                .base
                .checked_add(delta)
                .ok_or_else(|| format!("offset delta {delta} overflows the batch's base offset"))?;
            let key = c.bytes()?;
            let value = c.bytes()?;
            let n = c.varint()?;
            if n < 0 || n as usize > end.saturating_sub(c.at) / MIN_HEADER {
                return Err(format!(
                    "a record announces {n} headers in {} bytes",
                    end.saturating_sub(c.at)
                ));
            }
            let mut headers: Vec<Header> = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let k = c.bytes()?.ok_or("a record header has a null name")?;
                let k = std::str::from_utf8(k)
                    .map_err(|e| format!("a header name is not UTF-8: {e}"))?;
                let v = c.bytes()?.unwrap_or_default();
                match headers.iter_mut().find(|h| h.key == k) {
                    Some(h) => h.value = v.to_vec(),
                    None => headers.push(Header {
                        key: Header::name_from_wire(k),
                        value: v.to_vec(),
                    }),
                }
            }
            if c.at != end {
                return Err(format!(
                    "record at offset {offset} is {} bytes, not the {body} it announces",
                    c.at - start
                ));
            }
            if offset < position {
                continue;
            }
            out.push(ConsumedRecord {
                topic: self.topic.to_string(),
                partition: self.partition,
                offset,
                key: key.map(<[u8]>::to_vec),
                null_value: value.is_none(),
                value: value.map(<[u8]>::to_vec).unwrap_or_default(),
                headers,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::super::{decode_with_kafka_protocol, encode_with_codec, Sequence};
    use super::*;
    use crate::config::Compression;

    fn record() -> impl Strategy<Value = OutgoingRecord> {
        let header = (
            prop::sample::select(vec!["a", "b", "message-id", "é"]),
            prop::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(k, v)| Header::new(k, v));
        (
            prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(header, 0..5),
        )
            .prop_map(|(key, value, headers)| OutgoingRecord {
                partition: 0,
                key,
                value,
                headers,
            })
    }

    fn sequence() -> impl Strategy<Value = Option<Sequence>> {
        prop::option::of((any::<i64>(), any::<i16>(), any::<i32>()).prop_map(
            |(producer_id, epoch, base)| Sequence {
                producer_id,
                epoch,
                // Below the wrap: kafka-protocol splits a batch whose sequence wraps.
                base: base.min(i32::MAX - 200),
            },
        ))
    }

    proptest! {
        /// The hand-written encoder writes exactly what kafka-protocol's encoder writes.
        #[test]
        fn encodes_byte_for_byte_like_kafka_protocol(
            records in prop::collection::vec(record(), 1..60),
            timestamp in 0i64..4_000_000_000_000,
            seq in sequence(),
        ) {
            let refs: Vec<&OutgoingRecord> = records.iter().collect();
            // Twice through one scratch: the second batch reuses the first one's memory.
            let mut scratch = BytesMut::new();
            let first = encode(&mut scratch, &refs, timestamp, seq).unwrap().to_vec();
            let ours = encode(&mut scratch, &refs, timestamp, seq).unwrap();
            let theirs = encode_with_codec(refs, Compression::None, timestamp, seq).unwrap();
            prop_assert_eq!(&first[..], &theirs[..]);
            prop_assert_eq!(ours, theirs);
        }

        /// The hand-written decoder reads what kafka-protocol's decoder reads, from any
        /// position, at any base offset.
        #[test]
        fn decodes_like_kafka_protocol(
            records in prop::collection::vec(record(), 1..60),
            base in 0i64..1_000_000_000,
            skip in 0i64..70,
        ) {
            let refs: Vec<&OutgoingRecord> = records.iter().collect();
            let mut batch = encode(&mut BytesMut::new(), &refs, 1_700_000_000_000, None).unwrap().to_vec();
            batch[..8].copy_from_slice(&base.to_be_bytes());
            let batch = Bytes::from(batch);
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            decode("t", 4, &batch, base + skip, &mut ours).unwrap();
            decode_with_kafka_protocol("t", 4, batch, base + skip, &mut theirs).unwrap();
            prop_assert_eq!(ours.len(), records.len().saturating_sub(skip as usize));
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn varints_match_the_zigzag_encoding() {
        for (n, wire) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (63, vec![126]),
            (-64, vec![127]),
            (64, vec![128, 1]),
            (300, vec![216, 4]),
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, n);
            assert_eq!(&buf[..], &wire[..], "{n}");
            assert_eq!(varint_len(n), wire.len(), "{n}");
            let mut c = Cursor { data: &buf, at: 0 };
            assert_eq!(c.varint().unwrap(), n);
        }
        assert_eq!(varint_len(i64::MAX), 10);
        assert_eq!(varint_len(i64::MIN), 10);
    }

    #[test]
    fn duplicate_header_names_keep_the_last_value_at_the_first_place() {
        let headers = vec![
            Header::new("a", "1"),
            Header::new("b", "2"),
            Header::new("a", "3"),
        ];
        let got = effective_headers(&headers);
        assert_eq!(got, vec![("a", &b"3"[..]), ("b", &b"2"[..])]);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let r = OutgoingRecord {
            partition: 0,
            key: Some(b"key".to_vec()),
            value: b"value".to_vec(),
            headers: vec![Header::new("h", "v")],
        };
        let good = encode(&mut BytesMut::new(), &[&r, &r], 1, None)
            .unwrap()
            .to_vec();
        let mut out = Vec::new();
        decode("t", 0, &good, 0, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        // Every single-byte change of a record byte (CRC recomputed, so the parser itself
        // must notice or read something well-formed) gives an error or records, never a panic.
        for at in BATCH_HEADER..good.len() {
            for v in [0u8, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = v;
                let crc = crc32c::crc32c(&bad[CRC_FROM..]);
                bad[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
                let _ = decode("t", 0, &bad, 0, &mut Vec::new());
            }
        }
        let mut bad = good.clone();
        bad[57..61].copy_from_slice(&3i32.to_be_bytes()); // one record more than there is
        let crc = crc32c::crc32c(&bad[CRC_FROM..]);
        bad[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let e = decode("t", 0, &bad, 0, &mut Vec::new()).unwrap_err();
        assert!(e.contains("cut short"), "{e}");
    }
}
