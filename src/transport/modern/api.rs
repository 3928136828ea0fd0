//! Version negotiation: the requests this transport sends, the versions of each it can speak,
//! and the choice, per broker, of the highest version both sides support.
//!
//! Our ranges start at the Kafka 2.1 baseline (KIP-896: what Kafka 4.0 still accepts) and
//! stop below the versions that change what we would have to send (Produce and Fetch v13
//! address topics by id; OffsetFetch v8 batches groups). A broker without a common version
//! for an API is reported as [`ErrorKind::UnsupportedBroker`], naming the API and both ranges.

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::error::{Error, ErrorKind, Result};

pub(super) mod shapes;

/// A request this transport sends: its key, its name for errors, the versions we speak, and
/// its response type.
pub(super) trait Api: Encodable + HeaderVersion {
    /// The API key.
    const KEY: ApiKey;
    /// The API's name, as Kafka's documentation spells it.
    const NAME: &'static str;
    /// The oldest version we send.
    const MIN: i16;
    /// The newest version we send.
    const MAX: i16;
    /// The response to this request.
    type Response: Decodable + HeaderVersion;
}

macro_rules! api {
    ($req:ty, $resp:ty, $key:ident, $min:literal, $max:literal) => {
        impl Api for $req {
            const KEY: ApiKey = ApiKey::$key;
            const NAME: &'static str = stringify!($key);
            const MIN: i16 = $min;
            const MAX: i16 = $max;
            type Response = $resp;
        }
    };
}

api!(ApiVersionsRequest, ApiVersionsResponse, ApiVersions, 0, 3);
// v0 reads an empty topic list as "all topics"; v1+ as "none".
api!(MetadataRequest, MetadataResponse, Metadata, 1, 12);
api!(ProduceRequest, ProduceResponse, Produce, 3, 12);
api!(FetchRequest, FetchResponse, Fetch, 4, 12);
api!(ListOffsetsRequest, ListOffsetsResponse, ListOffsets, 1, 10);
api!(
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    FindCoordinator,
    0,
    6
);
api!(JoinGroupRequest, JoinGroupResponse, JoinGroup, 0, 9);
api!(SyncGroupRequest, SyncGroupResponse, SyncGroup, 0, 5);
api!(HeartbeatRequest, HeartbeatResponse, Heartbeat, 0, 4);
api!(LeaveGroupRequest, LeaveGroupResponse, LeaveGroup, 0, 5);
api!(
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetCommit,
    2,
    9
);
api!(OffsetFetchRequest, OffsetFetchResponse, OffsetFetch, 1, 7);
api!(
    CreateTopicsRequest,
    CreateTopicsResponse,
    CreateTopics,
    2,
    7
);
api!(
    InitProducerIdRequest,
    InitProducerIdResponse,
    InitProducerId,
    0,
    5
);

// v0 handshakes sent the mechanism's bytes raw after it; v1 wraps them in SaslAuthenticate.
api!(
    SaslHandshakeRequest,
    SaslHandshakeResponse,
    SaslHandshake,
    1,
    1
);
api!(
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslAuthenticate,
    0,
    2
);

/// What one broker said it supports (its ApiVersions answer), indexed by API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BrokerVersions {
    ranges: Vec<Option<(i16, i16)>>,
}

impl BrokerVersions {
    /// From `(api key, min version, max version)` entries.
    pub fn new(entries: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        let mut ranges = Vec::new();
        for (key, min, max) in entries {
            let Ok(i) = usize::try_from(key) else {
                continue;
            };
            if i >= 4096 {
                continue;
            }
            if ranges.len() <= i {
                ranges.resize(i + 1, None);
            }
            ranges[i] = Some((min, max));
        }
        BrokerVersions { ranges }
    }

    /// The broker's `(min, max)` for `key`, if it knows the API.
    pub fn range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(key as i16 as usize).copied().flatten()
    }

    /// The highest version of `R` both sides speak, or `UnsupportedBroker` naming the API.
    pub fn pick<R: Api>(&self) -> Result<i16> {
        negotiate(R::NAME, (R::MIN, R::MAX), self.range(R::KEY))
    }
}

/// The highest version in both `ours` and `theirs`; the error names `name` and both ranges.
pub(super) fn negotiate(name: &str, ours: (i16, i16), theirs: Option<(i16, i16)>) -> Result<i16> {
    let Some((their_min, their_max)) = theirs else {
        return Err(Error::new(
            ErrorKind::UnsupportedBroker,
            format!(
                "the broker does not support the {name} API at all; the modern transport needs \
                 {name} v{}–v{} (Kafka 2.1 or newer)",
                ours.0, ours.1
            ),
        ));
    };
    let best = ours.1.min(their_max);
    if best < ours.0.max(their_min) {
        let age = if their_max < ours.0 {
            "too old"
        } else {
            "too new"
        };
        return Err(Error::new(
            ErrorKind::UnsupportedBroker,
            format!(
                "the broker is {age} for the modern transport: it speaks {name} \
                 v{their_min}–v{their_max}, the transport speaks {name} v{}–v{} (Kafka 2.1 or \
                 newer)",
                ours.0, ours.1
            ),
        ));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka 3.9's ranges for the APIs we use.
    pub(crate) const KAFKA_3_9: [(i16, i16, i16); 14] = [
        (0, 0, 11),
        (1, 0, 17),
        (2, 0, 9),
        (3, 0, 12),
        (8, 0, 9),
        (9, 0, 9),
        (10, 0, 6),
        (11, 0, 9),
        (12, 0, 4),
        (13, 0, 5),
        (14, 0, 5),
        (18, 0, 4),
        (19, 0, 7),
        (22, 0, 5),
    ];

    #[test]
    fn the_highest_common_version_is_chosen() {
        let v = BrokerVersions::new(KAFKA_3_9);
        assert_eq!(v.pick::<ProduceRequest>().unwrap(), 11);
        assert_eq!(v.pick::<FetchRequest>().unwrap(), 12);
        assert_eq!(v.pick::<MetadataRequest>().unwrap(), 12);
        assert_eq!(v.pick::<JoinGroupRequest>().unwrap(), 9);
        assert_eq!(v.pick::<OffsetFetchRequest>().unwrap(), 7);
        assert_eq!(v.range(ApiKey::Fetch), Some((0, 17)));
    }

    #[test]
    fn kafka_2_1_ranges_still_work() {
        // Kafka 2.1: Produce 0-7, Fetch 0-10, JoinGroup 0-3, OffsetCommit 0-6.
        let v = BrokerVersions::new([(0, 0, 7), (1, 0, 10), (11, 0, 3), (8, 0, 6)]);
        assert_eq!(v.pick::<ProduceRequest>().unwrap(), 7);
        assert_eq!(v.pick::<FetchRequest>().unwrap(), 10);
        assert_eq!(v.pick::<JoinGroupRequest>().unwrap(), 3);
        assert_eq!(v.pick::<OffsetCommitRequest>().unwrap(), 6);
    }

    #[test]
    fn a_broker_too_old_is_named_with_the_api() {
        // Kafka 0.10: Produce 0-2, no CreateTopics.
        let v = BrokerVersions::new([(0, 0, 2)]);
        let e = v.pick::<ProduceRequest>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedBroker);
        assert!(e.message().contains("too old"), "{e}");
        assert!(e.message().contains("Produce v0–v2"), "{e}");
        assert!(e.message().contains("v3–v12"), "{e}");
        let e = v.pick::<CreateTopicsRequest>().unwrap_err();
        assert!(e.message().contains("CreateTopics API at all"), "{e}");
    }

    #[test]
    fn a_broker_that_dropped_our_versions_is_too_new() {
        let e = negotiate("Produce", (3, 12), Some((13, 20))).unwrap_err();
        assert!(e.message().contains("too new"), "{e}");
        assert_eq!(negotiate("Produce", (3, 12), Some((3, 3))).unwrap(), 3);
    }

    #[test]
    fn odd_keys_are_ignored() {
        let v = BrokerVersions::new([(-1, 0, 1), (30_000, 0, 1), (3, 1, 12)]);
        assert_eq!(v.range(ApiKey::Metadata), Some((1, 12)));
        assert_eq!(v.range(ApiKey::Produce), None);
    }
}
