//! The fault plan: the explicit, timed list of faults a seed generated.
//!
//! A plan is drawn from the seed's "faults" stream and the option set, before the run starts, so
//! that it can be printed (`seedlog-sim run --seed S --print-plan`), saved (`--save-plan FILE`),
//! edited by hand and replayed (`seedlog-sim replay FILE`). A replay uses the plan's faults exactly
//! as written and the seed for everything else (network, disk, clients), so the same file gives the
//! same trace hash. Shrinking a failing plan (dropping faults while it still fails) builds on this.

use std::fmt;

use rand::Rng;
use seedlog_core::env::Plant;

use crate::net::{NodeId, Partition};
use crate::options::Options;
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
        let options = Options::generate(seed, plants);
        let faults = generate_faults(&options);
        Plan { seed, options, faults }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serialises")
    }

    pub fn from_json(text: &str) -> Result<Plan, String> {
        serde_json::from_str(text).map_err(|error| format!("not a Seedlog fault plan: {error}"))
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

/// The brokers are nodes `0..brokers`; clients follow.
pub fn broker_nodes(options: &Options) -> Vec<NodeId> {
    (0..options.brokers).map(NodeId).collect()
}

pub fn all_nodes(options: &Options) -> Vec<NodeId> {
    let clients =
        options.clients.producers.len() as u32 + options.clients.consumers + options.broker.partitions;
    (0..options.brokers + clients).map(NodeId).collect()
}

fn generate_faults(options: &Options) -> Vec<TimedFault> {
    let mut rng = rng::stream(options.seed, "faults");
    let rng = &mut rng;
    let settings = &options.faults;
    let mut kinds: Vec<&str> = Vec::new();
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
            kinds.push(kind);
        }
    }
    let brokers = broker_nodes(options);
    let nodes = all_nodes(options);
    let mut faults = Vec::new();
    if kinds.is_empty() {
        return faults;
    }
    let mut at_ms = 0u64;
    loop {
        // Exponential gaps: faults arrive as a Poisson process with the configured mean.
        let unit: f64 = rng.random_range(f64::EPSILON..1.0);
        at_ms += (-(unit.ln()) * settings.mean_fault_interval_ms as f64) as u64 + 1;
        if at_ms >= options.chaos_ms || faults.len() >= 1_000 {
            break;
        }
        let broker = brokers[rng.random_range(0..brokers.len())];
        let fault = match kinds[rng.random_range(0..kinds.len())] {
            "crash" => Fault::Crash { node: broker, down_ms: rng.random_range(1..=settings.down_ms_max) },
            "shutdown" => {
                Fault::Shutdown { node: broker, down_ms: rng.random_range(1..=settings.down_ms_max) }
            }
            "pause" => {
                Fault::Pause { node: broker, duration_ms: rng.random_range(1..=settings.pause_ms_max) }
            }
            "partition" => Fault::Partition {
                partition: Partition::random(rng, &nodes),
                duration_ms: rng.random_range(1..=settings.partition_ms_max),
            },
            "clog" => {
                let from = nodes[rng.random_range(0..nodes.len())];
                let to = nodes[rng.random_range(0..nodes.len())];
                Fault::Clog { from, to, duration_ms: rng.random_range(1..=settings.partition_ms_max) }
            }
            "clock_jump" => Fault::ClockJump {
                node: nodes[rng.random_range(0..nodes.len())],
                delta_ms: rng.random_range(-settings.clock_jump_ms_max..=settings.clock_jump_ms_max),
            },
            "bit_rot" => Fault::BitRot { node: broker },
            "latent_sector_error" => Fault::LatentSectorError { node: broker },
            other => unreachable!("unknown fault kind {other}"),
        };
        faults.push(TimedFault { at_ms, fault });
    }
    faults
}
