//! The layouts checked against `kafka-protocol`: answers generated from a layout (random
//! values, arrays of 0-2 entries, nulls, known and unknown tagged fields) must decode with
//! `kafka-protocol`'s decoder using every byte, and pass [`check`], at every version we
//! speak; answers announcing impossible lengths are refused, naming the field.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::super::Api;
use super::client::*;
use super::groups::*;
use super::*;

type Decode = fn(&mut Bytes, i16) -> Result<(), String>;

fn decoder<T: Decodable>(b: &mut Bytes, v: i16) -> Result<(), String> {
    T::decode(b, v).map(|_| ()).map_err(|e| format!("{e:#}"))
}

fn range<R: Api>() -> (i16, i16) {
    (R::MIN, R::MAX)
}

/// Every layout, the versions we speak it at, and its `kafka-protocol` codec.
fn cases() -> Vec<(&'static Message, (i16, i16), Decode)> {
    macro_rules! case {
        ($m:expr, $range:expr, $t:ty) => {
            (&$m, $range, decoder::<$t> as Decode)
        };
    }
    use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
    use kafka_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
    vec![
        case!(
            API_VERSIONS_MESSAGE,
            range::<ApiVersionsRequest>(),
            ApiVersionsResponse
        ),
        case!(
            METADATA_MESSAGE,
            range::<MetadataRequest>(),
            MetadataResponse
        ),
        case!(PRODUCE_MESSAGE, range::<ProduceRequest>(), ProduceResponse),
        case!(FETCH_MESSAGE, range::<FetchRequest>(), FetchResponse),
        case!(
            LIST_OFFSETS_MESSAGE,
            range::<ListOffsetsRequest>(),
            ListOffsetsResponse
        ),
        case!(
            FIND_COORDINATOR_MESSAGE,
            range::<FindCoordinatorRequest>(),
            FindCoordinatorResponse
        ),
        case!(
            JOIN_GROUP_MESSAGE,
            range::<JoinGroupRequest>(),
            JoinGroupResponse
        ),
        case!(
            SYNC_GROUP_MESSAGE,
            range::<SyncGroupRequest>(),
            SyncGroupResponse
        ),
        case!(
            HEARTBEAT_MESSAGE,
            range::<HeartbeatRequest>(),
            HeartbeatResponse
        ),
        case!(
            LEAVE_GROUP_MESSAGE,
            range::<LeaveGroupRequest>(),
            LeaveGroupResponse
        ),
        case!(
            OFFSET_COMMIT_MESSAGE,
            range::<OffsetCommitRequest>(),
            OffsetCommitResponse
        ),
        case!(
            OFFSET_FETCH_MESSAGE,
            range::<OffsetFetchRequest>(),
            OffsetFetchResponse
        ),
        case!(
            CREATE_TOPICS_MESSAGE,
            range::<CreateTopicsRequest>(),
            CreateTopicsResponse
        ),
        case!(
            INIT_PRODUCER_ID_MESSAGE,
            range::<InitProducerIdRequest>(),
            InitProducerIdResponse
        ),
        case!(
            SASL_HANDSHAKE_MESSAGE,
            range::<SaslHandshakeRequest>(),
            SaslHandshakeResponse
        ),
        case!(
            SASL_AUTHENTICATE_MESSAGE,
            range::<SaslAuthenticateRequest>(),
            SaslAuthenticateResponse
        ),
        case!(
            LIST_GROUPS_MESSAGE,
            range::<ListGroupsRequest>(),
            ListGroupsResponse
        ),
        case!(
            DESCRIBE_GROUPS_MESSAGE,
            range::<DescribeGroupsRequest>(),
            DescribeGroupsResponse
        ),
        case!(RESPONSE_HEADER_MESSAGE, (0, 1), ResponseHeader),
        case!(
            CONSUMER_SUBSCRIPTION_MESSAGE,
            (0, 3),
            ConsumerProtocolSubscription
        ),
        case!(
            CONSUMER_ASSIGNMENT_MESSAGE,
            (0, 3),
            ConsumerProtocolAssignment
        ),
    ]
}

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes a random value of `ty` at `version` (`flexible`: compact lengths, tagged fields).
struct Gen<'a> {
    rng: &'a mut Rng,
    version: i16,
    flexible: bool,
}

impl Gen<'_> {
    fn length(&mut self, out: &mut BytesMut, n: Option<usize>, width: usize) {
        match (self.flexible, n) {
            (true, None) => out.put_u8(0),
            (true, Some(n)) => put_unsigned_varint(out, n as u32 + 1),
            (false, None) => out.put_slice(&(-1i32).to_be_bytes()[4 - width..]),
            (false, Some(n)) => out.put_slice(&(n as i32).to_be_bytes()[4 - width..]),
        }
    }

    fn ty(&mut self, out: &mut BytesMut, ty: &Ty) {
        match ty {
            Ty::Fixed(n) => {
                for _ in 0..*n {
                    out.put_u8(self.rng.below(256) as u8);
                }
            }
            Ty::Str { nullable } | Ty::Bytes { nullable } => {
                let width = if matches!(ty, Ty::Str { .. }) { 2 } else { 4 };
                if *nullable && self.rng.below(4) == 0 {
                    self.length(out, None, width);
                    return;
                }
                let n = self.rng.below(6) as usize;
                self.length(out, Some(n), width);
                for _ in 0..n {
                    out.put_u8(b'a' + self.rng.below(26) as u8);
                }
            }
            Ty::Array { nullable, of } => {
                if *nullable && self.rng.below(4) == 0 {
                    self.length(out, None, 4);
                    return;
                }
                let n = self.rng.below(3) as usize;
                self.length(out, Some(n), 4);
                for _ in 0..n {
                    self.ty(out, of);
                }
            }
            Ty::Struct(s) => self.structure(out, s),
        }
    }

    fn has(&self, f: &Field) -> bool {
        (f.versions.0..=f.versions.1).contains(&self.version)
    }

    fn structure(&mut self, out: &mut BytesMut, s: &Struct) {
        for f in s.fields {
            if self.has(f) {
                self.ty(out, &f.ty);
            }
        }
        if !self.flexible {
            return;
        }
        let mut tagged = Vec::new();
        for t in s.tags {
            if self.has(&t.field) && self.rng.below(2) == 0 {
                let mut value = BytesMut::new();
                self.ty(&mut value, &t.field.ty);
                tagged.push((t.tag, value));
            }
        }
        if self.rng.below(3) == 0 {
            tagged.push((90, BytesMut::from(&b"unknown"[..])));
        }
        put_unsigned_varint(out, tagged.len() as u32);
        for (tag, value) in tagged {
            put_unsigned_varint(out, tag);
            put_unsigned_varint(out, value.len() as u32);
            out.put_slice(&value);
        }
    }
}

fn put_unsigned_varint(out: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

fn generate(m: &Message, version: i16, seed: u64) -> Bytes {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = BytesMut::new();
    Gen {
        rng: &mut rng,
        version,
        flexible: version >= m.flexible_from,
    }
    .structure(&mut out, m.body);
    out.freeze()
}

#[test]
fn answers_built_from_the_layouts_decode_with_kafka_protocol_using_every_byte() {
    for (m, (min, max), decode) in cases() {
        for version in min..=max {
            for seed in 0..150 {
                let answer = generate(m, version, seed);
                let mut b = answer.clone();
                decode(&mut b, version).unwrap_or_else(|e| {
                    panic!("{} v{version} seed {seed}: {e}: {answer:?}", m.name)
                });
                assert!(
                    b.is_empty(),
                    "{} v{version}: {} bytes unread",
                    m.name,
                    b.len()
                );
                check(m, version, &answer).unwrap();
            }
        }
    }
}

/// Fetch v4 (non-flexible) and v12 (flexible): `responses` announcing `i32::MAX` topics,
/// and one topic's `partitions` announcing as many.
#[test]
fn an_impossible_array_length_is_refused_naming_the_field() {
    let mut v4 = BytesMut::new();
    v4.put_i32(0); // throttle_time_ms
    v4.put_i32(i32::MAX); // responses
    let e = check(&FETCH_MESSAGE, 4, &v4).unwrap_err();
    assert!(e.contains("FetchResponse v4"), "{e}");
    assert!(
        e.contains("2147483647 entries in responses (of FetchableTopicResponse) with 0 bytes left"),
        "{e}"
    );

    let mut v12 = BytesMut::new();
    v12.put_i32(0); // throttle_time_ms
    v12.put_i16(0); // error_code
    v12.put_i32(7); // session_id
    put_unsigned_varint(&mut v12, 2); // one topic
    put_unsigned_varint(&mut v12, 2); // its name: one byte
    v12.put_u8(b't');
    put_unsigned_varint(&mut v12, u32::MAX); // its partitions
    v12.put_slice(&[0; 40]);
    let e = check(&FETCH_MESSAGE, 12, &v12).unwrap_err();
    assert!(
        e.contains("entries in responses.partitions (of PartitionData) with 40 bytes left"),
        "{e}"
    );
    // A length that fits is not refused here.
    let mut fine = BytesMut::new();
    fine.put_i32(0);
    fine.put_i32(1);
    fine.put_slice(&[0; 8]);
    assert_eq!(check(&FETCH_MESSAGE, 4, &fine), Ok(()));
}

/// Any bytes, and generated answers with bytes overwritten: the check never panics, and
/// what it lets through `kafka-protocol` decodes or refuses without an abort (in a child
/// process: an abort fails this test instead of ending the runner).
#[test]
fn arbitrary_and_mutated_answers_never_abort() {
    use proptest::prelude::*;
    let path = "transport::modern::api::shapes::tests::arbitrary_and_mutated_answers_never_abort";
    crate::transport::modern::records::hostile_tests::in_child_at(path, || {
        let inputs = (
            0usize..21,
            0u16..16,
            0u64..1000,
            proptest::collection::vec((0usize..400, any::<u8>()), 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
        runner
            .run(&inputs, |(which, pick, seed, changes, noise, arbitrary)| {
                let cases = cases();
                let (m, (min, max), decode) = cases[which % cases.len()];
                let version = min + (pick as i16 % (max - min + 1));
                let mut answer = if arbitrary {
                    noise
                } else {
                    generate(m, version, seed).to_vec()
                };
                for (at, v) in changes {
                    if !answer.is_empty() {
                        let i = at % answer.len();
                        answer[i] = v;
                    }
                }
                if check(m, version, &answer).is_ok() {
                    let _ = decode(&mut Bytes::from(answer), version);
                }
                Ok(())
            })
            .unwrap();
    });
}
