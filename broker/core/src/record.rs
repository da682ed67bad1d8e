//! Kafka's record batch, format v2 (magic 2), encoded and validated byte for byte.
//!
//! A batch is what producers send, what the log stores and what consumers fetch; the broker never
//! re-encodes one. The layout (big-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset            (assigned by the log on append; not covered by the CRC)
//!      8     4  batch_length           (bytes after this field)
//!     12     4  partition_leader_epoch (assigned by the leader; not covered by the CRC)
//!     16     1  magic = 2
//!     17     4  crc                    (CRC32C of every byte from `attributes` to the end)
//!     21     2  attributes             (bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control)
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  record_count
//!     61     …  records (each: varint length, then attributes, timestamp delta, offset delta,
//!               key, value, headers — lengths as zigzag varints, -1 for null)
//! ```
//!
//! Parsing never panics on any input: every length is checked before it is used.

use std::fmt;

/// Bytes before the records of a v2 batch.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes of the log-overhead prefix: base offset and batch length.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only record format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// Where the CRC-covered part of a batch starts.
const CRC_START: usize = 21;
const CRC_FIELD: usize = 17;

/// Bits of the `attributes` field.
pub mod attributes {
    pub const COMPRESSION_MASK: i16 = 0x07;
    pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
    pub const TRANSACTIONAL: i16 = 0x10;
    pub const CONTROL: i16 = 0x20;
}

/// Why a batch was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    Truncated { needed: usize, available: usize },
    /// A declared length that no valid batch can have.
    InvalidLength(i32),
    /// A magic byte other than 2.
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes.
    CrcMismatch { stored: u32, computed: u32 },
    /// A compressed batch; this broker stores uncompressed batches only (for now).
    UnsupportedCompression(i16),
    /// The records section does not parse, or disagrees with the header.
    InvalidRecords(&'static str),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => {
                write!(f, "truncated batch: needs {needed} bytes, {available} available")
            }
            BatchError::InvalidLength(length) => write!(f, "invalid batch length {length}"),
            BatchError::UnsupportedMagic(magic) => write!(f, "unsupported magic {magic}"),
            BatchError::CrcMismatch { stored, computed } => {
                write!(f, "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            BatchError::UnsupportedCompression(codec) => write!(f, "unsupported compression codec {codec}"),
            BatchError::InvalidRecords(why) => write!(f, "invalid records: {why}"),
        }
    }
}

impl std::error::Error for BatchError {}

/// The fixed header of a v2 batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the log-overhead prefix only: base offset and total size in bytes. Enough to walk a
    /// log file batch by batch without reading the records.
    pub fn peek_size(buf: &[u8]) -> Result<(i64, usize), BatchError> {
        if buf.len() < LOG_OVERHEAD_BYTES {
            return Err(BatchError::Truncated { needed: LOG_OVERHEAD_BYTES, available: buf.len() });
        }
        let base_offset = read_i64(buf, 0);
        let batch_length = read_i32(buf, 8);
        let min_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
        if batch_length < min_length {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok((base_offset, LOG_OVERHEAD_BYTES + batch_length as usize))
    }

    /// Parses the header. Checks lengths and magic, not the CRC (see [`validate_batch`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let (base_offset, size) = BatchHeader::peek_size(buf)?;
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated { needed: BATCH_HEADER_BYTES.max(size), available: buf.len() });
        }
        let magic = buf[16] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(BatchHeader {
            base_offset,
            batch_length: read_i32(buf, 8),
            partition_leader_epoch: read_i32(buf, 12),
            magic,
            crc: read_u32(buf, CRC_FIELD),
            attributes: read_i16(buf, 21),
            last_offset_delta: read_i32(buf, 23),
            base_timestamp: read_i64(buf, 27),
            max_timestamp: read_i64(buf, 35),
            producer_id: read_i64(buf, 43),
            producer_epoch: read_i16(buf, 51),
            base_sequence: read_i32(buf, 53),
            record_count: read_i32(buf, 57),
        })
    }

    /// Total bytes of the batch, including the log overhead.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        // Saturating: the base offset is outside the CRC, so stored bytes may hold any value.
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn compression(&self) -> i16 {
        self.attributes & attributes::COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & attributes::TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & attributes::CONTROL != 0
    }
}

/// The CRC32C Kafka stores in a v2 batch: over every byte from `attributes` to the end.
pub fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START.min(batch.len())..])
}

/// Validates one whole batch at the start of `buf`: lengths, magic, CRC, and that the records
/// section parses and agrees with the header (count, contiguous offset deltas, last delta).
/// Returns the header; the batch occupies `header.size_bytes()` bytes of `buf`.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_batch_crc(buf)?;
    let batch = &buf[..header.size_bytes()];
    if header.compression() != 0 {
        return Err(BatchError::UnsupportedCompression(header.compression()));
    }
    let mut reader = RecordReader { buf: batch, position: BATCH_HEADER_BYTES };
    let count = header.record_count;
    if count < 0 {
        return Err(BatchError::InvalidRecords("negative record count"));
    }
    if count == 0 {
        return Err(BatchError::InvalidRecords("empty batch"));
    }
    // Walks the records' structure without building them: the same checks, in the same order, as
    // decoding each record would make (`tests::reference_validate` is that decoding version).
    for expected_delta in 0..count {
        if reader.skip_record()? != expected_delta {
            return Err(BatchError::InvalidRecords("offset deltas are not contiguous from zero"));
        }
    }
    if reader.position != batch.len() {
        return Err(BatchError::InvalidRecords("bytes after the last record"));
    }
    if header.last_offset_delta != count - 1 {
        return Err(BatchError::InvalidRecords("last offset delta disagrees with record count"));
    }
    Ok(header)
}

/// Checks lengths, magic and CRC only: what log recovery and the read path need to know that the
/// bytes are the ones that were written.
pub fn validate_batch_crc(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let size = header.size_bytes();
    if buf.len() < size {
        return Err(BatchError::Truncated { needed: size, available: buf.len() });
    }
    let computed = batch_crc(&buf[..size]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed });
    }
    Ok(header)
}

/// Rewrites the base offset of the batch at the start of `buf` (not covered by the CRC).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch at the start of `buf` (not covered by the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// One record, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A record with its absolute offset and timestamp, as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// What a producer puts in a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl NewRecord {
    /// A record with a value and no key or headers (a null-key producer's plain send).
    pub fn unkeyed(timestamp: i64, value: &[u8]) -> NewRecord {
        NewRecord { timestamp, key: None, value: Some(value.to_vec()), headers: Vec::new() }
    }
}

/// Producer identity for an idempotent or transactional batch; `NONE` for a plain one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

impl ProducerInfo {
    pub const NONE: ProducerInfo =
        ProducerInfo { producer_id: -1, producer_epoch: -1, base_sequence: -1, transactional: false };
}

/// Encodes an uncompressed v2 batch with base offset 0, as a producer sends it.
///
/// # Panics
/// If `records` is empty: Kafka has no empty data batches.
pub fn encode_batch(records: &[NewRecord], producer: ProducerInfo) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let base_timestamp = records.iter().map(|r| r.timestamp).min().unwrap_or(0);
    let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(0);
    let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + records.len() * 32);
    buf.extend_from_slice(&0i64.to_be_bytes()); // base offset
    buf.extend_from_slice(&0i32.to_be_bytes()); // batch length, patched below
    buf.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    buf.push(MAGIC_V2 as u8);
    buf.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    let attributes = if producer.transactional { attributes::TRANSACTIONAL } else { 0 };
    buf.extend_from_slice(&attributes.to_be_bytes());
    buf.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    buf.extend_from_slice(&base_timestamp.to_be_bytes());
    buf.extend_from_slice(&max_timestamp.to_be_bytes());
    buf.extend_from_slice(&producer.producer_id.to_be_bytes());
    buf.extend_from_slice(&producer.producer_epoch.to_be_bytes());
    buf.extend_from_slice(&producer.base_sequence.to_be_bytes());
    buf.extend_from_slice(&(records.len() as i32).to_be_bytes());
    debug_assert_eq!(buf.len(), BATCH_HEADER_BYTES);

    let mut body = Vec::with_capacity(64);
    for (delta, record) in records.iter().enumerate() {
        body.clear();
        body.push(0); // record attributes
        put_varlong(&mut body, record.timestamp - base_timestamp);
        put_varint(&mut body, delta as i32);
        put_bytes(&mut body, record.key.as_deref());
        put_bytes(&mut body, record.value.as_deref());
        put_varint(&mut body, record.headers.len() as i32);
        for (key, value) in &record.headers {
            put_bytes(&mut body, Some(key));
            put_bytes(&mut body, value.as_deref());
        }
        put_varint(&mut buf, body.len() as i32);
        buf.extend_from_slice(&body);
    }
    let batch_length = (buf.len() - LOG_OVERHEAD_BYTES) as i32;
    buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = batch_crc(&buf);
    buf[CRC_FIELD..CRC_FIELD + 4].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// Decodes the records of one CRC-valid batch at the start of `buf`.
pub fn decode_records(buf: &[u8]) -> Result<(BatchHeader, Vec<Record>), BatchError> {
    let header = validate_batch(buf)?;
    let mut reader = RecordReader { buf: &buf[..header.size_bytes()], position: BATCH_HEADER_BYTES };
    let mut records = Vec::with_capacity(header.record_count as usize);
    for _ in 0..header.record_count {
        records.push(reader.next_record()?);
    }
    Ok((header, records))
}

/// Walks a buffer of concatenated batches (a fetch response, a log segment), validating each
/// batch's CRC. Stops with an error at the first bad batch; a partial batch at the very end (a
/// fetch cut at its byte limit) ends the walk quietly, as Kafka's clients do.
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Batches<'a> {
        Batches { buf, position: 0 }
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.position..];
        if rest.is_empty() {
            return None;
        }
        match BatchHeader::peek_size(rest) {
            Err(BatchError::Truncated { .. }) => return None,
            Err(error) => {
                self.position = self.buf.len();
                return Some(Err(error));
            }
            Ok((_, size)) if size > rest.len() => return None,
            Ok(_) => {}
        }
        match validate_batch_crc(rest) {
            Ok(header) => {
                let size = header.size_bytes();
                self.position += size;
                Some(Ok((header, &rest[..size])))
            }
            Err(error) => {
                self.position = self.buf.len();
                Some(Err(error))
            }
        }
    }
}

/// Decodes every record of a buffer of concatenated batches with absolute offsets: what a consumer
/// does with a fetch response.
pub fn consume(buf: &[u8]) -> Result<Vec<ConsumedRecord>, BatchError> {
    let mut out = Vec::new();
    for batch in Batches::new(buf) {
        let (header, bytes) = batch?;
        if header.is_control() {
            continue;
        }
        let (_, records) = decode_records(bytes)?;
        for record in records {
            // Network input: an overflowing offset or timestamp is a bad batch, not a panic.
            let offset = header.base_offset.checked_add(i64::from(record.offset_delta));
            let timestamp = header.base_timestamp.checked_add(record.timestamp_delta);
            let (Some(offset), Some(timestamp)) = (offset, timestamp) else {
                return Err(BatchError::InvalidRecords("offset or timestamp overflows"));
            };
            out.push(ConsumedRecord { offset, timestamp, key: record.key, value: record.value });
        }
    }
    Ok(out)
}

struct RecordReader<'a> {
    buf: &'a [u8],
    position: usize,
}

impl RecordReader<'_> {
    fn next_record(&mut self) -> Result<Record, BatchError> {
        let length = self.varint()?;
        if length < 0 {
            return Err(BatchError::InvalidRecords("negative record length"));
        }
        let end = self
            .position
            .checked_add(length as usize)
            .filter(|end| *end <= self.buf.len())
            .ok_or(BatchError::InvalidRecords("record runs past the batch"))?;
        let _attributes = self.byte()?;
        let timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        let key = self.bytes()?;
        let value = self.bytes()?;
        let header_count = self.varint()?;
        if header_count < 0 {
            return Err(BatchError::InvalidRecords("negative header count"));
        }
        let mut headers = Vec::new();
        for _ in 0..header_count {
            let header_key = self.bytes()?.ok_or(BatchError::InvalidRecords("null header key"))?;
            headers.push((header_key, self.bytes()?));
        }
        if self.position != end {
            return Err(BatchError::InvalidRecords("record length disagrees with its fields"));
        }
        Ok(Record { offset_delta, timestamp_delta, key, value, headers })
    }

    /// Checks one record exactly as [`RecordReader::next_record`] decodes it — every length,
    /// count and bound, with the same error at the same place — without copying or allocating;
    /// returns its offset delta.
    fn skip_record(&mut self) -> Result<i32, BatchError> {
        let length = self.varint()?;
        if length < 0 {
            return Err(BatchError::InvalidRecords("negative record length"));
        }
        let end = self
            .position
            .checked_add(length as usize)
            .filter(|end| *end <= self.buf.len())
            .ok_or(BatchError::InvalidRecords("record runs past the batch"))?;
        let _attributes = self.byte()?;
        let _timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        let _key = self.skip_bytes()?;
        let _value = self.skip_bytes()?;
        let header_count = self.varint()?;
        if header_count < 0 {
            return Err(BatchError::InvalidRecords("negative header count"));
        }
        // Each header consumes at least two bytes or fails: the loop is bounded by the batch.
        for _ in 0..header_count {
            if !self.skip_bytes()? {
                return Err(BatchError::InvalidRecords("null header key"));
            }
            let _header_value = self.skip_bytes()?;
        }
        if self.position != end {
            return Err(BatchError::InvalidRecords("record length disagrees with its fields"));
        }
        Ok(offset_delta)
    }

    /// Steps over what [`RecordReader::bytes`] would read; `false` for a null field.
    fn skip_bytes(&mut self) -> Result<bool, BatchError> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(false);
        }
        self.position = self
            .position
            .checked_add(length as usize)
            .filter(|end| *end <= self.buf.len())
            .ok_or(BatchError::InvalidRecords("field runs past the batch"))?;
        Ok(true)
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        let byte = *self.buf.get(self.position).ok_or(BatchError::InvalidRecords("record truncated"))?;
        self.position += 1;
        Ok(byte)
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        // Most varints in a batch are one byte: decoded as the loop below would.
        if let Some(&byte) = self.buf.get(self.position).filter(|byte| **byte < 0x80) {
            self.position += 1;
            return Ok(i64::from(byte >> 1) ^ -i64::from(byte & 1));
        }
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(BatchError::InvalidRecords("varint too long"));
            }
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(BatchError::InvalidRecords("varint too long"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| BatchError::InvalidRecords("varint out of range"))
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, BatchError> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        let end = self
            .position
            .checked_add(length as usize)
            .filter(|end| *end <= self.buf.len())
            .ok_or(BatchError::InvalidRecords("field runs past the batch"))?;
        let bytes = self.buf[self.position..end].to_vec();
        self.position = end;
        Ok(Some(bytes))
    }
}

fn put_varlong(buf: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        buf.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.push(raw as u8);
}

fn put_varint(buf: &mut Vec<u8>, value: i32) {
    put_varlong(buf, i64::from(value));
}

fn put_bytes(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_varint(buf, bytes.len() as i32);
            buf.extend_from_slice(bytes);
        }
    }
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn record(timestamp: i64, value: &[u8]) -> NewRecord {
        NewRecord::unkeyed(timestamp, value)
    }

    /// A golden batch: one record, key "k", value "v", one header, timestamp 1000, plain producer.
    /// The bytes were derived by hand from Kafka's v2 layout; the CRC is CRC32C over bytes 21.. .
    #[test]
    fn golden_single_record_batch() {
        let batch = encode_batch(
            &[NewRecord {
                timestamp: 1000,
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                headers: vec![(b"h".to_vec(), Some(b"x".to_vec()))],
            }],
            ProducerInfo::NONE,
        );
        let expected_record: &[u8] = &[
            0x18, // length 12, zigzag-encoded
            0x00, // attributes
            0x00, // timestamp delta 0
            0x00, // offset delta 0
            0x02, b'k', // key length 1, "k"
            0x02, b'v', // value length 1, "v"
            0x02, // one header
            0x02, b'h', 0x02, b'x',
        ];
        assert_eq!(&batch[BATCH_HEADER_BYTES..], expected_record);
        assert_eq!(read_i32(&batch, 8), (batch.len() - 12) as i32);
        assert_eq!(batch[16], 2);
        assert_eq!(read_i32(&batch, 23), 0); // last offset delta
        assert_eq!(read_i64(&batch, 27), 1000);
        assert_eq!(read_i64(&batch, 35), 1000);
        assert_eq!(read_i64(&batch, 43), -1);
        assert_eq!(read_i32(&batch, 57), 1);
        assert_eq!(read_u32(&batch, 17), crc32c::crc32c(&batch[21..]));
        validate_batch(&batch).expect("golden batch is valid");
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C (Castagnoli) check value from the RFC 3720 / iSCSI test vectors.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn base_offset_and_epoch_are_outside_the_crc() {
        let mut batch = encode_batch(&[record(5, b"a"), record(6, b"b")], ProducerInfo::NONE);
        set_base_offset(&mut batch, 42);
        set_partition_leader_epoch(&mut batch, 7);
        let header = validate_batch(&batch).unwrap();
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.last_offset(), 43);
        assert_eq!(header.partition_leader_epoch, 7);
        let records = consume(&batch).unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![42, 43]);
        assert_eq!(records[1].timestamp, 6);
    }

    #[test]
    fn every_flipped_bit_in_the_covered_part_is_caught() {
        let batch = encode_batch(&[record(1, b"hello"), record(2, b"world")], ProducerInfo::NONE);
        for byte in CRC_START..batch.len() {
            for bit in 0..8 {
                let mut damaged = batch.clone();
                damaged[byte] ^= 1 << bit;
                assert!(validate_batch_crc(&damaged).is_err(), "flip at byte {byte} bit {bit} not caught");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let batch = encode_batch(&[record(1, b"hello")], ProducerInfo::NONE);
        for len in 0..batch.len() {
            assert!(validate_batch(&batch[..len]).is_err());
        }
        let mut bad_magic = batch.clone();
        bad_magic[16] = 1;
        assert_eq!(validate_batch(&bad_magic), Err(BatchError::UnsupportedMagic(1)));
        let mut bad_length = batch.clone();
        bad_length[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(validate_batch(&bad_length), Err(BatchError::InvalidLength(-5)));
        assert!(consume(&[0xff; 100]).is_err());
    }

    #[test]
    fn batches_iterator_stops_quietly_at_a_partial_tail() {
        let mut buf = encode_batch(&[record(1, b"a")], ProducerInfo::NONE);
        let second = encode_batch(&[record(2, b"b")], ProducerInfo::NONE);
        buf.extend_from_slice(&second[..second.len() - 3]);
        let batches: Vec<_> = Batches::new(&buf).collect();
        assert_eq!(batches.len(), 1);
        assert!(batches[0].is_ok());
    }

    /// Full validation by decoding every record (allocating): what `validate_batch` did before it
    /// learned to walk the records without building them. The reference it must agree with.
    fn reference_validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = validate_batch_crc(buf)?;
        let batch = &buf[..header.size_bytes()];
        if header.compression() != 0 {
            return Err(BatchError::UnsupportedCompression(header.compression()));
        }
        let mut reader = RecordReader { buf: batch, position: BATCH_HEADER_BYTES };
        let count = header.record_count;
        if count < 0 {
            return Err(BatchError::InvalidRecords("negative record count"));
        }
        if count == 0 {
            return Err(BatchError::InvalidRecords("empty batch"));
        }
        for expected_delta in 0..count {
            let record = reader.next_record()?;
            if record.offset_delta != expected_delta {
                return Err(BatchError::InvalidRecords("offset deltas are not contiguous from zero"));
            }
        }
        if reader.position != batch.len() {
            return Err(BatchError::InvalidRecords("bytes after the last record"));
        }
        if header.last_offset_delta != count - 1 {
            return Err(BatchError::InvalidRecords("last offset delta disagrees with record count"));
        }
        Ok(header)
    }

    /// Makes `batch_length` and the CRC agree with the bytes again, so that validation gets past
    /// them to the records.
    fn reseal(batch: &mut [u8]) {
        if batch.len() >= BATCH_HEADER_BYTES {
            let batch_length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
            batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
            let crc = batch_crc(batch);
            batch[CRC_FIELD..CRC_FIELD + 4].copy_from_slice(&crc.to_be_bytes());
        }
    }

    type Field = Option<Vec<u8>>;
    type Header = (Vec<u8>, Field);

    fn arbitrary_records() -> impl Strategy<Value = Vec<NewRecord>> {
        let field = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20));
        let header = (proptest::collection::vec(any::<u8>(), 0..6), field());
        let record = (any::<i64>(), field(), field(), proptest::collection::vec(header, 0..3));
        let records = proptest::collection::vec(record, 1..8);
        records.prop_map(|records| {
            let to_record = |(timestamp, key, value, headers): (i64, Field, Field, Vec<Header>)| NewRecord {
                // Deltas from the smallest timestamp must not overflow.
                timestamp: timestamp >> 2,
                key,
                value,
                headers,
            };
            records.into_iter().map(to_record).collect()
        })
    }

    /// One way of damaging a batch; the bytes past the fixed header are the records.
    #[derive(Clone, Debug)]
    enum Mutation {
        /// Overwrite a byte of the records (index taken modulo their length).
        Set(usize, u8),
        /// Insert a byte among the records.
        Insert(usize, u8),
        /// Remove a byte of the records.
        Remove(usize),
        /// Overwrite a byte of the header's `last_offset_delta` or `record_count`.
        Counts(usize, u8),
        /// Cut the batch to this many bytes.
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        // Varint-significant values (continuation bits, zigzag -1, sign bits) and anything else.
        let byte = prop_oneof![
            Just(0x00u8),
            Just(0x01),
            Just(0x02),
            Just(0x7f),
            Just(0x80),
            Just(0xff),
            any::<u8>()
        ];
        prop_oneof![
            3 => (any::<usize>(), byte.clone()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
            1 => (any::<usize>(), byte.clone()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
            1 => any::<usize>().prop_map(Mutation::Remove),
            1 => (0..8usize, byte).prop_map(|(at, byte)| Mutation::Counts(at, byte)),
            1 => any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn mutate(batch: &mut Vec<u8>, mutation: &Mutation) {
        let records = batch.len() - BATCH_HEADER_BYTES;
        match *mutation {
            Mutation::Set(at, byte) if records > 0 => batch[BATCH_HEADER_BYTES + at % records] = byte,
            Mutation::Insert(at, byte) => batch.insert(BATCH_HEADER_BYTES + at % (records + 1), byte),
            Mutation::Remove(at) if records > 0 => {
                batch.remove(BATCH_HEADER_BYTES + at % records);
            }
            Mutation::Counts(at, byte) => {
                // Bytes 23..27 are last_offset_delta, 57..61 record_count.
                let field = if at < 4 { 23 + at } else { 57 + at - 4 };
                batch[field] = byte;
            }
            Mutation::Truncate(len) => batch.truncate(BATCH_HEADER_BYTES + len % (records + 1)),
            Mutation::Set(..) | Mutation::Remove(_) => {}
        }
    }

    #[test]
    fn the_walking_validator_agrees_with_decoding_on_hand_made_damage() {
        let batch = encode_batch(
            &[
                NewRecord {
                    timestamp: 7,
                    key: Some(b"key".to_vec()),
                    value: None,
                    headers: vec![(b"h".to_vec(), None), (Vec::new(), Some(b"v".to_vec()))],
                },
                record(9, b"value"),
            ],
            ProducerInfo::NONE,
        );
        assert_eq!(validate_batch(&batch), reference_validate(&batch));
        assert!(validate_batch(&batch).is_ok());
        // Every byte of the records set to every value, resealed: each error must match.
        let mut errors = BTreeSet::new();
        for at in BATCH_HEADER_BYTES..batch.len() {
            for byte in 0..=255u8 {
                let mut damaged = batch.clone();
                damaged[at] = byte;
                reseal(&mut damaged);
                let walked = validate_batch(&damaged);
                assert_eq!(walked, reference_validate(&damaged), "byte {at} set to {byte:#04x}");
                if let Err(error) = walked {
                    errors.insert(error.to_string());
                }
            }
        }
        // The damage reached the record checks, not only the CRC.
        for why in [
            "negative record length",
            "record runs past the batch",
            "field runs past the batch",
            "negative header count",
            "null header key",
            "record length disagrees with its fields",
            "offset deltas are not contiguous from zero",
            "record truncated",
        ] {
            assert!(errors.iter().any(|error| error.contains(why)), "no case hit {why:?}: {errors:?}");
        }
        // Varints one byte cannot break: too wide for an i32, too long for an i64.
        let wide: &[&[u8]] = &[&[0xff, 0xff, 0xff, 0xff, 0x7f], &[0xff; 11], &[0xff; 10]];
        for records in wide {
            let mut damaged = batch[..BATCH_HEADER_BYTES].to_vec();
            damaged.extend_from_slice(records);
            reseal(&mut damaged);
            let walked = validate_batch(&damaged);
            assert_eq!(walked, reference_validate(&damaged), "records {records:02x?}");
            assert!(walked.is_err_and(|error| error.to_string().contains("varint")), "{records:02x?}");
        }
    }

    proptest! {
        #[test]
        fn the_walking_validator_agrees_with_decoding_on_random_and_mutated_batches(
            records in arbitrary_records(),
            mutations in proptest::collection::vec(mutation(), 0..4),
            resealed in any::<bool>(),
        ) {
            let mut batch = encode_batch(&records, ProducerInfo::NONE);
            prop_assert!(validate_batch(&batch).is_ok());
            for mutation in &mutations {
                mutate(&mut batch, mutation);
            }
            if resealed {
                reseal(&mut batch);
            }
            prop_assert_eq!(validate_batch(&batch), reference_validate(&batch));
        }

        #[test]
        fn the_walking_validator_agrees_with_decoding_on_arbitrary_records(
            records in proptest::collection::vec(any::<u8>(), 0..200),
            count in prop_oneof![Just(1i32), Just(2), Just(3), any::<i32>()],
        ) {
            let mut batch = encode_batch(&[record(0, b"")], ProducerInfo::NONE);
            batch.truncate(BATCH_HEADER_BYTES);
            batch[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
            batch[57..61].copy_from_slice(&count.to_be_bytes());
            batch.extend_from_slice(&records);
            reseal(&mut batch);
            prop_assert_eq!(validate_batch(&batch), reference_validate(&batch));
        }

        #[test]
        fn encode_then_decode_round_trips(
            values in proptest::collection::vec(
                (any::<i32>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))),
                1..20,
            )
        ) {
            let records: Vec<NewRecord> = values
                .iter()
                .map(|(ts, value)| NewRecord {
                    timestamp: i64::from(*ts),
                    key: value.clone().map(|mut v| { v.reverse(); v }),
                    value: value.clone(),
                    headers: Vec::new(),
                })
                .collect();
            let batch = encode_batch(&records, ProducerInfo::NONE);
            let (header, decoded) = decode_records(&batch).unwrap();
            prop_assert_eq!(header.record_count as usize, records.len());
            for (record, got) in records.iter().zip(decoded) {
                prop_assert_eq!(header.base_timestamp.checked_add(got.timestamp_delta), Some(record.timestamp));
                prop_assert_eq!(&got.value, &record.value);
                prop_assert_eq!(&got.key, &record.key);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_batch(&bytes);
            let _ = consume(&bytes);
        }
    }

    #[test]
    fn offsets_and_timestamps_that_overflow_are_an_error_not_a_panic() {
        let records = [NewRecord { timestamp: 0, value: Some(b"v".to_vec()), ..NewRecord::default() }];
        let mut near_end = encode_batch(&records, ProducerInfo::NONE);
        near_end.extend(encode_batch(&[records[0].clone(), records[0].clone()], ProducerInfo::NONE));
        let second = near_end.len()
            - encode_batch(&[records[0].clone(), records[0].clone()], ProducerInfo::NONE).len();
        set_base_offset(&mut near_end[second..], i64::MAX);
        assert_eq!(BatchHeader::parse(&near_end[second..]).unwrap().last_offset(), i64::MAX);
        assert!(consume(&near_end).is_err());
    }
}
