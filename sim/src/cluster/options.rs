//! The controller workload's option set: the cluster's shape, the quorum's timing, the admin
//! clients. Drawn from the seed's "options" stream like the rest of [`crate::options::Options`].

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use seedlog_core::log::LogConfig;
use seedlog_core::metadata::{ControllerConfig, Endpoint};
use seedlog_core::node::NodeConfig;
use seedlog_core::quorum::QuorumConfig;
use seedlog_core::replica::ReplicationConfig;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterOptions {
    /// Voters of the controller quorum: nodes `0..voters`.
    pub voters: u32,
    /// Combined mode: the voters are brokers too (KRaft's `process.roles=broker,controller`).
    /// Otherwise they are dedicated controllers.
    pub combined: bool,
    /// Broker-only nodes, after the voters: they follow the metadata log as observers.
    pub broker_only: u32,
    pub election_timeout_ms: u64,
    pub fetch_timeout_ms: u64,
    pub fetch_interval_ms: u64,
    pub request_timeout_ms: u64,
    pub fetch_max_bytes: u32,
    pub segment_bytes: u64,
    pub snapshot_every_records: u64,
    pub broker_session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Admin clients creating and deleting topics; they follow the nodes.
    pub admins: u32,
    /// Pause between one admin request's answer and the next request.
    pub admin_interval_ms: u64,
    pub admin_timeout_ms: u64,
    /// Topic names are drawn from `t0..t{topic_names}`, so creates and deletes collide.
    pub topic_names: u32,
    pub partitions_max: u32,
    /// Some topics allow unclean leader election.
    pub unclean_topics: bool,
    /// A targeted fault (a nemesis aimed at the protocol's interesting moments): during the chaos,
    /// a voter that has just sent a vote it granted loses power with this probability (per
    /// vote), and comes back within `down_ms_max`. A vote must be durable before it is sent.
    #[serde(default)]
    pub crash_after_vote_probability: f64,
}

impl ClusterOptions {
    pub fn generate(rng: &mut ChaCha8Rng) -> ClusterOptions {
        let voters = pick(rng, &[1, 3, 3, 3, 5]);
        let combined = voters == 3 && rng.random_bool(0.7) || voters != 3 && rng.random_bool(0.5);
        let broker_only = if combined { rng.random_range(0..=2) } else { rng.random_range(1..=3) };
        let election_timeout_ms = pick(rng, &[150, 300, 1_000]);
        let fetch_timeout_ms = election_timeout_ms * pick(rng, &[2, 3]);
        ClusterOptions {
            voters,
            combined,
            broker_only,
            election_timeout_ms,
            fetch_timeout_ms,
            fetch_interval_ms: pick(rng, &[10, 50, 100]),
            // A lost fetch must be retried well before the follower gives up on its leader, or
            // one dropped message costs an election (KRaft keeps the same proportion).
            request_timeout_ms: pick(rng, &[100, 500]).min(fetch_timeout_ms / 3),
            fetch_max_bytes: pick(rng, &[512, 4096, 65536]),
            segment_bytes: pick(rng, &[1 << 10, 4 << 10, 64 << 10]),
            snapshot_every_records: pick(rng, &[8, 32, 1_000]),
            broker_session_timeout_ms: pick(rng, &[1_000, 3_000, 9_000]),
            heartbeat_interval_ms: pick(rng, &[100, 500]),
            admins: rng.random_range(1..=2),
            admin_interval_ms: pick(rng, &[10, 100, 500]),
            admin_timeout_ms: pick(rng, &[500, 2_000]),
            topic_names: pick(rng, &[2, 5, 20]),
            partitions_max: pick(rng, &[1, 3, 8]),
            unclean_topics: rng.random_bool(0.3),
            crash_after_vote_probability: pick(rng, &[0.0, 0.0, 0.1, 0.5]),
        }
    }

    /// Scales the quorum's timeouts to the network, as an operator would: a request timeout of at
    /// least four worst-case round trips (without tails), and the election and fetch timeouts in
    /// proportion. Timeouts below the network's round trip only measure the network.
    pub fn fit_network(&mut self, net: &crate::net::NetOptions) {
        let round_trip_ms = (2 * net.latency_ns_max).div_ceil(1_000_000).max(1);
        let wanted_ms = 4 * round_trip_ms;
        if self.request_timeout_ms < wanted_ms {
            let factor = wanted_ms.div_ceil(self.request_timeout_ms);
            self.request_timeout_ms *= factor;
            self.election_timeout_ms *= factor;
            self.fetch_timeout_ms *= factor;
        }
    }

    /// Every cluster node: voters, then broker-only nodes.
    pub fn nodes(&self) -> u32 {
        self.voters + self.broker_only
    }

    /// Nodes with the broker role.
    pub fn is_broker(&self, node: u32) -> bool {
        node >= self.voters || self.combined
    }

    pub fn brokers(&self) -> u32 {
        if self.combined {
            self.nodes()
        } else {
            self.broker_only
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=7).contains(&self.voters) {
            return Err(format!("cluster.voters = {} (1 to 7)", self.voters));
        }
        if self.brokers() == 0 {
            return Err("the cluster needs at least one broker".into());
        }
        if self.nodes() > 16 || self.admins > 8 {
            return Err("at most 16 cluster nodes and 8 admin clients".into());
        }
        let positive = [
            self.election_timeout_ms,
            self.fetch_timeout_ms,
            self.fetch_interval_ms,
            self.request_timeout_ms,
            self.snapshot_every_records,
            self.broker_session_timeout_ms,
            self.heartbeat_interval_ms,
            self.admin_interval_ms,
            self.admin_timeout_ms,
            u64::from(self.topic_names),
            u64::from(self.partitions_max),
            u64::from(self.fetch_max_bytes),
        ];
        if positive.contains(&0) {
            return Err("cluster timings, sizes and counts must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.crash_after_vote_probability) {
            return Err("cluster.crash_after_vote_probability must be within 0..=1".into());
        }
        if self.request_timeout_ms >= self.fetch_timeout_ms {
            return Err(format!(
                "cluster.request_timeout_ms ({}) must be below fetch_timeout_ms ({}): a lost fetch must be retried before the leader is given up",
                self.request_timeout_ms, self.fetch_timeout_ms
            ));
        }
        if !(512..=(1 << 30)).contains(&self.segment_bytes) {
            return Err(format!("cluster.segment_bytes = {} (512 to 1 GiB)", self.segment_bytes));
        }
        Ok(())
    }

    /// The core's configuration of node `node`.
    pub fn node_config(&self, node: u32) -> NodeConfig {
        let log = LogConfig {
            segment_bytes: self.segment_bytes,
            retention_bytes: None,
            retention_ms: None,
            index_interval_bytes: 256,
            ..LogConfig::default()
        };
        NodeConfig {
            node_id: node,
            controller: node < self.voters,
            broker: self.is_broker(node),
            quorum: QuorumConfig {
                node_id: node,
                voters: (0..self.voters).collect(),
                election_timeout_ms: self.election_timeout_ms,
                fetch_timeout_ms: self.fetch_timeout_ms,
                fetch_interval_ms: self.fetch_interval_ms,
                request_timeout_ms: self.request_timeout_ms,
                fetch_max_bytes: self.fetch_max_bytes,
                log: log.clone(),
            },
            controller_config: ControllerConfig {
                broker_session_timeout_ms: self.broker_session_timeout_ms,
                default_replication_factor: 3,
            },
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: format!("n{node}.sim"),
                port: 9092,
            }],
            snapshot_every_records: self.snapshot_every_records,
            cluster_id: "seedlog-sim".into(),
            replication: ReplicationConfig { log: log.clone(), ..ReplicationConfig::default() },
        }
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}
