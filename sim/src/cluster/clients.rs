//! The cluster workload's clients: a topic creator, producers and consumers speaking the cluster's
//! client API ([`ClientRequest`], one partition per request) with Kafka's client semantics, as
//! nodes of the simulated network.
//!
//! Each client is a small state machine the world drives: [`Client::poll`] whenever its alarm
//! ([`Client::alarm`]) rings or an answer arrived ([`Client::on_response`]), returning the
//! messages to send. It does everything possible at `now`, and its alarm is the next moment at
//! which something else becomes possible; it never busy-waits. Every operation goes into the
//! history; an operation whose outcome is unknown is `info`, never `fail`.
//!
//! - **Metadata** ([`Metadata`]): asked of the brokers in turn (Kafka's bootstrap list), refreshed
//!   when an error says it is stale (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
//!   FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, KAFKA_STORAGE_ERROR), after a timeout and every
//!   `metadata.max.age.ms`. A partition's leader is replaced only by one with a leader epoch at
//!   least as new (KIP-320: a lagging broker's older view is ignored).
//! - **Producer**: the application calls `send` every `send_interval_ms`; records go to the
//!   partition of their key (murmur2, positive-masked, modulo the partition count) or, without a
//!   key, to the sticky partition, which changes whenever its batch is sealed (KIP-480). A batch is
//!   sealed when it holds `batch.size` records or after `linger.ms`; sealing is the operation's
//!   invocation. Batches of a partition are sent in order, at most `max.in.flight` requests per
//!   broker; a retriable error or a timeout puts the batch back at the front of its partition's
//!   queue after `retry.backoff.ms`, until `retries` or `delivery.timeout.ms` run out. The
//!   operation is then `fail` only if no attempt could have been appended (every answer was an
//!   error that comes before the append, and the network does not duplicate requests), else
//!   `info`. `acks=0` sends are `info` at once: no
//!   answer ever comes. The buffer is bounded (`buffer_records_max`, `BUFFERED_BATCHES` full
//!   batches, at most `BUFFERED_RECORDS_MAX` records): a full buffer blocks `send`, as
//!   `buffer.memory` does. Bounding it in batches keeps what is left to deliver after the chaos
//!   proportional to what the producer can send per round trip, so the liveness bound holds for
//!   small batches on a slow network too.
//! - **Consumer** (assign mode, one partition): starts at the earliest offset, fetches from the
//!   leader with `current_leader_epoch` and `last_fetched_epoch`; after every leader change it
//!   validates its position with OffsetForLeaderEpoch for the epoch of the last record it
//!   consumed (KIP-320), and if the leader's log ends below its position for that epoch, records a
//!   `truncation` and continues from there — it never silently skips or re-reads. A fetch answer
//!   naming a diverging epoch is handled the same way. OFFSET_OUT_OF_RANGE resets it to the
//!   earliest offset (`auto.offset.reset=earliest`), recorded as a `reset`.
//! - **Final consumer**: one per partition, started once the chaos is over and every producer is
//!   idle; it reads its partition from the earliest offset up to the high watermark it saw
//!   first (ListOffsets latest). Finishing within the liveness bound is the liveness check.

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha8Rng;
use seedlog_core::env::Time;
use seedlog_core::metadata::{ControllerRequest, ControllerResponse};
use seedlog_core::node::NodeMessage;
use seedlog_core::protocol::{
    Acks, ClientRequest, ClientResponse, ClusterView, ErrorCode, FetchRequest, OffsetSpec, PartitionFetch,
};
use seedlog_core::record::{self, NewRecord, ProducerInfo};

use super::admin::{AdminOp, AdminOutcome};
use super::options::{ClientSettings, ProducerSettings, TopicWorkloadOptions};
use crate::history::{History, Op, OpKind, OpType};
use crate::net::NodeId;
use crate::rng;

/// A message a client sends, and to whom.
pub type Outgoing = (NodeId, NodeMessage);

/// `buffer.memory`, in records: `send` blocks while this many records wait unacknowledged.
const BUFFERED_RECORDS_MAX: usize = 512;
/// `buffer.memory` over `batch.size`: how many full batches the buffer holds.
const BUFFERED_BATCHES: usize = 32;

/// Kafka's murmur2 (`Utils.murmur2`), the hash of its default partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if !tail.is_empty() {
        for (index, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * index);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record, as Kafka's default partitioner picks it.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has partitions");
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

fn time_ms(now: Time) -> f64 {
    now.as_nanos() as f64 / 1e6
}

/// What a client knows of the topic's partitions and their leaders.
#[derive(Debug)]
struct Metadata {
    topic: String,
    /// The brokers asked for metadata, in turn (Kafka's `bootstrap.servers`).
    bootstrap: Vec<NodeId>,
    next_bootstrap: usize,
    partitions: Option<u32>,
    /// Partition → (leader, leader epoch).
    leaders: BTreeMap<u32, (Option<u32>, i32)>,
    /// An error said the metadata is stale.
    stale: bool,
    fetched_at: Option<Time>,
    max_age_ms: u64,
    backoff_ms: u64,
    /// No request before this (after a failed one).
    not_before: Time,
    /// The metadata request in flight: correlation id and deadline.
    in_flight: Option<(u64, Time)>,
}

impl Metadata {
    fn new(topic: &str, bootstrap: Vec<NodeId>, first: usize, settings: &ClientSettings) -> Metadata {
        assert!(!bootstrap.is_empty(), "a client needs a broker to bootstrap from");
        Metadata {
            topic: topic.to_string(),
            next_bootstrap: first % bootstrap.len(),
            bootstrap,
            partitions: None,
            leaders: BTreeMap::new(),
            stale: true,
            fetched_at: None,
            max_age_ms: settings.metadata_max_age_ms,
            backoff_ms: settings.retry_backoff_ms,
            not_before: Time::ZERO,
            in_flight: None,
        }
    }

    /// When a refresh is wanted (`None`: not now). `periodic`: the client has work, so
    /// `metadata.max.age.ms` applies.
    fn wanted_at(&self, periodic: bool) -> Option<Time> {
        if self.in_flight.is_some() {
            return None;
        }
        if self.stale || self.partitions.is_none() {
            return Some(self.not_before);
        }
        let aged = self.fetched_at.map(|at| at.plus_millis(self.max_age_ms))?;
        periodic.then_some(aged.max(self.not_before))
    }

    /// A metadata request, if one is due at `now`.
    fn request(
        &mut self,
        now: Time,
        correlation_id: u64,
        timeout_ms: u64,
        periodic: bool,
    ) -> Option<Outgoing> {
        if self.wanted_at(periodic).is_none_or(|at| at > now) {
            return None;
        }
        let to = self.bootstrap[self.next_bootstrap];
        self.next_bootstrap = (self.next_bootstrap + 1) % self.bootstrap.len();
        self.in_flight = Some((correlation_id, now.plus_millis(timeout_ms)));
        let request = ClientRequest::Metadata { topics: Some(vec![self.topic.clone()]) };
        Some((to, NodeMessage::Client { correlation_id, request }))
    }

    /// Expires a metadata request that was not answered in time.
    fn expire(&mut self, now: Time) {
        if self.in_flight.is_some_and(|(_, deadline)| deadline <= now) {
            self.in_flight = None;
            self.not_before = now.plus_millis(self.backoff_ms);
        }
    }

    /// The answer to the metadata request `correlation_id`; whether it was one.
    fn on_response(&mut self, now: Time, correlation_id: u64, response: &ClientResponse) -> bool {
        if self.in_flight.is_none_or(|(expected, _)| expected != correlation_id) {
            return false;
        }
        self.in_flight = None;
        let ClientResponse::Metadata(view) = response else {
            self.not_before = now.plus_millis(self.backoff_ms);
            return true;
        };
        if !self.apply(view) {
            // The topic is unknown there (not created yet, or a broker behind): ask again later.
            self.not_before = now.plus_millis(self.backoff_ms);
            return true;
        }
        self.stale = false;
        self.fetched_at = Some(now);
        // `retry.backoff.ms` between refreshes, even when the next error asks for one at once.
        self.not_before = now.plus_millis(self.backoff_ms);
        true
    }

    /// Takes the topic's partitions from a view; whether the view knew the topic.
    fn apply(&mut self, view: &ClusterView) -> bool {
        let Some(topic) = view.topics.iter().find(|topic| topic.name == self.topic) else { return false };
        if topic.error != ErrorCode::None || topic.partitions.is_empty() {
            return false;
        }
        self.partitions = Some(self.partitions.unwrap_or(0).max(topic.partitions.len() as u32));
        for partition in &topic.partitions {
            self.learn(partition.partition, partition.leader, partition.leader_epoch);
        }
        true
    }

    /// A leader for a partition, kept only if its epoch is at least as new as the known one.
    fn learn(&mut self, partition: u32, leader: Option<u32>, leader_epoch: i32) {
        match self.leaders.get(&partition) {
            Some((_, known)) if *known > leader_epoch => {}
            _ => {
                self.leaders.insert(partition, (leader, leader_epoch));
            }
        }
    }

    fn leader(&self, partition: u32) -> Option<(u32, i32)> {
        match self.leaders.get(&partition) {
            Some((Some(leader), epoch)) => Some((*leader, *epoch)),
            _ => None,
        }
    }

    fn invalidate(&mut self) {
        self.stale = true;
    }
}

/// Whether a produce error proves that the batch was not appended (the check failed before the
/// append). Every other error — NOT_LEADER_OR_FOLLOWER among them: a leader that appended and then
/// lost its leadership while waiting for `acks=all` answers it (KAFKA-13574) — leaves it unknown.
fn definitely_not_appended(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotEnoughReplicas
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::MessageTooLarge
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidTopic
            | ErrorCode::CorruptMessage
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
    )
}

/// Whether an error means the client's metadata is stale.
fn refreshes_metadata(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::KafkaStorageError
            | ErrorCode::RequestTimedOut
    )
}

// ---- the topic creator ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CreatorPhase {
    Create,
    /// The create was answered (or the topic already existed): confirm it through Metadata.
    Confirm,
    Done,
}

/// Creates the workload's topic at the start through a broker (which forwards it to the active
/// controller), retrying until a broker's metadata shows it.
pub struct TopicCreator {
    pub process: u32,
    pub node: NodeId,
    brokers: Vec<NodeId>,
    target: usize,
    request: ControllerRequest,
    partitions: u32,
    topic: String,
    phase: CreatorPhase,
    /// Correlation id, deadline and invocation time of the request in flight.
    in_flight: Option<(u64, Time, Time)>,
    not_before: Time,
    next_correlation_id: u64,
    timeout_ms: u64,
    backoff_ms: u64,
    pub ops: Vec<AdminOp>,
}

impl TopicCreator {
    pub fn new(
        process: u32,
        node: NodeId,
        brokers: Vec<NodeId>,
        workload: &TopicWorkloadOptions,
    ) -> TopicCreator {
        assert!(!brokers.is_empty());
        let topic = &workload.topic;
        TopicCreator {
            process,
            node,
            brokers,
            target: 0,
            request: ControllerRequest::CreateTopic {
                name: topic.name.clone(),
                partitions: topic.partitions,
                replication_factor: topic.replication_factor,
                configs: workload.topic_configs(),
            },
            partitions: topic.partitions,
            topic: topic.name.clone(),
            phase: CreatorPhase::Create,
            in_flight: None,
            not_before: Time::ZERO,
            next_correlation_id: 0,
            // Admin requests go through the controller: give them the admin client's patience.
            timeout_ms: workload.clients.request_timeout_ms.max(1_000),
            backoff_ms: workload.clients.retry_backoff_ms.max(50),
            ops: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == CreatorPhase::Done
    }

    pub fn alarm(&self) -> Option<Time> {
        match (self.phase, self.in_flight) {
            (CreatorPhase::Done, _) => None,
            (_, Some((_, deadline, _))) => Some(deadline),
            (_, None) => Some(self.not_before),
        }
    }

    pub fn poll(&mut self, now: Time) -> Vec<Outgoing> {
        if self.phase == CreatorPhase::Done {
            return Vec::new();
        }
        if let Some((_, deadline, invoked)) = self.in_flight {
            if now < deadline {
                return Vec::new();
            }
            self.in_flight = None;
            if self.phase == CreatorPhase::Create {
                self.record(invoked, now, AdminOutcome::Info, None, Some("timeout".into()));
            }
            self.next_target(now);
        }
        if now < self.not_before {
            return Vec::new();
        }
        self.next_correlation_id += 1;
        let correlation_id = self.next_correlation_id;
        self.in_flight = Some((correlation_id, now.plus_millis(self.timeout_ms), now));
        let request = match self.phase {
            CreatorPhase::Create => ClientRequest::Controller(self.request.clone()),
            CreatorPhase::Confirm | CreatorPhase::Done => {
                ClientRequest::Metadata { topics: Some(vec![self.topic.clone()]) }
            }
        };
        vec![(self.brokers[self.target], NodeMessage::Client { correlation_id, request })]
    }

    fn next_target(&mut self, now: Time) {
        self.target = (self.target + 1) % self.brokers.len();
        self.not_before = now.plus_millis(self.backoff_ms);
    }

    pub fn on_response(&mut self, now: Time, correlation_id: u64, response: ClientResponse) {
        let Some((expected, _, invoked)) = self.in_flight else { return };
        if expected != correlation_id {
            return;
        }
        self.in_flight = None;
        match (self.phase, response) {
            (CreatorPhase::Create, ClientResponse::Controller(ControllerResponse::CreateTopic(result))) => {
                match result {
                    Ok(id) => {
                        self.record(invoked, now, AdminOutcome::Ok, Some(id), None);
                        self.phase = CreatorPhase::Confirm;
                    }
                    Err(ErrorCode::TopicAlreadyExists) => {
                        // A duplicated or earlier attempt created it.
                        let error = Some(ErrorCode::TopicAlreadyExists.name().to_string());
                        self.record(invoked, now, AdminOutcome::Info, None, error);
                        self.phase = CreatorPhase::Confirm;
                    }
                    Err(code) => {
                        // Not enough brokers registered yet, no controller, a timeout: try again.
                        let outcome =
                            if code.is_retriable() { AdminOutcome::Info } else { AdminOutcome::Fail };
                        self.record(invoked, now, outcome, None, Some(code.name().to_string()));
                        self.next_target(now);
                    }
                }
            }
            (CreatorPhase::Confirm, ClientResponse::Metadata(view)) => {
                let exists = view.topics.iter().any(|topic| {
                    topic.name == self.topic
                        && topic.error == ErrorCode::None
                        && topic.partitions.len() as u32 == self.partitions
                });
                if exists {
                    self.phase = CreatorPhase::Done;
                } else {
                    // This broker has not applied it yet, or the create never committed.
                    self.phase = CreatorPhase::Create;
                    self.next_target(now);
                }
            }
            _ => self.next_target(now),
        }
    }

    fn record(
        &mut self,
        invoked: Time,
        now: Time,
        outcome: AdminOutcome,
        id: Option<seedlog_core::metadata::TopicId>,
        error: Option<String>,
    ) {
        self.ops.push(AdminOp {
            process: self.process,
            invoked_ns: invoked.as_nanos(),
            completed_ns: now.as_nanos(),
            action: "create",
            topic: self.topic.clone(),
            outcome,
            topic_id: id.map(|id| super::admin::topic_id_hex(&id)),
            error,
            retried: false,
            id,
        });
    }
}

// ---- the producer ----

/// A batch being filled (`linger.ms` has not passed, `batch.size` not reached).
struct OpenBatch {
    /// Key, value id, padded value.
    records: Vec<(Option<String>, String, String)>,
    created: Time,
}

/// A sealed batch: its history operation is invoked.
struct Batch {
    partition: u32,
    keys: Vec<Option<String>>,
    values: Vec<String>,
    bytes: Vec<u8>,
    created: Time,
    attempts: u32,
    /// Some attempt may have been appended (a timeout, or an error that does not prove otherwise).
    maybe_appended: bool,
    retry_at: Time,
    last_error: Option<String>,
}

struct InFlight {
    batch: Batch,
    to: NodeId,
    deadline: Time,
}

pub struct Producer {
    pub process: u32,
    pub node: NodeId,
    topic: String,
    settings: ProducerSettings,
    clients: ClientSettings,
    metadata: Metadata,
    rng: ChaCha8Rng,
    next_value: u64,
    next_correlation_id: u64,
    next_send_at: Time,
    open: BTreeMap<u32, OpenBatch>,
    /// Sealed batches waiting to be sent, per partition, in order.
    queued: BTreeMap<u32, VecDeque<Batch>>,
    in_flight: BTreeMap<u64, InFlight>,
    sticky: Option<u32>,
    /// The application stopped sending (the chaos is over); what is buffered is still delivered.
    stopped: bool,
    /// The simulated network may duplicate messages: a copy of an earlier request may have been
    /// appended whatever this one's answer says, so no error proves a batch was not appended.
    network_duplicates: bool,
}

impl Producer {
    pub fn new(
        process: u32,
        node: NodeId,
        brokers: Vec<NodeId>,
        workload: &TopicWorkloadOptions,
        settings: ProducerSettings,
        rng: ChaCha8Rng,
        network_duplicates: bool,
    ) -> Producer {
        Producer {
            process,
            node,
            topic: workload.topic.name.clone(),
            metadata: Metadata::new(&workload.topic.name, brokers, process as usize, &workload.clients),
            settings,
            clients: workload.clients.clone(),
            rng,
            next_value: 0,
            next_correlation_id: 0,
            next_send_at: Time::ZERO,
            open: BTreeMap::new(),
            queued: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            sticky: None,
            stopped: false,
            network_duplicates,
        }
    }

    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Nothing buffered, queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.queued.is_empty() && self.in_flight.is_empty()
    }

    fn has_work(&self) -> bool {
        !self.stopped || !self.is_idle()
    }

    /// How many records `send` may leave waiting before it blocks.
    fn buffer_records_max(&self) -> usize {
        (BUFFERED_BATCHES * self.settings.batch_records_max as usize).min(BUFFERED_RECORDS_MAX)
    }

    fn buffered(&self) -> usize {
        self.open.values().map(|batch| batch.records.len()).sum::<usize>()
            + self.queued.values().flatten().map(|batch| batch.values.len()).sum::<usize>()
            + self.in_flight.values().map(|in_flight| in_flight.batch.values.len()).sum::<usize>()
    }

    fn in_flight_to(&self, broker: NodeId) -> u32 {
        self.in_flight.values().filter(|in_flight| in_flight.to == broker).count() as u32
    }

    /// The next moment something becomes possible (after `poll` did everything possible now).
    pub fn alarm(&self) -> Option<Time> {
        // The earliest of every candidate, kept as it goes (this runs after every poll).
        let mut earliest: Option<Time> = None;
        let mut consider = |at: Time| earliest = Some(earliest.map_or(at, |e| e.min(at)));
        // A full buffer blocks `send` until an answer frees room (no alarm for it).
        if !self.stopped && self.metadata.partitions.is_some() && self.buffered() < self.buffer_records_max()
        {
            consider(self.next_send_at);
        }
        // An open batch behind waiting ones is sealed when its partition's queue empties (on an
        // answer), not at its linger.
        self.open
            .iter()
            .filter(|(partition, _)| self.queued.get(partition).is_none_or(VecDeque::is_empty))
            .for_each(|(_, batch)| consider(batch.created.plus_millis(self.settings.linger_ms)));
        self.in_flight.values().for_each(|in_flight| consider(in_flight.deadline));
        for (partition, queue) in &self.queued {
            let delivery_timeout_ms = self.clients.delivery_timeout_ms;
            queue.iter().for_each(|batch| consider(batch.created.plus_millis(delivery_timeout_ms)));
            if let (Some(front), Some((leader, _))) = (queue.front(), self.metadata.leader(*partition)) {
                if self.in_flight_to(NodeId(leader)) < self.settings.max_in_flight {
                    consider(front.retry_at);
                }
            }
        }
        if let Some((_, deadline)) = self.metadata.in_flight {
            consider(deadline);
        }
        if let Some(at) = self.metadata.wanted_at(self.has_work()) {
            if self.has_work() {
                consider(at);
            }
        }
        earliest
    }

    /// Does everything possible at `now`.
    pub fn poll(&mut self, now: Time, wall_clock_ms: i64, history: &mut History) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.expire(now, history);
        self.application_sends(now);
        self.seal_ready(now, wall_clock_ms, history);
        if self.has_work() {
            self.next_correlation_id += 1;
            let timeout_ms = self.clients.request_timeout_ms;
            match self.metadata.request(now, self.next_correlation_id, timeout_ms, true) {
                Some(request) => out.push(request),
                None => self.next_correlation_id -= 1,
            }
        }
        self.send_batches(now, history, &mut out);
        out
    }

    /// Timed-out requests, and batches past `delivery.timeout.ms`.
    fn expire(&mut self, now: Time, history: &mut History) {
        self.metadata.expire(now);
        let expired: Vec<u64> =
            self.in_flight.iter().filter(|(_, f)| f.deadline <= now).map(|(id, _)| *id).collect();
        for correlation_id in expired {
            let in_flight = self.in_flight.remove(&correlation_id).expect("listed above");
            let mut batch = in_flight.batch;
            // The request may have been appended; the broker may be gone.
            batch.maybe_appended = true;
            batch.last_error = Some("request timed out".into());
            self.metadata.invalidate();
            self.retry_or_give_up(now, batch, history);
        }
        let delivery_timeout_ms = self.clients.delivery_timeout_ms;
        for queue in self.queued.values_mut() {
            // Checked first: rebuilding every queue on every poll moved every buffered batch.
            if !queue.iter().any(|batch| batch.created.plus_millis(delivery_timeout_ms) <= now) {
                continue;
            }
            let mut kept = VecDeque::with_capacity(queue.len());
            for batch in queue.drain(..) {
                if batch.created.plus_millis(delivery_timeout_ms) <= now {
                    let error =
                        format!("delivery timeout ({})", batch.last_error.as_deref().unwrap_or("never sent"));
                    complete(
                        &self.topic,
                        self.process,
                        self.settings.acks,
                        now,
                        history,
                        &batch,
                        None,
                        Some(error),
                    );
                } else {
                    kept.push_back(batch);
                }
            }
            *queue = kept;
        }
        self.queued.retain(|_, queue| !queue.is_empty());
    }

    /// The application's `send` calls due by `now`.
    fn application_sends(&mut self, now: Time) {
        let Some(partitions) = self.metadata.partitions else { return };
        if self.stopped || now < self.next_send_at || self.buffered() >= self.buffer_records_max() {
            return;
        }
        self.next_send_at = now.plus_millis(self.settings.send_interval_ms);
        let count = rng::range_u64(&mut self.rng, 1, u64::from(self.settings.records_per_send_max));
        for _ in 0..count {
            let key = rng::chance(&mut self.rng, self.settings.keyed_probability).then(|| {
                format!("k{}", rng::range_u64(&mut self.rng, 0, u64::from(self.settings.key_count) - 1))
            });
            let partition = match &key {
                Some(key) => partition_for_key(key.as_bytes(), partitions),
                None => match self.sticky {
                    Some(partition) if partition < partitions => partition,
                    _ => self.new_sticky(partitions),
                },
            };
            let id = format!("{}-{}", self.process, self.next_value);
            self.next_value += 1;
            let padding = rng::range_u64(&mut self.rng, 0, u64::from(self.settings.value_bytes_max)) as usize;
            let value = format!("{id}:{}", "x".repeat(padding));
            let batch =
                self.open.entry(partition).or_insert_with(|| OpenBatch { records: Vec::new(), created: now });
            batch.records.push((key, id, value));
        }
    }

    fn new_sticky(&mut self, partitions: u32) -> u32 {
        let partition = rng::range_u64(&mut self.rng, 0, u64::from(partitions) - 1) as u32;
        self.sticky = Some(partition);
        partition
    }

    /// Seals the open batches that are full, or whose linger passed while nothing of their
    /// partition waits to be sent (all of them once stopped). As in Kafka's accumulator, records
    /// keep joining a partition's last batch while earlier batches wait, so a slow partition
    /// sends fuller batches instead of a queue of small ones.
    fn seal_ready(&mut self, now: Time, wall_clock_ms: i64, history: &mut History) {
        let linger_ms = self.settings.linger_ms;
        let full = self.settings.batch_records_max as usize;
        let ready: Vec<u32> = self
            .open
            .iter()
            .filter(|(partition, b)| {
                let waiting = self.queued.get(partition).is_some_and(|queue| !queue.is_empty());
                self.stopped
                    || b.records.len() >= full
                    || (!waiting && b.created.plus_millis(linger_ms) <= now)
            })
            .map(|(partition, _)| *partition)
            .collect();
        for partition in ready {
            let open = self.open.remove(&partition).expect("listed above");
            for chunk in open.records.chunks(full) {
                self.seal(now, wall_clock_ms, partition, open.created, chunk, history);
            }
            if self.sticky == Some(partition) {
                // KIP-480: a new batch for null keys goes to another sticky partition.
                if let Some(partitions) = self.metadata.partitions {
                    self.new_sticky(partitions);
                }
            }
        }
    }

    fn seal(
        &mut self,
        now: Time,
        wall_clock_ms: i64,
        partition: u32,
        created: Time,
        records: &[(Option<String>, String, String)],
        history: &mut History,
    ) {
        let encoded: Vec<NewRecord> = records
            .iter()
            .map(|(key, _, value)| NewRecord {
                timestamp: wall_clock_ms,
                key: key.as_ref().map(|key| key.clone().into_bytes()),
                value: Some(value.clone().into_bytes()),
                headers: Vec::new(),
            })
            .collect();
        let batch = Batch {
            partition,
            keys: records.iter().map(|(key, _, _)| key.clone()).collect(),
            values: records.iter().map(|(_, id, _)| id.clone()).collect(),
            bytes: record::encode_batch(&encoded, ProducerInfo::NONE),
            created,
            attempts: 0,
            maybe_appended: false,
            retry_at: now,
            last_error: None,
        };
        history.push(Op {
            records: batch.values.iter().map(|id| (-1, id.clone())).collect(),
            keys: batch.keys.clone(),
            acks: Some(self.settings.acks),
            topic: Some(self.topic.clone()),
            ..Op::new(time_ms(now), self.process, OpKind::Send, OpType::Invoke, partition)
        });
        self.queued.entry(partition).or_default().push_back(batch);
    }

    /// Sends what the leaders and the in-flight limit allow, each partition's batches in order.
    fn send_batches(&mut self, now: Time, history: &mut History, out: &mut Vec<Outgoing>) {
        let partitions: Vec<u32> = self.queued.keys().copied().collect();
        for partition in partitions {
            while let Some(front) = self.queued.get(&partition).and_then(VecDeque::front) {
                if front.retry_at > now {
                    break;
                }
                let Some((leader, _)) = self.metadata.leader(partition) else {
                    self.metadata.invalidate();
                    break;
                };
                let to = NodeId(leader);
                if self.in_flight_to(to) >= self.settings.max_in_flight {
                    break;
                }
                let queue = self.queued.get_mut(&partition).expect("has a front");
                let mut batch = queue.pop_front().expect("has a front");
                if queue.is_empty() {
                    self.queued.remove(&partition);
                }
                batch.attempts += 1;
                self.next_correlation_id += 1;
                let correlation_id = self.next_correlation_id;
                let request = ClientRequest::Produce {
                    topic: self.topic.clone(),
                    partition,
                    acks: self.settings.acks,
                    timeout_ms: self.clients.request_timeout_ms as u32,
                    batch: batch.bytes.clone(),
                };
                out.push((to, NodeMessage::Client { correlation_id, request }));
                if self.settings.acks == Acks::None {
                    // acks=0: no answer comes; whether it was appended stays unknown.
                    let error = Some("acks=0: no answer".to_string());
                    complete(&self.topic, self.process, Acks::None, now, history, &batch, None, error);
                    continue;
                }
                let deadline = now.plus_millis(self.clients.request_timeout_ms);
                self.in_flight.insert(correlation_id, InFlight { batch, to, deadline });
            }
        }
    }

    pub fn on_response(
        &mut self,
        now: Time,
        correlation_id: u64,
        response: ClientResponse,
        history: &mut History,
    ) {
        if self.metadata.on_response(now, correlation_id, &response) {
            return;
        }
        let Some(in_flight) = self.in_flight.remove(&correlation_id) else {
            return; // An answer to a request that already timed out.
        };
        let mut batch = in_flight.batch;
        let ClientResponse::Produce(result) = response else {
            batch.maybe_appended = true;
            batch.last_error = Some("unexpected answer".into());
            self.retry_or_give_up(now, batch, history);
            return;
        };
        match result {
            Ok(ok) => {
                let offsets: Vec<i64> = (0..batch.values.len() as i64).map(|i| ok.base_offset + i).collect();
                complete(
                    &self.topic,
                    self.process,
                    self.settings.acks,
                    now,
                    history,
                    &batch,
                    Some(&offsets),
                    None,
                );
            }
            Err(code) => {
                if refreshes_metadata(code) {
                    self.metadata.invalidate();
                }
                if self.network_duplicates || !definitely_not_appended(code) {
                    batch.maybe_appended = true;
                }
                batch.last_error = Some(code.name().to_string());
                if code.is_retriable() {
                    self.retry_or_give_up(now, batch, history);
                } else {
                    self.give_up(now, batch, history);
                }
            }
        }
    }

    fn retry_or_give_up(&mut self, now: Time, mut batch: Batch, history: &mut History) {
        let expired = batch.created.plus_millis(self.clients.delivery_timeout_ms) <= now;
        if batch.attempts > self.clients.retries || expired {
            self.give_up(now, batch, history);
            return;
        }
        batch.retry_at = now.plus_millis(self.clients.retry_backoff_ms);
        self.queued.entry(batch.partition).or_default().push_front(batch);
    }

    fn give_up(&mut self, now: Time, batch: Batch, history: &mut History) {
        let error = batch.last_error.clone();
        complete(&self.topic, self.process, self.settings.acks, now, history, &batch, None, error);
    }
}

/// Completes a batch's operation: `ok` with its offsets, else `info` if some attempt may have
/// been appended (or `acks=0`), `fail` if none can have been.
#[allow(clippy::too_many_arguments)]
fn complete(
    topic: &str,
    process: u32,
    acks: Acks,
    now: Time,
    history: &mut History,
    batch: &Batch,
    offsets: Option<&[i64]>,
    error: Option<String>,
) {
    let op_type = match offsets {
        Some(_) => OpType::Ok,
        None if batch.maybe_appended || (acks == Acks::None && batch.attempts > 0) => OpType::Info,
        None => OpType::Fail,
    };
    let records = batch
        .values
        .iter()
        .enumerate()
        .map(|(i, id)| (offsets.and_then(|o| o.get(i).copied()).unwrap_or(-1), id.clone()))
        .collect();
    history.push(Op {
        records,
        keys: batch.keys.clone(),
        acks: Some(acks),
        error,
        topic: Some(topic.to_string()),
        attempts: Some(batch.attempts),
        ..Op::new(time_ms(now), process, OpKind::Send, op_type, batch.partition)
    });
}

// ---- the consumer ----

/// What a consumer's request in flight asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Metadata,
    /// The earliest offset: the initial position, or a reset from the position it had.
    Earliest {
        reset_from: Option<i64>,
    },
    /// The high watermark (the final consumer's target).
    Latest,
    /// OffsetForLeaderEpoch for the epoch of the last consumed record, under `leader_epoch`.
    Validate {
        epoch: i32,
        leader_epoch: i32,
    },
    Fetch,
}

/// A fetched batch that failed validation: the partition, the position, when.
#[derive(Clone, Debug)]
pub struct CorruptRead {
    pub partition: u32,
    pub position: i64,
    pub time_ms: f64,
    pub detail: String,
}

pub struct Consumer {
    pub process: u32,
    pub node: NodeId,
    pub partition: u32,
    topic: String,
    clients: ClientSettings,
    metadata: Metadata,
    /// `None` until the first ListOffsets answer.
    position: Option<i64>,
    /// The leader epoch of the last record consumed.
    last_fetched_epoch: Option<i32>,
    /// The leader epoch under which the position was last validated.
    validated_epoch: Option<i32>,
    /// A reset to the earliest offset is due, and why.
    reset_reason: Option<String>,
    in_flight: Option<(u64, Time, Asked)>,
    next_correlation_id: u64,
    not_before: Time,
    is_final: bool,
    started: bool,
    stopped: bool,
    final_target: Option<i64>,
    done: bool,
    final_records: Vec<(i64, String)>,
    final_keys: Vec<Option<String>>,
    pub corrupt_reads: Vec<CorruptRead>,
}

impl Consumer {
    pub fn new(
        process: u32,
        node: NodeId,
        brokers: Vec<NodeId>,
        partition: u32,
        workload: &TopicWorkloadOptions,
        is_final: bool,
    ) -> Consumer {
        Consumer {
            process,
            node,
            partition,
            topic: workload.topic.name.clone(),
            clients: workload.clients.clone(),
            metadata: Metadata::new(&workload.topic.name, brokers, process as usize, &workload.clients),
            position: None,
            last_fetched_epoch: None,
            validated_epoch: None,
            reset_reason: None,
            in_flight: None,
            next_correlation_id: 0,
            not_before: Time::ZERO,
            is_final,
            // Final consumers sleep until the world starts them.
            started: !is_final,
            stopped: false,
            final_target: None,
            done: false,
            final_records: Vec::new(),
            final_keys: Vec::new(),
            corrupt_reads: Vec::new(),
        }
    }

    /// The offset the final read must reach (the high watermark when it began), once known.
    pub fn final_target(&self) -> Option<i64> {
        self.final_target
    }

    pub fn is_final(&self) -> bool {
        self.is_final
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn start(&mut self, now: Time) {
        self.started = true;
        self.not_before = now;
    }

    /// A regular consumer stops polling when the chaos ends.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    fn active(&self) -> bool {
        self.started && !self.stopped && !self.done
    }

    pub fn alarm(&self) -> Option<Time> {
        if !self.active() {
            return None;
        }
        match self.in_flight {
            Some((_, deadline, _)) => Some(deadline),
            None => Some(self.not_before),
        }
    }

    fn backoff(&mut self, now: Time) {
        self.not_before = now.plus_millis(self.clients.retry_backoff_ms);
    }

    pub fn poll(&mut self, now: Time) -> Vec<Outgoing> {
        if !self.active() {
            return Vec::new();
        }
        if let Some((_, deadline, asked)) = self.in_flight {
            if now < deadline {
                return Vec::new();
            }
            self.in_flight = None;
            if asked == Asked::Metadata {
                self.metadata.expire(now);
            } else {
                self.metadata.invalidate();
            }
        }
        if now < self.not_before {
            return Vec::new();
        }
        self.next_correlation_id += 1;
        let correlation_id = self.next_correlation_id;
        let timeout_ms = self.clients.request_timeout_ms;
        if let Some(request) = self.metadata.request(now, correlation_id, timeout_ms, true) {
            let (_, deadline) = self.metadata.in_flight.expect("just sent");
            self.in_flight = Some((correlation_id, deadline, Asked::Metadata));
            return vec![request];
        }
        let Some((leader, leader_epoch)) = self.metadata.leader(self.partition) else {
            self.metadata.invalidate();
            self.backoff(now);
            return Vec::new();
        };
        let partition = self.partition;
        let topic = self.topic.clone();
        let list = |spec| ClientRequest::ListOffsets {
            topic: topic.clone(),
            partition,
            current_leader_epoch: Some(leader_epoch),
            spec,
        };
        let (request, asked) = match (self.position, &self.reset_reason) {
            (None, _) => (list(OffsetSpec::Earliest), Asked::Earliest { reset_from: None }),
            (Some(position), Some(_)) => {
                (list(OffsetSpec::Earliest), Asked::Earliest { reset_from: Some(position) })
            }
            (Some(position), None) => {
                if self.is_final && self.final_target.is_none() {
                    (list(OffsetSpec::Latest), Asked::Latest)
                } else if let Some(epoch) =
                    self.last_fetched_epoch.filter(|_| self.validated_epoch != Some(leader_epoch))
                {
                    let request = ClientRequest::OffsetForLeaderEpoch {
                        topic: topic.clone(),
                        partition,
                        current_leader_epoch: Some(leader_epoch),
                        leader_epoch: epoch,
                    };
                    (request, Asked::Validate { epoch, leader_epoch })
                } else {
                    let fetch = FetchRequest {
                        topic: topic.clone(),
                        partition,
                        fetch_offset: position,
                        replica: None,
                        current_leader_epoch: Some(leader_epoch),
                        last_fetched_epoch: self.last_fetched_epoch,
                        max_bytes: if self.is_final { 1 << 20 } else { self.clients.fetch_max_bytes },
                        max_wait_ms: self.clients.fetch_max_wait_ms,
                        min_bytes: 1,
                    };
                    (ClientRequest::Fetch(fetch), Asked::Fetch)
                }
            }
        };
        // A long poll may be held up to its wait before the answer.
        let wait_ms = if asked == Asked::Fetch { u64::from(self.clients.fetch_max_wait_ms) } else { 0 };
        self.in_flight = Some((correlation_id, now.plus_millis(timeout_ms + wait_ms), asked));
        vec![(NodeId(leader), NodeMessage::Client { correlation_id, request })]
    }

    pub fn on_response(
        &mut self,
        now: Time,
        correlation_id: u64,
        response: ClientResponse,
        history: &mut History,
    ) {
        let asked = match self.in_flight {
            Some((expected, _, asked)) if expected == correlation_id => asked,
            _ => return, // An answer to a request that already timed out.
        };
        self.in_flight = None;
        self.not_before = now;
        match (asked, response) {
            (Asked::Metadata, response) => {
                self.metadata.on_response(now, correlation_id, &response);
                self.not_before = self.metadata.not_before.max(now);
            }
            (Asked::Earliest { reset_from }, ClientResponse::ListOffsets(Ok(listed))) => {
                if let Some(from) = reset_from {
                    let reason = self.reset_reason.take().unwrap_or_default();
                    self.push(
                        now,
                        history,
                        OpKind::Reset,
                        vec![(from, String::new()), (listed.offset, String::new())],
                        Some(reason),
                    );
                    self.final_records.retain(|(offset, _)| *offset < listed.offset);
                    self.final_keys.truncate(self.final_records.len());
                }
                self.position = Some(listed.offset);
                self.last_fetched_epoch = None;
                self.validated_epoch = None;
            }
            (Asked::Latest, ClientResponse::ListOffsets(Ok(listed))) => {
                self.final_target = Some(listed.offset);
                self.check_final_done(now, history);
            }
            (Asked::Validate { epoch, leader_epoch }, ClientResponse::OffsetForLeaderEpoch(Ok(end))) => {
                self.on_epoch_end(now, history, epoch, leader_epoch, end.leader_epoch, end.end_offset);
            }
            (Asked::Fetch, ClientResponse::Fetch(fetch)) => self.on_fetch(now, history, fetch),
            // An error (NOT_LEADER_OR_FOLLOWER, a fenced or unknown epoch...): find the leader again.
            (_, _) => {
                self.metadata.invalidate();
                self.backoff(now);
            }
        }
    }

    /// The leader's end offset for the epoch of the last consumed record (KIP-320 validation).
    fn on_epoch_end(
        &mut self,
        now: Time,
        history: &mut History,
        asked_epoch: i32,
        leader_epoch: i32,
        end_epoch: i32,
        end_offset: i64,
    ) {
        let Some(position) = self.position else { return };
        if end_epoch < 0 || end_offset < 0 {
            // The leader knows no such epoch: the position cannot be validated; reset.
            self.reset_reason = Some(format!("UNDEFINED end offset for leader epoch {asked_epoch}"));
            return;
        }
        if end_offset < position {
            let detail = format!(
                "leader epoch {asked_epoch} ends at offset {end_offset} on the leader (its epoch {end_epoch}), below the position {position}"
            );
            self.truncate(now, history, position, end_offset, end_epoch, detail);
        }
        self.validated_epoch = Some(leader_epoch);
    }

    fn truncate(&mut self, now: Time, history: &mut History, from: i64, to: i64, epoch: i32, detail: String) {
        self.push(
            now,
            history,
            OpKind::Truncation,
            vec![(from, String::new()), (to, String::new())],
            Some(detail),
        );
        self.position = Some(to);
        self.last_fetched_epoch = Some(epoch);
        let kept = self.final_records.iter().take_while(|(offset, _)| *offset < to).count();
        self.final_records.truncate(kept);
        self.final_keys.truncate(kept);
    }

    fn on_fetch(&mut self, now: Time, history: &mut History, fetch: PartitionFetch) {
        let Some(position) = self.position else { return };
        match fetch.error {
            ErrorCode::None => {}
            ErrorCode::OffsetOutOfRange => {
                self.reset_reason = Some(ErrorCode::OffsetOutOfRange.name().to_string());
                return;
            }
            _ => {
                // KIP-951: the broker names the leader it knows; take it if it is newer.
                if let Some((leader, epoch)) = fetch.current_leader {
                    self.metadata.learn(self.partition, Some(leader), epoch);
                }
                self.metadata.invalidate();
                self.backoff(now);
                return;
            }
        }
        if let Some((epoch, end_offset)) = fetch.diverging_epoch {
            if end_offset < position {
                let detail = format!("the leader's log diverges: its epoch {epoch} ends at {end_offset}");
                self.truncate(now, history, position, end_offset, epoch, detail);
            } else {
                self.last_fetched_epoch = Some(epoch);
            }
            return;
        }
        let mut read = Vec::new();
        let mut keys = Vec::new();
        let mut next = position;
        for batch in record::Batches::new(&fetch.records) {
            let decoded = batch.and_then(|(header, bytes)| Ok((header, record::decode_records(bytes)?.1)));
            let (header, records) = match decoded {
                Ok(decoded) => decoded,
                Err(error) => {
                    self.corrupt_reads.push(CorruptRead {
                        partition: self.partition,
                        position: next,
                        time_ms: time_ms(now),
                        detail: format!("a fetched batch failed validation: {error:?}"),
                    });
                    break;
                }
            };
            if header.is_control() {
                next = next.max(header.last_offset() + 1);
                continue;
            }
            for record in records {
                let offset = header.base_offset + i64::from(record.offset_delta);
                if offset < next {
                    continue; // The front of the first batch, below the position: skipped, as Kafka's consumer does.
                }
                let value = record.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                read.push((offset, crate::client::value_id(&value).to_string()));
                keys.push(record.key.as_deref().map(|key| String::from_utf8_lossy(key).into_owned()));
                next = offset + 1;
            }
            self.last_fetched_epoch = Some(header.partition_leader_epoch);
        }
        self.position = Some(next);
        if read.is_empty() {
            self.not_before = now.plus_millis(self.clients.poll_interval_ms);
        } else {
            if self.is_final {
                self.final_records.extend(read.iter().cloned());
                self.final_keys.extend(keys.iter().cloned());
            }
            history.push(Op {
                records: read,
                keys,
                topic: Some(self.topic.clone()),
                ..Op::new(time_ms(now), self.process, OpKind::Poll, OpType::Ok, self.partition)
            });
        }
        self.check_final_done(now, history);
    }

    fn push(
        &self,
        now: Time,
        history: &mut History,
        kind: OpKind,
        records: Vec<(i64, String)>,
        error: Option<String>,
    ) {
        history.push(Op {
            records,
            error,
            topic: Some(self.topic.clone()),
            ..Op::new(time_ms(now), self.process, kind, OpType::Ok, self.partition)
        });
    }

    fn check_final_done(&mut self, now: Time, history: &mut History) {
        let (Some(target), Some(position)) = (self.final_target, self.position) else { return };
        if !self.is_final || self.done || position < target {
            return;
        }
        self.done = true;
        history.push(Op {
            records: std::mem::take(&mut self.final_records),
            keys: std::mem::take(&mut self.final_keys),
            topic: Some(self.topic.clone()),
            ..Op::new(time_ms(now), self.process, OpKind::FinalRead, OpType::Ok, self.partition)
        });
    }

    /// Ends a final consumer's read: one that did not finish records what it read as an
    /// indefinite final read. Returns the offset it reached (the checker judges below it).
    pub fn end_final_read(&mut self, now: Time, history: &mut History) -> Option<i64> {
        if !self.is_final {
            return None;
        }
        if !self.done && self.started {
            history.push(Op {
                records: std::mem::take(&mut self.final_records),
                keys: std::mem::take(&mut self.final_keys),
                topic: Some(self.topic.clone()),
                error: Some("the liveness bound ended the final read here".into()),
                ..Op::new(time_ms(now), self.process, OpKind::FinalRead, OpType::Info, self.partition)
            });
        }
        Some(self.position.unwrap_or(0).max(0))
    }
}

/// One client of the cluster workload.
pub enum Client {
    Creator(Box<TopicCreator>),
    Producer(Box<Producer>),
    Consumer(Box<Consumer>),
}

impl Client {
    pub fn node(&self) -> NodeId {
        match self {
            Client::Creator(c) => c.node,
            Client::Producer(p) => p.node,
            Client::Consumer(c) => c.node,
        }
    }

    pub fn alarm(&self) -> Option<Time> {
        match self {
            Client::Creator(c) => c.alarm(),
            Client::Producer(p) => p.alarm(),
            Client::Consumer(c) => c.alarm(),
        }
    }

    pub fn poll(&mut self, now: Time, wall_clock_ms: i64, history: &mut History) -> Vec<Outgoing> {
        match self {
            Client::Creator(c) => c.poll(now),
            Client::Producer(p) => p.poll(now, wall_clock_ms, history),
            Client::Consumer(c) => c.poll(now),
        }
    }

    pub fn on_response(
        &mut self,
        now: Time,
        correlation_id: u64,
        response: ClientResponse,
        history: &mut History,
    ) {
        match self {
            Client::Creator(c) => c.on_response(now, correlation_id, response),
            Client::Producer(p) => p.on_response(now, correlation_id, response, history),
            Client::Consumer(c) => c.on_response(now, correlation_id, response, history),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas() {
        // Kafka's UtilsTest values.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58_897_971);
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn keys_map_to_the_positive_masked_hash_modulo_the_partitions() {
        // -973932308 & 0x7fffffff = 1173551340.
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
        for key in ["k0", "k1", "k77"] {
            assert!(partition_for_key(key.as_bytes(), 5) < 5);
            assert_eq!(partition_for_key(key.as_bytes(), 1), 0);
        }
    }
}
