//! Kafka error codes and I/O failures as this crate's [`Error`]. Pure functions, tested
//! without a broker.

use std::fmt;
use std::io;
use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::error::{Error, ErrorKind};

/// The error codes this transport acts on (Kafka's `Errors.java` numbering).
pub(super) mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const BROKER_NOT_AVAILABLE: i16 = 8;
    pub const REPLICA_NOT_AVAILABLE: i16 = 9;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const NETWORK_EXCEPTION: i16 = 13;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
}

/// The code's name as Kafka spells it in Java (`NotLeaderOrFollower`), or its number.
pub(super) fn code_name(c: i16) -> String {
    match ResponseError::try_from_code(c) {
        None => "None".to_string(),
        Some(ResponseError::Unknown(n)) => format!("unknown error code {n}"),
        Some(e) => format!("{e:?}"),
    }
}

/// The kind a broker error code maps to.
pub(super) fn code_kind(c: i16) -> ErrorKind {
    use code::*;
    match c {
        UNKNOWN_TOPIC_OR_PARTITION => ErrorKind::UnknownTopic,
        MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE => ErrorKind::MessageTooLarge,
        UNSUPPORTED_VERSION => ErrorKind::UnsupportedBroker,
        LEADER_NOT_AVAILABLE
        | NOT_LEADER_OR_FOLLOWER
        | REQUEST_TIMED_OUT
        | BROKER_NOT_AVAILABLE
        | REPLICA_NOT_AVAILABLE
        | NETWORK_EXCEPTION
        | COORDINATOR_LOAD_IN_PROGRESS
        | COORDINATOR_NOT_AVAILABLE
        | NOT_COORDINATOR
        | NOT_ENOUGH_REPLICAS
        | NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | REBALANCE_IN_PROGRESS
        | ILLEGAL_GENERATION
        | UNKNOWN_MEMBER_ID
        | NOT_CONTROLLER
        | KAFKA_STORAGE_ERROR
        | FENCED_LEADER_EPOCH
        | UNKNOWN_LEADER_EPOCH
        | OFFSET_NOT_AVAILABLE
        | THROTTLING_QUOTA_EXCEEDED
        // The idempotent producer starts over under a new producer id after these.
        | OUT_OF_ORDER_SEQUENCE_NUMBER
        | INVALID_PRODUCER_EPOCH
        | INVALID_PRODUCER_ID_MAPPING
        | UNKNOWN_PRODUCER_ID => ErrorKind::BrokerRetriable,
        other => match ResponseError::try_from_code(other) {
            Some(e) if e.is_retriable() => ErrorKind::BrokerRetriable,
            _ => ErrorKind::Broker,
        },
    }
}

/// Whether `c` means the client's metadata is out of date (a leader moved, a partition is
/// new or gone): forget it and ask again.
pub(super) fn is_stale_metadata(c: i16) -> bool {
    use code::*;
    matches!(
        c,
        UNKNOWN_TOPIC_OR_PARTITION
            | LEADER_NOT_AVAILABLE
            | NOT_LEADER_OR_FOLLOWER
            | BROKER_NOT_AVAILABLE
            | REPLICA_NOT_AVAILABLE
            | KAFKA_STORAGE_ERROR
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
    )
}

/// Whether `c` means the group coordinator moved or is not ready: find it again.
pub(super) fn is_coordinator_moved(c: i16) -> bool {
    use code::*;
    matches!(
        c,
        COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR | COORDINATOR_LOAD_IN_PROGRESS
    )
}

/// The error for a broker error code: `"{what}: broker answered NotLeaderOrFollower (code 6)"`.
pub(super) fn code_error(c: i16, what: &str) -> Error {
    Error::new(
        code_kind(c),
        format!("{what}: broker answered {} (code {c})", code_name(c)),
    )
}

/// Like [`code_error`], with the broker's own message when it sent one.
pub(super) fn code_error_with(c: i16, what: &str, message: Option<&str>) -> Error {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => Error::new(
            code_kind(c),
            format!("{what}: broker answered {} (code {c}): {m}", code_name(c)),
        ),
        None => code_error(c, what),
    }
}

/// Whether an I/O error means "no answer in time" rather than "connection broken".
pub(super) fn io_is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The error for a failed exchange with `broker`: `Timeout` when no answer came within
/// `bound`, else `Connection`. The connection is not to be used again either way.
pub(super) fn io_error(e: io::Error, what: &str, broker: &str, bound: Duration) -> Error {
    let (kind, why) = if io_is_timeout(&e) {
        (
            ErrorKind::Timeout,
            format!("{what}: no answer within {bound:?}"),
        )
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        (
            ErrorKind::Connection,
            format!("{what}: the broker closed the connection"),
        )
    } else {
        (ErrorKind::Connection, format!("{what}: connection failed"))
    };
    Error::new(kind, why).with_source(e).with_broker(broker)
}

/// The error for bytes that could not be encoded or decoded as the protocol says.
pub(super) fn codec_error(e: impl fmt::Display, what: &str, broker: &str) -> Error {
    Error::new(
        ErrorKind::Broker,
        format!("{what}: malformed protocol data: {e:#}"),
    )
    .with_broker(broker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds_and_names() {
        assert_eq!(
            code_kind(code::NOT_LEADER_OR_FOLLOWER),
            ErrorKind::BrokerRetriable
        );
        assert_eq!(
            code_kind(code::UNKNOWN_TOPIC_OR_PARTITION),
            ErrorKind::UnknownTopic
        );
        assert_eq!(
            code_kind(code::MESSAGE_TOO_LARGE),
            ErrorKind::MessageTooLarge
        );
        assert_eq!(
            code_kind(code::UNSUPPORTED_VERSION),
            ErrorKind::UnsupportedBroker
        );
        assert_eq!(
            code_kind(code::REBALANCE_IN_PROGRESS),
            ErrorKind::BrokerRetriable
        );
        assert_eq!(code_kind(29), ErrorKind::Broker); // TopicAuthorizationFailed
        assert_eq!(code_kind(-1), ErrorKind::Broker);
        assert_eq!(code_name(6), "NotLeaderOrFollower");
        assert_eq!(code_name(9999), "unknown error code 9999");
        let e = code_error(6, "produce");
        assert_eq!(
            e.message(),
            "produce: broker answered NotLeaderOrFollower (code 6)"
        );
        assert!(e.is_retriable());
        let e = code_error_with(10, "produce", Some("too big"));
        assert!(e.message().ends_with("(code 10): too big"), "{e}");
    }

    #[test]
    fn stale_metadata_and_coordinator_codes() {
        assert!(is_stale_metadata(code::NOT_LEADER_OR_FOLLOWER));
        assert!(is_stale_metadata(code::UNKNOWN_TOPIC_OR_PARTITION));
        assert!(!is_stale_metadata(code::MESSAGE_TOO_LARGE));
        assert!(is_coordinator_moved(code::NOT_COORDINATOR));
        assert!(!is_coordinator_moved(code::REBALANCE_IN_PROGRESS));
    }

    #[test]
    fn io_errors_are_timeouts_or_connection_errors_naming_the_broker() {
        let b = Duration::from_secs(1);
        let e = io_error(io::ErrorKind::WouldBlock.into(), "fetch", "h:1", b);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("1s"), "{e}");
        let e = io_error(io::ErrorKind::UnexpectedEof.into(), "fetch", "h:1", b);
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(e.context().broker.as_deref(), Some("h:1"));
        let e = io_error(io::ErrorKind::ConnectionReset.into(), "fetch", "h:1", b);
        assert_eq!(e.kind(), ErrorKind::Connection);
    }
}
