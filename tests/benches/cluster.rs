//! The cluster simulation's speed: the default 3-broker scenario (3 combined voters, a replicated
//! topic in the safe configuration, producers and consumers, every fault kind) with 60 simulated
//! seconds of chaos, one seed at a time on one thread.
//!
//! Target (issue 4): 60 simulated seconds with faults and at least 10,000 client operations in at
//! most 100 ms of wall time on one core. Prints figures; asserts nothing about time.
//!
//! `SEEDLOG_BENCH_SEEDS` (default 10) sets how many seeds run.

use std::time::Instant;

use seedlog_sim::options::{Options, Workload};
use seedlog_sim::plan::Plan;

fn plan(seed: u64) -> Plan {
    let mut options = Options::generate_for(Workload::Safe, seed, &[]);
    let cluster = options.cluster.as_mut().expect("a cluster workload");
    cluster.voters = 3;
    cluster.combined = true;
    cluster.broker_only = 0;
    options.brokers = cluster.nodes();
    options.chaos_ms = 60_000;
    Plan::from_options(options)
}

fn main() {
    let seeds: u64 = std::env::var("SEEDLOG_BENCH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    println!(
        "cluster: the default 3-broker scenario, 60 s of chaos + healing, {seeds} seeds, one thread ({} cores, shared)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>5} {:>9} {:>9} {:>8} {:>9} {:>10} {:>9} {:>9}",
        "seed", "events", "sim s", "ops", "wall ms", "events/s", "speedup", "ok"
    );
    let (mut wall_total, mut sim_total, mut events_total, mut ops_total) = (0.0, 0.0, 0u64, 0usize);
    let mut per_60s_10k_ops = Vec::new();
    for seed in 0..seeds {
        let plan = plan(seed);
        let began = Instant::now();
        let outcome = seedlog_sim::run_plan(plan, Default::default(), false);
        let wall = began.elapsed().as_secs_f64();
        let sim = outcome.sim_time_ms as f64 / 1000.0;
        let ops = outcome.history.ops.len();
        println!(
            "{seed:>5} {:>9} {sim:>9.1} {ops:>8} {:>9.1} {:>10.0} {:>8.0}x {:>9}",
            outcome.events,
            wall * 1000.0,
            outcome.events as f64 / wall,
            sim / wall,
            outcome.verdict.ok
        );
        // Scaled to the target's unit: wall ms per 60 simulated s, and per 10,000 operations.
        per_60s_10k_ops.push((wall * 1000.0 * 60.0 / sim, wall * 1000.0 * 10_000.0 / ops.max(1) as f64));
        wall_total += wall;
        sim_total += sim;
        events_total += outcome.events;
        ops_total += ops;
    }
    println!(
        "all: {events_total} events, {sim_total:.0} simulated s, {ops_total} client operations in {:.2} s: {:.0} events/s, {:.0}x simulated-time speedup, {:.2} seeds/s",
        wall_total,
        events_total as f64 / wall_total,
        sim_total / wall_total,
        seeds as f64 / wall_total
    );
    let worst_60s = per_60s_10k_ops.iter().map(|(a, _)| *a).fold(0.0, f64::max);
    let worst_10k = per_60s_10k_ops.iter().map(|(_, b)| *b).fold(0.0, f64::max);
    println!(
        "target: 60 simulated s with faults and >= 10,000 client operations in <= 100 ms wall on one core; \
         here the slowest seed took {worst_60s:.0} ms per 60 simulated s and {worst_10k:.0} ms per 10,000 operations"
    );
}
