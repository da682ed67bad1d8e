//! The broker role's partition replicas: created and given their roles from the applied metadata
//! image, fed client requests and the leader's fetch answers, their ISR proposals sent to the
//! controller, their effects turned into node effects.

use std::collections::BTreeMap;

use super::{client::error_response, Node, NodeEffect, NodeMessage, NodeSyncToken, State};
use crate::env::{Env, StorageError, Time};
use crate::metadata::{ControllerRequest, ControllerResponse, TopicId, TopicImage};
use crate::protocol::{topic_config, ClientRequest, ClientResponse, ErrorCode};
use crate::quorum::NodeId;
use crate::replica::{FlushPolicy, Replica, ReplicaEffect, ReplicaSettings, ReplicationConfig};

/// Correlation ids of the replicas' AlterPartition requests live above this bit.
pub(super) const ALTER_BIT: u64 = 1 << 62;

/// A partition replica's key: the topic's id and the partition's index.
pub type ReplicaKey = (TopicId, u32);

/// A follower's fetch in flight.
#[derive(Clone, Copy, Debug)]
pub(super) struct FetchInFlight {
    pub key: ReplicaKey,
    pub fetch_id: u64,
    pub deadline: Time,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct AlterInFlight {
    pub key: ReplicaKey,
    pub deadline: Time,
}

impl Node {
    /// Every partition replica this broker holds.
    pub fn replicas(&self) -> &BTreeMap<ReplicaKey, Replica> {
        &self.replicas
    }

    /// Opens replicas for the partitions the image assigns to this broker, hands each its state,
    /// and deletes the replicas of deleted topics. Runs when the applied image moved.
    pub(super) fn sync_replicas(&mut self, env: &mut Env<'_>) {
        if self.state != State::Running || self.broker.is_none() {
            return;
        }
        // A restarted broker takes no role before this incarnation is registered and unfenced:
        // until then the image may still name it leader under its previous registration, and a
        // replica that lost its unsynced tail must not lead (or serve) with what it has left.
        // The controller moves leaderships away from the new registration first.
        if self.broker_state().is_none_or(|(_, fenced)| fenced) && !self.replicas_unfenced_once {
            return;
        }
        self.replicas_unfenced_once = true;
        if self.replicas_synced_to == Some(self.image.end_offset) {
            return;
        }
        self.replicas_synced_to = Some(self.image.end_offset);
        let own_id = self.config.node_id;
        let gone: Vec<ReplicaKey> = self
            .replicas
            .keys()
            .copied()
            .filter(|(topic_id, partition)| self.image.partition(*topic_id, *partition).is_none())
            .collect();
        for key in gone {
            if let Some(replica) = self.replicas.remove(&key) {
                let effects = replica.delete(env);
                self.execute_replica_effects(env.now, key, effects);
            }
        }
        let assigned: Vec<ReplicaKey> = self
            .image
            .topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .filter(|(_, state)| state.replicas.contains(&own_id))
                    .map(|(partition, _)| (topic.topic_id, *partition))
            })
            .collect();
        let broker_epoch = self.broker_state().map(|(epoch, _)| epoch);
        for key in assigned {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.replicas.entry(key) {
                let Some(topic) = self.image.topics.get(&key.0) else { continue };
                let settings = replica_settings(&self.config.replication, topic);
                match Replica::open(env, &topic.name, key.0, key.1, own_id, settings) {
                    Ok((replica, _report)) => {
                        slot.insert(replica);
                    }
                    Err(error) => {
                        let reason =
                            format!("the replica of {}-{} cannot be opened: {error:?}", topic.name, key.1);
                        self.halt(reason);
                        return;
                    }
                }
            }
            let Some(state) = self.image.partition(key.0, key.1).cloned() else { continue };
            let Some(replica) = self.replicas.get_mut(&key) else { continue };
            if let Some(broker_epoch) = broker_epoch {
                replica.set_broker_epoch(env, broker_epoch);
            }
            replica.update_state(env, &state);
        }
    }

    /// The broker's registration changed: its replicas fetch and propose with the new epoch.
    pub(super) fn update_replica_broker_epochs(&mut self, env: &mut Env<'_>) {
        let Some((broker_epoch, _)) = self.broker_state() else { return };
        for replica in self.replicas.values_mut() {
            replica.set_broker_epoch(env, broker_epoch);
        }
    }

    /// Produce, Fetch, ListOffsets and OffsetForLeaderEpoch: the partition replicas' work.
    /// Answers `None` when the replica answers itself (now or later, through its effects).
    pub(super) fn on_partition_request(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        correlation_id: u64,
        request: ClientRequest,
    ) -> Option<ClientResponse> {
        let (topic, partition) = match &request {
            ClientRequest::Produce { topic, partition, .. }
            | ClientRequest::ListOffsets { topic, partition, .. }
            | ClientRequest::OffsetForLeaderEpoch { topic, partition, .. } => (topic.as_str(), *partition),
            ClientRequest::Fetch(fetch) => (fetch.topic.as_str(), fetch.partition),
            _ => return Some(error_response(&request, ErrorCode::InvalidRequest)),
        };
        let Some(key) = self.image.topics_by_name.get(topic).map(|topic_id| (*topic_id, partition)) else {
            return self.partition_error(&request, ErrorCode::UnknownTopicOrPartition);
        };
        if self.image.partition(key.0, key.1).is_none() {
            return self.partition_error(&request, ErrorCode::UnknownTopicOrPartition);
        }
        let Some(replica) = self.replicas.get_mut(&key) else {
            return self.partition_error(&request, ErrorCode::NotLeaderOrFollower);
        };
        let response = match request {
            ClientRequest::Produce { acks, timeout_ms, batch, .. } => {
                replica.handle_produce(env, from, correlation_id, acks, timeout_ms, &batch);
                None
            }
            ClientRequest::Fetch(fetch) => {
                replica.handle_fetch(env, from, correlation_id, fetch);
                None
            }
            ClientRequest::ListOffsets { current_leader_epoch, spec, .. } => {
                Some(replica.handle_list_offsets(env, current_leader_epoch, spec))
            }
            ClientRequest::OffsetForLeaderEpoch { current_leader_epoch, leader_epoch, .. } => {
                Some(replica.handle_offset_for_leader_epoch(current_leader_epoch, leader_epoch))
            }
            _ => None,
        };
        self.drain_replica(env.now, key);
        response
    }

    /// An error answer, except that `acks=0` produces are never answered.
    fn partition_error(&self, request: &ClientRequest, error: ErrorCode) -> Option<ClientResponse> {
        match request {
            ClientRequest::Produce { acks: crate::protocol::Acks::None, .. } => None,
            _ => Some(error_response(request, error)),
        }
    }

    /// The leader answered one of this broker's replica fetches.
    pub(super) fn on_fetch_answer(
        &mut self,
        env: &mut Env<'_>,
        correlation_id: u64,
        response: ClientResponse,
    ) {
        let Some(in_flight) = self.fetches.remove(&correlation_id) else { return };
        let ClientResponse::Fetch(fetch) = response else { return };
        if let Some(replica) = self.replicas.get_mut(&in_flight.key) {
            replica.on_fetch_response(env, in_flight.fetch_id, fetch);
            self.drain_replica(env.now, in_flight.key);
        }
    }

    /// The controller answered a replica's ISR proposal.
    pub(super) fn on_alter_answer(
        &mut self,
        env: &mut Env<'_>,
        correlation_id: u64,
        response: ControllerResponse,
    ) {
        let Some(in_flight) = self.alters.remove(&correlation_id) else { return };
        let ControllerResponse::AlterPartition(result) = response else { return };
        if let Some(replica) = self.replicas.get_mut(&in_flight.key) {
            replica.on_alter_partition_response(env, result);
            self.drain_replica(env.now, in_flight.key);
        }
    }

    pub(super) fn on_replica_sync_complete(
        &mut self,
        env: &mut Env<'_>,
        key: ReplicaKey,
        token: u64,
        result: Result<(), StorageError>,
    ) {
        if let Some(replica) = self.replicas.get_mut(&key) {
            replica.on_sync_complete(env, token, result);
            self.drain_replica(env.now, key);
        }
    }

    /// Timers: replicas due, and fetches or proposals whose answers did not come in time.
    pub(super) fn replica_timers(&mut self, env: &mut Env<'_>) {
        let now = env.now;
        let due: Vec<ReplicaKey> = self
            .replicas
            .iter()
            .filter(|(_, replica)| replica.next_deadline().is_some_and(|deadline| deadline <= now))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            if let Some(replica) = self.replicas.get_mut(&key) {
                replica.handle_timer(env);
                self.drain_replica(now, key);
            }
        }
        let lost: Vec<(u64, FetchInFlight)> = self
            .fetches
            .iter()
            .filter(|(_, fetch)| fetch.deadline <= now)
            .map(|(id, fetch)| (*id, *fetch))
            .collect();
        for (correlation_id, fetch) in lost {
            self.fetches.remove(&correlation_id);
            if let Some(replica) = self.replicas.get_mut(&fetch.key) {
                replica.on_fetch_failed(env, fetch.fetch_id);
                self.drain_replica(now, fetch.key);
            }
        }
        let lost: Vec<(u64, AlterInFlight)> = self
            .alters
            .iter()
            .filter(|(_, alter)| alter.deadline <= now)
            .map(|(id, alter)| (*id, *alter))
            .collect();
        for (correlation_id, alter) in lost {
            self.alters.remove(&correlation_id);
            if let Some(replica) = self.replicas.get_mut(&alter.key) {
                replica.on_alter_partition_response(env, Err(ErrorCode::RequestTimedOut));
                self.drain_replica(now, alter.key);
            }
        }
    }

    pub(super) fn replicas_deadline(&self) -> Option<Time> {
        let replicas = self.replicas.values().filter_map(Replica::next_deadline).min();
        let fetches = self.fetches.values().map(|fetch| fetch.deadline).min();
        let alters = self.alters.values().map(|alter| alter.deadline).min();
        [replicas, fetches, alters].into_iter().flatten().min()
    }

    /// Drains every replica's effects (after an input that may have touched several).
    pub(super) fn drain_replicas(&mut self, now: Time) {
        let keys: Vec<ReplicaKey> = self.replicas.keys().copied().collect();
        for key in keys {
            self.drain_replica(now, key);
        }
    }

    fn drain_replica(&mut self, now: Time, key: ReplicaKey) {
        let Some(replica) = self.replicas.get_mut(&key) else { return };
        let mut effects = Vec::new();
        while let Some(effect) = replica.poll_effect() {
            effects.push(effect);
        }
        self.execute_replica_effects(now, key, effects);
    }

    fn execute_replica_effects(&mut self, now: Time, key: ReplicaKey, effects: Vec<ReplicaEffect>) {
        for effect in effects {
            match effect {
                ReplicaEffect::Reply { to, correlation_id, response } => {
                    self.send(to, NodeMessage::ClientResponse { correlation_id, response });
                }
                ReplicaEffect::Fetch { fetch_id, leader, request } => {
                    let correlation_id = self.next_replica_correlation_id;
                    self.next_replica_correlation_id += 1;
                    let wait_ms = u64::from(request.max_wait_ms);
                    let deadline = now.plus_millis(wait_ms + self.config.quorum.request_timeout_ms);
                    self.fetches.insert(correlation_id, FetchInFlight { key, fetch_id, deadline });
                    self.send(
                        leader,
                        NodeMessage::Client { correlation_id, request: ClientRequest::Fetch(request) },
                    );
                }
                ReplicaEffect::Sync { token, path } => {
                    let token = NodeSyncToken::Replica { topic_id: key.0, partition: key.1, token };
                    self.push_effect(NodeEffect::Sync { token, path });
                }
                ReplicaEffect::AlterIsr { new_isr: _, broker_epochs, leader_epoch, partition_epoch } => {
                    let Some(leader) = self.quorum.leader() else {
                        // No controller known: the replica proposes again at its next ISR check.
                        continue;
                    };
                    let Some((broker_epoch, _)) = self.broker_state() else { continue };
                    let correlation_id = ALTER_BIT | self.next_replica_correlation_id;
                    self.next_replica_correlation_id += 1;
                    let deadline = now.plus_millis(self.config.quorum.request_timeout_ms.saturating_mul(5));
                    self.alters.insert(correlation_id, AlterInFlight { key, deadline });
                    let request = ControllerRequest::AlterPartition {
                        broker_id: self.config.node_id,
                        broker_epoch,
                        topic_id: key.0,
                        partition: key.1,
                        leader_epoch,
                        partition_epoch,
                        new_isr: broker_epochs,
                    };
                    self.send(leader, NodeMessage::ControllerRequest { correlation_id, request });
                }
                ReplicaEffect::Halt { reason } => {
                    self.halt(format!("partition {}-{}: {reason}", key.0, key.1))
                }
            }
        }
    }

    /// A controlled shutdown's last step: close every replica cleanly. True once all are closed.
    pub(super) fn close_replicas(&mut self, env: &mut Env<'_>) -> bool {
        let keys: Vec<ReplicaKey> = self.replicas.keys().copied().collect();
        for key in keys {
            if let Some(replica) = self.replicas.get_mut(&key) {
                replica.begin_close(env);
                self.drain_replica(env.now, key);
            }
        }
        self.replicas.values().all(Replica::is_closed)
    }
}

/// A replica's settings: the broker's replication config, overridden by the topic's configs.
/// A config value that does not parse keeps the broker's default (the controller validates them).
pub fn replica_settings(config: &ReplicationConfig, topic: &TopicImage) -> ReplicaSettings {
    let get = |name: &str| topic.configs.get(name).map(String::as_str);
    let parse_u64 = |name: &str| get(name).and_then(|value| value.parse::<u64>().ok());
    let parse_i64 = |name: &str| get(name).and_then(|value| value.parse::<i64>().ok());
    let mut log = config.log.clone();
    if let Some(bytes) = parse_u64(topic_config::SEGMENT_BYTES) {
        log.segment_bytes = bytes;
    }
    if let Some(bytes) = parse_u64(topic_config::MAX_MESSAGE_BYTES) {
        log.max_batch_bytes = bytes;
    }
    if let Some(ms) = parse_i64(topic_config::RETENTION_MS) {
        log.retention_ms = (ms >= 0).then_some(ms);
    }
    if let Some(bytes) = parse_i64(topic_config::RETENTION_BYTES) {
        log.retention_bytes = u64::try_from(bytes).ok();
    }
    let flush_ms = parse_u64(topic_config::FLUSH_MS);
    let flush = match get(topic_config::FLUSH_POLICY) {
        Some("always") => FlushPolicy::Always,
        Some("never") => FlushPolicy::Never,
        Some("interval") => FlushPolicy::Interval { ms: flush_ms.unwrap_or(1_000).max(1) },
        _ => config.flush,
    };
    let min_insync_replicas = get(topic_config::MIN_INSYNC_REPLICAS)
        .and_then(|value| value.parse::<u16>().ok())
        .unwrap_or(config.min_insync_replicas);
    ReplicaSettings {
        log,
        min_insync_replicas,
        flush,
        replica_lag_time_max_ms: config.replica_lag_time_max_ms,
        replica_fetch_wait_max_ms: config.replica_fetch_wait_max_ms,
        replica_fetch_max_bytes: config.replica_fetch_max_bytes,
        replica_fetch_backoff_ms: config.replica_fetch_backoff_ms,
        fetch_max_bytes: config.fetch_max_bytes,
        retention_check_interval_ms: config.retention_check_interval_ms,
    }
}
