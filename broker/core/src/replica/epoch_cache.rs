//! The leader-epoch cache of one partition replica: for every leader epoch whose leader appended
//! to this log, the offset of its first batch (Kafka's `leader-epoch-checkpoint`, KIP-101).
//!
//! It answers "where does epoch E end in my log?" (OffsetsForLeaderEpoch), which is how a replica
//! that becomes a follower, or restarts, finds where its log diverges from the leader's — never
//! by cutting to its high watermark.
//!
//! Persistence: the cache is written to `{dir}/leader-epoch-checkpoint` (with a CRC) through a
//! temporary file and a rename on every change. The log's own batches carry their leader epoch,
//! so the log is the truth: on open every checkpoint entry is verified against the batch at its
//! start offset, entries at or past the log end are dropped, and the epochs of batches after the
//! last entry are added by scanning their headers. A missing, torn or disagreeing checkpoint costs
//! a scan of the log's batch headers, never a wrong answer.

use crate::env::Env;
use crate::log::{LogError, PartitionLog};

/// The checkpoint's file name inside the partition's directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// One entry: `epoch` began at `start_offset` in this log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries strictly increasing in both epoch and start offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    dir: String,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint of the log in `dir` and reconciles it with the log (see module docs).
    pub fn open(env: &mut Env<'_>, dir: &str, log: &PartitionLog) -> Result<LeaderEpochCache, LogError> {
        let _ = (env, dir, log);
        todo!("epoch cache: open")
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The epoch of the last entry, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// A batch of `epoch` was appended at `start_offset`: records the epoch if it is new (larger
    /// than the latest), and persists the cache. An epoch smaller than the latest is a bug of the
    /// caller (the log only grows in epoch) and is refused.
    pub fn assign(&mut self, env: &mut Env<'_>, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        let _ = (env, epoch, start_offset);
        todo!("epoch cache: assign")
    }

    /// The log was cut at `end_offset`: drops every entry starting at or after it.
    pub fn truncate_from_end(&mut self, env: &mut Env<'_>, end_offset: i64) -> Result<(), LogError> {
        let _ = (env, end_offset);
        todo!("epoch cache: truncate_from_end")
    }

    /// The log now starts at `start_offset` (retention, or a reset): drops entries wholly below
    /// it, moving the start of the one containing it up to `start_offset`.
    pub fn truncate_from_start(&mut self, env: &mut Env<'_>, start_offset: i64) -> Result<(), LogError> {
        let _ = (env, start_offset);
        todo!("epoch cache: truncate_from_start")
    }

    /// Kafka's `endOffsetFor`: for `requested` epoch, `(largest epoch <= requested, the start
    /// offset of the next larger epoch or log_end_offset when it is the latest)`. `None` when
    /// `requested` is larger than every epoch... (see Kafka's LeaderEpochFileCache semantics:
    /// requested above the latest → `(-1, -1)`; below the first entry → `(requested, first start)`).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let _ = (requested, log_end_offset);
        todo!("epoch cache: end_offset_for")
    }

    /// The epoch of the batch holding `offset`, if the cache covers it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries.iter().rev().find(|entry| entry.start_offset <= offset).map(|entry| entry.epoch)
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }
}
