//! Kafka error codes and I/O failures as this crate's [`Error`]. Pure functions, tested
//! without a broker.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

pub(super) use crate::transport::broker_code::{code, code_kind, code_name};

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
    .with_broker_code(c)
}

/// Like [`code_error`], with the broker's own message when it sent one.
pub(super) fn code_error_with(c: i16, what: &str, message: Option<&str>) -> Error {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => Error::new(
            code_kind(c),
            format!("{what}: broker answered {} (code {c}): {m}", code_name(c)),
        )
        .with_broker_code(c),
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

    #[test]
    fn broker_errors_keep_kafkas_code() {
        let e = code_error(code::NOT_LEADER_OR_FOLLOWER, "produce");
        assert_eq!(e.broker_code(), Some(6));
        assert_eq!(
            code_error_with(10, "produce", Some("too big")).broker_code(),
            Some(10)
        );
    }
}
