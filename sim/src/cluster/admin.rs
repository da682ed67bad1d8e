//! The admin client of the controller workload: creates and deletes topics, as `kafka-topics`
//! would, against whichever node it believes is the active controller.
//!
//! One request at a time. NOT_CONTROLLER moves it to the next node (round robin) after a short
//! backoff and retries the same request (a definite error after such a retry is recorded as
//! indefinite: the first attempt may have committed); a timeout records the operation as
//! indefinite (`info`) and moves on. TOPIC_ALREADY_EXISTS and UNKNOWN_TOPIC_OR_PARTITION are
//! indefinite too: they are what the second execution of a duplicated request answers, and the
//! client may see that answer first. The checker allows either outcome of an indefinite one.
//! Every operation goes into the admin history, which the checker judges at the end: an
//! acknowledged create must survive unless a delete of that name was invoked after it; an
//! acknowledged delete must not come undone.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use seedlog_core::env::Time;
use seedlog_core::metadata::{ControllerRequest, ControllerResponse, TopicId};
use seedlog_core::node::NodeMessage;
use seedlog_core::protocol::ErrorCode;

use crate::net::NodeId;

/// Backoff after NOT_CONTROLLER (or any retriable error) before trying the next node.
const RETRY_BACKOFF_MS: u64 = 20;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminOutcome {
    Ok,
    Fail,
    Info,
}

/// One admin operation as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdminOp {
    pub process: u32,
    /// Virtual time of the invocation and of the completion, in nanoseconds.
    pub invoked_ns: u64,
    pub completed_ns: u64,
    /// `create` or `delete`.
    pub action: &'static str,
    pub topic: String,
    pub outcome: AdminOutcome,
    /// The topic id the controller answered with (ok operations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It was retried after NOT_CONTROLLER: an earlier attempt may also have taken effect (a
    /// delete by name may have removed another topic of that name than the one it reports).
    pub retried: bool,
    #[serde(skip)]
    pub id: Option<TopicId>,
}

struct Pending {
    correlation_id: u64,
    request: ControllerRequest,
    invoked: Time,
    /// An earlier attempt was answered NOT_CONTROLLER: a controller that lost its leadership
    /// answers so even for a request whose records may still commit, so a later definite failure
    /// (TOPIC_ALREADY_EXISTS for a create that did happen) is not definite any more.
    ambiguous: bool,
    /// `None` while waiting for the backoff before a retry.
    deadline: Option<Time>,
}

pub struct Admin {
    pub process: u32,
    pub node: NodeId,
    targets: Vec<NodeId>,
    target: usize,
    interval_ms: u64,
    timeout_ms: u64,
    topic_names: u32,
    partitions_max: u32,
    replication_factor_max: u16,
    unclean_topics: bool,
    next_correlation_id: u64,
    pending: Option<Pending>,
    alarm: Option<Time>,
    stopped: bool,
    pub ops: Vec<AdminOp>,
}

pub struct AdminSettings {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub topic_names: u32,
    pub partitions_max: u32,
    pub replication_factor_max: u16,
    pub unclean_topics: bool,
}

impl Admin {
    pub fn new(process: u32, node: NodeId, targets: Vec<NodeId>, settings: &AdminSettings) -> Admin {
        assert!(!targets.is_empty());
        Admin {
            process,
            node,
            target: process as usize % targets.len(),
            targets,
            interval_ms: settings.interval_ms,
            timeout_ms: settings.timeout_ms,
            topic_names: settings.topic_names,
            partitions_max: settings.partitions_max,
            replication_factor_max: settings.replication_factor_max,
            unclean_topics: settings.unclean_topics,
            next_correlation_id: 0,
            pending: None,
            alarm: Some(Time::from_millis(settings.interval_ms)),
            stopped: false,
            ops: Vec::new(),
        }
    }

    pub fn alarm(&self) -> Option<Time> {
        self.alarm
    }

    /// Stops issuing new requests (the chaos ended); an outstanding one still completes or times out.
    pub fn stop(&mut self) {
        self.stopped = true;
        if self.pending.is_none() {
            self.alarm = None;
        }
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    pub fn on_wake(&mut self, now: Time, rng: &mut ChaCha8Rng) -> Vec<(NodeId, NodeMessage)> {
        self.alarm = None;
        if let Some(pending) = &mut self.pending {
            match pending.deadline {
                // The answer never came: the operation's outcome is unknown.
                Some(deadline) if now >= deadline => {
                    let pending = self.pending.take().expect("pending");
                    self.complete(now, pending, AdminOutcome::Info, None, Some("timeout".into()));
                    self.target = (self.target + 1) % self.targets.len();
                }
                Some(deadline) => {
                    self.alarm = Some(deadline);
                    return Vec::new();
                }
                // The backoff is over: retry at the (new) target.
                None => return self.send_pending(now),
            }
        }
        if self.stopped {
            return Vec::new();
        }
        let name = format!("t{}", rng.random_range(0..self.topic_names));
        let request = if rng.random_bool(0.6) {
            let mut configs = BTreeMap::new();
            if self.unclean_topics && rng.random_bool(0.5) {
                configs.insert("unclean.leader.election.enable".to_string(), "true".to_string());
            }
            ControllerRequest::CreateTopic {
                name,
                partitions: rng.random_range(1..=self.partitions_max),
                replication_factor: rng.random_range(1..=self.replication_factor_max),
                configs,
            }
        } else {
            ControllerRequest::DeleteTopic { name }
        };
        self.next_correlation_id += 1;
        self.pending = Some(Pending {
            correlation_id: self.next_correlation_id,
            request,
            invoked: now,
            ambiguous: false,
            deadline: None,
        });
        self.send_pending(now)
    }

    fn send_pending(&mut self, now: Time) -> Vec<(NodeId, NodeMessage)> {
        let pending = self.pending.as_mut().expect("a pending request");
        let deadline = now.plus_millis(self.timeout_ms);
        pending.deadline = Some(deadline);
        self.alarm = Some(deadline);
        let message = NodeMessage::ControllerRequest {
            correlation_id: pending.correlation_id,
            request: pending.request.clone(),
        };
        vec![(self.targets[self.target], message)]
    }

    pub fn on_response(&mut self, now: Time, correlation_id: u64, response: ControllerResponse) {
        let Some(pending) = &self.pending else { return };
        if pending.correlation_id != correlation_id || pending.deadline.is_none() {
            return; // A late answer to an attempt already given up on.
        }
        let result = match response {
            ControllerResponse::CreateTopic(result) | ControllerResponse::DeleteTopic(result) => result,
            _ => return, // Not an answer to an admin request: ignore.
        };
        match result {
            Err(ErrorCode::NotController) => {
                // Try the next node after a short backoff.
                self.target = (self.target + 1) % self.targets.len();
                let pending = self.pending.as_mut().expect("pending");
                pending.deadline = None;
                pending.ambiguous = true;
                self.alarm = Some(now.plus_millis(RETRY_BACKOFF_MS));
            }
            Ok(id) => {
                let pending = self.pending.take().expect("pending");
                self.complete(now, pending, AdminOutcome::Ok, Some(id), None);
            }
            Err(code) => {
                let pending = self.pending.take().expect("pending");
                // TOPIC_ALREADY_EXISTS and UNKNOWN_TOPIC_OR_PARTITION are what a second execution
                // of the same request answers (a duplicated message, or a retry after
                // NOT_CONTROLLER): they do not prove this request did nothing.
                let echo = matches!(code, ErrorCode::TopicAlreadyExists | ErrorCode::UnknownTopicOrPartition);
                let outcome = if pending.ambiguous || echo { AdminOutcome::Info } else { AdminOutcome::Fail };
                self.complete(now, pending, outcome, None, Some(code.name().to_string()));
            }
        }
    }

    fn complete(
        &mut self,
        now: Time,
        pending: Pending,
        outcome: AdminOutcome,
        id: Option<TopicId>,
        error: Option<String>,
    ) {
        let retried = pending.ambiguous;
        let (action, topic) = match pending.request {
            ControllerRequest::CreateTopic { name, .. } => ("create", name),
            ControllerRequest::DeleteTopic { name } => ("delete", name),
            _ => unreachable!("the admin sends only topic requests"),
        };
        self.ops.push(AdminOp {
            process: self.process,
            invoked_ns: pending.invoked.as_nanos(),
            completed_ns: now.as_nanos(),
            action,
            topic,
            outcome,
            topic_id: id.map(|id| topic_id_hex(&id)),
            error,
            retried,
            id,
        });
        if !self.stopped {
            self.alarm = Some(now.plus_millis(self.interval_ms));
        }
    }
}

pub fn topic_id_hex(id: &TopicId) -> String {
    id.0.iter().map(|byte| format!("{byte:02x}")).collect()
}
