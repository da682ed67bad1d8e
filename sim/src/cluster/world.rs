//! The controller workload's world: a KRaft cluster (voters, combined or dedicated, and
//! broker-only observers) on simulated disks and a simulated network, admin clients creating and
//! deleting topics, a fault plan, and the quorum invariants checked after every step.
//!
//! Like the log workload's [`crate::world::World`] it decides nothing: it hands each event to the
//! core's [`Node`] with the node's environment and executes the effects. A run has a chaos phase
//! (the fault plan fires, and a scenario's script, if any) and then a healing phase: the network
//! heals and calms (no more loss, duplication or latency tails), the disks stop failing, paused
//! nodes resume, down nodes restart, admins stop, and the cluster must converge — one
//! active controller, every live node at the same high watermark and metadata image, every live
//! broker registered and unfenced — within the liveness bound.
//!
//! Injected durable damage (bit rot, latent sector errors, misdirected writes) on a voter's metadata
//! log can legitimately break Raft: a voter that lost a committed entry to corruption may vote for
//! a candidate without it (the problem Protocol-Aware Recovery solves; Seedlog's quorum does not
//! yet). A safety anomaly found after such damage hit a voter is therefore reported as an
//! observation (`…-after-damage`), never hidden and never counted as a failure — except
//! `election-safety`, which damage explains only if it hit a voter's persisted election state.
//! Damage after the anomaly, or on observers, excuses nothing. In liveness mode damage hits only a
//! minority of the voters (and broker-only nodes), so a majority keeps good copies.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use seedlog_core::env::{Env, StorageError, Time};
use seedlog_core::metadata::PartitionState;
use seedlog_core::node::{Node, NodeEffect, NodeMessage, NodeSyncToken, ReplicaKey};
use seedlog_core::protocol::{Acks, ClientRequest, ClientResponse};
use seedlog_core::quorum::{FetchResult, QuorumMessage, QuorumRole};
use seedlog_core::replica::{FlushPolicy, Replica, RoleName};

use super::admin::{Admin, AdminOp, AdminOutcome, AdminSettings};
use super::clients::{Client, Consumer, Producer, TopicCreator};
use super::invariants::QuorumChecker;
use super::options::{ClusterOptions, TopicWorkloadOptions};
use super::replicas::ReplicaChecker;
use super::script::{Action, Condition, Script, Target};
use crate::buggify::SimFaults;
use crate::checker::{Anomaly, Verdict};
use crate::clock::SimClock;
use crate::disk::{DamageKind, FaultAtlas, FaultMode, SimDisk, SyncTicket};
use crate::history::History;
use crate::net::{NodeId, Partition, SimNet};
use crate::plan::{Fault, Plan};
use crate::process::{Process, Status};
use crate::report::{ms, Role, RunRecord};
use crate::rng;
use crate::scheduler::{Scheduler, QUEUE_HEADROOM, QUEUE_MAX};
use crate::trace::Trace;
use crate::world::Outcome;

const EVENTS_MAX: u64 = 20_000_000;
/// The cluster workload's bound: its runs take well under 200,000 events; one that reaches this
/// is spinning (a replication or client loop) and is reported, not waited out.
const CLUSTER_EVENTS_MAX: u64 = 2_000_000;
const REBOOT_MS: u64 = 100;
/// The cluster workload's setup (brokers register, the topic is created) must end within this.
const SETUP_MS_MAX: u64 = 30_000;

#[derive(Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: NodeMessage,
    },
    SyncDone {
        node: usize,
        incarnation: u64,
        ticket: Result<SyncTicket, StorageError>,
        token: NodeSyncToken,
    },
    NodeTimer {
        node: usize,
        incarnation: u64,
        deadline: Time,
    },
    AdminAlarm {
        admin: usize,
    },
    ClientAlarm {
        client: usize,
    },
    /// The cluster workload's topic was not created within `SETUP_MS_MAX`: start the chaos anyway.
    SetupTimeout,
    Fault(Fault),
    Start {
        node: usize,
    },
    Resume {
        node: usize,
        incarnation: u64,
    },
    Heal,
    ChaosEnd,
    End,
}

/// A cluster node's process; `start_failed` is kept beside it (see `ClusterWorld::start_failed`).
type NodeSlot = Process<Node, Event>;

struct AdminSlot {
    admin: Admin,
    scheduled: Option<Time>,
}

struct ClientSlot {
    client: Client,
    scheduled: Option<Time>,
}

pub struct ClusterWorld {
    plan: Plan,
    cluster: ClusterOptions,
    scheduler: Scheduler<Event>,
    trace: Trace,
    net: SimNet<NodeMessage>,
    clock: SimClock,
    faults: SimFaults,
    nodes: Vec<NodeSlot>,
    /// Per node: its last start failed (its state could not be read back).
    start_failed: Vec<bool>,
    /// Durable damage on the voters' disks as it happened: (when, the file). Only damage that
    /// came before an anomaly can excuse it.
    voter_damage: Vec<(Time, String)>,
    /// Per voter, how many entries of its disk's damage list were already recorded.
    voter_damage_seen: Vec<usize>,
    admins: Vec<AdminSlot>,
    workload_rng: ChaCha8Rng,
    /// The targeted faults' own stream, so turning them on moves no other draw.
    nemesis_rng: ChaCha8Rng,
    checker: QuorumChecker,
    /// The partition replicas' state invariants (the cluster workload's topic).
    replica_checker: ReplicaChecker,
    /// `acks=all` produce requests sent by clients and not yet answered: (broker, client,
    /// correlation id) → partition, so that the broker's answer can be checked as it leaves.
    acks_all_requests: BTreeMap<(u32, u32, u64), u32>,
    script: Script,
    /// The run report being filled (`run --report`); `None` when none was asked for.
    record: Option<RunRecord>,
    /// The cluster workload: its topic and clients (none in the controller workload).
    topic_workload: Option<TopicWorkloadOptions>,
    clients: Vec<ClientSlot>,
    history: History,
    /// Per node, when it lost power (a crash, a halt's reboot): what unsynced data it lost.
    power_losses: Vec<Vec<Time>>,
    /// The workload topic's partitions as the newest metadata image any node holds shows them,
    /// and that image's end offset: each change is traced, and each ISR is kept for the excuses.
    partition_states: BTreeMap<u32, PartitionState>,
    partition_states_offset: i64,
    /// Per partition, every ISR the metadata showed, with when it first did: `(when, isr)`.
    isr_history: BTreeMap<u32, Vec<(Time, Vec<u32>)>>,
    /// Durable damage on any node's partition data as it happened: (node, when, file).
    data_damage: Vec<(u32, Time, String)>,
    /// Durable damage to any node's metadata (quorum state, metadata log, snapshots): (node, when).
    /// A broker reading a damaged image may act on a wrong view of its partitions.
    metadata_damage: Vec<(u32, Time)>,
    /// Per node, how many entries of its disk's damage list were already looked at.
    data_damage_seen: Vec<usize>,
    final_reads_started: bool,
    /// When the fault plan and the chaos phase started.
    chaos_started_at: Option<Time>,
    chaos_over: bool,
    converged_at: Option<Time>,
    finished: bool,
    sequence: u64,
}

impl ClusterWorld {
    pub fn new(plan: Plan, script: Script, emit_trace: bool) -> ClusterWorld {
        let options = &plan.options;
        let cluster = options.cluster.clone().expect("a controller-workload plan has cluster options");
        let seed = plan.seed;
        let node_count = cluster.nodes() as usize;
        // Which nodes' disks may take durable damage in liveness mode: a minority of the voters and
        // every broker-only node, so that a majority of the quorum always keeps good copies.
        let damageable_voters = (cluster.voters as usize - 1) / 2;
        let damageable: Vec<usize> =
            (0..damageable_voters).chain(cluster.voters as usize..node_count).collect();
        let atlas = FaultAtlas::new(damageable.len().max(1) + 1, &mut rng::stream(seed, "atlas"));
        let nodes = (0..node_count)
            .map(|index| {
                let mut disk =
                    SimDisk::new(options.disk.clone(), rng::stream(seed, &format!("disk/{index}")));
                if let Some(replica) = damageable.iter().position(|&n| n == index) {
                    disk.set_atlas(replica, atlas.clone());
                }
                NodeSlot::new(NodeId(index as u32), disk, rng::stream(seed, &format!("node/{index}")))
            })
            .collect();
        let targets: Vec<NodeId> = (0..cluster.nodes()).map(NodeId).collect();
        let settings = AdminSettings {
            interval_ms: cluster.admin_interval_ms,
            timeout_ms: cluster.admin_timeout_ms,
            topic_names: cluster.topic_names,
            partitions_max: cluster.partitions_max,
            replication_factor_max: cluster.brokers().min(3) as u16,
            unclean_topics: cluster.unclean_topics,
        };
        let admins = (0..cluster.admins)
            .map(|process| AdminSlot {
                admin: Admin::new(process, NodeId(cluster.nodes() + process), targets.clone(), &settings),
                scheduled: None,
            })
            .collect();
        let all_nodes = crate::plan::all_nodes(options).len();
        let topic_workload = options.topic_workload.clone();
        let client_base = cluster.nodes() + cluster.admins;
        let clients = match &topic_workload {
            Some(workload) => {
                let duplicates = options.net.duplicate_probability > 0.0;
                topic_clients(seed, &cluster, workload, client_base, duplicates)
            }
            None => Vec::new(),
        };
        ClusterWorld {
            scheduler: Scheduler::new(QUEUE_MAX),
            trace: Trace::new(emit_trace),
            net: SimNet::new(options.net.clone(), rng::stream(seed, "network")),
            clock: SimClock::new(options.clock.clone(), rng::stream(seed, "clock"), all_nodes),
            faults: SimFaults::new(
                options.buggify,
                options.plants.iter().copied().collect(),
                rng::stream(seed, "buggify"),
            ),
            start_failed: vec![false; node_count],
            voter_damage: Vec::new(),
            voter_damage_seen: vec![0; cluster.voters as usize],
            nodes,
            admins,
            workload_rng: rng::stream(seed, "workload"),
            nemesis_rng: rng::stream(seed, "faults/nemesis"),
            checker: QuorumChecker::default(),
            replica_checker: ReplicaChecker::default(),
            acks_all_requests: BTreeMap::new(),
            script,
            record: None,
            topic_workload,
            clients,
            history: History::default(),
            power_losses: vec![Vec::new(); node_count],
            partition_states: BTreeMap::new(),
            partition_states_offset: -1,
            isr_history: BTreeMap::new(),
            data_damage: Vec::new(),
            metadata_damage: Vec::new(),
            data_damage_seen: vec![0; node_count],
            final_reads_started: false,
            chaos_started_at: None,
            chaos_over: false,
            converged_at: None,
            finished: false,
            sequence: 0,
            cluster,
            plan,
        }
    }

    /// Fills a [`RunRecord`] as the run goes (see the contract in [`crate::report`]).
    pub fn recording(mut self) -> ClusterWorld {
        let mut record = RunRecord::for_options(&self.plan.options);
        if let Some(workload) = &self.topic_workload {
            record.header.partitions =
                (0..workload.topic.partitions).map(|p| format!("{}-{p}", workload.topic.name)).collect();
        }
        self.record = Some(record);
        self
    }

    pub fn run(mut self) -> Outcome {
        for node in 0..self.nodes.len() {
            self.nodes[node].start_scheduled = true;
            self.scheduler.schedule(Time::ZERO, Event::Start { node });
        }
        for admin in 0..self.admins.len() {
            self.arm_admin(admin);
        }
        for client in 0..self.clients.len() {
            self.arm_client(client, Time::ZERO);
        }
        if self.topic_workload.is_some() {
            // The chaos starts once the topic exists (see `start_chaos`).
            self.scheduler.schedule(Time::from_millis(SETUP_MS_MAX), Event::SetupTimeout);
        } else {
            self.start_chaos(Time::ZERO);
        }
        while let Some((now, sequence, event)) = self.scheduler.pop() {
            self.step(now, sequence, event);
            self.note_voter_damage(now);
            if self.topic_workload.is_some() {
                self.note_data_damage(now);
            }
            if !self.chaos_over && self.chaos_started_at.is_some() {
                self.run_script(now);
            }
            if self.finished {
                break;
            }
            if self.scheduler.is_nearly_full(QUEUE_HEADROOM) {
                self.checker.report(
                    now,
                    Anomaly::new(
                        "event-budget-exceeded",
                        format!("at {now}: {} events queued (a message storm)", self.scheduler.len()),
                    ),
                );
                break;
            }
            let events_max = if self.topic_workload.is_some() { CLUSTER_EVENTS_MAX } else { EVENTS_MAX };
            if self.trace.events() >= events_max {
                self.checker.report(
                    now,
                    Anomaly::new(
                        "event-budget-exceeded",
                        format!("the run did not end within {events_max} events"),
                    ),
                );
                break;
            }
        }
        self.finish()
    }

    /// The fault plan, the script and the chaos phase start at `now`: at once in the controller
    /// workload, once the topic exists in the cluster workload (so a seed's faults always meet
    /// producers and consumers at work, never an empty cluster still being set up). The plan's
    /// times count from here.
    fn start_chaos(&mut self, now: Time) {
        if self.chaos_started_at.is_some() {
            return;
        }
        self.chaos_started_at = Some(now);
        let options = &self.plan.options;
        let (chaos_ms, heal_ms) = (options.chaos_ms, options.heal_ms);
        for timed in self.plan.faults.clone() {
            self.scheduler.schedule(now.plus_millis(timed.at_ms), Event::Fault(timed.fault));
        }
        self.scheduler.schedule(now.plus_millis(chaos_ms), Event::ChaosEnd);
        self.scheduler.schedule(now.plus_millis(chaos_ms + heal_ms), Event::End);
        self.script.start(now);
        if self.topic_workload.is_some() {
            self.trace.event(self.sequence, now, &"sim", format_args!("chaos starts"));
        }
    }

    /// Traces a delivered message: hashed from its fields, rendered only when the trace is shown.
    fn trace_delivery(&mut self, now: Time, sequence: u64, from: NodeId, to: NodeId, message: &NodeMessage) {
        let client_lines = self.topic_workload.is_some();
        let render = || {
            let line = client_lines.then(|| summarize_client(message)).flatten();
            format!("recv from {from}: {}", line.unwrap_or_else(|| summarize(message)))
        };
        self.trace.structured(sequence, now, &to, "recv", &(from, message), render);
    }

    /// In the cluster workload: the chaos starts when the topic creator is done.
    fn start_chaos_once_created(&mut self, now: Time) {
        if self.chaos_started_at.is_none()
            && self.clients.iter().any(|slot| matches!(&slot.client, Client::Creator(c) if c.is_done()))
        {
            self.start_chaos(now);
        }
    }

    fn step(&mut self, now: Time, sequence: u64, event: Event) {
        self.sequence = sequence;
        match event {
            Event::Deliver { from, to, message } => self.deliver(now, sequence, from, to, message),
            Event::SyncDone { node, incarnation, ticket, token } => {
                if self.deferred(node, incarnation, || Event::SyncDone {
                    node,
                    incarnation,
                    ticket: ticket.clone(),
                    token,
                }) {
                    return;
                }
                let result = ticket.and_then(|ticket| self.nodes[node].disk.complete_sync(ticket));
                self.trace.event(
                    sequence,
                    now,
                    &self.nodes[node].id,
                    format_args!("sync {token:?} done: {result:?}"),
                );
                self.with_node(now, node, |n, env| n.handle_sync_complete(env, token, result));
            }
            Event::NodeTimer { node, incarnation, deadline } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].timer_at != Some(deadline)
                {
                    return;
                }
                if self.deferred(node, incarnation, || Event::NodeTimer { node, incarnation, deadline }) {
                    return;
                }
                self.nodes[node].timer_at = None;
                self.trace.event(sequence, now, &self.nodes[node].id, format_args!("timer"));
                self.with_node(now, node, |n, env| n.handle_timer(env));
            }
            Event::AdminAlarm { admin } => self.wake_admin(now, sequence, admin),
            Event::ClientAlarm { client } => self.wake_client(now, sequence, client),
            Event::SetupTimeout => {
                if self.chaos_started_at.is_none() {
                    self.trace.event(
                        sequence,
                        now,
                        &"sim",
                        format_args!("the topic was not created in time"),
                    );
                    self.start_chaos(now);
                }
            }
            Event::Fault(fault) => self.inject(now, sequence, fault),
            Event::Start { node } => self.start_node(now, sequence, node),
            Event::Resume { node, incarnation } => self.resume(now, sequence, node, incarnation),
            Event::Heal => {
                if let Some(record) = &mut self.record {
                    record.net_healed(ms(now));
                }
                self.trace.event(sequence, now, &"sim", format_args!("heal network"));
                self.net.heal();
            }
            Event::ChaosEnd => self.end_chaos(now, sequence),
            Event::End => {
                self.trace.event(sequence, now, &"sim", format_args!("liveness bound reached"));
                self.finished = true;
            }
        }
    }

    fn deferred(&mut self, node: usize, incarnation: u64, event: impl FnOnce() -> Event) -> bool {
        self.nodes[node].hold(incarnation, event)
    }

    fn deliver(&mut self, now: Time, sequence: u64, from: NodeId, to: NodeId, message: NodeMessage) {
        if !self.net.arrive(from, to) {
            self.trace.event(sequence, now, &to, format_args!("drop from {from} (link cut)"));
            return;
        }
        let index = to.0 as usize;
        if index < self.nodes.len() {
            let slot = &mut self.nodes[index];
            match slot.status {
                Status::Down => {
                    self.trace.event(sequence, now, &to, format_args!("drop from {from} (node down)"));
                    return;
                }
                Status::Paused => {
                    slot.deferred.push(Event::Deliver { from, to, message });
                    return;
                }
                Status::Up | Status::ShuttingDown { .. } => {}
            }
            self.trace_delivery(now, sequence, from, to, &message);
            self.with_node(now, index, |n, env| n.handle_message(env, from.0, message));
            return;
        }
        let client_base = self.nodes.len() + self.admins.len();
        if let Some(client) = index.checked_sub(client_base).filter(|c| *c < self.clients.len()) {
            self.trace_delivery(now, sequence, from, to, &message);
            if let NodeMessage::ClientResponse { correlation_id, response } = message {
                let slot = &mut self.clients[client];
                slot.client.on_response(now, correlation_id, response, &mut self.history);
                self.poll_client(now, client);
                self.start_chaos_once_created(now);
            }
            self.check_convergence(now);
            return;
        }
        let Some(admin) = index.checked_sub(self.nodes.len()).filter(|a| *a < self.admins.len()) else {
            return;
        };
        self.trace_delivery(now, sequence, from, to, &message);
        if let NodeMessage::ControllerResponse { correlation_id, response } = message {
            self.admins[admin].admin.on_response(now, correlation_id, response);
            self.arm_admin(admin);
        }
        self.check_convergence(now);
    }

    fn wake_admin(&mut self, now: Time, sequence: u64, admin: usize) {
        let slot = &mut self.admins[admin];
        if slot.admin.alarm() != Some(now) || slot.scheduled != Some(now) {
            return;
        }
        slot.scheduled = None;
        let outgoing = slot.admin.on_wake(now, &mut self.workload_rng);
        let from = slot.admin.node;
        self.trace.event(sequence, now, &from, format_args!("admin wake, {} requests", outgoing.len()));
        for (to, message) in outgoing {
            self.send(now, from, to, message);
        }
        self.arm_admin(admin);
        self.check_convergence(now);
    }

    fn arm_admin(&mut self, admin: usize) {
        let slot = &mut self.admins[admin];
        if let Some(at) = slot.admin.alarm() {
            if slot.scheduled != Some(at) {
                slot.scheduled = Some(at);
                self.scheduler.schedule(at, Event::AdminAlarm { admin });
            }
        }
    }

    fn wake_client(&mut self, now: Time, sequence: u64, client: usize) {
        let slot = &mut self.clients[client];
        if slot.scheduled != Some(now) {
            return; // Moved since it was scheduled.
        }
        slot.scheduled = None;
        let node = slot.client.node();
        self.trace.event(sequence, now, &node, format_args!("client wake"));
        self.poll_client(now, client);
        self.check_convergence(now);
    }

    /// Lets a client do what it can now, sends what it asks, and sets its alarm.
    fn poll_client(&mut self, now: Time, client: usize) {
        let node = self.clients[client].client.node();
        let wall_clock_ms = self.clock.wall_clock_ms(node, now);
        let outgoing = self.clients[client].client.poll(now, wall_clock_ms, &mut self.history);
        for (to, message) in outgoing {
            self.send(now, node, to, message);
        }
        self.arm_client(client, now);
    }

    /// Schedules the client's alarm. A client has done all it can at `now`, so an alarm not after
    /// `now` (a bug) would spin in place: it is put 1 ms later instead.
    fn arm_client(&mut self, client: usize, now: Time) {
        let slot = &mut self.clients[client];
        if let Some(at) = slot.client.alarm() {
            let at = if at <= now { now.plus_millis(1) } else { at };
            if slot.scheduled != Some(at) {
                slot.scheduled = Some(at);
                self.scheduler.schedule(at, Event::ClientAlarm { client });
            }
        }
    }

    fn send(&mut self, now: Time, from: NodeId, to: NodeId, message: NodeMessage) {
        if let NodeMessage::Client {
            correlation_id,
            request: ClientRequest::Produce { partition, acks, .. },
        } = &message
        {
            if *acks == Acks::All && (to.0 as usize) < self.nodes.len() {
                self.acks_all_requests.insert((to.0, from.0, *correlation_id), *partition);
            }
        }
        for (at, message) in self.net.send(now, from, to, message) {
            self.scheduler.schedule(at, Event::Deliver { from, to, message });
        }
    }

    // ---- nodes ----

    fn with_node(&mut self, now: Time, node: usize, input: impl FnOnce(&mut Node, &mut Env<'_>)) {
        let wall_clock_ms = self.clock.wall_clock_ms(self.nodes[node].id, now);
        let slot = &mut self.nodes[node];
        let Some(mut core) = slot.core.take() else { return };
        input(&mut core, &mut slot.env(now, wall_clock_ms, &mut self.faults));
        slot.core = Some(core);
        self.execute_effects(now, node);
        self.check_node(now, node);
        self.arm_timer(node);
        self.check_convergence(now);
    }

    fn execute_effects(&mut self, now: Time, node: usize) {
        loop {
            let slot = &mut self.nodes[node];
            let Some(core) = slot.core.as_mut() else { return };
            let Some(effect) = core.poll_effect() else { return };
            let sequence = self.sequence;
            match effect {
                NodeEffect::Send { to, message } => {
                    let from = slot.id;
                    if let NodeMessage::ClientResponse {
                        correlation_id,
                        response: ClientResponse::Produce(answer),
                    } = &message
                    {
                        if let Some(partition) = self.acks_all_requests.remove(&(from.0, to, *correlation_id))
                        {
                            if let Ok(ok) = answer {
                                self.check_acks_all(now, partition, ok.base_offset);
                            }
                        }
                    }
                    let granted_vote = matches!(
                        message,
                        NodeMessage::Quorum(QuorumMessage::VoteResponse {
                            granted: true,
                            pre_vote: false,
                            ..
                        })
                    );
                    self.send(now, from, NodeId(to), message);
                    if granted_vote && self.crash_after_vote() {
                        self.trace.event(
                            sequence,
                            now,
                            &from,
                            format_args!("nemesis: crash right after a granted vote"),
                        );
                        self.power_off(now, node, "crash after vote");
                        let down_ms = rng::range_u64(
                            &mut self.nemesis_rng,
                            1,
                            self.plan.options.faults.down_ms_max.max(1),
                        );
                        self.schedule_start(node, now.plus_millis(down_ms));
                        return;
                    }
                }
                NodeEffect::Sync { token, path } => {
                    let ticket = slot.disk.request_sync(&path);
                    let latency_ns = slot.disk.sync_latency_ns();
                    let incarnation = slot.incarnation;
                    self.scheduler.schedule_after_nanos(
                        latency_ns,
                        Event::SyncDone { node, incarnation, ticket, token },
                    );
                }
                NodeEffect::Halt { reason } => {
                    let id = slot.id;
                    self.trace.event(sequence, now, &id, format_args!("HALT: {reason}"));
                    self.check_node(now, node);
                    self.power_off(now, node, "reboot after halt");
                    self.schedule_start(node, now.plus_millis(REBOOT_MS));
                    return;
                }
                NodeEffect::ShutdownComplete => {
                    let id = slot.id;
                    let Status::ShuttingDown { down_ms } = slot.status else {
                        panic!("ShutdownComplete without a shutdown in progress");
                    };
                    self.trace.event(sequence, now, &id, format_args!("controlled shutdown complete"));
                    if let Some(record) = &mut self.record {
                        record.node_down(ms(now), node as u32, "controlled shutdown");
                    }
                    self.check_node(now, node);
                    self.nodes[node].stop();
                    self.schedule_start(node, now.plus_millis(down_ms));
                    return;
                }
            }
        }
    }

    /// Whether the vote nemesis strikes now (during the chaos only).
    fn crash_after_vote(&mut self) -> bool {
        let probability = self.cluster.crash_after_vote_probability;
        !self.chaos_over && probability > 0.0 && rng::chance(&mut self.nemesis_rng, probability)
    }

    fn arm_timer(&mut self, node: usize) {
        let slot = &mut self.nodes[node];
        let Some(core) = slot.core.as_ref() else { return };
        let Some(deadline) = core.next_deadline() else { return };
        if slot.timer_at != Some(deadline) {
            slot.timer_at = Some(deadline);
            let incarnation = slot.incarnation;
            self.scheduler.schedule(
                deadline.max(self.scheduler.now()),
                Event::NodeTimer { node, incarnation, deadline },
            );
        }
    }

    fn schedule_start(&mut self, node: usize, at: Time) {
        if !self.nodes[node].start_scheduled {
            self.nodes[node].start_scheduled = true;
            self.scheduler.schedule(at, Event::Start { node });
        }
    }

    fn start_node(&mut self, now: Time, sequence: u64, node: usize) {
        self.nodes[node].start_scheduled = false;
        if self.nodes[node].status != Status::Down {
            return;
        }
        let wall_clock_ms = self.clock.wall_clock_ms(self.nodes[node].id, now);
        let mut config = self.cluster.node_config(node as u32);
        if let Some(workload) = &self.topic_workload {
            workload.apply(&mut config.replication);
        }
        let slot = &mut self.nodes[node];
        match Node::start(&mut slot.env(now, wall_clock_ms, &mut self.faults), config) {
            Ok(core) => {
                slot.core = Some(core);
                slot.status = Status::Up;
                slot.incarnation += 1;
                self.start_failed[node] = false;
                let id = slot.id;
                self.trace.event(sequence, now, &id, format_args!("started"));
                if let Some(record) = &mut self.record {
                    record.node_up(ms(now), node as u32);
                }
                self.checker.node_restarted(node as u32);
                self.replica_checker.node_restarted(node as u32);
                self.execute_effects(now, node);
                self.check_node(now, node);
                self.arm_timer(node);
            }
            Err(error) => {
                self.start_failed[node] = true;
                let id = slot.id;
                self.trace.event(sequence, now, &id, format_args!("start failed: {error:?}; retrying"));
                // Retrying a start that read back unreadable state only repeats it; wait longer.
                self.schedule_start(node, now.plus_millis(REBOOT_MS * 10));
            }
        }
    }

    fn power_off(&mut self, now: Time, node: usize, why: &str) {
        self.power_losses[node].push(now);
        if let Some(record) = &mut self.record {
            record.node_down(ms(now), node as u32, &format!("power off ({why})"));
        }
        let report = self.nodes[node].power_off();
        let id = self.nodes[node].id;
        self.trace.event(self.sequence, now, &id, format_args!("power off ({why}): {report:?}"));
    }

    fn resume(&mut self, now: Time, sequence: u64, node: usize, incarnation: u64) {
        let Some(deferred) = self.nodes[node].resume(incarnation) else { return };
        if let Some(record) = &mut self.record {
            record.node_resumed(ms(now), node as u32);
        }
        let id = self.nodes[node].id;
        self.trace.event(sequence, now, &id, format_args!("resume ({} deferred events)", deferred.len()));
        for event in deferred {
            self.scheduler.schedule(now, event);
        }
    }

    // ---- faults and the script ----

    fn inject(&mut self, now: Time, sequence: u64, fault: Fault) {
        if self.chaos_over {
            return;
        }
        self.trace.event(sequence, now, &"sim", format_args!("fault: {fault}"));
        match fault {
            Fault::Crash { node, down_ms } => {
                let node = node.0 as usize;
                if self.nodes[node].status != Status::Down {
                    self.power_off(now, node, "crash");
                    self.schedule_start(node, now.plus_millis(down_ms));
                }
            }
            Fault::Shutdown { node, down_ms } => {
                let node = node.0 as usize;
                if self.nodes[node].status == Status::Up {
                    self.nodes[node].status = Status::ShuttingDown { down_ms };
                    self.with_node(now, node, |n, env| n.begin_shutdown(env));
                }
            }
            Fault::Pause { node, duration_ms } => {
                let node = node.0 as usize;
                if self.nodes[node].status == Status::Up {
                    self.nodes[node].status = Status::Paused;
                    if let Some(record) = &mut self.record {
                        record.node_paused(ms(now), node as u32);
                    }
                    let incarnation = self.nodes[node].incarnation;
                    self.scheduler
                        .schedule(now.plus_millis(duration_ms), Event::Resume { node, incarnation });
                }
            }
            Fault::Partition { partition, duration_ms } => {
                if let Some(record) = &mut self.record {
                    record.net_partition(ms(now), &partition);
                }
                self.net.partition(&partition);
                self.scheduler.schedule(now.plus_millis(duration_ms), Event::Heal);
            }
            Fault::Clog { from, to, duration_ms } => self.net.clog(from, to, now.plus_millis(duration_ms)),
            Fault::ClockJump { node, delta_ms } => self.clock.jump(node, delta_ms),
            Fault::BitRot { node } => {
                let damage = self.nodes[node.0 as usize].disk.rot();
                self.trace.event(sequence, now, &node, format_args!("bit rot: {damage:?}"));
            }
            Fault::LatentSectorError { node } => {
                let damage = self.nodes[node.0 as usize].disk.add_latent_sector_error();
                self.trace.event(sequence, now, &node, format_args!("latent sector error: {damage:?}"));
            }
        }
    }

    /// Fires the scenario script's next steps whose triggers hold now.
    fn run_script(&mut self, now: Time) {
        let leader = self.active_leader();
        let candidate = self.nodes.iter().find_map(|slot| {
            let core = slot.core.as_ref().filter(|_| slot.status == Status::Up)?;
            (core.quorum().role() == QuorumRole::Candidate).then_some(slot.id.0)
        });
        let partition = self.partition_zero();
        let holds = |condition: Condition| match condition {
            Condition::Always => true,
            Condition::LeaderElected => leader.is_some(),
            Condition::ElectionUnderWay => candidate.is_some(),
            Condition::PartitionLed => partition.as_ref().is_some_and(|state| state.leader.is_some()),
            Condition::IsrShrunk => {
                partition.as_ref().is_some_and(|state| state.leader.is_some() && state.isr.len() == 1)
            }
        };
        while let Some(action) = self.script.due(now, holds) {
            let brokers: Vec<u32> =
                (0..self.cluster.nodes()).filter(|node| self.cluster.is_broker(*node)).collect();
            let resolve = |target: Target| -> Vec<u32> {
                match target {
                    Target::Leader => leader.into_iter().collect(),
                    Target::Candidate => candidate.into_iter().collect(),
                    Target::Node(node) => vec![node],
                    Target::PartitionLeader => {
                        partition.as_ref().and_then(|state| state.leader).into_iter().collect()
                    }
                    Target::PartitionFollowers => partition
                        .as_ref()
                        .map(|state| {
                            state.replicas.iter().copied().filter(|r| Some(*r) != state.leader).collect()
                        })
                        .unwrap_or_default(),
                    Target::AllBrokers => brokers.clone(),
                }
            };
            let faults: Vec<Fault> = match action {
                Action::Crash { target, down_ms } => {
                    resolve(target).into_iter().map(|n| Fault::Crash { node: NodeId(n), down_ms }).collect()
                }
                Action::Shutdown { target, down_ms } => resolve(target)
                    .into_iter()
                    .map(|n| Fault::Shutdown { node: NodeId(n), down_ms })
                    .collect(),
                Action::Pause { target, duration_ms } => resolve(target)
                    .into_iter()
                    .map(|n| Fault::Pause { node: NodeId(n), duration_ms })
                    .collect(),
                Action::Isolate { target, duration_ms } => resolve(target)
                    .into_iter()
                    .map(|n| Fault::Partition {
                        partition: Partition::Isolate { node: NodeId(n) },
                        duration_ms,
                    })
                    .collect(),
            };
            let sequence = self.sequence;
            if faults.is_empty() {
                self.trace.event(sequence, now, &"script", format_args!("{action:?}: no such node now"));
            } else {
                self.trace.event(sequence, now, &"script", format_args!("{action:?}"));
            }
            for fault in faults {
                self.inject(now, sequence, fault);
            }
        }
    }

    /// Partition 0 of the workload's topic (or of the first topic) in the most advanced metadata
    /// image a live node has applied.
    fn partition_zero(&self) -> Option<seedlog_core::metadata::PartitionState> {
        let image = self
            .nodes
            .iter()
            .filter(|slot| slot.status == Status::Up)
            .filter_map(|slot| slot.core.as_ref())
            .map(|core| core.image())
            .max_by_key(|image| image.end_offset)?;
        let topic = match &self.topic_workload {
            Some(workload) => {
                image.topics_by_name.get(&workload.topic.name).and_then(|id| image.topics.get(id))
            }
            None => image.topics.values().next(),
        }?;
        topic.partitions.get(&0).cloned()
    }

    fn end_chaos(&mut self, now: Time, sequence: u64) {
        self.trace.event(
            sequence,
            now,
            &"sim",
            format_args!("chaos ends: heal, resume, restart, admins stop"),
        );
        self.chaos_over = true;
        self.net.heal();
        self.net.calm();
        for slot in &mut self.nodes {
            slot.disk.calm();
        }
        for node in 0..self.nodes.len() {
            match self.nodes[node].status {
                Status::Paused => {
                    let incarnation = self.nodes[node].incarnation;
                    self.resume(now, sequence, node, incarnation);
                }
                Status::Down => self.schedule_start(node, now),
                Status::Up | Status::ShuttingDown { .. } => {}
            }
        }
        for admin in 0..self.admins.len() {
            self.admins[admin].admin.stop();
        }
        if self.topic_workload.is_some() {
            self.trace.event(sequence, now, &"sim", format_args!("producers and consumers stop"));
            for slot in &mut self.clients {
                match &mut slot.client {
                    Client::Producer(producer) => producer.stop(),
                    Client::Consumer(consumer) if !consumer.is_final() => consumer.stop(),
                    Client::Consumer(_) | Client::Creator(_) => {}
                }
            }
            for client in 0..self.clients.len() {
                self.poll_client(now, client);
            }
        }
    }

    /// Once the chaos is over and every producer is idle (acknowledged, failed or given up), the
    /// final consumers start: whatever they find is all there will be.
    fn start_final_reads(&mut self, now: Time) {
        if !self.chaos_over || self.final_reads_started || self.topic_workload.is_none() {
            return;
        }
        let producers_idle = self.clients.iter().all(|slot| match &slot.client {
            Client::Producer(producer) => producer.is_idle(),
            Client::Consumer(_) | Client::Creator(_) => true,
        });
        if !producers_idle {
            return;
        }
        self.final_reads_started = true;
        self.trace.event(self.sequence, now, &"sim", format_args!("final reads start"));
        for client in 0..self.clients.len() {
            if let Client::Consumer(consumer) = &mut self.clients[client].client {
                if consumer.is_final() {
                    consumer.start(now);
                    self.poll_client(now, client);
                }
            }
        }
    }

    // ---- checks ----

    fn check_node(&mut self, now: Time, node: usize) {
        let slot = &mut self.nodes[node];
        let Some(core) = slot.core.as_mut() else { return };
        let applied = core.take_applied();
        self.checker.check_node(now, node as u32, core, &applied);
        if self.topic_workload.is_some() {
            self.replica_checker.check_node(now, node as u32, core, &slot.disk);
        }
        if let Some(record) = &mut self.record {
            for replica in core.replicas().values() {
                let partition = format!("{}-{}", replica.topic(), replica.partition());
                let role = match replica.role() {
                    RoleName::Leader => Role::Leader,
                    RoleName::Follower { .. } => Role::Follower,
                    _ => Role::None,
                };
                let t_ms = ms(now);
                record.role(t_ms, &partition, node as u32, role, replica.leader_epoch());
                record.offsets(
                    t_ms,
                    &partition,
                    node as u32,
                    replica.log().log_end_offset(),
                    replica.high_watermark(),
                );
            }
        }
        self.follow_partitions(now, node);
    }

    /// A broker is answering an `acks=all` produce with success: the batch must already be on
    /// `min.insync.replicas` replicas.
    fn check_acks_all(&mut self, now: Time, partition: u32, base_offset: i64) {
        let Some(workload) = &self.topic_workload else { return };
        let live = Self::live_replicas(&self.nodes, &workload.topic.name, partition);
        // The answering leader is live, so its replica names the partition's key.
        let Some((_, key, _)) = live.first() else { return };
        let key = *key;
        let replicas: Vec<(u32, &Replica)> =
            live.into_iter().map(|(node, _, replica)| (node, replica)).collect();
        self.replica_checker.check_acks_all(now, key, base_offset, &replicas);
    }

    /// The replicas of `topic`'s `partition` on every node that is not down (a paused node still
    /// holds its log): `(node, key, replica)`.
    fn live_replicas<'a>(
        nodes: &'a [NodeSlot],
        topic: &str,
        partition: u32,
    ) -> Vec<(u32, ReplicaKey, &'a Replica)> {
        nodes
            .iter()
            .filter(|slot| slot.status != Status::Down)
            .filter_map(|slot| Some((slot.id.0, slot.core.as_ref()?)))
            .flat_map(|(node, core)| {
                core.replicas()
                    .iter()
                    .filter(|(key, replica)| key.1 == partition && replica.topic() == topic)
                    .map(move |(key, replica)| (node, *key, replica))
            })
            .collect()
    }

    /// Traces each change to the workload topic's partitions (leader, epoch, ISR) the first time
    /// any node's metadata image shows it, and keeps each partition's ISR history.
    fn follow_partitions(&mut self, now: Time, node: usize) {
        let Some(workload) = &self.topic_workload else { return };
        let Some(core) = self.nodes[node].core.as_ref() else { return };
        let image = core.image();
        if image.end_offset <= self.partition_states_offset {
            return;
        }
        self.partition_states_offset = image.end_offset;
        let Some(topic) = image.topics_by_name.get(&workload.topic.name).and_then(|id| image.topics.get(id))
        else {
            return;
        };
        for (partition, state) in &topic.partitions {
            if self.partition_states.get(partition) == Some(state) {
                continue;
            }
            self.trace.event(
                self.sequence,
                now,
                &"sim",
                format_args!(
                    "partition {}-{partition}: leader {:?} epoch {} isr {:?} (partition epoch {})",
                    workload.topic.name, state.leader, state.leader_epoch, state.isr, state.partition_epoch
                ),
            );
            let history = self.isr_history.entry(*partition).or_default();
            if history.last().map(|(_, isr)| isr) != Some(&state.isr) {
                history.push((now, state.isr.clone()));
            }
            self.partition_states.insert(*partition, state.clone());
        }
    }

    /// The node that is quorum leader and active controller, if exactly one live node is.
    fn active_leader(&self) -> Option<u32> {
        let mut leaders = self.nodes.iter().filter_map(|slot| {
            let core = slot.core.as_ref().filter(|_| slot.status == Status::Up)?;
            core.is_active_controller().then_some(slot.id.0)
        });
        let leader = leaders.next()?;
        leaders.next().is_none().then_some(leader)
    }

    /// After the chaos: has the cluster converged? (Checked after every step of the healing phase.)
    fn check_convergence(&mut self, now: Time) {
        if !self.chaos_over || self.converged_at.is_some() {
            return;
        }
        self.start_final_reads(now);
        if let Err(_why) = self.convergence() {
            return;
        }
        self.converged_at = Some(now);
        let sequence = self.sequence;
        self.trace.event(sequence, now, &"sim", format_args!("converged"));
        self.finished = true;
    }

    /// `Ok` when the cluster has converged, else why not (for the liveness report).
    fn convergence(&self) -> Result<(), String> {
        for slot in &self.clients {
            match &slot.client {
                Client::Creator(creator) if !creator.is_done() => {
                    return Err("the topic was not created".into());
                }
                Client::Producer(producer) if !producer.is_idle() => {
                    return Err(format!("producer {} still has records to deliver", producer.process));
                }
                Client::Consumer(consumer) if consumer.is_final() && !consumer.is_done() => {
                    // Durable damage to its replicas may have destroyed what it waits for (its
                    // final read is then judged as far as it got, not waited out).
                    if self.final_read_unreachable(consumer.partition, consumer.final_target()) {
                        continue;
                    }
                    return Err(format!(
                        "the final read of partition {} has not finished",
                        consumer.partition
                    ));
                }
                _ => {}
            }
        }
        if let Some(admin) = self.admins.iter().find(|slot| !slot.admin.is_idle()) {
            return Err(format!("admin {} still has a request outstanding", admin.admin.process));
        }
        let Some(leader) = self.active_leader() else {
            return Err("no single active controller".into());
        };
        let leader_core = self.nodes[leader as usize].core.as_ref().expect("the leader is up");
        let high_watermark = leader_core.quorum().high_watermark();
        if leader_core.quorum().log_end_offset() != high_watermark {
            return Err(format!(
                "leader n{leader} has uncommitted entries ({} of {})",
                high_watermark,
                leader_core.quorum().log_end_offset()
            ));
        }
        // Images at the same offset are equal, or the invariants already reported otherwise.
        let image = leader_core.image();
        for (slot, start_failed) in self.nodes.iter().zip(&self.start_failed) {
            let index = slot.id.0;
            if slot.status != Status::Up {
                // A node whose own durable state was damaged past reading is excused.
                if *start_failed && slot.damaged() {
                    continue;
                }
                return Err(format!("n{index} is not up ({:?})", slot.status));
            }
            let core = slot.core.as_ref().expect("an up node has its core");
            if core.quorum().high_watermark() != high_watermark {
                return Err(format!(
                    "n{index} is at high watermark {} of {high_watermark}",
                    core.quorum().high_watermark()
                ));
            }
            if core.image().end_offset != image.end_offset {
                return Err(format!(
                    "n{index}'s metadata image (end {}) differs from the leader's (end {})",
                    core.image().end_offset,
                    image.end_offset
                ));
            }
            if self.cluster.is_broker(index) {
                let Some((broker_epoch, fenced)) = core.broker_state() else {
                    return Err(format!("broker n{index} is not registered"));
                };
                match image.brokers.get(&index) {
                    Some(registration)
                        if registration.broker_epoch == broker_epoch && !registration.fenced && !fenced => {}
                    other => {
                        return Err(format!(
                        "broker n{index} (epoch {broker_epoch}, fenced {fenced}) is registered as {other:?}"
                    ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Records durable damage (not a torn unsynced write) that appeared on a voter's disk.
    fn note_voter_damage(&mut self, now: Time) {
        for (voter, seen) in self.voter_damage_seen.iter_mut().enumerate() {
            let damage = self.nodes[voter].disk.damage();
            for item in &damage[*seen..] {
                if !matches!(item.kind, DamageKind::Torn { .. }) {
                    self.voter_damage.push((now, item.path.clone()));
                }
            }
            *seen = damage.len();
        }
    }

    /// Whether injected damage explains an anomaly found at `at`. Raft assumes a voter keeps what
    /// it synced, so damage to a voter's metadata log before `at` can break any invariant; but
    /// two leaders in one epoch need a voter to forget its vote, so `election-safety` is excused
    /// only by damage to a persisted election state.
    fn damage_explains(&self, kind: &str, at: Time) -> bool {
        self.voter_damage.iter().any(|(when, path)| {
            *when <= at && (kind != "election-safety" || path.starts_with("metadata/quorum-state"))
        })
    }

    fn finish(mut self) -> Outcome {
        let mut anomalies = Vec::new();
        let mut observations = Vec::new();
        let end = self.scheduler.now();
        // A node that cannot start for damage to its own state (a broker-only node may take any
        // damage in liveness mode) can leave partitions below min.insync.replicas for good.
        let unstartable =
            self.nodes.iter().zip(&self.start_failed).any(|(slot, failed)| *failed && slot.damaged());
        let damage = self.damage_explains("", end) || unstartable;
        let times = std::mem::take(&mut self.checker.anomaly_times);
        for (anomaly, at) in std::mem::take(&mut self.checker.anomalies).into_iter().zip(times) {
            if anomaly.kind != "event-budget-exceeded" && self.damage_explains(&anomaly.kind, at) {
                observations.push(Anomaly::new(&format!("{}-after-damage", anomaly.kind), anomaly.detail));
            } else {
                anomalies.push(anomaly);
            }
        }
        self.judge_replica_states(&mut anomalies, &mut observations);
        let liveness_required = self.plan.options.faults.mode == FaultMode::Liveness;
        match (self.converged_at, self.convergence()) {
            (Some(_), _) => {
                let leader = self.active_leader().expect("converged with a leader") as usize;
                let image = self.nodes[leader].core.as_ref().expect("leader up").image().clone();
                let ops = self.admin_ops();
                let duplicates = self.plan.options.net.duplicate_probability > 0.0;
                for anomaly in check_admin_history(&ops, &image, duplicates) {
                    if damage {
                        observations
                            .push(Anomaly::new(&format!("{}-after-damage", anomaly.kind), anomaly.detail));
                    } else {
                        anomalies.push(anomaly);
                    }
                }
            }
            (None, result) => {
                let why = result.err().unwrap_or_else(|| "the run ended early".into());
                let anomaly = Anomaly::new(
                    "no-convergence",
                    format!(
                        "the cluster did not converge within {} ms after the chaos: {why}",
                        self.plan.options.heal_ms
                    ),
                );
                if liveness_required && !damage {
                    anomalies.push(anomaly);
                } else {
                    observations.push(anomaly);
                }
            }
        }
        let (acknowledged, confirmed) = if self.topic_workload.is_some() {
            let liveness_required = liveness_required && !damage;
            self.judge_history(end, liveness_required, &mut anomalies, &mut observations)
        } else {
            let acknowledged = self
                .admins
                .iter()
                .flat_map(|slot| slot.admin.ops.iter())
                .filter(|op| op.outcome == AdminOutcome::Ok)
                .count() as u64;
            (acknowledged, 0)
        };
        let verdict = Verdict { ok: anomalies.is_empty(), anomalies, observations, acknowledged, confirmed };
        let record = self.record.take().map(|mut record| {
            let topic = self.topic_workload.as_ref().map_or("events", |w| w.topic.name.as_str());
            record.add_history(topic, &self.history, &verdict);
            record
        });
        Outcome {
            seed: self.plan.seed,
            workload: self.plan.options.workload(),
            trace_hash: format!("{:016x}", self.trace.hash()),
            events: self.trace.events(),
            sim_time_ms: self.scheduler.now().as_millis(),
            verdict,
            admin_ops: self.admin_ops(),
            history: std::mem::take(&mut self.history),
            record,
        }
    }

    /// The replica checker's findings, each a failure unless the run's settings or faults allow
    /// it: durable damage to a replica of the partition before it; and, for a lost committed
    /// record (`leader-missing-committed`, `replica-log-mismatch`), unsafe topic settings, or a
    /// flush policy other than `always` once a replica of the partition lost power.
    fn judge_replica_states(&mut self, anomalies: &mut Vec<Anomaly>, observations: &mut Vec<Anomaly>) {
        let Some(workload) = &self.topic_workload else { return };
        let replicas = self.replica_assignment(&workload.topic.name);
        let unsafe_settings = super::options::unsafe_settings(&workload.topic);
        let flush_tag = flush_tag(&workload.topic.flush);
        let checker = std::mem::take(&mut self.replica_checker);
        let findings = checker.anomalies.into_iter().zip(checker.anomaly_times).zip(checker.anomaly_places);
        for ((anomaly, at), ((_, partition), _)) in findings {
            let nodes = replicas.get(&partition).cloned().unwrap_or_default();
            let damaged = self.data_damage.iter().any(|(node, when, _)| nodes.contains(node) && *when <= at)
                || self.metadata_damage.iter().any(|(node, when)| nodes.contains(node) && *when <= at);
            // What a lost committed record shows: a leader without it, a replica with another
            // batch in its place, a high watermark cut back to a shorter log, an acks=all answer
            // whose other copies were in page caches that lost power.
            let lost_record = matches!(
                anomaly.kind.as_str(),
                "leader-missing-committed"
                    | "replica-log-mismatch"
                    | "high-watermark-regressed"
                    | "under-replicated-ack"
            );
            let power_lost =
                nodes.iter().any(|node| self.power_losses[*node as usize].iter().any(|when| *when <= at));
            let tag = if damaged {
                Some("after-damage")
            } else if lost_record && !unsafe_settings.is_empty() {
                Some(unsafe_settings[0].0)
            } else if lost_record && power_lost {
                flush_tag
            } else {
                None
            };
            match tag {
                Some(tag) => {
                    observations.push(Anomaly { kind: format!("{}-{tag}", anomaly.kind), ..anomaly })
                }
                None => anomalies.push(anomaly),
            }
        }
    }

    /// Every admin operation: the admins' and the topic creator's.
    fn admin_ops(&self) -> Vec<AdminOp> {
        let creator = self.clients.iter().filter_map(|slot| match &slot.client {
            Client::Creator(creator) => Some(creator.ops.iter().cloned()),
            _ => None,
        });
        self.admins.iter().map(|slot| slot.admin.ops.iter().cloned()).chain(creator).flatten().collect()
    }

    /// The cluster workload's history against Kafka's guarantees (see [`crate::checker`]).
    /// Returns the acknowledged `acks=all` records and how many the final reads confirmed.
    fn judge_history(
        &mut self,
        end: Time,
        liveness_required: bool,
        anomalies: &mut Vec<Anomaly>,
        observations: &mut Vec<Anomaly>,
    ) -> (u64, u64) {
        let workload = self.topic_workload.clone().expect("the cluster workload");
        let partitions = workload.topic.partitions;
        let mut final_reads_done = BTreeMap::new();
        let mut final_read_reached = BTreeMap::new();
        let mut corrupt_reads = Vec::new();
        let unreachable_final_reads: std::collections::BTreeSet<u32> = self
            .clients
            .iter()
            .filter_map(|slot| match &slot.client {
                Client::Consumer(consumer) if consumer.is_final() && !consumer.is_done() => {
                    Some((consumer.partition, consumer.final_target()))
                }
                _ => None,
            })
            .filter(|(partition, target)| self.final_read_unreachable(*partition, *target))
            .map(|(partition, _)| partition)
            .collect();
        for slot in &mut self.clients {
            if let Client::Consumer(consumer) = &mut slot.client {
                corrupt_reads.append(&mut consumer.corrupt_reads);
                if let Some(reached) = consumer.end_final_read(end, &mut self.history) {
                    final_reads_done.insert(consumer.partition, consumer.is_done());
                    final_read_reached.insert(consumer.partition, reached);
                }
            }
        }
        let replicas = self.replica_assignment(&workload.topic.name);
        let mut excuses = crate::checker::Excuses {
            unreachable_final_reads,
            unsafe_settings: super::options::unsafe_settings(&workload.topic),
            flush_tag: flush_tag(&workload.topic.flush),
            ..Default::default()
        };
        for (node, losses) in self.power_losses.iter().enumerate() {
            excuses.power_losses.insert(node as u32, losses.iter().map(|at| ms(*at)).collect());
        }
        for (partition, history) in &self.isr_history {
            let history = history.iter().map(|(at, isr)| (ms(*at), isr.clone())).collect();
            excuses.isr_history.insert(*partition, history);
        }
        for partition in 0..partitions {
            let nodes = replicas.get(&partition).cloned().unwrap_or_default();
            let damaged =
                self.data_damage.iter().filter(|(node, _, _)| nodes.contains(node)).map(|(_, at, _)| ms(*at));
            if let Some(first) = damaged.reduce(f64::min) {
                excuses.damaged_at.insert(partition, first);
            }
        }
        let mut state_anomalies = Vec::new();
        for read in corrupt_reads {
            let kind = match excuses.damaged_at.get(&read.partition) {
                Some(at) if *at <= read.time_ms => "corrupt-read-after-damage",
                _ => "corrupt-read",
            };
            let anomaly = Anomaly::new(
                kind,
                format!("partition {} at offset {}: {}", read.partition, read.position, read.detail),
            )
            .at(read.partition, Some(read.position), read.time_ms);
            if kind == "corrupt-read" {
                state_anomalies.push(anomaly);
            } else {
                observations.push(anomaly);
            }
        }
        let input = crate::checker::CheckInput {
            history: &self.history,
            client_anomalies: Vec::new(),
            state_anomalies,
            damaged_from: BTreeMap::new(),
            log_start: BTreeMap::new(),
            final_reads_done,
            final_read_reached,
            liveness_required,
            excuses,
            end_ms: ms(end),
        };
        let verdict = crate::checker::check(&input);
        anomalies.extend(verdict.anomalies);
        observations.extend(verdict.observations);
        (verdict.acknowledged, verdict.confirmed)
    }

    /// The replicas of each partition of `topic`, from the most advanced metadata image of any
    /// node (a replica assignment never changes).
    fn replica_assignment(&self, topic: &str) -> BTreeMap<u32, Vec<u32>> {
        let image = self
            .nodes
            .iter()
            .filter_map(|slot| slot.core.as_ref())
            .map(|core| core.image())
            .filter(|image| image.topics_by_name.contains_key(topic))
            .max_by_key(|image| image.end_offset);
        let Some(image) = image else {
            // No live node holds the topic now (all stopped at the end, or their images were
            // damaged): the workload topic's assignment as the run last saw it.
            return self.partition_states.iter().map(|(p, state)| (*p, state.replicas.clone())).collect();
        };
        let id = image.topics_by_name[topic];
        image.topics[&id]
            .partitions
            .iter()
            .map(|(partition, state)| (*partition, state.replicas.clone()))
            .collect()
    }

    /// Whether durable damage to the replicas of the workload topic's `partition` destroyed what
    /// its final read must reach: it hit one of them, and no live replica's log reaches `target`.
    fn final_read_unreachable(&self, partition: u32, target: Option<i64>) -> bool {
        let Some(workload) = &self.topic_workload else { return false };
        let replicas = self.replica_assignment(&workload.topic.name);
        let nodes = replicas.get(&partition).cloned().unwrap_or_default();
        // A replica whose broker cannot start for damage to its own state may be the one the
        // partition waits for (its only in-sync replica), as in Kafka.
        let cannot_start = |node: &u32| {
            let node = *node as usize;
            self.start_failed.get(node).copied().unwrap_or(false) && self.nodes[node].damaged()
        };
        if nodes.iter().any(cannot_start) {
            return true;
        }
        let Some(target) = target else { return false };
        if !self.data_damage.iter().any(|(node, _, _)| nodes.contains(node)) {
            return false;
        }
        let live = Self::live_replicas(&self.nodes, &workload.topic.name, partition);
        live.iter().map(|(_, _, replica)| replica.log().log_end_offset()).max().is_none_or(|end| end < target)
    }

    /// Records durable damage (not a torn unsynced write) to any node's partition data.
    fn note_data_damage(&mut self, now: Time) {
        for (node, seen) in self.data_damage_seen.iter_mut().enumerate() {
            let damage = self.nodes[node].disk.damage();
            for item in &damage[*seen..] {
                if matches!(item.kind, DamageKind::Torn { .. }) {
                    continue;
                }
                if item.path.starts_with("metadata/") {
                    self.metadata_damage.push((node as u32, now));
                } else {
                    self.data_damage.push((node as u32, now, item.path.clone()));
                }
            }
            *seen = damage.len();
        }
    }
}

/// The admin history against the converged metadata: an acknowledged create survives unless a
/// delete could have removed it; an acknowledged delete stays deleted (topic ids are never reused).
///
/// A delete works by name, so what it removed is known only from its answer: an acknowledged
/// delete that reports another topic id did not remove this one — unless it was retried after
/// NOT_CONTROLLER (an earlier attempt may have applied too), or the network duplicates messages
/// (a late copy of any delete of that name may apply at any time). An indefinite delete may have
/// applied. A definite failure did nothing.
pub fn check_admin_history(
    ops: &[AdminOp],
    image: &seedlog_core::metadata::MetadataImage,
    duplicates: bool,
) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut deletes: BTreeMap<&str, Vec<&AdminOp>> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.action == "delete") {
        deletes.entry(op.topic.as_str()).or_default().push(op);
    }
    for op in ops.iter().filter(|op| op.outcome == AdminOutcome::Ok) {
        let Some(id) = op.id else { continue };
        match op.action {
            "create" => {
                let excused = deletes.get(op.topic.as_str()).is_some_and(|list| {
                    list.iter().any(|d| {
                        duplicates
                            || d.retried
                            || match d.outcome {
                                AdminOutcome::Fail => false,
                                AdminOutcome::Info => true,
                                AdminOutcome::Ok => d.id == Some(id),
                            }
                    })
                });
                let present = image.topics.get(&id).is_some_and(|topic| topic.name == op.topic);
                if !present && !excused {
                    anomalies.push(Anomaly::new(
                        "lost-create",
                        format!(
                            "topic {} (id {}) was created (acknowledged at {} ms) but is gone, with no delete after it",
                            op.topic,
                            super::admin::topic_id_hex(&id),
                            op.completed_ns / 1_000_000
                        ),
                    ));
                }
            }
            _ => {
                if image.topics.contains_key(&id) {
                    anomalies.push(Anomaly::new(
                        "resurrected-topic",
                        format!(
                            "topic {} (id {}) was deleted (acknowledged at {} ms) but exists again",
                            op.topic,
                            super::admin::topic_id_hex(&id),
                            op.completed_ns / 1_000_000
                        ),
                    ));
                }
            }
        }
    }
    anomalies
}

/// The cluster workload's clients, from node `base` on: the topic creator, the producers, the
/// consumers (consumer `i` reads partition `i % partitions`), then one final consumer per partition.
/// The client's index is its process number in the history.
fn topic_clients(
    seed: u64,
    cluster: &ClusterOptions,
    workload: &TopicWorkloadOptions,
    base: u32,
    duplicates: bool,
) -> Vec<ClientSlot> {
    let brokers: Vec<NodeId> =
        (0..cluster.nodes()).filter(|node| cluster.is_broker(*node)).map(NodeId).collect();
    let mut clients =
        vec![Client::Creator(Box::new(TopicCreator::new(0, NodeId(base), brokers.clone(), workload)))];
    for settings in &workload.producers {
        let process = clients.len() as u32;
        let rng = rng::stream(seed, &format!("client/{process}"));
        let producer = Producer::new(
            process,
            NodeId(base + process),
            brokers.clone(),
            workload,
            settings.clone(),
            rng,
            duplicates,
        );
        clients.push(Client::Producer(Box::new(producer)));
    }
    let partitions = workload.topic.partitions;
    let consumers = (0..workload.consumers).map(|index| (index % partitions, false));
    for (partition, is_final) in consumers.chain((0..partitions).map(|partition| (partition, true))) {
        let process = clients.len() as u32;
        let consumer =
            Consumer::new(process, NodeId(base + process), brokers.clone(), partition, workload, is_final);
        clients.push(Client::Consumer(Box::new(consumer)));
    }
    assert_eq!(clients.len() as u32, crate::plan::topic_workload_clients(workload));
    clients.into_iter().map(|client| ClientSlot { client, scheduled: None }).collect()
}

/// A message's line in a shown trace (the hash takes the message's fields, see
/// [`Trace::structured`]); the cluster workload's record payloads (produce batches, fetched
/// records) as their length and hash, not megabytes of bytes.
fn summarize_client(message: &NodeMessage) -> Option<String> {
    let bytes = |b: &[u8]| format!("{}B #{:016x}", b.len(), rng::fnv1a64(b));
    match message {
        NodeMessage::Client { correlation_id, request: ClientRequest::Produce { topic, partition, acks, timeout_ms, batch } } => {
            Some(format!(
                "client #{correlation_id}: produce {topic}-{partition} acks {acks:?} timeout {timeout_ms}ms batch {}",
                bytes(batch)
            ))
        }
        NodeMessage::ClientResponse { correlation_id, response: ClientResponse::Fetch(fetch) } => Some(format!(
            "client #{correlation_id}: fetch answer {:?} hw {} log start {} diverging {:?} leader {:?} records {}",
            fetch.error,
            fetch.high_watermark,
            fetch.log_start_offset,
            fetch.diverging_epoch,
            fetch.current_leader,
            bytes(&fetch.records)
        )),
        _ => None,
    }
}

fn summarize(message: &NodeMessage) -> String {
    match message {
        NodeMessage::Quorum(QuorumMessage::FetchResponse { epoch, leader, high_watermark, result }) => {
            let result = match result {
                FetchResult::Records { batches } => {
                    format!("records {}B #{:016x}", batches.len(), rng::fnv1a64(batches))
                }
                other => format!("{other:?}"),
            };
            format!("fetch-response e{epoch} leader {leader:?} hw {high_watermark} {result}")
        }
        NodeMessage::Quorum(QuorumMessage::FetchSnapshotResponse {
            epoch,
            snapshot,
            size,
            position,
            bytes,
            ..
        }) => {
            format!(
                "fetch-snapshot-response e{epoch} {snapshot:?} {position}+{}B of {size} #{:016x}",
                bytes.len(),
                rng::fnv1a64(bytes)
            )
        }
        other => format!("{other:?}"),
    }
}

/// What a loss is excused as under `policy` once replicas lost power: nothing under `always`.
fn flush_tag(policy: &FlushPolicy) -> Option<&'static str> {
    match policy {
        FlushPolicy::Always => None,
        FlushPolicy::Interval { .. } => Some("flush-interval"),
        FlushPolicy::Never => Some("flush-never"),
    }
}
