//! `seedlog topics`, `seedlog produce`, `seedlog consume`: Kafka's console tools in small, over
//! [`KafkaClient`]. They speak only Kafka's protocol (so they also work against Apache Kafka),
//! print results on stdout and errors on stderr, and every wait is bounded by `--timeout-ms`.
//!
//! What a starting or recovering cluster answers is retried within that timeout, every
//! [`RETRY_BACKOFF`]: a refused or closed connection (a broker that has not caught up with the
//! metadata log yet serves no clients), `NOT_CONTROLLER` to an admin request, and a topic that is
//! unknown or leaderless while looking for a partition's leader. Other errors end the tool.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    CreateTopicsRequest, DeleteTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::record::{self, encode_batch, NewRecord, ProducerInfo};

use crate::client::KafkaClient;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_CONTROLLER: i16 = 41;

fn error_name(code: i16) -> String {
    match code {
        0 => "NONE".into(),
        3 => "UNKNOWN_TOPIC_OR_PARTITION".into(),
        5 => "LEADER_NOT_AVAILABLE".into(),
        6 => "NOT_LEADER_OR_FOLLOWER".into(),
        7 => "REQUEST_TIMED_OUT".into(),
        17 => "INVALID_TOPIC_EXCEPTION".into(),
        36 => "TOPIC_ALREADY_EXISTS".into(),
        37 => "INVALID_PARTITIONS".into(),
        38 => "INVALID_REPLICATION_FACTOR".into(),
        40 => "INVALID_CONFIG".into(),
        41 => "NOT_CONTROLLER".into(),
        42 => "INVALID_REQUEST".into(),
        other => format!("error {other}"),
    }
}

/// The wait between attempts at what a starting cluster may answer soon.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Why an attempt failed: worth another attempt within the timeout, or not.
enum Failure {
    Retriable(String),
    Fatal(String),
}

/// Runs `attempt` until it succeeds, fails fatally, or `timeout` is over (then its last error).
async fn retrying<T>(
    timeout: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, Failure>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let outcome = match tokio::time::timeout(remaining, attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => return Err(format!("no answer within {timeout:?}")),
        };
        match outcome {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retriable(error)) => {
                if tokio::time::Instant::now() + RETRY_BACKOFF >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}

/// A connection to `bootstrap` and its Metadata for `topics`, retried while the broker refuses or
/// closes the connection (it serves no clients yet).
async fn bootstrap_metadata(
    bootstrap: &str,
    timeout: Duration,
    topics: Option<&[String]>,
) -> Result<(KafkaClient, MetadataResponse), String> {
    retrying(timeout, async || {
        let mut client = KafkaClient::connect(bootstrap, timeout).await.map_err(Failure::Retriable)?;
        let response = metadata(&mut client, topics).await.map_err(Failure::Retriable)?;
        Ok((client, response))
    })
    .await
}

/// Metadata for `topics` (every topic when `None`).
pub async fn metadata(
    client: &mut KafkaClient,
    topics: Option<&[String]>,
) -> Result<MetadataResponse, String> {
    let request = MetadataRequest::default().with_topics(topics.map(|names| {
        names.iter().map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name)))).collect()
    }));
    client.send(&request, 12).await
}

pub async fn topics_create(
    bootstrap: &str,
    timeout: Duration,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> Result<(), String> {
    let creatable = CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(
            configs
                .iter()
                .map(|(name, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_value(Some(StrBytes::from_string(value.clone())))
                })
                .collect(),
        );
    let request =
        CreateTopicsRequest::default().with_topics(vec![creatable]).with_timeout_ms(timeout_ms(timeout));
    retrying(timeout, async || {
        // Only a refused connection is retried: a request that was sent may have created the topic.
        let mut client = KafkaClient::connect(bootstrap, timeout).await.map_err(Failure::Retriable)?;
        let response = client.send(&request, 7).await.map_err(Failure::Fatal)?;
        for result in response.topics {
            let error = format!("cannot create topic {}: {}", topic, error_name(result.error_code));
            match result.error_code {
                0 => {}
                NOT_CONTROLLER => return Err(Failure::Retriable(error)),
                _ => return Err(Failure::Fatal(error)),
            }
        }
        Ok(())
    })
    .await?;
    println!("Created topic {topic}.");
    Ok(())
}

pub async fn topics_delete(bootstrap: &str, timeout: Duration, topic: &str) -> Result<(), String> {
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name(topic)])
        .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name(topic)))])
        .with_timeout_ms(timeout_ms(timeout));
    retrying(timeout, async || {
        let mut client = KafkaClient::connect(bootstrap, timeout).await.map_err(Failure::Retriable)?;
        let response = client.send(&request, 6).await.map_err(Failure::Fatal)?;
        for result in response.responses {
            let error = format!("cannot delete topic {topic}: {}", error_name(result.error_code));
            match result.error_code {
                0 => {}
                NOT_CONTROLLER => return Err(Failure::Retriable(error)),
                _ => return Err(Failure::Fatal(error)),
            }
        }
        Ok(())
    })
    .await?;
    println!("Deleted topic {topic}.");
    Ok(())
}

pub async fn topics_list(bootstrap: &str, timeout: Duration) -> Result<(), String> {
    let (_, response) = bootstrap_metadata(bootstrap, timeout, None).await?;
    let mut names: Vec<String> =
        response.topics.iter().filter_map(|topic| topic.name.as_ref().map(|name| name.to_string())).collect();
    names.sort();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

pub async fn topics_describe(bootstrap: &str, timeout: Duration, topic: Option<&str>) -> Result<(), String> {
    let wanted: Option<Vec<String>> = topic.map(|name| vec![name.to_string()]);
    let (_, response) = bootstrap_metadata(bootstrap, timeout, wanted.as_deref()).await?;
    let mut failed = None;
    for topic in &response.topics {
        let name = topic.name.as_ref().map(|name| name.to_string()).unwrap_or_default();
        if topic.error_code != 0 {
            failed = Some(format!("topic {name}: {}", error_name(topic.error_code)));
            continue;
        }
        println!(
            "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}",
            topic.topic_id,
            topic.partitions.len(),
            topic.partitions.first().map_or(0, |partition| partition.replica_nodes.len())
        );
        let mut partitions: Vec<_> = topic.partitions.iter().collect();
        partitions.sort_by_key(|partition| partition.partition_index);
        for partition in partitions {
            let list = |ids: &[kafka_protocol::messages::BrokerId]| {
                ids.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(",")
            };
            println!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {}\tIsr: {}",
                partition.partition_index,
                partition.leader_id.0,
                partition.leader_epoch,
                list(&partition.replica_nodes),
                list(&partition.isr_nodes)
            );
        }
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Connects to the leader of `topic`/`partition` (found through `bootstrap`), asking again while
/// the topic is unknown or the partition leaderless (a topic just created, a leader just lost).
pub async fn connect_leader(
    bootstrap: &str,
    timeout: Duration,
    topic: &str,
    partition: i32,
) -> Result<KafkaClient, String> {
    let topics = [topic.to_string()];
    retrying(timeout, async || {
        let (client, response) =
            bootstrap_metadata(bootstrap, timeout, Some(&topics)).await.map_err(Failure::Retriable)?;
        let Some(found) =
            response.topics.iter().find(|t| t.name.as_ref().is_some_and(|name| name.as_str() == topic))
        else {
            return Err(Failure::Retriable(format!("topic {topic} not in the metadata")));
        };
        let error = format!("topic {topic}: {}", error_name(found.error_code));
        match found.error_code {
            0 => {}
            UNKNOWN_TOPIC_OR_PARTITION | LEADER_NOT_AVAILABLE => return Err(Failure::Retriable(error)),
            _ => return Err(Failure::Fatal(error)),
        }
        let leader = found
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| Failure::Fatal(format!("topic {topic} has no partition {partition}")))?
            .leader_id
            .0;
        let broker = response.brokers.iter().find(|broker| broker.node_id.0 == leader).ok_or_else(|| {
            Failure::Retriable(format!(
                "partition {topic}/{partition} has no leader now (leader id {leader})"
            ))
        })?;
        let address = format!("{}:{}", broker.host, broker.port);
        if address == client.address() {
            return Ok(client);
        }
        KafkaClient::connect(&address, timeout).await.map_err(Failure::Retriable)
    })
    .await
}

pub struct ProduceOptions {
    pub topic: String,
    pub partition: i32,
    /// 0, 1 or -1 (all).
    pub acks: i16,
    /// Split each line at the first separator into key and value.
    pub key_separator: Option<String>,
    pub batch_records_max: usize,
}

/// Reads lines from stdin and produces them, a batch per what is available, in order.
pub async fn produce(bootstrap: &str, timeout: Duration, options: ProduceOptions) -> Result<(), String> {
    let mut client = connect_leader(bootstrap, timeout, &options.topic, options.partition).await?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(4096);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut produced = 0u64;
    while let Some(first) = lines.recv().await {
        let mut batch = vec![first];
        while batch.len() < options.batch_records_max {
            match lines.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let records: Vec<NewRecord> = batch
            .iter()
            .map(|line| {
                let (key, value) =
                    match options.key_separator.as_deref().and_then(|separator| line.split_once(separator)) {
                        Some((key, value)) => (Some(key.as_bytes().to_vec()), value),
                        None => (None, line.as_str()),
                    };
                NewRecord {
                    timestamp: now_ms,
                    key,
                    value: Some(value.as_bytes().to_vec()),
                    headers: Vec::new(),
                }
            })
            .collect();
        let bytes = Bytes::from(encode_batch(&records, ProducerInfo::NONE));
        let request = ProduceRequest::default()
            .with_acks(options.acks)
            .with_timeout_ms(timeout_ms(timeout))
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&options.topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(options.partition)
                    .with_records(Some(bytes))])]);
        if options.acks == 0 {
            client.send_without_answer(&request, 11).await?;
        } else {
            let response = client.send(&request, 11).await?;
            for topic in &response.responses {
                for partition in &topic.partition_responses {
                    if partition.error_code != 0 {
                        return Err(format!(
                            "produce to {}/{} failed: {} (after {produced} records)",
                            options.topic,
                            options.partition,
                            error_name(partition.error_code)
                        ));
                    }
                }
            }
        }
        produced += records.len() as u64;
    }
    eprintln!("produced {produced} records");
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

pub struct ConsumeOptions {
    pub topic: String,
    pub partition: i32,
    pub start: StartOffset,
    pub max_messages: Option<u64>,
    /// Stop after this long without a new record (`None`: run until max messages or killed).
    pub idle_timeout: Option<Duration>,
    pub print_key: bool,
    pub print_offset: bool,
}

/// Fetches from the partition leader and prints each record's value, one per line.
pub async fn consume(bootstrap: &str, timeout: Duration, options: ConsumeOptions) -> Result<(), String> {
    let mut client = connect_leader(bootstrap, timeout, &options.topic, options.partition).await?;
    let mut offset = match options.start {
        StartOffset::At(offset) => offset,
        StartOffset::Earliest => list_offset(&mut client, &options.topic, options.partition, -2).await?,
        StartOffset::Latest => list_offset(&mut client, &options.topic, options.partition, -1).await?,
    };
    let mut printed = 0u64;
    let mut idle_since = tokio::time::Instant::now();
    let stdout = std::io::stdout();
    loop {
        if options.max_messages.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        if options.idle_timeout.is_some_and(|idle| idle_since.elapsed() >= idle) {
            return Ok(());
        }
        let request = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_topics(vec![FetchTopic::default().with_topic(topic_name(&options.topic)).with_partitions(
                vec![FetchPartition::default()
                    .with_partition(options.partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)],
            )]);
        let response = client.send(&request, 12).await?;
        for partition in response.responses.iter().flat_map(|topic| topic.partitions.iter()) {
            if partition.error_code != 0 {
                return Err(format!(
                    "fetch from {}/{} at {offset}: {}",
                    options.topic,
                    options.partition,
                    error_name(partition.error_code)
                ));
            }
            let records = partition.records.as_deref().unwrap_or_default();
            let consumed =
                record::consume(records).map_err(|error| format!("undecodable records: {error:?}"))?;
            let mut out = stdout.lock();
            for record in consumed {
                if record.offset < offset {
                    continue;
                }
                if options.max_messages.is_some_and(|max| printed >= max) {
                    break;
                }
                let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
                let mut line = String::new();
                if options.print_offset {
                    line.push_str(&format!("{}\t", record.offset));
                }
                if options.print_key {
                    let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
                    line.push_str(&format!("{key}\t"));
                }
                line.push_str(&value);
                let _ = writeln!(out, "{line}");
                printed += 1;
                offset = record.offset + 1;
                idle_since = tokio::time::Instant::now();
            }
            let _ = out.flush();
        }
    }
}

async fn list_offset(
    client: &mut KafkaClient,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<i64, String> {
    let request = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![
        ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
            ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp),
        ]),
    ]);
    let response = client.send(&request, 7).await?;
    let partition = response
        .topics
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .next()
        .ok_or("ListOffsets answered no partition")?;
    if partition.error_code != 0 {
        return Err(format!("ListOffsets on {topic}: {}", error_name(partition.error_code)));
    }
    Ok(partition.offset)
}

fn timeout_ms(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

/// `key=value` pairs of `--config`.
pub fn parse_configs(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut seen = BTreeMap::new();
    for pair in pairs {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| format!("--config `{pair}` is not key=value"))?;
        seen.insert(key.to_string(), value.to_string());
    }
    Ok(seen.into_iter().collect())
}
