//! `log_append`: how fast bytes reach storage, from the plainest write to the partition log.
//!
//! Run: `cargo bench -p seedlog-tests --bench log_append`. Prints figures; asserts nothing about
//! time (a shared machine's speed is not a test result). Each figure is one run.
//!
//! Measured, each writing the same number of bytes in 16 KiB pieces:
//! - `dd` (run first and last): `dd if=/dev/zero of=FILE bs=1M count=N conv=fdatasync`, a subprocess timed from spawn to
//!   exit: the machine's sequential write speed with one final sync. The baseline.
//! - `write_all`: a plain Rust loop of `File::write_all` of 16 KiB, one `sync_data` at the end.
//! - `FileStorage.append`: `seedlog_server::fs::FileStorage::append` of 16 KiB, a real sync every
//!   64 MiB and one at the end: the storage layer alone, without the log.
//! - `FileStorage.append of the log's batch`: the same, appending the log's batch bytes as they
//!   are (a little under 16 KiB, so not page-aligned): the storage's share of the next line.
//! - `PartitionLog on files`: `PartitionLog::append` of 16 KiB record batches (~100-byte records,
//!   built with `encode_batch`) on a `FileStorage`, the log's sync requests executed with a real
//!   `fdatasync` every 64 MiB and at the end, each reported back with `on_sync_complete`.
//! - `SimDisk.append` and `PartitionLog on SimDisk`: the same two layers on the simulated disk
//!   (reliable options), a sync every 1 MiB: `request_sync` on each file of the log's sync
//!   request, `complete_sync` of every ticket, `on_sync_complete`. The simulator's speed limit.
//!   Twice for the log: one growing segment (Kafka's default 1 GiB `segment.bytes`: every byte
//!   lands in freshly allocated memory the kernel must fault in and zero), and the steady state of a
//!   long simulation (16 MiB segments, 64 MiB `retention.bytes`, retention after each sync: SimDisk
//!   reuses the buffers of deleted segments).
//!
//! And read back, after the append runs that leave a log:
//! - `PartitionLog read on files, 1 MiB fetches`: the whole log the `PartitionLog on files` run
//!   wrote, read from its start with `PartitionLog::read(env, offset, 1 MiB)` (whole batches, each
//!   CRC-checked by the log), each fetch resuming after the last batch the previous one returned.
//!   The files were just written, so they are most likely still in the page cache: this is the
//!   log's read path over cached files, not the disk's read speed.
//! - `File::read 1 MiB of the same files`: the same `.log` files read with plain `File::read`
//!   into one reused 1 MiB buffer: the floor for reading those cached bytes.
//! - `PartitionLog read on SimDisk, 1 MiB fetches`: the same read of the steady-state SimDisk log
//!   (what retention left: 64 MiB to 80 MiB).
//!
//! Sizes: `SEEDLOG_BENCH_FILE_BYTES` (default 1 GiB) for the file runs, `SEEDLOG_BENCH_SIM_BYTES`
//! (default 1 GiB) for the SimDisk runs. Files are written in a temporary directory under cargo's
//! target directory (a real disk, not a tmpfs) and removed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use seedlog_core::env::{Env, NoFaults, Storage, Time};
use seedlog_core::log::{LogConfig, PartitionLog};
use seedlog_core::record::{encode_batch, BatchHeader, NewRecord, ProducerInfo};
use seedlog_server::fs::FileStorage;
use seedlog_sim::disk::{DiskOptions, SimDisk};

const MIB: u64 = 1024 * 1024;
const PIECE_BYTES: usize = 16 * 1024;
const FILE_SYNC_INTERVAL_BYTES: u64 = 64 * MIB;
const SIM_SYNC_INTERVAL_BYTES: u64 = MIB;
const RECORD_VALUE_BYTES: usize = 100;
/// `max_bytes` of each `PartitionLog::read`, and the buffer of the plain file read.
const READ_FETCH_BYTES: usize = MIB as usize;
const LOG_DIR: &str = "bench-0";
/// The wall clock every step is handed: fixed, so no segment rolls by age during a run.
const WALL_CLOCK_MS: i64 = 1_795_000_000_000;

fn main() {
    let file_bytes = env_bytes("SEEDLOG_BENCH_FILE_BYTES", 1024 * MIB);
    let sim_bytes = env_bytes("SEEDLOG_BENCH_SIM_BYTES", 1024 * MIB);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    print_banner(dir.path(), file_bytes, sim_bytes);

    // dd runs first and last: the spread between the two shows this machine's noise, and the
    // ratios use the faster of the two (the harder baseline).
    let dd_first = dd_fdatasync(&dir.path().join("dd.bin"), file_bytes);
    report("dd bs=1M conv=fdatasync (first)", file_bytes, dd_first);
    let write_all = write_all_then_sync(&dir.path().join("write_all.bin"), file_bytes);
    report("File::write_all 16 KiB + sync_data", file_bytes, write_all);
    let storage = file_storage_append(&dir.path().join("storage"), &vec![0u8; PIECE_BYTES], file_bytes);
    report("FileStorage.append 16 KiB, sync/64 MiB", file_bytes, storage);

    let batch = record_batch(PIECE_BYTES);
    let storage_batch = file_storage_append(&dir.path().join("storage"), &batch, file_bytes);
    let storage_batch_bytes = file_bytes.div_ceil(batch.len() as u64) * batch.len() as u64;
    report("FileStorage.append of the log's batch", storage_batch_bytes, storage_batch);
    let log_root = dir.path().join("log");
    let (log_bytes, log_on_files, mut log_storage, log) = log_on_files(&log_root, &batch, file_bytes);
    report("PartitionLog on files, sync/64 MiB", log_bytes, log_on_files);
    println!("  reads: the log just written, most likely from the page cache");
    let (log_read_bytes, log_read) = read_log(&mut log_storage, &log);
    report("PartitionLog read on files, 1 MiB fetches", log_read_bytes, log_read);
    let (file_read_bytes, file_read) = read_files(&log_root.join(LOG_DIR));
    assert_eq!(file_read_bytes, log_read_bytes, "the plain read covers the same bytes");
    report("File::read 1 MiB of the same files", file_read_bytes, file_read);
    ratio("  PartitionLog read / File::read", log_read_bytes, log_read, file_read_bytes, file_read);
    drop(log_storage);
    std::fs::remove_dir_all(&log_root).expect("remove");
    let dd_last = dd_fdatasync(&dir.path().join("dd.bin"), file_bytes);
    report("dd bs=1M conv=fdatasync (last)", file_bytes, dd_last);
    let dd = dd_first.min(dd_last);
    println!();

    let sim_storage = sim_disk_append(sim_bytes);
    report("SimDisk.append 16 KiB, sync/1 MiB", sim_bytes, sim_storage);
    let (sim_log_bytes, sim_log, _, _) = log_on_sim_disk(LogConfig::default(), &batch, sim_bytes);
    report("PartitionLog on SimDisk, sync/1 MiB", sim_log_bytes, sim_log);
    let steady = LogConfig {
        segment_bytes: 16 * MIB,
        retention_bytes: Some(64 * MIB),
        retention_ms: None,
        ..LogConfig::default()
    };
    let (steady_bytes, steady_log, mut steady_disk, steady_partition) =
        log_on_sim_disk(steady, &batch, sim_bytes);
    report("  same, 16 MiB segments, 64 MiB retention", steady_bytes, steady_log);
    let (sim_read_bytes, sim_read) = read_log(&mut steady_disk, &steady_partition);
    println!("  read: what retention left, {} MiB", sim_read_bytes / MIB);
    report("PartitionLog read on SimDisk, 1 MiB fetches", sim_read_bytes, sim_read);

    println!();
    println!("throughput ratios against the faster dd (1.00 = dd's speed; target for files >= 0.50)");
    ratio("File::write_all / dd", file_bytes, write_all, file_bytes, dd);
    ratio("FileStorage.append / dd", file_bytes, storage, file_bytes, dd);
    ratio("FileStorage.append of the log's batch / dd", storage_batch_bytes, storage_batch, file_bytes, dd);
    ratio("PartitionLog on files / dd", log_bytes, log_on_files, file_bytes, dd);
    println!("target for PartitionLog on SimDisk: >= 1 GB/s");
}

fn print_banner(dir: &Path, file_bytes: u64, sim_bytes: u64) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("log_append: one run, figures not averaged; {cores} cores; files in {}", dir.display());
    // Other work on a shared machine moves every figure; the load says how much there was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".to_owned());
    println!(
        "load average at start (1, 5, 15 min): {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "file runs: {} MiB each, SimDisk runs: {} MiB each, written in {} KiB pieces",
        file_bytes / MIB,
        sim_bytes / MIB,
        PIECE_BYTES / 1024
    );
    println!();
}

fn env_bytes(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name} must be a number of bytes, got {text:?}")),
        Err(_) => default,
    }
}

fn report(what: &str, bytes: u64, elapsed: Duration) {
    let gigabytes_per_second = bytes as f64 / elapsed.as_secs_f64() / 1e9;
    println!("{what:<44} {:>8.3} s {gigabytes_per_second:>8.3} GB/s", elapsed.as_secs_f64());
}

/// Throughput (bytes per second) of a run relative to the baseline's.
fn ratio(what: &str, bytes: u64, elapsed: Duration, baseline_bytes: u64, baseline: Duration) {
    let throughput = bytes as f64 / elapsed.as_secs_f64();
    let baseline_throughput = baseline_bytes as f64 / baseline.as_secs_f64();
    println!("{what:<44} {:>8.2}", throughput / baseline_throughput);
}

fn dd_fdatasync(path: &Path, bytes: u64) -> Duration {
    let start = Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .arg("bs=1M")
        .arg(format!("count={}", bytes / MIB))
        .arg("conv=fdatasync")
        .arg("status=none")
        .status()
        .expect("run dd");
    let elapsed = start.elapsed();
    assert!(status.success(), "dd failed: {status}");
    std::fs::remove_file(path).expect("remove dd's file");
    elapsed
}

fn write_all_then_sync(path: &Path, bytes: u64) -> Duration {
    let piece = vec![0u8; PIECE_BYTES];
    let start = Instant::now();
    let mut file = File::create(path).expect("create");
    let mut written = 0;
    while written < bytes {
        file.write_all(&piece).expect("write");
        written += PIECE_BYTES as u64;
    }
    file.sync_data().expect("sync");
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path).expect("remove");
    elapsed
}

fn file_storage_append(root: &Path, piece: &[u8], bytes: u64) -> Duration {
    let start = Instant::now();
    let mut storage = FileStorage::new(root).expect("open storage");
    storage.create("segment").expect("create");
    let mut written = 0;
    let mut synced = 0;
    while written < bytes {
        storage.append("segment", piece).expect("append");
        written += piece.len() as u64;
        if written - synced >= FILE_SYNC_INTERVAL_BYTES {
            storage.sync("segment").expect("sync");
            synced = written;
        }
    }
    storage.sync("segment").expect("sync");
    let elapsed = start.elapsed();
    std::fs::remove_dir_all(root).expect("remove");
    elapsed
}

/// An uncompressed v2 batch of ~100-byte records, as large as fits in `batch_bytes_max`.
fn record_batch(batch_bytes_max: usize) -> Vec<u8> {
    let record = |index: usize| NewRecord {
        timestamp: WALL_CLOCK_MS,
        key: None,
        value: Some(vec![b'a' + (index % 26) as u8; RECORD_VALUE_BYTES]),
        headers: Vec::new(),
    };
    let mut records = vec![record(0)];
    let mut batch = encode_batch(&records, ProducerInfo::NONE);
    loop {
        records.push(record(records.len()));
        let bigger = encode_batch(&records, ProducerInfo::NONE);
        if bigger.len() > batch_bytes_max {
            return batch;
        }
        batch = bigger;
    }
}

/// The environment for one step, as a driver builds it.
fn step_env<'a>(storage: &'a mut dyn Storage, rng: &'a mut ChaCha8Rng, faults: &'a mut NoFaults) -> Env<'a> {
    Env { now: Time::ZERO, wall_clock_ms: WALL_CLOCK_MS, storage, rng, faults }
}

/// Appends `batch` to a log in `LOG_DIR` until at least `bytes_min` bytes were appended; returns
/// the bytes appended and the log. `sync` executes the log's sync request every
/// `sync_interval_bytes` and once at the end; with `retention_bytes` set, retention runs after each
/// sync (as a broker's retention task would, far more often than Kafka's 5 minutes).
fn append_until<S: Storage>(
    storage: &mut S,
    config: LogConfig,
    batch: &[u8],
    bytes_min: u64,
    sync_interval_bytes: u64,
    mut sync: impl FnMut(&mut S, &[String]),
) -> (u64, PartitionLog) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut faults = NoFaults;
    let retention = config.retention_bytes.is_some();
    let (mut log, _report) =
        PartitionLog::open(&mut step_env(storage, &mut rng, &mut faults), LOG_DIR, config)
            .expect("open the log");
    let mut appended = 0;
    let mut synced = 0;
    while appended < bytes_min {
        log.append(&mut step_env(storage, &mut rng, &mut faults), batch).expect("append");
        appended += batch.len() as u64;
        let last = appended >= bytes_min;
        if appended - synced >= sync_interval_bytes || last {
            if let Some(request) = log.sync_request() {
                sync(storage, &request.files);
                log.on_sync_complete(request.up_to_offset);
            }
            synced = appended;
            if retention {
                log.apply_retention(&mut step_env(storage, &mut rng, &mut faults)).expect("retention");
            }
        }
    }
    assert_eq!(log.durable_offset(), log.log_end_offset(), "everything appended was synced");
    (appended, log)
}

/// The log on a `FileStorage` at `root`; returns the bytes appended, the time, and the storage
/// and log for reading (the caller removes `root`).
fn log_on_files(root: &Path, batch: &[u8], bytes: u64) -> (u64, Duration, FileStorage, PartitionLog) {
    let start = Instant::now();
    let mut storage = FileStorage::new(root).expect("open storage");
    let sync_interval_bytes = FILE_SYNC_INTERVAL_BYTES;
    let (appended, log) = append_until(
        &mut storage,
        LogConfig::default(),
        batch,
        bytes,
        sync_interval_bytes,
        |storage, files| {
            storage.sync_all(files).expect("sync");
        },
    );
    let elapsed = start.elapsed();
    (appended, elapsed, storage, log)
}

/// Reads the whole log from its start in fetches of `READ_FETCH_BYTES`, as a consumer would: each
/// fetch resumes after the last batch the previous one returned. Returns the bytes read.
fn read_log(storage: &mut dyn Storage, log: &PartitionLog) -> (u64, Duration) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut faults = NoFaults;
    let start = Instant::now();
    let mut offset = log.log_start_offset();
    let mut read = 0;
    while offset < log.log_end_offset() {
        let env = &mut step_env(storage, &mut rng, &mut faults);
        let info = log.read(env, offset, READ_FETCH_BYTES).expect("read");
        offset = offset_after(&info.bytes);
        read += info.bytes.len() as u64;
    }
    let elapsed = start.elapsed();
    assert_eq!(read, log.size_bytes(), "the reads returned the whole log");
    (read, elapsed)
}

/// The offset after the last batch of a read's bytes (whole batches). Walks the headers only: the
/// log already checked every CRC.
fn offset_after(bytes: &[u8]) -> i64 {
    let mut position = 0;
    let mut next = None;
    while position < bytes.len() {
        let header = BatchHeader::parse(&bytes[position..]).expect("batch header");
        position += header.size_bytes();
        next = Some(header.last_offset() + 1);
    }
    next.expect("a read before the log end offset returns a batch")
}

/// Reads every `.log` file in `dir`, in name (so offset) order, with `File::read` into one 1 MiB
/// buffer. Returns the bytes read.
fn read_files(dir: &Path) -> (u64, Duration) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    paths.sort();
    let mut buffer = vec![0u8; READ_FETCH_BYTES];
    let start = Instant::now();
    let mut read = 0;
    for path in paths {
        let mut file = File::open(path).expect("open");
        loop {
            let n = file.read(&mut buffer).expect("read");
            if n == 0 {
                break;
            }
            read += n as u64;
        }
    }
    (read, start.elapsed())
}

fn sim_disk() -> SimDisk {
    SimDisk::new(DiskOptions::reliable(), ChaCha8Rng::seed_from_u64(2))
}

fn sync_on_sim_disk(disk: &mut SimDisk, files: &[String]) {
    let tickets: Vec<_> = files.iter().map(|file| disk.request_sync(file).expect("request sync")).collect();
    for ticket in tickets {
        disk.complete_sync(ticket).expect("complete sync");
    }
}

fn sim_disk_append(bytes: u64) -> Duration {
    let piece = vec![0u8; PIECE_BYTES];
    let start = Instant::now();
    let mut disk = sim_disk();
    disk.create("segment").expect("create");
    let mut written = 0;
    let mut synced = 0;
    while written < bytes {
        disk.append("segment", &piece).expect("append");
        written += PIECE_BYTES as u64;
        if written - synced >= SIM_SYNC_INTERVAL_BYTES {
            sync_on_sim_disk(&mut disk, &["segment".to_owned()]);
            synced = written;
        }
    }
    sync_on_sim_disk(&mut disk, &["segment".to_owned()]);
    let elapsed = start.elapsed();
    assert_eq!(disk.pending_bytes(), 0);
    elapsed
}

/// The log on SimDisk with `config`; checks afterwards that every byte the log holds reached the
/// simulated medium (index files excepted: sync requests do not cover them, recovery rebuilds them).
/// Returns the bytes appended, the time, and the disk and log for reading.
fn log_on_sim_disk(config: LogConfig, batch: &[u8], bytes: u64) -> (u64, Duration, SimDisk, PartitionLog) {
    let start = Instant::now();
    let mut disk = sim_disk();
    let (appended, log) =
        append_until(&mut disk, config, batch, bytes, SIM_SYNC_INTERVAL_BYTES, sync_on_sim_disk);
    let elapsed = start.elapsed();
    let segments = disk.list(&format!("{LOG_DIR}/")).expect("list");
    let durable_bytes: usize = segments
        .iter()
        .filter(|path| path.ends_with(".log"))
        .map(|path| disk.durable_contents(path).expect("segment exists").len())
        .sum();
    assert_eq!(durable_bytes as u64, log.size_bytes(), "every byte of the log is durable on the medium");
    (appended, elapsed, disk, log)
}
