//! A run's option set: everything a seed decides before the first event (swarm testing).
//!
//! Swarm testing (Groce et al.) beats one fixed configuration: each seed turns every fault kind on
//! or off and picks its rates, the cluster's shape and the clients' settings, so that across seeds
//! rare combinations get exercised and no one fault drowns the others. The whole set is printed as
//! the run's banner and saved in the fault-plan file, so a reader sees exactly what ran.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use seedlog_core::broker::BrokerConfig;
use seedlog_core::env::Plant;
use seedlog_core::log::LogConfig;
use seedlog_core::protocol::Acks;

use crate::clock::ClockOptions;
use crate::cluster::options::TopicWorkloadOptions;
use crate::cluster::ClusterOptions;
use crate::disk::{DiskOptions, FaultMode};
use crate::net::NetOptions;
use crate::rng;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProducerOptions {
    pub acks: Acks,
    /// Records per batch, 1 to this.
    pub batch_records_max: u32,
    pub value_bytes_max: u32,
    /// Pause between one answered batch and the next.
    pub linger_ms_max: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientOptions {
    pub producers: Vec<ProducerOptions>,
    pub consumers: u32,
    pub request_timeout_ms: u64,
    /// Kafka's `retries`: how often a retriable failure or a timeout is retried.
    pub retries: u32,
    pub retry_backoff_ms: u64,
    pub fetch_max_bytes: u32,
    pub poll_interval_ms: u64,
}

/// Which kinds of fault the plan draws, and how often.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultOptions {
    pub crashes: bool,
    pub clean_shutdowns: bool,
    pub pauses: bool,
    pub partitions: bool,
    pub clogs: bool,
    pub clock_jumps: bool,
    pub bit_rot: bool,
    pub latent_sector_errors: bool,
    /// Mean virtual time between two planned faults.
    pub mean_fault_interval_ms: u64,
    pub down_ms_max: u64,
    pub pause_ms_max: u64,
    pub partition_ms_max: u64,
    pub clock_jump_ms_max: i64,
    /// Liveness: faults leave a good copy of every datum (and the run must converge).
    /// SafetyOnly: unlimited faults, only safety is checked.
    pub mode: FaultMode,
}

impl FaultOptions {
    /// Every fault kind on (the drawn rates and bounds stay).
    pub fn make_all_kinds(&mut self) {
        self.crashes = true;
        self.clean_shutdowns = true;
        self.pauses = true;
        self.partitions = true;
        self.clogs = true;
        self.clock_jumps = true;
        self.bit_rot = true;
        self.latent_sector_errors = true;
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    pub seed: u64,
    pub brokers: u32,
    pub broker: BrokerConfig,
    pub clients: ClientOptions,
    pub net: NetOptions,
    pub disk: DiskOptions,
    pub clock: ClockOptions,
    pub faults: FaultOptions,
    pub buggify: bool,
    pub plants: Vec<Plant>,
    /// Length of the chaos phase; then faults stop, everything heals and restarts.
    pub chaos_ms: u64,
    /// The liveness bound: after the chaos phase, the final consumers must finish within this.
    pub heal_ms: u64,
    /// The controller workload's cluster (`--workload controller`); absent for the log workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterOptions>,
    /// The cluster workload's topic and clients (`--workload cluster`), beside `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_workload: Option<TopicWorkloadOptions>,
}

/// What a run simulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// One broker, its partition logs, producers and consumers (the foundation's workload).
    #[default]
    Log,
    /// A KRaft cluster: the controller quorum, broker registration and fencing, partition
    /// leadership, with admin clients creating and deleting topics.
    Controller,
    /// A KRaft cluster of 3 to 5 brokers with one replicated topic, producers and consumers:
    /// partition replication checked against Kafka's guarantees (the default of the CLI).
    Cluster,
    /// The cluster workload in Kafka's safe configuration — every producer `acks=all`,
    /// replication factor 3, `min.insync.replicas=2`, unclean election off, a sync per batch —
    /// with every fault kind on. No loss may be excused by the settings, only by durable damage.
    Safe,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Log => "log",
            Workload::Controller => "controller",
            Workload::Cluster => "cluster",
            Workload::Safe => "safe",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        [Workload::Log, Workload::Controller, Workload::Cluster, Workload::Safe]
            .into_iter()
            .find(|w| w.name() == name)
    }
}

impl Options {
    /// Draws the option set of `seed` from its own stream ("options").
    pub fn generate(seed: u64, plants: &[Plant]) -> Options {
        let mut rng = rng::stream(seed, "options");
        let rng = &mut rng;
        let log = LogConfig {
            segment_bytes: pick(rng, &[4 << 10, 16 << 10, 64 << 10, 1 << 20]),
            segment_ms: pick(rng, &[2_000, 10_000, 7 * 24 * 3_600_000]),
            index_interval_bytes: pick(rng, &[128, 512, 4096]),
            retention_bytes: if rng.random_bool(0.3) {
                Some(pick(rng, &[64 << 10, 256 << 10]))
            } else {
                None
            },
            retention_ms: if rng.random_bool(0.2) { Some(pick(rng, &[5_000, 20_000])) } else { None },
            max_batch_bytes: 1 << 20,
        };
        let broker = BrokerConfig {
            partitions: rng.random_range(1..=3),
            log,
            flush_interval_ms: pick(rng, &[50, 200, 1_000]),
            retention_check_interval_ms: 1_000,
            fetch_max_bytes: 1 << 20,
        };
        let producer_count = rng.random_range(1..=3);
        let producers = (0..producer_count)
            .map(|_| ProducerOptions {
                acks: if rng.random_bool(0.8) { Acks::All } else { Acks::Leader },
                batch_records_max: pick(rng, &[1, 4, 16]),
                value_bytes_max: pick(rng, &[16, 100, 1000]),
                linger_ms_max: pick(rng, &[1, 5, 20]),
            })
            .collect();
        let clients = ClientOptions {
            producers,
            consumers: rng.random_range(1..=2),
            request_timeout_ms: pick(rng, &[100, 500, 2_000]),
            retries: pick(rng, &[0, 3, 10]),
            retry_backoff_ms: 20,
            fetch_max_bytes: pick(rng, &[512, 4096, 65536]),
            poll_interval_ms: pick(rng, &[2, 10, 50]),
        };
        let net = NetOptions::generate(rng);
        let disk = DiskOptions::generate(rng);
        let clock = ClockOptions::generate(rng);
        let faults = FaultOptions {
            crashes: rng.random_bool(0.6),
            clean_shutdowns: rng.random_bool(0.4),
            pauses: rng.random_bool(0.4),
            partitions: rng.random_bool(0.5),
            clogs: rng.random_bool(0.4),
            clock_jumps: rng.random_bool(0.3),
            bit_rot: rng.random_bool(0.3),
            latent_sector_errors: rng.random_bool(0.3),
            mean_fault_interval_ms: pick(rng, &[200, 1_000, 3_000]),
            down_ms_max: pick(rng, &[10, 200, 2_000]),
            pause_ms_max: pick(rng, &[50, 500, 3_000]),
            partition_ms_max: pick(rng, &[100, 1_000, 5_000]),
            clock_jump_ms_max: pick(rng, &[1_000, 60_000]),
            mode: if rng.random_bool(0.8) { FaultMode::Liveness } else { FaultMode::SafetyOnly },
        };
        Options {
            seed,
            brokers: 1,
            broker,
            clients,
            net,
            disk: DiskOptions { fault_mode: faults.mode.clone(), ..disk },
            clock: ClockOptions { jumps: faults.clock_jumps, ..clock },
            faults,
            buggify: rng.random_bool(0.5),
            plants: plants.to_vec(),
            chaos_ms: pick(rng, &[2_000, 5_000, 10_000]),
            heal_ms: 30_000,
            cluster: None,
            topic_workload: None,
        }
    }

    /// The option set of `seed` for `workload`. The controller workload draws its cluster from a
    /// stream of its own ("options/cluster"), so the shared options are those of the log workload.
    pub fn generate_for(workload: Workload, seed: u64, plants: &[Plant]) -> Options {
        let mut options = Options::generate(seed, plants);
        if workload != Workload::Log {
            let mut cluster = ClusterOptions::generate(&mut rng::stream(seed, "options/cluster"));
            if matches!(workload, Workload::Cluster | Workload::Safe) {
                // Its own stream: the cluster's shape and the topic workload.
                let mut stream = rng::stream(seed, "options/topic-workload");
                let mut topic_workload = TopicWorkloadOptions::generate(&mut stream, &mut cluster);
                if workload == Workload::Safe {
                    topic_workload.make_safe();
                    options.faults.make_all_kinds();
                }
                options.topic_workload = Some(topic_workload);
            }
            cluster.fit_network(&options.net);
            options.brokers = cluster.nodes();
            options.clients = ClientOptions { producers: Vec::new(), consumers: 0, ..options.clients };
            options.broker.partitions = 0;
            options.cluster = Some(cluster);
        }
        options
    }

    pub fn workload(&self) -> Workload {
        match (&self.cluster, &self.topic_workload) {
            (Some(_), Some(_)) => Workload::Cluster,
            (Some(_), None) => Workload::Controller,
            (None, _) => Workload::Log,
        }
    }

    /// The banner printed at the start of a run: every option, one line per group.
    pub fn banner(&self) -> String {
        let json = |value: &dyn erased::Json| value.json();
        let mut text = format!(
            "seed={} brokers={} chaos_ms={} heal_ms={} buggify={}\n",
            self.seed, self.brokers, self.chaos_ms, self.heal_ms, self.buggify
        );
        let plants: Vec<&str> = self.plants.iter().map(|p| p.name()).collect();
        text += &format!(
            "  plants:  {}\n",
            if plants.is_empty() { "none".to_string() } else { plants.join(",") }
        );
        match &self.cluster {
            Some(cluster) => {
                text += &format!("  cluster: {}\n", json(cluster));
                if let Some(workload) = &self.topic_workload {
                    text += &format!("  topic:   {}\n", json(&workload.topic));
                    text += &format!("  producers: {}\n", json(&workload.producers));
                    text += &format!(
                        "  clients: {{\"consumers\":{},\"settings\":{}}}\n",
                        workload.consumers,
                        json(&workload.clients)
                    );
                    text += &format!("  replication: {}\n", json(&workload.replication));
                }
            }
            None => {
                text += &format!("  broker:  {}\n", json(&self.broker));
                text += &format!("  clients: {}\n", json(&self.clients));
            }
        }
        text += &format!("  faults:  {}\n", json(&self.faults));
        text += &format!("  net:     {}\n", json(&self.net));
        text += &format!("  disk:    {}\n", json(&self.disk));
        text += &format!("  clock:   {}\n", json(&self.clock));
        text
    }
}

mod erased {
    /// Lets the banner render differently typed option groups through one closure.
    pub trait Json {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|error| format!("<unprintable: {error}>"))
        }
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}
