//! The controller quorum: a KRaft-style Raft log for the cluster metadata, pull-based.
//!
//! A fixed set of voters (`controller.quorum.voters`) elects one leader per epoch; the leader
//! appends proposals to the metadata log and every other node — followers (voters) and observers
//! (non-voters) — *pulls* entries with Fetch requests, as KRaft does (KIP-595). The leader learns
//! what each voter holds from the offsets it fetches at, and commits what a majority holds
//! durably. Deterministic and sans-IO: no clock (every input carries `env.now`), no files but
//! `env.storage`, no randomness but `env.rng`.
//!
//! # The driver's contract (quinn-proto's four kinds of method)
//! - inputs: [`Quorum::open`] once per incarnation, then [`Quorum::handle_message`],
//!   [`Quorum::handle_sync_complete`] and [`Quorum::handle_timer`] (when `now` reaches
//!   [`Quorum::next_deadline`]);
//! - commands: [`Quorum::propose`], [`Quorum::take_snapshot`], [`Quorum::resign`];
//! - outputs: after every input or command the driver MUST drain [`Quorum::poll_effect`] and
//!   execute the effects in order, and the application SHOULD drain [`Quorum::poll_committed`]
//!   and apply what it yields, in order. A [`QuorumEffect::Sync`] MUST be performed on the file as
//!   it is *when the effect is polled* and its outcome reported with its token (any order; a
//!   `NotFound` for a file removed since is fine). After [`QuorumEffect::Halt`] the driver MUST
//!   stop calling the quorum: it emits nothing more.
//! - getters: everything else, for the node glue and the simulator's invariants.
//!
//! # Persisted state
//! `metadata/quorum-state` holds `{epoch, voted_for, leader}` with a CRC32C. Every change is
//! written whole to a fresh `metadata/quorum-state.tmp-{n}`, synced, and on the sync's completion
//! renamed over `metadata/quorum-state` (a rename is durable on return). Completions may arrive
//! out of order: a completed write newer than every renamed one is renamed and supersedes older
//! ones still in flight (their files are removed, their completions ignored), so the file only
//! ever moves forward. Whatever safety depends on the new state being durable is DEFERRED until
//! that rename: a granted vote (`VoteResponse { granted: true, pre_vote: false }`) and a
//! candidate's Vote requests (its vote for itself). Open reads the file (missing = epoch 0, no
//! vote; unreadable or corrupt = [`QuorumError::Unrecoverable`], never a guess) and removes
//! leftover temporary files. The epoch also never falls below the last epoch in the log.
//!
//! # The log and durability
//! The metadata log is a [`PartitionLog`] in `metadata/log`: one Kafka v2 batch per proposal, one
//! record per payload, the batch header's `partition_leader_epoch` set to the Raft epoch and the
//! epoch repeated in every record key, inside the CRC (see `entry.rs`); a disagreement is
//! corruption (cut there at open, never served). A leader starts its epoch with a control entry
//! (KRaft's LeaderChange), so entries of older epochs can commit. The quorum keeps an
//! [`EntryInfo`] per offset in memory, rebuilt at open by reading the log.
//! Durability is explicit: the log's writes count only after a sync the quorum requested (one log
//! sync round in flight at a time, so completions are reported in request order). After open
//! nothing above the snapshot (or log start) counts as durable until a first sync of the whole
//! recovered log completes: a process crash can leave unsynced pages readable.
//!
//! # Replication and the commit rule
//! Followers and observers fetch from the leader every `fetch_interval_ms` when caught up, again
//! at once after a response that carried records (once they are synced), and retry after
//! `request_timeout_ms`. A Fetch carries the fetcher's DURABLE end offset and the epoch of the
//! entry before it; the fetcher appends, requests a sync, and fetches again only when that sync
//! completed — so the leader never counts an entry a follower could lose. The leader checks the
//! (offset, epoch) pair against its log: a mismatch answers `Diverging { epoch, end_offset }` (the
//! largest epoch of the leader's at most the fetcher's, and where it ends, KIP-595); below the
//! leader's log start (or where only its snapshot knows the epoch) it answers `SnapshotNeeded`.
//! A Diverging answer cuts nothing by itself — it may answer an older, retried or duplicated
//! request, and the log may have moved on since: the fetcher *probes* (fetches next from the
//! smaller of that end and its own end of that epoch, never below its high watermark), and cuts
//! its log only where the leader's batches show an entry of another epoch at the same offset,
//! never below its high watermark. After a cut nothing is appended until a sync requested after
//! the cut completed: otherwise a crash could keep entries written after the cut (in a later,
//! synced segment) beside the entries it cut (in a segment whose cut was not yet synced).
//! The high watermark is the majority-th highest durable end among the voters (the leader's own
//! durable end from its completed syncs; a voter's highest validated fetch offset in this epoch),
//! and moves only if the entry below it is of the current epoch (Raft's rule: older entries
//! commit only beneath a current one); it never decreases. A follower or observer takes the
//! leader's high watermark capped by what the answer proves its log shares with the leader's
//! (the end of the batches it compared or appended; for an empty answer, the leader's end was its
//! fetch offset, which bounds that high watermark). [`Quorum::poll_committed`] yields, once per
//! incarnation and in order: the snapshot found at open, then every committed non-control entry;
//! a snapshot installed from the leader comes in its place in that order.
//!
//! # Elections, pre-vote, check-quorum
//! A voter that hears nothing from a leader for a random time in [t, 2t) (`election_timeout_ms`,
//! drawn from `env.rng`) — or, as a follower, gets no answer from its leader for
//! `fetch_timeout_ms` — becomes *prospective* and asks for pre-votes in its current epoch (no
//! bump, nothing persisted). A voter grants a pre-vote if the candidate's (last epoch, end offset)
//! is at least its own and it has not heard from a leader within the election timeout (and is not
//! the leader), so a node that was cut off cannot disrupt a stable leader when it comes back: its
//! pre-votes are refused and it goes back to following. On a majority of pre-votes it becomes a
//! candidate: epoch + 1, votes for itself, persists, and only then sends Vote requests. A voter
//! grants a real vote if the epoch is at least its own (a higher one is adopted first), it has not
//! voted for another nor learned a leader in that epoch, and the candidate's log is at least as
//! up to date — after persisting the vote. A majority makes the candidate leader: it persists
//! `leader = self`, appends its control entry and announces itself with BeginQuorumEpoch (resent
//! to voters that do not fetch). Any message with a higher epoch moves a node to that epoch
//! (following the leader if the message names one, else unattached), persisted. Check-quorum: a
//! leader that has not been fetched from by a majority (itself included) within
//! `fetch_timeout_ms` resigns; [`Quorum::resign`] does the same on purpose and also sends
//! EndQuorumEpoch, whose receivers forget their leader and campaign after a short random backoff.
//!
//! # Snapshots
//! [`Quorum::take_snapshot`] writes `metadata/snapshots/{end_offset:020}-{epoch:010}.checkpoint`
//! (CRC'd header, see `snapshot.rs`) to a temporary file, syncs it, renames it, then deletes log
//! segments wholly below its end and older snapshots. Open uses the newest valid snapshot and
//! removes invalid, older and temporary ones. A fetcher behind the leader's log start is told
//! `SnapshotNeeded`, downloads the snapshot file in `fetch_max_bytes` chunks with FetchSnapshot,
//! validates it, persists it the same way, restarts its log empty at the snapshot's end offset
//! ([`PartitionLog::reset_to`]) and yields [`Committed::Snapshot`].
//!
//! # Planted bugs (each one `env.faults.planted(..)` check where it applies; free otherwise)
//! - [`crate::env::Plant::VoteBeforePersist`]: votes are granted, and a candidate's Vote requests sent (its
//!   self-vote counted), at once, without waiting for the persisted state (which is still written).
//!   A voter that crashes before the write is synced can vote again in the same epoch: two leaders
//!   in one epoch.
//! - [`crate::env::Plant::LeaderCountsUnsyncedEntry`]: the leader counts its log END offset instead of its
//!   durable end toward the majority, so an entry can commit that a leader crash then loses.
//!
//! What it must never do: panic on bytes from storage or the network (bad input is ignored),
//! count an unsynced entry toward a majority, grant a vote it has not persisted, or go on after a
//! failed sync (it halts, as the broker does: the page cache can no longer be trusted).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::env::{Env, StorageError, Time};
use crate::log::{LogConfig, LogError, PartitionLog};
use crate::record::Batches;

mod election;
mod entry;
mod replication;
mod snapshot;
mod state;

use state::ElectionState;

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
#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Where the metadata log lives.
const LOG_DIR: &str = "metadata/log";
/// How many log bytes one read takes while scanning the log at open or delivering entries.
const READ_BYTES: usize = 64 * 1024;
/// How many sync requests of the election state may be in flight: a driver that never reports
/// completions is a bug, caught here rather than as unbounded memory.
const STATE_WRITES_MAX: usize = 4096;

/// The role with what it needs to know (the public [`QuorumRole`] is a view of it).
#[derive(Clone, Debug)]
enum Role {
    Unattached {
        election_deadline: Time,
    },
    Voted {
        candidate: NodeId,
        election_deadline: Time,
    },
    Follower {
        leader: NodeId,
        fetch_deadline: Time,
        leader_resigned: bool,
    },
    Prospective {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        deadline: Time,
        previous_leader: Option<NodeId>,
    },
    Candidate {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        deadline: Time,
        votes_sent: bool,
    },
    Leader(LeaderState),
    Resigned {
        election_deadline: Time,
    },
    Observer {
        leader: Option<NodeId>,
    },
}

#[derive(Clone, Debug)]
struct LeaderState {
    /// Every other voter: what it holds durably, and when it last fetched in this epoch.
    replicas: BTreeMap<NodeId, ReplicaProgress>,
    check_quorum_at: Time,
    begin_resend_at: Time,
}

#[derive(Clone, Copy, Debug)]
struct ReplicaProgress {
    /// The highest fetch offset it sent that matched the leader's log: durable on the replica.
    durable_end: i64,
    /// The epoch's start counts as a fetch: a new leader gets `fetch_timeout_ms` of grace.
    last_fetch: Time,
}

/// The fetch side of a follower or observer.
#[derive(Clone, Debug, Default)]
struct Fetcher {
    in_flight: Option<InFlight>,
    /// Fetch (again) once `now` reaches this.
    next_fetch_at: Time,
    /// A snapshot being downloaded chunk by chunk.
    download: Option<Download>,
    /// An observer that knows no leader tries the voters in turn.
    observer_cursor: usize,
    /// After a Diverging answer: fetch from here (not the durable end) until the leader's batches
    /// show where the logs part.
    probe: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    target: NodeId,
    deadline: Time,
    /// `Some(fetch_offset)` for a Fetch, `None` for a FetchSnapshot.
    fetch_offset: Option<i64>,
}

#[derive(Clone, Debug)]
struct Download {
    id: SnapshotId,
    bytes: Vec<u8>,
    size: Option<u64>,
}

/// What a requested sync was for.
#[derive(Clone, Debug)]
enum SyncPurpose {
    State {
        sequence: u64,
    },
    Log,
    /// A snapshot's temporary file; `install` holds the body of one fetched from the leader.
    Snapshot {
        id: SnapshotId,
        install: Option<Vec<u8>>,
    },
}

#[derive(Clone, Copy, Debug)]
struct LogRound {
    outstanding: usize,
    up_to_offset: i64,
}

/// An action that waits until the election state written as `sequence` is durable.
#[derive(Clone, Copy, Debug)]
enum Deferred {
    GrantVote { sequence: u64, epoch: i32, candidate: NodeId },
    SendVotes { sequence: u64, epoch: i32 },
}

impl Deferred {
    fn sequence(self) -> u64 {
        match self {
            Deferred::GrantVote { sequence, .. } | Deferred::SendVotes { sequence, .. } => sequence,
        }
    }
}

/// One node's part of the controller quorum. See the module documentation for the contract.
#[derive(Debug)]
pub struct Quorum {
    config: QuorumConfig,
    voters: BTreeSet<NodeId>,
    effects: VecDeque<QuorumEffect>,
    committed: VecDeque<Committed>,
    halted: bool,

    /// The election state as this node acts on it (persisted, maybe not yet durably).
    state: ElectionState,
    role: Role,
    last_leader_contact: Option<Time>,

    /// The sequence number of the last state write handed out, and of the last one renamed.
    state_sequence: u64,
    durable_state_sequence: u64,
    state_writes_pending: BTreeSet<u64>,
    deferred: Vec<Deferred>,

    next_token: u64,
    syncs: BTreeMap<QuorumSyncToken, SyncPurpose>,
    log_round: Option<LogRound>,
    log_rounds_started: u64,
    log_rounds_completed: u64,
    /// The log was cut when this many sync rounds had started: nothing is appended until a round
    /// started after the cut completed. Otherwise a crash could keep new entries written after the
    /// cut (in a later segment, synced) next to the old ones it cut (in a segment whose cut was
    /// not synced): a log that never existed, and that looks valid.
    truncation_barrier: Option<u64>,

    log: PartitionLog,
    /// One per offset from the log start to the log end.
    entries: Vec<EntryInfo>,
    /// The base offset of every batch in the log: the only places the log can be cut.
    batch_bases: BTreeSet<i64>,
    /// Every entry below this survives a crash of this node.
    durable_end: i64,
    high_watermark: i64,
    /// The next offset [`Quorum::poll_committed`] delivers.
    next_delivery: i64,

    snapshot: Option<SnapshotId>,
    snapshot_writes_pending: BTreeSet<SnapshotId>,
    /// A snapshot fetched from the leader is being persisted: fetching waits for it.
    installing: Option<SnapshotId>,
    fetcher: Fetcher,
}

impl Quorum {
    /// Opens the persisted state (`metadata/quorum-state`), the newest valid snapshot
    /// (`metadata/snapshots/`) and the log (`metadata/log/`), recovering what a crash left.
    /// The first [`Quorum::poll_committed`] after open yields the snapshot, if any.
    pub fn open(env: &mut Env<'_>, config: QuorumConfig) -> Result<(Quorum, QuorumRecovery), QuorumError> {
        validate_config(&config).map_err(QuorumError::Unrecoverable)?;
        let mut actions = Vec::new();
        let persisted = open_state(env, &mut actions)?;
        let snapshot = snapshot::open_latest(env, &mut actions)?;
        let (mut log, report) = PartitionLog::open(env, LOG_DIR, config.log.clone()).map_err(|error| {
            QuorumError::Unrecoverable(format!("the metadata log cannot be opened: {error:?}"))
        })?;
        actions.extend(report.actions.into_iter().map(|action| format!("metadata log: {action}")));
        let (entries, batch_bases) = scan_log(env, &mut log, &mut actions)?;
        let voters: BTreeSet<NodeId> = config.voters.iter().copied().collect();
        let mut quorum = Quorum {
            voters,
            effects: VecDeque::new(),
            committed: VecDeque::new(),
            halted: false,
            state: persisted,
            role: Role::Observer { leader: None },
            last_leader_contact: None,
            state_sequence: 0,
            durable_state_sequence: 0,
            state_writes_pending: BTreeSet::new(),
            deferred: Vec::new(),
            next_token: 0,
            syncs: BTreeMap::new(),
            log_round: None,
            log_rounds_started: 0,
            log_rounds_completed: 0,
            truncation_barrier: None,
            log,
            entries,
            batch_bases,
            durable_end: 0,
            high_watermark: 0,
            next_delivery: 0,
            snapshot: None,
            snapshot_writes_pending: BTreeSet::new(),
            installing: None,
            fetcher: Fetcher::default(),
            config,
        };
        if let Some((id, body)) = snapshot {
            quorum.reconcile_snapshot(env, id, &mut actions)?;
            quorum.snapshot = Some(id);
            quorum.committed.push_back(Committed::Snapshot { id, bytes: body });
        } else if quorum.log.log_start_offset() > 0 {
            return Err(QuorumError::Unrecoverable(format!(
                "the metadata log starts at offset {} but no valid snapshot covers what lies below",
                quorum.log.log_start_offset()
            )));
        }
        let floor = quorum.floor();
        quorum.high_watermark = floor;
        quorum.next_delivery = floor;
        quorum.durable_end = quorum.log.log_end_offset();
        // After a crash the recovered log may sit only in the page cache: nothing above the floor
        // counts as durable until a sync of all of it completes.
        quorum.start_log_sync();
        if quorum.log_round.is_some() {
            quorum.durable_end = floor;
        }
        quorum.fetcher.next_fetch_at = env.now;
        quorum.initial_role(env, &mut actions);
        quorum.check_invariants();
        Ok((quorum, QuorumRecovery { actions }))
    }

    pub fn handle_message(&mut self, env: &mut Env<'_>, from: NodeId, message: QuorumMessage) {
        if self.halted {
            return;
        }
        match message {
            QuorumMessage::Vote { epoch, candidate, last_epoch, end_offset, pre_vote } => {
                self.on_vote(env, from, epoch, candidate, (last_epoch, end_offset), pre_vote)
            }
            QuorumMessage::VoteResponse { epoch, granted, pre_vote } => {
                self.on_vote_response(env, from, epoch, granted, pre_vote)
            }
            QuorumMessage::BeginQuorumEpoch { epoch, leader } => {
                self.on_begin_quorum_epoch(env, from, epoch, leader)
            }
            QuorumMessage::EndQuorumEpoch { epoch, leader } => {
                self.on_end_quorum_epoch(env, from, epoch, leader)
            }
            QuorumMessage::Fetch { epoch, replica, fetch_offset, last_fetched_epoch } => {
                self.on_fetch(env, from, epoch, replica, fetch_offset, last_fetched_epoch)
            }
            QuorumMessage::FetchResponse { epoch, leader, high_watermark, result } => {
                self.on_fetch_response(env, from, epoch, leader, high_watermark, result)
            }
            QuorumMessage::FetchSnapshot { epoch, replica, snapshot, position } => {
                self.on_fetch_snapshot(env, from, epoch, replica, snapshot, position)
            }
            QuorumMessage::FetchSnapshotResponse { epoch, leader, snapshot, size, position, bytes } => {
                let chunk = replication::SnapshotChunk { snapshot, size, position, bytes };
                self.on_fetch_snapshot_response(env, from, epoch, leader, chunk)
            }
        }
        self.after_input(env);
    }

    /// A sync the quorum asked for finished. A failure halts (a since-removed file is fine).
    pub fn handle_sync_complete(
        &mut self,
        env: &mut Env<'_>,
        token: QuorumSyncToken,
        result: Result<(), StorageError>,
    ) {
        if self.halted {
            return;
        }
        let Some(purpose) = self.syncs.remove(&token) else {
            return; // Not ours (a previous incarnation's): ignore.
        };
        match result {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(error) => {
                self.halt(format!("a sync for {} failed: {error}", purpose.describe()));
                return;
            }
        }
        match purpose {
            SyncPurpose::State { sequence } => self.on_state_durable(env, sequence),
            SyncPurpose::Log => self.on_log_sync_done(env),
            SyncPurpose::Snapshot { id, install } => self.on_snapshot_durable(env, id, install),
        }
        self.after_input(env);
    }

    /// Time reached [`Quorum::next_deadline`].
    pub fn handle_timer(&mut self, env: &mut Env<'_>) {
        if self.halted {
            return;
        }
        self.on_role_timer(env);
        self.on_fetch_timer(env);
        self.after_input(env);
    }

    /// When the driver must call [`Quorum::handle_timer`] next (`None` after a halt).
    pub fn next_deadline(&self) -> Option<Time> {
        if self.halted {
            return None;
        }
        let role_deadline = match &self.role {
            Role::Unattached { election_deadline }
            | Role::Voted { election_deadline, .. }
            | Role::Resigned { election_deadline } => Some(*election_deadline),
            Role::Follower { fetch_deadline, .. } => Some(*fetch_deadline),
            Role::Prospective { deadline, .. } | Role::Candidate { deadline, .. } => Some(*deadline),
            Role::Leader(leader) => Some(leader.check_quorum_at.min(leader.begin_resend_at)),
            Role::Observer { .. } => None,
        };
        let fetch_deadline = self.fetch_deadline();
        match (role_deadline, fetch_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_effect(&mut self) -> Option<QuorumEffect> {
        self.effects.pop_front()
    }

    pub fn poll_committed(&mut self) -> Option<Committed> {
        self.committed.pop_front()
    }

    /// Appends `payloads` as one batch in the current epoch; returns the offset of the last one.
    /// They are committed (and delivered by `poll_committed`) once a majority has them durably.
    /// An empty `payloads` appends nothing and returns the offset of the last entry. A batch larger
    /// than the log's `max_batch_bytes` is `Storage(OutOfRange)`.
    pub fn propose(&mut self, env: &mut Env<'_>, payloads: &[Vec<u8>]) -> Result<i64, ProposeError> {
        if self.halted || !matches!(self.role, Role::Leader(_)) {
            return Err(ProposeError::NotLeader { leader: if self.halted { None } else { self.leader() } });
        }
        if payloads.is_empty() {
            return Ok(self.log_end_offset() - 1);
        }
        let batch = entry::encode_data_batch(self.state.epoch, payloads, env.wall_clock_ms);
        let info = match self.log.append(env, &batch) {
            Ok(info) => info,
            Err(LogError::Storage(error)) => return Err(ProposeError::Storage(error)),
            Err(LogError::BatchTooLarge { .. }) => {
                return Err(ProposeError::Storage(StorageError::OutOfRange))
            }
            Err(_) => return Err(ProposeError::Storage(StorageError::Io)),
        };
        let hashes = payloads.iter().map(|payload| entry::fnv1a64(payload));
        self.push_entries(info.base_offset, self.state.epoch, hashes);
        assert_eq!(self.log_end_offset(), info.last_offset + 1);
        self.start_log_sync();
        self.update_high_watermark(env);
        self.check_invariants();
        Ok(info.last_offset)
    }

    /// The application's state after applying every committed entry below `end_offset`; the
    /// quorum persists it (write, sync, rename) and then deletes log segments wholly below it.
    /// Ignored unless `end_offset` is committed and beyond the latest snapshot.
    pub fn take_snapshot(&mut self, env: &mut Env<'_>, end_offset: i64, bytes: Vec<u8>) {
        if self.halted {
            return;
        }
        self.snapshot_local(env, end_offset, &bytes);
        self.after_input(env);
    }

    /// A leader resigns (controlled shutdown): stops accepting proposals and asks the voters to
    /// elect a successor.
    pub fn resign(&mut self, env: &mut Env<'_>) {
        if self.halted || !matches!(self.role, Role::Leader(_)) {
            return;
        }
        let epoch = self.state.epoch;
        let me = self.config.node_id;
        for voter in self.other_voters() {
            self.send(voter, QuorumMessage::EndQuorumEpoch { epoch, leader: me });
        }
        self.become_resigned(env);
        self.after_input(env);
    }

    pub fn role(&self) -> QuorumRole {
        match &self.role {
            Role::Unattached { .. } => QuorumRole::Unattached,
            Role::Voted { candidate, .. } => QuorumRole::Voted { candidate: *candidate },
            Role::Follower { leader, .. } => QuorumRole::Follower { leader: *leader },
            Role::Prospective { .. } => QuorumRole::Prospective,
            Role::Candidate { .. } => QuorumRole::Candidate,
            Role::Leader(_) => QuorumRole::Leader,
            Role::Resigned { .. } => QuorumRole::Resigned,
            Role::Observer { leader } => QuorumRole::Observer { leader: *leader },
        }
    }

    pub fn epoch(&self) -> i32 {
        self.state.epoch
    }

    /// The leader of the current epoch as this node knows it (`None` once it resigned).
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Observer { leader } => *leader,
            Role::Resigned { .. } => None,
            _ => self.state.leader,
        }
    }

    pub fn voted_for(&self) -> Option<NodeId> {
        self.state.voted_for
    }

    /// The commit index, exclusive: every entry below it is committed.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn durable_end_offset(&self) -> i64 {
        self.durable_end
    }

    /// Every entry in the local log, from the log start, for the simulator's invariants.
    pub fn entries(&self) -> &[EntryInfo] {
        &self.entries
    }

    pub fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.snapshot
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.config.node_id)
    }

    // ---- internals shared by the submodules ----

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn other_voters(&self) -> Vec<NodeId> {
        self.voters.iter().copied().filter(|voter| *voter != self.config.node_id).collect()
    }

    fn send(&mut self, to: NodeId, message: QuorumMessage) {
        if !self.halted {
            self.effects.push_back(QuorumEffect::Send { to, message });
        }
    }

    fn halt(&mut self, reason: String) {
        if !self.halted {
            self.halted = true;
            self.effects.push_back(QuorumEffect::Halt { reason });
        }
    }

    fn next_sync_token(&mut self) -> QuorumSyncToken {
        self.next_token += 1;
        QuorumSyncToken(self.next_token)
    }

    fn request_sync(&mut self, path: String, purpose: SyncPurpose) {
        let token = self.next_sync_token();
        self.syncs.insert(token, purpose);
        self.effects.push_back(QuorumEffect::Sync { token, path });
    }

    /// What the snapshot (or, without one, the log start) covers: committed and durable.
    fn floor(&self) -> i64 {
        self.snapshot.map_or(self.log.log_start_offset(), |snapshot| snapshot.end_offset)
    }

    /// The epoch of the entry at `offset`, if this node knows it (in the log, or the snapshot's
    /// last entry).
    fn epoch_at(&self, offset: i64) -> Option<i32> {
        let start = self.log.log_start_offset();
        if offset >= start && offset < self.log.log_end_offset() {
            return Some(self.entries[(offset - start) as usize].epoch);
        }
        self.snapshot.filter(|snapshot| snapshot.end_offset - 1 == offset).map(|snapshot| snapshot.epoch)
    }

    /// The epoch of the last entry (0 for an empty log).
    fn last_epoch(&self) -> i32 {
        match self.entries.last() {
            Some(entry) => entry.epoch,
            None => self.snapshot.map_or(0, |snapshot| snapshot.epoch),
        }
    }

    /// The largest epoch at most `epoch` this node has entries of, and the offset where its
    /// entries end. `None` if only a snapshot could tell.
    fn end_of_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let index = self.entries.partition_point(|entry| entry.epoch <= epoch);
        if index > 0 {
            let entry = self.entries[index - 1];
            return Some((entry.epoch, entry.offset + 1));
        }
        if let Some(snapshot) = self.snapshot.filter(|snapshot| snapshot.epoch <= epoch) {
            return Some((snapshot.epoch, snapshot.end_offset));
        }
        (self.log.log_start_offset() == 0).then_some((0, 0))
    }

    fn push_entries(&mut self, base_offset: i64, epoch: i32, hashes: impl Iterator<Item = u64>) {
        assert_eq!(base_offset, self.log.log_start_offset() + self.entries.len() as i64);
        self.batch_bases.insert(base_offset);
        for (index, payload_hash) in hashes.enumerate() {
            self.entries.push(EntryInfo { offset: base_offset + index as i64, epoch, payload_hash });
        }
    }

    /// Cuts the log at `offset` (a batch boundary), keeping the in-memory view in step. A failure
    /// halts: the log's state on disk is then unknown.
    fn truncate_log(&mut self, env: &mut Env<'_>, offset: i64) -> bool {
        assert!(offset >= self.high_watermark, "committed entries are never cut");
        if let Err(error) = self.log.truncate_to(env, offset) {
            self.halt(format!("the metadata log cannot be cut at {offset}: {error:?}"));
            return false;
        }
        let start = self.log.log_start_offset();
        self.entries.truncate((offset - start) as usize);
        self.batch_bases.split_off(&offset);
        self.durable_end = self.durable_end.min(offset);
        self.truncation_barrier = Some(self.log_rounds_started);
        self.start_log_sync();
        true
    }

    /// The largest batch boundary at or below `offset`, within the log.
    fn boundary_at_or_below(&self, offset: i64) -> i64 {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if offset >= end {
            return end;
        }
        if offset <= start {
            return start;
        }
        self.batch_bases.range(..=offset).next_back().copied().unwrap_or(start)
    }

    fn check_invariants(&self) {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        assert_eq!(self.entries.len() as i64, end - start, "one entry per offset of the log");
        assert!(self.durable_end <= end, "durable end {} beyond the log end {end}", self.durable_end);
        assert!(
            self.high_watermark <= end,
            "high watermark {} beyond the log end {end}",
            self.high_watermark
        );
        assert!(self.next_delivery <= self.high_watermark, "delivered only committed entries");
        assert!(self.state_writes_pending.len() <= STATE_WRITES_MAX, "the driver reports sync completions");
    }

    fn after_input(&mut self, env: &mut Env<'_>) {
        if self.halted {
            return;
        }
        self.maybe_fetch(env);
        self.check_invariants();
    }

    // ---- the persisted election state ----

    /// Changes the election state and persists it; returns the write's sequence number.
    fn set_state(&mut self, env: &mut Env<'_>, state: ElectionState) -> u64 {
        assert!(state.epoch >= self.state.epoch, "the epoch never goes back");
        self.state = state;
        self.state_sequence += 1;
        let sequence = self.state_sequence;
        let path = state::temp_path(sequence);
        let bytes = state::encode(&state);
        let written = match env.storage.create(&path) {
            Ok(()) | Err(StorageError::AlreadyExists) => env
                .storage
                .write_at(&path, 0, &bytes)
                .and_then(|()| env.storage.truncate(&path, bytes.len() as u64)),
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            self.halt(format!("the election state cannot be written: {error}"));
            return sequence;
        }
        self.state_writes_pending.insert(sequence);
        self.request_sync(path, SyncPurpose::State { sequence });
        sequence
    }

    fn state_is_durable(&self) -> bool {
        self.durable_state_sequence >= self.state_sequence
    }

    fn on_state_durable(&mut self, env: &mut Env<'_>, sequence: u64) {
        self.state_writes_pending.remove(&sequence);
        if sequence <= self.durable_state_sequence {
            // Superseded by a newer write that completed first: its file is already gone.
            let _ = env.storage.remove(&state::temp_path(sequence));
            return;
        }
        if let Err(error) = env.storage.rename(&state::temp_path(sequence), state::STATE_PATH) {
            self.halt(format!("the election state cannot be renamed into place: {error}"));
            return;
        }
        self.durable_state_sequence = sequence;
        let older: Vec<u64> = self.state_writes_pending.range(..sequence).copied().collect();
        for older_sequence in older {
            self.state_writes_pending.remove(&older_sequence);
            let _ = env.storage.remove(&state::temp_path(older_sequence));
        }
        self.release_deferred(env);
    }

    fn release_deferred(&mut self, env: &mut Env<'_>) {
        let durable = self.durable_state_sequence;
        let (ready, waiting): (Vec<Deferred>, Vec<Deferred>) =
            self.deferred.iter().partition(|deferred| deferred.sequence() <= durable);
        self.deferred = waiting;
        for deferred in ready {
            match deferred {
                Deferred::GrantVote { epoch, candidate, .. } => {
                    if self.state.epoch == epoch && self.state.voted_for == Some(candidate) {
                        self.send(
                            candidate,
                            QuorumMessage::VoteResponse { epoch, granted: true, pre_vote: false },
                        );
                    }
                }
                Deferred::SendVotes { epoch, .. } => {
                    let waiting = matches!(self.role, Role::Candidate { votes_sent: false, .. });
                    if self.state.epoch == epoch && waiting {
                        self.send_vote_requests(env);
                    }
                }
            }
        }
    }

    // ---- log syncs ----

    /// Requests a sync of every unsynced log file, unless a round is in flight (its completion
    /// starts the next one).
    fn start_log_sync(&mut self) {
        if self.halted || self.log_round.is_some() {
            return;
        }
        let Some(request) = self.log.sync_request() else { return };
        assert!(!request.files.is_empty(), "a sync request names the files to sync");
        self.log_rounds_started += 1;
        self.log_round =
            Some(LogRound { outstanding: request.files.len(), up_to_offset: request.up_to_offset });
        for path in request.files {
            self.request_sync(path, SyncPurpose::Log);
        }
    }

    fn on_log_sync_done(&mut self, env: &mut Env<'_>) {
        let round = self.log_round.as_mut().expect("a log sync completes within its round");
        assert!(round.outstanding > 0);
        round.outstanding -= 1;
        if round.outstanding > 0 {
            return;
        }
        let up_to_offset = round.up_to_offset;
        self.log_round = None;
        self.log_rounds_completed += 1;
        self.log.on_sync_complete(up_to_offset);
        self.durable_end = self.log.durable_offset();
        if self.truncation_barrier.is_some_and(|started| self.log_rounds_completed > started) {
            self.truncation_barrier = None;
        }
        self.update_high_watermark(env);
        if self.durable_end < self.log.log_end_offset() || self.truncation_barrier.is_some() {
            self.start_log_sync();
        }
    }

    // ---- open ----

    /// Makes the log agree with the snapshot found at open: a log that ends before the snapshot's
    /// end, or disagrees with it about the epoch of its last entry, is replaced by an empty log
    /// starting at the snapshot's end (the snapshot is committed; the log's tail there was not).
    fn reconcile_snapshot(
        &mut self,
        env: &mut Env<'_>,
        id: SnapshotId,
        actions: &mut Vec<String>,
    ) -> Result<(), QuorumError> {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if start > id.end_offset {
            return Err(QuorumError::Unrecoverable(format!(
                "the metadata log starts at {start}, after the end of the newest snapshot {id:?}"
            )));
        }
        let last = id.end_offset - 1;
        let agrees =
            end >= id.end_offset && (last < start || self.entries[(last - start) as usize].epoch == id.epoch);
        if !agrees {
            self.log.reset_to(env, id.end_offset).map_err(|error| {
                QuorumError::Unrecoverable(format!("the metadata log cannot be reset: {error:?}"))
            })?;
            self.entries.clear();
            self.batch_bases.clear();
            actions.push(format!(
                "the log [{start}, {end}) does not hold the snapshot {id:?}'s last entry: restarted it empty at {}",
                id.end_offset
            ));
        }
        Ok(())
    }

    fn initial_role(&mut self, env: &mut Env<'_>, actions: &mut Vec<String>) {
        let me = self.config.node_id;
        let log_epoch = self.last_epoch();
        if log_epoch > self.state.epoch {
            actions.push(format!(
                "the log holds epoch {log_epoch}, the persisted state only {}: moved to {log_epoch}",
                self.state.epoch
            ));
            self.set_state(env, ElectionState { epoch: log_epoch, voted_for: None, leader: None });
        }
        let election_deadline = self.random_election_deadline(env);
        self.role = if !self.is_voter() {
            Role::Observer { leader: self.state.leader.filter(|leader| self.voters.contains(leader)) }
        } else if self.state.leader == Some(me) {
            // A leader that restarted lost its volatile state: it waits for the next epoch.
            Role::Resigned { election_deadline }
        } else if let Some(leader) = self.state.leader.filter(|leader| self.voters.contains(leader)) {
            Role::Follower {
                leader,
                fetch_deadline: env.now.plus_millis(self.config.fetch_timeout_ms),
                leader_resigned: false,
            }
        } else if let Some(candidate) = self.state.voted_for {
            Role::Voted { candidate, election_deadline }
        } else {
            Role::Unattached { election_deadline }
        };
    }

    fn random_election_deadline(&self, env: &mut Env<'_>) -> Time {
        let timeout_ms = self.config.election_timeout_ms;
        env.now.plus_millis(timeout_ms + env.rng.next_u64() % timeout_ms)
    }
}

impl SyncPurpose {
    fn describe(&self) -> String {
        match self {
            SyncPurpose::State { sequence } => format!("the election state (write {sequence})"),
            SyncPurpose::Log => "the metadata log".to_string(),
            SyncPurpose::Snapshot { id, .. } => format!("snapshot {id:?}"),
        }
    }
}

fn validate_config(config: &QuorumConfig) -> Result<(), String> {
    if config.voters.is_empty() {
        return Err("the quorum needs at least one voter".to_string());
    }
    let timeouts = [
        ("election_timeout_ms", config.election_timeout_ms),
        ("fetch_timeout_ms", config.fetch_timeout_ms),
        ("fetch_interval_ms", config.fetch_interval_ms),
        ("request_timeout_ms", config.request_timeout_ms),
    ];
    for (name, value) in timeouts {
        if value == 0 {
            return Err(format!("{name} must be positive"));
        }
    }
    if config.fetch_max_bytes == 0 {
        return Err("fetch_max_bytes must be positive".to_string());
    }
    config.log.validate().map_err(|reason| format!("metadata log: {reason}"))
}

/// Reads `metadata/quorum-state` and removes leftover temporary files.
fn open_state(env: &mut Env<'_>, actions: &mut Vec<String>) -> Result<ElectionState, QuorumError> {
    let leftovers = env.storage.list(state::STATE_TEMP_PREFIX).map_err(|error| {
        QuorumError::Unrecoverable(format!("cannot list the election state's directory: {error}"))
    })?;
    for path in leftovers {
        match env.storage.remove(&path) {
            Ok(()) | Err(StorageError::NotFound) => {
                actions.push(format!("removed the unfinished write {path}"))
            }
            Err(error) => return Err(QuorumError::Unrecoverable(format!("cannot remove {path}: {error}"))),
        }
    }
    match env.storage.read_all(state::STATE_PATH) {
        Ok(bytes) => state::decode(&bytes).map_err(|reason| {
            QuorumError::Unrecoverable(format!("{} is corrupt: {reason}", state::STATE_PATH))
        }),
        Err(StorageError::NotFound) => {
            actions.push("no election state: epoch 0, no vote".to_string());
            Ok(ElectionState::default())
        }
        Err(error) => {
            Err(QuorumError::Unrecoverable(format!("{} cannot be read: {error}", state::STATE_PATH)))
        }
    }
}

/// Reads the whole log into entries, checking every batch (CRC, records, epoch agreement,
/// epochs never decreasing); cuts the log at the first batch that fails.
fn scan_log(
    env: &mut Env<'_>,
    log: &mut PartitionLog,
    actions: &mut Vec<String>,
) -> Result<(Vec<EntryInfo>, BTreeSet<i64>), QuorumError> {
    let mut entries = Vec::new();
    let mut batch_bases = BTreeSet::new();
    let mut offset = log.log_start_offset();
    let mut last_epoch = 0;
    let mut cut: Option<(i64, String)> = None;
    'scan: while offset < log.log_end_offset() {
        let read = match log.read(env, offset, READ_BYTES) {
            Ok(read) => read,
            Err(LogError::Corrupt { error, .. }) => {
                cut = Some((offset, format!("{error:?}")));
                break;
            }
            Err(error) => {
                return Err(QuorumError::Unrecoverable(format!(
                    "the metadata log cannot be read at {offset}: {error:?}"
                )))
            }
        };
        let before = offset;
        for item in Batches::new(&read.bytes) {
            let reason = match item {
                Err(error) => format!("{error:?}"),
                Ok((header, _)) if header.base_offset != offset => {
                    format!("a batch at {} where {offset} was expected", header.base_offset)
                }
                Ok((_, bytes)) => match entry::decode_batch(bytes) {
                    Err(reason) => reason,
                    Ok(batch) if batch.epoch < last_epoch => {
                        format!("epoch {} after epoch {last_epoch}", batch.epoch)
                    }
                    Ok(batch) => {
                        batch_bases.insert(offset);
                        for decoded in &batch.entries {
                            let payload_hash =
                                if decoded.control { 0 } else { entry::fnv1a64(&decoded.payload) };
                            entries.push(EntryInfo {
                                offset: decoded.offset,
                                epoch: batch.epoch,
                                payload_hash,
                            });
                        }
                        last_epoch = batch.epoch;
                        offset = batch.header.last_offset() + 1;
                        continue;
                    }
                },
            };
            cut = Some((offset, reason));
            break 'scan;
        }
        if offset == before {
            cut = Some((offset, "a read that returned no whole batch".to_string()));
            break;
        }
    }
    if let Some((at, reason)) = cut {
        log.truncate_to(env, at).map_err(|error| {
            QuorumError::Unrecoverable(format!("the metadata log cannot be cut at {at}: {error:?}"))
        })?;
        actions.push(format!("cut the metadata log at offset {at}: {reason}"));
    }
    Ok((entries, batch_bases))
}

#[cfg(test)]
mod tests;
