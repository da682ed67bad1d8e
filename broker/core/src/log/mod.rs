//! The partition log: Kafka's segmented, indexed, crash-recoverable append-only log.
//!
//! (API skeleton: the implementation is being written; see the issue.)

use crate::env::{Storage, StorageError};
use crate::record::BatchError;

/// Configuration of one partition's log, with Kafka's names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogConfig {
    /// `segment.bytes`: roll when an append would make the active segment larger than this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this (wall clock).
    pub segment_ms: i64,
    /// `index.interval.bytes`: one offset-index and time-index entry per this many log bytes.
    pub index_interval_bytes: u64,
    /// `retention.bytes`: delete whole old segments while the log is larger; `None` = unlimited.
    pub retention_bytes: Option<u64>,
    /// `retention.ms`: delete whole segments whose newest timestamp is older; `None` = unlimited.
    pub retention_ms: Option<i64>,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_batch_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            max_batch_bytes: 1 << 20,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    Storage(StorageError),
    /// The batch handed to append is not a valid v2 batch.
    InvalidBatch(BatchError),
    /// The batch is larger than `max_batch_bytes`.
    BatchTooLarge {
        size: u64,
        max: u64,
    },
    /// A read or truncate outside [log_start_offset, log_end_offset].
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// Stored bytes failed validation on read: never served.
    Corrupt {
        segment_base_offset: i64,
        position: u64,
        error: BatchError,
    },
    /// The files under the log's directory cannot be made into a log at all.
    Unrecoverable(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub rolled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadInfo {
    pub bytes: Vec<u8>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_segments: Vec<i64>,
    pub log_start_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub files: Vec<String>,
    pub up_to_offset: i64,
}

pub struct PartitionLog;

impl PartitionLog {
    pub fn open(
        _storage: &mut dyn Storage,
        _dir: &str,
        _config: LogConfig,
        _wall_clock_ms: i64,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        todo!()
    }
    pub fn append(
        &mut self,
        _storage: &mut dyn Storage,
        _batch: &[u8],
        _wall_clock_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        todo!()
    }
    pub fn read(
        &mut self,
        _storage: &mut dyn Storage,
        _offset: i64,
        _max_bytes: usize,
    ) -> Result<ReadInfo, LogError> {
        todo!()
    }
    pub fn offset_for_timestamp(
        &mut self,
        _storage: &mut dyn Storage,
        _timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        todo!()
    }
    pub fn truncate_to(&mut self, _storage: &mut dyn Storage, _offset: i64) -> Result<(), LogError> {
        todo!()
    }
    pub fn roll(&mut self, _storage: &mut dyn Storage, _wall_clock_ms: i64) -> Result<(), LogError> {
        todo!()
    }
    pub fn apply_retention(
        &mut self,
        _storage: &mut dyn Storage,
        _wall_clock_ms: i64,
    ) -> Result<RetentionReport, LogError> {
        todo!()
    }
    pub fn sync_request(&mut self, _include_indexes: bool) -> Option<SyncRequest> {
        todo!()
    }
    pub fn on_sync_complete(&mut self, _up_to_offset: i64) {
        todo!()
    }
    pub fn close(&mut self, _storage: &mut dyn Storage) -> Result<(), LogError> {
        todo!()
    }
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }
    pub fn durable_offset(&self) -> i64 {
        todo!()
    }
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }
    pub fn segment_count(&self) -> usize {
        todo!()
    }
}
