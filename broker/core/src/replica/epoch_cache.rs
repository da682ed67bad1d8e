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
//!
//! The checkpoint is never synced: a crash may leave an older or newer one than the log it sits
//! beside, and `open` reconciles the two. Batches whose partition leader epoch is negative (written
//! by plain [`PartitionLog::append`], which no leader stamped) start no epoch.
//!
//! Checkpoint format (big-endian): version u8 (1), entry count u32, then per entry epoch i32 and
//! start offset i64, then a CRC32C u32 of every byte before it.
//!
//! Contract: the caller keeps the cache in step with the log — [`LeaderEpochCache::assign`] after
//! every append of a batch with a leader epoch, [`LeaderEpochCache::truncate_from_end`] after
//! every cut of the log's end, [`LeaderEpochCache::truncate_from_start`] after every advance of its
//! start. On a storage error the cache in memory has already changed (it follows the log, which
//! has): only the checkpoint is stale, and the next `open` reconciles it.

use crate::env::{Env, StorageError};
use crate::log::{LogError, PartitionLog};
use crate::record::BatchHeader;

/// The checkpoint's file name inside the partition's directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's `UNDEFINED_EPOCH`: no epoch.
pub const UNDEFINED_EPOCH: i32 = -1;

/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no offset.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The largest checkpoint `open` reads: a bound on what a garbage file can make it allocate. A
/// cache larger than this is rebuilt from the log on open instead of read (correct, only slower).
const CHECKPOINT_ENTRIES_MAX: usize = 1 << 16;

const CHECKPOINT_VERSION: u8 = 1;
const CHECKPOINT_HEADER_BYTES: usize = 1 + 4;
const CHECKPOINT_ENTRY_BYTES: usize = 4 + 8;
const CHECKPOINT_CRC_BYTES: usize = 4;

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
    /// Reads the header of each entry's first batch, and scans batch headers from the last entry
    /// that holds (the whole log if the checkpoint is missing, torn or disagrees with the log).
    /// Rewrites the checkpoint if reconciling changed it. A corrupt batch on the way is
    /// [`LogError::Corrupt`]; leader epochs going backwards in the log are
    /// [`LogError::Unrecoverable`] (no correct replica writes them).
    pub fn open(env: &mut Env<'_>, dir: &str, log: &PartitionLog) -> Result<LeaderEpochCache, LogError> {
        // A temporary file left by a crash between write and rename may be torn: it is never
        // read, only tidied away (and overwritten by the next write if that fails).
        let _best_effort = env.storage.remove(&temp_path(dir));
        let loaded = load_checkpoint(env, dir);
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let mut entries = loaded.clone().unwrap_or_default();
        // Entries the log no longer holds: below its start (segments deleted before the
        // checkpoint learned of it), then past its end (a cut, or unsynced batches lost) — in that
        // order, so an entry moved up to the start of an empty log is dropped too.
        clamp_to_start(&mut entries, start);
        entries.retain(|entry| entry.start_offset < end);
        if !entries_match_log(env, log, &entries)? {
            entries.clear();
        }
        let scan_from = entries.last().map_or(start, |last| last.start_offset);
        for header in log.batch_headers(env, scan_from)? {
            extend_with(&mut entries, &header)?;
        }
        let cache = LeaderEpochCache { dir: dir.to_string(), entries };
        cache.check_invariants();
        if loaded.as_deref() != Some(&cache.entries[..]) {
            cache.persist(env)?;
        }
        Ok(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The epoch of the last entry, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// A batch of `epoch` was appended at `start_offset`: records the epoch if it is new (larger
    /// than the latest), and persists the cache. An epoch equal to the latest changes nothing; a
    /// negative one (a batch no leader stamped) starts no epoch and changes nothing either, as
    /// `open` skips such batches. A new epoch starting at or before the start of earlier ones
    /// replaces them: they hold no record (a leader that appended nothing in its epoch, as when a
    /// leader takes over an empty log and loses leadership again). An epoch smaller than the
    /// latest, or a negative offset, is a bug of the caller (the log only grows in epoch) and is
    /// refused with [`LogError::Unrecoverable`], changing nothing.
    pub fn assign(&mut self, env: &mut Env<'_>, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 {
            return Ok(());
        }
        if start_offset < 0 {
            return Err(LogError::Unrecoverable(format!(
                "leader epoch {epoch} cannot start at the negative offset {start_offset}"
            )));
        }
        if let Some(latest) = self.entries.last() {
            if epoch < latest.epoch {
                return Err(LogError::Unrecoverable(format!(
                    "leader epoch {epoch} at offset {start_offset} is older than the latest epoch {} \
                     (from offset {}): epochs never go backwards in a log",
                    latest.epoch, latest.start_offset
                )));
            }
            if epoch == latest.epoch {
                return Ok(());
            }
        }
        // An earlier epoch starting at or after `start_offset` holds no record below the log end
        // the caller appends at (a leader that appended nothing in its epoch): the newer epoch
        // replaces it, as Kafka's cache does.
        let kept = self.entries.partition_point(|entry| entry.start_offset < start_offset);
        self.entries.truncate(kept);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.check_invariants();
        self.persist(env)
    }

    /// The log was cut at `end_offset`: drops every entry starting at or after it.
    pub fn truncate_from_end(&mut self, env: &mut Env<'_>, end_offset: i64) -> Result<(), LogError> {
        let kept = self.entries.partition_point(|entry| entry.start_offset < end_offset);
        if kept == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(kept);
        self.check_invariants();
        self.persist(env)
    }

    /// The log now starts at `start_offset` (retention, or a reset): drops entries wholly below
    /// it, moving the start of the one containing it up to `start_offset`.
    pub fn truncate_from_start(&mut self, env: &mut Env<'_>, start_offset: i64) -> Result<(), LogError> {
        let before = self.entries.clone();
        clamp_to_start(&mut self.entries, start_offset);
        if self.entries == before {
            return Ok(());
        }
        self.check_invariants();
        self.persist(env)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: where `requested` ends in this log, as
    /// `(epoch, end offset)`:
    /// - `requested` negative (Kafka's `UNDEFINED_EPOCH`), larger than the latest epoch, or the
    ///   cache empty → `(-1, -1)`;
    /// - `requested` is the latest epoch → `(requested, log_end_offset)`;
    /// - `requested` smaller than the first entry's epoch → `(requested, first entry's start
    ///   offset)`;
    /// - otherwise → `(largest epoch <= requested, start offset of the first epoch > requested)`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        let Some(latest) = self.entries.last() else {
            return undefined;
        };
        if requested < 0 || requested > latest.epoch {
            return undefined;
        }
        if requested == latest.epoch {
            return (requested, log_end_offset);
        }
        // Entries with an epoch <= requested come first; the one after them exists, as `requested`
        // is below the latest epoch.
        let higher = self.entries.partition_point(|entry| entry.epoch <= requested);
        let next_start = self.entries[higher].start_offset;
        match higher.checked_sub(1) {
            None => (requested, next_start),
            Some(floor) => (self.entries[floor].epoch, next_start),
        }
    }

    /// The epoch of the batch holding `offset`, if the cache covers it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries.iter().rev().find(|entry| entry.start_offset <= offset).map(|entry| entry.epoch)
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    // ---- internals ----

    fn check_invariants(&self) {
        assert!(is_well_formed(&self.entries), "epoch cache entries out of order: {:?}", self.entries);
    }

    /// Writes the checkpoint to a temporary file and renames it over the old one.
    fn persist(&self, env: &mut Env<'_>) -> Result<(), LogError> {
        let bytes = encode(&self.entries);
        let temp = temp_path(&self.dir);
        let written = match env.storage.create(&temp) {
            Ok(()) | Err(StorageError::AlreadyExists) => env
                .storage
                .write_at(&temp, 0, &bytes)
                .and_then(|()| env.storage.truncate(&temp, bytes.len() as u64)),
            Err(error) => Err(error),
        };
        let renamed = written.and_then(|()| env.storage.rename(&temp, &checkpoint_path(&self.dir)));
        if let Err(error) = renamed {
            let _best_effort = env.storage.remove(&temp);
            return Err(LogError::Storage(error));
        }
        Ok(())
    }
}

fn checkpoint_path(dir: &str) -> String {
    format!("{dir}/{CHECKPOINT_FILE}")
}

fn temp_path(dir: &str) -> String {
    format!("{dir}/{CHECKPOINT_FILE}.tmp")
}

/// Strictly increasing in epoch and start offset, no negative epoch or offset.
fn is_well_formed(entries: &[EpochEntry]) -> bool {
    let non_negative = entries.iter().all(|entry| entry.epoch >= 0 && entry.start_offset >= 0);
    let increasing = entries
        .windows(2)
        .all(|pair| pair[0].epoch < pair[1].epoch && pair[0].start_offset < pair[1].start_offset);
    non_negative && increasing
}

/// Drops entries wholly below `start_offset` and moves the start of the one containing it up to it.
fn clamp_to_start(entries: &mut Vec<EpochEntry>, start_offset: i64) {
    let starting_at_or_below = entries.partition_point(|entry| entry.start_offset <= start_offset);
    let Some(containing) = starting_at_or_below.checked_sub(1) else {
        return;
    };
    entries.drain(..containing);
    entries[0].start_offset = start_offset;
}

/// The checkpoint's entries, or `None` if there is no usable checkpoint (missing, unreadable,
/// torn, a bad CRC, an unknown version, entries out of order): the log will be scanned instead.
fn load_checkpoint(env: &mut Env<'_>, dir: &str) -> Option<Vec<EpochEntry>> {
    let path = checkpoint_path(dir);
    let bytes_max =
        CHECKPOINT_HEADER_BYTES + CHECKPOINT_ENTRIES_MAX * CHECKPOINT_ENTRY_BYTES + CHECKPOINT_CRC_BYTES;
    let length = env.storage.len(&path).ok()?;
    if length > bytes_max as u64 {
        return None;
    }
    // Any read error makes the checkpoint unusable, not the log: scanning answers the same.
    let bytes = env.storage.read_all(&path).ok()?;
    decode(&bytes)
}

fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let count =
        u32::try_from(entries.len()).expect("epochs are distinct non-negative i32s: fewer than 2^31 entries");
    let mut bytes = Vec::with_capacity(
        CHECKPOINT_HEADER_BYTES + entries.len() * CHECKPOINT_ENTRY_BYTES + CHECKPOINT_CRC_BYTES,
    );
    bytes.push(CHECKPOINT_VERSION);
    bytes.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        bytes.extend_from_slice(&entry.epoch.to_be_bytes());
        bytes.extend_from_slice(&entry.start_offset.to_be_bytes());
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(decode(&bytes).as_deref(), Some(entries));
    bytes
}

/// Parses checkpoint bytes; `None` for anything but a whole, valid checkpoint (never a guess).
fn decode(bytes: &[u8]) -> Option<Vec<EpochEntry>> {
    let body_bytes = bytes.len().checked_sub(CHECKPOINT_CRC_BYTES)?;
    let (body, crc) = bytes.split_at(body_bytes);
    let stored_crc = u32::from_be_bytes(crc.try_into().ok()?);
    if crc32c::crc32c(body) != stored_crc {
        return None;
    }
    let (&version, rest) = body.split_first()?;
    if version != CHECKPOINT_VERSION || rest.len() < 4 {
        return None;
    }
    let (count, rest) = rest.split_at(4);
    let count = usize::try_from(u32::from_be_bytes(count.try_into().ok()?)).ok()?;
    if count.checked_mul(CHECKPOINT_ENTRY_BYTES)? != rest.len() {
        return None;
    }
    let entries: Vec<EpochEntry> = rest
        .chunks_exact(CHECKPOINT_ENTRY_BYTES)
        .map(|entry| {
            let (epoch, start_offset) = entry.split_at(4);
            EpochEntry {
                epoch: i32::from_be_bytes(epoch.try_into().expect("chunks of 12 split at 4: 4 bytes")),
                start_offset: i64::from_be_bytes(start_offset.try_into().expect("the other 8 bytes")),
            }
        })
        .collect();
    is_well_formed(&entries).then_some(entries)
}

/// Whether every entry's start offset is where a batch of its epoch starts in the log.
fn entries_match_log(
    env: &mut Env<'_>,
    log: &PartitionLog,
    entries: &[EpochEntry],
) -> Result<bool, LogError> {
    for entry in entries {
        // A read of one byte serves exactly the batch holding the offset.
        let read = log.read(env, entry.start_offset, 1)?;
        let header = BatchHeader::parse(&read.bytes).map_err(|error| {
            LogError::Unrecoverable(format!("a read at {} served a bad batch: {error}", entry.start_offset))
        })?;
        if header.base_offset != entry.start_offset || header.partition_leader_epoch != entry.epoch {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Adds the epoch `header`'s batch starts, if it starts one.
fn extend_with(entries: &mut Vec<EpochEntry>, header: &BatchHeader) -> Result<(), LogError> {
    let epoch = header.partition_leader_epoch;
    if epoch < 0 {
        return Ok(());
    }
    match entries.last() {
        Some(latest) if epoch == latest.epoch => Ok(()),
        Some(latest) if epoch < latest.epoch || header.base_offset <= latest.start_offset => {
            let cut = entries
                .iter()
                .find(|entry| entry.epoch > epoch)
                .map_or(header.base_offset, |entry| entry.start_offset.min(header.base_offset));
            Err(LogError::EpochsGoBackwards {
                offset: header.base_offset,
                cut,
                detail: format!(
                    "the log's leader epochs go backwards: the batch at {} has epoch {epoch} after epoch {} \
                     from offset {}",
                    header.base_offset, latest.epoch, latest.start_offset
                ),
            })
        }
        _ => {
            entries.push(EpochEntry { epoch, start_offset: header.base_offset });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
