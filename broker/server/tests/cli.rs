//! The `seedlog` binary's honest, partial command line.

use std::process::Command;

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
fn broker_says_it_is_not_built_and_fails() {
    let output = seedlog(&["broker"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("not built yet"), "{stderr}");
    assert!(stderr.contains("issue 5"), "{stderr}");
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let output = seedlog(&[]);
    assert!(!output.status.success());
}
