//! Unit tests of the leader-epoch cache over an in-memory storage, with a real partition log
//! beside it: the log is the truth the cache is checked against. A "crash" here is dropping both
//! and opening again; damaging the checkpoint stands for what a crash can leave of an unsynced file.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::env::{NoFaults, Time};
use crate::log::LogConfig;
use crate::record::{encode_batch, NewRecord, ProducerInfo};
use crate::test_support::MemStorage;

const DIR: &str = "topic-0";

struct World {
    storage: MemStorage,
    rng: ChaCha8Rng,
    faults: NoFaults,
}

impl World {
    fn new() -> World {
        World { storage: MemStorage::default(), rng: ChaCha8Rng::seed_from_u64(11), faults: NoFaults }
    }

    fn env(&mut self) -> Env<'_> {
        Env {
            now: Time::ZERO,
            wall_clock_ms: 1_000_000,
            storage: &mut self.storage,
            rng: &mut self.rng,
            faults: &mut self.faults,
        }
    }

    fn open_log(&mut self) -> PartitionLog {
        let (log, _) = PartitionLog::open(&mut self.env(), DIR, config()).expect("the log opens");
        log
    }

    fn open_cache(&mut self, log: &PartitionLog) -> LeaderEpochCache {
        LeaderEpochCache::open(&mut self.env(), DIR, log).expect("the epoch cache opens")
    }

    /// What the checkpoint file holds, decoded; `None` if absent or invalid.
    fn checkpoint(&self) -> Option<Vec<EpochEntry>> {
        self.storage.files.get(&checkpoint_path(DIR)).and_then(|bytes| decode(bytes))
    }

    fn checkpoint_bytes(&mut self) -> &mut Vec<u8> {
        self.storage.files.get_mut(&checkpoint_path(DIR)).expect("the checkpoint exists")
    }
}

/// Small segments, so that logs of a few dozen batches span several.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: i64::MAX / 2,
        index_interval_bytes: 128,
        retention_bytes: None,
        retention_ms: None,
        max_batch_bytes: 8192,
    }
}

fn batch(tag: u32, count: usize) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..count)
        .map(|index| NewRecord {
            timestamp: 1000 + index as i64,
            key: None,
            value: Some(format!("batch {tag} record {index}").into_bytes()),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&records, ProducerInfo::NONE)
}

/// The leader appends `batches` batches of 1 to 3 records in `epoch`, keeping the cache in step.
/// Returns the base offset of the first.
fn lead(
    world: &mut World,
    log: &mut PartitionLog,
    cache: &mut LeaderEpochCache,
    epoch: i32,
    batches: u32,
) -> i64 {
    let mut first = None;
    for tag in 0..batches {
        let bytes = batch(tag, 1 + (tag % 3) as usize);
        let info = log.append_as_leader(&mut world.env(), &bytes, epoch).expect("append");
        cache.assign(&mut world.env(), epoch, info.base_offset).expect("assign");
        first.get_or_insert(info.base_offset);
    }
    first.expect("at least one batch")
}

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect()
}

fn cache_of(pairs: &[(i32, i64)]) -> LeaderEpochCache {
    LeaderEpochCache { dir: DIR.to_string(), entries: entries(pairs) }
}

// ---- assign ----

#[test]
fn assign_records_new_epochs_ignores_equal_ones_and_refuses_older_ones() {
    let mut world = World::new();
    let log = world.open_log();
    let mut cache = world.open_cache(&log);
    assert_eq!(cache.entries(), &[]);
    assert_eq!(cache.latest_epoch(), None);
    assert_eq!(world.checkpoint(), Some(Vec::new()), "an empty cache is checkpointed too");

    cache.assign(&mut world.env(), 2, 0).unwrap();
    cache.assign(&mut world.env(), 2, 5).unwrap();
    cache.assign(&mut world.env(), 4, 10).unwrap();
    cache.assign(&mut world.env(), -1, 12).unwrap();
    assert_eq!(cache.entries(), entries(&[(2, 0), (4, 10)]));
    assert_eq!(cache.latest_epoch(), Some(4));
    assert_eq!(world.checkpoint().as_deref(), Some(cache.entries()), "every change is persisted");

    let older = cache.assign(&mut world.env(), 3, 20);
    assert!(
        matches!(&older, Err(LogError::Unrecoverable(why)) if why.contains("older than the latest epoch 4"))
    );
    assert!(matches!(cache.assign(&mut world.env(), 6, -3), Err(LogError::Unrecoverable(_))));
    assert_eq!(cache.entries(), entries(&[(2, 0), (4, 10)]), "a refused assign changes nothing");
    assert_eq!(world.checkpoint().as_deref(), Some(cache.entries()));
    assert!(!world.storage.files.contains_key(&temp_path(DIR)), "the temporary file was renamed");

    assert_eq!(cache.epoch_for_offset(9), Some(2));
    // A leader that took over at offset 10 and appended nothing: the next epoch replaces it.
    cache.assign(&mut world.env(), 5, 10).unwrap();
    assert_eq!(cache.entries(), entries(&[(2, 0), (5, 10)]), "an empty epoch is replaced");
    assert_eq!(world.checkpoint().as_deref(), Some(cache.entries()));
    cache.assign(&mut world.env(), 4 + 3, 10).unwrap();
    assert_eq!(cache.entries(), entries(&[(2, 0), (7, 10)]));
    assert_eq!(cache.epoch_for_offset(10), Some(7));
}

#[test]
fn a_failed_checkpoint_write_is_a_storage_error_and_the_next_open_reconciles() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    lead(&mut world, &mut log, &mut cache, 1, 4);
    let info = log.append_as_leader(&mut world.env(), &batch(9, 1), 2).unwrap();
    world.storage.writes_before_failure = Some(0);
    assert_eq!(cache.assign(&mut world.env(), 2, info.base_offset), Err(LogError::Storage(StorageError::Io)));
    world.storage.writes_before_failure = None;
    // Memory follows the log; the file lags it and open scans past its last entry.
    assert_eq!(cache.entries(), entries(&[(1, 0), (2, info.base_offset)]));
    assert_eq!(world.checkpoint(), Some(entries(&[(1, 0)])));
    assert_eq!(world.open_cache(&log), cache);
    assert_eq!(world.checkpoint().as_deref(), Some(cache.entries()), "open rewrote the checkpoint");
}

// ---- open: the checkpoint against the log ----

#[test]
fn the_cache_round_trips_across_a_reopen_of_the_log_and_the_cache() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    let one = lead(&mut world, &mut log, &mut cache, 1, 10);
    let three = lead(&mut world, &mut log, &mut cache, 3, 25);
    // Plain appends carry no epoch: they start none.
    log.append(&mut world.env(), &batch(99, 2)).unwrap();
    let seven = lead(&mut world, &mut log, &mut cache, 7, 5);
    assert!(log.segment_count() > 3);
    assert_eq!(cache.entries(), entries(&[(1, one), (3, three), (7, seven)]));
    assert_eq!(cache.dir(), DIR);

    drop(log); // Unclean: the log recovers by scanning, the cache from its checkpoint.
    let log = world.open_log();
    let checkpoint_before = world.checkpoint_bytes().clone();
    assert_eq!(world.open_cache(&log), cache);
    assert_eq!(world.checkpoint_bytes(), &checkpoint_before, "a checkpoint that holds is not rewritten");
}

#[test]
fn a_good_checkpoint_spares_the_scan_of_the_whole_log() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    lead(&mut world, &mut log, &mut cache, 1, 200);
    lead(&mut world, &mut log, &mut cache, 2, 200);
    lead(&mut world, &mut log, &mut cache, 5, 2);

    let reads_before = world.storage.reads;
    assert_eq!(world.open_cache(&log), cache);
    let reads_with_checkpoint = world.storage.reads - reads_before;

    world.storage.files.remove(&checkpoint_path(DIR));
    let reads_before = world.storage.reads;
    assert_eq!(world.open_cache(&log), cache);
    let reads_rebuilding = world.storage.reads - reads_before;
    assert!(
        reads_with_checkpoint * 4 < reads_rebuilding,
        "{reads_with_checkpoint} reads with a checkpoint, {reads_rebuilding} rebuilding"
    );
}

#[test]
fn a_missing_torn_or_garbage_checkpoint_is_rebuilt_from_the_log() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    lead(&mut world, &mut log, &mut cache, 0, 6);
    lead(&mut world, &mut log, &mut cache, 2, 6);
    lead(&mut world, &mut log, &mut cache, 3, 6);
    let good = world.checkpoint_bytes().clone();
    assert_eq!(decode(&good).as_deref(), Some(cache.entries()));

    // A checkpoint with a valid CRC but entries out of order, or a count disagreeing with its length.
    let reseal = |mut body: Vec<u8>| {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        body
    };
    let mut out_of_order = good[..good.len() - 4].to_vec();
    out_of_order[5..9].copy_from_slice(&9i32.to_be_bytes());
    let mut wrong_count = good[..good.len() - 4].to_vec();
    wrong_count[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut wrong_version = good[..good.len() - 4].to_vec();
    wrong_version[0] = 2;

    let damages: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("empty", Some(Vec::new())),
        ("torn in half", Some(good[..good.len() / 2].to_vec())),
        ("torn by a byte", Some(good[..good.len() - 1].to_vec())),
        (
            "a flipped bit",
            Some({
                let mut bytes = good.clone();
                bytes[7] ^= 0x10;
                bytes
            }),
        ),
        ("zeros", Some(vec![0; good.len()])),
        ("garbage", Some(b"0\n3\n0 0\n2 6\n3 12\n".to_vec())),
        ("out of order", Some(reseal(out_of_order))),
        ("a wrong count", Some(reseal(wrong_count))),
        ("an unknown version", Some(reseal(wrong_version))),
    ];
    for (damage, bytes) in damages {
        match bytes {
            None => {
                world.storage.files.remove(&checkpoint_path(DIR));
            }
            Some(bytes) => {
                world.storage.files.insert(checkpoint_path(DIR), bytes);
            }
        }
        // A temporary file a crash left behind is never read, and is removed.
        world.storage.files.insert(temp_path(DIR), good.clone());
        assert_eq!(world.open_cache(&log), cache, "checkpoint {damage}");
        assert_eq!(world.checkpoint_bytes(), &good, "checkpoint {damage} rewritten");
        assert!(!world.storage.files.contains_key(&temp_path(DIR)));
    }
}

#[test]
fn a_checkpoint_the_log_disagrees_with_is_detected_and_rebuilt() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    let one = lead(&mut world, &mut log, &mut cache, 1, 10);
    let two = lead(&mut world, &mut log, &mut cache, 2, 10);
    lead(&mut world, &mut log, &mut cache, 4, 3);
    let stale = world.checkpoint_bytes().clone();
    assert_eq!(cache.entries().len(), 3);

    // The log is cut where epoch 2 began and re-appended in epoch 5, but the checkpoint written
    // for that is lost: the stale one names epoch 2 at an offset whose batch now carries 5.
    log.truncate_to(&mut world.env(), two).unwrap();
    cache.truncate_from_end(&mut world.env(), two).unwrap();
    let five = lead(&mut world, &mut log, &mut cache, 5, 8);
    assert_eq!(five, two);
    assert_eq!(cache.entries(), entries(&[(1, one), (5, two)]));
    *world.checkpoint_bytes() = stale.clone();
    assert_eq!(world.open_cache(&log), cache);
    assert_eq!(world.checkpoint().as_deref(), Some(cache.entries()));

    // Cut inside epoch 1 and re-appended with other batch sizes: a stale entry's offset now falls
    // inside a batch, or past the end.
    let mid_one = log.batch_headers(&mut world.env(), one).unwrap()[3].base_offset;
    log.truncate_to(&mut world.env(), mid_one).unwrap();
    cache.truncate_from_end(&mut world.env(), mid_one).unwrap();
    for tag in 0..12 {
        let info = log.append_as_leader(&mut world.env(), &batch(tag, 5), 6).unwrap();
        cache.assign(&mut world.env(), 6, info.base_offset).unwrap();
    }
    assert_eq!(cache.entries(), entries(&[(1, one), (6, mid_one)]));
    *world.checkpoint_bytes() = stale.clone();
    let reopened = world.open_cache(&log);
    assert_eq!(reopened, cache);
}

#[test]
fn a_checkpoint_ahead_of_or_behind_the_log_is_reconciled() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    let one = lead(&mut world, &mut log, &mut cache, 1, 10);
    let two = lead(&mut world, &mut log, &mut cache, 2, 10);
    let behind = world.checkpoint_bytes().clone();
    let three = lead(&mut world, &mut log, &mut cache, 3, 10);

    // Behind: epoch 3 is found by scanning from the last entry.
    let ahead = world.checkpoint_bytes().clone();
    *world.checkpoint_bytes() = behind;
    assert_eq!(world.open_cache(&log), cache);

    // Ahead: the batches of epoch 3 were lost (unsynced when the power went), the checkpoint
    // naming it survived. The log is cut without telling the cache.
    log.truncate_to(&mut world.env(), three).unwrap();
    *world.checkpoint_bytes() = ahead;
    let reopened = world.open_cache(&log);
    assert_eq!(reopened.entries(), entries(&[(1, one), (2, two)]));
    assert_eq!(world.checkpoint().as_deref(), Some(reopened.entries()));

    // Every batch lost: an empty log at offset 0 has no epochs.
    log.truncate_to(&mut world.env(), 0).unwrap();
    assert_eq!(world.open_cache(&log).entries(), &[]);
}

#[test]
fn entries_below_the_log_start_are_moved_up_to_it_on_open() {
    let mut world = World::new();
    let (mut log, _) =
        PartitionLog::open(&mut world.env(), DIR, LogConfig { retention_bytes: Some(2048), ..config() })
            .unwrap();
    let mut cache = world.open_cache(&log);
    lead(&mut world, &mut log, &mut cache, 1, 30);
    let two = lead(&mut world, &mut log, &mut cache, 2, 60);
    let three = lead(&mut world, &mut log, &mut cache, 3, 2);
    if let Some(request) = log.sync_request() {
        log.on_sync_complete(request.up_to_offset);
    }
    log.apply_retention(&mut world.env()).unwrap();
    let start = log.log_start_offset();
    assert!(
        start > two && start < three,
        "retention deleted into epoch 2: start {start}, epoch 2 {two}..{three}"
    );
    // The crash came before the cache heard of the new start: open clamps, as it would have.
    let reopened = world.open_cache(&log);
    cache.truncate_from_start(&mut world.env(), start).unwrap();
    assert_eq!(reopened, cache);
    assert_eq!(cache.entries()[0], EpochEntry { epoch: 2, start_offset: start });
}

#[test]
fn a_log_whose_epochs_go_backwards_does_not_open_and_names_where_to_cut() {
    let mut world = World::new();
    let mut log = world.open_log();
    log.append_as_leader(&mut world.env(), &batch(0, 1), 2).unwrap();
    // A flipped bit in the (CRC-less) epoch field of the batch at 1 makes epoch 2 look like 4098.
    log.append_as_leader(&mut world.env(), &batch(1, 1), 4098).unwrap();
    log.append_as_leader(&mut world.env(), &batch(2, 1), 2).unwrap();
    let opened = LeaderEpochCache::open(&mut world.env(), DIR, &log);
    assert!(
        matches!(&opened, Err(LogError::EpochsGoBackwards { offset: 2, cut: 1, detail }) if detail.contains("go backwards")),
        "{opened:?}"
    );
    // Cut there, the log opens, and the suspect epoch is gone.
    log.truncate_to(&mut world.env(), 1).unwrap();
    let cache = world.open_cache(&log);
    assert_eq!(cache.entries(), &[EpochEntry { epoch: 2, start_offset: 0 }]);
}

#[test]
fn a_corrupt_batch_on_the_way_is_a_corrupt_error_not_a_guess() {
    let mut world = World::new();
    let mut log = world.open_log();
    let mut cache = world.open_cache(&log);
    lead(&mut world, &mut log, &mut cache, 1, 5);
    let two = lead(&mut world, &mut log, &mut cache, 2, 5);
    world.storage.files.remove(&checkpoint_path(DIR));
    // Damage the last record byte (inside the CRC) of the batch where epoch 2 starts.
    let stored = log.read(&mut world.env(), two, 1).unwrap().bytes;
    let segment_base = log.segment_base_offsets().into_iter().filter(|&base| base <= two).max().unwrap();
    let file = world.storage.files.get_mut(&format!("{DIR}/{segment_base:020}.log")).unwrap();
    let at =
        file.windows(stored.len()).position(|window| window == stored).expect("the batch is in its segment");
    file[at + stored.len() - 1] ^= 0x01;
    let opened = LeaderEpochCache::open(&mut world.env(), DIR, &log);
    assert!(matches!(opened, Err(LogError::Corrupt { .. })), "{opened:?}");
}

// ---- truncation ----

#[test]
fn truncate_from_end_drops_entries_starting_at_or_after_the_cut() {
    let mut world = World::new();
    for (end_offset, expected) in [
        (25, &[(1, 0), (3, 10), (5, 20)][..]),
        (21, &[(1, 0), (3, 10), (5, 20)]),
        (20, &[(1, 0), (3, 10)]),
        (11, &[(1, 0), (3, 10)]),
        (10, &[(1, 0)]),
        (0, &[]),
    ] {
        let mut cache = cache_of(&[(1, 0), (3, 10), (5, 20)]);
        cache.truncate_from_end(&mut world.env(), end_offset).unwrap();
        assert_eq!(cache.entries(), entries(expected), "truncate_from_end({end_offset})");
    }
    // Persisted when it changes, left alone when not.
    let mut world = World::new();
    let mut cache = cache_of(&[(1, 0), (3, 10)]);
    cache.truncate_from_end(&mut world.env(), 12).unwrap();
    assert_eq!(world.checkpoint(), None, "nothing changed, nothing written");
    cache.truncate_from_end(&mut world.env(), 10).unwrap();
    assert_eq!(world.checkpoint(), Some(entries(&[(1, 0)])));
}

#[test]
fn truncate_from_start_drops_entries_wholly_below_and_moves_the_containing_one_up() {
    let mut world = World::new();
    for (start_offset, expected) in [
        (0, &[(1, 0), (3, 10), (5, 20)][..]),
        (5, &[(1, 5), (3, 10), (5, 20)]),
        (10, &[(3, 10), (5, 20)]),
        (15, &[(3, 15), (5, 20)]),
        (20, &[(5, 20)]),
        (30, &[(5, 30)]),
    ] {
        let mut cache = cache_of(&[(1, 0), (3, 10), (5, 20)]);
        cache.truncate_from_start(&mut world.env(), start_offset).unwrap();
        assert_eq!(cache.entries(), entries(expected), "truncate_from_start({start_offset})");
    }
    let mut cache = cache_of(&[(1, 4)]);
    cache.truncate_from_start(&mut world.env(), 2).unwrap();
    assert_eq!(cache.entries(), entries(&[(1, 4)]), "a start below every entry changes nothing");
    assert_eq!(world.checkpoint(), Some(entries(&[(5, 30)])), "the last change is persisted");
}

// ---- OffsetsForLeaderEpoch ----

#[test]
fn end_offset_for_answers_as_kafka_does() {
    let cache = cache_of(&[(1, 0), (3, 10), (5, 20)]);
    let log_end_offset = 30;
    for (requested, expected) in [
        (5, (5, 30)),  // the latest epoch: it ends at the log end
        (6, (-1, -1)), // above the latest: unknown
        (i32::MAX, (-1, -1)),
        (-1, (-1, -1)), // UNDEFINED_EPOCH
        (0, (0, 0)),    // below the first: the requested epoch, ending where the first starts
        (1, (1, 10)),   // a known epoch ends where the next begins
        (2, (1, 10)),   // between: the largest epoch below, ending where the next begins
        (3, (3, 20)),
        (4, (3, 20)),
    ] {
        assert_eq!(cache.end_offset_for(requested, log_end_offset), expected, "requested {requested}");
    }
    assert_eq!(cache_of(&[]).end_offset_for(0, 7), (-1, -1), "an empty cache knows no epoch");
    let single = cache_of(&[(4, 7)]);
    assert_eq!(single.end_offset_for(4, 12), (4, 12));
    assert_eq!(single.end_offset_for(3, 12), (3, 7));
    assert_eq!(single.end_offset_for(5, 12), (-1, -1));
}

// ---- the checkpoint format ----

#[test]
fn the_checkpoint_encoding_round_trips_and_any_flipped_bit_is_refused() {
    let cases = [entries(&[]), entries(&[(0, 0)]), entries(&[(1, 0), (3, 10), (i32::MAX, i64::MAX)])];
    for case in &cases {
        let bytes = encode(case);
        assert_eq!(bytes.len(), 1 + 4 + 12 * case.len() + 4);
        assert_eq!(decode(&bytes).as_ref(), Some(case));
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&damaged), None, "bit {bit} of {case:?}");
        }
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), None, "{len} bytes of {case:?}");
        }
    }
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// The leader appends a batch of `records` in the latest epoch plus `bump`.
        Lead { bump: i32, records: usize },
        /// A plain append, with no leader epoch.
        Plain,
        /// The log (and cache) are cut at a batch boundary, chosen by index.
        Truncate(prop::sample::Index),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3i32, 1..4usize).prop_map(|(bump, records)| Op::Lead { bump, records }),
            1 => Just(Op::Plain),
            2 => any::<prop::sample::Index>().prop_map(Op::Truncate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever appends and cuts happened, the cache opened from disk is the cache kept in
        /// memory, and so is one rebuilt from the log alone.
        #[test]
        fn the_cache_opened_from_disk_equals_the_cache_kept_in_memory(
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let mut world = World::new();
            let mut log = world.open_log();
            let mut cache = world.open_cache(&log);
            for (tag, op) in ops.iter().enumerate() {
                match op {
                    Op::Lead { bump, records } => {
                        let epoch = cache.latest_epoch().unwrap_or(0) + bump;
                        let info = log
                            .append_as_leader(&mut world.env(), &batch(tag as u32, *records), epoch)
                            .unwrap();
                        cache.assign(&mut world.env(), epoch, info.base_offset).unwrap();
                    }
                    Op::Plain => {
                        let info = log.append(&mut world.env(), &batch(tag as u32, 1)).unwrap();
                        cache.assign(&mut world.env(), -1, info.base_offset).unwrap();
                    }
                    Op::Truncate(index) => {
                        let mut boundaries: Vec<i64> = log
                            .batch_headers(&mut world.env(), log.log_start_offset())
                            .unwrap()
                            .iter()
                            .map(|header| header.base_offset)
                            .collect();
                        boundaries.push(log.log_end_offset());
                        let cut = boundaries[index.index(boundaries.len())];
                        log.truncate_to(&mut world.env(), cut).unwrap();
                        cache.truncate_from_end(&mut world.env(), cut).unwrap();
                    }
                }
                let persisted = world.checkpoint();
                prop_assert_eq!(persisted.as_deref(), Some(cache.entries()));
            }
            prop_assert_eq!(&world.open_cache(&log), &cache);
            world.storage.files.remove(&checkpoint_path(DIR));
            prop_assert_eq!(&world.open_cache(&log), &cache);
            // And across a reopen of the log itself.
            drop(log);
            let log = world.open_log();
            prop_assert_eq!(&world.open_cache(&log), &cache);
        }
    }
}
