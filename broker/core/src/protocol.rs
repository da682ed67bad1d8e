//! Typed messages between clients and brokers, and Kafka's error codes.
//!
//! The simulator carries these values between nodes as they are; the production driver translates
//! Kafka's wire protocol into them (a later issue). They are deliberately Kafka-shaped: a produce
//! request carries one record batch exactly as a client encoded it, a fetch answer carries whole
//! stored batches, and every failure is one of Kafka's error codes.

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
