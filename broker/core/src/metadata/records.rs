//! The records of the metadata log and their encoding.
//!
//! Each record is one entry of the quorum's log. The encoding is JSON (serde_json) of the record
//! enum: every map in it is a `BTreeMap`, every sequence keeps its order, so one record has exactly
//! one encoding and a hash over it means the same thing on every node. Decoding never panics: bytes
//! that are not a record are an [`ImageError`], which the node treats as a corrupt log and halts.

use std::collections::BTreeMap;
use std::fmt;

use super::ImageError;

pub type BrokerId = u32;

/// Kafka's topic id: 16 random bytes drawn by the controller from `env.rng`. All zeros is Kafka's
/// reserved "no id" and never drawn.
///
/// It serialises as 32 lowercase hex digits, so it can key a JSON object (the image's `topics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    pub const ZERO: TopicId = TopicId([0; 16]);

    fn from_hex(text: &str) -> Option<TopicId> {
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (index, byte) in bytes.iter_mut().enumerate() {
            let high = hex_value(digits[2 * index])?;
            let low = hex_value(digits[2 * index + 1])?;
            *byte = (high << 4) | low;
        }
        Some(TopicId(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TopicId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TopicId::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a topic id is 32 lowercase hex digits"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// One record of the metadata log (KRaft's record types, in Seedlog's own encoding).
///
/// What [`super::MetadataImage::apply`] demands of each is written on the variant; a record that
/// breaks it is an [`ImageError`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registered. `broker_epoch` is the offset of this record (KRaft's rule), so a
    /// restarted broker always gets a larger one. A new registration starts fenced and not in
    /// controlled shutdown; it replaces the previous registration of the same id.
    RegisterBroker { broker_id: BrokerId, broker_epoch: i64, incarnation_id: u64, endpoints: Vec<Endpoint> },
    /// The broker's session ended (or it never caught up): it may lead nothing and join no ISR.
    /// `broker_epoch` must be the current registration's.
    FenceBroker { broker_id: BrokerId, broker_epoch: i64 },
    /// The broker caught up with the metadata log and heartbeats: it may lead and join ISRs.
    UnfenceBroker { broker_id: BrokerId, broker_epoch: i64 },
    /// The broker asked for a controlled shutdown (it stays registered; leadership moves away).
    /// Only a new registration ends it.
    BrokerShuttingDown { broker_id: BrokerId, broker_epoch: i64 },
    /// A new topic: a fresh name and a fresh id.
    Topic { name: String, topic_id: TopicId, configs: BTreeMap<String, String> },
    /// A partition's first state: replicas in preference order, ISR = replicas, leader = first
    /// unfenced preferred replica, leader epoch 0, partition epoch 0.
    Partition {
        topic_id: TopicId,
        partition: u32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        leader: Option<BrokerId>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change to a partition: every change bumps the partition epoch by one; a change of leader
    /// (to another broker, to none, or from none) bumps the leader epoch by one, and only a change
    /// of leader does.
    PartitionChange {
        topic_id: TopicId,
        partition: u32,
        leader: Option<BrokerId>,
        isr: Vec<BrokerId>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// The topic's config overrides are now exactly `configs` (the topic must exist).
    TopicConfig { topic_id: TopicId, configs: BTreeMap<String, String> },
    /// The topic and every one of its partitions are gone.
    RemoveTopic { topic_id: TopicId },
}

/// The canonical encoding of one record (the payload of one quorum entry).
pub fn encode_record(record: &MetadataRecord) -> Vec<u8> {
    // Serialising plain data (strings, integers, BTreeMaps with string or integer keys) into a
    // Vec cannot fail; a failure here would be a bug in a Serialize impl of this module.
    serde_json::to_vec(record).expect("metadata records always serialise")
}

/// Decodes one record. Bytes that are not exactly one record are an error, never a panic.
pub fn decode_record(bytes: &[u8]) -> Result<MetadataRecord, ImageError> {
    serde_json::from_slice(bytes).map_err(|error| ImageError(format!("undecodable metadata record: {error}")))
}

/// FNV-1a, 64 bits: the hash of an image's encoding and of a quorum entry's payload.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}
