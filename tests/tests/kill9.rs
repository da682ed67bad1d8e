//! The first real-process fault test: kill -9 the partition leader of a 3-broker cluster while a
//! producer writes with acks=all, restart it, several times; afterwards every acknowledged record
//! must be in the log, at the offset its acknowledgement named, in order, once per offset.
//!
//! The harness starts the three `seedlog broker` processes itself (each a combined broker and
//! controller, as `seedlog cluster --brokers 3` runs them) so that it can kill one with SIGKILL
//! and start it again on the same ports and data directory. The topic has one partition,
//! replication factor 3 and `min.insync.replicas=2`. The producer is confluent-kafka
//! (`tests/clients/kill9_client.py produce`: acks=all, idempotence off, one request in flight,
//! numbered values); it appends every acknowledged record to a file as it is acknowledged.
//! Records whose delivery failed or was still pending at the end are indefinite (they may or may
//! not be in the log) and are not judged. The leader is found with Metadata requests (the highest
//! leader epoch any live broker reports). Four rounds: odd ones keep the killed leader down until
//! another replica leads and the producer has made progress, then restart it (it must catch up or
//! truncate); even ones bounce it at once. After each restart the test waits for more
//! acknowledgements and for the ISR to be whole again. Every wait is bounded (60 s a step).
//!
//! Needs `scripts/install-test-deps` (see `real_clients.rs` for the skip rule).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::{
    clients_or_skip, free_port, metadata, run_program, tail, Background, BrokerProcess, MetadataPartition,
    TestDir,
};

const TOPIC: &str = "kill9";
/// How many times the leader is killed and restarted: odd rounds wait for a failover before the
/// restart, even rounds bounce the leader at once.
const KILLS: usize = 4;
/// Acknowledgements that must arrive after each kill before the next step (progress).
const PROGRESS: usize = 200;
const READY: Duration = Duration::from_secs(60);
const STEP_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn acknowledged_records_survive_kill9_of_the_partition_leader() {
    let Some(clients) = clients_or_skip("kill9") else { return };
    let test_dir = TestDir::new("kill9");
    let dir = test_dir.path();

    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1))
        .collect();
    let voters = voters.join(",");
    // Kafka's names; shorter than the defaults so a dead replica leaves the ISR in seconds.
    let extra = [
        "replica.lag.time.max.ms=5000",
        "broker.session.timeout.ms=4000",
        "broker.heartbeat.interval.ms=500",
    ];
    let mut brokers: Vec<BrokerProcess> = ports
        .iter()
        .enumerate()
        .map(|(i, &(port, controller))| {
            BrokerProcess::start(dir, i as u32 + 1, port, controller, &voters, &extra)
        })
        .collect();
    for broker in &mut brokers {
        broker.wait_ready(3, READY);
    }
    let bootstrap: Vec<String> = brokers.iter().map(BrokerProcess::addr).collect();
    let bootstrap = bootstrap.join(",");

    let acked_path = dir.join("acked.tsv");
    let failed_path = dir.join("failed.tsv");
    let stop_path = dir.join("stop");
    let mut command = Command::new(&clients.python);
    command.args(["tests/clients/kill9_client.py", "produce", "--bootstrap", &bootstrap, "--topic", TOPIC]);
    command.args(["--replication-factor", "3", "--min-insync", "2", "--max-seconds", "300"]);
    command
        .arg("--acked")
        .arg(&acked_path)
        .arg("--failed")
        .arg(&failed_path)
        .arg("--stop-file")
        .arg(&stop_path);
    // SEEDLOG_KILL9_DEBUG=metadata,topic,... turns on librdkafka's debug log in producer.stderr.
    if let Ok(contexts) = std::env::var("SEEDLOG_KILL9_DEBUG") {
        command.args(["--debug", &contexts]);
    }
    let mut producer = Background::spawn(command, dir, "producer");

    let mut story = Vec::new();
    // A stall (no progress, no leader, no full ISR within a step's limit) ends the fault phase;
    // the records acknowledged until then are still judged before the test fails.
    let stalled = fault_phase(&mut brokers, &mut producer, &acked_path, &mut story).err();

    fs::write(&stop_path, b"stop").expect("write the stop file");
    let run = producer.wait(Duration::from_secs(60));
    if run.status == Some(0) && run.stdout.contains("produced:") {
        tell(&mut story, run.stdout.trim().to_string());
    } else {
        tell(&mut story, format!("the producer did not end cleanly: {}", run.describe()));
    }

    let consumed_path = dir.join("consumed.tsv");
    let mut command = Command::new(&clients.python);
    command.args(["tests/clients/kill9_client.py", "consume", "--bootstrap", &bootstrap, "--topic", TOPIC]);
    command.args(["--max-seconds", "60"]).arg("--out").arg(&consumed_path);
    let run = run_program(command, dir, "consumer", Duration::from_secs(90));
    assert!(
        run.status == Some(0),
        "the consumer could not read the partition: {}\n{}{}",
        run.describe(),
        stalled.map(|stall| format!("LIVENESS before that: {stall}\n")).unwrap_or_default(),
        logs(&brokers)
    );
    tell(&mut story, run.stdout.trim().to_string());

    let acked = read_records(&acked_path);
    let consumed = read_records(&consumed_path);
    let verdict = judge(&acked, &consumed);
    tell(&mut story, verdict.summary.clone());
    assert!(
        verdict.problems.is_empty(),
        "SAFETY: acknowledged records were lost or misplaced:\n  {}\n{}",
        verdict.problems.iter().take(30).cloned().collect::<Vec<_>>().join("\n  "),
        story.join("\n")
    );
    if let Some(stall) = stalled {
        panic!("LIVENESS (no acknowledged record was lost, but): {stall}");
    }
}

/// The kills and restarts, each followed by bounded waits for progress; Err describes a stall.
fn fault_phase(
    brokers: &mut [BrokerProcess],
    producer: &mut Background,
    acked_path: &Path,
    story: &mut Vec<String>,
) -> Result<(), String> {
    wait_for_acks(acked_path, PROGRESS, producer, brokers, "before the first kill")?;
    for round in 1..=KILLS {
        let (leader, epoch) = partition_leader(brokers, None)?;
        let before = count_lines(acked_path);
        let index = brokers.iter().position(|b| b.node_id == leader).expect("the leader is one of ours");
        brokers[index].kill9();
        if round % 2 == 1 {
            // Failover: the leader stays dead until another replica leads and the producer has
            // made progress without it; then it comes back and must catch up (or truncate).
            tell(story, format!("kill #{round}: node {leader} (leader epoch {epoch}) after {before} acks"));
            let (next, next_epoch) = partition_leader(brokers, Some((leader, epoch)))?;
            wait_for_acks(acked_path, before + PROGRESS, producer, brokers, &format!("kill #{round}"))?;
            tell(
                story,
                format!("  node {next} led (epoch {next_epoch}) and took acks while node {leader} was down"),
            );
        } else {
            // Bounce: back within half a second, perhaps before the controller noticed.
            tell(
                story,
                format!("kill #{round}: node {leader} (leader epoch {epoch}) after {before} acks, bounced"),
            );
            sleep(Duration::from_millis(500));
        }
        let restarted = count_lines(acked_path);
        brokers[index].restart();
        brokers[index].wait_ready(3, READY);
        let when = format!("after restarting node {leader} (kill #{round})");
        wait_for_acks(acked_path, restarted + PROGRESS, producer, brokers, &when)?;
        wait_for_full_isr(brokers, &when)?;
        tell(story, format!("  node {leader} restarted; acks go on; the ISR is whole again"));
    }
    let target = count_lines(acked_path) + PROGRESS;
    wait_for_acks(acked_path, target, producer, brokers, "after the last restart")
}

/// One step of the test's story: printed as it happens (shown if the test fails) and kept for the end.
fn tell(story: &mut Vec<String>, line: String) {
    eprintln!("kill9: {line}");
    story.push(line);
}

/// The partition's leader and leader epoch, as the live broker with the newest view reports it:
/// a live leader, and with `after = Some((old, epoch))` one other than `old` at a later epoch.
fn partition_leader(brokers: &mut [BrokerProcess], after: Option<(u32, i32)>) -> Result<(u32, i32), String> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < STEP_LIMIT {
        if let Some(p) = newest_view(brokers) {
            let live = brokers.iter().any(|b| b.is_running() && b.node_id as i32 == p.leader);
            let moved = after.is_none_or(|(old, epoch)| p.leader != old as i32 && p.leader_epoch > epoch);
            if p.leader > 0 && live && moved {
                return Ok((p.leader as u32, p.leader_epoch));
            }
            last = Some(p);
        }
        sleep(Duration::from_millis(100));
    }
    let want = match after {
        Some((old, epoch)) => format!("a live leader other than node {old} after epoch {epoch}"),
        None => "a live leader".to_string(),
    };
    Err(format!("{TOPIC}-0 had no {want} within {STEP_LIMIT:?} (last view {last:?})\n{}", logs(brokers)))
}

/// Partition 0 of the topic as reported by the live broker with the highest leader epoch.
fn newest_view(brokers: &mut [BrokerProcess]) -> Option<MetadataPartition> {
    let mut best: Option<MetadataPartition> = None;
    for broker in brokers.iter_mut().filter(|b| b.is_running()) {
        broker.assert_alive();
        let Ok(md) = metadata(&broker.addr(), Some(&[TOPIC])) else { continue };
        if let Some(p) = md.partition(TOPIC, 0) {
            if p.error_code == 0 && best.as_ref().is_none_or(|b| p.leader_epoch > b.leader_epoch) {
                best = Some(p.clone());
            }
        }
    }
    best
}

/// Waits until the newest view of the partition has all three replicas in its ISR.
fn wait_for_full_isr(brokers: &mut [BrokerProcess], when: &str) -> Result<(), String> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < STEP_LIMIT {
        if let Some(p) = newest_view(brokers) {
            if p.isr.len() == 3 {
                return Ok(());
            }
            last = Some(p);
        }
        sleep(Duration::from_millis(200));
    }
    Err(format!(
        "{when}: the restarted replica did not rejoin the ISR within {STEP_LIMIT:?} (last view {last:?})\n{}",
        logs(brokers)
    ))
}

/// Waits until the producer has `want` acknowledgements in its file; Err (with the producer's
/// failed deliveries and every broker's view and log) after STEP_LIMIT or if the producer exits.
fn wait_for_acks(
    path: &Path,
    want: usize,
    producer: &mut Background,
    brokers: &mut [BrokerProcess],
    when: &str,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let have = count_lines(path);
        if have >= want {
            return Ok(());
        }
        for broker in brokers.iter_mut() {
            broker.assert_alive();
        }
        let exited = producer.has_exited();
        if exited || start.elapsed() > STEP_LIMIT {
            let failed = path.with_file_name("failed.tsv");
            let exited = if exited { "the producer exited; " } else { "" };
            return Err(format!(
                "{when}: {exited}{have} acknowledged records, want {want} within {STEP_LIMIT:?}\n\
                 --- producer's failed deliveries (last 5) ---\n{}\n{}",
                tail(&failed, 5),
                logs(brokers)
            ));
        }
        sleep(Duration::from_millis(100));
    }
}

/// Each broker's view of the partition (or why it has none), then the tail of its log.
fn logs(brokers: &[BrokerProcess]) -> String {
    let mut text = String::new();
    for broker in brokers {
        let view = if !broker.is_running() {
            "not running".to_string()
        } else {
            match metadata(&broker.addr(), Some(&[TOPIC])) {
                Ok(md) => format!(
                    "{:?}, {} brokers, controller {}",
                    md.partition(TOPIC, 0),
                    md.brokers.len(),
                    md.controller_id
                ),
                Err(error) => format!("no answer: {error}"),
            }
        };
        text.push_str(&format!("node {} sees {TOPIC}-0 as: {view}\n", broker.node_id));
    }
    for broker in brokers {
        text.push_str(&format!(
            "--- node {} log (last 25 lines) ---\n{}\n",
            broker.node_id,
            tail(&broker.log, 25)
        ));
    }
    text
}

fn count_lines(path: &Path) -> usize {
    fs::read(path).map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count()).unwrap_or(0)
}

/// "offset<TAB>value" lines (a last line without its newline, torn by a kill, is left out).
fn read_records(path: &Path) -> Vec<(i64, String)> {
    let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let (offset, value) = line.split_once('\t').unwrap_or_else(|| panic!("bad line {line:?}"));
            (offset.parse().unwrap_or_else(|_| panic!("bad offset in {line:?}")), value.to_string())
        })
        .collect()
}

struct Verdict {
    problems: Vec<String>,
    summary: String,
}

/// Every acknowledged record at its offset in the consumed log; the log read once per offset,
/// in offset order, without gaps; acknowledged records in the order they were sent.
fn judge(acked: &[(i64, String)], consumed: &[(i64, String)]) -> Verdict {
    let mut problems = Vec::new();
    let mut log: BTreeMap<i64, &str> = BTreeMap::new();
    for (i, (offset, value)) in consumed.iter().enumerate() {
        let next = if i == 0 { 0 } else { consumed[i - 1].0 + 1 };
        if *offset < next {
            problems.push(format!("consumer read offset {offset} after offset {}", next - 1));
        } else if *offset > next {
            problems.push(format!("the log skips from offset {} to {offset}", next - 1));
        }
        if log.insert(*offset, value).is_some() {
            problems.push(format!("offset {offset} read twice"));
        }
    }
    let mut acked_at: BTreeMap<i64, &str> = BTreeMap::new();
    let mut lost = 0;
    for (offset, value) in acked {
        if let Some(other) = acked_at.insert(*offset, value) {
            problems.push(format!("offset {offset} acknowledged for both {other} and {value}"));
        }
        match log.get(offset) {
            Some(found) if found == value => {}
            Some(found) => {
                problems.push(format!("acknowledged {value} at offset {offset}, but the log has {found}"))
            }
            None => {
                lost += 1;
                problems.push(format!("acknowledged {value} at offset {offset}, absent from the log"));
            }
        }
    }
    let mut by_value: Vec<&(i64, String)> = acked.iter().collect();
    by_value.sort_by(|a, b| a.1.cmp(&b.1));
    for pair in by_value.windows(2) {
        if pair[1].0 <= pair[0].0 {
            problems.push(format!(
                "{} (sent first) acknowledged at offset {}, {} (sent later) at offset {}",
                pair[0].1, pair[0].0, pair[1].1, pair[1].0
            ));
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, value) in consumed {
        *seen.entry(value).or_default() += 1;
    }
    let duplicated = seen.values().filter(|&&n| n > 1).count();
    let summary = format!(
        "{} acknowledged, {} lost; log of {} records ({} values written more than once: retries without \
         idempotence, allowed)",
        acked.len(),
        lost,
        consumed.len(),
        duplicated
    );
    Verdict { problems, summary }
}

/// The judge itself: it must catch each anomaly it names (a verdict is only as good as its power).
#[test]
fn the_judge_catches_lost_misplaced_reordered_and_gapped_records() {
    let rec = |offset: i64, value: &str| (offset, value.to_string());
    let log = vec![rec(0, "r1"), rec(1, "r2"), rec(2, "r2"), rec(3, "r3")];
    let clean = judge(&[rec(0, "r1"), rec(2, "r2"), rec(3, "r3")], &log);
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert!(clean.summary.contains("1 values written more than once"), "{}", clean.summary);

    let lost = judge(&[rec(4, "r4")], &log);
    assert!(lost.problems.iter().any(|p| p.contains("absent from the log")), "{:?}", lost.problems);
    let misplaced = judge(&[rec(1, "r3")], &log);
    assert!(misplaced.problems.iter().any(|p| p.contains("but the log has r2")), "{:?}", misplaced.problems);
    let reordered =
        judge(&[rec(3, "r1"), rec(1, "r2")], &[rec(0, "x"), rec(1, "r2"), rec(2, "y"), rec(3, "r1")]);
    assert!(reordered.problems.iter().any(|p| p.contains("sent first")), "{:?}", reordered.problems);
    let twice = judge(&[rec(0, "r1"), rec(0, "r2")], &log);
    assert!(twice.problems.iter().any(|p| p.contains("acknowledged for both")), "{:?}", twice.problems);
    let gap = judge(&[], &[rec(0, "r1"), rec(2, "r2")]);
    assert!(gap.problems.iter().any(|p| p.contains("skips from offset 0 to 2")), "{:?}", gap.problems);
    let repeat = judge(&[], &[rec(0, "r1"), rec(1, "r2"), rec(1, "r2")]);
    assert!(
        repeat.problems.iter().any(|p| p.contains("read offset 1 after offset 1")),
        "{:?}",
        repeat.problems
    );
}
