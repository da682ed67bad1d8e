//! Unit tests of the partition log over an in-memory storage that counts reads and can fail
//! writes on demand. Crashes here are "drop the log and open again": this storage has no
//! durability model (the simulated disk has; see `tests/tests/log_model.rs`).

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::env::{FaultSites, Time};
use crate::record::{consume, encode_batch, ConsumedRecord, NewRecord, ProducerInfo, BATCH_HEADER_BYTES};
use crate::test_support::MemStorage;

/// Plants chosen per test; `roll_early` makes the `log.roll_early` site fire every time.
#[derive(Default)]
struct TestFaults {
    plants: BTreeSet<Plant>,
    roll_early: bool,
}

impl FaultSites for TestFaults {
    fn buggify(&mut self, site: &'static str) -> bool {
        site == "log.roll_early" && self.roll_early
    }

    fn planted(&self, bug: Plant) -> bool {
        self.plants.contains(&bug)
    }
}

const DIR: &str = "topic-0";

struct World {
    storage: MemStorage,
    rng: ChaCha8Rng,
    faults: TestFaults,
    wall_clock_ms: i64,
}

impl World {
    fn new() -> World {
        World {
            storage: MemStorage::default(),
            rng: ChaCha8Rng::seed_from_u64(7),
            faults: TestFaults::default(),
            wall_clock_ms: 1_000_000,
        }
    }

    fn env(&mut self) -> Env<'_> {
        Env {
            now: Time::ZERO,
            wall_clock_ms: self.wall_clock_ms,
            storage: &mut self.storage,
            rng: &mut self.rng,
            faults: &mut self.faults,
        }
    }

    fn open(&mut self, config: &LogConfig) -> (PartitionLog, RecoveryReport) {
        let (log, report) = PartitionLog::open(&mut self.env(), DIR, config.clone()).expect("the log opens");
        log.verify(&mut self.env()).expect("a freshly opened log verifies");
        (log, report)
    }

    fn file(&mut self, path: &str) -> &mut Vec<u8> {
        self.storage.files.get_mut(path).expect("the file exists")
    }
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: i64::MAX / 2,
        index_interval_bytes: 128,
        retention_bytes: None,
        retention_ms: None,
        max_batch_bytes: 8192,
    }
}

/// A batch of `count` records with timestamps from `timestamp`, values naming their batch.
fn batch(tag: u32, count: usize, timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..count)
        .map(|index| NewRecord {
            timestamp: timestamp + index as i64,
            key: None,
            value: Some(format!("batch {tag} record {index}").into_bytes()),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&records, ProducerInfo::NONE)
}

/// Appends `batches` batches of 1 to 3 records; returns every record as a consumer would see it.
fn fill(world: &mut World, log: &mut PartitionLog, batches: u32) -> Vec<ConsumedRecord> {
    let mut expected = Vec::new();
    for tag in 0..batches {
        let count = 1 + (tag % 3) as usize;
        let bytes = batch(tag, count, 1000 + i64::from(tag) * 10);
        let info = log.append(&mut world.env(), &bytes).expect("append");
        let mut stored = bytes.clone();
        set_base_offset(&mut stored, info.base_offset);
        expected.extend(consume(&stored).expect("valid"));
    }
    expected
}

/// Every record from `offset` to the end, reading `max_bytes` at a time.
fn read_all(world: &mut World, log: &PartitionLog, mut offset: i64, max_bytes: usize) -> Vec<ConsumedRecord> {
    let mut records = Vec::new();
    while offset < log.log_end_offset() {
        let read = log.read(&mut world.env(), offset, max_bytes).expect("read");
        let batch_records = consume(&read.bytes).expect("reads serve valid batches");
        assert!(!batch_records.is_empty(), "a read below the end serves at least one batch");
        records.extend(batch_records.into_iter().filter(|record| record.offset >= offset));
        offset = records.last().expect("records").offset + 1;
    }
    records
}

fn segment_paths(world: &World) -> Vec<String> {
    world.storage.files.keys().filter(|path| path.ends_with(".log")).cloned().collect()
}

fn sync_all(log: &mut PartitionLog) {
    if let Some(request) = log.sync_request() {
        log.on_sync_complete(request.up_to_offset);
    }
}

fn close(world: &mut World, mut log: PartitionLog) {
    let request = log.begin_close(&mut world.env()).expect("begin close");
    log.on_sync_complete(request.up_to_offset);
    log.complete_close(&mut world.env()).expect("complete close");
}

fn recovery_mentions(report: &RecoveryReport, words: &str) -> bool {
    report.actions.iter().any(|action| action.contains(words))
}

// ---- append and read ----

#[test]
fn an_empty_directory_opens_as_an_empty_log_at_offset_zero() {
    let mut world = World::new();
    let (log, report) = world.open(&small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.durable_offset()), (0, 0, 0));
    assert_eq!((log.segment_count(), log.size_bytes()), (1, 0));
    assert!(!report.clean_shutdown);
    assert_eq!(segment_paths(&world), vec![format!("{DIR}/00000000000000000000.log")]);
    let read = log.read(&mut world.env(), 0, 1000).unwrap();
    assert!(read.bytes.is_empty());
}

#[test]
fn append_assigns_offsets_and_read_returns_the_records() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let first = log.append(&mut world.env(), &batch(0, 3, 500)).unwrap();
    assert_eq!((first.base_offset, first.last_offset, first.max_timestamp, first.rolled), (0, 2, 502, false));
    let second = log.append(&mut world.env(), &batch(1, 2, 400)).unwrap();
    assert_eq!((second.base_offset, second.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);

    let read = log.read(&mut world.env(), 0, 1 << 20).unwrap();
    let records = consume(&read.bytes).unwrap();
    assert_eq!(records.iter().map(|record| record.offset).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert_eq!(records[3].value.as_deref(), Some(&b"batch 1 record 0"[..]));
    assert_eq!(records[4].timestamp, 401);
    assert_eq!((read.log_start_offset, read.log_end_offset), (0, 5));

    // A read inside a batch starts with the batch holding the offset.
    let read = log.read(&mut world.env(), 4, 1 << 20).unwrap();
    assert_eq!(consume(&read.bytes).unwrap().first().unwrap().offset, 3);
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn invalid_batches_are_rejected_and_change_nothing() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let good = batch(0, 2, 10);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x01;
    assert!(matches!(
        log.append(&mut world.env(), &bad_crc),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(log.append(&mut world.env(), &trailing), Err(LogError::InvalidBatch(_))));
    assert!(matches!(log.append(&mut world.env(), &good[..30]), Err(LogError::InvalidBatch(_))));
    let huge = batch(1, 400, 10);
    assert!(huge.len() > 8192);
    assert_eq!(
        log.append(&mut world.env(), &huge),
        Err(LogError::BatchTooLarge { size: huge.len() as u64, max: 8192 })
    );
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    assert!(log.sync_request().is_none(), "nothing was written");
    log.append(&mut world.env(), &good).unwrap();
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn reads_cross_segment_boundaries_and_return_every_record() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let expected = fill(&mut world, &mut log, 120);
    assert!(log.segment_count() > 5, "small segments roll often: {}", log.segment_count());
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);
    // One big read spans segments.
    let read = log.read(&mut world.env(), 0, 1 << 20).unwrap();
    assert_eq!(consume(&read.bytes).unwrap(), expected);
    // Start in the last batch of a segment: the read continues into the next one.
    let bases = log.segment_base_offsets();
    let second_base = bases[1];
    let read = log.read(&mut world.env(), second_base - 1, 400).unwrap();
    let records = consume(&read.bytes).unwrap();
    assert!(records.iter().any(|record| record.offset < second_base));
    assert!(records.iter().any(|record| record.offset >= second_base));
    for offset in 0..log.log_end_offset() {
        let read = log.read(&mut world.env(), offset, 1).unwrap();
        let records = consume(&read.bytes).unwrap();
        assert!(records.iter().any(|record| record.offset == offset), "offset {offset} served");
    }
}

#[test]
fn max_bytes_limits_whole_batches_but_serves_at_least_one() {
    let mut world = World::new();
    let (mut log, _) = world.open(&LogConfig { segment_bytes: 1 << 20, ..small_config() });
    let sizes: Vec<usize> = (0..10u32)
        .map(|tag| {
            let bytes = batch(tag, 2, 100);
            log.append(&mut world.env(), &bytes).unwrap();
            bytes.len()
        })
        .collect();
    // Room for exactly three batches, and one byte short of four.
    let three: usize = sizes[..3].iter().sum();
    let four: usize = sizes[..4].iter().sum();
    assert_eq!(log.read(&mut world.env(), 0, three).unwrap().bytes.len(), three);
    assert_eq!(log.read(&mut world.env(), 0, four - 1).unwrap().bytes.len(), three);
    // A limit smaller than the first batch still serves that batch, and only it.
    let read = log.read(&mut world.env(), 0, 10).unwrap();
    assert_eq!(read.bytes.len(), sizes[0]);
    assert_eq!(consume(&read.bytes).unwrap().len(), 2);
    let read = log.read(&mut world.env(), 0, 0).unwrap();
    assert_eq!(read.bytes.len(), sizes[0]);
}

#[test]
fn reads_outside_the_log_are_out_of_range_and_at_the_end_are_empty() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    fill(&mut world, &mut log, 5);
    let end = log.log_end_offset();
    assert!(log.read(&mut world.env(), end, 100).unwrap().bytes.is_empty());
    let out_of_range =
        LogError::OffsetOutOfRange { offset: end + 1, log_start_offset: 0, log_end_offset: end };
    assert_eq!(log.read(&mut world.env(), end + 1, 100), Err(out_of_range));
    assert!(matches!(log.read(&mut world.env(), -1, 100), Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn a_failed_write_leaves_the_log_as_it_was() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let expected = fill(&mut world, &mut log, 4);
    let (end, size) = (log.log_end_offset(), log.size_bytes());
    sync_all(&mut log);
    world.storage.writes_before_failure = Some(0);
    assert_eq!(log.append(&mut world.env(), &batch(9, 2, 0)), Err(LogError::Storage(StorageError::Io)));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    assert!(log.sync_request().is_none(), "nothing new to sync");
    log.verify(&mut world.env()).expect("the torn bytes were cut off");
    let info = log.append(&mut world.env(), &batch(10, 1, 0)).unwrap();
    assert_eq!(info.base_offset, end);
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20)[..expected.len()], expected[..]);
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn a_failed_index_write_does_not_fail_the_append_and_a_clean_close_rewrites_the_index() {
    let mut world = World::new();
    let config = LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 1, ..small_config() };
    let (mut log, _) = world.open(&config);
    let index = index_path(DIR, 0);
    // Every batch but the first is indexed; the entries reach the index file in runs.
    for tag in 0..INDEX_WRITE_ENTRIES as u32 {
        log.append(&mut world.env(), &batch(tag, 1, 10)).unwrap();
    }
    assert!(world.storage.files[&index].is_empty(), "entries are not written one by one");
    // The next batch completes a run: its log write goes through, the offset-index write fails.
    world.storage.writes_before_failure = Some(1);
    let info = log.append(&mut world.env(), &batch(1000, 1, 20)).unwrap();
    assert_eq!(info.base_offset, INDEX_WRITE_ENTRIES as i64);
    assert_eq!(world.storage.writes_before_failure, None, "the failure was spent on the index");
    log.append(&mut world.env(), &batch(1001, 1, 30)).unwrap();
    let entries = INDEX_WRITE_ENTRIES + 1;
    assert_ne!(
        world.storage.files[&index].len(),
        entries * OFFSET_INDEX_ENTRY_BYTES,
        "the file missed entries"
    );
    log.verify(&mut world.env()).unwrap();
    close(&mut world, log);
    assert_eq!(world.storage.files[&index].len(), entries * OFFSET_INDEX_ENTRY_BYTES, "the close rewrote it");
    let (log, report) = world.open(&config);
    assert!(report.clean_shutdown, "{:?}", report.actions);
    assert!(!recovery_mentions(&report, "rebuil"), "{:?}", report.actions);
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20).len(), entries + 1);
}

#[test]
fn index_entries_reach_their_files_in_runs_at_rolls_and_at_a_clean_close() {
    let mut world = World::new();
    let config = LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 1, ..small_config() };
    let (mut log, _) = world.open(&config);
    let index = |world: &World, base: i64| world.storage.files[&index_path(DIR, base)].len();
    let runs = 2;
    for tag in 0..(runs * INDEX_WRITE_ENTRIES + 5) as u32 {
        log.append(&mut world.env(), &batch(tag, 1, i64::from(tag))).unwrap();
    }
    assert_eq!(index(&world, 0), runs * INDEX_WRITE_ENTRIES * OFFSET_INDEX_ENTRY_BYTES, "whole runs only");
    assert!(log.roll(&mut world.env()).unwrap());
    let second = log.log_end_offset();
    let all_entries = (second - 1) as usize;
    assert_eq!(index(&world, 0), all_entries * OFFSET_INDEX_ENTRY_BYTES, "a roll completes the old index");
    for tag in 0..3 {
        log.append(&mut world.env(), &batch(2000 + tag, 1, 5000)).unwrap();
    }
    assert_eq!(index(&world, second), 0);
    // A truncation inside the written part cuts the file to the entries below the cut.
    log.truncate_to(&mut world.env(), 100).unwrap();
    assert_eq!(index(&world, 0), 99 * OFFSET_INDEX_ENTRY_BYTES);
    log.verify(&mut world.env()).unwrap();
    log.append(&mut world.env(), &batch(3000, 1, 6000)).unwrap();
    log.append(&mut world.env(), &batch(3001, 1, 6001)).unwrap();
    close(&mut world, log);
    assert_eq!(index(&world, 0), 101 * OFFSET_INDEX_ENTRY_BYTES, "the close wrote the rest");
    let (log, report) = world.open(&config);
    assert!(report.clean_shutdown, "{:?}", report.actions);
    assert!(!recovery_mentions(&report, "rebuil"), "{:?}", report.actions);
    log.verify(&mut world.env()).unwrap();
}

// ---- leader and follower appends, batch headers ----

/// Every stored batch of `log`, whole, as one read returns them.
fn stored_batches(world: &mut World, log: &PartitionLog) -> Vec<Vec<u8>> {
    let read = log.read(&mut world.env(), log.log_start_offset(), 1 << 30).unwrap();
    crate::record::Batches::new(&read.bytes)
        .map(|batch| batch.expect("reads serve valid batches").1.to_vec())
        .collect()
}

#[test]
fn append_as_leader_stamps_the_epoch_and_the_crc_still_validates() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let sent = batch(0, 3, 500);
    assert_eq!(BatchHeader::parse(&sent).unwrap().partition_leader_epoch, -1, "producers send no epoch");
    let info = log.append_as_leader(&mut world.env(), &sent, 7).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.max_timestamp, info.rolled), (0, 2, 502, false));
    let info = log.append_as_leader(&mut world.env(), &batch(1, 2, 600), 9).unwrap();
    assert_eq!(info.base_offset, 3);
    // A plain append leaves the epoch as the client sent it.
    log.append(&mut world.env(), &batch(2, 1, 700)).unwrap();

    let stored = stored_batches(&mut world, &log);
    let headers: Vec<BatchHeader> = stored.iter().map(|bytes| validate_batch(bytes).unwrap()).collect();
    let epochs: Vec<(i64, i32)> = headers.iter().map(|h| (h.base_offset, h.partition_leader_epoch)).collect();
    assert_eq!(epochs, vec![(0, 7), (3, 9), (5, -1)]);
    // Only the base offset and the epoch differ from what was sent; the CRC is the sender's.
    let mut expected = sent.clone();
    set_base_offset(&mut expected, 0);
    set_partition_leader_epoch(&mut expected, 7);
    assert_eq!(stored[0], expected);
    assert_eq!(headers[0].crc, BatchHeader::parse(&sent).unwrap().crc);
    log.verify(&mut world.env()).unwrap();

    // An unclean reopen scans every batch, CRC included: the stamped batches pass.
    drop(log);
    let (log, report) = world.open(&small_config());
    assert!(!report.clean_shutdown);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(stored_batches(&mut world, &log), stored);
}

#[test]
#[should_panic(expected = "never negative")]
fn append_as_leader_with_a_negative_epoch_is_a_caller_bug() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let _ = log.append_as_leader(&mut world.env(), &batch(0, 1, 0), -1);
}

#[test]
fn append_replicated_keeps_the_leaders_bytes_exactly_across_rolls() {
    let mut world = World::new();
    let config = small_config();
    let (mut leader, _) = world.open(&config);
    for tag in 0..60u32 {
        let epoch = 3 + (tag / 20) as i32;
        leader.append_as_leader(&mut world.env(), &batch(tag, 1 + (tag % 3) as usize, 1000), epoch).unwrap();
    }
    assert!(leader.segment_count() > 2);
    let (mut follower, _) = PartitionLog::open(&mut world.env(), "follower-0", config.clone()).unwrap();
    for fetched in stored_batches(&mut world, &leader) {
        let header = BatchHeader::parse(&fetched).unwrap();
        let info = follower.append_replicated(&mut world.env(), &fetched).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (header.base_offset, header.last_offset()));
    }
    follower.verify(&mut world.env()).unwrap();
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.segment_base_offsets(), leader.segment_base_offsets(), "the same rolls");
    assert_eq!(stored_batches(&mut world, &follower), stored_batches(&mut world, &leader));
    for base_offset in leader.segment_base_offsets() {
        let leader_file = world.storage.files[&log_path(DIR, base_offset)].clone();
        assert_eq!(world.storage.files[&log_path("follower-0", base_offset)], leader_file);
    }
}

#[test]
fn append_replicated_refuses_a_gap_an_overlap_and_bad_bytes_and_changes_nothing() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let mut next = batch(0, 2, 10);
    set_partition_leader_epoch(&mut next, 4);
    log.append_replicated(&mut world.env(), &next).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    let files_before = world.storage.files.clone();

    for (base_offset, what) in [(3, "a gap"), (1, "an overlap"), (0, "a duplicate")] {
        let mut bytes = batch(1, 1, 20);
        set_base_offset(&mut bytes, base_offset);
        assert_eq!(
            log.append_replicated(&mut world.env(), &bytes),
            Err(LogError::OffsetOutOfRange { offset: base_offset, log_start_offset: 0, log_end_offset: 2 }),
            "{what}"
        );
    }
    let mut good = batch(1, 1, 20);
    set_base_offset(&mut good, 2);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x01;
    assert!(matches!(
        log.append_replicated(&mut world.env(), &bad_crc),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(log.append_replicated(&mut world.env(), &trailing), Err(LogError::InvalidBatch(_))));
    assert!(matches!(log.append_replicated(&mut world.env(), &good[..40]), Err(LogError::InvalidBatch(_))));
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(
        log.append_replicated(&mut world.env(), &bad_magic),
        Err(LogError::InvalidBatch(BatchError::UnsupportedMagic(1)))
    );
    let mut huge = batch(2, 400, 10);
    set_base_offset(&mut huge, 2);
    assert!(matches!(log.append_replicated(&mut world.env(), &huge), Err(LogError::BatchTooLarge { .. })));

    assert_eq!(world.storage.files, files_before, "a refused batch changes no byte");
    assert_eq!((log.log_end_offset(), log.size_bytes()), (2, next.len() as u64));
    log.append_replicated(&mut world.env(), &good).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn batch_headers_list_every_batch_from_the_one_holding_the_offset_to_the_end() {
    let mut world = World::new();
    let config = LogConfig { retention_bytes: Some(20_000), ..small_config() };
    let (mut log, _) = world.open(&config);
    // Enough bytes that a scan takes several bounded reads, across many segments.
    for tag in 0..1600u32 {
        let epoch = (tag / 200) as i32;
        log.append_as_leader(&mut world.env(), &batch(tag, 1 + (tag % 3) as usize, 1000), epoch).unwrap();
    }
    assert!(log.size_bytes() > 2 * BATCH_HEADERS_READ_BYTES as u64);
    let expected: Vec<BatchHeader> =
        stored_batches(&mut world, &log).iter().map(|bytes| BatchHeader::parse(bytes).unwrap()).collect();
    assert_eq!(log.batch_headers(&mut world.env(), 0).unwrap(), expected);

    // From inside a batch: that batch first.
    let inside = expected.iter().position(|header| header.last_offset_delta > 0).unwrap();
    let from = expected[inside].base_offset + 1;
    assert_eq!(log.batch_headers(&mut world.env(), from).unwrap(), expected[inside..]);
    let end = log.log_end_offset();
    assert_eq!(log.batch_headers(&mut world.env(), end).unwrap(), Vec::new());
    assert!(matches!(log.batch_headers(&mut world.env(), end + 1), Err(LogError::OffsetOutOfRange { .. })));

    // After retention the scan starts at the new log start; below it is out of range.
    sync_all(&mut log);
    log.apply_retention(&mut world.env()).unwrap();
    let start = log.log_start_offset();
    assert!(start > 0);
    let kept: Vec<BatchHeader> =
        expected.iter().copied().filter(|header| header.base_offset >= start).collect();
    assert_eq!(log.batch_headers(&mut world.env(), start).unwrap(), kept);
    assert!(matches!(log.batch_headers(&mut world.env(), 0), Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn batch_headers_report_a_corrupt_batch_anywhere_in_the_scan() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    fill(&mut world, &mut log, 60);
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 2);
    // Damage a record byte (inside the CRC) of the third segment's first batch.
    let path = log_path(DIR, bases[2]);
    world.file(&path)[BATCH_HEADER_BYTES + 2] ^= 0x40;
    let error = log.batch_headers(&mut world.env(), 0).map(|_| ()).expect_err("the damage is seen");
    assert!(
        matches!(error, LogError::Corrupt { segment_base_offset, .. } if segment_base_offset == bases[2]),
        "{error:?}"
    );
    // Before the damage the headers are still there to read.
    let read = log.read(&mut world.env(), bases[1], 1).unwrap();
    assert!(!read.bytes.is_empty());
}

// ---- timestamps ----

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_the_timestamp() {
    let mut world = World::new();
    let (mut log, _) = world.open(&LogConfig { index_interval_bytes: 64, ..small_config() });
    // Timestamps that go up and down, as producers' clocks do.
    let mut batches: Vec<Vec<ConsumedRecord>> = Vec::new();
    for tag in 0..60u32 {
        let start = 1000 + i64::from(tag * 37 % 50) * 10 + i64::from(tag) * 3;
        let bytes = batch(tag, 1 + (tag % 4) as usize, start);
        let info = log.append(&mut world.env(), &bytes).unwrap();
        let mut stored = bytes;
        set_base_offset(&mut stored, info.base_offset);
        batches.push(consume(&stored).unwrap());
    }
    assert!(log.segment_count() > 3);
    // The reference: the first batch whose maximum reaches the timestamp, then its first record that does.
    let reference = |timestamp: i64| {
        let batch = batches.iter().find(|batch| batch.iter().any(|record| record.timestamp >= timestamp))?;
        batch
            .iter()
            .find(|record| record.timestamp >= timestamp)
            .map(|record| (record.offset, record.timestamp))
    };
    for timestamp in (900..1800).step_by(7) {
        let found = log.offset_for_timestamp(&mut world.env(), timestamp).unwrap();
        assert_eq!(found, reference(timestamp), "timestamp {timestamp}");
    }
    assert_eq!(log.offset_for_timestamp(&mut world.env(), 10_000).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(&mut world.env(), 0).unwrap(), Some((0, batches[0][0].timestamp)));
}

#[test]
fn offset_for_timestamp_agrees_with_a_scan_at_every_timestamp_of_a_sparse_time_index() {
    let mut world = World::new();
    // Few index entries, batches one millisecond apart, some timestamps repeated or going back.
    let (mut log, _) = world.open(&LogConfig { index_interval_bytes: 300, ..small_config() });
    let mut batches: Vec<Vec<ConsumedRecord>> = Vec::new();
    for tag in 0..80u32 {
        let start = 2000 + i64::from(tag) - i64::from(tag % 7 == 3) * 5;
        let bytes = batch(tag, 1 + usize::from(tag % 5 == 0), start);
        let info = log.append(&mut world.env(), &bytes).unwrap();
        let mut stored = bytes;
        set_base_offset(&mut stored, info.base_offset);
        batches.push(consume(&stored).unwrap());
    }
    let reference = |timestamp: i64| {
        let batch = batches.iter().find(|batch| batch.iter().any(|record| record.timestamp >= timestamp))?;
        batch
            .iter()
            .find(|record| record.timestamp >= timestamp)
            .map(|record| (record.offset, record.timestamp))
    };
    for timestamp in 1990..2090 {
        let found = log.offset_for_timestamp(&mut world.env(), timestamp).unwrap();
        assert_eq!(found, reference(timestamp), "timestamp {timestamp}");
    }
}

// ---- truncation ----

#[test]
fn truncate_to_a_batch_boundary_drops_everything_from_there() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let expected = fill(&mut world, &mut log, 60);
    sync_all(&mut log);
    let segments_before = log.segment_count();
    let bases = log.segment_base_offsets();
    // A boundary in the middle of the second segment.
    let read = log.read(&mut world.env(), bases[1], 1).unwrap();
    let first = consume(&read.bytes).unwrap();
    let boundary = first.last().unwrap().offset + 1;
    assert!(boundary > bases[1] && boundary < bases[2]);
    log.truncate_to(&mut world.env(), boundary).unwrap();
    assert_eq!(log.log_end_offset(), boundary);
    assert_eq!(log.durable_offset(), boundary, "the durable offset falls to the cut");
    assert_eq!(log.segment_count(), 2);
    assert!(segments_before > 2);
    assert_eq!(segment_paths(&world).len(), 2);
    log.verify(&mut world.env()).unwrap();
    let kept: Vec<_> = expected.iter().filter(|record| record.offset < boundary).cloned().collect();
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), kept);
    // The log continues from the cut, and the truncated segment is due for a sync.
    let request = log.sync_request().expect("the truncated segment is unsynced");
    assert_eq!(request.files, vec![log_path(DIR, bases[1])]);
    log.on_sync_complete(request.up_to_offset);
    let info = log.append(&mut world.env(), &batch(99, 2, 5)).unwrap();
    assert_eq!(info.base_offset, boundary);
    log.verify(&mut world.env()).unwrap();

    // Truncating to a segment's base leaves that segment, empty, as the active one.
    log.truncate_to(&mut world.env(), bases[1]).unwrap();
    assert_eq!((log.log_end_offset(), log.segment_count()), (bases[1], 2));
    log.verify(&mut world.env()).unwrap();
    log.truncate_to(&mut world.env(), 0).unwrap();
    assert_eq!((log.log_end_offset(), log.segment_count(), log.size_bytes()), (0, 1, 0));
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn truncate_inside_a_batch_or_outside_the_log_is_an_error() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    log.append(&mut world.env(), &batch(0, 3, 0)).unwrap();
    log.append(&mut world.env(), &batch(1, 3, 0)).unwrap();
    assert!(matches!(
        log.truncate_to(&mut world.env(), 4),
        Err(LogError::OffsetOutOfRange { offset: 4, .. })
    ));
    assert!(matches!(log.truncate_to(&mut world.env(), 7), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(log.log_end_offset(), 6);
    log.truncate_to(&mut world.env(), 6).unwrap();
    assert_eq!(log.log_end_offset(), 6, "truncating to the end changes nothing");
    log.truncate_to(&mut world.env(), 3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn a_sync_requested_before_a_cut_counts_only_up_to_the_cut() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    log.append(&mut world.env(), &batch(0, 2, 0)).unwrap();
    log.append(&mut world.env(), &batch(1, 2, 0)).unwrap();
    let request = log.sync_request().unwrap();
    assert_eq!(request.up_to_offset, 4);
    log.truncate_to(&mut world.env(), 2).unwrap();
    log.append(&mut world.env(), &batch(2, 3, 0)).unwrap();
    log.on_sync_complete(request.up_to_offset);
    assert_eq!(log.durable_offset(), 2, "the new records at 2..5 were not covered by that sync");
    sync_all(&mut log);
    assert_eq!(log.durable_offset(), 5);
}

// ---- rolling ----

#[test]
fn the_log_rolls_by_size_and_never_rolls_an_empty_segment() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let bytes = batch(0, 3, 0);
    let per_segment = config.segment_bytes as usize / bytes.len();
    for index in 0..per_segment {
        assert!(!log.append(&mut world.env(), &bytes).unwrap().rolled, "append {index} fits");
    }
    let info = log.append(&mut world.env(), &bytes).unwrap();
    assert!(info.rolled);
    assert_eq!(log.segment_base_offsets(), vec![0, info.base_offset]);
    assert!(log.roll(&mut world.env()).unwrap());
    assert!(!log.roll(&mut world.env()).unwrap(), "the new active segment is empty");
    assert_eq!(log.segment_count(), 3);
    // A batch larger than a segment goes into an empty segment whole.
    let big = batch(1, 60, 0);
    assert!(big.len() as u64 > config.segment_bytes);
    assert!(!log.append(&mut world.env(), &big).unwrap().rolled);
    assert!(log.append(&mut world.env(), &bytes).unwrap().rolled);
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn the_log_rolls_when_its_first_batch_is_older_than_segment_ms() {
    let mut world = World::new();
    let (mut log, _) = world.open(&LogConfig { segment_ms: 1000, segment_bytes: 1 << 20, ..small_config() });
    world.wall_clock_ms = 50_000;
    log.append(&mut world.env(), &batch(0, 1, 49_000)).unwrap();
    world.wall_clock_ms = 50_000;
    assert!(!log.append(&mut world.env(), &batch(1, 1, 49_500)).unwrap().rolled, "exactly segment_ms old");
    world.wall_clock_ms = 50_001;
    assert!(log.append(&mut world.env(), &batch(2, 1, 49_500)).unwrap().rolled);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn buggify_rolls_early_but_never_an_empty_segment() {
    let mut world = World::new();
    world.faults.roll_early = true;
    let (mut log, _) = world.open(&LogConfig { segment_bytes: 1 << 20, ..small_config() });
    assert!(!log.append(&mut world.env(), &batch(0, 1, 0)).unwrap().rolled);
    assert!(log.append(&mut world.env(), &batch(1, 1, 0)).unwrap().rolled);
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
}

// ---- retention ----

#[test]
fn retention_by_size_deletes_oldest_segments_but_never_the_active_one_nor_undurable_ones() {
    let mut world = World::new();
    let config = LogConfig { retention_bytes: Some(2500), ..small_config() };
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 80);
    let report = log.apply_retention(&mut world.env()).unwrap();
    assert!(report.deleted_segments.is_empty(), "nothing is durable yet");
    sync_all(&mut log);
    let sizes_before = log.size_bytes();
    let report = log.apply_retention(&mut world.env()).unwrap();
    assert!(!report.deleted_segments.is_empty());
    assert_eq!(report.log_start_offset, log.log_start_offset());
    assert_eq!(log.log_start_offset(), *log.segment_base_offsets().first().unwrap());
    assert!(log.size_bytes() >= 2500, "Kafka keeps at least retention.bytes");
    assert!(log.size_bytes() < sizes_before);
    let oldest_bytes = world.storage.files[&log_path(DIR, log.log_start_offset())].len() as u64;
    assert!(log.size_bytes() - oldest_bytes < 2500, "one more deletion would go below");
    for base in &report.deleted_segments {
        assert!(!world.storage.files.contains_key(&log_path(DIR, *base)));
        assert!(!world.storage.files.contains_key(&index_path(DIR, *base)));
    }
    let start = log.log_start_offset();
    let kept: Vec<_> = expected.into_iter().filter(|record| record.offset >= start).collect();
    assert_eq!(read_all(&mut world, &log, start, 1 << 20), kept);
    assert!(matches!(log.read(&mut world.env(), start - 1, 100), Err(LogError::OffsetOutOfRange { .. })));
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn delete_segments_below_removes_only_whole_durable_segments_below_the_offset() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    let expected = fill(&mut world, &mut log, 80);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    let cut = bases[2] + 1; // inside the third segment: the first two go, the third stays
    assert!(log.delete_segments_below(&mut world.env(), cut).unwrap().is_empty(), "nothing durable yet");
    sync_all(&mut log);
    let deleted = log.delete_segments_below(&mut world.env(), cut).unwrap();
    assert_eq!(deleted, bases[..2].to_vec());
    assert_eq!(log.log_start_offset(), bases[2]);
    let kept: Vec<_> = expected.iter().filter(|record| record.offset >= bases[2]).cloned().collect();
    assert_eq!(read_all(&mut world, &log, bases[2], 1 << 20), kept);
    // Everything below the end: every segment but the active one.
    let end = log.log_end_offset();
    log.delete_segments_below(&mut world.env(), end).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), end);
    log.verify(&mut world.env()).unwrap();
    drop(log);
    let (log, _) = world.open(&small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (*bases.last().unwrap(), end));
}

#[test]
fn reset_to_starts_an_empty_log_at_any_offset_and_it_reopens_there() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    fill(&mut world, &mut log, 40);
    let pending = log.sync_request().expect("appended data is unsynced");
    let target = log.log_end_offset() + 1_000;
    log.reset_to(&mut world.env(), target).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.durable_offset()),
        (target, target, target)
    );
    assert_eq!(segment_paths(&world), vec![log_path(DIR, target)]);
    log.on_sync_complete(pending.up_to_offset);
    assert_eq!(log.durable_offset(), target, "a sync of the old log does not count in the new one");
    let info = log.append(&mut world.env(), &batch(1, 2, 5_000)).unwrap();
    assert_eq!(info.base_offset, target);
    log.verify(&mut world.env()).unwrap();
    drop(log);
    let (mut log, _) = world.open(&small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (target, target + 2));
    assert_eq!(read_all(&mut world, &log, target, 1 << 20).len(), 2);
    // Back to an offset below the current start, too.
    log.reset_to(&mut world.env(), 7).unwrap();
    drop(log);
    let (log, _) = world.open(&small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (7, 7));
}

#[test]
fn retention_smaller_than_the_active_segment_keeps_the_active_segment() {
    let mut world = World::new();
    let (mut log, _) = world.open(&LogConfig { retention_bytes: Some(1), ..small_config() });
    fill(&mut world, &mut log, 40);
    sync_all(&mut log);
    let end = log.log_end_offset();
    log.apply_retention(&mut world.env()).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), end);
    assert!(log.log_end_offset() > log.log_start_offset());
    log.verify(&mut world.env()).unwrap();
}

#[test]
fn retention_by_time_deletes_segments_whose_newest_record_is_too_old() {
    let mut world = World::new();
    let config = LogConfig { retention_ms: Some(10_000), segment_bytes: 1 << 20, ..small_config() };
    let (mut log, _) = world.open(&config);
    // Three segments with newest timestamps 5_000, 20_000 and 30_000 (the active one, ancient too).
    log.append(&mut world.env(), &batch(0, 2, 4_000)).unwrap();
    log.append(&mut world.env(), &batch(1, 2, 4_999)).unwrap();
    log.roll(&mut world.env()).unwrap();
    log.append(&mut world.env(), &batch(2, 1, 20_000)).unwrap();
    log.roll(&mut world.env()).unwrap();
    log.append(&mut world.env(), &batch(3, 1, 30_000)).unwrap();
    sync_all(&mut log);
    world.wall_clock_ms = 15_000;
    assert!(
        log.apply_retention(&mut world.env()).unwrap().deleted_segments.is_empty(),
        "exactly retention_ms"
    );
    world.wall_clock_ms = 15_001;
    let report = log.apply_retention(&mut world.env()).unwrap();
    assert_eq!(report.deleted_segments, vec![0]);
    assert_eq!(log.log_start_offset(), 4);
    world.wall_clock_ms = 1_000_000;
    let report = log.apply_retention(&mut world.env()).unwrap();
    assert_eq!(report.deleted_segments, vec![4], "never the active segment");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 6));
    log.verify(&mut world.env()).unwrap();
}

// ---- sync protocol ----

#[test]
fn sync_requests_name_every_written_segment_and_durability_follows_completions_in_order() {
    let mut world = World::new();
    let (mut log, _) = world.open(&LogConfig { segment_bytes: 1 << 20, ..small_config() });
    assert!(log.sync_request().is_none(), "a new log has nothing to sync");
    log.append(&mut world.env(), &batch(0, 2, 0)).unwrap();
    log.roll(&mut world.env()).unwrap();
    log.append(&mut world.env(), &batch(1, 2, 0)).unwrap();
    let first = log.sync_request().unwrap();
    assert_eq!(first.files, vec![log_path(DIR, 0), log_path(DIR, 2)], "the rolled segment too");
    assert_eq!(first.up_to_offset, 4);
    assert!(log.sync_request().is_none());
    log.append(&mut world.env(), &batch(2, 1, 0)).unwrap();
    let second = log.sync_request().unwrap();
    assert_eq!((second.files.clone(), second.up_to_offset), (vec![log_path(DIR, 2)], 5));
    assert_eq!(log.durable_offset(), 0, "nothing is durable before a completion");
    log.on_sync_complete(first.up_to_offset);
    assert_eq!(log.durable_offset(), 4);
    log.on_sync_complete(second.up_to_offset);
    assert_eq!(log.durable_offset(), 5);
}

#[test]
#[should_panic(expected = "in the order the requests were taken")]
fn completions_out_of_order_are_a_driver_bug() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    log.append(&mut world.env(), &batch(0, 2, 0)).unwrap();
    let first = log.sync_request().unwrap();
    log.append(&mut world.env(), &batch(1, 2, 0)).unwrap();
    let second = log.sync_request().unwrap();
    assert_ne!(first.up_to_offset, second.up_to_offset);
    log.on_sync_complete(second.up_to_offset);
}

#[test]
fn two_requests_in_flight_with_the_same_end_complete_in_order() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    log.append(&mut world.env(), &batch(0, 2, 0)).unwrap();
    let first = log.sync_request().unwrap();
    log.append(&mut world.env(), &batch(1, 3, 0)).unwrap();
    log.truncate_to(&mut world.env(), 2).unwrap();
    let second = log.sync_request().expect("the truncated segment is due");
    assert_eq!(first.up_to_offset, second.up_to_offset, "the cut made the two requests look alike");
    log.on_sync_complete(first.up_to_offset);
    assert_eq!(log.durable_offset(), 2);
    log.on_sync_complete(second.up_to_offset);
    assert_eq!(log.durable_offset(), 2);
}

#[test]
#[should_panic(expected = "matches no outstanding sync request")]
fn a_completion_nobody_requested_is_a_driver_bug() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    log.on_sync_complete(3);
}

#[test]
fn begin_close_syncs_segments_and_indexes() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    fill(&mut world, &mut log, 30);
    sync_all(&mut log);
    log.append(&mut world.env(), &batch(50, 1, 0)).unwrap();
    let active = *log.segment_base_offsets().last().unwrap();
    let request = log.begin_close(&mut world.env()).unwrap();
    assert!(request.files.contains(&log_path(DIR, active)));
    for base in log.segment_base_offsets() {
        assert!(request.files.contains(&index_path(DIR, base)), "index of {base}");
        assert!(request.files.contains(&time_index_path(DIR, base)), "time index of {base}");
    }
    assert!(!world.storage.files.contains_key(&marker_path(DIR)));
    log.on_sync_complete(request.up_to_offset);
    log.complete_close(&mut world.env()).unwrap();
    assert!(world.storage.files.contains_key(&marker_path(DIR)));
}

// ---- recovery ----

#[test]
fn a_clean_close_reopens_from_the_indexes_without_a_full_scan() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 200);
    let (end, segments, size) = (log.log_end_offset(), log.segment_count(), log.size_bytes());
    close(&mut world, log);
    let total_bytes: u64 =
        segment_paths(&world).iter().map(|path| world.storage.files[path].len() as u64).sum();
    world.storage.reads = 0;
    let (log, report) = PartitionLog::open(&mut world.env(), DIR, config.clone()).unwrap();
    assert!(report.clean_shutdown, "{:?}", report.actions);
    assert!(!recovery_mentions(&report, "validated every batch"), "{:?}", report.actions);
    assert!(!recovery_mentions(&report, "rebuil"), "{:?}", report.actions);
    assert!(recovery_mentions(&report, "clean-shutdown marker"));
    // Only index files and segment tails were read: far less than the log.
    assert!(world.storage.reads < 6 * segments as u64, "{} reads", world.storage.reads);
    assert!(total_bytes > 10_000);
    assert!(!world.storage.files.contains_key(&marker_path(DIR)), "the marker is gone once open");
    assert_eq!((log.log_end_offset(), log.segment_count(), log.size_bytes()), (end, segments, size));
    assert_eq!(log.durable_offset(), end);
    log.verify(&mut world.env()).unwrap();
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);
    drop(log);
    // Without a new clean close, the next open is unclean.
    let (_, report) = world.open(&config);
    assert!(!report.clean_shutdown);
}

#[test]
fn an_unclean_reopen_scans_everything_and_rebuilds_the_indexes() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 150);
    let index_files = |world: &World| -> BTreeMap<String, Vec<u8>> {
        let files = world.storage.files.iter().filter(|(path, _)| path.ends_with("index"));
        files.map(|(path, bytes)| (path.clone(), bytes.clone())).collect()
    };
    // Append writes index entries in runs: the files hold a prefix of each index...
    let appended = index_files(&world);
    // ...and a close writes them whole. A crash before the close completes leaves the log unclean.
    log.begin_close(&mut world.env()).unwrap();
    let index_files = index_files(&world);
    for (path, bytes) in &appended {
        assert!(index_files[path].starts_with(bytes), "{path}: append wrote a prefix of the index");
    }
    let end = log.log_end_offset();
    drop(log);
    // Wreck every index: recovery must not need them.
    for path in index_files.keys() {
        world.file(path).clear();
        world.file(path).extend_from_slice(&[0xff; 13]);
    }
    let (mut log, report) = world.open(&config);
    assert!(!report.clean_shutdown);
    assert!(recovery_mentions(&report, "validated every batch"), "{:?}", report.actions);
    assert!(recovery_mentions(&report, "rebuilt their indexes"), "{:?}", report.actions);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.durable_offset(), end, "what recovery read back is durable");
    for (path, bytes) in &index_files {
        assert_eq!(&world.storage.files[path], bytes, "{path} rebuilt as the log wrote it");
    }
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);
    let request = log.sync_request().expect("recovered segments are queued for a sync");
    assert_eq!(request.files.len(), log.segment_count());
}

/// Opens a log of 30 batches over several segments and returns it closed uncleanly, with the
/// position and offset of every batch of its second segment.
fn log_with_batches(world: &mut World) -> (Vec<(u64, i64)>, Vec<ConsumedRecord>, Vec<i64>) {
    let (mut log, _) = world.open(&small_config());
    let expected = fill(world, &mut log, 30);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3);
    let bytes = world.storage.files[&log_path(DIR, bases[1])].clone();
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = BatchHeader::parse(&bytes[position..]).unwrap();
        batches.push((position as u64, header.base_offset));
        position += header.size_bytes();
    }
    (batches, expected, bases)
}

fn assert_recovered_to(
    world: &mut World,
    offset: i64,
    expected: &[ConsumedRecord],
    words: &str,
) -> PartitionLog {
    let (log, report) = world.open(&small_config());
    assert!(!report.clean_shutdown);
    assert_eq!(log.log_end_offset(), offset, "{:?}", report.actions);
    assert!(recovery_mentions(&report, words), "{:?}", report.actions);
    assert!(recovery_mentions(&report, "deleted segment"), "{:?}", report.actions);
    let kept: Vec<_> = expected.iter().filter(|record| record.offset < offset).cloned().collect();
    assert_eq!(read_all(world, &log, 0, 1 << 20), kept);
    assert_eq!(segment_paths(world).len(), 2, "every later segment is gone");
    log
}

/// Damages the `batch_index`th batch of the second segment of a 30-batch log, reopens it
/// uncleanly, and checks the log was cut right before that batch, saying `words`.
fn recovers_from_damage(batch_index: usize, damage: impl FnOnce(&mut Vec<u8>, usize), words: &str) {
    let mut world = World::new();
    let (batches, expected, bases) = log_with_batches(&mut world);
    let (position, offset) = batches[batch_index];
    let path = log_path(DIR, bases[1]);
    damage(world.file(&path), position as usize);
    assert_recovered_to(&mut world, offset, &expected, words);
    assert_eq!(world.storage.files[&path].len() as u64, position, "the segment ends before the damage");
}

#[test]
fn recovery_cuts_a_torn_tail() {
    recovers_from_damage(2, |file, position| file.truncate(position + 20), "truncated segment");
}

#[test]
fn recovery_cuts_at_a_flipped_crc_bit() {
    recovers_from_damage(1, |file, position| file[position + BATCH_HEADER_BYTES + 2] ^= 0x10, "CRC mismatch");
}

#[test]
fn recovery_cuts_at_a_garbage_length() {
    let huge = |file: &mut Vec<u8>, position: usize| {
        file[position + 8..position + 12].copy_from_slice(&0x7fff_0000i32.to_be_bytes());
    };
    recovers_from_damage(2, huge, "truncated batch");
    let negative = |file: &mut Vec<u8>, position: usize| {
        file[position + 8..position + 12].copy_from_slice(&(-7i32).to_be_bytes());
    };
    recovers_from_damage(1, negative, "invalid batch length -7");
}

#[test]
fn recovery_cuts_at_an_offset_out_of_order() {
    // The base offset is outside the CRC: only the offset check can catch this.
    let rewind = |file: &mut Vec<u8>, position: usize| {
        let base_offset = BatchHeader::parse(&file[position..]).unwrap().base_offset;
        set_base_offset(&mut file[position..], base_offset - 1);
    };
    recovers_from_damage(3, rewind, "does not continue the log");
}

#[test]
fn recovery_cuts_at_a_wrong_magic() {
    recovers_from_damage(2, |file, position| file[position + 16] = 1, "unsupported magic 1");
}

#[test]
fn recovery_deletes_a_segment_that_does_not_follow_the_one_before() {
    let mut world = World::new();
    let (_, expected, bases) = log_with_batches(&mut world);
    // The second segment loses its whole tail batch: the third no longer follows it.
    let path = log_path(DIR, bases[1]);
    let bytes = world.storage.files[&path].clone();
    let mut position = 0;
    let mut last_start = 0;
    while position < bytes.len() {
        last_start = position;
        position += BatchHeader::parse(&bytes[position..]).unwrap().size_bytes();
    }
    world.file(&path).truncate(last_start);
    let last_offset = BatchHeader::parse(&bytes[last_start..]).unwrap().base_offset;
    let (log, report) = world.open(&small_config());
    assert_eq!(log.log_end_offset(), last_offset);
    assert!(recovery_mentions(&report, "does not continue the log"), "{:?}", report.actions);
    assert_eq!(
        read_all(&mut world, &log, 0, 1 << 20),
        expected.into_iter().filter(|r| r.offset < last_offset).collect::<Vec<_>>()
    );
}

#[test]
fn a_missing_index_file_is_rebuilt_on_a_clean_open() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 60);
    let bases = log.segment_base_offsets();
    close(&mut world, log);
    let path = index_path(DIR, bases[1]);
    let original = world.storage.files.remove(&path).unwrap();
    let (log, report) = world.open(&config);
    assert!(report.clean_shutdown, "a bad index alone does not make the shutdown unclean");
    assert!(
        recovery_mentions(&report, &format!("segment {}: offset index file missing", bases[1])),
        "{:?}",
        report.actions
    );
    assert!(recovery_mentions(&report, "rebuilt its indexes by scanning"), "{:?}", report.actions);
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);
    // A clean close writes the rebuilt index back.
    close(&mut world, log);
    assert_eq!(world.storage.files[&path], original);
    let (_, report) = world.open(&config);
    assert!(!recovery_mentions(&report, "rebuil"), "{:?}", report.actions);
}

#[test]
fn an_index_entry_past_the_segment_end_is_rebuilt() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 60);
    let bases = log.segment_base_offsets();
    close(&mut world, log);
    let path = index_path(DIR, bases[2]);
    let index = world.file(&path);
    assert!(index.len() >= 8);
    let last = index.len() - 4;
    index[last..].copy_from_slice(&60_000u32.to_be_bytes());
    let (log, report) = world.open(&config);
    assert!(recovery_mentions(&report, "past the segment"), "{:?}", report.actions);
    assert!(recovery_mentions(&report, "rebuilt its indexes"), "{:?}", report.actions);
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);

    // An index that is well formed but points at the wrong batch is caught by the tail check.
    close(&mut world, log);
    let index = world.file(&path);
    let last_entry = index.len() - 8;
    let relative = u32::from_be_bytes(index[last_entry..last_entry + 4].try_into().unwrap());
    index[last_entry..last_entry + 4].copy_from_slice(&(relative + 1).to_be_bytes());
    let (log, report) = world.open(&config);
    assert!(recovery_mentions(&report, "index does not match"), "{:?}", report.actions);
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);
}

#[test]
fn a_clean_marker_over_a_damaged_segment_falls_back_to_full_recovery() {
    let mut world = World::new();
    let config = small_config();
    let (batches, expected, bases) = log_with_batches(&mut world);
    // Make it a clean shutdown, then damage the last batch of the second segment's tail.
    let (log, _) = world.open(&config);
    close(&mut world, log);
    let (position, offset) = *batches.last().unwrap();
    world.file(&log_path(DIR, bases[1]))[position as usize + BATCH_HEADER_BYTES] ^= 0xff;
    let (log, report) = world.open(&config);
    assert!(!report.clean_shutdown);
    assert!(recovery_mentions(&report, "recovering in full"), "{:?}", report.actions);
    assert_eq!(log.log_end_offset(), offset);
    assert_eq!(
        read_all(&mut world, &log, 0, 1 << 20).len(),
        expected.iter().filter(|r| r.offset < offset).count()
    );
}

#[test]
fn orphan_index_files_are_removed_and_unknown_files_left_alone() {
    let mut world = World::new();
    let (mut log, _) = world.open(&small_config());
    fill(&mut world, &mut log, 3);
    drop(log);
    world.storage.create(&index_path(DIR, 500)).unwrap();
    world.storage.create(&format!("{DIR}/notes.txt")).unwrap();
    let (_, report) = world.open(&small_config());
    assert!(recovery_mentions(&report, "removed the index files of segment 500"), "{:?}", report.actions);
    assert!(recovery_mentions(&report, "ignored"), "{:?}", report.actions);
    assert!(!world.storage.files.contains_key(&index_path(DIR, 500)));
    assert!(world.storage.files.contains_key(&format!("{DIR}/notes.txt")));
}

// ---- corruption on the read path ----

#[test]
fn a_read_never_serves_a_corrupt_batch() {
    let mut world = World::new();
    let (batches, expected, bases) = log_with_batches(&mut world);
    let (mut log, _) = world.open(&small_config());
    let (position, offset) = batches[2];
    world.file(&log_path(DIR, bases[1]))[position as usize + BATCH_HEADER_BYTES + 1] ^= 0x01;
    // From before the damage: the good prefix only.
    let read = log.read(&mut world.env(), bases[1], 1 << 20).unwrap();
    let records = consume(&read.bytes).unwrap();
    assert_eq!(records.last().unwrap().offset, offset - 1);
    // At the damage: an error, never the bytes.
    let error = log.read(&mut world.env(), offset, 1 << 20).unwrap_err();
    assert!(
        matches!(error, LogError::Corrupt { segment_base_offset, position: at, error: BatchError::CrcMismatch { .. } }
        if segment_base_offset == bases[1] && at == position),
        "{error:?}"
    );
    assert!(log.verify(&mut world.env()).is_err());
    // The single-replica repair cuts there.
    assert_eq!(log.truncate_at_first_corruption(&mut world.env()).unwrap(), Some(offset));
    assert_eq!(log.log_end_offset(), offset);
    log.verify(&mut world.env()).unwrap();
    assert_eq!(log.truncate_at_first_corruption(&mut world.env()).unwrap(), None);
    let kept: Vec<_> = expected.into_iter().filter(|r| r.offset < offset).collect();
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), kept);
}

// ---- planted bugs ----

#[test]
fn planted_recovery_skips_crc_keeps_a_corrupt_batch_that_verify_and_reads_catch() {
    for planted in [false, true] {
        let mut world = World::new();
        let (batches, _, bases) = log_with_batches(&mut world);
        let end = {
            let (log, _) = world.open(&small_config());
            log.log_end_offset()
        };
        let (position, offset) = batches[1];
        world.file(&log_path(DIR, bases[1]))[position as usize + BATCH_HEADER_BYTES + 3] ^= 0x04;
        if planted {
            world.faults.plants.insert(Plant::RecoverySkipsCrc);
        }
        let (log, _) = PartitionLog::open(&mut world.env(), DIR, small_config()).unwrap();
        if planted {
            assert_eq!(log.log_end_offset(), end, "the corrupt batch and all after it were kept");
            assert!(matches!(log.verify(&mut world.env()), Err(LogError::Corrupt { .. })));
            assert!(matches!(log.read(&mut world.env(), offset, 1 << 20), Err(LogError::Corrupt { .. })));
        } else {
            assert_eq!(log.log_end_offset(), offset);
            log.verify(&mut world.env()).unwrap();
        }
    }
}

#[test]
fn planted_index_lookup_off_by_one_makes_reads_skip_records() {
    let mut world = World::new();
    let config = LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 100, ..small_config() };
    let (mut log, _) = world.open(&config);
    fill(&mut world, &mut log, 50);
    let first_offset_served = |world: &mut World, log: &PartitionLog, offset: i64| {
        let read = log.read(&mut world.env(), offset, 1).unwrap();
        let records = consume(&read.bytes).unwrap();
        let holds = records.iter().any(|record| record.offset == offset);
        (records[0].offset, holds)
    };
    for offset in 0..log.log_end_offset() {
        assert!(first_offset_served(&mut world, &log, offset).1);
    }
    world.faults.plants.insert(Plant::IndexLookupOffByOne);
    let skipped = (0..log.log_end_offset())
        .filter(|offset| {
            let (first, holds) = first_offset_served(&mut world, &log, *offset);
            !holds && first > *offset
        })
        .count();
    assert!(skipped > 10, "the planted bug skips records: {skipped}");
}

// ---- cost ----

#[test]
fn a_read_costs_a_few_storage_reads_on_a_large_log() {
    let mut world = World::new();
    let config = LogConfig { segment_bytes: 256 * 1024, index_interval_bytes: 4096, ..small_config() };
    let (mut log, _) = world.open(&config);
    for tag in 0..10_000u32 {
        log.append(&mut world.env(), &batch(tag, 1 + (tag % 5) as usize, i64::from(tag))).unwrap();
    }
    assert!(log.segment_count() > 5);
    let end = log.log_end_offset();
    let mut worst_reads = 0;
    for step in 0..200 {
        let offset = (step * 7919) % end;
        world.storage.reads = 0;
        let read = log.read(&mut world.env(), offset, 2048).unwrap();
        assert!(!read.bytes.is_empty());
        worst_reads = worst_reads.max(world.storage.reads);
        world.storage.reads = 0;
        let found =
            log.offset_for_timestamp(&mut world.env(), i64::from((step * 37) as u32 % 10_000)).unwrap();
        assert!(found.is_some());
        worst_reads = worst_reads.max(world.storage.reads);
    }
    assert!(worst_reads <= 3, "reads per lookup: {worst_reads}");
}

// ---- robustness ----

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever bytes a crash or a bad disk leaves in a segment, opening never panics and
        /// yields a log that verifies and reads back a prefix of what was written.
        #[test]
        fn recovery_of_arbitrary_damage_never_panics(
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            planted in any::<bool>(),
        ) {
            let mut world = World::new();
            let (mut log, _) = world.open(&small_config());
            let expected = fill(&mut world, &mut log, 25);
            drop(log);
            let paths = segment_paths(&world);
            let path = &paths[cut.index(paths.len())];
            for (at, byte) in &damage {
                let file = world.file(path);
                if !file.is_empty() {
                    let index = at.index(file.len());
                    file[index] ^= byte | 1;
                }
            }
            let file = world.file(path);
            let new_len = cut.index(file.len() + 1);
            file.truncate(new_len);
            if planted {
                world.faults.plants.insert(Plant::RecoverySkipsCrc);
            }
            let (log, _) = PartitionLog::open(&mut world.env(), DIR, small_config()).unwrap();
            if !planted {
                log.verify(&mut world.env()).unwrap();
                let records = read_all(&mut world, &log, 0, 1 << 20);
                prop_assert_eq!(&records[..], &expected[..records.len()]);
            } else {
                let _ = log.verify(&mut world.env());
                let _ = log.read(&mut world.env(), 0, 1 << 20);
            }
        }
    }
}

#[test]
fn a_read_error_after_some_batches_serves_them_and_one_before_any_is_an_error() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    fill(&mut world, &mut log, 200);
    assert!(log.segment_count() > 2);
    let whole = log.read(&mut world.env(), 0, 1 << 20).unwrap();

    // A single failed read is retried and costs nothing.
    world.storage.reads_before_failure = Some(0);
    assert_eq!(log.read(&mut world.env(), 0, 1 << 20).unwrap(), whole);

    // Reads that keep failing: an error before any batch, a shorter read after some.
    world.storage.persistent_read_failure = true;
    world.storage.reads_before_failure = Some(0);
    let error = log.read(&mut world.env(), 0, 1 << 20).map(|_| ()).expect_err("every read fails");
    assert_eq!(error, LogError::Storage(StorageError::Io));

    // Let the first segment's reads through, fail the next: the first segment's batches come back.
    for reads_allowed in 1..6 {
        world.storage.reads_before_failure = Some(reads_allowed);
        let partial = log.read(&mut world.env(), 0, 1 << 20).unwrap();
        assert!(whole.bytes.starts_with(&partial.bytes));
        let records = consume(&partial.bytes).expect("what is served is valid");
        assert!(records.first().is_some_and(|r| r.offset == 0));
        assert!(partial.bytes.len() < whole.bytes.len(), "the failure cut the read short");
    }
}

#[test]
fn a_well_formed_index_entry_pointing_into_a_batch_costs_a_scan_not_the_data() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 60);
    let bases = log.segment_base_offsets();
    close(&mut world, log);
    // Move the first entry of an index one byte into its batch: still increasing and within the
    // segment (so a clean open trusts it), but it no longer points at a batch.
    let path = index_path(DIR, bases[1]);
    let index = world.file(&path);
    assert!(index.len() >= 16, "the segment needs two index entries");
    let position = u32::from_be_bytes(index[4..8].try_into().unwrap());
    index[4..8].copy_from_slice(&(position + 1).to_be_bytes());
    let (log, report) = PartitionLog::open(&mut world.env(), DIR, config.clone()).unwrap();
    assert!(report.clean_shutdown, "{:?}", report.actions);
    // The full check sees the bad entry (the simulator excuses it only where damage was injected).
    assert!(matches!(log.verify(&mut world.env()), Err(LogError::Unrecoverable(_))));
    assert_eq!(read_all(&mut world, &log, 0, 1 << 20), expected);
    for record in &expected {
        let read = log.read(&mut world.env(), record.offset, 1).expect("every offset stays readable");
        assert!(consume(&read.bytes).unwrap().iter().any(|r| r.offset == record.offset));
    }
}

#[test]
fn recovery_retries_transient_read_errors_and_cuts_at_an_unreadable_place() {
    let mut world = World::new();
    let config = small_config();
    let (mut log, _) = world.open(&config);
    let expected = fill(&mut world, &mut log, 60);
    drop(log); // An unclean stop: the next open scans everything.

    // One failed read is retried: nothing is lost.
    world.storage.reads_before_failure = Some(3);
    let (log, _) = PartitionLog::open(&mut world.env(), DIR, config.clone()).unwrap();
    assert_eq!(log.log_end_offset(), expected.len() as i64);
    drop(log);

    // A place that stays unreadable (every read from then on fails once, then again...) is cut.
    let mut failing_reads = 0;
    let (log, report) = loop {
        world.storage.reads_before_failure = Some(5);
        world.storage.persistent_read_failure = true;
        match PartitionLog::open(&mut world.env(), DIR, config.clone()) {
            Ok(opened) => break opened,
            Err(error) => {
                failing_reads += 1;
                assert!(failing_reads < 3, "open kept failing: {error:?}");
            }
        }
    };
    world.storage.persistent_read_failure = false;
    world.storage.reads_before_failure = None;
    assert!(recovery_mentions(&report, "unreadable"), "{:?}", report.actions);
    assert!(log.log_end_offset() < expected.len() as i64);
    log.verify(&mut world.env()).unwrap();
    let kept = read_all(&mut world, &log, 0, 1 << 20);
    assert_eq!(kept[..], expected[..kept.len()]);
}
