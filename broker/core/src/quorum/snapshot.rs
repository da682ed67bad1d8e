//! Snapshot files: `metadata/snapshots/{end_offset:020}-{epoch:010}.checkpoint`.
//!
//! Format (big-endian): magic `SLSNAP01` (8 bytes), end_offset i64, epoch i32, body size u64,
//! CRC32C u32 over the header fields and the body, then the body (the application's bytes). A file
//! is valid only if its header agrees with its name, its size with the header, and its CRC. It is
//! written to `{name}.tmp`, synced, then renamed: a name without `.tmp` is always a whole file.
//! The same bytes travel in FetchSnapshot chunks, so a fetched snapshot is validated exactly as a
//! stored one.

use super::{Committed, Download, QuorumError, Role, SnapshotId, SyncPurpose};
use crate::env::{Env, StorageError};

pub(super) const SNAPSHOT_DIR: &str = "metadata/snapshots/";
const SUFFIX: &str = ".checkpoint";
pub(super) const TEMP_SUFFIX: &str = ".tmp";
const MAGIC: &[u8; 8] = b"SLSNAP01";
pub(super) const HEADER_BYTES: usize = 8 + 8 + 4 + 8 + 4;
/// The largest snapshot this node accepts (from its disk or from a leader): a bound on memory.
pub(super) const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

pub(super) fn path(id: SnapshotId) -> String {
    format!("{SNAPSHOT_DIR}{:020}-{:010}{SUFFIX}", id.end_offset, id.epoch)
}

pub(super) fn temp_path(id: SnapshotId) -> String {
    format!("{}{TEMP_SUFFIX}", path(id))
}

/// `metadata/snapshots/00000000000000000042-0000000003.checkpoint` → (42, 3).
pub(super) fn parse_path(path: &str) -> Option<SnapshotId> {
    let name = path.strip_prefix(SNAPSHOT_DIR)?.strip_suffix(SUFFIX)?;
    let (end, epoch) = name.split_once('-')?;
    if end.len() != 20 || epoch.len() != 10 {
        return None;
    }
    if !end.bytes().chain(epoch.bytes()).all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let id = SnapshotId { end_offset: end.parse().ok()?, epoch: epoch.parse().ok()? };
    (id.end_offset > 0).then_some(id)
}

pub(super) fn encode(id: SnapshotId, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&id.end_offset.to_be_bytes());
    bytes.extend_from_slice(&id.epoch.to_be_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_be_bytes());
    let mut crc = crc32c::crc32c(&bytes[8..]);
    crc = crc32c::crc32c_append(crc, body);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Checks a whole file's bytes against the id its name (or the leader) gave; returns the body.
pub(super) fn decode(id: SnapshotId, bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes: shorter than the header", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic".to_string());
    }
    let end_offset = i64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let epoch = i32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let size = u64::from_be_bytes(bytes[20..28].try_into().expect("8 bytes"));
    let stored = u32::from_be_bytes(bytes[28..32].try_into().expect("4 bytes"));
    if (SnapshotId { end_offset, epoch }) != id {
        return Err(format!("the header says ({end_offset}, {epoch}), expected {id:?}"));
    }
    let body = &bytes[HEADER_BYTES..];
    if size != body.len() as u64 {
        return Err(format!("the header says {size} body bytes, the file holds {}", body.len()));
    }
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[8..28]), body);
    if computed != stored {
        return Err(format!("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"));
    }
    Ok(body)
}

/// Finds the newest valid snapshot: removes temporary files, invalid snapshots and older ones.
/// Returns its id and body.
pub(super) fn open_latest(
    env: &mut Env<'_>,
    actions: &mut Vec<String>,
) -> Result<Option<(SnapshotId, Vec<u8>)>, QuorumError> {
    let paths = env
        .storage
        .list(SNAPSHOT_DIR)
        .map_err(|error| QuorumError::Unrecoverable(format!("cannot list {SNAPSHOT_DIR}: {error}")))?;
    let mut ids = Vec::new();
    for path in paths {
        if path.ends_with(TEMP_SUFFIX) {
            remove(env, &path)?;
            actions.push(format!("removed the unfinished snapshot {path}"));
        } else if let Some(id) = parse_path(&path) {
            ids.push(id);
        } else {
            actions.push(format!("ignored {path}: not a snapshot"));
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut chosen: Option<(SnapshotId, Vec<u8>)> = None;
    for id in ids {
        if chosen.is_some() {
            remove(env, &path(id))?;
            actions.push(format!("removed snapshot {id:?}: a newer one is valid"));
            continue;
        }
        let bytes = match env.storage.len(&path(id)) {
            Ok(size) if size > SNAPSHOT_BYTES_MAX + HEADER_BYTES as u64 => {
                Err(format!("{size} bytes is too large"))
            }
            Ok(_) => match env.storage.read_all(&path(id)) {
                Ok(bytes) => Ok(bytes),
                // An I/O error says nothing about the snapshot's contents (it may be transient):
                // removing the file could lose the only copy of what the log no longer holds.
                // Fail the open instead; the next start reads it again.
                Err(error) => {
                    return Err(QuorumError::Unrecoverable(format!(
                        "snapshot {id:?} cannot be read now: {error}"
                    )))
                }
            },
            Err(StorageError::NotFound) => Err("gone".to_string()),
            Err(error) => {
                return Err(QuorumError::Unrecoverable(format!(
                    "snapshot {id:?} cannot be read now: {error}"
                )))
            }
        };
        match bytes.and_then(|bytes| decode(id, &bytes).map(<[u8]>::to_vec)) {
            Ok(body) => {
                actions.push(format!("using snapshot {id:?} ({} bytes)", body.len()));
                chosen = Some((id, body));
            }
            Err(reason) => {
                remove(env, &path(id))?;
                actions.push(format!("removed snapshot {id:?}: {reason}"));
            }
        }
    }
    Ok(chosen)
}

fn remove(env: &mut Env<'_>, path: &str) -> Result<(), QuorumError> {
    match env.storage.remove(path) {
        Ok(()) | Err(StorageError::NotFound) => Ok(()),
        Err(error) => Err(QuorumError::Unrecoverable(format!("cannot remove {path}: {error}"))),
    }
}

impl super::Quorum {
    /// `take_snapshot`: a snapshot of committed state, taken by the application on any node.
    pub(super) fn snapshot_local(&mut self, env: &mut Env<'_>, end_offset: i64, body: &[u8]) {
        if end_offset <= 0 || end_offset > self.high_watermark {
            return;
        }
        if self.snapshot.is_some_and(|current| end_offset <= current.end_offset) {
            return;
        }
        let Some(epoch) = self.epoch_at(end_offset - 1) else { return };
        let id = SnapshotId { end_offset, epoch };
        if body.len() as u64 > SNAPSHOT_BYTES_MAX || self.snapshot_writes_pending.contains(&id) {
            return;
        }
        self.write_snapshot(env, id, &encode(id, body), None);
    }

    /// A snapshot downloaded from the leader: validate it, then persist it like a local one.
    pub(super) fn begin_install(&mut self, env: &mut Env<'_>, download: Download) {
        let id = download.id;
        let Ok(body) = decode(id, &download.bytes) else {
            return; // Damaged on the way: the next Fetch asks for it again.
        };
        if id.end_offset <= self.high_watermark
            || self.snapshot.is_some_and(|s| s.end_offset >= id.end_offset)
        {
            return;
        }
        let body = body.to_vec();
        self.installing = Some(id);
        if !self.write_snapshot(env, id, &download.bytes, Some(body)) {
            self.installing = None;
        }
    }

    /// Writes the file to its temporary name and requests its sync. A failed write loses nothing
    /// (the snapshot is retaken or refetched later): `false`.
    fn write_snapshot(
        &mut self,
        env: &mut Env<'_>,
        id: SnapshotId,
        file: &[u8],
        install: Option<Vec<u8>>,
    ) -> bool {
        let temp = temp_path(id);
        let _ = env.storage.remove(&temp);
        let written = env.storage.create(&temp).and_then(|()| env.storage.write_at(&temp, 0, file));
        if written.is_err() {
            let _ = env.storage.remove(&temp);
            return false;
        }
        self.snapshot_writes_pending.insert(id);
        self.request_sync(temp, SyncPurpose::Snapshot { id, install });
        true
    }

    /// The snapshot's temporary file is durable: rename it into place, then drop what it makes
    /// redundant (older snapshots; log segments below it) or, for one fetched from the leader,
    /// restart the log at its end and hand it to the application.
    pub(super) fn on_snapshot_durable(
        &mut self,
        env: &mut Env<'_>,
        id: SnapshotId,
        install: Option<Vec<u8>>,
    ) {
        self.snapshot_writes_pending.remove(&id);
        if install.is_some() {
            self.installing = None;
        }
        let superseded = self.snapshot.is_some_and(|current| current.end_offset >= id.end_offset);
        // A fetched snapshot is only for a node behind: one that caught up or leads keeps its log.
        let unwanted = install.is_some()
            && (id.end_offset <= self.high_watermark || matches!(self.role, Role::Leader(_)));
        if superseded || unwanted {
            let _ = env.storage.remove(&temp_path(id));
            return;
        }
        if let Err(error) = env.storage.rename(&temp_path(id), &path(id)) {
            self.halt(format!("snapshot {id:?} cannot be renamed into place: {error}"));
            return;
        }
        self.snapshot = Some(id);
        self.remove_older_snapshots(env, id);
        match install {
            Some(body) => {
                if let Err(error) = self.log.reset_to(env, id.end_offset) {
                    self.halt(format!("the metadata log cannot restart at snapshot {id:?}: {error:?}"));
                    return;
                }
                self.entries.clear();
                self.batch_bases.clear();
                // The new log is durable as it stands (files removed and created): no cut waits.
                self.truncation_barrier = None;
                self.durable_end = id.end_offset;
                self.high_watermark = id.end_offset;
                self.next_delivery = id.end_offset;
                self.committed.push_back(Committed::Snapshot { id, bytes: body });
                self.fetcher.next_fetch_at = env.now;
            }
            None => self.compact_log(env),
        }
    }

    /// Deletes the log segments wholly below the snapshot (housekeeping: a failure is retried
    /// after the next snapshot).
    fn compact_log(&mut self, env: &mut Env<'_>) {
        let Some(id) = self.snapshot else { return };
        let before = self.log.log_start_offset();
        if self.log.delete_segments_below(env, id.end_offset).is_err() {
            // The log deletes one segment at a time and stays consistent; keep what it did.
        }
        let start = self.log.log_start_offset();
        if start > before {
            self.entries.drain(..(start - before) as usize);
            self.batch_bases = self.batch_bases.split_off(&start);
        }
    }

    fn remove_older_snapshots(&mut self, env: &mut Env<'_>, newest: SnapshotId) {
        let Ok(paths) = env.storage.list(SNAPSHOT_DIR) else { return };
        for older in paths.iter().filter_map(|path| parse_path(path)).filter(|id| *id < newest) {
            let _ = env.storage.remove(&path(older));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files_round_trip_and_damage_is_refused() {
        let id = SnapshotId { end_offset: 42, epoch: 3 };
        assert_eq!(parse_path(&path(id)), Some(id));
        assert_eq!(parse_path(&temp_path(id)), None);
        assert_eq!(parse_path("metadata/snapshots/42-3.checkpoint"), None);
        let bytes = encode(id, b"state");
        assert_eq!(decode(id, &bytes), Ok(&b"state"[..]));
        assert!(decode(SnapshotId { end_offset: 42, epoch: 4 }, &bytes).is_err());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode(id, &bad).is_err(), "byte {at}");
        }
        assert!(decode(id, &bytes[..bytes.len() - 1]).is_err());
    }
}
