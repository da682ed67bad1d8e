//! The driver on a turmoil host (feature `turmoil`, tests only): turmoil's simulated TCP for
//! [`Network`], turmoil's simulated files (`turmoil::fs`, feature `unstable-fs`) for
//! [`FileSystem`], the host's virtual wall clock, and a seeded rng. With them the production
//! driver — framing, pipelining, peer links and their reconnects, group commit — runs unchanged
//! on turmoil's hosts, where the test crashes, bounces and partitions them.
//!
//! Fault model (turmoil's, checked by this module's tests):
//! - **Crash** (`Sim::crash`): the host's tasks stop; every file write, truncation, creation,
//!   removal and rename not yet made durable is lost. File contents are durable once a sync of
//!   the file returned; a directory entry once its directory was synced (`FileStorage` syncs the
//!   directory on every create, remove and rename). **Bounce** alone restarts the software and
//!   keeps everything (a process killed, the machine up).
//! - **Network**: a partition drops every segment between two hosts; a held link delays them.
//!   turmoil's TCP never retransmits, so a connection that lost a segment stalls forever without
//!   an error: the driver's keepalives and idle timeouts are what recover from it.
//!
//! Where turmoil's file model is not POSIX, and what this adapter does about it:
//! - Unsynced writes are kept by *path*, not by file: after a rename they are no longer part of
//!   the file (at once, not only after a crash), they show through a file renamed over them,
//!   and after a removal they come back into a new file created at the same path. So the adapter
//!   syncs a file's data before it renames or removes it, and syncs a rename's target too.
//! - A read overlays every unsynced write on the file, even one a later truncation cut off: a
//!   file shrunk and then extended shows its old bytes again instead of zeros. So the adapter
//!   syncs a file right after shrinking it.
//! - Both make some operations durable earlier than POSIX promises (a renamed file's contents, a
//!   truncation). The core's own discipline there (sync before rename; truncations that a crash
//!   may undo) is the simulator's to check (SimDisk models it), not this tier's. The storage
//!   contract suite (`tests/tests/storage_contract.rs`) runs on this adapter and found these.
//! - A handle names a path, not an inode: `HANDLES_FOLLOW_RENAMES` is false, so `FileStorage`
//!   reopens a renamed file.
//! - Paths are absolute; each host has its own file system.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use turmoil::fs::shim::std::fs as sim_fs;

use crate::driver::Platform;
use crate::fs::{EntryKind, FileHandle, FileSystem};
use crate::net::Network;

/// turmoil's simulated TCP. `reserve` only remembers the address: turmoil binds and listens in
/// one step, and until `listen` nothing is bound, so a connection is refused as by a broker that
/// is down.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilNetwork;

impl Network for TurmoilNetwork {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;
    type Reserved = String;

    async fn bind(&self, address: &str) -> io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(address).await
    }

    fn local_address(listener: &Self::Listener) -> io::Result<String> {
        listener.local_addr().map(|address| address.to_string())
    }

    async fn reserve(&self, address: &str) -> io::Result<String> {
        if address.ends_with(":0") {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "turmoil hosts need fixed client ports (a reserved port 0 cannot be resolved)",
            ));
        }
        Ok(address.to_string())
    }

    fn reserved_address(reserved: &String) -> io::Result<String> {
        Ok(reserved.clone())
    }

    async fn listen(reserved: String) -> io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(reserved.as_str()).await
    }

    async fn accept(listener: &mut Self::Listener) -> io::Result<(Self::Stream, String)> {
        let (stream, peer) = listener.accept().await?;
        Ok((stream, peer.to_string()))
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(address).await
    }
}

/// turmoil's per-host simulated file system (`turmoil::fs`). Must be used from a turmoil host.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilFileSystem;

/// turmoil reports most failures as `io::Error::other` with POSIX's words: give them their kind.
fn classify(error: io::Error) -> io::Error {
    if error.kind() != io::ErrorKind::Other {
        return error;
    }
    let text = error.to_string();
    let kind = if text.contains("No such file or directory") || text.contains("not found") {
        io::ErrorKind::NotFound
    } else if text.contains("exists") {
        io::ErrorKind::AlreadyExists
    } else if text.contains("No space left") {
        io::ErrorKind::StorageFull
    } else {
        return error;
    };
    io::Error::new(kind, text)
}

fn kind_of(file_type: sim_fs::FileType) -> EntryKind {
    if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else {
        EntryKind::Other
    }
}

impl TurmoilFileSystem {
    /// Moves the file's unsynced writes into its durable contents (see the module docs: turmoil
    /// keeps them by path, so a rename or removal would orphan them).
    fn settle(&self, path: &Path) -> io::Result<()> {
        let file = sim_fs::OpenOptions::new().read(true).write(true).open(path).map_err(classify)?;
        file.sync_data().map_err(classify)
    }
}

impl FileSystem for TurmoilFileSystem {
    type File = TurmoilFile;
    const SYNC_BLOCKS_THREAD: bool = false;
    const HANDLES_FOLLOW_RENAMES: bool = false;

    fn open(&self, path: &Path, create_new: bool) -> io::Result<TurmoilFile> {
        sim_fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create_new)
            .open(path)
            .map(TurmoilFile)
            .map_err(classify)
    }

    fn kind(&self, path: &Path) -> io::Result<EntryKind> {
        sim_fs::metadata(path).map(|metadata| kind_of(metadata.file_type())).map_err(classify)
    }

    fn link_kind(&self, path: &Path) -> io::Result<EntryKind> {
        sim_fs::symlink_metadata(path).map(|metadata| kind_of(metadata.file_type())).map_err(classify)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        sim_fs::create_dir(path).map_err(classify)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        sim_fs::create_dir_all(path).map_err(classify)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.settle(path)?;
        sim_fs::remove_file(path).map_err(classify)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.settle(from)?;
        if self.kind(to).is_ok_and(|kind| kind == EntryKind::File) {
            self.settle(to)?;
        }
        sim_fs::rename(from, to).map_err(classify)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, EntryKind)>> {
        let mut entries = Vec::new();
        for entry in sim_fs::read_dir(path).map_err(classify)? {
            let entry = entry.map_err(classify)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            entries.push((name, kind_of(entry.file_type().map_err(classify)?)));
        }
        // turmoil lists a directory in no particular order; `FileStorage::list` sorts anyway.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        sim_fs::sync_dir(path).map_err(classify)
    }
}

/// An open file on a turmoil host.
#[derive(Debug)]
pub struct TurmoilFile(sim_fs::File);

impl FileHandle for TurmoilFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.0.metadata().map(|metadata| metadata.len()).map_err(classify)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, offset).map_err(classify)
    }

    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, data, offset).map_err(classify)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let shrinks = len < self.len_bytes()?;
        self.0.set_len(len).map_err(classify)?;
        if shrinks {
            // See the module docs: otherwise a later extension shows the cut bytes again.
            self.0.sync_data().map_err(classify)?;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data().map_err(classify)
    }

    fn try_clone(&self) -> io::Result<TurmoilFile> {
        self.0.try_clone().map(TurmoilFile).map_err(classify)
    }
}

/// A turmoil host as the driver's [`Platform`], generic over its file system so that a test can
/// wrap turmoil's (to plant a bug, for one).
#[derive(Clone, Debug)]
pub struct TurmoilPlatform<F = TurmoilFileSystem> {
    /// Seeds the node's rng (the node's draws then replay with the simulation's seed). Give every
    /// start of a host its own: the node draws its incarnation id from it.
    pub rng_seed: u64,
    /// How long one fsync takes on this host's simulated disk.
    pub sync_delay: Duration,
    pub file_system: F,
}

impl<F> Platform for TurmoilPlatform<F>
where
    F: FileSystem + Clone + Sync,
{
    type Network = TurmoilNetwork;
    type FileSystem = F;

    fn network(&self) -> TurmoilNetwork {
        TurmoilNetwork
    }

    fn file_system(&self) -> F {
        self.file_system.clone()
    }

    /// The host's virtual wall clock (turmoil's epoch plus the simulated time).
    fn wall_clock_ms(&self) -> i64 {
        turmoil::since_epoch().map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.rng_seed)
    }

    fn sync_delay(&self) -> Duration {
        self.sync_delay
    }
}
