//! A minimal Kafka client over the same `kafka-protocol` crate: one connection, one request at a
//! time, versions negotiated with ApiVersions. It speaks Kafka's protocol only, so the tools built
//! on it work against Apache Kafka too. Every wait is bounded by the client's timeout. Its socket
//! comes from a [`Network`] (tokio's unless said otherwise; the turmoil tier's client host uses
//! turmoil's).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::AsyncWriteExt;

use crate::driver::read_frame;
use crate::net::{Network, TokioNetwork};

/// The largest response the client reads.
pub const RESPONSE_BYTES_MAX: u32 = 256 << 20;
/// The wait between attempts to connect to a broker that refused the connection.
pub const CONNECT_RETRY_BACKOFF: Duration = Duration::from_millis(100);

pub struct KafkaClient<N: Network = TokioNetwork> {
    stream: N::Stream,
    address: String,
    next_correlation_id: i32,
    timeout: Duration,
    /// The broker's version range per API key (from ApiVersions).
    versions: BTreeMap<i16, (i16, i16)>,
}

impl KafkaClient {
    /// Connects and negotiates versions (ApiVersions v3, falling back to v0 as KIP-511 says). A
    /// refused connection is tried again every [`CONNECT_RETRY_BACKOFF`] within `timeout`: a broker
    /// refuses clients while it starts, until it caught up with the metadata log.
    pub async fn connect(address: &str, timeout: Duration) -> Result<KafkaClient, String> {
        KafkaClient::connect_on(&TokioNetwork, address, timeout).await
    }
}

impl<N: Network> KafkaClient<N> {
    /// [`KafkaClient::connect`] through `network`'s sockets.
    pub async fn connect_on(network: &N, address: &str, timeout: Duration) -> Result<KafkaClient<N>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = loop {
            let attempt = tokio::time::timeout_at(deadline, network.connect(address))
                .await
                .map_err(|_| format!("connecting to {address} timed out"))?;
            match attempt {
                Ok(stream) => break stream,
                Err(error)
                    if error.kind() == std::io::ErrorKind::ConnectionRefused
                        && tokio::time::Instant::now() + CONNECT_RETRY_BACKOFF < deadline =>
                {
                    tokio::time::sleep(CONNECT_RETRY_BACKOFF).await;
                }
                Err(error) => return Err(format!("cannot connect to {address}: {error}")),
            }
        };
        let mut client = KafkaClient {
            stream,
            address: address.to_string(),
            next_correlation_id: 1,
            timeout,
            versions: BTreeMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("seedlog-tools"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = client.send_at(&request, 3).await?;
        if response.error_code == 35 {
            response = client.send_at(&ApiVersionsRequest::default(), 0).await?;
        }
        if response.error_code != 0 {
            return Err(format!("{address}: ApiVersions failed with error {}", response.error_code));
        }
        client.versions =
            response.api_keys.iter().map(|api| (api.api_key, (api.min_version, api.max_version))).collect();
        Ok(client)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version both sides speak, at most `ours_max`.
    pub fn version<R: Request>(&self, ours_max: i16) -> Result<i16, String> {
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| format!("{} does not support API key {}", self.address, R::KEY))?;
        let version = max.min(ours_max).min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            return Err(format!("{}: no common version for API key {}", self.address, R::KEY));
        }
        Ok(version)
    }

    /// Sends at the best common version up to `ours_max` and waits for the answer.
    pub async fn send<R: Request>(&mut self, request: &R, ours_max: i16) -> Result<R::Response, String> {
        let version = self.version::<R>(ours_max)?;
        self.send_at(request, version).await
    }

    /// Sends at exactly `version`.
    pub async fn send_at<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, String> {
        let correlation_id = self.write_request(request, version).await?;
        self.receive::<R>(correlation_id, version).await
    }

    /// Writes a request at exactly `version` without waiting for its answer; returns its
    /// correlation id. Several may be written before their answers are read with
    /// [`KafkaClient::receive`], in the same order (Kafka answers a connection's requests in
    /// order): request pipelining.
    pub async fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, String> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let key = ApiKey::try_from(R::KEY).map_err(|_| "unknown API key".to_string())?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("seedlog-tools")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, key.request_header_version(version)).map_err(|error| error.to_string())?;
        request.encode(&mut buf, version).map_err(|error| error.to_string())?;
        let length = i32::try_from(buf.len() - 4).map_err(|_| "request over 2 GiB".to_string())?;
        buf[..4].copy_from_slice(&length.to_be_bytes());
        self.write_raw(&buf.freeze()).await?;
        Ok(correlation_id)
    }

    /// Reads the next answer, which must be the one to `correlation_id` (a request of type `R`
    /// written at `version`).
    pub async fn receive<R: Request>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<R::Response, String> {
        let frame = tokio::time::timeout(self.timeout, read_frame(&mut self.stream, RESPONSE_BYTES_MAX))
            .await
            .map_err(|_| format!("{}: no answer within {:?}", self.address, self.timeout))??
            .ok_or_else(|| format!("{} closed the connection", self.address))?;
        let mut body = frame;
        let key = ApiKey::try_from(R::KEY).map_err(|_| "unknown API key".to_string())?;
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|error| format!("unreadable response header: {error}"))?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "answer to request {} while waiting for {correlation_id}",
                header.correlation_id
            ));
        }
        R::Response::decode(&mut body, version).map_err(|error| format!("unreadable response: {error}"))
    }

    /// Sends a request that gets no answer (a produce with `acks=0`).
    pub async fn send_without_answer<R: Request>(
        &mut self,
        request: &R,
        ours_max: i16,
    ) -> Result<(), String> {
        let version = self.version::<R>(ours_max)?;
        self.write_request(request, version).await.map(|_| ())
    }

    /// Writes bytes as they are (tests send malformed frames this way).
    pub async fn write_raw(&mut self, bytes: &Bytes) -> Result<(), String> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| format!("{}: write timed out", self.address))?
            .map_err(|error| format!("{}: {error}", self.address))
    }

    /// Reads one raw response frame (tests).
    pub async fn read_raw(&mut self) -> Result<Option<Bytes>, String> {
        tokio::time::timeout(self.timeout, read_frame(&mut self.stream, RESPONSE_BYTES_MAX))
            .await
            .map_err(|_| format!("{}: no answer within {:?}", self.address, self.timeout))?
    }
}
