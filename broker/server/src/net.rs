//! The driver's network, behind a small trait so that the same driver runs on tokio's sockets in
//! production and on turmoil's simulated ones in the turmoil test tier.
//!
//! Contract: `bind` listens on `host:port` (port 0 picks a free one; [`Network::local_address`]
//! tells which), `accept` yields a connected stream and the peer's address, `connect` opens a
//! stream. Streams are plain byte pipes; framing is the caller's. Nothing here retries or times
//! out: callers bound every wait themselves (a simulated network may never answer).

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

pub trait Network: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Listener: Send + 'static;

    fn bind(&self, address: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn local_address(listener: &Self::Listener) -> io::Result<String>;
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

    async fn bind(&self, address: &str) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(address).await
    }

    fn local_address(listener: &Self::Listener) -> io::Result<String> {
        listener.local_addr().map(|address| address.to_string())
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
