//! Swarm: many seeds, each with its own option set, run on a few threads.
//!
//! Every seed is an independent, single-threaded, deterministic run; threads only pick seeds off a
//! shared counter. Results are gathered by seed, so the summary does not depend on which thread
//! ran what. The wall clock here only measures throughput for the summary; it never reaches a run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use seedlog_core::env::Plant;

use crate::options::Workload;
use crate::plan::Plan;
use crate::scenario::{Expected, Scenario, VerdictKind};

/// Where a swarm's seeds get their plans.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// Each seed's generated option set and fault plan for the workload.
    Workload(Workload),
    /// Each seed run through the scenario (its option patch, faults, script and plants).
    Scenario(&'a Scenario),
}

impl Source<'_> {
    /// The plan and script of one seed.
    pub fn plan(
        &self,
        seed: u64,
        plants: &[Plant],
    ) -> Result<(Plan, crate::cluster::script::Script), String> {
        match self {
            Source::Workload(workload) => {
                Ok((Plan::generate_for(*workload, seed, plants), Default::default()))
            }
            Source::Scenario(scenario) => Ok((scenario.plan(seed)?, scenario.script())),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub ok: bool,
    pub events: u64,
    pub sim_time_ms: u64,
    pub trace_hash: String,
    /// Wall time of this seed's run (for reports; it never reaches the run).
    pub wall_ms: u64,
    pub anomaly_kinds: Vec<String>,
    pub observation_kinds: Vec<String>,
    /// Under a scenario: whether this seed reached the scenario's expected verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<bool>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SwarmSummary {
    pub workload: Workload,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The scenario's expected verdict, and whether the swarm met it: an expected `ok` must hold
    /// for every seed; an expected `fail` (a negative control) must show in at least one seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<bool>,
    pub seeds: u64,
    pub start: u64,
    pub plants: Vec<String>,
    pub passed: u64,
    /// The failing seeds.
    pub failed: Vec<u64>,
    /// For each anomaly kind, how many seeds showed it.
    pub anomalies_by_kind: BTreeMap<String, u64>,
    pub observations_by_kind: BTreeMap<String, u64>,
    pub events: u64,
    pub sim_time_ms: u64,
    pub events_per_sec: f64,
    pub seeds_per_sec: f64,
    pub wall_ms: u64,
}

/// Runs seeds `start..start + seeds` on `jobs` threads; `progress` is called once per finished seed.
pub fn run(
    start: u64,
    seeds: u64,
    jobs: usize,
    source: Source<'_>,
    plants: &[Plant],
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Result<SwarmSummary, String> {
    // Every seed's plan must build (a scenario's patch may not fit every seed's options): check
    // them all before starting, so that no seed is silently skipped.
    for seed in start..start.saturating_add(seeds) {
        source.plan(seed, plants).map_err(|error| format!("seed {seed}: {error}"))?;
    }
    let began = Instant::now();
    let next = AtomicU64::new(start);
    let end = start + seeds;
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let Ok((plan, script)) = source.plan(seed, plants) else { break };
                let seed_began = Instant::now();
                let outcome = crate::run_plan(plan, script, false);
                let wall_ms = seed_began.elapsed().as_millis() as u64;
                let matched = match source {
                    Source::Scenario(scenario) => Some(scenario.matches(&outcome)),
                    Source::Workload(_) => None,
                };
                let result = SeedResult {
                    matched,
                    seed,
                    ok: outcome.verdict.ok,
                    events: outcome.events,
                    sim_time_ms: outcome.sim_time_ms,
                    trace_hash: outcome.trace_hash,
                    wall_ms,
                    anomaly_kinds: kinds(&outcome.verdict.anomalies),
                    observation_kinds: kinds(&outcome.verdict.observations),
                };
                if sender.send(result).is_err() {
                    break;
                }
            });
        }
        drop(sender);
    });
    let mut results: Vec<SeedResult> = Vec::new();
    for result in receiver.iter() {
        progress(&result);
        results.push(result);
    }
    results.sort_by_key(|r| r.seed);
    let mut summary = summarize(start, seeds, plants, &results, began.elapsed().as_secs_f64());
    match source {
        Source::Workload(workload) => summary.workload = workload,
        Source::Scenario(scenario) => {
            summary.workload = scenario.workload;
            summary.scenario = Some(scenario.name.clone());
            summary.expected = Some(scenario.expected.clone());
            summary.plants = scenario.plants.clone();
            let matched = results.iter().filter(|r| r.matched == Some(true)).count() as u64;
            summary.matched = Some(match scenario.expected.verdict {
                VerdictKind::Ok if scenario.expects_observations() => {
                    matched > 0 && results.iter().all(|r| r.ok) && results.len() as u64 == seeds
                }
                VerdictKind::Ok => matched == results.len() as u64 && results.len() as u64 == seeds,
                VerdictKind::Fail => matched > 0,
            });
        }
    }
    Ok(summary)
}

fn kinds(anomalies: &[crate::checker::Anomaly]) -> Vec<String> {
    let mut kinds: Vec<String> = anomalies.iter().map(|a| a.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

fn summarize(
    start: u64,
    seeds: u64,
    plants: &[Plant],
    results: &[SeedResult],
    wall_secs: f64,
) -> SwarmSummary {
    let mut anomalies_by_kind = BTreeMap::new();
    let mut observations_by_kind = BTreeMap::new();
    for result in results {
        for kind in &result.anomaly_kinds {
            *anomalies_by_kind.entry(kind.clone()).or_default() += 1;
        }
        for kind in &result.observation_kinds {
            *observations_by_kind.entry(kind.clone()).or_default() += 1;
        }
    }
    let events: u64 = results.iter().map(|r| r.events).sum();
    let failing_seeds: Vec<u64> = results.iter().filter(|r| !r.ok).map(|r| r.seed).collect();
    SwarmSummary {
        workload: Workload::Log,
        scenario: None,
        expected: None,
        matched: None,
        seeds,
        start,
        plants: plants.iter().map(|p| p.name().to_string()).collect(),
        passed: results.len() as u64 - failing_seeds.len() as u64,
        failed: failing_seeds,
        anomalies_by_kind,
        observations_by_kind,
        events,
        sim_time_ms: results.iter().map(|r| r.sim_time_ms).sum(),
        events_per_sec: if wall_secs > 0.0 { events as f64 / wall_secs } else { 0.0 },
        seeds_per_sec: if wall_secs > 0.0 { results.len() as f64 / wall_secs } else { 0.0 },
        wall_ms: (wall_secs * 1000.0) as u64,
    }
}

/// The command that replays one seed of a workload exactly.
pub fn replay_command(seed: u64, workload: Workload, plants: &[String]) -> String {
    let mut command = format!("seedlog-sim run --seed {seed}");
    if workload != Workload::Cluster {
        command += &format!(" --workload {}", workload.name());
    }
    for plant in plants {
        command += &format!(" --plant {plant}");
    }
    command
}

impl SwarmSummary {
    pub fn table(&self) -> String {
        let mut text = String::new();
        text += &format!(
            "swarm: {} workload, seeds {}..{}",
            self.workload.name(),
            self.start,
            self.start + self.seeds
        );
        if let Some(scenario) = &self.scenario {
            text += &format!("  scenario {scenario}");
        }
        if !self.plants.is_empty() {
            text += &format!("  (planted: {})", self.plants.join(", "));
        }
        text += "\n";
        text += &format!("  {:<34} {:>10}\n", "passed", self.passed);
        text += &format!("  {:<34} {:>10}\n", "failed", self.failed.len());
        text += &format!("  {:<34} {:>10}\n", "events", self.events);
        text += &format!("  {:<34} {:>10}\n", "simulated time (s, all seeds)", self.sim_time_ms / 1000);
        text += &format!("  {:<34} {:>10.0}\n", "events/s (wall, all threads)", self.events_per_sec);
        text += &format!("  {:<34} {:>10.1}\n", "seeds/s (wall)", self.seeds_per_sec);
        text += &format!("  {:<34} {:>10}\n", "wall ms", self.wall_ms);
        if !self.anomalies_by_kind.is_empty() {
            text += "  anomalies (seeds showing each kind):\n";
            for (kind, count) in &self.anomalies_by_kind {
                text += &format!("    {kind:<32} {count:>10}\n");
            }
        }
        if !self.observations_by_kind.is_empty() {
            text += "  observations, not failures (seeds showing each kind):\n";
            for (kind, count) in &self.observations_by_kind {
                text += &format!("    {kind:<32} {count:>10}\n");
            }
        }
        if let (Some(expected), Some(matched)) = (&self.expected, self.matched) {
            text += &format!(
                "  expected verdict {:?}{}: {}\n",
                expected.verdict,
                if expected.anomalies.is_empty() && expected.observations.is_empty() {
                    String::new()
                } else {
                    let kinds: Vec<&str> =
                        expected.anomalies.iter().chain(&expected.observations).map(String::as_str).collect();
                    format!(" ({})", kinds.join(", "))
                },
                if matched { "met" } else { "NOT MET" }
            );
        }
        if !self.failed.is_empty() {
            text += "  replay a failing seed:\n";
            for seed in self.failed.iter().take(20) {
                let command = match &self.scenario {
                    Some(_) => format!("seedlog-sim run --scenario FILE --seed {seed}"),
                    None => replay_command(*seed, self.workload, &self.plants),
                };
                text += &format!("    {command}\n");
            }
            if self.failed.len() > 20 {
                text += &format!("    ... and {} more (see --json)\n", self.failed.len() - 20);
            }
        }
        text
    }
}
