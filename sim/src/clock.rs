//! SimClock: each node's wall clock, derived from virtual time.
//!
//! Fault model. Virtual time (`Time`, handed to every event) is perfect and shared; it is what the
//! scheduler orders events by and what the core's timeouts use. A node's *wall clock* — the
//! `wall_clock_ms` in its `Env`, which the core uses only where Kafka uses wall time (record
//! timestamps, retention, segment age) — is not: it is off by a fixed skew, runs fast or slow by a
//! drift in parts per million, and can jump forwards or backwards at any moment (an NTP step, a VM
//! restored from a snapshot). A backward jump makes the wall clock go back in time; nothing here
//! smooths that, because real clocks do not either. Pauses (a process that stops running) are not
//! modelled here: the scheduler delays the node's events.
//!
//! `wall_clock_ms(node, now) = EPOCH_MS + now_ms + skew_ms + jumps_ms + now * drift_ppm / 10^6`,
//! all in integer arithmetic, so it is deterministic across platforms.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use seedlog_core::env::Time;

use crate::net::NodeId;
use crate::rng;

/// The wall clock at virtual time zero: 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockOptions {
    /// Each node's fixed skew is drawn from `-skew_ms_max..=skew_ms_max`.
    pub skew_ms_max: u64,
    /// Each node's drift is drawn from `-drift_ppm_max..=drift_ppm_max` (at most 100,000).
    pub drift_ppm_max: u64,
    /// Whether [`SimClock::jump`] moves clocks. When false, jumps are refused (and counted), so a
    /// fault plan can be replayed with clock jumps turned off.
    pub jumps: bool,
}

impl ClockOptions {
    /// Perfect clocks: no skew, no drift, no jumps.
    pub fn perfect() -> ClockOptions {
        ClockOptions { skew_ms_max: 0, drift_ppm_max: 0, jumps: false }
    }

    /// A swarm draw: sometimes perfect, sometimes NTP-grade, sometimes badly off.
    pub fn generate(rng: &mut ChaCha8Rng) -> ClockOptions {
        let skew_ms_max = [0, 5, 250, 60_000][rng::index(rng, 4)];
        let drift_ppm_max = [0, 50, 500][rng::index(rng, 3)];
        ClockOptions { skew_ms_max, drift_ppm_max, jumps: rng::chance(rng, 0.5) }
    }
}

/// The drift bound: a clock that ran 10% fast or slow would be broken hardware, not drift.
const DRIFT_PPM_LIMIT: u64 = 100_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeClock {
    pub skew_ms: i64,
    pub drift_ppm: i64,
    /// The sum of every jump so far.
    pub jumps_ms: i64,
}

pub struct SimClock {
    options: ClockOptions,
    nodes: BTreeMap<NodeId, NodeClock>,
    jumps_refused: u64,
}

impl SimClock {
    /// A clock for nodes `n0..n{node_count - 1}`, each one's skew and drift drawn from `rng` (the
    /// run's "clock" stream) in node order.
    pub fn new(options: ClockOptions, mut rng: ChaCha8Rng, node_count: usize) -> SimClock {
        assert!(
            options.drift_ppm_max <= DRIFT_PPM_LIMIT,
            "drift_ppm_max {} too large",
            options.drift_ppm_max
        );
        assert!(options.skew_ms_max <= i64::MAX as u64 / 4, "skew_ms_max {} too large", options.skew_ms_max);
        let node_count = u32::try_from(node_count).expect("node count fits u32");
        let mut clocks = BTreeMap::new();
        for node in (0..node_count).map(NodeId) {
            let skew_ms = symmetric(&mut rng, options.skew_ms_max);
            let drift_ppm = symmetric(&mut rng, options.drift_ppm_max);
            clocks.insert(node, NodeClock { skew_ms, drift_ppm, jumps_ms: 0 });
        }
        SimClock { options, nodes: clocks, jumps_refused: 0 }
    }

    pub fn options(&self) -> &ClockOptions {
        &self.options
    }

    /// The node's wall clock in milliseconds since the Unix epoch at virtual time `now`.
    ///
    /// Panics for a node the clock was not built with: that is a bug in the simulator.
    pub fn wall_clock_ms(&self, node: NodeId, now: Time) -> i64 {
        let clock = self.node(node);
        let now_ns = i128::from(now.as_nanos());
        let drift_ns = now_ns * i128::from(clock.drift_ppm) / 1_000_000;
        let wall_ns = now_ns + drift_ns;
        let wall_ms = i128::from(EPOCH_MS)
            + wall_ns.div_euclid(1_000_000)
            + i128::from(clock.skew_ms)
            + i128::from(clock.jumps_ms);
        i64::try_from(wall_ms).expect("wall clock within i64 milliseconds")
    }

    pub fn node(&self, node: NodeId) -> &NodeClock {
        self.nodes.get(&node).unwrap_or_else(|| panic!("SimClock has no node {node}"))
    }

    pub fn set_skew_ms(&mut self, node: NodeId, skew_ms: i64) {
        self.node_mut(node).skew_ms = skew_ms;
    }

    pub fn set_drift_ppm(&mut self, node: NodeId, drift_ppm: i64) {
        assert!(drift_ppm.unsigned_abs() <= DRIFT_PPM_LIMIT, "drift {drift_ppm}ppm too large");
        self.node_mut(node).drift_ppm = drift_ppm;
    }

    /// Steps the node's wall clock by `delta_ms` (negative: backwards). Refused (and counted in
    /// [`SimClock::jumps_refused`]) if the options turn jumps off.
    pub fn jump(&mut self, node: NodeId, delta_ms: i64) {
        if !self.options.jumps {
            self.jumps_refused += 1;
            return;
        }
        let clock = self.node_mut(node);
        clock.jumps_ms = clock.jumps_ms.checked_add(delta_ms).expect("clock jumps overflow i64 ms");
    }

    /// How many jumps were refused because the options turn jumps off.
    pub fn jumps_refused(&self) -> u64 {
        self.jumps_refused
    }

    fn node_mut(&mut self, node: NodeId) -> &mut NodeClock {
        self.nodes.get_mut(&node).unwrap_or_else(|| panic!("SimClock has no node {node}"))
    }
}

/// A uniform draw from `-max..=max`.
fn symmetric<R: RngCore>(rng: &mut R, max: u64) -> i64 {
    let max = i64::try_from(max).expect("bound fits i64");
    rng::range_u64(rng, 0, 2 * max as u64) as i64 - max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u32) -> Vec<NodeId> {
        (0..n).map(NodeId).collect()
    }

    #[test]
    fn perfect_clocks_read_the_epoch_plus_virtual_time() {
        let clock = SimClock::new(ClockOptions::perfect(), rng::stream(1, "clock"), 3);
        for node in nodes(3) {
            assert_eq!(clock.wall_clock_ms(node, Time::ZERO), EPOCH_MS);
            assert_eq!(clock.wall_clock_ms(node, Time::from_millis(1_234)), EPOCH_MS + 1_234);
            assert_eq!(clock.wall_clock_ms(node, Time(999_999)), EPOCH_MS);
        }
    }

    #[test]
    fn skews_are_drawn_within_bounds_and_differ_between_nodes() {
        let options = ClockOptions { skew_ms_max: 1_000, drift_ppm_max: 200, jumps: true };
        let clock = SimClock::new(options, rng::stream(2, "clock"), 8);
        let mut skews = std::collections::BTreeSet::new();
        for node in nodes(8) {
            let state = clock.node(node);
            assert!(state.skew_ms.abs() <= 1_000 && state.drift_ppm.abs() <= 200, "{state:?}");
            assert_eq!(clock.wall_clock_ms(node, Time::ZERO), EPOCH_MS + state.skew_ms);
            skews.insert(state.skew_ms);
        }
        assert!(skews.len() > 1, "eight nodes should not all share one skew");
    }

    #[test]
    fn drift_accumulates_in_parts_per_million() {
        let mut clock = SimClock::new(ClockOptions::perfect(), rng::stream(3, "clock"), 2);
        clock.set_drift_ppm(NodeId(0), 100);
        clock.set_drift_ppm(NodeId(1), -100);
        let hour = Time::from_millis(3_600_000);
        // 100 ppm of an hour is 360 ms.
        assert_eq!(clock.wall_clock_ms(NodeId(0), hour), EPOCH_MS + 3_600_000 + 360);
        assert_eq!(clock.wall_clock_ms(NodeId(1), hour), EPOCH_MS + 3_600_000 - 360);
    }

    #[test]
    fn jumps_go_both_ways_and_accumulate_with_skew() {
        let options = ClockOptions { jumps: true, ..ClockOptions::perfect() };
        let mut clock = SimClock::new(options, rng::stream(4, "clock"), 2);
        clock.set_skew_ms(NodeId(1), 50);
        let now = Time::from_millis(10_000);
        clock.jump(NodeId(1), 5_000);
        assert_eq!(clock.wall_clock_ms(NodeId(1), now), EPOCH_MS + 10_000 + 50 + 5_000);
        clock.jump(NodeId(1), -20_000);
        let later = clock.wall_clock_ms(NodeId(1), now.plus_millis(1));
        assert_eq!(later, EPOCH_MS + 10_001 + 50 - 15_000, "a backward jump moves the clock back");
        assert_eq!(clock.wall_clock_ms(NodeId(0), now), EPOCH_MS + 10_000, "other nodes unaffected");
    }

    #[test]
    fn jumps_are_refused_when_turned_off() {
        let mut clock = SimClock::new(ClockOptions::perfect(), rng::stream(5, "clock"), 1);
        clock.jump(NodeId(0), 1_000);
        assert_eq!(clock.wall_clock_ms(NodeId(0), Time::ZERO), EPOCH_MS);
        assert_eq!(clock.jumps_refused(), 1);
    }

    #[test]
    fn same_seed_same_clocks() {
        let options = ClockOptions { skew_ms_max: 60_000, drift_ppm_max: 500, jumps: true };
        let a = SimClock::new(options.clone(), rng::stream(6, "clock"), 5);
        let b = SimClock::new(options.clone(), rng::stream(6, "clock"), 7);
        let c = SimClock::new(options, rng::stream(7, "clock"), 5);
        let read = |clock: &SimClock| -> Vec<i64> {
            nodes(5).into_iter().map(|node| clock.wall_clock_ms(node, Time::from_millis(77_777))).collect()
        };
        assert_eq!(read(&a), read(&b), "more nodes do not change the first nodes' clocks");
        assert_ne!(read(&a), read(&c));
    }

    #[test]
    #[should_panic(expected = "no node n9")]
    fn unknown_nodes_are_a_bug() {
        let clock = SimClock::new(ClockOptions::perfect(), rng::stream(8, "clock"), 1);
        clock.wall_clock_ms(NodeId(9), Time::ZERO);
    }
}
