//! Unit tests of the records, the image's rules, placement and every controller rule, plus a
//! property test: random request and timer sequences keep the image valid.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::controller::{is_legal_topic_name, PARTITIONS_MAX, UNCLEAN_LEADER_ELECTION};
use super::placement::assign_replicas;
use super::*;
use crate::env::Time;
use crate::protocol::ErrorCode;

const SESSION_MS: u64 = 1_000;

fn id(byte: u8) -> TopicId {
    TopicId([byte; 16])
}

fn register(broker_id: BrokerId, offset: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id,
        broker_epoch: offset,
        incarnation_id: u64::from(broker_id) * 100,
        endpoints: vec![Endpoint { listener: "PLAINTEXT".into(), host: format!("b{broker_id}"), port: 9092 }],
    }
}

/// An image with brokers 1, 2, 3 (epochs 0, 1, 2, unfenced) and topic `t` (id 7..) with one
/// partition on replicas [1, 2, 3], led by 1.
fn three_broker_image() -> MetadataImage {
    let mut image = MetadataImage::default();
    let records = [
        register(1, 0),
        register(2, 1),
        register(3, 2),
        MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: 0 },
        MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 1 },
        MetadataRecord::UnfenceBroker { broker_id: 3, broker_epoch: 2 },
        MetadataRecord::Topic { name: "t".into(), topic_id: id(7), configs: BTreeMap::new() },
        MetadataRecord::Partition {
            topic_id: id(7),
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: Some(1),
            leader_epoch: 0,
            partition_epoch: 0,
        },
    ];
    for (offset, record) in records.iter().enumerate() {
        image.apply(offset as i64, record).unwrap();
    }
    image
}

/// Applies and asserts the image refused the record without changing.
fn assert_refused(image: &mut MetadataImage, offset: i64, record: MetadataRecord) {
    let before = image.clone();
    assert!(image.apply(offset, &record).is_err(), "{record:?} was accepted");
    assert_eq!(*image, before, "a refused record changed the image");
}

fn change(
    leader: Option<BrokerId>,
    isr: Vec<BrokerId>,
    leader_epoch: i32,
    partition_epoch: i32,
) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id: id(7),
        partition: 0,
        leader,
        isr,
        leader_epoch,
        partition_epoch,
    }
}

// ---- records and image ----

#[test]
fn fnv1a64_matches_the_reference_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn records_round_trip_and_garbage_is_an_error() {
    let image = three_broker_image();
    let records = [
        register(4, 10),
        MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: 0 },
        MetadataRecord::BrokerShuttingDown { broker_id: 1, broker_epoch: 0 },
        MetadataRecord::Topic {
            name: "x".into(),
            topic_id: TopicId([0xab; 16]),
            configs: BTreeMap::from([("k".to_string(), "v".to_string())]),
        },
        change(None, vec![2], 1, 1),
        MetadataRecord::TopicConfig {
            topic_id: id(7),
            configs: BTreeMap::from([("retention.ms".to_string(), "1".to_string())]),
        },
        MetadataRecord::RemoveTopic { topic_id: id(7) },
    ];
    for record in records {
        let bytes = encode_record(&record);
        assert_eq!(decode_record(&bytes).unwrap(), record);
        assert_eq!(encode_record(&decode_record(&bytes).unwrap()), bytes, "encoding is canonical");
    }
    for garbage in [&b""[..], b"{", b"\"Topic\"", b"{\"RemoveTopic\":{\"topic_id\":\"zz\"}}", &[0xff, 0x00]] {
        assert!(decode_record(garbage).is_err());
    }
    assert!(image.validate().is_ok());
}

#[test]
fn image_encoding_round_trips_with_a_stable_hash() {
    let image = three_broker_image();
    let bytes = image.encode();
    let decoded = MetadataImage::decode(&bytes).unwrap();
    assert_eq!(decoded, image);
    assert_eq!(decoded.hash(), image.hash());
    assert_eq!(decoded.encode(), bytes);
    let mut other = image.clone();
    other.apply(8, &MetadataRecord::FenceBroker { broker_id: 2, broker_epoch: 1 }).unwrap();
    assert_ne!(other.hash(), image.hash());
    assert!(MetadataImage::decode(b"not json").is_err());
    assert!(MetadataImage::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn decode_refuses_an_inconsistent_image() {
    let mut image = three_broker_image();
    image.topics_by_name.insert("ghost".into(), id(9));
    assert!(MetadataImage::decode(&image.encode()).is_err());

    let mut image = three_broker_image();
    image.topics.get_mut(&id(7)).unwrap().partitions.get_mut(&0).unwrap().leader = Some(9);
    assert!(MetadataImage::decode(&image.encode()).is_err());

    let mut image = three_broker_image();
    image.brokers.get_mut(&1).unwrap().broker_epoch = 100; // beyond the end offset
    assert!(MetadataImage::decode(&image.encode()).is_err());
}

#[test]
fn registration_takes_its_offset_as_epoch_and_starts_fenced() {
    let mut image = three_broker_image();
    assert_refused(
        &mut image,
        8,
        MetadataRecord::RegisterBroker {
            broker_id: 4,
            broker_epoch: 7,
            incarnation_id: 1,
            endpoints: vec![],
        },
    );
    image.apply(8, &register(1, 8)).unwrap();
    let registration = &image.brokers[&1];
    assert_eq!((registration.broker_epoch, registration.fenced), (8, true));
    assert_eq!(image.end_offset, 9);
}

#[test]
fn offsets_never_go_backwards() {
    let mut image = three_broker_image();
    assert_refused(&mut image, 7, MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: 0 });
    // Skipping offsets (control entries) is fine.
    image.apply(20, &MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: 0 }).unwrap();
    assert_eq!(image.end_offset, 21);
}

#[test]
fn broker_records_need_the_current_registration() {
    let mut image = three_broker_image();
    assert_refused(&mut image, 8, MetadataRecord::FenceBroker { broker_id: 9, broker_epoch: 0 });
    assert_refused(&mut image, 8, MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: 1 });
    assert_refused(&mut image, 8, MetadataRecord::UnfenceBroker { broker_id: 2, broker_epoch: 0 });
    assert_refused(&mut image, 8, MetadataRecord::BrokerShuttingDown { broker_id: 3, broker_epoch: 5 });
    image.apply(8, &MetadataRecord::BrokerShuttingDown { broker_id: 3, broker_epoch: 2 }).unwrap();
    assert_refused(&mut image, 9, MetadataRecord::UnfenceBroker { broker_id: 3, broker_epoch: 2 });
}

#[test]
fn topics_are_unique_and_removal_takes_the_partitions() {
    let mut image = three_broker_image();
    let topic = |name: &str, topic_id| MetadataRecord::Topic {
        name: name.into(),
        topic_id,
        configs: BTreeMap::new(),
    };
    assert_refused(&mut image, 8, topic("t", id(8)));
    assert_refused(&mut image, 8, topic("u", id(7)));
    assert_refused(&mut image, 8, topic("", id(8)));
    assert_refused(&mut image, 8, topic("u", TopicId::ZERO));
    assert_refused(&mut image, 8, MetadataRecord::RemoveTopic { topic_id: id(8) });
    image.apply(8, &MetadataRecord::RemoveTopic { topic_id: id(7) }).unwrap();
    assert!(image.topics.is_empty() && image.topics_by_name.is_empty());
    assert_refused(&mut image, 9, change(Some(2), vec![1, 2], 0, 1));
    // The name is free again.
    image.apply(9, &topic("t", id(8))).unwrap();
    assert_eq!(image.topics_by_name["t"], id(8));
    image.validate().unwrap();
}

#[test]
fn partitions_keep_isr_within_replicas_and_the_leader_within_isr() {
    let mut image = three_broker_image();
    let partition = |replicas: Vec<BrokerId>, isr: Vec<BrokerId>, leader| MetadataRecord::Partition {
        topic_id: id(7),
        partition: 1,
        replicas,
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    };
    assert_refused(&mut image, 8, partition(vec![1, 2], vec![1, 3], Some(1)));
    assert_refused(&mut image, 8, partition(vec![1, 2], vec![2], Some(1)));
    assert_refused(&mut image, 8, partition(vec![1, 9], vec![1], Some(1)));
    assert_refused(&mut image, 8, partition(vec![1, 1], vec![1], Some(1)));
    assert_refused(&mut image, 8, partition(vec![1, 2], vec![], None));
    assert_refused(&mut image, 8, partition(vec![], vec![], None));
    assert_refused(
        &mut image,
        8,
        MetadataRecord::Partition {
            topic_id: id(9),
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: Some(1),
            leader_epoch: 0,
            partition_epoch: 0,
        },
    );
    // Partition 0 exists already.
    assert_refused(
        &mut image,
        8,
        MetadataRecord::Partition {
            topic_id: id(7),
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: Some(1),
            leader_epoch: 0,
            partition_epoch: 0,
        },
    );
    image.apply(8, &partition(vec![1, 2], vec![2, 1], None)).unwrap();
}

#[test]
fn partition_changes_follow_the_epoch_rules() {
    let mut image = three_broker_image();
    assert_refused(&mut image, 8, change(Some(2), vec![1, 2], 1, 2)); // partition epoch skips
    assert_refused(&mut image, 8, change(Some(2), vec![1, 2], 0, 1)); // new leader, same epoch
    assert_refused(&mut image, 8, change(Some(1), vec![1, 2], 1, 1)); // same leader, bumped epoch
    assert_refused(&mut image, 8, change(None, vec![1], 0, 1)); // leader gone, same epoch
    assert_refused(&mut image, 8, change(Some(3), vec![1, 2], 1, 1)); // leader not in ISR
    assert_refused(&mut image, 8, change(Some(1), vec![1, 4], 0, 1)); // ISR outside replicas
    image.apply(8, &change(Some(1), vec![1, 2], 0, 1)).unwrap();
    image.apply(9, &change(Some(2), vec![2], 1, 2)).unwrap();
    image.apply(10, &change(None, vec![2], 2, 3)).unwrap();
    assert_refused(&mut image, 11, change(Some(2), vec![2], 2, 4)); // from none needs a bump
    let state = image.partition(id(7), 0).unwrap();
    assert_eq!((state.leader, state.leader_epoch, state.partition_epoch), (None, 2, 3));
}

// ---- placement ----

#[test]
fn placement_spreads_leaders_and_replicas() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let assignment = assign_replicas(&[3, 1, 2], 6, 3, &mut rng).unwrap();
    assert_eq!(assignment.len(), 6);
    let mut leaders = BTreeMap::<BrokerId, u32>::new();
    for replicas in &assignment {
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 2, 3], "three distinct replicas: {replicas:?}");
        *leaders.entry(replicas[0]).or_default() += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    // Consecutive partitions start on consecutive brokers.
    for pair in assignment.windows(2) {
        let first = |replicas: &Vec<BrokerId>| replicas[0];
        assert_eq!(first(&pair[1]), first(&pair[0]) % 3 + 1);
    }
    // Same rng, same placement; rf out of range is refused.
    let again = assign_replicas(&[1, 2, 3], 6, 3, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    assert_eq!(again, assignment);
    assert!(assign_replicas(&[1, 2, 3], 1, 4, &mut rng).is_none());
    assert!(assign_replicas(&[1, 2, 3], 1, 0, &mut rng).is_none());
    assert!(assign_replicas(&[], 1, 1, &mut rng).is_none());
}

#[test]
fn placement_varies_followers_with_the_shift() {
    // Five brokers, replication factor 2: over 10 partitions the follower distance changes once
    // the shift grows, so not every partition has its follower at the same distance.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let assignment = assign_replicas(&[1, 2, 3, 4, 5], 10, 2, &mut rng).unwrap();
    let distances: std::collections::BTreeSet<u32> =
        assignment.iter().map(|replicas| (replicas[1] + 5 - replicas[0]) % 5).collect();
    assert_eq!(distances.len(), 2, "{assignment:?}");
    assert!(!distances.contains(&0));
}

// ---- the controller ----

/// A controller whose decisions are replayed at once, as if every proposal committed.
struct Harness {
    controller: Controller,
    rng: ChaCha8Rng,
    now: Time,
    next_offset: i64,
    /// Every record proposed, with its offset.
    log: Vec<(i64, MetadataRecord)>,
}

impl Harness {
    fn new() -> Harness {
        let config =
            ControllerConfig { broker_session_timeout_ms: SESSION_MS, default_replication_factor: 3 };
        Harness {
            controller: Controller::activate(Time::ZERO, MetadataImage::default(), config),
            rng: ChaCha8Rng::seed_from_u64(7),
            now: Time::ZERO,
            next_offset: 0,
            log: Vec::new(),
        }
    }

    /// Brokers `ids`, registered, caught up and unfenced.
    fn with_brokers(ids: &[BrokerId]) -> Harness {
        let mut harness = Harness::new();
        for broker in ids {
            let epoch = harness.register(*broker, u64::from(*broker)).unwrap();
            let reply = harness.heartbeat(*broker, epoch, false).unwrap();
            assert!(!reply.fenced);
        }
        harness
    }

    fn image(&self) -> &MetadataImage {
        self.controller.image()
    }

    fn commit(&mut self, records: Vec<MetadataRecord>) {
        for record in records {
            self.controller.replay(self.next_offset, &record).unwrap();
            self.log.push((self.next_offset, record));
            self.next_offset += 1;
        }
    }

    fn request(&mut self, request: ControllerRequest) -> (ControllerResponse, usize) {
        let decision = self.controller.handle_request(self.now, &mut self.rng, self.next_offset, &request);
        let count = decision.records.len();
        self.commit(decision.records);
        (decision.response.expect("a request is answered"), count)
    }

    fn register(&mut self, broker_id: BrokerId, incarnation_id: u64) -> Result<i64, ErrorCode> {
        let request = ControllerRequest::RegisterBroker { broker_id, incarnation_id, endpoints: vec![] };
        match self.request(request).0 {
            ControllerResponse::RegisterBroker(result) => result,
            other => panic!("{other:?}"),
        }
    }

    /// A heartbeat from a broker that applied everything proposed so far.
    fn heartbeat(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        want_shutdown: bool,
    ) -> Result<HeartbeatReply, ErrorCode> {
        let metadata_offset = self.next_offset;
        self.heartbeat_at(broker_id, broker_epoch, metadata_offset, want_shutdown)
    }

    fn heartbeat_at(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        metadata_offset: i64,
        want_shutdown: bool,
    ) -> Result<HeartbeatReply, ErrorCode> {
        let request =
            ControllerRequest::Heartbeat { broker_id, broker_epoch, metadata_offset, want_shutdown };
        match self.request(request).0 {
            ControllerResponse::Heartbeat(result) => result,
            other => panic!("{other:?}"),
        }
    }

    fn epoch(&self, broker_id: BrokerId) -> i64 {
        self.image().brokers[&broker_id].broker_epoch
    }

    fn create(&mut self, name: &str, partitions: u32, replication_factor: u16) -> Result<TopicId, ErrorCode> {
        self.create_with(name, partitions, replication_factor, BTreeMap::new())
    }

    fn create_with(
        &mut self,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicId, ErrorCode> {
        let request =
            ControllerRequest::CreateTopic { name: name.into(), partitions, replication_factor, configs };
        match self.request(request).0 {
            ControllerResponse::CreateTopic(result) => result,
            other => panic!("{other:?}"),
        }
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now = self.now.plus_millis(ms);
    }

    /// Keeps the given brokers' leases alive while time passes beyond the session timeout.
    fn heartbeat_all(&mut self, brokers: &[BrokerId]) {
        for broker in brokers {
            let epoch = self.epoch(*broker);
            self.heartbeat(*broker, epoch, false).unwrap();
        }
    }

    fn timer(&mut self) -> usize {
        let records = self.controller.handle_timer(self.now, self.next_offset);
        let count = records.len();
        self.commit(records);
        count
    }

    fn alter(
        &mut self,
        broker_id: BrokerId,
        topic_id: TopicId,
        new_isr: &[BrokerId],
    ) -> Result<PartitionState, ErrorCode> {
        let state = self.image().partition(topic_id, 0).unwrap().clone();
        let new_isr = new_isr.iter().map(|broker| (*broker, self.epoch(*broker))).collect();
        self.alter_raw(
            broker_id,
            self.epoch(broker_id),
            topic_id,
            state.leader_epoch,
            state.partition_epoch,
            new_isr,
        )
    }

    fn alter_raw(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: TopicId,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<(BrokerId, i64)>,
    ) -> Result<PartitionState, ErrorCode> {
        let request = ControllerRequest::AlterPartition {
            broker_id,
            broker_epoch,
            topic_id,
            partition: 0,
            leader_epoch,
            partition_epoch,
            new_isr,
        };
        match self.request(request).0 {
            ControllerResponse::AlterPartition(result) => result,
            other => panic!("{other:?}"),
        }
    }

    fn state(&self, topic_id: TopicId, partition: u32) -> PartitionState {
        self.image().partition(topic_id, partition).unwrap().clone()
    }
}

#[test]
fn registration_gets_its_offset_as_epoch_and_a_retry_is_idempotent() {
    let mut harness = Harness::new();
    harness.next_offset = 5; // e.g. after a control entry
    assert_eq!(harness.register(1, 11), Ok(5));
    assert!(harness.image().brokers[&1].fenced);
    let (response, records) = harness.request(ControllerRequest::RegisterBroker {
        broker_id: 1,
        incarnation_id: 11,
        endpoints: vec![],
    });
    assert_eq!((response, records), (ControllerResponse::RegisterBroker(Ok(5)), 0));
}

#[test]
fn another_incarnation_waits_for_the_old_lease() {
    let mut harness = Harness::with_brokers(&[1]);
    let old_epoch = harness.epoch(1);
    assert_eq!(harness.register(1, 999), Err(ErrorCode::DuplicateBrokerRegistration));
    harness.advance_ms(SESSION_MS - 1);
    assert_eq!(harness.register(1, 999), Err(ErrorCode::DuplicateBrokerRegistration));
    harness.advance_ms(1);
    let new_epoch = harness.register(1, 999).unwrap();
    assert!(new_epoch > old_epoch);
    let registration = &harness.image().brokers[&1];
    assert_eq!((registration.incarnation_id, registration.fenced), (999, true));
    // The old incarnation's heartbeats are now stale.
    assert_eq!(harness.heartbeat(1, old_epoch, false), Err(ErrorCode::StaleBrokerEpoch));
}

#[test]
fn heartbeats_check_registration_and_unfence_once_caught_up() {
    let mut harness = Harness::new();
    assert_eq!(harness.heartbeat(1, 0, false), Err(ErrorCode::BrokerIdNotRegistered));
    let epoch = harness.register(1, 1).unwrap();
    assert_eq!(harness.heartbeat(1, epoch + 1, false), Err(ErrorCode::StaleBrokerEpoch));
    // Not yet applied its own registration record: stays fenced, nothing written.
    let (response, records) = harness.request(ControllerRequest::Heartbeat {
        broker_id: 1,
        broker_epoch: epoch,
        metadata_offset: epoch,
        want_shutdown: false,
    });
    assert_eq!(
        response,
        ControllerResponse::Heartbeat(Ok(HeartbeatReply { fenced: true, shutdown_ready: false }))
    );
    assert_eq!(records, 0);
    let reply = harness.heartbeat_at(1, epoch, epoch + 1, false).unwrap();
    assert!(!reply.fenced);
    assert!(!harness.image().brokers[&1].fenced);
    assert_eq!(
        harness.log.last().unwrap().1,
        MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: epoch }
    );
}

#[test]
fn create_topic_validates_and_spreads_replicas_and_leaders() {
    let mut harness = Harness::with_brokers(&[1, 2, 3]);
    for name in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
        assert_eq!(harness.create(name, 1, 1), Err(ErrorCode::InvalidTopic), "{name:?}");
    }
    assert!(is_legal_topic_name(&"x".repeat(249)));
    assert_eq!(harness.create("t", 0, 1), Err(ErrorCode::InvalidPartitions));
    assert_eq!(harness.create("t", 10_001, 1), Err(ErrorCode::InvalidPartitions));
    assert_eq!(harness.create("t", 1, 0), Err(ErrorCode::InvalidReplicationFactor));
    assert_eq!(harness.create("t", 1, 4), Err(ErrorCode::InvalidReplicationFactor));
    let bad_config = BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "maybe".to_string())]);
    assert_eq!(harness.create_with("t", 1, 1, bad_config), Err(ErrorCode::InvalidRequest));
    assert!(harness.log.len() == 6, "refused requests write nothing");

    let topic_id = harness.create("my.topic", 6, 3).unwrap();
    assert_eq!(harness.create("my.topic", 1, 1), Err(ErrorCode::TopicAlreadyExists));
    assert_eq!(harness.create("my_topic", 1, 1), Err(ErrorCode::InvalidTopic), "collides in metric names");
    let topic = &harness.image().topics[&topic_id];
    assert_eq!(harness.image().topics_by_name["my.topic"], topic_id);
    let mut leaders = BTreeMap::<BrokerId, u32>::new();
    for state in topic.partitions.values() {
        assert_eq!(state.replicas.len(), 3);
        assert_eq!(state.isr, state.replicas);
        assert_eq!(state.leader, Some(state.replicas[0]));
        assert_eq!((state.leader_epoch, state.partition_epoch), (0, 0));
        *leaders.entry(state.replicas[0]).or_default() += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
}

#[test]
fn replication_factor_counts_only_eligible_brokers() {
    let mut harness = Harness::with_brokers(&[1, 2, 3]);
    harness.advance_ms(SESSION_MS);
    harness.heartbeat_all(&[1, 2]);
    assert_eq!(harness.timer(), 1, "broker 3 fenced");
    assert_eq!(harness.create("t", 1, 3), Err(ErrorCode::InvalidReplicationFactor));
    let topic_id = harness.create("t", 4, 2).unwrap();
    for state in harness.image().topics[&topic_id].partitions.values() {
        assert!(!state.replicas.contains(&3));
    }
}

#[test]
fn delete_topic_removes_it_or_says_unknown() {
    let mut harness = Harness::with_brokers(&[1]);
    let request = ControllerRequest::DeleteTopic { name: "t".into() };
    assert_eq!(
        harness.request(request.clone()).0,
        ControllerResponse::DeleteTopic(Err(ErrorCode::UnknownTopicOrPartition))
    );
    let topic_id = harness.create("t", 2, 1).unwrap();
    assert_eq!(harness.request(request).0, ControllerResponse::DeleteTopic(Ok(topic_id)));
    assert!(harness.image().topics.is_empty() && harness.image().topics_by_name.is_empty());
}

#[test]
fn create_partitions_grows_a_topic_and_refuses_shrinking() {
    let mut harness = Harness::with_brokers(&[1, 2, 3]);
    let grow = |count| ControllerRequest::CreatePartitions { name: "t".into(), count };
    assert_eq!(
        harness.request(grow(2)).0,
        ControllerResponse::CreatePartitions(Err(ErrorCode::UnknownTopicOrPartition))
    );
    let topic_id = harness.create("t", 2, 2).unwrap();
    let written = harness.log.len();
    for count in [0, 1, 2, PARTITIONS_MAX + 1] {
        assert_eq!(
            harness.request(grow(count)).0,
            ControllerResponse::CreatePartitions(Err(ErrorCode::InvalidPartitions)),
            "count {count}"
        );
    }
    assert_eq!(harness.log.len(), written, "refused requests write nothing");
    assert_eq!(harness.request(grow(5)).0, ControllerResponse::CreatePartitions(Ok(topic_id)));
    let topic = &harness.image().topics[&topic_id];
    assert_eq!(topic.partitions.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    for state in topic.partitions.values() {
        assert_eq!(state.replicas.len(), 2, "new partitions keep the topic's replication factor");
        assert_eq!(state.leader, Some(state.replicas[0]));
    }
}

#[test]
fn alter_configs_validates_and_replaces_or_merges_overrides() {
    let mut harness = Harness::with_brokers(&[1]);
    let alter = |pairs: &[(&str, Option<&str>)], incremental| ControllerRequest::AlterConfigs {
        name: "t".into(),
        configs: pairs.iter().map(|(key, value)| (key.to_string(), value.map(str::to_string))).collect(),
        incremental,
    };
    assert_eq!(
        harness.request(alter(&[], true)).0,
        ControllerResponse::AlterConfigs(Err(ErrorCode::UnknownTopicOrPartition))
    );
    let topic_id = harness.create("t", 1, 1).unwrap();
    let configs = |harness: &Harness| harness.image().topics[&topic_id].configs.clone();
    for bad in [
        alter(&[("cleanup.policy", Some("compact"))], true),
        alter(&[("retention.ms", Some("soon"))], true),
        alter(&[("min.insync.replicas", Some("0"))], false),
        alter(&[("unclean.leader.election.enable", Some("maybe"))], true),
        alter(&[("seedlog.flush.policy", Some("sometimes"))], true),
    ] {
        assert_eq!(harness.request(bad).0, ControllerResponse::AlterConfigs(Err(ErrorCode::InvalidConfig)));
    }
    assert!(configs(&harness).is_empty());

    let ok = ControllerResponse::AlterConfigs(Ok(()));
    assert_eq!(harness.request(alter(&[("retention.ms", Some("1000"))], true)).0, ok);
    assert_eq!(harness.request(alter(&[("segment.bytes", Some("4096"))], true)).0, ok);
    assert_eq!(configs(&harness).len(), 2, "incremental keeps the other override");
    let written = harness.log.len();
    assert_eq!(harness.request(alter(&[("segment.bytes", Some("4096"))], true)).0, ok);
    assert_eq!(harness.log.len(), written, "an unchanged set writes nothing");
    assert_eq!(harness.request(alter(&[("retention.ms", None)], true)).0, ok);
    assert_eq!(configs(&harness), BTreeMap::from([("segment.bytes".to_string(), "4096".to_string())]));
    assert_eq!(harness.request(alter(&[("max.message.bytes", Some("100"))], false)).0, ok);
    assert_eq!(
        configs(&harness),
        BTreeMap::from([("max.message.bytes".to_string(), "100".to_string())]),
        "AlterConfigs replaces the whole set"
    );
}

#[test]
fn lease_expiry_fences_and_moves_leadership_within_the_isr() {
    let mut harness = Harness::with_brokers(&[1, 2, 3]);
    let topic_id = harness.create("t", 3, 3).unwrap();
    let led_by_1: Vec<u32> = harness.image().topics[&topic_id]
        .partitions
        .iter()
        .filter(|(_, state)| state.leader == Some(1))
        .map(|(partition, _)| *partition)
        .collect();
    assert_eq!(led_by_1.len(), 1);
    let before = harness.state(topic_id, led_by_1[0]);

    assert_eq!(harness.controller.next_deadline(), Some(Time::ZERO.plus_millis(SESSION_MS)));
    harness.advance_ms(SESSION_MS - 1);
    assert_eq!(harness.timer(), 0, "no lease expired yet");
    harness.heartbeat_all(&[2, 3]);
    assert_eq!(harness.controller.next_deadline(), Some(Time::ZERO.plus_millis(SESSION_MS)));
    harness.advance_ms(1);
    assert!(harness.timer() > 0);
    assert!(harness.image().brokers[&1].fenced);

    let after = harness.state(topic_id, led_by_1[0]);
    let expected_leader = before.replicas.iter().copied().find(|broker| *broker != 1);
    assert_eq!(after.leader, expected_leader, "the next replica in preference order leads");
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    for state in harness.image().topics[&topic_id].partitions.values() {
        assert!(!state.isr.contains(&1), "fenced broker left every ISR: {state:?}");
        assert_ne!(state.leader, Some(1));
    }
    // Broker 1's lease no longer sets a deadline; the others' do.
    assert_eq!(harness.controller.next_deadline(), Some(Time::ZERO.plus_millis(2 * SESSION_MS - 1)));
    assert_eq!(harness.timer(), 0, "fencing happens once");
}

#[test]
fn the_last_isr_member_stays_and_the_partition_goes_leaderless() {
    let mut harness = Harness::with_brokers(&[1, 2]);
    let topic_id = harness.create("t", 1, 1).unwrap();
    let only = harness.state(topic_id, 0).replicas[0];
    let other = 3 - only;
    harness.advance_ms(SESSION_MS);
    harness.heartbeat_all(&[other]);
    harness.timer();
    let state = harness.state(topic_id, 0);
    assert_eq!(
        (state.leader, state.isr.clone(), state.leader_epoch, state.partition_epoch),
        (None, vec![only], 1, 1)
    );

    // It comes back (same incarnation, its registration is fenced) and catches up: it leads again.
    let epoch = harness.epoch(only);
    let reply = harness.heartbeat(only, epoch, false).unwrap();
    assert!(!reply.fenced);
    let state = harness.state(topic_id, 0);
    assert_eq!((state.leader, state.leader_epoch, state.partition_epoch), (Some(only), 2, 2));
}

#[test]
fn unclean_election_takes_a_live_replica_outside_the_isr() {
    let mut harness = Harness::with_brokers(&[1, 2]);
    let unclean = BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string())]);
    let topic_id = harness.create_with("t", 1, 2, unclean).unwrap();
    let state = harness.state(topic_id, 0);
    let (first, second) = (state.replicas[0], state.replicas[1]);
    // The follower leaves the ISR (leader's AlterPartition), then the leader's lease ends.
    harness.alter(first, topic_id, &[first]).unwrap();
    harness.advance_ms(SESSION_MS);
    harness.heartbeat_all(&[second]);
    harness.timer();
    let state = harness.state(topic_id, 0);
    assert_eq!((state.leader, state.isr.clone()), (Some(second), vec![second]));
    assert_eq!(state.leader_epoch, 1);

    // Without the config the same story leaves the partition leaderless.
    let mut harness = Harness::with_brokers(&[1, 2]);
    let topic_id = harness.create("t", 1, 2).unwrap();
    let state = harness.state(topic_id, 0);
    let (first, second) = (state.replicas[0], state.replicas[1]);
    harness.alter(first, topic_id, &[first]).unwrap();
    harness.advance_ms(SESSION_MS);
    harness.heartbeat_all(&[second]);
    harness.timer();
    let state = harness.state(topic_id, 0);
    assert_eq!((state.leader, state.isr), (None, vec![first]));
}

#[test]
fn controlled_shutdown_moves_leadership_then_reports_ready() {
    let mut harness = Harness::with_brokers(&[1, 2, 3]);
    let topic_id = harness.create("t", 3, 3).unwrap();
    let single = harness.create("single", 3, 1).unwrap();
    let epoch = harness.epoch(2);
    let offset_before = harness.next_offset;
    // The broker has not applied the shutdown's records yet: not ready.
    let reply = harness.heartbeat_at(2, epoch, offset_before, true).unwrap();
    assert!(!reply.shutdown_ready && !reply.fenced);
    assert!(harness.next_offset > offset_before);
    assert!(harness.image().brokers[&2].in_controlled_shutdown);
    for state in harness.image().topics[&topic_id].partitions.values() {
        assert_ne!(state.leader, Some(2));
        assert!(!state.isr.contains(&2));
        assert!(state.leader.is_some());
    }
    for state in harness.image().topics[&single].partitions.values() {
        if state.replicas == vec![2] {
            assert_eq!((state.leader, state.isr.clone()), (None, vec![2]), "the last member stays");
        }
    }
    let reply = harness.heartbeat(2, epoch, true).unwrap();
    assert!(reply.shutdown_ready);
    // Ready means stopping now (Kafka's SHUTDOWN_NOW): fenced, so no session holds the id.
    assert!(reply.fenced && harness.image().brokers[&2].fenced);
    // A shutting-down broker is neither unfenced again nor elected.
    assert!(!harness.image().is_eligible(2));
    assert_eq!(harness.create("u", 1, 3), Err(ErrorCode::InvalidReplicationFactor));
    // Its next incarnation registers at once, its old lease still running.
    assert!(harness.controller.lease_expiry(2).is_some_and(|expiry| expiry > harness.now));
    let new_epoch = harness.register(2, 22).unwrap();
    assert!(new_epoch > epoch);
}

#[test]
fn a_failover_controller_finishes_a_controlled_shutdown() {
    let mut harness = Harness::with_brokers(&[1, 2]);
    harness.create("t", 2, 2).unwrap();
    let epoch = harness.epoch(1);
    harness.heartbeat_at(1, epoch, 0, true).unwrap();
    let image = harness.image().clone();
    let config = ControllerConfig { broker_session_timeout_ms: SESSION_MS, default_replication_factor: 1 };
    harness.controller = Controller::activate(harness.now, image.clone(), config);
    let reply = harness.heartbeat_at(1, epoch, image.end_offset - 1, true).unwrap();
    assert!(!reply.shutdown_ready, "must apply everything the old controller wrote");
    let reply = harness.heartbeat_at(1, epoch, image.end_offset, true).unwrap();
    assert!(reply.shutdown_ready);
}

#[test]
fn alter_partition_checks_every_guard() {
    let mut harness = Harness::with_brokers(&[1, 2, 3]);
    let topic_id = harness.create("t", 1, 3).unwrap();
    let state = harness.state(topic_id, 0);
    let leader = state.leader.unwrap();
    let follower = state.replicas[1];
    let isr_of = |harness: &Harness, brokers: &[BrokerId]| -> Vec<(BrokerId, i64)> {
        brokers.iter().map(|broker| (*broker, harness.epoch(*broker))).collect()
    };
    let shrunk: Vec<BrokerId> = state.replicas.iter().copied().filter(|broker| *broker != follower).collect();
    let epoch = harness.epoch(leader);
    let good = isr_of(&harness, &shrunk);
    let alter = |harness: &mut Harness,
                 broker,
                 broker_epoch,
                 leader_epoch,
                 partition_epoch,
                 isr: Vec<(BrokerId, i64)>| {
        harness.alter_raw(broker, broker_epoch, topic_id, leader_epoch, partition_epoch, isr)
    };
    assert_eq!(alter(&mut harness, leader, epoch + 1, 0, 0, good.clone()), Err(ErrorCode::StaleBrokerEpoch));
    assert_eq!(alter(&mut harness, 9, 0, 0, 0, good.clone()), Err(ErrorCode::StaleBrokerEpoch));
    assert_eq!(
        harness.alter_raw(leader, epoch, id(1), 0, 0, good.clone()),
        Err(ErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(alter(&mut harness, leader, epoch, -1, 0, good.clone()), Err(ErrorCode::FencedLeaderEpoch));
    assert_eq!(alter(&mut harness, leader, epoch, 1, 0, good.clone()), Err(ErrorCode::NotController));
    let follower_epoch = harness.epoch(follower);
    assert_eq!(
        alter(&mut harness, follower, follower_epoch, 0, 0, good.clone()),
        Err(ErrorCode::NotLeaderOrFollower)
    );
    assert_eq!(alter(&mut harness, leader, epoch, 0, 1, good.clone()), Err(ErrorCode::InvalidUpdateVersion));
    assert_eq!(alter(&mut harness, leader, epoch, 0, 0, vec![]), Err(ErrorCode::InvalidRequest));
    let without_leader = isr_of(&harness, &[follower]);
    assert_eq!(alter(&mut harness, leader, epoch, 0, 0, without_leader), Err(ErrorCode::InvalidRequest));
    let twice = isr_of(&harness, &[leader, leader]);
    assert_eq!(alter(&mut harness, leader, epoch, 0, 0, twice), Err(ErrorCode::InvalidRequest));
    let mut stale_member = good.clone();
    stale_member[1].1 += 1;
    assert_eq!(alter(&mut harness, leader, epoch, 0, 0, stale_member), Err(ErrorCode::IneligibleReplica));
    assert_eq!(
        harness
            .log
            .iter()
            .filter(|(_, record)| matches!(record, MetadataRecord::PartitionChange { .. }))
            .count(),
        0
    );

    // Shrink, then an unchanged ISR writes nothing, then expand back.
    let shrunk_state = alter(&mut harness, leader, epoch, 0, 0, good.clone()).unwrap();
    assert_eq!(
        (shrunk_state.isr.clone(), shrunk_state.leader_epoch, shrunk_state.partition_epoch),
        (shrunk.clone(), 0, 1)
    );
    let (response, records) = harness.request(ControllerRequest::AlterPartition {
        broker_id: leader,
        broker_epoch: epoch,
        topic_id,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 1,
        new_isr: good,
    });
    assert_eq!((response, records), (ControllerResponse::AlterPartition(Ok(shrunk_state)), 0));
    // A fenced broker cannot be added back.
    let others: Vec<BrokerId> = [1, 2, 3].into_iter().filter(|broker| *broker != follower).collect();
    harness.advance_ms(SESSION_MS);
    harness.heartbeat_all(&others);
    harness.timer();
    let full = isr_of(&harness, &state.replicas);
    assert_eq!(alter(&mut harness, leader, epoch, 0, 1, full), Err(ErrorCode::IneligibleReplica));
}

#[test]
fn requests_and_timers_write_nothing_when_nothing_changes() {
    let mut harness = Harness::with_brokers(&[1, 2]);
    let before = harness.next_offset;
    harness.heartbeat_all(&[1, 2]);
    assert_eq!(harness.timer(), 0);
    assert_eq!(harness.next_offset, before);
}

// ---- property: random request and timer sequences keep the image valid ----

#[derive(Clone, Debug)]
enum Step {
    Register { broker: BrokerId, incarnation: u8 },
    Heartbeat { broker: BrokerId, stale: bool, caught_up: bool, want_shutdown: bool },
    Advance { ms: u64 },
    Timer,
    Create { name: u8, partitions: u32, replication_factor: u16, unclean: bool },
    Delete { name: u8 },
    Alter { topic: u8, partition: u32, members: u8, stale_epochs: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..=5u32, 0..3u8).prop_map(|(broker, incarnation)| Step::Register { broker, incarnation }),
        (1..=5u32, prop::bool::weighted(0.1), prop::bool::weighted(0.8), prop::bool::weighted(0.1)).prop_map(
            |(broker, stale, caught_up, want_shutdown)| Step::Heartbeat {
                broker,
                stale,
                caught_up,
                want_shutdown
            }
        ),
        (1..1_500u64).prop_map(|ms| Step::Advance { ms }),
        Just(Step::Timer),
        (0..4u8, 0..5u32, 0..4u16, any::<bool>()).prop_map(
            |(name, partitions, replication_factor, unclean)| {
                Step::Create { name, partitions, replication_factor, unclean }
            }
        ),
        (0..4u8).prop_map(|name| Step::Delete { name }),
        (0..4u8, 0..4u32, any::<u8>(), prop::bool::weighted(0.1)).prop_map(
            |(topic, partition, members, stale_epochs)| Step::Alter {
                topic,
                partition,
                members,
                stale_epochs
            }
        ),
    ]
}

/// Runs one step against the harness; a follower image applies every record as well.
fn run_step(harness: &mut Harness, step: &Step) {
    match step {
        Step::Register { broker, incarnation } => {
            let _ = harness.register(*broker, u64::from(*broker) * 10 + u64::from(*incarnation));
        }
        Step::Heartbeat { broker, stale, caught_up, want_shutdown } => {
            let epoch =
                harness.image().brokers.get(broker).map_or(0, |registration| registration.broker_epoch);
            let epoch = if *stale { epoch - 1 } else { epoch };
            let offset = if *caught_up { harness.next_offset } else { 0 };
            let _ = harness.heartbeat_at(*broker, epoch, offset, *want_shutdown);
        }
        Step::Advance { ms } => harness.advance_ms(*ms),
        Step::Timer => {
            harness.timer();
        }
        Step::Create { name, partitions, replication_factor, unclean } => {
            let configs = if *unclean {
                BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string())])
            } else {
                BTreeMap::new()
            };
            let _ = harness.create_with(&format!("topic-{name}"), *partitions, *replication_factor, configs);
        }
        Step::Delete { name } => {
            let _ = harness.request(ControllerRequest::DeleteTopic { name: format!("topic-{name}") });
        }
        Step::Alter { topic, partition, members, stale_epochs } => {
            let Some(topic_id) = harness.image().topics_by_name.get(&format!("topic-{topic}")).copied()
            else {
                return;
            };
            let Some(state) = harness.image().partition(topic_id, *partition).cloned() else { return };
            let Some(leader) = state.leader else { return };
            let mut isr: Vec<(BrokerId, i64)> = state
                .replicas
                .iter()
                .enumerate()
                .filter(|(index, broker)| **broker == leader || members & (1 << index) != 0)
                .map(|(_, broker)| (*broker, harness.epoch(*broker) - i64::from(*stale_epochs)))
                .collect();
            let rotation = usize::from(*members) % isr.len().max(1);
            isr.rotate_left(rotation);
            let request = ControllerRequest::AlterPartition {
                broker_id: leader,
                broker_epoch: harness.epoch(leader),
                topic_id,
                partition: *partition,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
                new_isr: isr,
            };
            let _ = harness.request(request);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_keep_the_image_valid(steps in prop::collection::vec(step(), 1..80)) {
        let mut harness = Harness::new();
        let mut follower = MetadataImage::default();
        let mut applied = 0;
        // (topic, partition) → the highest epochs seen; (topic, partition, leader epoch) → leader.
        let mut epochs: BTreeMap<(TopicId, u32), (i32, i32)> = BTreeMap::new();
        let mut leaders: BTreeMap<(TopicId, u32, i32), Option<BrokerId>> = BTreeMap::new();
        let mut broker_epochs: BTreeMap<BrokerId, i64> = BTreeMap::new();
        for step in &steps {
            run_step(&mut harness, step);
            // Followers applying the same records build the same image.
            for (offset, record) in &harness.log[applied..] {
                follower.apply(*offset, record).unwrap();
            }
            applied = harness.log.len();
            prop_assert_eq!(&follower, harness.image());
            let image = harness.image();
            image.validate().unwrap();
            for (broker, registration) in &image.brokers {
                let previous = broker_epochs.insert(*broker, registration.broker_epoch).unwrap_or(-1);
                prop_assert!(registration.broker_epoch >= previous);
            }
            for (topic_id, topic) in &image.topics {
                for (partition, state) in &topic.partitions {
                    prop_assert!(state.isr.iter().all(|member| state.replicas.contains(member)));
                    if let Some(leader) = state.leader {
                        prop_assert!(state.isr.contains(&leader));
                        prop_assert!(!image.brokers[&leader].fenced, "a fenced broker leads {:?}", state);
                    }
                    let (leader_epoch, partition_epoch) =
                        epochs.insert((*topic_id, *partition), (state.leader_epoch, state.partition_epoch)).unwrap_or((0, 0));
                    prop_assert!(state.leader_epoch >= leader_epoch && state.partition_epoch >= partition_epoch);
                    let seen = leaders.entry((*topic_id, *partition, state.leader_epoch)).or_insert(state.leader);
                    prop_assert_eq!(*seen, state.leader, "two leaders in one leader epoch");
                }
            }
        }
        let decoded = MetadataImage::decode(&harness.image().encode()).unwrap();
        prop_assert_eq!(&decoded, harness.image());
    }
}
