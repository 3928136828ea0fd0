//! Layouts of the answers of the client APIs (versions, metadata, produce, fetch, offsets), for [`check`](super::check).
//!
//! Taken from kafka-protocol 0.18's generated message definitions by a one-off script
//! (each struct's fields in wire order, with the versions they are sent in; tagged fields
//! by tag), and tested against its decoder in `super::tests`.

use super::{Field, Message, Struct, Tag, Ty};

/// `ApiVersion`.
static API_VERSIONS_API_VERSION: Struct = Struct {
    name: "ApiVersion",
    fields: &[
        Field { name: "api_key", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "min_version", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "max_version", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `SupportedFeatureKey`.
static API_VERSIONS_SUPPORTED_FEATURE_KEY: Struct = Struct {
    name: "SupportedFeatureKey",
    fields: &[
        Field { name: "name", versions: (3, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "min_version", versions: (3, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "max_version", versions: (3, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `FinalizedFeatureKey`.
static API_VERSIONS_FINALIZED_FEATURE_KEY: Struct = Struct {
    name: "FinalizedFeatureKey",
    fields: &[
        Field { name: "name", versions: (3, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "max_version_level", versions: (3, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "min_version_level", versions: (3, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `ApiVersionsResponse`.
static API_VERSIONS: Struct = Struct {
    name: "ApiVersionsResponse",
    fields: &[
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "api_keys", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&API_VERSIONS_API_VERSION) } },
        Field { name: "throttle_time_ms", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
        Tag { tag: 0, field: Field { name: "supported_features", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&API_VERSIONS_SUPPORTED_FEATURE_KEY) } } },
        Tag { tag: 1, field: Field { name: "finalized_features_epoch", versions: (0, i16::MAX), ty: Ty::Fixed(8) } },
        Tag { tag: 2, field: Field { name: "finalized_features", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&API_VERSIONS_FINALIZED_FEATURE_KEY) } } },
        Tag { tag: 3, field: Field { name: "zk_migration_ready", versions: (0, i16::MAX), ty: Ty::Fixed(1) } },
    ],
};

/// `ApiVersionsResponse`, flexible from v3.
pub(crate) static API_VERSIONS_MESSAGE: Message = Message { name: "ApiVersionsResponse", body: &API_VERSIONS, flexible_from: 3 };

/// `MetadataResponseBroker`.
static METADATA_METADATA_RESPONSE_BROKER: Struct = Struct {
    name: "MetadataResponseBroker",
    fields: &[
        Field { name: "node_id", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "host", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "port", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "rack", versions: (1, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
    ],
};

/// `MetadataResponsePartition`.
static METADATA_METADATA_RESPONSE_PARTITION: Struct = Struct {
    name: "MetadataResponsePartition",
    fields: &[
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "partition_index", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "leader_id", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "leader_epoch", versions: (7, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "replica_nodes", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Fixed(4) } },
        Field { name: "isr_nodes", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Fixed(4) } },
        Field { name: "offline_replicas", versions: (5, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Fixed(4) } },
    ],
    tags: &[
    ],
};

/// `MetadataResponseTopic`.
static METADATA_METADATA_RESPONSE_TOPIC: Struct = Struct {
    name: "MetadataResponseTopic",
    fields: &[
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "name", versions: (0, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "topic_id", versions: (10, i16::MAX), ty: Ty::Fixed(16) },
        Field { name: "is_internal", versions: (1, i16::MAX), ty: Ty::Fixed(1) },
        Field { name: "partitions", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&METADATA_METADATA_RESPONSE_PARTITION) } },
        Field { name: "topic_authorized_operations", versions: (8, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `MetadataResponse`.
static METADATA: Struct = Struct {
    name: "MetadataResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (3, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "brokers", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&METADATA_METADATA_RESPONSE_BROKER) } },
        Field { name: "cluster_id", versions: (2, i16::MAX), ty: Ty::Str { nullable: true } },
        Field { name: "controller_id", versions: (1, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "topics", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&METADATA_METADATA_RESPONSE_TOPIC) } },
        Field { name: "cluster_authorized_operations", versions: (8, 10), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (13, i16::MAX), ty: Ty::Fixed(2) },
    ],
    tags: &[
    ],
};

/// `MetadataResponse`, flexible from v9.
pub(crate) static METADATA_MESSAGE: Message = Message { name: "MetadataResponse", body: &METADATA, flexible_from: 9 };

/// `BatchIndexAndErrorMessage`.
static PRODUCE_BATCH_INDEX_AND_ERROR_MESSAGE: Struct = Struct {
    name: "BatchIndexAndErrorMessage",
    fields: &[
        Field { name: "batch_index", versions: (8, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "batch_index_error_message", versions: (8, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
    ],
};

/// `LeaderIdAndEpoch`.
static PRODUCE_LEADER_ID_AND_EPOCH: Struct = Struct {
    name: "LeaderIdAndEpoch",
    fields: &[
        Field { name: "leader_id", versions: (10, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "leader_epoch", versions: (10, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `PartitionProduceResponse`.
static PRODUCE_PARTITION_PRODUCE_RESPONSE: Struct = Struct {
    name: "PartitionProduceResponse",
    fields: &[
        Field { name: "index", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "base_offset", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "log_append_time_ms", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "log_start_offset", versions: (5, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "record_errors", versions: (8, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&PRODUCE_BATCH_INDEX_AND_ERROR_MESSAGE) } },
        Field { name: "error_message", versions: (8, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
        Tag { tag: 0, field: Field { name: "current_leader", versions: (10, i16::MAX), ty: Ty::Struct(&PRODUCE_LEADER_ID_AND_EPOCH) } },
    ],
};

/// `TopicProduceResponse`.
static PRODUCE_TOPIC_PRODUCE_RESPONSE: Struct = Struct {
    name: "TopicProduceResponse",
    fields: &[
        Field { name: "name", versions: (0, 12), ty: Ty::Str { nullable: false } },
        Field { name: "topic_id", versions: (13, i16::MAX), ty: Ty::Fixed(16) },
        Field { name: "partition_responses", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&PRODUCE_PARTITION_PRODUCE_RESPONSE) } },
    ],
    tags: &[
    ],
};

/// `NodeEndpoint`.
static PRODUCE_NODE_ENDPOINT: Struct = Struct {
    name: "NodeEndpoint",
    fields: &[
        Field { name: "node_id", versions: (10, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "host", versions: (10, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "port", versions: (10, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "rack", versions: (10, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
    ],
};

/// `ProduceResponse`.
static PRODUCE: Struct = Struct {
    name: "ProduceResponse",
    fields: &[
        Field { name: "responses", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&PRODUCE_TOPIC_PRODUCE_RESPONSE) } },
        Field { name: "throttle_time_ms", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
        Tag { tag: 0, field: Field { name: "node_endpoints", versions: (10, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&PRODUCE_NODE_ENDPOINT) } } },
    ],
};

/// `ProduceResponse`, flexible from v9.
pub(crate) static PRODUCE_MESSAGE: Message = Message { name: "ProduceResponse", body: &PRODUCE, flexible_from: 9 };

/// `AbortedTransaction`.
static FETCH_ABORTED_TRANSACTION: Struct = Struct {
    name: "AbortedTransaction",
    fields: &[
        Field { name: "producer_id", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "first_offset", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
    ],
    tags: &[
    ],
};

/// `EpochEndOffset`.
static FETCH_EPOCH_END_OFFSET: Struct = Struct {
    name: "EpochEndOffset",
    fields: &[
        Field { name: "epoch", versions: (12, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "end_offset", versions: (12, i16::MAX), ty: Ty::Fixed(8) },
    ],
    tags: &[
    ],
};

/// `LeaderIdAndEpoch`.
static FETCH_LEADER_ID_AND_EPOCH: Struct = Struct {
    name: "LeaderIdAndEpoch",
    fields: &[
        Field { name: "leader_id", versions: (12, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "leader_epoch", versions: (12, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `SnapshotId`.
static FETCH_SNAPSHOT_ID: Struct = Struct {
    name: "SnapshotId",
    fields: &[
        Field { name: "end_offset", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "epoch", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `PartitionData`.
static FETCH_PARTITION_DATA: Struct = Struct {
    name: "PartitionData",
    fields: &[
        Field { name: "partition_index", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "high_watermark", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "last_stable_offset", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "log_start_offset", versions: (5, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "aborted_transactions", versions: (0, i16::MAX), ty: Ty::Array { nullable: true, of: &Ty::Struct(&FETCH_ABORTED_TRANSACTION) } },
        Field { name: "preferred_read_replica", versions: (11, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "records", versions: (0, i16::MAX), ty: Ty::Bytes { nullable: true } },
    ],
    tags: &[
        Tag { tag: 0, field: Field { name: "diverging_epoch", versions: (0, i16::MAX), ty: Ty::Struct(&FETCH_EPOCH_END_OFFSET) } },
        Tag { tag: 1, field: Field { name: "current_leader", versions: (0, i16::MAX), ty: Ty::Struct(&FETCH_LEADER_ID_AND_EPOCH) } },
        Tag { tag: 2, field: Field { name: "snapshot_id", versions: (0, i16::MAX), ty: Ty::Struct(&FETCH_SNAPSHOT_ID) } },
    ],
};

/// `FetchableTopicResponse`.
static FETCH_FETCHABLE_TOPIC_RESPONSE: Struct = Struct {
    name: "FetchableTopicResponse",
    fields: &[
        Field { name: "topic", versions: (0, 12), ty: Ty::Str { nullable: false } },
        Field { name: "topic_id", versions: (13, i16::MAX), ty: Ty::Fixed(16) },
        Field { name: "partitions", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&FETCH_PARTITION_DATA) } },
    ],
    tags: &[
    ],
};

/// `NodeEndpoint`.
static FETCH_NODE_ENDPOINT: Struct = Struct {
    name: "NodeEndpoint",
    fields: &[
        Field { name: "node_id", versions: (16, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "host", versions: (16, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "port", versions: (16, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "rack", versions: (16, i16::MAX), ty: Ty::Str { nullable: true } },
    ],
    tags: &[
    ],
};

/// `FetchResponse`.
static FETCH: Struct = Struct {
    name: "FetchResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (7, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "session_id", versions: (7, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "responses", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&FETCH_FETCHABLE_TOPIC_RESPONSE) } },
    ],
    tags: &[
        Tag { tag: 0, field: Field { name: "node_endpoints", versions: (16, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&FETCH_NODE_ENDPOINT) } } },
    ],
};

/// `FetchResponse`, flexible from v12.
pub(crate) static FETCH_MESSAGE: Message = Message { name: "FetchResponse", body: &FETCH, flexible_from: 12 };

/// `ListOffsetsPartitionResponse`.
static LIST_OFFSETS_LIST_OFFSETS_PARTITION_RESPONSE: Struct = Struct {
    name: "ListOffsetsPartitionResponse",
    fields: &[
        Field { name: "partition_index", versions: (0, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "error_code", versions: (0, i16::MAX), ty: Ty::Fixed(2) },
        Field { name: "timestamp", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "offset", versions: (0, i16::MAX), ty: Ty::Fixed(8) },
        Field { name: "leader_epoch", versions: (4, i16::MAX), ty: Ty::Fixed(4) },
    ],
    tags: &[
    ],
};

/// `ListOffsetsTopicResponse`.
static LIST_OFFSETS_LIST_OFFSETS_TOPIC_RESPONSE: Struct = Struct {
    name: "ListOffsetsTopicResponse",
    fields: &[
        Field { name: "name", versions: (0, i16::MAX), ty: Ty::Str { nullable: false } },
        Field { name: "partitions", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&LIST_OFFSETS_LIST_OFFSETS_PARTITION_RESPONSE) } },
    ],
    tags: &[
    ],
};

/// `ListOffsetsResponse`.
static LIST_OFFSETS: Struct = Struct {
    name: "ListOffsetsResponse",
    fields: &[
        Field { name: "throttle_time_ms", versions: (2, i16::MAX), ty: Ty::Fixed(4) },
        Field { name: "topics", versions: (0, i16::MAX), ty: Ty::Array { nullable: false, of: &Ty::Struct(&LIST_OFFSETS_LIST_OFFSETS_TOPIC_RESPONSE) } },
    ],
    tags: &[
    ],
};

/// `ListOffsetsResponse`, flexible from v6.
pub(crate) static LIST_OFFSETS_MESSAGE: Message = Message { name: "ListOffsetsResponse", body: &LIST_OFFSETS, flexible_from: 6 };
