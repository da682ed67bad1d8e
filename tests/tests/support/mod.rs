//! What the real-process tests share: the `seedlog` binary, brokers started as child processes on
//! free loopback ports, a minimal Kafka wire client (ApiVersions and Metadata, enough to tell when
//! a broker answers and who leads a partition), and the real client programs of `tests/clients/`.
//!
//! The `seedlog` binary is built by this harness with `cargo build --profile test -p
//! seedlog-server --bin seedlog --message-format json`, and its path is read from cargo's own
//! report, so it works with any `CARGO_TARGET_DIR` (an integration test of another crate has no
//! `CARGO_BIN_EXE_seedlog`). `SEEDLOG_BIN=/path/to/seedlog` skips the build and uses that binary.
//!
//! The client programs need `scripts/install-test-deps`. Without it a test prints why and
//! returns (a skip), unless `SEEDLOG_REQUIRE_CLIENTS=1` (which `scripts/test` sets): then it fails.

#![allow(dead_code)] // each test file uses its own part of this module

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `seedlog` binary: `SEEDLOG_BIN`, or built once per test process with cargo.
pub fn seedlog_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("SEEDLOG_BIN") {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "SEEDLOG_BIN={} is not a file", path.display());
            return path;
        }
        build_seedlog()
    })
    .clone()
}

fn build_seedlog() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The test profile: its dependencies are the ones `cargo test` has just built, so this
    // usually compiles only the binary's own crate.
    let output = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["build", "--profile", "test", "-p", "seedlog-server", "--bin", "seedlog"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build for the seedlog binary");
    assert!(output.status.success(), "cargo build -p seedlog-server --bin seedlog failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] == "compiler-artifact" && message["target"]["name"] == "seedlog" {
            if let Some(executable) = message["executable"].as_str() {
                return PathBuf::from(executable);
            }
        }
    }
    panic!("cargo build reported no executable for the seedlog binary");
}

/// A temporary directory for one test's brokers and files, removed at the end unless
/// `SEEDLOG_KEEP_TEST_DIR=1` (then its path is printed and it stays, for a post-mortem).
pub struct TestDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(test: &str) -> Self {
        let temp = tempfile::Builder::new()
            .prefix(&format!("seedlog-{test}-"))
            .tempdir()
            .expect("temporary directory");
        if std::env::var("SEEDLOG_KEEP_TEST_DIR").is_ok_and(|value| value == "1") {
            let path = temp.keep();
            eprintln!("{test}: keeping {}", path.display());
            TestDir { path, _temp: None }
        } else {
            TestDir { path: temp.path().to_path_buf(), _temp: Some(temp) }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The last `lines` lines of a file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|error| format!("({}: {error})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Brokers as child processes
// ---------------------------------------------------------------------------------------------

/// One `seedlog broker` process with its own properties file, data directory and log file.
/// Dropping it kills the process (SIGKILL), so a panicking test leaves nothing running.
pub struct BrokerProcess {
    pub node_id: u32,
    pub port: u16,
    pub controller_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl BrokerProcess {
    /// Writes the node's properties file into `dir` and starts the broker.
    /// `voters` is `controller.quorum.voters`; `extra` are more `key=value` lines.
    pub fn start(
        dir: &Path,
        node_id: u32,
        port: u16,
        controller_port: u16,
        voters: &str,
        extra: &[&str],
    ) -> Self {
        let data = dir.join(format!("node-{node_id}-data"));
        let config = dir.join(format!("node-{node_id}.properties"));
        let mut text = format!(
            "node.id={node_id}\n\
             process.roles=broker,controller\n\
             controller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             log.dirs={}\n",
            data.display()
        );
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        fs::write(&config, text).expect("write the broker's properties file");
        let mut broker = BrokerProcess {
            node_id,
            port,
            controller_port,
            config,
            log: dir.join(format!("node-{node_id}.log")),
            child: None,
            starts: 0,
        };
        broker.spawn();
        broker
    }

    /// A single combined broker and controller on free ports in `dir`.
    pub fn single(dir: &Path) -> Self {
        let (port, controller_port) = (free_port(), free_port());
        let voters = format!("1@127.0.0.1:{controller_port}");
        BrokerProcess::start(dir, 1, port, controller_port, &voters, &[])
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.node_id);
        self.starts += 1;
        let mut log =
            fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open broker log");
        writeln!(log, "==== harness: start #{} of node {} ====", self.starts, self.node_id).ok();
        let stderr = log.try_clone().expect("clone log handle");
        let child = Command::new(seedlog_bin())
            .arg("broker")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn seedlog broker");
        self.child = Some(child);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9, and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
            let mut log = fs::OpenOptions::new().append(true).open(&self.log).expect("open broker log");
            writeln!(log, "==== harness: kill -9 of node {} ====", self.node_id).ok();
        }
    }

    /// Starts the same node again, on the same ports and data directory.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Panics (with the log's tail) if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "seedlog broker node {} exited ({status}); its log ends:\n{}",
                    self.node_id,
                    tail(&self.log, 40)
                );
            }
        }
    }

    /// Waits until the broker answers a Metadata request that lists `brokers` brokers and a
    /// controller. Panics after `limit`, or at once if the process exits.
    pub fn wait_ready(&mut self, brokers: usize, limit: Duration) {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < limit {
            self.assert_alive();
            match metadata(&self.addr(), None) {
                Ok(md) if md.brokers.len() >= brokers && md.controller_id >= 0 => return,
                Ok(md) => last = format!("{} broker(s), controller {}", md.brokers.len(), md.controller_id),
                Err(error) => last = error,
            }
            sleep(Duration::from_millis(100));
        }
        panic!(
            "seedlog broker node {} at {} not ready after {limit:?} ({last}); its log ends:\n{}",
            self.node_id,
            self.addr(),
            tail(&self.log, 40)
        );
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Creates a topic with the project's own tool: `seedlog topics create`.
pub fn create_topic_with_cli(bootstrap: &str, topic: &str, partitions: u32, replication_factor: u32) {
    let output = Command::new(seedlog_bin())
        .args(["topics", "create", "--bootstrap-server", bootstrap, "--topic", topic])
        .args([
            "--partitions",
            &partitions.to_string(),
            "--replication-factor",
            &replication_factor.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run seedlog topics create");
    assert!(
        output.status.success(),
        "seedlog topics create {topic} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The real client programs
// ---------------------------------------------------------------------------------------------

/// Where the installed clients are, or why they are not there.
pub struct Clients {
    pub python: PathBuf,
    pub node: PathBuf,
    pub kcat: PathBuf,
}

/// The clients that `scripts/install-test-deps` installs. If they are missing the test is
/// skipped (None) with a message, or fails when `SEEDLOG_REQUIRE_CLIENTS=1`.
pub fn clients_or_skip(test: &str) -> Option<Clients> {
    match find_clients() {
        Ok(clients) => Some(clients),
        Err(missing) => {
            let required = std::env::var("SEEDLOG_REQUIRE_CLIENTS").is_ok_and(|value| value == "1");
            assert!(
                !required,
                "{test}: SEEDLOG_REQUIRE_CLIENTS=1 but the real clients are not installed: {missing}"
            );
            eprintln!("SKIPPED {test}: {missing}; run scripts/install-test-deps (scripts/test does)");
            None
        }
    }
}

fn find_clients() -> Result<Clients, String> {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        return Err(format!("no {}", python.display()));
    }
    let probe = Command::new(&python).args(["-c", "import confluent_kafka, kafka"]).output();
    if !probe.is_ok_and(|output| output.status.success()) {
        return Err("the venv cannot import confluent_kafka and kafka".into());
    }
    if !root.join("tests/clients/node/node_modules/kafkajs/package.json").is_file() {
        return Err("kafkajs is not installed in tests/clients/node/node_modules".into());
    }
    let node = which("node").ok_or("no node on PATH")?;
    let kcat = which("kcat").ok_or("no kcat on PATH")?;
    Ok(Clients { python, node, kcat })
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// What a client program printed and how it ended.
pub struct Run {
    pub status: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The program's `PASS ...` line, if it printed one and exited 0.
    pub fn pass_line(&self) -> Option<&str> {
        if self.status != Some(0) {
            return None;
        }
        self.stdout.lines().find(|line| line.starts_with("PASS "))
    }

    pub fn describe(&self) -> String {
        let ended = if self.timed_out {
            "killed by the harness after its time limit".to_string()
        } else {
            format!("exit status {:?}", self.status)
        };
        let err_lines: Vec<&str> = self.stderr.lines().collect();
        let err_tail = err_lines[err_lines.len().saturating_sub(30)..].join("\n");
        format!(
            "{ended}\n--- stdout ---\n{}\n--- stderr (last 30 lines) ---\n{err_tail}",
            self.stdout.trim_end()
        )
    }
}

/// Runs a program with a hard time limit (it is killed after `limit`), output kept in `dir`.
pub fn run_program(mut command: Command, dir: &Path, name: &str, limit: Duration) -> Run {
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    let mut child = command
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {name}: {error}"));
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for a client program") {
            break (status.code(), false);
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            break (None, true);
        }
        sleep(Duration::from_millis(50));
    };
    Run {
        status,
        timed_out,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A child process that is killed when dropped (a program the test runs in the background).
pub struct Background {
    pub name: String,
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Background {
    pub fn spawn(mut command: Command, dir: &Path, name: &str) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = command
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout file"))
            .stderr(File::create(&stderr).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {name}: {error}"));
        Background { name: name.to_string(), child, stdout, stderr }
    }

    /// Waits for the program to exit, at most `limit`; kills it after that.
    pub fn wait(&mut self, limit: Duration) -> Run {
        let start = Instant::now();
        let (status, timed_out) = loop {
            if let Some(status) = self.child.try_wait().expect("wait for a background program") {
                break (status.code(), false);
            }
            if start.elapsed() > limit {
                self.child.kill().ok();
                self.child.wait().ok();
                break (None, true);
            }
            sleep(Duration::from_millis(50));
        };
        Run {
            status,
            timed_out,
            stdout: fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal Kafka wire client: ApiVersions v0 and Metadata v1..=8, blocking, with timeouts
// ---------------------------------------------------------------------------------------------

const API_METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataPartition {
    pub error_code: i16,
    pub index: i32,
    pub leader: i32,
    /// -1 below Metadata v7.
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    pub error_code: i16,
    pub name: String,
    pub partitions: Vec<MetadataPartition>,
}

/// The parts of a Metadata response the harness needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub brokers: Vec<MetadataBroker>,
    pub controller_id: i32,
    pub topics: Vec<MetadataTopic>,
}

impl Metadata {
    pub fn partition(&self, topic: &str, index: i32) -> Option<&MetadataPartition> {
        self.topics
            .iter()
            .find(|t| t.name == topic && t.error_code == 0)?
            .partitions
            .iter()
            .find(|p| p.index == index)
    }
}

/// Metadata from the broker at `addr`, for `topics` (None: all topics). The version is the
/// highest of 1..=8 the broker announces in ApiVersions.
pub fn metadata(addr: &str, topics: Option<&[&str]>) -> Result<Metadata, String> {
    let mut conn = Connection::open(addr)?;
    let versions = conn.api_versions()?;
    let (min, max) = versions
        .iter()
        .find(|(key, _, _)| *key == API_METADATA)
        .map(|&(_, min, max)| (min, max))
        .ok_or("the broker announces no Metadata API")?;
    let version = max.min(8);
    if version < 1 || version < min {
        return Err(format!("the broker's Metadata versions {min}..={max} do not meet this harness's 1..=8"));
    }
    let mut body = Vec::new();
    match topics {
        None => put_i32(&mut body, -1),
        Some(names) => {
            put_i32(&mut body, names.len() as i32);
            for name in names {
                put_str(&mut body, name);
            }
        }
    }
    if version >= 4 {
        body.push(0); // allow_auto_topic_creation = false
    }
    if version >= 8 {
        body.push(0); // include_cluster_authorized_operations
        body.push(0); // include_topic_authorized_operations
    }
    let response = conn.call(API_METADATA, version, &body)?;
    parse_metadata(&response, version).map_err(|error| format!("Metadata v{version} response: {error}"))
}

fn parse_metadata(bytes: &[u8], version: i16) -> Result<Metadata, String> {
    let mut r = Reader { bytes, at: 0 };
    if version >= 3 {
        r.i32()?; // throttle_time_ms
    }
    let mut brokers = Vec::new();
    for _ in 0..r.len()? {
        let node_id = r.i32()?;
        let host = r.string()?.unwrap_or_default();
        let port = r.i32()?;
        r.string()?; // rack
        brokers.push(MetadataBroker { node_id, host, port });
    }
    if version >= 2 {
        r.string()?; // cluster_id
    }
    let controller_id = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.len()? {
        let error_code = r.i16()?;
        let name = r.string()?.unwrap_or_default();
        r.i8()?; // is_internal
        let mut partitions = Vec::new();
        for _ in 0..r.len()? {
            let error_code = r.i16()?;
            let index = r.i32()?;
            let leader = r.i32()?;
            let leader_epoch = if version >= 7 { r.i32()? } else { -1 };
            let replicas = r.i32_array()?;
            let isr = r.i32_array()?;
            if version >= 5 {
                r.i32_array()?; // offline_replicas
            }
            partitions.push(MetadataPartition { error_code, index, leader, leader_epoch, replicas, isr });
        }
        if version >= 8 {
            r.i32()?; // topic_authorized_operations
        }
        topics.push(MetadataTopic { error_code, name, partitions });
    }
    Ok(Metadata { brokers, controller_id, topics })
}

struct Connection {
    stream: TcpStream,
    correlation: i32,
}

impl Connection {
    fn open(addr: &str) -> Result<Self, String> {
        let socket: SocketAddr = addr.parse().map_err(|error| format!("{addr}: {error}"))?;
        let stream = TcpStream::connect_timeout(&socket, IO_TIMEOUT)
            .map_err(|error| format!("connect {addr}: {error}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(|error| error.to_string())?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(|error| error.to_string())?;
        Ok(Connection { stream, correlation: 0 })
    }

    /// ApiVersions v0: (api_key, min, max) for every API the broker announces.
    fn api_versions(&mut self) -> Result<Vec<(i16, i16, i16)>, String> {
        let response = self.call(API_VERSIONS, 0, &[])?;
        let mut r = Reader { bytes: &response, at: 0 };
        let error = r.i16()?;
        if error != 0 {
            return Err(format!("ApiVersions v0 answered error code {error}"));
        }
        let mut versions = Vec::new();
        for _ in 0..r.len()? {
            versions.push((r.i16()?, r.i16()?, r.i16()?));
        }
        Ok(versions)
    }

    /// Sends one request (header v1) and returns the response body after its header v0.
    fn call(&mut self, api_key: i16, version: i16, body: &[u8]) -> Result<Vec<u8>, String> {
        self.correlation += 1;
        let mut frame = Vec::with_capacity(body.len() + 32);
        put_i32(&mut frame, 0); // size, patched below
        frame.extend_from_slice(&api_key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        put_i32(&mut frame, self.correlation);
        put_str(&mut frame, "seedlog-test-harness");
        frame.extend_from_slice(body);
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).map_err(|error| format!("send: {error}"))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(|error| format!("read response size: {error}"))?;
        let size = i32::from_be_bytes(size);
        if !(4..=64 << 20).contains(&size) {
            return Err(format!("response size {size}"));
        }
        let mut response = vec![0u8; size as usize];
        self.stream.read_exact(&mut response).map_err(|error| format!("read response: {error}"))?;
        let correlation = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
        if correlation != self.correlation {
            return Err(format!("correlation id {correlation}, want {}", self.correlation));
        }
        response.drain(..4);
        Ok(response)
    }
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as i16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// An array length (-1, null, counts as empty).
    fn len(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        if n > 1 << 20 {
            return Err(format!("array length {n}"));
        }
        Ok(n.max(0) as usize)
    }
    fn string(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(self.take(n as usize)?).into_owned()))
    }
    fn i32_array(&mut self) -> Result<Vec<i32>, String> {
        (0..self.len()?).map(|_| self.i32()).collect()
    }
}
