//! Renders the synthetic report: an `acks=1` record lost to a leader crash (see
//! `seedlog_sim::report::demo`).
//!
//! `cargo run -p seedlog-sim --example report_demo -- [DIR]` writes `DIR/index.html` (default
//! `report-demo`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "report-demo".to_string()));
    let record = seedlog_sim::report::demo::demo_record();
    match seedlog_sim::report::write_run_report(&dir, &record) {
        Ok(page) => {
            println!("wrote {}", page.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("report_demo: cannot write {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
