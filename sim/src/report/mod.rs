//! Reports: what a run did, drawn so that a newcomer can see why a record was lost.
//!
//! A [`RunRecord`] is filled by the simulated world while it runs (node crashes and pauses,
//! network cuts, each replica's role and offsets, client operations, anomalies, free-form notes)
//! and rendered afterwards by [`write_run_report`] into one self-contained HTML page with SVG
//! charts. [`write_swarm_report`] summarizes many seeds.
//!
//! Contract for the world that fills a record:
//! - **Disabled means absent.** The world holds an `Option<RunRecord>`: `None` when no report was
//!   asked for. Every call site is then `if let Some(record) = &mut self.record { … }`, so a run
//!   without a report pays one branch per call and formats no text. Nothing in this module is
//!   ever called on a hot path with the record absent.
//! - **Times are simulated milliseconds** (`f64`), never the wall clock. Calls should come in
//!   time order per series; the record does not sort them.
//! - **Bounded.** Every list has a cap named with its unit below. Offset samples and listed client
//!   operations are *decimated* when full (see [`Decimated`]): a series keeps at most
//!   [`OFFSET_SAMPLES_MAX`] samples, evenly thinned over its changes, always keeping the falls of
//!   the log end offset (truncations) in preference and always showing the latest value. Other
//!   lists keep their first entries and count what they dropped in [`Dropped`].
//! - **Deterministic.** Only `Vec` and `BTreeMap`: the same run gives the same record, byte for
//!   byte, and the same report.
//! - It MUST NOT influence the run: recording draws no randomness and changes no state the world
//!   reads back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checker::Verdict;
use crate::history::{History, OpKind, OpType};
use crate::net::Partition;
use crate::options::Options;
use seedlog_core::protocol::Acks;

mod charts;
pub mod demo;
mod html;

pub use html::{write_run_report, write_swarm_report};

/// A bound on one replica's offset samples (log end offset, high watermark); see [`Decimated`].
pub const OFFSET_SAMPLES_MAX: usize = 2_048;
/// A bound on the client operations listed one by one; counts per time bucket are always complete.
pub const CLIENT_OPS_LISTED_MAX: usize = 20_000;
/// A bound on one replica's role changes, on node events and on network events (each list).
pub const EVENTS_MAX: usize = 10_000;
/// A bound on anomalies and on notes (each list).
pub const ANOMALIES_MAX: usize = 1_000;
pub const NOTES_MAX: usize = 2_000;
/// Client operations are counted per bucket of this much simulated time (by completion).
pub const OPS_BUCKET_MS: u64 = 10;

/// Everything one run recorded for its report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub header: Header,
    /// Node up/down/paused/resumed changes, in the order recorded.
    pub node_events: Vec<NodeEvent>,
    pub net_events: Vec<NetEvent>,
    /// Per partition name, per node: the replica's roles and offsets.
    pub partitions: BTreeMap<String, PartitionRecord>,
    pub ops: OpsRecord,
    pub anomalies: Vec<AnomalyRecord>,
    pub notes: Vec<Note>,
    /// The latest simulated time anything was recorded at (or the run's end, from [`RunRecord::conclude`]).
    pub end_ms: f64,
    pub dropped: Dropped,
}

/// Who ran, with what, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub seed: u64,
    pub workload: String,
    /// A free-form summary of the options that matter to a reader (acks, brokers, fault kinds...).
    pub options: BTreeMap<String, String>,
    /// Broker (node) ids, in the order the report draws their lanes.
    pub brokers: Vec<u32>,
    /// Partition names such as `t0-0`; partitions first seen in a recording call are added.
    pub partitions: Vec<String>,
    pub verdict: Option<VerdictSummary>,
    /// The command that replays this run, if the caller knows it.
    #[serde(default)]
    pub replay: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictSummary {
    pub ok: bool,
    /// The kinds of the failing anomalies, sorted, without repeats.
    pub anomaly_kinds: Vec<String>,
    /// The kinds of the observations (reported, not failures), sorted, without repeats.
    pub observation_kinds: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub t_ms: f64,
    pub node: u32,
    pub change: NodeChange,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeChange {
    /// The node stopped: `why` is "crash", "power loss", "halt", "shutdown"...
    Down {
        why: String,
    },
    Up,
    Paused,
    Resumed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetEvent {
    pub t_ms: f64,
    pub change: NetChange,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetChange {
    /// No message crosses between two groups, either way.
    Cut { groups: Vec<Vec<u32>> },
    /// Messages from `from` to `to` are cut; the other direction works.
    OneWay { from: Vec<u32>, to: Vec<u32> },
    /// The sides cannot talk to each other; `bridge` talks to both.
    Bridge { bridge: u32, side_a: Vec<u32>, side_b: Vec<u32> },
    /// Every cut link works again.
    Healed,
}

impl NetChange {
    /// How the report writes the shape: `{0,1} | {2}`, `{0} -> {1,2} cut`, ...
    pub fn label(&self) -> String {
        let set = |nodes: &[u32]| {
            let names: Vec<String> = nodes.iter().map(u32::to_string).collect();
            format!("{{{}}}", names.join(","))
        };
        match self {
            NetChange::Cut { groups } => groups.iter().map(|g| set(g)).collect::<Vec<_>>().join(" | "),
            NetChange::OneWay { from, to } => format!("{} -> {} cut", set(from), set(to)),
            NetChange::Bridge { bridge, side_a, side_b } => {
                format!("{} | {} bridged by {bridge}", set(side_a), set(side_b))
            }
            NetChange::Healed => "healed".to_string(),
        }
    }
}

/// A replica's role in its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
    /// Not a replica, or not serving (fenced, deleted, offline).
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleChange {
    pub t_ms: f64,
    pub role: Role,
    pub leader_epoch: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OffsetSample {
    pub t_ms: f64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Per node id.
    pub replicas: BTreeMap<u32, ReplicaRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// Only changes of role or leader epoch, capped at [`EVENTS_MAX`].
    pub roles: Vec<RoleChange>,
    /// Only changes of log end offset or high watermark; see [`Decimated`].
    pub offsets: Decimated<OffsetSample>,
}

/// How a client operation ended (Jepsen's ok / fail / info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpOutcome {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Failed,
    /// Unknown (a timeout, an `acks=0` send): it may or may not have happened.
    Indefinite,
}

/// One client operation, invoked and completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientOp {
    pub t_invoke_ms: f64,
    pub t_complete_ms: f64,
    /// The client (Jepsen's "process").
    pub process: u32,
    pub partition: String,
    /// "send", "poll" or "final-read".
    pub kind: String,
    pub outcome: OpOutcome,
    /// The offsets written (an acknowledged send) or read.
    pub offsets: Vec<i64>,
    /// A send's acks setting as Kafka writes it: "all", "1", "0".
    pub acks: Option<String>,
}

/// Counts of client operations by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub failed: u64,
    pub indefinite: u64,
}

impl OutcomeCounts {
    fn add(&mut self, outcome: OpOutcome) {
        match outcome {
            OpOutcome::Ok => self.ok += 1,
            OpOutcome::Failed => self.failed += 1,
            OpOutcome::Indefinite => self.indefinite += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.ok + self.failed + self.indefinite
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpsRecord {
    /// The operations one by one, decimated past [`CLIENT_OPS_LISTED_MAX`].
    pub listed: Decimated<ClientOp>,
    /// Per kind, per bucket of [`OPS_BUCKET_MS`] (by completion time, bucket index): complete.
    pub counts: BTreeMap<String, BTreeMap<u64, OutcomeCounts>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    /// When it happened, if known (a checker finding at the end of a run has no time).
    pub t_ms: Option<f64>,
    pub kind: String,
    pub detail: String,
    pub partition: Option<String>,
    pub offset: Option<i64>,
    /// A failure of the run (`true`) or an observation, reported but allowed (`false`).
    pub failing: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub t_ms: f64,
    pub node: Option<u32>,
    pub text: String,
}

/// What the caps dropped, so that a report can say so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub node_events: u64,
    pub net_events: u64,
    pub role_changes: u64,
    pub anomalies: u64,
    pub notes: u64,
}

/// A series thinned to a bound: at most `max` items, evenly spread over everything pushed.
///
/// While there is room every item is kept. When the list is full it is halved: the first item is
/// kept, and of each following pair of neighbours one survives (the *marked* one if only one is
/// marked, else the later one). From then on only every `stride`-th item is kept (the stride
/// doubles at each halving), except marked items, which are always taken. So the list never
/// exceeds `max`, its density stays even over time, and the items the caller marks as important
/// (for offsets: a fall of the log end offset, a truncation) survive thinning in preference.
/// `latest` always holds the last item pushed, so a chart ends at the true final value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decimated<T> {
    pub items: Vec<T>,
    /// Parallel to `items`: whether the caller marked the item as important.
    pub marked: Vec<bool>,
    pub latest: Option<T>,
    /// Items pushed in all.
    pub pushed: u64,
    pub stride: u64,
    pub max: usize,
}

impl Default for ReplicaRecord {
    fn default() -> Self {
        ReplicaRecord { roles: Vec::new(), offsets: Decimated::with_max(OFFSET_SAMPLES_MAX) }
    }
}

impl Default for OpsRecord {
    fn default() -> Self {
        OpsRecord { listed: Decimated::with_max(CLIENT_OPS_LISTED_MAX), counts: BTreeMap::new() }
    }
}

impl<T: Clone> Decimated<T> {
    /// An empty series that keeps at most `max` items (at least 4).
    pub fn with_max(max: usize) -> Self {
        assert!(max >= 4, "a decimated series keeps at least 4 items");
        Decimated { items: Vec::new(), marked: Vec::new(), latest: None, pushed: 0, stride: 1, max }
    }

    pub fn push(&mut self, item: T, marked: bool) {
        self.pushed += 1;
        self.latest = Some(item.clone());
        if !marked && !self.pushed.is_multiple_of(self.stride) {
            return;
        }
        if self.items.len() >= self.max {
            self.halve();
        }
        self.items.push(item);
        self.marked.push(marked);
        assert!(self.items.len() <= self.max);
    }

    /// The kept items, then the latest one if thinning skipped it.
    pub fn shown(&self) -> Vec<T>
    where
        T: PartialEq,
    {
        let mut shown = self.items.clone();
        if let Some(latest) = &self.latest {
            if shown.last() != Some(latest) {
                shown.push(latest.clone());
            }
        }
        shown
    }

    fn halve(&mut self) {
        let mut items = Vec::with_capacity(self.max / 2 + 1);
        let mut marked = Vec::with_capacity(self.max / 2 + 1);
        let old_items = std::mem::take(&mut self.items);
        let old_marked = std::mem::take(&mut self.marked);
        let mut pairs = old_items.into_iter().zip(old_marked);
        if let Some((first, first_marked)) = pairs.next() {
            items.push(first);
            marked.push(first_marked);
        }
        while let Some((a, a_marked)) = pairs.next() {
            match pairs.next() {
                Some((b, b_marked)) => {
                    let keep_first = a_marked && !b_marked;
                    let (item, mark) = if keep_first { (a, a_marked) } else { (b, b_marked) };
                    items.push(item);
                    marked.push(mark);
                }
                None => {
                    items.push(a);
                    marked.push(a_marked);
                }
            }
        }
        self.items = items;
        self.marked = marked;
        self.stride = self.stride.saturating_mul(2);
        assert!(self.items.len() <= self.max / 2 + 1, "halving halves");
    }
}

/// Simulated milliseconds, the report's unit of time.
pub fn ms(time: seedlog_core::env::Time) -> f64 {
    time.as_nanos() as f64 / 1e6
}

impl RunRecord {
    /// An empty record for a run: fill the header's options with [`RunRecord::option`].
    pub fn new(seed: u64, workload: &str, brokers: Vec<u32>, partitions: Vec<String>) -> RunRecord {
        RunRecord {
            header: Header { seed, workload: workload.to_string(), brokers, partitions, ..Header::default() },
            ..RunRecord::default()
        }
    }

    /// A record whose header is filled from the plan's option set: seed, workload, brokers
    /// `0..brokers`, and a summary of the options a reader needs (acks, fault kinds, phases).
    pub fn for_options(options: &Options) -> RunRecord {
        let brokers = (0..options.brokers).collect();
        let mut record = RunRecord::new(options.seed, options.workload().name(), brokers, Vec::new());
        for (key, value) in option_summary(options) {
            record.option(&key, &value);
        }
        record
    }

    /// Adds one line to the header's option summary.
    pub fn option(&mut self, key: &str, value: &str) {
        self.header.options.insert(key.to_string(), value.to_string());
    }

    // Nodes.

    /// The node stopped; `why`: "crash", "power loss", "halt", "shutdown"...
    pub fn node_down(&mut self, t_ms: f64, node: u32, why: &str) {
        self.node_event(t_ms, node, NodeChange::Down { why: why.to_string() });
    }

    pub fn node_up(&mut self, t_ms: f64, node: u32) {
        self.node_event(t_ms, node, NodeChange::Up);
    }

    pub fn node_paused(&mut self, t_ms: f64, node: u32) {
        self.node_event(t_ms, node, NodeChange::Paused);
    }

    pub fn node_resumed(&mut self, t_ms: f64, node: u32) {
        self.node_event(t_ms, node, NodeChange::Resumed);
    }

    fn node_event(&mut self, t_ms: f64, node: u32, change: NodeChange) {
        self.saw(t_ms);
        if self.node_events.len() >= EVENTS_MAX {
            self.dropped.node_events += 1;
            return;
        }
        self.node_events.push(NodeEvent { t_ms, node, change });
    }

    // Network.

    /// The network is cut into `groups`: no message crosses between two groups.
    pub fn net_cut(&mut self, t_ms: f64, groups: Vec<Vec<u32>>) {
        self.net_event(t_ms, NetChange::Cut { groups });
    }

    /// Messages from `from` to `to` are cut; the other direction still works.
    pub fn net_one_way(&mut self, t_ms: f64, from: Vec<u32>, to: Vec<u32>) {
        self.net_event(t_ms, NetChange::OneWay { from, to });
    }

    /// Every cut link works again.
    pub fn net_healed(&mut self, t_ms: f64) {
        self.net_event(t_ms, NetChange::Healed);
    }

    /// The simulator's own partition shapes, recorded as what they cut.
    pub fn net_partition(&mut self, t_ms: f64, partition: &Partition) {
        let ids = |nodes: &[crate::net::NodeId]| nodes.iter().map(|n| n.0).collect::<Vec<u32>>();
        let change = match partition {
            Partition::Isolate { node } => {
                let others = self.header.brokers.iter().copied().filter(|b| *b != node.0).collect();
                NetChange::Cut { groups: vec![vec![node.0], others] }
            }
            Partition::Split { side_a, side_b } => NetChange::Cut { groups: vec![ids(side_a), ids(side_b)] },
            Partition::MajorityMinority { majority, minority } => {
                NetChange::Cut { groups: vec![ids(majority), ids(minority)] }
            }
            Partition::OneWay { from, to } => NetChange::OneWay { from: ids(from), to: ids(to) },
            Partition::Bridge { bridge, side_a, side_b } => {
                NetChange::Bridge { bridge: bridge.0, side_a: ids(side_a), side_b: ids(side_b) }
            }
        };
        self.net_event(t_ms, change);
    }

    fn net_event(&mut self, t_ms: f64, change: NetChange) {
        self.saw(t_ms);
        if self.net_events.len() >= EVENTS_MAX {
            self.dropped.net_events += 1;
            return;
        }
        self.net_events.push(NetEvent { t_ms, change });
    }

    // Replicas.

    /// The replica of `partition` on `node` now has `role` at `leader_epoch` (recorded only when
    /// either changed).
    pub fn role(&mut self, t_ms: f64, partition: &str, node: u32, role: Role, leader_epoch: i32) {
        self.saw(t_ms);
        let replica = self.replica(partition, node);
        if let Some(last) = replica.roles.last() {
            if last.role == role && last.leader_epoch == leader_epoch {
                return;
            }
        }
        if replica.roles.len() >= EVENTS_MAX {
            self.dropped.role_changes += 1;
            return;
        }
        replica.roles.push(RoleChange { t_ms, role, leader_epoch });
    }

    /// The replica's log end offset and high watermark (recorded only when either changed; a
    /// fall of the log end offset, a truncation, survives decimation in preference).
    pub fn offsets(
        &mut self,
        t_ms: f64,
        partition: &str,
        node: u32,
        log_end_offset: i64,
        high_watermark: i64,
    ) {
        self.saw(t_ms);
        let series = &mut self.replica(partition, node).offsets;
        let truncated = match &series.latest {
            Some(last) if last.log_end_offset == log_end_offset && last.high_watermark == high_watermark => {
                return
            }
            Some(last) => log_end_offset < last.log_end_offset,
            None => false,
        };
        series.push(OffsetSample { t_ms, log_end_offset, high_watermark }, truncated);
    }

    fn replica(&mut self, partition: &str, node: u32) -> &mut ReplicaRecord {
        if !self.partitions.contains_key(partition) {
            self.partitions.insert(partition.to_string(), PartitionRecord::default());
            if !self.header.partitions.iter().any(|p| p == partition) {
                self.header.partitions.push(partition.to_string());
            }
        }
        let record = self.partitions.get_mut(partition).expect("inserted above");
        record.replicas.entry(node).or_default()
    }

    // Clients.

    /// One client operation, once it completed. Counted per time bucket always; listed one by one
    /// up to [`CLIENT_OPS_LISTED_MAX`], then decimated (operations that did not end `Ok` are kept
    /// in preference).
    pub fn client_op(&mut self, op: ClientOp) {
        self.saw(op.t_complete_ms);
        let bucket = (op.t_complete_ms.max(0.0) as u64) / OPS_BUCKET_MS;
        self.ops.counts.entry(op.kind.clone()).or_default().entry(bucket).or_default().add(op.outcome);
        let marked = op.outcome != OpOutcome::Ok;
        self.ops.listed.push(op, marked);
    }

    /// Adds a run's client operations (`history`, on partitions of `topic`) and the verdict's
    /// findings that carry a time.
    pub fn add_history(&mut self, topic: &str, history: &History, verdict: &Verdict) {
        let mut invoked: BTreeMap<(u32, String), f64> = BTreeMap::new();
        for op in &history.ops {
            let first = op.records.first().map(|(_, id)| id.clone()).unwrap_or_default();
            let kind = match op.kind {
                OpKind::Send => "send",
                OpKind::Poll => "poll",
                OpKind::FinalRead => "final-read",
                _ => continue,
            };
            let outcome = match op.op_type {
                OpType::Invoke => {
                    invoked.insert((op.process, first), op.time_ms);
                    continue;
                }
                OpType::Ok => OpOutcome::Ok,
                OpType::Fail => OpOutcome::Failed,
                OpType::Info => OpOutcome::Indefinite,
            };
            let t_invoke_ms = invoked.remove(&(op.process, first)).unwrap_or(op.time_ms);
            self.client_op(ClientOp {
                t_invoke_ms,
                t_complete_ms: op.time_ms,
                process: op.process,
                partition: format!("{topic}-{}", op.partition),
                kind: kind.to_string(),
                outcome,
                offsets: op.records.iter().map(|(offset, _)| *offset).filter(|offset| *offset >= 0).collect(),
                acks: op.acks.map(|acks| {
                    match acks {
                        Acks::All => "all",
                        Acks::Leader => "1",
                        Acks::None => "0",
                    }
                    .to_string()
                }),
            });
        }
        let findings = verdict.anomalies.iter().map(|a| (a, true));
        for (finding, failing) in findings.chain(verdict.observations.iter().map(|a| (a, false))) {
            if let Some(t_ms) = finding.time_ms {
                let partition = finding.partition.map(|p| format!("{topic}-{p}"));
                self.anomaly(
                    Some(t_ms),
                    &finding.kind,
                    &finding.detail,
                    partition.as_deref(),
                    finding.offset,
                    failing,
                );
            }
        }
    }

    // Findings.

    /// An anomaly (`failing`) or an observation; `t_ms` when it is known.
    pub fn anomaly(
        &mut self,
        t_ms: Option<f64>,
        kind: &str,
        detail: &str,
        partition: Option<&str>,
        offset: Option<i64>,
        failing: bool,
    ) {
        if let Some(t_ms) = t_ms {
            self.saw(t_ms);
        }
        if self.anomalies.len() >= ANOMALIES_MAX {
            self.dropped.anomalies += 1;
            return;
        }
        self.anomalies.push(AnomalyRecord {
            t_ms,
            kind: kind.to_string(),
            detail: detail.to_string(),
            partition: partition.map(str::to_string),
            offset,
            failing,
        });
    }

    /// A sentence for the reader at a time, about a node or the whole run: "acked offset 17
    /// (acks=1) on leader 1".
    pub fn note(&mut self, t_ms: f64, node: Option<u32>, text: &str) {
        self.saw(t_ms);
        if self.notes.len() >= NOTES_MAX {
            self.dropped.notes += 1;
            return;
        }
        self.notes.push(Note { t_ms, node, text: text.to_string() });
    }

    /// The run ended at `end_ms` with `verdict`: records the verdict summary, and every anomaly
    /// and observation of the verdict that was not already recorded (same kind and detail) as a
    /// finding without a time. Calling it twice changes nothing more.
    pub fn conclude(&mut self, verdict: &Verdict, end_ms: f64) {
        self.saw(end_ms);
        let kinds = |list: &[crate::checker::Anomaly]| {
            let mut kinds: Vec<String> = list.iter().map(|a| a.kind.clone()).collect();
            kinds.sort();
            kinds.dedup();
            kinds
        };
        self.header.verdict = Some(VerdictSummary {
            ok: verdict.ok,
            anomaly_kinds: kinds(&verdict.anomalies),
            observation_kinds: kinds(&verdict.observations),
        });
        let findings = verdict.anomalies.iter().map(|a| (a, true));
        let findings = findings.chain(verdict.observations.iter().map(|a| (a, false)));
        for (finding, failing) in findings {
            let known = self.anomalies.iter().any(|a| a.kind == finding.kind && a.detail == finding.detail);
            if !known {
                self.anomaly(None, &finding.kind, &finding.detail, None, None, failing);
            }
        }
    }

    fn saw(&mut self, t_ms: f64) {
        if t_ms.is_finite() && t_ms > self.end_ms {
            self.end_ms = t_ms;
        }
    }
}

/// One seed of a swarm, for [`write_swarm_report`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    pub seed: u64,
    pub ok: bool,
    /// The failing anomalies' kinds, sorted, without repeats.
    pub anomaly_kinds: Vec<String>,
    /// The fault kinds this seed's option set turned on ([`fault_mix`]).
    pub fault_mix: Vec<String>,
    pub events: u64,
    pub sim_ms: u64,
    pub wall_ms: u64,
    /// The command that replays this seed (`seedlog-sim run --seed S [--workload W] [--plant P]`);
    /// the report adds `--report DIR`.
    pub replay: String,
}

/// The fault kinds an option set turns on, in a fixed order: the planned faults (crash, shutdown,
/// pause, partition, clog, clock-jump, bit-rot, latent-sector-error), the controller workload's
/// crash-after-vote, the network's and the disk's random faults, and BUGGIFY.
pub fn fault_mix(options: &Options) -> Vec<String> {
    let faults = &options.faults;
    let net = &options.net;
    let disk = &options.disk;
    let crash_after_vote = options.cluster.as_ref().is_some_and(|c| c.crash_after_vote_probability > 0.0);
    let kinds = [
        (faults.crashes, "crash"),
        (faults.clean_shutdowns, "shutdown"),
        (faults.pauses, "pause"),
        (faults.partitions, "partition"),
        (faults.clogs, "clog"),
        (faults.clock_jumps, "clock-jump"),
        (faults.bit_rot, "bit-rot"),
        (faults.latent_sector_errors, "latent-sector-error"),
        (crash_after_vote, "crash-after-vote"),
        (net.loss_probability > 0.0, "net-loss"),
        (net.duplicate_probability > 0.0, "net-duplicate"),
        (net.reorder, "net-reorder"),
        (net.tail_probability > 0.0, "net-latency-tail"),
        (disk.torn_writes, "torn-write"),
        (disk.misdirect_probability > 0.0, "misdirected-write"),
        (disk.write_error_probability > 0.0, "write-error"),
        (disk.sync_error_probability > 0.0, "sync-error"),
        (disk.read_error_probability > 0.0, "read-error"),
        (disk.capacity_bytes.is_some(), "disk-full"),
        (options.buggify, "buggify"),
    ];
    kinds.into_iter().filter(|(on, _)| *on).map(|(_, kind)| kind.to_string()).collect()
}

/// The options a report's reader needs, as short lines.
fn option_summary(options: &Options) -> Vec<(String, String)> {
    let mut lines = vec![
        ("brokers".to_string(), options.brokers.to_string()),
        ("chaos phase (ms)".to_string(), options.chaos_ms.to_string()),
        ("heal phase bound (ms)".to_string(), options.heal_ms.to_string()),
        ("fault mode".to_string(), format!("{:?}", options.faults.mode)),
        ("fault kinds".to_string(), fault_mix(options).join(", ")),
    ];
    if !options.clients.producers.is_empty() {
        let acks: Vec<String> = options.clients.producers.iter().map(|p| format!("{:?}", p.acks)).collect();
        lines.push(("producers' acks".to_string(), acks.join(", ")));
    }
    if options.cluster.is_none() {
        lines.push(("partitions".to_string(), options.broker.partitions.to_string()));
    }
    if !options.plants.is_empty() {
        let plants: Vec<&str> = options.plants.iter().map(|p| p.name()).collect();
        lines.push(("planted bugs".to_string(), plants.join(", ")));
    }
    lines
}

#[cfg(test)]
mod tests;
