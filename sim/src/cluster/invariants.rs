//! The controller quorum's state invariants, checked after every step on the whole cluster as only
//! a simulator can see it (the invariants of Raft's and KRaft's TLA+ specifications).
//!
//! | invariant | what is compared | anomaly kind |
//! |---|---|---|
//! | ElectionSafety | every node that is leader, by epoch | `election-safety` |
//! | LogMatching | each node's entries below its high watermark against the committed entries seen so far | `log-matching` |
//! | LeaderCompleteness | a new leader's log against every entry committed in an earlier epoch | `leader-completeness` |
//! | StateMachineSafety | every applied entry and snapshot against the committed ones; images at the same offset | `state-machine-safety` |
//! | applied ⊆ committed | no node applies beyond the highest high watermark any leader claimed | `applied-uncommitted` |
//! | partition epochs | leader epochs and partition epochs only grow; one leader per (partition, leader epoch) | `partition-epoch-regressed`, `two-partition-leaders` |
//! | ISR well-formed | ISR ⊆ replicas, the leader is in the ISR | `isr-malformed` |
//!
//! Committed entries are learnt from the nodes themselves: an entry below a node's high watermark is
//! committed (the node was told so by a leader, or is the leader). The first node to show an offset
//! as committed fixes its `(epoch, payload hash)`; every later sight must agree.

use std::collections::{BTreeMap, BTreeSet};

use seedlog_core::env::Time;
use seedlog_core::metadata::{MetadataImage, TopicId};
use seedlog_core::node::{Applied, Node};
use seedlog_core::quorum::QuorumRole;

use crate::checker::Anomaly;

#[derive(Default)]
pub struct QuorumChecker {
    /// Epoch → the node that was leader in it.
    leaders: BTreeMap<i32, u32>,
    /// (node, epoch) pairs already checked for LeaderCompleteness.
    completeness_checked: BTreeSet<(u32, i32)>,
    /// Offset → (epoch, payload hash) of every entry known to be committed.
    committed: BTreeMap<i64, (i32, u64)>,
    /// Offset → the lowest epoch in which a node saw the entry committed (Raft's "committed in
    /// term T": the epoch of the leader whose high watermark first covered it, or a later one).
    committed_in: BTreeMap<i64, i32>,
    /// Per node: entries below this offset were already compared.
    checked_to: BTreeMap<u32, i64>,
    /// The highest high watermark any node claimed.
    high_watermark_max: i64,
    /// Image end offset → image hash, as the first node to reach it had it.
    image_hashes: BTreeMap<i64, u64>,
    /// Per node, the image end offset last compared (hashing an image costs its encoding).
    image_checked: BTreeMap<u32, i64>,
    /// The furthest image checked for partition invariants.
    frontier: i64,
    partitions: BTreeMap<(TopicId, u32), PartitionSeen>,
    /// (topic, partition, leader epoch) → leader.
    leader_of_epoch: BTreeMap<(TopicId, u32, i32), Option<u32>>,
    pub anomalies: Vec<Anomaly>,
    /// When each anomaly was found (parallel to `anomalies`), so that only damage injected
    /// before it can excuse it.
    pub anomaly_times: Vec<Time>,
    /// The time of the step being checked.
    now: Time,
}

/// "at {time}" in an anomaly's detail, formatted only when an anomaly is written.
#[derive(Clone, Copy)]
struct At(Time);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}", self.0)
    }
}

#[derive(Clone, Copy)]
struct PartitionSeen {
    leader_epoch: i32,
    partition_epoch: i32,
}

impl QuorumChecker {
    fn fail(&mut self, kind: &str, detail: String) {
        // One report per kind is enough to fail a run; later ones would only repeat it.
        if self.anomalies.iter().filter(|a| a.kind == kind).count() < 3 {
            self.anomalies.push(Anomaly::new(kind, detail));
            self.anomaly_times.push(self.now);
        }
    }

    /// An anomaly found by the world itself (not by an invariant), at `now`.
    pub fn report(&mut self, now: Time, anomaly: Anomaly) {
        self.anomalies.push(anomaly);
        self.anomaly_times.push(now);
    }

    /// A node restarted: its high watermark starts over, so its log is compared again as it grows.
    pub fn node_restarted(&mut self, node: u32) {
        self.checked_to.remove(&node);
        self.image_checked.remove(&node);
    }

    /// Everything checkable about one live node after a step it took. `applied` is what the node
    /// applied during the step.
    pub fn check_node(&mut self, now: Time, node_id: u32, node: &Node, applied: &[Applied]) {
        self.now = now;
        let at = At(now);
        let quorum = node.quorum();
        let epoch = quorum.epoch();
        let high_watermark = quorum.high_watermark();
        let entries = quorum.entries();
        let entry_at = |offset: i64| -> Option<(i32, u64)> {
            let first = entries.first()?.offset;
            let index = usize::try_from(offset.checked_sub(first)?).ok()?;
            entries.get(index).filter(|e| e.offset == offset).map(|e| (e.epoch, e.payload_hash))
        };

        if quorum.role() == QuorumRole::Leader {
            // ElectionSafety: one leader per epoch.
            match self.leaders.get(&epoch) {
                Some(&other) if other != node_id => self.fail(
                    "election-safety",
                    format!("{at}: n{node_id} and n{other} were both leader in epoch {epoch}"),
                ),
                Some(_) => {}
                None => {
                    self.leaders.insert(epoch, node_id);
                }
            }
            // LeaderCompleteness: a leader holds every entry committed in an earlier epoch (above
            // its snapshot). A zombie leader of an old epoch (woken from a pause, it counts votes
            // it was granted long ago) need not hold what later epochs committed.
            if self.completeness_checked.insert((node_id, epoch)) {
                let start = quorum.log_start_offset();
                let committed_in = &self.committed_in;
                let missing = self
                    .committed
                    .range(start..)
                    .filter(|(offset, _)| committed_in.get(offset).is_some_and(|&c| c < epoch))
                    .find(|(offset, expected)| entry_at(**offset) != Some(**expected))
                    .map(|(offset, expected)| (*offset, *expected));
                if let Some((offset, (entry_epoch, _))) = missing {
                    self.fail(
                        "leader-completeness",
                        format!(
                            "{at}: n{node_id} became leader of epoch {epoch} without the committed entry at offset {offset} (epoch {entry_epoch}); it has {:?}",
                            entry_at(offset)
                        ),
                    );
                }
            }
        }

        // LogMatching on committed entries: everything below the node's high watermark.
        self.high_watermark_max = self.high_watermark_max.max(high_watermark);
        let start = quorum.log_start_offset();
        let from = self.checked_to.get(&node_id).copied().unwrap_or(start).min(high_watermark).max(start);
        for offset in from..high_watermark {
            let Some(found) = entry_at(offset) else { break };
            match self.committed.get(&offset) {
                Some(expected) if *expected != found => {
                    let expected = *expected;
                    self.fail(
                        "log-matching",
                        format!(
                            "{at}: n{node_id} holds (epoch {}, #{:016x}) at committed offset {offset}, but (epoch {}, #{:016x}) was committed there",
                            found.0, found.1, expected.0, expected.1
                        ),
                    );
                    break;
                }
                Some(_) => {}
                None => {
                    self.committed.insert(offset, found);
                }
            }
            let committed_in = self.committed_in.entry(offset).or_insert(epoch);
            *committed_in = (*committed_in).min(epoch);
        }
        self.checked_to.insert(node_id, high_watermark.max(from));

        // StateMachineSafety: what was applied is what was committed.
        for event in applied {
            match *event {
                Applied::Entry { offset, epoch, payload_hash } => {
                    if offset >= self.high_watermark_max {
                        self.fail(
                            "applied-uncommitted",
                            format!(
                                "{at}: n{node_id} applied offset {offset}, beyond every high watermark claimed ({})",
                                self.high_watermark_max
                            ),
                        );
                    }
                    match self.committed.get(&offset) {
                        Some(&expected) if expected != (epoch, payload_hash) => self.fail(
                            "state-machine-safety",
                            format!(
                                "{at}: n{node_id} applied (epoch {epoch}, #{payload_hash:016x}) at offset {offset}, but (epoch {}, #{:016x}) was committed there",
                                expected.0, expected.1
                            ),
                        ),
                        Some(_) => {}
                        None => {
                            self.committed.insert(offset, (epoch, payload_hash));
                        }
                    }
                }
                Applied::Snapshot { id, image_hash } => self.check_image(node_id, id.end_offset, image_hash),
            }
        }
        let image = node.image();
        if self.image_checked.insert(node_id, image.end_offset) != Some(image.end_offset) {
            self.check_image(node_id, image.end_offset, image.hash());
        }
        if image.end_offset > self.frontier {
            self.frontier = image.end_offset;
            self.check_partitions(node_id, image);
        }
    }

    fn check_image(&mut self, node_id: u32, end_offset: i64, hash: u64) {
        let at = At(self.now);
        match self.image_hashes.get(&end_offset) {
            Some(&expected) if expected != hash => self.fail(
                "state-machine-safety",
                format!(
                    "{at}: n{node_id}'s metadata image at offset {end_offset} hashes to {hash:016x}, another node's to {expected:016x}"
                ),
            ),
            Some(_) => {}
            None => {
                self.image_hashes.insert(end_offset, hash);
            }
        }
    }

    /// The partition invariants on the furthest image seen so far.
    fn check_partitions(&mut self, node_id: u32, image: &MetadataImage) {
        let at = At(self.now);
        let mut failures: Vec<(&str, String)> = Vec::new();
        for (topic_id, topic) in &image.topics {
            for (&partition, state) in &topic.partitions {
                let name = format!("{}-{partition}", topic.name);
                if state.isr.iter().any(|member| !state.replicas.contains(member)) {
                    failures.push((
                        "isr-malformed",
                        format!(
                            "{at}: n{node_id}: {name} has ISR {:?} ⊄ replicas {:?}",
                            state.isr, state.replicas
                        ),
                    ));
                }
                if let Some(leader) = state.leader {
                    if !state.isr.contains(&leader) {
                        failures.push((
                            "isr-malformed",
                            format!(
                                "{at}: n{node_id}: {name} leader {leader} is not in its ISR {:?}",
                                state.isr
                            ),
                        ));
                    }
                }
                let key = (*topic_id, partition);
                if let Some(seen) = self.partitions.get(&key) {
                    if state.leader_epoch < seen.leader_epoch || state.partition_epoch < seen.partition_epoch
                    {
                        failures.push((
                            "partition-epoch-regressed",
                            format!(
                                "{at}: n{node_id}: {name} went from leader epoch {} / partition epoch {} to {} / {}",
                                seen.leader_epoch, seen.partition_epoch, state.leader_epoch, state.partition_epoch
                            ),
                        ));
                    }
                }
                self.partitions.insert(
                    key,
                    PartitionSeen {
                        leader_epoch: state.leader_epoch,
                        partition_epoch: state.partition_epoch,
                    },
                );
                let epoch_key = (*topic_id, partition, state.leader_epoch);
                match self.leader_of_epoch.get(&epoch_key) {
                    Some(leader) if *leader != state.leader => failures.push((
                        "two-partition-leaders",
                        format!(
                            "{at}: n{node_id}: {name} leader epoch {} has leader {:?}, earlier {:?}",
                            state.leader_epoch, state.leader, leader
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        self.leader_of_epoch.insert(epoch_key, state.leader);
                    }
                }
            }
        }
        for (kind, detail) in failures {
            self.fail(kind, detail);
        }
    }
}
