//! The `seedlog` binary: the broker, a local cluster, and Kafka-style console tools.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use seedlog_server::config::{parse_override, parse_properties, ServerConfig};
use seedlog_server::driver::{self, Exit};
use seedlog_server::net::TokioNetwork;
use seedlog_server::{cluster, tools};

/// Seedlog: a Kafka-compatible event log built simulation-first.
#[derive(Debug, Parser)]
#[command(name = "seedlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one broker. With no flags: a single-node cluster on 127.0.0.1:9092, data in ./data.
    Broker {
        /// A properties file with Kafka's key names (server.properties).
        #[arg(long)]
        config: Option<PathBuf>,
        /// `key=value`, overriding the file; repeatable.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Run a local cluster of combined brokers (every one a controller voter) and supervise them.
    Cluster {
        #[arg(long, default_value_t = 3)]
        brokers: u32,
        /// Broker i listens for clients on base-port + 2(i-1), node-to-node on the port after.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        #[arg(long, default_value = "./cluster-data")]
        data: PathBuf,
        /// Passed to every broker; repeatable.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Create, list, describe or delete topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
        #[arg(long, global = true, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        #[arg(long, global = true, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Console producer: one record per stdin line (`--key-separator` splits key from value).
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// all, 1 or 0.
        #[arg(long, default_value = "all")]
        acks: String,
        #[arg(long)]
        key_separator: Option<String>,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Console consumer: prints each record's value, one per line.
    Consume {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// earliest, latest or an offset.
        #[arg(long, default_value = "earliest")]
        offset: String,
        #[arg(long)]
        from_beginning: bool,
        #[arg(long)]
        max_messages: Option<u64>,
        /// Stop after this long without a new record.
        #[arg(long)]
        idle_timeout_ms: Option<u64>,
        #[arg(long)]
        print_key: bool,
        #[arg(long)]
        print_offset: bool,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsAction {
    Create {
        #[arg(long)]
        topic: String,
        /// Default: the broker's num.partitions.
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// Default: the broker's default.replication.factor.
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// A topic config `key=value`; repeatable.
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    List,
    Describe {
        #[arg(long)]
        topic: Option<String>,
    },
    Delete {
        #[arg(long)]
        topic: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("seedlog: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Tools may leave a stdin reader thread blocked; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("seedlog: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Broker { config, overrides } => broker(config, overrides).await,
        Command::Cluster { brokers, base_port, data, overrides } => {
            cluster::run(cluster::ClusterOptions { brokers, base_port, data, overrides }).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics { action, bootstrap_server, timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms);
            match action {
                TopicsAction::Create { topic, partitions, replication_factor, configs } => {
                    let configs = tools::parse_configs(&configs)?;
                    tools::topics_create(
                        &bootstrap_server,
                        timeout,
                        &topic,
                        partitions,
                        replication_factor,
                        &configs,
                    )
                    .await?
                }
                TopicsAction::List => tools::topics_list(&bootstrap_server, timeout).await?,
                TopicsAction::Describe { topic } => {
                    tools::topics_describe(&bootstrap_server, timeout, topic.as_deref()).await?
                }
                TopicsAction::Delete { topic } => {
                    tools::topics_delete(&bootstrap_server, timeout, &topic).await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce { topic, partition, acks, key_separator, bootstrap_server, timeout_ms } => {
            let acks = match acks.as_str() {
                "all" | "-1" => -1,
                "1" => 1,
                "0" => 0,
                other => return Err(format!("--acks {other}: expected all, 1 or 0")),
            };
            let options =
                tools::ProduceOptions { topic, partition, acks, key_separator, batch_records_max: 1000 };
            tools::produce(&bootstrap_server, Duration::from_millis(timeout_ms), options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Consume {
            topic,
            partition,
            offset,
            from_beginning,
            max_messages,
            idle_timeout_ms,
            print_key,
            print_offset,
            bootstrap_server,
            timeout_ms,
        } => {
            let start = match (from_beginning, offset.as_str()) {
                (true, _) | (false, "earliest") => tools::StartOffset::Earliest,
                (false, "latest") => tools::StartOffset::Latest,
                (false, other) => tools::StartOffset::At(
                    other
                        .parse()
                        .map_err(|_| format!("--offset {other}: expected earliest, latest or a number"))?,
                ),
            };
            let options = tools::ConsumeOptions {
                topic,
                partition,
                start,
                max_messages,
                idle_timeout: idle_timeout_ms.map(Duration::from_millis),
                print_key,
                print_offset,
            };
            tools::consume(&bootstrap_server, Duration::from_millis(timeout_ms), options).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn broker(config_path: Option<PathBuf>, overrides: Vec<String>) -> Result<ExitCode, String> {
    let file = match &config_path {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
            parse_properties(&text).map_err(|error| format!("{}: {error}", path.display()))?
        }
        None => Default::default(),
    };
    let overrides: Vec<(String, String)> =
        overrides.iter().map(|text| parse_override(text)).collect::<Result<_, _>>()?;
    let (config, warnings) = ServerConfig::from_properties(file, &overrides)?;
    for warning in warnings {
        eprintln!("seedlog: warning: {warning}");
    }
    let node_id = config.node.node_id;
    let data_dir = config.data_dir.clone();
    let running = driver::start(TokioNetwork, config).await?;
    for (name, address) in &running.addresses {
        println!("seedlog: node {node_id} listening {name}://{address}");
    }
    println!("seedlog: node {node_id} data in {}", data_dir.display());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("cannot watch SIGTERM: {error}"))?;
    let shutdown_started = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    tokio::pin!(shutdown_started);
    let handle = running.shutdown_handle();
    let wait = running.wait();
    tokio::pin!(wait);
    let mut requested = false;
    let exit = loop {
        tokio::select! {
            exit = &mut wait => break exit,
            _ = &mut shutdown_started, if !requested => {
                requested = true;
                eprintln!("seedlog: node {node_id}: controlled shutdown");
                handle.shutdown();
            }
        }
    };
    match exit {
        Exit::Shutdown => {
            eprintln!("seedlog: node {node_id} stopped");
            Ok(ExitCode::SUCCESS)
        }
        Exit::Halted(reason) => Err(format!("node {node_id} halted: {reason}")),
    }
}
