//! SimDisk: one node's simulated disk — a page cache over a medium that loses, tears, misdirects,
//! rots and fails, as real disks do, with every choice drawn from the node's "disk/{node}" stream.
//!
//! Fault model. Each file has *durable* bytes (on the medium: what survives a crash), a *cached*
//! view (the page cache: durable bytes with every pending operation applied; what reads see) and an
//! ordered queue of *pending* operations (writes and truncates not yet on the medium).
//!
//! - **Directory operations** (create, remove, rename) are durable when they return: the production
//!   driver syncs the directory after each. A file therefore always survives a crash, possibly empty.
//! - **Sync** is asynchronous. [`SimDisk::request_sync`] captures the file's pending operations as of
//!   that moment in a [`SyncTicket`]; the simulator completes it after [`SimDisk::sync_latency_ns`],
//!   and [`SimDisk::complete_sync`] makes exactly those operations durable, in order (operations
//!   after the request stay pending). A ticket follows its file, not its path: files are tracked by
//!   an internal id, so a sync of a renamed file still syncs it, and a ticket of a removed (or
//!   renamed-over) file completes `Ok` and does nothing.
//! - **Crash** ([`SimDisk::crash`], power loss): for each file a random prefix of its pending
//!   operations reaches the medium (write-back is modelled in operation order). If `torn_writes` is
//!   on, the first write that does not survive may be *torn* at sector boundaries strictly inside
//!   it: either a prefix of it reaches the medium, or — the drive wrote its sectors out of order —
//!   a prefix and a suffix around a hole that keeps the old content (a sector is atomic). The hole
//!   leaves the file as long as the whole write, so only a checksum finds it. The cached view is reset to the durable bytes. Every outstanding ticket
//!   becomes void: completing it later returns `Ok` and does nothing (the simulator should drop it
//!   with the crashed process; the new process never saw it).
//! - **Misdirected writes** (`misdirect_probability` per written operation, at sync time): the data
//!   lands whole sectors away from its own offset, in the same file and not overlapping its own
//!   range; its intended range keeps its old durable content (zeros, if it extended the file). The
//!   sync reports success and the cached view stays correct — until a crash reveals the damage.
//! - **Bit rot** ([`SimDisk::rot`]): one bit of one random durable byte flips on the medium. The
//!   cached view shows it too, unless a pending operation covers that byte or the cache already
//!   differs from the medium there.
//! - **Latent sector errors** ([`SimDisk::add_latent_sector_error`]): a random durable sector becomes
//!   unreadable: reads touching it return `Io` until a write touches it (the drive remaps a sector
//!   on write). The cached view forgets it at the write; the medium at the sync of that write, so a
//!   crash before that sync brings the error back.
//! - **EIO**: with `write_error_probability` a write or append returns `Io` and changes nothing;
//!   with `read_error_probability` a read returns `Io` (transient: the next read may succeed); with
//!   `sync_error_probability` a sync completion returns `Io` and — like Linux after a failed fsync
//!   ("fsyncgate") — the ticket's operations leave the pending queue *without* reaching the medium,
//!   while the cached view still shows them. A crash then loses them; a later sync does not retry.
//! - **ENOSPC**: with `capacity_bytes`, a write, append or truncate that would make the sum of the
//!   files' lengths exceed it returns `NoSpace` and changes nothing.
//! - Nothing corrupts data in the page cache itself, and no fault touches data the core has not
//!   written: damage is confined to the bytes named in [`SimDisk::damage`].
//!
//! Every damage to durable data (bit rot, latent sector errors, misdirected writes, torn writes) is
//! listed in [`SimDisk::damage`], so checkers excuse only losses an injected fault explains.
//!
//! **Fault atlas** (TigerBeetle's `ClusterFaultAtlas`). In [`FaultMode::Liveness`] the disk injects
//! durable-data damage (bit rot, latent sector errors, misdirects) only where its [`FaultAtlas`]
//! allows: for every zone (a path and an aligned `zone_bytes` range of it) one replica is
//! protected, so at most `replicas - 1` replicas are damaged there and a good copy always remains;
//! with one replica, or with no atlas set, no such damage at all. Losing unsynced data in a crash,
//! tearing an unsynced write and EIO are always allowed: a correct system survives them anyway. In
//! [`FaultMode::SafetyOnly`] damage is unlimited and only safety is checked.
//!
//! Performance: an append costs one copy into the cached view, and its sync one copy from there to
//! the medium. A pending write refers to its bytes in the cached view instead of holding a copy;
//! an operation that would overwrite or cut those bytes first copies them out ("materialises" the
//! pending write), so a synced or crash-surviving write always carries the bytes it was given.
//! Memory the kernel must fault in and zero costs more than the copies: the buffers of removed
//! files are kept, and a file whose cached view or medium outgrows its buffer takes the smallest
//! kept buffer that holds it (see [`SimDisk::grow_buffer`]), so a log that rolls and deletes
//! segments runs in memory it has touched before. A file growing into new memory still pays for
//! it twice (cached view and medium).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use seedlog_core::env::{Storage, StorageError};

use crate::rng;

/// The largest file the simulated disk accepts. A write beyond it is a bug in the caller (it would
/// allocate that much memory), not an operating condition.
pub const FILE_BYTES_MAX: u64 = 1 << 32;

/// The most memory kept in buffers of removed files for reuse.
const SPARE_BUFFER_BYTES_MAX: usize = 256 << 20;
const SPARE_BUFFERS_MAX: usize = 64;
/// Smaller buffers are not kept: the allocator recycles small blocks by itself, and they would
/// only crowd the large ones out of the spares.
const SPARE_BUFFER_BYTES_MIN: usize = 64 << 10;

/// How many random places a fault is tried at before it gives up (when the atlas forbids them).
const PLACEMENT_ATTEMPTS_MAX: u32 = 8;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FaultMode {
    /// Faults leave a good copy of every datum on some replica; the run must converge.
    Liveness,
    /// Unlimited faults; only safety is checked.
    SafetyOnly,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiskOptions {
    /// The atomic unit of the medium: 512 or 4096.
    pub sector_bytes: u64,
    pub sync_latency_ns_min: u64,
    pub sync_latency_ns_max: u64,
    /// The sum of all files' lengths may not exceed this.
    pub capacity_bytes: Option<u64>,
    /// Whether a crash may tear the first write that does not survive it.
    pub torn_writes: bool,
    pub misdirect_probability: f64,
    pub write_error_probability: f64,
    pub sync_error_probability: f64,
    /// Transient read errors.
    pub read_error_probability: f64,
    pub fault_mode: FaultMode,
}

impl DiskOptions {
    /// A disk that never fails (crashes still lose unsynced data), with a small sync latency.
    pub fn reliable() -> DiskOptions {
        DiskOptions {
            sector_bytes: 4096,
            sync_latency_ns_min: 10_000,
            sync_latency_ns_max: 100_000,
            capacity_bytes: None,
            torn_writes: false,
            misdirect_probability: 0.0,
            write_error_probability: 0.0,
            sync_error_probability: 0.0,
            read_error_probability: 0.0,
            fault_mode: FaultMode::Liveness,
        }
    }

    /// A swarm draw: each fault kind is sometimes off, sometimes rare, sometimes frequent.
    pub fn generate(rng: &mut ChaCha8Rng) -> DiskOptions {
        let sector_bytes = [512, 4096][rng::index(rng, 2)];
        let sync_latency_ns_min = [10_000, 100_000, 1_000_000][rng::index(rng, 3)];
        let sync_latency_ns_max = sync_latency_ns_min * [2, 10, 100][rng::index(rng, 3)];
        let capacity_bytes = [None, None, None, Some(16 << 20), Some(256 << 20)][rng::index(rng, 5)];
        let torn_writes = rng::chance(rng, 0.5);
        let mut rate = || [0.0, 0.0, 0.0001, 0.001, 0.01][rng::index(rng, 5)];
        DiskOptions {
            sector_bytes,
            sync_latency_ns_min,
            sync_latency_ns_max,
            capacity_bytes,
            torn_writes,
            misdirect_probability: rate(),
            write_error_probability: rate(),
            sync_error_probability: rate(),
            // Per read call, and a recovery reads every file: a rate like the others' would make a
            // restart of a long log fail every time, which is a statement about the rate, not the log.
            read_error_probability: [0.0, 0.0, 0.000_001, 0.000_01, 0.000_1][rng::index(rng, 5)],
            fault_mode: FaultMode::Liveness,
        }
    }

    fn validate(&self) {
        assert!(self.sector_bytes == 512 || self.sector_bytes == 4096, "sector_bytes {}", self.sector_bytes);
        assert!(self.sync_latency_ns_min <= self.sync_latency_ns_max, "sync latency range inverted");
        for p in [
            self.misdirect_probability,
            self.write_error_probability,
            self.sync_error_probability,
            self.read_error_probability,
        ] {
            assert!((0.0..=1.0).contains(&p), "probability out of range: {self:?}");
        }
    }
}

/// Which replica keeps a good copy of each zone (see the module documentation).
///
/// The protected replica of a zone is a pure function of `(seed, path, zone)` — splitmix64 over
/// the seed, the path's FNV-1a hash and the zone index — so the atlas is small, covers every file
/// that will ever exist, and every node's disk can hold the same copy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultAtlas {
    pub replicas: usize,
    pub seed: u64,
    pub zone_bytes: u64,
}

impl FaultAtlas {
    /// An atlas for `replicas` replicas, its seed and zone size drawn from `rng`.
    pub fn new<R: RngCore + ?Sized>(replicas: usize, rng: &mut R) -> FaultAtlas {
        let seed = rng.next_u64();
        let zone_bytes = [16 << 10, 64 << 10, 1 << 20][rng::index(rng, 3)];
        FaultAtlas::with_zone_bytes(replicas, seed, zone_bytes)
    }

    pub fn with_zone_bytes(replicas: usize, seed: u64, zone_bytes: u64) -> FaultAtlas {
        assert!(replicas >= 1, "an atlas needs a replica");
        assert!(
            zone_bytes >= 4096 && zone_bytes.is_multiple_of(4096),
            "zones are whole sectors: {zone_bytes}"
        );
        FaultAtlas { replicas, seed, zone_bytes }
    }

    /// The replica that must keep zone `zone` of `path` undamaged.
    pub fn protected_replica(&self, path: &str, zone: u64) -> usize {
        let mut state = self.seed ^ rng::fnv1a64(path.as_bytes());
        state = state.wrapping_add(zone.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (rng::splitmix64(&mut state) % self.replicas as u64) as usize
    }

    /// Whether `replica` may take durable-data damage anywhere in `offset..offset + len` of `path`.
    pub fn allows(&self, replica: usize, path: &str, offset: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let first = offset / self.zone_bytes;
        let last = (offset + len - 1) / self.zone_bytes;
        (first..=last).all(|zone| self.protected_replica(path, zone) != replica)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DamageKind {
    /// One bit of the byte at `offset` flipped (`bit` 0 is the least significant).
    BitRot { bit: u8 },
    /// The sector at `offset` became unreadable.
    LatentSectorError,
    /// Data meant for `intended_offset..intended_offset + len` landed at `offset..offset + len`;
    /// both ranges hold wrong bytes on the medium.
    Misdirected { intended_offset: u64 },
    /// An unsynced write at `offset..offset + len` was cut by a crash: `written_len` of its bytes
    /// reached the medium — a prefix, or (sectors written out of order) a prefix and a suffix
    /// around a sector-aligned hole.
    Torn { written_len: u64 },
}

/// One injected damage to durable data.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    /// The file's path when the damage happened.
    pub path: String,
    pub offset: u64,
    pub len: u64,
    pub kind: DamageKind,
    /// The disk's operation sequence number when it happened ([`SimDisk::sequence`]).
    pub at: u64,
}

/// A requested sync: complete it with [`SimDisk::complete_sync`] after the sync latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncTicket {
    id: u64,
    file: u64,
    /// Pending operations with a sequence number below this are covered.
    operations_before: u64,
    /// The crash epoch it was requested in; a crash voids it.
    epoch: u64,
}

impl SyncTicket {
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// What a crash did to one file that had pending operations.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileCrash {
    pub path: String,
    pub pending_operations: u64,
    /// How many of them reached the medium whole.
    pub surviving_operations: u64,
    /// Bytes of pending writes that did not reach the medium (the unwritten part of a torn one
    /// included).
    pub lost_bytes: u64,
    /// The torn write, if any: its offset, length and how much of it was written.
    pub torn: Option<TornWrite>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TornWrite {
    pub offset: u64,
    pub len: u64,
    pub written_len: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrashReport {
    /// Files with pending operations at the crash, in file-creation order.
    pub files: Vec<FileCrash>,
    /// Tickets requested but not completed before the crash (now void).
    pub voided_tickets: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskStats {
    /// Bytes accepted by writes and appends into the cached view.
    pub bytes_written: u64,
    /// Bytes of writes that reached the medium through a sync (misdirected ones included).
    pub bytes_synced: u64,
    pub writes: u64,
    pub reads: u64,
    pub syncs_requested: u64,
    pub syncs_completed: u64,
    /// Completions of tickets voided by a crash or whose file is gone.
    pub syncs_void: u64,
    pub write_errors: u64,
    pub read_errors: u64,
    pub sync_errors: u64,
    pub no_space_errors: u64,
    pub misdirected_writes: u64,
    pub crashes: u64,
}

pub struct SimDisk {
    options: DiskOptions,
    rng: ChaCha8Rng,
    node_index: usize,
    atlas: Option<FaultAtlas>,
    paths: BTreeMap<String, FileId>,
    files: BTreeMap<FileId, File>,
    next_file_id: u64,
    next_ticket_id: u64,
    /// Incremented by every crash; tickets of an older epoch are void.
    epoch: u64,
    /// Tickets requested in this epoch minus those completed (for the crash report).
    tickets_outstanding: BTreeSet<u64>,
    /// The sum of the cached lengths of all files.
    used_bytes: u64,
    sequence: u64,
    damage: Vec<Damage>,
    stats: DiskStats,
    /// Buffers of removed files, for reuse (see [`SimDisk::release`]).
    spare_buffers: Vec<Vec<u8>>,
}

impl SimDisk {
    /// `rng` is the node's "disk/{node}" stream. Until [`SimDisk::set_atlas`] is called the
    /// disk is replica 0 with no atlas: in liveness mode it injects no durable-data damage.
    pub fn new(options: DiskOptions, rng: ChaCha8Rng) -> SimDisk {
        options.validate();
        SimDisk {
            options,
            rng,
            node_index: 0,
            atlas: None,
            paths: BTreeMap::new(),
            files: BTreeMap::new(),
            next_file_id: 0,
            next_ticket_id: 0,
            epoch: 0,
            tickets_outstanding: BTreeSet::new(),
            used_bytes: 0,
            sequence: 0,
            damage: Vec::new(),
            stats: DiskStats::default(),
            spare_buffers: Vec::new(),
        }
    }

    /// This disk is replica `node_index` of the cluster the atlas was drawn for.
    pub fn set_atlas(&mut self, node_index: usize, atlas: FaultAtlas) {
        self.node_index = node_index;
        self.atlas = Some(atlas);
    }

    pub fn options(&self) -> &DiskOptions {
        &self.options
    }

    /// Changes the capacity (a fault plan may fill the disk up, then free it).
    pub fn set_capacity_bytes(&mut self, capacity_bytes: Option<u64>) {
        self.options.capacity_bytes = capacity_bytes;
    }

    /// The chaos is over: no more injected errors or misdirected writes from here on. (Crashes
    /// still lose unsynced data and may tear it; what is already damaged stays damaged.)
    pub fn calm(&mut self) {
        self.options.misdirect_probability = 0.0;
        self.options.write_error_probability = 0.0;
        self.options.sync_error_probability = 0.0;
        self.options.read_error_probability = 0.0;
    }

    pub fn stats(&self) -> &DiskStats {
        &self.stats
    }

    /// Every damage injected into durable data, in order.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The operation sequence number: incremented by every storage call and injected fault.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The sum of all files' lengths.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// A file's durable bytes: what a crash right now would leave (before tearing), or `None` if it
    /// does not exist.
    pub fn durable_contents(&self, path: &str) -> Option<Vec<u8>> {
        let id = self.paths.get(path)?;
        Some(self.files[id].durable.clone())
    }

    /// A file's bytes as the node sees them now (its page cache), without a read's fault
    /// injection or its draw from the disk's random stream: for the checkers, which must observe
    /// without changing the run.
    pub fn cached_contents(&self, path: &str) -> Option<&[u8]> {
        let id = self.paths.get(path)?;
        Some(&self.files[id].cached)
    }

    /// Bytes of writes not yet on the medium, over all files.
    pub fn pending_bytes(&self) -> u64 {
        let pending_write_len = |op: &PendingOp| match op.kind {
            OpKind::Write { len, .. } => len,
            OpKind::Truncate { .. } => 0,
        };
        self.files.values().flat_map(|file| file.pending.iter()).map(pending_write_len).sum()
    }

    /// How long the next sync takes, drawn from the options.
    pub fn sync_latency_ns(&mut self) -> u64 {
        rng::range_u64(&mut self.rng, self.options.sync_latency_ns_min, self.options.sync_latency_ns_max)
    }

    /// Captures the file's pending operations as of now; the simulator completes the ticket later.
    pub fn request_sync(&mut self, path: &str) -> Result<SyncTicket, StorageError> {
        self.sequence += 1;
        let id = self.id(path)?;
        let file = &self.files[&id];
        let ticket = SyncTicket {
            id: self.next_ticket_id,
            file: id.0,
            operations_before: file.next_operation,
            epoch: self.epoch,
        };
        self.next_ticket_id += 1;
        self.tickets_outstanding.insert(ticket.id);
        self.stats.syncs_requested += 1;
        Ok(ticket)
    }

    /// Makes the ticket's operations durable (see the module documentation for `Io` and for void
    /// tickets, which complete `Ok` and do nothing).
    pub fn complete_sync(&mut self, ticket: SyncTicket) -> Result<(), StorageError> {
        self.sequence += 1;
        if ticket.epoch != self.epoch || !self.files.contains_key(&FileId(ticket.file)) {
            self.tickets_outstanding.remove(&ticket.id);
            self.stats.syncs_void += 1;
            return Ok(());
        }
        self.tickets_outstanding.remove(&ticket.id);
        self.stats.syncs_completed += 1;
        let file_id = FileId(ticket.file);
        if rng::chance(&mut self.rng, self.options.sync_error_probability) {
            self.stats.sync_errors += 1;
            let file = self.files.get_mut(&file_id).expect("checked above");
            while file.pending.front().is_some_and(|op| op.sequence < ticket.operations_before) {
                file.pending.pop_front();
            }
            return Err(StorageError::Io);
        }
        loop {
            let file = self.files.get_mut(&file_id).expect("checked above");
            if file.pending.front().is_none_or(|op| op.sequence >= ticket.operations_before) {
                break;
            }
            let op = file.pending.pop_front().expect("front exists");
            self.make_durable(file_id, op);
        }
        Ok(())
    }

    /// Power loss: see the module documentation. The cached view becomes the durable bytes.
    pub fn crash(&mut self) -> CrashReport {
        self.sequence += 1;
        self.stats.crashes += 1;
        let mut report =
            CrashReport { files: Vec::new(), voided_tickets: self.tickets_outstanding.len() as u64 };
        self.tickets_outstanding.clear();
        self.epoch += 1;
        let sector_bytes = self.options.sector_bytes;
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            let file = self.files.get_mut(&id).expect("listed above");
            if !file.pending.is_empty() {
                let pending = std::mem::take(&mut file.pending);
                let crash = crash_file(file, pending, &mut self.rng, sector_bytes, self.options.torn_writes);
                if let Some(torn) = &crash.torn {
                    self.damage.push(Damage {
                        path: crash.path.clone(),
                        offset: torn.offset,
                        len: torn.len,
                        kind: DamageKind::Torn { written_len: torn.written_len },
                        at: self.sequence,
                    });
                }
                report.files.push(crash);
            }
            let file = self.files.get_mut(&id).expect("listed above");
            file.cached.clone_from(&file.durable);
            file.latent_cached.clone_from(&file.latent_durable);
        }
        self.used_bytes = self.files.values().map(|file| file.cached.len() as u64).sum();
        report
    }

    /// Flips one bit of one random durable byte, where the atlas allows. `None` if nothing is
    /// durable or no allowed place was found.
    pub fn rot(&mut self) -> Option<Damage> {
        self.sequence += 1;
        let total: u64 = self.files.values().map(|file| file.durable.len() as u64).sum();
        if total == 0 {
            return None;
        }
        for _ in 0..PLACEMENT_ATTEMPTS_MAX {
            let index = rng::range_u64(&mut self.rng, 0, total - 1);
            let (id, offset) = self.locate(index, |file| file.durable.len() as u64);
            let bit = rng::range_u64(&mut self.rng, 0, 7) as u8;
            let path = self.files[&id].path.clone();
            if !self.may_damage(&path, offset, 1) {
                continue;
            }
            let file = self.files.get_mut(&id).expect("located");
            let index = offset as usize;
            let shown_from_medium = index < file.cached.len()
                && file.cached[index] == file.durable[index]
                && !file.pending_covers(offset, offset + 1);
            file.durable[index] ^= 1 << bit;
            if shown_from_medium {
                file.cached[index] ^= 1 << bit;
            }
            let damage = Damage { path, offset, len: 1, kind: DamageKind::BitRot { bit }, at: self.sequence };
            self.damage.push(damage.clone());
            return Some(damage);
        }
        None
    }

    /// Makes one random durable sector unreadable, where the atlas allows. `None` if nothing is
    /// durable or no allowed, still readable sector was found.
    pub fn add_latent_sector_error(&mut self) -> Option<Damage> {
        self.sequence += 1;
        let sector_bytes = self.options.sector_bytes;
        let sectors = |file: &File| (file.durable.len() as u64).div_ceil(sector_bytes);
        let total: u64 = self.files.values().map(sectors).sum();
        if total == 0 {
            return None;
        }
        for _ in 0..PLACEMENT_ATTEMPTS_MAX {
            let index = rng::range_u64(&mut self.rng, 0, total - 1);
            let (id, sector) = self.locate(index, sectors);
            let file = &self.files[&id];
            let offset = sector * sector_bytes;
            let len = sector_bytes.min(file.durable.len() as u64 - offset);
            let path = file.path.clone();
            if file.latent_durable.contains(&sector) || !self.may_damage(&path, offset, len) {
                continue;
            }
            let file = self.files.get_mut(&id).expect("located");
            file.latent_durable.insert(sector);
            if !file.pending_covers(offset, offset + len) {
                file.latent_cached.insert(sector);
            }
            let damage = Damage { path, offset, len, kind: DamageKind::LatentSectorError, at: self.sequence };
            self.damage.push(damage.clone());
            return Some(damage);
        }
        None
    }

    /// Accounts for a removed file and keeps its buffers for the next files, so that a log rolling
    /// and deleting segments reuses memory the kernel has already faulted in (which, not copying,
    /// is what bounds append throughput). Reuse is invisible to behaviour.
    fn release(&mut self, file: File) {
        self.used_bytes -= file.cached.len() as u64;
        self.keep_spare(file.durable);
        self.keep_spare(file.cached);
    }

    fn keep_spare(&mut self, mut buffer: Vec<u8>) {
        let spare_bytes: usize = self.spare_buffers.iter().map(Vec::capacity).sum();
        let room = self.spare_buffers.len() < SPARE_BUFFERS_MAX
            && spare_bytes + buffer.capacity() <= SPARE_BUFFER_BYTES_MAX;
        if buffer.capacity() >= SPARE_BUFFER_BYTES_MIN && room {
            buffer.clear();
            self.spare_buffers.push(buffer);
        }
    }

    /// Before a file's cached view (`medium` false) or medium grows to `len` bytes: if its buffer
    /// cannot hold them and a kept buffer can, moves the contents into the smallest such kept buffer
    /// and keeps the old one instead. The bytes are the same before and after: invisible to
    /// behaviour, and to every random choice.
    fn grow_buffer(&mut self, id: FileId, medium: bool, len: u64) {
        let file = self.files.get_mut(&id).expect("caller looked the file up");
        let buffer = if medium { &mut file.durable } else { &mut file.cached };
        let len = len as usize;
        if len <= buffer.capacity() {
            return;
        }
        let fitting = self.spare_buffers.iter().enumerate().filter(|(_, spare)| spare.capacity() >= len);
        let Some(index) = fitting.min_by_key(|(_, spare)| spare.capacity()).map(|(index, _)| index) else {
            return;
        };
        let mut spare = self.spare_buffers.swap_remove(index);
        debug_assert!(spare.is_empty());
        spare.extend_from_slice(buffer);
        let old = std::mem::replace(buffer, spare);
        self.keep_spare(old);
    }

    fn id(&self, path: &str) -> Result<FileId, StorageError> {
        self.paths.get(path).copied().ok_or(StorageError::NotFound)
    }

    fn may_damage(&self, path: &str, offset: u64, len: u64) -> bool {
        match self.options.fault_mode {
            FaultMode::SafetyOnly => true,
            FaultMode::Liveness => {
                self.atlas.as_ref().is_some_and(|atlas| atlas.allows(self.node_index, path, offset, len))
            }
        }
    }

    /// Maps `index` in `0..sum(units(file))` to the file it falls in and the unit within it.
    fn locate(&self, mut index: u64, units: impl Fn(&File) -> u64) -> (FileId, u64) {
        for (id, file) in &self.files {
            let count = units(file);
            if index < count {
                return (*id, index);
            }
            index -= count;
        }
        unreachable!("index beyond the total it was drawn from")
    }

    /// Fails with `NoSpace` if growing a file from `old_len` to `new_len` would exceed capacity.
    fn reserve(&mut self, old_len: u64, new_len: u64) -> Result<(), StorageError> {
        assert!(new_len <= FILE_BYTES_MAX, "a file of {new_len} bytes exceeds the simulated bound");
        if let Some(capacity_bytes) = self.options.capacity_bytes {
            if new_len > old_len && self.used_bytes - old_len + new_len > capacity_bytes {
                self.stats.no_space_errors += 1;
                return Err(StorageError::NoSpace);
            }
        }
        self.used_bytes = self.used_bytes - old_len + new_len;
        Ok(())
    }

    /// Applies one synced operation to the medium, possibly misdirecting a write.
    fn make_durable(&mut self, id: FileId, op: PendingOp) {
        let sector_bytes = self.options.sector_bytes;
        // A misdirected write lands within the same bound: the file as it is after the write.
        let medium_len = match op.kind {
            OpKind::Write { offset, len, .. } => (self.files[&id].durable.len() as u64).max(offset + len),
            OpKind::Truncate { len } => len,
        };
        self.grow_buffer(id, true, medium_len);
        if let OpKind::Write { offset, len, .. } = op.kind {
            self.stats.bytes_synced += len;
            if rng::chance(&mut self.rng, self.options.misdirect_probability) {
                if let Some(target) = self.misdirect_target(id, offset, len) {
                    let file = self.files.get_mut(&id).expect("caller checked");
                    let end = offset + len;
                    if (file.durable.len() as u64) < end {
                        file.durable.resize(end as usize, 0);
                    }
                    let data = operation_bytes(&file.cached, &op);
                    write_medium(&mut file.durable, &mut file.latent_durable, sector_bytes, target, data);
                    let path = file.path.clone();
                    self.stats.misdirected_writes += 1;
                    self.damage.push(Damage {
                        path,
                        offset: target,
                        len,
                        kind: DamageKind::Misdirected { intended_offset: offset },
                        at: self.sequence,
                    });
                    return;
                }
            }
        }
        let file = self.files.get_mut(&id).expect("caller checked");
        file.apply_to_medium(&op, sector_bytes, None);
    }

    /// A sector-shifted offset for a misdirected write at `offset..offset + len`: inside the file
    /// as it will be after the write, not overlapping the write's own range, and allowed by the
    /// atlas for both ranges. `None` if there is no such place.
    fn misdirect_target(&mut self, id: FileId, offset: u64, len: u64) -> Option<u64> {
        let sector_bytes = self.options.sector_bytes;
        let file = &self.files[&id];
        let file_len = (file.durable.len() as u64).max(offset + len);
        // Shifts of k whole sectors, k >= min_shift so that the ranges do not overlap: leftwards
        // while the target stays at or after zero, rightwards while it ends within the file.
        let min_shift = len.div_ceil(sector_bytes);
        let left_shift_max = offset / sector_bytes;
        let left = if left_shift_max >= min_shift { left_shift_max - min_shift + 1 } else { 0 };
        let right_shift_max = (file_len - offset - len) / sector_bytes;
        let right = if right_shift_max >= min_shift { right_shift_max - min_shift + 1 } else { 0 };
        if left + right == 0 {
            return None;
        }
        let path = file.path.clone();
        for _ in 0..PLACEMENT_ATTEMPTS_MAX {
            let choice = rng::range_u64(&mut self.rng, 0, left + right - 1);
            let target = if choice < left {
                offset - (min_shift + choice) * sector_bytes
            } else {
                offset + (min_shift + choice - left) * sector_bytes
            };
            debug_assert!(target + len <= offset || target >= offset + len);
            debug_assert!(target + len <= file_len);
            if self.may_damage(&path, target, len) && self.may_damage(&path, offset, len) {
                return Some(target);
            }
        }
        None
    }
}

impl Storage for SimDisk {
    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        self.sequence += 1;
        if self.paths.contains_key(path) {
            return Err(StorageError::AlreadyExists);
        }
        let id = FileId(self.next_file_id);
        self.next_file_id += 1;
        self.paths.insert(path.to_string(), id);
        // Buffers are handed out as files grow (see `grow_buffer`), not here: the file's size is not
        // known yet, and an index file holding a segment's buffer would leave the segment none.
        self.files.insert(id, File::new(path, Vec::new(), Vec::new()));
        Ok(())
    }

    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.sequence += 1;
        let id = self.id(path)?;
        if data.is_empty() {
            return Ok(());
        }
        if rng::chance(&mut self.rng, self.options.write_error_probability) {
            self.stats.write_errors += 1;
            return Err(StorageError::Io);
        }
        let end = offset.checked_add(data.len() as u64).ok_or(StorageError::OutOfRange)?;
        let old_len = self.files[&id].cached.len() as u64;
        self.reserve(old_len, old_len.max(end))?;
        self.grow_buffer(id, false, end);
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        let sector_bytes = self.options.sector_bytes;
        self.files.get_mut(&id).expect("looked up").write(offset, data, sector_bytes);
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        let id = self.id(path)?;
        let offset = self.files[&id].cached.len() as u64;
        self.write_at(path, offset, data)?;
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.sequence += 1;
        let id = self.id(path)?;
        let file = &self.files[&id];
        let end = offset.checked_add(buf.len() as u64).ok_or(StorageError::OutOfRange)?;
        if end > file.cached.len() as u64 {
            return Err(StorageError::OutOfRange);
        }
        self.stats.reads += 1;
        if rng::chance(&mut self.rng, self.options.read_error_probability) {
            self.stats.read_errors += 1;
            return Err(StorageError::Io);
        }
        let file = &self.files[&id];
        if !buf.is_empty() {
            let sector_bytes = self.options.sector_bytes;
            let touched = offset / sector_bytes..=(end - 1) / sector_bytes;
            if file.latent_cached.range(touched).next().is_some() {
                self.stats.read_errors += 1;
                return Err(StorageError::Io);
            }
        }
        buf.copy_from_slice(&file.cached[offset as usize..end as usize]);
        Ok(())
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        let id = self.id(path)?;
        Ok(self.files[&id].cached.len() as u64)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        self.sequence += 1;
        let id = self.id(path)?;
        let old_len = self.files[&id].cached.len() as u64;
        self.reserve(old_len, len)?;
        self.grow_buffer(id, false, len);
        let sector_bytes = self.options.sector_bytes;
        self.files.get_mut(&id).expect("looked up").truncate(len, sector_bytes);
        Ok(())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.sequence += 1;
        let paths = self.paths.range(prefix.to_string()..).map(|(path, _)| path);
        Ok(paths.take_while(|path| path.starts_with(prefix)).cloned().collect())
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.sequence += 1;
        let id = self.paths.remove(path).ok_or(StorageError::NotFound)?;
        let file = self.files.remove(&id).expect("every path names a file");
        self.release(file);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        self.sequence += 1;
        let id = self.id(from)?;
        if from == to {
            return Ok(());
        }
        if let Some(replaced) = self.paths.remove(to) {
            let file = self.files.remove(&replaced).expect("every path names a file");
            self.release(file);
        }
        self.paths.remove(from);
        self.paths.insert(to.to_string(), id);
        self.files.get_mut(&id).expect("every path names a file").path = to.to_string();
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FileId(u64);

#[derive(Debug)]
enum Data {
    /// The bytes are the cached view's at the operation's range (nothing has overwritten them).
    Cached,
    /// The bytes were copied out before the cached view's range changed.
    Inline(Vec<u8>),
}

#[derive(Debug)]
enum OpKind {
    Write { offset: u64, len: u64, data: Data },
    Truncate { len: u64 },
}

#[derive(Debug)]
struct PendingOp {
    /// Per file, increasing; tickets cover operations below a sequence number.
    sequence: u64,
    kind: OpKind,
}

#[derive(Debug)]
struct File {
    path: String,
    durable: Vec<u8>,
    cached: Vec<u8>,
    pending: VecDeque<PendingOp>,
    next_operation: u64,
    /// Unreadable sectors of the medium.
    latent_durable: BTreeSet<u64>,
    /// Sectors a read of the cached view fails on.
    latent_cached: BTreeSet<u64>,
}

impl File {
    /// A new, empty file using the given (empty) buffers.
    fn new(path: &str, durable: Vec<u8>, cached: Vec<u8>) -> File {
        assert!(durable.is_empty() && cached.is_empty());
        File {
            path: path.to_string(),
            durable,
            cached,
            pending: VecDeque::new(),
            next_operation: 0,
            latent_durable: BTreeSet::new(),
            latent_cached: BTreeSet::new(),
        }
    }

    /// Writes into the cached view and queues the write. Capacity was reserved by the caller.
    fn write(&mut self, offset: u64, data: &[u8], sector_bytes: u64) {
        let end = offset + data.len() as u64;
        let old_len = self.cached.len() as u64;
        if offset < old_len {
            // Pending writes referring to bytes about to change take a copy of them first.
            self.materialize(|op_offset, op_end| op_offset < end && offset < op_end);
            let overlap_end = end.min(old_len);
            let split = (overlap_end - offset) as usize;
            self.cached[offset as usize..overlap_end as usize].copy_from_slice(&data[..split]);
            self.cached.extend_from_slice(&data[split..]);
        } else {
            self.cached.resize(offset as usize, 0);
            self.cached.extend_from_slice(data);
        }
        forget_sectors(&mut self.latent_cached, sector_bytes, offset, end);
        self.push(OpKind::Write { offset, len: data.len() as u64, data: Data::Cached });
    }

    /// Cuts or zero-extends the cached view and queues the truncate.
    fn truncate(&mut self, len: u64, sector_bytes: u64) {
        if len < self.cached.len() as u64 {
            self.materialize(|_, op_end| op_end > len);
        }
        self.cached.resize(len as usize, 0);
        let first_gone = len.div_ceil(sector_bytes);
        self.latent_cached.split_off(&first_gone);
        self.push(OpKind::Truncate { len });
    }

    fn push(&mut self, kind: OpKind) {
        self.pending.push_back(PendingOp { sequence: self.next_operation, kind });
        self.next_operation += 1;
    }

    /// Copies out the bytes of every pending write that still refers to the cached view and whose
    /// range `(offset, end)` satisfies `affected`.
    fn materialize(&mut self, affected: impl Fn(u64, u64) -> bool) {
        for op in &mut self.pending {
            if let OpKind::Write { offset, len, data } = &mut op.kind {
                if matches!(data, Data::Cached) && affected(*offset, *offset + *len) {
                    *data = Data::Inline(self.cached[*offset as usize..(*offset + *len) as usize].to_vec());
                }
            }
        }
    }

    /// Applies `op` to the medium exactly as it was applied to the cached view — or, for a write
    /// torn at `written_len`, only its first `written_len` bytes.
    fn apply_to_medium(&mut self, op: &PendingOp, sector_bytes: u64, written_len: Option<u64>) {
        match op.kind {
            OpKind::Write { offset, len, .. } => {
                let written_len = written_len.unwrap_or(len);
                debug_assert!(written_len <= len);
                let data = &operation_bytes(&self.cached, op)[..written_len as usize];
                write_medium(&mut self.durable, &mut self.latent_durable, sector_bytes, offset, data);
            }
            OpKind::Truncate { len } => {
                self.durable.resize(len as usize, 0);
                self.latent_durable.split_off(&len.div_ceil(sector_bytes));
            }
        }
    }

    /// Whether the cached view at `start..end` comes from a pending operation rather than the
    /// medium: a pending write overlaps it, or a pending truncate cut below its end.
    fn pending_covers(&self, start: u64, end: u64) -> bool {
        self.pending.iter().any(|op| match op.kind {
            OpKind::Write { offset, len, .. } => offset < end && start < offset + len,
            OpKind::Truncate { len } => len < end,
        })
    }
}

/// The bytes a pending write carries (none for a truncate).
fn operation_bytes<'a>(cached: &'a [u8], op: &'a PendingOp) -> &'a [u8] {
    match &op.kind {
        OpKind::Write { offset, len, data: Data::Cached } => {
            &cached[*offset as usize..(*offset + *len) as usize]
        }
        OpKind::Write { data: Data::Inline(bytes), .. } => bytes,
        OpKind::Truncate { .. } => &[],
    }
}

/// Writes `data` at `offset` of the medium (zero-extending it) and clears the latent sector errors
/// it touches: the drive remaps a sector when it is written.
fn write_medium(
    durable: &mut Vec<u8>,
    latent: &mut BTreeSet<u64>,
    sector_bytes: u64,
    offset: u64,
    data: &[u8],
) {
    let start = offset as usize;
    let end = start + data.len();
    if durable.len() <= start {
        durable.resize(start, 0);
        durable.extend_from_slice(data);
    } else if durable.len() >= end {
        durable[start..end].copy_from_slice(data);
    } else {
        let split = durable.len() - start;
        durable[start..].copy_from_slice(&data[..split]);
        durable.extend_from_slice(&data[split..]);
    }
    forget_sectors(latent, sector_bytes, offset, end as u64);
}

/// Removes the sectors touching `start..end` from `latent`.
fn forget_sectors(latent: &mut BTreeSet<u64>, sector_bytes: u64, start: u64, end: u64) {
    if latent.is_empty() || start >= end {
        return;
    }
    let touched: Vec<u64> = latent.range(start / sector_bytes..=(end - 1) / sector_bytes).copied().collect();
    for sector in touched {
        latent.remove(&sector);
    }
}

/// A crash of one file: a random prefix of `pending` reaches the medium, the next write may tear.
fn crash_file(
    file: &mut File,
    pending: VecDeque<PendingOp>,
    rng: &mut ChaCha8Rng,
    sector_bytes: u64,
    torn_writes: bool,
) -> FileCrash {
    let count = pending.len() as u64;
    let surviving = rng::range_u64(rng, 0, count);
    // The pending queue was taken out of the file, so ops referring to the cached view still find
    // their bytes there: the cached view is reset only after this.
    let ops: Vec<PendingOp> = pending.into();
    for op in &ops[..surviving as usize] {
        file.apply_to_medium(op, sector_bytes, None);
    }
    let mut torn = None;
    if let Some(first_lost) = ops.get(surviving as usize) {
        if let OpKind::Write { offset, len, .. } = first_lost.kind {
            if torn_writes && rng::chance(rng, 0.5) {
                // Sector boundaries strictly inside the write: a tear leaves a non-empty prefix.
                let first_boundary = (offset / sector_bytes + 1) * sector_bytes;
                let last_boundary = (offset + len - 1) / sector_bytes * sector_bytes;
                if first_boundary <= last_boundary {
                    let boundaries = (last_boundary - first_boundary) / sector_bytes + 1;
                    let boundary = |rng: &mut ChaCha8Rng| {
                        first_boundary + rng::range_u64(rng, 0, boundaries - 1) * sector_bytes
                    };
                    let (cut, resume) = (boundary(rng), boundary(rng));
                    if boundaries >= 2 && cut != resume && rng::chance(rng, 0.5) {
                        // The drive wrote the write's sectors out of order: its start and its end
                        // reached the medium, a hole between them did not. The file's length then
                        // covers the whole write, so only a checksum can tell the hole.
                        let (hole_start, hole_end) = (cut.min(resume), cut.max(resume));
                        let data = operation_bytes(&file.cached, first_lost);
                        let (head, tail) = ((hole_start - offset) as usize, (hole_end - offset) as usize);
                        let latent = &mut file.latent_durable;
                        write_medium(&mut file.durable, latent, sector_bytes, offset, &data[..head]);
                        write_medium(&mut file.durable, latent, sector_bytes, hole_end, &data[tail..]);
                        let written_len = len - (hole_end - hole_start);
                        torn = Some(TornWrite { offset, len, written_len });
                    } else {
                        let written_len = cut - offset;
                        file.apply_to_medium(first_lost, sector_bytes, Some(written_len));
                        torn = Some(TornWrite { offset, len, written_len });
                    }
                }
            }
        }
    }
    let lost_write_len = |op: &PendingOp| match op.kind {
        OpKind::Write { len, .. } => len,
        OpKind::Truncate { .. } => 0,
    };
    let lost_bytes = ops[surviving as usize..].iter().map(lost_write_len).sum::<u64>()
        - torn.as_ref().map_or(0, |torn: &TornWrite| torn.written_len);
    FileCrash {
        path: file.path.clone(),
        pending_operations: count,
        surviving_operations: surviving,
        lost_bytes,
        torn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(options: DiskOptions, seed: u64) -> SimDisk {
        SimDisk::new(options, rng::stream(seed, "disk/n0"))
    }

    fn reliable(seed: u64) -> SimDisk {
        disk(DiskOptions::reliable(), seed)
    }

    fn sync(disk: &mut SimDisk, path: &str) -> Result<(), StorageError> {
        let ticket = disk.request_sync(path)?;
        disk.complete_sync(ticket)
    }

    fn read(disk: &mut SimDisk, path: &str) -> Vec<u8> {
        disk.read_all(path).expect("readable")
    }

    #[test]
    fn storage_semantics() {
        let mut disk = reliable(1);
        assert_eq!(disk.len("a"), Err(StorageError::NotFound));
        assert!(!disk.exists("a"));
        disk.create("a").unwrap();
        assert_eq!(disk.create("a"), Err(StorageError::AlreadyExists));
        assert_eq!(disk.append("a", b"hello"), Ok(0));
        assert_eq!(disk.append("a", b" world"), Ok(5));
        disk.write_at("a", 0, b"J").unwrap();
        assert_eq!(read(&mut disk, "a"), b"Jello world");
        disk.write_at("a", 13, b"!").unwrap();
        assert_eq!(read(&mut disk, "a"), b"Jello world\0\0!");
        disk.write_at("a", 100, b"").unwrap();
        assert_eq!(disk.len("a"), Ok(14), "an empty write does not extend");
        let mut buf = [0u8; 5];
        disk.read_at("a", 6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(disk.read_at("a", 10, &mut buf), Err(StorageError::OutOfRange));
        assert_eq!(disk.read_at("a", u64::MAX, &mut buf), Err(StorageError::OutOfRange));
        assert_eq!(disk.read_at("a", 14, &mut []), Ok(()));
        assert_eq!(disk.read_at("a", 15, &mut []), Err(StorageError::OutOfRange));
        disk.truncate("a", 5).unwrap();
        assert_eq!(read(&mut disk, "a"), b"Jello");
        disk.truncate("a", 7).unwrap();
        assert_eq!(read(&mut disk, "a"), b"Jello\0\0");
        for missing in [
            disk.write_at("b", 0, b"x"),
            disk.append("b", b"x").map(|_| ()),
            disk.read_at("b", 0, &mut buf),
            disk.truncate("b", 0),
            disk.remove("b"),
            disk.rename("b", "c"),
            disk.request_sync("b").map(|_| ()),
        ] {
            assert_eq!(missing, Err(StorageError::NotFound));
        }
        for path in ["topic-1/0002.log", "topic-0/0001.index", "topic-0/0000.log", "other"] {
            disk.create(path).unwrap();
        }
        assert_eq!(disk.list("topic-0/").unwrap(), ["topic-0/0000.log", "topic-0/0001.index"]);
        assert_eq!(
            disk.list("").unwrap(),
            ["a", "other", "topic-0/0000.log", "topic-0/0001.index", "topic-1/0002.log"]
        );
        assert!(disk.list("zzz").unwrap().is_empty());
        disk.append("other", b"replaced").unwrap();
        disk.rename("a", "other").unwrap();
        assert_eq!(read(&mut disk, "other"), b"Jello\0\0", "rename replaces the target");
        assert!(!disk.exists("a"));
        disk.rename("other", "other").unwrap();
        assert_eq!(read(&mut disk, "other"), b"Jello\0\0");
        disk.remove("other").unwrap();
        assert!(!disk.exists("other"));
        assert_eq!(disk.used_bytes(), 0);
    }

    #[test]
    fn unsynced_data_may_be_lost_and_synced_data_survives() {
        let mut lost_everything = 0;
        let mut kept_everything = 0;
        for seed in 0..100 {
            let mut disk = reliable(seed);
            disk.create("log").unwrap();
            disk.append("log", b"synced.").unwrap();
            sync(&mut disk, "log").unwrap();
            for _ in 0..4 {
                disk.append("log", b"later.").unwrap();
            }
            let report = disk.crash();
            let contents = read(&mut disk, "log");
            assert!(contents.starts_with(b"synced."), "synced data survives a crash");
            let extra = (contents.len() - 7) / 6;
            assert_eq!(contents.len(), 7 + extra * 6, "whole appends survive (no tearing by default)");
            assert_eq!(report.files[0].surviving_operations as usize, extra);
            assert_eq!(report.files[0].lost_bytes as usize, (4 - extra) * 6);
            assert_eq!(disk.durable_contents("log").unwrap(), contents);
            assert_eq!(disk.pending_bytes(), 0);
            lost_everything += usize::from(extra == 0);
            kept_everything += usize::from(extra == 4);
        }
        assert!(lost_everything > 5 && kept_everything > 5, "{lost_everything} {kept_everything}");
    }

    #[test]
    fn files_and_directory_operations_survive_a_crash() {
        let mut disk = reliable(1);
        disk.create("a").unwrap();
        disk.create("b").unwrap();
        disk.append("b", b"data").unwrap();
        sync(&mut disk, "b").unwrap();
        disk.rename("b", "c").unwrap();
        disk.create("gone").unwrap();
        disk.remove("gone").unwrap();
        disk.crash();
        assert_eq!(disk.list("").unwrap(), ["a", "c"]);
        assert_eq!(read(&mut disk, "c"), b"data");
    }

    #[test]
    fn a_sync_covers_only_operations_before_its_request() {
        let mut disk = reliable(1);
        disk.create("log").unwrap();
        disk.append("log", b"first").unwrap();
        let ticket = disk.request_sync("log").unwrap();
        disk.append("log", b"second").unwrap();
        disk.write_at("log", 0, b"F").unwrap();
        disk.complete_sync(ticket).unwrap();
        assert_eq!(disk.durable_contents("log").unwrap(), b"first", "the overwrite came after the request");
        assert_eq!(read(&mut disk, "log"), b"Firstsecond");
        assert_eq!(disk.pending_bytes(), 7);
        sync(&mut disk, "log").unwrap();
        assert_eq!(disk.durable_contents("log").unwrap(), b"Firstsecond");
    }

    #[test]
    fn a_sync_follows_its_file_through_a_rename_and_a_removed_file_syncs_nothing() {
        let mut disk = reliable(1);
        disk.create("tmp").unwrap();
        disk.append("tmp", b"snapshot").unwrap();
        let ticket = disk.request_sync("tmp").unwrap();
        disk.rename("tmp", "final").unwrap();
        disk.complete_sync(ticket).unwrap();
        assert_eq!(disk.durable_contents("final").unwrap(), b"snapshot");

        disk.create("doomed").unwrap();
        disk.append("doomed", b"x").unwrap();
        let ticket = disk.request_sync("doomed").unwrap();
        disk.remove("doomed").unwrap();
        disk.create("doomed").unwrap();
        disk.append("doomed", b"new").unwrap();
        assert_eq!(disk.complete_sync(ticket), Ok(()));
        assert_eq!(disk.durable_contents("doomed").unwrap(), b"", "the new file is another file");
        assert_eq!(disk.stats().syncs_void, 1);
    }

    #[test]
    fn a_crash_voids_outstanding_tickets() {
        let mut disk = reliable(3);
        disk.create("log").unwrap();
        let ticket = disk.request_sync("log").unwrap();
        let report = disk.crash();
        assert_eq!(report.voided_tickets, 1);
        disk.append("log", b"after the crash").unwrap();
        assert_eq!(disk.complete_sync(ticket), Ok(()));
        assert_eq!(disk.durable_contents("log").unwrap(), b"", "a void ticket syncs nothing");
    }

    #[test]
    fn overwritten_pending_writes_keep_their_own_bytes() {
        // Appends refer to the cached view; a later overwrite or truncate must not change what
        // the earlier, still pending, write puts on the medium.
        for seed in 0..50 {
            let mut disk = reliable(seed);
            disk.create("f").unwrap();
            disk.append("f", b"aaaa").unwrap();
            let first = disk.request_sync("f").unwrap();
            disk.write_at("f", 2, b"bbbb").unwrap();
            disk.truncate("f", 1).unwrap();
            disk.append("f", b"cc").unwrap();
            disk.complete_sync(first).unwrap();
            assert_eq!(disk.durable_contents("f").unwrap(), b"aaaa");
            let report = disk.crash();
            let contents = disk.durable_contents("f").unwrap();
            let states: [&[u8]; 4] = [b"aaaa", b"aabbbb", b"a", b"acc"];
            let surviving = report.files[0].surviving_operations as usize;
            assert_eq!(contents, states[surviving], "seed {seed}");
        }
    }

    /// A reference model: the cached view is a plain vector and every pending operation a copy.
    #[derive(Clone)]
    enum ModelOp {
        Write(u64, Vec<u8>),
        Truncate(u64),
    }

    fn apply_model(contents: &mut Vec<u8>, op: &ModelOp) {
        match op {
            ModelOp::Write(offset, data) => {
                let end = *offset as usize + data.len();
                if contents.len() < end {
                    contents.resize(end, 0);
                }
                contents[*offset as usize..end].copy_from_slice(data);
            }
            ModelOp::Truncate(len) => contents.resize(*len as usize, 0),
        }
    }

    #[test]
    fn random_operations_match_a_copying_model() {
        for seed in 0..40 {
            let mut rng = rng::stream(seed, "workload");
            let mut disk = reliable(seed);
            disk.create("f").unwrap();
            let mut durable: Vec<u8> = Vec::new();
            let mut pending: Vec<ModelOp> = Vec::new();
            let mut tickets: Vec<(SyncTicket, usize)> = Vec::new();
            let mut synced_through = 0usize;
            let mut applied_ops = 0usize;
            for step in 0..400u32 {
                let len = disk.len("f").unwrap();
                let byte = step as u8;
                match rng::range_u64(&mut rng, 0, 10) {
                    0..=3 => {
                        let data = vec![byte; rng::range_u64(&mut rng, 1, 300) as usize];
                        assert_eq!(disk.append("f", &data), Ok(len));
                        pending.push(ModelOp::Write(len, data));
                    }
                    4 | 5 => {
                        let offset = rng::range_u64(&mut rng, 0, len + 50);
                        let data = vec![byte; rng::range_u64(&mut rng, 1, 300) as usize];
                        disk.write_at("f", offset, &data).unwrap();
                        pending.push(ModelOp::Write(offset, data));
                    }
                    6 => {
                        let new_len = rng::range_u64(&mut rng, 0, len + 50);
                        disk.truncate("f", new_len).unwrap();
                        pending.push(ModelOp::Truncate(new_len));
                    }
                    7 | 8 => tickets.push((disk.request_sync("f").unwrap(), applied_ops + pending.len())),
                    9 => {
                        // A crash keeps a prefix of the unsynced operations, voids every ticket.
                        let report = disk.crash();
                        let unsynced = &pending[synced_through - applied_ops..];
                        assert_eq!(report.files.len(), usize::from(!unsynced.is_empty()));
                        let surviving =
                            report.files.first().map_or(0, |file| file.surviving_operations as usize);
                        for op in &unsynced[..surviving] {
                            apply_model(&mut durable, op);
                        }
                        synced_through = applied_ops + pending.len();
                        tickets.clear();
                    }
                    _ => {
                        if !tickets.is_empty() {
                            let (ticket, covers) = tickets.remove(rng::index(&mut rng, tickets.len()));
                            disk.complete_sync(ticket).unwrap();
                            // Operations are made durable in order; an earlier ticket may find
                            // them already durable.
                            while synced_through < covers {
                                apply_model(&mut durable, &pending[synced_through - applied_ops]);
                                synced_through += 1;
                            }
                        }
                    }
                }
                let mut cached = durable.clone();
                for op in &pending[synced_through - applied_ops..] {
                    apply_model(&mut cached, op);
                }
                assert_eq!(read(&mut disk, "f"), cached, "seed {seed} step {step}: cached view");
                assert_eq!(disk.durable_contents("f").unwrap(), durable, "seed {seed} step {step}: medium");
                // Keep the model's queue short.
                let done = synced_through - applied_ops;
                pending.drain(..done);
                applied_ops = synced_through;
            }
        }
    }

    #[test]
    fn torn_writes_cut_at_a_sector_boundary() {
        let sector_bytes = 512;
        let options = DiskOptions { sector_bytes, torn_writes: true, ..DiskOptions::reliable() };
        let (mut prefixes_seen, mut holes_seen) = (0, 0);
        for seed in 0..300 {
            let mut disk = disk(options.clone(), seed);
            disk.create("log").unwrap();
            disk.append("log", &[0xaa; 4096]).unwrap();
            sync(&mut disk, "log").unwrap();
            let (start, len) = (100u64, 3000u64);
            disk.write_at("log", start, &vec![0xbb; len as usize]).unwrap();
            let report = disk.crash();
            let contents = disk.durable_contents("log").unwrap();
            assert_eq!(contents.len(), 4096);
            assert!(contents[..start as usize].iter().all(|&b| b == 0xaa));
            assert!(contents[(start + len) as usize..].iter().all(|&b| b == 0xaa));
            // Within the write: new bytes, then at most one run of old bytes, then new bytes.
            let new: Vec<bool> =
                contents[start as usize..(start + len) as usize].iter().map(|&b| b == 0xbb).collect();
            assert!(contents[start as usize..(start + len) as usize].iter().all(|&b| b == 0xaa || b == 0xbb));
            let written_len = new.iter().filter(|&&n| n).count() as u64;
            let hole_start = new.iter().position(|&n| !n).map(|i| start + i as u64);
            let hole_end = new.iter().rposition(|&n| !n).map(|i| start + i as u64 + 1);
            let torn = &report.files[0].torn;
            match (hole_start, hole_end) {
                (None, None) => assert_eq!(torn, &None, "seed {seed}: the whole write survived"),
                (Some(hole_start), Some(hole_end)) if written_len == 0 => {
                    assert_eq!((hole_start, hole_end), (start, start + len));
                    assert_eq!(torn, &None, "seed {seed}: nothing of the write survived");
                }
                (Some(hole_start), Some(hole_end)) => {
                    assert!(new[..(hole_start - start) as usize].iter().all(|&n| n), "seed {seed}: one hole");
                    assert!(new[(hole_start - start) as usize..(hole_end - start) as usize]
                        .iter()
                        .all(|&n| !n));
                    assert_eq!(hole_start % sector_bytes, 0, "seed {seed}: the hole starts inside a sector");
                    assert!(hole_end % sector_bytes == 0 || hole_end == start + len, "seed {seed}: hole end");
                    if hole_end == start + len {
                        prefixes_seen += 1;
                    } else {
                        holes_seen += 1;
                    }
                    let expected = TornWrite { offset: start, len, written_len };
                    assert_eq!(torn.as_ref(), Some(&expected));
                    assert_eq!(disk.damage().last().unwrap().kind, DamageKind::Torn { written_len });
                    assert_eq!(report.files[0].lost_bytes, len - written_len);
                }
                _ => unreachable!(),
            }
        }
        assert!(prefixes_seen > 15, "only {prefixes_seen} prefix tears in 300 crashes");
        assert!(holes_seen > 15, "only {holes_seen} out-of-order tears in 300 crashes");
    }

    #[test]
    fn a_write_within_one_sector_never_tears() {
        let options = DiskOptions { torn_writes: true, ..DiskOptions::reliable() };
        for seed in 0..100 {
            let mut disk = disk(options.clone(), seed);
            disk.create("log").unwrap();
            disk.write_at("log", 10, &[1; 4000]).unwrap();
            let report = disk.crash();
            assert_eq!(report.files[0].torn, None);
            assert!([0, 4010].contains(&disk.len("log").unwrap()));
        }
    }

    fn safety_only(options: DiskOptions) -> DiskOptions {
        DiskOptions { fault_mode: FaultMode::SafetyOnly, ..options }
    }

    #[test]
    fn a_misdirected_write_leaves_its_intended_range_old() {
        let sector_bytes = 512;
        let options =
            safety_only(DiskOptions { sector_bytes, misdirect_probability: 1.0, ..DiskOptions::reliable() });
        let mut disk = disk(options, 4);
        disk.create("log").unwrap();
        // A first write covering the whole file has nowhere else to go.
        disk.append("log", &[0x11; 8 * 512]).unwrap();
        sync(&mut disk, "log").unwrap();
        assert_eq!(disk.stats().misdirected_writes, 0);
        assert_eq!(disk.durable_contents("log").unwrap(), vec![0x11; 8 * 512]);
        let intended = 2 * 512 + 7;
        disk.write_at("log", intended, &[0x22; 600]).unwrap();
        sync(&mut disk, "log").unwrap();
        let damage = disk.damage().last().unwrap().clone();
        let DamageKind::Misdirected { intended_offset } = damage.kind else { panic!("{damage:?}") };
        assert_eq!((intended_offset, damage.len), (intended, 600));
        assert_eq!((damage.offset as i64 - intended as i64) % 512, 0, "shifted by whole sectors");
        let durable = disk.durable_contents("log").unwrap();
        assert!(
            durable[intended as usize..intended as usize + 600].iter().all(|&b| b == 0x11),
            "intended range old"
        );
        let landed = &durable[damage.offset as usize..(damage.offset + 600) as usize];
        assert!(landed.iter().all(|&b| b == 0x22), "the data landed elsewhere");
        assert_eq!(durable.iter().filter(|&&b| b == 0x22).count(), 600);
        let mut buf = vec![0; 600];
        disk.read_at("log", intended, &mut buf).unwrap();
        assert_eq!(buf, vec![0x22; 600], "the page cache stays correct until a crash");
        disk.crash();
        disk.read_at("log", intended, &mut buf).unwrap();
        assert_eq!(buf, vec![0x11; 600], "the crash reveals the damage");
    }

    #[test]
    fn a_misdirected_append_leaves_zeros_where_it_belonged() {
        let options = safety_only(DiskOptions {
            sector_bytes: 512,
            misdirect_probability: 1.0,
            ..DiskOptions::reliable()
        });
        let mut disk = disk(options, 5);
        disk.create("log").unwrap();
        disk.append("log", &[0x11; 4096]).unwrap();
        sync(&mut disk, "log").unwrap();
        disk.append("log", &[0x22; 512]).unwrap();
        sync(&mut disk, "log").unwrap();
        let durable = disk.durable_contents("log").unwrap();
        assert_eq!(durable.len(), 4608, "the file's length still grew");
        assert!(durable[4096..].iter().all(|&b| b == 0));
        assert_eq!(durable.iter().filter(|&&b| b == 0x22).count(), 512);
    }

    #[test]
    fn rot_flips_exactly_one_durable_bit() {
        let options = safety_only(DiskOptions::reliable());
        for seed in 0..50 {
            let mut disk = disk(options.clone(), seed);
            assert_eq!(disk.rot(), None, "nothing durable to rot");
            for (path, byte) in [("a", 0x0f), ("b", 0xf0)] {
                disk.create(path).unwrap();
                disk.append(path, &vec![byte; 1000]).unwrap();
                sync(&mut disk, path).unwrap();
            }
            let damage = disk.rot().expect("something to rot");
            let DamageKind::BitRot { bit } = damage.kind else { panic!() };
            let mut flips = 0;
            for path in ["a", "b"] {
                let before = if path == "a" { 0x0f } else { 0xf0 };
                let durable = disk.durable_contents(path).unwrap();
                let cached = read(&mut disk, path);
                assert_eq!(durable, cached, "the medium's damage shows through the cache");
                for (offset, byte) in durable.iter().enumerate() {
                    let diff = byte ^ before;
                    if diff != 0 {
                        flips += diff.count_ones();
                        assert_eq!(
                            (path, offset as u64, diff),
                            (damage.path.as_str(), damage.offset, 1 << bit)
                        );
                    }
                }
            }
            assert_eq!(flips, 1);
        }
    }

    #[test]
    fn rot_under_a_pending_write_stays_out_of_the_cache() {
        let mut disk = disk(safety_only(DiskOptions::reliable()), 9);
        disk.create("a").unwrap();
        disk.append("a", &[7]).unwrap();
        sync(&mut disk, "a").unwrap();
        disk.write_at("a", 0, &[9]).unwrap();
        let damage = disk.rot().unwrap();
        assert_eq!(damage.offset, 0);
        assert_ne!(disk.durable_contents("a").unwrap(), [7]);
        assert_eq!(read(&mut disk, "a"), [9]);
    }

    #[test]
    fn a_latent_sector_error_fails_reads_until_overwritten() {
        let options = safety_only(DiskOptions { sector_bytes: 512, ..DiskOptions::reliable() });
        let mut disk = disk(options, 2);
        disk.create("log").unwrap();
        disk.append("log", &[3; 2048]).unwrap();
        sync(&mut disk, "log").unwrap();
        let damage = disk.add_latent_sector_error().unwrap();
        assert_eq!(damage.kind, DamageKind::LatentSectorError);
        assert_eq!((damage.offset % 512, damage.len), (0, 512));
        let bad = damage.offset;
        let mut buf = [0u8; 10];
        assert_eq!(disk.read_at("log", bad + 500, &mut buf), Err(StorageError::Io));
        assert_eq!(disk.read_at("log", bad + 500, &mut buf), Err(StorageError::Io), "not transient");
        let good = if bad == 0 { 512 } else { 0 };
        assert_eq!(disk.read_at("log", good, &mut buf), Ok(()));
        assert_eq!(disk.read_all("log"), Err(StorageError::Io));
        // An unsynced overwrite clears it in the cache; a crash brings it back.
        disk.write_at("log", bad, &[4; 512]).unwrap();
        assert_eq!(disk.read_at("log", bad, &mut buf), Ok(()));
        let report = disk.crash();
        if report.files[0].surviving_operations == 0 {
            assert_eq!(
                disk.read_at("log", bad, &mut buf),
                Err(StorageError::Io),
                "the medium was never rewritten"
            );
        }
        disk.write_at("log", bad, &[5; 512]).unwrap();
        sync(&mut disk, "log").unwrap();
        disk.crash();
        disk.read_at("log", bad, &mut buf).unwrap();
        assert_eq!(buf, [5; 10]);
        assert!(disk.read_all("log").is_ok());
    }

    #[test]
    fn a_failed_sync_drops_its_operations_without_making_them_durable() {
        let options = DiskOptions { sync_error_probability: 1.0, ..DiskOptions::reliable() };
        let mut disk = disk(options, 1);
        disk.create("log").unwrap();
        disk.append("log", b"acked?").unwrap();
        let ticket = disk.request_sync("log").unwrap();
        disk.append("log", b"later").unwrap();
        assert_eq!(disk.complete_sync(ticket), Err(StorageError::Io));
        assert_eq!(read(&mut disk, "log"), b"acked?later", "the page cache still shows it");
        assert_eq!(disk.durable_contents("log").unwrap(), b"");
        assert_eq!(disk.pending_bytes(), 5, "only the ticket's operations were dropped");
        disk.crash();
        assert!(!read(&mut disk, "log").starts_with(b"acked?"), "a crash loses what the failed sync dropped");
        assert_eq!(disk.stats().sync_errors, 1);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let options = DiskOptions { write_error_probability: 1.0, ..DiskOptions::reliable() };
        let mut disk = disk(options, 1);
        disk.create("log").unwrap();
        assert_eq!(disk.append("log", b"x"), Err(StorageError::Io));
        assert_eq!(disk.write_at("log", 5, b"x"), Err(StorageError::Io));
        assert_eq!(disk.len("log"), Ok(0));
        assert_eq!((disk.pending_bytes(), disk.used_bytes(), disk.stats().write_errors), (0, 0, 2));
    }

    #[test]
    fn transient_read_errors_come_and_go() {
        let options = DiskOptions { read_error_probability: 0.5, ..DiskOptions::reliable() };
        let mut disk = disk(options, 1);
        disk.create("log").unwrap();
        disk.append("log", b"data").unwrap();
        let outcomes: Vec<bool> = (0..100).map(|_| disk.read_all("log").is_ok()).collect();
        assert!(outcomes.iter().any(|ok| *ok) && outcomes.iter().any(|ok| !*ok));
    }

    #[test]
    fn a_full_disk_refuses_writes_and_changes_nothing() {
        let options = DiskOptions { capacity_bytes: Some(1000), ..DiskOptions::reliable() };
        let mut disk = disk(options, 1);
        disk.create("a").unwrap();
        disk.create("b").unwrap();
        disk.append("a", &[1; 900]).unwrap();
        assert_eq!(disk.append("b", &[2; 101]), Err(StorageError::NoSpace));
        assert_eq!(disk.write_at("a", 950, &[2; 51]), Err(StorageError::NoSpace));
        assert_eq!(disk.truncate("b", 101), Err(StorageError::NoSpace));
        assert_eq!((disk.len("a"), disk.len("b")), (Ok(900), Ok(0)));
        assert_eq!(disk.pending_bytes(), 900);
        disk.write_at("a", 0, &[3; 900]).unwrap();
        disk.append("b", &[2; 100]).unwrap();
        assert_eq!(disk.used_bytes(), 1000);
        disk.remove("a").unwrap();
        disk.append("b", &[2; 900]).unwrap();
        assert_eq!(disk.stats().no_space_errors, 3);
    }

    /// Three replicas' disks holding the same files, in liveness mode with one atlas.
    fn replicas(count: usize, options: &DiskOptions, seed: u64) -> Vec<SimDisk> {
        let atlas = FaultAtlas::with_zone_bytes(count, seed, 16 << 10);
        (0..count)
            .map(|node| {
                let mut disk = SimDisk::new(options.clone(), rng::stream(seed, &format!("disk/n{node}")));
                disk.set_atlas(node, atlas.clone());
                for (file, path) in ["p0/0.log", "p0/0.index", "p1/0.log"].iter().enumerate() {
                    disk.create(path).unwrap();
                    disk.append(path, &vec![file as u8; 100_000]).unwrap();
                    sync(&mut disk, path).unwrap();
                }
                disk
            })
            .collect()
    }

    fn damaged_zones(disk: &SimDisk, zone_bytes: u64) -> BTreeSet<(String, u64)> {
        let mut zones = BTreeSet::new();
        for damage in disk.damage() {
            let mut ranges = vec![(damage.offset, damage.len)];
            if let DamageKind::Misdirected { intended_offset } = damage.kind {
                ranges.push((intended_offset, damage.len));
            }
            for (offset, len) in ranges {
                for zone in offset / zone_bytes..=(offset + len - 1) / zone_bytes {
                    zones.insert((damage.path.clone(), zone));
                }
            }
        }
        zones
    }

    #[test]
    fn the_atlas_keeps_a_good_copy_of_every_zone() {
        let options =
            DiskOptions { sector_bytes: 512, misdirect_probability: 0.3, ..DiskOptions::reliable() };
        for seed in 0..5 {
            let mut disks = replicas(3, &options, seed);
            for round in 0..300u32 {
                for disk in &mut disks {
                    disk.rot();
                    disk.add_latent_sector_error();
                    let offset = u64::from(round) * 311 % 90_000;
                    disk.write_at("p0/0.log", offset, &[9; 700]).unwrap();
                    sync(disk, "p0/0.log").unwrap();
                }
            }
            let sets: Vec<_> = disks.iter().map(|disk| damaged_zones(disk, 16 << 10)).collect();
            assert!(sets.iter().all(|set| set.len() > 3), "seed {seed}: the test must inject damage");
            assert!(disks.iter().all(|disk| disk.stats().misdirected_writes > 0));
            for zone in &sets[0] {
                assert!(
                    !(sets[1].contains(zone) && sets[2].contains(zone)),
                    "seed {seed}: {zone:?} damaged everywhere"
                );
            }
        }
    }

    #[test]
    fn liveness_with_one_replica_or_no_atlas_damages_nothing() {
        let options = DiskOptions { misdirect_probability: 1.0, ..DiskOptions::reliable() };
        let mut alone = replicas(1, &options, 7).pop().unwrap();
        let mut no_atlas = disk(options.clone(), 7);
        no_atlas.create("f").unwrap();
        no_atlas.append("f", &[1; 50_000]).unwrap();
        sync(&mut no_atlas, "f").unwrap();
        for disk in [&mut alone, &mut no_atlas] {
            for _ in 0..200 {
                assert_eq!(disk.rot(), None);
                assert_eq!(disk.add_latent_sector_error(), None);
            }
            let path = disk.list("").unwrap()[0].clone();
            disk.write_at(&path, 0, &[2; 100]).unwrap();
            sync(disk, &path).unwrap();
            assert!(disk.damage().is_empty());
            assert_eq!(disk.stats().misdirected_writes, 0);
        }
    }

    #[test]
    fn the_atlas_protects_exactly_one_replica_per_zone() {
        let atlas = FaultAtlas::new(3, &mut rng::stream(1, "faults"));
        let mut protected_counts = [0u32; 3];
        for zone in 0..3_000 {
            let protected = atlas.protected_replica("p/0.log", zone);
            protected_counts[protected] += 1;
            let offset = zone * atlas.zone_bytes;
            let allowed: Vec<usize> = (0..3).filter(|&r| atlas.allows(r, "p/0.log", offset, 1)).collect();
            assert_eq!(allowed.len(), 2);
            assert!(!allowed.contains(&protected));
        }
        assert!(protected_counts.iter().all(|&count| count > 800), "{protected_counts:?}");
        assert_eq!(atlas, FaultAtlas::new(3, &mut rng::stream(1, "faults")));
    }

    /// A busy scripted life of one disk with every fault on; everything observable, as text.
    fn scripted_run(seed: u64) -> String {
        let options = DiskOptions {
            sector_bytes: 512,
            torn_writes: true,
            misdirect_probability: 0.05,
            write_error_probability: 0.05,
            sync_error_probability: 0.05,
            read_error_probability: 0.05,
            ..safety_only(DiskOptions::reliable())
        };
        let mut disk = disk(options, seed);
        let mut workload = rng::stream(seed, "workload");
        let mut log = String::new();
        for path in ["a", "b", "c"] {
            disk.create(path).unwrap();
        }
        for step in 0..2_000u32 {
            let path = ["a", "b", "c"][rng::index(&mut workload, 3)];
            let outcome = match rng::range_u64(&mut workload, 0, 20) {
                0..=9 => format!("{:?}", disk.append(path, &vec![step as u8; 1 + step as usize % 1500])),
                10..=13 => format!("{:?}", sync(&mut disk, path)),
                14..=16 => format!("{:?}", disk.read_all(path).map(|bytes| bytes.len())),
                17 => format!("{:?}", disk.rot()),
                18 => format!("{:?}", disk.add_latent_sector_error()),
                19 => format!("{:?}", disk.sync_latency_ns()),
                _ => format!("{:?}", disk.crash()),
            };
            log += &outcome;
        }
        for path in ["a", "b", "c"] {
            log += &format!("{:?}", disk.durable_contents(path));
        }
        log + &format!("{:?}{:?}", disk.damage(), disk.stats())
    }

    #[test]
    fn same_seed_same_disk() {
        assert_eq!(scripted_run(1), scripted_run(1));
        assert_ne!(scripted_run(1), scripted_run(2));
    }

    #[test]
    fn generated_options_are_valid() {
        for seed in 0..200 {
            let options = DiskOptions::generate(&mut rng::stream(seed, "options"));
            options.validate();
            let text = serde_json::to_string(&options).unwrap();
            assert_eq!(serde_json::from_str::<DiskOptions>(&text).unwrap(), options);
        }
    }

    /// Throughput of the log's hot path: 16 KiB appends to rolling segments, a sync every 4.
    /// `cargo test -p seedlog-sim --lib --release disk::tests::append_throughput -- --ignored --nocapture`
    /// A measurement, not a check of behaviour: it reads the real clock, so it is never run by default.
    #[test]
    #[ignore]
    fn append_throughput() {
        let batch = vec![0x5a; 16 << 10];
        let segment_bytes = 64u64 << 20;
        let total_bytes = 4u64 << 30;
        let mut disk = reliable(1);
        let started = std::time::Instant::now();
        let mut segment = 0;
        let mut path = format!("p0/{segment:020}.log");
        disk.create(&path).unwrap();
        let mut written = 0;
        let mut appends = 0u64;
        while written < total_bytes {
            let offset = disk.append(&path, &batch).unwrap();
            written += batch.len() as u64;
            appends += 1;
            if appends.is_multiple_of(4) {
                sync(&mut disk, &path).unwrap();
            }
            if offset + batch.len() as u64 >= segment_bytes {
                sync(&mut disk, &path).unwrap();
                if segment >= 2 {
                    disk.remove(&format!("p0/{:020}.log", segment - 2)).unwrap();
                }
                segment += 1;
                path = format!("p0/{segment:020}.log");
                disk.create(&path).unwrap();
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "appended {} MiB in {seconds:.3}s: {:.2} GB/s",
            written >> 20,
            written as f64 / seconds / 1e9
        );
    }
}
