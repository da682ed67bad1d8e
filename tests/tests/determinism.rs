//! A seed reproduces a run exactly: same seed, same trace hash — on this thread, on another
//! thread, after other seeds ran, and from a saved fault plan.

use seedlog_sim::plan::Plan;
use seedlog_sim::world::World;

fn hash_of(seed: u64) -> (String, u64) {
    let outcome = World::new(Plan::generate(seed, &[]), false).run();
    (outcome.trace_hash, outcome.events)
}

#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    for seed in (0..16).chain([12345, u64::MAX]) {
        let first = hash_of(seed);
        assert!(first.1 > 100, "seed {seed} ran only {} events", first.1);
        assert_eq!(first, hash_of(seed), "seed {seed} did not replay identically");
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let mut hashes: Vec<String> = (0..24).map(|seed| hash_of(seed).0).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 24, "two seeds produced the same trace");
}

#[test]
fn a_seed_replays_on_another_thread_and_after_other_seeds() {
    let alone = hash_of(42);
    for seed in 100..110 {
        hash_of(seed);
    }
    let after_others = hash_of(42);
    let on_another_thread = std::thread::spawn(|| hash_of(42)).join().expect("the run panicked");
    assert_eq!(alone, after_others);
    assert_eq!(alone, on_another_thread);
}

#[test]
fn a_saved_fault_plan_replays_the_seed_exactly() {
    for seed in [3, 9] {
        let plan = Plan::generate(seed, &[]);
        let reloaded = Plan::from_json(&plan.to_json()).expect("a saved plan loads");
        assert_eq!(plan, reloaded);
        assert_eq!(hash_of(seed).0, World::new(reloaded, false).run().trace_hash);
    }
}

#[test]
fn editing_the_fault_plan_changes_the_run() {
    let plan = (0..50)
        .map(|seed| Plan::generate(seed, &[]))
        .find(|plan| plan.faults.len() >= 2)
        .expect("some seed plans faults");
    let original = World::new(plan.clone(), false).run().trace_hash;
    let mut edited = plan;
    edited.faults.remove(0);
    assert_ne!(original, World::new(edited, false).run().trace_hash);
}

#[test]
fn a_malformed_plan_file_is_a_clear_error() {
    let error = Plan::from_json("{\"seed\": 1}").expect_err("an incomplete plan must not load");
    assert!(error.contains("not a Seedlog fault plan"), "{error}");
}

#[test]
fn turning_one_fault_kind_on_does_not_move_the_others() {
    for seed in 0..50 {
        let mut options = Plan::generate(seed, &[]).options;
        options.faults.crashes = true;
        options.faults.bit_rot = false;
        let without = Plan::from_options(options.clone());
        options.faults.bit_rot = true;
        let with = Plan::from_options(options);
        let not_rot = |plan: &Plan| -> Vec<_> {
            plan.faults
                .iter()
                .filter(|f| !matches!(f.fault, seedlog_sim::plan::Fault::BitRot { .. }))
                .cloned()
                .collect()
        };
        assert_eq!(not_rot(&without), not_rot(&with), "seed {seed}: bit rot moved other faults");
        assert!(with.faults.len() >= without.faults.len());
    }
}

/// An edit of a plan's JSON.
type PlanEdit = fn(&mut serde_json::Value);

#[test]
fn a_hand_edited_plan_that_cannot_run_is_refused_with_a_reason() {
    let plan = Plan::generate(5, &[]);
    let edits: [(&str, PlanEdit); 4] = [
        ("not a broker", |v| {
            v["faults"] =
                serde_json::json!([{"at_ms": 10, "fault": {"kind": "crash", "node": 99, "down_ms": 5}}])
        }),
        ("partitions", |v| v["options"]["broker"]["partitions"] = 0.into()),
        ("batch_records_max", |v| v["options"]["clients"]["producers"][0]["batch_records_max"] = 0.into()),
        ("probability", |v| v["options"]["net"]["loss_probability"] = 2.0.into()),
    ];
    for (expected, edit) in edits {
        let mut value: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
        edit(&mut value);
        let error = Plan::from_json(&value.to_string()).expect_err("an impossible plan must be refused");
        assert!(error.contains(expected), "{error}");
    }
    assert!(Plan::from_json(&plan.to_json()).is_ok());
}
