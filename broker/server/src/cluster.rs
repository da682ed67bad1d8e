//! `seedlog cluster`: a local cluster of broker processes on 127.0.0.1, each combined (broker and
//! controller, so every one is a voter), supervised by this process.
//!
//! Broker `i` (1-based) takes clients on `base_port + 2(i-1)` and node-to-node traffic on the port
//! after it, and keeps its data in `DIR/node-i`. The supervisor restarts a broker that exits
//! without being asked to (a crash, `kill -9`): it recovers from its files. SIGTERM or Ctrl-C to
//! the supervisor is passed on as SIGTERM to every broker (each a controlled shutdown) and the
//! supervisor waits for them, bounded; a broker that does not stop in time is killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a broker may take over a controlled shutdown before it is killed.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);
/// A broker that exits unasked is started again after this long.
pub const RESTART_DELAY: Duration = Duration::from_millis(500);

pub struct ClusterOptions {
    pub brokers: u32,
    pub base_port: u16,
    pub data: PathBuf,
    /// Passed to every broker as `--override`.
    pub overrides: Vec<String>,
}

/// The `--override` flags of broker `id` (1-based).
pub fn broker_overrides(options: &ClusterOptions, id: u32) -> Vec<String> {
    let port = |node: u32| u32::from(options.base_port) + 2 * (node - 1);
    let voters: Vec<String> =
        (1..=options.brokers).map(|node| format!("{node}@127.0.0.1:{}", port(node) + 1)).collect();
    let replication = options.brokers.min(3);
    let mut overrides = vec![
        format!("node.id={id}"),
        "process.roles=broker,controller".to_string(),
        format!("controller.quorum.voters={}", voters.join(",")),
        format!("listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", port(id), port(id) + 1),
        format!("log.dirs={}", options.data.join(format!("node-{id}")).display()),
        format!("default.replication.factor={replication}"),
        format!("min.insync.replicas={}", replication.min(2)),
    ];
    overrides.extend(options.overrides.iter().cloned());
    overrides
}

fn spawn_broker(executable: &Path, options: &ClusterOptions, id: u32) -> Result<Child, String> {
    let mut command = Command::new(executable);
    command.arg("broker");
    for value in broker_overrides(options, id) {
        command.arg("--override").arg(value);
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command.spawn().map_err(|error| format!("cannot start broker {id}: {error}"))
}

/// Sends SIGTERM (a controlled shutdown) without `unsafe`: through `kill(1)`.
fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
}

pub async fn run(options: ClusterOptions) -> Result<(), String> {
    if options.brokers == 0 || options.brokers > 9 {
        return Err("--brokers must be between 1 and 9".into());
    }
    if u32::from(options.base_port) + 2 * options.brokers > 65_535 {
        return Err("--base-port leaves no room for the brokers' ports".into());
    }
    let executable =
        std::env::current_exe().map_err(|error| format!("cannot find the seedlog binary: {error}"))?;
    let mut children = Vec::new();
    for id in 1..=options.brokers {
        let child = spawn_broker(&executable, &options, id)?;
        let port = u32::from(options.base_port) + 2 * (id - 1);
        println!(
            "broker {id}: PLAINTEXT://127.0.0.1:{port} (node-to-node {}) pid {} data {}",
            port + 1,
            child.id().unwrap_or(0),
            options.data.join(format!("node-{id}")).display()
        );
        children.push(child);
    }
    let bootstrap: Vec<String> = (1..=options.brokers)
        .map(|id| format!("127.0.0.1:{}", u32::from(options.base_port) + 2 * (id - 1)))
        .collect();
    println!("bootstrap servers: {}", bootstrap.join(","));

    let mut terminate_signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("cannot watch SIGTERM: {error}"))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate_signal.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                for (index, child) in children.iter_mut().enumerate() {
                    if let Ok(Some(status)) = child.try_wait() {
                        let id = index as u32 + 1;
                        eprintln!("cluster: broker {id} exited ({status}); restarting it");
                        tokio::time::sleep(RESTART_DELAY).await;
                        *child = spawn_broker(&executable, &options, id)?;
                    }
                }
            }
        }
    }
    eprintln!("cluster: stopping every broker (controlled shutdown)");
    for child in &children {
        terminate(child);
    }
    for (index, child) in children.iter_mut().enumerate() {
        match tokio::time::timeout(SHUTDOWN_WAIT, child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("cluster: broker {} did not stop in {SHUTDOWN_WAIT:?}; killing it", index + 1);
                let _ = child.kill().await;
            }
        }
    }
    Ok(())
}
