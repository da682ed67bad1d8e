//! The controller workload's option set: the cluster's shape, the quorum's timing, the admin
//! clients. Drawn from the seed's "options" stream like the rest of [`crate::options::Options`].

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use seedlog_core::log::LogConfig;
use seedlog_core::metadata::{ControllerConfig, Endpoint};
use seedlog_core::node::NodeConfig;
use seedlog_core::protocol::Acks;
use seedlog_core::quorum::QuorumConfig;
use seedlog_core::replica::{FlushPolicy, ReplicationConfig};

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

/// The cluster workload (`--workload cluster`): one topic on a 3- to 5-broker KRaft cluster, with
/// producers and consumers speaking Kafka's client protocol to it (see [`super::clients`]). Drawn
/// from the seed's "options/topic-workload" stream; the cluster's shape is drawn there too and
/// overrides the controller workload's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopicWorkloadOptions {
    pub topic: TopicOptions,
    pub producers: Vec<ProducerSettings>,
    /// Consumers in assign mode: consumer `i` reads partition `i % partitions`.
    pub consumers: u32,
    pub clients: ClientSettings,
    pub replication: ReplicaSettings,
}

/// The topic the workload creates at the start, and its configs (Kafka's names in the comments).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopicOptions {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u16,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `seedlog.flush.policy` (and `flush.ms` for an interval).
    pub flush: FlushPolicy,
}

/// One producer's settings (Kafka's producer configs).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProducerSettings {
    /// `acks`.
    pub acks: Acks,
    /// `linger.ms`: how long a batch waits for more records.
    pub linger_ms: u64,
    /// `batch.size`, counted in records: a batch this full is sent at once.
    pub batch_records_max: u32,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: u32,
    /// The chance that a record has a key (else a null key and the sticky partitioner).
    pub keyed_probability: f64,
    /// Keys are drawn from `k0..k{key_count}`.
    pub key_count: u32,
    pub value_bytes_max: u32,
    /// The application calls `send` every this many ms (1 to `records_per_send_max` records).
    pub send_interval_ms: u64,
    pub records_per_send_max: u32,
}

/// Settings every client shares (Kafka's client configs).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientSettings {
    /// `request.timeout.ms`.
    pub request_timeout_ms: u64,
    /// `delivery.timeout.ms`: a batch not acknowledged within this long of its creation is given up.
    pub delivery_timeout_ms: u64,
    /// `retries`.
    pub retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff_ms: u64,
    /// `metadata.max.age.ms`: metadata is refreshed at least this often.
    pub metadata_max_age_ms: u64,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: u32,
    /// `fetch.max.wait.ms`: the consumer's long poll.
    pub fetch_max_wait_ms: u32,
    /// Pause between a consumer's polls when it is caught up.
    pub poll_interval_ms: u64,
}

/// The brokers' replication settings (Kafka's broker configs).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaSettings {
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: u32,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff_ms: u64,
}

/// Why a seed's settings may lose acknowledged `acks=all` records: each a short tag (it names the
/// observation kinds, `lost-write-{tag}`) and the setting, in the order a loss is attributed.
pub fn unsafe_settings(topic: &TopicOptions) -> Vec<(&'static str, String)> {
    let mut reasons = Vec::new();
    if topic.unclean_leader_election {
        reasons.push(("unclean-election", "unclean.leader.election.enable=true".to_string()));
    }
    if topic.min_insync_replicas < 2 {
        reasons.push(("min-insync-1", format!("min.insync.replicas={}", topic.min_insync_replicas)));
    }
    reasons
}

impl TopicWorkloadOptions {
    /// Kafka's safe configuration: `acks=all` everywhere, replication factor 3,
    /// `min.insync.replicas=2`, unclean election off, and a sync per batch.
    pub fn make_safe(&mut self) {
        self.topic.replication_factor = 3;
        self.topic.min_insync_replicas = 2;
        self.topic.unclean_leader_election = false;
        self.topic.flush = FlushPolicy::Always;
        for producer in &mut self.producers {
            producer.acks = Acks::All;
        }
    }

    /// Draws the workload and the cluster's shape (written into `cluster`).
    pub fn generate(rng: &mut ChaCha8Rng, cluster: &mut ClusterOptions) -> TopicWorkloadOptions {
        // 3 to 5 brokers: mostly 3 combined voters plus broker-only nodes, sometimes 3 dedicated
        // controllers beside the brokers.
        let brokers = pick(rng, &[3, 3, 4, 5]);
        cluster.voters = 3;
        cluster.combined = rng.random_bool(0.8);
        cluster.broker_only = if cluster.combined { brokers - 3 } else { brokers };
        cluster.admins = 0;
        // The safe profile by default; riskier settings with some probability.
        let risky = rng.random_bool(0.3);
        let replication_factor: u16 = if risky && rng.random_bool(0.2) { 2 } else { 3 };
        let min_insync_replicas = if risky && rng.random_bool(0.4) { 1 } else { 2 };
        let unclean_leader_election = risky && rng.random_bool(0.4);
        let flush = match rng.random_range(0..3) {
            0 => FlushPolicy::Always,
            1 => FlushPolicy::Interval { ms: pick(rng, &[10, 100, 1_000]) },
            _ => FlushPolicy::Never,
        };
        let topic = TopicOptions {
            name: "events".into(),
            partitions: rng.random_range(1..=3),
            replication_factor: replication_factor.min(brokers as u16),
            min_insync_replicas,
            unclean_leader_election,
            flush,
        };
        let producer_count = rng.random_range(1..=3);
        let producers = (0..producer_count)
            .map(|_| ProducerSettings {
                acks: if risky && rng.random_bool(0.4) {
                    if rng.random_bool(0.2) {
                        Acks::None
                    } else {
                        Acks::Leader
                    }
                } else {
                    Acks::All
                },
                linger_ms: pick(rng, &[0, 5, 20]),
                batch_records_max: pick(rng, &[1, 4, 16]),
                max_in_flight: pick(rng, &[1, 1, 5]),
                keyed_probability: pick(rng, &[0.0, 0.5, 1.0]),
                key_count: pick(rng, &[1, 8, 100]),
                value_bytes_max: pick(rng, &[16, 100, 1000]),
                send_interval_ms: pick(rng, &[1, 5, 20]),
                records_per_send_max: pick(rng, &[1, 4]),
            })
            .collect();
        let request_timeout_ms = pick(rng, &[200, 500, 2_000]);
        let clients = ClientSettings {
            request_timeout_ms,
            delivery_timeout_ms: request_timeout_ms * pick(rng, &[2, 5, 20]),
            retries: pick(rng, &[0, 3, 1_000]),
            retry_backoff_ms: pick(rng, &[10, 100]),
            metadata_max_age_ms: pick(rng, &[500, 5_000]),
            fetch_max_bytes: pick(rng, &[512, 4096, 65536]),
            fetch_max_wait_ms: pick(rng, &[10, 100, 500]),
            poll_interval_ms: pick(rng, &[2, 10, 50]),
        };
        let replication = ReplicaSettings {
            replica_lag_time_max_ms: pick(rng, &[500, 2_000, 10_000]),
            replica_fetch_wait_max_ms: pick(rng, &[10, 100, 500]),
            replica_fetch_backoff_ms: pick(rng, &[20, 100]),
        };
        TopicWorkloadOptions { topic, producers, consumers: rng.random_range(1..=3), clients, replication }
    }

    pub fn validate(&self, brokers: u32) -> Result<(), String> {
        let topic = &self.topic;
        if topic.name.is_empty() || !(1..=64).contains(&topic.partitions) {
            return Err("topic_workload.topic: a name and 1 to 64 partitions".into());
        }
        if topic.replication_factor == 0 || u32::from(topic.replication_factor) > brokers {
            return Err(format!(
                "topic_workload.topic.replication_factor = {} (1 to the {brokers} brokers)",
                topic.replication_factor
            ));
        }
        if topic.min_insync_replicas == 0 {
            return Err("topic_workload.topic.min_insync_replicas must be at least 1".into());
        }
        if let FlushPolicy::Interval { ms: 0 } = topic.flush {
            return Err("topic_workload.topic.flush interval must be at least 1 ms".into());
        }
        if self.producers.len() > 16 || self.consumers > 16 {
            return Err("at most 16 producers and 16 consumers".into());
        }
        for (index, producer) in self.producers.iter().enumerate() {
            if producer.batch_records_max == 0
                || producer.max_in_flight == 0
                || producer.key_count == 0
                || producer.send_interval_ms == 0
                || producer.records_per_send_max == 0
            {
                return Err(format!(
                    "producer {index}: batch_records_max, max_in_flight, key_count, send_interval_ms and records_per_send_max must be positive"
                ));
            }
            if !(0.0..=1.0).contains(&producer.keyed_probability) || producer.value_bytes_max > 1 << 20 {
                return Err(format!("producer {index}: keyed_probability within 0..=1, values up to 1 MiB"));
            }
        }
        let clients = &self.clients;
        let positive = [
            clients.request_timeout_ms,
            clients.delivery_timeout_ms,
            clients.retry_backoff_ms,
            clients.metadata_max_age_ms,
            clients.poll_interval_ms,
            u64::from(clients.fetch_max_bytes),
            self.replication.replica_lag_time_max_ms,
            self.replication.replica_fetch_backoff_ms,
        ];
        if positive.contains(&0) {
            return Err("topic_workload client and replica timings and sizes must be positive".into());
        }
        Ok(())
    }

    /// The topic's configs, as CreateTopics carries them.
    pub fn topic_configs(&self) -> std::collections::BTreeMap<String, String> {
        use seedlog_core::protocol::topic_config as names;
        let topic = &self.topic;
        let mut configs = std::collections::BTreeMap::from([
            (names::MIN_INSYNC_REPLICAS.to_string(), topic.min_insync_replicas.to_string()),
            (names::UNCLEAN_LEADER_ELECTION.to_string(), topic.unclean_leader_election.to_string()),
            (names::FLUSH_POLICY.to_string(), topic.flush.name().to_string()),
        ]);
        if let FlushPolicy::Interval { ms } = topic.flush {
            configs.insert(names::FLUSH_MS.to_string(), ms.to_string());
        }
        configs
    }

    /// The brokers' replication settings.
    pub fn apply(&self, replication: &mut ReplicationConfig) {
        replication.replica_lag_time_max_ms = self.replication.replica_lag_time_max_ms;
        replication.replica_fetch_wait_max_ms = self.replication.replica_fetch_wait_max_ms;
        replication.replica_fetch_backoff_ms = self.replication.replica_fetch_backoff_ms;
        replication.default_replication_factor = self.topic.replication_factor;
    }
}
