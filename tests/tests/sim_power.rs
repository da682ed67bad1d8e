//! Proof of power: the simulator's verdicts mean something only if it catches real bugs.
//!
//! Each planted bug (a `Plant`, costless in production) must be found by the default swarm within
//! 1,000 seeds, with the anomaly that bug causes; and weak settings (acks=1 with crashes) must be
//! seen losing data. The unplanted swarm must be clean.

use seedlog_core::env::Plant;
use seedlog_sim::plan::Plan;
use seedlog_sim::world::World;

/// The first seed (from 0) whose run with `plant` shows one of `expected_kinds`.
fn first_detection(plant: Plant, expected_kinds: &[&str]) -> Option<(u64, Vec<String>)> {
    (0..1_000).find_map(|seed| {
        let outcome = World::new(Plan::generate(seed, &[plant]), false).run();
        let kinds: Vec<String> = outcome.verdict.anomalies.iter().map(|a| a.kind.clone()).collect();
        kinds.iter().any(|kind| expected_kinds.contains(&kind.as_str())).then_some((seed, kinds))
    })
}

fn assert_found(plant: Plant, expected_kinds: &[&str]) {
    let (seed, kinds) = first_detection(plant, expected_kinds).unwrap_or_else(|| {
        panic!("{} not found within 1,000 seeds as any of {expected_kinds:?}", plant.name())
    });
    eprintln!("{} found at seed {seed}: {kinds:?}", plant.name());
}

#[test]
fn ack_before_sync_is_caught_as_lost_writes() {
    assert_found(Plant::AckBeforeSync, &["lost-write", "inconsistent-offsets"]);
}

#[test]
fn recovery_that_skips_the_crc_is_caught() {
    assert_found(Plant::RecoverySkipsCrc, &["corrupt-log-after-recovery"]);
}

#[test]
fn an_off_by_one_index_lookup_is_caught_as_skipped_records() {
    assert_found(Plant::IndexLookupOffByOne, &["poll-skip"]);
}

#[test]
fn recovery_that_drops_a_segment_is_caught_as_lost_writes_not_excused_as_retention() {
    assert_found(Plant::RecoveryDropsOldestSegment, &["lost-write"]);
}

#[test]
fn acks_1_is_seen_losing_data_and_acks_all_is_not() {
    let mut acks_1_losses = 0;
    for seed in 0..300 {
        let outcome = World::new(Plan::generate(seed, &[]), false).run();
        assert!(outcome.verdict.ok, "seed {seed} failed: {:?}", outcome.verdict.anomalies);
        acks_1_losses +=
            outcome.verdict.observations.iter().filter(|o| o.kind == "lost-write-acks-1").count();
    }
    assert!(acks_1_losses > 0, "no acks=1 loss observed in 300 seeds: the negative control has no power");
}
