use super::*;
use crate::checker::Anomaly;

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[test]
fn the_acks_1_story_renders_charts_the_anomaly_the_epochs_and_the_legend() {
    let record = demo::demo_record();
    let dir = tempfile::tempdir().expect("a temp dir");
    let page_path = write_run_report(dir.path(), &record).expect("the report is written");
    assert_eq!(page_path, dir.path().join("index.html"));
    let page = read(&page_path);

    // Inline charts: the timeline, the partition (whole run and close-up), the operations.
    assert_eq!(page.matches("<svg").count(), 4, "four inline charts");
    for file in ["timeline.svg", "operations.svg", "offsets-0-t0-0.svg", "offsets-0-t0-0-close-up.svg"] {
        assert!(read(&dir.path().join(file)).starts_with("<svg"), "{file} is an SVG");
    }
    // The anomaly, in the table and on the charts.
    assert!(page.contains("lost-write-acks-1"));
    assert!(
        page.contains("A1: offset 38") && page.contains("A2: offset 39"),
        "crosses labelled at their offsets"
    );
    assert!(page.contains("observation (allowed)"));
    // The epochs: leader at epoch 3 before the crash, at epoch 4 after it.
    assert!(page.contains("leader e3") && page.contains("leader e4"));
    assert!(page.contains("b2 leads e4"));
    assert!(page.contains("b1 truncates 40 → 38"));
    assert!(page.contains("power loss"));
    assert!(page.contains("{3} | {1,2}"), "the network cut's groups are written");
    assert!(page.contains("<td>network cut: {3} | {1,2}</td>"), "and listed under the timeline");
    assert!(page.contains("<td>broker 1 down (power loss)</td>"));
    // The plain-English legend.
    assert!(page.contains("A record is <i>committed</i> once every in-sync replica has it"));
    assert!(page.contains("high watermark"));
    assert!(page.contains("simulated time (s)"), "time axes in seconds");
    // Notes, in time order, escaped.
    let crash = page.find("broker 1 loses power").expect("the crash note");
    let election = page.find("broker 2 becomes leader at epoch 4").expect("the election note");
    assert!(crash < election);
    // The record round-trips through record.json.
    let saved: RunRecord =
        serde_json::from_str(&read(&dir.path().join("record.json"))).expect("record.json parses");
    assert_eq!(saved, record);
}

#[test]
fn the_same_record_renders_the_same_bytes() {
    let record = demo::demo_record();
    assert_eq!(record, demo::demo_record(), "the demo is deterministic");
    let (a, b) = (tempfile::tempdir().expect("a temp dir"), tempfile::tempdir().expect("a temp dir"));
    let page_a = read(&write_run_report(a.path(), &record).expect("written"));
    let page_b = read(&write_run_report(b.path(), &record).expect("written"));
    assert_eq!(page_a, page_b);
}

#[test]
fn text_from_a_run_is_escaped() {
    let mut record = RunRecord::new(1, "log", vec![0], vec!["t<0>-0".into()]);
    record.note(1.0, Some(0), "<script>alert('x')</script> & more");
    record.anomaly(Some(2.0), "weird<kind>", "a \"detail\"", Some("t<0>-0"), Some(3), true);
    record.offsets(0.5, "t<0>-0", 0, 4, 2);
    let dir = tempfile::tempdir().expect("a temp dir");
    let page = read(&write_run_report(dir.path(), &record).expect("written"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
    assert!(page.contains("weird&lt;kind&gt;"));
    assert!(dir.path().join("offsets-0-t_0_-0.svg").exists(), "file names are made safe");
}

#[test]
fn an_empty_record_still_renders() {
    let record = RunRecord::new(0, "controller", Vec::new(), Vec::new());
    let dir = tempfile::tempdir().expect("a temp dir");
    let page = read(&write_run_report(dir.path(), &record).expect("written"));
    assert!(page.contains("This run recorded no partition offsets."));
    assert!(page.contains("This run recorded no client operations."));
}

#[test]
fn decimation_bounds_a_series_and_keeps_its_truncations_and_its_end() {
    let mut record = RunRecord::new(0, "log", vec![0], vec!["t0-0".into()]);
    let changes: i64 = 1_000_000;
    for n in 0..changes {
        // One truncation in the middle: the log end offset falls by 5.
        let log_end_offset = if n < changes / 2 { n + 1 } else { n - 4 };
        record.offsets(n as f64, "t0-0", 0, log_end_offset, log_end_offset / 2);
    }
    let series = &record.partitions["t0-0"].replicas[&0].offsets;
    assert_eq!(series.pushed, changes as u64);
    assert!(series.items.len() <= OFFSET_SAMPLES_MAX, "{} samples", series.items.len());
    assert!(series.items.len() >= OFFSET_SAMPLES_MAX / 4, "thinned, not emptied: {}", series.items.len());
    assert_eq!(series.items[0].t_ms, 0.0, "the first sample is kept");
    let shown = series.shown();
    assert_eq!(shown.last().map(|s| s.log_end_offset), Some(changes - 5), "the latest value is shown");
    let truncation = (changes / 2) as f64;
    assert!(
        series.items.iter().zip(&series.marked).any(|(s, marked)| *marked && s.t_ms == truncation),
        "the truncation survives thinning"
    );
    // Evenly spread: no gap between kept samples is much wider than the stride.
    let widest = series.items.windows(2).map(|w| w[1].t_ms - w[0].t_ms).fold(0.0, f64::max);
    assert!(widest <= 2.0 * series.stride as f64, "widest gap {widest}, stride {}", series.stride);
}

#[test]
fn unchanged_offsets_and_roles_are_not_recorded_twice() {
    let mut record = RunRecord::new(0, "log", vec![1, 2], Vec::new());
    record.offsets(1.0, "t0-0", 1, 5, 3);
    record.offsets(2.0, "t0-0", 1, 5, 3);
    record.offsets(3.0, "t0-0", 1, 6, 3);
    record.role(1.0, "t0-0", 1, Role::Leader, 1);
    record.role(2.0, "t0-0", 1, Role::Leader, 1);
    record.role(3.0, "t0-0", 1, Role::Leader, 2);
    let replica = &record.partitions["t0-0"].replicas[&1];
    assert_eq!(replica.offsets.items.len(), 2);
    assert_eq!(replica.roles.len(), 2);
    assert_eq!(record.header.partitions, ["t0-0"], "a partition first seen is added to the header");
    assert_eq!(record.end_ms, 3.0);
}

#[test]
fn client_operations_are_counted_completely_and_listed_within_the_bound() {
    let mut record = RunRecord::new(0, "log", vec![0], Vec::new());
    let ops = 3 * CLIENT_OPS_LISTED_MAX as u64;
    for n in 0..ops {
        let outcome = if n % 100 == 0 { OpOutcome::Indefinite } else { OpOutcome::Ok };
        record.client_op(ClientOp {
            t_invoke_ms: n as f64,
            t_complete_ms: n as f64 + 1.0,
            process: 0,
            partition: "t0-0".into(),
            kind: "send".into(),
            outcome,
            offsets: vec![n as i64],
            acks: Some("all".into()),
        });
    }
    let counted: u64 = record.ops.counts["send"].values().map(OutcomeCounts::total).sum();
    assert_eq!(counted, ops);
    let indefinite: u64 = record.ops.counts["send"].values().map(|c| c.indefinite).sum();
    assert_eq!(indefinite, ops / 100);
    assert!(record.ops.listed.items.len() <= CLIENT_OPS_LISTED_MAX);
}

#[test]
fn the_caps_count_what_they_drop() {
    let mut record = RunRecord::new(0, "log", vec![0], Vec::new());
    for n in 0..NOTES_MAX + 7 {
        record.note(n as f64, None, "a note");
    }
    assert_eq!(record.notes.len(), NOTES_MAX);
    assert_eq!(record.dropped.notes, 7);
}

#[test]
fn the_verdict_is_recorded_once() {
    let mut record = RunRecord::new(0, "log", vec![0], Vec::new());
    record.anomaly(Some(5.0), "lost-write", "0-1 lost", Some("t0-0"), Some(1), true);
    let verdict = Verdict {
        ok: false,
        anomalies: vec![Anomaly::new("lost-write", "0-1 lost".into())],
        observations: vec![Anomaly::new("duplicate", "0-2 twice".into())],
        acknowledged: 3,
        confirmed: 2,
    };
    record.conclude(&verdict, 100.0);
    record.conclude(&verdict, 100.0);
    let summary = record.header.verdict.clone().expect("a verdict");
    assert!(!summary.ok);
    assert_eq!(summary.anomaly_kinds, ["lost-write"]);
    assert_eq!(summary.observation_kinds, ["duplicate"]);
    let kinds: Vec<(&str, bool, Option<f64>)> =
        record.anomalies.iter().map(|a| (a.kind.as_str(), a.failing, a.t_ms)).collect();
    assert_eq!(kinds, [("lost-write", true, Some(5.0)), ("duplicate", false, None)]);
    assert_eq!(record.end_ms, 100.0);
}

#[test]
fn the_simulators_partition_shapes_are_recorded_as_what_they_cut() {
    use crate::net::{NodeId, Partition};
    let mut record = RunRecord::new(0, "controller", vec![0, 1, 2], Vec::new());
    record.net_partition(1.0, &Partition::Isolate { node: NodeId(1) });
    record.net_partition(2.0, &Partition::OneWay { from: vec![NodeId(0)], to: vec![NodeId(2)] });
    record.net_partition(
        3.0,
        &Partition::Bridge { bridge: NodeId(1), side_a: vec![NodeId(0)], side_b: vec![NodeId(2)] },
    );
    record.net_healed(4.0);
    let labels: Vec<String> = record.net_events.iter().map(|e| e.change.label()).collect();
    assert_eq!(labels, ["{1} | {0,2}", "{0} -> {2} cut", "{0} | {2} bridged by 1", "healed"]);
}

#[test]
fn the_fault_mix_names_the_kinds_an_option_set_turns_on() {
    let mut options = crate::options::Options::generate(3, &[]);
    options.faults.crashes = true;
    options.faults.pauses = false;
    options.buggify = true;
    let mix = fault_mix(&options);
    assert!(mix.contains(&"crash".to_string()));
    assert!(!mix.contains(&"pause".to_string()));
    assert_eq!(mix.last().map(String::as_str), Some("buggify"), "a fixed order");
    let record = RunRecord::for_options(&options);
    assert_eq!(record.header.seed, 3);
    assert_eq!(record.header.workload, "log");
    assert_eq!(record.header.options["fault kinds"], mix.join(", "));
}

#[test]
fn the_swarm_summary_shows_failures_by_fault_kind_and_replay_commands() {
    let seed = |seed: u64, ok: bool, anomalies: &[&str], mix: &[&str]| SeedSummary {
        seed,
        ok,
        anomaly_kinds: anomalies.iter().map(|s| s.to_string()).collect(),
        fault_mix: mix.iter().map(|s| s.to_string()).collect(),
        events: 1_000,
        sim_ms: 5_000,
        wall_ms: 20,
        replay: format!("seedlog-sim run --seed {seed} --workload controller"),
    };
    let seeds = vec![
        seed(12, false, &["lost-write"], &["crash", "partition"]),
        seed(10, true, &[], &["crash"]),
        seed(11, true, &[], &["pause", "partition"]),
        seed(13, false, &["lost-write", "inconsistent-offsets"], &["crash", "bit-rot"]),
    ];
    let dir = tempfile::tempdir().expect("a temp dir");
    let page = read(&write_swarm_report(dir.path(), &seeds).expect("written"));
    assert!(page.contains("4 seeds"));
    assert!(page.contains("2 failed</span> (50.00%)"));
    assert_eq!(page.matches("<svg").count(), 2, "failures by fault kind, and anomaly kinds");
    assert!(page.contains("seedlog-sim run --seed 12 --workload controller --report report-seed-12"));
    assert!(page.contains("seedlog-sim run --seed 13 --workload controller --report report-seed-13"));
    assert!(!page.contains("--seed 10 --workload controller --report"), "passing seeds are not listed");
    // crash: 3 seeds, 2 failing (66.67%); bit-rot: 1 of 1; pause: 0 of 1.
    assert!(page.contains(
        "<td>crash</td><td class=\"num\">3</td><td class=\"num\">2</td><td class=\"num\">66.67%</td>"
    ));
    assert!(page.contains(
        "<td>bit-rot</td><td class=\"num\">1</td><td class=\"num\">1</td><td class=\"num\">100.00%</td>"
    ));
    assert!(page.contains("lost-write (2)"));
    // 4 seeds in 80 ms of wall time: 50 seeds per second per thread.
    assert!(page.contains("<td>seeds per second, per thread</td><td class=\"num\">50.0</td>"));
}

#[test]
fn a_swarm_without_failures_says_so() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let seeds = [SeedSummary {
        seed: 0,
        ok: true,
        anomaly_kinds: Vec::new(),
        fault_mix: vec!["crash".into()],
        events: 10,
        sim_ms: 10,
        wall_ms: 1,
        replay: String::new(),
    }];
    let page = read(&write_swarm_report(dir.path(), &seeds).expect("written"));
    assert!(page.contains("No seed failed."));
    assert!(page.contains("<h2>Failing seeds</h2>\n<p>None.</p>"));
}

/// The pictures in `docs/reports/` are the demo as it renders now (golden files). After a change
/// to the charts, regenerate them: `SEEDLOG_BLESS=1 cargo test -p seedlog-sim report::tests`.
#[test]
fn the_docs_pictures_are_the_demo_as_it_renders_now() {
    let dir = tempfile::tempdir().expect("a temp dir");
    write_run_report(dir.path(), &demo::demo_record()).expect("written");
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reports");
    for (rendered, pictured) in
        [("timeline.svg", "demo-timeline.svg"), ("offsets-0-t0-0-close-up.svg", "demo-close-up.svg")]
    {
        let now = read(&dir.path().join(rendered));
        let path = docs.join(pictured);
        if std::env::var_os("SEEDLOG_BLESS").is_some() {
            std::fs::write(&path, &now)
                .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        }
        assert!(
            read(&path) == now,
            "{} is not the demo as it renders now; regenerate with SEEDLOG_BLESS=1 cargo test -p seedlog-sim report::tests",
            path.display()
        );
    }
}
