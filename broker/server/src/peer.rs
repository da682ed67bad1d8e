//! Node-to-node links: the core's [`NodeMessage`]s over TCP, on every node's internal listener
//! (the first of `controller.listener.names`).
//!
//! Format: each frame is a 4-byte big-endian length and that many bytes of bincode (bincode 1's
//! varint encoding of a [`PeerFrame`], at most [`PEER_FRAME_BYTES_MAX`]). Not JSON: JSON writes
//! record bytes as arrays of decimal numbers, three to four times their size, and encoding and
//! parsing them capped replication at a few MB/s. Both ends must run the same build. A connection carries one direction only: the dialling node sends a `Hello`
//! (its node id and the address of its own internal listener, so the receiver can answer a node
//! it has no configuration for — a broker-only observer) and then messages.
//!
//! Delivery is what the simulator's network gives the core, no more: a message may be lost (the
//! link is down, its queue of [`LINK_QUEUE_MAX`] is full, a write times out) and the core's own
//! timeouts retry. A link reconnects with a backoff and drops what queued while it was down, so a
//! healed partition does not deliver a burst of stale messages. Every wait is bounded: connect
//! [`CONNECT_TIMEOUT`], write [`WRITE_TIMEOUT`], the first frame of an inbound connection
//! [`HELLO_TIMEOUT`].

use std::collections::BTreeMap;
use std::time::Duration;

use bincode::Options;
use seedlog_core::node::NodeMessage;
use seedlog_core::quorum::NodeId;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::driver::{FrameReader, Input};
use crate::net::Network;

pub const LINK_QUEUE_MAX: usize = 4096;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The largest frame between nodes (a replica fetch answer is its records and a little more).
pub const PEER_FRAME_BYTES_MAX: u32 = 256 << 20;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum PeerFrame {
    Hello { node_id: NodeId, address: String },
    Message(NodeMessage),
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
        let mut stream = match connected {
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
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&hello)).await, Ok(Ok(()))) {
            continue;
        }
        loop {
            let Some(message) = messages.recv().await else { return };
            let Some(bytes) = encode(&PeerFrame::Message(message)) else { continue };
            if !matches!(tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await, Ok(Ok(()))) {
                break; // reconnect; this message is lost, as on a lossy network
            }
        }
    }
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

async fn serve_inbound<N: Network>(mut stream: N::Stream, inputs: mpsc::UnboundedSender<Input>) {
    let mut frames = FrameReader::new(PEER_FRAME_BYTES_MAX);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, frames.next(&mut stream)).await;
    let Ok(Ok(Some(hello))) = hello else { return };
    let Some(PeerFrame::Hello { node_id, address }) = decode(&hello) else { return };
    if inputs.send(Input::PeerAddress { node: node_id, address }).is_err() {
        return;
    }
    while let Ok(Some(frame)) = frames.next(&mut stream).await {
        let Some(PeerFrame::Message(message)) = decode(&frame) else { return };
        if inputs.send(Input::Peer { from: node_id, message }).is_err() {
            return;
        }
    }
}
