//! A tiny deterministic cluster for the quorum's tests: N quorums over in-memory disks, a seeded
//! message queue, a virtual clock, and the safety invariants checked after every step.
//!
//! Fault model:
//! - Disk ([`MemDisk`]): every file has current bytes (the page cache) and durable bytes. Writes
//!   change only the current bytes; a sync makes durable the bytes the file held when the sync
//!   effect was polled; create, remove and rename are durable at once. A crash replaces every
//!   file's current bytes by its durable bytes (unsynced writes vanish, never tear). Syncs of a
//!   node can be stalled (held back until released) to open the windows the planted bugs need.
//! - Network: a message may be dropped, duplicated and delayed (so reordered) by the seeded
//!   generator; directed links can be cut (partitions). Messages to a crashed node are lost.
//! - Nodes crash (losing every in-flight message, sync and timer) and restart with `Quorum::open`.
//!
//! Every random choice comes from one ChaCha generator seeded by the test; nodes get their own
//! generators, seeded from the node id and the test seed, so a seed replays bit for bit.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::env::{Env, FaultSites, Plant, Storage, StorageError, Time};
use crate::log::LogConfig;
use crate::quorum::entry::fnv1a64;
use crate::quorum::{
    Committed, NodeId, ProposeError, Quorum, QuorumConfig, QuorumEffect, QuorumMessage, QuorumRole,
    QuorumSyncToken,
};

// ---- the disk ----

#[derive(Clone, Debug, Default)]
pub struct MemFile {
    pub current: Vec<u8>,
    pub durable: Vec<u8>,
}

/// Files with a page cache: see the module documentation for the fault model.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    pub files: BTreeMap<String, MemFile>,
}

impl MemDisk {
    /// A power loss: every file reverts to its durable bytes.
    pub fn crash(&mut self) {
        for file in self.files.values_mut() {
            file.current = file.durable.clone();
        }
    }

    fn sync(&mut self, path: &str, captured: Option<Vec<u8>>) -> Result<(), StorageError> {
        match (self.files.get_mut(path), captured) {
            (Some(file), Some(bytes)) => {
                file.durable = bytes;
                Ok(())
            }
            _ => Err(StorageError::NotFound),
        }
    }
}

impl Storage for MemDisk {
    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        if self.files.contains_key(path) {
            return Err(StorageError::AlreadyExists);
        }
        self.files.insert(path.to_string(), MemFile::default());
        Ok(())
    }

    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let file = self.files.get_mut(path).ok_or(StorageError::NotFound)?;
        let end = offset as usize + data.len();
        if file.current.len() < end {
            file.current.resize(end, 0);
        }
        file.current[offset as usize..end].copy_from_slice(data);
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        let offset = self.len(path)?;
        self.write_at(path, offset, data)?;
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let file = self.files.get(path).ok_or(StorageError::NotFound)?;
        let end = offset as usize + buf.len();
        if end > file.current.len() {
            return Err(StorageError::OutOfRange);
        }
        buf.copy_from_slice(&file.current[offset as usize..end]);
        Ok(())
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        self.files.get(path).map(|file| file.current.len() as u64).ok_or(StorageError::NotFound)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        self.files.get_mut(path).ok_or(StorageError::NotFound)?.current.resize(len as usize, 0);
        Ok(())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.files.keys().filter(|path| path.starts_with(prefix)).cloned().collect())
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.files.remove(path).map(|_| ()).ok_or(StorageError::NotFound)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let file = self.files.remove(from).ok_or(StorageError::NotFound)?;
        self.files.insert(to.to_string(), file);
        Ok(())
    }
}

/// Plants chosen per test; nothing is buggified.
#[derive(Clone, Debug, Default)]
pub struct TestFaults {
    pub plants: BTreeSet<Plant>,
}

impl FaultSites for TestFaults {
    fn buggify(&mut self, _site: &'static str) -> bool {
        false
    }

    fn planted(&self, bug: Plant) -> bool {
        self.plants.contains(&bug)
    }
}

// ---- the application: a fold of everything applied ----

/// What a node's application holds: where it is and a hash of everything applied so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppState {
    pub applied_end: i64,
    pub hash: u64,
}

impl AppState {
    fn encode(self) -> Vec<u8> {
        let mut bytes = self.applied_end.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.hash.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<AppState> {
        if bytes.len() != 16 {
            return None;
        }
        let applied_end = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let hash = u64::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(AppState { applied_end, hash })
    }

    fn apply(&mut self, offset: i64, payload: &[u8]) {
        let mut bytes = self.hash.to_be_bytes().to_vec();
        bytes.extend_from_slice(&offset.to_be_bytes());
        bytes.extend_from_slice(payload);
        self.hash = fnv1a64(&bytes);
        self.applied_end = offset + 1;
    }
}

// ---- the cluster ----

pub struct Node {
    pub id: NodeId,
    pub disk: MemDisk,
    rng: ChaCha8Rng,
    pub quorum: Option<Quorum>,
    pub incarnation: u64,
    pub app: AppState,
    pub applied_entries: u64,
    /// Entries applied since the last snapshot this node's application took.
    since_snapshot: u64,
    /// Offsets below this were checked against the committed map (per incarnation).
    checked_up_to: i64,
    pub halted: Option<String>,
    pub syncs_stalled: bool,
    held_syncs: Vec<Event>,
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: QuorumMessage,
    },
    SyncDone {
        node: NodeId,
        incarnation: u64,
        token: QuorumSyncToken,
        path: String,
        captured: Option<Vec<u8>>,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
    pub sync_delay_ms_min: u64,
    pub sync_delay_ms_max: u64,
}

impl NetConfig {
    pub fn reliable() -> NetConfig {
        NetConfig {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            delay_ms_min: 1,
            delay_ms_max: 5,
            sync_delay_ms_min: 1,
            sync_delay_ms_max: 4,
        }
    }
}

/// What the invariants have seen so far.
#[derive(Default)]
struct Checker {
    /// The leader of each epoch ever seen.
    leaders: BTreeMap<i32, NodeId>,
    max_leader_epoch: i32,
    /// Every entry any node ever held below its high watermark: (epoch, payload hash, the highest
    /// leader epoch seen when it was first seen committed).
    committed: BTreeMap<i64, (i32, u64, i32)>,
    /// Leaders whose log was checked for every entry committed before their epoch.
    complete_leaders: BTreeSet<(i32, NodeId)>,
    /// The application state at each applied end offset.
    app_states: BTreeMap<i64, u64>,
    /// What the application side saw go wrong (reported by the next check).
    violations: Vec<String>,
}

pub struct Cluster {
    pub now: Time,
    pub nodes: BTreeMap<NodeId, Node>,
    config: QuorumConfig,
    rng: ChaCha8Rng,
    queue: BTreeMap<(Time, u64), Event>,
    sequence: u64,
    pub net: NetConfig,
    /// Directed links that are cut.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages sent by the nodes being captured.
    captured: BTreeMap<NodeId, Vec<(NodeId, QuorumMessage)>>,
    pub faults: TestFaults,
    checker: Checker,
    /// The application on every node snapshots after this many applied entries.
    pub snapshot_every: Option<u64>,
    pub proposals: u64,
    pub steps: u64,
    /// Snapshots installed from a leader (not those read back at open).
    pub snapshots_installed: u64,
    starting: bool,
    /// Per step, the chance in 1000 that [`Cluster::random_fault`] crashes a node (which comes
    /// back 20-400 ms later; 1-60 ms when crashes are more frequent than the default 3).
    pub crash_per_mille: u64,
    /// Print every event (for debugging one seed).
    pub trace: bool,
    pub crashes: u64,
}

pub fn test_config(node_id: NodeId, voters: &[NodeId]) -> QuorumConfig {
    QuorumConfig {
        node_id,
        voters: voters.to_vec(),
        election_timeout_ms: 100,
        fetch_timeout_ms: 200,
        fetch_interval_ms: 20,
        request_timeout_ms: 50,
        fetch_max_bytes: 300,
        log: LogConfig {
            segment_bytes: 600,
            segment_ms: i64::MAX / 2,
            index_interval_bytes: 128,
            retention_bytes: None,
            retention_ms: None,
            max_batch_bytes: 8192,
        },
    }
}

impl Cluster {
    /// `voters` voters (ids 1..=voters) and `observers` observers (ids after them).
    pub fn new(seed: u64, voters: u32, observers: u32) -> Cluster {
        let voter_ids: Vec<NodeId> = (1..=voters).collect();
        let mut cluster = Cluster {
            now: Time::ZERO,
            nodes: BTreeMap::new(),
            config: test_config(0, &voter_ids),
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BTreeMap::new(),
            sequence: 0,
            net: NetConfig::reliable(),
            cut: BTreeSet::new(),
            captured: BTreeMap::new(),
            faults: TestFaults::default(),
            checker: Checker::default(),
            snapshot_every: None,
            proposals: 0,
            steps: 0,
            snapshots_installed: 0,
            starting: false,
            crash_per_mille: 3,
            trace: false,
            crashes: 0,
        };
        for id in 1..=voters + observers {
            let node = Node {
                id,
                disk: MemDisk::default(),
                rng: ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(u64::from(id))),
                quorum: None,
                incarnation: 0,
                app: AppState::default(),
                applied_entries: 0,
                since_snapshot: 0,
                checked_up_to: 0,
                halted: None,
                syncs_stalled: false,
                held_syncs: Vec::new(),
            };
            cluster.nodes.insert(id, node);
        }
        let ids: Vec<NodeId> = cluster.nodes.keys().copied().collect();
        for id in ids {
            cluster.start(id);
        }
        cluster
    }

    pub fn quorum(&self, id: NodeId) -> &Quorum {
        self.nodes[&id].quorum.as_ref().expect("the node is running")
    }

    fn node_config(&self, id: NodeId) -> QuorumConfig {
        QuorumConfig { node_id: id, ..self.config.clone() }
    }

    fn env_parts(&mut self, id: NodeId) -> (&mut Node, &mut TestFaults, Time) {
        let node = self.nodes.get_mut(&id).expect("a node of the cluster");
        (node, &mut self.faults, self.now)
    }

    /// Opens the node's quorum from its disk (a start or a restart after a crash).
    pub fn start(&mut self, id: NodeId) {
        let config = self.node_config(id);
        let (node, faults, now) = self.env_parts(id);
        assert!(node.quorum.is_none(), "node {id} is already running");
        let mut env = node_env(now, &mut node.disk, &mut node.rng, faults);
        let (quorum, _) = match Quorum::open(&mut env, config) {
            Ok(opened) => opened,
            Err(error) => panic!("node {id} cannot open: {error:?}"),
        };
        node.quorum = Some(quorum);
        node.halted = None;
        node.app = AppState::default();
        node.applied_entries = 0;
        node.checked_up_to = 0;
        node.since_snapshot = 0;
        self.starting = true;
        self.drain(id);
        self.starting = false;
    }

    /// A power loss on the node: unsynced bytes, messages to it, its syncs and timers are lost.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("a node of the cluster");
        node.quorum = None;
        node.disk.crash();
        self.crashes += 1;
        node.incarnation += 1;
        node.held_syncs.clear();
    }

    pub fn is_running(&self, id: NodeId) -> bool {
        self.nodes[&id].quorum.is_some()
    }

    /// Cuts every link between `id` and the others, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.nodes.keys().copied().collect::<Vec<_>>() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Restores the links between `a` and `b`, both ways.
    pub fn connect(&mut self, a: NodeId, b: NodeId) {
        self.cut.remove(&(a, b));
        self.cut.remove(&(b, a));
    }

    /// From now on, every message the node sends is also recorded (see [`Cluster::sent_by`]).
    pub fn capture(&mut self, id: NodeId) {
        self.captured.entry(id).or_default();
    }

    /// The messages recorded since the last call, with their destinations.
    pub fn sent_by(&mut self, id: NodeId) -> Vec<(NodeId, QuorumMessage)> {
        self.captured.get_mut(&id).map(std::mem::take).unwrap_or_default()
    }

    pub fn stall_syncs(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("a node").syncs_stalled = true;
    }

    /// Lets the node's held syncs complete (in the order they were requested).
    pub fn release_syncs(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("a node");
        node.syncs_stalled = false;
        let held = std::mem::take(&mut node.held_syncs);
        for event in held {
            let at = self.now.plus_millis(1);
            self.schedule(at, event);
        }
    }

    /// The node running as leader with the highest epoch, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|node| node.quorum.as_ref().map(|quorum| (node.id, quorum)))
            .filter(|(_, quorum)| quorum.role() == QuorumRole::Leader)
            .max_by_key(|(_, quorum)| quorum.epoch())
            .map(|(id, _)| id)
    }

    pub fn propose(&mut self, id: NodeId, payload: &[u8]) -> Result<i64, ProposeError> {
        let (node, faults, now) = self.env_parts(id);
        let Some(quorum) = node.quorum.as_mut() else { return Err(ProposeError::NotLeader { leader: None }) };
        let mut env = node_env(now, &mut node.disk, &mut node.rng, faults);
        let result = quorum.propose(&mut env, &[payload.to_vec()]);
        if result.is_ok() {
            self.proposals += 1;
        }
        self.drain(id);
        result
    }

    /// Proposes at the leader, if there is one.
    pub fn propose_at_leader(&mut self, payload: &[u8]) -> Option<i64> {
        let leader = self.leader()?;
        self.propose(leader, payload).ok()
    }

    pub fn resign(&mut self, id: NodeId) {
        let (node, faults, now) = self.env_parts(id);
        let Some(quorum) = node.quorum.as_mut() else { return };
        let mut env = node_env(now, &mut node.disk, &mut node.rng, faults);
        quorum.resign(&mut env);
        self.drain(id);
    }

    /// Hands a message to a node directly (as if it just arrived).
    pub fn deliver(&mut self, from: NodeId, to: NodeId, message: QuorumMessage) {
        self.handle(Event::Deliver { from, to, message });
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), event);
    }

    fn random_between(&mut self, low: u64, high: u64) -> u64 {
        low + self.rng.next_u64() % (high - low + 1)
    }

    fn roll(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < per_mille
    }

    /// Executes every effect of the node and applies what it committed.
    fn drain(&mut self, id: NodeId) {
        loop {
            let node = self.nodes.get_mut(&id).expect("a node");
            let Some(quorum) = node.quorum.as_mut() else { return };
            let Some(effect) = quorum.poll_effect() else { break };
            match effect {
                QuorumEffect::Send { to, message } => self.send(id, to, message),
                QuorumEffect::Sync { token, path } => {
                    let node = self.nodes.get_mut(&id).expect("a node");
                    let captured = node.disk.files.get(&path).map(|file| file.current.clone());
                    let event =
                        Event::SyncDone { node: id, incarnation: node.incarnation, token, path, captured };
                    if node.syncs_stalled {
                        node.held_syncs.push(event);
                    } else {
                        let net = self.net;
                        let delay = self.random_between(net.sync_delay_ms_min, net.sync_delay_ms_max);
                        let at = self.now.plus_millis(delay);
                        self.schedule(at, event);
                    }
                }
                QuorumEffect::Halt { reason } => {
                    self.nodes.get_mut(&id).expect("a node").halted = Some(reason);
                }
            }
        }
        self.apply_committed(id);
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: QuorumMessage) {
        if let Some(record) = self.captured.get_mut(&from) {
            record.push((to, message.clone()));
        }
        if self.cut.contains(&(from, to)) || !self.nodes.contains_key(&to) {
            return;
        }
        let net = self.net;
        if self.roll(net.drop_per_mille) {
            return;
        }
        let copies = if self.roll(net.duplicate_per_mille) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.random_between(net.delay_ms_min, net.delay_ms_max);
            let at = self.now.plus_millis(delay);
            self.schedule(at, Event::Deliver { from, to, message: message.clone() });
        }
    }

    fn apply_committed(&mut self, id: NodeId) {
        let snapshot_every = self.snapshot_every;
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("a node");
        let mut snapshot_due = false;
        while let Some(committed) = node.quorum.as_mut().and_then(Quorum::poll_committed) {
            match committed {
                Committed::Snapshot { id: snapshot, bytes } => {
                    let state = AppState::decode(&bytes).unwrap_or_default();
                    if state.applied_end != snapshot.end_offset || snapshot.end_offset < node.app.applied_end
                    {
                        let what = format!(
                            "node {id}: snapshot {snapshot:?} holds {state:?}, applied {:?}",
                            node.app
                        );
                        self.checker.violations.push(what);
                    }
                    node.app = state;
                    node.since_snapshot = 0;
                    if !self.starting {
                        self.snapshots_installed += 1;
                    }
                }
                Committed::Entry { offset, epoch, payload } => {
                    if offset < node.app.applied_end {
                        self.checker
                            .violations
                            .push(format!("node {id}: entry {offset} applied out of order"));
                    }
                    let applied = (epoch, fnv1a64(&payload));
                    if let Some(&(committed_epoch, hash, _)) = self.checker.committed.get(&offset) {
                        if (committed_epoch, hash) != applied {
                            self.checker.violations.push(format!(
                                "StateMachineSafety: node {id} applied {applied:?} at {offset}, committed was ({committed_epoch}, {hash})"
                            ));
                        }
                    }
                    node.app.apply(offset, &payload);
                    node.applied_entries += 1;
                    node.since_snapshot += 1;
                    snapshot_due |= snapshot_every.is_some_and(|every| node.since_snapshot >= every);
                }
            }
            let state = node.app;
            let known = *self.checker.app_states.entry(state.applied_end).or_insert(state.hash);
            if known != state.hash {
                let what = format!(
                    "StateMachineSafety: node {id}: the application state at {} differs",
                    state.applied_end
                );
                self.checker.violations.push(what);
            }
        }
        if snapshot_due {
            node.since_snapshot = 0;
            let bytes = node.app.encode();
            let end_offset = node.app.applied_end;
            let quorum = node.quorum.as_mut().expect("running");
            let mut env = node_env(now, &mut node.disk, &mut node.rng, &mut self.faults);
            quorum.take_snapshot(&mut env, end_offset, bytes);
            self.drain(id);
        }
    }

    fn handle(&mut self, event: Event) {
        let to = match &event {
            Event::Deliver { to, .. } => *to,
            Event::SyncDone { node, .. } => *node,
        };
        let (node, faults, now) = self.env_parts(to);
        if node.quorum.is_none() {
            return;
        }
        let sync = match &event {
            Event::SyncDone { incarnation, path, captured, token, .. } => {
                if *incarnation != node.incarnation {
                    return;
                }
                Some((*token, node.disk.sync(path, captured.clone())))
            }
            Event::Deliver { .. } => None,
        };
        let quorum = node.quorum.as_mut().expect("running");
        let mut env = node_env(now, &mut node.disk, &mut node.rng, faults);
        match (event, sync) {
            (_, Some((token, result))) => quorum.handle_sync_complete(&mut env, token, result),
            (Event::Deliver { from, message, .. }, None) => quorum.handle_message(&mut env, from, message),
            (Event::SyncDone { .. }, None) => unreachable!("a sync completion carries its result"),
        }
        self.drain(to);
    }

    fn fire_timer(&mut self, id: NodeId) {
        let (node, faults, now) = self.env_parts(id);
        let Some(quorum) = node.quorum.as_mut() else { return };
        let mut env = node_env(now, &mut node.disk, &mut node.rng, faults);
        quorum.handle_timer(&mut env);
        self.drain(id);
    }

    /// The earliest timer of any running node: (time, node).
    fn next_timer(&self) -> Option<(Time, NodeId)> {
        self.nodes
            .values()
            .filter_map(|node| node.quorum.as_ref().and_then(Quorum::next_deadline).map(|at| (at, node.id)))
            .min()
    }

    /// Runs one event (a message, a sync completion or a timer), then checks every invariant.
    /// `false` if nothing is left to do.
    pub fn step(&mut self) -> Result<bool, String> {
        let next_event = self.queue.keys().next().copied();
        let next_timer = self.next_timer();
        let event_first = match (next_event, next_timer) {
            (None, None) => return Ok(false),
            (Some((at, _)), Some((timer_at, _))) => at <= timer_at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if event_first {
            let (key, event) = self.queue.pop_first().expect("an event");
            self.now = self.now.max(key.0);
            if self.trace {
                match &event {
                    Event::Deliver { from, to, message } => {
                        eprintln!("{}: {from} -> {to}: {message:?}", self.now)
                    }
                    Event::SyncDone { node, path, .. } => {
                        eprintln!("{}: node {node} synced {path}", self.now)
                    }
                }
            }
            self.handle(event);
        } else {
            let (at, id) = next_timer.expect("a timer");
            self.now = self.now.max(at);
            self.fire_timer(id);
        }
        self.steps += 1;
        self.check()?;
        Ok(true)
    }

    /// Steps until virtual time passes `ms` more milliseconds.
    pub fn run_for(&mut self, ms: u64) -> Result<(), String> {
        let until = self.now.plus_millis(ms);
        while self.now < until {
            let next = self
                .queue
                .keys()
                .next()
                .map(|key| key.0)
                .into_iter()
                .chain(self.next_timer().map(|t| t.0))
                .min();
            match next {
                Some(at) if at <= until => {
                    self.step()?;
                }
                _ => {
                    self.now = until;
                }
            }
        }
        Ok(())
    }

    /// Steps until `done` holds (checked after every step) or `ms` of virtual time pass.
    pub fn run_until(&mut self, ms: u64, done: impl Fn(&Cluster) -> bool) -> Result<bool, String> {
        let until = self.now.plus_millis(ms);
        while self.now < until {
            if done(self) {
                return Ok(true);
            }
            if !self.step()? {
                self.now = until;
            }
        }
        Ok(done(self))
    }

    /// How many offsets any node ever saw committed.
    pub fn committed_count(&self) -> usize {
        self.checker.committed.len()
    }

    /// The highest epoch any leader was seen in.
    pub fn max_leader_epoch(&self) -> i32 {
        self.checker.max_leader_epoch
    }

    /// One line per node, for failure messages.
    pub fn describe(&self) -> String {
        let mut lines = vec![format!("at {}:", self.now)];
        for node in self.nodes.values() {
            match &node.quorum {
                None => lines.push(format!("  node {}: down", node.id)),
                Some(q) => lines.push(format!(
                    "  node {}: {:?} epoch {} voted {:?} log [{}, {}) durable {} hw {} snapshot {:?} applied {}",
                    node.id,
                    q.role(),
                    q.epoch(),
                    q.voted_for(),
                    q.log_start_offset(),
                    q.log_end_offset(),
                    q.durable_end_offset(),
                    q.high_watermark(),
                    q.latest_snapshot(),
                    node.app.applied_end
                )),
            }
        }
        lines.join("\n")
    }

    // ---- invariants ----

    /// The safety invariants over the whole cluster, as only a simulator can see it.
    pub fn check(&mut self) -> Result<(), String> {
        if let Some(violation) = self.checker.violations.first() {
            return Err(violation.clone());
        }
        for node in self.nodes.values() {
            if let Some(reason) = &node.halted {
                return Err(format!("node {} halted: {reason}", node.id));
            }
        }
        self.check_election_safety()?;
        self.check_committed_entries()?;
        self.check_leader_completeness()
    }

    /// At most one leader per epoch.
    fn check_election_safety(&mut self) -> Result<(), String> {
        for node in self.nodes.values() {
            let Some(quorum) = &node.quorum else { continue };
            if quorum.role() != QuorumRole::Leader {
                continue;
            }
            let epoch = quorum.epoch();
            let leader = *self.checker.leaders.entry(epoch).or_insert(node.id);
            if leader != node.id {
                return Err(format!(
                    "ElectionSafety: nodes {leader} and {} both lead epoch {epoch}",
                    node.id
                ));
            }
            self.checker.max_leader_epoch = self.checker.max_leader_epoch.max(epoch);
        }
        Ok(())
    }

    /// Entries below any node's high watermark are committed: they never change and every node
    /// agrees on them (LogMatching, StateMachineSafety).
    fn check_committed_entries(&mut self) -> Result<(), String> {
        let bound = self.checker.max_leader_epoch;
        for node in self.nodes.values_mut() {
            let Some(quorum) = &node.quorum else { continue };
            let high_watermark = quorum.high_watermark();
            if let Some(snapshot) = quorum.latest_snapshot() {
                if let Some(&(epoch, _, _)) = self.checker.committed.get(&(snapshot.end_offset - 1)) {
                    if epoch != snapshot.epoch {
                        return Err(format!(
                            "node {}: snapshot {snapshot:?} disagrees with the log",
                            node.id
                        ));
                    }
                }
            }
            let start = quorum.log_start_offset();
            let from = node.checked_up_to.max(start);
            for entry in &quorum.entries()[(from - start).max(0) as usize..] {
                if entry.offset >= high_watermark {
                    break;
                }
                let seen = (entry.epoch, entry.payload_hash);
                if self.trace && !self.checker.committed.contains_key(&entry.offset) {
                    eprintln!(
                        "{}: node {} {:?} epoch {} hw {} commits {} = {:?}",
                        self.now,
                        node.id,
                        quorum.role(),
                        quorum.epoch(),
                        high_watermark,
                        entry.offset,
                        seen
                    );
                }
                let known = self.checker.committed.entry(entry.offset).or_insert((seen.0, seen.1, bound));
                if (known.0, known.1) != seen {
                    return Err(format!(
                        "StateMachineSafety: node {} holds ({}, {:x}) at committed offset {}, committed was ({}, {:x})",
                        node.id, seen.0, seen.1, entry.offset, known.0, known.1
                    ));
                }
            }
            node.checked_up_to = node.checked_up_to.max(high_watermark);
        }
        Ok(())
    }

    /// A leader of epoch e holds every entry that was committed before e began.
    fn check_leader_completeness(&mut self) -> Result<(), String> {
        for node in self.nodes.values() {
            let Some(quorum) = &node.quorum else { continue };
            if quorum.role() != QuorumRole::Leader {
                continue;
            }
            let epoch = quorum.epoch();
            if !self.checker.complete_leaders.insert((epoch, node.id)) {
                continue;
            }
            let start = quorum.log_start_offset();
            for (&offset, &(entry_epoch, hash, seen_in)) in &self.checker.committed {
                if seen_in >= epoch || offset < start {
                    continue;
                }
                let held = quorum.entries().get((offset - start) as usize).map(|e| (e.epoch, e.payload_hash));
                if held != Some((entry_epoch, hash)) {
                    return Err(format!(
                        "LeaderCompleteness: node {} leads epoch {epoch} without the committed entry at {offset}",
                        node.id
                    ));
                }
            }
        }
        Ok(())
    }

    // ---- random faults ----

    /// One random fault decision, for the property test: crash or restart a node, cut a node
    /// off or heal, each with a small probability.
    pub fn random_fault(&mut self, crashed: &mut BTreeMap<NodeId, Time>) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let now = self.now;
        let restart: Vec<NodeId> = crashed.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for id in restart {
            crashed.remove(&id);
            self.start(id);
        }
        let dice = self.rng.next_u64() % 1000;
        let crash = self.crash_per_mille;
        if dice < crash {
            let id = ids[(self.rng.next_u64() % ids.len() as u64) as usize];
            if self.is_running(id) {
                self.crash(id);
                let back = if crash > 3 { self.random_between(1, 60) } else { self.random_between(20, 400) };
                crashed.insert(id, now.plus_millis(back));
            }
        } else if dice < crash + 3 {
            let id = ids[(self.rng.next_u64() % ids.len() as u64) as usize];
            self.isolate(id);
        } else if dice < crash + 7 {
            self.heal();
        } else if dice < crash + 57 {
            let payload = format!("value {}", self.proposals);
            self.propose_at_leader(payload.as_bytes());
        }
    }
}

/// The environment of one step of a node: its disk and RNG, the cluster's fault switches.
fn node_env<'a>(
    now: Time,
    disk: &'a mut MemDisk,
    rng: &'a mut ChaCha8Rng,
    faults: &'a mut TestFaults,
) -> Env<'a> {
    Env { now, wall_clock_ms: 1_000_000 + now.as_millis() as i64, storage: disk, rng, faults }
}
