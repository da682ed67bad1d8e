//! Real Kafka clients, unmodified, against a real `seedlog broker` process.
//!
//! Each test starts its own single-node broker (combined broker and controller) on free loopback
//! ports with its data in a temporary directory, waits until it answers Metadata, runs one client
//! program of `tests/clients/` against it and requires that program's `PASS` line. Every program
//! creates a topic (kcat has no admin API: the harness creates it with `seedlog topics create`),
//! produces keyed records with acks=all, consumes them from the beginning of an assigned partition,
//! checks order and content, lists offsets and describes the cluster (see `docs/clients.md`).
//!
//! The clients come from `scripts/install-test-deps`; without them these tests are skipped, unless
//! `SEEDLOG_REQUIRE_CLIENTS=1` (set by `scripts/test`) makes that a failure. The broker is killed
//! when a test ends, panicking or not.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{clients_or_skip, create_topic_with_cli, run_program, tail, BrokerProcess, Clients, TestDir};

/// How long the broker may take to answer Metadata after it is started.
const READY: Duration = Duration::from_secs(30);
/// The harness's own limit on a client program (each has a 60 s deadline of its own).
const PROGRAM_LIMIT: Duration = Duration::from_secs(90);

enum Client {
    ConfluentKafka,
    KafkaPython,
    Kcat,
    Kafkajs,
}

fn check_client(name: &str, client: Client) {
    let Some(clients) = clients_or_skip(name) else { return };
    let dir = TestDir::new(name);
    let mut broker = BrokerProcess::single(dir.path());
    broker.wait_ready(1, READY);
    let bootstrap = broker.addr();
    let topic = format!("{name}-check");
    let Clients { python, node, kcat } = &clients;
    let command = match client {
        Client::ConfluentKafka => {
            let mut command = Command::new(python);
            command.arg("tests/clients/confluent_kafka_check.py");
            command
        }
        Client::KafkaPython => {
            let mut command = Command::new(python);
            command.arg("tests/clients/kafka_python_check.py");
            command
        }
        Client::Kafkajs => {
            let mut command = Command::new(node);
            command.arg("tests/clients/kafkajs_check.js");
            command
        }
        Client::Kcat => {
            create_topic_with_cli(&bootstrap, &topic, 1, 1);
            let mut command = Command::new("bash");
            command.arg("tests/clients/kcat_check.sh").env("KCAT", kcat);
            command
        }
    };
    let mut command = command;
    command.args(["--bootstrap", &bootstrap, "--topic", &topic]);
    let run = run_program(command, dir.path(), name, PROGRAM_LIMIT);
    broker.assert_alive();
    match run.pass_line() {
        Some(line) => eprintln!("{line}"),
        None => panic!(
            "{name} did not pass against seedlog at {bootstrap}: {}\n--- broker log (last 40 lines) ---\n{}",
            run.describe(),
            tail(&broker.log, 40)
        ),
    }
}

#[test]
fn confluent_kafka_produces_consumes_lists_offsets_and_describes() {
    check_client("confluent-kafka", Client::ConfluentKafka);
}

#[test]
fn kafka_python_produces_consumes_lists_offsets_and_describes() {
    check_client("kafka-python", Client::KafkaPython);
}

#[test]
fn kcat_produces_consumes_queries_offsets_and_lists_metadata() {
    check_client("kcat", Client::Kcat);
}

#[test]
fn kafkajs_produces_consumes_lists_offsets_and_describes() {
    check_client("kafkajs", Client::Kafkajs);
}
