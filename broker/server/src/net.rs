//! The driver's network, behind a small trait so that the same driver runs on tokio's sockets in
//! production and on turmoil's simulated ones in the turmoil test tier (`crate::turmoil_host`).
//!
//! Contract: `bind` listens on `host:port` (port 0 picks a free one; [`Network::local_address`]
//! tells which), `accept` yields a connected stream and the peer's address, `connect` opens a
//! stream. `reserve` binds without listening: the port is the broker's (port 0 resolved, a port in
//! use is an error at start) but connections to it are refused, as to a broker that is down,
//! until `listen` — the client listener opens only once the core serves clients. Streams are
//! plain byte pipes; framing is the caller's. Nothing here retries or times out: callers bound
//! every wait themselves (a simulated network may never answer, and turmoil's TCP never
//! retransmits a segment lost to a partition: the stream stalls for good).

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// Connections the kernel queues for a listener before the driver accepts them.
pub const LISTEN_BACKLOG: u32 = 1024;

pub trait Network: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Listener: Send + 'static;
    /// A bound address that does not listen yet.
    type Reserved: Send + 'static;

    fn bind(&self, address: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn local_address(listener: &Self::Listener) -> io::Result<String>;
    fn reserve(&self, address: &str) -> impl Future<Output = io::Result<Self::Reserved>> + Send;
    fn reserved_address(reserved: &Self::Reserved) -> io::Result<String>;
    fn listen(reserved: Self::Reserved) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn accept(
        listener: &mut Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// The operating system's TCP through tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNetwork;

impl Network for TokioNetwork {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;
    type Reserved = tokio::net::TcpSocket;

    async fn bind(&self, address: &str) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(address).await
    }

    fn local_address(listener: &Self::Listener) -> io::Result<String> {
        listener.local_addr().map(|address| address.to_string())
    }

    async fn reserve(&self, address: &str) -> io::Result<Self::Reserved> {
        let mut last_error = None;
        for resolved in tokio::net::lookup_host(address).await? {
            let socket = if resolved.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            // As `TcpListener::bind` does: a restarted broker takes its port back at once.
            socket.set_reuseaddr(true)?;
            match socket.bind(resolved) {
                Ok(()) => return Ok(socket),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, format!("{address} resolves to no address"))
        }))
    }

    fn reserved_address(reserved: &Self::Reserved) -> io::Result<String> {
        reserved.local_addr().map(|address| address.to_string())
    }

    async fn listen(reserved: Self::Reserved) -> io::Result<Self::Listener> {
        reserved.listen(LISTEN_BACKLOG)
    }

    async fn accept(listener: &mut Self::Listener) -> io::Result<(Self::Stream, String)> {
        let (stream, peer) = listener.accept().await?;
        // Kafka's requests and answers are small and latency-bound: no Nagle delay.
        stream.set_nodelay(true)?;
        Ok((stream, peer.to_string()))
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
