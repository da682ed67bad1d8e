//! Run reports from real runs (`seedlog-sim run --report DIR`): every workload fills a record,
//! recording changes nothing in the run, and a negative control's record shows its loss where a
//! reader looks for it (the charts themselves are tested in `sim/src/report/`).

use std::path::PathBuf;

use seedlog_sim::options::Workload;
use seedlog_sim::plan::Plan;
use seedlog_sim::report::{self, RunRecord};
use seedlog_sim::scenario::Scenario;
use seedlog_sim::world::Outcome;

fn recorded(plan: Plan, script: seedlog_sim::cluster::script::Script) -> (Outcome, RunRecord) {
    let mut outcome = seedlog_sim::run_plan_recording(plan, script, false);
    let mut record = outcome.record.take().expect("every workload records a run report");
    record.conclude(&outcome.verdict, outcome.sim_time_ms as f64);
    (outcome, record)
}

#[test]
fn recording_a_report_changes_nothing_in_the_run() {
    for workload in [Workload::Log, Workload::Cluster, Workload::Controller] {
        for seed in 0..3 {
            let plain =
                seedlog_sim::run_plan(Plan::generate_for(workload, seed, &[]), Default::default(), false);
            let (with_report, _) = recorded(Plan::generate_for(workload, seed, &[]), Default::default());
            assert_eq!(
                (plain.trace_hash, plain.events),
                (with_report.trace_hash, with_report.events),
                "{workload:?} seed {seed}"
            );
        }
    }
}

/// Log seed 3 loses `acks=1` records to a crash (Kafka's trade-off, reported, not failed): its
/// record has the broker's crash, each partition's offsets with the truncation the crash caused,
/// the client operations, and the loss placed on its partition and offset.
#[test]
fn a_log_run_records_crashes_offsets_operations_and_placed_losses() {
    let (outcome, record) = recorded(Plan::generate_for(Workload::Log, 3, &[]), Default::default());
    assert!(
        outcome.verdict.observations.iter().any(|o| o.kind == "lost-write-acks-1"),
        "seed 3 no longer loses acks=1 records: {:?}",
        outcome.verdict.observations
    );
    assert_eq!(record.header.workload, "log");
    assert!(record.node_events.iter().any(|event| format!("{event:?}").contains("crash")));
    assert_eq!(record.partitions.len(), record.header.partitions.len());
    assert!(!record.partitions.is_empty());
    let truncated =
        record.partitions.values().flat_map(|partition| partition.replicas.values()).any(|replica| {
            replica.offsets.shown().windows(2).any(|pair| pair[1].log_end_offset < pair[0].log_end_offset)
        });
    assert!(truncated, "no partition shows the crash's truncation");
    assert!(record.ops.counts.values().map(|buckets| buckets.len()).sum::<usize>() > 0);
    let loss =
        record.anomalies.iter().find(|a| a.kind == "lost-write-acks-1").expect("the loss is in the report");
    assert!(loss.t_ms.is_some() && loss.offset.is_some(), "the loss is placed: {loss:?}");
    assert!(loss.partition.as_deref().is_some_and(|p| p.starts_with("log-")), "{loss:?}");
    assert!(!loss.failing, "an acks=1 loss is an observation");
}

/// The `acks=1` negative control: the report shows the leader's crash, a new leader in a newer
/// epoch, and the lost records marked on the partition they were acknowledged on.
#[test]
fn the_acks_1_negative_control_records_the_failover_and_the_loss() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/acks1-leader-crash.json");
    let scenario = Scenario::load(&file).expect("the scenario loads");
    let plan = scenario.plan(scenario.seed).expect("its plan builds");
    let (outcome, record) = recorded(plan, scenario.script());
    assert!(scenario.matches(&outcome));
    let loss = record
        .anomalies
        .iter()
        .find(|a| a.kind.starts_with("lost-write"))
        .expect("the negative control's loss is in the report");
    let partition = loss.partition.clone().expect("placed on a partition");
    let leaders: Vec<(u32, i32)> = record.partitions[&partition]
        .replicas
        .iter()
        .flat_map(|(node, replica)| {
            replica
                .roles
                .iter()
                .filter(|r| r.role == report::Role::Leader)
                .map(move |r| (*node, r.leader_epoch))
        })
        .collect();
    let nodes: std::collections::BTreeSet<u32> = leaders.iter().map(|(node, _)| *node).collect();
    assert!(nodes.len() >= 2, "the failover is not visible: {leaders:?}");
    assert!(record.node_events.iter().any(|event| format!("{event:?}").contains("power off")));
}
