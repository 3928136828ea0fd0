//! Layouts of the answers of the group, admin and SASL APIs, the response header, and the consumer protocol, for [`check`](super::check).
//!
//! Taken from kafka-protocol 0.18's generated message definitions by a one-off script
//! (each struct's fields in wire order, with the versions they are sent in; tagged fields
//! by tag), and tested against its decoder in `super::tests`.

use super::{Field, Message, Struct, Tag, Ty};

/// `Coordinator`.
static FIND_COORDINATOR_COORDINATOR: Struct = Struct {
    name: "Coordinator",
    fields: &[
        Field { name: "key", versions: (4, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "node_id", versions: (4, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "host", versions: (4, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "port", versions: (4, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (4, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "error_message", versions: (4, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
    ],
};

/// `FindCoordinatorResponse`.
static FIND_COORDINATOR: Struct = Struct {
    name: "FindCoordinatorResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, 3), ty: Ty::Fixed(2) },
        Field { name: "error_message", versions: (1, 3), ty: Ty::Str { nullable: true } },
        Field { name: "node_id", versions: (0, 3), ty: Ty::Fixed(4) },
        Field { name: "host", versions: (0, 3), ty: Ty::Str { nullable: false } },
        Field { name: "port", versions: (0, 3), ty: Ty::Fixed(4) },
        Field { name: "coordinators", versions: (4, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&FIND_COORDINATOR_COORDINATOR) } },
    ],
    tags: &[
    ],
};

/// `FindCoordinatorResponse`, flexible from v3.
pub(crate) static FIND_COORDINATOR_MESSAGE: Message = Message { name: "FindCoordinatorResponse", body: &FIND_COORDINATOR, flexible_from: 3 };

/// `JoinGroupResponseMember`.
static JOIN_GROUP_JOIN_GROUP_RESPONSE_MEMBER: Struct = Struct {
    name: "JoinGroupResponseMember",
    fields: &[
        Field { name: "member_id", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "group_instance_id", versions: (5, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "metadata", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: false } },
    ],
    tags: &[
    ],
};

/// `JoinGroupResponse`.
static JOIN_GROUP: Struct = Struct {
    name: "JoinGroupResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (2, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "generation_id", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "protocol_type", versions: (7, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "protocol_name", versions: (0, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "leader", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "skip_assignment", versions: (9, i16::MAX), ty: Ty::Fixed(1) },
        Field { name: "member_id", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "members", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&JOIN_GROUP_JOIN_GROUP_RESPONSE_MEMBER) } },
    ],
    tags: &[
    ],
};

/// `JoinGroupResponse`, flexible from v6.
pub(crate) static JOIN_GROUP_MESSAGE: Message = Message { name: "JoinGroupResponse", body: &JOIN_GROUP, flexible_from: 6 };

/// `SyncGroupResponse`.
static SYNC_GROUP: Struct = Struct {
    name: "SyncGroupResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "protocol_type", versions: (5, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "protocol_name", versions: (5, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "assignment", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: false } },
    ],
    tags: &[
    ],
};

/// `SyncGroupResponse`, flexible from v4.
pub(crate) static SYNC_GROUP_MESSAGE: Message = Message { name: "SyncGroupResponse", body: &SYNC_GROUP, flexible_from: 4 };

/// `HeartbeatResponse`.
static HEARTBEAT: Struct = Struct {
    name: "HeartbeatResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `HeartbeatResponse`, flexible from v4.
pub(crate) static HEARTBEAT_MESSAGE: Message = Message { name: "HeartbeatResponse", body: &HEARTBEAT, flexible_from: 4 };

/// `MemberResponse`.
static LEAVE_GROUP_MEMBER_RESPONSE: Struct = Struct {
    name: "MemberResponse",
    fields: &[
        Field { name: "member_id", versions: (3, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "group_instance_id", versions: (3, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "error_code", versions: (3, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `LeaveGroupResponse`.
static LEAVE_GROUP: Struct = Struct {
    name: "LeaveGroupResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "members", versions: (3, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&LEAVE_GROUP_MEMBER_RESPONSE) } },
    ],
    tags: &[
    ],
};

/// `LeaveGroupResponse`, flexible from v4.
pub(crate) static LEAVE_GROUP_MESSAGE: Message = Message { name: "LeaveGroupResponse", body: &LEAVE_GROUP, flexible_from: 4 };

/// `OffsetCommitResponsePartition`.
static OFFSET_COMMIT_OFFSET_COMMIT_RESPONSE_PARTITION: Struct = Struct {
    name: "OffsetCommitResponsePartition",
    fields: &[
        Field { name: "partition_index", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `OffsetCommitResponseTopic`.
static OFFSET_COMMIT_OFFSET_COMMIT_RESPONSE_TOPIC: Struct = Struct {
    name: "OffsetCommitResponseTopic",
    fields: &[
        Field { name: "name", versions: (0, 9), ty: Ty::Str { nullable: false } },
        Field { name: "topic_id", versions: (10, i16::MAX), ty: Ty::Fixed(16) },
        Field { name: "partitions", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_COMMIT_OFFSET_COMMIT_RESPONSE_PARTITION) } },
    ],
    tags: &[
    ],
};

/// `OffsetCommitResponse`.
static OFFSET_COMMIT: Struct = Struct {
    name: "OffsetCommitResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (3, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "topics", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_COMMIT_OFFSET_COMMIT_RESPONSE_TOPIC) } },
    ],
    tags: &[
    ],
};

/// `OffsetCommitResponse`, flexible from v8.
pub(crate) static OFFSET_COMMIT_MESSAGE: Message = Message { name: "OffsetCommitResponse", body: &OFFSET_COMMIT, flexible_from: 8 };

/// `OffsetFetchResponsePartition`.
static OFFSET_FETCH_OFFSET_FETCH_RESPONSE_PARTITION: Struct = Struct {
    name: "OffsetFetchResponsePartition",
    fields: &[
        Field { name: "partition_index", versions: (0, 7), ty: Ty::Fixed(4) },
        Field { name: "committed_offset", versions: (0, 7), ty: Ty::Fixed(8) },
        Field { name: "committed_leader_epoch", versions: (5, 7), ty: Ty::Fixed(4) },
        Field { name: "metadata", versions: (0, 7), ty: Ty::Str { nullable: true } },
        Field { name: "error_code", versions: (0, 7), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `OffsetFetchResponseTopic`.
static OFFSET_FETCH_OFFSET_FETCH_RESPONSE_TOPIC: Struct = Struct {
    name: "OffsetFetchResponseTopic",
    fields: &[
        Field { name: "name", versions: (0, 7), ty: Ty::Str { nullable: false } },
        Field { name: "partitions", versions: (0, 7), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_FETCH_OFFSET_FETCH_RESPONSE_PARTITION) } },
    ],
    tags: &[
    ],
};

/// `OffsetFetchResponsePartitions`.
static OFFSET_FETCH_OFFSET_FETCH_RESPONSE_PARTITIONS: Struct = Struct {
    name: "OffsetFetchResponsePartitions",
    fields: &[
        Field { name: "partition_index", versions: (8, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "committed_offset", versions: (8, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "committed_leader_epoch", versions: (8, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "metadata", versions: (8, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "error_code", versions: (8, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `OffsetFetchResponseTopics`.
static OFFSET_FETCH_OFFSET_FETCH_RESPONSE_TOPICS: Struct = Struct {
    name: "OffsetFetchResponseTopics",
    fields: &[
        Field { name: "name", versions: (8, 9), ty: Ty::Str { nullable: false } },
        Field { name: "topic_id", versions: (10, i16::MAX), ty: Ty::Fixed(16) },
        Field { name: "partitions", versions: (8, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_FETCH_OFFSET_FETCH_RESPONSE_PARTITIONS) } },
    ],
    tags: &[
    ],
};

/// `OffsetFetchResponseGroup`.
static OFFSET_FETCH_OFFSET_FETCH_RESPONSE_GROUP: Struct = Struct {
    name: "OffsetFetchResponseGroup",
    fields: &[
        Field { name: "group_id", versions: (8, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "topics", versions: (8, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_FETCH_OFFSET_FETCH_RESPONSE_TOPICS) } },
        Field { name: "error_code", versions: (8, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `OffsetFetchResponse`.
static OFFSET_FETCH: Struct = Struct {
    name: "OffsetFetchResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (3, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "topics", versions: (0, 7), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_FETCH_OFFSET_FETCH_RESPONSE_TOPIC) } },
        Field { name: "error_code", versions: (2, 7), ty: Ty::Fixed(2) },
        Field { name: "groups", versions: (8, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&OFFSET_FETCH_OFFSET_FETCH_RESPONSE_GROUP) } },
    ],
    tags: &[
    ],
};

/// `OffsetFetchResponse`, flexible from v6.
pub(crate) static OFFSET_FETCH_MESSAGE: Message = Message { name: "OffsetFetchResponse", body: &OFFSET_FETCH, flexible_from: 6 };

/// `CreatableTopicConfigs`.
static CREATE_TOPICS_CREATABLE_TOPIC_CONFIGS: Struct = Struct {
    name: "CreatableTopicConfigs",
    fields: &[
        Field { name: "name", versions: (5, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "value", versions: (5, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "read_only", versions: (5, i16::MAX), ty: Ty::Fixed(1) },
        Field { name: "config_source", versions: (5, i16::MAX), ty: Ty::Fixed(1) },
        Field { name: "is_sensitive", versions: (5, i16::MAX), ty: Ty::Fixed(1) },
    ],
    tags: &[
    ],
};

/// `CreatableTopicResult`.
static CREATE_TOPICS_CREATABLE_TOPIC_RESULT: Struct = Struct {
    name: "CreatableTopicResult",
    fields: &[
        Field { name: "name", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "topic_id", versions: (7, i16::MAX), ty: Ty::Fixed(16) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "error_message", versions: (0, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "num_partitions", versions: (5, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "replication_factor", versions: (5, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "configs", versions: (5, i16::MAX), ty: Ty::Array { nullable: true, of: &Ty::Struct(&CREATE_TOPICS_CREATABLE_TOPIC_CONFIGS) } },
    ],
    tags: &[
        Tag { tag: 0, field: Field { name: "topic_config_error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) } },
    ],
};

/// `CreateTopicsResponse`.
static CREATE_TOPICS: Struct = Struct {
    name: "CreateTopicsResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "topics", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&CREATE_TOPICS_CREATABLE_TOPIC_RESULT) } },
    ],
    tags: &[
    ],
};

/// `CreateTopicsResponse`, flexible from v5.
pub(crate) static CREATE_TOPICS_MESSAGE: Message = Message { name: "CreateTopicsResponse", body: &CREATE_TOPICS, flexible_from: 5 };

/// `InitProducerIdResponse`.
static INIT_PRODUCER_ID: Struct = Struct {
    name: "InitProducerIdResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "producer_id", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "producer_epoch", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "ongoing_txn_producer_id", versions: (6, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "ongoing_txn_producer_epoch", versions: (6, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `InitProducerIdResponse`, flexible from v2.
pub(crate) static INIT_PRODUCER_ID_MESSAGE: Message = Message { name: "InitProducerIdResponse", body: &INIT_PRODUCER_ID, flexible_from: 2 };

/// `SaslHandshakeResponse`.
static SASL_HANDSHAKE: Struct = Struct {
    name: "SaslHandshakeResponse",
    fields: &[
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "mechanisms", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Str { nullable: false } } },
    ],
    tags: &[
    ],
};

/// `SaslHandshakeResponse`, flexible from vnever.
pub(crate) static SASL_HANDSHAKE_MESSAGE: Message = Message { name: "SaslHandshakeResponse", body: &SASL_HANDSHAKE, flexible_from: i16::MAX };

/// `SaslAuthenticateResponse`.
static SASL_AUTHENTICATE: Struct = Struct {
    name: "SaslAuthenticateResponse",
    fields: &[
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "error_message", versions: (0, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "auth_bytes", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: false } },
        Field { name: "session_lifetime_ms", versions: (1, i16::MAX), ty: Ty::Fixed(8) },
    ],
    tags: &[
    ],
};

/// `SaslAuthenticateResponse`, flexible from v2.
pub(crate) static SASL_AUTHENTICATE_MESSAGE: Message = Message { name: "SaslAuthenticateResponse", body: &SASL_AUTHENTICATE, flexible_from: 2 };

/// `ListedGroup`.
static LIST_GROUPS_LISTED_GROUP: Struct = Struct {
    name: "ListedGroup",
    fields: &[
        Field { name: "group_id", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "protocol_type", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "group_state", versions: (4, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "group_type", versions: (5, i16::MAX), ty: Ty::Str { nullable: false } },
    ],
    tags: &[
    ],
};

/// `ListGroupsResponse`.
static LIST_GROUPS: Struct = Struct {
    name: "ListGroupsResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "groups", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&LIST_GROUPS_LISTED_GROUP) } },
    ],
    tags: &[
    ],
};

/// `ListGroupsResponse`, flexible from v3.
pub(crate) static LIST_GROUPS_MESSAGE: Message = Message { name: "ListGroupsResponse", body: &LIST_GROUPS, flexible_from: 3 };

/// `DescribedGroupMember`.
static DESCRIBE_GROUPS_DESCRIBED_GROUP_MEMBER: Struct = Struct {
    name: "DescribedGroupMember",
    fields: &[
        Field { name: "member_id", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "group_instance_id", versions: (4, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "client_id", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "client_host", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "member_metadata", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: false } },
        Field { name: "member_assignment", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: false } },
    ],
    tags: &[
    ],
};

/// `DescribedGroup`.
static DESCRIBE_GROUPS_DESCRIBED_GROUP: Struct = Struct {
    name: "DescribedGroup",
    fields: &[
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "error_message", versions: (6, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "group_id", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "group_state", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "protocol_type", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "protocol_data", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "members", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&DESCRIBE_GROUPS_DESCRIBED_GROUP_MEMBER) } },
        Field { name: "authorized_operations", versions: (3, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `DescribeGroupsResponse`.
static DESCRIBE_GROUPS: Struct = Struct {
    name: "DescribeGroupsResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "groups", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&DESCRIBE_GROUPS_DESCRIBED_GROUP) } },
    ],
    tags: &[
    ],
};

/// `DescribeGroupsResponse`, flexible from v5.
pub(crate) static DESCRIBE_GROUPS_MESSAGE: Message = Message { name: "DescribeGroupsResponse", body: &DESCRIBE_GROUPS, flexible_from: 5 };

/// `ResponseHeader`.
static RESPONSE_HEADER: Struct = Struct {
    name: "ResponseHeader",
    fields: &[
        Field { name: "correlation_id", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `ResponseHeader`, flexible from v1.
pub(crate) static RESPONSE_HEADER_MESSAGE: Message = Message { name: "ResponseHeader", body: &RESPONSE_HEADER, flexible_from: 1 };

/// `TopicPartition`.
static CONSUMER_SUBSCRIPTION_TOPIC_PARTITION: Struct = Struct {
    name: "TopicPartition",
    fields: &[
        Field { name: "topic", versions: (1, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "partitions", versions: (1, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Fixed(4) } },
    ],
    tags: &[
    ],
};

/// `ConsumerProtocolSubscription`.
static CONSUMER_SUBSCRIPTION: Struct = Struct {
    name: "ConsumerProtocolSubscription",
    fields: &[
        Field { name: "topics", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Str { nullable: false } } },
        Field { name: "user_data", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: true } },
        Field { name: "owned_partitions", versions: (1, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&CONSUMER_SUBSCRIPTION_TOPIC_PARTITION) } },
        Field { name: "generation_id", versions: (2, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "rack_id", versions: (3, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
    ],
};

/// `ConsumerProtocolSubscription`, flexible from vnever.
pub(crate) static CONSUMER_SUBSCRIPTION_MESSAGE: Message = Message { name: "ConsumerProtocolSubscription", body: &CONSUMER_SUBSCRIPTION, flexible_from: i16::MAX };

/// `TopicPartition`.
static CONSUMER_ASSIGNMENT_TOPIC_PARTITION: Struct = Struct {
    name: "TopicPartition",
    fields: &[
        Field { name: "topic", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "partitions", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Fixed(4) } },
    ],
    tags: &[
    ],
};

/// `ConsumerProtocolAssignment`.
static CONSUMER_ASSIGNMENT: Struct = Struct {
    name: "ConsumerProtocolAssignment",
    fields: &[
        Field { name: "assigned_partitions", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&CONSUMER_ASSIGNMENT_TOPIC_PARTITION) } },
        Field { name: "user_data", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: true } },
    ],
    tags: &[
    ],
};

/// `ConsumerProtocolAssignment`, flexible from vnever.
pub(crate) static CONSUMER_ASSIGNMENT_MESSAGE: Message = Message { name: "ConsumerProtocolAssignment", body: &CONSUMER_ASSIGNMENT, flexible_from: i16::MAX };
