//! The `seedlog` binary. Partial: only `--version` and a `broker` subcommand that says, honestly,
//! that the production broker is not built yet.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Seedlog: a Kafka-compatible event log built simulation-first.
#[derive(Debug, Parser)]
#[command(name = "seedlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (not built yet: exits with an error).
    Broker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker => {
            eprintln!(
                "seedlog broker: not built yet. The production broker (Kafka wire protocol over TCP, \
                 driving the deterministic core on real files) is issue 5. What exists today: the \
                 core, the simulator (`seedlog-sim`) and the file storage (`seedlog_server::fs`)."
            );
            ExitCode::FAILURE
        }
    }
}
