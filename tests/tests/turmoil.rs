//! The turmoil tier: the production driver (`seedlog_server::driver`, unchanged: framing, request
//! pipelining, peer links and their reconnects, group commit and fsync ordering) on turmoil's
//! simulated hosts, with its sockets on turmoil's TCP and its files on `turmoil::fs`
//! (`seedlog_server::turmoil_host`).
//!
//! Per seed: three combined brokers (broker and controller, every one a voter, as
//! `seedlog cluster` runs them; RF 3, `min.insync.replicas=2`, flush policy `always`) and a client
//! host speaking Kafka's protocol through `seedlog_server::client::KafkaClient` (acks=all, up to
//! four produce requests pipelined on one connection). The seed draws a fault plan — crashes
//! (power loss: unsynced writes dropped) and restarts, bounces (process restarts), partitions
//! between two hosts or around one, held links, now and then every broker losing power at once —
//! for a chaos phase; then everything heals and:
//! - LIVENESS: the client gets acknowledgements again within [`LIVENESS_BOUND`] of the healing;
//! - SAFETY: a consumer reading the partition from offset 0 finds every acknowledged record at
//!   the offset its acknowledgement named, each value at most once, and nothing the client did not
//!   send. Records whose produce failed or timed out are indefinite: present or not, both pass.
//!
//! Seeds: `SEEDLOG_TURMOIL_SEED=S` runs seed S alone (and prints its plan and the client's
//! history); `SEEDLOG_TURMOIL_SEEDS=N` runs seeds 0..N (default [`SEEDS_DEFAULT`]);
//! `SEEDLOG_TURMOIL_FIRST=F` starts there. A failure prints the seed, its plan and the command
//! that replays it (bit for bit when built with `RUSTFLAGS="--cfg tokio_unstable"`, which lets
//! turmoil seed tokio's own draws). `planted_unsynced_log_is_caught` is the tier's proof of power: the same
//! harness with a file system that skips the partition logs' fsyncs must lose acknowledged records
//! to a whole-cluster power loss and say so.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use seedlog_core::record::{self, encode_batch, NewRecord, ProducerInfo};
use seedlog_server::client::KafkaClient;
use seedlog_server::config::ServerConfig;
use seedlog_server::driver::{self, Exit};
use seedlog_server::fs::{EntryKind, FileHandle, FileSystem};
use seedlog_server::turmoil_host::{TurmoilFile, TurmoilFileSystem, TurmoilNetwork, TurmoilPlatform};

const BROKERS: u32 = 3;
const TOPIC: &str = "events";
/// Seeds a plain `cargo test` runs.
const SEEDS_DEFAULT: u64 = 300;
/// After the healing, the client must be acknowledged again within this long.
const LIVENESS_BOUND: Duration = Duration::from_secs(20);
/// Acknowledgements after the healing that end the produce phase.
const ACKS_AFTER_HEALING: usize = 20;
/// The final read must finish within this long.
const READ_BOUND: Duration = Duration::from_secs(30);
/// A seed that runs longer than this (simulated) fails.
const SIMULATION_LIMIT: Duration = Duration::from_secs(180);
const TICK: Duration = Duration::from_millis(1);
/// The client's wait for any one answer; over it the connection is dropped (it may have stalled:
/// turmoil's TCP never retransmits after a partition).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);
/// What the brokers are asked to wait for acks=all.
const PRODUCE_TIMEOUT_MS: i32 = 3000;
const DATA_DIR: &str = "/data";

// ---------------------------------------------------------------------------------------------
// The fault plan

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Host {
    Broker(u32),
    Client,
}

impl Host {
    fn name(self) -> String {
        match self {
            Host::Broker(id) => format!("broker{id}"),
            Host::Client => "client".to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn all_hosts() -> Vec<Host> {
    (1..=BROKERS).map(Host::Broker).chain([Host::Client]).collect()
}

#[derive(Clone, Debug)]
enum Fault {
    /// Power loss: the host stops and loses every write it had not synced; restarted `down` later.
    Crash { broker: u32, down: Duration },
    /// The process restarts at once; the disk keeps everything (a kill -9).
    Bounce { broker: u32 },
    /// Every segment between the two hosts is dropped, both ways, for `length`.
    Partition { a: Host, b: Host, length: Duration },
    /// The host is cut off from every other host for `length`.
    Isolate { host: Host, length: Duration },
    /// Segments between the two hosts are held for `length`, then delivered.
    Hold { a: Host, b: Host, length: Duration },
    /// Every broker loses power at once; all restart `down` later.
    PowerLossAll { down: Duration },
}

/// What the harness does to the simulation at one moment.
#[derive(Clone, Debug)]
enum Action {
    Crash(u32),
    Restart(u32),
    Bounce(u32),
    Partition(Host, Host),
    Repair(Host, Host),
    Hold(Host, Host),
    Release(Host, Host),
}

/// One seed's options and fault plan (swarm testing: every knob drawn from the seed).
#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    /// The chaos phase; everything heals at its end.
    chaos: Duration,
    /// Faults at their start times.
    faults: Vec<(Duration, Fault)>,
    latency_max: Duration,
    /// How long one fsync takes on every broker's disk.
    sync_delay: Duration,
    /// Produce requests the client writes before it reads their answers.
    in_flight: usize,
    batch_records_max: usize,
    segment_bytes: u64,
    /// turmoil steps the hosts in a random order each tick.
    random_order: bool,
}

impl Plan {
    fn from_seed(seed: u64) -> Plan {
        // Salted apart from turmoil's own stream, which gets the seed itself.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7475_726d_6f69_6c21);
        let chaos = Duration::from_millis(rng.random_range(6_000..14_000));
        let power_loss_all = rng.random_bool(0.2);
        let fault_count = rng.random_range(2..=6);
        let mut faults = Vec::new();
        for _ in 0..fault_count {
            let at = Duration::from_millis(rng.random_range(1_500..chaos.as_millis() as u64));
            let length = Duration::from_millis(rng.random_range(300..4_000));
            let broker = rng.random_range(1..=BROKERS);
            let fault = match rng.random_range(0..100) {
                0..30 => Fault::Crash { broker, down: length },
                30..45 => Fault::Bounce { broker },
                45..70 => {
                    let a = Host::Broker(broker);
                    let others: Vec<Host> = all_hosts().into_iter().filter(|host| *host != a).collect();
                    let b = others[rng.random_range(0..others.len())];
                    Fault::Partition { a, b, length }
                }
                70..88 => {
                    let hosts = all_hosts();
                    Fault::Isolate { host: hosts[rng.random_range(0..hosts.len())], length }
                }
                _ => {
                    let a = Host::Broker(broker);
                    let others: Vec<Host> = all_hosts().into_iter().filter(|host| *host != a).collect();
                    let b = others[rng.random_range(0..others.len())];
                    Fault::Hold { a, b, length: length.min(Duration::from_millis(1_500)) }
                }
            };
            faults.push((at, fault));
        }
        if power_loss_all {
            let at = Duration::from_millis(rng.random_range(2_000..chaos.as_millis() as u64));
            faults.push((
                at,
                Fault::PowerLossAll { down: Duration::from_millis(rng.random_range(200..2_000)) },
            ));
        }
        faults.sort_by_key(|(at, _)| *at);
        Plan {
            seed,
            chaos,
            faults,
            latency_max: Duration::from_millis(rng.random_range(1..20)),
            sync_delay: Duration::from_micros(rng.random_range(0..5_000)),
            in_flight: rng.random_range(1..=4),
            batch_records_max: rng.random_range(1..=5),
            segment_bytes: [16 << 10, 64 << 10, 1 << 20][rng.random_range(0..3)],
            random_order: rng.random_bool(0.5),
        }
    }

    /// The plan as timed actions, in order (several at one time keep the plan's order).
    fn actions(&self) -> Vec<(Duration, Action)> {
        let mut actions = Vec::new();
        for (at, fault) in &self.faults {
            let at = *at;
            match fault {
                Fault::Crash { broker, down } => {
                    actions.push((at, Action::Crash(*broker)));
                    actions.push((at + *down, Action::Restart(*broker)));
                }
                Fault::Bounce { broker } => actions.push((at, Action::Bounce(*broker))),
                Fault::Partition { a, b, length } => {
                    actions.push((at, Action::Partition(*a, *b)));
                    actions.push((at + *length, Action::Repair(*a, *b)));
                }
                Fault::Isolate { host, length } => {
                    for other in all_hosts().into_iter().filter(|other| other != host) {
                        actions.push((at, Action::Partition(*host, other)));
                        actions.push((at + *length, Action::Repair(*host, other)));
                    }
                }
                Fault::Hold { a, b, length } => {
                    actions.push((at, Action::Hold(*a, *b)));
                    actions.push((at + *length, Action::Release(*a, *b)));
                }
                Fault::PowerLossAll { down } => {
                    for broker in 1..=BROKERS {
                        actions.push((at, Action::Crash(broker)));
                    }
                    for broker in 1..=BROKERS {
                        actions.push((at + *down, Action::Restart(broker)));
                    }
                }
            }
        }
        // Whatever would happen after the chaos phase happens at the healing instead.
        actions.retain(|(at, _)| *at < self.chaos);
        actions.sort_by_key(|(at, _)| *at);
        actions
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: chaos {} ms, latency up to {} ms, fsync {} us, {} produce request(s) in flight, \
             batches of up to {} record(s), segments of {} bytes, random host order {}",
            self.seed,
            self.chaos.as_millis(),
            self.latency_max.as_millis(),
            self.sync_delay.as_micros(),
            self.in_flight,
            self.batch_records_max,
            self.segment_bytes,
            self.random_order
        )?;
        for (at, fault) in &self.faults {
            writeln!(f, "  at {:>6} ms: {fault:?}", at.as_millis())?;
        }
        write!(
            f,
            "  at {:>6} ms: heal (repair and release every link, restart every stopped broker)",
            self.chaos.as_millis()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The brokers

/// A broker's configuration, as `seedlog cluster` would give it, with the timeouts shortened.
fn broker_config(id: u32, plan: &Plan) -> ServerConfig {
    let voters: Vec<String> = (1..=BROKERS).map(|node| format!("{node}@broker{node}:9093")).collect();
    let overrides: Vec<(String, String)> = [
        ("node.id", id.to_string()),
        ("process.roles", "broker,controller".to_string()),
        ("controller.quorum.voters", voters.join(",")),
        ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093".to_string()),
        ("advertised.listeners", format!("PLAINTEXT://broker{id}:9092,CONTROLLER://broker{id}:9093")),
        ("log.dirs", DATA_DIR.to_string()),
        ("default.replication.factor", "3".to_string()),
        ("min.insync.replicas", "2".to_string()),
        ("seedlog.flush.policy", "always".to_string()),
        ("log.segment.bytes", plan.segment_bytes.to_string()),
        ("broker.heartbeat.interval.ms", "500".to_string()),
        ("broker.session.timeout.ms", "3000".to_string()),
        ("replica.lag.time.max.ms", "3000".to_string()),
        ("replica.fetch.backoff.ms", "200".to_string()),
        ("connections.max.idle.ms", "10000".to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    match ServerConfig::from_properties(BTreeMap::new(), &overrides) {
        Ok((config, _warnings)) => config,
        Err(error) => panic!("the turmoil brokers' configuration is invalid: {error}"),
    }
}

/// One run of a broker's software on its host: until a controlled shutdown (never asked for
/// here) or a halt, which fails the seed.
async fn run_broker<F>(platform: TurmoilPlatform<F>, config: ServerConfig) -> turmoil::Result
where
    F: FileSystem + Clone + Sync,
{
    let node = config.node.node_id;
    let running =
        driver::start_on(platform, config).await.map_err(|error| format!("broker {node}: {error}"))?;
    match running.wait().await {
        Exit::Shutdown => Ok(()),
        Exit::Halted(reason) => Err(format!("broker {node} halted: {reason}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The planted bug: a file system whose fsync of a partition's log segment does nothing

/// turmoil's file system, except that syncing a partition log segment (`<topic>-<p>-<id>/*.log`)
/// returns success without syncing: acks=all would then promise durability the disk never gave.
#[derive(Clone, Copy, Debug, Default)]
struct SkipsLogSyncs;

struct MaybeSynced {
    file: TurmoilFile,
    skips_syncs: bool,
}

impl FileHandle for MaybeSynced {
    fn len_bytes(&self) -> io::Result<u64> {
        self.file.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.skips_syncs {
            return Ok(());
        }
        self.file.sync_data()
    }
    fn try_clone(&self) -> io::Result<MaybeSynced> {
        Ok(MaybeSynced { file: self.file.try_clone()?, skips_syncs: self.skips_syncs })
    }
}

impl FileSystem for SkipsLogSyncs {
    type File = MaybeSynced;
    const SYNC_BLOCKS_THREAD: bool = TurmoilFileSystem::SYNC_BLOCKS_THREAD;
    const HANDLES_FOLLOW_RENAMES: bool = TurmoilFileSystem::HANDLES_FOLLOW_RENAMES;

    fn open(&self, path: &Path, create_new: bool) -> io::Result<MaybeSynced> {
        let in_partition = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|dir| dir.to_str())
            .is_some_and(|dir| dir.starts_with(&format!("{TOPIC}-")));
        let is_segment = path.extension().is_some_and(|extension| extension == "log");
        let file = TurmoilFileSystem.open(path, create_new)?;
        Ok(MaybeSynced { file, skips_syncs: in_partition && is_segment })
    }
    fn kind(&self, path: &Path) -> io::Result<EntryKind> {
        TurmoilFileSystem.kind(path)
    }
    fn link_kind(&self, path: &Path) -> io::Result<EntryKind> {
        TurmoilFileSystem.link_kind(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        TurmoilFileSystem.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        TurmoilFileSystem.create_dir_all(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        TurmoilFileSystem.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        TurmoilFileSystem.rename(from, to)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, EntryKind)>> {
        TurmoilFileSystem.read_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        TurmoilFileSystem.sync_dir(path)
    }
}

// ---------------------------------------------------------------------------------------------
// The client: a producer (acks=all, pipelined) and, after the healing, a consumer

/// What the client saw, for the checks.
#[derive(Debug, Default)]
struct History {
    /// Every acknowledged batch: its base offset and values, in acknowledgement order.
    acknowledged: Vec<(i64, Vec<String>)>,
    /// Every value ever sent (acknowledged or not).
    sent: BTreeSet<String>,
    /// Batches answered with an error or never answered (indefinite).
    unacknowledged: usize,
    /// Acknowledgements that arrived after the healing.
    acknowledged_after_healing: usize,
    /// How long after the healing the first of them arrived.
    recovery: Option<Duration>,
    /// The partition read from offset 0 to the high watermark, once the produce phase ended.
    read_back: Option<Vec<(i64, String)>>,
    /// The high watermark of that read.
    high_watermark: i64,
    /// Notable client events with their simulated time, for a failure's report.
    events: Vec<String>,
}

/// What the harness and the client host share (both run on the test's thread).
#[derive(Debug, Default)]
struct Shared {
    /// When the harness healed everything (simulated time since the start).
    healed_at: Option<Duration>,
    history: History,
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn note(shared: &Rc<RefCell<Shared>>, event: String) {
    let mut shared = shared.borrow_mut();
    if shared.history.events.len() < 400 {
        shared.history.events.push(format!("{:>6} ms {event}", now().as_millis()));
    }
}

async fn connect(address: &str) -> Result<KafkaClient<TurmoilNetwork>, String> {
    KafkaClient::connect_on(&TurmoilNetwork, address, CLIENT_TIMEOUT).await
}

/// Creates the topic through whichever broker is the active controller (tried in turn).
async fn create_topic(shared: &Rc<RefCell<Shared>>) -> Result<(), String> {
    let creatable =
        CreatableTopic::default().with_name(topic_name()).with_num_partitions(1).with_replication_factor(3);
    let request = CreateTopicsRequest::default().with_topics(vec![creatable]).with_timeout_ms(5_000);
    let deadline = now() + Duration::from_secs(60);
    let mut broker = 0;
    while now() < deadline {
        broker = broker % BROKERS + 1;
        let attempt = async {
            let mut client = connect(&format!("broker{broker}:9092")).await?;
            client.send(&request, 7).await
        };
        match attempt.await {
            Ok(response) => match response.topics.first().map(|topic| topic.error_code) {
                Some(0) | Some(36) => {
                    note(shared, format!("topic created through broker{broker}"));
                    return Ok(());
                }
                code => note(shared, format!("CreateTopics via broker{broker}: error {code:?}")),
            },
            Err(error) => note(shared, format!("CreateTopics via broker{broker}: {error}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("the topic could not be created within 60 s".into())
}

/// A connection to partition 0's leader, found through the brokers' Metadata (tried in turn).
async fn connect_leader(round: &mut u32) -> Result<KafkaClient<TurmoilNetwork>, String> {
    *round = *round % BROKERS + 1;
    let mut client = connect(&format!("broker{}:9092", *round)).await?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name()))]));
    let response = client.send(&request, 12).await?;
    let topic = response.topics.first().ok_or("no topic in the metadata")?;
    if topic.error_code != 0 {
        return Err(format!("metadata: topic error {}", topic.error_code));
    }
    let leader = topic.partitions.first().ok_or("no partition in the metadata")?.leader_id.0;
    let broker = response
        .brokers
        .iter()
        .find(|broker| broker.node_id.0 == leader)
        .ok_or_else(|| format!("the leader {leader} is not among the brokers"))?;
    let address = format!("{}:{}", broker.host, broker.port);
    if address == client.address() {
        return Ok(client);
    }
    connect(&address).await
}

fn produce_request(values: &[String]) -> ProduceRequest {
    let timestamp = turmoil::since_epoch().map_or(0, |since| since.as_millis() as i64);
    let records: Vec<NewRecord> =
        values.iter().map(|value| NewRecord::unkeyed(timestamp, value.as_bytes())).collect();
    let batch = Bytes::from(encode_batch(&records, ProducerInfo::NONE));
    ProduceRequest::default().with_acks(-1).with_timeout_ms(PRODUCE_TIMEOUT_MS).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name()).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(batch)),
        ]),
    ])
}

/// Writes up to `in_flight` produce requests on one connection, then reads their answers in
/// order. Returns whether the connection is still usable.
async fn produce_round(
    client: &mut KafkaClient<TurmoilNetwork>,
    shared: &Rc<RefCell<Shared>>,
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    next_value: &mut u64,
) -> Result<(), String> {
    let version = client.version::<ProduceRequest>(9)?;
    let mut written = Vec::new();
    let mut failure = None;
    for _ in 0..plan.in_flight {
        let count = rng.random_range(1..=plan.batch_records_max);
        let values: Vec<String> = (0..count)
            .map(|_| {
                *next_value += 1;
                format!("s{}-v{}", plan.seed, *next_value)
            })
            .collect();
        shared.borrow_mut().history.sent.extend(values.iter().cloned());
        match client.write_request(&produce_request(&values), version).await {
            Ok(correlation_id) => written.push((correlation_id, values)),
            Err(error) => {
                shared.borrow_mut().history.unacknowledged += 1;
                failure = Some(error);
                break;
            }
        }
    }
    let mut pending = written.into_iter();
    for (correlation_id, values) in pending.by_ref() {
        let response = match client.receive::<ProduceRequest>(correlation_id, version).await {
            Ok(response) => response,
            Err(error) => {
                shared.borrow_mut().history.unacknowledged += 1;
                failure = Some(error);
                break;
            }
        };
        let partition = response.responses.first().and_then(|topic| topic.partition_responses.first());
        let mut shared_now = shared.borrow_mut();
        match partition {
            Some(partition) if partition.error_code == 0 => {
                let healed_at = shared_now.healed_at;
                let history = &mut shared_now.history;
                history.acknowledged.push((partition.base_offset, values));
                if let Some(healed_at) = healed_at {
                    history.acknowledged_after_healing += 1;
                    history.recovery.get_or_insert(now().saturating_sub(healed_at));
                }
            }
            Some(partition) => {
                shared_now.history.unacknowledged += 1;
                let code = partition.error_code;
                drop(shared_now);
                note(shared, format!("produce answered error {code}"));
                failure.get_or_insert(format!("produce error {code}"));
            }
            None => {
                shared_now.history.unacknowledged += 1;
                failure.get_or_insert("a produce answer without the partition".into());
            }
        }
    }
    // Requests written but not answered (the connection failed first): indefinite.
    shared.borrow_mut().history.unacknowledged += pending.count();
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Reads partition 0 from offset 0 up to the high watermark through its leader.
async fn read_partition(round: &mut u32) -> Result<(i64, Vec<(i64, String)>), String> {
    let mut client = connect_leader(round).await?;
    let list = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![
        ListOffsetsTopic::default().with_name(topic_name()).with_partitions(vec![
            ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
        ]),
    ]);
    let listed = client.send(&list, 7).await?;
    let partition = listed.topics.first().and_then(|topic| topic.partitions.first()).ok_or("no offsets")?;
    if partition.error_code != 0 {
        return Err(format!("ListOffsets: error {}", partition.error_code));
    }
    let high_watermark = partition.offset;
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < high_watermark {
        let request = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_topics(vec![FetchTopic::default().with_topic(topic_name()).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let response = client.send(&request, 12).await?;
        let partition = response
            .responses
            .first()
            .and_then(|topic| topic.partitions.first())
            .ok_or("a fetch answer without the partition")?;
        if partition.error_code != 0 {
            return Err(format!("fetch at {offset}: error {}", partition.error_code));
        }
        let bytes = partition.records.as_deref().unwrap_or_default();
        let consumed =
            record::consume(bytes).map_err(|error| format!("undecodable records at {offset}: {error:?}"))?;
        let before = offset;
        for consumed in consumed {
            if consumed.offset < offset || consumed.offset >= high_watermark {
                continue;
            }
            let value = String::from_utf8_lossy(consumed.value.as_deref().unwrap_or_default()).into_owned();
            records.push((consumed.offset, value));
            offset = consumed.offset + 1;
        }
        if offset == before {
            return Err(format!(
                "a fetch at {offset} below the high watermark {high_watermark} returned nothing"
            ));
        }
    }
    Ok((high_watermark, records))
}

/// The client host: create the topic, produce until the healing and `ACKS_AFTER_HEALING` more
/// acknowledgements (LIVENESS), then read the partition back.
async fn workload(plan: Plan, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0x636c_6965_6e74);
    create_topic(&shared).await?;
    let mut next_value = 0u64;
    let mut round = 0;
    let mut client: Option<KafkaClient<TurmoilNetwork>> = None;
    loop {
        let (healed_at, after) = {
            let shared = shared.borrow();
            (shared.healed_at, shared.history.acknowledged_after_healing)
        };
        if let Some(healed_at) = healed_at {
            if after >= ACKS_AFTER_HEALING {
                break;
            }
            if now() > healed_at + LIVENESS_BOUND {
                return Err(format!(
                    "LIVENESS: {after} acknowledgement(s) in the {} s after the healing (want {ACKS_AFTER_HEALING})",
                    LIVENESS_BOUND.as_secs()
                )
                .into());
            }
        }
        let mut connected = match client.take() {
            Some(connected) => connected,
            None => match connect_leader(&mut round).await {
                Ok(connected) => connected,
                Err(error) => {
                    note(&shared, format!("no leader connection: {error}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match produce_round(&mut connected, &shared, &plan, &mut rng, &mut next_value).await {
            Ok(()) => client = Some(connected),
            Err(error) => {
                note(&shared, format!("produce via {}: {error}", connected.address()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    note(&shared, "produce phase over; reading back".into());
    let last_acknowledged =
        shared.borrow().history.acknowledged.iter().map(|(base, values)| base + values.len() as i64).max();
    // A leader that just took over may not have moved its high watermark up to what was
    // acknowledged yet: read again, within the bound; then the last read is what is checked.
    let deadline = now() + READ_BOUND;
    let mut last_read = None;
    loop {
        match read_partition(&mut round).await {
            Ok((high_watermark, records)) => {
                let covered = last_acknowledged.is_none_or(|last| high_watermark >= last);
                last_read = Some((high_watermark, records));
                if covered {
                    break;
                }
                note(
                    &shared,
                    format!("read back below the acknowledged end (high watermark {high_watermark})"),
                );
            }
            Err(error) => note(&shared, format!("read back: {error}")),
        }
        if now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some((high_watermark, records)) = last_read else {
        return Err(format!(
            "LIVENESS: the partition could not be read back within {} s",
            READ_BOUND.as_secs()
        )
        .into());
    };
    let mut shared = shared.borrow_mut();
    shared.history.high_watermark = high_watermark;
    shared.history.read_back = Some(records);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The checks

/// SAFETY over the client's history: every acknowledged record at its offset, no value twice,
/// nothing unsent. Returns the violations.
fn check(history: &History) -> Vec<String> {
    let mut violations = Vec::new();
    let Some(read_back) = &history.read_back else {
        return vec!["the partition was never read back".into()];
    };
    let mut by_offset: BTreeMap<i64, &str> = BTreeMap::new();
    let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
    let mut previous = -1;
    for (offset, value) in read_back {
        if *offset <= previous {
            violations.push(format!("offset {offset} read after offset {previous}"));
        }
        previous = *offset;
        by_offset.insert(*offset, value);
        if let Some(first) = seen.insert(value, *offset) {
            violations.push(format!("duplicate: {value} at offsets {first} and {offset}"));
        }
        if !history.sent.contains(value) {
            violations.push(format!("offset {offset} holds {value:?}, which the client never sent"));
        }
    }
    for (base, values) in &history.acknowledged {
        for (index, value) in values.iter().enumerate() {
            let offset = base + index as i64;
            match by_offset.get(&offset) {
                Some(found) if *found == value => {}
                Some(found) => violations.push(format!(
                    "lost acknowledged record: {value} was acknowledged at offset {offset}, which holds {found}"
                )),
                None => violations.push(format!(
                    "lost acknowledged record: {value} was acknowledged at offset {offset}, which is not in the \
                     log read up to its high watermark {}",
                    history.high_watermark
                )),
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------------
// The harness

/// What the plant does to every broker's file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plant {
    None,
    SkipLogSyncs,
}

/// How one seed went.
struct Outcome {
    plan: Plan,
    /// The simulation's own failure (a host's error: a halt, the client's LIVENESS), if any.
    error: Option<String>,
    violations: Vec<String>,
    history: History,
    simulated: Duration,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.error.is_none() && self.violations.is_empty()
    }

    fn report(&self) -> String {
        let mut report = format!("{}\n", self.plan);
        let history = &self.history;
        report.push_str(&format!(
            "client: {} batch(es) acknowledged ({} after the healing, the first {} ms after it), {} not, {} value(s) sent, {} record(s) read back; {} ms simulated\n",
            history.acknowledged.len(),
            history.acknowledged_after_healing,
            history.recovery.map_or(-1, |recovery| recovery.as_millis() as i64),
            history.unacknowledged,
            history.sent.len(),
            history.read_back.as_ref().map_or(0, Vec::len),
            self.simulated.as_millis()
        ));
        if let Some(error) = &self.error {
            report.push_str(&format!("FAILED: {error}\n"));
        }
        for violation in self.violations.iter().take(20) {
            report.push_str(&format!("SAFETY: {violation}\n"));
        }
        if self.violations.len() > 20 {
            report.push_str(&format!("SAFETY: ... {} more\n", self.violations.len() - 20));
        }
        report
    }

    fn events(&self) -> String {
        self.history.events.join("\n")
    }
}

/// The command that replays `seed`, and the one that replays it exactly (tokio's `select!` draws
/// are seeded by turmoil only under `--cfg tokio_unstable`; docs/turmoil.md).
fn replay_command(seed: u64) -> String {
    let command =
        format!("SEEDLOG_TURMOIL_SEED={seed} cargo test -p seedlog-tests --test turmoil -- --nocapture");
    format!(
        "{command}\nreplay with the same interleaving: RUSTFLAGS=\"--cfg tokio_unstable\" \
         CARGO_TARGET_DIR=target/tokio-unstable {command}"
    )
}

/// Registers the three brokers (each start gets its own rng seed) on `file_system`.
fn add_brokers<F>(sim: &mut turmoil::Sim<'_>, plan: &Plan, file_system: F)
where
    F: FileSystem + Clone + Sync,
{
    for id in 1..=BROKERS {
        let starts = Rc::new(Cell::new(0u64));
        let config = broker_config(id, plan);
        let platform =
            TurmoilPlatform { rng_seed: 0, sync_delay: plan.sync_delay, file_system: file_system.clone() };
        let seed = plan.seed;
        sim.host(Host::Broker(id).name(), move || {
            let start = starts.get();
            starts.set(start + 1);
            let platform = TurmoilPlatform {
                rng_seed: seed.wrapping_mul(31).wrapping_add(u64::from(id) << 32).wrapping_add(start),
                ..platform.clone()
            };
            run_broker(platform, config.clone())
        });
    }
}

/// Runs one seed: the brokers, the client, the plan's faults, the healing, the checks.
fn run_seed(plan: Plan, plant: Plant) -> Outcome {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(plan.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_780_000_000))
        .simulation_duration(SIMULATION_LIMIT)
        .tick_duration(TICK)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(plan.latency_max.max(Duration::from_millis(1)));
    if plan.random_order {
        builder.enable_random_order();
    }
    let mut sim = builder.build();
    match plant {
        Plant::None => add_brokers(&mut sim, &plan, TurmoilFileSystem),
        Plant::SkipLogSyncs => add_brokers(&mut sim, &plan, SkipsLogSyncs),
    }
    let shared = Rc::new(RefCell::new(Shared::default()));
    sim.client(Host::Client.name(), workload(plan.clone(), shared.clone()));

    let actions = plan.actions();
    let mut next_action = 0;
    let mut stopped: BTreeSet<u32> = BTreeSet::new();
    let mut healed = false;
    let error = loop {
        let elapsed = sim.elapsed();
        while next_action < actions.len() && actions[next_action].0 <= elapsed {
            apply(&mut sim, &actions[next_action].1, &mut stopped);
            next_action += 1;
        }
        if !healed && elapsed >= plan.chaos {
            heal(&mut sim, &mut stopped);
            shared.borrow_mut().healed_at = Some(elapsed);
            healed = true;
        }
        match sim.step() {
            Ok(true) => break None,
            Ok(false) => {}
            Err(error) => break Some(error.to_string()),
        }
    };
    let simulated = sim.elapsed();
    drop(sim);
    let history = std::mem::take(&mut shared.borrow_mut().history);
    let violations = if error.is_none() { check(&history) } else { Vec::new() };
    Outcome { plan, error, violations, history, simulated }
}

fn apply(sim: &mut turmoil::Sim<'_>, action: &Action, stopped: &mut BTreeSet<u32>) {
    match action {
        Action::Crash(broker) => {
            sim.crash(Host::Broker(*broker).name());
            stopped.insert(*broker);
        }
        Action::Restart(broker) => {
            if stopped.remove(broker) {
                sim.bounce(Host::Broker(*broker).name());
            }
        }
        Action::Bounce(broker) => {
            sim.bounce(Host::Broker(*broker).name());
            stopped.remove(broker);
        }
        Action::Partition(a, b) => sim.partition(a.name(), b.name()),
        Action::Repair(a, b) => sim.repair(a.name(), b.name()),
        Action::Hold(a, b) => sim.hold(a.name(), b.name()),
        Action::Release(a, b) => sim.release(a.name(), b.name()),
    }
}

/// The end of the chaos: every link repaired and released, every stopped broker restarted.
fn heal(sim: &mut turmoil::Sim<'_>, stopped: &mut BTreeSet<u32>) {
    let hosts = all_hosts();
    for (index, a) in hosts.iter().enumerate() {
        for b in &hosts[index + 1..] {
            sim.release(a.name(), b.name());
            sim.repair(a.name(), b.name());
        }
    }
    for broker in std::mem::take(stopped) {
        sim.bounce(Host::Broker(broker).name());
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(number) => Some(number),
        Err(_) => panic!("{name}={value} is not a number"),
    }
}

/// The seeds to run: `SEEDLOG_TURMOIL_SEED`, or `SEEDLOG_TURMOIL_SEEDS` from
/// `SEEDLOG_TURMOIL_FIRST`.
fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("SEEDLOG_TURMOIL_SEED") {
        return vec![seed];
    }
    let first = env_u64("SEEDLOG_TURMOIL_FIRST").unwrap_or(0);
    let count = env_u64("SEEDLOG_TURMOIL_SEEDS").unwrap_or(SEEDS_DEFAULT);
    (first..first + count).collect()
}

/// Runs `seeds` on every core, each seed on one thread (turmoil's world is per thread).
fn run_seeds(seeds: &[u64], plant: Plant) -> Vec<Outcome> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(seed) = seeds.get(index) else { return };
                let outcome = run_seed(Plan::from_seed(*seed), plant);
                results.lock().expect("a seed thread panicked").push((index, outcome));
            });
        }
    });
    let mut results = results.into_inner().expect("a seed thread panicked");
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, outcome)| outcome).collect()
}

#[test]
fn acknowledged_records_survive_crashes_bounces_and_partitions() {
    let seeds = seeds();
    let single = seeds.len() == 1;
    let started = std::time::Instant::now();
    let outcomes = run_seeds(&seeds, Plant::None);
    let mut failures = Vec::new();
    let mut simulated = Duration::ZERO;
    let mut acknowledged = 0;
    let mut recoveries: Vec<Duration> =
        outcomes.iter().filter_map(|outcome| outcome.history.recovery).collect();
    recoveries.sort();
    for outcome in &outcomes {
        simulated += outcome.simulated;
        acknowledged += outcome.history.acknowledged.iter().map(|(_, values)| values.len()).sum::<usize>();
        if single {
            println!("{}\n{}", outcome.report(), outcome.events());
        }
        if !outcome.passed() {
            failures.push(format!("{}replay: {}\n", outcome.report(), replay_command(outcome.plan.seed)));
        }
    }
    let percentile = |fraction: f64| {
        let index = ((recoveries.len() as f64 - 1.0) * fraction).round() as usize;
        recoveries.get(index).map_or(0, |recovery| recovery.as_millis())
    };
    println!(
        "turmoil tier: {} seed(s), {} failed, {} acknowledged records checked, {} s simulated in {:.1} s; \
         first acknowledgement after the healing: median {} ms, p90 {} ms, max {} ms",
        outcomes.len(),
        failures.len(),
        acknowledged,
        simulated.as_secs(),
        started.elapsed().as_secs_f64(),
        percentile(0.5),
        percentile(0.9),
        percentile(1.0)
    );
    assert!(
        failures.is_empty(),
        "{} of {} seed(s) failed:\n\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}

/// The proof of power: brokers whose partition log fsyncs do nothing, and every broker loses power
/// once the client has been acknowledged. The tier must report lost acknowledged records; the same
/// plan with honest fsyncs must pass.
#[test]
fn planted_unsynced_log_is_caught() {
    let mut plan = Plan::from_seed(7);
    plan.chaos = Duration::from_secs(8);
    plan.faults = vec![(Duration::from_secs(6), Fault::PowerLossAll { down: Duration::from_millis(500) })];

    let honest = run_seed(plan.clone(), Plant::None);
    assert!(
        honest.passed(),
        "the plan without the plant must pass:\n{}\n{}",
        honest.report(),
        honest.events()
    );

    let planted = run_seed(plan, Plant::SkipLogSyncs);
    let lost = planted
        .violations
        .iter()
        .filter(|violation| violation.starts_with("lost acknowledged record"))
        .count();
    assert!(
        lost > 0,
        "skipped log fsyncs and a whole-cluster power loss went unnoticed:\n{}\n{}",
        planted.report(),
        planted.events()
    );
    println!("planted bug caught: {lost} acknowledged record(s) reported lost\n{}", planted.report());
}
