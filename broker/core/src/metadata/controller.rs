//! The active controller's decisions (KRaft's QuorumController, reduced to pure functions).
//!
//! The controller holds the *latest* image — every committed record plus the records it proposed
//! itself and replayed, committed or not — and one in-memory lease per broker. A request or a timer
//! becomes a [`Decision`]: the records to propose as one batch and, for a request, the answer. The
//! controller does not change its image while deciding: the node proposes the records and then
//! [`Controller::replay`]s them at the offsets the quorum gave them. Each decision is checked while
//! it is built, on a scratch copy of the image, so a rule of the image the controller breaks is a
//! panic here (a bug), never a record in the log.
//!
//! Rules and the error code that guards each:
//! - **RegisterBroker**: the same incarnation as the current registration is a retry: the existing
//!   epoch comes back and nothing is written. Another incarnation while the current registration's
//!   lease is still live and it is unfenced → `DUPLICATE_BROKER_REGISTRATION` (Kafka's rule: the
//!   old process may still be running; a restarted broker retries and succeeds once the old lease
//!   expired; a fenced registration has no session). Otherwise a
//!   `RegisterBroker` record whose broker epoch is its own offset; the broker starts fenced.
//! - **Heartbeat**: unknown broker → `BROKER_ID_NOT_REGISTERED`; another epoch → `STALE_BROKER_EPOCH`.
//!   Otherwise the lease is renewed. A fenced broker that applied its own registration
//!   (`metadata_offset > broker_epoch`) and is not shutting down is unfenced, and leaderless
//!   partitions it can lead get it as leader. `want_shutdown` starts a controlled shutdown:
//!   `BrokerShuttingDown`, every leadership moves to another eligible ISR member (or to none), and
//!   the broker leaves every ISR it is not the last member of. `shutdown_ready` once it leads
//!   nothing, is only in ISRs as last member, and has applied the shutdown's records; then it is
//!   also fenced (Kafka's `SHUTDOWN_NOW`), so its next incarnation registers at once.
//! - **Lease expiry** (timer): `FenceBroker`, and the same moves as a controlled shutdown.
//! - **CreateTopic**: bad name → `INVALID_TOPIC_EXCEPTION` (Kafka's rules: 1..=249 characters of
//!   `[a-zA-Z0-9._-]`, not `.` or `..`, no collision with an existing name that differs only in
//!   `.` versus `_`); existing name → `TOPIC_ALREADY_EXISTS`; 0 or more than [`PARTITIONS_MAX`]
//!   partitions → `INVALID_PARTITIONS`; replication factor 0 or more than the eligible brokers →
//!   `INVALID_REPLICATION_FACTOR`; an `unclean.leader.election.enable` that is not `true`/`false` →
//!   `INVALID_REQUEST`. Otherwise `Topic` and one `Partition` per partition (see `placement`).
//! - **DeleteTopic**: unknown name → `UNKNOWN_TOPIC_OR_PARTITION`; otherwise `RemoveTopic`.
//! - **CreatePartitions**: unknown name → `UNKNOWN_TOPIC_OR_PARTITION`; a count not above the
//!   current one, or above [`PARTITIONS_MAX`] → `INVALID_PARTITIONS`; fewer eligible brokers than
//!   the topic's replication factor → `INVALID_REPLICATION_FACTOR`. Otherwise one `Partition` per
//!   new partition, placed as for a new topic.
//! - **AlterConfigs**: unknown name → `UNKNOWN_TOPIC_OR_PARTITION`; a key outside
//!   `protocol::topic_config::ALL` or a value not of the key's type → `INVALID_CONFIG`. Otherwise
//!   a `TopicConfig` with the new overrides (nothing when they do not change).
//! - **AlterPartition** (a leader changing its ISR), checked in this order: proposer not registered
//!   with that epoch → `STALE_BROKER_EPOCH`; unknown partition → `UNKNOWN_TOPIC_OR_PARTITION`; an
//!   older leader epoch → `FENCED_LEADER_EPOCH` (a newer one → `NOT_CONTROLLER`: this controller is
//!   behind); proposer not the leader → `NOT_LEADER_OR_FOLLOWER`; another partition epoch →
//!   `INVALID_UPDATE_VERSION`; an ISR that is empty, has duplicates, leaves the replicas or lacks
//!   the leader → `INVALID_REQUEST`; a member whose broker epoch is not its registration's, or that
//!   is fenced or shutting down → `INELIGIBLE_REPLICA`. Otherwise a `PartitionChange` with the
//!   partition epoch + 1 (leader epoch unchanged); an unchanged ISR writes nothing.
//!
//! Leader election (fence, shutdown, unfence) keeps an eligible current leader; otherwise takes
//! the first replica, in replica order, that is in the ISR and eligible; otherwise, if the topic
//! sets `unclean.leader.election.enable=true`, the first eligible replica with ISR = [it] (data
//! can be lost: Kafka's trade-off); otherwise no leader.

use std::collections::BTreeMap;

use rand_core::RngCore;

use super::image::{ImageError, MetadataImage, PartitionState};
use super::placement::assign_replicas;
use super::records::{BrokerId, Endpoint, MetadataRecord, TopicId};
use crate::env::Time;
use crate::protocol::ErrorCode;

/// The most partitions one CreateTopic may ask for (one batch carries them all).
pub const PARTITIONS_MAX: u32 = 10_000;
/// Kafka's longest legal topic name.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// The topic config that allows electing a replica outside the ISR.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// Requests to the active controller (KRaft's BrokerRegistration, BrokerHeartbeat, AlterPartition,
/// CreateTopics, DeleteTopics). The node glue answers them once the records they produced commit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerRequest {
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: u64,
        endpoints: Vec<Endpoint>,
    },
    Heartbeat {
        broker_id: BrokerId,
        broker_epoch: i64,
        /// The broker's applied metadata offset (end, exclusive): it is unfenced once caught up.
        metadata_offset: i64,
        want_shutdown: bool,
    },
    AlterPartition {
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: TopicId,
        partition: u32,
        leader_epoch: i32,
        partition_epoch: i32,
        /// The proposed ISR, each member with the broker epoch the leader saw it fetch with.
        new_isr: Vec<(BrokerId, i64)>,
    },
    CreateTopic {
        name: String,
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grow a topic to `count` partitions (Kafka's CreatePartitions: a count, not an increment).
    CreatePartitions {
        name: String,
        count: u32,
    },
    /// Change a topic's configs. `incremental` (IncrementalAlterConfigs): `Some` sets a key,
    /// `None` deletes it, keys not named keep their values. Not incremental (AlterConfigs): the
    /// `Some` entries become the whole set of overrides.
    AlterConfigs {
        name: String,
        configs: BTreeMap<String, Option<String>>,
        incremental: bool,
    },
}

impl ControllerRequest {
    /// The answer of this request's kind that carries `error`.
    pub fn error_response(&self, error: ErrorCode) -> ControllerResponse {
        match self {
            ControllerRequest::RegisterBroker { .. } => ControllerResponse::RegisterBroker(Err(error)),
            ControllerRequest::Heartbeat { .. } => ControllerResponse::Heartbeat(Err(error)),
            ControllerRequest::AlterPartition { .. } => ControllerResponse::AlterPartition(Err(error)),
            ControllerRequest::CreateTopic { .. } => ControllerResponse::CreateTopic(Err(error)),
            ControllerRequest::DeleteTopic { .. } => ControllerResponse::DeleteTopic(Err(error)),
            ControllerRequest::CreatePartitions { .. } => ControllerResponse::CreatePartitions(Err(error)),
            ControllerRequest::AlterConfigs { .. } => ControllerResponse::AlterConfigs(Err(error)),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerResponse {
    RegisterBroker(Result<i64, ErrorCode>),
    Heartbeat(Result<HeartbeatReply, ErrorCode>),
    AlterPartition(Result<PartitionState, ErrorCode>),
    CreateTopic(Result<TopicId, ErrorCode>),
    DeleteTopic(Result<TopicId, ErrorCode>),
    CreatePartitions(Result<TopicId, ErrorCode>),
    AlterConfigs(Result<(), ErrorCode>),
}

impl ControllerResponse {
    /// The answer of the same kind carrying `error`.
    pub fn with_error(&self, error: ErrorCode) -> ControllerResponse {
        match self {
            ControllerResponse::RegisterBroker(_) => ControllerResponse::RegisterBroker(Err(error)),
            ControllerResponse::Heartbeat(_) => ControllerResponse::Heartbeat(Err(error)),
            ControllerResponse::AlterPartition(_) => ControllerResponse::AlterPartition(Err(error)),
            ControllerResponse::CreateTopic(_) => ControllerResponse::CreateTopic(Err(error)),
            ControllerResponse::DeleteTopic(_) => ControllerResponse::DeleteTopic(Err(error)),
            ControllerResponse::CreatePartitions(_) => ControllerResponse::CreatePartitions(Err(error)),
            ControllerResponse::AlterConfigs(_) => ControllerResponse::AlterConfigs(Err(error)),
        }
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatReply {
    pub fenced: bool,
    /// Controlled shutdown: the broker leads nothing any more and may stop.
    pub shutdown_ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker whose heartbeats stop for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `default.replication.factor`: kept for the admin path; CreateTopic always names its factor.
    pub default_replication_factor: u16,
}

/// What the active controller decided for one request or timer: records to propose, and (for a
/// request) the answer to give once they are committed — or at once, when nothing is proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub response: Option<ControllerResponse>,
}

/// The active controller's logic: pure decisions over the latest image (committed plus its own
/// uncommitted records) and the in-memory broker leases.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    image: MetadataImage,
    /// When each broker's session ends unless it heartbeats (or registers) again.
    leases: BTreeMap<BrokerId, Time>,
    /// A broker in controlled shutdown may stop once it has applied the metadata log up to here.
    shutdown_offsets: BTreeMap<BrokerId, i64>,
}

impl Controller {
    /// Becoming active: starts from the committed image; every broker's lease starts at `now`.
    pub fn activate(now: Time, image: MetadataImage, config: ControllerConfig) -> Controller {
        let expiry = now.plus_millis(config.broker_session_timeout_ms);
        let leases = image.brokers.keys().map(|broker| (*broker, expiry)).collect();
        // A shutdown begun under the previous controller: its records are all in this image.
        let shutdown_offsets = image
            .brokers
            .values()
            .filter(|registration| registration.in_controlled_shutdown)
            .map(|registration| (registration.broker_id, image.end_offset))
            .collect();
        Controller { config, image, leases, shutdown_offsets }
    }

    /// The latest image: committed records plus this controller's own replayed proposals.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// When the broker's session ends unless it heartbeats again.
    pub fn lease_expiry(&self, broker_id: BrokerId) -> Option<Time> {
        self.leases.get(&broker_id).copied()
    }

    /// `rng` draws topic ids. `next_offset` is where the first proposed record will land (for
    /// broker epochs); record `i` of the decision lands at `next_offset + i`.
    pub fn handle_request(
        &mut self,
        now: Time,
        rng: &mut dyn RngCore,
        next_offset: i64,
        request: &ControllerRequest,
    ) -> Decision {
        let mut changes = Changes::new(&self.image, next_offset);
        let response = match request {
            ControllerRequest::RegisterBroker { broker_id, incarnation_id, endpoints } => {
                let result =
                    register_broker(&mut changes, &self.leases, now, *broker_id, *incarnation_id, endpoints);
                if result.is_ok() {
                    self.leases.insert(*broker_id, now.plus_millis(self.config.broker_session_timeout_ms));
                    self.shutdown_offsets.remove(broker_id);
                }
                ControllerResponse::RegisterBroker(result)
            }
            ControllerRequest::Heartbeat { broker_id, broker_epoch, metadata_offset, want_shutdown } => {
                let result = heartbeat(
                    &mut changes,
                    &mut self.shutdown_offsets,
                    *broker_id,
                    *broker_epoch,
                    *metadata_offset,
                    *want_shutdown,
                );
                if result.is_ok() {
                    self.leases.insert(*broker_id, now.plus_millis(self.config.broker_session_timeout_ms));
                }
                ControllerResponse::Heartbeat(result)
            }
            ControllerRequest::AlterPartition {
                broker_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => ControllerResponse::AlterPartition(alter_partition(
                &mut changes,
                AlterPartition {
                    broker_id: *broker_id,
                    broker_epoch: *broker_epoch,
                    topic_id: *topic_id,
                    partition: *partition,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    new_isr,
                },
            )),
            ControllerRequest::CreateTopic { name, partitions, replication_factor, configs } => {
                ControllerResponse::CreateTopic(create_topic(
                    &mut changes,
                    rng,
                    name,
                    *partitions,
                    *replication_factor,
                    configs,
                ))
            }
            ControllerRequest::DeleteTopic { name } => {
                ControllerResponse::DeleteTopic(match changes.image().topics_by_name.get(name) {
                    None => Err(ErrorCode::UnknownTopicOrPartition),
                    Some(topic_id) => {
                        let topic_id = *topic_id;
                        changes.push(MetadataRecord::RemoveTopic { topic_id });
                        Ok(topic_id)
                    }
                })
            }
            ControllerRequest::CreatePartitions { name, count } => {
                ControllerResponse::CreatePartitions(create_partitions(&mut changes, rng, name, *count))
            }
            ControllerRequest::AlterConfigs { name, configs, incremental } => {
                ControllerResponse::AlterConfigs(alter_configs(&mut changes, name, configs, *incremental))
            }
        };
        Decision { records: changes.records, response: Some(response) }
    }

    /// Lease expiry: fence brokers whose heartbeats stopped, and move their leaderships.
    pub fn handle_timer(&mut self, now: Time, next_offset: i64) -> Vec<MetadataRecord> {
        let expired: Vec<BrokerId> = self
            .leases
            .iter()
            .filter(|(broker, expiry)| **expiry <= now && self.is_unfenced(**broker))
            .map(|(broker, _)| *broker)
            .collect();
        let mut changes = Changes::new(&self.image, next_offset);
        for broker_id in expired {
            let Some(registration) = changes.image().brokers.get(&broker_id) else { continue };
            let broker_epoch = registration.broker_epoch;
            changes.push(MetadataRecord::FenceBroker { broker_id, broker_epoch });
            move_away(&mut changes, broker_id);
        }
        changes.records
    }

    /// The next lease expiry of an unfenced broker: the next time [`Controller::handle_timer`] has
    /// work. Fenced brokers' leases decide nothing but re-registration, so they set no deadline.
    pub fn next_deadline(&self) -> Option<Time> {
        self.leases.iter().filter(|(broker, _)| self.is_unfenced(**broker)).map(|(_, expiry)| *expiry).min()
    }

    /// Records it proposed were appended at these offsets: fold them into the latest image.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ImageError> {
        self.image.apply(offset, record)
    }

    fn is_unfenced(&self, broker_id: BrokerId) -> bool {
        self.image.brokers.get(&broker_id).is_some_and(|registration| !registration.fenced)
    }
}

/// The records of one decision, applied as they are made to a scratch copy of the image (cloned
/// on the first record), so each later choice sees the earlier ones.
struct Changes<'a> {
    base: &'a MetadataImage,
    scratch: Option<MetadataImage>,
    records: Vec<MetadataRecord>,
    next_offset: i64,
}

impl<'a> Changes<'a> {
    fn new(base: &'a MetadataImage, next_offset: i64) -> Changes<'a> {
        Changes { base, scratch: None, records: Vec::new(), next_offset }
    }

    fn image(&self) -> &MetadataImage {
        self.scratch.as_ref().unwrap_or(self.base)
    }

    /// The offset the next record will land at.
    fn offset(&self) -> i64 {
        self.next_offset + self.records.len() as i64
    }

    fn push(&mut self, record: MetadataRecord) {
        let offset = self.offset();
        let scratch = self.scratch.get_or_insert_with(|| self.base.clone());
        if let Err(error) = scratch.apply(offset, &record) {
            // Only a bug in this module can get here: every record is built from the image it
            // applies to. Proposing it would halt every node that applies it.
            panic!("the controller built a record its own image refuses: {record:?}: {error}");
        }
        self.records.push(record);
    }
}

fn register_broker(
    changes: &mut Changes<'_>,
    leases: &BTreeMap<BrokerId, Time>,
    now: Time,
    broker_id: BrokerId,
    incarnation_id: u64,
    endpoints: &[Endpoint],
) -> Result<i64, ErrorCode> {
    if let Some(existing) = changes.image().brokers.get(&broker_id) {
        if existing.incarnation_id == incarnation_id {
            return Ok(existing.broker_epoch);
        }
        // A fenced registration has no session (Kafka's `hasValidSession`): a broker that
        // finished its controlled shutdown, or whose lease already ran out, is not running.
        let lease_live = leases.get(&broker_id).is_some_and(|expiry| *expiry > now);
        if lease_live && !existing.fenced {
            return Err(ErrorCode::DuplicateBrokerRegistration);
        }
    }
    let broker_epoch = changes.offset();
    changes.push(MetadataRecord::RegisterBroker {
        broker_id,
        broker_epoch,
        incarnation_id,
        endpoints: endpoints.to_vec(),
    });
    // The previous incarnation may have led partitions (it was fenced or its lease ran out; either
    // way a new registration is fenced): move them now rather than wait for a heartbeat.
    move_away(changes, broker_id);
    Ok(broker_epoch)
}

fn heartbeat(
    changes: &mut Changes<'_>,
    shutdown_offsets: &mut BTreeMap<BrokerId, i64>,
    broker_id: BrokerId,
    broker_epoch: i64,
    metadata_offset: i64,
    want_shutdown: bool,
) -> Result<HeartbeatReply, ErrorCode> {
    let Some(registration) = changes.image().brokers.get(&broker_id) else {
        return Err(ErrorCode::BrokerIdNotRegistered);
    };
    if registration.broker_epoch != broker_epoch {
        return Err(ErrorCode::StaleBrokerEpoch);
    }
    let (fenced, in_controlled_shutdown) = (registration.fenced, registration.in_controlled_shutdown);
    if want_shutdown {
        if !fenced && !in_controlled_shutdown {
            changes.push(MetadataRecord::BrokerShuttingDown { broker_id, broker_epoch });
        }
        if !fenced || in_controlled_shutdown {
            move_away(changes, broker_id);
        }
        if !changes.records.is_empty() {
            shutdown_offsets.insert(broker_id, changes.offset());
        }
    } else if fenced && !in_controlled_shutdown && metadata_offset > broker_epoch {
        changes.push(MetadataRecord::UnfenceBroker { broker_id, broker_epoch });
        elect_leaderless(changes, broker_id);
    }
    let image = changes.image();
    let shutdown_ready = want_shutdown
        && metadata_offset >= shutdown_offsets.get(&broker_id).copied().unwrap_or(0)
        && !holds_movable_duty(image, broker_id);
    if shutdown_ready && image.brokers.get(&broker_id).is_some_and(|registration| !registration.fenced) {
        // Kafka's SHUTDOWN_NOW: the broker stops now, so it is fenced, and its next incarnation
        // may register at once instead of waiting out this one's lease.
        changes.push(MetadataRecord::FenceBroker { broker_id, broker_epoch });
    }
    let fenced = changes.image().brokers.get(&broker_id).is_none_or(|registration| registration.fenced);
    Ok(HeartbeatReply { fenced, shutdown_ready })
}

/// Whether the broker still leads a partition or sits in an ISR it could leave.
fn holds_movable_duty(image: &MetadataImage, broker_id: BrokerId) -> bool {
    image.topics.values().flat_map(|topic| topic.partitions.values()).any(|state| {
        state.leader == Some(broker_id) || (state.isr.len() > 1 && state.isr.contains(&broker_id))
    })
}

/// Moves every leadership of an ineligible broker to an eligible ISR member (or to none) and takes
/// it out of every ISR it is not the last member of.
fn move_away(changes: &mut Changes<'_>, broker_id: BrokerId) {
    let affected = partitions_where(changes.image(), |state| {
        state.leader == Some(broker_id) || state.isr.contains(&broker_id)
    });
    for (topic_id, partition) in affected {
        let Some(state) = changes.image().partition(topic_id, partition) else { continue };
        let mut isr: Vec<BrokerId> =
            state.isr.iter().copied().filter(|member| *member != broker_id).collect();
        if isr.is_empty() {
            isr = state.isr.clone(); // KRaft keeps the last member: it alone may hold every record.
        }
        change_partition(changes, topic_id, partition, isr);
    }
}

/// After the broker is unfenced: leaderless partitions that can now elect it get a leader.
fn elect_leaderless(changes: &mut Changes<'_>, broker_id: BrokerId) {
    let image = changes.image();
    let affected =
        partitions_where(image, |state| state.leader.is_none() && state.replicas.contains(&broker_id));
    for (topic_id, partition) in affected {
        let Some(state) = changes.image().partition(topic_id, partition) else { continue };
        let isr = state.isr.clone();
        change_partition(changes, topic_id, partition, isr);
    }
}

fn partitions_where(
    image: &MetadataImage,
    predicate: impl Fn(&PartitionState) -> bool,
) -> Vec<(TopicId, u32)> {
    image
        .topics
        .iter()
        .flat_map(|(topic_id, topic)| {
            topic.partitions.iter().map(move |(partition, state)| (*topic_id, *partition, state))
        })
        .filter(|(_, _, state)| predicate(state))
        .map(|(topic_id, partition, _)| (topic_id, partition))
        .collect()
}

/// Gives the partition the ISR `target_isr` and the leader the election rules pick from it;
/// writes a `PartitionChange` if anything differs.
fn change_partition(changes: &mut Changes<'_>, topic_id: TopicId, partition: u32, target_isr: Vec<BrokerId>) {
    let image = changes.image();
    let Some(topic) = image.topics.get(&topic_id) else { return };
    let Some(state) = topic.partitions.get(&partition) else { return };
    let unclean =
        topic.configs.get(UNCLEAN_LEADER_ELECTION).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let (leader, isr) = elect_leader(image, state, target_isr, unclean);
    if leader == state.leader && isr == state.isr {
        return;
    }
    let leader_epoch = if leader == state.leader { state.leader_epoch } else { state.leader_epoch + 1 };
    let partition_epoch = state.partition_epoch + 1;
    changes.push(MetadataRecord::PartitionChange {
        topic_id,
        partition,
        leader,
        isr,
        leader_epoch,
        partition_epoch,
    });
}

/// The election rules (see the module docs). Returns the leader and the ISR that goes with it.
fn elect_leader(
    image: &MetadataImage,
    state: &PartitionState,
    isr: Vec<BrokerId>,
    unclean: bool,
) -> (Option<BrokerId>, Vec<BrokerId>) {
    if let Some(leader) = state.leader {
        if isr.contains(&leader) && image.is_eligible(leader) {
            return (Some(leader), isr);
        }
    }
    let clean =
        state.replicas.iter().copied().find(|broker| isr.contains(broker) && image.is_eligible(*broker));
    if let Some(leader) = clean {
        return (Some(leader), isr);
    }
    if unclean {
        if let Some(leader) = state.replicas.iter().copied().find(|broker| image.is_eligible(*broker)) {
            return (Some(leader), vec![leader]);
        }
    }
    (None, isr)
}

struct AlterPartition<'r> {
    broker_id: BrokerId,
    broker_epoch: i64,
    topic_id: TopicId,
    partition: u32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &'r [(BrokerId, i64)],
}

fn alter_partition(
    changes: &mut Changes<'_>,
    request: AlterPartition<'_>,
) -> Result<PartitionState, ErrorCode> {
    let image = changes.image();
    let registered = image.brokers.get(&request.broker_id);
    if registered.is_none_or(|registration| registration.broker_epoch != request.broker_epoch) {
        return Err(ErrorCode::StaleBrokerEpoch);
    }
    let Some(state) = image.partition(request.topic_id, request.partition) else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    if request.leader_epoch < state.leader_epoch {
        return Err(ErrorCode::FencedLeaderEpoch);
    }
    if request.leader_epoch > state.leader_epoch {
        return Err(ErrorCode::NotController);
    }
    if state.leader != Some(request.broker_id) {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    if request.partition_epoch != state.partition_epoch {
        return Err(ErrorCode::InvalidUpdateVersion);
    }
    let isr: Vec<BrokerId> = request.new_isr.iter().map(|(broker, _)| *broker).collect();
    let mut distinct = isr.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let shape_ok = !isr.is_empty()
        && distinct.len() == isr.len()
        && isr.iter().all(|member| state.replicas.contains(member))
        && isr.contains(&request.broker_id);
    if !shape_ok {
        return Err(ErrorCode::InvalidRequest);
    }
    let ineligible = request.new_isr.iter().any(|(member, epoch)| {
        image.brokers.get(member).is_none_or(|registration| {
            registration.broker_epoch != *epoch || registration.fenced || registration.in_controlled_shutdown
        })
    });
    if ineligible {
        return Err(ErrorCode::IneligibleReplica);
    }
    if isr == state.isr {
        return Ok(state.clone());
    }
    let record = MetadataRecord::PartitionChange {
        topic_id: request.topic_id,
        partition: request.partition,
        leader: state.leader,
        isr,
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch + 1,
    };
    changes.push(record);
    changes
        .image()
        .partition(request.topic_id, request.partition)
        .cloned()
        .ok_or(ErrorCode::UnknownTopicOrPartition)
}

fn create_topic(
    changes: &mut Changes<'_>,
    rng: &mut dyn RngCore,
    name: &str,
    partitions: u32,
    replication_factor: u16,
    configs: &BTreeMap<String, String>,
) -> Result<TopicId, ErrorCode> {
    let image = changes.image();
    if !is_legal_topic_name(name) {
        return Err(ErrorCode::InvalidTopic);
    }
    if image.topics_by_name.contains_key(name) {
        return Err(ErrorCode::TopicAlreadyExists);
    }
    let collision_key = metric_name(name);
    if image.topics_by_name.keys().any(|existing| metric_name(existing) == collision_key) {
        return Err(ErrorCode::InvalidTopic);
    }
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(ErrorCode::InvalidPartitions);
    }
    if let Some(value) = configs.get(UNCLEAN_LEADER_ELECTION) {
        if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
            return Err(ErrorCode::InvalidRequest);
        }
    }
    let assignment = place_partitions(image, partitions, replication_factor, rng)?;
    let topic_id = draw_topic_id(image, rng);
    changes.push(MetadataRecord::Topic { name: name.to_string(), topic_id, configs: configs.clone() });
    push_new_partitions(changes, topic_id, 0, assignment);
    Ok(topic_id)
}

/// Replicas for `partitions` new partitions over the eligible brokers (Kafka's placement).
fn place_partitions(
    image: &MetadataImage,
    partitions: u32,
    replication_factor: u16,
    rng: &mut dyn RngCore,
) -> Result<Vec<Vec<BrokerId>>, ErrorCode> {
    let eligible: Vec<BrokerId> =
        image.brokers.keys().copied().filter(|broker| image.is_eligible(*broker)).collect();
    assign_replicas(&eligible, partitions, replication_factor, rng).ok_or(ErrorCode::InvalidReplicationFactor)
}

/// Records new partitions numbered from `first`: ISR = replicas, the first replica leads, epochs 0.
fn push_new_partitions(
    changes: &mut Changes<'_>,
    topic_id: TopicId,
    first: u32,
    assignment: Vec<Vec<BrokerId>>,
) {
    for (partition, replicas) in (first..).zip(assignment) {
        changes.push(MetadataRecord::Partition {
            topic_id,
            partition,
            leader: replicas.first().copied(),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
}

/// Adds partitions `current..count` to an existing topic, each with as many replicas as the
/// topic's first partition, placed like a new topic's.
fn create_partitions(
    changes: &mut Changes<'_>,
    rng: &mut dyn RngCore,
    name: &str,
    count: u32,
) -> Result<TopicId, ErrorCode> {
    let image = changes.image();
    let Some(topic_id) = image.topics_by_name.get(name).copied() else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    let Some(topic) = image.topics.get(&topic_id) else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    let current = topic.partitions.len() as u32;
    if count <= current || count > PARTITIONS_MAX {
        return Err(ErrorCode::InvalidPartitions);
    }
    let replication_factor = topic.partitions.values().next().map_or(1, |state| state.replicas.len()) as u16;
    let assignment = place_partitions(image, count - current, replication_factor, rng)?;
    push_new_partitions(changes, topic_id, current, assignment);
    Ok(topic_id)
}

/// Validates the change (every key one of `topic_config::ALL`, every value of its type) and
/// writes the topic's new overrides as one `TopicConfig` record, or nothing if they are unchanged.
fn alter_configs(
    changes: &mut Changes<'_>,
    name: &str,
    configs: &BTreeMap<String, Option<String>>,
    incremental: bool,
) -> Result<(), ErrorCode> {
    let image = changes.image();
    let Some(topic_id) = image.topics_by_name.get(name).copied() else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    let Some(topic) = image.topics.get(&topic_id) else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    for (key, value) in configs {
        if !is_valid_topic_config(key, value.as_deref()) {
            return Err(ErrorCode::InvalidConfig);
        }
    }
    let mut updated = if incremental { topic.configs.clone() } else { BTreeMap::new() };
    for (key, value) in configs {
        match value {
            Some(value) => updated.insert(key.clone(), value.clone()),
            None => updated.remove(key),
        };
    }
    if updated != topic.configs {
        changes.push(MetadataRecord::TopicConfig { topic_id, configs: updated });
    }
    Ok(())
}

/// Whether `key` is a topic config Seedlog accepts and `value` (`None`: delete) has its type.
pub fn is_valid_topic_config(key: &str, value: Option<&str>) -> bool {
    use crate::protocol::topic_config as names;
    if !names::ALL.contains(&key) {
        return false;
    }
    let Some(value) = value else { return true };
    let long = |minimum: i64| value.parse::<i64>().is_ok_and(|number| number >= minimum);
    let int = |minimum: i64| value.parse::<i32>().is_ok_and(|number| i64::from(number) >= minimum);
    match key {
        names::MIN_INSYNC_REPLICAS => int(1),
        names::UNCLEAN_LEADER_ELECTION => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        names::FLUSH_POLICY => matches!(value, "always" | "interval" | "never"),
        names::FLUSH_MS => long(0),
        names::RETENTION_MS | names::RETENTION_BYTES => long(-1),
        names::SEGMENT_BYTES => int(14),
        names::MAX_MESSAGE_BYTES => int(0),
        _ => false,
    }
}

/// A fresh, non-zero topic id. 128 random bits collide with nothing in practice; the loop is
/// bounded anyway, and an rng that keeps colliding gets the smallest unused id.
fn draw_topic_id(image: &MetadataImage, rng: &mut dyn RngCore) -> TopicId {
    const DRAWS_MAX: u32 = 16;
    for _ in 0..DRAWS_MAX {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let topic_id = TopicId(bytes);
        if topic_id != TopicId::ZERO && !image.topics.contains_key(&topic_id) {
            return topic_id;
        }
    }
    // Among the topics.len() + 1 smallest non-zero ids at least one is unused.
    (1..=image.topics.len() as u128 + 1)
        .map(|value| TopicId(value.to_be_bytes()))
        .find(|topic_id| !image.topics.contains_key(topic_id))
        .unwrap_or(TopicId(u128::MAX.to_be_bytes()))
}

/// Kafka's topic name rules.
pub fn is_legal_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// Kafka refuses names that collide once `.` is read as `_` (they share metric names).
fn metric_name(name: &str) -> String {
    name.replace('.', "_")
}
