//! Turning the `kafka` crate's errors into this crate's [`Error`], and matching produce
//! confirmations back to records. Pure functions, tested without a broker.

use std::collections::HashMap;
use std::io;

use kafka::error::{Error as KError, KafkaCode};

use crate::error::{Error, ErrorKind};

/// What the transport says when a broker rejects the protocol versions the crate speaks.
pub(super) const TOO_NEW: &str = "the broker is too new for the kafka-crate transport: \
     the `kafka` crate speaks only protocol v0 requests, which Kafka 4.0 removed (KIP-896); \
     use the modern transport for Kafka 4 (`TransportKind::Modern`, `KAFKA_TRANSPORT=modern`), \
     or a Kafka 3.9 or older broker with this one";

/// The kind a broker error code maps to: the shared table
/// ([`broker_code`](crate::transport::broker_code)) by the code's number.
pub(super) fn code_kind(code: KafkaCode) -> ErrorKind {
    crate::transport::broker_code::code_kind(code as i16)
}

/// Whether `code` means this client's metadata is out of date (forget it and reload).
pub(super) fn code_means_stale_metadata(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::NotLeaderForPartition
            | KafkaCode::UnknownTopicOrPartition
            | KafkaCode::LeaderNotAvailable
            | KafkaCode::BrokerNotAvailable
            | KafkaCode::ReplicaNotAvailable
    )
}

/// The error for a broker error code, the code's name and number in the message.
pub(super) fn code_error(code: KafkaCode, what: &str) -> Error {
    let kind = code_kind(code);
    let mut message = format!("{what}: broker answered {code:?} (code {})", code as i32);
    if kind == ErrorKind::UnsupportedBroker {
        message = format!("{message}; {TOO_NEW}");
    }
    Error::new(kind, message).with_broker_code(code as i16)
}

/// Whether an I/O error means "no answer in time" rather than "connection broken".
fn io_is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Kind and sentence for a `kafka` crate error (no context, no source).
fn classify(err: &KError) -> (ErrorKind, String) {
    match err {
        KError::Io(e) if io_is_timeout(e) => (
            ErrorKind::Timeout,
            format!("no answer within the kafka crate's fixed 120 s socket timeout ({e})"),
        ),
        KError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => (
            ErrorKind::Connection,
            "the broker closed the connection before answering".to_string(),
        ),
        KError::Io(e) => (ErrorKind::Connection, format!("connection failed: {e}")),
        KError::NoHostReachable => (
            ErrorKind::Connection,
            "no broker reachable (every bootstrap broker failed to connect or to answer)"
                .to_string(),
        ),
        KError::Kafka(code) => {
            let e = code_error(*code, "request failed");
            (e.kind(), e.message().to_string())
        }
        KError::TopicPartitionError {
            topic_name,
            partition_id,
            error_code,
        } => {
            let e = code_error(*error_code, "request failed");
            (
                e.kind(),
                format!(
                    "{} (topic {topic_name}, partition {partition_id})",
                    e.message()
                ),
            )
        }
        KError::UnsupportedProtocol => (
            ErrorKind::UnsupportedBroker,
            format!(
                "the broker's answer uses a protocol version the crate cannot parse; {TOO_NEW}"
            ),
        ),
        KError::UnexpectedEOF => (
            ErrorKind::Connection,
            "the broker's answer ended early (truncated response)".to_string(),
        ),
        KError::UnsupportedCompression => (
            ErrorKind::Broker,
            "a record set uses a compression codec the kafka crate cannot read \
             (only none, gzip and snappy are supported; lz4/zstd are not)"
                .to_string(),
        ),
        KError::InvalidSnappy(e) => (
            ErrorKind::Broker,
            format!("a snappy-compressed record set could not be decompressed: {e}"),
        ),
        KError::CodecError | KError::StringDecodeError => (
            ErrorKind::Broker,
            format!("the broker's answer could not be decoded ({err})"),
        ),
        KError::InvalidDuration => (
            ErrorKind::Config,
            "a duration does not fit the protocol's 32-bit millisecond field".to_string(),
        ),
        KError::ArcSelf(inner) => classify(inner),
        other => (ErrorKind::Broker, format!("kafka crate error: {other}")),
    }
}

/// This crate's error for a `kafka` crate error raised while doing `what`. I/O errors are kept
/// as the source; topic/partition context is added for per-partition errors, the caller adds
/// the broker.
pub(super) fn map_error(err: KError, what: &str) -> Error {
    let (kind, sentence) = classify(&err);
    let mut e = Error::new(kind, format!("{what}: {sentence}"));
    if let Some(code) = error_code(&err) {
        e = e.with_broker_code(code as i16);
    }
    if let KError::TopicPartitionError {
        topic_name,
        partition_id,
        ..
    } = &err
    {
        e = e
            .with_topic(topic_name.clone())
            .with_partition(*partition_id);
    }
    match err {
        KError::Io(io) => e.with_source(io),
        _ => e,
    }
}

/// The broker code carried by `err`, if it is a broker answer.
pub(super) fn error_code(err: &KError) -> Option<KafkaCode> {
    match err {
        KError::Kafka(code) => Some(*code),
        KError::TopicPartitionError { error_code, .. } => Some(*error_code),
        KError::ArcSelf(inner) => error_code(inner),
        _ => None,
    }
}

/// The offset of each record of one produce request, in order.
///
/// The broker confirms, per partition, the offset of the *first* message of that partition's
/// set (or an error). Record `i` on partition `p` is the `k`-th record of `p` in the request,
/// so its offset is `base(p) + k`. A partition missing from `confirms` yields `None`.
pub(super) fn assign_offsets<E: Clone>(
    partitions: &[i32],
    confirms: &HashMap<i32, Result<i64, E>>,
) -> Vec<Option<Result<i64, E>>> {
    let mut seen: HashMap<i32, i64> = HashMap::new();
    partitions
        .iter()
        .map(|p| {
            let k = seen.entry(*p).or_insert(0);
            let index = *k;
            *k += 1;
            confirms.get(p).map(|r| r.clone().map(|base| base + index))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn retriable_codes_map_to_broker_retriable() {
        for code in [
            KafkaCode::LeaderNotAvailable,
            KafkaCode::NotLeaderForPartition,
            KafkaCode::RequestTimedOut,
            KafkaCode::NetworkException,
            KafkaCode::NotEnoughReplicas,
            KafkaCode::NotEnoughReplicasAfterAppend,
            KafkaCode::GroupLoadInProgress,
            KafkaCode::GroupCoordinatorNotAvailable,
            KafkaCode::NotCoordinatorForGroup,
            KafkaCode::BrokerNotAvailable,
            KafkaCode::ReplicaNotAvailable,
        ] {
            let e = map_error(KError::Kafka(code), "produce");
            assert_eq!(e.kind(), ErrorKind::BrokerRetriable, "{code:?}");
            assert!(e.is_retriable());
            assert!(e.message().contains(&format!("{code:?}")), "{e}");
        }
    }

    #[test]
    fn size_unknown_topic_and_version_codes_have_their_own_kinds() {
        let kind = |c| map_error(KError::Kafka(c), "x").kind();
        assert_eq!(
            kind(KafkaCode::UnknownTopicOrPartition),
            ErrorKind::UnknownTopic
        );
        assert_eq!(
            kind(KafkaCode::MessageSizeTooLarge),
            ErrorKind::MessageTooLarge
        );
        assert_eq!(
            kind(KafkaCode::RecordListTooLarge),
            ErrorKind::MessageTooLarge
        );
        assert_eq!(
            kind(KafkaCode::InvalidMessageSize),
            ErrorKind::MessageTooLarge
        );
        // The shared table follows the Java client: a corrupt record is worth a retry.
        assert_eq!(kind(KafkaCode::CorruptMessage), ErrorKind::BrokerRetriable);
        assert_eq!(kind(KafkaCode::Unknown), ErrorKind::Broker);
        let e = map_error(KError::Kafka(KafkaCode::MessageSizeTooLarge), "produce");
        assert_eq!(e.broker_code(), Some(10));
        let e = map_error(KError::Kafka(KafkaCode::UnsupportedVersion), "fetch");
        assert_eq!(e.kind(), ErrorKind::UnsupportedBroker);
        assert!(e.message().contains("KIP-896"), "{e}");
        assert!(e.message().contains("UnsupportedVersion (code 35)"), "{e}");
        assert!(!e.is_retriable());
    }

    #[test]
    fn io_errors_are_connection_or_timeout_and_keep_their_source() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let e = map_error(KError::Io(refused), "load metadata");
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.chain_text().contains("refused"));
        assert!(std::error::Error::source(&e).is_some());

        let timed_out = io::Error::new(io::ErrorKind::WouldBlock, "would block");
        let e = map_error(KError::Io(timed_out), "fetch");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("120 s"));

        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(
            map_error(KError::Io(eof), "x").kind(),
            ErrorKind::Connection
        );
        assert_eq!(
            map_error(KError::NoHostReachable, "x").kind(),
            ErrorKind::Connection
        );
        assert_eq!(
            map_error(KError::UnexpectedEOF, "x").kind(),
            ErrorKind::Connection
        );
    }

    #[test]
    fn topic_partition_errors_carry_context_and_nested_errors_unwrap() {
        let e = map_error(
            KError::TopicPartitionError {
                topic_name: "t".into(),
                partition_id: 2,
                error_code: KafkaCode::NotLeaderForPartition,
            },
            "list offsets",
        );
        assert_eq!(e.kind(), ErrorKind::BrokerRetriable);
        assert_eq!(e.context().topic.as_deref(), Some("t"));
        assert_eq!(e.context().partition, Some(2));

        let nested = KError::ArcSelf(Arc::new(KError::Kafka(KafkaCode::OffsetOutOfRange)));
        assert_eq!(error_code(&nested), Some(KafkaCode::OffsetOutOfRange));
        assert_eq!(map_error(nested, "fetch").kind(), ErrorKind::Broker);
        assert_eq!(
            map_error(KError::UnsupportedProtocol, "x").kind(),
            ErrorKind::UnsupportedBroker
        );
        assert_eq!(
            map_error(KError::InvalidDuration, "x").kind(),
            ErrorKind::Config
        );
        assert_eq!(
            map_error(KError::UnsupportedCompression, "x").kind(),
            ErrorKind::Broker
        );
    }

    #[test]
    fn stale_metadata_codes() {
        assert!(code_means_stale_metadata(KafkaCode::NotLeaderForPartition));
        assert!(code_means_stale_metadata(
            KafkaCode::UnknownTopicOrPartition
        ));
        assert!(!code_means_stale_metadata(KafkaCode::MessageSizeTooLarge));
    }

    #[test]
    fn offsets_are_base_plus_index_within_the_partition() {
        let partitions = [0, 1, 0, 2, 1, 0];
        let confirms: HashMap<i32, Result<i64, &str>> =
            [(0, Ok(100)), (1, Ok(7)), (2, Err("not leader"))].into();
        let got = assign_offsets(&partitions, &confirms);
        assert_eq!(
            got,
            vec![
                Some(Ok(100)),
                Some(Ok(7)),
                Some(Ok(101)),
                Some(Err("not leader")),
                Some(Ok(8)),
                Some(Ok(102)),
            ]
        );
    }

    #[test]
    fn a_partition_without_confirmation_yields_none() {
        let confirms: HashMap<i32, Result<i64, ()>> = [(0, Ok(0))].into();
        assert_eq!(
            assign_offsets(&[0, 3, 0], &confirms),
            vec![Some(Ok(0)), None, Some(Ok(1))]
        );
        assert!(assign_offsets::<()>(&[], &confirms).is_empty());
    }
}
