//! The cluster metadata: the records of the metadata log, the image they build, replica placement,
//! and the controller's decisions.
//!
//! API SKELETON (issue 3) — filled in on the `meta` branch.

use std::collections::BTreeMap;

use crate::env::Time;
use crate::protocol::ErrorCode;

pub type BrokerId = u32;

/// Kafka's topic id: 16 random bytes drawn by the controller from `env.rng`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct TopicId(pub [u8; 16]);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// One record of the metadata log (KRaft's record types, in Seedlog's own encoding).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registered. `broker_epoch` is the offset of this record (KRaft's rule), so a
    /// restarted broker always gets a larger one. A new registration starts fenced.
    RegisterBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
        incarnation_id: u64,
        endpoints: Vec<Endpoint>,
    },
    FenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// The broker asked for a controlled shutdown (it stays registered; leadership moves away).
    BrokerShuttingDown {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    Topic {
        name: String,
        topic_id: TopicId,
        configs: BTreeMap<String, String>,
    },
    /// A partition's first state: replicas in preference order, ISR = replicas, leader = first
    /// unfenced preferred replica, leader epoch 0, partition epoch 0.
    Partition {
        topic_id: TopicId,
        partition: u32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        leader: Option<BrokerId>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change to a partition: every change bumps the partition epoch; a change of leader (or a
    /// leader election of any kind) bumps the leader epoch.
    PartitionChange {
        topic_id: TopicId,
        partition: u32,
        leader: Option<BrokerId>,
        isr: Vec<BrokerId>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    RemoveTopic {
        topic_id: TopicId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub incarnation_id: u64,
    pub endpoints: Vec<Endpoint>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: TopicId,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<u32, PartitionState>,
}

/// The state the metadata log builds: every broker, topic and partition. Applying the same
/// records in the same order gives the same image (and the same [`MetadataImage::hash`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetadataImage {
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub topics: BTreeMap<TopicId, TopicImage>,
    pub topics_by_name: BTreeMap<String, TopicId>,
    /// The offset after the last applied record (the snapshot's `end_offset`).
    pub end_offset: i64,
}

/// A record that cannot apply to the image (a controller bug, or a corrupt log): the node halts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError(pub String);

#[allow(unused_variables)]
impl MetadataImage {
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ImageError> {
        todo!()
    }
    /// fnv1a-64 over the canonical encoding.
    pub fn hash(&self) -> u64 {
        todo!()
    }
    pub fn encode(&self) -> Vec<u8> {
        todo!()
    }
    pub fn decode(bytes: &[u8]) -> Result<MetadataImage, ImageError> {
        todo!()
    }
}

pub fn encode_record(record: &MetadataRecord) -> Vec<u8> {
    let _ = record;
    todo!()
}

pub fn decode_record(bytes: &[u8]) -> Result<MetadataRecord, ImageError> {
    let _ = bytes;
    todo!()
}

/// Requests to the active controller (KRaft's BrokerRegistration, BrokerHeartbeat, AlterPartition,
/// CreateTopics, DeleteTopics). The node glue answers them once the records they produced commit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerRequest {
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: u64,
        endpoints: Vec<Endpoint>,
    },
    Heartbeat {
        broker_id: BrokerId,
        broker_epoch: i64,
        /// The broker's applied metadata offset (end, exclusive): it is unfenced once caught up.
        metadata_offset: i64,
        want_shutdown: bool,
    },
    AlterPartition {
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: TopicId,
        partition: u32,
        leader_epoch: i32,
        partition_epoch: i32,
        /// The proposed ISR, each member with the broker epoch the leader saw it fetch with.
        new_isr: Vec<(BrokerId, i64)>,
    },
    CreateTopic {
        name: String,
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerResponse {
    RegisterBroker(Result<i64, ErrorCode>),
    Heartbeat(Result<HeartbeatReply, ErrorCode>),
    AlterPartition(Result<PartitionState, ErrorCode>),
    CreateTopic(Result<TopicId, ErrorCode>),
    DeleteTopic(Result<TopicId, ErrorCode>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatReply {
    pub fenced: bool,
    /// Controlled shutdown: the broker leads nothing any more and may stop.
    pub shutdown_ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker whose heartbeats stop for this long is fenced.
    pub broker_session_timeout_ms: u64,
    pub default_replication_factor: u16,
}

/// What the active controller decided for one request or timer: records to propose, and (for a
/// request) the answer to give once they are committed — or at once, when nothing is proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub response: Option<ControllerResponse>,
}

/// The active controller's logic: pure decisions over the latest image (committed plus its own
/// uncommitted records) and the in-memory broker leases.
#[derive(Debug)]
pub struct Controller {
    _private: (),
}

#[allow(unused_variables)]
impl Controller {
    /// Becoming active: starts from the committed image; every broker's lease starts at `now`.
    pub fn activate(now: Time, image: MetadataImage, config: ControllerConfig) -> Controller {
        todo!()
    }
    /// `rng` draws topic ids. `offset` is where the first proposed record will land (for broker epochs).
    pub fn handle_request(
        &mut self,
        now: Time,
        rng: &mut dyn rand_core::RngCore,
        next_offset: i64,
        request: &ControllerRequest,
    ) -> Decision {
        todo!()
    }
    /// Lease expiry: fence brokers whose heartbeats stopped, and move their leaderships.
    pub fn handle_timer(&mut self, now: Time, next_offset: i64) -> Vec<MetadataRecord> {
        todo!()
    }
    pub fn next_deadline(&self) -> Option<Time> {
        todo!()
    }
    /// Records it proposed were appended at these offsets: fold them into the latest image.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ImageError> {
        todo!()
    }
}
