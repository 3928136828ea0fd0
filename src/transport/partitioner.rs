//! Key partitioning compatible with the Java client: murmur2 of the key bytes, made positive,
//! modulo the partition count. A key lands on the same partition whoever produced it.

/// Kafka's murmur2 (the Java client's `Utils.murmur2`) of `data`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition for `key` among `partitions` partitions, as the Java client's default
/// partitioner chooses it: `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// ```
/// use kafka_sync::transport::partition_for_key;
/// let p = partition_for_key(b"user-42", 3);
/// assert!((0..3).contains(&p));
/// assert_eq!(p, partition_for_key(b"user-42", 3));
/// ```
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    (positive % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_java_clients_murmur2_vectors() {
        // Apache Kafka's UtilsTest.testMurmur2 vectors, plus 0-3 byte keys checked against
        // kafka-clients 3.9.1 `Utils.murmur2` on this machine.
        let cases: [(&[u8], i32); 10] = [
            (b"", 275_646_681),
            (b"x", 2_121_525_046),
            (b"xy", -1_884_506_471),
            (b"xyz", -2_021_271_510),
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partitions_match_the_java_default_partitioner() {
        // `Utils.toPositive(Utils.murmur2(key)) % 3` from kafka-clients 3.9.1.
        assert_eq!(partition_for_key(b"user-42", 3), 1);
        assert_eq!(partition_for_key(b"a-little-bit-long-string", 3), 2);
        assert_eq!(partition_for_key(b"x", 3), 1);
        assert_eq!(partition_for_key(b"xy", 3), 0);
    }

    #[test]
    fn partition_is_within_range() {
        for i in 0..1000 {
            let p = partition_for_key(format!("k{i}").as_bytes(), 7);
            assert!((0..7).contains(&p));
        }
    }
}
