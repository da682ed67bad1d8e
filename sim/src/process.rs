//! One simulated server process and its machine, as both worlds keep them: the core state machine
//! (a `Broker` or a `Node`) while it runs, the node's disk and RNG (which outlive the process),
//! its incarnation, and what is waiting for it while it is paused.
//!
//! An event carries the incarnation it was meant for: after a crash or a restart, events of an
//! older incarnation are dropped. While the process is paused (a GC pause, SIGSTOP), its events
//! are held and handed back in order when it resumes (the zombie catches up).

use rand_chacha::ChaCha8Rng;
use seedlog_core::env::{Env, Time};

use crate::buggify::SimFaults;
use crate::disk::{CrashReport, DamageKind, SimDisk};
use crate::net::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Down,
    Up,
    Paused,
    /// A controlled shutdown is under way; the process restarts `down_ms` after it completes.
    ShuttingDown {
        down_ms: u64,
    },
}

pub struct Process<C, E> {
    pub id: NodeId,
    /// The running state machine; `None` while the process is down.
    pub core: Option<C>,
    pub disk: SimDisk,
    pub rng: ChaCha8Rng,
    pub incarnation: u64,
    pub status: Status,
    /// Events that arrived while paused, delivered in order on resumption.
    pub deferred: Vec<E>,
    /// The deadline for which a timer event is queued.
    pub timer_at: Option<Time>,
    pub start_scheduled: bool,
}

impl<C, E> Process<C, E> {
    pub fn new(id: NodeId, disk: SimDisk, rng: ChaCha8Rng) -> Process<C, E> {
        Process {
            id,
            core: None,
            disk,
            rng,
            incarnation: 0,
            status: Status::Down,
            deferred: Vec::new(),
            timer_at: None,
            start_scheduled: false,
        }
    }

    /// The environment for one step of this process: its disk and RNG, the run's fault sites.
    pub fn env<'a>(&'a mut self, now: Time, wall_clock_ms: i64, faults: &'a mut SimFaults) -> Env<'a> {
        Env { now, wall_clock_ms, storage: &mut self.disk, rng: &mut self.rng, faults }
    }

    /// Whether an event for `incarnation` must not be handled now: it is dropped if that
    /// incarnation is gone, held (and `event` built) if the process is paused.
    pub fn hold(&mut self, incarnation: u64, event: impl FnOnce() -> E) -> bool {
        if self.incarnation != incarnation || self.status == Status::Down {
            return true;
        }
        if self.status == Status::Paused {
            self.deferred.push(event());
            return true;
        }
        false
    }

    /// Power loss: the process and its memory are gone, and the disk loses what was not synced.
    pub fn power_off(&mut self) -> CrashReport {
        self.stop();
        self.deferred.clear();
        self.disk.crash()
    }

    /// The process ended (power loss or a completed controlled shutdown).
    pub fn stop(&mut self) {
        self.core = None;
        self.status = Status::Down;
        self.incarnation += 1;
        self.timer_at = None;
    }

    /// Resumes a paused process of `incarnation`; returns the held events, in order.
    pub fn resume(&mut self, incarnation: u64) -> Option<Vec<E>> {
        if self.incarnation != incarnation || self.status != Status::Paused {
            return None;
        }
        self.status = Status::Up;
        Some(std::mem::take(&mut self.deferred))
    }

    /// Durable damage (not a torn unsynced write) anywhere on this node's disk.
    pub fn damaged(&self) -> bool {
        self.disk.damage().iter().any(|damage| !matches!(damage.kind, DamageKind::Torn { .. }))
    }
}
