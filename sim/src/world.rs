//! The simulated world: brokers on simulated disks, clients on a simulated network, a fault plan,
//! one thread and one virtual clock.
//!
//! The world is the simulator's driver of the core. Like the production driver it decides nothing:
//! it hands each event to the core with an environment (the node's disk, RNG, skewed wall clock and
//! the run's fault sites), executes the effects the core returns, and turns disk and network
//! outcomes back into events. What it adds is the omniscient view a real cluster lacks: after every
//! step it checks state invariants, and at the end it hands the history to the checker.
//!
//! A run has two phases. During the chaos phase the fault plan fires. When it ends, the network
//! heals and calms (no more loss, duplication, latency tails or injected disk errors), paused
//! nodes resume, down nodes restart, producers stop, and one final consumer per
//! partition reads the partition from its start; it must finish within the liveness bound.
//!
//! Operational rule the world follows (and documents for operators): a broker that halted after a
//! failed sync is restarted only after a reboot (its page cache is dropped), because after a
//! failed fsync the page cache may show data that will never be durable ("fsyncgate").

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use seedlog_core::broker::{partition_dir, Broker, Effect, SyncToken};
use seedlog_core::env::{Env, StorageError, Time};
use seedlog_core::log::LogError;
use seedlog_core::protocol::Message;

use crate::buggify::SimFaults;
use crate::checker::{self, Anomaly, CheckInput, Verdict};
use crate::client::{Consumer, Outgoing, Producer};
use crate::clock::SimClock;
use crate::disk::{DamageKind, FaultAtlas, SimDisk, SyncTicket};
use crate::history::History;
use crate::net::{NodeId, SimNet};
use crate::plan::{Fault, Plan};
use crate::process::{Process, Status};
use crate::report::{ms, Role, RunRecord};
use crate::rng;
use crate::scheduler::{Scheduler, QUEUE_HEADROOM, QUEUE_MAX};
use crate::trace::Trace;

/// A bound on one run's events: beyond it the run is reported as not converging.
const EVENTS_MAX: u64 = 20_000_000;
/// How long a broker that halted waits before its reboot and restart.
const REBOOT_MS: u64 = 100;

#[derive(Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message,
    },
    SyncDone {
        node: usize,
        incarnation: u64,
        ticket: Result<SyncTicket, StorageError>,
        token: SyncToken,
    },
    /// The broker's deadline `deadline` (as it was when scheduled) is due.
    BrokerTimer {
        node: usize,
        incarnation: u64,
        deadline: Time,
    },
    ClientAlarm {
        client: usize,
    },
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

/// The broker's process.
type BrokerNode = Process<Broker, Event>;

enum Client {
    Producer(Producer),
    Consumer(Consumer),
}

struct ClientSlot {
    client: Client,
    /// The alarm time for which a `ClientAlarm` event is in the queue.
    scheduled: Option<Time>,
}

/// What a run produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub seed: u64,
    pub workload: crate::options::Workload,
    pub trace_hash: String,
    pub events: u64,
    pub sim_time_ms: u64,
    pub verdict: Verdict,
    #[serde(skip)]
    pub history: History,
    /// The controller workload's admin operations (its history), empty for the log workload.
    #[serde(skip)]
    pub admin_ops: Vec<crate::cluster::admin::AdminOp>,
    /// What the run recorded for a report (`seedlog-sim run --report DIR`); `None` when no report
    /// was asked for, or when the workload records nothing yet.
    #[serde(skip)]
    pub record: Option<crate::report::RunRecord>,
}

pub struct World {
    plan: Plan,
    scheduler: Scheduler<Event>,
    trace: Trace,
    net: SimNet<Message>,
    clock: SimClock,
    faults: SimFaults,
    brokers: Vec<BrokerNode>,
    clients: Vec<ClientSlot>,
    workload_rng: ChaCha8Rng,
    history: History,
    state_anomalies: Vec<Anomaly>,
    /// The highest high watermark seen per partition (it must never go down).
    high_watermark_max: Vec<i64>,
    /// Per partition, the highest log start offset retention moved it to: the only deletion of
    /// acknowledged records the checker excuses. Taken around `handle_timer`, the one input that
    /// applies retention, so a log start moved by anything else (a recovery) excuses nothing.
    retention_log_start: Vec<i64>,
    chaos_over: bool,
    final_reads_started: bool,
    finished: bool,
    /// The sequence number of the event being handled (for trace lines of its effects).
    sequence: u64,
    /// Filled for a run report when asked for (see [`World::recording`]).
    record: Option<RunRecord>,
}

impl World {
    pub fn new(plan: Plan, emit_trace: bool) -> World {
        let options = &plan.options;
        let seed = plan.seed;
        let partitions = options.broker.partitions;
        let node_count = crate::plan::all_nodes(options).len();
        let atlas = FaultAtlas::new(options.brokers as usize, &mut rng::stream(seed, "atlas"));
        let brokers = (0..options.brokers as usize)
            .map(|index| {
                let mut disk =
                    SimDisk::new(options.disk.clone(), rng::stream(seed, &format!("disk/{index}")));
                disk.set_atlas(index, atlas.clone());
                BrokerNode::new(NodeId(index as u32), disk, rng::stream(seed, &format!("node/{index}")))
            })
            .collect();
        // Clients follow the brokers: client `i` is process `i` and node `brokers + i`.
        let broker_node = NodeId(0);
        let client_node = |process: usize| NodeId(options.brokers + process as u32);
        let mut clients: Vec<Client> = Vec::new();
        for producer in &options.clients.producers {
            let process = clients.len();
            let (node, settings) = (client_node(process), producer.clone());
            let producer =
                Producer::new(process as u32, node, broker_node, settings, &options.clients, partitions);
            clients.push(Client::Producer(producer));
        }
        for index in 0..options.clients.consumers {
            let process = clients.len();
            let (node, partition) = (client_node(process), index % partitions);
            let consumer = Consumer::new(
                process as u32,
                node,
                broker_node,
                partition,
                &options.clients,
                false,
                Time::ZERO,
            );
            clients.push(Client::Consumer(consumer));
        }
        for partition in 0..partitions {
            let process = clients.len();
            let node = client_node(process);
            // Final consumers sleep until the chaos ends (their alarm is set then).
            let mut consumer = Consumer::new(
                process as u32,
                node,
                broker_node,
                partition,
                &options.clients,
                true,
                Time::ZERO,
            );
            consumer.sleep();
            clients.push(Client::Consumer(consumer));
        }
        let clients: Vec<ClientSlot> =
            clients.into_iter().map(|client| ClientSlot { client, scheduled: None }).collect();
        assert_eq!(clients.len() + options.brokers as usize, node_count);
        World {
            scheduler: Scheduler::new(QUEUE_MAX),
            trace: Trace::new(emit_trace),
            net: SimNet::new(options.net.clone(), rng::stream(seed, "network")),
            clock: SimClock::new(options.clock.clone(), rng::stream(seed, "clock"), node_count),
            faults: SimFaults::new(
                options.buggify,
                options.plants.iter().copied().collect(),
                rng::stream(seed, "buggify"),
            ),
            brokers,
            clients,
            workload_rng: rng::stream(seed, "workload"),
            history: History::default(),
            state_anomalies: Vec::new(),
            high_watermark_max: vec![0; partitions as usize],
            retention_log_start: vec![0; partitions as usize],
            chaos_over: false,
            final_reads_started: false,
            finished: false,
            sequence: 0,
            record: None,
            plan,
        }
    }

    /// Fills a [`RunRecord`] as the run goes (see the contract in [`crate::report`]): the broker's
    /// crashes, shutdowns and pauses, network cuts, each partition's log end offset and high
    /// watermark (the one broker leads every partition), client operations and findings.
    pub fn recording(mut self) -> World {
        let mut record = RunRecord::for_options(&self.plan.options);
        record.header.partitions =
            (0..self.plan.options.broker.partitions).map(|p| partition_name(p as usize)).collect();
        record.option("high watermark", "the log's synced end: one broker, no followers");
        self.record = Some(record);
        self
    }

    pub fn run(mut self) -> Outcome {
        let options = self.plan.options.clone();
        for node in 0..self.brokers.len() {
            self.brokers[node].start_scheduled = true;
            self.scheduler.schedule(Time::ZERO, Event::Start { node });
        }
        for client in 0..self.clients.len() {
            self.arm_client(client);
        }
        for timed in self.plan.faults.clone() {
            self.scheduler.schedule(Time::from_millis(timed.at_ms), Event::Fault(timed.fault));
        }
        self.scheduler.schedule(Time::from_millis(options.chaos_ms), Event::ChaosEnd);
        self.scheduler.schedule(Time::from_millis(options.chaos_ms + options.heal_ms), Event::End);
        while let Some((now, sequence, event)) = self.scheduler.pop() {
            self.step(now, sequence, event);
            if self.finished {
                break;
            }
            if self.scheduler.is_nearly_full(QUEUE_HEADROOM) {
                self.state_anomalies.push(Anomaly::new(
                    "event-budget-exceeded",
                    format!("at {now}: {} events queued (a message storm)", self.scheduler.len()),
                ));
                break;
            }
            if self.trace.events() >= EVENTS_MAX {
                self.state_anomalies.push(Anomaly::new(
                    "event-budget-exceeded",
                    format!("the run did not end within {EVENTS_MAX} events"),
                ));
                break;
            }
        }
        self.finish()
    }

    // ---- the step ----

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
                let result = ticket.and_then(|ticket| self.brokers[node].disk.complete_sync(ticket));
                self.trace.event(
                    sequence,
                    now,
                    &self.brokers[node].id,
                    format_args!("sync {token:?} done: {result:?}"),
                );
                self.with_broker(now, node, |broker, env| broker.handle_sync_complete(env, token, result));
            }
            Event::BrokerTimer { node, incarnation, deadline } => {
                if self.brokers[node].incarnation != incarnation
                    || self.brokers[node].timer_at != Some(deadline)
                {
                    return; // A previous incarnation's timer, or one moved since.
                }
                if self.deferred(node, incarnation, || Event::BrokerTimer { node, incarnation, deadline }) {
                    return; // Paused: it fires late, when the node resumes (the zombie catches up).
                }
                self.brokers[node].timer_at = None;
                self.trace.event(sequence, now, &self.brokers[node].id, format_args!("timer"));
                let before = self.log_starts(node);
                self.with_broker(now, node, |broker, env| broker.handle_timer(env));
                let after = self.log_starts(node);
                for (partition, (before, after)) in before.iter().zip(&after).enumerate() {
                    if after > before {
                        self.trace.event(
                            sequence,
                            now,
                            &self.brokers[node].id,
                            format_args!("retention: partition {partition} starts at {after}"),
                        );
                        self.retention_log_start[partition] = self.retention_log_start[partition].max(*after);
                    }
                }
            }
            Event::ClientAlarm { client } => self.wake_client(now, sequence, client),
            Event::Fault(fault) => self.inject(now, sequence, fault),
            Event::Start { node } => self.start_broker(now, sequence, node),
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

    /// If the node is paused, keeps the event for its resumption and returns true.
    fn deferred(&mut self, node: usize, incarnation: u64, event: impl FnOnce() -> Event) -> bool {
        self.brokers[node].hold(incarnation, event)
    }

    fn deliver(&mut self, now: Time, sequence: u64, from: NodeId, to: NodeId, message: Message) {
        if !self.net.arrive(from, to) {
            self.trace.event(sequence, now, &to, format_args!("drop from {from} (link cut)"));
            return;
        }
        if let Some(node) = self.brokers.iter().position(|b| b.id == to) {
            let slot = &mut self.brokers[node];
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
            self.trace.event(sequence, now, &to, format_args!("recv from {from}: {}", summarize(&message)));
            self.with_broker(now, node, |broker, env| broker.handle_message(env, message));
            return;
        }
        let Some(client) = self.client_of(to) else { return };
        self.trace.event(sequence, now, &to, format_args!("recv {}", summarize(&message)));
        let Message::Response { id, response } = message else { return };
        let outgoing = match &mut self.clients[client].client {
            Client::Producer(producer) => {
                producer.on_response(now, id.correlation_id, response, &mut self.history)
            }
            Client::Consumer(consumer) => {
                consumer.on_response(now, id.correlation_id, response, &mut self.history);
                Vec::new()
            }
        };
        self.send_all(now, to, outgoing);
        self.arm_client(client);
        self.start_final_reads_when_producers_settle(now);
        if self.chaos_over && self.all_final_reads_done() {
            self.trace.event(sequence, now, &"sim", format_args!("every final read finished"));
            self.finished = true;
        }
    }

    /// The client at a node: clients follow the brokers in node order.
    fn client_of(&self, node: NodeId) -> Option<usize> {
        let index = node.0.checked_sub(self.plan.options.brokers)? as usize;
        (index < self.clients.len()).then_some(index)
    }

    fn wake_client(&mut self, now: Time, sequence: u64, client: usize) {
        let slot = &mut self.clients[client];
        let alarm = match &slot.client {
            Client::Producer(producer) => producer.alarm(),
            Client::Consumer(consumer) => consumer.alarm(),
        };
        if alarm != Some(now) || slot.scheduled != Some(now) {
            return; // Stale: the alarm moved.
        }
        slot.scheduled = None;
        let (node, outgoing) = match &mut slot.client {
            Client::Producer(producer) => {
                let wall_clock_ms = self.clock.wall_clock_ms(producer.node, now);
                (
                    producer.node,
                    producer.on_wake(now, wall_clock_ms, &mut self.workload_rng, &mut self.history),
                )
            }
            Client::Consumer(consumer) => (consumer.node, consumer.on_wake(now)),
        };
        self.trace.event(sequence, now, &node, format_args!("wake, {} requests", outgoing.len()));
        self.send_all(now, node, outgoing);
        self.arm_client(client);
        self.start_final_reads_when_producers_settle(now);
    }

    fn arm_client(&mut self, client: usize) {
        let slot = &mut self.clients[client];
        let alarm = match &slot.client {
            Client::Producer(producer) => producer.alarm(),
            Client::Consumer(consumer) => consumer.alarm(),
        };
        if let Some(at) = alarm {
            if slot.scheduled != Some(at) {
                slot.scheduled = Some(at);
                self.scheduler.schedule(at, Event::ClientAlarm { client });
            }
        }
    }

    fn send_all(&mut self, now: Time, from: NodeId, outgoing: Vec<Outgoing>) {
        for Outgoing { to, message } in outgoing {
            for (at, message) in self.net.send(now, from, to, message) {
                self.scheduler.schedule(at, Event::Deliver { from, to, message });
            }
        }
    }

    // ---- brokers ----

    /// Runs one input of a live broker with its environment, then executes its effects.
    fn with_broker(&mut self, now: Time, node: usize, input: impl FnOnce(&mut Broker, &mut Env<'_>)) {
        let wall_clock_ms = self.clock.wall_clock_ms(self.brokers[node].id, now);
        let slot = &mut self.brokers[node];
        let Some(mut broker) = slot.core.take() else { return };
        input(&mut broker, &mut slot.env(now, wall_clock_ms, &mut self.faults));
        slot.core = Some(broker);
        self.execute_effects(now, node);
        self.check_broker_invariants(now, node);
        self.arm_broker_timer(node);
    }

    fn execute_effects(&mut self, now: Time, node: usize) {
        loop {
            let slot = &mut self.brokers[node];
            let Some(broker) = slot.core.as_mut() else { return };
            let Some(effect) = broker.poll_effect() else { return };
            let sequence = self.sequence;
            match effect {
                Effect::Send { to, message } => {
                    let from = slot.id;
                    self.send_all(now, from, vec![Outgoing { to: NodeId(to), message }]);
                }
                Effect::Sync { token, path } => {
                    let ticket = slot.disk.request_sync(&path);
                    let latency_ns = slot.disk.sync_latency_ns();
                    let incarnation = slot.incarnation;
                    self.scheduler.schedule_after_nanos(
                        latency_ns,
                        Event::SyncDone { node, incarnation, ticket, token },
                    );
                }
                Effect::Halt { reason } => {
                    let id = slot.id;
                    self.trace.event(sequence, now, &id, format_args!("HALT: {reason}"));
                    // The operator's rule: reboot (drop the page cache) before restarting.
                    self.power_off(now, node, "reboot after halt");
                    self.schedule_start(node, now.plus_millis(REBOOT_MS));
                    return;
                }
                Effect::ShutdownComplete => {
                    let id = slot.id;
                    let Status::ShuttingDown { down_ms } = slot.status else {
                        panic!("ShutdownComplete without a shutdown in progress");
                    };
                    self.trace.event(sequence, now, &id, format_args!("clean shutdown complete"));
                    slot.stop();
                    if let Some(record) = &mut self.record {
                        record.node_down(ms(now), node as u32, "controlled shutdown");
                    }
                    self.schedule_start(node, now.plus_millis(down_ms));
                    return;
                }
            }
        }
    }

    fn arm_broker_timer(&mut self, node: usize) {
        let slot = &mut self.brokers[node];
        let Some(broker) = slot.core.as_ref() else { return };
        let Some(deadline) = broker.next_deadline() else { return };
        if slot.timer_at != Some(deadline) {
            slot.timer_at = Some(deadline);
            let incarnation = slot.incarnation;
            self.scheduler.schedule(deadline, Event::BrokerTimer { node, incarnation, deadline });
        }
    }

    fn schedule_start(&mut self, node: usize, at: Time) {
        if !self.brokers[node].start_scheduled {
            self.brokers[node].start_scheduled = true;
            self.scheduler.schedule(at, Event::Start { node });
        }
    }

    fn start_broker(&mut self, now: Time, sequence: u64, node: usize) {
        self.brokers[node].start_scheduled = false;
        if self.brokers[node].status != Status::Down {
            return;
        }
        let wall_clock_ms = self.clock.wall_clock_ms(self.brokers[node].id, now);
        let config = self.plan.options.broker.clone();
        let slot = &mut self.brokers[node];
        match Broker::start(&mut slot.env(now, wall_clock_ms, &mut self.faults), config) {
            Ok((broker, reports)) => {
                slot.core = Some(broker);
                slot.status = Status::Up;
                slot.incarnation += 1;
                let id = slot.id;
                if let Some(record) = &mut self.record {
                    record.node_up(ms(now), node as u32);
                }
                for (partition, report) in reports.iter().enumerate() {
                    self.trace.event(
                        sequence,
                        now,
                        &id,
                        format_args!(
                            "recovered partition {partition}: clean={} segments={} {}",
                            report.clean_shutdown,
                            report.segments,
                            report.actions.join("; ")
                        ),
                    );
                }
                let clean: Vec<bool> = reports.iter().map(|report| report.clean_shutdown).collect();
                self.check_recovery(now, node, &clean);
                self.check_broker_invariants(now, node);
                self.arm_broker_timer(node);
            }
            Err(error) => {
                let id = slot.id;
                self.trace.event(sequence, now, &id, format_args!("start failed: {error:?}; retrying"));
                self.schedule_start(node, now.plus_millis(REBOOT_MS));
            }
        }
    }

    /// Power loss: the process and the disk's unsynced writes are gone.
    fn power_off(&mut self, now: Time, node: usize, why: &str) {
        let report = self.brokers[node].power_off();
        let id = self.brokers[node].id;
        if let Some(record) = &mut self.record {
            record.node_down(ms(now), node as u32, &format!("power off ({why})"));
        }
        self.trace.event(self.sequence, now, &id, format_args!("power off ({why}): {report:?}"));
    }

    fn resume(&mut self, now: Time, sequence: u64, node: usize, incarnation: u64) {
        let Some(deferred) = self.brokers[node].resume(incarnation) else { return };
        let id = self.brokers[node].id;
        if let Some(record) = &mut self.record {
            record.node_resumed(ms(now), node as u32);
        }
        self.trace.event(sequence, now, &id, format_args!("resume ({} deferred events)", deferred.len()));
        // Everything that arrived or came due during the pause happens now, in its original order.
        for event in deferred {
            self.scheduler.schedule(now, event);
        }
    }

    // ---- faults ----

    fn inject(&mut self, now: Time, sequence: u64, fault: Fault) {
        if self.chaos_over {
            return;
        }
        self.trace.event(sequence, now, &"sim", format_args!("fault: {fault}"));
        match fault {
            Fault::Crash { node, down_ms } => {
                let node = node.0 as usize;
                if self.brokers[node].status != Status::Down {
                    self.power_off(now, node, "crash");
                    self.schedule_start(node, now.plus_millis(down_ms));
                }
            }
            Fault::Shutdown { node, down_ms } => {
                let node = node.0 as usize;
                if self.brokers[node].status == Status::Up {
                    self.brokers[node].status = Status::ShuttingDown { down_ms };
                    self.with_broker(now, node, |broker, env| broker.begin_shutdown(env));
                }
            }
            Fault::Pause { node, duration_ms } => {
                let node = node.0 as usize;
                if self.brokers[node].status == Status::Up {
                    self.brokers[node].status = Status::Paused;
                    if let Some(record) = &mut self.record {
                        record.node_paused(ms(now), node as u32);
                    }
                    let incarnation = self.brokers[node].incarnation;
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
            Fault::ClockJump { node, delta_ms } => {
                self.clock.jump(node, delta_ms);
            }
            Fault::BitRot { node } => {
                let damage = self.brokers[node.0 as usize].disk.rot();
                self.trace.event(sequence, now, &node, format_args!("bit rot: {damage:?}"));
            }
            Fault::LatentSectorError { node } => {
                let damage = self.brokers[node.0 as usize].disk.add_latent_sector_error();
                self.trace.event(sequence, now, &node, format_args!("latent sector error: {damage:?}"));
            }
        }
    }

    fn end_chaos(&mut self, now: Time, sequence: u64) {
        self.trace.event(
            sequence,
            now,
            &"sim",
            format_args!("chaos ends: heal, resume, restart, final reads"),
        );
        self.chaos_over = true;
        self.net.heal();
        self.net.calm();
        for slot in &mut self.brokers {
            slot.disk.calm();
        }
        for node in 0..self.brokers.len() {
            match self.brokers[node].status {
                Status::Paused => {
                    let incarnation = self.brokers[node].incarnation;
                    self.resume(now, sequence, node, incarnation);
                }
                Status::Down => self.schedule_start(node, now),
                Status::Up | Status::ShuttingDown { .. } => {}
            }
        }
        for client in 0..self.clients.len() {
            if let Client::Producer(producer) = &mut self.clients[client].client {
                producer.stop();
            }
        }
        self.start_final_reads_when_producers_settle(now);
    }

    /// The final consumers start once every producer's last send has settled (answered, failed or
    /// given up), so that their target high watermark covers every acknowledged write.
    fn start_final_reads_when_producers_settle(&mut self, now: Time) {
        if !self.chaos_over || self.final_reads_started {
            return;
        }
        let settled = self.clients.iter().all(|slot| match &slot.client {
            Client::Producer(producer) => producer.is_idle(),
            Client::Consumer(_) => true,
        });
        if !settled {
            return;
        }
        self.final_reads_started = true;
        for client in 0..self.clients.len() {
            if let Client::Consumer(consumer) = &mut self.clients[client].client {
                if consumer.is_final() {
                    consumer.wake_at(now);
                    self.arm_client(client);
                }
            }
        }
    }

    // ---- invariants ----

    /// After every step on a live broker: the high watermark never goes down (unless injected
    /// damage explains it), and the log start only grows.
    fn check_broker_invariants(&mut self, now: Time, node: usize) {
        let Some(broker) = self.brokers[node].core.as_ref() else { return };
        for partition in 0..self.high_watermark_max.len() {
            let Some(log) = broker.log(partition as u32) else { continue };
            let high_watermark = log.durable_offset();
            if let Some(record) = &mut self.record {
                let name = partition_name(partition);
                record.role(ms(now), &name, node as u32, Role::Leader, 0);
                record.offsets(ms(now), &name, node as u32, log.log_end_offset(), high_watermark);
            }
            assert!(high_watermark <= log.log_end_offset(), "the high watermark is within the log");
            assert!(log.log_start_offset() <= log.log_end_offset());
            if high_watermark < self.high_watermark_max[partition] {
                if self.damaged_from(partition as u32).is_some_and(|from| from <= high_watermark) {
                    self.high_watermark_max[partition] = high_watermark;
                } else {
                    self.state_anomalies.push(Anomaly::new(
                        "high-watermark-regressed",
                        format!(
                            "at {now}: partition {partition} high watermark {} fell below {} with no injected damage to explain it",
                            high_watermark, self.high_watermark_max[partition]
                        ),
                    ));
                    self.high_watermark_max[partition] = high_watermark;
                }
            }
            self.high_watermark_max[partition] = self.high_watermark_max[partition].max(high_watermark);
        }
    }

    /// Each partition's log start offset on a live broker (0 if down).
    fn log_starts(&self, node: usize) -> Vec<i64> {
        let broker = self.brokers[node].core.as_ref();
        (0..self.retention_log_start.len() as u32)
            .map(|p| broker.and_then(|b| b.log(p)).map_or(0, |log| log.log_start_offset()))
            .collect()
    }

    /// After every recovery: every stored batch is valid (recovery left nothing corrupt behind).
    fn check_recovery(&mut self, now: Time, node: usize, clean_shutdown: &[bool]) {
        let wall_clock_ms = self.clock.wall_clock_ms(self.brokers[node].id, now);
        let partitions = self.high_watermark_max.len() as u32;
        let damaged_from: BTreeMap<u32, i64> =
            (0..partitions).filter_map(|p| self.damaged_from(p).map(|from| (p, from))).collect();
        let slot = &mut self.brokers[node];
        let Some(mut broker) = slot.core.take() else { return };
        let mut env = slot.env(now, wall_clock_ms, &mut self.faults);
        let mut failures = Vec::new();
        let mut skipped = Vec::new();
        for partition in 0..partitions {
            match broker.verify_log(&mut env, partition) {
                Ok(()) => {}
                // An injected read error stops the check from reading; it is not corruption, but
                // the trace says the check was skipped.
                Err(LogError::Storage(error)) => skipped.push(format!("partition {partition}: {error}")),
                // Damage injected into a durable segment after a clean shutdown is not recovery's
                // to find (a clean log is not scanned, as in Kafka); reads catch it by CRC.
                // An unclean recovery scans every batch, so it must leave no corruption at all.
                Err(LogError::Corrupt { segment_base_offset, .. })
                    if clean_shutdown.get(partition as usize) == Some(&true)
                        && damaged_from.get(&partition).is_some_and(|from| *from <= segment_base_offset) => {}
                // Likewise a damaged index file after a clean shutdown: reads treat the index as a
                // hint and fall back to scanning the segment.
                Err(LogError::Unrecoverable(_))
                    if clean_shutdown.get(partition as usize) == Some(&true)
                        && damaged_from.contains_key(&partition) => {}
                Err(error) => {
                    failures.push(format!("at {now}: partition {partition} after recovery: {error:?}"))
                }
            }
        }
        slot.core = Some(broker);
        for failure in failures {
            self.state_anomalies.push(Anomaly::new("corrupt-log-after-recovery", failure));
        }
        let id = self.brokers[node].id;
        for why in skipped {
            self.trace.event(self.sequence, now, &id, format_args!("recovery check skipped: {why}"));
        }
    }

    /// The lowest offset of `partition` that injected durable damage (on any broker) could touch.
    fn damaged_from(&self, partition: u32) -> Option<i64> {
        let prefix = format!("{}/", partition_dir(partition));
        self.brokers
            .iter()
            .flat_map(|b| b.disk.damage().iter())
            // A torn write damages only data that was never synced, which nothing promised to keep.
            .filter(|damage| !matches!(damage.kind, DamageKind::Torn { .. }))
            .filter_map(|damage| damage.path.strip_prefix(&prefix).and_then(segment_base_offset))
            .min()
    }

    fn all_final_reads_done(&self) -> bool {
        self.clients.iter().all(|slot| match &slot.client {
            Client::Consumer(consumer) => !consumer.is_final() || consumer.is_done(),
            Client::Producer(_) => true,
        })
    }

    fn finish(mut self) -> Outcome {
        let now = self.scheduler.now();
        let mut client_anomalies = Vec::new();
        let mut final_reads_done = BTreeMap::new();
        let mut final_read_reached = BTreeMap::new();
        for slot in &mut self.clients {
            if let Client::Consumer(consumer) = &mut slot.client {
                client_anomalies.extend(consumer.anomalies.iter().cloned());
                if consumer.is_final() {
                    final_reads_done.insert(consumer.partition, consumer.is_done());
                    if let Some(reached) = consumer.end_final_read(now, &mut self.history) {
                        final_read_reached.insert(consumer.partition, reached);
                    }
                }
            }
        }
        let partitions = self.plan.options.broker.partitions;
        let input = CheckInput {
            history: &self.history,
            client_anomalies,
            state_anomalies: self.state_anomalies.clone(),
            damaged_from: (0..partitions).filter_map(|p| self.damaged_from(p).map(|o| (p, o))).collect(),
            log_start: (0..partitions).map(|p| (p, self.retention_log_start[p as usize])).collect(),
            final_reads_done,
            final_read_reached,
            liveness_required: self.plan.options.faults.mode == crate::disk::FaultMode::Liveness,
            excuses: checker::Excuses::default(),
            end_ms: self.scheduler.now().as_nanos() as f64 / 1e6,
        };
        let verdict = checker::check(&input);
        let record = self.record.take().map(|mut record| {
            record.add_history(PARTITION_PREFIX, &self.history, &verdict);
            record
        });
        Outcome {
            seed: self.plan.seed,
            workload: crate::options::Workload::Log,
            trace_hash: format!("{:016x}", self.trace.hash()),
            events: self.trace.events(),
            sim_time_ms: self.scheduler.now().as_millis(),
            verdict,
            history: self.history,
            admin_ops: Vec::new(),
            record,
        }
    }
}

/// `00000000000000000042.log` → 42.
fn segment_base_offset(file: &str) -> Option<i64> {
    let stem = file.split('.').next()?;
    if stem.len() != 20 {
        return None;
    }
    stem.parse().ok()
}

/// The log workload's partitions are numbered, not named: its report calls them `log-0`, `log-1`, …
const PARTITION_PREFIX: &str = "log";

fn partition_name(partition: usize) -> String {
    format!("{PARTITION_PREFIX}-{partition}")
}

fn summarize(message: &Message) -> String {
    use seedlog_core::protocol::{Request, Response};
    match message {
        Message::Request { id, request } => match request {
            // Payloads enter the trace (and so the hash) by content, not just by size.
            Request::Produce { partition, acks, batch } => format!(
                "produce#{} p{partition} {acks:?} {}B #{:016x}",
                id.correlation_id,
                batch.len(),
                crate::rng::fnv1a64(batch)
            ),
            Request::Fetch { partition, offset, max_bytes } => {
                format!("fetch#{} p{partition} @{offset} max {max_bytes}B", id.correlation_id)
            }
            Request::ListOffsets { partition, spec } => {
                format!("list-offsets#{} p{partition} {spec:?}", id.correlation_id)
            }
        },
        Message::Response { id, response } => match response {
            Response::Produce(result) => format!("produce#{} -> {result:?}", id.correlation_id),
            Response::Fetch(Ok(data)) => format!(
                "fetch#{} -> {}B #{:016x} hw={} start={}",
                id.correlation_id,
                data.batches.len(),
                crate::rng::fnv1a64(&data.batches),
                data.high_watermark,
                data.log_start_offset
            ),
            Response::Fetch(Err(code)) => format!("fetch#{} -> {code}", id.correlation_id),
            Response::ListOffsets(result) => format!("list-offsets#{} -> {result:?}", id.correlation_id),
        },
    }
}
