//! The partition log: Kafka's segmented, indexed, crash-recoverable append-only log.
//!
//! A log is a directory of segments (`{base_offset:020}.log`, `.index`, `.timeindex`; see
//! [`segment`]). Batches are appended to the last, *active*, segment with the next offsets; the log
//! rolls to a new segment when an append would make the active one larger than `segment.bytes`,
//! when its first batch is older than `segment.ms` by the wall clock (Kafka's rule: wall clock now
//! minus the first batch's maximum timestamp), or when the `log.roll_early` BUGGIFY site fires; it
//! never rolls an empty segment. Retention deletes whole segments from the oldest, never the active
//! one, and never one holding offsets at or above the durable offset (Kafka's high-watermark bound),
//! so `log_start_offset` is always the first segment's base offset and needs no file of its own.
//!
//! Contract with the driver:
//! - Every method that touches storage takes the step's [`Env`]; the log reaches storage, the wall
//!   clock and fault sites only through it, and never syncs by itself.
//! - Durability is an effect. [`PartitionLog::sync_request`] names the segment files written (or
//!   rolled, or truncated) since the previous request and the log end offset at that moment; the
//!   driver syncs each file as it is *when the request is taken* and reports the whole request done
//!   with [`PartitionLog::on_sync_complete`]; only then does [`PartitionLog::durable_offset`]
//!   advance. Requests MUST be reported complete in the order they were taken (a driver whose later
//!   request finishes first holds it back): a request is named by its `up_to_offset`, which a
//!   truncation can make equal for two requests in flight. Index files are not synced by these
//!   requests: they are trusted only after a clean close and rebuilt otherwise.
//! - Clean shutdown is two steps: [`PartitionLog::begin_close`] writes the index files whole and
//!   returns every file that needs a sync (indexes included); after the driver reports that request
//!   complete, [`PartitionLog::complete_close`] writes the clean-shutdown marker. After
//!   `begin_close` the log MUST NOT be changed; after `complete_close` it MUST NOT be used but read.
//! - [`PartitionLog::open`] recovers whatever is on disk (see [`recovery`]). Everything recovery read
//!   back counts as durable: after a power loss it is what the media held. (A process crash
//!   without a power loss could leave unsynced pages readable; recovery queues every segment for
//!   the next sync request so that window closes with the first sync.)
//! - `durable_offset` only grows, except where the log itself is cut: [`PartitionLog::truncate_to`]
//!   and [`PartitionLog::truncate_at_first_corruption`] lower it to the new end, and a sync
//!   requested before a cut counts only up to the cut.
//!
//! What it must never do: serve a batch that fails its CRC, panic on bytes read from storage, claim
//! in memory bytes that a failed write did not store, or let an index decide what a read returns
//! without checking the offsets it finds (an index is a hint; the batches are the truth).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::env::{Env, Plant, Storage, StorageError};
use crate::record::{
    batch_crc, decode_records, set_base_offset, set_partition_leader_epoch, validate_batch, BatchError,
    BatchHeader,
};

mod recovery;
mod scan;
mod segment;

use recovery::{create_segment_files, delete_segment_files, marker_path, write_index_files};
use scan::{locate, not_contiguous, resume_segment, scan_segment, Checks, ScanError, SegmentReader};
use segment::{
    index_path, log_path, time_index_path, Segment, NO_TIMESTAMP, OFFSET_INDEX_ENTRY_BYTES,
    TIME_INDEX_ENTRY_BYTES,
};

/// How many sync requests may be outstanding at once: a driver that never reports completions is
/// a bug, caught here rather than as unbounded memory.
pub const PENDING_SYNCS_MAX: usize = 4096;

/// Index entries are written to the index files in runs of this many (1 KiB of offset index), not
/// one small write per indexed batch; a roll writes the rest of the old segment's, a clean close
/// every segment's. Unwritten entries cost nothing to lose: the index files are trusted only after
/// a clean close and rebuilt by scanning otherwise.
const INDEX_WRITE_ENTRIES: usize = 128;

/// How many bytes [`PartitionLog::batch_headers`] reads at a time: a bound on the memory a header
/// scan holds besides the headers themselves (a larger batch is read alone, as reads serve one).
const BATCH_HEADERS_READ_BYTES: usize = 64 * 1024;

/// What an append assigns to a batch before storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Assign {
    /// A client's batch: the log assigns its offsets; its partition leader epoch stays as sent.
    Offsets,
    /// The leader's: its offsets and its partition leader epoch.
    OffsetsAndLeaderEpoch(i32),
    /// A follower's: the leader assigned everything; its base offset must be the log end.
    Nothing,
}

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

impl LogConfig {
    /// Checks the bounds the on-disk format imposes: positions in a segment are u32, so a segment
    /// (at most `segment_bytes` plus one batch) and a batch must each stay below 2 GiB.
    pub fn validate(&self) -> Result<(), String> {
        let limit_bytes = i32::MAX as u64;
        if self.segment_bytes == 0 || self.segment_bytes > limit_bytes {
            return Err(format!("segment_bytes {} must be in 1..={limit_bytes}", self.segment_bytes));
        }
        if self.max_batch_bytes == 0 || self.max_batch_bytes > limit_bytes {
            return Err(format!("max_batch_bytes {} must be in 1..={limit_bytes}", self.max_batch_bytes));
        }
        if self.segment_ms < 0 {
            return Err(format!("segment_ms {} must not be negative", self.segment_ms));
        }
        if self.retention_ms.is_some_and(|retention_ms| retention_ms < 0) {
            return Err("retention_ms must not be negative".to_string());
        }
        Ok(())
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
    /// A read or truncate outside [log_start_offset, log_end_offset]; for a truncate, also an
    /// offset inside a batch (a log can only be cut between batches).
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
    /// The log's batches carry leader epochs that go backwards at `offset` (a batch's epoch
    /// field is outside its CRC, so a flipped bit there is seen only this way). Everything from
    /// `cut` on (the start of the first epoch larger than the one at `offset`) is suspect: the
    /// replica truncates there and fetches it again.
    EpochsGoBackwards {
        offset: i64,
        cut: i64,
        detail: String,
    },
    /// The files under the log's directory cannot be made into a log at all (or, from
    /// [`PartitionLog::verify`], disagree with what the log holds in memory).
    Unrecoverable(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// The append rolled a new segment first.
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
    /// The clean-shutdown marker was found and the files agreed with it: nothing was scanned in full.
    pub clean_shutdown: bool,
    pub segments: usize,
    /// Everything recovery did, as readable sentences.
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_segments: Vec<i64>,
    pub log_start_offset: i64,
}

/// Files to sync; once every one is synced, every offset below `up_to_offset` is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub files: Vec<String>,
    pub up_to_offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Open,
    /// `begin_close` ran: waiting for its syncs.
    Closing,
    /// The clean-shutdown marker is written.
    Closed,
}

/// A sync request handed out and not yet reported complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingSync {
    /// The `up_to_offset` the request carried: how the driver names it on completion.
    requested_up_to_offset: i64,
    /// What completing it makes durable: lowered by a cut that happened after the request.
    durable_up_to_offset: i64,
}

/// One partition's log. See the module documentation for the contract.
#[derive(Debug)]
pub struct PartitionLog {
    dir: String,
    config: LogConfig,
    /// Never empty: the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    size_bytes: u64,
    durable_offset: i64,
    /// Segments whose `.log` file was written since the last sync request.
    unsynced_segments: BTreeSet<i64>,
    /// Segments whose index files were written since open or the last close request.
    unsynced_indexes: BTreeSet<i64>,
    pending_syncs: VecDeque<PendingSync>,
    lifecycle: Lifecycle,
    /// Where append puts a batch with its offset assigned, reused from append to append.
    batch_buffer: BatchBuffer,
}

/// A reusable byte buffer whose `Debug` shows its size, not its bytes.
#[derive(Default)]
struct BatchBuffer(Vec<u8>);

impl std::fmt::Debug for BatchBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchBuffer({} bytes)", self.0.len())
    }
}

impl PartitionLog {
    /// Opens the log in `dir` (created if absent), recovering what a crash or shutdown left.
    pub fn open(
        env: &mut Env<'_>,
        dir: &str,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        if let Err(reason) = config.validate() {
            return Err(LogError::Unrecoverable(format!("invalid log configuration: {reason}")));
        }
        let recovered = recovery::recover(env, dir, &config)?;
        assert!(!recovered.segments.is_empty(), "recovery leaves at least one segment");
        let all: BTreeSet<i64> = recovered.segments.keys().copied().collect();
        // After a crash, what recovery read may sit only in a page cache, and what it cut is cut
        // only in memory until synced: every such segment is due for the next sync request.
        let to_sync: BTreeSet<i64> = recovered
            .segments
            .iter()
            .filter(|(base_offset, segment)| !segment.is_empty() || recovered.truncated.contains(base_offset))
            .map(|(base_offset, _)| *base_offset)
            .collect();
        let stale: BTreeSet<i64> = recovered
            .segments
            .iter()
            .filter(|(_, segment)| segment.index_files_stale)
            .map(|(base_offset, _)| *base_offset)
            .collect();
        let clean_shutdown = recovered.clean_shutdown;
        let size_bytes = recovered.segments.values().map(|segment| segment.size_bytes).sum();
        let mut log = PartitionLog {
            dir: dir.to_string(),
            config,
            segments: recovered.segments,
            size_bytes,
            durable_offset: 0,
            unsynced_segments: if clean_shutdown { BTreeSet::new() } else { to_sync },
            unsynced_indexes: if clean_shutdown { stale } else { all },
            pending_syncs: VecDeque::new(),
            lifecycle: Lifecycle::Open,
            batch_buffer: BatchBuffer::default(),
        };
        log.durable_offset = log.log_end_offset();
        log.check_invariants();
        let report =
            RecoveryReport { clean_shutdown, segments: log.segments.len(), actions: recovered.actions };
        Ok((log, report))
    }

    /// Appends one v2 batch as a client sent it: validates it whole (magic, CRC, records), assigns
    /// it the next offsets and writes it to the active segment, rolling first if due. The partition
    /// leader epoch stays as sent. O(1).
    pub fn append(&mut self, env: &mut Env<'_>, batch: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_batch(env, batch, Assign::Offsets)
    }

    /// Appends one batch as the partition leader: like [`PartitionLog::append`], and stamps the
    /// batch's partition leader epoch (outside the CRC) with `leader_epoch`, which MUST NOT be
    /// negative (a negative epoch is Kafka's "no leader stamped this").
    pub fn append_as_leader(
        &mut self,
        env: &mut Env<'_>,
        batch: &[u8],
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        assert!(leader_epoch >= 0, "a leader epoch is never negative, got {leader_epoch}");
        self.append_batch(env, batch, Assign::OffsetsAndLeaderEpoch(leader_epoch))
    }

    /// Appends one batch a follower fetched from its leader, as it is: its offsets and leader
    /// epoch were assigned by the leader, and not one byte changes. Validated whole (magic, CRC,
    /// records, size); its base offset must be this log's end ([`LogError::OffsetOutOfRange`]
    /// otherwise: a gap or an overlap). O(1).
    pub fn append_replicated(&mut self, env: &mut Env<'_>, batch: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_batch(env, batch, Assign::Nothing)
    }

    /// The headers of the stored batches from the one holding `from` up to the log end, in order
    /// (for rebuilding the leader-epoch cache). Reads through [`PartitionLog::read`], a bounded
    /// number of bytes at a time, so every batch is CRC-checked as a read checks it; a corrupt
    /// batch is [`LogError::Corrupt`], `from` outside the log [`LogError::OffsetOutOfRange`]. At
    /// `log_end_offset` the list is empty. Holds only the headers, never the whole log, in memory.
    pub fn batch_headers(&self, env: &mut Env<'_>, from: i64) -> Result<Vec<BatchHeader>, LogError> {
        self.check_range(from)?;
        let end = self.log_end_offset();
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut offset = from;
        while offset < end {
            // `read` serves whole batches that passed their CRC, at least one below the log end,
            // or an error (corruption where this read starts is `Corrupt` with its position).
            let read = self.read(env, offset, BATCH_HEADERS_READ_BYTES)?;
            let before = headers.len();
            let mut position = 0;
            while position < read.bytes.len() {
                let header = BatchHeader::parse(&read.bytes[position..])
                    .map_err(|error| disagree(format!("a read at {offset} served a bad batch: {error}")))?;
                let follows = match headers.last() {
                    Some(last) => header.base_offset == last.last_offset() + 1,
                    None => header.base_offset <= from && from <= header.last_offset(),
                };
                if !follows || header.last_offset_delta < 0 {
                    return Err(disagree(format!(
                        "a read at {offset} served a batch at {} out of order",
                        header.base_offset
                    )));
                }
                position += header.size_bytes();
                headers.push(header);
            }
            // Anything else would loop forever or skip offsets.
            if headers.len() == before || position != read.bytes.len() {
                return Err(disagree(format!("a read at {offset} below the log end served no whole batch")));
            }
            offset = headers.last().map_or(end, |last| last.last_offset() + 1);
        }
        if offset != end {
            return Err(disagree(format!("batches end at offset {offset}, the log end is {end}")));
        }
        Ok(headers)
    }

    /// Whole batches from the one holding `offset`: as many as fit in `max_bytes`, but always at
    /// least one (Kafka serves a first batch larger than the limit). Every batch served passed its
    /// CRC; a corrupt first batch is [`LogError::Corrupt`], a corrupt later one ends the read (and so
    /// does a storage error after at least one batch: the next read resumes there).
    /// At `log_end_offset` the bytes are empty. O(log segments + log index entries) to find the
    /// start, then at most one index interval scanned.
    pub fn read(&self, env: &mut Env<'_>, offset: i64, max_bytes: usize) -> Result<ReadInfo, LogError> {
        self.check_range(offset)?;
        let mut info = ReadInfo {
            bytes: Vec::new(),
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        };
        if offset == self.log_end_offset() {
            return Ok(info);
        }
        let one_entry_too_far = env.faults.planted(Plant::IndexLookupOffByOne);
        let first_base = self.segment_base_for(offset);
        let mut budget_bytes = max_bytes as u64;
        for (&base_offset, segment) in self.segments.range(first_base..) {
            if segment.is_empty() {
                break;
            }
            let path = log_path(&self.dir, base_offset);
            let (mut position, mut expected_offset, mut reader) = if base_offset == first_base {
                let located = locate(env.storage, segment, &path, offset, one_entry_too_far);
                let (position, header, reader) = located.map_err(|error| read_error(base_offset, error))?;
                (position, header.base_offset, reader)
            } else {
                (0, base_offset, SegmentReader::new(&path, segment.size_bytes))
            };
            if let Err(error) = reader.prefetch(env.storage, position, budget_bytes.max(1)) {
                // A read error after some batches ends the read with them: the next fetch resumes.
                return if info.bytes.is_empty() { Err(LogError::Storage(error)) } else { Ok(info) };
            }
            while position < segment.size_bytes {
                let served_any = !info.bytes.is_empty();
                // Corruption or a read error after some batches ends the read with the good ones.
                let stop = |error: ScanError| match error {
                    ScanError::Batch { .. } | ScanError::Storage(_) if served_any => Ok(()),
                    error => Err(read_error(base_offset, error)),
                };
                let header = match reader.header_at(env.storage, position) {
                    Ok(header) => header,
                    Err(error) => return stop(error).map(|()| info),
                };
                let size_bytes = header.size_bytes() as u64;
                if served_any && size_bytes > budget_bytes {
                    return Ok(info);
                }
                let bytes = match reader.batch_at(env.storage, position, Checks::CRC) {
                    Ok((_, bytes)) if header.base_offset == expected_offset => bytes,
                    Ok(_) => {
                        let error = ScanError::Batch { position, error: not_contiguous() };
                        return stop(error).map(|()| info);
                    }
                    Err(error) => return stop(error).map(|()| info),
                };
                info.bytes.extend_from_slice(bytes);
                budget_bytes = budget_bytes.saturating_sub(size_bytes);
                expected_offset = header.last_offset() + 1;
                position += size_bytes;
                if budget_bytes == 0 {
                    return Ok(info);
                }
            }
        }
        Ok(info)
    }

    /// Kafka's ListOffsets by timestamp: in the first batch whose maximum timestamp is at least
    /// `timestamp`, the first record whose timestamp is; its offset and timestamp. `None` if no
    /// record is that late. Uses the time index to skip to the right place.
    pub fn offset_for_timestamp(
        &self,
        env: &mut Env<'_>,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let one_entry_too_far = env.faults.planted(Plant::IndexLookupOffByOne);
        for (&base_offset, segment) in &self.segments {
            if segment.is_empty() || segment.max_timestamp < timestamp {
                continue;
            }
            let path = log_path(&self.dir, base_offset);
            let start_offset = segment.time_lookup(timestamp);
            let located = locate(env.storage, segment, &path, start_offset, one_entry_too_far);
            let (mut position, first, mut reader) =
                located.map_err(|error| read_error(base_offset, error))?;
            let mut expected_offset = first.base_offset;
            while position < segment.size_bytes {
                let (header, bytes) = reader
                    .batch_at(env.storage, position, Checks::CRC)
                    .map_err(|error| read_error(base_offset, error))?;
                if header.base_offset != expected_offset {
                    return Err(read_error(
                        base_offset,
                        ScanError::Batch { position, error: not_contiguous() },
                    ));
                }
                if header.max_timestamp >= timestamp {
                    let (_, records) = decode_records(bytes)
                        .map_err(|error| read_error(base_offset, ScanError::Batch { position, error }))?;
                    for record in records {
                        let record_timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
                        if record_timestamp >= timestamp {
                            return Ok(Some((
                                header.base_offset.saturating_add(i64::from(record.offset_delta)),
                                record_timestamp,
                            )));
                        }
                    }
                }
                expected_offset = header.last_offset() + 1;
                position += header.size_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// Drops every batch at and above `offset`, which MUST be a batch boundary or the log end.
    /// Whole segments above it are deleted (durably); the segment holding it is truncated and its
    /// indexes trimmed; it becomes the active segment (empty if `offset` is its base). Lowers the
    /// durable offset to `offset`. The truncation itself is durable only after the next sync.
    pub fn truncate_to(&mut self, env: &mut Env<'_>, offset: i64) -> Result<(), LogError> {
        self.assert_open();
        self.check_range(offset)?;
        if offset == self.log_end_offset() {
            return Ok(());
        }
        let base_offset = self.segment_base_for(offset);
        let segment = &self.segments[&base_offset];
        let mut kept = if offset == base_offset {
            Segment::new(base_offset)
        } else {
            let path = log_path(&self.dir, base_offset);
            let located = locate(env.storage, segment, &path, offset, false);
            let (position, header, _) = located.map_err(|error| read_error(base_offset, error))?;
            if header.base_offset != offset {
                return Err(self.out_of_range(offset));
            }
            // The indexes below the cut stay; the batches from the last of them to the cut are read.
            let offset_index: Vec<_> = segment
                .offset_index
                .iter()
                .copied()
                .filter(|entry| u64::from(entry.position) < position)
                .collect();
            let last_indexed = offset_index.last().map(|entry| entry.relative_offset);
            let time_index = segment
                .time_index
                .iter()
                .copied()
                .filter(|entry| last_indexed.is_some_and(|last| entry.relative_offset <= last))
                .collect();
            let start = Segment::from_indexes(base_offset, offset_index, time_index);
            let interval = self.config.index_interval_bytes;
            match resume_segment(env.storage, &path, start, position, Checks::CRC, interval) {
                Ok(Ok(kept)) => kept,
                Ok(Err((position, error))) => {
                    return Err(LogError::Corrupt { segment_base_offset: base_offset, position, error })
                }
                Err(error) => return Err(LogError::Storage(error)),
            }
        };
        assert_eq!(kept.next_offset, offset);
        kept.index_files_stale = segment.index_files_stale;
        self.cut(env, kept)?;
        assert_eq!(self.log_end_offset(), offset);
        Ok(())
    }

    /// Scans the whole log, CRC and offsets, and cuts it at the first batch that fails (as
    /// [`PartitionLog::truncate_to`] would). Returns the new log end offset if it cut anything.
    /// What a single replica does when a read meets corruption: it has no copy to fetch from.
    pub fn truncate_at_first_corruption(&mut self, env: &mut Env<'_>) -> Result<Option<i64>, LogError> {
        self.assert_open();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base_offset in bases {
            let segment = &self.segments[&base_offset];
            let path = log_path(&self.dir, base_offset);
            let interval = self.config.index_interval_bytes;
            let scan =
                scan_segment(env.storage, &path, base_offset, segment.size_bytes, Checks::CRC, interval)
                    .map_err(LogError::Storage)?;
            if scan.stopped.is_none() && scan.segment.next_offset == segment.next_offset {
                continue;
            }
            let mut kept = scan.segment;
            kept.index_files_stale = segment.index_files_stale;
            self.cut(env, kept)?;
            return Ok(Some(self.log_end_offset()));
        }
        Ok(None)
    }

    /// Rolls a new active segment now, unless the active one is empty. Returns whether it rolled.
    pub fn roll(&mut self, env: &mut Env<'_>) -> Result<bool, LogError> {
        self.assert_open();
        if self.active().is_empty() {
            return Ok(false);
        }
        self.roll_segment(env)?;
        Ok(true)
    }

    /// Kafka's retention, oldest segment first, never the active one nor one reaching the durable
    /// offset: first by time (a segment whose newest timestamp is more than `retention_ms` before
    /// the wall clock), then by size (while the log without the segment is still at least
    /// `retention_bytes`). Deletion is durable on return and advances `log_start_offset`.
    pub fn apply_retention(&mut self, env: &mut Env<'_>) -> Result<RetentionReport, LogError> {
        self.assert_open();
        let mut deleted_segments = Vec::new();
        if let Some(retention_ms) = self.config.retention_ms {
            while let Some(oldest) = self.deletable_oldest() {
                if env.wall_clock_ms.saturating_sub(oldest.max_timestamp) <= retention_ms {
                    break;
                }
                deleted_segments.push(self.delete_oldest(env)?);
            }
        }
        if let Some(retention_bytes) = self.config.retention_bytes {
            while let Some(oldest) = self.deletable_oldest() {
                if self.size_bytes - oldest.size_bytes < retention_bytes {
                    break;
                }
                deleted_segments.push(self.delete_oldest(env)?);
            }
        }
        self.check_invariants();
        Ok(RetentionReport { deleted_segments, log_start_offset: self.log_start_offset() })
    }

    /// Deletes whole segments that lie wholly below `offset` (every offset they hold is smaller),
    /// oldest first: what a snapshot covering everything below `offset` makes redundant. Never the
    /// active segment, and never one reaching past the durable offset (as retention). Deletion is
    /// durable on return and advances `log_start_offset`. Returns the deleted segments' base offsets.
    pub fn delete_segments_below(&mut self, env: &mut Env<'_>, offset: i64) -> Result<Vec<i64>, LogError> {
        self.assert_open();
        let mut deleted_segments = Vec::new();
        while let Some(oldest) = self.deletable_oldest() {
            if oldest.next_offset > offset {
                break;
            }
            deleted_segments.push(self.delete_oldest(env)?);
        }
        self.check_invariants();
        Ok(deleted_segments)
    }

    /// Replaces the whole log with an empty one whose first offset is `offset` (which may lie
    /// before, inside or after the current log): what installing a snapshot from elsewhere does.
    /// Every segment is deleted, newest first, so a crash part-way leaves a prefix of the old log;
    /// only then is the new empty segment created (so a crash before that leaves an empty
    /// directory, which opens as an empty log at offset 0). Everything is durable on return: the
    /// new log is durable up to `offset`, and a sync requested earlier completes as a no-op.
    /// On an error the log MUST NOT be used again (some of its segments may be gone).
    pub fn reset_to(&mut self, env: &mut Env<'_>, offset: i64) -> Result<(), LogError> {
        self.assert_open();
        assert!(offset >= 0, "offsets are never negative");
        let newest_first: Vec<i64> = self.segments.keys().rev().copied().collect();
        for base_offset in newest_first {
            delete_segment_files(env.storage, &self.dir, base_offset)?;
        }
        let indexes_created =
            create_segment_files(env.storage, &self.dir, offset).map_err(LogError::Storage)?;
        let mut segment = Segment::new(offset);
        segment.index_files_stale = !indexes_created;
        self.segments = BTreeMap::from([(offset, segment)]);
        self.size_bytes = 0;
        self.unsynced_segments.clear();
        self.unsynced_indexes.clear();
        self.durable_offset = offset;
        for pending in &mut self.pending_syncs {
            pending.durable_up_to_offset = pending.durable_up_to_offset.min(offset);
        }
        self.check_invariants();
        Ok(())
    }

    /// The segment files written since the previous request (rolled and truncated ones included),
    /// with the log end offset now; `None` if nothing is unsynced. The driver MUST sync every file
    /// as it is now and then call [`PartitionLog::on_sync_complete`] with `up_to_offset`.
    pub fn sync_request(&mut self) -> Option<SyncRequest> {
        self.assert_open();
        if self.unsynced_segments.is_empty() {
            return None;
        }
        let files = std::mem::take(&mut self.unsynced_segments)
            .into_iter()
            .map(|base_offset| log_path(&self.dir, base_offset))
            .collect();
        Some(self.request(files))
    }

    /// Every file of the oldest outstanding request — the one that carried `up_to_offset` — is
    /// synced: the durable offset advances to what that request covers (less any cut since).
    /// Reporting a request that was not taken, or out of order, is a driver bug and panics.
    pub fn on_sync_complete(&mut self, up_to_offset: i64) {
        let Some(pending) = self.pending_syncs.pop_front() else {
            panic!("sync completion up to {up_to_offset} matches no outstanding sync request");
        };
        assert_eq!(
            pending.requested_up_to_offset, up_to_offset,
            "sync completions are reported in the order the requests were taken"
        );
        assert!(pending.durable_up_to_offset <= self.log_end_offset());
        self.durable_offset = self.durable_offset.max(pending.durable_up_to_offset);
        self.check_invariants();
    }

    /// Begins a clean close: writes every index file that is not known to match memory, and
    /// returns every file that needs a sync (segments and indexes). The driver syncs them, reports
    /// the request with [`PartitionLog::on_sync_complete`], then calls
    /// [`PartitionLog::complete_close`]. The log MUST NOT be changed from here on.
    pub fn begin_close(&mut self, env: &mut Env<'_>) -> Result<SyncRequest, LogError> {
        self.assert_open();
        for (&base_offset, segment) in self.segments.iter_mut() {
            if segment.index_files_stale {
                write_index_files(env.storage, &self.dir, segment).map_err(LogError::Storage)?;
                self.unsynced_indexes.insert(base_offset);
            } else if write_index_entries(env.storage, &self.dir, segment) {
                // A failed write of the last entries makes the files stale: rewrite them whole.
                if segment.index_files_stale {
                    write_index_files(env.storage, &self.dir, segment).map_err(LogError::Storage)?;
                }
                self.unsynced_indexes.insert(base_offset);
            }
        }
        let mut files: Vec<String> = std::mem::take(&mut self.unsynced_segments)
            .into_iter()
            .map(|base_offset| log_path(&self.dir, base_offset))
            .collect();
        for base_offset in std::mem::take(&mut self.unsynced_indexes) {
            files.push(index_path(&self.dir, base_offset));
            files.push(time_index_path(&self.dir, base_offset));
        }
        let request = self.request(files);
        self.lifecycle = Lifecycle::Closing;
        Ok(request)
    }

    /// Ends a clean close once its syncs completed: writes the clean-shutdown marker (durable on
    /// return), so the next open trusts the indexes instead of scanning every batch.
    pub fn complete_close(&mut self, env: &mut Env<'_>) -> Result<(), LogError> {
        assert_eq!(self.lifecycle, Lifecycle::Closing, "complete_close follows begin_close");
        assert!(self.pending_syncs.is_empty(), "every sync request completed before the close");
        assert_eq!(self.durable_offset, self.log_end_offset(), "a closed log is durable to its end");
        match env.storage.create(&marker_path(&self.dir)) {
            Ok(()) | Err(StorageError::AlreadyExists) => {}
            Err(error) => return Err(LogError::Storage(error)),
        }
        self.lifecycle = Lifecycle::Closed;
        Ok(())
    }

    /// Scans every batch of every segment (lengths, magic, CRC, records, contiguous offsets) and
    /// checks that the files, the indexes and what the log holds in memory all agree. A state
    /// invariant for the simulator after recovery: `Corrupt` for a bad batch, `Unrecoverable` for a
    /// disagreement.
    pub fn verify(&self, env: &mut Env<'_>) -> Result<(), LogError> {
        let mut expected_base = None;
        let mut total_bytes = 0;
        for (&base_offset, segment) in &self.segments {
            if expected_base.is_some_and(|expected| expected != base_offset) {
                return Err(disagree(format!("segment {base_offset} does not follow the previous segment")));
            }
            verify_segment(env.storage, &self.dir, segment)?;
            expected_base = Some(segment.next_offset);
            total_bytes += segment.size_bytes;
        }
        if total_bytes != self.size_bytes {
            return Err(disagree(format!(
                "segments hold {total_bytes} bytes, the log counts {}",
                self.size_bytes
            )));
        }
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if !(start..=end).contains(&self.durable_offset) {
            return Err(disagree(format!("durable offset {} outside [{start}, {end}]", self.durable_offset)));
        }
        Ok(())
    }

    /// The first offset in the log: the first segment's base offset.
    pub fn log_start_offset(&self) -> i64 {
        *self.segments.keys().next().expect("a log has a segment")
    }

    /// The offset the next appended batch gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Every offset below this survives a crash.
    pub fn durable_offset(&self) -> i64 {
        self.durable_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The base offset of every segment, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Each segment's base offset and the path of its `.log` file, oldest first, starting with
    /// the segment that holds `offset` (for checkers that read the files as they are, from where
    /// they stopped).
    pub fn segment_files_from(&self, offset: i64) -> impl Iterator<Item = (i64, String)> + '_ {
        let first = self.segments.range(..=offset).next_back().map_or(i64::MIN, |(base, _)| *base);
        self.segments.range(first..).map(|(base, _)| (*base, log_path(&self.dir, *base)))
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    // ---- internals ----

    /// The one append path: validate, check or assign offsets, roll if due, then write first and
    /// account after (a failed write leaves the log as it was).
    fn append_batch(
        &mut self,
        env: &mut Env<'_>,
        batch: &[u8],
        assign: Assign,
    ) -> Result<AppendInfo, LogError> {
        self.assert_open();
        let size_bytes = batch.len() as u64;
        if size_bytes > self.config.max_batch_bytes {
            return Err(LogError::BatchTooLarge { size: size_bytes, max: self.config.max_batch_bytes });
        }
        let header = validate_batch(batch).map_err(LogError::InvalidBatch)?;
        if header.size_bytes() != batch.len() {
            return Err(LogError::InvalidBatch(BatchError::InvalidRecords("bytes after the batch")));
        }
        let base_offset = self.log_end_offset();
        if assign == Assign::Nothing && header.base_offset != base_offset {
            // Checked before a roll: a refused batch changes nothing.
            return Err(self.out_of_range(header.base_offset));
        }
        let rolled = self.should_roll(env, &header);
        if rolled {
            self.roll_segment(env)?;
        }
        assert_eq!(self.log_end_offset(), base_offset, "a roll starts the new segment at the log end");

        // The base offset and the partition leader epoch are outside the CRC: only those bytes may
        // change, and the header validated above describes the stored batch but for them.
        let (stored, stored_header): (&[u8], BatchHeader) = match assign {
            Assign::Nothing => (batch, header),
            Assign::Offsets | Assign::OffsetsAndLeaderEpoch(_) => {
                let buffer = &mut self.batch_buffer.0;
                buffer.clear();
                buffer.extend_from_slice(batch);
                set_base_offset(buffer, base_offset);
                let mut stored_header = BatchHeader { base_offset, ..header };
                if let Assign::OffsetsAndLeaderEpoch(leader_epoch) = assign {
                    set_partition_leader_epoch(buffer, leader_epoch);
                    stored_header.partition_leader_epoch = leader_epoch;
                }
                (buffer, stored_header)
            }
        };
        assert_eq!(stored_header.base_offset, base_offset);
        debug_assert_eq!(BatchHeader::parse(stored), Ok(stored_header));
        debug_assert_eq!(batch_crc(stored), stored_header.crc, "only bytes outside the CRC changed");

        let (&active_base, active) = self.segments.iter_mut().next_back().expect("a log has a segment");
        let path = log_path(&self.dir, active_base);
        let position = active.size_bytes;
        // Write first, account after: a failed write leaves the log as it was.
        if let Err(error) = env.storage.write_at(&path, position, stored) {
            let _best_effort = env.storage.truncate(&path, position);
            return Err(LogError::Storage(error));
        }
        active.record_batch(&stored_header, self.config.index_interval_bytes);
        assert_eq!(active.size_bytes, position + size_bytes);
        assert_eq!(active.next_offset, stored_header.last_offset() + 1);
        if active.unwritten_offset_entries() >= INDEX_WRITE_ENTRIES
            && write_index_entries(env.storage, &self.dir, active)
        {
            self.unsynced_indexes.insert(active_base);
        }
        self.size_bytes += size_bytes;
        self.unsynced_segments.insert(active_base);
        self.check_invariants();
        Ok(AppendInfo {
            base_offset,
            last_offset: stored_header.last_offset(),
            max_timestamp: stored_header.max_timestamp,
            rolled,
        })
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a log has a segment")
    }

    fn assert_open(&self) {
        assert_eq!(self.lifecycle, Lifecycle::Open, "a closing or closed log is not changed");
    }

    fn check_invariants(&self) {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        assert!(start <= end);
        assert!(start <= self.durable_offset && self.durable_offset <= end, "durable offset within the log");
        assert!(self.pending_syncs.len() <= PENDING_SYNCS_MAX, "the driver reports sync completions");
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    fn check_range(&self, offset: i64) -> Result<(), LogError> {
        if offset < self.log_start_offset() || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        Ok(())
    }

    /// The base offset of the segment holding `offset` (within the log).
    fn segment_base_for(&self, offset: i64) -> i64 {
        let (&base_offset, _) = self.segments.range(..=offset).next_back().expect("offset within the log");
        base_offset
    }

    fn should_roll(&mut self, env: &mut Env<'_>, header: &BatchHeader) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let full = active.size_bytes + header.size_bytes() as u64 > self.config.segment_bytes;
        let old = active
            .rolling_timestamp
            .is_some_and(|first| env.wall_clock_ms.saturating_sub(first) > self.config.segment_ms);
        let offsets_exhausted = !active.fits_relative_offsets(i64::from(header.last_offset_delta) + 1);
        full || old || offsets_exhausted || env.faults.buggify("log.roll_early")
    }

    fn roll_segment(&mut self, env: &mut Env<'_>) -> Result<(), LogError> {
        assert!(!self.active().is_empty(), "never roll an empty segment");
        // The old active segment's index is complete: its files get the entries they lack.
        let (&old_base, old_active) = self.segments.iter_mut().next_back().expect("a log has a segment");
        if write_index_entries(env.storage, &self.dir, old_active) {
            self.unsynced_indexes.insert(old_base);
        }
        let base_offset = self.log_end_offset();
        let indexes_created =
            create_segment_files(env.storage, &self.dir, base_offset).map_err(LogError::Storage)?;
        let mut segment = Segment::new(base_offset);
        segment.index_files_stale = !indexes_created;
        let previous = self.segments.insert(base_offset, segment);
        assert!(previous.is_none(), "a new segment starts after every other");
        assert_eq!(self.log_end_offset(), base_offset);
        Ok(())
    }

    fn request(&mut self, files: Vec<String>) -> SyncRequest {
        let up_to_offset = self.log_end_offset();
        self.pending_syncs.push_back(PendingSync {
            requested_up_to_offset: up_to_offset,
            durable_up_to_offset: up_to_offset,
        });
        self.check_invariants();
        SyncRequest { files, up_to_offset }
    }

    /// The oldest segment if retention may delete it: not the active one, and wholly durable.
    fn deletable_oldest(&self) -> Option<&Segment> {
        if self.segments.len() < 2 {
            return None;
        }
        let oldest = self.segments.values().next()?;
        assert!(!oldest.is_empty(), "only the active segment can be empty");
        (oldest.next_offset <= self.durable_offset).then_some(oldest)
    }

    fn delete_oldest(&mut self, env: &mut Env<'_>) -> Result<i64, LogError> {
        let base_offset = self.log_start_offset();
        delete_segment_files(env.storage, &self.dir, base_offset)?;
        self.forget_segment(base_offset);
        Ok(base_offset)
    }

    fn forget_segment(&mut self, base_offset: i64) {
        let removed = self.segments.remove(&base_offset).expect("forgetting a segment of the log");
        self.size_bytes -= removed.size_bytes;
        self.unsynced_segments.remove(&base_offset);
        self.unsynced_indexes.remove(&base_offset);
        assert!(!self.segments.is_empty(), "the active segment is never deleted");
    }

    /// Cuts the log to `kept`, the new state of one of its segments: deletes every later segment
    /// (newest first, so the log stays a prefix of itself after each step), truncates the kept
    /// segment's files, and lowers the durable offset and pending syncs to the new end.
    fn cut(&mut self, env: &mut Env<'_>, kept: Segment) -> Result<(), LogError> {
        let base_offset = kept.base_offset;
        let later: Vec<i64> = self.segments.range(base_offset + 1..).map(|(base, _)| *base).rev().collect();
        for later_base in later {
            delete_segment_files(env.storage, &self.dir, later_base)?;
            self.forget_segment(later_base);
            self.clamp_durable();
        }
        let path = log_path(&self.dir, base_offset);
        env.storage.truncate(&path, kept.size_bytes).map_err(LogError::Storage)?;
        let kept_bytes = kept.size_bytes;
        let old = self.segments.insert(base_offset, kept).expect("the kept segment is in the log");
        assert!(old.size_bytes >= kept_bytes);
        self.size_bytes -= old.size_bytes - kept_bytes;
        let segment = self.segments.get_mut(&base_offset).expect("just inserted");
        if !segment.index_files_stale {
            // The kept entries are a prefix of the old ones (the same rule over the same bytes), and
            // the files held a prefix of those: cut the files to what both have.
            segment.offset_index_written = old.offset_index_written.min(segment.offset_index.len());
            segment.time_index_written = old.time_index_written.min(segment.time_index.len());
            debug_assert_eq!(
                segment.offset_index[..segment.offset_index_written],
                old.offset_index[..segment.offset_index_written]
            );
            debug_assert_eq!(
                segment.time_index[..segment.time_index_written],
                old.time_index[..segment.time_index_written]
            );
            let index_bytes = (segment.offset_index_written * OFFSET_INDEX_ENTRY_BYTES) as u64;
            let time_bytes = (segment.time_index_written * TIME_INDEX_ENTRY_BYTES) as u64;
            let trimmed = env
                .storage
                .truncate(&index_path(&self.dir, base_offset), index_bytes)
                .and_then(|()| env.storage.truncate(&time_index_path(&self.dir, base_offset), time_bytes));
            segment.index_files_stale = trimmed.is_err();
        }
        self.unsynced_segments.insert(base_offset);
        self.unsynced_indexes.insert(base_offset);
        self.clamp_durable();
        self.check_invariants();
        Ok(())
    }

    fn clamp_durable(&mut self) {
        let end = self.log_end_offset();
        self.durable_offset = self.durable_offset.min(end);
        for pending in &mut self.pending_syncs {
            pending.durable_up_to_offset = pending.durable_up_to_offset.min(end);
        }
    }
}

/// Appends the segment's index entries that its index files do not hold yet, one write per file.
/// An index file that cannot be written is marked stale instead of failing the caller: the
/// in-memory index is the truth, and a clean close rewrites stale files whole. Returns whether an
/// index file was written (or its write attempted).
fn write_index_entries(storage: &mut dyn Storage, dir: &str, segment: &mut Segment) -> bool {
    if !segment.index_files_behind() {
        return false;
    }
    let base_offset = segment.base_offset;
    let mut written = Ok(());
    if segment.offset_index_written < segment.offset_index.len() {
        let at = (segment.offset_index_written * OFFSET_INDEX_ENTRY_BYTES) as u64;
        let bytes = segment.offset_index_bytes(segment.offset_index_written);
        written = storage.write_at(&index_path(dir, base_offset), at, &bytes);
        if written.is_ok() {
            segment.offset_index_written = segment.offset_index.len();
        }
    }
    if written.is_ok() && segment.time_index_written < segment.time_index.len() {
        let at = (segment.time_index_written * TIME_INDEX_ENTRY_BYTES) as u64;
        let bytes = segment.time_index_bytes(segment.time_index_written);
        written = storage.write_at(&time_index_path(dir, base_offset), at, &bytes);
        if written.is_ok() {
            segment.time_index_written = segment.time_index.len();
        }
    }
    segment.index_files_stale = written.is_err();
    true
}

fn read_error(segment_base_offset: i64, error: ScanError) -> LogError {
    match error {
        ScanError::Storage(error) => LogError::Storage(error),
        ScanError::Batch { position, error } => LogError::Corrupt { segment_base_offset, position, error },
    }
}

fn disagree(what: String) -> LogError {
    LogError::Unrecoverable(what)
}

/// One segment for [`PartitionLog::verify`]: every batch whole, and every fact the log keeps about
/// the segment re-derived from the batches.
fn verify_segment(storage: &mut dyn Storage, dir: &str, segment: &Segment) -> Result<(), LogError> {
    let base_offset = segment.base_offset;
    let path = log_path(dir, base_offset);
    let file_bytes = storage.len(&path).map_err(LogError::Storage)?;
    if file_bytes != segment.size_bytes {
        return Err(disagree(format!(
            "segment {base_offset}: file is {file_bytes} bytes, the log counts {}",
            segment.size_bytes
        )));
    }
    // (base offset, position, maximum timestamp) of every batch.
    let mut batches: Vec<(i64, u64, i64)> = Vec::new();
    let mut reader = SegmentReader::new(&path, segment.size_bytes);
    let mut position = 0;
    let mut next_offset = base_offset;
    let all_checks = Checks { crc: true, records: true };
    while position < segment.size_bytes {
        let (header, _) =
            reader.batch_at(storage, position, all_checks).map_err(|error| read_error(base_offset, error))?;
        if header.base_offset != next_offset {
            return Err(read_error(base_offset, ScanError::Batch { position, error: not_contiguous() }));
        }
        batches.push((header.base_offset, position, header.max_timestamp));
        next_offset = header.last_offset() + 1;
        position += header.size_bytes() as u64;
    }
    if next_offset != segment.next_offset {
        return Err(disagree(format!(
            "segment {base_offset}: batches end at offset {next_offset}, the log says {}",
            segment.next_offset
        )));
    }
    let mut max_timestamp = NO_TIMESTAMP;
    let mut offset_of_max_timestamp = base_offset;
    // The running maximum before each batch, to check the time index's "first to reach" rule.
    let mut max_before: BTreeMap<i64, (u64, i64, i64)> = BTreeMap::new();
    for &(offset, position, batch_max_timestamp) in &batches {
        max_before.insert(offset, (position, batch_max_timestamp, max_timestamp));
        if batch_max_timestamp > max_timestamp {
            max_timestamp = batch_max_timestamp;
            offset_of_max_timestamp = offset;
        }
    }
    let rolling_timestamp = batches.first().map(|&(_, _, timestamp)| timestamp);
    if (max_timestamp, offset_of_max_timestamp, rolling_timestamp)
        != (segment.max_timestamp, segment.offset_of_max_timestamp, segment.rolling_timestamp)
    {
        return Err(disagree(format!("segment {base_offset}: timestamps disagree with the batches")));
    }
    for entry in &segment.offset_index {
        let offset = base_offset + i64::from(entry.relative_offset);
        if max_before.get(&offset).map(|&(position, _, _)| position) != Some(u64::from(entry.position)) {
            return Err(disagree(format!("segment {base_offset}: offset index entry for {offset} is wrong")));
        }
    }
    for entry in &segment.time_index {
        let offset = base_offset + i64::from(entry.relative_offset);
        let holds = max_before
            .get(&offset)
            .is_some_and(|&(_, batch_max, before)| batch_max == entry.timestamp && before < entry.timestamp);
        if !holds {
            return Err(disagree(format!("segment {base_offset}: time index entry for {offset} is wrong")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
