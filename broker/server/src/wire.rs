//! Kafka's wire protocol on one side, the core's one-partition [`ClientRequest`]s on the other.
//!
//! A request frame is parsed ([`parse_request`]) into one of three things: an answer the driver
//! gives at once (ApiVersions, a KIP-511 fallback, a request whose every part failed validation), a
//! [`Pending`] request split into parts — one [`ClientRequest`] per partition or per topic, in the
//! request's own order — or a reason to close the connection. When every part has its answer,
//! [`Pending::encode`] joins them back into the Kafka response, in the same order. This module
//! translates; it decides nothing the core decides (leadership, offsets, what a fetch returns).
//!
//! What it must never do: panic on any frame, store anything, or re-encode record batches — a
//! produced batch goes to the core as the client encoded it, a fetched one goes out as stored.
//! (One known hole, in the `kafka-protocol` crate: see [`guard`].)

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    api_versions_response::ApiVersion,
    create_partitions_response::CreatePartitionsTopicResult,
    create_topics_response::CreatableTopicResult,
    delete_topics_response::DeletableTopicResult,
    describe_cluster_response::DescribeClusterBroker,
    describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
    fetch_response::{self, FetchableTopicResponse, PartitionData},
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    offset_for_leader_epoch_response::{self, OffsetForLeaderTopicResult},
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use seedlog_core::metadata::{ControllerRequest, ControllerResponse, TopicId};
use seedlog_core::protocol::{
    topic_config, Acks, ClientRequest, ClientResponse, ClusterView, ErrorCode, FetchRequest as CoreFetch,
    OffsetSpec,
};
use seedlog_core::record::validate_batch_crc;
use uuid::Uuid;

pub mod guard;

/// Kafka error codes the driver answers itself (the core's [`ErrorCode`] holds the rest).
pub mod codes {
    pub const NONE: i16 = 0;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_CONFIG: i16 = 40;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// The Kafka resource types of DescribeConfigs / AlterConfigs.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Every API this broker answers, with the versions (what `kafka-protocol` 0.18 implements).
/// Anything else is absent from ApiVersions and closes the connection.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
];

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(supported, _, _)| *supported == key).map(|(_, min, max)| (*min, *max))
}

/// What a connection's parser knows besides the frame.
#[derive(Clone, Debug)]
pub struct Context {
    /// The listener the connection arrived on: Metadata answers with that listener's endpoints.
    pub listener: String,
    pub topics: Arc<TopicNames>,
    /// `message.max.bytes`.
    pub message_bytes_max: u32,
    /// The broker's effective configuration (DescribeConfigs on the broker resource).
    pub broker_properties: Arc<BTreeMap<String, String>>,
    pub node_id: u32,
    /// Broker defaults for `num.partitions` and `default.replication.factor`.
    pub num_partitions: u32,
    pub default_replication_factor: u16,
}

/// Topic names and ids as the core's applied metadata image holds them (published by the core
/// task after every change): topic ids on the wire (Fetch v13+, Produce v13, DeleteTopics v6,
/// Metadata v10+) are resolved here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicNames {
    pub by_id: BTreeMap<TopicId, String>,
    pub by_name: BTreeMap<String, TopicId>,
}

impl TopicNames {
    fn name(&self, id: &Uuid) -> Option<&String> {
        self.by_id.get(&TopicId(id.into_bytes()))
    }

    fn id(&self, name: &str) -> Uuid {
        self.by_name.get(name).map_or(Uuid::nil(), |id| Uuid::from_bytes(id.0))
    }
}

/// The answer to one part of a request: from the core, or an error the driver found first.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Core(ClientResponse),
    Error(i16),
}

#[derive(Clone, Debug)]
pub enum Part {
    /// Ask the core.
    Ask(ClientRequest),
    /// Answered already.
    Done(Answer),
}

/// A request waiting for its parts' answers.
#[derive(Debug)]
pub struct Pending {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// `false` for an `acks=0` produce: Kafka sends no response at all.
    pub respond: bool,
    pub parts: Vec<Part>,
    request: Decoded,
}

/// The decoded body, kept to join the answers in its order.
#[derive(Debug)]
enum Decoded {
    Metadata,
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(Vec<Option<String>>),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeCluster,
}

/// What one frame becomes.
#[derive(Debug)]
pub enum Parsed {
    /// A whole response frame (length prefix included) to send now.
    Respond(Bytes),
    /// Parts to ask the core.
    Pending(Box<Pending>),
    /// Close the connection (Kafka's answer to a request it cannot read), with the reason to log.
    Close(String),
}

/// Parses one request frame (without its length prefix).
pub fn parse_request(frame: Bytes, context: &Context) -> Parsed {
    if frame.len() < 8 {
        return Parsed::Close(format!("a {}-byte request has no header", frame.len()));
    }
    let mut peek = &frame[..8];
    let api_key_raw = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Parsed::Close(format!("unknown API key {api_key_raw}"));
    };
    let Some((min, max)) = supported_range(api_key) else {
        return Parsed::Close(format!("unsupported API {api_key:?}"));
    };
    if api_key == ApiKey::ApiVersions && version > max {
        // KIP-511: a client newer than us gets a v0 answer with our ranges and retries with them.
        return Parsed::Respond(api_versions_response(correlation_id, 0, codes::UNSUPPORTED_VERSION));
    }
    if version < min || version > max {
        return Parsed::Close(format!("{api_key:?} v{version} is outside {min}..={max}"));
    }
    let mut body = frame;
    let header_version = api_key.request_header_version(version);
    if let Err(error) = RequestHeader::decode(&mut body, header_version) {
        return Parsed::Close(format!("{api_key:?} v{version}: unreadable request header: {error}"));
    }
    if let Err(reason) = guard::check(api_key, version, &body) {
        return Parsed::Close(format!("{api_key:?} v{version}: {reason}"));
    }
    let pending = |request: Decoded, parts: Vec<Part>| {
        Parsed::Pending(Box::new(Pending { api_key, version, correlation_id, respond: true, parts, request }))
    };
    macro_rules! decode {
        ($type:ty) => {
            match <$type>::decode(&mut body, version) {
                Ok(request) => request,
                Err(error) => {
                    return Parsed::Close(format!("{api_key:?} v{version}: unreadable request: {error}"))
                }
            }
        };
    }
    match api_key {
        ApiKey::ApiVersions => match ApiVersionsRequest::decode(&mut body, version) {
            Ok(_) => Parsed::Respond(api_versions_response(correlation_id, version, codes::NONE)),
            Err(_) => Parsed::Respond(api_versions_response(correlation_id, 0, codes::INVALID_REQUEST)),
        },
        ApiKey::Metadata => {
            let request = decode!(MetadataRequest);
            let topics = metadata_topics(&request, version, context);
            pending(Decoded::Metadata, vec![Part::Ask(ClientRequest::Metadata { topics })])
        }
        ApiKey::DescribeCluster => {
            let _request = decode!(DescribeClusterRequest);
            pending(Decoded::DescribeCluster, vec![Part::Ask(ClientRequest::DescribeCluster)])
        }
        ApiKey::Produce => {
            let request = decode!(ProduceRequest);
            let parts = produce_parts(&request, version, context);
            let respond = request.acks != 0;
            let acks_valid = (-1..=1).contains(&request.acks);
            let parts = if acks_valid {
                parts
            } else {
                parts.into_iter().map(|_| Part::Done(Answer::Error(codes::INVALID_REQUEST))).collect()
            };
            Parsed::Pending(Box::new(Pending {
                api_key,
                version,
                correlation_id,
                respond,
                parts,
                request: Decoded::Produce(request),
            }))
        }
        ApiKey::Fetch => {
            let request = decode!(FetchRequest);
            let parts = fetch_parts(&request, version, context);
            pending(Decoded::Fetch(request), parts)
        }
        ApiKey::ListOffsets => {
            let request = decode!(ListOffsetsRequest);
            let parts = list_offsets_parts(&request);
            pending(Decoded::ListOffsets(request), parts)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let request = decode!(OffsetForLeaderEpochRequest);
            let parts = request
                .topics
                .iter()
                .flat_map(|topic| {
                    topic.partitions.iter().map(|partition| {
                        let Ok(index) = u32::try_from(partition.partition) else {
                            return Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_OR_PARTITION));
                        };
                        Part::Ask(ClientRequest::OffsetForLeaderEpoch {
                            topic: topic.topic.to_string(),
                            partition: index,
                            current_leader_epoch: (partition.current_leader_epoch >= 0)
                                .then_some(partition.current_leader_epoch),
                            leader_epoch: partition.leader_epoch,
                        })
                    })
                })
                .collect();
            pending(Decoded::OffsetForLeaderEpoch(request), parts)
        }
        ApiKey::CreateTopics => {
            let request = decode!(CreateTopicsRequest);
            let parts = create_topics_parts(&request, context);
            pending(Decoded::CreateTopics(request), parts)
        }
        ApiKey::DeleteTopics => {
            let request = decode!(DeleteTopicsRequest);
            let names: Vec<Option<String>> = if version >= 6 {
                request
                    .topics
                    .iter()
                    .map(|topic| match &topic.name {
                        Some(name) => Some(name.to_string()),
                        None => context.topics.name(&topic.topic_id).cloned(),
                    })
                    .collect()
            } else {
                request.topic_names.iter().map(|name| Some(name.to_string())).collect()
            };
            let parts = names
                .iter()
                .map(|name| match name {
                    Some(name) => Part::Ask(ClientRequest::Controller(ControllerRequest::DeleteTopic {
                        name: name.clone(),
                    })),
                    None => Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_ID)),
                })
                .collect();
            pending(Decoded::DeleteTopics(names), parts)
        }
        ApiKey::CreatePartitions => {
            let request = decode!(CreatePartitionsRequest);
            let parts = request
                .topics
                .iter()
                .map(|topic| {
                    if topic.assignments.as_ref().is_some_and(|assignments| !assignments.is_empty()) {
                        // Manual replica assignment is not supported: the controller places replicas.
                        return Part::Done(Answer::Error(codes::INVALID_REQUEST));
                    }
                    let Ok(count) = u32::try_from(topic.count) else {
                        return Part::Done(Answer::Error(codes::INVALID_PARTITIONS));
                    };
                    let name = topic.name.to_string();
                    if request.validate_only {
                        return Part::Done(Answer::Error(validate_only_create_partitions(context, &name)));
                    }
                    Part::Ask(ClientRequest::Controller(ControllerRequest::CreatePartitions { name, count }))
                })
                .collect();
            pending(Decoded::CreatePartitions(request), parts)
        }
        ApiKey::DescribeConfigs => {
            let request = decode!(DescribeConfigsRequest);
            let parts = request
                .resources
                .iter()
                .map(|resource| match resource.resource_type {
                    RESOURCE_TOPIC => Part::Ask(ClientRequest::DescribeConfigs {
                        topic: resource.resource_name.to_string(),
                    }),
                    RESOURCE_BROKER => Part::Done(Answer::Error(codes::NONE)),
                    _ => Part::Done(Answer::Error(codes::INVALID_REQUEST)),
                })
                .collect();
            pending(Decoded::DescribeConfigs(request), parts)
        }
        ApiKey::AlterConfigs => {
            let request = decode!(AlterConfigsRequest);
            let parts = request
                .resources
                .iter()
                .map(|resource| {
                    let configs = resource
                        .configs
                        .iter()
                        .map(|config| {
                            (config.name.to_string(), config.value.as_ref().map(|value| value.to_string()))
                        })
                        .collect();
                    alter_configs_part(
                        resource.resource_type,
                        &resource.resource_name,
                        configs,
                        false,
                        request.validate_only,
                    )
                })
                .collect();
            pending(Decoded::AlterConfigs(request), parts)
        }
        ApiKey::IncrementalAlterConfigs => {
            let request = decode!(IncrementalAlterConfigsRequest);
            let parts = request
                .resources
                .iter()
                .map(|resource| {
                    let mut configs = Vec::new();
                    for config in &resource.configs {
                        let name = config.name.to_string();
                        match config.config_operation {
                            0 => configs.push((
                                name,
                                Some(config.value.as_ref().map(|v| v.to_string()).unwrap_or_default()),
                            )),
                            1 => configs.push((name, None)),
                            // APPEND and SUBTRACT apply to list configs; Seedlog has none.
                            _ => return Part::Done(Answer::Error(codes::INVALID_CONFIG)),
                        }
                    }
                    alter_configs_part(
                        resource.resource_type,
                        &resource.resource_name,
                        configs,
                        true,
                        request.validate_only,
                    )
                })
                .collect();
            pending(Decoded::IncrementalAlterConfigs(request), parts)
        }
        other => Parsed::Close(format!("unsupported API {other:?}")),
    }
}

fn alter_configs_part(
    resource_type: i8,
    name: &StrBytes,
    configs: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> Part {
    if resource_type != RESOURCE_TOPIC {
        // Broker configs are static (the properties file), as Kafka's read-only ones are.
        return Part::Done(Answer::Error(codes::INVALID_REQUEST));
    }
    if configs.iter().any(|(key, _)| !topic_config::ALL.contains(&key.as_str())) {
        return Part::Done(Answer::Error(codes::INVALID_CONFIG));
    }
    if validate_only {
        return Part::Done(Answer::Error(codes::NONE));
    }
    Part::Ask(ClientRequest::Controller(ControllerRequest::AlterConfigs {
        name: name.to_string(),
        configs: configs.into_iter().collect(),
        incremental,
    }))
}

fn validate_only_create_partitions(context: &Context, name: &str) -> i16 {
    if context.topics.by_name.contains_key(name) {
        codes::NONE
    } else {
        codes::UNKNOWN_TOPIC_OR_PARTITION
    }
}

fn metadata_topics(request: &MetadataRequest, version: i16, context: &Context) -> Option<Vec<String>> {
    let topics = request.topics.as_ref()?;
    if version == 0 && topics.is_empty() {
        return None; // v0: an empty list means every topic
    }
    Some(
        topics
            .iter()
            .map(|topic| match &topic.name {
                Some(name) => name.to_string(),
                // An unknown id asks for a name no topic can have; the core answers it unknown.
                None => context.topics.name(&topic.topic_id).cloned().unwrap_or_default(),
            })
            .collect(),
    )
}

fn produce_parts(request: &ProduceRequest, version: i16, context: &Context) -> Vec<Part> {
    let acks = match request.acks {
        0 => Acks::None,
        1 => Acks::Leader,
        _ => Acks::All,
    };
    let timeout_ms = u32::try_from(request.timeout_ms).unwrap_or(0);
    let mut parts = Vec::new();
    for topic in &request.topic_data {
        let name = if version >= 13 {
            context.topics.name(&topic.topic_id).cloned()
        } else {
            Some(topic.name.to_string())
        };
        for partition in &topic.partition_data {
            let Some(name) = name.clone() else {
                parts.push(Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_ID)));
                continue;
            };
            let Ok(index) = u32::try_from(partition.index) else {
                parts.push(Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_OR_PARTITION)));
                continue;
            };
            match check_batch(partition.records.as_ref(), context.message_bytes_max) {
                Ok(batch) => parts.push(Part::Ask(ClientRequest::Produce {
                    topic: name,
                    partition: index,
                    acks,
                    timeout_ms,
                    batch,
                })),
                Err(code) => parts.push(Part::Done(Answer::Error(code))),
            }
        }
    }
    parts
}

/// A produced partition's records must be exactly one valid v2 batch (Kafka's rule since v3):
/// magic 2, matching CRC, no compression, no more than `message.max.bytes`. The records inside
/// are checked by the core's log when it appends the batch (`validate_batch`), which refuses a
/// batch whose records do not parse as CORRUPT_MESSAGE: walking them here too cost a tenth of a
/// produce's CPU in the broker.
pub fn check_batch(records: Option<&Bytes>, message_bytes_max: u32) -> Result<Vec<u8>, i16> {
    let Some(records) = records else { return Err(codes::INVALID_RECORD) };
    if records.len() > message_bytes_max as usize {
        return Err(codes::MESSAGE_TOO_LARGE);
    }
    match validate_batch_crc(records) {
        Ok(header) if header.compression() != 0 => Err(codes::UNSUPPORTED_COMPRESSION_TYPE),
        Ok(header) if header.size_bytes() == records.len() => Ok(records.to_vec()),
        Ok(_) => Err(codes::INVALID_RECORD), // more than one batch, or trailing bytes
        Err(_) => Err(codes::CORRUPT_MESSAGE),
    }
}

fn fetch_parts(request: &FetchRequest, version: i16, context: &Context) -> Vec<Part> {
    let max_wait_ms = u32::try_from(request.max_wait_ms).unwrap_or(0);
    let min_bytes = u32::try_from(request.min_bytes).unwrap_or(0);
    let request_max_bytes = if version >= 3 { request.max_bytes } else { i32::MAX };
    let mut parts = Vec::new();
    for topic in &request.topics {
        let name = if version >= 13 {
            context.topics.name(&topic.topic_id).cloned()
        } else {
            Some(topic.topic.to_string())
        };
        for partition in &topic.partitions {
            let Some(name) = name.clone() else {
                parts.push(Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_ID)));
                continue;
            };
            let Ok(index) = u32::try_from(partition.partition) else {
                parts.push(Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_OR_PARTITION)));
                continue;
            };
            let max_bytes = partition.partition_max_bytes.min(request_max_bytes).max(0) as u32;
            parts.push(Part::Ask(ClientRequest::Fetch(CoreFetch {
                topic: name,
                partition: index,
                fetch_offset: partition.fetch_offset,
                replica: None,
                current_leader_epoch: (partition.current_leader_epoch >= 0)
                    .then_some(partition.current_leader_epoch),
                last_fetched_epoch: (version >= 12 && partition.last_fetched_epoch >= 0)
                    .then_some(partition.last_fetched_epoch),
                max_bytes,
                max_wait_ms,
                min_bytes,
            })));
        }
    }
    parts
}

fn list_offsets_parts(request: &ListOffsetsRequest) -> Vec<Part> {
    let mut parts = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let spec = match partition.timestamp {
                -2 | -4 => OffsetSpec::Earliest,
                -1 | -5 => OffsetSpec::Latest,
                timestamp if timestamp >= 0 => OffsetSpec::Timestamp(timestamp),
                _ => {
                    // -3 (the record with the largest timestamp) is not supported.
                    parts.push(Part::Done(Answer::Error(codes::UNSUPPORTED_VERSION)));
                    continue;
                }
            };
            let Ok(index) = u32::try_from(partition.partition_index) else {
                parts.push(Part::Done(Answer::Error(codes::UNKNOWN_TOPIC_OR_PARTITION)));
                continue;
            };
            parts.push(Part::Ask(ClientRequest::ListOffsets {
                topic: topic.name.to_string(),
                partition: index,
                current_leader_epoch: (partition.current_leader_epoch >= 0)
                    .then_some(partition.current_leader_epoch),
                spec,
            }));
        }
    }
    parts
}

fn create_topics_parts(request: &CreateTopicsRequest, context: &Context) -> Vec<Part> {
    request
        .topics
        .iter()
        .map(|topic| {
            if !topic.assignments.is_empty() {
                return Part::Done(Answer::Error(codes::INVALID_REQUEST));
            }
            let partitions = match topic.num_partitions {
                -1 => context.num_partitions,
                count if count > 0 => count as u32,
                _ => return Part::Done(Answer::Error(codes::INVALID_PARTITIONS)),
            };
            let replication_factor = match topic.replication_factor {
                -1 => context.default_replication_factor,
                factor if factor > 0 => factor as u16,
                _ => return Part::Done(Answer::Error(ErrorCode::InvalidReplicationFactor.code())),
            };
            let mut configs = BTreeMap::new();
            for config in &topic.configs {
                let name = config.name.to_string();
                if !topic_config::ALL.contains(&name.as_str()) {
                    return Part::Done(Answer::Error(codes::INVALID_CONFIG));
                }
                if let Some(value) = &config.value {
                    configs.insert(name, value.to_string());
                }
            }
            let name = topic.name.to_string();
            if request.validate_only {
                let code = if !seedlog_core::metadata::controller::is_legal_topic_name(&name) {
                    ErrorCode::InvalidTopic.code()
                } else if context.topics.by_name.contains_key(&name) {
                    ErrorCode::TopicAlreadyExists.code()
                } else {
                    codes::NONE
                };
                return Part::Done(Answer::Error(code));
            }
            Part::Ask(ClientRequest::Controller(ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            }))
        })
        .collect()
}

// ---- responses ----

/// Frames a response: length, header (at the version the API's response uses), body.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, String> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    // Sized up front: a fetch answer carrying megabytes of records is then written into one
    // buffer, not copied through every doubling of a growing one.
    let size = header
        .compute_size(header_version)
        .and_then(|header_bytes| body.compute_size(version).map(|body_bytes| 4 + header_bytes + body_bytes));
    let mut buf = BytesMut::with_capacity(size.unwrap_or(64));
    buf.put_i32(0);
    header.encode(&mut buf, header_version).map_err(|error| format!("response header: {error}"))?;
    body.encode(&mut buf, version).map_err(|error| format!("{api_key:?} v{version} response: {error}"))?;
    let length = i32::try_from(buf.len() - 4).map_err(|_| "response over 2 GiB".to_string())?;
    buf[..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf.freeze())
}

/// ApiVersions at `version` (0 for the KIP-511 fallback) with our ranges.
pub fn api_versions_response(correlation_id: i32, version: i16, error_code: i16) -> Bytes {
    let api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default().with_api_key(*key as i16).with_min_version(*min).with_max_version(*max)
        })
        .collect();
    let response = ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys);
    match encode_response(ApiKey::ApiVersions, version, correlation_id, &response) {
        Ok(frame) => frame,
        // Every version 0..=4 encodes these fields; this is unreachable short of a crate bug, and
        // then an empty frame closes nothing but says nothing either: the client times out.
        Err(_) => Bytes::new(),
    }
}

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic_name(text: &str) -> TopicName {
    TopicName(str_bytes(text))
}

impl Pending {
    /// The parts to ask the core, with their indexes.
    pub fn asks(&self) -> impl Iterator<Item = (usize, &ClientRequest)> {
        self.parts.iter().enumerate().filter_map(|(index, part)| match part {
            Part::Ask(request) => Some((index, request)),
            Part::Done(_) => None,
        })
    }

    /// Joins the answers (one per part, in order) into the response frame.
    pub fn encode(&self, answers: Vec<Answer>, context: &Context) -> Result<Bytes, String> {
        let mut answers = answers.into_iter();
        let mut next = move || answers.next().unwrap_or(Answer::Error(codes::INVALID_REQUEST));
        let (key, version, id) = (self.api_key, self.version, self.correlation_id);
        match &self.request {
            Decoded::Metadata => {
                let view = match next() {
                    Answer::Core(ClientResponse::Metadata(view)) => view,
                    _ => empty_view(),
                };
                encode_response(key, version, id, &metadata_response(&view, context))
            }
            Decoded::DescribeCluster => {
                let answer = next();
                let view = match answer {
                    Answer::Core(ClientResponse::DescribeCluster(view) | ClientResponse::Metadata(view)) => {
                        view
                    }
                    _ => empty_view(),
                };
                let brokers = view
                    .brokers
                    .iter()
                    .filter_map(|broker| {
                        let endpoint = pick_endpoint(&broker.endpoints, &context.listener)?;
                        Some(
                            DescribeClusterBroker::default()
                                .with_broker_id(BrokerId(broker.broker_id as i32))
                                .with_host(str_bytes(&endpoint.host))
                                .with_port(i32::from(endpoint.port))
                                .with_is_fenced(broker.fenced),
                        )
                    })
                    .collect();
                let response = DescribeClusterResponse::default()
                    .with_cluster_id(str_bytes(&view.cluster_id))
                    .with_controller_id(BrokerId(view.controller_id.map_or(-1, |id| id as i32)))
                    .with_endpoint_type(1)
                    .with_brokers(brokers);
                encode_response(key, version, id, &response)
            }
            Decoded::Produce(request) => {
                let responses = request
                    .topic_data
                    .iter()
                    .map(|topic| {
                        let partitions = topic
                            .partition_data
                            .iter()
                            .map(|partition| {
                                let entry = PartitionProduceResponse::default().with_index(partition.index);
                                match next() {
                                    Answer::Core(ClientResponse::Produce(Ok(ok))) => entry
                                        .with_base_offset(ok.base_offset)
                                        .with_log_start_offset(ok.log_start_offset),
                                    Answer::Core(ClientResponse::Produce(Err(error))) => {
                                        entry.with_error_code(error.code()).with_base_offset(-1)
                                    }
                                    answer => entry.with_error_code(error_of(&answer)).with_base_offset(-1),
                                }
                            })
                            .collect();
                        TopicProduceResponse::default()
                            .with_name(topic.name.clone())
                            .with_topic_id(topic.topic_id)
                            .with_partition_responses(partitions)
                    })
                    .collect();
                encode_response(key, version, id, &ProduceResponse::default().with_responses(responses))
            }
            Decoded::Fetch(request) => {
                let responses = request
                    .topics
                    .iter()
                    .map(|topic| {
                        let partitions = topic
                            .partitions
                            .iter()
                            .map(|partition| fetch_partition(partition.partition, next(), version))
                            .collect();
                        FetchableTopicResponse::default()
                            .with_topic(topic.topic.clone())
                            .with_topic_id(topic.topic_id)
                            .with_partitions(partitions)
                    })
                    .collect();
                encode_response(key, version, id, &FetchResponse::default().with_responses(responses))
            }
            Decoded::ListOffsets(request) => {
                let topics = request
                    .topics
                    .iter()
                    .map(|topic| {
                        let partitions = topic
                            .partitions
                            .iter()
                            .map(|partition| {
                                let entry = ListOffsetsPartitionResponse::default()
                                    .with_partition_index(partition.partition_index)
                                    .with_timestamp(-1)
                                    .with_offset(-1);
                                match next() {
                                    Answer::Core(ClientResponse::ListOffsets(Ok(listed))) => entry
                                        .with_offset(listed.offset)
                                        .with_timestamp(listed.timestamp)
                                        .with_leader_epoch(if version >= 4 {
                                            listed.leader_epoch
                                        } else {
                                            -1
                                        }),
                                    answer => entry.with_error_code(error_of(&answer)),
                                }
                            })
                            .collect();
                        ListOffsetsTopicResponse::default()
                            .with_name(topic.name.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
                encode_response(key, version, id, &ListOffsetsResponse::default().with_topics(topics))
            }
            Decoded::OffsetForLeaderEpoch(request) => {
                let topics = request
                    .topics
                    .iter()
                    .map(|topic| {
                        let partitions = topic
                            .partitions
                            .iter()
                            .map(|partition| {
                                let entry = offset_for_leader_epoch_response::EpochEndOffset::default()
                                    .with_partition(partition.partition);
                                match next() {
                                    Answer::Core(ClientResponse::OffsetForLeaderEpoch(Ok(end))) => entry
                                        .with_leader_epoch(end.leader_epoch)
                                        .with_end_offset(end.end_offset),
                                    answer => entry.with_error_code(error_of(&answer)),
                                }
                            })
                            .collect();
                        OffsetForLeaderTopicResult::default()
                            .with_topic(topic.topic.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
                encode_response(
                    key,
                    version,
                    id,
                    &OffsetForLeaderEpochResponse::default().with_topics(topics),
                )
            }
            Decoded::CreateTopics(request) => {
                let topics = request
                    .topics
                    .iter()
                    .map(|topic| {
                        let entry = CreatableTopicResult::default().with_name(topic.name.clone());
                        let (code, topic_id) = match next() {
                            Answer::Core(ClientResponse::Controller(ControllerResponse::CreateTopic(
                                Ok(topic_id),
                            ))) => (codes::NONE, Uuid::from_bytes(topic_id.0)),
                            answer => (error_of(&answer), Uuid::nil()),
                        };
                        let entry = entry.with_error_code(code);
                        if version < 5 {
                            return entry;
                        }
                        let entry = entry.with_topic_id(if version >= 7 { topic_id } else { Uuid::nil() });
                        if code == codes::NONE {
                            entry
                                .with_num_partitions(if topic.num_partitions > 0 {
                                    topic.num_partitions
                                } else {
                                    context.num_partitions as i32
                                })
                                .with_replication_factor(if topic.replication_factor > 0 {
                                    topic.replication_factor
                                } else {
                                    context.default_replication_factor as i16
                                })
                                .with_configs(Some(Vec::new()))
                        } else {
                            entry.with_num_partitions(-1).with_replication_factor(-1).with_configs(None)
                        }
                    })
                    .collect();
                encode_response(key, version, id, &CreateTopicsResponse::default().with_topics(topics))
            }
            Decoded::DeleteTopics(names) => {
                let responses = names
                    .iter()
                    .map(|name| {
                        let (code, topic_id) = match next() {
                            Answer::Core(ClientResponse::Controller(ControllerResponse::DeleteTopic(
                                Ok(topic_id),
                            ))) => (codes::NONE, Uuid::from_bytes(topic_id.0)),
                            answer => (error_of(&answer), Uuid::nil()),
                        };
                        DeletableTopicResult::default()
                            .with_name(name.as_deref().map(topic_name))
                            .with_topic_id(if version >= 6 { topic_id } else { Uuid::nil() })
                            .with_error_code(code)
                    })
                    .collect();
                encode_response(key, version, id, &DeleteTopicsResponse::default().with_responses(responses))
            }
            Decoded::CreatePartitions(request) => {
                let results = request
                    .topics
                    .iter()
                    .map(|topic| {
                        let code = match next() {
                            Answer::Core(ClientResponse::Controller(
                                ControllerResponse::CreatePartitions(Ok(_)),
                            )) => codes::NONE,
                            answer => error_of(&answer),
                        };
                        CreatePartitionsTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_error_code(code)
                    })
                    .collect();
                encode_response(key, version, id, &CreatePartitionsResponse::default().with_results(results))
            }
            Decoded::DescribeConfigs(request) => {
                let results = request
                    .resources
                    .iter()
                    .map(|resource| {
                        let entry = DescribeConfigsResult::default()
                            .with_resource_type(resource.resource_type)
                            .with_resource_name(resource.resource_name.clone());
                        let wanted = |name: &str| {
                            resource
                                .configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|key| key.as_str() == name))
                        };
                        match next() {
                            Answer::Core(ClientResponse::DescribeConfigs(Ok(entries))) => entry.with_configs(
                                entries
                                    .iter()
                                    .filter(|config| wanted(&config.name))
                                    .map(|config| {
                                        config_entry(
                                            &config.name,
                                            &config.value,
                                            if config.is_default { 5 } else { 1 },
                                            false,
                                            version,
                                        )
                                    })
                                    .collect(),
                            ),
                            Answer::Error(codes::NONE) if resource.resource_type == RESOURCE_BROKER => {
                                if resource.resource_name.as_str() != context.node_id.to_string()
                                    && !resource.resource_name.is_empty()
                                {
                                    return entry.with_error_code(codes::INVALID_REQUEST);
                                }
                                entry.with_configs(
                                    context
                                        .broker_properties
                                        .iter()
                                        .filter(|(name, _)| wanted(name))
                                        .map(|(name, value)| config_entry(name, value, 4, true, version))
                                        .collect(),
                                )
                            }
                            answer => entry.with_error_code(error_of(&answer)),
                        }
                    })
                    .collect();
                encode_response(key, version, id, &DescribeConfigsResponse::default().with_results(results))
            }
            Decoded::AlterConfigs(request) => {
                let responses = request
                    .resources
                    .iter()
                    .map(|resource| {
                        kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(resource.resource_type)
                            .with_resource_name(resource.resource_name.clone())
                            .with_error_code(alter_configs_code(next()))
                    })
                    .collect();
                encode_response(key, version, id, &AlterConfigsResponse::default().with_responses(responses))
            }
            Decoded::IncrementalAlterConfigs(request) => {
                let responses = request
                    .resources
                    .iter()
                    .map(|resource| {
                        kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(resource.resource_type)
                            .with_resource_name(resource.resource_name.clone())
                            .with_error_code(alter_configs_code(next()))
                    })
                    .collect();
                encode_response(
                    key,
                    version,
                    id,
                    &IncrementalAlterConfigsResponse::default().with_responses(responses),
                )
            }
        }
    }
}

fn alter_configs_code(answer: Answer) -> i16 {
    match answer {
        Answer::Core(ClientResponse::Controller(ControllerResponse::AlterConfigs(Ok(())))) => codes::NONE,
        answer => error_of(&answer),
    }
}

/// The error code an answer carries (a mismatched kind is a core bug: INVALID_REQUEST).
fn error_of(answer: &Answer) -> i16 {
    match answer {
        Answer::Error(code) => *code,
        Answer::Core(response) => match response {
            ClientResponse::Produce(Err(error))
            | ClientResponse::ListOffsets(Err(error))
            | ClientResponse::OffsetForLeaderEpoch(Err(error))
            | ClientResponse::DescribeConfigs(Err(error)) => error.code(),
            ClientResponse::Fetch(fetch) => fetch.error.code(),
            ClientResponse::Controller(response) => match controller_error(response) {
                Some(error) => error.code(),
                None => codes::NONE,
            },
            _ => codes::INVALID_REQUEST,
        },
    }
}

fn controller_error(response: &ControllerResponse) -> Option<ErrorCode> {
    match response {
        ControllerResponse::CreateTopic(Err(error))
        | ControllerResponse::DeleteTopic(Err(error))
        | ControllerResponse::CreatePartitions(Err(error))
        | ControllerResponse::AlterConfigs(Err(error))
        | ControllerResponse::RegisterBroker(Err(error))
        | ControllerResponse::Heartbeat(Err(error))
        | ControllerResponse::AlterPartition(Err(error)) => Some(*error),
        _ => None,
    }
}

/// Kafka's config types (DescribeConfigs v3+).
fn config_type(name: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    match name {
        topic_config::UNCLEAN_LEADER_ELECTION => BOOLEAN,
        topic_config::FLUSH_POLICY => STRING,
        topic_config::MIN_INSYNC_REPLICAS | topic_config::SEGMENT_BYTES | topic_config::MAX_MESSAGE_BYTES => {
            INT
        }
        topic_config::FLUSH_MS | topic_config::RETENTION_MS | topic_config::RETENTION_BYTES => LONG,
        _ => STRING,
    }
}

fn config_entry(
    name: &str,
    value: &str,
    source: i8,
    read_only: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let entry = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source);
    if version >= 3 {
        entry.with_config_type(config_type(name))
    } else {
        entry
    }
}

fn fetch_partition(partition: i32, answer: Answer, version: i16) -> PartitionData {
    let entry = PartitionData::default().with_partition_index(partition);
    match answer {
        Answer::Core(ClientResponse::Fetch(fetch)) => {
            let mut entry = entry
                .with_error_code(fetch.error.code())
                .with_high_watermark(fetch.high_watermark)
                .with_last_stable_offset(fetch.high_watermark)
                .with_log_start_offset(fetch.log_start_offset)
                .with_records(Some(Bytes::from(fetch.records)));
            if version >= 12 {
                if let Some((epoch, end_offset)) = fetch.diverging_epoch {
                    entry = entry.with_diverging_epoch(
                        fetch_response::EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset),
                    );
                }
                if let Some((leader, epoch)) = fetch.current_leader {
                    entry = entry.with_current_leader(
                        fetch_response::LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader as i32))
                            .with_leader_epoch(epoch),
                    );
                }
            }
            entry
        }
        answer => {
            entry.with_error_code(error_of(&answer)).with_high_watermark(-1).with_records(Some(Bytes::new()))
        }
    }
}

fn empty_view() -> ClusterView {
    ClusterView { cluster_id: String::new(), controller_id: None, brokers: Vec::new(), topics: Vec::new() }
}

/// The endpoint of `listener`, or the broker's first client endpoint.
fn pick_endpoint<'a>(
    endpoints: &'a [seedlog_core::metadata::Endpoint],
    listener: &str,
) -> Option<&'a seedlog_core::metadata::Endpoint> {
    endpoints.iter().find(|endpoint| endpoint.listener == listener).or_else(|| endpoints.first())
}

fn metadata_response(view: &ClusterView, context: &Context) -> MetadataResponse {
    let brokers = view
        .brokers
        .iter()
        .filter_map(|broker| {
            let endpoint = pick_endpoint(&broker.endpoints, &context.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(broker.broker_id as i32))
                    .with_host(str_bytes(&endpoint.host))
                    .with_port(i32::from(endpoint.port)),
            )
        })
        .collect();
    let topics = view
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let leader = partition.leader.map_or(-1, |leader| leader as i32);
                    MetadataResponsePartition::default()
                        .with_error_code(if leader < 0 {
                            5 /* LEADER_NOT_AVAILABLE */
                        } else {
                            codes::NONE
                        })
                        .with_partition_index(partition.partition as i32)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(partition.leader_epoch)
                        .with_replica_nodes(
                            partition.replicas.iter().map(|id| BrokerId(*id as i32)).collect(),
                        )
                        .with_isr_nodes(partition.isr.iter().map(|id| BrokerId(*id as i32)).collect())
                })
                .collect();
            MetadataResponseTopic::default()
                .with_error_code(topic.error.code())
                .with_name(Some(topic_name(&topic.name)))
                .with_topic_id(topic.topic_id.map_or(Uuid::nil(), |id| Uuid::from_bytes(id.0)))
                .with_partitions(partitions)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&view.cluster_id)))
        .with_controller_id(BrokerId(view.controller_id.map_or(-1, |id| id as i32)))
        .with_topics(topics)
}

/// The topic id a name has now (the nil id when unknown): for the tools and tests.
pub fn topic_id_of(names: &TopicNames, name: &str) -> Uuid {
    names.id(name)
}

#[cfg(test)]
mod tests;
