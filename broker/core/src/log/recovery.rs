//! Opening a partition log: turning whatever files a crash or a clean shutdown left into a valid
//! log, and saying what was done.
//!
//! After a clean shutdown (the marker file `.clean_shutdown` exists) the indexes are trusted once
//! they pass structural checks, and only each segment's tail — from its last indexed batch — is
//! read. Anything inconsistent (a tail that does not validate, segments that do not follow one
//! another) falls back to full recovery; a bad index alone is rebuilt by scanning its segment.
//!
//! After anything else, every batch of every segment is validated (length, magic 2, CRC32C, offsets
//! contiguous from the segment's base and from the previous segment); the log is cut at the first
//! bad batch (that segment's file is truncated, every later segment deleted) and every index is
//! rebuilt. The marker is removed before the log is used, so a crash from then on is unclean.
//! Recovery never panics on what it reads: bad bytes are cut, and every cut is reported.

use std::collections::{BTreeMap, BTreeSet};

use crate::env::{Env, Plant, Storage, StorageError};

use super::scan::{resume_segment, scan_segment, Checks};
use super::segment::{
    decode_offset_index, decode_time_index, index_path, log_path, time_index_path, OffsetIndexEntry, Segment,
    TimeIndexEntry,
};
use super::{LogConfig, LogError};

/// The name of the clean-shutdown marker inside the log's directory.
pub(super) const CLEAN_SHUTDOWN_MARKER: &str = ".clean_shutdown";

pub(super) fn marker_path(dir: &str) -> String {
    format!("{dir}/{CLEAN_SHUTDOWN_MARKER}")
}

/// What recovery hands the log: its segments, in offset order, and what it did to get them.
pub(super) struct Recovered {
    pub segments: BTreeMap<i64, Segment>,
    pub clean_shutdown: bool,
    pub actions: Vec<String>,
    /// Segments recovery truncated: the truncation is durable only once the file is synced.
    pub truncated: BTreeSet<i64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct SegmentFiles {
    log: bool,
    index: bool,
    time_index: bool,
}

struct Listing {
    segments: BTreeMap<i64, SegmentFiles>,
    marker: bool,
    unknown: Vec<String>,
}

pub(super) fn recover(env: &mut Env<'_>, dir: &str, config: &LogConfig) -> Result<Recovered, LogError> {
    let listing = list_dir(env.storage, dir)?;
    let mut actions = Vec::new();
    if listing.marker {
        env.storage.remove(&marker_path(dir)).map_err(LogError::Storage)?;
        actions.push("found the clean-shutdown marker and removed it".to_string());
    }
    for name in &listing.unknown {
        actions.push(format!("ignored {name}: not a file of the log"));
    }
    let mut segment_files = BTreeMap::new();
    for (base_offset, files) in &listing.segments {
        if files.log {
            segment_files.insert(*base_offset, *files);
        } else {
            remove_index_files(env.storage, dir, *base_offset)?;
            actions.push(format!("removed the index files of segment {base_offset}: its log file is gone"));
        }
    }

    if env.faults.planted(Plant::RecoveryDropsOldestSegment) && segment_files.len() >= 2 {
        // Planted bug: recovery "cleans up" the oldest segment as if retention had deleted it.
        if let Some((base_offset, _)) = segment_files.pop_first() {
            env.storage.remove(&log_path(dir, base_offset)).map_err(LogError::Storage)?;
            remove_index_files(env.storage, dir, base_offset)?;
        }
    }

    if segment_files.is_empty() {
        let indexes_created = create_segment_files(env.storage, dir, 0).map_err(LogError::Storage)?;
        actions.push("no segments: created an empty log at offset 0".to_string());
        let mut segment = Segment::new(0);
        segment.index_files_stale = !indexes_created;
        let segments = BTreeMap::from([(0, segment)]);
        return Ok(Recovered {
            segments,
            clean_shutdown: listing.marker,
            actions,
            truncated: BTreeSet::new(),
        });
    }

    if listing.marker {
        match load_clean(env.storage, dir, config, &segment_files, &mut actions) {
            Ok(Some(segments)) => {
                actions.push(format!("loaded {} segments from their indexes", segments.len()));
                return Ok(Recovered { segments, clean_shutdown: true, actions, truncated: BTreeSet::new() });
            }
            Ok(None) => {
                actions.push("the files disagree with a clean shutdown: recovering in full".to_string())
            }
            // An unreadable index or tail: the full scan decides what is still good.
            Err(LogError::Storage(StorageError::Io)) => {
                actions.push("an I/O error while loading cleanly: recovering in full".to_string());
            }
            Err(error) => return Err(error),
        }
    }
    let checks = Checks { crc: !env.faults.planted(Plant::RecoverySkipsCrc), records: false };
    let mut truncated = BTreeSet::new();
    let segments =
        recover_unclean(env.storage, dir, config, &segment_files, checks, &mut actions, &mut truncated)?;
    Ok(Recovered { segments, clean_shutdown: false, actions, truncated })
}

fn list_dir(storage: &mut dyn Storage, dir: &str) -> Result<Listing, LogError> {
    let prefix = format!("{dir}/");
    let paths = storage.list(&prefix).map_err(LogError::Storage)?;
    let mut listing = Listing { segments: BTreeMap::new(), marker: false, unknown: Vec::new() };
    for path in paths {
        let Some(name) = path.strip_prefix(&prefix) else {
            listing.unknown.push(path);
            continue;
        };
        if name == CLEAN_SHUTDOWN_MARKER {
            listing.marker = true;
            continue;
        }
        match parse_segment_file_name(name) {
            Some((base_offset, kind)) => {
                let files = listing.segments.entry(base_offset).or_default();
                match kind {
                    FileKind::Log => files.log = true,
                    FileKind::Index => files.index = true,
                    FileKind::TimeIndex => files.time_index = true,
                }
            }
            None => listing.unknown.push(path),
        }
    }
    Ok(listing)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Log,
    Index,
    TimeIndex,
}

/// `00000000000000000042.log` → (42, Log). Exactly twenty digits, as the log writes them.
fn parse_segment_file_name(name: &str) -> Option<(i64, FileKind)> {
    let (stem, extension) = name.split_once('.')?;
    let kind = match extension {
        "log" => FileKind::Log,
        "index" => FileKind::Index,
        "timeindex" => FileKind::TimeIndex,
        _ => return None,
    };
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let base_offset: i64 = stem.parse().ok()?;
    Some((base_offset, kind))
}

/// The clean path. `None` when the files do not hold together as a cleanly closed log.
fn load_clean(
    storage: &mut dyn Storage,
    dir: &str,
    config: &LogConfig,
    segment_files: &BTreeMap<i64, SegmentFiles>,
    actions: &mut Vec<String>,
) -> Result<Option<BTreeMap<i64, Segment>>, LogError> {
    let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
    for (&base_offset, files) in segment_files {
        if let Some(previous) = segments.values().next_back() {
            if previous.next_offset != base_offset {
                actions.push(format!(
                    "segment {base_offset} does not follow the previous one, which ends at offset {}",
                    previous.next_offset
                ));
                return Ok(None);
            }
        }
        let path = log_path(dir, base_offset);
        let size_bytes = storage.len(&path).map_err(LogError::Storage)?;
        let loaded = match read_indexes(storage, dir, base_offset, *files, size_bytes)? {
            Ok(indexes) => {
                let (offset_index, time_index) = indexes;
                let start = Segment::from_indexes(base_offset, offset_index, time_index);
                match resume_segment(
                    storage,
                    &path,
                    start,
                    size_bytes,
                    Checks::CRC,
                    config.index_interval_bytes,
                )
                .map_err(LogError::Storage)?
                {
                    Ok(segment) => Some(segment),
                    Err((position, error)) => {
                        actions.push(format!(
                            "segment {base_offset}: its index does not match the batch at position {position} \
                             ({error}): rebuilding its indexes"
                        ));
                        None
                    }
                }
            }
            Err(reason) => {
                actions.push(format!("segment {base_offset}: {reason}: rebuilding its indexes"));
                None
            }
        };
        let segment = match loaded {
            Some(segment) => segment,
            None => {
                let scan = scan_segment(
                    storage,
                    &path,
                    base_offset,
                    size_bytes,
                    Checks::CRC,
                    config.index_interval_bytes,
                )
                .map_err(LogError::Storage)?;
                if let Some((position, error)) = scan.stopped {
                    actions.push(format!(
                        "segment {base_offset}: invalid batch at position {position}: {error}"
                    ));
                    return Ok(None);
                }
                let mut segment = scan.segment;
                segment.index_files_stale = true;
                actions.push(format!(
                    "segment {base_offset}: rebuilt its indexes by scanning ({} offset index entries)",
                    segment.offset_index.len()
                ));
                segment
            }
        };
        assert_eq!(segment.size_bytes, size_bytes);
        segments.insert(base_offset, segment);
    }
    Ok(Some(segments))
}

/// A segment's index files, parsed: the offset index and the time index.
type Indexes = (Vec<OffsetIndexEntry>, Vec<TimeIndexEntry>);

/// Reads and checks both index files of a segment: `Err(reason)` if either is missing or invalid.
fn read_indexes(
    storage: &mut dyn Storage,
    dir: &str,
    base_offset: i64,
    files: SegmentFiles,
    size_bytes: u64,
) -> Result<Result<Indexes, String>, LogError> {
    if !files.index {
        return Ok(Err("offset index file missing".to_string()));
    }
    if !files.time_index {
        return Ok(Err("time index file missing".to_string()));
    }
    let offset_bytes = read_whole(storage, &index_path(dir, base_offset))?;
    let time_bytes = read_whole(storage, &time_index_path(dir, base_offset))?;
    let offset_index = match decode_offset_index(&offset_bytes, size_bytes) {
        Ok(entries) => entries,
        Err(reason) => return Ok(Err(reason)),
    };
    let time_index = match decode_time_index(&time_bytes, &offset_index) {
        Ok(entries) => entries,
        Err(reason) => return Ok(Err(reason)),
    };
    Ok(Ok((offset_index, time_index)))
}

fn read_whole(storage: &mut dyn Storage, path: &str) -> Result<Vec<u8>, LogError> {
    storage.read_all(path).map_err(LogError::Storage)
}

/// The unclean path: validate every batch, cut at the first bad one, rebuild every index.
fn recover_unclean(
    storage: &mut dyn Storage,
    dir: &str,
    config: &LogConfig,
    segment_files: &BTreeMap<i64, SegmentFiles>,
    checks: Checks,
    actions: &mut Vec<String>,
    truncated: &mut BTreeSet<i64>,
) -> Result<BTreeMap<i64, Segment>, LogError> {
    let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
    let mut cut = false;
    for &base_offset in segment_files.keys() {
        let expected = segments.values().next_back().map(|previous| previous.next_offset);
        if cut {
            delete_segment_files(storage, dir, base_offset)?;
            actions.push(format!(
                "deleted segment {base_offset}: it lies after the point where the log was cut"
            ));
            continue;
        }
        if let Some(expected) = expected {
            if expected != base_offset {
                delete_segment_files(storage, dir, base_offset)?;
                actions.push(format!(
                    "deleted segment {base_offset}: it does not continue the log, which ends at offset {expected}"
                ));
                cut = true;
                continue;
            }
        }
        let path = log_path(dir, base_offset);
        let size_bytes = storage.len(&path).map_err(LogError::Storage)?;
        let scan = scan_segment(storage, &path, base_offset, size_bytes, checks, config.index_interval_bytes)
            .map_err(LogError::Storage)?;
        let mut segment = scan.segment;
        let end_bytes = scan.stopped.as_ref().map_or(size_bytes, |(position, _)| *position);
        if let Some((position, error)) = scan.stopped {
            storage.truncate(&path, position).map_err(LogError::Storage)?;
            truncated.insert(base_offset);
            actions.push(format!(
                "truncated segment {base_offset} at position {position} (offset {}): {error}; dropped {} bytes",
                segment.next_offset,
                size_bytes - position
            ));
            cut = true;
        }
        assert_eq!(segment.size_bytes, end_bytes);
        if let Err(error) = write_index_files(storage, dir, &mut segment) {
            segment.index_files_stale = true;
            actions.push(format!("segment {base_offset}: could not write its rebuilt indexes ({error})"));
        }
        segments.insert(base_offset, segment);
    }
    actions.push(format!(
        "validated every batch of {} segments and rebuilt their indexes; the log ends at offset {}",
        segments.len(),
        segments.values().next_back().map_or(0, |last| last.next_offset)
    ));
    Ok(segments)
}

/// Creates the three files of a new, empty segment; creation is durable on return. An error
/// creating the log file is the caller's; `Ok(false)` means the index files could not be made
/// (the segment's indexes are then stale: a clean close writes them).
pub(super) fn create_segment_files(
    storage: &mut dyn Storage,
    dir: &str,
    base_offset: i64,
) -> Result<bool, StorageError> {
    storage.create(&log_path(dir, base_offset))?;
    let mut indexes_created = true;
    for path in [index_path(dir, base_offset), time_index_path(dir, base_offset)] {
        let created = match storage.create(&path) {
            // A leftover index of a segment that no longer exists: start it empty.
            Err(StorageError::AlreadyExists) => storage.truncate(&path, 0),
            other => other,
        };
        indexes_created &= created.is_ok();
    }
    Ok(indexes_created)
}

/// Writes both index files whole from memory (creating them if missing); on success they are no
/// longer stale and hold every entry. On failure the caller decides (the segment is unchanged).
pub(super) fn write_index_files(
    storage: &mut dyn Storage,
    dir: &str,
    segment: &mut Segment,
) -> Result<(), StorageError> {
    let files = [
        (index_path(dir, segment.base_offset), segment.offset_index_bytes(0)),
        (time_index_path(dir, segment.base_offset), segment.time_index_bytes(0)),
    ];
    for (path, bytes) in files {
        if !storage.exists(&path) {
            storage.create(&path)?;
        }
        storage.write_at(&path, 0, &bytes)?;
        storage.truncate(&path, bytes.len() as u64)?;
    }
    segment.index_files_stale = false;
    segment.offset_index_written = segment.offset_index.len();
    segment.time_index_written = segment.time_index.len();
    Ok(())
}

/// Removes a segment's files, the log file first; removal is durable on return. Once the log file
/// is gone the segment is gone: failing to remove its indexes only leaves orphans, which the next
/// recovery removes, so that is not an error.
pub(super) fn delete_segment_files(
    storage: &mut dyn Storage,
    dir: &str,
    base_offset: i64,
) -> Result<(), LogError> {
    match storage.remove(&log_path(dir, base_offset)) {
        Ok(()) | Err(StorageError::NotFound) => {}
        Err(error) => return Err(LogError::Storage(error)),
    }
    let _orphans_are_removed_by_recovery = remove_index_files(storage, dir, base_offset);
    Ok(())
}

fn remove_index_files(storage: &mut dyn Storage, dir: &str, base_offset: i64) -> Result<(), LogError> {
    for path in [index_path(dir, base_offset), time_index_path(dir, base_offset)] {
        match storage.remove(&path) {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(error) => return Err(LogError::Storage(error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_parse_only_in_the_log_format() {
        assert_eq!(parse_segment_file_name("00000000000000000042.log"), Some((42, FileKind::Log)));
        assert_eq!(parse_segment_file_name("00000000000000000042.index"), Some((42, FileKind::Index)));
        assert_eq!(parse_segment_file_name("00000000000000000000.timeindex"), Some((0, FileKind::TimeIndex)));
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.log.tmp"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042"), None);
        assert_eq!(parse_segment_file_name("99999999999999999999.log"), None, "overflows i64");
    }
}
