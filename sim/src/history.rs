//! The history: every client operation as the client saw it (Jepsen's model).
//!
//! An operation is *invoked*, then completes `ok` (it happened), `fail` (it definitely did not) or
//! `info` (unknown: a timeout, an `acks=0` send). Indefinite operations are never counted as
//! failed: a checker must allow for either outcome. Sends carry the values written and, once
//! acknowledged, their offsets; polls carry the `(offset, value)` pairs read. The history is what
//! the checkers judge, and it can be written out as JSON lines.

use seedlog_core::protocol::Acks;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A produce of one batch.
    Send,
    /// A fetch answered with records.
    Poll,
    /// The consumer's position was reset (OFFSET_OUT_OF_RANGE, `auto.offset.reset=earliest`).
    Reset,
    /// A final consumer's read of a whole partition (the liveness check).
    FinalRead,
    /// The consumer found by leader epoch (KIP-320) that the log it had read was truncated below
    /// its position, and moved back to where the leader's log ends for its last epoch.
    Truncation,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Op {
    /// Virtual time in milliseconds.
    pub time_ms: f64,
    /// The client (Jepsen's "process").
    pub process: u32,
    pub kind: OpKind,
    #[serde(rename = "type")]
    pub op_type: OpType,
    pub partition: u32,
    /// The ids of the values written or read (`"{process}-{n}"`, the value without its padding),
    /// with their offsets (-1: unknown, as for a send not yet acknowledged).
    pub records: Vec<(i64, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks: Option<Acks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The records' keys, parallel to `records` (`null`: no key). Empty when the client does not
    /// record keys (the log workload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<Option<String>>,
    /// The topic (the cluster workload; the log workload's broker has unnamed partitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// How many produce requests a completed send took (the cluster workload's producer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl Op {
    /// An op with no records, keys, acks, error, topic or attempts.
    pub fn new(time_ms: f64, process: u32, kind: OpKind, op_type: OpType, partition: u32) -> Op {
        Op {
            time_ms,
            process,
            kind,
            op_type,
            partition,
            records: Vec::new(),
            acks: None,
            error: None,
            keys: Vec::new(),
            topic: None,
            attempts: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    pub fn to_json_lines(&self) -> String {
        let mut text = String::new();
        for op in &self.ops {
            text += &serde_json::to_string(op).expect("an op always serialises");
            text.push('\n');
        }
        text
    }
}
