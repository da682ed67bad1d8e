//! Typed messages between clients and brokers, and Kafka's error codes.
//!
//! The simulator carries these values between nodes as they are; the production driver translates
//! Kafka's wire protocol into them (a later issue). They are deliberately Kafka-shaped: a produce
//! request carries one record batch exactly as a client encoded it, a fetch answer carries whole
//! stored batches, and every failure is one of Kafka's error codes.
//!
//! Record bytes (`batch`, `records`, `batches`) serialize as serde byte strings (`serde_bytes`):
//! the production driver's binary peer encoding then copies them whole instead of one byte at a
//! time, which was half of replication's CPU. JSON still writes them as arrays of numbers.

use std::fmt;

/// Kafka's error codes, with Kafka's numbers (see Kafka's protocol guide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    InvalidTopic = 17,
    NotEnoughReplicas = 19,
    NotEnoughReplicasAfterAppend = 20,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidConfig = 40,
    NotController = 41,
    InvalidRequest = 42,
    KafkaStorageError = 56,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    StaleBrokerEpoch = 77,
    InvalidUpdateVersion = 95,
    DuplicateBrokerRegistration = 101,
    BrokerIdNotRegistered = 102,
    IneligibleReplica = 107,
    NewLeaderElected = 108,
}

impl ErrorCode {
    pub fn code(self) -> i16 {
        self as i16
    }

    /// Kafka's name for the code.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "NONE",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::CorruptMessage => "CORRUPT_MESSAGE",
            ErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::InvalidTopic => "INVALID_TOPIC_EXCEPTION",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorCode::InvalidPartitions => "INVALID_PARTITIONS",
            ErrorCode::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::NotController => "NOT_CONTROLLER",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            ErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            ErrorCode::DuplicateBrokerRegistration => "DUPLICATE_BROKER_REGISTRATION",
            ErrorCode::BrokerIdNotRegistered => "BROKER_ID_NOT_REGISTERED",
            ErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
            ErrorCode::NewLeaderElected => "NEW_LEADER_ELECTED",
        }
    }

    /// Whether a client may retry the same request (Kafka's `RetriableException` family).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::RequestTimedOut
                | ErrorCode::KafkaStorageError
                | ErrorCode::CorruptMessage
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::NotController
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's `acks` setting of a produce request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Acks {
    /// `acks=0`: no answer at all.
    None,
    /// `acks=1`: answered once the leader appended the batch (to its page cache).
    Leader,
    /// `acks=all` (`-1`): answered once the batch is committed. On a single-replica partition
    /// Seedlog commits a batch when the leader's sync covering it completes (see `broker`).
    All,
}

impl Acks {
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Which offset a ListOffsets request asks for.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose record timestamp is at or after this one (milliseconds).
    Timestamp(i64),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// One record batch (v2, as the client encoded it) for one partition.
    Produce {
        partition: u32,
        acks: Acks,
        batch: Vec<u8>,
    },
    /// Whole batches from `offset` up to `max_bytes` (at least one batch if any is available).
    Fetch {
        partition: u32,
        offset: i64,
        max_bytes: u32,
    },
    ListOffsets {
        partition: u32,
        spec: OffsetSpec,
    },
}

impl Request {
    pub fn partition(&self) -> u32 {
        match self {
            Request::Produce { partition, .. }
            | Request::Fetch { partition, .. }
            | Request::ListOffsets { partition, .. } => *partition,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchData {
    /// Whole stored batches, CRC-checked by the broker before they were sent.
    #[serde(with = "serde_bytes")]
    pub batches: Vec<u8>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// The base offset assigned to the batch, or why it was not appended.
    Produce(Result<i64, ErrorCode>),
    Fetch(Result<FetchData, ErrorCode>),
    /// `(offset, timestamp)`; offset -1 when no record is at or after the timestamp.
    ListOffsets(Result<(i64, i64), ErrorCode>),
}

/// Identifies one request of one client, so an answer finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct RequestId {
    /// The node the request came from (a client node in the simulator, a connection in production).
    pub client: u32,
    /// Kafka's correlation id.
    pub correlation_id: u64,
}

/// What travels between nodes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    Request { id: RequestId, request: Request },
    Response { id: RequestId, response: Response },
}

// ---- The cluster's client API: what a broker node of a KRaft cluster answers ----
//
// One partition per request: the production driver splits a multi-partition Kafka request into
// these and joins the answers in the request's order (translation, not decision); the simulator's
// clients send them as they are. A follower's replica fetch is a `Fetch` with `replica` set, as in
// Kafka. Admin requests are forwarded by the node to the active controller.

use crate::metadata::{BrokerId, ControllerRequest, ControllerResponse, Endpoint, TopicId};

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchRequest {
    pub topic: String,
    pub partition: u32,
    /// The next offset the fetcher wants.
    pub fetch_offset: i64,
    /// A follower's replica fetch: its broker id and broker epoch. `None` for a consumer.
    pub replica: Option<(BrokerId, i64)>,
    /// The leader epoch the fetcher believes current (KIP-320); `None` skips the check.
    pub current_leader_epoch: Option<i32>,
    /// The epoch of the last record the fetcher holds (KIP-595/KIP-320 diverging-epoch check).
    pub last_fetched_epoch: Option<i32>,
    pub max_bytes: u32,
    /// Long poll: answer when `min_bytes` are available or after `max_wait_ms`.
    pub max_wait_ms: u32,
    pub min_bytes: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientRequest {
    /// Brokers, the controller and topics (every topic when `None`).
    Metadata {
        topics: Option<Vec<String>>,
    },
    /// One v2 batch for one partition, as the client encoded it.
    Produce {
        topic: String,
        partition: u32,
        acks: Acks,
        timeout_ms: u32,
        #[serde(with = "serde_bytes")]
        batch: Vec<u8>,
    },
    Fetch(FetchRequest),
    ListOffsets {
        topic: String,
        partition: u32,
        current_leader_epoch: Option<i32>,
        spec: OffsetSpec,
    },
    /// The end offset of `leader_epoch` in the leader's log (KIP-101/KIP-279).
    OffsetForLeaderEpoch {
        topic: String,
        partition: u32,
        current_leader_epoch: Option<i32>,
        leader_epoch: i32,
    },
    /// A topic's configs: its own overrides and the broker defaults.
    DescribeConfigs {
        topic: String,
    },
    DescribeCluster,
    /// An admin request the node forwards to the active controller (CreateTopics, DeleteTopics, ...).
    Controller(ControllerRequest),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerView {
    pub broker_id: BrokerId,
    pub endpoints: Vec<Endpoint>,
    pub fenced: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionView {
    pub partition: u32,
    /// `LEADER_NOT_AVAILABLE`-like state is `leader: None`.
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicView {
    pub name: String,
    /// `UNKNOWN_TOPIC_OR_PARTITION` for a requested topic that does not exist.
    pub error: ErrorCode,
    pub topic_id: Option<TopicId>,
    pub partitions: Vec<PartitionView>,
}

/// The cluster as this broker's applied metadata image shows it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterView {
    pub cluster_id: String,
    /// The quorum leader, when known (KRaft answers a broker id here; clients only log it).
    pub controller_id: Option<BrokerId>,
    /// Unfenced brokers only (fenced ones cannot serve).
    pub brokers: Vec<BrokerView>,
    pub topics: Vec<TopicView>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProduceOk {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionFetch {
    pub error: ErrorCode,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Set when the fetcher's last fetched epoch diverges from the leader's log: `(epoch, end
    /// offset)` of the largest epoch not above the fetcher's, and the fetcher must truncate there.
    pub diverging_epoch: Option<(i32, i64)>,
    /// On NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH: the leader this broker knows (KIP-951).
    pub current_leader: Option<(BrokerId, i32)>,
    /// Whole stored batches, CRC-checked before they were sent, exactly as stored.
    #[serde(with = "serde_bytes")]
    pub records: Vec<u8>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochEndOffset {
    /// The largest epoch at or below the requested one; -1 with offset -1 when none is.
    pub leader_epoch: i32,
    pub end_offset: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    /// The value is the broker's default, not an override of the topic.
    pub is_default: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientResponse {
    Metadata(ClusterView),
    Produce(Result<ProduceOk, ErrorCode>),
    Fetch(PartitionFetch),
    ListOffsets(Result<ListedOffset, ErrorCode>),
    OffsetForLeaderEpoch(Result<EpochEndOffset, ErrorCode>),
    DescribeConfigs(Result<Vec<ConfigEntry>, ErrorCode>),
    DescribeCluster(ClusterView),
    Controller(ControllerResponse),
    /// The answer to Metadata or DescribeCluster from a node that serves no clients (yet): a
    /// broker that has not caught up with the metadata log and been unfenced, or a controller-only
    /// node. Kafka has no client listener open on either; Metadata has no error code of its own,
    /// and an empty broker list would make clients forget every broker they knew. The production
    /// driver closes the connection (the client reconnects or asks another broker, as for a broker
    /// that is down); a simulated client treats it as a failed request.
    NotServing,
}

/// Topic configs with Kafka's names that Seedlog understands, and their broker defaults' keys.
pub mod topic_config {
    pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
    pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";
    /// Seedlog's flush policy: `always` (sync every batch before it counts toward the high
    /// watermark), `interval` (sync every `flush.ms`), `never` (Kafka's default: rely on replication).
    pub const FLUSH_POLICY: &str = "seedlog.flush.policy";
    pub const FLUSH_MS: &str = "flush.ms";
    pub const RETENTION_MS: &str = "retention.ms";
    pub const RETENTION_BYTES: &str = "retention.bytes";
    pub const SEGMENT_BYTES: &str = "segment.bytes";
    pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";

    /// Every topic config Seedlog accepts.
    pub const ALL: [&str; 8] = [
        MIN_INSYNC_REPLICAS,
        UNCLEAN_LEADER_ELECTION,
        FLUSH_POLICY,
        FLUSH_MS,
        RETENTION_MS,
        RETENTION_BYTES,
        SEGMENT_BYTES,
        MAX_MESSAGE_BYTES,
    ];
}
