//! Compressed v2 record batches read back: the CRC checked here, the records inflated with
//! `kafka-protocol`'s codecs, then parsed by the same bounded loop as uncompressed ones
//! ([`plain::Records`]), never by `kafka-protocol`'s record decoder, which reserves the
//! batch's announced record count and each record's announced header count before reading
//! any (a small batch announcing `i32::MAX` records aborts the process).
//!
//! Inflating reserves only what the compressed bytes can really hold: snappy's announced
//! block sizes are checked against its largest possible expansion (22x) before the codec
//! reserves them; gzip, lz4 and zstd grow their output as they inflate, so their memory is
//! what the data really expands to. That is not capped: a batch built to inflate a
//! thousandfold (a "decompression bomb", up to `max_response_bytes` of it) still costs
//! that much memory, as in Kafka's Java client.

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{Decompressor, Gzip, Snappy};

use super::plain::{self, Records};
use super::BATCH_HEADER;
use crate::transport::ConsumedRecord;

/// The attributes' codec numbers.
const GZIP: u16 = 1;
const SNAPPY: u16 = 2;
const LZ4: u16 = 3;
const ZSTD: u16 = 4;

/// Snappy never inflates a block more than this (a 3-byte copy writes at most 64 bytes).
const SNAPPY_MAX_EXPANSION: usize = 22;
/// The xerial framing Kafka's Java client writes around snappy blocks.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER: usize = 16;

/// Appends the records of the whole compressed batch `batch` (header included, CRC not yet
/// checked, `codec` its attributes' codec bits) at or after `position` to `out`.
pub(super) fn decode(
    topic: &str,
    partition: i32,
    batch: &Bytes,
    codec: u16,
    position: i64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<(), String> {
    plain::check_crc(batch)?;
    let (base, count) = plain::base_and_count(batch);
    let inflated = inflate(batch.slice(BATCH_HEADER..), codec)?;
    let records = Records {
        topic,
        partition,
        base,
        count,
    };
    records.decode(&inflated, position, out)
}

/// The records of a batch, inflated with `codec`.
pub(super) fn inflate(mut data: Bytes, codec: u16) -> Result<Bytes, String> {
    let keep = |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining()));
    let failed = |e| format!("{e:#}");
    match codec {
        0 => Ok(data),
        GZIP => Gzip::decompress(&mut data, keep).map_err(failed),
        SNAPPY => {
            snappy_sizes_fit(&data)?;
            Snappy::decompress(&mut data, keep).map_err(failed)
        }
        #[cfg(feature = "lz4")]
        LZ4 => kafka_protocol::compression::Lz4::decompress(&mut data, keep).map_err(failed),
        #[cfg(feature = "zstd")]
        ZSTD => kafka_protocol::compression::Zstd::decompress(&mut data, keep).map_err(failed),
        #[cfg(not(feature = "lz4"))]
        LZ4 => Err(not_compiled_in("lz4")),
        #[cfg(not(feature = "zstd"))]
        ZSTD => Err(not_compiled_in("zstd")),
        other => Err(format!("unknown compression codec {other}")),
    }
}

#[cfg(any(not(feature = "lz4"), not(feature = "zstd")))]
fn not_compiled_in(codec: &str) -> String {
    format!(
        "{codec} compression is not enabled in this build (build kafka-sync with the `{codec}` \
         feature to read it)"
    )
}

/// Checks that every snappy block of `data` (xerial-framed, as Kafka's Java client writes
/// them, or one raw block) announces no more bytes than it can inflate to: the codec
/// reserves (and zeroes) the announced size before inflating.
fn snappy_sizes_fit(data: &[u8]) -> Result<(), String> {
    if data.len() < XERIAL_HEADER || !data.starts_with(XERIAL_MAGIC) {
        return snappy_block_fits(data);
    }
    let mut rest = &data[XERIAL_HEADER..];
    while rest.len() >= 4 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let block = rest
            .get(4..4usize.saturating_add(size))
            .ok_or("a snappy block runs past its batch")?;
        snappy_block_fits(block)?;
        rest = &rest[4 + size..];
    }
    Ok(())
}

/// Checks one raw snappy block's announced size (its leading varint).
fn snappy_block_fits(block: &[u8]) -> Result<(), String> {
    let mut announced: u64 = 0;
    for (i, &b) in block.iter().take(5).enumerate() {
        announced |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let most = block.len().saturating_mul(SNAPPY_MAX_EXPANSION) as u64;
            if announced > most {
                return Err(format!(
                    "a snappy block of {} bytes announces {announced} bytes inflated, more than \
                     it can hold",
                    block.len()
                ));
            }
            return Ok(());
        }
    }
    Err("a snappy block has no valid size".into())
}
