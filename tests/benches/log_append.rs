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
//!
//! Sizes: `SEEDLOG_BENCH_FILE_BYTES` (default 1 GiB) for the file runs. Files are written in a
//! temporary directory under cargo's target directory (a real disk, not a tmpfs) and removed.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use seedlog_core::env::Storage;
use seedlog_server::fs::FileStorage;

const MIB: u64 = 1024 * 1024;
const PIECE_BYTES: usize = 16 * 1024;
const FILE_SYNC_INTERVAL_BYTES: u64 = 64 * MIB;

fn main() {
    let file_bytes = env_bytes("SEEDLOG_BENCH_FILE_BYTES", 1024 * MIB);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    print_banner(dir.path(), file_bytes);

    // dd runs first and last: the spread between the two shows this machine's noise, and the
    // ratios use the faster of the two (the harder baseline).
    let dd_first = dd_fdatasync(&dir.path().join("dd.bin"), file_bytes);
    report("dd bs=1M conv=fdatasync (first)", file_bytes, dd_first);
    let write_all = write_all_then_sync(&dir.path().join("write_all.bin"), file_bytes);
    report("File::write_all 16 KiB + sync_data", file_bytes, write_all);
    let storage = file_storage_append(&dir.path().join("storage"), file_bytes);
    report("FileStorage.append 16 KiB, sync/64 MiB", file_bytes, storage);

    let dd_last = dd_fdatasync(&dir.path().join("dd.bin"), file_bytes);
    report("dd bs=1M conv=fdatasync (last)", file_bytes, dd_last);
    let dd = dd_first.min(dd_last);

    println!();
    println!("throughput ratios against the faster dd (1.00 = dd's speed; target for files >= 0.50)");
    ratio("File::write_all / dd", write_all, dd);
    ratio("FileStorage.append / dd", storage, dd);
}

fn print_banner(dir: &Path, file_bytes: u64) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("log_append: one run, figures not averaged; {cores} cores; files in {}", dir.display());
    println!("file runs: {} MiB each, written in {} KiB pieces", file_bytes / MIB, PIECE_BYTES / 1024);
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

/// Throughput of `elapsed` relative to `baseline` for the same bytes: baseline time / its time.
fn ratio(what: &str, elapsed: Duration, baseline: Duration) {
    println!("{what:<44} {:>8.2}", baseline.as_secs_f64() / elapsed.as_secs_f64());
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

fn file_storage_append(root: &Path, bytes: u64) -> Duration {
    let piece = vec![0u8; PIECE_BYTES];
    let start = Instant::now();
    let mut storage = FileStorage::new(root).expect("open storage");
    storage.create("segment").expect("create");
    let mut written = 0;
    let mut synced = 0;
    while written < bytes {
        storage.append("segment", &piece).expect("append");
        written += PIECE_BYTES as u64;
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
