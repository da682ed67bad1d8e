//! One partition replica on one broker: its log, its leader-epoch cache, its high watermark, and
//! its role — leader or follower — as the metadata image assigns it.
//!
//! The node drives it (see [`crate::node`]): it hands in the partition's state from every applied
//! metadata image ([`Replica::update_state`]), client requests, fetch responses from the leader,
//! AlterPartition answers, sync completions and timers; after each input it drains
//! [`Replica::poll_effect`] and executes the effects. The replica decides everything.
//!
//! The protocol (Kafka's):
//! - **Leader.** Appends produced batches stamped with its leader epoch. Followers fetch with
//!   their fetch offset, the epoch of their last fetched record and the current leader epoch; a
//!   fetch in the current epoch tells the leader the follower's log end offset. The high
//!   watermark is the smallest such offset over the ISR (the leader's own counts as its log end,
//!   or its durable end under the `always` flush policy), and advances only while the ISR has at
//!   least `min.insync.replicas` members; it never goes back. A pending ISR change counts the
//!   larger of the old and new ISR (Kafka's "maximal ISR"), so no member leaves the count before
//!   the controller committed its removal.
//! - **ISR.** A follower that has not caught up to the leader's log end for
//!   `replica.lag.time.max.ms` is proposed out of the ISR; one that reached the high watermark and
//!   the start of the current leader epoch is proposed back in; both through the controller
//!   (AlterPartition, one in flight), with every member's broker epoch.
//! - **Follower.** Fetches from the leader it was told of, appends what it gets as it is, learns
//!   the high watermark, and on a diverging epoch truncates where its log and the leader's part
//!   (KIP-320 / KIP-595), never merely to its high watermark. Under the `always` policy it syncs
//!   what it appended before it fetches on (its next fetch offset is what it acknowledges).
//! - **Fencing.** A request carrying a leader epoch older than the replica's gets
//!   FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH; only fetches in the current epoch
//!   count toward the high watermark and the ISR.
//! - **Produce.** `acks=0` and `acks=1` are answered (or not) after the append; `acks=all` is
//!   refused with NOT_ENOUGH_REPLICAS before the append while the ISR is below
//!   `min.insync.replicas`, answered once the high watermark passes the batch, answered
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR falls below the minimum while it waits, and
//!   REQUEST_TIMED_OUT after the request's timeout. (Both errors leave the batch in the log: it may
//!   still commit, so a client must treat them as "unknown", not "failed".)
//!
//! Persisted beside the log: the leader-epoch cache and a high-watermark checkpoint (written
//! every [`HW_CHECKPOINT_INTERVAL_MS`] and at close). Neither is trusted beyond the log: both are
//! cut to the recovered log end on open.

use std::collections::VecDeque;

use crate::env::{Env, Plant, StorageError, Time};
use crate::log::{LogConfig, LogError, PartitionLog, RecoveryReport, SyncRequest};
use crate::metadata::{BrokerId, PartitionState, TopicId};
use crate::protocol::{
    Acks, ClientResponse, EpochEndOffset, ErrorCode, FetchRequest, ListedOffset, OffsetSpec, PartitionFetch,
    ProduceOk,
};
use crate::quorum::NodeId;
use crate::record::Batches;

use super::epoch_cache::LeaderEpochCache;
use super::FlushPolicy;

/// The high watermark is written to its checkpoint this often (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms`).
pub const HW_CHECKPOINT_INTERVAL_MS: u64 = 5_000;
/// The high-watermark checkpoint's file name inside the partition's directory.
pub const HW_CHECKPOINT_FILE: &str = "high-watermark-checkpoint";
/// How often the leader looks for followers that fell out of sync.
const ISR_CHECK_INTERVAL_MS_MAX: u64 = 1_000;
/// At most this many long-poll fetches wait on one partition; more are answered at once.
const PARKED_FETCHES_MAX: usize = 1_024;
/// At most this many `acks=all` produces wait on one partition; more are refused.
const WAITING_ACKS_MAX: usize = 4_096;

/// The settings of one partition replica: the broker's, overridden by the topic's configs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaSettings {
    pub log: LogConfig,
    pub min_insync_replicas: u16,
    pub flush: FlushPolicy,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u32,
    pub replica_fetch_max_bytes: u32,
    pub replica_fetch_backoff_ms: u64,
    pub fetch_max_bytes: u32,
    pub retention_check_interval_ms: u64,
}

/// What a replica asks its node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaEffect {
    /// Answer a client (or a follower's fetch).
    Reply { to: NodeId, correlation_id: u64, response: ClientResponse },
    /// Send this fetch to the leader; report the answer with [`Replica::on_fetch_response`] or its
    /// loss (a timeout) with [`Replica::on_fetch_failed`], naming it by `fetch_id`.
    Fetch { fetch_id: u64, leader: BrokerId, request: FetchRequest },
    /// Sync the file as it is now; report with [`Replica::on_sync_complete`] and this token.
    Sync { token: u64, path: String },
    /// Propose this ISR to the controller (AlterPartition) for the partition epoch given; report
    /// the answer with [`Replica::on_alter_partition_response`].
    AlterIsr {
        new_isr: Vec<BrokerId>,
        broker_epochs: Vec<(BrokerId, i64)>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// The replica cannot go on safely (a failed sync, unreadable or unwritable log): halt the node.
    Halt { reason: String },
}

/// The replica's role in its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleName {
    Leader,
    Follower {
        leader: BrokerId,
    },
    /// No leader, or this broker is not one of the replicas: it serves nothing.
    Offline,
}

/// What the leader knows of one follower.
#[derive(Clone, Copy, Debug)]
struct Peer {
    /// The fetch offset of its last fetch in the current epoch (-1: none yet).
    log_end_offset: i64,
    last_caught_up: Time,
    last_fetch_time: Time,
    /// The leader's log end when that fetch arrived.
    last_fetch_leader_end: i64,
    broker_epoch: i64,
}

#[derive(Clone, Debug)]
struct PendingIsr {
    isr: Vec<BrokerId>,
    partition_epoch: i32,
}

#[derive(Clone, Copy, Debug)]
struct WaitingAck {
    to: NodeId,
    correlation_id: u64,
    base_offset: i64,
    last_offset: i64,
    deadline: Time,
}

#[derive(Clone, Debug)]
struct ParkedFetch {
    to: NodeId,
    correlation_id: u64,
    request: FetchRequest,
    deadline: Time,
}

#[derive(Debug)]
enum Role {
    Leader {
        /// The log end when this leader's epoch began: a follower joins the ISR only past it.
        epoch_start_offset: i64,
        peers: std::collections::BTreeMap<BrokerId, Peer>,
        pending_isr: Option<PendingIsr>,
        waiting_acks: VecDeque<WaitingAck>,
        next_isr_check: Time,
    },
    Follower {
        leader: BrokerId,
        /// The id of the fetch in flight: only its answer is taken.
        fetch_in_flight: Option<u64>,
        next_fetch_at: Time,
    },
    Offline,
}

#[derive(Clone, Copy, Debug)]
struct SyncRound {
    outstanding: usize,
    up_to_offset: i64,
    closing: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Open,
    Closing,
    Closed,
    Halted,
}

#[derive(Debug)]
pub struct Replica {
    topic: String,
    topic_id: TopicId,
    partition: u32,
    broker_id: BrokerId,
    broker_epoch: i64,
    settings: ReplicaSettings,
    log: PartitionLog,
    epochs: LeaderEpochCache,
    high_watermark: i64,
    /// The partition's state in the latest applied metadata image.
    state: Option<PartitionState>,
    role: Role,
    parked: Vec<ParkedFetch>,
    round: Option<SyncRound>,
    /// Sync tokens of the current round still outstanding.
    round_tokens: Vec<u64>,
    next_token: u64,
    next_fetch_id: u64,
    next_flush: Option<Time>,
    next_hw_checkpoint: Time,
    next_retention_check: Time,
    lifecycle: Lifecycle,
    effects: VecDeque<ReplicaEffect>,
    now: Time,
}

/// The directory of one partition replica's log.
pub fn replica_dir(topic: &str, topic_id: TopicId, partition: u32) -> String {
    format!("{topic}-{partition}-{topic_id}")
}

impl Replica {
    /// Opens (recovers) the replica's log, its epoch cache and its high-watermark checkpoint.
    /// The replica starts offline; [`Replica::update_state`] gives it its role.
    pub fn open(
        env: &mut Env<'_>,
        topic: &str,
        topic_id: TopicId,
        partition: u32,
        broker_id: BrokerId,
        settings: ReplicaSettings,
    ) -> Result<(Replica, RecoveryReport), LogError> {
        let dir = replica_dir(topic, topic_id, partition);
        let (mut log, mut report) = PartitionLog::open(env, &dir, settings.log.clone())?;
        // Epochs that go backwards mean a damaged epoch field: cut the log where the suspect
        // epoch starts and fetch the rest again (each cut shortens the log, so this ends).
        let epochs = loop {
            match LeaderEpochCache::open(env, &dir, &log) {
                Err(LogError::EpochsGoBackwards { cut, detail, .. }) => {
                    log.truncate_to(env, cut)?;
                    report.actions.push(format!("{detail}: truncated the log to {cut}"));
                }
                opened => break opened?,
            }
        };
        let high_watermark =
            read_hw_checkpoint(env, &dir).unwrap_or(0).clamp(log.log_start_offset(), log.log_end_offset());
        let next_flush = match settings.flush {
            FlushPolicy::Interval { ms } => Some(env.now.plus_millis(ms)),
            FlushPolicy::Always | FlushPolicy::Never => None,
        };
        let replica = Replica {
            topic: topic.to_string(),
            topic_id,
            partition,
            broker_id,
            broker_epoch: -1,
            log,
            epochs,
            high_watermark,
            state: None,
            role: Role::Offline,
            parked: Vec::new(),
            round: None,
            round_tokens: Vec::new(),
            next_token: 0,
            next_fetch_id: 0,
            next_flush,
            next_hw_checkpoint: env.now.plus_millis(HW_CHECKPOINT_INTERVAL_MS),
            next_retention_check: env.now.plus_millis(settings.retention_check_interval_ms),
            lifecycle: Lifecycle::Open,
            effects: VecDeque::new(),
            now: env.now,
            settings,
        };
        Ok((replica, report))
    }

    // ---- getters ----

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn topic_id(&self) -> TopicId {
        self.topic_id
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn log(&self) -> &PartitionLog {
        &self.log
    }

    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn settings(&self) -> &ReplicaSettings {
        &self.settings
    }

    /// The partition's leader epoch as the latest applied image says (-1 before any).
    pub fn leader_epoch(&self) -> i32 {
        self.state.as_ref().map_or(-1, |state| state.leader_epoch)
    }

    /// The ISR as the latest applied image says.
    pub fn isr(&self) -> &[BrokerId] {
        self.state.as_ref().map_or(&[], |state| state.isr.as_slice())
    }

    pub fn role(&self) -> RoleName {
        match &self.role {
            Role::Leader { .. } => RoleName::Leader,
            Role::Follower { leader, .. } => RoleName::Follower { leader: *leader },
            Role::Offline => RoleName::Offline,
        }
    }

    /// Closed cleanly (its clean-shutdown marker written) or halted: it takes no more input.
    pub fn is_closed(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Closed | Lifecycle::Halted)
    }

    pub fn poll_effect(&mut self) -> Option<ReplicaEffect> {
        self.effects.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Time> {
        if self.lifecycle != Lifecycle::Open {
            return None;
        }
        let role = match &self.role {
            Role::Leader { waiting_acks, next_isr_check, .. } => {
                let ack = waiting_acks.iter().map(|waiting| waiting.deadline).min();
                [Some(*next_isr_check), ack].into_iter().flatten().min()
            }
            Role::Follower { fetch_in_flight: None, next_fetch_at, .. } if self.fetch_allowed() => {
                Some(*next_fetch_at)
            }
            Role::Follower { .. } | Role::Offline => None,
        };
        let parked = self.parked.iter().map(|parked| parked.deadline).min();
        [role, parked, self.next_flush, Some(self.next_hw_checkpoint), Some(self.next_retention_check)]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- inputs ----

    /// The broker's own registration epoch (sent with its replica fetches and ISR proposals).
    pub fn set_broker_epoch(&mut self, env: &mut Env<'_>, broker_epoch: i64) {
        if self.broker_epoch != broker_epoch {
            self.broker_epoch = broker_epoch;
            self.now = env.now;
            self.drive(env);
        }
    }

    /// The partition's state in a newly applied metadata image: become leader, follower or
    /// offline as it says; take a new ISR.
    pub fn update_state(&mut self, env: &mut Env<'_>, state: &PartitionState) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        self.now = env.now;
        let previous = self.state.replace(state.clone());
        let epoch_changed = previous.as_ref().is_none_or(|previous| {
            previous.leader_epoch != state.leader_epoch || previous.leader != state.leader
        });
        let i_am_replica = state.replicas.contains(&self.broker_id);
        if epoch_changed || previous.is_none() {
            match state.leader {
                Some(leader) if leader == self.broker_id && i_am_replica => self.become_leader(env),
                Some(leader) if i_am_replica => self.become_follower(env, leader),
                _ => self.become_offline(),
            }
        } else if let Role::Leader { pending_isr, .. } = &mut self.role {
            if pending_isr.as_ref().is_some_and(|pending| pending.partition_epoch < state.partition_epoch) {
                *pending_isr = None;
            }
        }
        self.maybe_advance_high_watermark(env);
        self.fail_acks_if_isr_too_small();
        self.drive(env);
    }

    pub fn handle_produce(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        correlation_id: u64,
        acks: Acks,
        timeout_ms: u32,
        batch: &[u8],
    ) {
        self.now = env.now;
        let result = self.produce(env, acks, batch);
        match result {
            Err(error) => {
                if acks != Acks::None {
                    self.reply(from, correlation_id, ClientResponse::Produce(Err(error)));
                }
            }
            Ok((base_offset, last_offset)) => {
                match acks {
                    Acks::None => {}
                    Acks::Leader => {
                        let ok = ProduceOk { base_offset, log_start_offset: self.log.log_start_offset() };
                        self.reply(from, correlation_id, ClientResponse::Produce(Ok(ok)));
                    }
                    Acks::All => {
                        let deadline = env.now.plus_millis(u64::from(timeout_ms));
                        if let Role::Leader { waiting_acks, .. } = &mut self.role {
                            let waiting =
                                WaitingAck { to: from, correlation_id, base_offset, last_offset, deadline };
                            waiting_acks.push_back(waiting);
                        }
                    }
                }
                self.after_append(env);
                self.answer_committed_acks();
            }
        }
        self.drive(env);
    }

    /// A fetch from a consumer or a follower. Answered now, or parked for its long poll.
    pub fn handle_fetch(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        correlation_id: u64,
        request: FetchRequest,
    ) {
        self.now = env.now;
        let response = self.fetch(env, &request);
        let waits = response.error == ErrorCode::None
            && below_min_bytes(&response, &request)
            && response.diverging_epoch.is_none()
            && request.max_wait_ms > 0
            && self.parked.len() < PARKED_FETCHES_MAX
            && self.lifecycle == Lifecycle::Open;
        if waits {
            let deadline = env.now.plus_millis(u64::from(request.max_wait_ms));
            self.parked.push(ParkedFetch { to: from, correlation_id, request, deadline });
        } else {
            self.reply(from, correlation_id, ClientResponse::Fetch(response));
        }
        // A follower's fetch may have moved the high watermark (and so other waiters).
        self.maybe_advance_high_watermark(env);
        self.answer_committed_acks();
        self.drive(env);
    }

    pub fn handle_list_offsets(
        &mut self,
        env: &mut Env<'_>,
        current_leader_epoch: Option<i32>,
        spec: OffsetSpec,
    ) -> ClientResponse {
        self.now = env.now;
        ClientResponse::ListOffsets(self.list_offsets(env, current_leader_epoch, spec))
    }

    pub fn handle_offset_for_leader_epoch(
        &mut self,
        current_leader_epoch: Option<i32>,
        leader_epoch: i32,
    ) -> ClientResponse {
        let result = self.check_leader(current_leader_epoch).map(|()| {
            let (leader_epoch, end_offset) =
                self.epochs.end_offset_for(leader_epoch, self.log.log_end_offset());
            EpochEndOffset { leader_epoch, end_offset }
        });
        ClientResponse::OffsetForLeaderEpoch(result)
    }

    /// The leader answered the fetch `fetch_id`. Only the answer to the fetch in flight is taken:
    /// a late answer to an earlier fetch (or another epoch's) could carry a stale divergence.
    pub fn on_fetch_response(&mut self, env: &mut Env<'_>, fetch_id: u64, response: PartitionFetch) {
        self.now = env.now;
        let Role::Follower { fetch_in_flight, next_fetch_at, .. } = &mut self.role else { return };
        if *fetch_in_flight != Some(fetch_id) || self.lifecycle != Lifecycle::Open {
            return;
        }
        *fetch_in_flight = None;
        *next_fetch_at = env.now;
        match response.error {
            ErrorCode::None => self.follower_apply(env, response),
            ErrorCode::OffsetOutOfRange => self.follower_out_of_range(env, &response),
            _ => self.back_off_fetch(env.now),
        }
        self.drive(env);
    }

    /// The fetch `fetch_id` was lost (no answer in time).
    pub fn on_fetch_failed(&mut self, env: &mut Env<'_>, fetch_id: u64) {
        self.now = env.now;
        if let Role::Follower { fetch_in_flight, .. } = &mut self.role {
            if *fetch_in_flight == Some(fetch_id) {
                *fetch_in_flight = None;
                self.back_off_fetch(env.now);
            }
        }
        self.drive(env);
    }

    /// The controller answered an ISR proposal.
    pub fn on_alter_partition_response(
        &mut self,
        env: &mut Env<'_>,
        result: Result<PartitionState, ErrorCode>,
    ) {
        self.now = env.now;
        // Accepted: the pending ISR keeps counting (maximal) until the image carries the change,
        // which clears it (`update_state`). Refused or lost: the image decides, and the next ISR
        // check proposes again.
        if let (Role::Leader { pending_isr, .. }, Err(_)) = (&mut self.role, &result) {
            *pending_isr = None;
        }
        self.drive(env);
    }

    pub fn on_sync_complete(&mut self, env: &mut Env<'_>, token: u64, result: Result<(), StorageError>) {
        self.now = env.now;
        let Some(position) = self.round_tokens.iter().position(|outstanding| *outstanding == token) else {
            return; // not ours (a previous round's or incarnation's)
        };
        self.round_tokens.swap_remove(position);
        match result {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(error) => {
                self.halt(format!("sync of {} failed: {error}", self.log.dir()));
                return;
            }
        }
        let Some(round) = self.round.as_mut() else { return };
        round.outstanding -= 1;
        if round.outstanding > 0 {
            return;
        }
        let round = self.round.take().expect("checked above");
        self.log.on_sync_complete(round.up_to_offset);
        if round.closing {
            let _best_effort = write_hw_checkpoint(env, self.log.dir(), self.high_watermark);
            match self.log.complete_close(env) {
                Ok(()) => self.lifecycle = Lifecycle::Closed,
                Err(error) => self.halt(format!("closing {} failed: {error:?}", self.log.dir())),
            }
            return;
        }
        self.maybe_advance_high_watermark(env);
        self.answer_committed_acks();
        if self.flush_policy() == FlushPolicy::Always {
            self.start_sync_round();
        }
        self.drive(env);
    }

    pub fn handle_timer(&mut self, env: &mut Env<'_>) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        self.now = env.now;
        if self.next_flush.is_some_and(|at| at <= env.now) {
            if let FlushPolicy::Interval { ms } = self.flush_policy() {
                self.next_flush = Some(env.now.plus_millis(ms));
            }
            self.start_sync_round();
        }
        if self.next_hw_checkpoint <= env.now {
            self.next_hw_checkpoint = env.now.plus_millis(HW_CHECKPOINT_INTERVAL_MS);
            // Housekeeping: a failed write is tried again next time (the log stays the truth).
            let _ = write_hw_checkpoint(env, self.log.dir(), self.high_watermark);
        }
        if self.next_retention_check <= env.now {
            self.next_retention_check = env.now.plus_millis(self.settings.retention_check_interval_ms);
            self.apply_retention(env);
        }
        self.expire_acks();
        self.answer_parked(env);
        self.shrink_isr_if_lagging(env.now);
        self.drive(env);
    }

    /// A clean close: answers every waiter, syncs the log and writes its clean-shutdown marker.
    /// Done when [`Replica::is_closed`].
    pub fn begin_close(&mut self, env: &mut Env<'_>) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        self.now = env.now;
        self.become_offline();
        if self.round.is_some() {
            // The round in flight completes first; close after it.
            self.lifecycle = Lifecycle::Closing;
            return;
        }
        self.lifecycle = Lifecycle::Closing;
        self.continue_close(env);
    }

    /// The topic was deleted: answers every waiter and removes the replica's files.
    pub fn delete(mut self, env: &mut Env<'_>) -> Vec<ReplicaEffect> {
        self.become_offline();
        let dir = self.log.dir().to_string();
        if let Ok(files) = env.storage.list(&format!("{dir}/")) {
            for file in files.iter().rev() {
                // Best effort: a leftover file of a deleted topic's unique directory harms nothing.
                let _ = env.storage.remove(file);
            }
        }
        self.effects.into_iter().collect()
    }

    // ---- the leader ----

    fn become_leader(&mut self, env: &mut Env<'_>) {
        self.answer_parked_with(ErrorCode::NotLeaderOrFollower);
        self.fail_waiting_acks(ErrorCode::NotLeaderOrFollower);
        let leader_epoch = self.leader_epoch();
        let end = self.log.log_end_offset();
        if self.epochs.latest_epoch().is_none_or(|latest| latest < leader_epoch) {
            if let Err(error) = self.epochs.assign(env, leader_epoch, end) {
                self.halt(format!(
                    "{}: cannot record leader epoch {leader_epoch}: {error:?}",
                    self.log.dir()
                ));
                return;
            }
        }
        let now = env.now;
        let peers = self
            .state
            .as_ref()
            .map(|state| {
                state
                    .replicas
                    .iter()
                    .filter(|replica| **replica != self.broker_id)
                    .map(|replica| {
                        (
                            *replica,
                            Peer {
                                log_end_offset: -1,
                                last_caught_up: now,
                                last_fetch_time: now,
                                last_fetch_leader_end: -1,
                                broker_epoch: -1,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.role = Role::Leader {
            epoch_start_offset: end,
            peers,
            pending_isr: None,
            waiting_acks: VecDeque::new(),
            next_isr_check: now.plus_millis(self.isr_check_interval_ms()),
        };
    }

    fn produce(&mut self, env: &mut Env<'_>, acks: Acks, batch: &[u8]) -> Result<(i64, i64), ErrorCode> {
        if self.lifecycle != Lifecycle::Open {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let Role::Leader { waiting_acks, .. } = &self.role else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        if acks == Acks::All {
            if waiting_acks.len() >= WAITING_ACKS_MAX {
                return Err(ErrorCode::RequestTimedOut);
            }
            if self.isr().len() < usize::from(self.settings.min_insync_replicas)
                && !env.faults.planted(Plant::AcksAllBelowMinIsr)
            {
                return Err(ErrorCode::NotEnoughReplicas);
            }
        }
        let leader_epoch = self.leader_epoch();
        match self.log.append_as_leader(env, batch, leader_epoch) {
            Ok(info) => Ok((info.base_offset, info.last_offset)),
            Err(
                error @ (LogError::Storage(_)
                | LogError::Unrecoverable(_)
                | LogError::Corrupt { .. }
                | LogError::EpochsGoBackwards { .. }),
            ) => {
                self.halt(format!("{}: append failed: {error:?}", self.log.dir()));
                Err(ErrorCode::KafkaStorageError)
            }
            Err(LogError::InvalidBatch(_)) => Err(ErrorCode::CorruptMessage),
            Err(LogError::BatchTooLarge { .. }) => Err(ErrorCode::MessageTooLarge),
            Err(LogError::OffsetOutOfRange { .. }) => Err(ErrorCode::InvalidRequest),
        }
    }

    /// After an append: under `always` the batch is synced before it counts.
    fn after_append(&mut self, env: &mut Env<'_>) {
        if self.flush_policy() == FlushPolicy::Always && !env.faults.buggify("replica.defer_sync") {
            self.start_sync_round();
        }
        self.maybe_advance_high_watermark(env);
        self.answer_parked(env);
    }

    /// The offset this replica itself counts toward the high watermark.
    fn own_counted_offset(&self) -> i64 {
        match self.flush_policy() {
            FlushPolicy::Always => self.log.durable_offset(),
            FlushPolicy::Interval { .. } | FlushPolicy::Never => self.log.log_end_offset(),
        }
    }

    /// The leader's high watermark: the smallest counted offset over the maximal ISR, while the
    /// committed ISR has at least `min.insync.replicas` members. Never lowered.
    fn maybe_advance_high_watermark(&mut self, env: &mut Env<'_>) {
        let Role::Leader { peers, pending_isr, .. } = &self.role else { return };
        let Some(state) = self.state.as_ref() else { return };
        let enough = state.isr.len() >= usize::from(self.settings.min_insync_replicas)
            || env.faults.planted(Plant::AcksAllBelowMinIsr);
        if !enough {
            return;
        }
        let mut members: Vec<BrokerId> = state.isr.clone();
        if let Some(pending) = pending_isr {
            for member in &pending.isr {
                if !members.contains(member) {
                    members.push(*member);
                }
            }
        }
        let mut candidate = self.own_counted_offset();
        for member in members {
            if member == self.broker_id {
                continue;
            }
            let offset = peers.get(&member).map_or(-1, |peer| peer.log_end_offset);
            candidate = candidate.min(offset);
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            self.answer_parked(env);
        }
    }

    fn answer_committed_acks(&mut self) {
        let high_watermark = self.high_watermark;
        let log_start_offset = self.log.log_start_offset();
        let Role::Leader { waiting_acks, .. } = &mut self.role else { return };
        let mut answered = Vec::new();
        while let Some(waiting) = waiting_acks.front() {
            if waiting.last_offset >= high_watermark {
                break;
            }
            answered.push(*waiting);
            waiting_acks.pop_front();
        }
        for waiting in answered {
            let ok = ProduceOk { base_offset: waiting.base_offset, log_start_offset };
            self.reply(waiting.to, waiting.correlation_id, ClientResponse::Produce(Ok(ok)));
        }
    }

    /// The ISR fell below the minimum: waiting `acks=all` produces can no longer be promised.
    fn fail_acks_if_isr_too_small(&mut self) {
        let too_small = self.isr().len() < usize::from(self.settings.min_insync_replicas);
        if too_small && matches!(self.role, Role::Leader { .. }) {
            self.fail_waiting_acks(ErrorCode::NotEnoughReplicasAfterAppend);
        }
    }

    fn fail_waiting_acks(&mut self, error: ErrorCode) {
        let Role::Leader { waiting_acks, .. } = &mut self.role else { return };
        let failed: Vec<WaitingAck> = waiting_acks.drain(..).collect();
        for waiting in failed {
            self.reply(waiting.to, waiting.correlation_id, ClientResponse::Produce(Err(error)));
        }
    }

    fn expire_acks(&mut self) {
        let now = self.now;
        let Role::Leader { waiting_acks, .. } = &mut self.role else { return };
        let (expired, kept): (Vec<WaitingAck>, Vec<WaitingAck>) =
            waiting_acks.drain(..).partition(|waiting| waiting.deadline <= now);
        waiting_acks.extend(kept);
        for waiting in expired {
            self.reply(
                waiting.to,
                waiting.correlation_id,
                ClientResponse::Produce(Err(ErrorCode::RequestTimedOut)),
            );
        }
    }

    /// Proposes out of the ISR every follower that has not caught up for too long.
    fn shrink_isr_if_lagging(&mut self, now: Time) {
        let interval = self.isr_check_interval_ms();
        let lag_max = self.settings.replica_lag_time_max_ms;
        let Role::Leader { peers, pending_isr, next_isr_check, .. } = &mut self.role else { return };
        if *next_isr_check > now {
            return;
        }
        *next_isr_check = now.plus_millis(interval);
        if pending_isr.is_some() {
            return;
        }
        let Some(state) = self.state.as_ref() else { return };
        let lagging: Vec<BrokerId> = state
            .isr
            .iter()
            .copied()
            .filter(|member| {
                *member != self.broker_id
                    && peers
                        .get(member)
                        .is_none_or(|peer| now.since(peer.last_caught_up) > lag_max * 1_000_000)
            })
            .collect();
        if lagging.is_empty() {
            return;
        }
        let new_isr: Vec<BrokerId> =
            state.isr.iter().copied().filter(|member| !lagging.contains(member)).collect();
        self.propose_isr(new_isr);
    }

    /// Proposes the follower back into the ISR if it caught up.
    fn maybe_expand_isr(&mut self, follower: BrokerId) {
        let high_watermark = self.high_watermark;
        let Role::Leader { peers, pending_isr, epoch_start_offset, .. } = &self.role else { return };
        if pending_isr.is_some() {
            return;
        }
        let Some(state) = self.state.as_ref() else { return };
        if state.isr.contains(&follower) || !state.replicas.contains(&follower) {
            return;
        }
        let Some(peer) = peers.get(&follower) else { return };
        if peer.log_end_offset >= high_watermark && peer.log_end_offset >= *epoch_start_offset {
            let mut new_isr = state.isr.clone();
            new_isr.push(follower);
            self.propose_isr(new_isr);
        }
    }

    fn propose_isr(&mut self, new_isr: Vec<BrokerId>) {
        let broker_id = self.broker_id;
        let own_epoch = self.broker_epoch;
        let Some(state) = self.state.clone() else { return };
        let Role::Leader { peers, pending_isr, .. } = &mut self.role else { return };
        if own_epoch < 0 || new_isr.is_empty() {
            return;
        }
        let broker_epochs: Vec<(BrokerId, i64)> = new_isr
            .iter()
            .map(|member| {
                let epoch = if *member == broker_id {
                    own_epoch
                } else {
                    peers.get(member).map_or(-1, |peer| peer.broker_epoch)
                };
                (*member, epoch)
            })
            .collect();
        *pending_isr = Some(PendingIsr { isr: new_isr.clone(), partition_epoch: state.partition_epoch });
        self.effects.push_back(ReplicaEffect::AlterIsr {
            new_isr,
            broker_epochs,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        });
    }

    // ---- serving fetches ----

    /// KIP-320 epoch checks, then leadership.
    fn check_leader(&self, current_leader_epoch: Option<i32>) -> Result<(), ErrorCode> {
        let local = self.leader_epoch();
        if let Some(requested) = current_leader_epoch {
            if requested > local {
                return Err(ErrorCode::UnknownLeaderEpoch);
            }
            if requested < local {
                return Err(ErrorCode::FencedLeaderEpoch);
            }
        }
        if self.lifecycle != Lifecycle::Open || !matches!(self.role, Role::Leader { .. }) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        Ok(())
    }

    fn fetch(&mut self, env: &mut Env<'_>, request: &FetchRequest) -> PartitionFetch {
        let mut answer = PartitionFetch {
            error: ErrorCode::None,
            high_watermark: self.high_watermark,
            log_start_offset: self.log.log_start_offset(),
            diverging_epoch: None,
            current_leader: self
                .state
                .as_ref()
                .and_then(|state| state.leader.map(|leader| (leader, state.leader_epoch))),
            records: Vec::new(),
        };
        if let Err(error) = self.check_leader(request.current_leader_epoch) {
            answer.error = error;
            return answer;
        }
        let log_end_offset = self.log.log_end_offset();
        if let Some(last_fetched_epoch) = request.last_fetched_epoch {
            let (mut epoch, mut end_offset) = self.epochs.end_offset_for(last_fetched_epoch, log_end_offset);
            if epoch < 0 && end_offset < 0 {
                // The fetcher names an epoch above every one this leader knows (it cannot have
                // one legitimately): it diverges at our end.
                (epoch, end_offset) = (self.epochs.latest_epoch().unwrap_or(-1), log_end_offset);
            }
            if epoch < last_fetched_epoch || end_offset < request.fetch_offset {
                answer.diverging_epoch = Some((epoch, end_offset));
                return answer;
            }
        }
        if request.fetch_offset < self.log.log_start_offset() || request.fetch_offset > log_end_offset {
            answer.error = ErrorCode::OffsetOutOfRange;
            return answer;
        }
        if let Some((follower, broker_epoch)) = request.replica {
            self.note_follower_fetch(follower, broker_epoch, request);
        }
        let limit = match request.replica {
            Some(_) => log_end_offset,
            None => self.high_watermark,
        };
        if request.fetch_offset >= limit {
            return answer;
        }
        let max_bytes = match request.replica {
            Some(_) => request.max_bytes.min(self.settings.replica_fetch_max_bytes),
            None => request.max_bytes.min(self.settings.fetch_max_bytes),
        } as usize;
        let read = match self.log.read(env, request.fetch_offset, max_bytes) {
            Ok(read) => read,
            Err(LogError::OffsetOutOfRange { .. }) => {
                answer.error = ErrorCode::OffsetOutOfRange;
                return answer;
            }
            Err(error) => {
                // Never serve corrupt bytes; a leader whose log cannot be read steps down by
                // halting (the controller moves leadership; recovery cuts at the damage).
                self.halt(format!("{}: read at {} failed: {error:?}", self.log.dir(), request.fetch_offset));
                answer.error = ErrorCode::KafkaStorageError;
                return answer;
            }
        };
        let mut served = 0usize;
        for batch in Batches::new(&read.bytes) {
            let Ok((header, bytes)) = batch else { break };
            if header.last_offset() >= limit {
                break;
            }
            served += bytes.len();
        }
        let mut records = read.bytes;
        records.truncate(served);
        answer.records = records;
        answer.high_watermark = self.high_watermark;
        answer
    }

    /// A follower fetched in the current epoch: its log end is the fetch offset.
    fn note_follower_fetch(&mut self, follower: BrokerId, broker_epoch: i64, request: &FetchRequest) {
        let now = self.now;
        let leader_end = self.log.log_end_offset();
        let Role::Leader { peers, .. } = &mut self.role else { return };
        let Some(peer) = peers.get_mut(&follower) else { return };
        if request.current_leader_epoch.is_none() {
            return; // only fetches that name the current epoch count
        }
        if request.fetch_offset >= leader_end {
            peer.last_caught_up = now;
        } else if request.fetch_offset >= peer.last_fetch_leader_end && peer.last_fetch_leader_end >= 0 {
            peer.last_caught_up = peer.last_caught_up.max(peer.last_fetch_time);
        }
        peer.log_end_offset = request.fetch_offset;
        peer.last_fetch_time = now;
        peer.last_fetch_leader_end = leader_end;
        peer.broker_epoch = broker_epoch;
        self.maybe_expand_isr(follower);
    }

    /// Re-evaluates parked fetches: answers those with data (or past their wait).
    fn answer_parked(&mut self, env: &mut Env<'_>) {
        if self.parked.is_empty() {
            return;
        }
        let now = env.now;
        let parked = std::mem::take(&mut self.parked);
        for waiting in parked {
            let response = self.fetch(env, &waiting.request);
            let ready = !below_min_bytes(&response, &waiting.request)
                || response.error != ErrorCode::None
                || response.diverging_epoch.is_some()
                || waiting.deadline <= now
                || self.lifecycle != Lifecycle::Open;
            if ready {
                self.reply(waiting.to, waiting.correlation_id, ClientResponse::Fetch(response));
            } else {
                self.parked.push(waiting);
            }
        }
    }

    fn answer_parked_with(&mut self, error: ErrorCode) {
        for waiting in std::mem::take(&mut self.parked) {
            let response = PartitionFetch {
                error,
                high_watermark: self.high_watermark,
                log_start_offset: self.log.log_start_offset(),
                diverging_epoch: None,
                current_leader: None,
                records: Vec::new(),
            };
            self.reply(waiting.to, waiting.correlation_id, ClientResponse::Fetch(response));
        }
    }

    fn list_offsets(
        &mut self,
        env: &mut Env<'_>,
        current_leader_epoch: Option<i32>,
        spec: OffsetSpec,
    ) -> Result<ListedOffset, ErrorCode> {
        self.check_leader(current_leader_epoch)?;
        let leader_epoch = self.leader_epoch();
        let epoch_of = |epochs: &LeaderEpochCache, offset: i64| epochs.epoch_for_offset(offset).unwrap_or(-1);
        match spec {
            OffsetSpec::Earliest => {
                let offset = self.log.log_start_offset();
                Ok(ListedOffset { offset, timestamp: -1, leader_epoch: epoch_of(&self.epochs, offset) })
            }
            OffsetSpec::Latest => {
                Ok(ListedOffset { offset: self.high_watermark, timestamp: -1, leader_epoch })
            }
            OffsetSpec::Timestamp(timestamp) => match self.log.offset_for_timestamp(env, timestamp) {
                Ok(Some((offset, found))) if offset < self.high_watermark => Ok(ListedOffset {
                    offset,
                    timestamp: found,
                    leader_epoch: epoch_of(&self.epochs, offset),
                }),
                Ok(_) => Ok(ListedOffset { offset: -1, timestamp: -1, leader_epoch: -1 }),
                Err(_) => Err(ErrorCode::KafkaStorageError),
            },
        }
    }

    // ---- the follower ----

    fn become_follower(&mut self, env: &mut Env<'_>, leader: BrokerId) {
        self.answer_parked_with(ErrorCode::NotLeaderOrFollower);
        self.fail_waiting_acks(ErrorCode::NotLeaderOrFollower);
        if env.faults.planted(Plant::TruncateToHighWatermark) {
            // The pre-KIP-101 bug: cut to the (possibly stale) high watermark, not by epoch.
            let cut = self.high_watermark.max(self.log.log_start_offset());
            self.truncate_to(env, cut);
        }
        self.role = Role::Follower { leader, fetch_in_flight: None, next_fetch_at: env.now };
    }

    fn become_offline(&mut self) {
        self.answer_parked_with(ErrorCode::NotLeaderOrFollower);
        self.fail_waiting_acks(ErrorCode::NotLeaderOrFollower);
        self.role = Role::Offline;
    }

    /// Under `always` a follower fetches on only once what it appended is durable: its fetch
    /// offset is what it promises to hold.
    fn fetch_allowed(&self) -> bool {
        self.broker_epoch >= 0
            && self.lifecycle == Lifecycle::Open
            && match self.flush_policy() {
                FlushPolicy::Always => {
                    self.round.is_none() && self.log.durable_offset() == self.log.log_end_offset()
                }
                FlushPolicy::Interval { .. } | FlushPolicy::Never => true,
            }
    }

    /// Sends the next fetch to the leader when one is due.
    fn maybe_fetch(&mut self, env: &mut Env<'_>) {
        if !self.fetch_allowed() {
            return;
        }
        let now = env.now;
        let fetch_offset = self.log.log_end_offset();
        let last_fetched_epoch = if env.faults.planted(Plant::TruncateToHighWatermark) {
            None
        } else {
            self.epochs.latest_epoch()
        };
        let request = FetchRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            fetch_offset,
            replica: Some((self.broker_id, self.broker_epoch)),
            current_leader_epoch: Some(self.leader_epoch()),
            last_fetched_epoch,
            max_bytes: self.settings.replica_fetch_max_bytes,
            max_wait_ms: self.settings.replica_fetch_wait_max_ms,
            min_bytes: 1,
        };
        let Role::Follower { leader, fetch_in_flight, next_fetch_at } = &mut self.role else { return };
        if fetch_in_flight.is_some() || *next_fetch_at > now {
            return;
        }
        self.next_fetch_id += 1;
        let fetch_id = self.next_fetch_id;
        *fetch_in_flight = Some(fetch_id);
        let leader = *leader;
        self.effects.push_back(ReplicaEffect::Fetch { fetch_id, leader, request });
    }

    fn back_off_fetch(&mut self, now: Time) {
        let backoff = self.settings.replica_fetch_backoff_ms;
        if let Role::Follower { next_fetch_at, .. } = &mut self.role {
            *next_fetch_at = now.plus_millis(backoff);
        }
    }

    fn follower_apply(&mut self, env: &mut Env<'_>, response: PartitionFetch) {
        if let Some((epoch, end_offset)) = response.diverging_epoch {
            self.truncate_on_divergence(env, epoch, end_offset);
            return;
        }
        for batch in Batches::new(&response.records) {
            let (header, bytes) = match batch {
                Ok(batch) => batch,
                Err(_) => {
                    self.back_off_fetch(env.now);
                    break; // a damaged answer: fetch again
                }
            };
            if header.base_offset != self.log.log_end_offset() {
                break;
            }
            if let Err(error) = self.log.append_replicated(env, bytes) {
                match error {
                    LogError::InvalidBatch(_)
                    | LogError::OffsetOutOfRange { .. }
                    | LogError::BatchTooLarge { .. } => {
                        self.back_off_fetch(env.now);
                        break;
                    }
                    LogError::Storage(_)
                    | LogError::Corrupt { .. }
                    | LogError::EpochsGoBackwards { .. }
                    | LogError::Unrecoverable(_) => {
                        self.halt(format!("{}: follower append failed: {error:?}", self.log.dir()));
                        return;
                    }
                }
            }
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && self.epochs.latest_epoch().is_none_or(|latest| latest < epoch) {
                if let Err(error) = self.epochs.assign(env, epoch, header.base_offset) {
                    self.halt(format!("{}: epoch cache: {error:?}", self.log.dir()));
                    return;
                }
            }
        }
        let log_end_offset = self.log.log_end_offset();
        let learned = response.high_watermark.min(log_end_offset);
        if learned > self.high_watermark {
            self.high_watermark = learned;
        }
        if self.flush_policy() == FlushPolicy::Always {
            self.start_sync_round();
        }
    }

    /// Kafka's truncation on a diverging epoch: where the leader's epoch `epoch` ends, or where
    /// this log's largest epoch not above it ends, whichever is smaller.
    fn truncate_on_divergence(&mut self, env: &mut Env<'_>, epoch: i32, leader_end_offset: i64) {
        let log_end_offset = self.log.log_end_offset();
        let (local_epoch, local_end_offset) = self.epochs.end_offset_for(epoch, log_end_offset);
        let target = if local_epoch < 0 {
            // This log knows no epoch at or below the leader's: keep what the leader has.
            leader_end_offset.min(log_end_offset)
        } else if local_epoch != epoch {
            // The leader's epoch is unknown here: cut to the end of our largest smaller epoch; the
            // next fetch names that epoch and converges (Kafka's intermediate truncation).
            local_end_offset.min(log_end_offset)
        } else {
            local_end_offset.min(leader_end_offset).min(log_end_offset)
        };
        self.truncate_to(env, target.max(self.log.log_start_offset()));
    }

    fn follower_out_of_range(&mut self, env: &mut Env<'_>, response: &PartitionFetch) {
        let fetch_offset = self.log.log_end_offset();
        if fetch_offset < response.log_start_offset {
            // The leader deleted what we would fetch next (retention): start over at its start.
            if let Err(error) = self.log.reset_to(env, response.log_start_offset) {
                self.halt(format!("{}: reset failed: {error:?}", self.log.dir()));
                return;
            }
            if let Err(error) = self.epochs.truncate_from_start(env, response.log_start_offset) {
                self.halt(format!("{}: epoch cache: {error:?}", self.log.dir()));
                return;
            }
            self.high_watermark = self.high_watermark.max(response.log_start_offset);
        } else {
            // Past the leader's end (only without epochs, as the planted pre-KIP-101 follower
            // fetches): cut to the leader's high watermark and fetch again.
            let cut = response.high_watermark.min(fetch_offset).max(self.log.log_start_offset());
            self.truncate_to(env, cut);
        }
    }

    /// Cuts the log (and the epoch cache) at `offset`, which must be a batch boundary at or
    /// below the log end; a cut inside a batch is moved down to the batch's start.
    fn truncate_to(&mut self, env: &mut Env<'_>, offset: i64) {
        if offset >= self.log.log_end_offset() {
            // Nothing to cut from the log, but the epoch cache may end with an epoch this replica
            // started as leader and appended nothing in: it names that epoch as its last fetched
            // one, which the leader does not know, and the same divergence comes back forever.
            // Kafka truncates the epoch cache at the log end here too.
            let end = self.log.log_end_offset();
            if let Err(error) = self.epochs.truncate_from_end(env, end) {
                self.halt(format!("{}: epoch cache: {error:?}", self.log.dir()));
            }
            return;
        }
        let boundary = self.batch_boundary_at_or_below(env, offset);
        if let Err(error) = self.log.truncate_to(env, boundary) {
            self.halt(format!("{}: truncation to {boundary} failed: {error:?}", self.log.dir()));
            return;
        }
        if let Err(error) = self.epochs.truncate_from_end(env, boundary) {
            self.halt(format!("{}: epoch cache: {error:?}", self.log.dir()));
            return;
        }
        // A follower's high watermark is never above its log end.
        self.high_watermark = self.high_watermark.min(boundary);
    }

    fn batch_boundary_at_or_below(&self, env: &mut Env<'_>, offset: i64) -> i64 {
        if offset <= self.log.log_start_offset() {
            return self.log.log_start_offset();
        }
        match self.log.read(env, offset, 1) {
            Ok(read) => match Batches::new(&read.bytes).next() {
                Some(Ok((header, _))) if header.base_offset <= offset => header.base_offset,
                _ => offset,
            },
            Err(_) => offset,
        }
    }

    // ---- syncing, retention, closing ----

    fn flush_policy(&self) -> FlushPolicy {
        self.settings.flush
    }

    fn start_sync_round(&mut self) {
        if self.round.is_some() || self.lifecycle != Lifecycle::Open {
            return;
        }
        let Some(SyncRequest { files, up_to_offset }) = self.log.sync_request() else { return };
        self.open_round(files, up_to_offset, false);
    }

    fn open_round(&mut self, files: Vec<String>, up_to_offset: i64, closing: bool) {
        self.round = Some(SyncRound { outstanding: files.len(), up_to_offset, closing });
        for path in files {
            self.next_token += 1;
            let token = self.next_token;
            self.round_tokens.push(token);
            self.effects.push_back(ReplicaEffect::Sync { token, path });
        }
    }

    fn continue_close(&mut self, env: &mut Env<'_>) {
        match self.log.begin_close(env) {
            Ok(SyncRequest { files, up_to_offset }) => {
                if files.is_empty() {
                    self.log.on_sync_complete(up_to_offset);
                    let _best_effort = write_hw_checkpoint(env, self.log.dir(), self.high_watermark);
                    match self.log.complete_close(env) {
                        Ok(()) => self.lifecycle = Lifecycle::Closed,
                        Err(error) => self.halt(format!("closing {} failed: {error:?}", self.log.dir())),
                    }
                } else {
                    self.open_round(files, up_to_offset, true);
                }
            }
            Err(error) => self.halt(format!("closing {} failed: {error:?}", self.log.dir())),
        }
    }

    fn apply_retention(&mut self, env: &mut Env<'_>) {
        // Retention never deletes what consumers have not been allowed to read.
        if self.log.log_start_offset() >= self.high_watermark {
            return;
        }
        match self.log.apply_retention(env) {
            Ok(report) if !report.deleted_segments.is_empty() => {
                // Housekeeping: the cache is reconciled with the log on the next open anyway.
                let _ = self.epochs.truncate_from_start(env, report.log_start_offset);
            }
            _ => {}
        }
    }

    fn isr_check_interval_ms(&self) -> u64 {
        (self.settings.replica_lag_time_max_ms / 2).clamp(1, ISR_CHECK_INTERVAL_MS_MAX)
    }

    /// After every input: the follower fetches when due; a closing replica finishes its round.
    fn drive(&mut self, env: &mut Env<'_>) {
        match self.lifecycle {
            Lifecycle::Open => self.maybe_fetch(env),
            Lifecycle::Closing if self.round.is_none() => self.continue_close(env),
            Lifecycle::Closing | Lifecycle::Closed | Lifecycle::Halted => {}
        }
    }

    fn reply(&mut self, to: NodeId, correlation_id: u64, response: ClientResponse) {
        if self.lifecycle != Lifecycle::Halted {
            self.effects.push_back(ReplicaEffect::Reply { to, correlation_id, response });
        }
    }

    fn halt(&mut self, reason: String) {
        if self.lifecycle != Lifecycle::Halted {
            self.lifecycle = Lifecycle::Halted;
            self.effects.push_back(ReplicaEffect::Halt { reason });
        }
    }
}

/// The checkpoint: 8 bytes of high watermark then its CRC32C; anything else reads as absent.
fn read_hw_checkpoint(env: &mut Env<'_>, dir: &str) -> Option<i64> {
    let bytes = env.storage.read_all(&format!("{dir}/{HW_CHECKPOINT_FILE}")).ok()?;
    let (value, crc) = bytes.split_at_checked(8)?;
    let value: [u8; 8] = value.try_into().ok()?;
    let crc: [u8; 4] = crc.try_into().ok()?;
    (crc32c::crc32c(&value) == u32::from_be_bytes(crc)).then(|| i64::from_be_bytes(value))
}

fn write_hw_checkpoint(env: &mut Env<'_>, dir: &str, high_watermark: i64) -> Result<(), StorageError> {
    let path = format!("{dir}/{HW_CHECKPOINT_FILE}");
    let temporary = format!("{path}.tmp");
    let value = high_watermark.to_be_bytes();
    let mut bytes = value.to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&value).to_be_bytes());
    match env.storage.create(&temporary) {
        Ok(()) | Err(StorageError::AlreadyExists) => {}
        Err(error) => return Err(error),
    }
    env.storage.truncate(&temporary, 0)?;
    env.storage.write_at(&temporary, 0, &bytes)?;
    env.storage.rename(&temporary, &path)
}

/// A long poll waits while its answer holds fewer than `min_bytes` bytes of records (`fetch.min.bytes`;
/// 0 answers at once, as Kafka does). Each partition of a fetch waits on its own share.
fn below_min_bytes(response: &PartitionFetch, request: &FetchRequest) -> bool {
    (response.records.len() as u64) < u64::from(request.min_bytes)
}
