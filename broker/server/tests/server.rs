//! The broker over a real socket: a `seedlog broker` process on free ports and a temporary data
//! directory, driven with Kafka requests by the tools' client and by hand-made bad frames.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use seedlog_core::record::{encode_batch, NewRecord, ProducerInfo};
use seedlog_server::client::KafkaClient;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A broker process, killed when dropped.
struct Broker {
    child: Child,
    address: String,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(extra: &[&str]) -> Broker {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedlog"));
    command
        .arg("broker")
        .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"])
        .args(["--override", &format!("log.dirs={}", data.path().display())])
        .args(["--override", "socket.request.max.bytes=65536"]);
    for value in extra {
        command.args(["--override", value]);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut address = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening PLAINTEXT://").nth(1) {
            address = Some(rest.trim().to_string());
        }
        if line.contains("data in") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Broker { child, address: address.expect("the broker prints its address"), _data: data }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Waits until the single node has a controller and a registered broker.
async fn ready_client(broker: &Broker) -> KafkaClient {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(mut client) = KafkaClient::connect(&broker.address, TIMEOUT).await {
            if let Ok(metadata) = client.send(&MetadataRequest::default().with_topics(None), 12).await {
                if !metadata.brokers.is_empty() && metadata.controller_id.0 >= 0 {
                    return client;
                }
            }
        }
        assert!(Instant::now() < deadline, "the broker did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_topic(client: &mut KafkaClient, topic: &str, partitions: i32) -> i16 {
    let request =
        CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    client.send(&request, 7).await.unwrap().topics[0].error_code
}

#[test]
fn api_versions_answers_our_ranges_and_kip_511_falls_back_to_v0() {
    let broker = start_broker(&[]);
    runtime().block_on(async {
        let mut client = KafkaClient::connect(&broker.address, TIMEOUT).await.unwrap();
        let response = client.send_at(&ApiVersionsRequest::default(), 3).await.unwrap();
        assert_eq!(response.error_code, 0);
        let keys: Vec<i16> = response.api_keys.iter().map(|api| api.api_key).collect();
        assert!(keys.contains(&(ApiKey::Produce as i16)) && keys.contains(&(ApiKey::DescribeCluster as i16)));
        assert!(!keys.contains(&(ApiKey::JoinGroup as i16)), "unsupported APIs are absent");

        // A client newer than us: ApiVersions v99 gets a v0 answer with UNSUPPORTED_VERSION.
        let mut frame = BytesMut::new();
        frame.put_i32(10);
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(99);
        frame.put_i32(77);
        frame.put_i16(-1);
        client.write_raw(&frame.freeze()).await.unwrap();
        let mut answer = client.read_raw().await.unwrap().unwrap();
        let header = ResponseHeader::decode(&mut answer, 0).unwrap();
        assert_eq!(header.correlation_id, 77);
        let fallback = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
        assert_eq!(fallback.error_code, 35);
        assert_eq!(fallback.api_keys.len(), response.api_keys.len());
    });
}

use kafka_protocol::protocol::Decodable;

#[test]
fn admin_requests_round_trip_over_a_socket() {
    let broker = start_broker(&["num.partitions=2"]);
    runtime().block_on(async {
        let mut client = ready_client(&broker).await;
        assert_eq!(create_topic(&mut client, "events", 3).await, 0);
        assert_eq!(create_topic(&mut client, "events", 3).await, 36, "TOPIC_ALREADY_EXISTS");
        assert_eq!(create_topic(&mut client, "bad/name", 1).await, 17, "INVALID_TOPIC_EXCEPTION");
        assert_eq!(create_topic(&mut client, "defaults", -1).await, 0);

        let metadata = client.send(&MetadataRequest::default().with_topics(None), 12).await.unwrap();
        let mut topics: Vec<(String, usize)> = metadata
            .topics
            .iter()
            .map(|topic| (topic.name.as_ref().unwrap().to_string(), topic.partitions.len()))
            .collect();
        topics.sort();
        assert_eq!(topics, [("defaults".to_string(), 2), ("events".to_string(), 3)]);
        assert_eq!(metadata.brokers.len(), 1);
        let broker_entry = &metadata.brokers[0];
        assert_eq!(format!("{}:{}", broker_entry.host, broker_entry.port), broker.address);

        let cluster = client.send(&DescribeClusterRequest::default(), 1).await.unwrap();
        assert_eq!(cluster.cluster_id.as_str(), "seedlog");
        assert_eq!(cluster.brokers.len(), 1);

        // CreatePartitions: grow to 5, refuse shrinking.
        let grow = |count| {
            CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("events"))
                    .with_count(count),
            ])
        };
        assert_eq!(client.send(&grow(5), 3).await.unwrap().results[0].error_code, 0);
        assert_eq!(client.send(&grow(2), 3).await.unwrap().results[0].error_code, 37, "INVALID_PARTITIONS");

        // IncrementalAlterConfigs sets one key; AlterConfigs with an unknown key is INVALID_CONFIG.
        let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("events"))
                .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(text("60000")))]),
        ]);
        assert_eq!(client.send(&incremental, 1).await.unwrap().responses[0].error_code, 0);
        let unknown = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("events"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(text("cleanup.policy"))
                    .with_value(Some(text("compact")))]),
        ]);
        assert_eq!(client.send(&unknown, 2).await.unwrap().responses[0].error_code, 40);

        // DescribeConfigs shows the override as a topic config, the rest as defaults.
        let describe = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("events"))
                .with_configuration_keys(None),
        ]);
        let described = client.send(&describe, 4).await.unwrap();
        let configs = &described.results[0].configs;
        let retention = configs.iter().find(|config| config.name.as_str() == "retention.ms").unwrap();
        assert_eq!(retention.value.as_ref().unwrap().as_str(), "60000");
        assert_eq!(retention.config_source, 1, "TOPIC_CONFIG");
        let segment = configs.iter().find(|config| config.name.as_str() == "segment.bytes").unwrap();
        assert_eq!(segment.config_source, 5, "DEFAULT_CONFIG");

        // DeleteTopics, then the topic is unknown.
        let delete = DeleteTopicsRequest::default().with_topic_names(vec![name("events")]);
        assert_eq!(client.send(&delete, 5).await.unwrap().responses[0].error_code, 0);
        assert_eq!(client.send(&delete, 5).await.unwrap().responses[0].error_code, 3);
        let metadata = client
            .send(
                &MetadataRequest::default().with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(name("events"))),
                ])),
                12,
            )
            .await
            .unwrap();
        assert_eq!(metadata.topics[0].error_code, 3);
    });
}

/// Sends raw bytes on a fresh connection; returns what came back before the broker closed it
/// (or a timeout passed).
async fn send_raw(address: &str, bytes: Vec<u8>, close_write: bool) -> Result<Option<Bytes>, String> {
    let mut client = KafkaClient::connect(address, Duration::from_secs(3)).await?;
    client.write_raw(&Bytes::from(bytes)).await?;
    if close_write {
        // A truncated frame: the broker waits for the rest until the client goes away.
        drop(client);
        return Ok(None);
    }
    client.read_raw().await
}

fn request_frame(key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_i32((8 + 2 + body.len()) as i32);
    frame.put_i16(key);
    frame.put_i16(version);
    frame.put_i32(5);
    frame.put_i16(-1); // null client id (header v1)
    frame.put_slice(body);
    frame.to_vec()
}

fn produce_body(records: Bytes) -> Vec<u8> {
    let mut body = BytesMut::new();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name("events"))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
        .encode(&mut body, 7)
        .unwrap();
    body.to_vec()
}

use kafka_protocol::protocol::Encodable;

fn one_batch() -> Vec<u8> {
    let record = NewRecord::unkeyed(1, b"value");
    encode_batch(&[record], ProducerInfo::NONE)
}

#[test]
fn malformed_frames_get_error_codes_or_a_closed_connection_and_the_broker_stays_up() {
    let broker = start_broker(&[]);
    runtime().block_on(async {
        let mut client = ready_client(&broker).await;
        assert_eq!(create_topic(&mut client, "events", 1).await, 0);
        let address = broker.address.as_str();

        // Oversize (over socket.request.max.bytes = 64 KiB), negative and tiny sizes: closed.
        for size in [1_000_000i32, -5, 3] {
            let mut frame = size.to_be_bytes().to_vec();
            frame.extend_from_slice(&[0; 16]);
            assert!(matches!(send_raw(address, frame, false).await, Ok(None) | Err(_)), "size {size}");
        }
        // Truncated: the frame promises more than it sends, then the client leaves.
        let mut truncated = request_frame(ApiKey::Metadata as i16, 1, &[0, 0, 0, 0]);
        truncated[3] = 200;
        send_raw(address, truncated, true).await.unwrap();
        // Unknown API key, unsupported version of a known API: closed.
        for (key, version) in [(4242i16, 0i16), (ApiKey::Produce as i16, 1), (ApiKey::JoinGroup as i16, 5)] {
            let frame = request_frame(key, version, &[0; 8]);
            assert!(
                matches!(send_raw(address, frame, false).await, Ok(None) | Err(_)),
                "key {key} v{version}"
            );
        }
        // An array-length bomb: closed, not an abort.
        let frame = request_frame(ApiKey::Metadata as i16, 1, &0x7fff_fff0i32.to_be_bytes());
        assert!(matches!(send_raw(address, frame, false).await, Ok(None) | Err(_)));

        // Bad CRC and wrong magic: CORRUPT_MESSAGE for the partition, and nothing stored.
        let mut bad_crc = one_batch();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x55;
        let mut bad_magic = one_batch();
        bad_magic[16] = 1;
        for records in [bad_crc, bad_magic] {
            let frame = request_frame(ApiKey::Produce as i16, 7, &produce_body(Bytes::from(records)));
            let mut answer = send_raw(address, frame, false).await.unwrap().expect("an answer");
            ResponseHeader::decode(&mut answer, 0).unwrap();
            let response = ProduceResponse::decode(&mut answer, 7).unwrap();
            assert_eq!(response.responses[0].partition_responses[0].error_code, 2, "CORRUPT_MESSAGE");
        }
        // Too large for message.max.bytes.
        let big = BytesMut::zeroed(70_000);
        let frame = request_frame(ApiKey::Produce as i16, 7, &produce_body(big.freeze()));
        assert!(
            matches!(send_raw(address, frame, false).await, Ok(None) | Err(_)),
            "over the frame limit: closed"
        );

        // Still up, and the topic's partition holds nothing.
        let mut client = ready_client(&broker).await;
        let list = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default().with_name(name("events")).with_partitions(
                vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)],
            ),
        ]);
        let listed = client.send(&list, 7).await.unwrap();
        let partition = &listed.topics[0].partitions[0];
        assert!(partition.error_code != 0 || partition.offset == 0, "nothing was stored: {partition:?}");
    });
}

#[test]
fn produce_then_fetch_returns_the_batch_as_stored() {
    let broker = start_broker(&[]);
    runtime().block_on(async {
        let mut client = ready_client(&broker).await;
        assert_eq!(create_topic(&mut client, "events", 1).await, 0);
        let batch = one_batch();
        let request: ProduceRequest = {
            let mut body = Bytes::from(produce_body(Bytes::from(batch.clone())));
            ProduceRequest::decode(&mut body, 7).unwrap()
        };
        let produced = client.send(&request, 7).await.unwrap();
        let partition = &produced.responses[0].partition_responses[0];
        assert_eq!((partition.error_code, partition.base_offset), (0, 0));
        let fetch = FetchRequest::default().with_max_wait_ms(100).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(name("events")).with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20),
            ]),
        ]);
        let fetched = client.send(&fetch, 12).await.unwrap();
        let data = &fetched.responses[0].partitions[0];
        assert_eq!(data.error_code, 0);
        let records = data.records.as_ref().unwrap();
        // Byte for byte but the base offset and the partition leader epoch (both set by the leader,
        // neither covered by the CRC).
        assert_eq!(&records[8..12], &batch[8..12]);
        assert_eq!(&records[16..], &batch[16..]);
        assert_eq!(data.high_watermark, 1);
    });
}

/// `connections.max.idle.ms`: a connection that sends nothing is closed by the broker (a client
/// that vanished behind a partition must not keep a task forever), and one that keeps sending is
/// not.
#[test]
fn an_idle_client_connection_is_closed_and_a_busy_one_is_not() {
    let broker = start_broker(&["connections.max.idle.ms=400"]);
    runtime().block_on(async {
        let mut busy = ready_client(&broker).await;
        let mut idle = KafkaClient::connect(&broker.address, TIMEOUT).await.unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1_200) {
            busy.send(&ApiVersionsRequest::default(), 3).await.expect("a busy connection stays open");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The broker closed the idle one: the read ends instead of timing out.
        assert_eq!(idle.read_raw().await, Ok(None), "the idle connection was closed");
    });
}
