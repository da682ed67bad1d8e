//! A cluster node: a KRaft process with the controller role, the broker role, or both (combined
//! mode). It ties the quorum (voter or observer), the active controller's logic and the broker's
//! lifecycle (registration, heartbeats, the local metadata image) together.
//!
//! API SKELETON (issue 3) — filled in on the `meta` branch.

use crate::env::{Env, StorageError, Time};
use crate::metadata::{ControllerConfig, ControllerRequest, ControllerResponse, Endpoint, MetadataImage};
use crate::quorum::{NodeId, Quorum, QuorumConfig, QuorumMessage, QuorumSyncToken, SnapshotId};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeConfig {
    pub node_id: NodeId,
    /// `process.roles` contains `controller`: this node is one of `quorum.voters`.
    pub controller: bool,
    /// `process.roles` contains `broker`: it registers, heartbeats and follows the metadata log.
    pub broker: bool,
    pub quorum: QuorumConfig,
    pub controller_config: ControllerConfig,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    pub endpoints: Vec<Endpoint>,
    /// Take a snapshot of the metadata image every this many applied records.
    pub snapshot_every_records: u64,
}

/// A request from an admin client (or a broker) to the controller, with its correlation id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeMessage {
    Quorum(QuorumMessage),
    ControllerRequest { correlation_id: u64, request: ControllerRequest },
    ControllerResponse { correlation_id: u64, response: ControllerResponse },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct NodeSyncToken(pub QuorumSyncToken);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEffect {
    Send {
        to: NodeId,
        message: NodeMessage,
    },
    Sync {
        token: NodeSyncToken,
        path: String,
    },
    Halt {
        reason: String,
    },
    /// A controlled shutdown finished: the driver stops the node.
    ShutdownComplete,
}

/// What the node applied, drained by the simulator after every step for StateMachineSafety.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Snapshot { id: SnapshotId, image_hash: u64 },
    Entry { offset: i64, epoch: i32, payload_hash: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    Quorum(String),
}

#[derive(Debug)]
pub struct Node {
    _private: (),
}

#[allow(unused_variables)]
impl Node {
    /// Opens the quorum's state, snapshot and log. The broker role draws its incarnation id from
    /// `env.rng` and registers once it knows the controller leader.
    pub fn start(env: &mut Env<'_>, config: NodeConfig) -> Result<Node, StartError> {
        todo!()
    }
    pub fn handle_message(&mut self, env: &mut Env<'_>, from: NodeId, message: NodeMessage) {
        todo!()
    }
    pub fn handle_sync_complete(
        &mut self,
        env: &mut Env<'_>,
        token: NodeSyncToken,
        result: Result<(), StorageError>,
    ) {
        todo!()
    }
    pub fn handle_timer(&mut self, env: &mut Env<'_>) {
        todo!()
    }
    pub fn next_deadline(&self) -> Option<Time> {
        todo!()
    }
    /// Controlled shutdown: the broker role asks the controller to move its leaderships away and
    /// waits for `shutdown_ready` (bounded by a timeout); a leader of the quorum resigns; then
    /// `ShutdownComplete`.
    pub fn begin_shutdown(&mut self, env: &mut Env<'_>) {
        todo!()
    }
    pub fn poll_effect(&mut self) -> Option<NodeEffect> {
        todo!()
    }
    /// Everything applied since the last call.
    pub fn take_applied(&mut self) -> Vec<Applied> {
        todo!()
    }
    pub fn quorum(&self) -> &Quorum {
        todo!()
    }
    /// The image of every committed record this node applied.
    pub fn image(&self) -> &MetadataImage {
        todo!()
    }
    /// The broker role's current registration: `(broker_epoch, fenced)` as the controller last said.
    pub fn broker_state(&self) -> Option<(i64, bool)> {
        todo!()
    }
    pub fn is_active_controller(&self) -> bool {
        todo!()
    }
}
