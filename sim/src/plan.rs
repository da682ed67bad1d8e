//! The fault plan: the explicit, timed list of faults a seed generated.
//!
//! A plan is drawn from the seed's "faults" stream and the option set, before the run starts, so
//! that it can be printed (`seedlog-sim run --seed S --print-plan`), saved (`--save-plan FILE`),
//! edited by hand and replayed (`seedlog-sim replay FILE`). A replay uses the plan's faults exactly
//! as written and the seed for everything else (network, disk, clients), so the same file gives the
//! same trace hash. Shrinking a failing plan (dropping faults while it still fails) builds on this.

use std::fmt;

use rand_chacha::ChaCha8Rng;
use seedlog_core::env::Plant;

use crate::net::{NodeId, Partition};
use crate::options::{Options, Workload};
use crate::rng;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Power loss: memory and unsynced disk writes are lost; the node restarts after `down_ms`.
    Crash { node: NodeId, down_ms: u64 },
    /// A controlled shutdown (syncs everything, marks logs clean); restart after `down_ms`.
    Shutdown { node: NodeId, down_ms: u64 },
    /// The process stops (a GC pause, a SIGSTOP, a VM migration) and resumes with stale state.
    Pause { node: NodeId, duration_ms: u64 },
    /// Cut links in the given shape; everything heals after `duration_ms`.
    Partition { partition: Partition, duration_ms: u64 },
    /// Hold every message on a link for `duration_ms`.
    Clog { from: NodeId, to: NodeId, duration_ms: u64 },
    /// The node's wall clock jumps (NTP step, a VM restored from a snapshot).
    ClockJump { node: NodeId, delta_ms: i64 },
    /// One bit of durable data flips on the node's disk.
    BitRot { node: NodeId },
    /// One durable sector of the node's disk becomes unreadable.
    LatentSectorError { node: NodeId },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { node, down_ms } => write!(f, "crash {node} (down {down_ms}ms)"),
            Fault::Shutdown { node, down_ms } => write!(f, "shutdown {node} (down {down_ms}ms)"),
            Fault::Pause { node, duration_ms } => write!(f, "pause {node} for {duration_ms}ms"),
            Fault::Partition { partition, duration_ms } => {
                write!(f, "partition {partition:?} for {duration_ms}ms")
            }
            Fault::Clog { from, to, duration_ms } => write!(f, "clog {from}->{to} for {duration_ms}ms"),
            Fault::ClockJump { node, delta_ms } => write!(f, "clock jump {node} by {delta_ms}ms"),
            Fault::BitRot { node } => write!(f, "bit rot on {node}"),
            Fault::LatentSectorError { node } => write!(f, "latent sector error on {node}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimedFault {
    pub at_ms: u64,
    pub fault: Fault,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The seed every other stream (network, disk, clients, nodes) is drawn from.
    pub seed: u64,
    pub options: Options,
    pub faults: Vec<TimedFault>,
}

impl Plan {
    /// The plan of `seed`: its option set and the faults drawn for it.
    pub fn generate(seed: u64, plants: &[Plant]) -> Plan {
        Plan::from_options(Options::generate(seed, plants))
    }

    /// The plan of `seed` for `workload`.
    pub fn generate_for(workload: Workload, seed: u64, plants: &[Plant]) -> Plan {
        Plan::from_options(Options::generate_for(workload, seed, plants))
    }

    /// The faults drawn for a given option set (its seed and fault settings).
    pub fn from_options(options: Options) -> Plan {
        let faults = generate_faults(&options);
        Plan { seed: options.seed, options, faults }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serialises")
    }

    /// Loads a plan and checks it can run: a hand-edited file gets a clear error, never a panic.
    pub fn from_json(text: &str) -> Result<Plan, String> {
        let plan: Plan =
            serde_json::from_str(text).map_err(|error| format!("not a Seedlog fault plan: {error}"))?;
        plan.validate().map_err(|error| format!("invalid fault plan: {error}"))?;
        Ok(plan)
    }

    pub fn validate(&self) -> Result<(), String> {
        let options = &self.options;
        if options.seed != self.seed {
            return Err(format!("options.seed {} differs from seed {}", options.seed, self.seed));
        }
        match &options.cluster {
            Some(cluster) => {
                cluster.validate()?;
                if let Some(workload) = &options.topic_workload {
                    workload.validate(cluster.brokers())?;
                }
                if options.brokers != cluster.nodes() {
                    return Err(format!(
                        "brokers = {} but the cluster has {} nodes",
                        options.brokers,
                        cluster.nodes()
                    ));
                }
            }
            None => {
                if options.brokers != 1 {
                    return Err(format!(
                        "brokers = {}: the log workload simulates exactly one broker",
                        options.brokers
                    ));
                }
                if !(1..=64).contains(&options.broker.partitions) {
                    return Err(format!("broker.partitions = {} (1 to 64)", options.broker.partitions));
                }
            }
        }
        options.broker.log.validate().map_err(|error| format!("broker.log: {error}"))?;
        if options.broker.flush_interval_ms == 0 || options.broker.retention_check_interval_ms == 0 {
            return Err("broker timer intervals must be at least 1 ms".into());
        }
        let clients = &options.clients;
        if clients.producers.len() > 64 || clients.consumers > 64 {
            return Err("at most 64 producers and 64 consumers".into());
        }
        for (index, producer) in clients.producers.iter().enumerate() {
            if producer.batch_records_max == 0 || producer.linger_ms_max == 0 {
                return Err(format!(
                    "producer {index}: batch_records_max and linger_ms_max must be at least 1"
                ));
            }
            if producer.value_bytes_max > 1 << 20 {
                return Err(format!("producer {index}: value_bytes_max is at most 1 MiB"));
            }
        }
        if clients.request_timeout_ms == 0 || clients.poll_interval_ms == 0 || clients.fetch_max_bytes == 0 {
            return Err(
                "clients: request_timeout_ms, poll_interval_ms and fetch_max_bytes must be positive".into()
            );
        }
        let disk = &options.disk;
        let probabilities = [
            disk.misdirect_probability,
            disk.write_error_probability,
            disk.sync_error_probability,
            disk.read_error_probability,
            options.net.loss_probability,
            options.net.duplicate_probability,
            options.net.tail_probability,
        ];
        if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return Err("every probability must be within 0..=1".into());
        }
        if disk.sector_bytes != 512 && disk.sector_bytes != 4096 {
            return Err(format!("disk.sector_bytes = {} (512 or 4096)", disk.sector_bytes));
        }
        if disk.sync_latency_ns_min > disk.sync_latency_ns_max
            || options.net.latency_ns_min > options.net.latency_ns_max
        {
            return Err("a latency range is inverted".into());
        }
        let node_count = all_nodes(options).len() as u32;
        let brokers = options.brokers;
        for timed in &self.faults {
            let (nodes, broker_only): (Vec<NodeId>, bool) = match &timed.fault {
                Fault::Crash { node, .. }
                | Fault::Shutdown { node, .. }
                | Fault::Pause { node, .. }
                | Fault::BitRot { node }
                | Fault::LatentSectorError { node } => (vec![*node], true),
                Fault::ClockJump { node, .. } => (vec![*node], false),
                Fault::Clog { from, to, .. } => (vec![*from, *to], false),
                Fault::Partition { partition, .. } => (partition_nodes(partition), false),
            };
            let limit = if broker_only { brokers } else { node_count };
            if let Some(node) = nodes.iter().find(|node| node.0 >= limit) {
                let what = if broker_only { "broker" } else { "node" };
                return Err(format!(
                    "fault at {}ms names {node}, which is not a {what} of this run",
                    timed.at_ms
                ));
            }
        }
        Ok(())
    }

    /// One line: how many faults of each kind (`--print-plan` shows them all).
    pub fn summary(&self) -> String {
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for timed in &self.faults {
            let kind = match timed.fault {
                Fault::Crash { .. } => "crash",
                Fault::Shutdown { .. } => "shutdown",
                Fault::Pause { .. } => "pause",
                Fault::Partition { .. } => "partition",
                Fault::Clog { .. } => "clog",
                Fault::ClockJump { .. } => "clock jump",
                Fault::BitRot { .. } => "bit rot",
                Fault::LatentSectorError { .. } => "latent sector error",
            };
            *counts.entry(kind).or_default() += 1;
        }
        let kinds: Vec<String> = counts.iter().map(|(kind, count)| format!("{count} {kind}")).collect();
        let listed = if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") };
        format!("fault plan: {} faults ({listed}); --print-plan lists them", self.faults.len())
    }

    /// One line per fault, for people.
    pub fn describe(&self) -> String {
        let mut text = format!("fault plan for seed {} ({} faults)\n", self.seed, self.faults.len());
        for timed in &self.faults {
            text += &format!("  at {:>6}ms  {}\n", timed.at_ms, timed.fault);
        }
        text
    }
}

/// The brokers (the cluster's nodes, in the controller workload) are nodes `0..brokers`; clients follow.
pub fn broker_nodes(options: &Options) -> Vec<NodeId> {
    (0..options.brokers).map(NodeId).collect()
}

pub fn all_nodes(options: &Options) -> Vec<NodeId> {
    let clients = match &options.cluster {
        Some(cluster) => cluster.admins + options.topic_workload.as_ref().map_or(0, topic_workload_clients),
        None => {
            options.clients.producers.len() as u32 + options.clients.consumers + options.broker.partitions
        }
    };
    (0..options.brokers + clients).map(NodeId).collect()
}

/// The cluster workload's client nodes: the topic creator, the producers, the consumers and one
/// final consumer per partition (after the admins).
pub fn topic_workload_clients(workload: &crate::cluster::options::TopicWorkloadOptions) -> u32 {
    1 + workload.producers.len() as u32 + workload.consumers + workload.topic.partitions
}

/// Each fault kind has its own stream (`faults/{kind}`) and its own arrival process, so turning
/// one kind on or off never moves another kind's faults; the kinds' lists are then merged by time.
/// Only integer arithmetic, so a plan is the same on every platform.
fn generate_faults(options: &Options) -> Vec<TimedFault> {
    let settings = &options.faults;
    let mut faults = Vec::new();
    for (on, kind) in [
        (settings.crashes, "crash"),
        (settings.clean_shutdowns, "shutdown"),
        (settings.pauses, "pause"),
        (settings.partitions, "partition"),
        (settings.clogs, "clog"),
        (settings.clock_jumps, "clock_jump"),
        (settings.bit_rot, "bit_rot"),
        (settings.latent_sector_errors, "latent_sector_error"),
    ] {
        if on {
            faults.extend(generate_kind(options, kind));
        }
    }
    // A stable sort: same-instant faults keep the kinds' fixed order above.
    faults.sort_by_key(|timed| timed.at_ms);
    faults.truncate(FAULTS_MAX);
    faults
}

/// A bound on one plan's faults.
const FAULTS_MAX: usize = 1_000;

fn generate_kind(options: &Options, kind: &str) -> Vec<TimedFault> {
    let mut stream = rng::stream(options.seed, &format!("faults/{kind}"));
    let rng = &mut stream;
    let settings = &options.faults;
    let brokers = broker_nodes(options);
    let nodes = all_nodes(options);
    let pick = |rng: &mut ChaCha8Rng, nodes: &[NodeId]| nodes[rng::index(rng, nodes.len())];
    let between = |rng: &mut ChaCha8Rng, low: u64, high: u64| rng::range_u64(rng, low, high.max(low));
    // Each kind arrives on average every `mean_fault_interval_ms * KINDS_SHARING` ms, uniformly
    // spread gaps (mean preserved), whatever other kinds are on.
    const KINDS_SHARING: u64 = 4;
    let mean_gap_ms = settings.mean_fault_interval_ms.max(1) * KINDS_SHARING;
    let mut faults = Vec::new();
    let mut at_ms = 0u64;
    loop {
        at_ms += between(rng, 1, 2 * mean_gap_ms);
        if at_ms >= options.chaos_ms || faults.len() >= FAULTS_MAX {
            break;
        }
        let broker = pick(rng, &brokers);
        let fault = match kind {
            "crash" => Fault::Crash { node: broker, down_ms: between(rng, 1, settings.down_ms_max) },
            "shutdown" => Fault::Shutdown { node: broker, down_ms: between(rng, 1, settings.down_ms_max) },
            "pause" => Fault::Pause { node: broker, duration_ms: between(rng, 1, settings.pause_ms_max) },
            "partition" => Fault::Partition {
                partition: Partition::random(rng, &nodes),
                duration_ms: between(rng, 1, settings.partition_ms_max),
            },
            "clog" => {
                let (from, to) = (pick(rng, &nodes), pick(rng, &nodes));
                Fault::Clog { from, to, duration_ms: between(rng, 1, settings.partition_ms_max) }
            }
            "clock_jump" => {
                let node = pick(rng, &nodes);
                let magnitude_ms = settings.clock_jump_ms_max.unsigned_abs();
                let delta_ms = between(rng, 0, 2 * magnitude_ms) as i64 - magnitude_ms as i64;
                Fault::ClockJump { node, delta_ms }
            }
            "bit_rot" => Fault::BitRot { node: broker },
            "latent_sector_error" => Fault::LatentSectorError { node: broker },
            other => unreachable!("unknown fault kind {other}"),
        };
        faults.push(TimedFault { at_ms, fault });
    }
    faults
}

fn partition_nodes(partition: &Partition) -> Vec<NodeId> {
    match partition {
        Partition::Isolate { node } => vec![*node],
        Partition::Split { side_a, side_b } => side_a.iter().chain(side_b).copied().collect(),
        Partition::OneWay { from, to } => from.iter().chain(to).copied().collect(),
        Partition::MajorityMinority { majority, minority } => {
            majority.iter().chain(minority).copied().collect()
        }
        Partition::Bridge { bridge, side_a, side_b } => {
            std::iter::once(bridge).chain(side_a).chain(side_b).copied().collect()
        }
    }
}
