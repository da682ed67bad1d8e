//! Replication: the leader answering Fetch and FetchSnapshot and advancing the high watermark;
//! followers and observers fetching, appending, truncating on divergence, downloading snapshots
//! and delivering committed entries. See the module documentation of [`super`] for the rules.

use super::{
    entry, snapshot, Committed, Download, FetchResult, InFlight, NodeId, Quorum, QuorumMessage, Role,
    SnapshotId, READ_BYTES,
};
use crate::env::{Env, Plant, Time};
use crate::log::LogError;
use crate::record::Batches;

/// What the leader makes of a fetcher's (fetch offset, last fetched epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FetchValidation {
    /// The fetcher's log matches the leader's up to the fetch offset.
    Valid,
    Diverging {
        epoch: i32,
        end_offset: i64,
    },
    SnapshotNeeded(SnapshotId),
    /// Nonsense (a negative offset): ignored.
    Invalid,
}

/// One FetchSnapshotResponse's payload.
#[derive(Clone, Debug)]
pub(super) struct SnapshotChunk {
    pub snapshot: SnapshotId,
    pub size: u64,
    pub position: u64,
    pub bytes: Vec<u8>,
}

/// What a follower made of a response's batches.
struct Accepted {
    /// The end of the batches compared with (or appended to) this node's log: below it the log
    /// equals the leader's. `None` if no batch could be used.
    matched_end: Option<i64>,
    appended: bool,
}

impl Quorum {
    // ---- the leader's side ----

    pub(super) fn on_fetch(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        replica: NodeId,
        fetch_offset: i64,
        last_fetched_epoch: i32,
    ) {
        if replica != from || replica == self.config.node_id {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, None);
        }
        if !matches!(self.role, Role::Leader(_)) || epoch < self.state.epoch {
            let response = self.not_leader_response();
            self.send(replica, response);
            return;
        }
        self.note_fetch(env.now, replica);
        let result = match self.validate_fetch(fetch_offset, last_fetched_epoch) {
            FetchValidation::Invalid => return,
            FetchValidation::SnapshotNeeded(snapshot) => FetchResult::SnapshotNeeded { snapshot },
            FetchValidation::Diverging { epoch, end_offset } => FetchResult::Diverging { epoch, end_offset },
            FetchValidation::Valid => {
                if let Role::Leader(leader) = &mut self.role {
                    if let Some(progress) = leader.replicas.get_mut(&replica) {
                        progress.durable_end = progress.durable_end.max(fetch_offset);
                    }
                }
                self.update_high_watermark(env);
                match self.read_for_fetch(env, fetch_offset) {
                    Some(batches) => FetchResult::Records { batches },
                    None => return,
                }
            }
        };
        let response = QuorumMessage::FetchResponse {
            epoch: self.state.epoch,
            leader: Some(self.config.node_id),
            high_watermark: self.high_watermark,
            result,
        };
        self.send(replica, response);
    }

    pub(super) fn on_fetch_snapshot(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        replica: NodeId,
        id: SnapshotId,
        position: u64,
    ) {
        if replica != from || replica == self.config.node_id {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, None);
        }
        let leading = matches!(self.role, Role::Leader(_)) && epoch == self.state.epoch;
        if leading {
            self.note_fetch(env.now, replica);
        }
        let chunk = if leading && self.snapshot == Some(id) {
            self.read_snapshot_chunk(env, id, position)
        } else {
            None
        };
        // An empty answer (size 0) says "not available here": the fetcher starts over with a Fetch.
        let (size, bytes) = chunk.unwrap_or((0, Vec::new()));
        let leader = if leading { Some(self.config.node_id) } else { self.leader() };
        let response = QuorumMessage::FetchSnapshotResponse {
            epoch: self.state.epoch,
            leader,
            snapshot: id,
            size,
            position,
            bytes,
        };
        self.send(replica, response);
    }

    fn note_fetch(&mut self, now: Time, replica: NodeId) {
        if let Role::Leader(leader) = &mut self.role {
            if let Some(progress) = leader.replicas.get_mut(&replica) {
                progress.last_fetch = now;
            }
        }
    }

    fn not_leader_response(&self) -> QuorumMessage {
        let leader = match self.role {
            Role::Leader(_) => Some(self.config.node_id),
            _ => self.leader(),
        };
        QuorumMessage::FetchResponse {
            epoch: self.state.epoch,
            leader,
            high_watermark: self.high_watermark,
            result: FetchResult::NotLeader,
        }
    }

    fn validate_fetch(&self, fetch_offset: i64, last_fetched_epoch: i32) -> FetchValidation {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        let snapshot_needed =
            || self.snapshot.map_or(FetchValidation::Invalid, FetchValidation::SnapshotNeeded);
        if fetch_offset < 0 {
            return FetchValidation::Invalid;
        }
        if fetch_offset < start {
            return snapshot_needed();
        }
        if fetch_offset <= end {
            if fetch_offset == 0 {
                return FetchValidation::Valid;
            }
            match self.epoch_at(fetch_offset - 1) {
                Some(epoch) if epoch == last_fetched_epoch => return FetchValidation::Valid,
                // Only a snapshot knows the entry before the fetch offset: it cannot be checked.
                None => return snapshot_needed(),
                Some(_) => {}
            }
        }
        match self.end_of_epoch(last_fetched_epoch) {
            Some((epoch, end_offset)) => {
                // Always below the fetch offset, so every round of divergence makes progress.
                let end_offset = if end_offset >= fetch_offset { fetch_offset - 1 } else { end_offset };
                FetchValidation::Diverging { epoch, end_offset }
            }
            None => snapshot_needed(),
        }
    }

    /// The batches from `fetch_offset` (whole ones, at most `fetch_max_bytes` but one), each
    /// checked for epoch agreement. `None`: nothing can be served (after a halt for corruption).
    fn read_for_fetch(&mut self, env: &mut Env<'_>, fetch_offset: i64) -> Option<Vec<u8>> {
        let max_bytes = self.config.fetch_max_bytes as usize;
        let read = match self.log.read(env, fetch_offset, max_bytes) {
            Ok(read) => read,
            // A transient storage error: no answer (an empty one would claim the fetcher is at the
            // end of the log); the fetcher retries after its request timeout.
            Err(LogError::Storage(_)) => return None,
            Err(error) => {
                self.halt(format!("the metadata log cannot serve offset {fetch_offset}: {error:?}"));
                return None;
            }
        };
        let mut served = 0;
        for item in Batches::new(&read.bytes) {
            let Ok((_, bytes)) = item else { break };
            if entry::decode_batch(bytes).is_err() {
                break;
            }
            served += bytes.len();
        }
        if served == 0 && !read.bytes.is_empty() {
            self.halt(format!("the metadata log holds a corrupt batch at offset {fetch_offset}"));
            return None;
        }
        let mut batches = read.bytes;
        batches.truncate(served);
        Some(batches)
    }

    fn read_snapshot_chunk(
        &mut self,
        env: &mut Env<'_>,
        id: SnapshotId,
        position: u64,
    ) -> Option<(u64, Vec<u8>)> {
        let path = snapshot::path(id);
        let size = env.storage.len(&path).ok()?;
        if position > size {
            return None;
        }
        let length = (size - position).min(u64::from(self.config.fetch_max_bytes));
        let mut bytes = vec![0; length as usize];
        env.storage.read_at(&path, position, &mut bytes).ok()?;
        Some((size, bytes))
    }

    /// The leader's commit rule: the majority-th highest durable end among the voters, if the
    /// entry below it is of the current epoch; never backwards.
    pub(super) fn update_high_watermark(&mut self, env: &mut Env<'_>) {
        let Role::Leader(leader) = &self.role else { return };
        // Planted bug: count the leader's appended-but-unsynced entries as if they were durable.
        let own = if env.faults.planted(Plant::LeaderCountsUnsyncedEntry) {
            self.log.log_end_offset()
        } else {
            self.durable_end
        };
        let mut ends: Vec<i64> =
            std::iter::once(own).chain(leader.replicas.values().map(|p| p.durable_end)).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = ends[self.majority() - 1];
        if candidate > self.high_watermark && self.epoch_at(candidate - 1) == Some(self.state.epoch) {
            self.high_watermark = candidate;
            self.deliver_committed(env);
        }
    }

    // ---- the fetcher's side ----

    /// Whom this node fetches from now, if it fetches at all.
    fn fetch_target(&self) -> Option<NodeId> {
        match &self.role {
            Role::Follower { leader, .. } => Some(*leader),
            Role::Observer { leader: Some(leader) } => Some(*leader),
            Role::Observer { leader: None } => {
                let voters = self.other_voters();
                (!voters.is_empty()).then(|| voters[self.fetcher.observer_cursor % voters.len()])
            }
            _ => None,
        }
    }

    /// Whether a fetch could go out now but for the time: not one in flight, not installing a
    /// snapshot, and (for a Fetch) everything appended is synced.
    fn fetch_ready(&self) -> bool {
        self.fetcher.in_flight.is_none()
            && self.installing.is_none()
            && self.truncation_barrier.is_none()
            && (self.fetcher.download.is_some() || self.durable_end == self.log.log_end_offset())
    }

    pub(super) fn fetch_deadline(&self) -> Option<Time> {
        self.fetch_target()?;
        if let Some(in_flight) = self.fetcher.in_flight {
            return Some(in_flight.deadline);
        }
        self.fetch_ready().then_some(self.fetcher.next_fetch_at)
    }

    pub(super) fn on_fetch_timer(&mut self, env: &mut Env<'_>) {
        let Some(in_flight) = self.fetcher.in_flight else { return };
        if env.now < in_flight.deadline {
            return;
        }
        self.fetcher.in_flight = None;
        self.fetcher.next_fetch_at = env.now;
        if let Role::Observer { leader } = &mut self.role {
            // Unanswered: maybe the leader is gone. Try the voters again, in turn.
            *leader = None;
            self.fetcher.observer_cursor += 1;
        }
    }

    /// Forgets any request in flight (its answer will be ignored) and fetches at once.
    pub(super) fn reset_fetcher(&mut self, env: &mut Env<'_>) {
        self.fetcher.in_flight = None;
        self.fetcher.download = None;
        self.fetcher.probe = None;
        self.fetcher.next_fetch_at = env.now;
    }

    pub(super) fn maybe_fetch(&mut self, env: &mut Env<'_>) {
        let Some(target) = self.fetch_target() else { return };
        if self.fetcher.in_flight.is_some()
            || self.installing.is_some()
            || env.now < self.fetcher.next_fetch_at
        {
            return;
        }
        if self.truncation_barrier.is_some() {
            return; // The sync that makes the cut durable fetches again when it completes.
        }
        let (epoch, me) = (self.state.epoch, self.config.node_id);
        let deadline = env.now.plus_millis(self.config.request_timeout_ms);
        if let Some(download) = &self.fetcher.download {
            let position = download.bytes.len() as u64;
            let message =
                QuorumMessage::FetchSnapshot { epoch, replica: me, snapshot: download.id, position };
            self.send(target, message);
            self.fetcher.in_flight = Some(InFlight { target, deadline, fetch_offset: None });
            return;
        }
        if self.durable_end < self.log.log_end_offset() {
            // Only durable entries may be reported: fetch again once the sync completes.
            self.start_log_sync();
            return;
        }
        // Only durable entries are reported; a probe after a Diverging answer asks lower.
        let fetch_offset = self.fetcher.probe.map_or(self.durable_end, |probe| probe.min(self.durable_end));
        let last_fetched_epoch = self.epoch_at(fetch_offset - 1).unwrap_or(0);
        self.send(target, QuorumMessage::Fetch { epoch, replica: me, fetch_offset, last_fetched_epoch });
        self.fetcher.in_flight = Some(InFlight { target, deadline, fetch_offset: Some(fetch_offset) });
    }

    pub(super) fn on_fetch_response(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        leader: Option<NodeId>,
        leader_high_watermark: i64,
        result: FetchResult,
    ) {
        let Some(InFlight { target, fetch_offset: Some(_), .. }) = self.fetcher.in_flight else {
            return;
        };
        if target != from {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, leader);
            return;
        }
        self.fetcher.in_flight = None;
        let interval_ms = self.config.fetch_interval_ms;
        if epoch < self.state.epoch {
            self.fetcher.next_fetch_at = env.now.plus_millis(interval_ms);
            return;
        }
        if matches!(result, FetchResult::NotLeader) {
            if let Role::Observer { leader: known } = &mut self.role {
                match leader.filter(|hint| *hint != from && self.voters.contains(hint)) {
                    Some(hint) => *known = Some(hint),
                    None => {
                        *known = None;
                        self.fetcher.observer_cursor += 1;
                    }
                }
            }
            self.fetcher.next_fetch_at = env.now.plus_millis(interval_ms);
            return;
        }
        if !self.heard_from_leader(env.now, from) {
            return;
        }
        match result {
            FetchResult::NotLeader => {}
            FetchResult::Records { batches } => {
                self.fetcher.probe = None;
                let accepted = self.accept_records(env, &batches);
                if self.halted {
                    return;
                }
                // What this answer proves about this node's log, whichever of its requests it
                // answers (a retried or duplicated request's answer can arrive late): with
                // batches, the log equals the leader's up to their end; without, the fetch offset
                // was the leader's end, which bounds the high watermark it sent.
                let learned = match (batches.is_empty(), accepted.matched_end) {
                    (true, _) => Some(leader_high_watermark.min(self.log.log_end_offset())),
                    (false, Some(matched_end)) => Some(leader_high_watermark.min(matched_end)),
                    (false, None) => None,
                };
                if let Some(learned) = learned.filter(|learned| *learned > self.high_watermark) {
                    self.high_watermark = learned;
                    self.deliver_committed(env);
                }
                if accepted.appended {
                    self.start_log_sync();
                }
                self.fetcher.next_fetch_at =
                    if accepted.matched_end.is_some() { env.now } else { env.now.plus_millis(interval_ms) };
            }
            FetchResult::Diverging { epoch, end_offset } => {
                // The leader's log ends `epoch` at `end_offset`, a fact of its log that never changes
                // once a later epoch began. If this node holds committed entries of that epoch past
                // it, the leader lacks a committed entry: durable state was lost (disk damage) or a
                // bug broke Raft. Probing again would only loop; halt, and after the restart (which
                // forgets the high watermark) the log is repaired from the leader.
                // (A late or duplicated answer to an earlier request, arriving after the log was
                // repaired, can also land here and halt a healthy node: that costs a restart,
                // never safety, where probing again after a real loss of committed entries
                // would loop forever.)
                let local_end = self.end_of_epoch(epoch).map_or(self.floor(), |(_, end)| end);
                let point = end_offset.min(local_end).min(self.log.log_end_offset());
                if point < self.high_watermark {
                    self.halt(format!(
                        "the leader's log diverges from this node's at offset {point}, below the high watermark {}: committed entries disagree",
                        self.high_watermark
                    ));
                    return;
                }
                self.fetcher.probe = Some(self.divergence_probe(epoch, end_offset));
                self.fetcher.next_fetch_at = env.now;
            }
            FetchResult::SnapshotNeeded { snapshot } => {
                self.fetcher.probe = None;
                // A log that already holds the snapshot's last entry needs no snapshot (this
                // answer was to a probe or an old request).
                let held = self.epoch_at(snapshot.end_offset - 1) == Some(snapshot.epoch);
                let ahead = snapshot.end_offset > self.high_watermark
                    && self.snapshot.is_none_or(|current| snapshot.end_offset > current.end_offset);
                if ahead && !held {
                    self.fetcher.download = Some(Download { id: snapshot, bytes: Vec::new(), size: None });
                    self.fetcher.next_fetch_at = env.now;
                } else {
                    self.fetcher.next_fetch_at = env.now.plus_millis(interval_ms);
                }
            }
        }
    }

    pub(super) fn on_fetch_snapshot_response(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        leader: Option<NodeId>,
        chunk: SnapshotChunk,
    ) {
        let Some(InFlight { target, fetch_offset: None, .. }) = self.fetcher.in_flight else { return };
        if target != from {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, leader);
            return;
        }
        self.fetcher.in_flight = None;
        let Some(download) = self.fetcher.download.as_mut() else { return };
        let expected_position = download.bytes.len() as u64;
        let usable = epoch == self.state.epoch
            && chunk.snapshot == download.id
            && chunk.size > 0
            && chunk.size <= snapshot::SNAPSHOT_BYTES_MAX
            && chunk.position == expected_position
            && download.size.is_none_or(|size| size == chunk.size)
            && !chunk.bytes.is_empty()
            && chunk.bytes.len() as u64 <= chunk.size - chunk.position;
        if !usable {
            // Not available any more (a newer snapshot, a new leader): start over with a Fetch.
            self.fetcher.download = None;
            self.fetcher.next_fetch_at = env.now.plus_millis(self.config.fetch_interval_ms);
            return;
        }
        download.size = Some(chunk.size);
        download.bytes.extend_from_slice(&chunk.bytes);
        self.fetcher.next_fetch_at = env.now;
        if download.bytes.len() as u64 == chunk.size {
            let complete = self.fetcher.download.take().expect("the download just completed");
            self.heard_from_leader(env.now, from);
            self.begin_install(env, complete);
        } else {
            self.heard_from_leader(env.now, from);
        }
    }

    /// An answer from the leader this node fetches from: it is alive. For an observer, the
    /// answering node is the leader. `false` if `from` is not whom this node fetches from.
    fn heard_from_leader(&mut self, now: Time, from: NodeId) -> bool {
        let fetch_timeout_ms = self.config.fetch_timeout_ms;
        match &mut self.role {
            Role::Follower { leader, fetch_deadline, leader_resigned: false } if *leader == from => {
                *fetch_deadline = now.plus_millis(fetch_timeout_ms);
                self.last_leader_contact = Some(now);
                true
            }
            Role::Observer { leader } => {
                *leader = Some(from);
                true
            }
            _ => false,
        }
    }

    /// Appends the leader's batches that extend this node's log, skipping what it already has
    /// and cutting where it provably disagrees (an entry of another epoch at the same offset;
    /// never below the high watermark). The batches are the leader's own entries, so this is
    /// safe whichever request they answer.
    fn accept_records(&mut self, env: &mut Env<'_>, batches: &[u8]) -> Accepted {
        let mut accepted = Accepted { matched_end: None, appended: false };
        let mut expected_base = None;
        for item in Batches::new(batches) {
            let Ok((header, bytes)) = item else { break };
            let Ok(batch) = entry::decode_batch(bytes) else { break };
            let (base, last) = (header.base_offset, header.last_offset());
            if batch.epoch > self.state.epoch || expected_base.is_some_and(|expected| expected != base) {
                break; // Not a leader's log: later epochs, or a gap between batches.
            }
            expected_base = Some(last + 1);
            // Compare the part this node already has.
            let start = self.log.log_start_offset();
            let overlap_end = (last + 1).min(self.log.log_end_offset());
            let conflict =
                (base.max(start)..overlap_end).find(|offset| self.epoch_at(*offset) != Some(batch.epoch));
            if let Some(offset) = conflict {
                let cut = self.boundary_at_or_below(offset);
                if cut >= self.high_watermark {
                    self.truncate_log(env, cut);
                }
                // Append after the cut only once the cut is durable: the next fetch.
                break;
            }
            let end = self.log.log_end_offset();
            if base > end {
                break; // A gap: these are not the entries after this node's log.
            }
            if last < end {
                accepted.matched_end = Some(last + 1);
                continue;
            }
            if batch.epoch < self.last_epoch() {
                break; // It would put an older epoch after a newer one: not this node's leader.
            }
            let appended = if base == end {
                self.log.append(env, bytes)
            } else {
                match entry::encode_suffix(bytes, end) {
                    Some(suffix) => self.log.append(env, &suffix),
                    None => break,
                }
            };
            let Ok(info) = appended else { break };
            assert_eq!(info.base_offset, end);
            let hashes = batch.entries.iter().filter(|decoded| decoded.offset >= end).map(|decoded| {
                if decoded.control {
                    0
                } else {
                    entry::fnv1a64(&decoded.payload)
                }
            });
            self.push_entries(end, batch.epoch, hashes);
            accepted.appended = true;
            accepted.matched_end = Some(last + 1);
        }
        accepted
    }

    /// Where to ask next after a Diverging answer: KIP-595's point (the smaller of the leader's
    /// end of `epoch` and this node's own end of its largest epoch at most `epoch`), never below
    /// the high watermark. Nothing is cut on the answer's word alone — it may answer an older
    /// request, whose log has changed since — only where the leader's batches then disagree.
    fn divergence_probe(&self, epoch: i32, leader_end_offset: i64) -> i64 {
        let local_end = self.end_of_epoch(epoch).map_or(self.floor(), |(_, end)| end);
        let target = leader_end_offset.min(local_end).min(self.log.log_end_offset());
        target.max(self.high_watermark)
    }

    /// Reads committed entries from the log into the queue [`Quorum::poll_committed`] drains.
    pub(super) fn deliver_committed(&mut self, env: &mut Env<'_>) {
        while self.next_delivery < self.high_watermark {
            let read = match self.log.read(env, self.next_delivery, READ_BYTES) {
                Ok(read) => read,
                Err(error) => {
                    let at = self.next_delivery;
                    self.halt(format!("a committed entry at {at} cannot be read: {error:?}"));
                    return;
                }
            };
            let before = self.next_delivery;
            'batches: for item in Batches::new(&read.bytes) {
                let decoded = item
                    .map_err(|error| format!("{error:?}"))
                    .and_then(|(_, bytes)| entry::decode_batch(bytes));
                let batch = match decoded {
                    Ok(batch) => batch,
                    Err(reason) => {
                        self.halt(format!(
                            "a committed batch at {} is corrupt: {reason}",
                            self.next_delivery
                        ));
                        return;
                    }
                };
                for decoded in batch.entries {
                    if decoded.offset < self.next_delivery {
                        continue;
                    }
                    if decoded.offset >= self.high_watermark {
                        break 'batches;
                    }
                    if !decoded.control {
                        let (offset, epoch, payload) = (decoded.offset, batch.epoch, decoded.payload);
                        self.committed.push_back(Committed::Entry { offset, epoch, payload });
                    }
                    self.next_delivery = decoded.offset + 1;
                }
            }
            if self.next_delivery == before {
                self.halt(format!("the committed entry at {before} cannot be read"));
                return;
            }
        }
    }
}
