//! The partition log against a plain in-memory model, on the simulated disk.
//!
//! Random sequences of appends (random record counts, sizes and timestamps), reads, timestamp
//! lookups, truncations, rolls, retention, syncs, crashes (power loss with torn writes, after a
//! sync that may have completed for only some files, or in the middle of a clean close) and clean
//! close-and-reopen run against both the log and a model: a map of batches by offset plus the
//! segment base offsets. After every step the log must agree with the model on its offsets, its
//! segments, its size and its durable offset, and `verify` must pass; every read must return
//! exactly the batches the model says, and a timestamp lookup what the model finds by brute force.
//!
//! After a crash the recovered log must hold everything at or below the durable offset exactly as
//! the model has it, and above that only batches that were appended at those offsets at some time:
//! the current ones, or ones a truncation dropped whose truncation no sync has made durable yet
//! ("ghosts": a crash can bring back the old bytes of a truncated segment). The model then adopts
//! what was recovered. The disk is reliable apart from crashes: bit rot, misdirected writes and I/O
//! errors are the simulator's business.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use seedlog_core::env::{Env, FaultSites, Plant, Storage, Time};
use seedlog_core::log::{LogConfig, LogError, PartitionLog};
use seedlog_core::record::{consume, encode_batch, set_base_offset, Batches, NewRecord, ProducerInfo};
use seedlog_sim::disk::{DiskOptions, SimDisk, SyncTicket};

const DIR: &str = "topic-0";

#[derive(Clone, Debug)]
enum Op {
    /// One batch: per record, its timestamp relative to the wall clock and its value length.
    Append {
        records: Vec<(i64, u16)>,
    },
    Read {
        at: prop::sample::Index,
        max_bytes: u16,
    },
    /// A read whose limit is the size of the first `batches` batches it will meet, plus `delta`.
    ReadToBoundary {
        at: prop::sample::Index,
        batches: usize,
        delta: i64,
    },
    ReadOutOfRange {
        past_end: bool,
    },
    OffsetForTimestamp {
        relative_ms: i64,
    },
    /// A timestamp lookup for a record's own timestamp, plus `delta`: right at the index's edges.
    OffsetForRecordTimestamp {
        at: prop::sample::Index,
        delta: i64,
    },
    /// Truncate at a batch boundary (`boundary`) or at any offset, which must fail inside a batch.
    Truncate {
        at: prop::sample::Index,
        boundary: bool,
    },
    Roll,
    Retention,
    /// Takes a sync request and requests its files' syncs from the disk (capturing them now).
    SyncRequest,
    /// Completes every file of one in-flight request on the disk, then reports to the log every
    /// request at the front whose files are all done (in order, as the driver MUST).
    SyncComplete {
        which: prop::sample::Index,
    },
    /// Request and complete at once.
    Sync,
    /// Power loss after a sync request of which only the files in `completed_mask` completed.
    Crash {
        completed_mask: u64,
    },
    /// Power loss after `begin_close`, with some of its syncs done.
    CrashDuringClose {
        completed_mask: u64,
    },
    CleanReopen,
    Tick {
        ms: u32,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => prop::collection::vec((relative_timestamp_strategy(), 0u16..200), 1..6)
            .prop_map(|records| Op::Append { records }),
        8 => (any::<prop::sample::Index>(), 0u16..2_000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        4 => (any::<prop::sample::Index>(), 1usize..5, -1i64..=1)
            .prop_map(|(at, batches, delta)| Op::ReadToBoundary { at, batches, delta }),
        1 => any::<bool>().prop_map(|past_end| Op::ReadOutOfRange { past_end }),
        3 => (-30_000i64..5_000).prop_map(|relative_ms| Op::OffsetForTimestamp { relative_ms }),
        3 => (any::<prop::sample::Index>(), -1i64..=1)
            .prop_map(|(at, delta)| Op::OffsetForRecordTimestamp { at, delta }),
        4 => (any::<prop::sample::Index>(), prop::bool::weighted(0.7))
            .prop_map(|(at, boundary)| Op::Truncate { at, boundary }),
        4 => Just(Op::Roll),
        6 => Just(Op::Retention),
        6 => Just(Op::Sync),
        5 => Just(Op::SyncRequest),
        5 => any::<prop::sample::Index>().prop_map(|which| Op::SyncComplete { which }),
        4 => any::<u64>().prop_map(|completed_mask| Op::Crash { completed_mask }),
        1 => any::<u64>().prop_map(|completed_mask| Op::CrashDuringClose { completed_mask }),
        3 => Just(Op::CleanReopen),
        6 => (1u32..20_000).prop_map(|ms| Op::Tick { ms }),
    ]
}

/// Record timestamps relative to the wall clock: often the same few values (ties and flat
/// stretches exercise the time index), otherwise anywhere from 20 s before to 2 s after.
fn relative_timestamp_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(0i64), 1 => Just(-5_000i64), 6 => -20_000i64..2_000]
}

fn config_strategy() -> impl Strategy<Value = LogConfig> {
    (
        200u64..4_000,
        1_000i64..200_000,
        0u64..600,
        prop::option::of(500u64..10_000),
        prop::option::of(1_000i64..100_000),
    )
        .prop_map(|(segment_bytes, segment_ms, index_interval_bytes, retention_bytes, retention_ms)| {
            LogConfig {
                segment_bytes,
                segment_ms,
                index_interval_bytes,
                retention_bytes,
                retention_ms,
                max_batch_bytes: 1 << 16,
            }
        })
}

/// BUGGIFY for the log: `log.roll_early` fires with a fixed probability; every firing is counted
/// so the model knows an append rolled for that reason. Nothing is planted.
struct ModelFaults {
    rng: ChaCha8Rng,
    roll_early_probability_percent: u64,
    roll_early_fired: u64,
}

impl FaultSites for ModelFaults {
    fn buggify(&mut self, site: &'static str) -> bool {
        assert_eq!(site, "log.roll_early", "the log has one BUGGIFY site");
        let fired = self.rng.next_u64() % 100 < self.roll_early_probability_percent;
        self.roll_early_fired += u64::from(fired);
        fired
    }

    fn planted(&self, _bug: Plant) -> bool {
        false
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelBatch {
    /// The batch as stored: base offset set.
    bytes: Vec<u8>,
    last_offset: i64,
    max_timestamp: i64,
    /// (offset, timestamp) of every record.
    records: Vec<(i64, i64)>,
}

impl ModelBatch {
    fn new(bytes: Vec<u8>) -> ModelBatch {
        let records: Vec<(i64, i64)> = consume(&bytes)
            .expect("a valid batch")
            .iter()
            .map(|record| (record.offset, record.timestamp))
            .collect();
        let last_offset = records.last().expect("batches are not empty").0;
        let max_timestamp = records.iter().map(|(_, timestamp)| *timestamp).max().expect("not empty");
        ModelBatch { bytes, last_offset, max_timestamp, records }
    }
}

/// What the log should hold.
#[derive(Debug, Default)]
struct Model {
    batches: BTreeMap<i64, ModelBatch>,
    start: i64,
    end: i64,
    durable: i64,
    /// Segment base offsets, oldest first; the last is the active segment.
    bases: Vec<i64>,
    /// Batches truncated away whose truncation is not durable yet: a crash may bring them back.
    ghosts: BTreeMap<i64, Vec<Ghost>>,
    /// Truncations so far.
    truncations: u64,
    /// Sync requests taken and not yet folded into `durable`, in order.
    syncs: VecDeque<ModelSync>,
}

/// A batch a truncation dropped, until a sync of the truncated segment taken after the truncation
/// completes (that sync carries the truncation to the disk).
#[derive(Debug)]
struct Ghost {
    bytes: Vec<u8>,
    /// Which truncation dropped it (they are numbered from 1).
    truncation: u64,
    /// The segment file the truncation cut.
    segment_path: String,
}

/// A sync request in flight: its disk tickets and what its completion makes durable.
#[derive(Debug)]
struct ModelSync {
    up_to_offset: i64,
    /// `up_to_offset`, lowered by truncations after the request.
    durable_up_to_offset: i64,
    /// Truncations before the request: the request's files carry them to the disk.
    truncations_before: u64,
    files: Vec<String>,
    tickets: Vec<SyncTicket>,
    completed: bool,
}

impl Model {
    fn new() -> Model {
        Model { bases: vec![0], ..Model::default() }
    }

    fn segment_end(&self, index: usize) -> i64 {
        self.bases.get(index + 1).copied().unwrap_or(self.end)
    }

    fn segment_batches(&self, index: usize) -> impl Iterator<Item = &ModelBatch> {
        self.batches.range(self.bases[index]..self.segment_end(index)).map(|(_, batch)| batch)
    }

    fn segment_bytes(&self, index: usize) -> u64 {
        self.segment_batches(index).map(|batch| batch.bytes.len() as u64).sum()
    }

    fn size_bytes(&self) -> u64 {
        self.batches.values().map(|batch| batch.bytes.len() as u64).sum()
    }

    /// Whether an append of `size` bytes at wall clock `now` must roll, by Kafka's rules.
    fn must_roll(&self, config: &LogConfig, size: u64, wall_clock_ms: i64) -> bool {
        let active = self.bases.len() - 1;
        let Some(first) = self.segment_batches(active).next() else { return false };
        let full = self.segment_bytes(active) + size > config.segment_bytes;
        let old = wall_clock_ms.saturating_sub(first.max_timestamp) > config.segment_ms;
        full || old
    }

    fn append(&mut self, bytes: Vec<u8>, rolled: bool) {
        if rolled {
            self.bases.push(self.end);
        }
        let batch = ModelBatch::new(bytes);
        let base_offset = self.end;
        self.end = batch.last_offset + 1;
        self.batches.insert(base_offset, batch);
    }

    fn expected_read(&self, offset: i64, max_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        if offset == self.end {
            return out;
        }
        let (&first, batch) = self.batches.range(..=offset).next_back().expect("offset within the log");
        assert!(batch.last_offset >= offset);
        for batch in self.batches.range(first..).map(|(_, batch)| batch) {
            if !out.is_empty() && out.len() + batch.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&batch.bytes);
            if out.len() >= max_bytes {
                break;
            }
        }
        out
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        let batch = self.batches.values().find(|batch| batch.max_timestamp >= timestamp)?;
        batch.records.iter().copied().find(|(_, record_timestamp)| *record_timestamp >= timestamp)
    }

    fn boundaries(&self) -> Vec<i64> {
        self.batches.keys().copied().chain([self.end]).collect()
    }

    fn truncate_to(&mut self, offset: i64) {
        self.truncations += 1;
        let segment_base =
            *self.bases.iter().rev().find(|base| **base <= offset).expect("a segment holds it");
        let segment_path = format!("{DIR}/{segment_base:020}.log");
        let dropped = self.batches.split_off(&offset);
        for (base_offset, batch) in dropped {
            let ghost = Ghost {
                bytes: batch.bytes,
                truncation: self.truncations,
                segment_path: segment_path.clone(),
            };
            self.ghosts.entry(base_offset).or_default().push(ghost);
        }
        self.end = offset;
        self.durable = self.durable.min(offset);
        for sync in &mut self.syncs {
            sync.durable_up_to_offset = sync.durable_up_to_offset.min(offset);
        }
        self.bases.retain(|base| *base <= offset);
    }

    fn is_ghost(&self, offset: i64, bytes: &[u8]) -> bool {
        self.ghosts.get(&offset).is_some_and(|ghosts| ghosts.iter().any(|ghost| ghost.bytes == bytes))
    }

    /// Every file of sync `index` is synced: the truncations before it of the segments it names
    /// are durable.
    fn complete_sync(&mut self, index: usize) {
        let sync = &mut self.syncs[index];
        assert!(!sync.completed);
        sync.completed = true;
        let sync = &self.syncs[index];
        for ghosts in self.ghosts.values_mut() {
            ghosts.retain(|ghost| {
                ghost.truncation > sync.truncations_before || !sync.files.contains(&ghost.segment_path)
            });
        }
        self.ghosts.retain(|_, ghosts| !ghosts.is_empty());
    }

    /// The completed requests at the front, reported in order: each makes durable what it covers.
    fn report_completed_syncs(&mut self) -> Vec<i64> {
        let mut reported = Vec::new();
        while self.syncs.front().is_some_and(|sync| sync.completed) {
            let sync = self.syncs.pop_front().expect("front");
            self.durable = self.durable.max(sync.durable_up_to_offset);
            reported.push(sync.up_to_offset);
        }
        reported
    }

    /// Kafka's retention with the high-watermark bound: by time, then by size, oldest first.
    fn apply_retention(&mut self, config: &LogConfig, wall_clock_ms: i64) -> Vec<i64> {
        let mut deleted = Vec::new();
        if let Some(retention_ms) = config.retention_ms {
            while self.oldest_deletable() {
                let max_timestamp =
                    self.segment_batches(0).map(|batch| batch.max_timestamp).max().expect("full");
                if wall_clock_ms.saturating_sub(max_timestamp) <= retention_ms {
                    break;
                }
                deleted.push(self.delete_oldest());
            }
        }
        if let Some(retention_bytes) = config.retention_bytes {
            while self.oldest_deletable() {
                if self.size_bytes() - self.segment_bytes(0) < retention_bytes {
                    break;
                }
                deleted.push(self.delete_oldest());
            }
        }
        deleted
    }

    fn oldest_deletable(&self) -> bool {
        self.bases.len() > 1 && self.bases[1] <= self.durable
    }

    fn delete_oldest(&mut self) -> i64 {
        let base_offset = self.bases.remove(0);
        self.start = self.bases[0];
        self.batches = self.batches.split_off(&self.start);
        base_offset
    }
}

struct Harness {
    disk: SimDisk,
    rng: ChaCha8Rng,
    faults: ModelFaults,
    wall_clock_ms: i64,
    now: Time,
    config: LogConfig,
    log: Option<PartitionLog>,
    model: Model,
}

impl Harness {
    fn new(seed: u64, config: LogConfig, roll_early_probability_percent: u64) -> Harness {
        // Torn writes at 512-byte sectors: a crash may cut a batch anywhere a sector boundary falls.
        let options = DiskOptions { sector_bytes: 512, torn_writes: true, ..DiskOptions::reliable() };
        let mut harness = Harness {
            disk: SimDisk::new(options, ChaCha8Rng::seed_from_u64(seed)),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            faults: ModelFaults {
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0xb0661f),
                roll_early_probability_percent,
                roll_early_fired: 0,
            },
            wall_clock_ms: 1_700_000_000_000,
            now: Time::ZERO,
            config,
            log: None,
            model: Model::new(),
        };
        harness.open();
        harness
    }

    fn split(&mut self) -> (&mut PartitionLog, Env<'_>) {
        let env = Env {
            now: self.now,
            wall_clock_ms: self.wall_clock_ms,
            storage: &mut self.disk,
            rng: &mut self.rng,
            faults: &mut self.faults,
        };
        (self.log.as_mut().expect("the log is open"), env)
    }

    fn open(&mut self) -> bool {
        let mut env = Env {
            now: self.now,
            wall_clock_ms: self.wall_clock_ms,
            storage: &mut self.disk,
            rng: &mut self.rng,
            faults: &mut self.faults,
        };
        let (log, report) = PartitionLog::open(&mut env, DIR, self.config.clone()).expect("the log opens");
        log.verify(&mut env).unwrap_or_else(|error| panic!("recovered log verifies: {error:?} {report:?}"));
        assert!(!self.disk.exists(&format!("{DIR}/.clean_shutdown")), "the marker is gone once open");
        self.log = Some(log);
        report.clean_shutdown
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Append { records } => self.append(records),
            Op::Read { at, max_bytes } => {
                let offset =
                    self.model.start + at.index((self.model.end - self.model.start + 1) as usize) as i64;
                let expected = self.model.expected_read(offset, usize::from(max_bytes));
                let (log, mut env) = self.split();
                let read = log.read(&mut env, offset, usize::from(max_bytes)).expect("read");
                assert_eq!(read.bytes, expected, "read at {offset} of {max_bytes} bytes");
                assert_eq!((read.log_start_offset, read.log_end_offset), (self.model.start, self.model.end));
            }
            Op::ReadToBoundary { at, batches, delta } => {
                let offset =
                    self.model.start + at.index((self.model.end - self.model.start + 1) as usize) as i64;
                let first = self.model.batches.range(..=offset).next_back().map_or(offset, |(base, _)| *base);
                let sizes: i64 = self
                    .model
                    .batches
                    .range(first..)
                    .take(batches)
                    .map(|(_, batch)| batch.bytes.len() as i64)
                    .sum();
                let max_bytes = (sizes + delta).max(0) as usize;
                let expected = self.model.expected_read(offset, max_bytes);
                let (log, mut env) = self.split();
                let read = log.read(&mut env, offset, max_bytes).expect("read");
                assert_eq!(read.bytes, expected, "read at {offset} of {max_bytes} bytes");
            }
            Op::ReadOutOfRange { past_end } => {
                let offset = if past_end { self.model.end + 1 } else { self.model.start - 1 };
                let (log, mut env) = self.split();
                let result = log.read(&mut env, offset, 100);
                assert!(matches!(result, Err(LogError::OffsetOutOfRange { .. })), "{result:?}");
            }
            Op::OffsetForTimestamp { relative_ms } => {
                self.offset_for_timestamp(self.wall_clock_ms + relative_ms)
            }
            Op::OffsetForRecordTimestamp { at, delta } => {
                let timestamps: Vec<i64> = self
                    .model
                    .batches
                    .values()
                    .flat_map(|batch| batch.records.iter().map(|(_, ts)| *ts))
                    .collect();
                if !timestamps.is_empty() {
                    self.offset_for_timestamp(timestamps[at.index(timestamps.len())] + delta);
                }
            }
            Op::Truncate { at, boundary } => self.truncate(at, boundary),
            Op::Roll => {
                let expected = self.model.segment_batches(self.model.bases.len() - 1).next().is_some();
                let (log, mut env) = self.split();
                let rolled = log.roll(&mut env).expect("roll");
                assert_eq!(rolled, expected, "roll exactly when the active segment is not empty");
                if rolled {
                    self.model.bases.push(self.model.end);
                }
            }
            Op::Retention => {
                let expected = self.model.apply_retention(&self.config, self.wall_clock_ms);
                let (log, mut env) = self.split();
                let report = log.apply_retention(&mut env).expect("retention");
                assert_eq!(report.deleted_segments, expected);
                assert_eq!(report.log_start_offset, self.model.start);
            }
            Op::Sync => {
                if self.request_sync() {
                    self.complete_sync(self.model.syncs.len() - 1);
                }
            }
            Op::SyncRequest => {
                self.request_sync();
            }
            Op::SyncComplete { which } => {
                let open: Vec<usize> =
                    (0..self.model.syncs.len()).filter(|i| !self.model.syncs[*i].completed).collect();
                if !open.is_empty() {
                    self.complete_sync(open[which.index(open.len())]);
                }
            }
            Op::Crash { completed_mask } => {
                let (log, _) = self.split();
                let request = log.sync_request();
                self.crash(request.map(|request| request.files), completed_mask);
            }
            Op::CrashDuringClose { completed_mask } => {
                let (log, mut env) = self.split();
                let request = log.begin_close(&mut env).expect("begin close");
                self.crash(Some(request.files), completed_mask);
            }
            Op::CleanReopen => self.clean_reopen(),
            Op::Tick { ms } => {
                self.wall_clock_ms += i64::from(ms);
                self.now = self.now.plus_millis(u64::from(ms));
            }
        }
        self.check();
    }

    fn append(&mut self, records: Vec<(i64, u16)>) {
        let records: Vec<NewRecord> = records
            .iter()
            .enumerate()
            .map(|(index, (relative_ms, value_bytes))| NewRecord {
                timestamp: self.wall_clock_ms + relative_ms,
                key: (index % 2 == 0).then(|| vec![index as u8; 3]),
                value: Some(vec![(*value_bytes % 251) as u8; usize::from(*value_bytes)]),
                headers: Vec::new(),
            })
            .collect();
        let bytes = encode_batch(&records, ProducerInfo::NONE);
        let must_roll = self.model.must_roll(&self.config, bytes.len() as u64, self.wall_clock_ms);
        let fired_before = self.faults.roll_early_fired;
        let (log, mut env) = self.split();
        let info = log.append(&mut env, &bytes).expect("append on a reliable disk");
        let fired = self.faults.roll_early_fired > fired_before;
        assert_eq!(info.rolled, must_roll || fired, "roll by size, by age or by BUGGIFY, and only then");
        assert_eq!(info.base_offset, self.model.end);
        let mut stored = bytes;
        set_base_offset(&mut stored, info.base_offset);
        self.model.append(stored, info.rolled);
        assert_eq!(info.last_offset + 1, self.model.end);
    }

    fn offset_for_timestamp(&mut self, timestamp: i64) {
        let expected = self.model.offset_for_timestamp(timestamp);
        let (log, mut env) = self.split();
        assert_eq!(
            log.offset_for_timestamp(&mut env, timestamp).expect("lookup"),
            expected,
            "at {timestamp}"
        );
    }

    fn truncate(&mut self, at: prop::sample::Index, boundary: bool) {
        let offset = if boundary {
            let boundaries = self.model.boundaries();
            boundaries[at.index(boundaries.len())]
        } else {
            self.model.start + at.index((self.model.end - self.model.start + 1) as usize) as i64
        };
        let is_boundary = offset == self.model.end || self.model.batches.contains_key(&offset);
        let (log, mut env) = self.split();
        let result = log.truncate_to(&mut env, offset);
        if is_boundary {
            result.expect("truncate at a batch boundary");
            self.model.truncate_to(offset);
        } else {
            assert!(matches!(result, Err(LogError::OffsetOutOfRange { .. })), "inside a batch: {result:?}");
        }
    }

    /// Takes a sync request and has the disk capture its files now, as the driver MUST.
    fn request_sync(&mut self) -> bool {
        let (log, _) = self.split();
        let Some(request) = log.sync_request() else {
            if self.model.syncs.is_empty() {
                assert_eq!(
                    self.model.durable, self.model.end,
                    "nothing unsynced means everything is durable"
                );
            }
            return false;
        };
        assert_eq!(request.up_to_offset, self.model.end);
        assert!(!request.files.is_empty());
        let tickets = request
            .files
            .iter()
            .map(|path| self.disk.request_sync(path).expect("sync a file of the log"))
            .collect();
        self.model.syncs.push_back(ModelSync {
            up_to_offset: request.up_to_offset,
            durable_up_to_offset: request.up_to_offset,
            truncations_before: self.model.truncations,
            files: request.files.clone(),
            tickets,
            completed: false,
        });
        true
    }

    fn complete_sync(&mut self, index: usize) {
        for ticket in self.model.syncs[index].tickets.clone() {
            self.disk.complete_sync(ticket).expect("a reliable disk syncs");
        }
        self.model.complete_sync(index);
        for up_to_offset in self.model.report_completed_syncs() {
            let (log, _) = self.split();
            log.on_sync_complete(up_to_offset);
        }
    }

    fn complete_every_sync(&mut self) {
        while let Some(index) = (0..self.model.syncs.len()).find(|i| !self.model.syncs[*i].completed) {
            self.complete_sync(index);
        }
    }

    /// Syncs the files whose bit is set in `completed_mask`, then loses power.
    fn crash(&mut self, files: Option<Vec<String>>, completed_mask: u64) {
        for (index, path) in files.unwrap_or_default().iter().enumerate() {
            let ticket = self.disk.request_sync(path).expect("sync a file of the log");
            if completed_mask >> (index % 64) & 1 == 1 {
                self.disk.complete_sync(ticket).expect("a reliable disk syncs");
            }
        }
        self.log = None;
        self.disk.crash();
        self.model.syncs.clear();
        let clean = self.open();
        assert!(!clean, "a crash is never a clean shutdown");
        self.adopt_recovered();
    }

    fn clean_reopen(&mut self) {
        self.complete_every_sync();
        let (log, mut env) = self.split();
        let request = log.begin_close(&mut env).expect("begin close");
        assert_eq!(request.up_to_offset, self.model.end);
        for path in &request.files {
            let ticket = self.disk.request_sync(path).expect("sync a file of the log");
            self.disk.complete_sync(ticket).expect("a reliable disk syncs");
        }
        let (log, mut env) = self.split();
        log.on_sync_complete(request.up_to_offset);
        log.complete_close(&mut env).expect("complete close");
        self.log = None;
        // Power loss after a clean close loses nothing.
        self.disk.crash();
        assert!(self.open(), "a clean close reopens clean");
        self.model.durable = self.model.end;
        self.model.ghosts.clear();
        let recovered = self.read_everything();
        let expected: Vec<(i64, Vec<u8>)> =
            self.model.batches.iter().map(|(offset, batch)| (*offset, batch.bytes.clone())).collect();
        assert_eq!(recovered, expected, "a clean reopen holds exactly the log");
    }

    /// Checks the recovered log against the model and makes the model what was recovered.
    fn adopt_recovered(&mut self) {
        let recovered = self.read_everything();
        let log = self.log.as_ref().expect("open");
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        assert_eq!(start, self.model.start, "segment deletion is durable, and nothing else moves the start");
        assert!(
            end >= self.model.durable,
            "recovery kept everything durable: end {end} < {}",
            self.model.durable
        );
        assert_eq!(log.durable_offset(), end, "what recovery read back is durable");
        for (offset, bytes) in &recovered {
            let current = self.model.batches.get(offset).is_some_and(|batch| &batch.bytes == bytes);
            let ghost = self.model.is_ghost(*offset, bytes);
            if *offset < self.model.durable {
                assert!(current, "durable batch at {offset} changed");
            } else {
                assert!(current || ghost, "batch at {offset} was never appended there");
            }
        }
        let bases = log.segment_base_offsets();
        assert!(
            self.model.bases.starts_with(&bases),
            "segments {bases:?} not a prefix of {:?}",
            self.model.bases
        );
        assert!(bases.iter().all(|base| *base <= end));
        if self.model.ghosts.is_empty() {
            // Every segment holding recovered records is there. An empty segment starting at the end
            // may be gone: recovery deletes every segment after a cut, and a cut it made before can
            // come back when the crash drops its (unsynced) truncation.
            let holding = |base: &&i64| **base < end;
            let expected: Vec<i64> = self.model.bases.iter().filter(holding).copied().collect();
            let kept: Vec<i64> = bases.iter().filter(holding).copied().collect();
            assert_eq!(kept, expected, "recovery keeps every segment below the end");
        }
        self.model.batches =
            recovered.into_iter().map(|(offset, bytes)| (offset, ModelBatch::new(bytes))).collect();
        self.model.end = end;
        self.model.durable = end;
        self.model.bases = bases;
        self.model.ghosts.clear();
    }

    /// Every batch of the log, by reading it: (base offset, bytes).
    fn read_everything(&mut self) -> Vec<(i64, Vec<u8>)> {
        let (log, mut env) = self.split();
        let mut batches = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log.read(&mut env, offset, 1 << 14).expect("read back");
            let before = batches.len();
            for batch in Batches::new(&read.bytes) {
                let (header, bytes) = batch.expect("reads serve valid batches");
                assert_eq!(header.base_offset, offset, "batches are contiguous");
                batches.push((header.base_offset, bytes.to_vec()));
                offset = header.last_offset() + 1;
            }
            assert!(batches.len() > before, "a read below the end makes progress");
        }
        batches
    }

    /// After every step: the log and the model agree.
    fn check(&mut self) {
        let model = &self.model;
        let (log, mut env) = {
            let env = Env {
                now: self.now,
                wall_clock_ms: self.wall_clock_ms,
                storage: &mut self.disk,
                rng: &mut self.rng,
                faults: &mut self.faults,
            };
            (self.log.as_ref().expect("open"), env)
        };
        assert_eq!(log.log_start_offset(), model.start);
        assert_eq!(log.log_end_offset(), model.end);
        assert_eq!(log.durable_offset(), model.durable);
        assert_eq!(log.segment_base_offsets(), model.bases);
        assert_eq!(log.size_bytes(), model.size_bytes());
        assert!(model.start <= model.durable && model.durable <= model.end);
        log.verify(&mut env).expect("the log verifies");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_its_model(
        seed in any::<u64>(),
        config in config_strategy(),
        roll_early_probability_percent in prop_oneof![Just(0u64), Just(10)],
        ops in prop::collection::vec(op_strategy(), 1..200),
    ) {
        let mut harness = Harness::new(seed, config, roll_early_probability_percent);
        for op in ops {
            harness.step(op);
        }
        // Every run ends in a power loss with nothing more synced: what was durable must survive.
        harness.step(Op::Crash { completed_mask: 0 });
    }
}
