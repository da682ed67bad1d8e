//! Scenario tests of whole nodes over a tiny in-test world: in-memory storage that keeps every
//! write (no crash model: a "crash" is dropping the node and starting it again on the same files),
//! messages delivered in order after 1 ms, syncs completing after 1 ms, and time that jumps to the
//! next event or deadline. A node can be cut off (its messages dropped both ways) and restarted.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::env::NoFaults;
use crate::log::LogConfig;
use crate::metadata::{BrokerId, TopicId};
use crate::protocol::Acks;
use crate::replica::ReplicationConfig;
use crate::test_support::MemStorage;

const ADMIN: NodeId = 100;
const SESSION_MS: u64 = 1_000;
const HEARTBEAT_MS: u64 = 200;

enum Event {
    Deliver { from: NodeId, to: NodeId, message: NodeMessage },
    SyncDone { node: NodeId, token: NodeSyncToken },
}

struct Slot {
    config: NodeConfig,
    node: Option<Node>,
    storage: MemStorage,
    rng: ChaCha8Rng,
    /// Every entry this node applied, by offset (payload hash), across its restarts.
    applied: BTreeMap<i64, u64>,
    snapshots_loaded: u32,
    shutdown_complete: bool,
}

struct World {
    now: Time,
    slots: BTreeMap<NodeId, Slot>,
    events: BTreeMap<(Time, u64), Event>,
    next_event: u64,
    /// Nodes whose messages are dropped both ways.
    cut_off: BTreeSet<NodeId>,
    admin_responses: BTreeMap<u64, ControllerResponse>,
    client_responses: BTreeMap<u64, ClientResponse>,
    /// The committed image of the answering node when each admin answer arrived.
    admin_answer_images: BTreeMap<u64, MetadataImage>,
    next_correlation_id: u64,
    restarts: u64,
}

fn config(node_id: NodeId, controller: bool, broker: bool, snapshot_every_records: u64) -> NodeConfig {
    NodeConfig {
        node_id,
        controller,
        broker,
        quorum: QuorumConfig {
            node_id,
            voters: vec![1, 2, 3],
            election_timeout_ms: 150,
            fetch_timeout_ms: 300,
            fetch_interval_ms: 50,
            request_timeout_ms: 100,
            fetch_max_bytes: 64 * 1024,
            log: LogConfig { segment_bytes: 2_048, ..LogConfig::default() },
        },
        controller_config: ControllerConfig {
            broker_session_timeout_ms: SESSION_MS,
            default_replication_factor: 3,
        },
        heartbeat_interval_ms: HEARTBEAT_MS,
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: format!("node{node_id}"),
            port: 9092,
        }],
        snapshot_every_records,
        cluster_id: "test-cluster".into(),
        replication: ReplicationConfig::default(),
    }
}

impl World {
    /// Nodes 1, 2, 3 combined (controller + broker), node 4 broker only.
    fn new(snapshot_every_records: u64) -> World {
        let mut world = World {
            now: Time::ZERO,
            slots: BTreeMap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            cut_off: BTreeSet::new(),
            admin_responses: BTreeMap::new(),
            client_responses: BTreeMap::new(),
            admin_answer_images: BTreeMap::new(),
            next_correlation_id: 0,
            restarts: 0,
        };
        for node_id in 1..=4 {
            let slot = Slot {
                config: config(node_id, node_id <= 3, true, snapshot_every_records),
                node: None,
                storage: MemStorage::default(),
                rng: ChaCha8Rng::seed_from_u64(u64::from(node_id)),
                applied: BTreeMap::new(),
                snapshots_loaded: 0,
                shutdown_complete: false,
            };
            world.slots.insert(node_id, slot);
            world.start(node_id);
        }
        world
    }

    fn node(&self, node_id: NodeId) -> &Node {
        self.slots[&node_id].node.as_ref().expect("node is running")
    }

    fn running(&self) -> impl Iterator<Item = (&NodeId, &Node)> {
        self.slots.iter().filter_map(|(id, slot)| slot.node.as_ref().map(|node| (id, node)))
    }

    fn start(&mut self, node_id: NodeId) {
        let now = self.now;
        let slot = self.slots.get_mut(&node_id).unwrap();
        let mut faults = NoFaults;
        let mut env = Env {
            now,
            wall_clock_ms: now.as_millis() as i64,
            storage: &mut slot.storage,
            rng: &mut slot.rng,
            faults: &mut faults,
        };
        let node = Node::start(&mut env, slot.config.clone()).expect("node starts");
        slot.node = Some(node);
        slot.shutdown_complete = false;
        self.after_input(node_id);
    }

    /// A crash: the node is gone (its storage stays); a restart draws a new incarnation.
    fn stop(&mut self, node_id: NodeId) {
        self.slots.get_mut(&node_id).unwrap().node = None;
    }

    fn restart(&mut self, node_id: NodeId) {
        self.restarts += 1;
        let slot = self.slots.get_mut(&node_id).unwrap();
        slot.rng = ChaCha8Rng::seed_from_u64(1_000 * self.restarts + u64::from(node_id));
        self.start(node_id);
    }

    fn with_node(&mut self, node_id: NodeId, input: impl FnOnce(&mut Node, &mut Env<'_>)) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&node_id) else { return };
        let Some(node) = slot.node.as_mut() else { return };
        let mut faults = NoFaults;
        let mut env = Env {
            now,
            wall_clock_ms: now.as_millis() as i64,
            storage: &mut slot.storage,
            rng: &mut slot.rng,
            faults: &mut faults,
        };
        input(node, &mut env);
        self.after_input(node_id);
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.events.insert((at, self.next_event), event);
        self.next_event += 1;
    }

    /// Drains the node's effects and applied entries, checking that nodes agree on every offset.
    fn after_input(&mut self, node_id: NodeId) {
        let now = self.now;
        let mut outgoing = Vec::new();
        let slot = self.slots.get_mut(&node_id).unwrap();
        let Some(node) = slot.node.as_mut() else { return };
        while let Some(effect) = node.poll_effect() {
            match effect {
                NodeEffect::Send { to, message } => {
                    outgoing.push(Event::Deliver { from: node_id, to, message })
                }
                NodeEffect::Sync { token, .. } => outgoing.push(Event::SyncDone { node: node_id, token }),
                NodeEffect::Halt { reason } => panic!("node {node_id} halted at {now}: {reason}"),
                NodeEffect::ShutdownComplete => slot.shutdown_complete = true,
            }
        }
        for applied in node.take_applied() {
            match applied {
                Applied::Entry { offset, payload_hash, .. } => {
                    slot.applied.insert(offset, payload_hash);
                }
                Applied::Snapshot { .. } => slot.snapshots_loaded += 1,
            }
        }
        if node.is_active_controller() {
            // KRaft's rule: a controller decides only over an image holding every earlier epoch.
            let quorum = node.quorum();
            let earlier_uncommitted = quorum
                .entries()
                .iter()
                .any(|entry| entry.epoch < quorum.epoch() && entry.offset >= quorum.high_watermark());
            assert!(!earlier_uncommitted, "node {node_id} is the active controller over an incomplete image");
            let epoch_start_committed = quorum
                .entries()
                .iter()
                .any(|entry| entry.epoch == quorum.epoch() && entry.offset < quorum.high_watermark());
            assert!(
                epoch_start_committed,
                "node {node_id} activated before its epoch's first entry committed"
            );
            assert!(node.image().end_offset <= quorum.high_watermark());
        }
        if slot.shutdown_complete {
            slot.node = None;
        }
        for event in outgoing {
            self.schedule(now.plus_millis(1), event);
        }
        self.check_agreement();
    }

    /// Every applied offset has one payload across the cluster.
    fn check_agreement(&self) {
        let mut seen: BTreeMap<i64, (NodeId, u64)> = BTreeMap::new();
        for (node_id, slot) in &self.slots {
            for (offset, hash) in &slot.applied {
                let (first_node, first_hash) = *seen.entry(*offset).or_insert((*node_id, *hash));
                assert_eq!(
                    first_hash, *hash,
                    "nodes {first_node} and {node_id} applied different entries at {offset}"
                );
            }
        }
    }

    fn next_time(&self) -> Option<Time> {
        let event = self.events.keys().next().map(|(at, _)| *at);
        let deadline = self.running().filter_map(|(_, node)| node.next_deadline()).min();
        [event, deadline].into_iter().flatten().min()
    }

    /// Runs one instant: every event due, then every timer due.
    fn step(&mut self) -> bool {
        let Some(at) = self.next_time() else { return false };
        assert!(at >= self.now, "time went backwards: {at} < {}", self.now);
        self.now = at;
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            match entry.remove() {
                Event::Deliver { from, to, message } => {
                    if self.cut_off.contains(&from) || self.cut_off.contains(&to) {
                        continue;
                    }
                    if to == ADMIN {
                        if let NodeMessage::ClientResponse { correlation_id, response } = &message {
                            self.client_responses.insert(*correlation_id, response.clone());
                            continue;
                        }
                        if let NodeMessage::ControllerResponse { correlation_id, response } = message {
                            self.admin_responses.insert(correlation_id, response);
                            if let Some(node) = self.slots.get(&from).and_then(|slot| slot.node.as_ref()) {
                                self.admin_answer_images.insert(correlation_id, node.image().clone());
                            }
                        }
                        continue;
                    }
                    self.with_node(to, |node, env| node.handle_message(env, from, message));
                }
                Event::SyncDone { node, token } => {
                    self.with_node(node, |node, env| node.handle_sync_complete(env, token, Ok(())));
                }
            }
        }
        let due: Vec<NodeId> = self
            .running()
            .filter(|(_, node)| node.next_deadline().is_some_and(|deadline| deadline <= self.now))
            .map(|(id, _)| *id)
            .collect();
        for node_id in due {
            self.with_node(node_id, |node, env| node.handle_timer(env));
        }
        true
    }

    /// Runs until `done` holds (checked after every instant) or `limit_ms` of simulated time pass.
    fn run_until(&mut self, limit_ms: u64, what: &str, done: impl Fn(&World) -> bool) {
        let limit = self.now.plus_millis(limit_ms);
        let mut steps = 0u64;
        while !done(self) {
            assert!(self.now <= limit, "not within {limit_ms} ms: {what} (now {})", self.now);
            assert!(self.step(), "nothing left to run: {what}");
            steps += 1;
            assert!(steps < 1_000_000, "step bound: {what}");
        }
    }

    fn run_for(&mut self, ms: u64) {
        let until = self.now.plus_millis(ms);
        while self.next_time().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = until;
    }

    fn active_controller(&self) -> Option<NodeId> {
        let active: Vec<NodeId> =
            self.running().filter(|(_, node)| node.is_active_controller()).map(|(id, _)| *id).collect();
        assert!(active.len() <= 1, "two active controllers: {active:?}");
        active.first().copied()
    }

    /// Whether every running node's committed image shows these brokers unfenced.
    fn all_unfenced(&self, brokers: &[BrokerId]) -> bool {
        self.running().all(|(_, node)| {
            brokers.iter().all(|broker| node.image().brokers.get(broker).is_some_and(|r| !r.fenced))
        }) && brokers.iter().all(|broker| {
            self.slots[broker]
                .node
                .as_ref()
                .is_none_or(|node| node.broker_state().is_some_and(|(_, fenced)| !fenced))
        })
    }

    /// An admin request, sent to `to`; returns its correlation id.
    fn admin(&mut self, to: NodeId, request: ControllerRequest) -> u64 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let message = NodeMessage::ControllerRequest { correlation_id, request };
        self.schedule(self.now.plus_millis(1), Event::Deliver { from: ADMIN, to, message });
        correlation_id
    }

    /// Sends the request to the active controller and waits for its answer.
    fn admin_call(&mut self, request: ControllerRequest) -> ControllerResponse {
        self.run_until(5_000, "an active controller", |world| world.active_controller().is_some());
        let controller = self.active_controller().unwrap();
        let correlation_id = self.admin(controller, request);
        self.run_until(5_000, "the admin answer", |world| {
            world.admin_responses.contains_key(&correlation_id)
        });
        self.admin_responses.remove(&correlation_id).unwrap()
    }

    fn create_topic(&mut self, name: &str, partitions: u32, replication_factor: u16) -> TopicId {
        let request = ControllerRequest::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        };
        let correlation_id = self.next_correlation_id;
        let topic_id = match self.admin_call(request) {
            ControllerResponse::CreateTopic(Ok(topic_id)) => topic_id,
            other => panic!("create {name}: {other:?}"),
        };
        // Answered only once committed: the controller had applied the topic when it answered.
        let image = &self.admin_answer_images[&correlation_id];
        assert_eq!(image.topics_by_name.get(name), Some(&topic_id), "answered before the topic committed");
        topic_id
    }

    /// Runs until every running node's committed image equals the active controller's.
    fn converge(&mut self) {
        self.run_until(5_000, "images converge", |world| {
            let mut images = world.running().map(|(_, node)| node.image());
            let Some(first) = images.next() else { return true };
            images.all(|image| image == first)
                && world
                    .running()
                    .all(|(_, node)| node.controller_image().is_none_or(|latest| latest == first))
        });
    }
}

impl World {
    /// A client request from ADMIN to `to`; returns its correlation id.
    fn client(&mut self, to: NodeId, request: ClientRequest) -> u64 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let message = NodeMessage::Client { correlation_id, request };
        self.schedule(self.now.plus_millis(1), Event::Deliver { from: ADMIN, to, message });
        correlation_id
    }

    fn client_call(&mut self, to: NodeId, request: ClientRequest) -> ClientResponse {
        let correlation_id = self.client(to, request);
        self.run_until(5_000, "the client answer", |world| {
            world.client_responses.contains_key(&correlation_id)
        });
        self.client_responses.remove(&correlation_id).unwrap()
    }

    fn partition_state(&self, topic_id: TopicId, partition: u32) -> crate::metadata::PartitionState {
        let controller = self.active_controller().unwrap();
        self.node(controller).image().partition(topic_id, partition).unwrap().clone()
    }

    /// Produces one record with `acks`, at the leader the image names, retrying on errors.
    fn produce(&mut self, topic: &str, topic_id: TopicId, value: &str, acks: Acks) -> i64 {
        for _ in 0..50 {
            let state = self.partition_state(topic_id, 0);
            let Some(leader) = state.leader.filter(|leader| self.slots[leader].node.is_some()) else {
                self.run_for(200);
                continue;
            };
            let batch = one_record_batch(value);
            let request =
                ClientRequest::Produce { topic: topic.into(), partition: 0, acks, timeout_ms: 2_000, batch };
            match self.client_call(leader, request) {
                ClientResponse::Produce(Ok(ok)) => return ok.base_offset,
                _ => self.run_for(200),
            }
        }
        panic!("produce of {value} never succeeded");
    }

    /// The records (as strings) of the replica on `node`, from its log's start.
    fn replica_values(&mut self, node_id: NodeId, topic_id: TopicId) -> Vec<String> {
        let now = self.now;
        let slot = self.slots.get_mut(&node_id).unwrap();
        let node = slot.node.as_ref().unwrap();
        let replica = &node.replicas()[&(topic_id, 0)];
        let mut faults = NoFaults;
        let mut env = Env {
            now,
            wall_clock_ms: 0,
            storage: &mut slot.storage,
            rng: &mut slot.rng,
            faults: &mut faults,
        };
        let log = replica.log();
        if log.log_end_offset() == log.log_start_offset() {
            return Vec::new();
        }
        let read = log.read(&mut env, log.log_start_offset(), 1 << 20).unwrap();
        crate::record::consume(&read.bytes)
            .unwrap()
            .into_iter()
            .map(|record| String::from_utf8(record.value.unwrap_or_default()).unwrap())
            .collect()
    }
}

/// A plain batch of one record with `value`, as a producer encodes it.
fn one_record_batch(value: &str) -> Vec<u8> {
    let record = crate::record::NewRecord::unkeyed(0, value.as_bytes());
    crate::record::encode_batch(&[record], crate::record::ProducerInfo::NONE)
}

fn started_cluster(snapshot_every_records: u64) -> World {
    let mut world = World::new(snapshot_every_records);
    world
        .run_until(10_000, "every broker registered and unfenced", |world| world.all_unfenced(&[1, 2, 3, 4]));
    world
}

#[test]
fn a_cluster_elects_a_controller_and_unfences_every_broker() {
    let world = started_cluster(0);
    let controller = world.active_controller().expect("an active controller");
    assert_eq!(world.node(controller).quorum().role(), QuorumRole::Leader);
    for node_id in 1..=4 {
        let node = world.node(node_id);
        let (broker_epoch, _) = node.broker_state().unwrap();
        let registration = &node.image().brokers[&node_id];
        assert_eq!(registration.broker_epoch, broker_epoch);
        assert_eq!(registration.incarnation_id, node.incarnation_id().unwrap());
        assert_eq!(node.quorum().is_voter(), node_id <= 3);
    }
}

#[test]
fn requests_to_a_node_that_is_not_the_active_controller_get_not_controller() {
    let mut world = started_cluster(0);
    let controller = world.active_controller().unwrap();
    let follower = (1..=4).find(|id| *id != controller).unwrap();
    let correlation_id = world.admin(follower, ControllerRequest::DeleteTopic { name: "nope".into() });
    world.run_until(1_000, "an answer", |world| world.admin_responses.contains_key(&correlation_id));
    assert_eq!(
        world.admin_responses[&correlation_id],
        ControllerResponse::DeleteTopic(Err(ErrorCode::NotController))
    );
    assert_eq!(
        world.admin_call(ControllerRequest::DeleteTopic { name: "nope".into() }),
        ControllerResponse::DeleteTopic(Err(ErrorCode::UnknownTopicOrPartition))
    );
}

#[test]
fn create_topic_spreads_replicas_and_leaders_and_every_node_applies_it() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 8, 3);
    world.converge();
    let image = world.node(1).image();
    assert_eq!(image.topics_by_name["events"], topic_id);
    let mut leaders = BTreeMap::<BrokerId, u32>::new();
    for state in image.topics[&topic_id].partitions.values() {
        assert_eq!(state.replicas.len(), 3);
        *leaders.entry(state.leader.unwrap()).or_default() += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2), (4, 2)]));
    // Deleting it goes through the log as well.
    let deleted = world.admin_call(ControllerRequest::DeleteTopic { name: "events".into() });
    assert_eq!(deleted, ControllerResponse::DeleteTopic(Ok(topic_id)));
    world.converge();
    assert!(world.node(4).image().topics.is_empty());
}

#[test]
fn a_silent_broker_is_fenced_and_its_leaderships_move_then_it_comes_back() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 8, 3);
    world.converge();
    let before = world.node(1).image().topics[&topic_id].partitions.clone();
    let (old_epoch, _) = world.node(4).broker_state().unwrap();

    world.cut_off.insert(4);
    world.stop(4);
    world.run_until(SESSION_MS + 2_000, "broker 4 fenced everywhere", |world| {
        world.running().all(|(_, node)| node.image().brokers[&4].fenced)
    });
    world.converge();
    let after = &world.node(1).image().topics[&topic_id].partitions;
    for (partition, state) in after {
        let old = &before[partition];
        assert_ne!(state.leader, Some(4));
        assert!(!state.isr.contains(&4), "{state:?}");
        if old.leader == Some(4) {
            assert!(state.leader.is_some());
            assert_eq!(state.leader_epoch, old.leader_epoch + 1, "a new leader bumps the leader epoch");
        } else {
            assert_eq!((state.leader, state.leader_epoch), (old.leader, old.leader_epoch));
        }
    }

    world.cut_off.remove(&4);
    world.restart(4);
    world.run_until(5_000, "broker 4 back and unfenced", |world| world.all_unfenced(&[4]));
    let (new_epoch, _) = world.node(4).broker_state().unwrap();
    assert!(new_epoch > old_epoch, "a restarted broker gets a larger epoch");
    world.converge();
    assert_eq!(world.node(1).image().brokers[&4].incarnation_id, world.node(4).incarnation_id().unwrap());
}

#[test]
fn a_restarted_broker_waits_for_its_old_lease_before_registering_again() {
    let mut world = started_cluster(0);
    let (old_epoch, _) = world.node(4).broker_state().unwrap();
    let restarted_at = world.now;
    world.restart(4); // at once: the old incarnation's lease is still live
    world.run_until(SESSION_MS + 3_000, "broker 4 registered anew", |world| {
        world.slots[&4]
            .node
            .as_ref()
            .unwrap()
            .broker_state()
            .is_some_and(|(epoch, fenced)| epoch > old_epoch && !fenced)
    });
    assert!(world.now.since(restarted_at) >= Time::from_millis(SESSION_MS - HEARTBEAT_MS).as_nanos());
}

#[test]
fn controlled_shutdown_moves_leadership_away_before_it_completes() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 8, 3);
    world.converge();
    let started = world.now;
    world.with_node(4, |node, env| node.begin_shutdown(env));
    world.run_until(CONTROLLED_SHUTDOWN_TIMEOUT_MS, "broker 4 shut down", |world| {
        world.slots[&4].node.is_none()
    });
    assert!(world.slots[&4].shutdown_complete);
    assert!(
        world.now.since(started) < Time::from_millis(CONTROLLED_SHUTDOWN_TIMEOUT_MS).as_nanos(),
        "acknowledged, not timed out"
    );
    world.converge();
    let image = world.node(1).image();
    assert!(image.brokers[&4].in_controlled_shutdown);
    for state in image.topics[&topic_id].partitions.values() {
        assert_ne!(state.leader, Some(4));
        assert!(!state.isr.contains(&4));
        assert!(state.leader.is_some());
    }
}

#[test]
fn the_active_controller_shuts_down_and_another_takes_over() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 6, 3);
    world.converge();
    let controller = world.active_controller().unwrap();
    world.with_node(controller, |node, env| node.begin_shutdown(env));
    world.run_until(CONTROLLED_SHUTDOWN_TIMEOUT_MS, "the controller shut down", |world| {
        world.slots[&controller].node.is_none()
    });
    world.run_until(3_000, "another active controller", |world| world.active_controller().is_some());
    assert_ne!(world.active_controller(), Some(controller));
    world.converge();
    for state in world.node(4).image().topics[&topic_id].partitions.values() {
        assert_ne!(state.leader, Some(controller));
    }
    // The new controller serves requests.
    world.create_topic("more", 2, 2);
}

#[test]
fn snapshots_are_taken_and_a_restarted_node_loads_its_snapshot() {
    let mut world = started_cluster(5);
    for index in 0..6 {
        world.create_topic(&format!("topic-{index}"), 2, 2);
    }
    world.converge();
    let expected = world.node(2).image().clone();
    world.run_until(2_000, "every node snapshotted", |world| {
        world.running().all(|(_, node)| node.quorum().latest_snapshot().is_some())
    });
    let follower = (1..=3).find(|id| Some(*id) != world.active_controller()).unwrap();
    let snapshot = world.node(follower).quorum().latest_snapshot().unwrap();
    world.stop(follower);
    world.restart(follower);
    assert_eq!(world.slots[&follower].snapshots_loaded, 1, "the restart loaded its snapshot");
    assert!(world.node(follower).image().end_offset >= snapshot.end_offset);
    world.converge();
    assert_eq!(world.node(follower).image(), world.node(world.active_controller().unwrap()).image());
    assert!(world.node(follower).image().end_offset >= expected.end_offset);
    assert_eq!(world.node(follower).image().topics_by_name.len(), 6);
}

#[test]
fn a_short_silence_is_retried_and_never_fences_the_broker() {
    let mut world = started_cluster(0);
    let (epoch, _) = world.node(4).broker_state().unwrap();
    world.cut_off.insert(4);
    world.run_for(SESSION_MS / 2);
    world.cut_off.remove(&4);
    let until = world.now.plus_millis(2 * SESSION_MS);
    while world.now < until && world.step() {
        for (_, node) in world.running() {
            assert!(!node.image().brokers[&4].fenced, "fenced after a silence shorter than the session");
        }
    }
    assert_eq!(world.node(4).broker_state(), Some((epoch, false)));
}

#[test]
fn the_active_controller_crashes_and_the_next_one_fences_it_and_takes_it_back() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 6, 3);
    world.converge();
    let crashed = world.active_controller().unwrap();
    let (old_epoch, _) = world.node(crashed).broker_state().unwrap();
    world.cut_off.insert(crashed);
    world.stop(crashed);
    world.run_until(3_000, "a new active controller", |world| world.active_controller().is_some());
    // The new controller gives every broker a fresh lease, then fences the crashed one.
    world.run_until(SESSION_MS + 2_000, "the crashed node fenced", |world| {
        world.running().all(|(_, node)| node.image().brokers[&crashed].fenced)
    });
    world.converge();
    for state in world.node(4).image().topics[&topic_id].partitions.values() {
        assert_ne!(state.leader, Some(crashed));
        assert!(state.leader.is_some(), "two of three replicas are alive: {state:?}");
    }
    let survivors: Vec<BrokerId> = (1..=4).filter(|id| *id != crashed).collect();
    assert!(world.all_unfenced(&survivors), "the failover fenced nobody else");

    world.cut_off.remove(&crashed);
    world.restart(crashed);
    world.run_until(5_000, "the crashed node back", |world| world.all_unfenced(&[crashed]));
    assert!(world.node(crashed).broker_state().unwrap().0 > old_epoch);
    world.converge();
}

#[test]
fn the_same_seeds_give_the_same_metadata_log() {
    let run = || {
        let mut world = started_cluster(4);
        world.create_topic("a", 3, 2);
        world.cut_off.insert(2);
        world.run_for(2 * SESSION_MS);
        world.cut_off.remove(&2);
        world.create_topic("b", 2, 3);
        world.converge();
        let applied: Vec<BTreeMap<i64, u64>> =
            world.slots.values().map(|slot| slot.applied.clone()).collect();
        (applied, world.node(1).image().hash(), world.now)
    };
    let first = run();
    assert!(first.0[0].len() > 10, "the scenario wrote a log");
    assert_eq!(first, run());
}

#[test]
fn acks_all_is_answered_once_every_isr_member_has_the_record_and_followers_converge() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 1, 3);
    world.converge();
    for n in 0..5 {
        let offset = world.produce("events", topic_id, &format!("v{n}"), Acks::All);
        assert_eq!(offset, n);
    }
    // An acknowledged acks=all record is on every ISR member when the answer comes.
    let state = world.partition_state(topic_id, 0);
    assert_eq!(state.isr.len(), 3);
    world.run_for(1_000);
    let expected: Vec<String> = (0..5).map(|n| format!("v{n}")).collect();
    for replica in state.replicas.clone() {
        assert_eq!(world.replica_values(replica, topic_id), expected, "replica on {replica}");
        assert_eq!(world.node(replica).replicas()[&(topic_id, 0)].high_watermark(), 5);
    }
}

#[test]
fn a_new_leader_keeps_every_committed_record_and_the_old_leader_truncates_what_it_alone_had() {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 1, 3);
    world.converge();
    for n in 0..3 {
        world.produce("events", topic_id, &format!("c{n}"), Acks::All);
    }
    world.run_for(500);
    let old_leader = world.partition_state(topic_id, 0).leader.unwrap();
    // Cut the leader off, then write with acks=1: only it has these.
    world.cut_off.insert(old_leader);
    for n in 0..2 {
        let batch = one_record_batch(&format!("u{n}"));
        let request = ClientRequest::Produce {
            topic: "events".into(),
            partition: 0,
            acks: Acks::Leader,
            timeout_ms: 1_000,
            batch,
        };
        world.with_node(old_leader, |node, env| {
            node.handle_message(env, ADMIN, NodeMessage::Client { correlation_id: 10_000 + n, request })
        });
    }
    world.run_until(10_000, "a new leader", |world| {
        world.active_controller().is_some_and(|controller| {
            let state = world.node(controller).image().partition(topic_id, 0).unwrap().clone();
            state.leader.is_some_and(|leader| leader != old_leader)
        })
    });
    let new_leader = world.partition_state(topic_id, 0).leader.unwrap();
    world.produce("events", topic_id, "n0", Acks::All);
    world.cut_off.remove(&old_leader);
    world.run_until(20_000, "the old leader rejoins the ISR", |world| {
        world.active_controller().is_some_and(|controller| {
            let state = world.node(controller).image().partition(topic_id, 0).unwrap().clone();
            state.isr.len() == 3
        })
    });
    world.run_for(1_000);
    let expected = vec!["c0", "c1", "c2", "n0"];
    assert_eq!(world.replica_values(new_leader, topic_id), expected);
    assert_eq!(
        world.replica_values(old_leader, topic_id),
        expected,
        "the unreplicated acks=1 records are gone"
    );
}

/// A consumer's fetch of `events-0` (up to 1 MiB).
fn consumer_fetch(fetch_offset: i64, epoch: Option<i32>, max_wait_ms: u32, min_bytes: u32) -> ClientRequest {
    ClientRequest::Fetch(crate::protocol::FetchRequest {
        topic: "events".into(),
        partition: 0,
        fetch_offset,
        replica: None,
        current_leader_epoch: epoch,
        last_fetched_epoch: None,
        max_bytes: 1 << 20,
        max_wait_ms,
        min_bytes,
    })
}

/// A cluster whose topic `events` (1 partition, RF 3) holds one committed record, and that
/// partition's state and leader.
fn events_with_one_record() -> (World, crate::metadata::PartitionState, BrokerId) {
    let mut world = started_cluster(0);
    let topic_id = world.create_topic("events", 1, 3);
    world.converge();
    world.produce("events", topic_id, "a", Acks::All);
    let state = world.partition_state(topic_id, 0);
    let leader = state.leader.unwrap();
    (world, state, leader)
}

#[test]
fn fetch_checks_the_leader_epoch_and_consumers_read_only_below_the_high_watermark() {
    let (mut world, state, leader) = events_with_one_record();
    let fetch = |epoch: Option<i32>| consumer_fetch(0, epoch, 0, 1);
    let ClientResponse::Fetch(ok) = world.client_call(leader, fetch(Some(state.leader_epoch))) else {
        panic!()
    };
    assert_eq!(ok.error, ErrorCode::None);
    assert_eq!(ok.high_watermark, 1);
    assert_eq!(crate::record::consume(&ok.records).unwrap().len(), 1);
    let ClientResponse::Fetch(stale) = world.client_call(leader, fetch(Some(state.leader_epoch - 1))) else {
        panic!()
    };
    assert_eq!(stale.error, ErrorCode::FencedLeaderEpoch);
    let ClientResponse::Fetch(newer) = world.client_call(leader, fetch(Some(state.leader_epoch + 1))) else {
        panic!()
    };
    assert_eq!(newer.error, ErrorCode::UnknownLeaderEpoch);
    let follower = state.replicas.iter().copied().find(|replica| *replica != leader).unwrap();
    let ClientResponse::Fetch(not_leader) = world.client_call(follower, fetch(None)) else { panic!() };
    assert_eq!(not_leader.error, ErrorCode::NotLeaderOrFollower);
}

/// `fetch.min.bytes`: a long poll waits until its answer holds that many bytes of records or its
/// `max_wait_ms` passes; with 0 it answers at once, even with nothing to give.
#[test]
fn a_long_poll_waits_for_min_bytes_or_its_max_wait() {
    let (mut world, state, leader) = events_with_one_record();
    let fetch = |fetch_offset: i64, max_wait_ms: u32, min_bytes: u32| {
        consumer_fetch(fetch_offset, Some(state.leader_epoch), max_wait_ms, min_bytes)
    };
    // One small record is there; asking for a megabyte waits the whole second, then takes it.
    let asked_at = world.now;
    let ClientResponse::Fetch(waited) = world.client_call(leader, fetch(0, 1_000, 1 << 20)) else { panic!() };
    assert!(world.now.since(asked_at) >= 1_000_000_000, "answered after {} ns", world.now.since(asked_at));
    assert_eq!(crate::record::consume(&waited.records).unwrap().len(), 1);
    // Asking for one byte takes it at once.
    let asked_at = world.now;
    let ClientResponse::Fetch(at_once) = world.client_call(leader, fetch(0, 1_000, 1)) else { panic!() };
    assert!(world.now.since(asked_at) < 1_000_000_000);
    assert_eq!(crate::record::consume(&at_once.records).unwrap().len(), 1);
    // Nothing past the end: min_bytes 0 answers empty at once, min_bytes 1 waits out max_wait.
    let asked_at = world.now;
    let ClientResponse::Fetch(empty) = world.client_call(leader, fetch(1, 1_000, 0)) else { panic!() };
    assert!(world.now.since(asked_at) < 1_000_000_000);
    assert!(empty.records.is_empty());
    let asked_at = world.now;
    let ClientResponse::Fetch(empty) = world.client_call(leader, fetch(1, 1_000, 1)) else { panic!() };
    assert!(world.now.since(asked_at) >= 1_000_000_000);
    assert!(empty.records.is_empty());
}

#[test]
fn acks_all_is_refused_while_the_isr_is_below_min_insync_replicas() {
    let mut world = started_cluster(0);
    let request = ControllerRequest::CreateTopic {
        name: "strict".into(),
        partitions: 1,
        replication_factor: 2,
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
    };
    let ControllerResponse::CreateTopic(Ok(topic_id)) = world.admin_call(request) else { panic!() };
    world.converge();
    world.produce("strict", topic_id, "a", Acks::All);
    let state = world.partition_state(topic_id, 0);
    let leader = state.leader.unwrap();
    let follower = state.replicas.iter().copied().find(|replica| *replica != leader).unwrap();
    world.cut_off.insert(follower);
    world.run_until(60_000, "the ISR shrinks to the leader", |world| {
        world.active_controller().is_some_and(|controller| {
            world
                .node(controller)
                .image()
                .partition(topic_id, 0)
                .is_some_and(|state| state.isr == vec![leader])
        })
    });
    world.run_for(500);
    let batch = one_record_batch("b");
    let request = ClientRequest::Produce {
        topic: "strict".into(),
        partition: 0,
        acks: Acks::All,
        timeout_ms: 1_000,
        batch,
    };
    assert_eq!(
        world.client_call(leader, request),
        ClientResponse::Produce(Err(ErrorCode::NotEnoughReplicas))
    );
}

/// The kill -9 story: a broker restarted at once has an empty image until it hears the quorum's
/// high watermark. Until it caught up and was unfenced it must not answer Metadata from that image
/// (no brokers, the topic unknown: librdkafka then forgets every broker it knew); it answers
/// `NotServing`, partition requests get a retriable error, and every request gets an answer.
#[test]
fn a_restarted_broker_serves_clients_only_once_caught_up_and_unfenced() {
    let mut world = started_cluster(0);
    world.create_topic("events", 1, 3);
    world.converge();
    assert!(world.running().all(|(_, node)| node.serves_clients()), "a started cluster serves clients");
    let controller = world.active_controller().unwrap();
    let restarted = (1..=3).find(|id| *id != controller).unwrap();
    world.restart(restarted); // at once: its old lease is still live, so it registers late
    assert!(!world.node(restarted).serves_clients());

    let produce = |acks| ClientRequest::Produce {
        topic: "events".into(),
        partition: 0,
        acks,
        timeout_ms: 1_000,
        batch: one_record_batch("early"),
    };
    let early_produce = world.client(restarted, produce(Acks::Leader));
    let early_produce_acks_0 = world.client(restarted, produce(Acks::None));
    let metadata = || ClientRequest::Metadata { topics: Some(vec!["events".into()]) };
    let mut asked = Vec::new();
    let started = world.now;
    while !world.node(restarted).serves_clients() {
        assert!(world.now.since(started) < Time::from_millis(SESSION_MS + 5_000).as_nanos(), "never serves");
        asked.push(world.client(restarted, metadata()));
        world.run_for(20);
    }
    for _ in 0..3 {
        asked.push(world.client(restarted, metadata()));
        world.run_for(20);
    }

    let (mut refused, mut served) = (0, 0);
    for correlation_id in asked {
        match world.client_responses.remove(&correlation_id) {
            Some(ClientResponse::NotServing) => refused += 1,
            Some(ClientResponse::Metadata(view)) => {
                served += 1;
                let brokers: Vec<BrokerId> = view.brokers.iter().map(|broker| broker.broker_id).collect();
                assert!(
                    brokers.contains(&restarted),
                    "answer {correlation_id} names brokers {brokers:?}: {view:?}"
                );
                assert_eq!(view.topics[0].error, ErrorCode::None, "answer {correlation_id}: {view:?}");
            }
            other => panic!("Metadata request {correlation_id} answered {other:?}"),
        }
    }
    assert!(refused > 0, "the restarted broker served before it caught up");
    assert!(served >= 3, "{served} Metadata answers once it serves");
    assert_eq!(
        world.client_responses.remove(&early_produce),
        Some(ClientResponse::Produce(Err(ErrorCode::NotLeaderOrFollower)))
    );
    assert_eq!(world.client_responses.remove(&early_produce_acks_0), None, "acks=0 is never answered");
}
