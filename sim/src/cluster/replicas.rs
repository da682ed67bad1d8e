//! The partition replicas' state invariants, checked after every step on every node as only a
//! simulator can see them (Kafka's replication promises; see `docs/guarantees.md`).
//!
//! | invariant | what is compared | anomaly kind |
//! |---|---|---|
//! | logs match below the high watermark | every replica's batches below its high watermark against the committed batches seen so far (offsets, leader epoch, CRC) | `replica-log-mismatch` |
//! | a leader holds every committed record | the newest epoch's leader's log end against the highest high watermark any replica of the partition announced | `leader-missing-committed` |
//! | the high watermark never decreases | each replica's high watermark within one incarnation | `high-watermark-regressed` |
//! | one leader per (partition, leader epoch) | replicas acting as leader, by epoch | `two-replica-leaders` |
//! | leader epochs only grow | each replica's leader epoch within one incarnation | `replica-epoch-regressed` |
//! | `acks=all` means `min.insync.replicas` copies | when an `acks=all` answer reaches its client, how many replicas hold the batch (durably, under the `always` flush policy) | `under-replicated-ack` |
//!
//! Committed batches are learnt from the replicas themselves: a batch below a replica's high
//! watermark is committed. The first replica to show it fixes its `(last offset, epoch, CRC)`;
//! every later sight must agree. The checker reads the replicas' segment files through the
//! simulated disk's page cache without fault injection, so checking changes nothing in the run.

use std::collections::BTreeMap;

use seedlog_core::env::Time;
use seedlog_core::node::{Node, ReplicaKey};
use seedlog_core::record::Batches;
use seedlog_core::replica::{FlushPolicy, Replica, RoleName};

use crate::checker::Anomaly;
use crate::disk::SimDisk;

/// A committed batch as first seen: its last offset, leader epoch and CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchSeen {
    last_offset: i64,
    epoch: i32,
    crc: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct ReplicaSeen {
    /// Batches below this offset were compared.
    checked_to: i64,
    high_watermark: i64,
    leader_epoch: i32,
}

#[derive(Default)]
pub struct ReplicaChecker {
    /// Per partition, committed batches by base offset.
    committed: BTreeMap<ReplicaKey, BTreeMap<i64, BatchSeen>>,
    /// Per partition, the highest high watermark any replica announced.
    committed_end: BTreeMap<ReplicaKey, i64>,
    /// Per (node, partition), what was checked in this incarnation.
    seen: BTreeMap<(u32, ReplicaKey), ReplicaSeen>,
    /// Per (node, partition), its replica's durable end when last seen: what a node that is down
    /// still holds.
    last_durable: BTreeMap<(u32, ReplicaKey), i64>,
    /// Per partition, the newest leader epoch any replica knew.
    newest_epoch: BTreeMap<ReplicaKey, i32>,
    /// (partition, leader epoch) → the node that acted as leader.
    leaders: BTreeMap<(ReplicaKey, i32), u32>,
    pub anomalies: Vec<Anomaly>,
    /// When each anomaly was found (parallel to `anomalies`).
    pub anomaly_times: Vec<Time>,
    /// Per anomaly, the partition and offset it concerns (for the report).
    pub anomaly_places: Vec<(ReplicaKey, i64)>,
}

impl ReplicaChecker {
    fn report(&mut self, now: Time, key: ReplicaKey, offset: i64, kind: &str, detail: String) {
        let time_ms = now.as_nanos() as f64 / 1e6;
        self.anomalies.push(Anomaly::new(kind, format!("{detail} (at {now})")).at(
            key.1,
            Some(offset),
            time_ms,
        ));
        self.anomaly_times.push(now);
        self.anomaly_places.push((key, offset));
    }

    /// A node restarted: its replicas' per-incarnation history starts over.
    pub fn node_restarted(&mut self, node: u32) {
        self.seen.retain(|(seen_node, _), _| *seen_node != node);
    }

    /// The highest high watermark any replica of the partition announced.
    pub fn committed_end(&self, key: ReplicaKey) -> i64 {
        self.committed_end.get(&key).copied().unwrap_or(0)
    }

    /// Checks every replica of `node` after a step of it.
    pub fn check_node(&mut self, now: Time, node_id: u32, node: &Node, disk: &SimDisk) {
        for (key, replica) in node.replicas() {
            self.check_replica(now, node_id, *key, replica, disk);
        }
    }

    fn check_replica(&mut self, now: Time, node_id: u32, key: ReplicaKey, replica: &Replica, disk: &SimDisk) {
        let high_watermark = replica.high_watermark();
        let leader_epoch = replica.leader_epoch();
        let previous = self.seen.get(&(node_id, key)).copied();
        let mut seen = previous.unwrap_or(ReplicaSeen {
            checked_to: replica.log().log_start_offset(),
            high_watermark,
            leader_epoch,
        });
        if high_watermark < seen.high_watermark {
            let detail = format!(
                "replica {node_id} of {}-{}: high watermark went from {} to {high_watermark}",
                replica.topic(),
                key.1,
                seen.high_watermark
            );
            self.report(now, key, high_watermark, "high-watermark-regressed", detail);
        }
        if leader_epoch < seen.leader_epoch {
            let detail = format!(
                "replica {node_id} of {}-{}: leader epoch went from {} to {leader_epoch}",
                replica.topic(),
                key.1,
                seen.leader_epoch
            );
            self.report(now, key, high_watermark, "replica-epoch-regressed", detail);
        }
        // Reported once: the lower value is the new reference.
        seen.high_watermark = high_watermark;
        self.last_durable.insert((node_id, key), replica.log().durable_offset());
        seen.leader_epoch = seen.leader_epoch.max(leader_epoch);
        // A cut below what was checked (legitimate only above the high watermark) re-checks.
        seen.checked_to =
            seen.checked_to.min(replica.log().log_end_offset()).max(replica.log().log_start_offset());

        let newest_epoch = self.newest_epoch.entry(key).or_insert(leader_epoch);
        *newest_epoch = (*newest_epoch).max(leader_epoch);
        let newest_epoch = *newest_epoch;
        if replica.role() == RoleName::Leader {
            let acting = *self.leaders.entry((key, leader_epoch)).or_insert(node_id);
            if acting != node_id {
                let detail = format!(
                    "{}-{}: replicas {acting} and {node_id} both lead in epoch {leader_epoch}",
                    replica.topic(),
                    key.1
                );
                self.report(now, key, high_watermark, "two-replica-leaders", detail);
            }
            // Only the leader of the newest epoch must hold everything committed: a deposed leader
            // that has not heard of its successor yet commits nothing more (its followers moved on).
            let committed_end = self.committed_end(key);
            if leader_epoch >= newest_epoch
                && replica.log().log_end_offset() < committed_end
                && !replica.is_closed()
            {
                let detail = format!(
                    "{}-{}: leader {node_id} (epoch {leader_epoch}) ends at {} but records up to {committed_end} were committed",
                    replica.topic(),
                    key.1,
                    replica.log().log_end_offset()
                );
                self.report(now, key, replica.log().log_end_offset(), "leader-missing-committed", detail);
                // Report it once per leader: from now on this leader's log is the reference.
                self.committed_end.insert(key, replica.log().log_end_offset());
            }
        }
        let committed_end = self.committed_end.entry(key).or_insert(0);
        *committed_end = (*committed_end).max(high_watermark);

        if high_watermark > seen.checked_to {
            seen.checked_to =
                self.compare_batches(now, node_id, key, replica, disk, (seen.checked_to, high_watermark));
        }
        self.seen.insert((node_id, key), seen);
    }

    /// Compares the replica's batches in `[from, to)` with the committed ones; returns how far it
    /// got (a batch straddling `to` is left for later).
    fn compare_batches(
        &mut self,
        now: Time,
        node_id: u32,
        key: ReplicaKey,
        replica: &Replica,
        disk: &SimDisk,
        (from, to): (i64, i64),
    ) -> i64 {
        let mut reached = from;
        for (_, path) in replica.log().segment_files_from(from) {
            let Some(bytes) = disk.cached_contents(&path) else { return reached };
            for batch in Batches::new(bytes) {
                let Ok((header, _)) = batch else { return reached };
                if header.last_offset() < from {
                    continue;
                }
                if header.last_offset() >= to {
                    return reached;
                }
                let batch_seen = BatchSeen {
                    last_offset: header.last_offset(),
                    epoch: header.partition_leader_epoch,
                    crc: header.crc,
                };
                let committed = self.committed.entry(key).or_default();
                let first_seen = *committed.entry(header.base_offset).or_insert(batch_seen);
                if first_seen != batch_seen {
                    let detail = format!(
                        "{}-{}: replica {node_id} holds {batch_seen:?} at offset {} below its high watermark {to}, but {first_seen:?} was committed there",
                        replica.topic(),
                        key.1,
                        header.base_offset
                    );
                    self.report(now, key, header.base_offset, "replica-log-mismatch", detail);
                    // The replica's view replaces the old one so one divergence is reported once.
                    self.committed.entry(key).or_default().insert(header.base_offset, batch_seen);
                }
                reached = header.last_offset() + 1;
            }
        }
        reached
    }

    /// An `acks=all` answer for the batch at `base_offset` reached its client: at least
    /// `min.insync.replicas` replicas must hold it (durably under the `always` flush policy).
    /// `replicas` are every live node's replica of the partition; a node that is down counts with
    /// what it had made durable (a follower may crash after its fetch reached the leader).
    pub fn check_acks_all(
        &mut self,
        now: Time,
        key: ReplicaKey,
        base_offset: i64,
        replicas: &[(u32, &Replica)],
    ) {
        let Some((_, any)) = replicas.first() else { return };
        let settings = any.settings();
        let mut holding: Vec<u32> = replicas
            .iter()
            .filter(|(_, replica)| {
                let end = match settings.flush {
                    FlushPolicy::Always => replica.log().durable_offset(),
                    FlushPolicy::Interval { .. } | FlushPolicy::Never => replica.log().log_end_offset(),
                };
                end > base_offset
            })
            .map(|(node, _)| *node)
            .collect();
        let down = self.last_durable.iter().filter(|((node, seen_key), durable)| {
            *seen_key == key && **durable > base_offset && replicas.iter().all(|(live, _)| live != node)
        });
        holding.extend(down.map(|((node, _), _)| *node));
        holding.sort_unstable();
        let needed = usize::from(settings.min_insync_replicas);
        if holding.len() < needed {
            let detail = format!(
                "{}-{}: acks=all answered for offset {base_offset} held by {holding:?} only (min.insync.replicas={needed})",
                any.topic(),
                key.1
            );
            self.report(now, key, base_offset, "under-replicated-ack", detail);
        }
    }
}
