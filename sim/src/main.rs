//! `seedlog-sim`: run one seed, a swarm of seeds, or replay a saved fault plan.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use seedlog_core::env::Plant;
use seedlog_sim::cluster::script::Script;
use seedlog_sim::options::Workload;
use seedlog_sim::plan::Plan;
use seedlog_sim::report;
use seedlog_sim::scenario::Scenario;
use seedlog_sim::swarm::{self, Source};
use seedlog_sim::world::Outcome;

#[derive(Parser)]
#[command(
    name = "seedlog-sim",
    version,
    about = "Seedlog's deterministic simulator: one seed, a swarm, or a replay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Planting {
    /// Plant a named bug in the core (repeatable). `--plant help` lists the names.
    #[arg(long = "plant", value_name = "NAME")]
    plants: Vec<String>,
}

#[derive(clap::Args, Clone)]
struct Choice {
    /// What to simulate: `cluster` (a KRaft cluster of 3 to 5 brokers with a replicated topic,
    /// producers and consumers), `safe` (the cluster workload in Kafka's safe configuration —
    /// acks=all, RF 3, min.insync.replicas=2, unclean election off, a sync per batch — with every
    /// fault kind on), `log` (one broker, producers, consumers) or `controller` (a KRaft
    /// cluster: the controller quorum, broker registration and fencing, partition leadership).
    #[arg(long, default_value = "cluster", value_parser = parse_workload)]
    workload: Workload,
    /// Run a scenario file (see scenarios/README.md) instead of the workload's generated runs.
    #[arg(long, value_name = "FILE", conflicts_with = "workload")]
    scenario: Option<PathBuf>,
}

fn parse_workload(name: &str) -> Result<Workload, String> {
    Workload::from_name(name)
        .ok_or_else(|| format!("unknown workload {name:?}: cluster, safe, log or controller"))
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed: print its option set, run it, print the verdict.
    Run {
        /// The seed (default: 0, or the scenario's own seed).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        choice: Choice,
        /// Print every event (node, virtual time, sequence number) as it happens.
        #[arg(long)]
        trace: bool,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
        /// Print the fault plan before running.
        #[arg(long)]
        print_plan: bool,
        /// Save the fault plan (options and timed faults) to FILE, for `replay`.
        #[arg(long, value_name = "FILE")]
        save_plan: Option<PathBuf>,
        /// Write the client history as JSON lines to FILE (docs/history-format.md; the controller
        /// workload: its admin operations).
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
        /// Write a run report (DIR/index.html: timeline, offsets, client operations, anomalies).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        #[command(flatten)]
        planting: Planting,
    },
    /// Run many seeds, each with its own option set; summarize and list failing seeds.
    Swarm {
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// The first seed (default: 0, or the scenario's own seed).
        #[arg(long)]
        start: Option<u64>,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
        /// Write a swarm report (DIR/index.html: failures by fault kind, replay commands).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        #[command(flatten)]
        choice: Choice,
        #[command(flatten)]
        planting: Planting,
    },
    /// Replay a saved fault plan exactly.
    Replay {
        file: PathBuf,
        #[arg(long)]
        trace: bool,
        #[arg(long)]
        json: bool,
    },
}

/// `print!` to stdout, but a closed pipe (`seedlog-sim run --trace | head`) ends the program
/// quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// `println!` with the same closed-pipe behaviour as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("seedlog-sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn parse_plants(planting: &Planting) -> Result<Option<Vec<Plant>>, String> {
    let mut plants = Vec::new();
    for name in &planting.plants {
        if name == "help" {
            outln!("plantable bugs (seedlog-sim run|swarm --plant NAME):");
            for plant in Plant::ALL {
                outln!("  {:<26} {}", plant.name(), plant.describe());
            }
            return Ok(None);
        }
        let plant = Plant::from_name(name)
            .ok_or_else(|| format!("unknown plant {name:?}; `--plant help` lists the names"))?;
        plants.push(plant);
    }
    Ok(Some(plants))
}

fn init_tracing() {
    tracing_subscriber::fmt().with_target(false).without_time().with_writer(std::io::stderr).init();
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Run { seed, choice, trace, json, print_plan, save_plan, history, report, planting } => {
            let Some(plants) = parse_plants(&planting)? else { return Ok(ExitCode::SUCCESS) };
            let scenario = choice.scenario.as_deref().map(Scenario::load).transpose()?;
            let (plan, script, replay) = match &scenario {
                Some(scenario) => {
                    if !plants.is_empty() {
                        return Err("a scenario names its own plants; --plant does not apply".into());
                    }
                    let seed = seed.unwrap_or(scenario.seed);
                    let file = choice.scenario.as_ref().expect("scenario").display();
                    (
                        scenario.plan(seed)?,
                        scenario.script(),
                        format!("seedlog-sim run --scenario {file} --seed {seed}"),
                    )
                }
                None => {
                    let seed = seed.unwrap_or(0);
                    let replay = swarm::replay_command(seed, choice.workload, &planting.plants);
                    (Plan::generate_for(choice.workload, seed, &plants), Script::default(), replay)
                }
            };
            if let Some(path) = save_plan {
                if !script.is_empty() {
                    return Err(
                        "a scenario with a script cannot be saved as a plain plan; replay it with --scenario"
                            .into(),
                    );
                }
                std::fs::write(&path, plan.to_json())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            let outputs = Outputs { history, report };
            run_plan(plan, script, scenario.as_ref(), trace, json, print_plan, outputs, &replay)
        }
        Command::Replay { file, trace, json } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let plan = Plan::from_json(&text)?;
            let replay = format!("seedlog-sim replay {}", file.display());
            let outputs = Outputs { history: None, report: None };
            run_plan(plan, Script::default(), None, trace, json, true, outputs, &replay)
        }
        Command::Swarm { seeds, start, jobs, json, report: report_dir, choice, planting } => {
            let Some(plants) = parse_plants(&planting)? else { return Ok(ExitCode::SUCCESS) };
            let scenario = choice.scenario.as_deref().map(Scenario::load).transpose()?;
            let source = match &scenario {
                Some(scenario) => Source::Scenario(scenario),
                None => Source::Workload(choice.workload),
            };
            let start = start.unwrap_or(scenario.as_ref().map_or(0, |scenario| scenario.seed));
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(seeds) };
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} seeds  {msg}  [{elapsed_precise} eta {eta}]",
                )
                .map_err(|e| e.to_string())?,
            );
            let failed = std::sync::atomic::AtomicU64::new(0);
            let summaries = std::sync::Mutex::new(Vec::new());
            let summary = swarm::run(start, seeds, jobs, source, &plants, &|result| {
                if !result.ok {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if report_dir.is_some() {
                    let seed_summary = seed_summary(result, source, &plants, &planting.plants, &choice);
                    summaries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(seed_summary);
                }
                bar.set_message(format!("{} failed", failed.load(std::sync::atomic::Ordering::Relaxed)));
                bar.inc(1);
            })?;
            bar.finish_and_clear();
            if json {
                outln!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
            } else {
                out!("{}", summary.table());
            }
            if let Some(dir) = &report_dir {
                let summaries = summaries.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
                let page = report::write_swarm_report(dir, &summaries)
                    .map_err(|e| format!("cannot write the swarm report to {}: {e}", dir.display()))?;
                if json {
                    eprintln!("seedlog-sim: wrote {}", page.display());
                } else {
                    outln!("  swarm report: {}", page.display());
                }
            }
            let passed = match summary.matched {
                Some(matched) => matched,
                None => summary.failed.is_empty(),
            };
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// One seed of a swarm as its report shows it: the plan is drawn again (cheap, deterministic) for
/// its fault mix.
fn seed_summary(
    result: &swarm::SeedResult,
    source: Source<'_>,
    plants: &[Plant],
    plant_names: &[String],
    choice: &Choice,
) -> report::SeedSummary {
    let fault_mix = source
        .plan(result.seed, plants)
        .map(|(plan, _)| report::fault_mix(&plan.options))
        .unwrap_or_default();
    let replay = match &choice.scenario {
        Some(file) => format!("seedlog-sim run --scenario {} --seed {}", file.display(), result.seed),
        None => swarm::replay_command(result.seed, choice.workload, plant_names),
    };
    report::SeedSummary {
        seed: result.seed,
        ok: result.ok,
        anomaly_kinds: result.anomaly_kinds.clone(),
        fault_mix,
        events: result.events,
        sim_ms: result.sim_time_ms,
        wall_ms: result.wall_ms,
        replay,
    }
}

/// Where a run writes what it produced, besides stdout.
struct Outputs {
    history: Option<PathBuf>,
    report: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
fn run_plan(
    plan: Plan,
    script: Script,
    scenario: Option<&Scenario>,
    trace: bool,
    json: bool,
    print_plan: bool,
    outputs: Outputs,
    replay: &str,
) -> Result<ExitCode, String> {
    if trace {
        init_tracing();
    }
    let plants: Vec<String> = plan.options.plants.iter().map(|p| p.name().to_string()).collect();
    if !json {
        out!("{}", plan.options.banner());
        if print_plan {
            out!("{}", plan.describe());
        } else {
            outln!("{}", plan.summary());
        }
    }
    let mut outcome = match outputs.report {
        Some(_) => seedlog_sim::run_plan_recording(plan, script, trace),
        None => seedlog_sim::run_plan(plan, script, trace),
    };
    let matched = scenario.map(|scenario| scenario.matches(&outcome));
    let report_written = match &outputs.report {
        Some(dir) => Some(write_run_report(dir, &mut outcome, replay)?),
        None => None,
    };
    if let Some(path) = outputs.history {
        let lines = match outcome.workload {
            Workload::Log | Workload::Cluster | Workload::Safe => outcome.history.to_json_lines(),
            Workload::Controller => outcome
                .admin_ops
                .iter()
                .map(|op| serde_json::to_string(op).map(|line| line + "\n"))
                .collect::<Result<String, _>>()
                .map_err(|e| e.to_string())?,
        };
        std::fs::write(&path, lines).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if json {
        outln!("{}", outcome_json(&outcome, &plants, scenario));
    } else {
        print_outcome(&outcome, replay);
        if let Some(scenario) = scenario {
            outln!(
                "  scenario {}: expected {:?}: {}",
                scenario.name,
                scenario.expected.verdict,
                if matched == Some(true) { "met" } else { "NOT MET" }
            );
        }
    }
    if let Some(message) = report_written {
        if json {
            eprintln!("seedlog-sim: {message}");
        } else {
            outln!("  {message}");
        }
    }
    let passed = matched.unwrap_or(outcome.verdict.ok);
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Writes the run report from the outcome's record; says what it did.
fn write_run_report(dir: &std::path::Path, outcome: &mut Outcome, replay: &str) -> Result<String, String> {
    let Some(mut record) = outcome.record.take() else {
        return Err(format!("the {} run recorded nothing for its report", outcome.workload.name()));
    };
    record.conclude(&outcome.verdict, outcome.sim_time_ms as f64);
    record.header.replay = format!("{replay} --report {}", dir.display());
    let page = report::write_run_report(dir, &record)
        .map_err(|e| format!("cannot write the run report to {}: {e}", dir.display()))?;
    outcome.record = Some(record);
    Ok(format!("report: {}", page.display()))
}

fn outcome_json(outcome: &Outcome, plants: &[String], scenario: Option<&Scenario>) -> String {
    let mut value = serde_json::json!({
        "seed": outcome.seed,
        "trace_hash": outcome.trace_hash,
        "events": outcome.events,
        "sim_time_ms": outcome.sim_time_ms,
        "verdict": if outcome.verdict.ok { "ok" } else { "fail" },
        "anomalies": outcome.verdict.anomalies,
        "observations": outcome.verdict.observations,
        "workload": outcome.workload.name(),
        "acknowledged": outcome.verdict.acknowledged,
        "confirmed": outcome.verdict.confirmed,
        "plants": plants,
    });
    if let Some(scenario) = scenario {
        value["scenario"] = serde_json::json!(scenario.name);
        value["expected"] = serde_json::json!(scenario.expected);
        value["matched"] = serde_json::json!(scenario.matches(outcome));
    }
    value.to_string()
}

fn print_outcome(outcome: &Outcome, replay: &str) {
    let verdict = if outcome.verdict.ok { "ok" } else { "FAIL" };
    outln!(
        "seed {}: {verdict} — {} events, {} ms simulated, trace hash {}",
        outcome.seed,
        outcome.events,
        outcome.sim_time_ms,
        outcome.trace_hash
    );
    outln!(
        "  acks=all records acknowledged: {}, confirmed by the final reads: {}",
        outcome.verdict.acknowledged,
        outcome.verdict.confirmed
    );
    for anomaly in &outcome.verdict.anomalies {
        outln!("  anomaly {}: {}", anomaly.kind, anomaly.detail);
    }
    for observation in &outcome.verdict.observations {
        outln!("  observed {}: {}", observation.kind, observation.detail);
    }
    outln!("  replay: {replay}");
}
