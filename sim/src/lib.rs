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
        options::Workload::Controller | options::Workload::Cluster => {
            cluster::ClusterWorld::new(plan, script, emit_trace).run()
        }
    }
}
