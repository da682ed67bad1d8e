//! The environment the deterministic core is handed: time, storage, randomness and fault sites.
//!
//! The core never reads a clock, opens a file, touches a socket or draws randomness on its own.
//! Every call into a core state machine receives an [`Env`], built by the driver (the production
//! server or the simulator) for that one step. A driver decides nothing: it executes effects and
//! reports their outcomes back as events.
//!
//! Storage is synchronous, as a page cache is: a write is visible to the next read at once, but it
//! is *not durable*. Durability is requested as an effect (a sync of one file) and confirmed by a
//! later event; an acknowledgement that promises durability MUST wait for that event. Directory
//! operations (create, remove, rename) are durable when they return: the production driver syncs
//! the directory after each, and the simulated disk models them that way.

use std::fmt;

use rand_core::RngCore;

/// Monotonic time in nanoseconds, handed in by the driver with every event.
///
/// Its origin is arbitrary (the simulator starts at zero); only differences mean anything.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_millis(ms: u64) -> Time {
        Time(ms * 1_000_000)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    pub fn plus_millis(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms.saturating_mul(1_000_000)))
    }

    pub fn plus_nanos(self, ns: u64) -> Time {
        Time(self.0.saturating_add(ns))
    }

    /// Nanoseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1_000_000;
        let us = (self.0 / 1_000) % 1_000;
        write!(f, "{ms}.{us:03}ms")
    }
}

/// An error a storage operation can meet on real hardware. Never a bug: bugs panic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StorageError {
    /// The file does not exist.
    NotFound,
    /// The file already exists (create of an existing file).
    AlreadyExists,
    /// An I/O error: a failed device, a latent sector error on read, a failed write.
    Io,
    /// The device is full.
    NoSpace,
    /// The request itself is out of range (a read past the end of the file).
    OutOfRange,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            StorageError::NotFound => "file not found",
            StorageError::AlreadyExists => "file already exists",
            StorageError::Io => "I/O error",
            StorageError::NoSpace => "no space left on device",
            StorageError::OutOfRange => "read out of range",
        };
        f.write_str(text)
    }
}

impl std::error::Error for StorageError {}

/// Files of bytes, named by `/`-separated paths relative to the node's data directory.
///
/// Every operation is synchronous and visible at once to later reads (a page cache). File contents
/// become durable only through a sync the core requests as an effect; directory operations are
/// durable on return. Implementations: `seedlog_server::fs::FileStorage` (real files) and
/// `seedlog_sim::disk::SimDisk` (the simulated disk with its fault model). Both pass the contract
/// suite in `tests/tests/storage_contract.rs`.
pub trait Storage {
    /// Creates an empty file. Parent directories are implied. Fails with `AlreadyExists`.
    fn create(&mut self, path: &str) -> Result<(), StorageError>;

    /// Writes `data` at `offset`, extending the file (with zeros if `offset` is past its end).
    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError>;

    /// Appends `data` at the end of the file and returns the offset it was written at.
    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError>;

    /// Reads exactly `buf.len()` bytes at `offset`. A read past the end is `OutOfRange`.
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<(), StorageError>;

    /// The file's current length in bytes.
    fn len(&mut self, path: &str) -> Result<u64, StorageError>;

    /// Cuts (or zero-extends) the file to `len` bytes.
    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError>;

    /// The paths of every file whose path starts with `prefix`, sorted.
    fn list(&mut self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Removes a file.
    fn remove(&mut self, path: &str) -> Result<(), StorageError>;

    /// Renames a file atomically, replacing `to` if it exists.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError>;

    /// Whether the file exists.
    fn exists(&mut self, path: &str) -> bool {
        self.len(path).is_ok()
    }

    /// Reads the whole file.
    fn read_all(&mut self, path: &str) -> Result<Vec<u8>, StorageError> {
        let len = self.len(path)?;
        let mut buf = vec![0; usize::try_from(len).map_err(|_| StorageError::OutOfRange)?];
        self.read_at(path, 0, &mut buf)?;
        Ok(buf)
    }
}

/// A bug that can be deliberately planted in the core to prove that the simulator's checkers catch
/// it. Planting costs nothing in production: the production environment plants nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Plant {
    /// Log recovery accepts batches without checking their CRC.
    RecoverySkipsCrc,
    /// The broker acknowledges an `acks=all` produce before the sync that makes it durable.
    AckBeforeSync,
    /// A read starts one index entry too far, skipping records.
    IndexLookupOffByOne,
    /// Log recovery deletes the oldest segment, as if retention had (acknowledged data vanishes).
    RecoveryDropsOldestSegment,
    /// A quorum voter grants its vote before the vote is persisted: restarted, it can vote twice
    /// in one epoch, and two leaders can be elected in one epoch.
    VoteBeforePersist,
    /// The quorum leader counts its own appended but unsynced entry toward the majority.
    LeaderCountsUnsyncedEntry,
    /// A partition replica that becomes follower (or restarts) cuts its log to its high watermark
    /// and fetches without its last epoch, instead of truncating by leader epoch (pre-KIP-101).
    TruncateToHighWatermark,
    /// The partition leader accepts and acknowledges `acks=all` produces (and advances the high
    /// watermark) while the ISR is smaller than `min.insync.replicas`.
    AcksAllBelowMinIsr,
}

impl Plant {
    pub const ALL: [Plant; 8] = [
        Plant::RecoverySkipsCrc,
        Plant::AckBeforeSync,
        Plant::IndexLookupOffByOne,
        Plant::RecoveryDropsOldestSegment,
        Plant::VoteBeforePersist,
        Plant::LeaderCountsUnsyncedEntry,
        Plant::TruncateToHighWatermark,
        Plant::AcksAllBelowMinIsr,
    ];

    /// The name used on the command line (`--plant NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Plant::RecoverySkipsCrc => "recovery-skips-crc",
            Plant::AckBeforeSync => "ack-before-sync",
            Plant::IndexLookupOffByOne => "index-lookup-off-by-one",
            Plant::RecoveryDropsOldestSegment => "recovery-drops-oldest-segment",
            Plant::VoteBeforePersist => "vote-before-persist",
            Plant::LeaderCountsUnsyncedEntry => "leader-counts-unsynced-entry",
            Plant::TruncateToHighWatermark => "truncate-to-high-watermark",
            Plant::AcksAllBelowMinIsr => "acks-all-below-min-insync",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Plant::RecoverySkipsCrc => "log recovery trusts batches without checking their CRC32C",
            Plant::AckBeforeSync => "acks=all produce is acknowledged before its sync completes",
            Plant::IndexLookupOffByOne => "a read starts one offset-index entry past the right one",
            Plant::RecoveryDropsOldestSegment => {
                "log recovery deletes the oldest segment as if retention had"
            }
            Plant::VoteBeforePersist => {
                "a quorum voter grants its vote before the vote is persisted and synced"
            }
            Plant::LeaderCountsUnsyncedEntry => {
                "the quorum leader counts its own unsynced entry toward the majority"
            }
            Plant::TruncateToHighWatermark => {
                "a replica becoming follower or restarting truncates to its high watermark (pre-KIP-101)"
            }
            Plant::AcksAllBelowMinIsr => {
                "acks=all is answered while the ISR is smaller than min.insync.replicas"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Plant> {
        Plant::ALL.into_iter().find(|plant| plant.name() == name)
    }
}

/// Fault sites the core may consult: BUGGIFY-style injected misbehaviour and planted bugs.
///
/// `buggify` lets the simulator make the core take rare but legal paths (roll a segment early,
/// delay a sync). A site is activated for a whole run with some probability the first time it is
/// asked about, and then fires with some probability each time. Production never fires.
pub trait FaultSites {
    fn buggify(&mut self, site: &'static str) -> bool;
    fn planted(&self, bug: Plant) -> bool;
}

/// The production fault sites: nothing fires, nothing is planted.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFaults;

impl FaultSites for NoFaults {
    fn buggify(&mut self, _site: &'static str) -> bool {
        false
    }

    fn planted(&self, _bug: Plant) -> bool {
        false
    }
}

/// Everything the core may use during one step. Built by the driver, borrowed for the step.
pub struct Env<'a> {
    /// Monotonic time of this step.
    pub now: Time,
    /// The node's wall clock in milliseconds since the Unix epoch. The simulator may skew or jump
    /// it; the core uses it only where Kafka uses wall time (timestamps, retention, segment age).
    pub wall_clock_ms: i64,
    pub storage: &'a mut dyn Storage,
    pub rng: &'a mut dyn RngCore,
    pub faults: &'a mut dyn FaultSites,
}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").field("now", &self.now).field("wall_clock_ms", &self.wall_clock_ms).finish()
    }
}
