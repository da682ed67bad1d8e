//! One contract for the core's `Storage`, run against every implementation.
//!
//! The core is tested on the simulated disk and runs on real files; that is only worth something
//! if both keep the same contract. Every documented semantic of `seedlog_core::env::Storage` is a
//! case in `cases`, and `contract_suite!` instantiates all of them for an implementation. On top
//! of the scripted cases, `cases::agrees_with_the_model` drives a seeded random sequence of
//! operations against both the implementation and `Model` (a map of byte vectors, the contract
//! written as code) and compares every result, errors included.
//!
//! Implementation-specific tests follow the suite: for `FileStorage`, paths escaping the root and
//! reopening the directory after a sync; for `SimDisk`, the same durability ordering across a
//! crash. `FileStorage` on turmoil's simulated files (`turmoil_host::TurmoilFileSystem`, what the
//! turmoil tier runs the driver on) keeps the same contract, checked inside a turmoil simulation,
//! and its crash model is pinned: what was synced survives a crash, what was not is lost, and a
//! bounce (a process restart) loses nothing.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seedlog_core::env::{Storage, StorageError};
use seedlog_server::fs::FileStorage;
use seedlog_sim::disk::{DiskOptions, SimDisk};

mod cases {
    use super::*;

    pub fn create_makes_an_empty_file_once<S: Storage>(storage: &mut S) {
        assert!(!storage.exists("a"));
        storage.create("a").unwrap();
        assert!(storage.exists("a"));
        assert_eq!(storage.len("a").unwrap(), 0);
        assert_eq!(storage.read_all("a").unwrap(), Vec::<u8>::new());
        assert_eq!(storage.create("a"), Err(StorageError::AlreadyExists));

        storage.append("a", b"kept").unwrap();
        assert_eq!(storage.create("a"), Err(StorageError::AlreadyExists));
        assert_eq!(storage.read_all("a").unwrap(), b"kept", "a failed create leaves the file alone");
    }

    pub fn create_implies_parent_directories<S: Storage>(storage: &mut S) {
        storage.create("topic-0/00000000000000000000.log").unwrap();
        storage.create("deep/er/still/file").unwrap();
        assert!(storage.exists("topic-0/00000000000000000000.log"));
        assert!(storage.exists("deep/er/still/file"));
        assert_eq!(storage.len("deep/er/still/file").unwrap(), 0);
    }

    pub fn operations_on_a_missing_file_are_not_found<S: Storage>(storage: &mut S) {
        let mut buf = [0u8; 1];
        assert!(!storage.exists("missing"));
        assert_eq!(storage.len("missing"), Err(StorageError::NotFound));
        assert_eq!(storage.read_at("missing", 0, &mut buf), Err(StorageError::NotFound));
        assert_eq!(storage.read_all("missing"), Err(StorageError::NotFound));
        assert_eq!(storage.append("missing", b"x"), Err(StorageError::NotFound));
        assert_eq!(storage.write_at("missing", 0, b"x"), Err(StorageError::NotFound));
        assert_eq!(storage.truncate("missing", 0), Err(StorageError::NotFound));
        assert_eq!(storage.remove("missing"), Err(StorageError::NotFound));
        assert_eq!(storage.rename("missing", "elsewhere"), Err(StorageError::NotFound));
        assert!(!storage.exists("missing"), "no operation above may create the file");
        assert!(!storage.exists("elsewhere"));
    }

    pub fn append_returns_the_offset_it_wrote_at<S: Storage>(storage: &mut S) {
        storage.create("log").unwrap();
        assert_eq!(storage.append("log", b"hello").unwrap(), 0);
        assert_eq!(storage.append("log", b", ").unwrap(), 5);
        assert_eq!(storage.append("log", b"").unwrap(), 7, "an empty append writes nothing at the end");
        assert_eq!(storage.append("log", b"world").unwrap(), 7);
        assert_eq!(storage.len("log").unwrap(), 12);
        assert_eq!(storage.read_all("log").unwrap(), b"hello, world");
    }

    pub fn write_at_overwrites_and_extends_with_zeros<S: Storage>(storage: &mut S) {
        storage.create("f").unwrap();
        storage.write_at("f", 4, b"ab").unwrap();
        assert_eq!(storage.len("f").unwrap(), 6);
        assert_eq!(storage.read_all("f").unwrap(), b"\0\0\0\0ab");

        storage.write_at("f", 1, b"XY").unwrap();
        assert_eq!(storage.len("f").unwrap(), 6, "a write inside the file does not change its length");
        assert_eq!(storage.read_all("f").unwrap(), b"\0XY\0ab");

        storage.write_at("f", 5, b"123").unwrap();
        assert_eq!(storage.read_all("f").unwrap(), b"\0XY\0a123");

        storage.write_at("f", 8, b"").unwrap();
        assert_eq!(storage.len("f").unwrap(), 8);
        storage.write_at("f", 2, b"").unwrap();
        assert_eq!(storage.len("f").unwrap(), 8, "an empty write inside the file changes nothing");
        storage.write_at("f", 10, b"").unwrap();
        assert_eq!(storage.len("f").unwrap(), 8, "an empty write changes nothing, even past the end");
        assert_eq!(storage.read_all("f").unwrap(), b"\0XY\0a123");
        assert_eq!(storage.append("f", b"!").unwrap(), 8, "append continues after a write_at");
    }

    pub fn read_at_is_exact_and_out_of_range_past_the_end<S: Storage>(storage: &mut S) {
        storage.create("f").unwrap();
        storage.append("f", b"0123456789").unwrap();

        let mut four = [0u8; 4];
        storage.read_at("f", 3, &mut four).unwrap();
        assert_eq!(&four, b"3456");
        storage.read_at("f", 6, &mut four).unwrap();
        assert_eq!(&four, b"6789", "a read ending exactly at the end is whole");

        assert_eq!(storage.read_at("f", 7, &mut four), Err(StorageError::OutOfRange));
        assert_eq!(storage.read_at("f", 10, &mut four), Err(StorageError::OutOfRange));
        assert_eq!(storage.read_at("f", 1_000, &mut four), Err(StorageError::OutOfRange));
        assert_eq!(storage.read_at("f", u64::MAX, &mut four), Err(StorageError::OutOfRange));
        storage.read_at("f", 10, &mut []).unwrap();

        let mut whole = [0u8; 10];
        storage.read_at("f", 0, &mut whole).unwrap();
        assert_eq!(&whole, b"0123456789");
        let mut one_too_many = [0u8; 11];
        assert_eq!(storage.read_at("f", 0, &mut one_too_many), Err(StorageError::OutOfRange));
    }

    pub fn truncate_shrinks_and_zero_extends<S: Storage>(storage: &mut S) {
        storage.create("f").unwrap();
        storage.append("f", b"abcdefgh").unwrap();

        storage.truncate("f", 3).unwrap();
        assert_eq!(storage.len("f").unwrap(), 3);
        assert_eq!(storage.read_all("f").unwrap(), b"abc");
        let mut buf = [0u8; 1];
        assert_eq!(storage.read_at("f", 3, &mut buf), Err(StorageError::OutOfRange));

        // The cut bytes are gone: growing the file again shows zeros, never the old bytes.
        storage.truncate("f", 6).unwrap();
        assert_eq!(storage.read_all("f").unwrap(), b"abc\0\0\0");
        storage.truncate("f", 3).unwrap();
        storage.write_at("f", 5, b"Z").unwrap();
        assert_eq!(storage.read_all("f").unwrap(), b"abc\0\0Z");

        assert_eq!(storage.append("f", b"+").unwrap(), 6, "append follows the truncated length");
        storage.truncate("f", 7).unwrap();
        assert_eq!(storage.read_all("f").unwrap(), b"abc\0\0Z+", "truncate to the length changes nothing");
        storage.truncate("f", 0).unwrap();
        assert_eq!(storage.len("f").unwrap(), 0);
        assert_eq!(storage.append("f", b"new").unwrap(), 0);
    }

    pub fn list_returns_files_by_prefix_sorted<S: Storage>(storage: &mut S) {
        for path in ["t-1/b", "t-0/a", "t-10/x", "t-1/a", "t-1/sub/c", "u", "t-1/sub/a"] {
            storage.create(path).unwrap();
        }
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            storage.list("").unwrap(),
            strings(&["t-0/a", "t-1/a", "t-1/b", "t-1/sub/a", "t-1/sub/c", "t-10/x", "u"])
        );
        assert_eq!(storage.list("t-1/").unwrap(), strings(&["t-1/a", "t-1/b", "t-1/sub/a", "t-1/sub/c"]));
        assert_eq!(
            storage.list("t-1").unwrap(),
            strings(&["t-1/a", "t-1/b", "t-1/sub/a", "t-1/sub/c", "t-10/x"]),
            "a prefix is a string prefix, not a directory"
        );
        assert_eq!(storage.list("t-1/sub/").unwrap(), strings(&["t-1/sub/a", "t-1/sub/c"]));
        assert_eq!(storage.list("t-1/s").unwrap(), strings(&["t-1/sub/a", "t-1/sub/c"]));
        assert_eq!(storage.list("t-0/a").unwrap(), strings(&["t-0/a"]));
        assert_eq!(storage.list("v").unwrap(), Vec::<String>::new());
        assert_eq!(storage.list("t-2/").unwrap(), Vec::<String>::new());
        assert_eq!(storage.list("t-0/a/").unwrap(), Vec::<String>::new());

        storage.remove("t-1/b").unwrap();
        storage.rename("t-1/a", "t-1/z").unwrap();
        assert_eq!(storage.list("t-1/").unwrap(), strings(&["t-1/sub/a", "t-1/sub/c", "t-1/z"]));
    }

    pub fn remove_deletes_once<S: Storage>(storage: &mut S) {
        storage.create("dir/f").unwrap();
        storage.append("dir/f", b"old").unwrap();
        storage.remove("dir/f").unwrap();
        assert!(!storage.exists("dir/f"));
        assert_eq!(storage.len("dir/f"), Err(StorageError::NotFound));
        assert_eq!(storage.list("dir/").unwrap(), Vec::<String>::new());
        assert_eq!(storage.remove("dir/f"), Err(StorageError::NotFound));

        storage.create("dir/f").unwrap();
        assert_eq!(storage.read_all("dir/f").unwrap(), Vec::<u8>::new(), "a recreated file starts empty");
    }

    pub fn rename_moves_and_replaces_the_target<S: Storage>(storage: &mut S) {
        storage.create("from").unwrap();
        storage.append("from", b"payload").unwrap();
        storage.create("to").unwrap();
        storage.append("to", b"replaced and longer").unwrap();

        storage.rename("from", "to").unwrap();
        assert!(!storage.exists("from"));
        assert_eq!(storage.read_all("to").unwrap(), b"payload");
        assert_eq!(storage.len("to").unwrap(), 7);
        assert_eq!(storage.append("to", b"!").unwrap(), 7);

        storage.rename("to", "nested/new/name").unwrap();
        assert!(!storage.exists("to"));
        assert_eq!(storage.read_all("nested/new/name").unwrap(), b"payload!");

        storage.create("to").unwrap();
        assert_eq!(storage.len("to").unwrap(), 0, "the old name is free and a new file there is empty");
        assert_eq!(storage.rename("from", "to"), Err(StorageError::NotFound));
        assert_eq!(storage.len("to").unwrap(), 0, "a failed rename leaves the target alone");
    }

    pub fn files_are_independent<S: Storage>(storage: &mut S) {
        storage.create("a").unwrap();
        storage.create("b").unwrap();
        for round in 0..100u8 {
            storage.append("a", &[round]).unwrap();
            storage.append("b", &[round, round]).unwrap();
            let mut last = [0u8; 1];
            storage.read_at("a", u64::from(round), &mut last).unwrap();
            assert_eq!(last, [round], "a write is visible to the next read at once");
        }
        assert_eq!(storage.read_all("a").unwrap(), (0..100u8).collect::<Vec<_>>());
        assert_eq!(storage.len("b").unwrap(), 200);
        storage.truncate("a", 0).unwrap();
        assert_eq!(storage.len("b").unwrap(), 200);
    }

    pub fn large_writes_read_back_whole<S: Storage>(storage: &mut S) {
        let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        storage.create("big").unwrap();
        for chunk in data.chunks(64 * 1024 + 7) {
            storage.append("big", chunk).unwrap();
        }
        assert_eq!(storage.len("big").unwrap(), data.len() as u64);
        assert_eq!(storage.read_all("big").unwrap(), data);
        let mut middle = vec![0u8; 100_000];
        storage.read_at("big", 1_000_003, &mut middle).unwrap();
        assert_eq!(middle, data[1_000_003..1_100_003]);
    }

    /// A seeded random walk over every operation, each result compared with `Model`'s.
    pub fn agrees_with_the_model<S: Storage>(storage: &mut S, seed: u64) {
        // No path is a directory of another (a real file system cannot hold `a` and `a/b`).
        const PATHS: [&str; 6] = ["p0/s0", "p0/s1", "p1/s0", "p1/sub/s2", "q", "q2"];
        const PREFIXES: [&str; 7] = ["", "p", "p0/", "p1/", "p1/sub/", "q", "r"];
        const STEPS: usize = 3_000;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        let pick = |rng: &mut ChaCha8Rng| PATHS[rng.random_range(0..PATHS.len())];
        for step in 0..STEPS {
            let context = format!("seed={seed} step={step}");
            match rng.random_range(0..100u32) {
                0..10 => {
                    let path = pick(&mut rng);
                    assert_eq!(storage.create(path), model.create(path), "{context} create {path}");
                }
                10..30 => {
                    let path = pick(&mut rng);
                    let data = random_bytes(&mut rng);
                    let expected = model.append(path, &data);
                    assert_eq!(storage.append(path, &data), expected, "{context} append {path}");
                }
                30..40 => {
                    let path = pick(&mut rng);
                    let offset = rng.random_range(0..2_000u64);
                    let data = random_bytes(&mut rng);
                    let expected = model.write_at(path, offset, &data);
                    assert_eq!(storage.write_at(path, offset, &data), expected, "{context} write_at {path}");
                }
                40..60 => {
                    let path = pick(&mut rng);
                    let offset = rng.random_range(0..2_000u64);
                    let size = rng.random_range(0..300usize);
                    let mut got = vec![0u8; size];
                    let result = storage.read_at(path, offset, &mut got);
                    match model.read_at(path, offset, size) {
                        Ok(expected) => {
                            assert_eq!(result, Ok(()), "{context} read_at {path}");
                            assert_eq!(got, expected, "{context} read_at {path} bytes");
                        }
                        Err(error) => assert_eq!(result, Err(error), "{context} read_at {path}"),
                    }
                }
                60..67 => {
                    let path = pick(&mut rng);
                    let len = rng.random_range(0..2_000u64);
                    assert_eq!(storage.truncate(path, len), model.truncate(path, len), "{context} truncate");
                }
                67..72 => {
                    let path = pick(&mut rng);
                    assert_eq!(storage.remove(path), model.remove(path), "{context} remove {path}");
                }
                72..77 => {
                    let (from, to) = (pick(&mut rng), pick(&mut rng));
                    assert_eq!(
                        storage.rename(from, to),
                        model.rename(from, to),
                        "{context} rename {from} {to}"
                    );
                }
                77..87 => {
                    let prefix = PREFIXES[rng.random_range(0..PREFIXES.len())];
                    assert_eq!(storage.list(prefix), Ok(model.list(prefix)), "{context} list {prefix:?}");
                }
                87..94 => {
                    let path = pick(&mut rng);
                    assert_eq!(storage.len(path), model.len(path), "{context} len {path}");
                    assert_eq!(storage.exists(path), model.len(path).is_ok(), "{context} exists {path}");
                }
                _ => {
                    let path = pick(&mut rng);
                    assert_eq!(storage.read_all(path), model.read_all(path), "{context} read_all {path}");
                }
            }
        }
        // Whatever the walk left, every file reads back as the model says.
        for path in model.list("") {
            assert_eq!(storage.read_all(&path), model.read_all(&path), "seed={seed} final {path}");
        }
    }

    fn random_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
        let size = rng.random_range(0..300usize);
        (0..size).map(|_| rng.random()).collect()
    }
}

/// The `Storage` contract as code: files are byte vectors in a sorted map.
#[derive(Default)]
struct Model {
    files: BTreeMap<String, Vec<u8>>,
}

impl Model {
    fn file(&mut self, path: &str) -> Result<&mut Vec<u8>, StorageError> {
        self.files.get_mut(path).ok_or(StorageError::NotFound)
    }

    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        if self.files.contains_key(path) {
            return Err(StorageError::AlreadyExists);
        }
        self.files.insert(path.to_owned(), Vec::new());
        Ok(())
    }

    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let file = self.file(path)?;
        if data.is_empty() {
            // Writing nothing changes nothing, even past the end (as `pwrite` of zero bytes).
            return Ok(());
        }
        let offset = offset as usize;
        if file.len() < offset + data.len() {
            file.resize(offset + data.len(), 0);
        }
        file[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        let file = self.file(path)?;
        let offset = file.len() as u64;
        file.extend_from_slice(data);
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, size: usize) -> Result<Vec<u8>, StorageError> {
        let file = self.file(path)?;
        let offset = offset as usize;
        if offset + size > file.len() {
            return Err(StorageError::OutOfRange);
        }
        Ok(file[offset..offset + size].to_vec())
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        Ok(self.file(path)?.len() as u64)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        self.file(path)?.resize(len as usize, 0);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        self.files.keys().filter(|path| path.starts_with(prefix)).cloned().collect()
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.files.remove(path).map(|_| ()).ok_or(StorageError::NotFound)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let data = self.files.remove(from).ok_or(StorageError::NotFound)?;
        self.files.insert(to.to_owned(), data);
        Ok(())
    }

    fn read_all(&mut self, path: &str) -> Result<Vec<u8>, StorageError> {
        Ok(self.file(path)?.clone())
    }
}

/// Instantiates every contract case for one implementation. `$make` builds a fresh
/// `(guard, storage)`: the guard (a temporary directory, or `()`) lives as long as the test.
macro_rules! contract_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            fn fresh() -> (impl Sized, impl Storage) {
                $make
            }

            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        let (_guard, mut storage) = fresh();
                        cases::$name(&mut storage);
                    }
                };
            }

            case!(create_makes_an_empty_file_once);
            case!(create_implies_parent_directories);
            case!(operations_on_a_missing_file_are_not_found);
            case!(append_returns_the_offset_it_wrote_at);
            case!(write_at_overwrites_and_extends_with_zeros);
            case!(read_at_is_exact_and_out_of_range_past_the_end);
            case!(truncate_shrinks_and_zero_extends);
            case!(list_returns_files_by_prefix_sorted);
            case!(remove_deletes_once);
            case!(rename_moves_and_replaces_the_target);
            case!(files_are_independent);
            case!(large_writes_read_back_whole);

            #[test]
            fn agrees_with_the_model() {
                for seed in 0..8 {
                    let (_guard, mut storage) = fresh();
                    cases::agrees_with_the_model(&mut storage, seed);
                }
            }
        }
    };
}

fn file_storage(handles_max: usize) -> (tempfile::TempDir, FileStorage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = FileStorage::with_handles_max(dir.path().join("data"), handles_max).expect("open storage");
    (dir, storage)
}

contract_suite!(file_storage_contract, file_storage(seedlog_server::fs::HANDLES_MAX_DEFAULT));
// Every operation through a cache of one handle: reopening must never change what is read.
contract_suite!(file_storage_one_handle_contract, file_storage(1));

fn sim_disk(seed: u64) -> ((), SimDisk) {
    ((), SimDisk::new(DiskOptions::reliable(), ChaCha8Rng::seed_from_u64(seed)))
}

contract_suite!(sim_disk_contract, sim_disk(7));

/// The contract on turmoil's files: each case runs on a turmoil host (turmoil's file system only
/// exists inside a simulation).
mod turmoil_file_storage_contract {
    use super::*;
    use seedlog_server::turmoil_host::TurmoilFileSystem;

    fn on_turmoil(handles_max: usize, case: impl FnOnce(&mut FileStorage<TurmoilFileSystem>) + 'static) {
        let mut sim = turmoil::Builder::new().rng_seed(1).build();
        sim.client("disk", async move {
            let mut storage = FileStorage::on(TurmoilFileSystem, "/data", handles_max).expect("open storage");
            case(&mut storage);
            Ok(())
        });
        sim.run().expect("the case failed on turmoil's files");
    }

    macro_rules! case {
        ($name:ident) => {
            #[test]
            fn $name() {
                on_turmoil(16, |storage| cases::$name(storage));
                // Every operation through a cache of one handle too.
                on_turmoil(1, |storage| cases::$name(storage));
            }
        };
    }

    case!(create_makes_an_empty_file_once);
    case!(create_implies_parent_directories);
    case!(operations_on_a_missing_file_are_not_found);
    case!(append_returns_the_offset_it_wrote_at);
    case!(write_at_overwrites_and_extends_with_zeros);
    case!(read_at_is_exact_and_out_of_range_past_the_end);
    case!(truncate_shrinks_and_zero_extends);
    case!(list_returns_files_by_prefix_sorted);
    case!(remove_deletes_once);
    case!(rename_moves_and_replaces_the_target);
    case!(files_are_independent);
    case!(large_writes_read_back_whole);

    #[test]
    fn agrees_with_the_model() {
        for seed in 0..8 {
            on_turmoil(4, move |storage| cases::agrees_with_the_model(storage, seed));
        }
    }
}

/// turmoil's crash model as the turmoil tier relies on it, through `FileStorage`.
mod turmoil_crashes {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use seedlog_server::turmoil_host::TurmoilFileSystem;

    /// What the second start of the host finds.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Found {
        synced: Option<Vec<u8>>,
        unsynced: Option<Vec<u8>>,
        renamed: Option<Vec<u8>>,
        renamed_from_exists: bool,
        removed_exists: bool,
    }

    /// First start: writes; the harness then crashes the host (or only bounces it); second
    /// start: reads back.
    fn write_then_restart(crash: bool) -> Found {
        let mut sim = turmoil::Builder::new().rng_seed(3).build();
        let starts = Rc::new(RefCell::new(0u32));
        let written = Rc::new(RefCell::new(false));
        let found = Rc::new(RefCell::new(None));
        {
            let (starts, written, found) = (starts.clone(), written.clone(), found.clone());
            sim.host("disk", move || {
                let start = {
                    let mut starts = starts.borrow_mut();
                    *starts += 1;
                    *starts
                };
                let (written, found) = (written.clone(), found.clone());
                async move {
                    let mut storage = FileStorage::on(TurmoilFileSystem, "/data", 16).expect("open storage");
                    if start == 1 {
                        storage.create("p/synced").unwrap();
                        storage.append("p/synced", b"durable").unwrap();
                        storage.sync("p/synced").unwrap();
                        storage.append("p/synced", b", then unsynced").unwrap();
                        storage.create("p/unsynced").unwrap();
                        storage.append("p/unsynced", b"pending").unwrap();
                        storage.create("q/tmp").unwrap();
                        storage.append("q/tmp", b"renamed").unwrap();
                        storage.rename("q/tmp", "q/final").unwrap();
                        storage.create("r/removed").unwrap();
                        storage.append("r/removed", b"x").unwrap();
                        storage.sync("r/removed").unwrap();
                        storage.remove("r/removed").unwrap();
                        *written.borrow_mut() = true;
                    } else {
                        *found.borrow_mut() = Some(Found {
                            synced: storage.read_all("p/synced").ok(),
                            unsynced: storage.read_all("p/unsynced").ok(),
                            renamed: storage.read_all("q/final").ok(),
                            renamed_from_exists: storage.exists("q/tmp"),
                            removed_exists: storage.exists("r/removed"),
                        });
                    }
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
        }
        for _ in 0..1_000 {
            sim.step().unwrap();
            if *written.borrow() {
                break;
            }
        }
        assert!(*written.borrow(), "the first start never wrote");
        if crash {
            sim.crash("disk");
        }
        sim.bounce("disk");
        for _ in 0..1_000 {
            sim.step().unwrap();
            if found.borrow().is_some() {
                break;
            }
        }
        let found = found.borrow_mut().take().expect("the second start never read");
        found
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_loses_what_was_not() {
        let found = write_then_restart(true);
        assert_eq!(found.synced.as_deref(), Some(&b"durable"[..]), "synced bytes survive; later ones do not");
        // The file's entry was made durable by `create` (a directory sync); its bytes were not.
        assert_eq!(found.unsynced.as_deref(), Some(&b""[..]));
        // The adapter syncs a file before renaming it (turmoil keeps unsynced writes by path).
        assert_eq!(found.renamed.as_deref(), Some(&b"renamed"[..]));
        assert!(!found.renamed_from_exists);
        assert!(!found.removed_exists, "a removal is durable on return");
    }

    #[test]
    fn a_bounce_loses_nothing() {
        let found = write_then_restart(false);
        assert_eq!(found.synced.as_deref(), Some(&b"durable, then unsynced"[..]));
        assert_eq!(found.unsynced.as_deref(), Some(&b"pending"[..]));
        assert_eq!(found.renamed.as_deref(), Some(&b"renamed"[..]));
        assert!(!found.renamed_from_exists);
        assert!(!found.removed_exists);
    }
}

mod sim_disk_only {
    use super::*;

    /// The simulated counterpart of `synced_writes_survive_reopening_the_directory`: a completed
    /// sync survives a crash, directory operations survive it unsynced, unsynced bytes do not.
    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_ones_need_not() {
        let (_, mut disk) = sim_disk(11);
        disk.create("topic-0/00000000000000000000.log").unwrap();
        disk.append("topic-0/00000000000000000000.log", b"batch one").unwrap();
        let ticket = disk.request_sync("topic-0/00000000000000000000.log").unwrap();
        disk.append("topic-0/00000000000000000000.log", b", after the request").unwrap();
        disk.complete_sync(ticket).unwrap();
        disk.create("topic-0/never-synced").unwrap();
        disk.crash();
        let survived = disk.read_all("topic-0/00000000000000000000.log").unwrap();
        assert!(survived.starts_with(b"batch one"), "{survived:?}");
        assert!(b"batch one, after the request".starts_with(&survived), "{survived:?}");
        assert!(disk.exists("topic-0/never-synced"), "a create is durable on return");
    }
}

mod file_storage_only {
    use super::*;

    #[test]
    fn no_path_reaches_outside_the_root() {
        let (dir, mut storage) = file_storage(16);
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        for path in ["../secret", "/etc/passwd", "a/../../secret", "", "a//b", "./a", "a/.", "trailing/"] {
            let mut buf = [0u8; 1];
            assert_eq!(storage.create(path), Err(StorageError::OutOfRange), "create {path:?}");
            assert_eq!(storage.read_at(path, 0, &mut buf), Err(StorageError::OutOfRange), "{path:?}");
            assert_eq!(storage.write_at(path, 0, b"x"), Err(StorageError::OutOfRange), "{path:?}");
            assert_eq!(storage.truncate(path, 0), Err(StorageError::OutOfRange), "{path:?}");
            assert_eq!(storage.remove(path), Err(StorageError::OutOfRange), "{path:?}");
            assert!(!storage.exists(path), "{path:?}");
        }
        storage.create("inside").unwrap();
        assert_eq!(storage.rename("inside", "../moved"), Err(StorageError::OutOfRange));
        assert_eq!(storage.rename("../secret", "inside"), Err(StorageError::OutOfRange));
        assert_eq!(storage.list("../"), Err(StorageError::OutOfRange));
        assert_eq!(std::fs::read(dir.path().join("secret")).unwrap(), b"outside");
        assert!(!dir.path().join("moved").exists());
        assert!(storage.exists("inside"));
    }

    #[test]
    fn synced_writes_survive_reopening_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        {
            let mut storage = FileStorage::new(&root).unwrap();
            storage.create("topic-0/00000000000000000000.log").unwrap();
            storage.append("topic-0/00000000000000000000.log", b"batch one").unwrap();
            storage.write_at("topic-0/00000000000000000000.log", 9, b", batch two").unwrap();
            storage.create("topic-0/leader-epoch-checkpoint.tmp").unwrap();
            storage.append("topic-0/leader-epoch-checkpoint.tmp", b"0 0\n").unwrap();
            storage
                .sync_all(["topic-0/00000000000000000000.log", "topic-0/leader-epoch-checkpoint.tmp"])
                .unwrap();
            storage.rename("topic-0/leader-epoch-checkpoint.tmp", "topic-0/leader-epoch-checkpoint").unwrap();
        }
        let mut reopened = FileStorage::new(&root).unwrap();
        assert_eq!(
            reopened.list("topic-0/").unwrap(),
            vec!["topic-0/00000000000000000000.log".to_owned(), "topic-0/leader-epoch-checkpoint".to_owned()]
        );
        assert_eq!(reopened.read_all("topic-0/00000000000000000000.log").unwrap(), b"batch one, batch two");
        assert_eq!(reopened.read_all("topic-0/leader-epoch-checkpoint").unwrap(), b"0 0\n");
        assert_eq!(reopened.append("topic-0/00000000000000000000.log", b"!").unwrap(), 20);
    }

    #[test]
    fn syncing_a_missing_file_is_not_found() {
        let (_dir, mut storage) = file_storage(4);
        assert_eq!(storage.sync("nothing"), Err(StorageError::NotFound));
        assert_eq!(storage.sync_all(["nothing"]), Err(StorageError::NotFound));
        assert_eq!(storage.sync("../escape"), Err(StorageError::OutOfRange));
    }
}
