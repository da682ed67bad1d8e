//! A cluster node: a KRaft process with the controller role, the broker role, or both (combined
//! mode). It ties the quorum (voter or observer), the active controller's logic and the broker's
//! lifecycle (registration, heartbeats, the local metadata image) together.
//!
//! The driver's contract (as for [`crate::broker::Broker`]): inputs are [`Node::start`] once per
//! incarnation, then [`Node::handle_message`], [`Node::handle_sync_complete`], [`Node::handle_timer`]
//! (when `now` reaches [`Node::next_deadline`]) and [`Node::begin_shutdown`]. After every input the
//! driver MUST drain [`Node::poll_effect`] and execute the effects in order; a [`NodeEffect::Sync`]
//! covers the file as it is when the effect is polled. After [`NodeEffect::Halt`] or
//! [`NodeEffect::ShutdownComplete`] the node emits nothing more and the driver MUST stop calling it.
//!
//! What the node does with each part:
//! - **The quorum.** Every node has one: a voter iff it has the controller role (the configured
//!   `quorum.voters` must agree), an observer otherwise. Its effects become node effects; every
//!   committed entry is decoded and applied to the committed [`MetadataImage`] (a record that does
//!   not decode or apply halts the node: a corrupt log or a controller bug, never a panic), and
//!   every `snapshot_every_records` applied records the image is handed back as a snapshot.
//! - **The active controller.** The quorum leader is the controller. It activates a
//!   [`Controller`] from the committed image only once the entry that opened its epoch has
//!   committed (as KRaft does): everything earlier is then committed and applied. Until then, and
//!   on every node that is not the active controller, controller requests get `NOT_CONTROLLER`.
//!   A decision's records are proposed as one batch, replayed into the controller at the offsets
//!   they got, and the answer is held until the high watermark passes the batch's last offset.
//!   An answer with no records waits for everything this controller proposed before it, so no
//!   answer ever reflects an uncommitted record. Losing leadership drops the controller and fails
//!   every held answer with `NOT_CONTROLLER`; a proposal the quorum refuses is answered
//!   `NOT_CONTROLLER` (not leader) or `KAFKA_STORAGE_ERROR` (then the node halts: its metadata log
//!   cannot be written).
//! - **The broker role.** It draws an incarnation id at start, registers with the quorum leader
//!   once it knows one, then heartbeats every `heartbeat_interval_ms` with the end of its applied
//!   image. `NOT_CONTROLLER`, `DUPLICATE_BROKER_REGISTRATION` and silence (a request timeout) are
//!   retried after a short backoff; `STALE_BROKER_EPOCH` and `BROKER_ID_NOT_REGISTERED` make it
//!   register again. A combined node talks to its own controller through an internal loopback,
//!   never through the network.
//! - **Serving clients.** A broker serves Kafka clients only once this incarnation has caught up
//!   with the metadata log and been unfenced: its applied image holds its own registration (this
//!   incarnation's) unfenced, so every Metadata answer names at least this broker and the image is
//!   past the unfencing, which the controller decides only for a broker that applied its own
//!   registration. Kafka's broker opens its client listener only then (BrokerServer waits for the
//!   catch-up and the unfencing first). [`Node::serves_clients`] says so, and once true it stays
//!   true for the incarnation: the production driver opens the client listener then. A client
//!   request that reaches the node earlier gets a retriable error, never silence and never a
//!   Metadata answer without brokers (see [`not_serving_response`]).
//! - **Controlled shutdown.** The broker role heartbeats with `want_shutdown` until the controller
//!   says `shutdown_ready` or [`CONTROLLED_SHUTDOWN_TIMEOUT_MS`] passes; then a quorum leader
//!   resigns (so the voters elect a successor at once) and the node emits `ShutdownComplete`.

use std::collections::{BTreeMap, VecDeque};

use crate::env::{Env, StorageError, Time};
use crate::metadata::{
    decode_record, encode_record, fnv1a64, Controller, ControllerConfig, ControllerRequest,
    ControllerResponse, Endpoint, MetadataImage, MetadataRecord, TopicId,
};
use crate::protocol::{ClientRequest, ClientResponse, ErrorCode};
use crate::quorum::{
    Committed, NodeId, ProposeError, Quorum, QuorumConfig, QuorumEffect, QuorumError, QuorumMessage,
    QuorumRecovery, QuorumRole, QuorumSyncToken, SnapshotId,
};
use crate::replica::{Replica, ReplicationConfig};

/// A controlled shutdown that has not been acknowledged within this long completes anyway.
pub const CONTROLLED_SHUTDOWN_TIMEOUT_MS: u64 = 5_000;
/// How long the broker role waits before retrying a refused registration or heartbeat.
pub const RETRY_BACKOFF_MS: u64 = 100;
/// Rounds of internal (loopback) traffic handled within one input; the rest waits for the next.
const LOOPBACK_ROUNDS_MAX: u32 = 16;

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
    /// Take a snapshot of the metadata image every this many applied records (0: never).
    pub snapshot_every_records: u64,
    /// The cluster's id (`cluster.id`), answered in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// The broker role's partition replicas.
    pub replication: ReplicationConfig,
}

/// A request from an admin client (or a broker) to the controller, with its correlation id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeMessage {
    Quorum(QuorumMessage),
    ControllerRequest {
        correlation_id: u64,
        request: ControllerRequest,
    },
    ControllerResponse {
        correlation_id: u64,
        response: ControllerResponse,
    },
    /// A Kafka client's request (or a follower's replica fetch) to the broker role.
    Client {
        correlation_id: u64,
        request: ClientRequest,
    },
    ClientResponse {
        correlation_id: u64,
        response: ClientResponse,
    },
}

/// Names one requested sync: the quorum's, or one partition replica's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeSyncToken {
    Quorum(QuorumSyncToken),
    Replica { topic_id: TopicId, partition: u32, token: u64 },
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// Controlled shutdown in progress; it completes by this time at the latest.
    ShuttingDown {
        deadline: Time,
    },
    /// The last step of a shutdown: the partition replicas sync and close their logs.
    ClosingReplicas,
    /// Halted or shut down: nothing more is emitted.
    Stopped,
}

/// An answer held until the high watermark passes an offset.
#[derive(Debug)]
struct HeldAnswer {
    to: NodeId,
    correlation_id: u64,
    response: ControllerResponse,
}

#[derive(Debug)]
struct ActiveController {
    controller: Controller,
    /// The quorum epoch it was activated in.
    epoch: i32,
    /// Answers by the offset that must commit first (released when the HW exceeds the key).
    held: BTreeMap<i64, Vec<HeldAnswer>>,
    /// The last offset this controller proposed.
    last_proposed_offset: Option<i64>,
}

/// A request of the broker role waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    correlation_id: u64,
    to: NodeId,
    sent_at: Time,
    deadline: Time,
}

#[derive(Debug)]
struct BrokerRole {
    incarnation_id: u64,
    /// `(broker_epoch, fenced)` as the controller last said.
    registration: Option<(i64, bool)>,
    in_flight: Option<InFlight>,
    /// When the next registration or heartbeat may go out.
    next_attempt: Time,
    next_correlation_id: u64,
    want_shutdown: bool,
    shutdown_ready: bool,
}

#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    quorum: Quorum,
    recovery: QuorumRecovery,
    image: MetadataImage,
    records_since_snapshot: u64,
    applied: Vec<Applied>,
    effects: VecDeque<NodeEffect>,
    state: State,
    /// The time of the input being handled (or the last one).
    now: Time,
    active: Option<ActiveController>,
    broker: Option<BrokerRole>,
    /// Messages between this node's own roles, delivered without the network.
    loopback: VecDeque<NodeMessage>,
    /// Admin requests forwarded to the controller, by the forwarded correlation id.
    forwarded: BTreeMap<u64, client::Forwarded>,
    next_forward_id: u64,
    replicas: BTreeMap<replicas::ReplicaKey, Replica>,
    /// The image offset the replicas were last brought in line with.
    replicas_synced_to: Option<i64>,
    /// The broker epoch the replicas were last given.
    replicas_broker_epoch: Option<i64>,
    /// This incarnation was unfenced at least once: its replicas may take roles.
    replicas_unfenced_once: bool,
    /// This incarnation caught up with the metadata log and was unfenced: it serves clients.
    serving_clients: bool,
    fetches: BTreeMap<u64, replicas::FetchInFlight>,
    alters: BTreeMap<u64, replicas::AlterInFlight>,
    next_replica_correlation_id: u64,
}

impl Node {
    /// Opens the quorum's state, snapshot and log. The broker role draws its incarnation id from
    /// `env.rng` and registers once it knows the controller leader.
    pub fn start(env: &mut Env<'_>, config: NodeConfig) -> Result<Node, StartError> {
        if config.quorum.node_id != config.node_id {
            return Err(StartError::Quorum(format!(
                "quorum node id {} is not the node id {}",
                config.quorum.node_id, config.node_id
            )));
        }
        if config.controller != config.quorum.voters.contains(&config.node_id) {
            return Err(StartError::Quorum(format!(
                "node {} has controller role {} but the voters are {:?}",
                config.node_id, config.controller, config.quorum.voters
            )));
        }
        let (quorum, recovery) = Quorum::open(env, config.quorum.clone()).map_err(|error| match error {
            QuorumError::Unrecoverable(reason) => StartError::Quorum(reason),
        })?;
        let broker = config.broker.then(|| BrokerRole {
            incarnation_id: env.rng.next_u64(),
            registration: None,
            in_flight: None,
            next_attempt: env.now,
            next_correlation_id: 0,
            want_shutdown: false,
            shutdown_ready: false,
        });
        let mut node = Node {
            config,
            quorum,
            recovery,
            image: MetadataImage::default(),
            records_since_snapshot: 0,
            applied: Vec::new(),
            effects: VecDeque::new(),
            state: State::Running,
            now: env.now,
            active: None,
            broker,
            loopback: VecDeque::new(),
            forwarded: BTreeMap::new(),
            next_forward_id: 0,
            replicas: BTreeMap::new(),
            replicas_synced_to: None,
            replicas_broker_epoch: None,
            replicas_unfenced_once: false,
            serving_clients: false,
            fetches: BTreeMap::new(),
            alters: BTreeMap::new(),
            next_replica_correlation_id: 0,
        };
        node.pump(env);
        Ok(node)
    }

    // ---- inputs ----

    pub fn handle_message(&mut self, env: &mut Env<'_>, from: NodeId, message: NodeMessage) {
        if matches!(self.state, State::Stopped | State::ClosingReplicas) {
            return;
        }
        self.now = env.now;
        self.dispatch(env, from, message);
        self.pump(env);
    }

    pub fn handle_sync_complete(
        &mut self,
        env: &mut Env<'_>,
        token: NodeSyncToken,
        result: Result<(), StorageError>,
    ) {
        if self.state == State::Stopped {
            return;
        }
        self.now = env.now;
        match token {
            NodeSyncToken::Quorum(token) => {
                if self.state != State::ClosingReplicas {
                    self.quorum.handle_sync_complete(env, token, result);
                }
            }
            NodeSyncToken::Replica { topic_id, partition, token } => {
                self.on_replica_sync_complete(env, (topic_id, partition), token, result);
            }
        }
        if self.state == State::ClosingReplicas {
            self.progress_closing(env);
            return;
        }
        self.pump(env);
    }

    pub fn handle_timer(&mut self, env: &mut Env<'_>) {
        if matches!(self.state, State::Stopped | State::ClosingReplicas) {
            return;
        }
        self.now = env.now;
        self.replica_timers(env);
        if self.quorum.next_deadline().is_some_and(|deadline| deadline <= env.now) {
            self.quorum.handle_timer(env);
            self.drain_quorum(env);
        }
        let controller_due = self
            .active
            .as_ref()
            .and_then(|active| active.controller.next_deadline())
            .is_some_and(|deadline| deadline <= env.now);
        if controller_due && self.state != State::Stopped {
            self.update_controller(env);
            if let Some(active) = self.active.as_mut() {
                let records = active.controller.handle_timer(env.now, self.quorum.log_end_offset());
                self.propose(env, records, None);
            }
        }
        self.pump(env);
    }

    /// Controlled shutdown: the broker role asks the controller to move its leaderships away and
    /// waits for `shutdown_ready` (bounded by a timeout); a leader of the quorum resigns; then
    /// `ShutdownComplete`.
    pub fn begin_shutdown(&mut self, env: &mut Env<'_>) {
        if self.state != State::Running {
            return;
        }
        self.now = env.now;
        let registered = self.broker.as_ref().is_some_and(|broker| broker.registration.is_some());
        match self.broker.as_mut() {
            Some(broker) if registered => {
                broker.want_shutdown = true;
                broker.next_attempt = env.now;
                if broker.in_flight.is_some_and(|in_flight| in_flight.to != self.config.node_id) {
                    // Send the shutdown heartbeat now rather than after the current one returns.
                    broker.in_flight = None;
                }
                self.state =
                    State::ShuttingDown { deadline: env.now.plus_millis(CONTROLLED_SHUTDOWN_TIMEOUT_MS) };
            }
            _ => self.finish_shutdown(env),
        }
        self.pump(env);
    }

    // ---- outputs ----

    pub fn next_deadline(&self) -> Option<Time> {
        if matches!(self.state, State::Stopped | State::ClosingReplicas) {
            return None;
        }
        if !self.loopback.is_empty() {
            return Some(self.now);
        }
        let controller = self.active.as_ref().and_then(|active| active.controller.next_deadline());
        let shutdown = match self.state {
            State::ShuttingDown { deadline } => Some(deadline),
            State::Running | State::Stopped | State::ClosingReplicas => None,
        };
        let broker = self.broker.as_ref().and_then(|broker| match broker.in_flight {
            Some(in_flight) => Some(in_flight.deadline),
            None => self.quorum.leader().map(|_| broker.next_attempt),
        });
        [
            self.quorum.next_deadline(),
            controller,
            shutdown,
            broker,
            self.forwarded_deadline(),
            self.replicas_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_effect(&mut self) -> Option<NodeEffect> {
        self.effects.pop_front()
    }

    /// Everything applied since the last call.
    pub fn take_applied(&mut self) -> Vec<Applied> {
        std::mem::take(&mut self.applied)
    }

    // ---- getters ----

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// What the quorum recovered when this incarnation opened it.
    pub fn recovery(&self) -> &QuorumRecovery {
        &self.recovery
    }

    /// The image of every committed record this node applied.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The active controller's latest image (committed plus its own uncommitted records).
    pub fn controller_image(&self) -> Option<&MetadataImage> {
        self.active.as_ref().map(|active| active.controller.image())
    }

    /// The broker role's current registration: `(broker_epoch, fenced)` as the controller last said.
    pub fn broker_state(&self) -> Option<(i64, bool)> {
        self.broker.as_ref().and_then(|broker| broker.registration)
    }

    /// The broker role's incarnation id (drawn at start).
    pub fn incarnation_id(&self) -> Option<u64> {
        self.broker.as_ref().map(|broker| broker.incarnation_id)
    }

    /// Whether the broker role serves Kafka clients: this incarnation's registration is in the
    /// applied image, unfenced (so the image caught up past its unfencing). Once true it stays true
    /// until the node stops. The driver MUST NOT let clients in before: it opens the client
    /// listener when this turns true (checked after every input).
    pub fn serves_clients(&self) -> bool {
        self.serving_clients
    }

    pub fn is_active_controller(&self) -> bool {
        self.active.is_some()
    }

    /// Halted or shut down.
    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    // ---- the work after every input ----

    fn dispatch(&mut self, env: &mut Env<'_>, from: NodeId, message: NodeMessage) {
        match message {
            NodeMessage::Quorum(message) => {
                self.quorum.handle_message(env, from, message);
                self.drain_quorum(env);
            }
            NodeMessage::ControllerRequest { correlation_id, request } => {
                self.drain_quorum(env);
                self.update_controller(env);
                self.on_controller_request(env, from, correlation_id, request);
            }
            NodeMessage::ControllerResponse { correlation_id, response } => {
                if correlation_id & client::FORWARDED_BIT != 0 {
                    self.on_forwarded_response(correlation_id, response);
                } else if correlation_id & replicas::ALTER_BIT != 0 {
                    self.on_alter_answer(env, correlation_id, response);
                } else {
                    self.on_controller_response(env.now, correlation_id, response);
                }
            }
            NodeMessage::Client { correlation_id, request } => {
                self.on_client_request(env, from, correlation_id, request);
            }
            NodeMessage::ClientResponse { correlation_id, response } => {
                self.on_fetch_answer(env, correlation_id, response);
            }
        }
    }

    /// Brings every part up to date with the quorum, then lets the broker role act; repeats while
    /// the roles talk to each other through the loopback (bounded).
    fn pump(&mut self, env: &mut Env<'_>) {
        for _ in 0..LOOPBACK_ROUNDS_MAX {
            self.drain_quorum(env);
            self.update_controller(env);
            self.release_answers();
            self.expire_forwarded(env.now);
            self.drive_broker(env.now);
            self.drive_replicas(env);
            self.progress_shutdown(env);
            if self.state == State::Stopped || self.loopback.is_empty() {
                break;
            }
            while let Some(message) = self.loopback.pop_front() {
                let own_id = self.config.node_id;
                self.dispatch(env, own_id, message);
                if self.state == State::Stopped {
                    return;
                }
            }
        }
        self.drain_quorum(env);
        self.update_serving_clients();
    }

    /// Turns quorum effects into node effects and applies what committed.
    fn drain_quorum(&mut self, env: &mut Env<'_>) {
        loop {
            while let Some(effect) = self.quorum.poll_effect() {
                match effect {
                    QuorumEffect::Send { to, message } => {
                        self.push_effect(NodeEffect::Send { to, message: NodeMessage::Quorum(message) })
                    }
                    QuorumEffect::Sync { token, path } => {
                        self.push_effect(NodeEffect::Sync { token: NodeSyncToken::Quorum(token), path })
                    }
                    QuorumEffect::Halt { reason } => self.halt(format!("quorum: {reason}")),
                }
            }
            if self.state == State::Stopped {
                return;
            }
            let mut applied_any = false;
            while let Some(committed) = self.quorum.poll_committed() {
                applied_any = true;
                if let Err(reason) = self.apply_committed(committed) {
                    self.halt(reason);
                    return;
                }
            }
            let every = self.config.snapshot_every_records;
            if every > 0 && self.records_since_snapshot >= every {
                self.records_since_snapshot = 0;
                self.quorum.take_snapshot(env, self.image.end_offset, self.image.encode());
                continue; // its effects
            }
            if !applied_any {
                return;
            }
        }
    }

    fn apply_committed(&mut self, committed: Committed) -> Result<(), String> {
        match committed {
            Committed::Snapshot { id, bytes } => {
                let image = MetadataImage::decode(&bytes)
                    .map_err(|error| format!("metadata snapshot {id:?} is unusable: {error}"))?;
                if image.end_offset != id.end_offset {
                    return Err(format!(
                        "metadata snapshot {id:?} holds an image that ends at {}",
                        image.end_offset
                    ));
                }
                self.applied.push(Applied::Snapshot { id, image_hash: image.hash() });
                self.image = image;
                self.records_since_snapshot = 0;
            }
            Committed::Entry { offset, epoch, payload } => {
                let record = decode_record(&payload)
                    .map_err(|error| format!("metadata entry at offset {offset}: {error}"))?;
                self.image
                    .apply(offset, &record)
                    .map_err(|error| format!("metadata entry at offset {offset} ({record:?}): {error}"))?;
                self.applied.push(Applied::Entry { offset, epoch, payload_hash: fnv1a64(&payload) });
                self.records_since_snapshot += 1;
            }
        }
        Ok(())
    }

    /// Activates the controller once this node leads and its epoch's first entry committed;
    /// drops it when leadership is gone.
    fn update_controller(&mut self, env: &mut Env<'_>) {
        if self.state == State::Stopped {
            return;
        }
        let leading = self.quorum.role() == QuorumRole::Leader;
        let epoch = self.quorum.epoch();
        if self.active.as_ref().is_some_and(|active| !leading || active.epoch != epoch) {
            self.deactivate();
        }
        if leading && self.active.is_none() && self.epoch_start_committed() {
            let controller =
                Controller::activate(env.now, self.image.clone(), self.config.controller_config.clone());
            self.active = Some(ActiveController {
                controller,
                epoch,
                held: BTreeMap::new(),
                last_proposed_offset: None,
            });
        }
    }

    /// Whether the entry that opened the current epoch is committed (so is everything before it).
    fn epoch_start_committed(&self) -> bool {
        let epoch = self.quorum.epoch();
        let entries = self.quorum.entries();
        let first = entries.partition_point(|entry| entry.epoch < epoch);
        entries
            .get(first)
            .is_some_and(|entry| entry.epoch == epoch && entry.offset < self.quorum.high_watermark())
    }

    fn deactivate(&mut self) {
        if let Some(active) = self.active.take() {
            for answer in active.held.into_values().flatten() {
                let response = not_controller(&answer.response);
                self.send(
                    answer.to,
                    NodeMessage::ControllerResponse { correlation_id: answer.correlation_id, response },
                );
            }
        }
    }

    fn on_controller_request(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        correlation_id: u64,
        request: ControllerRequest,
    ) {
        let Some(active) = self.active.as_mut() else {
            let response = request.error_response(ErrorCode::NotController);
            self.send(from, NodeMessage::ControllerResponse { correlation_id, response });
            return;
        };
        let next_offset = self.quorum.log_end_offset();
        let decision = active.controller.handle_request(env.now, env.rng, next_offset, &request);
        let response = decision.response.unwrap_or_else(|| request.error_response(ErrorCode::InvalidRequest));
        self.propose(env, decision.records, Some(HeldAnswer { to: from, correlation_id, response }));
    }

    /// Proposes a decision's records as one batch and holds its answer until they commit.
    fn propose(&mut self, env: &mut Env<'_>, records: Vec<MetadataRecord>, answer: Option<HeldAnswer>) {
        let high_watermark = self.quorum.high_watermark();
        let Some(active) = self.active.as_mut() else {
            if let Some(answer) = answer {
                let response = not_controller(&answer.response);
                self.send(
                    answer.to,
                    NodeMessage::ControllerResponse { correlation_id: answer.correlation_id, response },
                );
            }
            return;
        };
        if records.is_empty() {
            let Some(answer) = answer else { return };
            match active.last_proposed_offset {
                Some(offset) if offset >= high_watermark => {
                    active.held.entry(offset).or_default().push(answer)
                }
                _ => self.send(
                    answer.to,
                    NodeMessage::ControllerResponse {
                        correlation_id: answer.correlation_id,
                        response: answer.response,
                    },
                ),
            }
            return;
        }
        let expected_first = self.quorum.log_end_offset();
        let payloads: Vec<Vec<u8>> = records.iter().map(encode_record).collect();
        match self.quorum.propose(env, &payloads) {
            Ok(last_offset) => {
                let first_offset = last_offset - (records.len() as i64 - 1);
                if first_offset != expected_first {
                    self.halt(format!(
                        "the quorum put a batch at {first_offset}; the controller decided for {expected_first}"
                    ));
                    return;
                }
                for (index, record) in records.iter().enumerate() {
                    if let Err(error) = active.controller.replay(first_offset + index as i64, record) {
                        self.halt(format!("the controller cannot replay its own record {record:?}: {error}"));
                        return;
                    }
                }
                active.last_proposed_offset = Some(last_offset);
                if let Some(answer) = answer {
                    active.held.entry(last_offset).or_default().push(answer);
                }
            }
            Err(ProposeError::NotLeader { .. }) => {
                if let Some(answer) = answer {
                    let response = not_controller(&answer.response);
                    self.send(
                        answer.to,
                        NodeMessage::ControllerResponse { correlation_id: answer.correlation_id, response },
                    );
                }
                self.deactivate();
            }
            Err(ProposeError::Storage(error)) => {
                if let Some(answer) = answer {
                    let response = with_error(&answer.response, ErrorCode::KafkaStorageError);
                    self.send(
                        answer.to,
                        NodeMessage::ControllerResponse { correlation_id: answer.correlation_id, response },
                    );
                }
                self.deactivate();
                self.halt(format!("the metadata log cannot take the controller's records: {error}"));
            }
        }
    }

    /// Sends every held answer whose records are committed.
    fn release_answers(&mut self) {
        let high_watermark = self.quorum.high_watermark();
        let Some(active) = self.active.as_mut() else { return };
        let still_held = active.held.split_off(&high_watermark);
        let released = std::mem::replace(&mut active.held, still_held);
        for answer in released.into_values().flatten() {
            self.send(
                answer.to,
                NodeMessage::ControllerResponse {
                    correlation_id: answer.correlation_id,
                    response: answer.response,
                },
            );
        }
    }

    /// The broker role: time out a silent request, then register or heartbeat when due.
    fn drive_broker(&mut self, now: Time) {
        if self.state == State::Stopped {
            return;
        }
        let leader = self.quorum.leader();
        let own_id = self.config.node_id;
        let Some(broker) = self.broker.as_mut() else { return };
        if let Some(in_flight) = broker.in_flight {
            let leader_moved = leader.is_some_and(|leader| leader != in_flight.to);
            if now < in_flight.deadline && !leader_moved {
                return;
            }
            broker.in_flight = None;
            broker.next_attempt = if leader_moved { now } else { now.max(broker.next_attempt) };
        }
        let Some(leader) = leader else { return };
        if now < broker.next_attempt || broker.shutdown_ready {
            return;
        }
        let request = match broker.registration {
            None => ControllerRequest::RegisterBroker {
                broker_id: own_id,
                incarnation_id: broker.incarnation_id,
                endpoints: self.config.endpoints.clone(),
            },
            Some((broker_epoch, _)) => ControllerRequest::Heartbeat {
                broker_id: own_id,
                broker_epoch,
                metadata_offset: self.image.end_offset,
                want_shutdown: broker.want_shutdown,
            },
        };
        let correlation_id = broker.next_correlation_id;
        broker.next_correlation_id += 1;
        broker.in_flight = Some(InFlight {
            correlation_id,
            to: leader,
            sent_at: now,
            deadline: now.plus_millis(self.config.quorum.request_timeout_ms),
        });
        self.send(leader, NodeMessage::ControllerRequest { correlation_id, request });
    }

    fn on_controller_response(&mut self, now: Time, correlation_id: u64, response: ControllerResponse) {
        let heartbeat_interval_ms = self.config.heartbeat_interval_ms;
        let backoff = now.plus_millis(RETRY_BACKOFF_MS.min(heartbeat_interval_ms));
        let Some(broker) = self.broker.as_mut() else { return };
        let Some(in_flight) = broker.in_flight.filter(|in_flight| in_flight.correlation_id == correlation_id)
        else {
            return; // an answer to a request given up on
        };
        broker.in_flight = None;
        broker.next_attempt = match response {
            ControllerResponse::RegisterBroker(Ok(broker_epoch)) => {
                broker.registration = Some((broker_epoch, true));
                now
            }
            ControllerResponse::Heartbeat(Ok(reply)) => {
                if let Some(registration) = broker.registration.as_mut() {
                    registration.1 = reply.fenced;
                }
                broker.shutdown_ready = broker.want_shutdown && reply.shutdown_ready;
                in_flight.sent_at.plus_millis(heartbeat_interval_ms)
            }
            ControllerResponse::Heartbeat(Err(
                ErrorCode::StaleBrokerEpoch | ErrorCode::BrokerIdNotRegistered,
            )) => {
                broker.registration = None;
                now
            }
            ControllerResponse::RegisterBroker(Err(_)) | ControllerResponse::Heartbeat(Err(_)) => backoff,
            // Answers of kinds the broker role never asks for.
            ControllerResponse::AlterPartition(_)
            | ControllerResponse::CreateTopic(_)
            | ControllerResponse::DeleteTopic(_)
            | ControllerResponse::CreatePartitions(_)
            | ControllerResponse::AlterConfigs(_) => broker.next_attempt,
        };
    }

    fn progress_shutdown(&mut self, env: &mut Env<'_>) {
        let State::ShuttingDown { deadline } = self.state else { return };
        let ready = self.broker.as_ref().is_none_or(|broker| broker.shutdown_ready);
        if ready || env.now >= deadline {
            self.finish_shutdown(env);
        }
    }

    fn finish_shutdown(&mut self, env: &mut Env<'_>) {
        if self.state == State::Stopped {
            return;
        }
        self.deactivate();
        if self.quorum.role() == QuorumRole::Leader {
            self.quorum.resign(env);
        }
        // Flush what the roles still have to say to each other or to the network (the resignation).
        self.loopback.clear();
        while let Some(effect) = self.quorum.poll_effect() {
            match effect {
                QuorumEffect::Send { to, message } => {
                    self.push_effect(NodeEffect::Send { to, message: NodeMessage::Quorum(message) })
                }
                // A sync requested now would complete after the node stopped: nothing waits on it.
                QuorumEffect::Sync { .. } | QuorumEffect::Halt { .. } => {}
            }
        }
        self.state = State::ClosingReplicas;
        self.progress_closing(env);
    }

    /// The replicas close their logs (their syncs still complete); then the shutdown is complete.
    fn progress_closing(&mut self, env: &mut Env<'_>) {
        if self.state != State::ClosingReplicas {
            return;
        }
        if self.close_replicas(env) && self.state == State::ClosingReplicas {
            self.push_effect(NodeEffect::ShutdownComplete);
            self.state = State::Stopped;
        }
    }

    /// Brings the replicas in line with the applied image and the broker's registration, and
    /// turns their effects into node effects.
    fn drive_replicas(&mut self, env: &mut Env<'_>) {
        if self.state == State::Stopped {
            return;
        }
        let broker_epoch = self.broker_state().map(|(epoch, _)| epoch);
        if broker_epoch.is_some() && broker_epoch != self.replicas_broker_epoch {
            self.replicas_broker_epoch = broker_epoch;
            self.update_replica_broker_epochs(env);
        }
        self.sync_replicas(env);
        self.drain_replicas(env.now);
    }

    /// Starts serving clients once the applied image shows this incarnation unfenced.
    fn update_serving_clients(&mut self) {
        if self.serving_clients || self.state != State::Running {
            return;
        }
        let Some(broker) = self.broker.as_ref() else { return };
        self.serving_clients = self.image.brokers.get(&self.config.node_id).is_some_and(|registration| {
            registration.incarnation_id == broker.incarnation_id && !registration.fenced
        });
    }

    fn send(&mut self, to: NodeId, message: NodeMessage) {
        if to == self.config.node_id {
            self.loopback.push_back(message);
        } else {
            self.push_effect(NodeEffect::Send { to, message });
        }
    }

    fn push_effect(&mut self, effect: NodeEffect) {
        if self.state != State::Stopped {
            self.effects.push_back(effect);
        }
    }

    fn halt(&mut self, reason: String) {
        if self.state != State::Stopped {
            self.effects.push_back(NodeEffect::Halt { reason });
            self.state = State::Stopped;
            self.active = None;
            self.loopback.clear();
        }
    }
}

/// The `NOT_CONTROLLER` answer of the same kind as `response`.
fn not_controller(response: &ControllerResponse) -> ControllerResponse {
    with_error(response, ErrorCode::NotController)
}

fn with_error(response: &ControllerResponse, error: ErrorCode) -> ControllerResponse {
    response.with_error(error)
}

mod client;
mod replicas;
#[cfg(test)]
mod tests;

pub use client::{error_response, not_serving_response};
pub use replicas::{replica_settings, ReplicaKey};
