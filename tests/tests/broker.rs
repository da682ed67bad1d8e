//! The broker node's state machine, driven directly as a driver would drive it.
//!
//! A small [`Node`] harness plays the driver: it builds an [`Env`] over a [`SimDisk`] for every
//! input, drains [`Broker::poll_effect`] after it, requests the disk sync of every
//! [`Effect::Sync`] when it is polled (so the sync covers the file as it is then) and completes
//! those syncs only when a test says so, in request order. Replies, halts and the end of a
//! shutdown are recorded in the order the broker emitted them, so each test reads as a story:
//! "produce, nothing answered yet, the sync completes, now it is answered".
//!
//! The disk is reliable apart from what a test does to it on purpose (a crash, a byte flipped in a
//! segment file, a failed sync or truncate), and BUGGIFY is off, so every run is the same.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use seedlog_core::broker::{partition_dir, Broker, BrokerConfig, Effect, SyncToken};
use seedlog_core::env::{Env, Plant, Storage, StorageError, Time};
use seedlog_core::log::{LogConfig, RecoveryReport};
use seedlog_core::protocol::{Acks, ErrorCode, FetchData, Message, OffsetSpec, Request, RequestId, Response};
use seedlog_core::record::{consume, encode_batch, ConsumedRecord, NewRecord, ProducerInfo};
use seedlog_sim::buggify::SimFaults;
use seedlog_sim::disk::{CrashReport, DiskOptions, SimDisk, SyncTicket};
use seedlog_sim::rng::stream;

/// The client node every request comes from.
const CLIENT: u32 = 100;
/// Wall clock at the start of every story (milliseconds since the epoch).
const WALL_START_MS: i64 = 1_700_000_000_000;
const BIG: u32 = 1 << 20;

/// The simulated disk, with two switches a test can throw to make storage fail on purpose.
struct TestDisk {
    sim: SimDisk,
    /// `truncate` returns `Io` (the partition cannot be cut).
    fail_truncates: bool,
}

impl Storage for TestDisk {
    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        self.sim.create(path)
    }
    fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.sim.write_at(path, offset, data)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        self.sim.append(path, data)
    }
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.sim.read_at(path, offset, buf)
    }
    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        self.sim.len(path)
    }
    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        if self.fail_truncates {
            return Err(StorageError::Io);
        }
        self.sim.truncate(path, len)
    }
    fn list(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.sim.list(prefix)
    }
    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.sim.remove(path)
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        self.sim.rename(from, to)
    }
}

/// What the broker emitted that a test looks at, in emission order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Reply(RequestId, Response),
    Halt(String),
    ShutdownComplete,
}

/// One broker node and its driver.
struct Node {
    disk: TestDisk,
    rng: ChaCha8Rng,
    faults: SimFaults,
    now: Time,
    wall_clock_ms: i64,
    config: BrokerConfig,
    broker: Broker,
    recovery: Vec<RecoveryReport>,
    /// Syncs the broker asked for and the disk was asked for, oldest first.
    syncs: VecDeque<(SyncToken, Result<SyncTicket, StorageError>)>,
    /// Every sync the broker ever asked for (path), for counting rounds.
    sync_paths: Vec<String>,
    seen: Vec<Seen>,
    /// Set by a Halt or ShutdownComplete: this incarnation must not emit anything more.
    stopped: bool,
    next_correlation: u64,
}

impl Node {
    fn new(seed: u64, config: BrokerConfig) -> Node {
        Node::with_plants(seed, config, BTreeSet::new())
    }

    fn with_plants(seed: u64, config: BrokerConfig, plants: BTreeSet<Plant>) -> Node {
        let sim = SimDisk::new(DiskOptions::reliable(), stream(seed, "disk/n0"));
        let mut disk = TestDisk { sim, fail_truncates: false };
        let mut rng = stream(seed, "node/n0");
        let mut faults = SimFaults::new(false, plants, stream(seed, "buggify"));
        let now = Time::ZERO;
        let wall_clock_ms = WALL_START_MS;
        let mut env = Env { now, wall_clock_ms, storage: &mut disk, rng: &mut rng, faults: &mut faults };
        let (broker, recovery) = Broker::start(&mut env, config.clone()).expect("a fresh broker starts");
        Node {
            disk,
            rng,
            faults,
            now,
            wall_clock_ms,
            config,
            broker,
            recovery,
            syncs: VecDeque::new(),
            sync_paths: Vec::new(),
            seen: Vec::new(),
            stopped: false,
            next_correlation: 0,
        }
    }

    /// One input to the broker, then every effect it asks for.
    fn step<R>(&mut self, input: impl FnOnce(&mut Broker, &mut Env<'_>) -> R) -> R {
        let mut env = Env {
            now: self.now,
            wall_clock_ms: self.wall_clock_ms,
            storage: &mut self.disk,
            rng: &mut self.rng,
            faults: &mut self.faults,
        };
        let result = input(&mut self.broker, &mut env);
        self.drain();
        result
    }

    fn drain(&mut self) {
        while let Some(effect) = self.broker.poll_effect() {
            assert!(!self.stopped, "the broker emitted {effect:?} after it halted or shut down");
            match effect {
                Effect::Send { to, message } => {
                    let Message::Response { id, response } = message else {
                        panic!("the broker sent a request: {message:?}");
                    };
                    assert_eq!(to, id.client, "an answer goes to the client that asked");
                    self.seen.push(Seen::Reply(id, response));
                }
                Effect::Sync { token, path } => {
                    // Captured now: the sync covers the file as it is when the effect is polled.
                    let ticket = self.disk.sim.request_sync(&path);
                    self.syncs.push_back((token, ticket));
                    self.sync_paths.push(path);
                }
                Effect::Halt { reason } => {
                    self.seen.push(Seen::Halt(reason));
                    self.stopped = true;
                }
                Effect::ShutdownComplete => {
                    self.seen.push(Seen::ShutdownComplete);
                    self.stopped = true;
                }
            }
        }
    }

    // ---- requests ----

    fn send(&mut self, request: Request) -> RequestId {
        self.next_correlation += 1;
        let id = RequestId { client: CLIENT, correlation_id: self.next_correlation };
        self.step(|broker, env| broker.handle_message(env, Message::Request { id, request }));
        id
    }

    fn produce_bytes(&mut self, acks: Acks, batch: Vec<u8>) -> RequestId {
        self.send(Request::Produce { partition: 0, acks, batch })
    }

    /// One batch holding `values`, every record stamped with the wall clock.
    fn produce(&mut self, acks: Acks, values: &[&str]) -> RequestId {
        let batch = batch_at(self.wall_clock_ms, values);
        self.produce_bytes(acks, batch)
    }

    /// The reply to `id`, if the broker has sent one (exactly one, ever).
    fn reply(&self, id: RequestId) -> Option<&Response> {
        let mut replies = self.seen.iter().filter_map(|seen| match seen {
            Seen::Reply(reply_id, response) if *reply_id == id => Some(response),
            _ => None,
        });
        let first = replies.next();
        assert!(replies.next().is_none(), "request {id:?} was answered twice");
        first
    }

    fn produce_reply(&self, id: RequestId) -> Option<Result<i64, ErrorCode>> {
        self.reply(id).map(|response| match response {
            Response::Produce(result) => *result,
            other => panic!("a produce was answered with {other:?}"),
        })
    }

    /// Requests whose replies came, in the order they came.
    fn answered_in_order(&self) -> Vec<RequestId> {
        self.seen
            .iter()
            .filter_map(|seen| match seen {
                Seen::Reply(id, _) => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn replies_count(&self) -> usize {
        self.answered_in_order().len()
    }

    /// A fetch of partition 0, which a running broker answers at once.
    fn fetch(&mut self, offset: i64, max_bytes: u32) -> Result<FetchData, ErrorCode> {
        self.fetch_partition(0, offset, max_bytes)
    }

    fn fetch_partition(
        &mut self,
        partition: u32,
        offset: i64,
        max_bytes: u32,
    ) -> Result<FetchData, ErrorCode> {
        let id = self.send(Request::Fetch { partition, offset, max_bytes });
        match self.reply(id) {
            Some(Response::Fetch(result)) => result.clone(),
            other => panic!("a fetch was answered with {other:?}"),
        }
    }

    fn list_offsets(&mut self, spec: OffsetSpec) -> Result<(i64, i64), ErrorCode> {
        let id = self.send(Request::ListOffsets { partition: 0, spec });
        match self.reply(id) {
            Some(Response::ListOffsets(result)) => *result,
            other => panic!("a ListOffsets was answered with {other:?}"),
        }
    }

    /// Everything a consumer can read from the log start up to the high watermark.
    fn consume_all(&mut self) -> Vec<ConsumedRecord> {
        let mut offset = self.list_offsets(OffsetSpec::Earliest).expect("earliest").0;
        let mut records = Vec::new();
        loop {
            let data = self.fetch(offset, BIG).expect("a fetch inside the log succeeds");
            let batch = consume(&data.batches).expect("every served batch is valid");
            let Some(last) = batch.last() else {
                assert_eq!(offset, data.high_watermark, "an empty fetch below the high watermark");
                return records;
            };
            offset = last.offset + 1;
            records.extend(batch);
        }
    }

    fn values(&mut self) -> Vec<String> {
        self.consume_all()
            .into_iter()
            .map(|record| String::from_utf8(record.value.expect("every record has a value")).unwrap())
            .collect()
    }

    fn high_watermark(&self) -> i64 {
        self.broker.high_watermark(0).expect("partition 0 exists")
    }

    fn log_end(&self) -> i64 {
        self.broker.log(0).expect("partition 0 exists").log_end_offset()
    }

    // ---- syncs ----

    /// Completes the oldest outstanding sync on the disk and reports `report` (or, if `None`, what
    /// the disk said) to the broker.
    fn complete_next_sync_as(&mut self, report: Option<Result<(), StorageError>>) -> SyncToken {
        let (token, ticket) = self.syncs.pop_front().expect("a sync is outstanding");
        let outcome = match ticket {
            Ok(ticket) => self.disk.sim.complete_sync(ticket),
            Err(error) => Err(error),
        };
        let result = report.unwrap_or(outcome);
        self.step(|broker, env| broker.handle_sync_complete(env, token, result));
        token
    }

    fn complete_next_sync(&mut self) -> SyncToken {
        self.complete_next_sync_as(None)
    }

    /// Completes syncs until none is outstanding.
    fn complete_all_syncs(&mut self) {
        for _ in 0..1_000 {
            if self.syncs.is_empty() || self.stopped {
                return;
            }
            self.complete_next_sync();
        }
        panic!("syncs never stop coming");
    }

    // ---- time ----

    fn advance_to(&mut self, at: Time) {
        assert!(at >= self.now);
        self.wall_clock_ms += (at.as_millis() - self.now.as_millis()) as i64;
        self.now = at;
    }

    fn advance_millis(&mut self, ms: u64) {
        self.advance_to(self.now.plus_millis(ms));
    }

    /// Fires every timer due by `until`, completing the syncs each one asks for.
    fn run_timers_until(&mut self, until: Time) {
        while let Some(deadline) = self.broker.next_deadline().filter(|deadline| *deadline <= until) {
            self.advance_to(deadline);
            self.step(|broker, env| broker.handle_timer(env));
            self.complete_all_syncs();
        }
        self.advance_to(until);
    }

    // ---- lifecycle ----

    fn begin_shutdown(&mut self) {
        self.step(|broker, env| broker.begin_shutdown(env));
    }

    fn shutdown(&mut self) {
        self.begin_shutdown();
        self.complete_all_syncs();
        assert_eq!(self.seen.last(), Some(&Seen::ShutdownComplete));
    }

    /// A new incarnation on the same disk (after a shutdown, a halt or a crash).
    fn restart(&mut self) {
        self.syncs.clear(); // The old process's syncs died with it.
        self.advance_millis(1);
        let mut env = Env {
            now: self.now,
            wall_clock_ms: self.wall_clock_ms,
            storage: &mut self.disk,
            rng: &mut self.rng,
            faults: &mut self.faults,
        };
        let (broker, recovery) = Broker::start(&mut env, self.config.clone()).expect("the broker restarts");
        self.broker = broker;
        self.recovery = recovery;
        self.stopped = false;
        self.seen.clear();
    }

    /// Power loss, then a restart.
    fn crash_and_restart(&mut self) -> CrashReport {
        let report = self.disk.sim.crash();
        self.restart();
        report
    }

    fn segment_file(&self) -> String {
        let base = self.broker.log(0).unwrap().segment_base_offsets()[0];
        format!("{}/{base:020}.log", partition_dir(0))
    }
}

fn batch_at(timestamp: i64, values: &[&str]) -> Vec<u8> {
    let records: Vec<NewRecord> =
        values.iter().map(|value| NewRecord::unkeyed(timestamp, value.as_bytes())).collect();
    encode_batch(&records, ProducerInfo::NONE)
}

/// A batch whose records carry their own timestamps.
fn batch_with_timestamps(records: &[(i64, &str)]) -> Vec<u8> {
    let records: Vec<NewRecord> =
        records.iter().map(|(timestamp, value)| NewRecord::unkeyed(*timestamp, value.as_bytes())).collect();
    encode_batch(&records, ProducerInfo::NONE)
}

fn config() -> BrokerConfig {
    BrokerConfig::default()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

// ---- acks=all and group commit ----

#[test]
fn acks_all_is_answered_only_after_the_sync_covering_it_completes() {
    let mut node = Node::new(1, config());
    let produce = node.produce(Acks::All, &["a"]);

    assert_eq!(node.produce_reply(produce), None, "not durable yet, so not answered");
    assert_eq!(node.syncs.len(), 1, "the broker asked for the sync that makes it durable");
    assert_eq!(node.log_end(), 1, "the batch is appended");
    assert_eq!(node.high_watermark(), 0, "but not committed");

    // Time passing and other requests do not answer it either.
    node.advance_millis(10);
    assert_eq!(node.fetch(0, BIG).unwrap().batches, Vec::<u8>::new());
    assert_eq!(node.produce_reply(produce), None);

    node.complete_next_sync();
    assert_eq!(node.produce_reply(produce), Some(Ok(0)));
    assert_eq!(node.high_watermark(), 1);
    assert_eq!(node.values(), strings(&["a"]));
}

#[test]
fn acks_all_produces_waiting_for_one_sync_are_answered_together_in_order() {
    let mut node = Node::new(2, config());
    let first = node.produce(Acks::All, &["a"]);
    let second = node.produce(Acks::All, &["b", "c"]);
    let third = node.produce(Acks::All, &["d"]);
    assert_eq!(node.syncs.len(), 1, "one round in flight; later batches wait for the next one");
    assert_eq!(node.replies_count(), 0);

    node.complete_next_sync();
    assert_eq!(node.produce_reply(first), Some(Ok(0)));
    // The second and third were appended after the first round was requested: one more round
    // covers both (group commit), not one each.
    assert_eq!(node.syncs.len(), 1, "one round for both waiting batches");
    node.complete_all_syncs();

    assert_eq!(node.answered_in_order(), vec![first, second, third], "answered in produce order");
    assert_eq!(node.produce_reply(second), Some(Ok(1)));
    assert_eq!(node.produce_reply(third), Some(Ok(3)));
    assert_eq!(node.sync_paths.len(), 2, "two sync rounds for three acks=all produces");
    assert_eq!(node.high_watermark(), 4);
}

#[test]
fn acks_all_produces_before_one_sync_request_share_it() {
    let mut node = Node::new(3, config());
    // An acks=1 batch sits unsynced; the flush timer's round will cover it...
    node.produce(Acks::Leader, &["x"]);
    node.run_timers_until(Time::from_millis(999));
    assert!(node.syncs.is_empty());
    node.advance_to(Time::from_millis(1_000));
    node.step(|broker, env| broker.handle_timer(env));
    assert_eq!(node.syncs.len(), 1);
    // ... and acks=all batches appended while it is in flight are all answered by the next round.
    let a = node.produce(Acks::All, &["a"]);
    let b = node.produce(Acks::All, &["b"]);
    node.complete_next_sync();
    assert_eq!(node.replies_count(), 1, "only the acks=1 answer so far");
    assert_eq!(node.syncs.len(), 1);
    node.complete_next_sync();
    assert_eq!(node.produce_reply(a), Some(Ok(1)));
    assert_eq!(node.produce_reply(b), Some(Ok(2)));
    assert!(node.syncs.is_empty(), "nothing waits, so no further round");
}

#[test]
fn each_partition_commits_on_its_own_syncs() {
    let mut node = Node::new(20, BrokerConfig { partitions: 2, ..config() });
    let batch = || batch_at(WALL_START_MS, &["x"]);
    let p0 = node.send(Request::Produce { partition: 0, acks: Acks::All, batch: batch() });
    let p1 = node.send(Request::Produce { partition: 1, acks: Acks::All, batch: batch() });
    assert_eq!(node.sync_paths.len(), 2);
    assert!(
        node.sync_paths[0].starts_with(&partition_dir(0))
            && node.sync_paths[1].starts_with(&partition_dir(1))
    );

    node.complete_next_sync();
    assert_eq!(node.produce_reply(p0), Some(Ok(0)));
    assert_eq!(node.produce_reply(p1), None, "partition 0's sync does not commit partition 1");
    assert_eq!((node.broker.high_watermark(0), node.broker.high_watermark(1)), (Some(1), Some(0)));
    node.complete_next_sync();
    assert_eq!(node.produce_reply(p1), Some(Ok(0)));
    assert_eq!(node.broker.high_watermark(1), Some(1));
    assert_eq!(node.broker.high_watermark(2), None);
}

// ---- acks=1 and acks=0 ----

#[test]
fn acks_1_is_answered_at_once_and_acks_0_is_stored_without_an_answer() {
    let mut node = Node::new(4, config());
    let leader = node.produce(Acks::Leader, &["one"]);
    assert_eq!(node.produce_reply(leader), Some(Ok(0)), "answered after the append, before any sync");
    assert!(node.syncs.is_empty(), "acks=1 does not ask for a sync");

    let replies = node.replies_count();
    let none = node.produce(Acks::None, &["zero", "zero again"]);
    assert_eq!(node.reply(none), None);
    assert_eq!(node.replies_count(), replies, "acks=0 gets no answer at all");
    assert_eq!(node.log_end(), 3, "but it is stored");

    // Neither is visible until a sync makes it durable: the flush interval does that.
    assert_eq!(node.high_watermark(), 0);
    node.run_timers_until(Time::from_millis(1_000));
    assert_eq!(node.high_watermark(), 3);
    assert_eq!(node.values(), strings(&["one", "zero", "zero again"]));
}

// ---- high watermark and fetch ----

#[test]
fn the_high_watermark_is_the_durable_prefix_and_bounds_every_fetch() {
    let mut node = Node::new(5, config());
    node.produce(Acks::All, &["a", "b"]);
    node.produce(Acks::All, &["c"]);
    node.complete_all_syncs();
    node.produce(Acks::Leader, &["d"]);
    node.produce(Acks::Leader, &["e", "f"]);
    assert_eq!((node.high_watermark(), node.log_end()), (3, 6));

    let data = node.fetch(0, BIG).unwrap();
    assert_eq!(data.high_watermark, 3);
    assert_eq!(data.log_start_offset, 0);
    let records = consume(&data.batches).unwrap();
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(node.list_offsets(OffsetSpec::Latest), Ok((3, -1)));

    // A fetch inside the first batch serves that whole batch; a tiny limit still serves one batch.
    let one = consume(&node.fetch(1, 1).unwrap().batches).unwrap();
    assert_eq!(one.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1]);

    // At the high watermark, and between it and the log end: nothing yet, no error.
    for offset in [3, 4, 5, 6] {
        let data = node.fetch(offset, BIG).unwrap();
        assert!(data.batches.is_empty(), "fetch at {offset} served uncommitted data");
        assert_eq!(data.high_watermark, 3);
    }
    // Outside the log: out of range.
    assert_eq!(node.fetch(7, BIG), Err(ErrorCode::OffsetOutOfRange));
    assert_eq!(node.fetch(-1, BIG), Err(ErrorCode::OffsetOutOfRange));
    assert_eq!(node.fetch(i64::MAX, BIG), Err(ErrorCode::OffsetOutOfRange));

    // Once synced, the rest is served.
    node.run_timers_until(Time::from_millis(1_000));
    assert_eq!(node.high_watermark(), 6);
    assert_eq!(node.values(), strings(&["a", "b", "c", "d", "e", "f"]));
}

#[test]
fn list_offsets_earliest_latest_and_by_timestamp() {
    let mut node = Node::new(6, config());
    assert_eq!(node.list_offsets(OffsetSpec::Earliest), Ok((0, -1)));
    assert_eq!(node.list_offsets(OffsetSpec::Latest), Ok((0, -1)));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(0)), Ok((-1, -1)), "an empty log");

    node.produce_bytes(Acks::All, batch_with_timestamps(&[(1_000, "a")]));
    node.produce_bytes(Acks::All, batch_with_timestamps(&[(2_000, "b"), (2_500, "c")]));
    node.produce_bytes(Acks::All, batch_with_timestamps(&[(3_000, "d")]));
    node.complete_all_syncs();
    node.produce_bytes(Acks::Leader, batch_with_timestamps(&[(4_000, "e")])); // not committed

    assert_eq!(node.list_offsets(OffsetSpec::Earliest), Ok((0, -1)));
    assert_eq!(node.list_offsets(OffsetSpec::Latest), Ok((4, -1)), "the high watermark, not the end");
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(0)), Ok((0, 1_000)));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(1_000)), Ok((0, 1_000)));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(1_001)), Ok((1, 2_000)));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(2_400)), Ok((2, 2_500)));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(3_000)), Ok((3, 3_000)));
    assert_eq!(
        node.list_offsets(OffsetSpec::Timestamp(3_500)),
        Ok((-1, -1)),
        "the only later record is above the high watermark"
    );
    node.run_timers_until(Time::from_millis(1_000));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(3_500)), Ok((4, 4_000)));
    assert_eq!(node.list_offsets(OffsetSpec::Timestamp(4_001)), Ok((-1, -1)));
}

// ---- bad input ----

/// A produce the broker must reject: answered with `code`, nothing stored, no sync asked for.
fn assert_rejected(node: &mut Node, batch: Vec<u8>, code: ErrorCode, what: &str) {
    for acks in [Acks::None, Acks::Leader, Acks::All] {
        let end = node.log_end();
        let syncs = node.syncs.len();
        let replies = node.replies_count();
        let id = node.produce_bytes(acks, batch.clone());
        match acks {
            Acks::None => assert_eq!(node.replies_count(), replies, "{what}: acks=0 is never answered"),
            _ => assert_eq!(node.produce_reply(id), Some(Err(code)), "{what} with {acks:?}"),
        }
        assert_eq!(node.log_end(), end, "{what}: nothing stored");
        assert_eq!(node.syncs.len(), syncs, "{what}: no sync for a rejected batch");
    }
}

#[test]
fn malformed_batches_are_corrupt_message_and_store_nothing() {
    let mut node = Node::new(7, config());
    node.produce(Acks::All, &["good"]);
    node.complete_all_syncs();
    let good = batch_at(WALL_START_MS, &["hello", "world"]);

    assert_rejected(&mut node, Vec::new(), ErrorCode::CorruptMessage, "no bytes");
    assert_rejected(
        &mut node,
        b"definitely not a record batch".to_vec(),
        ErrorCode::CorruptMessage,
        "garbage",
    );
    assert_rejected(&mut node, vec![0xff; 200], ErrorCode::CorruptMessage, "0xff bytes");
    assert_rejected(&mut node, good[..good.len() - 1].to_vec(), ErrorCode::CorruptMessage, "truncated");
    assert_rejected(&mut node, good[..40].to_vec(), ErrorCode::CorruptMessage, "a header cut short");
    let mut crc = good.clone();
    crc[17] ^= 0x01;
    assert_rejected(&mut node, crc, ErrorCode::CorruptMessage, "a flipped CRC byte");
    let mut body = good.clone();
    let last = body.len() - 2;
    body[last] ^= 0x40;
    assert_rejected(&mut node, body, ErrorCode::CorruptMessage, "a flipped value byte");
    let mut magic = good.clone();
    magic[16] = 1; // v1: outside the CRC, so only the magic check can catch it
    assert_rejected(&mut node, magic, ErrorCode::CorruptMessage, "wrong magic");
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0; 3]);
    assert_rejected(&mut node, trailing, ErrorCode::CorruptMessage, "bytes after the batch");
    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert_rejected(&mut node, two, ErrorCode::CorruptMessage, "two batches in one produce");

    // The broker is unharmed: the good batch still goes in after all that.
    let id = node.produce_bytes(Acks::All, good);
    node.complete_all_syncs();
    assert_eq!(node.produce_reply(id), Some(Ok(1)));
    assert_eq!(node.values(), strings(&["good", "hello", "world"]));
}

#[test]
fn a_batch_larger_than_max_batch_bytes_is_message_too_large() {
    let log = LogConfig { max_batch_bytes: 256, ..LogConfig::default() };
    let mut node = Node::new(8, BrokerConfig { log, ..config() });
    let value = "v".repeat(300);
    assert_rejected(&mut node, batch_at(WALL_START_MS, &[&value]), ErrorCode::MessageTooLarge, "oversized");
    let fits = batch_at(WALL_START_MS, &["small"]);
    assert!(fits.len() <= 256);
    let id = node.produce_bytes(Acks::Leader, fits);
    assert_eq!(node.produce_reply(id), Some(Ok(0)));
}

#[test]
fn an_unknown_partition_is_unknown_topic_or_partition() {
    let mut node = Node::new(9, BrokerConfig { partitions: 2, ..config() });
    let batch = batch_at(WALL_START_MS, &["x"]);
    for partition in [2, 7, u32::MAX] {
        let id = node.send(Request::Produce { partition, acks: Acks::All, batch: batch.clone() });
        assert_eq!(node.produce_reply(id), Some(Err(ErrorCode::UnknownTopicOrPartition)));
        let replies = node.replies_count();
        node.send(Request::Produce { partition, acks: Acks::None, batch: batch.clone() });
        assert_eq!(node.replies_count(), replies, "acks=0 is not answered, even with an error");
        assert_eq!(node.fetch_partition(partition, 0, BIG), Err(ErrorCode::UnknownTopicOrPartition));
        let id = node.send(Request::ListOffsets { partition, spec: OffsetSpec::Latest });
        assert_eq!(node.reply(id), Some(&Response::ListOffsets(Err(ErrorCode::UnknownTopicOrPartition))));
    }
    assert_eq!(node.log_end(), 0);
    assert_eq!(node.broker.log(1).unwrap().log_end_offset(), 0);
    assert!(node.syncs.is_empty());

    // Partition 1 exists and is independent of partition 0.
    let id = node.send(Request::Produce { partition: 1, acks: Acks::Leader, batch });
    assert_eq!(node.produce_reply(id), Some(Ok(0)));
    assert_eq!((node.log_end(), node.broker.log(1).unwrap().log_end_offset()), (0, 1));
}

#[test]
fn a_response_sent_to_the_broker_is_ignored() {
    let mut node = Node::new(10, config());
    let id = RequestId { client: CLIENT, correlation_id: 77 };
    for response in [
        Response::Produce(Ok(0)),
        Response::Fetch(Err(ErrorCode::OffsetOutOfRange)),
        Response::ListOffsets(Ok((0, -1))),
    ] {
        node.step(|broker, env| broker.handle_message(env, Message::Response { id, response }));
    }
    assert!(node.seen.is_empty(), "a response gets no answer");
    assert!(node.syncs.is_empty());
    assert_eq!(node.log_end(), 0);
    // And the broker still works.
    let produce = node.produce(Acks::Leader, &["after"]);
    assert_eq!(node.produce_reply(produce), Some(Ok(0)));
}

#[derive(Clone, Debug)]
enum Mangle {
    Arbitrary(Vec<u8>),
    /// A valid batch with one byte changed: some changes (base offset, leader epoch) are legal.
    Flip {
        at: prop::sample::Index,
        xor: u8,
    },
    Cut {
        at: prop::sample::Index,
    },
}

fn mangle_strategy() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Mangle::Arbitrary),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, xor)| Mangle::Flip { at, xor }),
        any::<prop::sample::Index>().prop_map(|at| Mangle::Cut { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever bytes arrive as a produce batch, the broker never panics; it either appends the
    /// batch whole (and answers with the offset it got) or rejects it and the log end stays put.
    #[test]
    fn arbitrary_produce_bytes_never_panic_and_rejected_ones_store_nothing(
        inputs in prop::collection::vec((mangle_strategy(), 0usize..3), 1..8),
    ) {
        let mut node = Node::new(11, config());
        let valid = batch_at(WALL_START_MS, &["k1", "k2", "k3"]);
        for (mangle, acks) in inputs {
            let bytes = match mangle {
                Mangle::Arbitrary(bytes) => bytes,
                Mangle::Flip { at, xor } => {
                    let mut bytes = valid.clone();
                    let i = at.index(bytes.len());
                    bytes[i] ^= xor;
                    bytes
                }
                Mangle::Cut { at } => valid[..at.index(valid.len())].to_vec(),
            };
            let acks = [Acks::None, Acks::Leader, Acks::All][acks];
            let end = node.log_end();
            let id = node.produce_bytes(acks, bytes);
            node.complete_all_syncs();
            let stored = node.log_end() - end;
            match node.produce_reply(id) {
                Some(Ok(base)) => {
                    prop_assert_eq!(base, end);
                    prop_assert!(stored > 0);
                }
                Some(Err(code)) => {
                    prop_assert!(matches!(code, ErrorCode::CorruptMessage | ErrorCode::MessageTooLarge));
                    prop_assert_eq!(stored, 0, "a rejected batch moved the log end");
                }
                None => prop_assert_eq!(acks, Acks::None),
            }
        }
        prop_assert!(!node.stopped);
        // Whatever was stored is whole and, once flushed, served back as valid batches.
        node.run_timers_until(Time::from_millis(1_000));
        prop_assert_eq!(node.high_watermark(), node.log_end());
        let records = node.consume_all();
        prop_assert_eq!(records.len() as i64, node.log_end());
        let mut env = Env {
            now: node.now,
            wall_clock_ms: node.wall_clock_ms,
            storage: &mut node.disk,
            rng: &mut node.rng,
            faults: &mut node.faults,
        };
        prop_assert_eq!(node.broker.verify_log(&mut env, 0), Ok(()));
    }
}

// ---- a failed sync ----

#[test]
fn a_failed_sync_halts_the_broker_and_it_answers_nothing_afterwards() {
    let mut node = Node::new(12, config());
    let acked = node.produce(Acks::All, &["a"]);
    node.complete_all_syncs();
    assert_eq!(node.produce_reply(acked), Some(Ok(0)));

    let waiting = node.produce(Acks::All, &["b"]);
    let later = node.produce(Acks::All, &["c"]);
    // The disk did the sync, but the broker is told it failed: after a failed fsync nothing in
    // the page cache can be trusted, so the broker must stop.
    node.complete_next_sync_as(Some(Err(StorageError::Io)));
    assert!(matches!(node.seen.last(), Some(Seen::Halt(_))), "{:?}", node.seen);
    assert_eq!(node.produce_reply(waiting), None, "an acks=all whose sync failed is never confirmed");
    assert_eq!(node.produce_reply(later), None);
    assert_eq!(node.broker.next_deadline(), None);

    // A driver that keeps calling (it MUST NOT) still gets nothing out of the halted broker.
    node.stopped = false;
    let seen = node.seen.len();
    node.produce(Acks::Leader, &["d"]);
    node.fetch_partition_unanswered(0);
    node.send(Request::ListOffsets { partition: 0, spec: OffsetSpec::Latest });
    node.send(Request::Produce { partition: 9, acks: Acks::All, batch: vec![1, 2, 3] });
    node.complete_all_syncs();
    node.advance_millis(10_000);
    node.step(|broker, env| broker.handle_timer(env));
    node.begin_shutdown();
    assert_eq!(node.seen.len(), seen, "the halted broker emitted {:?}", &node.seen[seen..]);
    assert!(node.syncs.is_empty());
}

#[test]
fn a_failed_sync_during_shutdown_halts_instead_of_completing_it() {
    let mut node = Node::new(21, config());
    let waiting = node.produce(Acks::All, &["a"]);
    node.begin_shutdown();
    node.complete_next_sync_as(Some(Err(StorageError::Io)));
    assert!(matches!(node.seen.last(), Some(Seen::Halt(_))), "{:?}", node.seen);
    assert!(!node.seen.contains(&Seen::ShutdownComplete), "a failed shutdown is not a clean one");
    assert_eq!(node.produce_reply(waiting), None);
    // The next start does not trust the log as cleanly closed.
    node.restart();
    assert!(!node.recovery[0].clean_shutdown);
}

impl Node {
    /// A fetch whose answer the test expects never to come.
    fn fetch_partition_unanswered(&mut self, partition: u32) {
        let id = self.send(Request::Fetch { partition, offset: 0, max_bytes: BIG });
        assert_eq!(self.reply(id), None);
    }
}

// ---- clean shutdown ----

#[test]
fn clean_shutdown_answers_waiting_acks_first_and_a_restart_keeps_every_record() {
    let mut node = Node::new(13, BrokerConfig { partitions: 2, ..config() });
    node.produce(Acks::Leader, &["one"]);
    node.produce(Acks::None, &["zero"]);
    let all_1 = node.produce(Acks::All, &["all-1"]);
    let all_2 = node.produce(Acks::All, &["all-2"]);
    let p1 = node.send(Request::Produce { partition: 1, acks: Acks::Leader, batch: batch_at(0, &["p1"]) });
    assert_eq!(node.produce_reply(p1), Some(Ok(0)));
    assert_eq!(node.replies_count(), 2);
    assert!(node.broker.next_deadline().is_some());

    node.begin_shutdown();
    assert_eq!(node.broker.next_deadline(), None, "no timers while shutting down");
    // Requests during the shutdown get no answer and store nothing.
    let end = node.log_end();
    let during = node.produce(Acks::Leader, &["during"]);
    node.fetch_partition_unanswered(0);
    node.send(Request::ListOffsets { partition: 0, spec: OffsetSpec::Earliest });
    assert_eq!(node.reply(during), None);
    assert_eq!(node.log_end(), end);
    assert_eq!(node.replies_count(), 2);

    node.complete_all_syncs();
    assert!(node.stopped);
    assert!(node.broker.is_stopped());
    assert_eq!(node.seen.last(), Some(&Seen::ShutdownComplete));
    let complete = node.seen.len() - 1;
    let position =
        |id| node.seen.iter().position(|seen| matches!(seen, Seen::Reply(reply, _) if *reply == id));
    assert_eq!(node.produce_reply(all_1), Some(Ok(2)));
    assert_eq!(node.produce_reply(all_2), Some(Ok(3)));
    assert!(position(all_1).unwrap() < position(all_2).unwrap());
    assert!(position(all_2).unwrap() < complete, "waiting acks are answered before ShutdownComplete");
    assert_eq!(node.seen.iter().filter(|seen| **seen == Seen::ShutdownComplete).count(), 1);

    // Everything was synced, so even a power loss right now loses nothing.
    let crash = node.disk.sim.crash();
    assert!(crash.files.is_empty(), "a clean shutdown left unsynced data: {crash:?}");
    node.restart();
    assert!(node.recovery.iter().all(|report| report.clean_shutdown), "{:?}", node.recovery);
    assert_eq!(node.values(), strings(&["one", "zero", "all-1", "all-2"]));
    assert_eq!(node.high_watermark(), 4);
    let p1 = consume(&node.fetch_partition(1, 0, BIG).unwrap().batches).unwrap();
    assert_eq!(p1.len(), 1);

    // A shutdown with nothing to sync completes at once, and the next start is clean again.
    node.shutdown();
    node.restart();
    assert!(node.recovery.iter().all(|report| report.clean_shutdown));
    assert_eq!(node.values(), strings(&["one", "zero", "all-1", "all-2"]));
}

#[test]
fn shutdown_while_a_sync_round_is_in_flight_waits_for_it() {
    let mut node = Node::new(14, config());
    let a = node.produce(Acks::All, &["a"]);
    node.begin_shutdown();
    assert_eq!(node.syncs.len(), 1, "the close waits for the round in flight");
    node.complete_next_sync();
    assert_eq!(node.produce_reply(a), Some(Ok(0)));
    assert!(!node.stopped, "the close's own syncs are still to come");
    assert!(!node.syncs.is_empty());
    node.complete_all_syncs();
    assert_eq!(node.seen.last(), Some(&Seen::ShutdownComplete));
    node.restart();
    assert!(node.recovery[0].clean_shutdown);
    assert_eq!(node.values(), strings(&["a"]));
}

// ---- crashes ----

#[test]
fn records_answered_with_acks_all_survive_a_crash() {
    for seed in 0..16 {
        let mut node = Node::new(100 + seed, config());
        let mut acked = Vec::new();
        for i in 0..5 {
            let value = format!("all-{i}");
            let id = node.produce(Acks::All, &[&value]);
            node.complete_all_syncs();
            assert_eq!(node.produce_reply(id), Some(Ok(2 * i)), "after {i} acks=1 batches");
            acked.push(value);
            // Unsynced acks=1 data on top, which the crash may tear or lose.
            node.produce(Acks::Leader, &["maybe"]);
        }
        let last = node.produce(Acks::All, &["not yet"]);
        assert_eq!(node.produce_reply(last), None);
        node.crash_and_restart();
        assert!(!node.recovery[0].clean_shutdown);
        let values = node.values();
        let kept: Vec<&String> = values.iter().filter(|value| value.starts_with("all-")).collect();
        assert_eq!(kept, acked.iter().collect::<Vec<_>>(), "seed {seed}: an acknowledged record was lost");
    }
}

#[test]
fn acks_1_records_not_yet_synced_are_lost_when_a_crash_drops_them() {
    // acks=1 is answered before the record is durable: Kafka's trade-off. Whether the crash drops
    // the write is the disk's draw; over a few seeds both outcomes occur, and each is what the
    // crash report says.
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..32 {
        let mut node = Node::new(200 + seed, config());
        let durable = node.produce(Acks::All, &["durable"]);
        node.complete_all_syncs();
        assert_eq!(node.produce_reply(durable), Some(Ok(0)));
        let leader = node.produce(Acks::Leader, &["at-risk"]);
        assert_eq!(node.produce_reply(leader), Some(Ok(1)), "answered at once");
        assert_eq!(node.high_watermark(), 1, "answered, but not durable");

        let segment = node.segment_file();
        let report = node.disk.sim.crash();
        let file =
            report.files.iter().find(|file| file.path == segment).expect("the segment had pending data");
        node.restart();
        if file.surviving_operations == 0 {
            lost += 1;
            assert_eq!(node.values(), strings(&["durable"]), "seed {seed}: dropped by the crash");
            assert_eq!(node.log_end(), 1);
            // The offset is handed out again: the client's acknowledged offset 1 now names another record.
            let next = node.produce(Acks::Leader, &["replacement"]);
            assert_eq!(node.produce_reply(next), Some(Ok(1)));
        } else {
            kept += 1;
            assert_eq!(node.values(), strings(&["durable", "at-risk"]), "seed {seed}: the write survived");
        }
    }
    assert!(lost > 0, "no seed dropped the unsynced write");
    assert!(kept > 0, "no seed kept the unsynced write");
}

#[test]
fn the_planted_ack_before_sync_bug_answers_acks_all_before_any_sync() {
    let mut honest = Node::new(15, config());
    let id = honest.produce(Acks::All, &["a"]);
    assert_eq!(honest.produce_reply(id), None);

    // The plant acknowledges at once, with no sync even requested, let alone completed.
    for seed in 0..32 {
        let mut node = Node::with_plants(300 + seed, config(), BTreeSet::from([Plant::AckBeforeSync]));
        let id = node.produce(Acks::All, &["a"]);
        assert_eq!(node.produce_reply(id), Some(Ok(0)));
        assert_eq!(node.disk.sim.stats().syncs_completed, 0);
        assert_eq!(node.high_watermark(), 0);
        // Which is why it is a bug: a crash can take back an acknowledged acks=all record.
        let report = node.crash_and_restart();
        if report.files.iter().any(|file| file.surviving_operations == 0 && file.path.ends_with(".log")) {
            assert_eq!(node.values(), Vec::<String>::new(), "seed {seed}");
            return;
        }
    }
    panic!("no seed lost the acknowledged record");
}

// ---- corruption in the log ----

/// Flips one byte of `path` through the Storage trait, as damage the broker did not write.
fn flip_byte(node: &mut Node, path: &str, at: u64) {
    let mut byte = [0u8];
    node.disk.read_at(path, at, &mut byte).unwrap();
    node.disk.write_at(path, at, &[byte[0] ^ 0x5a]).unwrap();
}

#[test]
fn a_corrupt_batch_in_the_log_is_never_served_and_the_log_is_cut_there() {
    let mut node = Node::new(16, config());
    let first = batch_at(WALL_START_MS, &["first"]);
    let second = batch_at(WALL_START_MS, &["second", "second too"]);
    node.produce_bytes(Acks::All, first.clone());
    node.produce_bytes(Acks::All, second.clone());
    node.produce(Acks::All, &["third"]);
    node.complete_all_syncs();
    node.crash_and_restart();
    assert_eq!(node.values(), strings(&["first", "second", "second too", "third"]));

    // Damage the second batch's last value byte in the segment file.
    let segment = node.segment_file();
    flip_byte(&mut node, &segment, (first.len() + second.len() - 2) as u64);
    // A fourth batch waits for a sync when the damage is found.
    let waiting = node.produce(Acks::All, &["fourth"]);
    assert_eq!(node.log_end(), 5);

    // A fetch from the start serves the good first batch and stops before the damage.
    let data = node.fetch(0, BIG).unwrap();
    let served = consume(&data.batches).unwrap();
    assert_eq!(served.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0]);

    // A fetch at the damaged batch: KAFKA_STORAGE_ERROR, once, and the log is cut at the damage.
    assert_eq!(node.fetch(1, BIG), Err(ErrorCode::KafkaStorageError));
    assert_eq!(node.log_end(), 1);
    assert_eq!(node.high_watermark(), 1);
    assert_eq!(
        node.produce_reply(waiting),
        Some(Err(ErrorCode::KafkaStorageError)),
        "an ack waiting for a batch the cut removed is answered with an error"
    );
    assert!(!node.stopped);
    assert_eq!(node.fetch(1, BIG).unwrap().batches, Vec::<u8>::new(), "at the new end: empty");
    assert_eq!(node.fetch(2, BIG), Err(ErrorCode::OffsetOutOfRange));
    assert_eq!(node.values(), strings(&["first"]));

    // The round in flight completes without confirming the removed batch, and the log takes new
    // batches at the cut.
    let replies = node.replies_count();
    node.complete_all_syncs();
    assert_eq!(node.replies_count(), replies, "no late answer for the removed batch");
    let again = node.produce(Acks::All, &["again"]);
    node.complete_all_syncs();
    assert_eq!(node.produce_reply(again), Some(Ok(1)));
    assert_eq!(node.values(), strings(&["first", "again"]));
    let mut env = Env {
        now: node.now,
        wall_clock_ms: node.wall_clock_ms,
        storage: &mut node.disk,
        rng: &mut node.rng,
        faults: &mut node.faults,
    };
    assert_eq!(node.broker.verify_log(&mut env, 0), Ok(()));
}

#[test]
fn a_corrupt_batch_the_broker_cannot_cut_halts_it_without_further_answers() {
    let mut node = Node::new(17, config());
    let first = batch_at(WALL_START_MS, &["first"]);
    node.produce_bytes(Acks::All, first.clone());
    node.produce(Acks::All, &["second"]);
    node.complete_all_syncs();
    let waiting = node.produce(Acks::All, &["third"]);
    let segment = node.segment_file();
    flip_byte(&mut node, &segment, first.len() as u64 + 30);

    node.disk.fail_truncates = true;
    node.send(Request::Fetch { partition: 0, offset: 1, max_bytes: BIG });
    // The harness asserts that nothing follows the Halt.
    assert!(matches!(node.seen.last(), Some(Seen::Halt(_))), "{:?}", node.seen);
    assert_eq!(node.produce_reply(waiting), None);
}

// ---- timers ----

#[test]
fn the_flush_interval_makes_acks_1_data_durable() {
    let mut node = Node::new(18, BrokerConfig { flush_interval_ms: 500, ..config() });
    assert_eq!(node.broker.next_deadline(), Some(Time::from_millis(500)));
    let id = node.produce(Acks::Leader, &["flushed"]);
    assert_eq!(node.produce_reply(id), Some(Ok(0)));

    // Early: nothing to do yet.
    node.advance_to(Time::from_millis(499));
    node.step(|broker, env| broker.handle_timer(env));
    assert!(node.syncs.is_empty());
    assert_eq!(node.broker.next_deadline(), Some(Time::from_millis(500)));

    node.advance_to(Time::from_millis(500));
    node.step(|broker, env| broker.handle_timer(env));
    assert_eq!(node.syncs.len(), 1, "the flush asks for a sync of the unsynced segment");
    assert_eq!(node.broker.next_deadline(), Some(Time::from_millis(1_000)));
    assert_eq!(node.high_watermark(), 0);
    node.complete_all_syncs();
    assert_eq!(node.high_watermark(), 1);

    // Durable now: no crash can take it back.
    let report = node.crash_and_restart();
    assert!(report.files.iter().all(|file| !file.path.ends_with(".log")), "{report:?}");
    assert_eq!(node.values(), strings(&["flushed"]));

    // A flush with nothing unsynced asks for nothing.
    node.run_timers_until(Time::from_millis(5_000));
    assert_eq!(node.values(), strings(&["flushed"]));
}

#[test]
fn retention_on_the_timer_deletes_old_segments() {
    let log = LogConfig {
        segment_bytes: 100, // one batch per segment
        retention_bytes: Some(300),
        retention_ms: None,
        ..LogConfig::default()
    };
    let mut node = Node::new(19, BrokerConfig { log, retention_check_interval_ms: 10_000, ..config() });
    assert_eq!(node.broker.next_deadline(), Some(Time::from_millis(1_000)));
    let values: Vec<String> = (0..10).map(|i| format!("record-{i:02}-padding")).collect();
    for value in &values {
        node.produce(Acks::All, &[value]);
        node.complete_all_syncs();
    }
    let batch_bytes = batch_at(0, &[&values[0]]).len() as u64;
    assert!(batch_bytes <= 100 && 2 * batch_bytes > 100, "one batch per segment: {batch_bytes}");
    assert_eq!(node.broker.log(0).unwrap().segment_count(), 10);

    // Flush timers alone do not apply retention.
    node.run_timers_until(Time::from_millis(9_999));
    assert_eq!(node.broker.log(0).unwrap().segment_count(), 10);
    assert_eq!(node.list_offsets(OffsetSpec::Earliest), Ok((0, -1)));

    node.run_timers_until(Time::from_millis(10_000));
    let log = node.broker.log(0).unwrap();
    let start = log.log_start_offset();
    assert!(start > 0, "retention deleted nothing");
    assert!(log.size_bytes() < 300 + batch_bytes, "the log is still {} bytes", log.size_bytes());
    assert!(log.size_bytes() >= 300, "retention deleted too much: {} bytes", log.size_bytes());
    assert_eq!(node.list_offsets(OffsetSpec::Earliest), Ok((start, -1)));
    assert_eq!(node.fetch(start - 1, BIG), Err(ErrorCode::OffsetOutOfRange));
    assert_eq!(node.fetch(start, BIG).unwrap().log_start_offset, start);
    let kept: Vec<String> = values[start as usize..].to_vec();
    assert_eq!(node.values(), kept);
    assert_eq!(node.broker.next_deadline(), Some(Time::from_millis(11_000)));
}
