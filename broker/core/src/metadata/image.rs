//! The metadata image: the state every committed record builds, and the rules a record must meet.
//!
//! [`MetadataImage::apply`] is all-or-nothing: it checks a record completely before it changes
//! anything, so an image that refused a record is still the image it was. The checks are the
//! image's invariants, which [`MetadataImage::validate`] states for a whole image (a decoded
//! snapshot is validated before it is used):
//! - offsets only grow: a record lands at or after `end_offset`;
//! - a broker's epoch is the offset of its registration record and only grows; fence, unfence and
//!   shutdown records name the current registration's epoch;
//! - topic names and ids are unique and `topics_by_name` is exactly the inverse of `topics`;
//! - a partition's replicas are distinct registered brokers; its ISR is a non-empty subset of them
//!   without duplicates (KRaft never empties an ISR: the last member stays); a leader, when there
//!   is one, is in the ISR;
//! - a partition change bumps the partition epoch by exactly one and the leader epoch by exactly one
//!   when (and only when) the leader changes; replicas never change.

use std::collections::{BTreeMap, BTreeSet};

use super::records::{fnv1a64, BrokerId, Endpoint, MetadataRecord, TopicId};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub incarnation_id: u64,
    pub endpoints: Vec<Endpoint>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: TopicId,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<u32, PartitionState>,
}

/// The state the metadata log builds: every broker, topic and partition. Applying the same
/// records in the same order gives the same image (and the same [`MetadataImage::hash`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetadataImage {
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub topics: BTreeMap<TopicId, TopicImage>,
    pub topics_by_name: BTreeMap<String, TopicId>,
    /// The offset after the last applied record (the snapshot's `end_offset`).
    pub end_offset: i64,
}

/// A record that cannot apply to the image (a controller bug, or a corrupt log): the node halts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError(pub String);

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImageError {}

fn fail<T>(text: String) -> Result<T, ImageError> {
    Err(ImageError(text))
}

impl MetadataImage {
    /// Applies the record found at `offset`. All-or-nothing: on error the image is unchanged.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ImageError> {
        if offset < self.end_offset {
            return fail(format!("record at offset {offset} is below the image's end {}", self.end_offset));
        }
        let Some(end_offset) = offset.checked_add(1) else {
            return fail(format!("record offset {offset} overflows"));
        };
        match record {
            MetadataRecord::RegisterBroker { broker_id, broker_epoch, incarnation_id, endpoints } => {
                if *broker_epoch != offset {
                    return fail(format!(
                        "broker {broker_id} registered with epoch {broker_epoch} at offset {offset}"
                    ));
                }
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    broker_epoch: *broker_epoch,
                    incarnation_id: *incarnation_id,
                    endpoints: endpoints.clone(),
                    fenced: true,
                    in_controlled_shutdown: false,
                };
                self.brokers.insert(*broker_id, registration);
            }
            MetadataRecord::FenceBroker { broker_id, broker_epoch } => {
                self.registration_mut(*broker_id, *broker_epoch)?.fenced = true;
            }
            MetadataRecord::UnfenceBroker { broker_id, broker_epoch } => {
                let registration = self.registration_mut(*broker_id, *broker_epoch)?;
                if registration.in_controlled_shutdown {
                    return fail(format!("broker {broker_id} unfenced during its controlled shutdown"));
                }
                registration.fenced = false;
            }
            MetadataRecord::BrokerShuttingDown { broker_id, broker_epoch } => {
                self.registration_mut(*broker_id, *broker_epoch)?.in_controlled_shutdown = true;
            }
            MetadataRecord::Topic { name, topic_id, configs } => {
                if name.is_empty() {
                    return fail("a topic with an empty name".to_string());
                }
                if *topic_id == TopicId::ZERO {
                    return fail(format!("topic {name:?} has the reserved zero id"));
                }
                if self.topics_by_name.contains_key(name) {
                    return fail(format!("topic {name:?} already exists"));
                }
                if self.topics.contains_key(topic_id) {
                    return fail(format!("topic id {topic_id} already exists"));
                }
                let topic = TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    configs: configs.clone(),
                    partitions: BTreeMap::new(),
                };
                self.topics.insert(*topic_id, topic);
                self.topics_by_name.insert(name.clone(), *topic_id);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let state = PartitionState {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                };
                self.check_partition(*topic_id, *partition, &state)?;
                if *leader_epoch < 0 || *partition_epoch < 0 {
                    return fail(format!("partition {topic_id}/{partition} starts with a negative epoch"));
                }
                let Some(topic) = self.topics.get_mut(topic_id) else {
                    return fail(format!("partition {partition} of unknown topic {topic_id}"));
                };
                if topic.partitions.contains_key(partition) {
                    return fail(format!("partition {topic_id}/{partition} already exists"));
                }
                topic.partitions.insert(*partition, state);
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                leader_epoch,
                partition_epoch,
            } => {
                let Some(current) =
                    self.topics.get(topic_id).and_then(|topic| topic.partitions.get(partition))
                else {
                    return fail(format!("change of unknown partition {topic_id}/{partition}"));
                };
                let next = PartitionState {
                    replicas: current.replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                };
                check_change(current, &next)
                    .map_err(|text| ImageError(format!("partition {topic_id}/{partition}: {text}")))?;
                self.check_partition(*topic_id, *partition, &next)?;
                if let Some(state) =
                    self.topics.get_mut(topic_id).and_then(|topic| topic.partitions.get_mut(partition))
                {
                    *state = next;
                }
            }
            MetadataRecord::TopicConfig { topic_id, configs } => {
                let Some(topic) = self.topics.get_mut(topic_id) else {
                    return fail(format!("configs of unknown topic {topic_id}"));
                };
                topic.configs = configs.clone();
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let Some(topic) = self.topics.remove(topic_id) else {
                    return fail(format!("removal of unknown topic {topic_id}"));
                };
                self.topics_by_name.remove(&topic.name);
            }
        }
        self.end_offset = end_offset;
        Ok(())
    }

    /// Every invariant of a whole image (see the module docs). A decoded snapshot must pass it.
    pub fn validate(&self) -> Result<(), ImageError> {
        if self.end_offset < 0 {
            return fail(format!("negative end offset {}", self.end_offset));
        }
        for (id, registration) in &self.brokers {
            if registration.broker_id != *id {
                return fail(format!("broker {id} is registered as {}", registration.broker_id));
            }
            if registration.broker_epoch < 0 || registration.broker_epoch >= self.end_offset {
                return fail(format!(
                    "broker {id} has epoch {} outside [0, {})",
                    registration.broker_epoch, self.end_offset
                ));
            }
        }
        if self.topics.len() != self.topics_by_name.len() {
            return fail("topics and topics_by_name differ in size".to_string());
        }
        for (topic_id, topic) in &self.topics {
            if topic.topic_id != *topic_id || *topic_id == TopicId::ZERO {
                return fail(format!("topic {:?} is keyed by the wrong id {topic_id}", topic.name));
            }
            if topic.name.is_empty() || self.topics_by_name.get(&topic.name) != Some(topic_id) {
                return fail(format!("topic {:?} is missing from topics_by_name", topic.name));
            }
            for (partition, state) in &topic.partitions {
                self.check_partition(*topic_id, *partition, state)?;
                if state.leader_epoch < 0 || state.partition_epoch < 0 {
                    return fail(format!("partition {topic_id}/{partition} has a negative epoch"));
                }
            }
        }
        Ok(())
    }

    /// fnv1a-64 over the canonical encoding.
    pub fn hash(&self) -> u64 {
        fnv1a64(&self.encode())
    }

    /// The canonical encoding (JSON of BTreeMaps): the bytes of a metadata snapshot.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string or integer map keys: serialising into a Vec cannot fail.
        serde_json::to_vec(self).expect("the metadata image always serialises")
    }

    /// Decodes and validates a snapshot. Anything that is not a valid image is an error.
    pub fn decode(bytes: &[u8]) -> Result<MetadataImage, ImageError> {
        let image: MetadataImage = serde_json::from_slice(bytes)
            .map_err(|error| ImageError(format!("undecodable metadata image: {error}")))?;
        image.validate()?;
        Ok(image)
    }

    /// The partition's state, if the topic and partition exist.
    pub fn partition(&self, topic_id: TopicId, partition: u32) -> Option<&PartitionState> {
        self.topics.get(&topic_id).and_then(|topic| topic.partitions.get(&partition))
    }

    /// Whether the broker may lead a partition or be added to an ISR: registered, unfenced and not
    /// in controlled shutdown.
    pub fn is_eligible(&self, broker_id: BrokerId) -> bool {
        self.brokers
            .get(&broker_id)
            .is_some_and(|registration| !registration.fenced && !registration.in_controlled_shutdown)
    }

    fn registration_mut(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<&mut BrokerRegistration, ImageError> {
        match self.brokers.get_mut(&broker_id) {
            None => fail(format!("unknown broker {broker_id}")),
            Some(registration) if registration.broker_epoch != broker_epoch => fail(format!(
                "broker {broker_id} epoch {broker_epoch} is not its registration's {}",
                registration.broker_epoch
            )),
            Some(registration) => Ok(registration),
        }
    }

    /// The shape rules every partition state meets (replicas, ISR, leader).
    fn check_partition(
        &self,
        topic_id: TopicId,
        partition: u32,
        state: &PartitionState,
    ) -> Result<(), ImageError> {
        let name = format!("partition {topic_id}/{partition}");
        if state.replicas.is_empty() {
            return fail(format!("{name} has no replicas"));
        }
        let replicas: BTreeSet<BrokerId> = state.replicas.iter().copied().collect();
        if replicas.len() != state.replicas.len() {
            return fail(format!("{name} lists a replica twice: {:?}", state.replicas));
        }
        if let Some(unknown) = state.replicas.iter().find(|broker| !self.brokers.contains_key(broker)) {
            return fail(format!("{name} has unregistered replica {unknown}"));
        }
        if state.isr.is_empty() {
            return fail(format!("{name} has an empty ISR"));
        }
        let isr: BTreeSet<BrokerId> = state.isr.iter().copied().collect();
        if isr.len() != state.isr.len() {
            return fail(format!("{name} lists an ISR member twice: {:?}", state.isr));
        }
        if !isr.is_subset(&replicas) {
            return fail(format!("{name} ISR {:?} is not within replicas {:?}", state.isr, state.replicas));
        }
        if let Some(leader) = state.leader {
            if !isr.contains(&leader) {
                return fail(format!("{name} leader {leader} is not in ISR {:?}", state.isr));
            }
        }
        Ok(())
    }
}

/// The epoch rules of one partition change.
fn check_change(current: &PartitionState, next: &PartitionState) -> Result<(), String> {
    if Some(next.partition_epoch) != current.partition_epoch.checked_add(1) {
        return Err(format!(
            "partition epoch {} does not follow {}",
            next.partition_epoch, current.partition_epoch
        ));
    }
    let expected_leader_epoch = if next.leader != current.leader {
        current.leader_epoch.checked_add(1)
    } else {
        Some(current.leader_epoch)
    };
    if Some(next.leader_epoch) != expected_leader_epoch {
        return Err(format!(
            "leader {:?} -> {:?} with leader epoch {} -> {}",
            current.leader, next.leader, current.leader_epoch, next.leader_epoch
        ));
    }
    Ok(())
}
