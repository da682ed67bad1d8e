//! Client models: producers and consumers with Kafka's client semantics, as simulated nodes.
//!
//! A client is a small state machine driven by the world: `on_wake` when its alarm rings and
//! `on_response` when an answer arrives. It sends requests through the simulated network (so it
//! meets loss, partitions and clogs) and writes every operation into the history.
//!
//! - The producer sends one batch at a time per producer (`max.in.flight.requests=1`), round-robin
//!   over partitions, each record value unique (`"{process}-{n}"` plus padding). A timeout or a
//!   retriable error is retried up to `retries` times with the same batch — so, without
//!   idempotence, a retried batch can be appended twice (a duplicate, reported, not a failure).
//!   A send whose outcome stays unknown is `info`, never `fail`.
//! - The consumer (assign mode, one partition) polls from its position, skips the records of the
//!   first batch below its position as Kafka's consumer does, and on OFFSET_OUT_OF_RANGE resets to
//!   the earliest offset (`auto.offset.reset=earliest`), recording the reset.
//! - The final consumer, started when the chaos ends, reads its partition from the earliest offset
//!   to the high watermark it saw first; finishing within the liveness bound is the liveness check.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use seedlog_core::env::Time;
use seedlog_core::protocol::{Acks, ErrorCode, Message, OffsetSpec, Request, RequestId, Response};
use seedlog_core::record::{self, NewRecord, ProducerInfo};

use crate::history::{History, Op, OpKind, OpType};
use crate::net::NodeId;
use crate::options::{ClientOptions, ProducerOptions};

/// What a client asks the world to do.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub to: NodeId,
    pub message: Message,
}

/// A detail the consumer noticed that the checker turns into an anomaly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAnomaly {
    pub kind: &'static str,
    pub detail: String,
}

fn time_ms(now: Time) -> f64 {
    now.as_nanos() as f64 / 1e6
}

/// The value a producer writes: unique id, `:`, then padding. The history records only the id.
pub fn value_id(value: &str) -> &str {
    value.split(':').next().unwrap_or(value)
}

struct PendingSend {
    correlation_id: u64,
    partition: u32,
    values: Vec<String>,
    batch: Vec<u8>,
    attempts: u32,
    /// `None` while the next attempt waits for its backoff.
    deadline: Option<Time>,
}

pub struct Producer {
    pub process: u32,
    pub node: NodeId,
    broker: NodeId,
    options: ProducerOptions,
    partitions: u32,
    retries: u32,
    retry_backoff_ms: u64,
    request_timeout_ms: u64,
    next_value: u64,
    next_partition: u32,
    next_correlation_id: u64,
    pending: Option<PendingSend>,
    alarm: Option<Time>,
    /// Producing stops when the chaos phase ends.
    stopped: bool,
}

impl Producer {
    pub fn new(
        process: u32,
        node: NodeId,
        broker: NodeId,
        options: ProducerOptions,
        clients: &ClientOptions,
        partitions: u32,
    ) -> Producer {
        Producer {
            process,
            node,
            broker,
            options,
            partitions,
            retries: clients.retries,
            retry_backoff_ms: clients.retry_backoff_ms,
            request_timeout_ms: clients.request_timeout_ms,
            next_value: 0,
            next_partition: process % partitions.max(1),
            next_correlation_id: 0,
            pending: None,
            alarm: Some(Time::ZERO),
            stopped: false,
        }
    }

    pub fn alarm(&self) -> Option<Time> {
        self.alarm
    }

    pub fn stop(&mut self) {
        self.stopped = true;
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    fn set_alarm(&mut self, at: Time) {
        self.alarm = Some(self.alarm.map_or(at, |current| current.min(at)));
    }

    pub fn on_wake(
        &mut self,
        now: Time,
        wall_clock_ms: i64,
        rng: &mut ChaCha8Rng,
        history: &mut History,
    ) -> Vec<Outgoing> {
        self.alarm = None;
        if self.stopped && self.pending.as_ref().is_some_and(|p| p.deadline.is_none()) {
            // The run is healing: no new attempts; the outcome stays unknown.
            return self.retry_or_give_up(now, history, "producer stopped before retrying");
        }
        if let Some(pending) = &mut self.pending {
            match pending.deadline {
                None => {
                    // The backoff is over: send the next attempt of the same batch.
                    pending.attempts += 1;
                    self.next_correlation_id += 1;
                    pending.correlation_id = self.next_correlation_id;
                    let deadline = now.plus_millis(self.request_timeout_ms);
                    pending.deadline = Some(deadline);
                    let out = self.request(self.pending.as_ref().expect("matched above"));
                    self.set_alarm(deadline);
                    return vec![out];
                }
                Some(deadline) if now < deadline => {
                    self.set_alarm(deadline);
                    return Vec::new();
                }
                // The request timed out: its outcome is unknown.
                Some(_) => return self.retry_or_give_up(now, history, "request timed out"),
            }
        }
        if self.stopped {
            return Vec::new();
        }
        self.send_new_batch(now, wall_clock_ms, rng, history)
    }

    fn send_new_batch(
        &mut self,
        now: Time,
        wall_clock_ms: i64,
        rng: &mut ChaCha8Rng,
        history: &mut History,
    ) -> Vec<Outgoing> {
        let count = rng.random_range(1..=self.options.batch_records_max);
        let partition = self.next_partition;
        self.next_partition = (self.next_partition + 1) % self.partitions;
        let mut values = Vec::new();
        let mut records = Vec::new();
        for _ in 0..count {
            let id = format!("{}-{}", self.process, self.next_value);
            let padding = rng.random_range(0..=self.options.value_bytes_max as usize);
            let value = format!("{id}:{}", "x".repeat(padding));
            records.push(NewRecord {
                timestamp: wall_clock_ms,
                key: Some(format!("key-{}", self.next_value % 8).into_bytes()),
                value: Some(value.clone().into_bytes()),
                headers: Vec::new(),
            });
            values.push(value);
            self.next_value += 1;
        }
        let batch = record::encode_batch(&records, ProducerInfo::NONE);
        history.push(Op {
            time_ms: time_ms(now),
            process: self.process,
            kind: OpKind::Send,
            op_type: OpType::Invoke,
            partition,
            records: values.iter().map(|v| (-1, value_id(v).to_string())).collect(),
            acks: Some(self.options.acks),
            error: None,
            keys: Vec::new(),
            topic: None,
            attempts: None,
        });
        self.next_correlation_id += 1;
        let pending = PendingSend {
            correlation_id: self.next_correlation_id,
            partition,
            values,
            batch,
            attempts: 1,
            deadline: Some(now.plus_millis(self.request_timeout_ms)),
        };
        let out = self.request(&pending);
        if self.options.acks == Acks::None {
            // acks=0: no answer ever comes; the outcome is unknown by design.
            self.complete(now, history, &pending, OpType::Info, Vec::new(), None);
            self.set_alarm(now.plus_millis(rng.random_range(1..=self.options.linger_ms_max)));
            return vec![out];
        }
        self.set_alarm(now.plus_millis(self.request_timeout_ms));
        self.pending = Some(pending);
        vec![out]
    }

    fn request(&self, pending: &PendingSend) -> Outgoing {
        Outgoing {
            to: self.broker,
            message: Message::Request {
                id: RequestId { client: self.node.0, correlation_id: pending.correlation_id },
                request: Request::Produce {
                    partition: pending.partition,
                    acks: self.options.acks,
                    batch: pending.batch.clone(),
                },
            },
        }
    }

    fn retry_or_give_up(&mut self, now: Time, history: &mut History, why: &str) -> Vec<Outgoing> {
        let mut pending = self.pending.take().expect("retry needs a pending send");
        if pending.attempts > self.retries || self.stopped {
            // Whether this (or an earlier) attempt was appended is unknown: indefinite.
            self.complete(now, history, &pending, OpType::Info, Vec::new(), Some(why.to_string()));
            self.set_alarm(now.plus_millis(self.retry_backoff_ms));
            return Vec::new();
        }
        pending.deadline = None;
        self.set_alarm(now.plus_millis(self.retry_backoff_ms));
        self.pending = Some(pending);
        Vec::new()
    }

    pub fn on_response(
        &mut self,
        now: Time,
        correlation_id: u64,
        response: Response,
        history: &mut History,
    ) -> Vec<Outgoing> {
        let Some(pending) = &self.pending else { return Vec::new() };
        if pending.correlation_id != correlation_id || pending.deadline.is_none() {
            return Vec::new(); // An answer to an attempt we gave up on.
        }
        let Response::Produce(result) = response else { return Vec::new() };
        match result {
            Ok(base_offset) => {
                let pending = self.pending.take().expect("checked above");
                let offsets = (0..pending.values.len() as i64).map(|i| base_offset + i).collect();
                self.complete(now, history, &pending, OpType::Ok, offsets, None);
                self.set_alarm(now.plus_millis(1));
                Vec::new()
            }
            Err(code) if code.is_retriable() => self.retry_or_give_up(now, history, code.name()),
            Err(code) => {
                let pending = self.pending.take().expect("checked above");
                // A non-retriable error after retries could still hide an earlier attempt's append.
                let op_type = if pending.attempts == 1 { OpType::Fail } else { OpType::Info };
                self.complete(now, history, &pending, op_type, Vec::new(), Some(code.name().to_string()));
                self.set_alarm(now.plus_millis(self.retry_backoff_ms));
                Vec::new()
            }
        }
    }

    fn complete(
        &self,
        now: Time,
        history: &mut History,
        pending: &PendingSend,
        op_type: OpType,
        offsets: Vec<i64>,
        error: Option<String>,
    ) {
        let records = pending
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (offsets.get(i).copied().unwrap_or(-1), value_id(v).to_string()))
            .collect();
        // A retriable failure on the last attempt may follow an earlier attempt that was appended.
        let op_type = if op_type == OpType::Fail && pending.attempts > 1 { OpType::Info } else { op_type };
        history.push(Op {
            time_ms: time_ms(now),
            process: self.process,
            kind: OpKind::Send,
            op_type,
            partition: pending.partition,
            records,
            acks: Some(self.options.acks),
            error,
            keys: Vec::new(),
            topic: None,
            attempts: None,
        });
    }
}

/// What a consumer's in-flight request asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Fetch,
    Earliest,
    Latest,
}

pub struct Consumer {
    pub process: u32,
    pub node: NodeId,
    broker: NodeId,
    pub partition: u32,
    position: i64,
    fetch_max_bytes: u32,
    poll_interval_ms: u64,
    request_timeout_ms: u64,
    next_correlation_id: u64,
    in_flight: Option<(u64, Time, Asked)>,
    /// Whether the next request is a reset to the earliest offset.
    resetting: bool,
    alarm: Option<Time>,
    /// Final consumer: read up to this high watermark, then stop. `None` until learned.
    final_target: Option<i64>,
    is_final: bool,
    done: bool,
    final_records: Vec<(i64, String)>,
    pub anomalies: Vec<ClientAnomaly>,
}

impl Consumer {
    pub fn new(
        process: u32,
        node: NodeId,
        broker: NodeId,
        partition: u32,
        clients: &ClientOptions,
        is_final: bool,
        start: Time,
    ) -> Consumer {
        Consumer {
            process,
            node,
            broker,
            partition,
            position: 0,
            // The final consumer catches up with large fetches (`fetch.max.bytes`' default).
            fetch_max_bytes: if is_final { 1 << 20 } else { clients.fetch_max_bytes },
            poll_interval_ms: clients.poll_interval_ms,
            request_timeout_ms: clients.request_timeout_ms,
            next_correlation_id: 0,
            in_flight: None,
            resetting: false,
            alarm: Some(start),
            final_target: None,
            is_final,
            done: false,
            final_records: Vec::new(),
            anomalies: Vec::new(),
        }
    }

    pub fn alarm(&self) -> Option<Time> {
        self.alarm
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn is_final(&self) -> bool {
        self.is_final
    }

    /// No alarm until `wake_at` (a final consumer waits for the chaos to end).
    pub fn sleep(&mut self) {
        self.alarm = None;
    }

    pub fn wake_at(&mut self, at: Time) {
        self.set_alarm(at);
    }

    pub fn position(&self) -> i64 {
        self.position
    }

    fn set_alarm(&mut self, at: Time) {
        self.alarm = Some(self.alarm.map_or(at, |current| current.min(at)));
    }

    pub fn on_wake(&mut self, now: Time) -> Vec<Outgoing> {
        self.alarm = None;
        if self.done {
            return Vec::new();
        }
        if let Some((_, deadline, _)) = self.in_flight {
            if now < deadline {
                self.set_alarm(deadline);
                return Vec::new();
            }
            self.in_flight = None; // Timed out: ask again.
        }
        let (request, asked) = if self.resetting {
            (Request::ListOffsets { partition: self.partition, spec: OffsetSpec::Earliest }, Asked::Earliest)
        } else if self.is_final && self.final_target.is_none() {
            (Request::ListOffsets { partition: self.partition, spec: OffsetSpec::Latest }, Asked::Latest)
        } else {
            let fetch = Request::Fetch {
                partition: self.partition,
                offset: self.position,
                max_bytes: self.fetch_max_bytes,
            };
            (fetch, Asked::Fetch)
        };
        self.next_correlation_id += 1;
        let deadline = now.plus_millis(self.request_timeout_ms);
        self.in_flight = Some((self.next_correlation_id, deadline, asked));
        self.set_alarm(deadline);
        vec![Outgoing {
            to: self.broker,
            message: Message::Request {
                id: RequestId { client: self.node.0, correlation_id: self.next_correlation_id },
                request,
            },
        }]
    }

    pub fn on_response(&mut self, now: Time, correlation_id: u64, response: Response, history: &mut History) {
        let asked = match self.in_flight {
            Some((expected, _, asked)) if expected == correlation_id => asked,
            _ => return, // An answer to a request that already timed out.
        };
        self.in_flight = None;
        let next_poll = now.plus_millis(self.poll_interval_ms);
        match (asked, response) {
            (Asked::Latest, Response::ListOffsets(Ok((offset, _)))) => {
                self.final_target = Some(offset);
                self.check_final_done(now, history);
                self.set_alarm(now);
            }
            (Asked::Earliest, Response::ListOffsets(Ok((offset, _)))) => {
                history.push(Op {
                    time_ms: time_ms(now),
                    process: self.process,
                    kind: OpKind::Reset,
                    op_type: OpType::Ok,
                    partition: self.partition,
                    records: vec![(self.position, String::new()), (offset, String::new())],
                    acks: None,
                    error: Some("OFFSET_OUT_OF_RANGE".into()),
                    keys: Vec::new(),
                    topic: None,
                    attempts: None,
                });
                self.resetting = false;
                self.position = offset;
                self.set_alarm(now);
            }
            (Asked::Fetch, Response::Fetch(Ok(data))) => {
                self.on_batches(now, &data.batches, history);
                self.check_final_done(now, history);
                // Like Kafka's consumer: fetch again at once while data comes, wait when caught up.
                self.set_alarm(if data.batches.is_empty() { next_poll } else { now });
            }
            (Asked::Fetch, Response::Fetch(Err(ErrorCode::OffsetOutOfRange))) => {
                self.resetting = true;
                self.set_alarm(now);
            }
            _ => self.set_alarm(next_poll),
        }
    }

    fn on_batches(&mut self, now: Time, batches: &[u8], history: &mut History) {
        let records = match record::consume(batches) {
            Ok(records) => records,
            Err(error) => {
                self.anomalies.push(ClientAnomaly {
                    kind: "corrupt-read",
                    detail: format!(
                        "partition {} at offset {}: a fetched batch failed validation: {error:?}",
                        self.partition, self.position
                    ),
                });
                return;
            }
        };
        let mut read = Vec::new();
        for consumed in records {
            if consumed.offset < self.position {
                continue; // The front of the first batch, below the position: skipped, as Kafka's consumer does.
            }
            if consumed.offset != self.position {
                self.anomalies.push(ClientAnomaly {
                    kind: "poll-skip",
                    detail: format!(
                        "process {} partition {}: expected offset {}, the fetch returned {} next",
                        self.process, self.partition, self.position, consumed.offset
                    ),
                });
            }
            // The history keeps the value's id (what it is), not its padding.
            let value = consumed.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let value = value_id(&value).to_string();
            read.push((consumed.offset, value));
            self.position = consumed.offset + 1;
        }
        if read.is_empty() {
            return;
        }
        if self.is_final {
            self.final_records.extend(read.iter().cloned());
        }
        history.push(Op {
            time_ms: time_ms(now),
            process: self.process,
            kind: OpKind::Poll,
            op_type: OpType::Ok,
            partition: self.partition,
            records: read,
            acks: None,
            error: None,
            keys: Vec::new(),
            topic: None,
            attempts: None,
        });
    }

    /// Ends a final consumer's read. One that did not finish records what it read so far as an
    /// indefinite final read and returns the offset it reached (the checker judges below it).
    /// For a finished one, the offset it read up to. Either way nothing at or above the offset
    /// returned was read: the high watermark may have moved on after the final read took its target.
    pub fn end_final_read(&mut self, now: Time, history: &mut History) -> Option<i64> {
        if !self.is_final {
            return None;
        }
        if self.done {
            return Some(self.position);
        }
        history.push(Op {
            time_ms: time_ms(now),
            process: self.process,
            kind: OpKind::FinalRead,
            op_type: OpType::Info,
            partition: self.partition,
            records: std::mem::take(&mut self.final_records),
            acks: None,
            error: Some("the liveness bound ended the final read here".into()),
            keys: Vec::new(),
            topic: None,
            attempts: None,
        });
        // Offsets below the position were read (or skipped by a reset, which the checker judges).
        Some(if self.position < 0 { 0 } else { self.position })
    }

    fn check_final_done(&mut self, now: Time, history: &mut History) {
        let Some(target) = self.final_target else { return };
        if !self.is_final || self.done || self.position < target {
            return;
        }
        self.done = true;
        history.push(Op {
            time_ms: time_ms(now),
            process: self.process,
            kind: OpKind::FinalRead,
            op_type: OpType::Ok,
            partition: self.partition,
            records: std::mem::take(&mut self.final_records),
            acks: None,
            error: None,
            keys: Vec::new(),
            topic: None,
            attempts: None,
        });
    }
}
