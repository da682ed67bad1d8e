//! Reading batches out of a segment file: a buffered reader, the scan that rebuilds a segment's
//! state from its bytes, and the lookup that finds the batch holding an offset.
//!
//! Everything here treats the bytes as untrusted: a bad length, magic, CRC or offset is a
//! [`BatchError`] at a position, never a panic, and no read goes past the segment's known end.

use crate::env::{Storage, StorageError};
use crate::record::{validate_batch, validate_batch_crc, BatchError, BatchHeader, BATCH_HEADER_BYTES};

use super::segment::Segment;

/// How much a reader fetches at least per storage read: enough to cover an index interval (4 KiB
/// by default) and the batch it leads to in one read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a walk over a segment stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ScanError {
    Storage(StorageError),
    /// The bytes at `position` are not the batch that belongs there.
    Batch {
        position: u64,
        error: BatchError,
    },
}

impl From<StorageError> for ScanError {
    fn from(error: StorageError) -> ScanError {
        ScanError::Storage(error)
    }
}

/// Which checks a scan applies to every batch, on top of lengths, magic and contiguous offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Checks {
    /// CRC32C over the batch (off only under the planted bug `RecoverySkipsCrc`).
    pub crc: bool,
    /// The records section parses and agrees with the header (what `verify` adds).
    pub records: bool,
}

impl Checks {
    pub const CRC: Checks = Checks { crc: true, records: false };
}

/// A window over the first `end_bytes` bytes of one segment file.
pub(super) struct SegmentReader<'p> {
    path: &'p str,
    end_bytes: u64,
    window_start: u64,
    window: Vec<u8>,
}

impl<'p> SegmentReader<'p> {
    pub fn new(path: &'p str, end_bytes: u64) -> SegmentReader<'p> {
        SegmentReader { path, end_bytes, window_start: 0, window: Vec::new() }
    }

    pub fn end_bytes(&self) -> u64 {
        self.end_bytes
    }

    /// The bytes `[position, position + len)`, which MUST lie within the end.
    pub fn bytes(
        &mut self,
        storage: &mut dyn Storage,
        position: u64,
        len: usize,
    ) -> Result<&[u8], StorageError> {
        let end = position + len as u64;
        assert!(end <= self.end_bytes, "a read stays within the segment");
        let window_end = self.window_start + self.window.len() as u64;
        if position < self.window_start || end > window_end {
            let remaining = self.end_bytes - position;
            let read_len = (len.max(READ_CHUNK_BYTES) as u64).min(remaining) as usize;
            self.window.resize(read_len, 0);
            if let Err(error) = read_retrying(storage, self.path, position, &mut self.window) {
                self.window.clear(); // Never leave a half-read window that a later call could trust.
                return Err(error);
            }
            self.window_start = position;
        }
        let start = (position - self.window_start) as usize;
        Ok(&self.window[start..start + len])
    }

    /// Makes `[position, position + len)` (clipped to the end) one storage read, if it is not
    /// buffered already: a read path that knows how much it wants asks once.
    pub fn prefetch(
        &mut self,
        storage: &mut dyn Storage,
        position: u64,
        len: u64,
    ) -> Result<(), StorageError> {
        let len = len.min(self.end_bytes.saturating_sub(position));
        if len == 0 {
            return Ok(());
        }
        self.bytes(storage, position, len as usize).map(|_| ())
    }

    /// The header of the batch at `position`, checked to fit before the end.
    pub fn header_at(&mut self, storage: &mut dyn Storage, position: u64) -> Result<BatchHeader, ScanError> {
        assert!(position < self.end_bytes);
        let available = self.end_bytes - position;
        let want = (BATCH_HEADER_BYTES as u64).min(available) as usize;
        let bytes = self.bytes(storage, position, want)?;
        let header = BatchHeader::parse(bytes).map_err(|error| ScanError::Batch { position, error })?;
        let size = header.size_bytes();
        if size as u64 > available {
            let error = BatchError::Truncated { needed: size, available: available as usize };
            return Err(ScanError::Batch { position, error });
        }
        Ok(header)
    }

    /// The whole batch at `position` with `checks` applied.
    pub fn batch_at(
        &mut self,
        storage: &mut dyn Storage,
        position: u64,
        checks: Checks,
    ) -> Result<(BatchHeader, &[u8]), ScanError> {
        let header = self.header_at(storage, position)?;
        let bytes = self.bytes(storage, position, header.size_bytes())?;
        let invalid = |error| ScanError::Batch { position, error };
        if checks.records {
            validate_batch(bytes).map_err(invalid)?;
        } else if checks.crc {
            validate_batch_crc(bytes).map_err(invalid)?;
        }
        if header.last_offset_delta < 0 || header.record_count < 1 {
            return Err(invalid(BatchError::InvalidRecords("a batch holds at least one offset")));
        }
        Ok((header, bytes))
    }
}

/// The bytes at `position` hold a batch, but not the one the log expects there.
pub(super) fn not_contiguous() -> BatchError {
    BatchError::InvalidRecords("base offset does not continue the log")
}

/// A segment as far as its bytes are valid: `stopped` says where and why the scan ended early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Scan {
    pub segment: Segment,
    pub stopped: Option<(u64, BatchError)>,
}

/// Rebuilds a segment from its first `end_bytes` bytes, indexes included, stopping at the first
/// batch that fails `checks` or does not continue the offsets from `base_offset`.
pub(super) fn scan_segment(
    storage: &mut dyn Storage,
    path: &str,
    base_offset: i64,
    end_bytes: u64,
    checks: Checks,
    index_interval_bytes: u64,
) -> Result<Scan, StorageError> {
    let mut segment = Segment::new(base_offset);
    let mut reader = SegmentReader::new(path, end_bytes);
    let stopped = scan_rest(storage, &mut reader, &mut segment, checks, index_interval_bytes)?;
    Ok(Scan { segment, stopped })
}

/// Rebuilds a segment from its index entries and the bytes from its last indexed batch to
/// `end_bytes`, reading only that tail (and the first batch's header, for the segment's age).
/// An error means the tail (or the index that led to it) does not hold: scan the segment instead.
pub(super) fn resume_segment(
    storage: &mut dyn Storage,
    path: &str,
    mut segment: Segment,
    end_bytes: u64,
    checks: Checks,
    index_interval_bytes: u64,
) -> Result<Result<Segment, (u64, BatchError)>, StorageError> {
    let mut reader = SegmentReader::new(path, end_bytes);
    if segment.offset_index.is_empty() {
        assert!(segment.is_empty() && segment.time_index.is_empty());
    } else {
        if end_bytes > 0 {
            match reader.header_at(storage, 0) {
                Ok(first) => segment.rolling_timestamp = Some(first.max_timestamp),
                Err(ScanError::Storage(error)) => return Err(error),
                Err(ScanError::Batch { position, error }) => return Ok(Err((position, error))),
            }
        }
        let position = segment.size_bytes;
        if position >= end_bytes {
            return Ok(Err((position, BatchError::Truncated { needed: 1, available: 0 })));
        }
        match reader.batch_at(storage, position, checks) {
            Ok((header, _)) if header.base_offset == segment.next_offset => {
                segment.record_indexed_batch(&header)
            }
            Ok(_) => return Ok(Err((position, not_contiguous()))),
            Err(ScanError::Storage(error)) => return Err(error),
            Err(ScanError::Batch { position, error }) => return Ok(Err((position, error))),
        }
    }
    match scan_rest(storage, &mut reader, &mut segment, checks, index_interval_bytes)? {
        None => Ok(Ok(segment)),
        Some(stopped) => Ok(Err(stopped)),
    }
}

/// Adds every valid batch from the segment's current end to the reader's end.
fn scan_rest(
    storage: &mut dyn Storage,
    reader: &mut SegmentReader<'_>,
    segment: &mut Segment,
    checks: Checks,
    index_interval_bytes: u64,
) -> Result<Option<(u64, BatchError)>, StorageError> {
    // Each pass consumes at least one header's bytes: the loop is bounded by the file.
    while segment.size_bytes < reader.end_bytes() {
        let position = segment.size_bytes;
        if position > u64::from(u32::MAX) {
            return Ok(Some((position, BatchError::InvalidRecords("segment larger than 4 GiB"))));
        }
        let header = match reader.batch_at(storage, position, checks) {
            Ok((header, _)) => header,
            // Unreadable even after retries (a latent sector error): nothing after it can be
            // validated, so the scan stops there as at a bad batch. A single replica has no other
            // copy; the loss is what the medium did.
            Err(ScanError::Storage(StorageError::Io)) => {
                return Ok(Some((position, BatchError::InvalidRecords("unreadable: persistent I/O error"))))
            }
            Err(ScanError::Storage(error)) => return Err(error),
            Err(ScanError::Batch { position, error }) => return Ok(Some((position, error))),
        };
        if header.base_offset != segment.next_offset {
            return Ok(Some((position, not_contiguous())));
        }
        if !segment.fits_relative_offsets(i64::from(header.last_offset_delta) + 1) {
            return Ok(Some((position, BatchError::InvalidRecords("offset too far from the segment base"))));
        }
        segment.record_batch(&header, index_interval_bytes);
        assert_eq!(segment.size_bytes, position + header.size_bytes() as u64);
    }
    assert_eq!(segment.size_bytes, reader.end_bytes());
    Ok(None)
}

/// The batch holding `offset`, found from the index: its position and header, and the reader
/// positioned over it. Every header walked past must continue the offsets from the index entry.
pub(super) fn locate<'p>(
    storage: &mut dyn Storage,
    segment: &Segment,
    path: &'p str,
    offset: i64,
    one_entry_too_far: bool,
) -> Result<(u64, BatchHeader, SegmentReader<'p>), ScanError> {
    assert!(offset >= segment.base_offset && offset < segment.next_offset);
    let (position, expected_offset) = segment.index_lookup(offset, one_entry_too_far);
    match scan_to(storage, segment, path, offset, position, expected_offset) {
        // The index is only a hint: an entry that does not point at the batch it names (an index
        // file damaged after a clean shutdown) falls back to a scan from the segment's start, so
        // a bad index never makes good data unreadable.
        Err(ScanError::Batch { .. }) if position != 0 => {
            scan_to(storage, segment, path, offset, 0, segment.base_offset)
        }
        result => result,
    }
}

fn scan_to<'p>(
    storage: &mut dyn Storage,
    segment: &Segment,
    path: &'p str,
    offset: i64,
    mut position: u64,
    mut expected_offset: i64,
) -> Result<(u64, BatchHeader, SegmentReader<'p>), ScanError> {
    let mut reader = SegmentReader::new(path, segment.size_bytes);
    loop {
        if position >= segment.size_bytes {
            let error = BatchError::InvalidRecords("offset not found in its segment");
            return Err(ScanError::Batch { position, error });
        }
        let header = reader.header_at(storage, position)?;
        if header.base_offset != expected_offset || header.last_offset_delta < 0 {
            return Err(ScanError::Batch { position, error: not_contiguous() });
        }
        if header.last_offset() >= offset {
            return Ok((position, header, reader));
        }
        expected_offset = header.last_offset() + 1;
        position += header.size_bytes() as u64;
    }
}

/// How often a read that failed with `Io` is tried in all: transient errors (a bus reset, a
/// timeout) pass on a retry; a latent sector error does not.
const READ_ATTEMPTS: u32 = 3;

fn read_retrying(
    storage: &mut dyn Storage,
    path: &str,
    position: u64,
    buf: &mut [u8],
) -> Result<(), StorageError> {
    let mut attempt = 1;
    loop {
        match storage.read_at(path, position, buf) {
            Err(StorageError::Io) if attempt < READ_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}
