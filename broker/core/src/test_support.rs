//! Test support shared by the core's unit tests.

use std::collections::BTreeMap;

use crate::env::{Storage, StorageError};

/// Files in memory. `reads` counts `read_at` calls. `writes_before_failure = Some(n)` lets `n`
/// more writes (write_at, append) through and fails the one after with `Io`, having written half
/// its bytes, as a torn write would.
#[derive(Default)]
pub(crate) struct MemStorage {
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    pub(crate) reads: u64,
    pub(crate) writes_before_failure: Option<u32>,
    /// `Some(n)`: `n` more reads succeed, the one after fails with `Io` (then reads work again,
    /// unless `persistent_read_failure`: then every later read fails too).
    pub(crate) reads_before_failure: Option<u32>,
    pub(crate) persistent_read_failure: bool,
}

impl Storage for MemStorage {
    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        if self.files.contains_key(path) {
            return Err(StorageError::AlreadyExists);
        }
        self.files.insert(path.to_string(), Vec::new());
        Ok(())
    }

    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let fail = self.writes_before_failure == Some(0);
        self.writes_before_failure = self.writes_before_failure.and_then(|writes| writes.checked_sub(1));
        let file = self.files.get_mut(path).ok_or(StorageError::NotFound)?;
        let data = if fail { &data[..data.len() / 2] } else { data };
        let end = offset as usize + data.len();
        if file.len() < end {
            file.resize(end, 0);
        }
        file[offset as usize..end].copy_from_slice(data);
        if fail {
            return Err(StorageError::Io);
        }
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        let offset = self.len(path)?;
        self.write_at(path, offset, data)?;
        Ok(offset)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.reads += 1;
        let fail = self.reads_before_failure == Some(0);
        self.reads_before_failure = self.reads_before_failure.and_then(|reads| reads.checked_sub(1));
        if fail && self.persistent_read_failure {
            self.reads_before_failure = Some(0);
        }
        if fail {
            return Err(StorageError::Io);
        }
        let file = self.files.get(path).ok_or(StorageError::NotFound)?;
        let end = offset as usize + buf.len();
        if end > file.len() {
            return Err(StorageError::OutOfRange);
        }
        buf.copy_from_slice(&file[offset as usize..end]);
        Ok(())
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        self.files.get(path).map(|file| file.len() as u64).ok_or(StorageError::NotFound)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        self.files.get_mut(path).ok_or(StorageError::NotFound)?.resize(len as usize, 0);
        Ok(())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.files.keys().filter(|path| path.starts_with(prefix)).cloned().collect())
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.files.remove(path).map(|_| ()).ok_or(StorageError::NotFound)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let file = self.files.remove(from).ok_or(StorageError::NotFound)?;
        self.files.insert(to.to_string(), file);
        Ok(())
    }
}
