//! Partition replication: each partition replica on a broker is its own state machine, leader or
//! follower, following Kafka's protocol (pull replication by Fetch, the high watermark, the ISR
//! through AlterPartition, leader epochs and the leader-epoch cache for truncation).

pub mod epoch_cache;
pub mod partition;

pub use epoch_cache::{EpochEntry, LeaderEpochCache};
pub use partition::{replica_dir, Replica, ReplicaEffect, ReplicaSettings, RoleName};

use crate::log::LogConfig;

/// When a replica syncs its log, and so what a power loss can take back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// Every appended batch is synced before the replica counts it toward the high watermark (a
    /// follower fetches on only after its sync): acknowledged `acks=all` records survive a power
    /// loss of every replica at once.
    Always,
    /// The log is synced every `flush.ms`; until then appended data lives in the page cache.
    Interval { ms: u64 },
    /// Never synced by policy (Kafka's default): durability comes from replication alone, so a
    /// correlated power loss of every replica loses acknowledged records.
    Never,
}

impl FlushPolicy {
    /// The name used in topic configs (`seedlog.flush.policy`).
    pub fn name(self) -> &'static str {
        match self {
            FlushPolicy::Always => "always",
            FlushPolicy::Interval { .. } => "interval",
            FlushPolicy::Never => "never",
        }
    }
}

/// The broker-wide replication settings (Kafka's names); topics may override some.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicationConfig {
    pub log: LogConfig,
    /// `min.insync.replicas` default.
    pub min_insync_replicas: u16,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: a follower's long poll.
    pub replica_fetch_wait_max_ms: u32,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: u32,
    /// `replica.fetch.backoff.ms`: after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
    /// The default flush policy (`log.flush.interval.ms` unset → never).
    pub flush: FlushPolicy,
    /// `num.partitions`: the default for CreateTopics without a count.
    pub num_partitions: u32,
    /// `default.replication.factor`.
    pub default_replication_factor: u16,
    /// `unclean.leader.election.enable` default.
    pub unclean_leader_election: bool,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `fetch.max.bytes`: the most one consumer fetch answer carries.
    pub fetch_max_bytes: u32,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            log: LogConfig::default(),
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_backoff_ms: 1_000,
            flush: FlushPolicy::Never,
            num_partitions: 1,
            default_replication_factor: 1,
            unclean_leader_election: false,
            retention_check_interval_ms: 300_000,
            fetch_max_bytes: 50 << 20,
        }
    }
}

impl ReplicationConfig {
    /// The broker defaults of every topic config Seedlog understands, by Kafka's topic-config name.
    pub fn default_topic_configs(&self) -> std::collections::BTreeMap<&'static str, String> {
        use crate::protocol::topic_config as names;
        let flush_ms = match self.flush {
            FlushPolicy::Interval { ms } => ms.to_string(),
            FlushPolicy::Always => "0".to_string(),
            FlushPolicy::Never => i64::MAX.to_string(),
        };
        std::collections::BTreeMap::from([
            (names::MIN_INSYNC_REPLICAS, self.min_insync_replicas.to_string()),
            (names::UNCLEAN_LEADER_ELECTION, self.unclean_leader_election.to_string()),
            (names::FLUSH_POLICY, self.flush.name().to_string()),
            (names::FLUSH_MS, flush_ms),
            (names::RETENTION_MS, self.log.retention_ms.unwrap_or(-1).to_string()),
            (names::RETENTION_BYTES, self.log.retention_bytes.map_or(-1, |bytes| bytes as i64).to_string()),
            (names::SEGMENT_BYTES, self.log.segment_bytes.to_string()),
            (names::MAX_MESSAGE_BYTES, self.log.max_batch_bytes.to_string()),
        ])
    }
}
