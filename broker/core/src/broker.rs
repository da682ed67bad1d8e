//! The broker node's state machine: partitions, produce and fetch, group commit, shutdown.
//!
//! This is the single-replica broker of the foundation: every partition has one replica, its log,
//! on this node. (Replication and the controller come in later issues and plug in here.)
//!
//! The driver's contract, in the order the driver calls things (quinn-proto's style):
//! - inputs: [`Broker::start`] once per incarnation (it recovers every partition log), then
//!   [`Broker::handle_message`], [`Broker::handle_sync_complete`], [`Broker::handle_timer`] (when
//!   `now` reaches [`Broker::next_deadline`]) and [`Broker::begin_shutdown`];
//! - outputs: after every input, the driver MUST drain [`Broker::poll_effect`] and execute the
//!   effects in order. A [`Effect::Sync`] MUST be performed on the file as it is *when the effect is
//!   polled* (later writes need not be covered) and its outcome reported with its token. After
//!   [`Effect::Halt`] or [`Effect::ShutdownComplete`] the driver MUST stop calling the broker.
//!
//! Durability: an `acks=all` produce is answered only after a sync covering its batch completed
//! (group commit: one sync round covers every batch appended before it was requested). The
//! high watermark — the end of what consumers may read — is the durable offset, so a consumer never
//! sees a record a crash could take back. `acks=1` is answered after the append, before any sync;
//! such records can be lost by a crash (Kafka's trade-off, which the simulator shows). A failed
//! sync halts the broker, as Kafka takes a failed log directory offline: after a failed fsync the
//! page cache can no longer be trusted.

use std::collections::{BTreeMap, VecDeque};

use crate::env::{Env, Plant, StorageError, Time};
use crate::log::{LogConfig, LogError, PartitionLog, RecoveryReport, SyncRequest};
use crate::protocol::{Acks, ErrorCode, FetchData, Message, OffsetSpec, Request, RequestId, Response};
use crate::record::Batches;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerConfig {
    /// Partitions of the one topic this foundation broker serves, numbered from 0.
    pub partitions: u32,
    pub log: LogConfig,
    /// `log.flush.interval.ms`: unsynced data (from `acks=0/1` produces) is synced at least this often.
    pub flush_interval_ms: u64,
    /// How often retention is applied.
    pub retention_check_interval_ms: u64,
    /// The most bytes one fetch answer carries (`fetch.max.bytes`).
    pub fetch_max_bytes: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            partitions: 1,
            log: LogConfig::default(),
            flush_interval_ms: 1_000,
            retention_check_interval_ms: 300_000,
            fetch_max_bytes: 1 << 20,
        }
    }
}

/// Names one requested sync, so its completion finds its round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct SyncToken(pub u64);

/// What the broker asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a message to a node (a client, in the foundation).
    Send { to: u32, message: Message },
    /// Make the file's current contents durable, then report with `handle_sync_complete(token, ..)`.
    Sync { token: SyncToken, path: String },
    /// The broker cannot go on safely; stop it. The reason is for the operator.
    Halt { reason: String },
    /// A clean shutdown finished: every log is synced and marked clean.
    ShutdownComplete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// A partition log could not be opened; the node cannot serve.
    Log { partition: u32, error: LogError },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    ShuttingDown,
    Stopped,
}

/// An `acks=all` produce waiting for its sync.
#[derive(Clone, Copy, Debug)]
struct WaitingAck {
    id: RequestId,
    base_offset: i64,
    last_offset: i64,
}

/// One group-commit round: the syncs of every unsynced file of one partition.
#[derive(Clone, Debug)]
struct SyncRound {
    outstanding: usize,
    up_to_offset: i64,
    closing: bool,
}

struct Partition {
    log: PartitionLog,
    waiting_acks: VecDeque<WaitingAck>,
    round: Option<SyncRound>,
    closed: bool,
}

pub struct Broker {
    config: BrokerConfig,
    partitions: Vec<Partition>,
    effects: VecDeque<Effect>,
    /// Which partition each outstanding sync belongs to.
    syncs: BTreeMap<SyncToken, u32>,
    next_token: u64,
    next_flush: Time,
    next_retention_check: Time,
    state: State,
}

/// The directory of one partition's log.
pub fn partition_dir(partition: u32) -> String {
    format!("events-{partition}")
}

impl Broker {
    /// Opens (and recovers) every partition log. Returns each partition's recovery report.
    pub fn start(
        env: &mut Env<'_>,
        config: BrokerConfig,
    ) -> Result<(Broker, Vec<RecoveryReport>), StartError> {
        let mut partitions = Vec::new();
        let mut reports = Vec::new();
        for partition in 0..config.partitions {
            let (log, report) = PartitionLog::open(env, &partition_dir(partition), config.log.clone())
                .map_err(|error| StartError::Log { partition, error })?;
            partitions.push(Partition { log, waiting_acks: VecDeque::new(), round: None, closed: false });
            reports.push(report);
        }
        let broker = Broker {
            next_flush: env.now.plus_millis(config.flush_interval_ms),
            next_retention_check: env.now.plus_millis(config.retention_check_interval_ms),
            config,
            partitions,
            effects: VecDeque::new(),
            syncs: BTreeMap::new(),
            next_token: 0,
            state: State::Running,
        };
        Ok((broker, reports))
    }

    // ---- getters ----

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The end of what consumers may read: the durable prefix of the partition's log.
    pub fn high_watermark(&self, partition: u32) -> Option<i64> {
        self.partitions.get(partition as usize).map(|p| p.log.durable_offset())
    }

    pub fn log(&self, partition: u32) -> Option<&PartitionLog> {
        self.partitions.get(partition as usize).map(|p| &p.log)
    }

    /// Validates every stored batch of the partition (a full scan). The simulator checks this after
    /// every recovery: recovery must leave nothing corrupt behind.
    pub fn verify_log(&mut self, env: &mut Env<'_>, partition: u32) -> Result<(), LogError> {
        match self.partitions.get_mut(partition as usize) {
            Some(state) => state.log.verify(env),
            None => Ok(()),
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// When the driver must call [`Broker::handle_timer`] next.
    pub fn next_deadline(&self) -> Option<Time> {
        match self.state {
            State::Running => Some(self.next_flush.min(self.next_retention_check)),
            State::ShuttingDown | State::Stopped => None,
        }
    }

    // ---- inputs ----

    pub fn handle_message(&mut self, env: &mut Env<'_>, message: Message) {
        let Message::Request { id, request } = message else {
            return; // A broker sends responses; it never receives one. Ignore, never panic.
        };
        if self.state != State::Running {
            // A stopping broker answers nothing new; the client times out and retries elsewhere.
            return;
        }
        let partition_count = self.partitions.len();
        let index = request.partition() as usize;
        if index >= partition_count {
            let response = match request {
                Request::Produce { acks: Acks::None, .. } => return,
                Request::Produce { .. } => Response::Produce(Err(ErrorCode::UnknownTopicOrPartition)),
                Request::Fetch { .. } => Response::Fetch(Err(ErrorCode::UnknownTopicOrPartition)),
                Request::ListOffsets { .. } => Response::ListOffsets(Err(ErrorCode::UnknownTopicOrPartition)),
            };
            self.reply(id, response);
            return;
        }
        match request {
            Request::Produce { partition, acks, batch } => self.produce(env, id, partition, acks, &batch),
            Request::Fetch { partition, offset, max_bytes } => {
                let response = self.fetch(env, partition, offset, max_bytes);
                self.reply(id, Response::Fetch(response));
            }
            Request::ListOffsets { partition, spec } => {
                let response = self.list_offsets(env, partition, spec);
                self.reply(id, Response::ListOffsets(response));
            }
        }
    }

    /// A sync the broker asked for finished. A failure halts the broker.
    pub fn handle_sync_complete(
        &mut self,
        env: &mut Env<'_>,
        token: SyncToken,
        result: Result<(), StorageError>,
    ) {
        if self.state == State::Stopped {
            return;
        }
        let Some(partition) = self.syncs.remove(&token) else {
            return; // Not ours (a previous incarnation's): ignore.
        };
        match result {
            // A file removed since (retention, truncation) needs no sync.
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(error) => {
                self.halt(format!("sync of partition {partition} failed: {error}"));
                return;
            }
        }
        let state = &mut self.partitions[partition as usize];
        let round = state.round.as_mut().expect("a sync completes only within its round");
        assert!(round.outstanding > 0);
        round.outstanding -= 1;
        if round.outstanding == 0 {
            self.finish_round(env, partition);
        }
    }

    /// Every sync of the partition's round completed: its data is durable.
    fn finish_round(&mut self, env: &mut Env<'_>, partition: u32) {
        let state = &mut self.partitions[partition as usize];
        let round = state.round.take().expect("finish_round runs on a round");
        state.log.on_sync_complete(round.up_to_offset);
        if round.closing {
            if let Err(error) = state.log.complete_close(env) {
                self.halt(format!("closing partition {partition} failed: {error:?}"));
                return;
            }
            state.closed = true;
        }
        self.answer_durable_acks(partition);
        if self.state == State::ShuttingDown {
            self.continue_shutdown(env);
        } else if !self.partitions[partition as usize].waiting_acks.is_empty() {
            self.start_sync_round(partition);
        }
    }

    /// Time reached [`Broker::next_deadline`]: flush by interval, apply retention.
    pub fn handle_timer(&mut self, env: &mut Env<'_>) {
        if self.state != State::Running {
            return;
        }
        if env.now >= self.next_flush {
            self.next_flush = env.now.plus_millis(self.config.flush_interval_ms);
            for partition in 0..self.partitions.len() as u32 {
                self.start_sync_round(partition);
            }
        }
        if env.now >= self.next_retention_check {
            self.next_retention_check = env.now.plus_millis(self.config.retention_check_interval_ms);
            for state in &mut self.partitions {
                // Retention is housekeeping: a failure loses nothing and is tried again next time.
                let _ = state.log.apply_retention(env);
            }
        }
    }

    /// Begins a clean shutdown: stop taking requests, sync everything, mark every log clean.
    pub fn begin_shutdown(&mut self, env: &mut Env<'_>) {
        if self.state != State::Running {
            return;
        }
        self.state = State::ShuttingDown;
        self.continue_shutdown(env);
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    // ---- produce ----

    fn produce(&mut self, env: &mut Env<'_>, id: RequestId, partition: u32, acks: Acks, batch: &[u8]) {
        let state = &mut self.partitions[partition as usize];
        let result = state.log.append(env, batch);
        let info = match result {
            Ok(info) => info,
            Err(error) => {
                if acks != Acks::None {
                    self.reply(id, Response::Produce(Err(produce_error_code(&error))));
                }
                return;
            }
        };
        match acks {
            Acks::None => {}
            Acks::Leader => self.reply(id, Response::Produce(Ok(info.base_offset))),
            Acks::All if env.faults.planted(Plant::AckBeforeSync) => {
                self.reply(id, Response::Produce(Ok(info.base_offset)));
            }
            Acks::All => {
                state.waiting_acks.push_back(WaitingAck {
                    id,
                    base_offset: info.base_offset,
                    last_offset: info.last_offset,
                });
                // BUGGIFY: leave the sync to the flush timer; the ack waits longer, legally.
                if !env.faults.buggify("broker.defer_sync") {
                    self.start_sync_round(partition);
                }
            }
        }
    }

    fn answer_durable_acks(&mut self, partition: u32) {
        let state = &mut self.partitions[partition as usize];
        let durable = state.log.durable_offset();
        let mut answered = Vec::new();
        while let Some(waiting) = state.waiting_acks.front() {
            if waiting.last_offset >= durable {
                break;
            }
            answered.push(*waiting);
            state.waiting_acks.pop_front();
        }
        for waiting in answered {
            self.reply(waiting.id, Response::Produce(Ok(waiting.base_offset)));
        }
    }

    /// Requests a sync of every unsynced file of the partition, unless a round is in flight.
    fn start_sync_round(&mut self, partition: u32) {
        let state = &mut self.partitions[partition as usize];
        if state.round.is_some() {
            return; // Its completion starts the next round if acks still wait.
        }
        let Some(SyncRequest { files, up_to_offset }) = state.log.sync_request() else {
            return;
        };
        assert!(!files.is_empty(), "a sync request names the files to sync");
        self.request_syncs(partition, files, up_to_offset, false);
    }

    /// Opens a round of syncs. The caller completes an empty round itself (nothing to wait for).
    fn request_syncs(&mut self, partition: u32, files: Vec<String>, up_to_offset: i64, closing: bool) {
        let state = &mut self.partitions[partition as usize];
        assert!(state.round.is_none());
        state.round = Some(SyncRound { outstanding: files.len(), up_to_offset, closing });
        for path in files {
            let token = self.next_sync_token();
            self.syncs.insert(token, partition);
            self.effects.push_back(Effect::Sync { token, path });
        }
    }

    fn next_sync_token(&mut self) -> SyncToken {
        self.next_token += 1;
        SyncToken(self.next_token)
    }

    // ---- fetch ----

    fn fetch(
        &mut self,
        env: &mut Env<'_>,
        partition: u32,
        offset: i64,
        max_bytes: u32,
    ) -> Result<FetchData, ErrorCode> {
        let log = &mut self.partitions[partition as usize].log;
        let high_watermark = log.durable_offset();
        let log_start_offset = log.log_start_offset();
        if offset < log_start_offset || offset > log.log_end_offset() {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        let empty = FetchData { batches: Vec::new(), high_watermark, log_start_offset };
        if offset >= high_watermark {
            return Ok(empty);
        }
        let max_bytes = max_bytes.min(self.config.fetch_max_bytes) as usize;
        let read = match log.read(env, offset, max_bytes) {
            Ok(read) => read,
            Err(LogError::OffsetOutOfRange { .. }) => return Err(ErrorCode::OffsetOutOfRange),
            Err(LogError::Corrupt { .. }) => {
                // Never serve corrupt bytes. A single replica has no copy to re-fetch: cut the log
                // at the damage so the partition serves again (the loss is what the damage did).
                self.repair(env, partition);
                return Err(ErrorCode::KafkaStorageError);
            }
            Err(_) => return Err(ErrorCode::KafkaStorageError),
        };
        // Serve only committed batches: cut at the high watermark.
        let mut served = 0usize;
        for batch in Batches::new(&read.bytes) {
            let Ok((header, bytes)) = batch else { break };
            if header.last_offset() >= high_watermark {
                break;
            }
            served += bytes.len();
        }
        let mut batches = read.bytes;
        batches.truncate(served);
        Ok(FetchData { batches, ..empty })
    }

    fn repair(&mut self, env: &mut Env<'_>, partition: u32) {
        let log = &mut self.partitions[partition as usize].log;
        if let Err(error) = log.truncate_at_first_corruption(env) {
            self.halt(format!("partition {partition} is corrupt and cannot be repaired: {error:?}"));
            // Halted: the log may be half cut; touch nothing more (and `reply` sends nothing).
            return;
        }
        // Acks waiting for offsets that no longer exist would never be answered as durable.
        // They wait in offset order, so the lost ones are a suffix.
        let state = &mut self.partitions[partition as usize];
        let end = state.log.log_end_offset();
        let kept = state.waiting_acks.partition_point(|waiting| waiting.last_offset < end);
        for waiting in state.waiting_acks.split_off(kept) {
            self.reply(waiting.id, Response::Produce(Err(ErrorCode::KafkaStorageError)));
        }
    }

    fn list_offsets(
        &mut self,
        env: &mut Env<'_>,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64), ErrorCode> {
        let log = &mut self.partitions[partition as usize].log;
        let high_watermark = log.durable_offset();
        match spec {
            OffsetSpec::Earliest => Ok((log.log_start_offset(), -1)),
            OffsetSpec::Latest => Ok((high_watermark, -1)),
            OffsetSpec::Timestamp(timestamp) => match log.offset_for_timestamp(env, timestamp) {
                Ok(Some((offset, found))) if offset < high_watermark => Ok((offset, found)),
                Ok(_) => Ok((-1, -1)),
                Err(_) => Err(ErrorCode::KafkaStorageError),
            },
        }
    }

    // ---- shutdown and halting ----

    fn continue_shutdown(&mut self, env: &mut Env<'_>) {
        for partition in 0..self.partitions.len() as u32 {
            let state = &mut self.partitions[partition as usize];
            if state.closed || state.round.is_some() {
                continue;
            }
            match state.log.begin_close(env) {
                Ok(SyncRequest { files, up_to_offset }) => {
                    let nothing_to_sync = files.is_empty();
                    self.request_syncs(partition, files, up_to_offset, true);
                    if nothing_to_sync {
                        self.finish_round(env, partition);
                        if self.state != State::ShuttingDown {
                            return; // finish_round halted or already completed the shutdown.
                        }
                    }
                }
                Err(error) => {
                    self.halt(format!("closing partition {partition} failed: {error:?}"));
                    return;
                }
            }
        }
        if self.partitions.iter().all(|p| p.closed) {
            self.state = State::Stopped;
            self.effects.push_back(Effect::ShutdownComplete);
        }
    }

    fn halt(&mut self, reason: String) {
        self.state = State::Stopped;
        self.effects.push_back(Effect::Halt { reason });
    }

    fn reply(&mut self, id: RequestId, response: Response) {
        if self.state == State::Stopped {
            // Nothing may follow `Halt` (or `ShutdownComplete`): an input that halts the broker
            // part-way (a failed repair during a fetch) must not answer its request after the halt.
            return;
        }
        self.effects.push_back(Effect::Send { to: id.client, message: Message::Response { id, response } });
    }
}

fn produce_error_code(error: &LogError) -> ErrorCode {
    match error {
        LogError::InvalidBatch(_) => ErrorCode::CorruptMessage,
        LogError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ErrorCode::InvalidRequest,
        LogError::Storage(_)
        | LogError::Corrupt { .. }
        | LogError::EpochsGoBackwards { .. }
        | LogError::Unrecoverable(_) => ErrorCode::KafkaStorageError,
    }
}
