//! The cluster workload: a KRaft cluster with a replicated topic, producers and consumers.
//!
//! - Determinism: a cluster seed replays with the same trace hash, and its plan file replays it.
//! - The workload does work: seeds acknowledge records and the final reads confirm them.
//! - The history round-trips through its JSON-lines format (`docs/history-format.md`).
//!
//! (The scenarios, negative controls included, run in `controller.rs`'s scenario test; the long
//! swarm runs in `scripts/test`.)

use seedlog_sim::history::Op;
use seedlog_sim::options::Workload;
use seedlog_sim::plan::Plan;

fn run(seed: u64) -> seedlog_sim::world::Outcome {
    seedlog_sim::run_plan(Plan::generate_for(Workload::Cluster, seed, &[]), Default::default(), false)
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
