//! The `seedlog` binary's command line and the broker's lifecycle as an operator sees it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn seedlog(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seedlog")).args(args).output().expect("run seedlog")
}

#[test]
fn version_prints_the_crate_version() {
    let output = seedlog(&["--version"]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.trim(), format!("seedlog {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let output = seedlog(&[]);
    assert!(!output.status.success());
}

#[test]
fn a_bad_configuration_value_is_a_clear_error() {
    let output = seedlog(&["broker", "--override", "num.partitions=many"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("num.partitions"), "{stderr}");
}

/// Starts a broker, uses the tools against it, then SIGTERM: a controlled shutdown, exit 0; a
/// restart on the same data directory still has the topic.
#[test]
fn the_tools_work_and_sigterm_is_a_clean_shutdown_that_keeps_the_data() {
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seedlog"))
            .args(["broker", "--override", "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"])
            .args(["--override", &format!("log.dirs={}", data.path().display())])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut address = String::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.split("listening PLAINTEXT://").nth(1) {
                address = rest.trim().to_string();
            }
            if line.contains("data in") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        (child, address)
    };
    let (mut child, address) = start();
    let topics = |args: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = seedlog(&[&["topics"], args, &["--bootstrap-server", &address]].concat());
            if output.status.success() || Instant::now() > deadline {
                return output;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let created = topics(&["create", "--topic", "logs", "--partitions", "2"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let listed = topics(&["list"]);
    assert_eq!(String::from_utf8(listed.stdout).unwrap(), "logs\n");

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no controlled shutdown within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");

    let (mut child, address) = start();
    let deadline = Instant::now() + Duration::from_secs(10);
    let described = loop {
        let output = seedlog(&["topics", "describe", "--topic", "logs", "--bootstrap-server", &address]);
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8(described.stdout).unwrap();
    assert!(stdout.contains("PartitionCount: 2"), "{stdout}");
}
