//! Node-to-node links: the core's [`NodeMessage`]s over TCP, on every node's internal listener
//! (the first of `controller.listener.names`).
//!
//! Format: each frame is a 4-byte big-endian length and that many bytes of bincode (bincode 1's
//! varint encoding of a [`PeerFrame`], at most [`PEER_FRAME_BYTES_MAX`]). Not JSON: JSON writes
//! record bytes as arrays of decimal numbers, three to four times their size, and encoding and
//! parsing them capped replication at a few MB/s. Both ends must run the same build. A connection
//! carries the core's messages one way only: the dialling node sends a `Hello` (its node id and the
//! address of its own internal listener, so the receiver can answer a node it has no configuration
//! for — a broker-only observer) and then messages, with a `Keepalive` every
//! [`KEEPALIVE_INTERVAL`]; the receiving node answers each `Keepalive` with a `KeepaliveAck` and
//! sends nothing else.
//!
//! Delivery is what the simulator's network gives the core, no more: a message may be lost (the
//! link is down, its queue of [`LINK_QUEUE_MAX`] is full, a write times out) and the core's own
//! timeouts retry. A link reconnects with a backoff and drops what queued while it was down, so a
//! healed partition does not deliver a burst of stale messages. Every wait is bounded: connect
//! [`CONNECT_TIMEOUT`], write [`WRITE_TIMEOUT`], the first frame of an inbound connection
//! [`HELLO_TIMEOUT`].
//!
//! A connection can also stall without an error: a TCP connection whose peer vanished (a crashed
//! host, a partition that dropped a segment; turmoil's TCP never retransmits one, and a real
//! network cut can hold a connection open for as long as the kernel retries) delivers nothing and
//! reports nothing. So both ends watch for silence: the dialler reconnects when no
//! `KeepaliveAck` arrived for [`PEER_IDLE_TIMEOUT`], and the receiver closes a connection on which
//! no frame arrived for as long.

use std::collections::BTreeMap;
use std::time::Duration;

use bincode::Options;
use seedlog_core::node::NodeMessage;
use seedlog_core::quorum::NodeId;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::driver::{read_frame, FrameReader, Input};
use crate::net::Network;

pub const LINK_QUEUE_MAX: usize = 4096;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the dialler proves the link alive.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
/// Silence after which either end gives a connection up (several keepalive round trips).
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest frame the dialler reads back (a `KeepaliveAck`).
const ACK_FRAME_BYTES_MAX: u32 = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The largest frame between nodes (a replica fetch answer is its records and a little more).
pub const PEER_FRAME_BYTES_MAX: u32 = 256 << 20;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum PeerFrame {
    Hello {
        node_id: NodeId,
        address: String,
    },
    Message(NodeMessage),
    /// The dialler: the link is alive; answer.
    Keepalive,
    /// The receiver's answer to a `Keepalive`.
    KeepaliveAck,
}

/// The encoding of a frame's body; a length over the frame limit is an error, never an allocation.
fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new().with_limit(u64::from(PEER_FRAME_BYTES_MAX))
}

/// A frame: its length, then its body. `None` for a frame over [`PEER_FRAME_BYTES_MAX`].
fn encode(frame: &PeerFrame) -> Option<Vec<u8>> {
    let body_bytes = options().serialized_size(frame).ok()?;
    let length = u32::try_from(body_bytes).ok().filter(|length| *length <= PEER_FRAME_BYTES_MAX)?;
    let mut bytes = Vec::with_capacity(4 + length as usize);
    bytes.extend_from_slice(&length.to_be_bytes());
    options().serialize_into(&mut bytes, frame).ok()?;
    Some(bytes)
}

/// A frame's body back into a frame; `None` for anything that does not decode (the link closes).
fn decode(body: &[u8]) -> Option<PeerFrame> {
    options().deserialize(body).ok()
}

/// The outgoing links of one node, created on first use.
pub struct Peers<N: Network> {
    network: N,
    own_id: NodeId,
    own_address: String,
    internal_listener: String,
    /// Where each node's internal listener is: configured voters, hellos, registrations.
    book: BTreeMap<NodeId, String>,
    links: BTreeMap<NodeId, (String, mpsc::Sender<NodeMessage>)>,
}

impl<N: Network> Peers<N> {
    pub fn new(
        network: N,
        own_id: NodeId,
        own_address: String,
        voters: BTreeMap<NodeId, String>,
        internal_listener: String,
    ) -> Peers<N> {
        Peers { network, own_id, own_address, internal_listener, book: voters, links: BTreeMap::new() }
    }

    pub fn internal_listener_name(&self) -> &str {
        &self.internal_listener
    }

    /// Records a node's address; a link to an old address is replaced on its next use.
    pub fn learn(&mut self, node: NodeId, address: String) {
        if node != self.own_id && !address.is_empty() {
            self.book.insert(node, address);
        }
    }

    /// Queues a message; drops it when the node's address is unknown or its queue is full.
    pub fn send(&mut self, to: NodeId, message: NodeMessage) {
        let Some(address) = self.book.get(&to).cloned() else { return };
        let stale =
            self.links.get(&to).is_some_and(|(linked, queue)| *linked != address || queue.is_closed());
        if stale {
            self.links.remove(&to);
        }
        let (_, queue) = self.links.entry(to).or_insert_with(|| {
            let (queue, messages) = mpsc::channel(LINK_QUEUE_MAX);
            let hello = PeerFrame::Hello { node_id: self.own_id, address: self.own_address.clone() };
            tokio::spawn(link(
                self.network.clone(),
                address.clone(),
                encode(&hello).unwrap_or_default(),
                messages,
            ));
            (address, queue)
        });
        let _ = queue.try_send(message);
    }
}

/// One outgoing link: connect, hello, then messages; reconnect with a backoff on any failure.
async fn link<N: Network>(
    network: N,
    address: String,
    hello: Vec<u8>,
    mut messages: mpsc::Receiver<NodeMessage>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, network.connect(&address)).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            _ => {
                // Down: what queued meanwhile is stale by the time the link is back.
                loop {
                    match messages.try_recv() {
                        Ok(_) => continue,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        match carry(stream, &hello, &mut messages).await {
            Carried::Stopped => return,
            // Reconnect at once: the peer was reachable a moment ago.
            Carried::Broken => {}
        }
    }
}

enum Carried {
    /// The node dropped the link (its queue closed).
    Stopped,
    /// The connection failed or went silent.
    Broken,
}

/// Carries messages over one connection until it fails, goes silent for [`PEER_IDLE_TIMEOUT`]
/// (no `KeepaliveAck`), or the link is dropped.
async fn carry<S>(stream: S, hello: &[u8], messages: &mut mpsc::Receiver<NodeMessage>) -> Carried
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(hello)).await, Ok(Ok(()))) {
        return Carried::Broken;
    }
    // Acks are read on a task of their own (a frame read is not cancel-safe); it ends, and
    // closes `heard`, when the connection does.
    let (heard_tx, mut heard) = mpsc::channel::<()>(1);
    let reading = tokio::spawn(async move {
        while let Ok(Some(_)) = read_frame(&mut reader, ACK_FRAME_BYTES_MAX).await {
            if heard_tx.send(()).await.is_err() {
                return;
            }
        }
    });
    let keepalive = encode(&PeerFrame::Keepalive).unwrap_or_default();
    let mut silent_since = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(KEEPALIVE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let carried = loop {
        let bytes = tokio::select! {
            message = messages.recv() => match message {
                Some(message) => match encode(&PeerFrame::Message(message)) {
                    Some(bytes) => bytes,
                    None => continue,
                },
                None => break Carried::Stopped,
            },
            _ = ticks.tick() => {
                if silent_since.elapsed() >= PEER_IDLE_TIMEOUT {
                    break Carried::Broken;
                }
                keepalive.clone()
            }
            ack = heard.recv() => match ack {
                Some(()) => {
                    silent_since = tokio::time::Instant::now();
                    continue;
                }
                None => break Carried::Broken, // closed or reset by the peer
            },
        };
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await, Ok(Ok(()))) {
            break Carried::Broken; // this message is lost, as on a lossy network
        }
    };
    reading.abort();
    carried
}

/// Accepts inbound links on the internal listener.
pub async fn accept_loop<N: Network>(mut listener: N::Listener, inputs: mpsc::UnboundedSender<Input>) {
    loop {
        match N::accept(&mut listener).await {
            Ok((stream, _)) => {
                tokio::spawn(serve_inbound::<N>(stream, inputs.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One inbound connection: a hello, then messages and keepalives (each answered) until the
/// connection ends, sends something else, or is silent for [`PEER_IDLE_TIMEOUT`].
async fn serve_inbound<N: Network>(mut stream: N::Stream, inputs: mpsc::UnboundedSender<Input>) {
    let mut frames = FrameReader::new(PEER_FRAME_BYTES_MAX);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, frames.next(&mut stream)).await;
    let Ok(Ok(Some(hello))) = hello else { return };
    let Some(PeerFrame::Hello { node_id, address }) = decode(&hello) else { return };
    if inputs.send(Input::PeerAddress { node: node_id, address }).is_err() {
        return;
    }
    let ack = encode(&PeerFrame::KeepaliveAck).unwrap_or_default();
    loop {
        // Dropping a pending read on the timeout is fine: the connection is given up with it.
        let frame = tokio::time::timeout(PEER_IDLE_TIMEOUT, frames.next(&mut stream)).await;
        let Ok(Ok(Some(frame))) = frame else { return };
        match decode(&frame) {
            Some(PeerFrame::Message(message)) => {
                if inputs.send(Input::Peer { from: node_id, message }).is_err() {
                    return;
                }
            }
            Some(PeerFrame::Keepalive) => {
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&ack)).await, Ok(Ok(()))) {
                    return;
                }
            }
            _ => return,
        }
    }
}
