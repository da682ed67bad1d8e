//! The cluster workload: a KRaft cluster with a replicated topic, producers and consumers.
//!
//! - Determinism: a cluster seed replays with the same trace hash, and its plan file replays it.
//! - The workload does work: seeds acknowledge records and the final reads confirm them.
//! - The history round-trips through its JSON-lines format (`docs/history-format.md`).
//! - Proof of power: each planted replication bug is found within 1,000 seeds, with the anomaly it
//!   causes, at a seed that passes without the plant; a short unplanted swarm is clean.
//!
//! (The scenarios, negative controls included, run in `controller.rs`'s scenario test; the long
//! swarm runs in `scripts/test`.)

use seedlog_core::env::Plant;
use seedlog_sim::history::Op;
use seedlog_sim::options::Workload;
use seedlog_sim::plan::Plan;

fn run(seed: u64) -> seedlog_sim::world::Outcome {
    run_planted(seed, &[])
}

fn run_planted(seed: u64, plants: &[Plant]) -> seedlog_sim::world::Outcome {
    seedlog_sim::run_plan(Plan::generate_for(Workload::Cluster, seed, plants), Default::default(), false)
}

/// The first seed (from 0) whose run with `plant` fails with one of `kinds`; that seed must pass
/// without the plant, so the plant and nothing else is what the checks caught.
fn assert_found(plant: Plant, kinds: &[&str]) {
    let found = (0..1_000).find_map(|seed| {
        let outcome = run_planted(seed, &[plant]);
        let shown: std::collections::BTreeSet<String> =
            outcome.verdict.anomalies.iter().map(|a| a.kind.clone()).collect();
        shown.iter().any(|kind| kinds.contains(&kind.as_str())).then_some((seed, shown))
    });
    let (seed, shown) =
        found.unwrap_or_else(|| panic!("{} not found within 1,000 seeds as any of {kinds:?}", plant.name()));
    eprintln!("{} found at seed {seed}: {shown:?}", plant.name());
    let unplanted = run(seed);
    assert!(
        unplanted.verdict.ok,
        "seed {seed} fails without the plant too: {:?}",
        unplanted.verdict.anomalies
    );
}

#[test]
fn truncating_to_the_high_watermark_on_becoming_follower_is_caught() {
    // The pre-KIP-101 bug: a follower cuts its log to its high watermark instead of finding
    // where it diverges by epoch, and a record the leader had committed above it disappears.
    assert_found(
        Plant::TruncateToHighWatermark,
        &["lost-write", "inconsistent-offsets", "replica-log-mismatch", "leader-missing-committed"],
    );
}

#[test]
fn acks_all_answered_below_min_insync_is_caught() {
    assert_found(Plant::AcksAllBelowMinIsr, &["under-replicated-ack", "lost-write"]);
}

/// Safe seeds that once failed, each for a reason fixed since (see the commit that added it).
#[test]
fn fixed_safe_seeds_stay_fixed() {
    for seed in [671, 6383, 7789, 8683] {
        let plan = Plan::generate_for(Workload::Safe, seed, &[]);
        let outcome = seedlog_sim::run_plan(plan, Default::default(), false);
        assert!(outcome.verdict.ok, "safe seed {seed} failed: {:?}", outcome.verdict.anomalies);
    }
}

#[test]
fn a_short_cluster_swarm_is_clean() {
    for seed in 0..40 {
        let outcome = run(seed);
        assert!(outcome.verdict.ok, "seed {seed} failed: {:?}", outcome.verdict.anomalies);
    }
}

#[test]
fn a_cluster_seed_replays_with_the_same_trace_hash() {
    for seed in [1, 3, 7] {
        let first = run(seed);
        assert_eq!(first.workload, Workload::Cluster);
        let second = run(seed);
        assert_eq!((first.trace_hash, first.events), (second.trace_hash, second.events), "seed {seed}");
    }
    assert_ne!(run(1).trace_hash, run(3).trace_hash);
}

#[test]
fn a_saved_cluster_plan_replays_the_seed_exactly() {
    let plan = Plan::generate_for(Workload::Cluster, 9, &[]);
    let reloaded = Plan::from_json(&plan.to_json()).expect("a saved plan loads");
    assert_eq!(reloaded, plan);
    let original = seedlog_sim::run_plan(plan, Default::default(), false);
    let replayed = seedlog_sim::run_plan(reloaded, Default::default(), false);
    assert_eq!((original.trace_hash, original.events), (replayed.trace_hash, replayed.events));
}

#[test]
fn cluster_seeds_acknowledge_records_and_the_final_reads_confirm_them() {
    let mut confirmed = 0;
    for seed in [1, 3, 7, 9] {
        let outcome = run(seed);
        confirmed += outcome.verdict.confirmed;
        let sends =
            outcome.history.ops.iter().filter(|op| op.kind == seedlog_sim::history::OpKind::Send).count();
        assert!(sends > 0, "seed {seed} sent nothing");
    }
    assert!(confirmed > 100, "only {confirmed} acks=all records confirmed across four seeds");
}

#[test]
fn the_history_round_trips_through_json_lines() {
    let outcome = run(1);
    let text = outcome.history.to_json_lines();
    let parsed: Vec<Op> =
        text.lines().map(|line| serde_json::from_str(line).expect("every line is an op")).collect();
    assert_eq!(parsed, outcome.history.ops);
    assert!(parsed.iter().any(|op| op.topic.as_deref() == Some("events") && !op.keys.is_empty()));
}
