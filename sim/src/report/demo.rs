//! A synthetic run for the reports: an `acks=1` record lost to a leader crash, told the way the
//! world records a real run. It drives no broker code: a tiny hand-written model of one partition
//! (three replicas, followers fetching every 50 ms, a high watermark at the slowest in-sync
//! replica) produces the same calls a world makes, so that the report can be shown, tested and
//! documented before the worlds record anything.
//!
//! The story, in simulated time:
//! - 0 ms: broker 1 leads partition `t0-0` at leader epoch 3; brokers 2 and 3 follow. A producer
//!   with `acks=1` sends one record every 25 ms; a consumer polls committed records every 100 ms.
//! - 250–380 ms: broker 3 is paused (a long GC); 500–700 ms: the network isolates broker 3. Each
//!   time it falls out of the in-sync replicas and the high watermark moves on without it.
//! - 1005 ms: broker 1 loses power. The records it acknowledged at 975 and 1000 ms were on broker
//!   1 only: no follower had fetched them yet, and `acks=1` does not wait for one.
//! - 1020–1055 ms: a poll fails (no leader) and a send times out (indefinite).
//! - 1030 ms: broker 2 becomes leader at epoch 4, with the log it had. The producer's next records
//!   take the same offsets: the acknowledged records are overwritten.
//! - 1300 ms: broker 1 restarts as a follower, truncates its log to the new leader's (losing its
//!   copies) and catches up. The final read at 1600 ms finds other records at those offsets.

use super::{ClientOp, OpOutcome, Role, RunRecord, VerdictSummary};

const PARTITION: &str = "t0-0";
const BROKERS: [u32; 3] = [1, 2, 3];
const END_MS: u64 = 1_600;
const STEP_MS: u64 = 5;
const SEND_INTERVAL_MS: u64 = 25;
const FETCH_INTERVAL_MS: u64 = 50;
const POLL_INTERVAL_MS: u64 = 100;
/// A follower that has not fetched for this long leaves the in-sync replicas.
const REPLICA_LAG_MS: u64 = 100;
const PRODUCER: u32 = 0;
const CONSUMER: u32 = 1;

/// The synthetic `acks=1` loss story above, as a filled [`RunRecord`].
pub fn demo_record() -> RunRecord {
    let mut model = Model::new();
    for step in 0..=END_MS / STEP_MS {
        model.step(step * STEP_MS);
    }
    model.finish()
}

/// One broker's replica of the partition.
struct Replica {
    node: u32,
    /// The values, by offset: `"{process}-{n}"`.
    log: Vec<String>,
    high_watermark: i64,
    last_fetch_ms: u64,
    up: bool,
    paused: bool,
    isolated: bool,
}

struct Model {
    record: RunRecord,
    replicas: Vec<Replica>,
    leader: Option<usize>,
    leader_epoch: i32,
    sent: u64,
    /// Acknowledged records: (offset, value, acknowledging broker, its leader epoch).
    acknowledged: Vec<(i64, String, u32, i32)>,
    /// Offsets whose acknowledged value was overwritten, and when.
    overwritten: Vec<(i64, u64)>,
    consumer_position: i64,
}

impl Model {
    fn new() -> Model {
        let mut record = RunRecord::new(7, "log (synthetic demo)", BROKERS.to_vec(), vec![PARTITION.into()]);
        record.option("brokers", "3 (replication factor 3, min.insync.replicas=1)");
        record.option("producers' acks", "1 (the leader alone acknowledges)");
        record.option("fault kinds", "pause, partition, crash");
        record.option("story", "an acks=1 record lost to a leader crash");
        record.header.replay = "cargo run -p seedlog-sim --example report_demo -- DIR".into();
        let replicas = BROKERS
            .iter()
            .map(|&node| Replica {
                node,
                log: Vec::new(),
                high_watermark: 0,
                last_fetch_ms: 0,
                up: true,
                paused: false,
                isolated: false,
            })
            .collect();
        let mut model = Model {
            record,
            replicas,
            leader: Some(0),
            leader_epoch: 3,
            sent: 0,
            acknowledged: Vec::new(),
            overwritten: Vec::new(),
            consumer_position: 0,
        };
        for (index, node) in BROKERS.into_iter().enumerate() {
            let role = if index == 0 { Role::Leader } else { Role::Follower };
            model.record.role(0.0, PARTITION, node, role, 3);
            model.sample(0, index);
        }
        model.record.note(0.0, Some(1), "broker 1 leads t0-0 at leader epoch 3; brokers 2 and 3 follow");
        model
    }

    fn step(&mut self, t: u64) {
        self.faults(t);
        if t > 0 && t.is_multiple_of(SEND_INTERVAL_MS) {
            self.send(t);
        }
        for index in 0..self.replicas.len() {
            // Followers fetch on staggered schedules: broker 2 at :15, broker 3 at :20.
            if t % FETCH_INTERVAL_MS == 10 + 5 * index as u64 {
                self.fetch(t, index);
            }
        }
        self.advance_high_watermark(t);
        if t % POLL_INTERVAL_MS == 20 {
            self.poll(t);
        }
        if t == END_MS {
            self.final_read(t);
        }
    }

    fn faults(&mut self, t: u64) {
        let at = t as f64;
        match t {
            250 => {
                self.replicas[2].paused = true;
                self.record.node_paused(at, 3);
                self.record.note(at, Some(3), "broker 3 pauses (a long GC): it stops fetching");
            }
            380 => {
                self.replicas[2].paused = false;
                self.record.node_resumed(at, 3);
            }
            500 => {
                self.replicas[2].isolated = true;
                self.record.net_cut(at, vec![vec![3], vec![1, 2]]);
                self.record.note(at, Some(3), "the network cuts broker 3 off from brokers 1 and 2");
            }
            700 => {
                self.replicas[2].isolated = false;
                self.record.net_healed(at);
            }
            1005 => self.crash_leader(t),
            1030 => self.elect(t, 1),
            1300 => {
                self.replicas[0].up = true;
                self.record.node_up(at, 1);
                self.record.role(at, PARTITION, 1, Role::Follower, self.leader_epoch);
                self.sample(t, 0);
                self.record.note(
                    at,
                    Some(1),
                    "broker 1 restarts and follows broker 2 at epoch 4; its log still holds the records only it had",
                );
            }
            _ => {}
        }
    }

    fn crash_leader(&mut self, t: u64) {
        let at = t as f64;
        let leader = &self.replicas[0];
        let on_followers = self.replicas[1..].iter().map(|r| r.log.len()).max().unwrap_or(0);
        let only_here: Vec<String> =
            (on_followers..leader.log.len()).map(|offset| offset.to_string()).collect();
        self.replicas[0].up = false;
        self.leader = None;
        self.record.node_down(at, 1, "power loss");
        self.record.role(at, PARTITION, 1, Role::None, self.leader_epoch);
        self.record.note(
            at,
            Some(1),
            &format!(
                "broker 1 loses power; offsets {} were acknowledged (acks=1) but no follower had fetched them",
                only_here.join(" and ")
            ),
        );
    }

    fn elect(&mut self, t: u64, index: usize) {
        let at = t as f64;
        self.leader_epoch += 1;
        self.leader = Some(index);
        for (other, replica) in self.replicas.iter_mut().enumerate() {
            replica.last_fetch_ms = t;
            if replica.up {
                let role = if other == index { Role::Leader } else { Role::Follower };
                self.record.role(at, PARTITION, replica.node, role, self.leader_epoch);
            }
        }
        let log_end_offset = self.replicas[index].log.len();
        self.record.note(
            at,
            Some(self.replicas[index].node),
            &format!(
                "broker {} becomes leader at epoch {} with log end offset {log_end_offset}: the next records take offsets {log_end_offset} onwards again",
                self.replicas[index].node, self.leader_epoch
            ),
        );
    }

    fn serving_leader(&self) -> Option<usize> {
        self.leader.filter(|&l| self.replicas[l].up && !self.replicas[l].paused && !self.replicas[l].isolated)
    }

    fn send(&mut self, t: u64) {
        let at = t as f64;
        let value = format!("{PRODUCER}-{}", self.sent);
        self.sent += 1;
        let Some(leader) = self.serving_leader() else {
            // The producer still believes broker 1 leads: its request times out, outcome unknown.
            self.record.client_op(ClientOp {
                t_invoke_ms: at,
                t_complete_ms: at + 30.0,
                process: PRODUCER,
                partition: PARTITION.into(),
                kind: "send".into(),
                outcome: OpOutcome::Indefinite,
                offsets: Vec::new(),
                acks: Some("1".into()),
            });
            self.record.note(
                at,
                None,
                &format!("the send of {value} to broker 1 times out: its outcome is unknown"),
            );
            return;
        };
        let offset = self.replicas[leader].log.len() as i64;
        if let Some((_, old, by, epoch)) = self.acknowledged.iter().find(|(o, ..)| *o == offset) {
            self.overwritten.push((offset, t));
            self.record.note(
                at,
                Some(self.replicas[leader].node),
                &format!(
                    "offset {offset} is written again with {value}; {old}, acknowledged there by broker {by} at epoch {epoch}, is gone"
                ),
            );
        }
        self.replicas[leader].log.push(value.clone());
        let node = self.replicas[leader].node;
        self.acknowledged.push((offset, value.clone(), node, self.leader_epoch));
        self.record.client_op(ClientOp {
            t_invoke_ms: at,
            t_complete_ms: at + 2.0,
            process: PRODUCER,
            partition: PARTITION.into(),
            kind: "send".into(),
            outcome: OpOutcome::Ok,
            offsets: vec![offset],
            acks: Some("1".into()),
        });
        if (960..1010).contains(&t) {
            self.record.note(
                at,
                Some(node),
                &format!(
                    "broker {node} (leader, epoch {}) acknowledges {value} at offset {offset} with acks=1, before any follower has it",
                    self.leader_epoch
                ),
            );
        }
        self.sample(t, leader);
    }

    /// A follower fetches from the leader: first it truncates its log where it diverges from the
    /// leader's (as Kafka does with the leader epoch's end offset), then it copies what it lacks.
    fn fetch(&mut self, t: u64, index: usize) {
        let Some(leader) = self.serving_leader() else { return };
        let follower = &self.replicas[index];
        if index == leader || !follower.up || follower.paused || follower.isolated {
            return;
        }
        let leader_log = self.replicas[leader].log.clone();
        let common = follower.log.iter().zip(&leader_log).take_while(|(a, b)| a == b).count();
        if common < self.replicas[index].log.len() {
            let node = self.replicas[index].node;
            let removed = self.replicas[index].log.len() - common;
            self.replicas[index].log.truncate(common);
            self.sample(t, index);
            self.record.note(
                t as f64,
                Some(node),
                &format!("broker {node} truncates its log to offset {common}, removing {removed} records the new leader never had"),
            );
        }
        let leader_high_watermark = self.replicas[leader].high_watermark;
        let replica = &mut self.replicas[index];
        replica.log = leader_log;
        replica.last_fetch_ms = t;
        replica.high_watermark = leader_high_watermark.min(replica.log.len() as i64);
        self.sample(t + 1, index);
    }

    /// The leader's high watermark: the smallest log end offset among the in-sync replicas (the
    /// leader and every follower that fetched recently); it never goes back.
    fn advance_high_watermark(&mut self, t: u64) {
        let Some(leader) = self.serving_leader() else { return };
        let in_sync = self.replicas.iter().enumerate().filter(|(index, replica)| {
            *index == leader || (replica.up && t.saturating_sub(replica.last_fetch_ms) <= REPLICA_LAG_MS)
        });
        let lowest = in_sync.map(|(_, replica)| replica.log.len() as i64).min().unwrap_or(0);
        if lowest > self.replicas[leader].high_watermark {
            self.replicas[leader].high_watermark = lowest;
            self.sample(t, leader);
        }
    }

    fn poll(&mut self, t: u64) {
        let Some(leader) = self.serving_leader() else {
            self.record.client_op(ClientOp {
                t_invoke_ms: t as f64,
                t_complete_ms: t as f64 + 1.0,
                process: CONSUMER,
                partition: PARTITION.into(),
                kind: "poll".into(),
                outcome: OpOutcome::Failed,
                offsets: Vec::new(),
                acks: None,
            });
            return;
        };
        let high_watermark = self.replicas[leader].high_watermark;
        let offsets: Vec<i64> = (self.consumer_position..high_watermark).collect();
        self.consumer_position = high_watermark.max(self.consumer_position);
        self.record.client_op(ClientOp {
            t_invoke_ms: t as f64,
            t_complete_ms: t as f64 + 1.0,
            process: CONSUMER,
            partition: PARTITION.into(),
            kind: "poll".into(),
            outcome: OpOutcome::Ok,
            offsets,
            acks: None,
        });
    }

    fn final_read(&mut self, t: u64) {
        let at = t as f64;
        let Some(leader) = self.serving_leader() else { return };
        let log = self.replicas[leader].log.clone();
        self.record.client_op(ClientOp {
            t_invoke_ms: at - 5.0,
            t_complete_ms: at,
            process: CONSUMER + 1,
            partition: PARTITION.into(),
            kind: "final-read".into(),
            outcome: OpOutcome::Ok,
            offsets: (0..log.len() as i64).collect(),
            acks: None,
        });
        let mut lost = Vec::new();
        for (offset, value, by, epoch) in &self.acknowledged {
            let found = log.get(*offset as usize);
            if found == Some(value) {
                continue;
            }
            let when = self.overwritten.iter().find(|(o, _)| o == offset).map(|(_, when)| *when as f64);
            let detail = format!(
                "{value} acknowledged at partition {PARTITION} offset {offset} (acks=1) by broker {by}, leader at epoch {epoch}, is missing from the final read: the offset holds {}",
                found.map_or("nothing", String::as_str)
            );
            self.record.anomaly(when, "lost-write-acks-1", &detail, Some(PARTITION), Some(*offset), false);
            lost.push(offset.to_string());
        }
        self.record.note(
            at,
            None,
            &format!("the final read finds other records at offsets {}: an acks=1 loss, Kafka's documented trade-off", lost.join(" and ")),
        );
        self.record.header.verdict = Some(VerdictSummary {
            ok: true,
            anomaly_kinds: Vec::new(),
            observation_kinds: vec!["lost-write-acks-1".into()],
        });
    }

    fn sample(&mut self, t: u64, index: usize) {
        let replica = &self.replicas[index];
        self.record.offsets(
            t as f64,
            PARTITION,
            replica.node,
            replica.log.len() as i64,
            replica.high_watermark,
        );
    }

    fn finish(self) -> RunRecord {
        self.record
    }
}
