//! The controller quorum: a KRaft-style Raft log for the cluster metadata (pull-based).
//!
//! API SKELETON (issue 3) — signatures are the contract between the quorum, the node glue and the
//! simulator; bodies are filled in on the `quorum` branch. Nothing here is merged to main until
//! every body is real and tested.

use std::collections::VecDeque;

use crate::env::{Env, StorageError, Time};
use crate::log::LogConfig;

/// Kafka's node id (`node.id`). Simulator node ids and production node ids are the same numbers.
pub type NodeId = u32;

/// Names one requested sync, so its completion finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct QuorumSyncToken(pub u64);

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumConfig {
    /// This node.
    pub node_id: NodeId,
    /// The voters (`controller.quorum.voters`), fixed. A node not among them is an observer: it
    /// fetches and applies the log but never votes, campaigns or counts toward a majority.
    pub voters: Vec<NodeId>,
    /// `controller.quorum.election.timeout.ms`: a voter that hears nothing from a leader for a
    /// random time in [t, 2t) (drawn from `env.rng`) starts a pre-vote.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a leader that has not been fetched from by a majority
    /// (itself included) for this long resigns (check-quorum).
    pub fetch_timeout_ms: u64,
    /// How often a follower or observer that is caught up fetches again (its heartbeat).
    pub fetch_interval_ms: u64,
    /// An unanswered fetch / vote / snapshot request is given up and retried after this long.
    pub request_timeout_ms: u64,
    /// The most log bytes one fetch answer carries; also the snapshot chunk size.
    pub fetch_max_bytes: u32,
    /// The metadata log's own configuration (small segments so snapshots can delete them).
    pub log: LogConfig,
}

/// Every message the quorum sends or receives. `epoch` is always the sender's current epoch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum QuorumMessage {
    Vote {
        epoch: i32,
        candidate: NodeId,
        last_epoch: i32,
        /// The candidate's log end offset (exclusive).
        end_offset: i64,
        pre_vote: bool,
    },
    VoteResponse {
        epoch: i32,
        granted: bool,
        pre_vote: bool,
    },
    /// A new leader announces itself to every voter (KRaft's BeginQuorumEpoch).
    BeginQuorumEpoch {
        epoch: i32,
        leader: NodeId,
    },
    /// A resigning leader tells the voters to elect a successor now (KRaft's EndQuorumEpoch).
    EndQuorumEpoch {
        epoch: i32,
        leader: NodeId,
    },
    Fetch {
        epoch: i32,
        replica: NodeId,
        /// The fetcher's log end offset; for a voter, only synced entries lie below it.
        fetch_offset: i64,
        last_fetched_epoch: i32,
    },
    FetchResponse {
        epoch: i32,
        leader: Option<NodeId>,
        high_watermark: i64,
        result: FetchResult,
    },
    FetchSnapshot {
        epoch: i32,
        replica: NodeId,
        snapshot: SnapshotId,
        position: u64,
    },
    FetchSnapshotResponse {
        epoch: i32,
        leader: Option<NodeId>,
        snapshot: SnapshotId,
        size: u64,
        position: u64,
        bytes: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FetchResult {
    /// Whole batches (Kafka v2, CRC-checked) starting at the fetch offset; maybe empty.
    Records { batches: Vec<u8> },
    /// The fetcher's log diverges: truncate to at most `end_offset`, the end of `epoch` on the leader.
    Diverging { epoch: i32, end_offset: i64 },
    /// The entries asked for are below the leader's log start: fetch this snapshot first.
    SnapshotNeeded { snapshot: SnapshotId },
    /// The receiver is not the leader of this epoch (or the request's epoch is stale).
    NotLeader,
}

/// A snapshot holds the state after applying every entry below `end_offset`; `epoch` is the epoch
/// of the entry at `end_offset - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum QuorumRole {
    /// A voter that knows no leader and has not voted in this epoch.
    Unattached,
    /// A voter that voted for `candidate` in this epoch and knows no leader yet.
    Voted {
        candidate: NodeId,
    },
    Follower {
        leader: NodeId,
    },
    /// Asking for pre-votes (no epoch bump yet).
    Prospective,
    Candidate,
    Leader,
    /// Resigned (check-quorum or shutdown); waits for the next epoch.
    Resigned,
    /// Not a voter; fetches from `leader` when it knows one.
    Observer {
        leader: Option<NodeId>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumEffect {
    Send {
        to: NodeId,
        message: QuorumMessage,
    },
    /// Make the file's current contents durable, then report with `handle_sync_complete`.
    Sync {
        token: QuorumSyncToken,
        path: String,
    },
    /// The quorum cannot go on safely (a failed sync, an unreadable log): stop the node.
    Halt {
        reason: String,
    },
}

/// What the application (the metadata state machine) must apply, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Replace the whole state with this snapshot (after a restart, or when fetched from the leader).
    Snapshot { id: SnapshotId, bytes: Vec<u8> },
    /// One committed entry. Control entries (the leader's epoch-start marker) are not delivered,
    /// but their offsets are consumed, so offsets may skip.
    Entry { offset: i64, epoch: i32, payload: Vec<u8> },
}

/// One entry of the local log as the simulator's invariants see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub offset: i64,
    pub epoch: i32,
    /// fnv1a-64 of the payload (zero for a control entry).
    pub payload_hash: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The log could not take the entry (storage full, failed write).
    Storage(StorageError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumError {
    /// The persisted state or log could not be read back.
    Unrecoverable(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumRecovery {
    pub actions: Vec<String>,
}

#[derive(Debug)]
pub struct Quorum {
    _effects: VecDeque<QuorumEffect>,
}

#[allow(unused_variables)]
impl Quorum {
    /// Opens the persisted state (`metadata/quorum-state`), the newest valid snapshot
    /// (`metadata/snapshots/`) and the log (`metadata/log/`), recovering what a crash left.
    /// The first [`Quorum::poll_committed`] after open yields the snapshot, if any.
    pub fn open(env: &mut Env<'_>, config: QuorumConfig) -> Result<(Quorum, QuorumRecovery), QuorumError> {
        todo!()
    }
    pub fn handle_message(&mut self, env: &mut Env<'_>, from: NodeId, message: QuorumMessage) {
        todo!()
    }
    pub fn handle_sync_complete(
        &mut self,
        env: &mut Env<'_>,
        token: QuorumSyncToken,
        result: Result<(), StorageError>,
    ) {
        todo!()
    }
    pub fn handle_timer(&mut self, env: &mut Env<'_>) {
        todo!()
    }
    pub fn next_deadline(&self) -> Option<Time> {
        todo!()
    }
    pub fn poll_effect(&mut self) -> Option<QuorumEffect> {
        todo!()
    }
    pub fn poll_committed(&mut self) -> Option<Committed> {
        todo!()
    }
    /// Appends `payloads` as one batch in the current epoch; returns the offset of the last one.
    /// They are committed (and delivered by `poll_committed`) once a majority has them durably.
    pub fn propose(&mut self, env: &mut Env<'_>, payloads: &[Vec<u8>]) -> Result<i64, ProposeError> {
        todo!()
    }
    /// The application's state after applying every committed entry below `end_offset`; the
    /// quorum persists it (write, sync, rename) and then deletes log segments wholly below it.
    pub fn take_snapshot(&mut self, env: &mut Env<'_>, end_offset: i64, bytes: Vec<u8>) {
        todo!()
    }
    /// A leader resigns (controlled shutdown): stops accepting proposals and asks the voters to
    /// elect a successor.
    pub fn resign(&mut self, env: &mut Env<'_>) {
        todo!()
    }
    pub fn role(&self) -> QuorumRole {
        todo!()
    }
    pub fn epoch(&self) -> i32 {
        todo!()
    }
    pub fn leader(&self) -> Option<NodeId> {
        todo!()
    }
    pub fn voted_for(&self) -> Option<NodeId> {
        todo!()
    }
    /// The commit index, exclusive: every entry below it is committed.
    pub fn high_watermark(&self) -> i64 {
        todo!()
    }
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }
    pub fn durable_end_offset(&self) -> i64 {
        todo!()
    }
    /// Every entry in the local log, from the log start, for the simulator's invariants.
    pub fn entries(&self) -> &[EntryInfo] {
        todo!()
    }
    pub fn latest_snapshot(&self) -> Option<SnapshotId> {
        todo!()
    }
    pub fn is_voter(&self) -> bool {
        todo!()
    }
}
