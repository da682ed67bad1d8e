//! The checker: turns a run's history and the world's state invariants into a verdict.
//!
//! Anomaly names follow the Jepsen/Elle Kafka workload (`../shared/reference/kafka-guarantees.md`,
//! section C); every anomaly carries the partition, the offset and the simulated time at which it
//! was detected, where those exist:
//! - `lost-write` — a send was acknowledged at an offset, a final read of the partition got past
//!   that offset, and it does not hold that value there. Excused by retention (the offset is below
//!   the final log start offset).
//! - `unseen` — acknowledged records no read (poll or final read) ever returned, counted.
//! - `duplicate` — one value at two offsets. Without idempotence a retried batch may be appended
//!   twice, so this is always an observation.
//! - `inconsistent-offsets` — two different values at one offset (across polls, final reads and
//!   `acks=all` acknowledgements), or a value a consumer read that the final read no longer holds.
//! - `nonmonotonic-send` — one producer's send to a partition, invoked after an earlier send of
//!   the same producer to that partition was acknowledged, was acknowledged at a lower offset.
//! - `nonmonotonic-poll` — a consumer's poll returned an offset at or below one it had already
//!   read, with no reset or truncation recorded between them (within one poll or across polls).
//! - `poll-skip` — a consumer's next record came after a gap, and other reads (or `acks=all`
//!   acknowledgements) show that the gap holds records.
//! - `phantom-read` — a read returned a value no producer ever sent.
//! - `failed-write-visible` (Elle's G1a) — a send that definitely failed was read.
//! - `corrupt-read` — a fetched batch failed its CRC (the broker must never serve one).
//! - Liveness: `final-read-incomplete` — a final consumer did not finish within the bound (only in
//!   liveness mode; in safety-only mode unlimited faults may legitimately stop progress, and
//!   partitions are judged as far as their final read got).
//! - State invariants come from the world: `corrupt-log-after-recovery`, `high-watermark-regressed`,
//!   `event-budget-exceeded`.
//!
//! A loss-class anomaly (every kind above that records going missing or moving can cause:
//! lost-write, inconsistent-offsets, nonmonotonic-send, nonmonotonic-poll, poll-skip) is a
//! failure unless the run's settings allow the loss; then it is an observation whose kind is
//! suffixed with why, checked in this order:
//! - `-acks-1` / `-acks-0`: the write was made with `acks=1` (or `0`): Kafka's documented trade-off;
//! - `-after-damage`: injected durable damage (bit rot, a latent sector error, a misdirected
//!   write) hit the partition before the anomaly was detected;
//! - `-unclean-election`, `-min-insync-1`: the topic's unsafe settings ([`Excuses::unsafe_settings`]);
//! - `-flush-never` / `-flush-interval`: the topic does not sync every batch and every replica of
//!   the partition lost power (a crash, not a clean shutdown) after the record was sent — a
//!   necessary condition for such a loss.

use std::collections::{BTreeMap, BTreeSet};

use seedlog_core::protocol::Acks;

use crate::client::{value_id, ClientAnomaly};
use crate::history::{History, Op, OpKind, OpType};

/// A value's id, `"{process}-{n}"`, as numbers: compared millions of times per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ValueId(u32, u64);

impl ValueId {
    /// Anything that is not a producer's id (a phantom) maps to a reserved process number.
    fn parse(text: &str) -> ValueId {
        let id = value_id(text);
        let parsed = id.split_once('-').and_then(|(p, n)| Some(ValueId(p.parse().ok()?, n.parse().ok()?)));
        parsed.unwrap_or(ValueId(u32::MAX, crate::rng::fnv1a64(id.as_bytes())))
    }
}

impl std::fmt::Display for ValueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Anomaly {
    pub kind: String,
    pub detail: String,
    /// Where it happened, when known (the report charts place it there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The simulated time (ms) at which it was detected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<f64>,
}

impl Anomaly {
    pub fn new(kind: &str, detail: String) -> Anomaly {
        Anomaly { kind: kind.to_string(), detail, partition: None, offset: None, time_ms: None }
    }

    /// The same anomaly, placed at `partition`/`offset` and detected at `time_ms`.
    pub fn at(mut self, partition: u32, offset: Option<i64>, time_ms: f64) -> Anomaly {
        self.partition = Some(partition);
        self.offset = offset;
        self.time_ms = Some(time_ms);
        self
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// `true` when no failing anomaly was found.
    pub ok: bool,
    pub anomalies: Vec<Anomaly>,
    /// Reported, but not failures (acks=1 losses, duplicates, damage-excused losses).
    pub observations: Vec<Anomaly>,
    /// Acknowledged `acks=all` records, and how many the final reads confirmed.
    pub acknowledged: u64,
    pub confirmed: u64,
}

/// What may legitimately lose acknowledged `acks=all` records on each partition (the cluster
/// workload; empty for the log workload, whose single broker syncs before it acknowledges).
#[derive(Clone, Debug, Default)]
pub struct Excuses {
    /// The topic's unsafe settings: `(tag, setting)`, in the order a loss is attributed.
    pub unsafe_settings: Vec<(&'static str, String)>,
    /// `flush-never` or `flush-interval` when the topic does not sync every batch.
    pub flush_tag: Option<&'static str>,
    /// Per broker, the times (ms) it lost power (a crash, a halt's reboot), ascending.
    pub power_losses: BTreeMap<u32, Vec<f64>>,
    /// Per partition, each in-sync replica set the metadata showed and from when (ms), in order.
    pub isr_history: BTreeMap<u32, Vec<(f64, Vec<u32>)>>,
    /// Per partition, when durable damage first hit one of its replicas (ms).
    pub damaged_at: BTreeMap<u32, f64>,
    /// Partitions whose final read could not finish because durable damage destroyed what it
    /// had to reach (no live replica's log got there).
    pub unreachable_final_reads: BTreeSet<u32>,
}

impl Excuses {
    /// Why a loss on `partition` of a record sent at `sent_ms` and noticed at `detected_ms` is
    /// allowed by the run's settings: `(tag, reason)`.
    fn why(&self, partition: u32, sent_ms: f64, detected_ms: f64) -> Option<(&'static str, String)> {
        if let Some(at) = self.damaged_at.get(&partition).filter(|at| **at <= detected_ms) {
            return Some(("after-damage", format!("durable damage hit a replica at {at:.3} ms")));
        }
        if let Some((tag, _)) = self.unsafe_settings.first() {
            let all: Vec<&str> = self.unsafe_settings.iter().map(|(_, s)| s.as_str()).collect();
            return Some((tag, format!("unsafe settings: {}", all.join(", "))));
        }
        let tag = self.flush_tag?;
        // Without a sync per batch, a record lives in page caches only: it is gone once every
        // replica that could lead lost power after it was sent. Those are the in-sync replicas
        // (unclean election is off here), so: some in-sync set the partition had between the
        // send and the detection, each of whose members lost power in that span and was not
        // added back (caught up again) between its power loss and that set. This is Kafka's own
        // trade-off (the case KIP-966's eligible leader replicas close), not a replication bug.
        let history = self.isr_history.get(&partition)?;
        let snapshot_at = |t: f64| history.iter().rposition(|(from, _)| *from <= t).unwrap_or(0);
        let lost_it = |broker: &u32, set: usize| {
            self.power_losses.get(broker).is_some_and(|times| {
                times.iter().any(|t| {
                    *t >= sent_ms
                        && *t <= detected_ms
                        && (snapshot_at(*t)..=set).all(|k| history[k].1.contains(broker))
                })
            })
        };
        let (from, isr) = (snapshot_at(sent_ms)..history.len())
            .take_while(|set| history[*set].0 <= detected_ms)
            .find(|set| {
                !history[*set].1.is_empty() && history[*set].1.iter().all(|broker| lost_it(broker, *set))
            })
            .map(|set| &history[set])?;
        Some((
            tag,
            format!(
                "every in-sync replica {isr:?} (from {:.3} ms) lost power after {sent_ms:.3} ms with {tag} (unsynced data lost)",
                from.max(sent_ms)
            ),
        ))
    }
}

pub struct CheckInput<'a> {
    pub history: &'a History,
    pub client_anomalies: Vec<ClientAnomaly>,
    pub state_anomalies: Vec<Anomaly>,
    /// Per partition, the lowest offset injected durable damage could have touched (log workload).
    pub damaged_from: BTreeMap<u32, i64>,
    /// Per partition, the highest log start offset observed (retention deleted what is below).
    pub log_start: BTreeMap<u32, i64>,
    pub final_reads_done: BTreeMap<u32, bool>,
    /// The offset each partition's final read reached (finished or not): below it the partition is
    /// judged; above it nothing can be said (the high watermark may have moved on since).
    pub final_read_reached: BTreeMap<u32, i64>,
    pub liveness_required: bool,
    /// What the cluster workload's settings and faults excuse.
    pub excuses: Excuses,
    /// When the run ended: the detection time of what is judged at the end (ms).
    pub end_ms: f64,
}

/// At most this many anomalies of one kind are listed; the rest are counted.
const LISTED_PER_KIND_MAX: usize = 5;

/// A loss-class anomaly, before it is judged a failure or an observation.
struct Loss<'a> {
    kind: &'a str,
    partition: u32,
    offset: i64,
    /// The acks of the write whose loss would explain it (`All` for reads).
    acks: Acks,
    /// When the record involved was sent (for the power-loss excuse).
    sent_ms: f64,
    detected_ms: f64,
    detail: String,
}

/// Everything the history says, indexed once.
struct Facts {
    /// Every value invoked, and when its send was invoked.
    sent: BTreeMap<ValueId, f64>,
    failed: BTreeSet<ValueId>,
    /// Acknowledged records: partition, offset, value, acks, when the send was invoked, when acked.
    acknowledged: Vec<(u32, i64, ValueId, Acks, f64, f64)>,
    /// Everything read and `acks=all`-acknowledged, by (partition, offset); with the earliest time.
    at_offset: BTreeMap<(u32, i64), (BTreeSet<ValueId>, f64)>,
    offsets_of: BTreeMap<ValueId, BTreeSet<(u32, i64)>>,
    final_read: BTreeMap<(u32, i64), ValueId>,
    read: BTreeSet<ValueId>,
}

pub fn check(input: &CheckInput<'_>) -> Verdict {
    let mut report = Report::default();
    for anomaly in &input.state_anomalies {
        report.fail(anomaly.clone());
    }
    for anomaly in &input.client_anomalies {
        report.fail(Anomaly::new(anomaly.kind, anomaly.detail.clone()));
    }
    let facts = index(input, &mut report);

    for ((partition, offset), (ids, first_ms)) in &facts.at_offset {
        if ids.len() > 1 {
            let ids: Vec<String> = ids.iter().map(ValueId::to_string).collect();
            let detail = format!("partition {partition} offset {offset} held {ids:?}");
            let loss = Loss {
                kind: "inconsistent-offsets",
                partition: *partition,
                offset: *offset,
                acks: Acks::All,
                sent_ms: *first_ms,
                detected_ms: input.end_ms,
                detail,
            };
            judge(input, &mut report, loss);
        }
    }
    for (id, places) in &facts.offsets_of {
        if places.len() > 1 {
            let (partition, offset) = *places.iter().nth(1).expect("two places");
            report.observe(Anomaly::new("duplicate", format!("{id} at {places:?}")).at(
                partition,
                Some(offset),
                input.end_ms,
            ));
        }
    }
    check_read_values_stay(input, &facts, &mut report);
    check_sends_are_monotonic(input, &mut report);
    check_polls_are_monotonic(input, &facts, &mut report);
    let (acknowledged, confirmed) = check_lost_writes(input, &facts, &mut report);

    for (partition, done) in &input.final_reads_done {
        if !done {
            let anomaly = Anomaly::new(
                "final-read-incomplete",
                format!("partition {partition}: the final consumer did not finish within the liveness bound"),
            )
            .at(*partition, input.final_read_reached.get(partition).copied(), input.end_ms);
            // Durable damage to the partition's replicas may have destroyed what it was to read.
            if input.liveness_required && !input.excuses.unreachable_final_reads.contains(partition) {
                report.fail(anomaly);
            } else {
                report.observe(anomaly);
            }
        }
    }

    Verdict {
        ok: report.anomalies.is_empty(),
        anomalies: report.anomalies,
        observations: report.observations,
        acknowledged,
        confirmed,
    }
}

/// Indexes the history: what was sent and how each send ended, what was read where.
fn index(input: &CheckInput<'_>, report: &mut Report) -> Facts {
    let mut facts = Facts {
        sent: BTreeMap::new(),
        failed: BTreeSet::new(),
        acknowledged: Vec::new(),
        at_offset: BTreeMap::new(),
        offsets_of: BTreeMap::new(),
        final_read: BTreeMap::new(),
        read: BTreeSet::new(),
    };
    for op in input.history.ops.iter().filter(|op| op.kind == OpKind::Send) {
        for (offset, value) in &op.records {
            let id = ValueId::parse(value);
            match op.op_type {
                OpType::Invoke => {
                    facts.sent.entry(id).or_insert(op.time_ms);
                }
                OpType::Fail => {
                    facts.failed.insert(id);
                }
                OpType::Ok => {
                    let invoked = facts.sent.get(&id).copied().unwrap_or(op.time_ms);
                    let acks = op.acks.unwrap_or(Acks::All);
                    facts.acknowledged.push((op.partition, *offset, id, acks, invoked, op.time_ms));
                }
                OpType::Info => {}
            }
        }
    }
    for op in &input.history.ops {
        if !matches!(op.kind, OpKind::Poll | OpKind::FinalRead) {
            continue;
        }
        for (offset, value) in &op.records {
            let id = ValueId::parse(value);
            let place = Anomaly::new("", String::new()).at(op.partition, Some(*offset), op.time_ms);
            if !facts.sent.contains_key(&id) {
                report.fail(Anomaly {
                    kind: "phantom-read".into(),
                    detail: format!("partition {} offset {offset}: {value:?} was never sent", op.partition),
                    ..place.clone()
                });
            }
            if facts.failed.contains(&id) {
                report.fail(Anomaly {
                    kind: "failed-write-visible".into(),
                    detail: format!(
                        "partition {} offset {offset}: {id} was sent and definitely failed",
                        op.partition
                    ),
                    ..place
                });
            }
            // A value read was there from some time after its send's invocation (an indefinite
            // send may have been appended long before anyone read it): a power loss since the
            // invocation may have taken it.
            let since = facts.sent.get(&id).copied().unwrap_or(op.time_ms).min(op.time_ms);
            let entry = facts.at_offset.entry((op.partition, *offset)).or_insert((BTreeSet::new(), since));
            entry.0.insert(id);
            entry.1 = entry.1.min(since);
            facts.offsets_of.entry(id).or_default().insert((op.partition, *offset));
            facts.read.insert(id);
            if op.kind == OpKind::FinalRead {
                // Finished (ok) or cut short by the liveness bound (info): both are final reads.
                facts.final_read.insert((op.partition, *offset), id);
            }
        }
    }
    // An acknowledged record existed from before its send's answer left the broker; the answer
    // may reach the client after a power loss that took the record, so its send's invocation is
    // when it was first there to lose.
    for (partition, offset, id, acks, sent_ms, _) in &facts.acknowledged {
        if *acks == Acks::All {
            let entry = facts.at_offset.entry((*partition, *offset)).or_insert((BTreeSet::new(), *sent_ms));
            entry.0.insert(*id);
            entry.1 = entry.1.min(*sent_ms);
        }
    }
    facts
}

/// Reports a loss-class anomaly as a failure, or as an observation tagged with what excuses it.
fn judge(input: &CheckInput<'_>, report: &mut Report, loss: Loss<'_>) {
    let anomaly = |kind: String, detail: String| {
        Anomaly::new(&kind, detail).at(loss.partition, Some(loss.offset), loss.detected_ms)
    };
    let tag = match loss.acks {
        Acks::Leader => Some(("acks-1", String::new())),
        Acks::None => Some(("acks-0", String::new())),
        Acks::All => {
            let damaged = input.damaged_from.get(&loss.partition).is_some_and(|from| loss.offset >= *from);
            if damaged {
                Some(("after-damage", String::new()))
            } else {
                input.excuses.why(loss.partition, loss.sent_ms, loss.detected_ms)
            }
        }
    };
    match tag {
        None => report.fail(anomaly(loss.kind.to_string(), loss.detail)),
        Some((tag, reason)) => {
            let detail = if reason.is_empty() { loss.detail } else { format!("{} ({reason})", loss.detail) };
            report.observe(anomaly(format!("{}-{tag}", loss.kind), detail));
        }
    }
}

/// A value a consumer read must still be at that offset at the end (offset integrity, R21): a
/// broker serves only what is committed, so nothing it served may vanish.
fn check_read_values_stay(input: &CheckInput<'_>, facts: &Facts, report: &mut Report) {
    for op in input.history.ops.iter().filter(|op| op.kind == OpKind::Poll) {
        for (offset, value) in &op.records {
            let (partition, offset) = (op.partition, *offset);
            let retained_from = input.log_start.get(&partition).copied().unwrap_or(0);
            if offset >= judged_below(input, partition)
                || offset < retained_from
                || facts.final_read.contains_key(&(partition, offset))
            {
                continue; // Unjudgeable, deleted by retention, or compared as inconsistent-offsets.
            }
            let loss = Loss {
                kind: "inconsistent-offsets",
                partition,
                offset,
                acks: Acks::All,
                sent_ms: op.time_ms,
                detected_ms: input.end_ms,
                detail: format!(
                    "partition {partition} offset {offset}: {value} was read, then the offset held nothing"
                ),
            };
            judge(input, report, loss);
        }
    }
}

/// How far a partition's final read got: everything, the offset an unfinished one reached, or
/// nothing (no final read at all).
fn judged_below(input: &CheckInput<'_>, partition: u32) -> i64 {
    input.final_read_reached.get(&partition).copied().unwrap_or(0)
}

/// `nonmonotonic-send`: a producer's send invoked after another of its sends to the same
/// partition was acknowledged must land above it. Sends that overlap in time are not ordered
/// (with several in flight and no idempotence, Kafka may reorder a retried batch).
fn check_sends_are_monotonic(input: &CheckInput<'_>, report: &mut Report) {
    /// An acknowledged offset, its value, acks, and when its send was invoked.
    type Acked = (i64, ValueId, Acks, f64);
    // Per (producer, partition): the highest acknowledged offset so far (the power-loss excuse
    // counts from its send's invocation, as for its lost write).
    let mut highest: BTreeMap<(u32, u32), Acked> = BTreeMap::new();
    // Per send (by its first value): the highest acknowledged offset when it was invoked, and when.
    let mut before: BTreeMap<ValueId, (Option<Acked>, f64)> = BTreeMap::new();
    for op in input.history.ops.iter().filter(|op| op.kind == OpKind::Send) {
        let Some((_, first)) = op.records.first() else { continue };
        let first = ValueId::parse(first);
        let key = (op.process, op.partition);
        match op.op_type {
            OpType::Invoke => {
                before.insert(first, (highest.get(&key).copied(), op.time_ms));
            }
            OpType::Ok => {
                let Some(lowest) = op.records.iter().map(|(offset, _)| *offset).min() else { continue };
                let (earlier, invoked_ms) = before.get(&first).copied().unwrap_or((None, op.time_ms));
                if let Some((earlier, earlier_id, acks, earlier_ms)) = earlier {
                    if lowest <= earlier {
                        let detail = format!(
                            "process {} partition {}: {first} was acknowledged at offset {lowest}, at or below {earlier_id} at {earlier}, acknowledged before {first} was sent",
                            op.process, op.partition
                        );
                        let loss = Loss {
                            kind: "nonmonotonic-send",
                            partition: op.partition,
                            offset: lowest,
                            acks,
                            sent_ms: earlier_ms,
                            detected_ms: op.time_ms,
                            detail,
                        };
                        judge(input, report, loss);
                    }
                }
                let (top, top_value) = op
                    .records
                    .iter()
                    .map(|(offset, value)| (*offset, ValueId::parse(value)))
                    .max()
                    .expect("a send has records");
                let acks = op.acks.unwrap_or(Acks::All);
                let entry = highest.entry(key).or_insert((top, top_value, acks, invoked_ms));
                if top > entry.0 {
                    *entry = (top, top_value, acks, invoked_ms);
                }
            }
            OpType::Fail | OpType::Info => {}
        }
    }
}

/// `nonmonotonic-poll` and `poll-skip`: each consumer's reads of a partition move forward one
/// record at a time, unless a reset or a truncation it recorded moved it.
fn check_polls_are_monotonic(input: &CheckInput<'_>, facts: &Facts, report: &mut Report) {
    let mut last: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    for op in &input.history.ops {
        let key = (op.process, op.partition);
        match op.kind {
            OpKind::Reset | OpKind::Truncation => {
                last.remove(&key);
            }
            OpKind::Poll => {
                for (offset, _) in &op.records {
                    if let Some(previous) = last.get(&key).copied() {
                        check_step(input, facts, report, op, previous, *offset);
                    }
                    last.insert(key, *offset);
                }
            }
            OpKind::Send | OpKind::FinalRead => {}
        }
    }
}

fn check_step(input: &CheckInput<'_>, facts: &Facts, report: &mut Report, op: &Op, previous: i64, next: i64) {
    let partition = op.partition;
    let kind = if next <= previous {
        "nonmonotonic-poll"
    } else if next > previous + 1
        && facts.at_offset.range((partition, previous + 1)..(partition, next)).next().is_some()
    {
        "poll-skip"
    } else {
        return;
    };
    let detail = format!(
        "process {} partition {partition}: read offset {next} right after {previous}, with no reset or truncation between",
        op.process
    );
    let loss = Loss {
        kind,
        partition,
        offset: next,
        acks: Acks::All,
        sent_ms: op.time_ms,
        detected_ms: op.time_ms,
        detail,
    };
    judge(input, report, loss);
}

/// Lost writes: judged against the final read of each partition, as far as it got. Returns the
/// acknowledged `acks=all` records and how many the final reads confirmed.
fn check_lost_writes(input: &CheckInput<'_>, facts: &Facts, report: &mut Report) -> (u64, u64) {
    let mut acknowledged_all = 0;
    let mut confirmed = 0;
    let mut unseen: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for (partition, offset, id, acks, invoked_ms, _) in &facts.acknowledged {
        if *acks == Acks::All {
            acknowledged_all += 1;
        }
        if !facts.read.contains(id) {
            let entry = unseen.entry(*partition).or_default();
            entry.0 += 1;
            entry.1 += u64::from(*acks == Acks::All);
        }
        if *offset >= judged_below(input, *partition) {
            continue;
        }
        if facts.final_read.get(&(*partition, *offset)) == Some(id) {
            confirmed += u64::from(*acks == Acks::All);
            continue;
        }
        let log_start = input.log_start.get(partition).copied().unwrap_or(0);
        if *offset < log_start {
            continue; // Deleted by retention.
        }
        let loss = Loss {
            kind: "lost-write",
            partition: *partition,
            offset: *offset,
            acks: *acks,
            sent_ms: *invoked_ms,
            detected_ms: input.end_ms,
            detail: format!(
                "{id} acknowledged at partition {partition} offset {offset} ({acks:?}) is missing from the final read"
            ),
        };
        judge(input, report, loss);
    }
    for (partition, (count, all)) in unseen {
        report.observe(
            Anomaly::new(
                "unseen",
                format!("partition {partition}: {count} acknowledged records ({all} with acks=all) were never read"),
            )
            .at(partition, None, input.end_ms),
        );
    }
    (acknowledged_all, confirmed)
}

#[derive(Default)]
struct Report {
    anomalies: Vec<Anomaly>,
    observations: Vec<Anomaly>,
    counts: BTreeMap<(bool, String), usize>,
}

impl Report {
    fn fail(&mut self, anomaly: Anomaly) {
        if self.count(true, &anomaly.kind) <= LISTED_PER_KIND_MAX {
            self.anomalies.push(anomaly);
        }
    }

    fn observe(&mut self, anomaly: Anomaly) {
        if self.count(false, &anomaly.kind) <= LISTED_PER_KIND_MAX {
            self.observations.push(anomaly);
        }
    }

    fn count(&mut self, failing: bool, kind: &str) -> usize {
        let count = self.counts.entry((failing, kind.to_string())).or_default();
        *count += 1;
        *count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn op(kind: OpKind, op_type: OpType, partition: u32, records: &[(i64, &str)], acks: Option<Acks>) -> Op {
        Op {
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            acks,
            ..Op::new(0.0, 0, kind, op_type, partition)
        }
    }

    /// An op of `process` at `time_ms`.
    fn op_by(process: u32, time_ms: f64, op: Op) -> Op {
        Op { process, time_ms, ..op }
    }

    fn input(history: &History) -> CheckInput<'_> {
        CheckInput {
            history,
            client_anomalies: Vec::new(),
            state_anomalies: Vec::new(),
            damaged_from: BTreeMap::new(),
            log_start: BTreeMap::new(),
            final_reads_done: BTreeMap::from([(0, true)]),
            final_read_reached: BTreeMap::from([(0, i64::MAX)]),
            liveness_required: true,
            excuses: Excuses::default(),
            end_ms: 0.0,
        }
    }

    /// The kinds, without the `unseen` counts (tested on their own).
    fn kinds(anomalies: &[Anomaly]) -> Vec<&str> {
        anomalies.iter().map(|a| a.kind.as_str()).filter(|kind| *kind != "unseen").collect()
    }

    fn sent_and_acked(history: &mut History, acks: Acks) {
        history.push(op(OpKind::Send, OpType::Invoke, 0, &[(-1, "0-0:x"), (-1, "0-1:x")], Some(acks)));
        history.push(op(OpKind::Send, OpType::Ok, 0, &[(0, "0-0:x"), (1, "0-1:x")], Some(acks)));
    }

    fn send(history: &mut History, process: u32, time_ms: f64, records: &[(i64, &str)], acks: Acks) {
        let invoked: Vec<(i64, &str)> = records.iter().map(|(_, v)| (-1, *v)).collect();
        history.push(op_by(process, time_ms, op(OpKind::Send, OpType::Invoke, 0, &invoked, Some(acks))));
        history.push(op_by(process, time_ms + 1.0, op(OpKind::Send, OpType::Ok, 0, records, Some(acks))));
    }

    fn poll(history: &mut History, process: u32, time_ms: f64, records: &[(i64, &str)]) {
        history.push(op_by(process, time_ms, op(OpKind::Poll, OpType::Ok, 0, records, None)));
    }

    fn final_read(history: &mut History, records: &[(i64, &str)]) {
        history.push(op_by(9, 100.0, op(OpKind::FinalRead, OpType::Ok, 0, records, None)));
    }

    #[test]
    fn a_clean_history_passes() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[(0, "0-0:x"), (1, "0-1:x")], None));
        let verdict = check(&input(&history));
        assert!(verdict.ok, "{verdict:?}");
        assert!(verdict.observations.is_empty(), "{verdict:?}");
        assert_eq!((verdict.acknowledged, verdict.confirmed), (2, 2));
    }

    #[test]
    fn a_missing_acknowledged_record_is_a_lost_write_unless_excused() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[(0, "0-0:x")], None));
        let verdict = check(&input(&history));
        assert_eq!(kinds(&verdict.anomalies), ["lost-write"]);
        let lost = &verdict.anomalies[0];
        assert_eq!((lost.partition, lost.offset, lost.time_ms), (Some(0), Some(1), Some(0.0)));

        let mut damaged = input(&history);
        damaged.damaged_from.insert(0, 1);
        let verdict = check(&damaged);
        assert!(verdict.ok);
        assert_eq!(kinds(&verdict.observations), ["lost-write-after-damage"]);

        let mut retained = input(&history);
        retained.log_start.insert(0, 2);
        assert!(check(&retained).ok);
    }

    #[test]
    fn acks_1_losses_are_observed_not_failed() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::Leader);
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[], None));
        let verdict = check(&input(&history));
        assert!(verdict.ok);
        assert_eq!(kinds(&verdict.observations), ["lost-write-acks-1", "lost-write-acks-1"]);
    }

    #[test]
    fn unseen_records_are_counted_per_partition() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[(0, "0-0:x")], None));
        let verdict = check(&input(&history));
        let unseen: Vec<&Anomaly> = verdict.observations.iter().filter(|a| a.kind == "unseen").collect();
        assert_eq!(unseen.len(), 1);
        assert!(
            unseen[0].detail.contains("1 acknowledged records (1 with acks=all)"),
            "{}",
            unseen[0].detail
        );
    }

    #[test]
    fn two_values_at_one_offset_and_phantoms_and_failed_writes_are_caught() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        history.push(op(OpKind::Send, OpType::Invoke, 0, &[(-1, "1-0:y")], Some(Acks::All)));
        history.push(op(OpKind::Send, OpType::Fail, 0, &[(-1, "1-0:y")], Some(Acks::All)));
        history.push(op(OpKind::Poll, OpType::Ok, 0, &[(0, "0-0:x"), (1, "1-0:y"), (2, "9-9:z")], None));
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[(0, "0-0:x"), (1, "0-1:x")], None));
        let verdict = check(&input(&history));
        assert_eq!(
            kinds(&verdict.anomalies),
            // Offset 1 held two values; offset 2 was read, then held nothing.
            ["failed-write-visible", "phantom-read", "inconsistent-offsets", "inconsistent-offsets"]
        );
    }

    #[test]
    fn an_unfinished_final_read_fails_only_in_liveness_mode() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        let mut unfinished = input(&history);
        unfinished.final_reads_done.insert(0, false);
        unfinished.final_read_reached.insert(0, 0);
        assert_eq!(kinds(&check(&unfinished).anomalies), ["final-read-incomplete"]);
        let mut damaged = input(&history);
        damaged.final_reads_done.insert(0, false);
        damaged.final_read_reached.insert(0, 0);
        damaged.excuses.unreachable_final_reads.insert(0);
        assert!(check(&damaged).ok, "durable damage to the partition excuses an unfinished final read");
        unfinished.liveness_required = false;
        assert!(check(&unfinished).ok);
    }

    #[test]
    fn an_unfinished_final_read_is_judged_as_far_as_it_got() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        // Reached offset 1 and missing offset 0: a lost write even though the read did not finish.
        history.push(op(OpKind::FinalRead, OpType::Info, 0, &[], None));
        let mut unfinished = input(&history);
        unfinished.final_reads_done.insert(0, false);
        unfinished.liveness_required = false;
        unfinished.final_read_reached.insert(0, 1);
        assert_eq!(kinds(&check(&unfinished).anomalies), ["lost-write"]);
        unfinished.final_read_reached.insert(0, 0);
        assert!(check(&unfinished).ok);
    }

    #[test]
    fn a_read_value_that_later_vanishes_breaks_offset_integrity() {
        let mut history = History::default();
        history.push(op(OpKind::Send, OpType::Invoke, 0, &[(-1, "0-0:x")], Some(Acks::Leader)));
        history.push(op(OpKind::Send, OpType::Ok, 0, &[(0, "0-0:x")], Some(Acks::Leader)));
        history.push(op(OpKind::Poll, OpType::Ok, 0, &[(0, "0-0:x")], None));
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[], None));
        let verdict = check(&input(&history));
        assert_eq!(kinds(&verdict.anomalies), ["inconsistent-offsets"]);
    }

    #[test]
    fn one_value_at_two_offsets_is_an_observed_duplicate() {
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(0, "0-0")], Acks::All);
        // A retry of the same batch landed again at offset 1.
        final_read(&mut history, &[(0, "0-0"), (1, "0-0")]);
        let verdict = check(&input(&history));
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(kinds(&verdict.observations), ["duplicate"]);
        assert_eq!(verdict.observations[0].offset, Some(1));
    }

    #[test]
    fn a_later_send_landing_below_an_acknowledged_one_is_nonmonotonic() {
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(5, "0-0")], Acks::All);
        send(&mut history, 0, 3.0, &[(4, "0-1")], Acks::All);
        // Another producer's send below is no anomaly.
        send(&mut history, 1, 5.0, &[(3, "1-0")], Acks::All);
        final_read(&mut history, &[(3, "1-0"), (4, "0-1"), (5, "0-0")]);
        let verdict = check(&input(&history));
        assert_eq!(kinds(&verdict.anomalies), ["nonmonotonic-send"]);
        let anomaly = &verdict.anomalies[0];
        assert_eq!((anomaly.partition, anomaly.offset, anomaly.time_ms), (Some(0), Some(4), Some(4.0)));
    }

    #[test]
    fn overlapping_sends_may_land_in_either_order() {
        let mut history = History::default();
        let invoke = |v: &str| op(OpKind::Send, OpType::Invoke, 0, &[(-1, v)], Some(Acks::All));
        let ok = |o: i64, v: &str| op(OpKind::Send, OpType::Ok, 0, &[(o, v)], Some(Acks::All));
        history.push(invoke("0-0"));
        history.push(invoke("0-1"));
        history.push(ok(1, "0-0"));
        history.push(ok(0, "0-1"));
        final_read(&mut history, &[(0, "0-1"), (1, "0-0")]);
        assert!(check(&input(&history)).ok);
    }

    #[test]
    fn a_consumer_going_backwards_without_a_reset_is_a_nonmonotonic_poll() {
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(0, "0-0"), (1, "0-1"), (2, "0-2")], Acks::All);
        poll(&mut history, 1, 10.0, &[(0, "0-0"), (1, "0-1")]);
        poll(&mut history, 1, 11.0, &[(1, "0-1"), (2, "0-2")]);
        final_read(&mut history, &[(0, "0-0"), (1, "0-1"), (2, "0-2")]);
        let verdict = check(&input(&history));
        assert_eq!(kinds(&verdict.anomalies), ["nonmonotonic-poll"]);
        assert_eq!((verdict.anomalies[0].offset, verdict.anomalies[0].time_ms), (Some(1), Some(11.0)));

        // The same with a truncation (or a reset) recorded between: allowed.
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(0, "0-0"), (1, "0-1"), (2, "0-2")], Acks::All);
        poll(&mut history, 1, 10.0, &[(0, "0-0"), (1, "0-1")]);
        history.push(op_by(1, 10.5, op(OpKind::Truncation, OpType::Ok, 0, &[(2, ""), (1, "")], None)));
        poll(&mut history, 1, 11.0, &[(1, "0-1"), (2, "0-2")]);
        final_read(&mut history, &[(0, "0-0"), (1, "0-1"), (2, "0-2")]);
        assert!(check(&input(&history)).ok);
    }

    #[test]
    fn a_consumer_jumping_over_records_others_saw_is_a_poll_skip() {
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(0, "0-0"), (1, "0-1"), (2, "0-2")], Acks::All);
        poll(&mut history, 1, 10.0, &[(0, "0-0"), (2, "0-2")]);
        final_read(&mut history, &[(0, "0-0"), (1, "0-1"), (2, "0-2")]);
        let verdict = check(&input(&history));
        assert_eq!(kinds(&verdict.anomalies), ["poll-skip"]);
        assert_eq!(verdict.anomalies[0].offset, Some(2));

        // A gap nobody ever saw a record in (a batch of another kind, say) is no skip.
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(0, "0-0"), (2, "0-2")], Acks::All);
        poll(&mut history, 1, 10.0, &[(0, "0-0"), (2, "0-2")]);
        final_read(&mut history, &[(0, "0-0"), (2, "0-2")]);
        assert!(check(&input(&history)).ok);
    }

    #[test]
    fn unsafe_settings_turn_acks_all_losses_into_tagged_observations() {
        let mut history = History::default();
        send(&mut history, 0, 1.0, &[(0, "0-0"), (1, "0-1")], Acks::All);
        final_read(&mut history, &[(0, "0-0")]);
        let mut unclean = input(&history);
        unclean.excuses.unsafe_settings = vec![
            ("unclean-election", "unclean.leader.election.enable=true".into()),
            ("min-insync-1", "min.insync.replicas=1".into()),
        ];
        let verdict = check(&unclean);
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(kinds(&verdict.observations), ["lost-write-unclean-election"]);
        assert!(verdict.observations[0].detail.contains("min.insync.replicas=1"));
    }

    #[test]
    fn flush_never_losses_are_excused_only_after_every_in_sync_replica_lost_power() {
        let mut history = History::default();
        send(&mut history, 0, 10.0, &[(0, "0-0")], Acks::All);
        final_read(&mut history, &[]);
        let mut never = input(&history);
        never.end_ms = 100.0;
        never.excuses.flush_tag = Some("flush-never");
        never.excuses.isr_history.insert(0, vec![(0.0, vec![0, 1, 2]), (25.0, vec![0, 1])]);
        // Replica 2 lost power only before the send, and 1 not at all: the loss is not explained.
        never.excuses.power_losses = BTreeMap::from([(0, vec![20.0]), (2, vec![5.0])]);
        assert_eq!(kinds(&check(&never).anomalies), ["lost-write"]);
        // Broker 0 alone in sync, but it caught up again (rejoined) after its power loss.
        never
            .excuses
            .isr_history
            .insert(0, vec![(0.0, vec![0, 1, 2]), (22.0, vec![1, 2]), (30.0, vec![0, 1]), (60.0, vec![0])]);
        assert_eq!(kinds(&check(&never).anomalies), ["lost-write"]);
        // The in-sync set shrank to broker 0 alone (as a controlled shutdown of 1 would leave it),
        // and 0 had lost power after the send: nothing else could hold the record.
        never.excuses.isr_history.insert(0, vec![(0.0, vec![0, 1, 2]), (25.0, vec![0])]);
        assert_eq!(kinds(&check(&never).observations), ["lost-write-flush-never"]);
        // So does every member of the in-sync set losing power, though not at once.
        never.excuses.isr_history.insert(0, vec![(0.0, vec![0, 1, 2]), (25.0, vec![0, 1])]);
        never.excuses.power_losses = BTreeMap::from([(0, vec![20.0]), (1, vec![30.0]), (2, vec![5.0])]);
        let verdict = check(&never);
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(kinds(&verdict.observations), ["lost-write-flush-never"]);
        // Damage before the detection excuses it too, and says so first.
        never.excuses.damaged_at.insert(0, 50.0);
        assert_eq!(kinds(&check(&never).observations), ["lost-write-after-damage"]);
    }
}
