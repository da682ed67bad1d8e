//! One segment of a partition log: its file names, its in-memory offset and time indexes, and the
//! rule that adds index entries as batches arrive.
//!
//! A segment is three files named by the offset of its first batch, Kafka's layout:
//! `{base_offset:020}.log` (the batches, back to back), `.index` (the sparse offset index) and
//! `.timeindex` (the sparse time index). The indexes live in memory; their files are a cache that
//! is trusted only after a clean shutdown and rebuilt by scanning otherwise.
//!
//! The index rule, shared by append, recovery and truncation so that all three build the same
//! index from the same bytes: a batch gets an offset-index entry (its base offset, its position)
//! when at least `index_interval_bytes` of log lie between the previous indexed batch and it (the
//! segment's first batch is implicitly at position 0). Whenever an offset-index entry is added and
//! the segment's maximum timestamp has grown since the last time-index entry, a time-index entry is
//! added: (maximum timestamp so far, offset of the first batch that reached it). So every time-index
//! entry belongs to an offset-index entry at or after its offset, and every batch before the entry's
//! offset has a smaller maximum timestamp.

use crate::record::BatchHeader;

/// Kafka's "no timestamp": the maximum timestamp of a segment that holds no timestamped batch.
pub(super) const NO_TIMESTAMP: i64 = -1;
/// Bytes of one offset-index entry: u32 relative offset, u32 position (big-endian).
pub(super) const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Bytes of one time-index entry: i64 timestamp, u32 relative offset (big-endian).
pub(super) const TIME_INDEX_ENTRY_BYTES: usize = 12;

pub(super) fn log_path(dir: &str, base_offset: i64) -> String {
    format!("{dir}/{base_offset:020}.log")
}

pub(super) fn index_path(dir: &str, base_offset: i64) -> String {
    format!("{dir}/{base_offset:020}.index")
}

pub(super) fn time_index_path(dir: &str, base_offset: i64) -> String {
    format!("{dir}/{base_offset:020}.timeindex")
}

/// One offset-index entry: the batch starting at `base_offset + relative_offset` is at `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time-index entry: up to the batch at `base_offset + relative_offset` the segment's maximum
/// timestamp is `timestamp`, first reached by that batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TimeIndexEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// What the log knows about one segment, in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    pub base_offset: i64,
    /// Bytes of batches in the `.log` file; the file is exactly this long.
    pub size_bytes: u64,
    /// The offset the next batch appended here gets.
    pub next_offset: i64,
    /// The largest batch `max_timestamp` in the segment, [`NO_TIMESTAMP`] if none.
    pub max_timestamp: i64,
    /// The base offset of the first batch that reached `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The first batch's maximum timestamp: what Kafka measures a segment's age (`segment.ms`) from.
    pub rolling_timestamp: Option<i64>,
    pub offset_index: Vec<OffsetIndexEntry>,
    pub time_index: Vec<TimeIndexEntry>,
    /// Bytes from the start of the last indexed batch (or the segment) to the end of the segment.
    pub bytes_since_index_entry: u64,
    /// The index files may not match `offset_index`/`time_index` (a write to them failed, or they
    /// were rebuilt in memory only): a clean close MUST rewrite them whole.
    pub index_files_stale: bool,
    /// Unless stale, the index files hold exactly the first this many entries of `offset_index`
    /// and `time_index`: new entries are written in runs (see `PartitionLog`), not one by one, and
    /// a clean close writes the rest.
    pub offset_index_written: usize,
    pub time_index_written: usize,
}

impl Segment {
    pub fn new(base_offset: i64) -> Segment {
        assert!(base_offset >= 0, "offsets are never negative");
        Segment {
            base_offset,
            size_bytes: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index_entry: 0,
            index_files_stale: false,
            offset_index_written: 0,
            time_index_written: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// The offset relative to the base, as the index files store it.
    pub fn relative_offset(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!((0..=i64::from(u32::MAX)).contains(&relative), "offset {offset} is outside the segment");
        relative as u32
    }

    /// Whether a batch of `record_count` records still has offsets the index can express.
    pub fn fits_relative_offsets(&self, record_count: i64) -> bool {
        self.next_offset - self.base_offset + record_count <= i64::from(u32::MAX)
    }

    /// Accounts for a batch that has just been written (or found on disk) at the end of the
    /// segment, adding its index entries (in memory only).
    pub fn record_batch(&mut self, header: &BatchHeader, index_interval_bytes: u64) {
        assert_eq!(header.base_offset, self.next_offset, "batches are contiguous");
        assert!(header.last_offset() >= header.base_offset);
        let position = self.size_bytes;
        let size = header.size_bytes() as u64;
        assert!(position <= u64::from(u32::MAX), "the segment position fits the index");

        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if self.bytes_since_index_entry >= index_interval_bytes {
            let entry = OffsetIndexEntry {
                relative_offset: self.relative_offset(header.base_offset),
                position: position as u32,
            };
            self.offset_index.push(entry);
            let last_timestamp = self.time_index.last().map_or(NO_TIMESTAMP, |last| last.timestamp);
            if self.max_timestamp > last_timestamp {
                let entry = TimeIndexEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: self.relative_offset(self.offset_of_max_timestamp),
                };
                self.time_index.push(entry);
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += size;
        self.size_bytes += size;
        self.next_offset = header.last_offset() + 1;
        assert!(self.next_offset > header.base_offset);
    }

    /// Offset-index entries in memory that the index file does not hold yet (none if the files are
    /// stale: those are rewritten whole). The time index never has more entries than the offset
    /// index, so this also bounds what the time-index file lacks.
    pub fn unwritten_offset_entries(&self) -> usize {
        if self.index_files_stale {
            return 0;
        }
        self.offset_index.len() - self.offset_index_written
    }

    /// Whether the index files lack entries the segment has in memory (never if they are stale).
    pub fn index_files_behind(&self) -> bool {
        !self.index_files_stale
            && (self.offset_index_written < self.offset_index.len()
                || self.time_index_written < self.time_index.len())
    }

    /// Where to start scanning for the batch holding `offset`: the position and base offset of the
    /// last indexed batch at or below it, or the segment start. `one_entry_too_far` is the planted
    /// bug [`crate::env::Plant::IndexLookupOffByOne`]: it takes the entry after that one.
    pub fn index_lookup(&self, offset: i64, one_entry_too_far: bool) -> (u64, i64) {
        assert!(offset >= self.base_offset);
        let relative = offset - self.base_offset;
        // Entries at or below `offset`: the floor is the last of them.
        let at_or_below =
            self.offset_index.partition_point(|entry| i64::from(entry.relative_offset) <= relative);
        let chosen = if one_entry_too_far && at_or_below < self.offset_index.len() {
            Some(at_or_below)
        } else {
            at_or_below.checked_sub(1)
        };
        match chosen {
            Some(index) => {
                let entry = self.offset_index[index];
                (u64::from(entry.position), self.base_offset + i64::from(entry.relative_offset))
            }
            None => (0, self.base_offset),
        }
    }

    /// The offset to start scanning from for the first batch whose maximum timestamp is at least
    /// `timestamp`: every batch before it has a smaller maximum timestamp.
    pub fn time_lookup(&self, timestamp: i64) -> i64 {
        let below = self.time_index.partition_point(|entry| entry.timestamp < timestamp);
        match below.checked_sub(1) {
            Some(index) => self.base_offset + i64::from(self.time_index[index].relative_offset),
            None => self.base_offset,
        }
    }

    /// A segment rebuilt from its index files up to (not including) the indexed batch at the last
    /// offset-index entry: the caller reads that batch and the rest of the segment.
    pub fn from_indexes(
        base_offset: i64,
        offset_index: Vec<OffsetIndexEntry>,
        time_index: Vec<TimeIndexEntry>,
    ) -> Segment {
        let mut segment = Segment::new(base_offset);
        if let Some(last) = offset_index.last() {
            segment.size_bytes = u64::from(last.position);
            segment.next_offset = base_offset + i64::from(last.relative_offset);
        }
        if let Some(last) = time_index.last() {
            segment.max_timestamp = last.timestamp;
            segment.offset_of_max_timestamp = base_offset + i64::from(last.relative_offset);
        }
        // Read from the index files: they hold these entries.
        segment.offset_index_written = offset_index.len();
        segment.time_index_written = time_index.len();
        segment.offset_index = offset_index;
        segment.time_index = time_index;
        segment
    }

    /// Accounts for the batch at the last offset-index entry of a segment built by
    /// [`Segment::from_indexes`]: it is in the index already, so it adds no entry.
    pub fn record_indexed_batch(&mut self, header: &BatchHeader) {
        let last = *self.offset_index.last().expect("only a segment with an index entry resumes");
        assert_eq!(self.size_bytes, u64::from(last.position));
        assert_eq!(header.base_offset, self.next_offset);
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        let size = header.size_bytes() as u64;
        self.size_bytes += size;
        self.bytes_since_index_entry = size;
        self.next_offset = header.last_offset() + 1;
    }

    /// The offset-index file's bytes from entry `first` on (it starts at `first` entries' bytes).
    pub fn offset_index_bytes(&self, first: usize) -> Vec<u8> {
        let entries = &self.offset_index[first..];
        let mut bytes = Vec::with_capacity(entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for entry in entries {
            bytes.extend_from_slice(&encode_offset_entry(*entry));
        }
        bytes
    }

    /// The time-index file's bytes from entry `first` on.
    pub fn time_index_bytes(&self, first: usize) -> Vec<u8> {
        let entries = &self.time_index[first..];
        let mut bytes = Vec::with_capacity(entries.len() * TIME_INDEX_ENTRY_BYTES);
        for entry in entries {
            bytes.extend_from_slice(&encode_time_entry(*entry));
        }
        bytes
    }
}

fn encode_offset_entry(entry: OffsetIndexEntry) -> [u8; OFFSET_INDEX_ENTRY_BYTES] {
    let mut bytes = [0; OFFSET_INDEX_ENTRY_BYTES];
    bytes[0..4].copy_from_slice(&entry.relative_offset.to_be_bytes());
    bytes[4..8].copy_from_slice(&entry.position.to_be_bytes());
    bytes
}

fn encode_time_entry(entry: TimeIndexEntry) -> [u8; TIME_INDEX_ENTRY_BYTES] {
    let mut bytes = [0; TIME_INDEX_ENTRY_BYTES];
    bytes[0..8].copy_from_slice(&entry.timestamp.to_be_bytes());
    bytes[8..12].copy_from_slice(&entry.relative_offset.to_be_bytes());
    bytes
}

/// Parses an offset-index file of a segment `segment_bytes` long, or says why it is invalid:
/// a size that is not a whole number of entries, entries that do not strictly increase, a position
/// at or past the segment's end.
pub(super) fn decode_offset_index(bytes: &[u8], segment_bytes: u64) -> Result<Vec<OffsetIndexEntry>, String> {
    if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
        return Err(format!("offset index of {} bytes is not a whole number of entries", bytes.len()));
    }
    let mut entries: Vec<OffsetIndexEntry> = Vec::with_capacity(bytes.len() / OFFSET_INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
        let entry = OffsetIndexEntry {
            relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
        };
        if u64::from(entry.position) >= segment_bytes {
            return Err(format!(
                "offset index entry {} points at position {}, past the segment's {segment_bytes} bytes",
                entries.len(),
                entry.position
            ));
        }
        if let Some(previous) = entries.last() {
            if entry.relative_offset <= previous.relative_offset || entry.position <= previous.position {
                return Err(format!("offset index entry {} does not increase", entries.len()));
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Parses a time-index file that belongs to `offset_index`, or says why it is invalid: a size that
/// is not a whole number of entries, timestamps that do not strictly increase, offsets that go
/// back, an entry past the last offset-index entry (the index rule never writes one).
pub(super) fn decode_time_index(
    bytes: &[u8],
    offset_index: &[OffsetIndexEntry],
) -> Result<Vec<TimeIndexEntry>, String> {
    if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
        return Err(format!("time index of {} bytes is not a whole number of entries", bytes.len()));
    }
    let last_indexed = offset_index.last().map(|entry| entry.relative_offset);
    let mut entries: Vec<TimeIndexEntry> = Vec::with_capacity(bytes.len() / TIME_INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
        let mut timestamp = [0; 8];
        timestamp.copy_from_slice(&chunk[0..8]);
        let entry = TimeIndexEntry {
            timestamp: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
        };
        if last_indexed.is_none_or(|last| entry.relative_offset > last) {
            return Err(format!("time index entry {} is past the last offset index entry", entries.len()));
        }
        if let Some(previous) = entries.last() {
            if entry.timestamp <= previous.timestamp || entry.relative_offset < previous.relative_offset {
                return Err(format!("time index entry {} does not increase", entries.len()));
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}
