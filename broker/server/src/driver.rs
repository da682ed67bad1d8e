//! The production driver: one [`Node`] fed by sockets, files and the system clock.
//!
//! Shape (quinn's: a sans-IO core under a thin async shell):
//! - **The core task** owns the `Node`, its [`FileStorage`] and its rng. It alone calls the node:
//!   one input at a time (a client request, a peer's message, a sync completion, a timer when
//!   `next_deadline` passes, a shutdown), then it drains every effect in order, as the node's
//!   contract demands. `Send` to a connection id goes to that connection; to a node id, to the
//!   peer link; `Sync` takes a handle on the file at once (so the sync covers the file as it is
//!   when the effect is polled) and queues it for the sync worker; `Halt` and `ShutdownComplete`
//!   end the task, and the node is never called again.
//! - **The sync worker** runs `fdatasync` off the request path and batches: it takes every queued
//!   request, syncs each file once, and reports the completions in the order they were requested
//!   (the log requires in-order completion). A sync that fails is reported failed, never retried.
//!   On real disks it is a thread of its own (a sync blocks); on a simulated file system that
//!   lives on the simulation's thread (turmoil's) it is a task, with the same batching.
//! - **The client listeners** are bound at start (so a port 0 is resolved and a port in use fails
//!   the start) but listen only once [`Node::serves_clients`] turns true: the node caught up with
//!   the metadata log and this incarnation was unfenced. Until then clients are refused, as by a
//!   broker that is down, and ask another broker (Kafka's broker starts its client listener at the
//!   same point). The internal listener listens from the start.
//! - **A task per client connection**: reads Kafka frames (a size over `socket.request.max.bytes`
//!   or a negative one closes the connection), parses them ([`crate::wire`]), hands the parts to
//!   the core under a synthetic node id (`0x8000_0000 | n`), and writes the responses in request
//!   order even when the core answers them out of order (a long-poll fetch behind a metadata
//!   request). At most [`IN_FLIGHT_MAX`] requests are in flight per connection; past that it stops
//!   reading (back-pressure). A connection idle for `connections.max.idle.ms` (no request read,
//!   no response written) is closed, and so is one whose response write stalls that long: a
//!   peer that vanished (a partition, a crashed host) leaves no task behind.
//! - **Peer links** ([`crate::peer`]) carry the core's `NodeMessage`s between nodes.
//!
//! Everything the driver touches outside the process comes through a [`Platform`]: the sockets
//! ([`Network`]), the files ([`FileSystem`]), the wall clock and the rng's seed. Production runs
//! on [`OsPlatform`]; the turmoil test tier runs the same code on `crate::turmoil_host`'s. The
//! monotonic clock is tokio's (`tokio::time::Instant`), which a simulation controls.
//!
//! The driver decides nothing: every choice is the core's. What it must never do: call the node
//! after `Halt`/`ShutdownComplete`, reorder effects, acknowledge a sync before `fdatasync` returned,
//! or panic on anything a socket delivers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use seedlog_core::env::{Env, NoFaults, StorageError, Time};
use seedlog_core::node::{Node, NodeEffect, NodeMessage, NodeSyncToken};
use seedlog_core::protocol::ClientResponse;
use seedlog_core::quorum::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::fs::{FileHandle, FileStorage, FileSystem, StdFileSystem, HANDLES_MAX_DEFAULT};
use crate::net::{Network, TokioNetwork};
use crate::peer::{self, Peers};
use crate::wire::{self, Answer, Context, Parsed, Part, Pending, TopicNames};

/// Requests one connection may have in flight before the driver stops reading from it.
pub const IN_FLIGHT_MAX: usize = 128;
/// Synthetic node ids of client connections have this bit set (node ids stay below it).
pub const CONNECTION_BIT: NodeId = 0x8000_0000;

/// What the driver runs on: everything it reaches outside the process but tokio's clock.
///
/// Contract: `wall_clock_ms` is milliseconds since the Unix epoch (it may jump: the core only
/// stamps records with it); `rng` is called once per start and seeds the node's rng; syncs of
/// `FileSystem` files are run as [`FileSystem::SYNC_BLOCKS_THREAD`] says, each batch after
/// `sync_delay` (zero in production: a simulated disk's fsync takes that long instead).
pub trait Platform: Clone + Send + Sync + 'static {
    type Network: Network;
    type FileSystem: FileSystem;

    fn network(&self) -> Self::Network;
    fn file_system(&self) -> Self::FileSystem;
    fn wall_clock_ms(&self) -> i64;
    fn rng(&self) -> ChaCha8Rng;
    fn sync_delay(&self) -> Duration {
        Duration::ZERO
    }
}

/// The operating system: a network (tokio's TCP unless a test swaps it), `std::fs`, the system
/// clock and the operating system's entropy.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsPlatform<N: Network = TokioNetwork>(pub N);

impl<N: Network> Platform for OsPlatform<N> {
    type Network = N;
    type FileSystem = StdFileSystem;

    fn network(&self) -> N {
        self.0.clone()
    }

    fn file_system(&self) -> StdFileSystem {
        StdFileSystem
    }

    fn wall_clock_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }

    fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::from_os_rng()
    }
}

/// What the core task is told.
#[derive(Debug)]
pub enum Input {
    Opened { connection: NodeId, responses: mpsc::UnboundedSender<(u64, ClientResponse)> },
    Closed { connection: NodeId },
    Client { connection: NodeId, correlation_id: u64, request: seedlog_core::protocol::ClientRequest },
    Peer { from: NodeId, message: NodeMessage },
    PeerAddress { node: NodeId, address: String },
    SyncDone { token: NodeSyncToken, result: Result<(), StorageError> },
    Shutdown,
}

/// Why the broker stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A controlled shutdown finished.
    Shutdown,
    /// The core halted (its reason); the operator or supervisor restarts the process.
    Halted(String),
}

/// A started broker: its bound addresses, and handles to stop it or wait for it.
pub struct Running {
    /// `(listener name, host:port)` actually bound, in `listeners` order.
    pub addresses: Vec<(String, String)>,
    inputs: mpsc::UnboundedSender<Input>,
    exit: tokio::task::JoinHandle<Exit>,
}

/// Asks a running broker for a controlled shutdown.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(mpsc::UnboundedSender<Input>);

impl ShutdownHandle {
    /// Begins a controlled shutdown (the node moves its leaderships away, then stops).
    pub fn shutdown(&self) {
        let _ = self.0.send(Input::Shutdown);
    }
}

impl Running {
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.inputs.clone())
    }

    /// Waits until the core stops.
    pub async fn wait(self) -> Exit {
        match self.exit.await {
            Ok(exit) => exit,
            Err(error) => Exit::Halted(format!("the core task failed: {error}")),
        }
    }

    pub fn address(&self, listener: &str) -> Option<&str> {
        self.addresses.iter().find(|(name, _)| name == listener).map(|(_, address)| address.as_str())
    }
}

/// Opens the data directory, binds every listener, starts the node and its tasks, on the
/// operating system with `network`'s sockets.
pub async fn start<N: Network>(network: N, config: ServerConfig) -> Result<Running, String> {
    start_on(OsPlatform(network), config).await
}

/// [`start`] on any [`Platform`].
pub async fn start_on<P: Platform>(platform: P, mut config: ServerConfig) -> Result<Running, String> {
    let network = platform.network();
    let storage = FileStorage::on(platform.file_system(), &config.data_dir, HANDLES_MAX_DEFAULT)
        .map_err(|error| format!("data directory {}: {error}", config.data_dir.display()))?;
    let mut bound = Vec::new();
    let mut addresses = Vec::new();
    for listener in &config.listeners {
        let cannot = |error: std::io::Error| {
            format!("cannot listen on {}://{}: {error}", listener.name, listener.address())
        };
        // Node-to-node traffic flows at once (the node catches up through it); a client listener
        // is only reserved until the core serves clients.
        let (socket, address) = if listener.name == config.internal_listener {
            let socket = network.bind(&listener.address()).await.map_err(cannot)?;
            let address = P::Network::local_address(&socket).map_err(cannot)?;
            (Bound::<P::Network>::Peers(socket), address)
        } else {
            let socket = network.reserve(&listener.address()).await.map_err(cannot)?;
            let address = P::Network::reserved_address(&socket).map_err(cannot)?;
            (Bound::Clients(socket), address)
        };
        addresses.push((listener.name.clone(), address));
        bound.push((listener.name.clone(), socket));
    }
    // A listener bound to port 0 advertises the port it got.
    for endpoint in &mut config.node.endpoints {
        if endpoint.port == 0 {
            if let Some((_, address)) = addresses.iter().find(|(name, _)| *name == endpoint.listener) {
                if let Some(port) = address.rsplit(':').next().and_then(|port| port.parse().ok()) {
                    endpoint.port = port;
                }
            }
        }
    }
    // Other nodes dial what this one advertises for its internal listener (the bound address
    // may be 0.0.0.0, which names no host to dial).
    let own_internal = config
        .node
        .endpoints
        .iter()
        .find(|endpoint| endpoint.listener == config.internal_listener && !endpoint.host.is_empty())
        .map(|endpoint| format!("{}:{}", endpoint.host, endpoint.port))
        .or_else(|| {
            addresses
                .iter()
                .find(|(name, _)| *name == config.internal_listener)
                .map(|(_, address)| address.clone())
        })
        .unwrap_or_default();

    let clock = Instant::now();
    let mut rng = platform.rng();
    let mut storage = storage;
    let node = {
        let mut faults = NoFaults;
        let mut env = Env {
            now: Time(0),
            wall_clock_ms: platform.wall_clock_ms(),
            storage: &mut storage,
            rng: &mut rng,
            faults: &mut faults,
        };
        Node::start(&mut env, config.node.clone())
            .map_err(|error| format!("the node cannot start: {error:?}"))?
    };
    let (inputs, input_queue) = mpsc::unbounded_channel();
    let (topics_tx, topics_rx) = watch::channel(Arc::new(TopicNames::default()));
    let (serving_tx, serving_rx) = watch::channel(false);
    let sync_queue = spawn_sync_worker(&platform, inputs.clone());
    let peers = Peers::new(
        network.clone(),
        config.node.node_id,
        own_internal,
        config.voters.clone(),
        config.internal_listener.clone(),
    );
    let context = Context {
        listener: String::new(),
        topics: Arc::new(TopicNames::default()),
        message_bytes_max: config.message_bytes_max,
        broker_properties: Arc::new(config.properties.clone()),
        node_id: config.node.node_id,
        num_partitions: config.node.replication.num_partitions,
        default_replication_factor: config.node.replication.default_replication_factor,
    };
    let mut next_connection: u32 = 0;
    for (name, socket) in bound {
        let socket = match socket {
            Bound::Peers(socket) => {
                tokio::spawn(peer::accept_loop::<P::Network>(socket, inputs.clone()));
                continue;
            }
            Bound::Clients(socket) => socket,
        };
        let listener_context = Context { listener: name, ..context.clone() };
        let first_id = next_connection;
        next_connection = next_connection.wrapping_add(1 << 24); // ids of each listener apart
        tokio::spawn(accept_clients::<P::Network>(
            socket,
            serving_rx.clone(),
            listener_context,
            inputs.clone(),
            topics_rx.clone(),
            ConnectionLimits {
                request_bytes_max: config.request_bytes_max,
                idle: Duration::from_millis(config.connection_idle_ms),
            },
            first_id,
        ));
    }
    let core = Core {
        platform,
        node,
        storage,
        rng,
        clock,
        connections: BTreeMap::new(),
        peers,
        sync_queue,
        topics: topics_tx,
        serving: serving_tx,
        image_offset: -1,
        immediate: VecDeque::new(),
    };
    let exit = tokio::spawn(core.run(input_queue));
    Ok(Running { addresses, inputs, exit })
}

/// One sync the core asked for: a handle on the file taken when the effect was polled.
struct SyncJob<H> {
    token: NodeSyncToken,
    path: String,
    file: H,
}

type SyncQueue<P> = mpsc::UnboundedSender<SyncJob<<<P as Platform>::FileSystem as FileSystem>::File>>;

/// Starts the sync worker (a thread on real disks, a task on a simulated one): group commit over
/// whatever is queued, completions in request order.
fn spawn_sync_worker<P: Platform>(platform: &P, inputs: mpsc::UnboundedSender<Input>) -> SyncQueue<P> {
    let (queue, mut jobs) = mpsc::unbounded_channel::<SyncJob<<P::FileSystem as FileSystem>::File>>();
    if <P::FileSystem as FileSystem>::SYNC_BLOCKS_THREAD {
        std::thread::Builder::new()
            .name("seedlog-sync".into())
            .spawn(move || {
                while let Some(first) = jobs.blocking_recv() {
                    let batch = take_batch(first, &mut jobs);
                    if !run_batch(batch, &inputs) {
                        return; // the core stopped
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|error| eprintln!("seedlog: cannot start the sync thread: {error}"));
    } else {
        let delay = platform.sync_delay();
        tokio::spawn(async move {
            while let Some(first) = jobs.recv().await {
                let batch = take_batch(first, &mut jobs);
                if !delay.is_zero() {
                    // The disk's fsync takes this long; what is written meanwhile may be covered
                    // too (a sync covers at least what was written before it started).
                    tokio::time::sleep(delay).await;
                }
                if !run_batch(batch, &inputs) {
                    return;
                }
            }
        });
    }
    queue
}

/// `first` and every job queued behind it.
fn take_batch<H>(first: SyncJob<H>, jobs: &mut mpsc::UnboundedReceiver<SyncJob<H>>) -> Vec<SyncJob<H>> {
    let mut batch = vec![first];
    while let Ok(job) = jobs.try_recv() {
        batch.push(job);
    }
    batch
}

/// Syncs each file of the batch once and reports every job, in order. `false` once the core
/// stopped listening.
fn run_batch<H: FileHandle>(batch: Vec<SyncJob<H>>, inputs: &mpsc::UnboundedSender<Input>) -> bool {
    let mut results: BTreeMap<String, Result<(), StorageError>> = BTreeMap::new();
    for job in &batch {
        if !results.contains_key(&job.path) {
            let result = job.file.sync_data().map_err(|error| {
                if error.raw_os_error() == Some(28) || error.kind() == std::io::ErrorKind::StorageFull {
                    StorageError::NoSpace
                } else {
                    StorageError::Io
                }
            });
            results.insert(job.path.clone(), result);
        }
    }
    for job in batch {
        let result = results.get(&job.path).cloned().unwrap_or(Err(StorageError::Io));
        if inputs.send(Input::SyncDone { token: job.token, result }).is_err() {
            return false;
        }
    }
    true
}

struct Core<P: Platform> {
    platform: P,
    node: Node,
    storage: FileStorage<P::FileSystem>,
    rng: ChaCha8Rng,
    clock: Instant,
    connections: BTreeMap<NodeId, mpsc::UnboundedSender<(u64, ClientResponse)>>,
    peers: Peers<P::Network>,
    sync_queue: SyncQueue<P>,
    topics: watch::Sender<Arc<TopicNames>>,
    /// Turns true (once) when the node serves clients: the client listeners open.
    serving: watch::Sender<bool>,
    /// The image end offset last published.
    image_offset: i64,
    /// Sync completions known at request time (the file could not be opened).
    immediate: VecDeque<(NodeSyncToken, StorageError)>,
}

impl<P: Platform> Core<P> {
    async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<Input>) -> Exit {
        if let Some(exit) = self.after_input() {
            return exit;
        }
        loop {
            let deadline = self.node.next_deadline().map(|deadline| self.instant(deadline));
            let input = match deadline {
                Some(at) => tokio::select! {
                    input = inputs.recv() => input,
                    _ = tokio::time::sleep_until(at) => {
                        self.step(|node, env| node.handle_timer(env));
                        if let Some(exit) = self.after_input() {
                            return exit;
                        }
                        continue;
                    }
                },
                None => inputs.recv().await,
            };
            let Some(input) = input else {
                return Exit::Halted("every input channel closed".into());
            };
            self.handle(input);
            if let Some(exit) = self.after_input() {
                return exit;
            }
        }
    }

    fn now(&self) -> Time {
        Time(u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn instant(&self, time: Time) -> Instant {
        self.clock + Duration::from_nanos(time.as_nanos())
    }

    fn step(&mut self, input: impl FnOnce(&mut Node, &mut Env<'_>)) {
        let mut faults = NoFaults;
        let mut env = Env {
            now: self.now(),
            wall_clock_ms: self.platform.wall_clock_ms(),
            storage: &mut self.storage,
            rng: &mut self.rng,
            faults: &mut faults,
        };
        input(&mut self.node, &mut env);
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Opened { connection, responses } => {
                self.connections.insert(connection, responses);
            }
            Input::Closed { connection } => {
                self.connections.remove(&connection);
            }
            Input::Client { connection, correlation_id, request } => {
                let message = NodeMessage::Client { correlation_id, request };
                self.step(|node, env| node.handle_message(env, connection, message));
            }
            Input::Peer { from, message } => {
                if from & CONNECTION_BIT == 0 {
                    self.step(|node, env| node.handle_message(env, from, message));
                }
            }
            Input::PeerAddress { node, address } => self.peers.learn(node, address),
            Input::SyncDone { token, result } => {
                self.step(|node, env| node.handle_sync_complete(env, token, result));
            }
            Input::Shutdown => self.step(|node, env| node.begin_shutdown(env)),
        }
    }

    /// Executes every effect; returns the exit once the node stopped.
    fn after_input(&mut self) -> Option<Exit> {
        loop {
            while let Some(effect) = self.node.poll_effect() {
                match effect {
                    NodeEffect::Send { to, message } => self.send(to, message),
                    NodeEffect::Sync { token, path } => match self.storage.sync_handle(&path) {
                        Ok(file) => {
                            if self.sync_queue.send(SyncJob { token, path, file }).is_err() {
                                self.immediate.push_back((token, StorageError::Io));
                            }
                        }
                        Err(error) => self.immediate.push_back((token, error)),
                    },
                    NodeEffect::Halt { reason } => return Some(Exit::Halted(reason)),
                    NodeEffect::ShutdownComplete => return Some(Exit::Shutdown),
                }
            }
            let Some((token, error)) = self.immediate.pop_front() else { break };
            self.step(|node, env| node.handle_sync_complete(env, token, Err(error)));
        }
        self.publish_metadata();
        if self.node.serves_clients() && !*self.serving.borrow() {
            self.serving.send_replace(true);
        }
        None
    }

    fn send(&mut self, to: NodeId, message: NodeMessage) {
        if to & CONNECTION_BIT != 0 {
            if let NodeMessage::ClientResponse { correlation_id, response } = message {
                if let Some(connection) = self.connections.get(&to) {
                    let _ = connection.send((correlation_id, response));
                }
            }
            return;
        }
        self.peers.send(to, message);
    }

    /// Publishes topic names and peers' addresses when the applied image changed.
    fn publish_metadata(&mut self) {
        let image = self.node.image();
        if image.end_offset == self.image_offset {
            return;
        }
        self.image_offset = image.end_offset;
        let mut names = TopicNames::default();
        for (id, topic) in &image.topics {
            names.by_id.insert(*id, topic.name.clone());
            names.by_name.insert(topic.name.clone(), *id);
        }
        let listener = self.peers.internal_listener_name();
        let learned: Vec<(NodeId, String)> = image
            .brokers
            .values()
            .filter_map(|registration| {
                let endpoint =
                    registration.endpoints.iter().find(|endpoint| endpoint.listener == listener)?;
                Some((registration.broker_id, format!("{}:{}", endpoint.host, endpoint.port)))
            })
            .collect();
        for (node, address) in learned {
            self.peers.learn(node, address);
        }
        self.topics.send_if_modified(|current| {
            if **current == names {
                false
            } else {
                *current = Arc::new(names);
                true
            }
        });
    }
}

/// A listener as `start` bound it.
enum Bound<N: Network> {
    /// The internal listener: listening from the start.
    Peers(N::Listener),
    /// A client listener: reserved, listening once the node serves clients.
    Clients(N::Reserved),
}

/// Per-connection bounds of a client listener.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    /// `socket.request.max.bytes`.
    request_bytes_max: u32,
    /// `connections.max.idle.ms`.
    idle: Duration,
}

/// Waits until the node serves clients, then listens on the reserved address and serves every
/// connection. Until then a client's connection is refused, as Kafka's is before its broker caught
/// up with the metadata log and was unfenced.
async fn accept_clients<N: Network>(
    reserved: N::Reserved,
    mut serving: watch::Receiver<bool>,
    context: Context,
    inputs: mpsc::UnboundedSender<Input>,
    topics: watch::Receiver<Arc<TopicNames>>,
    limits: ConnectionLimits,
    first_id: u32,
) {
    if serving.wait_for(|serving| *serving).await.is_err() {
        return; // the core stopped before it served clients
    }
    let address = N::reserved_address(&reserved).unwrap_or_default();
    let mut socket = match N::listen(reserved).await {
        Ok(socket) => socket,
        Err(error) => {
            eprintln!("seedlog: cannot listen on {}://{address}: {error}", context.listener);
            return;
        }
    };
    eprintln!(
        "seedlog: node {} caught up with the metadata log and unfenced: serving clients on {}://{address}",
        context.node_id, context.listener
    );
    let mut next = first_id;
    loop {
        match N::accept(&mut socket).await {
            Ok((stream, _peer)) => {
                let connection = CONNECTION_BIT | (next & !CONNECTION_BIT);
                next = next.wrapping_add(1);
                tokio::spawn(serve_client::<N>(
                    stream,
                    connection,
                    context.clone(),
                    inputs.clone(),
                    topics.clone(),
                    limits,
                ));
            }
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                eprintln!("seedlog: accept on {}: {error}", context.listener);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one size-prefixed frame. `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: u32,
) -> Result<Option<Bytes>, String> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.to_string()),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 {
        return Err(format!("negative frame size {size}"));
    }
    if size as u32 > frame_bytes_max {
        return Err(format!("a {size}-byte frame is over the {frame_bytes_max}-byte limit"));
    }
    let mut frame = vec![0u8; size as usize];
    reader.read_exact(&mut frame).await.map_err(|error| format!("truncated frame: {error}"))?;
    Ok(Some(Bytes::from(frame)))
}

/// Reads size-prefixed frames from one stream into a buffer it keeps: each read takes whatever
/// the socket has (several small requests, or a large one in a few reads), and a frame is handed
/// out as a slice of the buffer, without zeroing or copying it. Once the frames handed out are
/// dropped, the buffer's memory is reused, so a connection streaming large produce requests does
/// not make the allocator fault in fresh pages for every request.
pub struct FrameReader {
    buffer: BytesMut,
    frame_bytes_max: u32,
}

impl FrameReader {
    /// The least free room a read is given: small requests arrive many to a read.
    pub const READ_BYTES_MIN: usize = 64 << 10;

    pub fn new(frame_bytes_max: u32) -> FrameReader {
        FrameReader { buffer: BytesMut::new(), frame_bytes_max }
    }

    /// The next frame (without its size prefix). `Ok(None)` at a clean end of stream; a negative
    /// size, a size over the limit or a stream ending inside a frame is an error.
    pub async fn next<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<Bytes>, String> {
        loop {
            let mut wanted = Self::READ_BYTES_MIN;
            if self.buffer.len() >= 4 {
                let size =
                    i32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]);
                if size < 0 {
                    return Err(format!("negative frame size {size}"));
                }
                if size as u32 > self.frame_bytes_max {
                    return Err(format!(
                        "a {size}-byte frame is over the {}-byte limit",
                        self.frame_bytes_max
                    ));
                }
                let frame_end = 4 + size as usize;
                if self.buffer.len() >= frame_end {
                    self.buffer.advance(4);
                    return Ok(Some(self.buffer.split_to(size as usize).freeze()));
                }
                wanted = wanted.max(frame_end - self.buffer.len());
            }
            if self.buffer.capacity() - self.buffer.len() < wanted {
                self.buffer.reserve(wanted);
            }
            let read = reader.read_buf(&mut self.buffer).await.map_err(|error| error.to_string())?;
            if read == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(format!("truncated frame: the stream ended {} bytes into it", self.buffer.len()))
                };
            }
        }
    }
}

/// One request of a connection, in arrival order.
struct Slot {
    pending: Option<Box<Pending>>,
    answers: Vec<Option<Answer>>,
    outstanding: usize,
    /// The encoded response (or `None` with `done` for no response at all).
    frame: Option<Bytes>,
    done: bool,
}

async fn serve_client<N: Network>(
    stream: N::Stream,
    connection: NodeId,
    mut context: Context,
    inputs: mpsc::UnboundedSender<Input>,
    topics: watch::Receiver<Arc<TopicNames>>,
    limits: ConnectionLimits,
) {
    let request_bytes_max = limits.request_bytes_max;
    let (responses_tx, mut responses) = mpsc::unbounded_channel();
    if inputs.send(Input::Opened { connection, responses: responses_tx }).is_err() {
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (frames_tx, mut frames) = mpsc::channel::<Result<Bytes, String>>(8);
    let reading = tokio::spawn(async move {
        let mut frame_reader = FrameReader::new(request_bytes_max);
        loop {
            match frame_reader.next(&mut reader).await {
                Ok(Some(frame)) => {
                    if frames_tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(reason) => {
                    let _ = frames_tx.send(Err(reason)).await;
                    return;
                }
            }
        }
    });
    let mut slots: VecDeque<Slot> = VecDeque::new();
    let mut first_sequence: u64 = 0; // the sequence number of slots[0]
    let mut parts_by_id: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut next_id: u64 = 0;
    let mut reading_done = false;
    // Pushed back by every request read and every response written.
    let mut idle_deadline = Instant::now() + limits.idle;
    let close_reason = loop {
        if reading_done && slots.is_empty() {
            break None;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(idle_deadline) => {
                break Some(format!("idle for {} ms", limits.idle.as_millis()));
            }
            frame = frames.recv(), if !reading_done && slots.len() < IN_FLIGHT_MAX => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(reason)) => break Some(reason),
                    None => { reading_done = true; continue; }
                };
                idle_deadline = Instant::now() + limits.idle;
                context.topics = topics.borrow().clone();
                let sequence = first_sequence + slots.len() as u64;
                match wire::parse_request(frame, &context) {
                    Parsed::Close(reason) => break Some(reason),
                    Parsed::Respond(frame) => slots.push_back(Slot {
                        pending: None, answers: Vec::new(), outstanding: 0, frame: Some(frame), done: true,
                    }),
                    Parsed::Pending(mut pending) => {
                        // The parts go to the core (a produce part owns its batch: no copy); the
                        // answers are joined with what `pending` keeps of the request.
                        let parts = std::mem::take(&mut pending.parts);
                        let mut answers = Vec::with_capacity(parts.len());
                        let mut outstanding = 0;
                        for (index, part) in parts.into_iter().enumerate() {
                            match part {
                                Part::Done(answer) => answers.push(Some(answer)),
                                Part::Ask(request) => {
                                    answers.push(None);
                                    outstanding += 1;
                                    let correlation_id = next_id;
                                    next_id += 1;
                                    parts_by_id.insert(correlation_id, (sequence, index));
                                    let _ = inputs.send(Input::Client { connection, correlation_id, request });
                                }
                            }
                        }
                        slots.push_back(Slot { pending: Some(pending), answers, outstanding, frame: None, done: false });
                    }
                }
            }
            answer = responses.recv() => {
                let Some((correlation_id, response)) = answer else { break Some("the core stopped".into()) };
                if matches!(response, ClientResponse::NotServing) {
                    // Metadata from a node that serves no clients: close, as a broker that is down.
                    break Some("the node does not serve clients".into());
                }
                let Some((sequence, index)) = parts_by_id.remove(&correlation_id) else { continue };
                let Some(slot) = sequence.checked_sub(first_sequence).and_then(|offset| slots.get_mut(offset as usize)) else { continue };
                if let Some(entry) = slot.answers.get_mut(index) {
                    if entry.is_none() {
                        *entry = Some(Answer::Core(response));
                        slot.outstanding -= 1;
                    }
                }
            }
        }
        // Finish complete slots and write out the ready prefix, in request order.
        for slot in slots.iter_mut().filter(|slot| !slot.done && slot.outstanding == 0) {
            slot.done = true;
            if let Some(pending) = slot.pending.take() {
                if pending.respond {
                    let answers = slot
                        .answers
                        .drain(..)
                        .map(|answer| answer.unwrap_or(Answer::Error(wire::codes::INVALID_REQUEST)))
                        .collect();
                    match pending.encode(answers, &context) {
                        Ok(frame) => slot.frame = Some(frame),
                        Err(reason) => eprintln!(
                            "seedlog: connection {connection:#x}: cannot encode a response: {reason}"
                        ),
                    }
                }
            }
        }
        let mut write_error = None;
        while slots.front().is_some_and(|slot| slot.done) {
            if let Some(slot) = slots.pop_front() {
                first_sequence += 1;
                if let Some(frame) = slot.frame {
                    match tokio::time::timeout(limits.idle, writer.write_all(&frame)).await {
                        Ok(Ok(())) => idle_deadline = Instant::now() + limits.idle,
                        Ok(Err(error)) => {
                            write_error = Some(error.to_string());
                            break;
                        }
                        Err(_) => {
                            write_error =
                                Some(format!("a response write stalled for {} ms", limits.idle.as_millis()));
                            break;
                        }
                    }
                }
            }
        }
        if let Some(reason) = write_error {
            break Some(reason);
        }
    };
    if let Some(reason) = close_reason {
        if std::env::var_os("SEEDLOG_LOG_CONNECTIONS").is_some() {
            eprintln!("seedlog: closing connection {connection:#x}: {reason}");
        }
    }
    // Bounded too: the peer may be gone without a word (a partition, a crashed host).
    let _ = tokio::time::timeout(limits.idle, writer.shutdown()).await;
    reading.abort();
    let _ = inputs.send(Input::Closed { connection });
}
