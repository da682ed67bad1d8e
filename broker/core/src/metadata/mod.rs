//! The cluster metadata: the records of the metadata log, the image they build, replica placement,
//! and the active controller's decisions (KRaft's design).
//!
//! - [`records`]: [`MetadataRecord`], one entry of the quorum's log each, and their canonical
//!   encoding (JSON over `BTreeMap`s: one record, one byte string, one hash everywhere).
//! - [`image`]: [`MetadataImage`], what the committed records build. `apply` validates every record
//!   against the image (unknown broker or topic, broker or partition epochs going backwards or
//!   skipping, ISR outside the replicas or empty, a leader outside the ISR) and refuses it with an
//!   [`ImageError`] — the node halts rather than build a wrong image. The encoded image is the
//!   metadata snapshot; its fnv1a-64 is the image hash the simulator compares across nodes.
//! - [`placement`]: Kafka's rack-unaware replica assignment, deterministic given the rng.
//! - [`controller`]: [`Controller`], the active controller's pure decisions (registration,
//!   heartbeats and leases, fencing, controlled shutdown, leader election, topic creation and
//!   deletion, ISR changes); its module docs list every rule and the error code that guards it.
//!
//! Nothing here performs I/O or reads a clock: time is an argument and randomness comes from the
//! rng the caller hands in, so every node that applies the same records builds the same image.

pub mod controller;
pub mod image;
pub mod placement;
pub mod records;

#[cfg(test)]
mod tests;

pub use controller::{
    Controller, ControllerConfig, ControllerRequest, ControllerResponse, Decision, HeartbeatReply,
};
pub use image::{BrokerRegistration, ImageError, MetadataImage, PartitionState, TopicImage};
pub use records::{decode_record, encode_record, fnv1a64, BrokerId, Endpoint, MetadataRecord, TopicId};
