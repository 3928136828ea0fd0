//! Kafka's broker error codes (`Errors.java` numbering) and the [`ErrorKind`] each maps to:
//! the one table both network transports use, so an error means the same whichever
//! transport met it. [`Error::broker_code`](crate::Error::broker_code) keeps the number.

use kafka_protocol::ResponseError;

use crate::error::ErrorKind;

/// The error codes the transports act on.
pub(crate) mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
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
    pub const INVALID_MESSAGE_SIZE: i16 = 4;
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
pub(crate) fn code_name(c: i16) -> String {
    match ResponseError::try_from_code(c) {
        None => "None".to_string(),
        Some(ResponseError::Unknown(n)) => format!("unknown error code {n}"),
        Some(e) => format!("{e:?}"),
    }
}

/// The kind a broker error code maps to.
pub(crate) fn code_kind(c: i16) -> ErrorKind {
    use code::*;
    match c {
        UNKNOWN_TOPIC_OR_PARTITION => ErrorKind::UnknownTopic,
        MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE | INVALID_MESSAGE_SIZE => ErrorKind::MessageTooLarge,
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

#[cfg(test)]
mod tests {
    use super::code::*;
    use super::*;

    #[test]
    fn group_and_size_codes_have_one_meaning() {
        for c in [REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID] {
            assert_eq!(code_kind(c), ErrorKind::BrokerRetriable, "code {c}");
        }
        for c in [
            MESSAGE_TOO_LARGE,
            RECORD_LIST_TOO_LARGE,
            INVALID_MESSAGE_SIZE,
        ] {
            assert_eq!(code_kind(c), ErrorKind::MessageTooLarge, "code {c}");
        }
        assert_eq!(
            code_kind(UNKNOWN_TOPIC_OR_PARTITION),
            ErrorKind::UnknownTopic
        );
        assert_eq!(code_kind(29), ErrorKind::Broker); // TOPIC_AUTHORIZATION_FAILED
    }
}
