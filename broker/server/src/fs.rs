//! `FileStorage`: the core's [`Storage`] on real files under one data directory.
//!
//! Contract (the one every `Storage` keeps, see `seedlog_core::env`):
//! - Paths are `/`-separated and relative to the data directory. A path that is empty, absolute,
//!   or has an empty, `.` or `..` component is refused with [`StorageError::OutOfRange`]: no
//!   request can name anything outside the root.
//! - Reads and writes go through the page cache: a write is visible to the next read at once and
//!   is *not durable*. File contents become durable only through [`FileStorage::sync`] /
//!   [`FileStorage::sync_all`], which the driver calls when the core requests a sync as an effect.
//! - Directory operations are durable on return: `create` fsyncs the parent directory (and the
//!   parent of every directory it had to make), `remove` and `rename` fsync the directories they
//!   changed.
//! - Errors are mapped, never panicked on: `NotFound`, `AlreadyExists`, a full device (`ENOSPC`)
//!   is `NoSpace`, a short read is `OutOfRange`, anything else `Io`.
//!
//! Open handles are kept in a bounded cache (`handles_max`, least recently used closed first) so an
//! append does not reopen its segment; the cache also remembers each file's length, so an append
//! costs one `pwrite` and no `fstat`. That is only sound if this `FileStorage` is the one writer of
//! its data directory: it MUST own the directory exclusively (one broker process per directory).
//!
//! The files themselves are reached through a [`FileSystem`]: [`StdFileSystem`] (the operating
//! system's, what production runs) or, with the `turmoil` feature, turmoil's simulated one
//! (`crate::turmoil_host`), so that the same storage code runs on turmoil's hosts, whose crashes
//! drop what was not synced.
//!
//! [`FileStorage::sync`] is a synchronous call. The production driver runs syncs off the request
//! path instead: it takes a [`FileStorage::sync_handle`] when the core asks for a sync and hands it
//! to its sync thread, which batches them (group commit: one `fdatasync` per file covers every
//! request queued before it started).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use seedlog_core::env::{Storage, StorageError};

/// How many file handles [`FileStorage::new`] keeps open.
pub const HANDLES_MAX_DEFAULT: usize = 256;

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// A symbolic link (when not followed), a device, a socket...
    Other,
}

/// The file system under a [`FileStorage`]: the few calls it makes, so that a simulated one can
/// stand in for the operating system's.
///
/// Contract: paths are absolute or relative to the process's directory, as `std::fs` takes them;
/// errors are `io::Error`s whose kind says `NotFound`, `AlreadyExists` or `StorageFull` where
/// that is the cause. A write is visible to every handle at once; only `FileHandle::sync_data`
/// (file contents) and `sync_dir` (a directory's entries) make anything durable.
pub trait FileSystem: Send + 'static {
    type File: FileHandle;
    /// `true` when a sync blocks its thread (a real disk): the driver runs syncs on a thread of
    /// their own. `false` for a file system that lives on a simulation's thread and whose syncs
    /// return at once: the driver runs them on a task.
    const SYNC_BLOCKS_THREAD: bool;
    /// `true` when an open handle follows its file through a rename (POSIX: a handle is the
    /// inode). `false` when a handle names a path: [`FileStorage`] then reopens a renamed file.
    const HANDLES_FOLLOW_RENAMES: bool;

    /// Opens a regular file for reading and writing; with `create_new`, creates it and fails
    /// with `AlreadyExists` if something is there.
    fn open(&self, path: &Path, create_new: bool) -> io::Result<Self::File>;
    /// What `path` names, following symbolic links.
    fn kind(&self, path: &Path) -> io::Result<EntryKind>;
    /// What `path` names, not following a symbolic link at `path` itself.
    fn link_kind(&self, path: &Path) -> io::Result<EntryKind>;
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` and every missing ancestor (their entries are not made durable).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The names in a directory (names that are not UTF-8 are skipped) and what each is, links
    /// not followed.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, EntryKind)>>;
    /// Makes the directory's entries (creations, removals, renames in it) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// An open file of a [`FileSystem`].
pub trait FileHandle: Send + Sized + 'static {
    /// The file's length.
    fn len_bytes(&self) -> io::Result<u64>;
    /// Fails with `UnexpectedEof` when the file ends before `buf` is full.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: every write to the file that returned before this call is durable once this
    /// returns `Ok`.
    fn sync_data(&self) -> io::Result<()>;
    /// A second handle on the same file.
    fn try_clone(&self) -> io::Result<Self>;
}

/// The operating system's file system (`std::fs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFileSystem;

fn kind_of(file_type: fs::FileType) -> EntryKind {
    if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else {
        EntryKind::Other
    }
}

impl FileSystem for StdFileSystem {
    type File = File;
    const SYNC_BLOCKS_THREAD: bool = true;
    const HANDLES_FOLLOW_RENAMES: bool = true;

    fn open(&self, path: &Path, create_new: bool) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create_new(create_new).open(path)
    }

    fn kind(&self, path: &Path) -> io::Result<EntryKind> {
        fs::metadata(path).map(|metadata| kind_of(metadata.file_type()))
    }

    fn link_kind(&self, path: &Path) -> io::Result<EntryKind> {
        fs::symlink_metadata(path).map(|metadata| kind_of(metadata.file_type()))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, EntryKind)>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            // A name this storage could not have made.
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            entries.push((name, kind_of(entry.file_type()?)));
        }
        Ok(entries)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path).and_then(|handle| handle.sync_all())
    }
}

impl FileHandle for File {
    fn len_bytes(&self) -> io::Result<u64> {
        self.metadata().map(|metadata| metadata.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn try_clone(&self) -> io::Result<File> {
        File::try_clone(self)
    }
}

/// The core's storage on a file system (the real one unless said otherwise), rooted at a data
/// directory.
pub struct FileStorage<F: FileSystem = StdFileSystem> {
    file_system: F,
    root: PathBuf,
    /// Open handles by relative path, each with the file's length and when it was last used.
    handles: BTreeMap<String, OpenFile<F::File>>,
    handles_max: usize,
    /// A counter, not a clock: orders uses for least-recently-used eviction.
    use_sequence: u64,
}

struct OpenFile<H> {
    file: H,
    len_bytes: u64,
    last_use_sequence: u64,
}

impl FileStorage<StdFileSystem> {
    /// Opens (creating if missing) the data directory `root`, keeping up to
    /// [`HANDLES_MAX_DEFAULT`] files open.
    pub fn new(root: impl Into<PathBuf>) -> Result<FileStorage, StorageError> {
        FileStorage::with_handles_max(root, HANDLES_MAX_DEFAULT)
    }

    /// Like [`FileStorage::new`], keeping at most `handles_max` (at least one) files open.
    pub fn with_handles_max(
        root: impl Into<PathBuf>,
        handles_max: usize,
    ) -> Result<FileStorage, StorageError> {
        FileStorage::on(StdFileSystem, root, handles_max)
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// Opens (creating if missing) the data directory `root` on `file_system`, keeping at most
    /// `handles_max` (at least one) files open.
    pub fn on(
        file_system: F,
        root: impl Into<PathBuf>,
        handles_max: usize,
    ) -> Result<FileStorage<F>, StorageError> {
        let root = root.into();
        match file_system.kind(&root) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                file_system.create_dir_all(&root).map_err(map_io)?;
                // The new data directory's own entry is durable too (ancestors above it made by
                // `create_dir_all` are not: a data directory's parent is the operator's to
                // provide).
                if let Some(parent) = root.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                    file_system.sync_dir(parent).map_err(map_io)?;
                }
            }
            Err(error) => return Err(map_io(error)),
        }
        if file_system.kind(&root).map_err(map_io)? != EntryKind::Directory {
            return Err(StorageError::NotFound);
        }
        Ok(FileStorage {
            file_system,
            root,
            handles: BTreeMap::new(),
            handles_max: handles_max.max(1),
            use_sequence: 0,
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many file handles are open now (never more than `handles_max`).
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// Makes the file's contents durable (`fdatasync`): every write to it that returned before
    /// this call survives a crash once this returns `Ok`.
    ///
    /// A failed sync MUST NOT be retried as if the data could still be made safe: after a failed
    /// `fdatasync` Linux may already have dropped the dirty pages. The caller treats the bytes
    /// since the last successful sync as lost (never acknowledged).
    pub fn sync(&mut self, path: &str) -> Result<(), StorageError> {
        // fsync works on the inode, so a handle opened after an eviction still covers writes made
        // through the evicted one.
        let result = self.handle(path)?.file.sync_data();
        result.map_err(map_io)
    }

    /// A second handle on the file's inode, for a sync run elsewhere (the driver's sync thread).
    /// Syncing it covers every write made before the sync starts, through any handle, and it
    /// keeps covering the same file if the path is later renamed (as a simulated disk's sync
    /// ticket does).
    pub fn sync_handle(&mut self, path: &str) -> Result<F::File, StorageError> {
        let result = self.handle(path)?.file.try_clone();
        result.map_err(map_io)
    }

    /// Syncs every file in `paths` (each as [`FileStorage::sync`]); stops at the first failure.
    pub fn sync_all<I>(&mut self, paths: I) -> Result<(), StorageError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for path in paths {
            self.sync(path.as_ref())?;
        }
        Ok(())
    }

    /// The absolute path of a checked relative path.
    fn full_path(&self, path: &RelativePath<'_>) -> PathBuf {
        let mut full = self.root.clone();
        for component in path.components() {
            full.push(component);
        }
        full
    }

    /// The cached handle for `path`, opening the file if it is not cached.
    fn handle(&mut self, path: &str) -> Result<&mut OpenFile<F::File>, StorageError> {
        let checked = RelativePath::parse(path)?;
        self.use_sequence += 1;
        let use_sequence = self.use_sequence;
        if !self.handles.contains_key(path) {
            let full = self.full_path(&checked);
            if self.file_system.kind(&full).map_err(map_io)? != EntryKind::File {
                return Err(StorageError::NotFound);
            }
            let file = self.file_system.open(&full, false).map_err(map_io)?;
            let len_bytes = file.len_bytes().map_err(map_io)?;
            self.insert_handle(path, file, len_bytes);
        }
        let open = self.handles.get_mut(path).expect("inserted above or already cached");
        open.last_use_sequence = use_sequence;
        Ok(open)
    }

    fn insert_handle(&mut self, path: &str, file: F::File, len_bytes: u64) {
        while self.handles.len() >= self.handles_max {
            let oldest = self
                .handles
                .iter()
                .min_by_key(|(_, open)| open.last_use_sequence)
                .map(|(name, _)| name.clone())
                .expect("the cache is not empty: its length is at least handles_max >= 1");
            self.handles.remove(&oldest);
        }
        let last_use_sequence = self.use_sequence;
        self.handles.insert(path.to_owned(), OpenFile { file, len_bytes, last_use_sequence });
    }

    /// Writes through the cached handle. After a failed write the file's length is unknown (a
    /// `pwrite` may have written part), so the handle is dropped and the next use re-reads it.
    fn write_through(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let end = offset.checked_add(data.len() as u64).ok_or(StorageError::OutOfRange)?;
        let open = self.handle(path)?;
        // An empty write changes nothing, even past the end (as `pwrite` of nothing, and as
        // SimDisk): the cached length must not grow either.
        if data.is_empty() {
            return Ok(());
        }
        match open.file.write_all_at(data, offset) {
            Ok(()) => {
                open.len_bytes = open.len_bytes.max(end);
                Ok(())
            }
            Err(error) => {
                self.handles.remove(path);
                Err(map_io(error))
            }
        }
    }

    /// Makes every missing ancestor directory of `path`, fsyncing the parent of each one made so
    /// that the new directory entry is durable before anything is created inside it.
    fn make_parent_dirs(&self, path: &RelativePath<'_>) -> Result<(), StorageError> {
        let mut dir = self.root.clone();
        let components: Vec<&str> = path.components().collect();
        for component in &components[..components.len() - 1] {
            let parent = dir.clone();
            dir.push(component);
            match self.file_system.kind(&dir) {
                Ok(EntryKind::Directory) => continue,
                // A file stands where a directory is needed.
                Ok(_) => return Err(StorageError::Io),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(map_io(error)),
            }
            match self.file_system.create_dir(&dir) {
                Ok(()) => {}
                Err(error)
                    if error.kind() == io::ErrorKind::AlreadyExists
                        && self.file_system.kind(&dir).is_ok_and(|kind| kind == EntryKind::Directory) =>
                {
                    continue
                }
                Err(error) => return Err(map_io(error)),
            }
            self.sync_dir(&parent)?;
        }
        Ok(())
    }

    fn parent_dir(&self, path: &RelativePath<'_>) -> PathBuf {
        let full = self.full_path(path);
        full.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone())
    }

    /// Makes a directory's entries (creations, removals, renames in it) durable.
    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        self.file_system.sync_dir(dir).map_err(map_io)
    }

    /// Collects the regular files under `dir` (whose relative name is `dir_name`, empty or
    /// ending in `/`) whose relative path starts with `prefix`. Symbolic links are not followed.
    fn walk(
        &self,
        dir: &Path,
        dir_name: &str,
        prefix: &str,
        found: &mut Vec<String>,
    ) -> Result<(), StorageError> {
        for (name, kind) in self.file_system.read_dir(dir).map_err(map_io)? {
            let relative = format!("{dir_name}{name}");
            match kind {
                EntryKind::File => {
                    if relative.starts_with(prefix) {
                        found.push(relative);
                    }
                }
                EntryKind::Directory => {
                    let sub_name = format!("{relative}/");
                    // Descend only where a match is possible: inside the prefix or on the way.
                    if sub_name.starts_with(prefix) || prefix.starts_with(&sub_name) {
                        self.walk(&dir.join(&name), &sub_name, prefix, found)?;
                    }
                }
                EntryKind::Other => {}
            }
        }
        Ok(())
    }
}

impl<F: FileSystem> Storage for FileStorage<F> {
    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        let checked = RelativePath::parse(path)?;
        self.make_parent_dirs(&checked)?;
        let full = self.full_path(&checked);
        let file = self.file_system.open(&full, true).map_err(map_io)?;
        self.sync_dir(&self.parent_dir(&checked))?;
        self.use_sequence += 1;
        self.insert_handle(path, file, 0);
        Ok(())
    }

    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.write_through(path, offset, data)
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        let offset = self.handle(path)?.len_bytes;
        self.write_through(path, offset, data)?;
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let open = self.handle(path)?;
        let end = offset.checked_add(buf.len() as u64).ok_or(StorageError::OutOfRange)?;
        if end > open.len_bytes {
            return Err(StorageError::OutOfRange);
        }
        open.file.read_exact_at(buf, offset).map_err(map_io)
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        Ok(self.handle(path)?.len_bytes)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        let open = self.handle(path)?;
        match open.file.set_len(len) {
            Ok(()) => {
                open.len_bytes = len;
                Ok(())
            }
            Err(error) => {
                self.handles.remove(path);
                Err(map_io(error))
            }
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        // Walk from the deepest directory the prefix names in full; the rest of the prefix is a
        // partial name filtered on. `a/b` walks `a/` and keeps `a/b`, `a/bc/d`, ...
        let dir_part = match prefix.rfind('/') {
            Some(slash) => &prefix[..=slash],
            None => "",
        };
        let mut start = self.root.clone();
        if !dir_part.is_empty() {
            let checked = RelativePath::parse(&dir_part[..dir_part.len() - 1])?;
            start = self.full_path(&checked);
        }
        let mut found = Vec::new();
        match self.file_system.kind(&start) {
            Ok(EntryKind::Directory) => {}
            Ok(_) => return Ok(found),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(error) => return Err(map_io(error)),
        }
        self.walk(&start, dir_part, prefix, &mut found)?;
        found.sort();
        Ok(found)
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        let checked = RelativePath::parse(path)?;
        let full = self.full_path(&checked);
        match self.file_system.link_kind(&full) {
            Ok(EntryKind::File) => {}
            Ok(_) => return Err(StorageError::NotFound),
            Err(error) => return Err(map_io(error)),
        }
        self.handles.remove(path);
        self.file_system.remove_file(&full).map_err(map_io)?;
        self.sync_dir(&self.parent_dir(&checked))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let checked_from = RelativePath::parse(from)?;
        let checked_to = RelativePath::parse(to)?;
        let full_from = self.full_path(&checked_from);
        let full_to = self.full_path(&checked_to);
        match self.file_system.link_kind(&full_from) {
            Ok(EntryKind::File) => {}
            Ok(_) => return Err(StorageError::NotFound),
            Err(error) => return Err(map_io(error)),
        }
        if from == to {
            return Ok(());
        }
        self.make_parent_dirs(&checked_to)?;
        self.file_system.rename(&full_from, &full_to).map_err(map_io)?;
        // The open handle follows the inode to its new name (where handles do); the replaced
        // file's handle is stale.
        self.handles.remove(to);
        if let Some(open) = self.handles.remove(from) {
            if F::HANDLES_FOLLOW_RENAMES {
                self.handles.insert(to.to_owned(), open);
            }
        }
        let dir_from = self.parent_dir(&checked_from);
        let dir_to = self.parent_dir(&checked_to);
        self.sync_dir(&dir_to)?;
        if dir_from != dir_to {
            self.sync_dir(&dir_from)?;
        }
        Ok(())
    }

    fn exists(&mut self, path: &str) -> bool {
        if self.handles.contains_key(path) {
            return true;
        }
        match RelativePath::parse(path) {
            Ok(checked) => {
                self.file_system.kind(&self.full_path(&checked)).is_ok_and(|kind| kind == EntryKind::File)
            }
            Err(_) => false,
        }
    }
}

impl<F: FileSystem> fmt::Debug for FileStorage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("root", &self.root)
            .field("open_handles", &self.handles.len())
            .field("handles_max", &self.handles_max)
            .finish()
    }
}

/// A path checked to stay inside the root: relative, non-empty, no empty, `.` or `..` component.
struct RelativePath<'a>(&'a str);

impl<'a> RelativePath<'a> {
    fn parse(path: &'a str) -> Result<RelativePath<'a>, StorageError> {
        if path.is_empty() || path.contains('\0') {
            return Err(StorageError::OutOfRange);
        }
        for component in path.split('/') {
            if component.is_empty() || component == "." || component == ".." {
                return Err(StorageError::OutOfRange);
            }
        }
        Ok(RelativePath(path))
    }

    fn components(&self) -> impl Iterator<Item = &'a str> {
        self.0.split('/')
    }
}

/// Linux's `ENOSPC`, `ENOTDIR`, `EISDIR` (the same numbers on the BSDs and macOS).
const ENOSPC: i32 = 28;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;

/// What an `io::Error` means to the core.
fn map_io(error: io::Error) -> StorageError {
    match (error.kind(), error.raw_os_error()) {
        (_, Some(ENOSPC)) | (io::ErrorKind::StorageFull, _) => StorageError::NoSpace,
        (io::ErrorKind::NotFound, _) => StorageError::NotFound,
        // A path through a file, or a directory where a file was named: no such file.
        (_, Some(ENOTDIR | EISDIR)) => StorageError::NotFound,
        (io::ErrorKind::AlreadyExists, _) => StorageError::AlreadyExists,
        (io::ErrorKind::UnexpectedEof, _) => StorageError::OutOfRange,
        _ => StorageError::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, FileStorage) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = FileStorage::new(dir.path().join("data")).expect("open storage");
        (dir, storage)
    }

    #[test]
    fn paths_that_would_leave_the_root_are_refused() {
        let (dir, mut storage) = storage();
        for path in ["", "/etc/passwd", "..", "../x", "a/../../x", "a//b", "a/", "./a", "a/./b", "a\0b"] {
            assert_eq!(storage.create(path), Err(StorageError::OutOfRange), "create {path:?}");
            assert_eq!(storage.append(path, b"x"), Err(StorageError::OutOfRange), "append {path:?}");
            assert_eq!(storage.len(path), Err(StorageError::OutOfRange), "len {path:?}");
            assert_eq!(storage.remove(path), Err(StorageError::OutOfRange), "remove {path:?}");
            assert!(!storage.exists(path), "exists {path:?}");
        }
        assert_eq!(storage.rename("a", "../escaped"), Err(StorageError::OutOfRange));
        assert_eq!(storage.list("../"), Err(StorageError::OutOfRange));
        assert!(!dir.path().join("escaped").exists());
        // Nothing was created beside the data directory.
        let beside: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("data")]);
    }

    #[test]
    fn io_errors_map_to_storage_errors() {
        let cases = [
            (io::Error::from_raw_os_error(ENOSPC), StorageError::NoSpace),
            (io::Error::from(io::ErrorKind::StorageFull), StorageError::NoSpace),
            (io::Error::from(io::ErrorKind::NotFound), StorageError::NotFound),
            (io::Error::from_raw_os_error(ENOTDIR), StorageError::NotFound),
            (io::Error::from(io::ErrorKind::AlreadyExists), StorageError::AlreadyExists),
            (io::Error::from(io::ErrorKind::UnexpectedEof), StorageError::OutOfRange),
            (io::Error::from(io::ErrorKind::PermissionDenied), StorageError::Io),
            (io::Error::from_raw_os_error(5), StorageError::Io), // EIO
        ];
        for (error, expected) in cases {
            let shown = error.to_string();
            assert_eq!(map_io(error), expected, "{shown}");
        }
    }

    #[test]
    fn the_handle_cache_stays_bounded_and_evicted_files_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FileStorage::with_handles_max(dir.path(), 2).unwrap();
        let names = ["a", "b/c", "d", "e/f/g"];
        for (round, byte) in [b'1', b'2', b'3'].into_iter().enumerate() {
            for name in names {
                if round == 0 {
                    storage.create(name).unwrap();
                }
                assert_eq!(storage.append(name, &[byte]).unwrap(), round as u64);
                assert!(storage.open_handles() <= 2);
            }
        }
        for name in names {
            assert_eq!(storage.read_all(name).unwrap(), b"123");
            storage.sync(name).unwrap();
        }
        assert_eq!(storage.open_handles(), 2);
    }

    #[test]
    fn the_least_recently_used_handle_is_closed_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FileStorage::with_handles_max(dir.path(), 2).unwrap();
        storage.create("a").unwrap();
        storage.create("b").unwrap();
        storage.len("a").unwrap(); // `b` is now the oldest use.
        storage.create("c").unwrap();
        assert!(storage.handles.contains_key("a"));
        assert!(!storage.handles.contains_key("b"));
        assert!(storage.handles.contains_key("c"));
    }

    #[test]
    fn a_renamed_file_keeps_its_open_handle_and_the_replaced_one_is_dropped() {
        let (_dir, mut storage) = storage();
        storage.create("old").unwrap();
        storage.append("old", b"new bytes").unwrap();
        storage.create("target").unwrap();
        storage.append("target", b"stale").unwrap();
        storage.rename("old", "target").unwrap();
        assert_eq!(storage.append("target", b"!").unwrap(), 9);
        assert_eq!(storage.read_all("target").unwrap(), b"new bytes!");
        assert!(!storage.exists("old"));
        assert_eq!(storage.len("old"), Err(StorageError::NotFound));
        assert_eq!(fs::read(storage.root().join("target")).unwrap(), b"new bytes!");
    }

    #[test]
    fn rename_into_a_new_directory_makes_it() {
        let (_dir, mut storage) = storage();
        storage.create("a").unwrap();
        storage.rename("a", "x/y/z").unwrap();
        assert_eq!(storage.list("").unwrap(), vec!["x/y/z".to_owned()]);
        assert_eq!(storage.rename("missing", "b"), Err(StorageError::NotFound));
    }

    #[test]
    fn directories_are_not_files() {
        let (_dir, mut storage) = storage();
        storage.create("topic-0/00000000000000000000.log").unwrap();
        assert!(!storage.exists("topic-0"));
        assert_eq!(storage.len("topic-0"), Err(StorageError::NotFound));
        assert_eq!(storage.remove("topic-0"), Err(StorageError::NotFound));
        assert_eq!(storage.rename("topic-0", "other"), Err(StorageError::NotFound));
        // A path through a file names nothing.
        assert_eq!(storage.len("topic-0/00000000000000000000.log/x"), Err(StorageError::NotFound));
    }

    #[test]
    fn list_descends_only_where_the_prefix_can_match_and_skips_links() {
        let (_dir, mut storage) = storage();
        for path in ["t-0/a.log", "t-0/sub/b.log", "t-1/a.log", "t-10/a.log", "u/a.log"] {
            storage.create(path).unwrap();
        }
        std::os::unix::fs::symlink(storage.root().join("u"), storage.root().join("t-link")).unwrap();
        assert_eq!(storage.list("t-1").unwrap(), vec!["t-1/a.log", "t-10/a.log"]);
        assert_eq!(storage.list("t-0/").unwrap(), vec!["t-0/a.log", "t-0/sub/b.log"]);
        assert_eq!(storage.list("t-0/s").unwrap(), vec!["t-0/sub/b.log"]);
        assert_eq!(storage.list("t-0/sub/b.log").unwrap(), vec!["t-0/sub/b.log"]);
        assert_eq!(storage.list("nothing/here/").unwrap(), Vec::<String>::new());
        assert_eq!(storage.list("t-0/a.log/").unwrap(), Vec::<String>::new());
        assert_eq!(storage.list("").unwrap().len(), 5);
    }

    #[test]
    fn a_short_read_after_an_outside_truncation_is_out_of_range_not_a_panic() {
        let (_dir, mut storage) = storage();
        storage.create("f").unwrap();
        storage.append("f", &[7; 100]).unwrap();
        // Breaks the exclusive-ownership rule on purpose: the cached length is now stale.
        OpenOptions::new().write(true).open(storage.root().join("f")).unwrap().set_len(10).unwrap();
        let mut buf = [0; 50];
        assert_eq!(storage.read_at("f", 0, &mut buf), Err(StorageError::OutOfRange));
    }

    #[test]
    fn synced_bytes_are_there_for_a_new_storage_on_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FileStorage::new(dir.path()).unwrap();
        storage.create("p/segment").unwrap();
        storage.append("p/segment", b"durable").unwrap();
        storage.sync_all(["p/segment"]).unwrap();
        assert_eq!(storage.sync("p/missing"), Err(StorageError::NotFound));
        drop(storage);
        let mut reopened = FileStorage::new(dir.path()).unwrap();
        assert_eq!(reopened.read_all("p/segment").unwrap(), b"durable");
        assert_eq!(reopened.append("p/segment", b"!").unwrap(), 7);
    }

    #[test]
    fn a_root_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        assert!(FileStorage::new(&file).is_err());
    }
}
