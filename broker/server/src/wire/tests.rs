use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;
use seedlog_core::protocol::{ClusterView, ConfigEntry, ListedOffset, PartitionFetch, ProduceOk};
use seedlog_core::record::{encode_batch, NewRecord, ProducerInfo};

use super::*;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn batch() -> Bytes {
    let record =
        NewRecord { timestamp: 1, key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), headers: Vec::new() };
    Bytes::from(encode_batch(&[record], ProducerInfo::NONE))
}

/// A request of `key` with at least one element in every array, at any depth, that `version` has.
fn populated(key: ApiKey, version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    let result = match key {
        ApiKey::Produce => ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(if version < 13 { name("t") } else { TopicName::default() })
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_records(Some(batch()))
                ])])
            .encode(&mut buf, version),
        ApiKey::Fetch => FetchRequest::default()
            .with_max_wait_ms(10)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(if version < 13 { name("t") } else { TopicName::default() })
                .with_partitions(vec![
                    fetch_request::FetchPartition::default().with_partition_max_bytes(1000)
                ])])
            .with_forgotten_topics_data(if version >= 7 {
                vec![fetch_request::ForgottenTopic::default()
                    .with_topic(if version <= 12 { name("f") } else { TopicName::default() })
                    .with_partitions(vec![1, 2])]
            } else {
                Vec::new()
            })
            .with_rack_id(if version >= 11 { text("rack") } else { StrBytes::default() })
            .encode(&mut buf, version),
        ApiKey::Metadata => MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("t")))
            ]))
            .encode(&mut buf, version),
        ApiKey::ListOffsets => ListOffsetsRequest::default()
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2)
                ])])
            .encode(&mut buf, version),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default()
            .with_topics(vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()])])
            .encode(&mut buf, version),
        ApiKey::CreateTopics => CreateTopicsRequest::default()
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("1000")))])])
            .encode(&mut buf, version),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default()
            .with_topic_names(if version <= 5 { vec![name("t")] } else { Vec::new() })
            .with_topics(if version >= 6 {
                vec![delete_topics_request::DeleteTopicState::default().with_name(Some(name("t")))]
            } else {
                Vec::new()
            })
            .encode(&mut buf, version),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default()
            .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name("t"))
                .with_count(3)
                .with_assignments(Some(vec![
                    create_partitions_request::CreatePartitionsAssignment::default()
                        .with_broker_ids(vec![BrokerId(1)]),
                ]))])
            .encode(&mut buf, version),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default()
            .with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("t"))
                .with_configuration_keys(Some(vec![text("retention.ms")]))])
            .encode(&mut buf, version),
        ApiKey::AlterConfigs => AlterConfigsRequest::default()
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("5")))])])
            .encode(&mut buf, version),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default()
            .with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("t"))
                .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("5")))])])
            .encode(&mut buf, version),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().encode(&mut buf, version),
        ApiKey::ApiVersions => ApiVersionsRequest::default()
            .with_client_software_name(text("test"))
            .with_client_software_version(text("1"))
            .encode(&mut buf, version),
        other => panic!("no populated request for {other:?}"),
    };
    result.unwrap_or_else(|error| panic!("{key:?} v{version}: {error}"));
    buf
}

/// A whole frame (without the length prefix): header then body.
fn frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(text("test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf.put_slice(body);
    buf.freeze()
}

fn context() -> Context {
    let mut topics = TopicNames::default();
    topics.by_name.insert("t".into(), TopicId([7; 16]));
    topics.by_id.insert(TopicId([7; 16]), "t".into());
    Context {
        listener: "PLAINTEXT".into(),
        topics: Arc::new(topics),
        message_bytes_max: 1 << 20,
        broker_properties: Arc::new(BTreeMap::from([("num.partitions".to_string(), "1".to_string())])),
        node_id: 1,
        num_partitions: 1,
        default_replication_factor: 1,
    }
}

/// A plausible core answer for a part.
fn answer_for(request: &ClientRequest) -> Answer {
    Answer::Core(match request {
        ClientRequest::Metadata { .. } | ClientRequest::DescribeCluster => {
            ClientResponse::Metadata(ClusterView {
                cluster_id: "c".into(),
                controller_id: Some(1),
                brokers: vec![seedlog_core::protocol::BrokerView {
                    broker_id: 1,
                    endpoints: vec![seedlog_core::metadata::Endpoint {
                        listener: "PLAINTEXT".into(),
                        host: "127.0.0.1".into(),
                        port: 9092,
                    }],
                    fenced: false,
                }],
                topics: vec![seedlog_core::protocol::TopicView {
                    name: "t".into(),
                    error: ErrorCode::None,
                    topic_id: Some(TopicId([7; 16])),
                    partitions: vec![seedlog_core::protocol::PartitionView {
                        partition: 0,
                        leader: Some(1),
                        leader_epoch: 3,
                        replicas: vec![1],
                        isr: vec![1],
                    }],
                }],
            })
        }
        ClientRequest::Produce { .. } => {
            ClientResponse::Produce(Ok(ProduceOk { base_offset: 5, log_start_offset: 0 }))
        }
        ClientRequest::Fetch(_) => ClientResponse::Fetch(PartitionFetch {
            error: ErrorCode::None,
            high_watermark: 1,
            log_start_offset: 0,
            diverging_epoch: Some((1, 4)),
            current_leader: Some((1, 2)),
            records: batch().to_vec(),
        }),
        ClientRequest::ListOffsets { .. } => {
            ClientResponse::ListOffsets(Ok(ListedOffset { offset: 3, timestamp: -1, leader_epoch: 0 }))
        }
        ClientRequest::OffsetForLeaderEpoch { .. } => {
            ClientResponse::OffsetForLeaderEpoch(Ok(seedlog_core::protocol::EpochEndOffset {
                leader_epoch: 1,
                end_offset: 9,
            }))
        }
        ClientRequest::DescribeConfigs { .. } => ClientResponse::DescribeConfigs(Ok(vec![ConfigEntry {
            name: "retention.ms".into(),
            value: "1000".into(),
            is_default: false,
        }])),
        ClientRequest::Controller(request) => ClientResponse::Controller(match request {
            ControllerRequest::CreateTopic { .. } => ControllerResponse::CreateTopic(Ok(TopicId([7; 16]))),
            ControllerRequest::DeleteTopic { .. } => ControllerResponse::DeleteTopic(Ok(TopicId([7; 16]))),
            ControllerRequest::CreatePartitions { .. } => {
                ControllerResponse::CreatePartitions(Ok(TopicId([7; 16])))
            }
            ControllerRequest::AlterConfigs { .. } => ControllerResponse::AlterConfigs(Ok(())),
            other => other.error_response(ErrorCode::InvalidRequest),
        }),
    })
}

fn decode_response(key: ApiKey, body: &mut Bytes, version: i16) -> Result<(), String> {
    fn read<T: Decodable>(body: &mut Bytes, version: i16) -> Result<(), String> {
        T::decode(body, version).map(|_| ()).map_err(|error| error.to_string())
    }
    match key {
        ApiKey::Produce => read::<ProduceResponse>(body, version),
        ApiKey::Fetch => read::<FetchResponse>(body, version),
        ApiKey::ListOffsets => read::<ListOffsetsResponse>(body, version),
        ApiKey::Metadata => read::<MetadataResponse>(body, version),
        ApiKey::OffsetForLeaderEpoch => read::<OffsetForLeaderEpochResponse>(body, version),
        ApiKey::CreateTopics => read::<CreateTopicsResponse>(body, version),
        ApiKey::DeleteTopics => read::<DeleteTopicsResponse>(body, version),
        ApiKey::CreatePartitions => read::<CreatePartitionsResponse>(body, version),
        ApiKey::DescribeConfigs => read::<DescribeConfigsResponse>(body, version),
        ApiKey::AlterConfigs => read::<AlterConfigsResponse>(body, version),
        ApiKey::IncrementalAlterConfigs => read::<IncrementalAlterConfigsResponse>(body, version),
        ApiKey::DescribeCluster => read::<DescribeClusterResponse>(body, version),
        other => Err(format!("{other:?}")),
    }
}

fn all_versions() -> impl Iterator<Item = (ApiKey, i16)> {
    SUPPORTED.iter().flat_map(|(key, min, max)| (*min..=*max).map(move |version| (*key, version)))
}

#[test]
fn guard_accepts_every_version_the_encoder_writes() {
    for (key, version) in all_versions() {
        let body = populated(key, version);
        assert_eq!(guard::walk_length(key, version, &body), Some(body.len()), "{key:?} v{version}");
    }
}

#[test]
fn guard_refuses_arrays_longer_than_the_frame() {
    // The 12-byte request that aborts an unguarded broker: Metadata v1 claiming ~2^31 topics.
    let mut body = BytesMut::new();
    body.put_i32(0x7fff_fff0);
    let parsed = parse_request(frame(ApiKey::Metadata, 1, 1, &body), &context());
    assert!(matches!(parsed, Parsed::Close(ref reason) if reason.contains("array")), "{parsed:?}");
    // The same in a compact (flexible) array nested in Fetch v12: one topic, then a bomb.
    let mut body = BytesMut::new();
    body.put_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0]); // max_wait, min_bytes, max_bytes, isolation
    body.put_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // session id and epoch
    body.put_u8(2); // one topic
    body.put_slice(&[2, b't']); // compact name "t"
    body.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // 2^32 - 2 partitions
    let parsed = parse_request(frame(ApiKey::Fetch, 12, 1, &body), &context());
    assert!(matches!(parsed, Parsed::Close(_)), "{parsed:?}");
}

#[test]
fn every_api_and_version_round_trips_through_the_core_answers() {
    let context = context();
    for (key, version) in all_versions() {
        let body = populated(key, version);
        match parse_request(frame(key, version, 42, &body), &context) {
            Parsed::Respond(response) => {
                assert_eq!(key, ApiKey::ApiVersions);
                let mut response = response.slice(4..);
                let header = ResponseHeader::decode(&mut response, 0).unwrap();
                assert_eq!(header.correlation_id, 42);
                let decoded = ApiVersionsResponse::decode(&mut response, version).unwrap();
                assert_eq!(decoded.error_code, 0);
                assert_eq!(decoded.api_keys.len(), SUPPORTED.len());
            }
            Parsed::Pending(pending) => {
                let answers: Vec<Answer> = pending
                    .parts
                    .iter()
                    .map(|part| match part {
                        Part::Ask(request) => answer_for(request),
                        Part::Done(answer) => answer.clone(),
                    })
                    .collect();
                let response = pending.encode(answers, &context);
                let response = response.unwrap_or_else(|error| panic!("{key:?} v{version}: {error}"));
                let length = i32::from_be_bytes(response[..4].try_into().unwrap());
                assert_eq!(length as usize, response.len() - 4, "{key:?} v{version}");
                let mut body = response.slice(4..);
                let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
                assert_eq!(header.correlation_id, 42, "{key:?} v{version}");
                let decoded = decode_response(key, &mut body, version);
                assert!(
                    decoded.is_ok(),
                    "{key:?} v{version}: the client cannot read our answer: {decoded:?}"
                );
                assert!(body.is_empty(), "{key:?} v{version}: bytes after the response");
            }
            Parsed::Close(reason) => panic!("{key:?} v{version}: closed: {reason}"),
        }
    }
}

#[test]
fn api_versions_newer_than_ours_gets_a_v0_answer_with_our_ranges() {
    let parsed = parse_request(frame(ApiKey::ApiVersions, 9, 7, &[0, 0, 0]), &context());
    let Parsed::Respond(response) = parsed else { panic!("{parsed:?}") };
    let mut body = response.slice(4..);
    assert_eq!(ResponseHeader::decode(&mut body, 0).unwrap().correlation_id, 7);
    let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(decoded.error_code, codes::UNSUPPORTED_VERSION);
    let produce = decoded.api_keys.iter().find(|api| api.api_key == ApiKey::Produce as i16).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 13));
    assert!(body.is_empty(), "a v0 answer has nothing after the api keys");
}

#[test]
fn unknown_apis_and_versions_close_the_connection() {
    for (key, version) in [
        (9999i16, 0i16),
        (ApiKey::JoinGroup as i16, 0),
        (ApiKey::Produce as i16, 2),
        (ApiKey::Fetch as i16, 99),
    ] {
        let mut buf = BytesMut::new();
        buf.put_i16(key);
        buf.put_i16(version);
        buf.put_i32(1);
        buf.put_i16(-1);
        assert!(matches!(parse_request(buf.freeze(), &context()), Parsed::Close(_)), "key {key} v{version}");
    }
    assert!(matches!(parse_request(Bytes::from_static(&[0, 3]), &context()), Parsed::Close(_)));
}

#[test]
fn produced_batches_are_checked_before_the_core_sees_them() {
    let good = batch();
    assert!(check_batch(Some(&good), 1 << 20).is_ok());
    let mut bad_crc = good.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(check_batch(Some(&Bytes::from(bad_crc)), 1 << 20), Err(codes::CORRUPT_MESSAGE));
    let mut bad_magic = good.to_vec();
    bad_magic[16] = 1;
    assert_eq!(check_batch(Some(&Bytes::from(bad_magic)), 1 << 20), Err(codes::CORRUPT_MESSAGE));
    assert_eq!(check_batch(Some(&good), 10), Err(codes::MESSAGE_TOO_LARGE));
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    assert_eq!(check_batch(Some(&Bytes::from(two)), 1 << 20), Err(codes::INVALID_RECORD));
    assert_eq!(check_batch(Some(&good.slice(..20)), 1 << 20), Err(codes::CORRUPT_MESSAGE));
    assert_eq!(check_batch(None, 1 << 20), Err(codes::INVALID_RECORD));
}

#[test]
fn a_corrupt_batch_is_answered_by_the_driver_and_never_reaches_the_core() {
    let mut corrupt = batch().to_vec();
    corrupt[30] ^= 1;
    let mut body = BytesMut::new();
    ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name("t"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_records(Some(Bytes::from(corrupt)))
            ])])
        .encode(&mut body, 9)
        .unwrap();
    let Parsed::Pending(pending) = parse_request(frame(ApiKey::Produce, 9, 1, &body), &context()) else {
        panic!()
    };
    assert_eq!(pending.asks().count(), 0);
    assert!(matches!(pending.parts[0], Part::Done(Answer::Error(codes::CORRUPT_MESSAGE))));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SEEDLOG_FUZZ_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(2_000),
        ..ProptestConfig::default()
    })]

    /// Fuzz the request decoder: arbitrary frames, and valid frames of every API and version with
    /// bytes overwritten or cut. Nothing may panic or abort; anything may be refused.
    #[test]
    fn the_request_parser_survives_any_frame(
        raw in proptest::collection::vec(any::<u8>(), 0..64),
        pick in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<proptest::sample::Index>(),
    ) {
        let context = context();
        let _ = parse_request(Bytes::from(raw), &context);
        let versions: Vec<(ApiKey, i16)> = all_versions().collect();
        let (key, version) = versions[pick.index(versions.len())];
        let mut mutated = frame(key, version, 1, &populated(key, version)).to_vec();
        for (position, byte) in &edits {
            let index = position.index(mutated.len());
            mutated[index] = *byte;
        }
        let keep = cut.index(mutated.len() + 1);
        mutated.truncate(keep.max(mutated.len() / 2));
        if let Parsed::Pending(pending) = parse_request(Bytes::from(mutated), &context) {
            let answers = pending.parts.iter().map(|part| match part {
                Part::Ask(request) => answer_for(request),
                Part::Done(answer) => answer.clone(),
            }).collect();
            let _ = pending.encode(answers, &context);
        }
    }
}
