//! A scenario's script: faults aimed at roles, not node numbers ("crash the leader once it is
//! elected", "crash the candidate mid-election", "cut the partition's followers off", "power off
//! every broker at once"), fired in order during the chaos phase.
//!
//! Partition roles (`partition_leader`, `partition_followers`, `all_brokers`) and conditions
//! (`partition_led`, `isr_shrunk`) are read from the most advanced metadata image any live node
//! has applied, for partition 0 of the cluster workload's topic.
//!
//! Each step waits for its trigger, counted from the moment the previous step fired (or the run's
//! start): a delay, optionally after a cluster condition first holds. A target that names a role
//! is resolved when the step fires; if no node has the role then, the step is traced and skipped.

use seedlog_core::env::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The active controller (quorum leader).
    Leader,
    /// A voter campaigning in an election (the lowest-numbered one).
    Candidate,
    Node(u32),
    /// The leader of partition 0 of the workload's topic.
    PartitionLeader,
    /// The other replicas of partition 0 (each one is hit).
    PartitionFollowers,
    /// Every node with the broker role, at once.
    AllBrokers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Crash {
        target: Target,
        down_ms: u64,
    },
    Shutdown {
        target: Target,
        down_ms: u64,
    },
    Pause {
        target: Target,
        duration_ms: u64,
    },
    /// Cut the node off from every other node.
    Isolate {
        target: Target,
        duration_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    Always,
    /// A single active controller exists.
    LeaderElected,
    /// Some voter is a candidate (an election is under way).
    ElectionUnderWay,
    /// Partition 0 of the workload's topic exists and has a leader.
    PartitionLed,
    /// Partition 0's ISR has shrunk to its leader alone.
    IsrShrunk,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Wait this long after the previous step (or the start) ...
    #[serde(default)]
    pub after_ms: u64,
    /// ... and then until this holds.
    #[serde(default)]
    pub when: Condition,
    pub action: Action,
}

#[derive(Clone, Debug, Default)]
pub struct Script {
    steps: Vec<Step>,
    next: usize,
    /// When the previous step fired.
    since: Time,
}

impl Script {
    pub fn new(steps: Vec<Step>) -> Script {
        Script { steps, next: 0, since: Time::ZERO }
    }

    /// The first step's delay counts from `at` (the start of the chaos).
    pub fn start(&mut self, at: Time) {
        self.since = at;
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The next step's action if its trigger holds at `now` (`holds` says which conditions do).
    pub fn due(&mut self, now: Time, holds: impl Fn(Condition) -> bool) -> Option<Action> {
        let step = self.steps.get(self.next)?;
        if now < self.since.plus_millis(step.after_ms) {
            return None;
        }
        if step.when != Condition::Always && !holds(step.when) {
            return None;
        }
        self.next += 1;
        self.since = now;
        Some(step.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_fire_in_order_after_their_delay_and_condition() {
        let mut script = Script::new(vec![
            Step {
                after_ms: 10,
                when: Condition::LeaderElected,
                action: Action::Crash { target: Target::Leader, down_ms: 5 },
            },
            Step {
                after_ms: 0,
                when: Condition::ElectionUnderWay,
                action: Action::Crash { target: Target::Candidate, down_ms: 5 },
            },
        ]);
        let leader = |c: Condition| c == Condition::LeaderElected;
        let election = |c: Condition| c == Condition::ElectionUnderWay;
        assert_eq!(script.due(Time::from_millis(5), leader), None, "too early");
        assert_eq!(script.due(Time::from_millis(11), |_| false), None, "no leader yet");
        assert_eq!(
            script.due(Time::from_millis(12), leader),
            Some(Action::Crash { target: Target::Leader, down_ms: 5 })
        );
        assert_eq!(script.due(Time::from_millis(12), leader), None, "no election under way");
        assert_eq!(
            script.due(Time::from_millis(40), election),
            Some(Action::Crash { target: Target::Candidate, down_ms: 5 })
        );
        assert_eq!(script.due(Time::from_millis(50), |_| true), None, "the script is done");
    }
}
