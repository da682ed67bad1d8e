//! The simulator.
pub mod buggify;
pub mod checker;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod history;
pub mod net;
pub mod options;
pub mod plan;
pub mod process;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod scheduler;
pub mod swarm;
pub mod trace;
pub mod world;

/// Runs one plan with the world of its workload; `script` is a scenario's (empty otherwise).
pub fn run_plan(plan: plan::Plan, script: cluster::script::Script, emit_trace: bool) -> world::Outcome {
    match plan.options.workload() {
        options::Workload::Log => world::World::new(plan, emit_trace).run(),
        options::Workload::Controller | options::Workload::Cluster | options::Workload::Safe => {
            cluster::ClusterWorld::new(plan, script, emit_trace).run()
        }
    }
}

/// Runs one plan like [`run_plan`], asking its world to fill a [`report::RunRecord`] into
/// `Outcome::record` (`seedlog-sim run --report DIR`).
///
/// Every workload records. A world records from `report::RunRecord::for_options(&plan.options)`, fills it as the
/// run goes (see the contract in [`report`]) and moves it into the outcome.
pub fn run_plan_recording(
    plan: plan::Plan,
    script: cluster::script::Script,
    emit_trace: bool,
) -> world::Outcome {
    match plan.options.workload() {
        options::Workload::Log => world::World::new(plan, emit_trace).recording().run(),
        options::Workload::Controller | options::Workload::Cluster | options::Workload::Safe => {
            cluster::ClusterWorld::new(plan, script, emit_trace).recording().run()
        }
    }
}
