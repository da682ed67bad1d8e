//! The checker: turns a run's history and the world's state invariants into a verdict.
//!
//! Anomaly names follow the Jepsen/Elle Kafka workload where one exists (`../shared/reference/
//! kafka-guarantees.md`):
//! - `lost-write` — an `acks=all` send was acknowledged at an offset, and the final read of the
//!   partition does not hold that value at that offset. Excused only by retention (the offset is
//!   below the final log start offset) or by injected durable damage (bit rot, a latent sector error,
//!   a misdirected write) in a segment at or below the offset. `acks=1` losses are reported as an
//!   observation (`lost-write-acks-1`), not a failure: that is Kafka's documented trade-off.
//! - `inconsistent-offsets` — two different values were seen at one offset (across polls, final
//!   reads and `acks=all` acknowledgements), unless injected damage explains it.
//! - `phantom-read` — a read returned a value no producer ever sent.
//! - `failed-write-visible` — a send that definitely failed was read.
//! - `poll-skip` — a consumer's fetch skipped offsets (its next record was not the one it asked
//!   for); `corrupt-read` — a fetched batch failed its CRC (the broker must never serve one).
//! - `duplicate` — one value at two offsets. Without idempotence a retried batch may be appended
//!   twice, so this is an observation.
//! - Liveness: `final-read-incomplete` — a final consumer did not finish within the bound (only in
//!   liveness mode; in safety-only mode unlimited faults may legitimately stop progress, and
//!   lost writes are then judged only on partitions whose final read finished).
//! - State invariants come from the world: `corrupt-log-after-recovery`, `high-watermark-regressed`,
//!   `event-budget-exceeded`.

use std::collections::{BTreeMap, BTreeSet};

use seedlog_core::protocol::Acks;

use crate::client::{value_id, ClientAnomaly};
use crate::history::{History, OpKind, OpType};

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

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Anomaly {
    pub kind: String,
    pub detail: String,
}

impl Anomaly {
    pub fn new(kind: &str, detail: String) -> Anomaly {
        Anomaly { kind: kind.to_string(), detail }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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

pub struct CheckInput<'a> {
    pub history: &'a History,
    pub client_anomalies: Vec<ClientAnomaly>,
    pub state_anomalies: Vec<Anomaly>,
    /// Per partition, the lowest offset injected durable damage could have touched.
    pub damaged_from: BTreeMap<u32, i64>,
    /// Per partition, the highest log start offset observed (retention deleted what is below).
    pub log_start: BTreeMap<u32, i64>,
    pub final_reads_done: BTreeMap<u32, bool>,
    /// The offset each partition's final read reached (finished or not): below it the partition is
    /// judged; above it nothing can be said (the high watermark may have moved on since).
    pub final_read_reached: BTreeMap<u32, i64>,
    pub liveness_required: bool,
}

/// At most this many anomalies of one kind are listed; the rest are counted.
const LISTED_PER_KIND_MAX: usize = 5;

pub fn check(input: &CheckInput<'_>) -> Verdict {
    let mut report = Report::default();
    for anomaly in &input.state_anomalies {
        report.fail(&anomaly.kind, anomaly.detail.clone());
    }
    for anomaly in &input.client_anomalies {
        report.fail(anomaly.kind, anomaly.detail.clone());
    }
    let excused =
        |partition: u32, offset: i64| input.damaged_from.get(&partition).is_some_and(|from| offset >= *from);

    // What was sent, and how each send ended.
    let mut sent: BTreeSet<ValueId> = BTreeSet::new();
    let mut failed: BTreeSet<ValueId> = BTreeSet::new();
    let mut acknowledged: Vec<(u32, i64, ValueId, Acks)> = Vec::new();
    for op in &input.history.ops {
        if op.kind != OpKind::Send {
            continue;
        }
        for (offset, value) in &op.records {
            let id = ValueId::parse(value);
            match op.op_type {
                OpType::Invoke => {
                    sent.insert(id);
                }
                OpType::Fail => {
                    failed.insert(id);
                }
                OpType::Ok => acknowledged.push((op.partition, *offset, id, op.acks.unwrap_or(Acks::All))),
                OpType::Info => {}
            }
        }
    }

    // Everything read, by (partition, offset); and where each value was read.
    let mut at_offset: BTreeMap<(u32, i64), BTreeSet<ValueId>> = BTreeMap::new();
    let mut offsets_of: BTreeMap<ValueId, BTreeSet<(u32, i64)>> = BTreeMap::new();
    let mut final_read: BTreeMap<(u32, i64), ValueId> = BTreeMap::new();
    for op in &input.history.ops {
        if !matches!(op.kind, OpKind::Poll | OpKind::FinalRead) {
            continue;
        }
        for (offset, value) in &op.records {
            let id = ValueId::parse(value);
            if !sent.contains(&id) {
                report.fail(
                    "phantom-read",
                    format!("partition {} offset {offset}: {value:?} was never sent", op.partition),
                );
            }
            if failed.contains(&id) {
                report.fail(
                    "failed-write-visible",
                    format!(
                        "partition {} offset {offset}: {id} was sent and definitely failed",
                        op.partition
                    ),
                );
            }
            at_offset.entry((op.partition, *offset)).or_default().insert(id);
            offsets_of.entry(id).or_default().insert((op.partition, *offset));
            if op.kind == OpKind::FinalRead {
                // Finished (ok) or cut short by the liveness bound (info): both are final reads.
                final_read.insert((op.partition, *offset), id);
            }
        }
    }
    for (partition, offset, id, acks) in &acknowledged {
        if *acks == Acks::All {
            at_offset.entry((*partition, *offset)).or_default().insert(*id);
        }
    }

    for ((partition, offset), ids) in &at_offset {
        if ids.len() > 1 {
            let ids: Vec<String> = ids.iter().map(ValueId::to_string).collect();
            let detail = format!("partition {partition} offset {offset} held {ids:?}");
            if excused(*partition, *offset) {
                report.observe("inconsistent-offsets-after-damage", detail);
            } else {
                report.fail("inconsistent-offsets", detail);
            }
        }
    }
    for (id, places) in &offsets_of {
        if places.len() > 1 {
            report.observe("duplicate", format!("{id} at {places:?}"));
        }
    }

    // How far each partition's final read got: everything (finished), the offset an unfinished
    // one reached, or nothing (no final read at all).
    let judged_below =
        |partition: u32| -> i64 { input.final_read_reached.get(&partition).copied().unwrap_or(0) };

    // A value a consumer read must still be at that offset at the end (offset integrity, R21):
    // the broker serves only the durable prefix, so nothing it served may vanish.
    for op in &input.history.ops {
        if op.kind != OpKind::Poll {
            continue;
        }
        for (offset, value) in &op.records {
            let (partition, offset) = (op.partition, *offset);
            let retained_from = input.log_start.get(&partition).copied().unwrap_or(0);
            if offset >= judged_below(partition)
                || offset < retained_from
                || final_read.contains_key(&(partition, offset))
            {
                continue; // Unjudgeable, deleted by retention, or compared above (inconsistent-offsets).
            }
            let detail = format!(
                "partition {partition} offset {offset}: {value} was read, then the offset held nothing"
            );
            if excused(partition, offset) {
                report.observe("inconsistent-offsets-after-damage", detail);
            } else {
                report.fail("inconsistent-offsets", detail);
            }
        }
    }

    // Lost writes: judged against the final read of each partition, as far as it got.
    let mut acknowledged_all = 0;
    let mut confirmed = 0;
    for (partition, offset, id, acks) in &acknowledged {
        if *acks == Acks::All {
            acknowledged_all += 1;
        }
        if *offset >= judged_below(*partition) {
            continue;
        }
        if final_read.get(&(*partition, *offset)) == Some(id) {
            confirmed += u64::from(*acks == Acks::All);
            continue;
        }
        let log_start = input.log_start.get(partition).copied().unwrap_or(0);
        if *offset < log_start {
            continue; // Deleted by retention.
        }
        let detail = format!("{id} acknowledged at partition {partition} offset {offset} ({acks:?}) is missing from the final read");
        if *acks != Acks::All {
            report.observe("lost-write-acks-1", detail);
        } else if excused(*partition, *offset) {
            report.observe("lost-write-after-damage", detail);
        } else {
            report.fail("lost-write", detail);
        }
    }

    for (partition, done) in &input.final_reads_done {
        if !done {
            let detail =
                format!("partition {partition}: the final consumer did not finish within the liveness bound");
            if input.liveness_required {
                report.fail("final-read-incomplete", detail);
            } else {
                report.observe("final-read-incomplete", detail);
            }
        }
    }

    Verdict {
        ok: report.anomalies.is_empty(),
        anomalies: report.anomalies,
        observations: report.observations,
        acknowledged: acknowledged_all,
        confirmed,
    }
}

#[derive(Default)]
struct Report {
    anomalies: Vec<Anomaly>,
    observations: Vec<Anomaly>,
    counts: BTreeMap<(bool, String), usize>,
}

impl Report {
    fn fail(&mut self, kind: &str, detail: String) {
        if self.count(true, kind) <= LISTED_PER_KIND_MAX {
            self.anomalies.push(Anomaly::new(kind, detail));
        }
    }

    fn observe(&mut self, kind: &str, detail: String) {
        if self.count(false, kind) <= LISTED_PER_KIND_MAX {
            self.observations.push(Anomaly::new(kind, detail));
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
            time_ms: 0.0,
            process: 0,
            kind,
            op_type,
            partition,
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            acks,
            error: None,
        }
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
        }
    }

    fn kinds(anomalies: &[Anomaly]) -> Vec<&str> {
        anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    fn sent_and_acked(history: &mut History, acks: Acks) {
        history.push(op(OpKind::Send, OpType::Invoke, 0, &[(-1, "0-0:x"), (-1, "0-1:x")], Some(acks)));
        history.push(op(OpKind::Send, OpType::Ok, 0, &[(0, "0-0:x"), (1, "0-1:x")], Some(acks)));
    }

    #[test]
    fn a_clean_history_passes() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[(0, "0-0:x"), (1, "0-1:x")], None));
        let verdict = check(&input(&history));
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!((verdict.acknowledged, verdict.confirmed), (2, 2));
    }

    #[test]
    fn a_missing_acknowledged_record_is_a_lost_write_unless_excused() {
        let mut history = History::default();
        sent_and_acked(&mut history, Acks::All);
        history.push(op(OpKind::FinalRead, OpType::Ok, 0, &[(0, "0-0:x")], None));
        let verdict = check(&input(&history));
        assert_eq!(kinds(&verdict.anomalies), ["lost-write"]);

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
}
