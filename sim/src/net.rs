//! SimNet: the simulated network between nodes — latency, loss, duplication, reordering, clogs and
//! partitions, all drawn from the run's "network" stream.
//!
//! Fault model. A message sent on a link (an ordered pair of nodes) is, independently:
//! - *lost* with `loss_probability` (it never arrives);
//! - delayed by a latency drawn uniformly from `latency_ns_min..=latency_ns_max`, or with
//!   `tail_probability` from the long tail `latency_ns_max..=tail_latency_ns_max` (a retransmit,
//!   a stalled switch);
//! - *duplicated* with `duplicate_probability`: a second copy arrives with its own latency;
//! - *reordered* relative to other messages on the link only if `reorder` is on. With it off, each
//!   link is FIFO, as a TCP connection is: a delivery time never precedes that of an earlier send
//!   on the same link (equal times keep send order, because the scheduler breaks ties by the order
//!   events were scheduled in — schedule a send's deliveries in the order returned).
//!
//! A *partition* cuts links; cuts accumulate until [`SimNet::heal`]. A message sent on a cut link
//! is dropped at once, and one already in flight when its link is cut is dropped at arrival (the
//! simulator asks [`SimNet::arrive`] at delivery time). A *clog* holds a link: a message sent on it
//! before `until` is delivered no earlier than `until`; messages already in flight when the clog
//! starts left before it and arrive as scheduled. Loopback (a node sending to itself) is never
//! lost, cut, clogged, duplicated or delayed. Nothing is ever corrupted: the brokers' links are TCP,
//! whose checksums (and Kafka's CRC) make corruption a loss, which is modelled.
//!
//! SimNet does not hold messages: `send` returns the deliveries for the simulator to schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use seedlog_core::env::Time;

use crate::rng;

/// A node of the simulated cluster: a broker or a client. Printed as `n0`, `n1`, …
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetOptions {
    pub latency_ns_min: u64,
    pub latency_ns_max: u64,
    /// The chance that a message takes the long tail instead.
    pub tail_probability: f64,
    /// The long tail is `latency_ns_max..=tail_latency_ns_max`.
    pub tail_latency_ns_max: u64,
    pub loss_probability: f64,
    pub duplicate_probability: f64,
    /// Whether messages on one link may overtake each other. Off: per-link FIFO.
    pub reorder: bool,
}

impl NetOptions {
    /// A network that loses, duplicates and reorders nothing, with a small fixed-range latency.
    pub fn reliable() -> NetOptions {
        NetOptions {
            latency_ns_min: 50_000,
            latency_ns_max: 200_000,
            tail_probability: 0.0,
            tail_latency_ns_max: 200_000,
            loss_probability: 0.0,
            duplicate_probability: 0.0,
            reorder: false,
        }
    }

    /// A swarm draw: each fault kind is sometimes off, sometimes mild, sometimes harsh.
    pub fn generate(rng: &mut ChaCha8Rng) -> NetOptions {
        let latency_ns_min = [10_000, 100_000, 1_000_000][rng::index(rng, 3)];
        let latency_ns_max = latency_ns_min * [1, 5, 50][rng::index(rng, 3)];
        let tail_probability = [0.0, 0.001, 0.01][rng::index(rng, 3)];
        let tail_latency_ns_max = latency_ns_max * [10, 100][rng::index(rng, 2)];
        let loss_probability = [0.0, 0.0, 0.001, 0.01, 0.05][rng::index(rng, 5)];
        let duplicate_probability = [0.0, 0.001, 0.01][rng::index(rng, 3)];
        let reorder = rng::chance(rng, 0.5);
        NetOptions {
            latency_ns_min,
            latency_ns_max,
            tail_probability,
            tail_latency_ns_max,
            loss_probability,
            duplicate_probability,
            reorder,
        }
    }

    fn validate(&self) {
        assert!(self.latency_ns_min <= self.latency_ns_max, "latency range inverted: {self:?}");
        assert!(
            self.tail_probability == 0.0 || self.latency_ns_max <= self.tail_latency_ns_max,
            "tail shorter than latency: {self:?}"
        );
        for p in [self.tail_probability, self.loss_probability, self.duplicate_probability] {
            assert!((0.0..=1.0).contains(&p), "probability out of range: {self:?}");
        }
    }
}

/// A shape of cut links. Every shape is concrete data (which nodes on which side), so a fault plan
/// that contains it replays exactly and can be edited by hand.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Partition {
    /// The node can neither send to nor receive from any other node.
    Isolate { node: NodeId },
    /// Symmetric: no message crosses between the sides, in either direction.
    Split { side_a: Vec<NodeId>, side_b: Vec<NodeId> },
    /// Asymmetric: messages from `from` to `to` are cut; the reverse direction still works.
    OneWay { from: Vec<NodeId>, to: Vec<NodeId> },
    /// A symmetric split into a majority and a minority of the nodes it was drawn from.
    MajorityMinority { majority: Vec<NodeId>, minority: Vec<NodeId> },
    /// The sides cannot talk to each other, but `bridge` talks to both (the "bridge" nemesis of
    /// Jepsen: two overlapping majorities).
    Bridge { bridge: NodeId, side_a: Vec<NodeId>, side_b: Vec<NodeId> },
}

impl Partition {
    /// Picks a shape and its sides among `nodes` (which must not be empty). With one node the only
    /// shape is `Isolate`; `Bridge` needs three nodes and becomes a `Split` with fewer.
    pub fn random<R: RngCore + ?Sized>(rng: &mut R, nodes: &[NodeId]) -> Partition {
        let mut nodes = nodes.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        assert!(!nodes.is_empty(), "a partition needs at least one node");
        if nodes.len() == 1 {
            return Partition::Isolate { node: nodes[0] };
        }
        match rng::range_u64(rng, 0, 4) {
            0 => Partition::Isolate { node: nodes[rng::index(rng, nodes.len())] },
            1 => {
                let (side_a, side_b) = random_sides(rng, nodes);
                Partition::Split { side_a, side_b }
            }
            2 => {
                let (from, to) = random_sides(rng, nodes);
                Partition::OneWay { from, to }
            }
            3 => Partition::majority_minority(rng, &nodes),
            _ if nodes.len() < 3 => {
                let (side_a, side_b) = random_sides(rng, nodes);
                Partition::Split { side_a, side_b }
            }
            _ => {
                rng::shuffle(rng, &mut nodes);
                let bridge = nodes.remove(0);
                let (side_a, side_b) = random_sides(rng, nodes);
                Partition::Bridge { bridge, side_a, side_b }
            }
        }
    }

    /// A random minority of `1..=max(1, (n - 1) / 2)` nodes cut off from the rest (with two nodes,
    /// one on each side).
    pub fn majority_minority<R: RngCore + ?Sized>(rng: &mut R, nodes: &[NodeId]) -> Partition {
        let mut nodes = nodes.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        assert!(nodes.len() >= 2, "a majority/minority split needs two nodes");
        let minority_max = ((nodes.len() - 1) / 2).max(1);
        let minority_len = rng::range_u64(rng, 1, minority_max as u64) as usize;
        rng::shuffle(rng, &mut nodes);
        let mut majority = nodes.split_off(minority_len);
        let mut minority = nodes;
        majority.sort_unstable();
        minority.sort_unstable();
        Partition::MajorityMinority { majority, minority }
    }

    /// Whether this shape cuts the link `from -> to`. Loopback is never cut.
    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        if from == to {
            return false;
        }
        let across = |a: &[NodeId], b: &[NodeId]| a.contains(&from) && b.contains(&to);
        match self {
            Partition::Isolate { node } => from == *node || to == *node,
            Partition::Split { side_a, side_b } | Partition::Bridge { side_a, side_b, .. } => {
                across(side_a, side_b) || across(side_b, side_a)
            }
            Partition::MajorityMinority { majority, minority } => {
                across(majority, minority) || across(minority, majority)
            }
            Partition::OneWay { from: senders, to: receivers } => across(senders, receivers),
        }
    }
}

/// Shuffles `nodes` (at least two) and cuts them into two non-empty sides, each sorted.
fn random_sides<R: RngCore + ?Sized>(rng: &mut R, mut nodes: Vec<NodeId>) -> (Vec<NodeId>, Vec<NodeId>) {
    assert!(nodes.len() >= 2);
    rng::shuffle(rng, &mut nodes);
    let cut = rng::range_u64(rng, 1, nodes.len() as u64 - 1) as usize;
    let mut side_b = nodes.split_off(cut);
    let mut side_a = nodes;
    side_a.sort_unstable();
    side_b.sort_unstable();
    (side_a, side_b)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetStats {
    /// Calls to `send`.
    pub sent: u64,
    /// Arrivals that were delivered (duplicates included).
    pub delivered: u64,
    /// Messages dropped for any reason: lost, sent on a cut link, or cut while in flight.
    pub dropped: u64,
    /// The part of `dropped` that was random loss.
    pub lost: u64,
    /// Extra copies created.
    pub duplicated: u64,
}

#[derive(Clone, Debug, Default)]
struct Link {
    /// `(latency_ns_min, latency_ns_max)` for this link instead of the options'.
    latency_ns: Option<(u64, u64)>,
    clogged_until: Option<Time>,
    /// The latest delivery time handed out on this link (for FIFO).
    last_delivery: Time,
}

pub struct SimNet<M: Clone> {
    options: NetOptions,
    rng: ChaCha8Rng,
    links: BTreeMap<(NodeId, NodeId), Link>,
    isolated: BTreeSet<NodeId>,
    cut: BTreeSet<(NodeId, NodeId)>,
    stats: NetStats,
    message: PhantomData<fn() -> M>,
}

impl<M: Clone> SimNet<M> {
    /// `rng` is the run's "network" stream.
    pub fn new(options: NetOptions, rng: ChaCha8Rng) -> SimNet<M> {
        options.validate();
        SimNet {
            options,
            rng,
            links: BTreeMap::new(),
            isolated: BTreeSet::new(),
            cut: BTreeSet::new(),
            stats: NetStats::default(),
            message: PhantomData,
        }
    }

    pub fn options(&self) -> &NetOptions {
        &self.options
    }

    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Sends `message` at `now` and returns its deliveries, in the order to schedule them: none if
    /// it is lost or the link is cut, two if it is duplicated.
    pub fn send(&mut self, now: Time, from: NodeId, to: NodeId, message: M) -> Vec<(Time, M)> {
        self.stats.sent += 1;
        if from == to {
            return vec![(self.fifo(now, from, to, now), message)];
        }
        if !self.can_deliver(from, to) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        if rng::chance(&mut self.rng, self.options.loss_probability) {
            self.stats.dropped += 1;
            self.stats.lost += 1;
            return Vec::new();
        }
        let first = self.delivery_time(now, from, to);
        if rng::chance(&mut self.rng, self.options.duplicate_probability) {
            self.stats.duplicated += 1;
            let second = self.delivery_time(now, from, to);
            return vec![(first, message.clone()), (second, message)];
        }
        vec![(first, message)]
    }

    /// Whether a message on `from -> to` gets through the current cuts. Loopback always does.
    pub fn can_deliver(&self, from: NodeId, to: NodeId) -> bool {
        from == to
            || !(self.isolated.contains(&from)
                || self.isolated.contains(&to)
                || self.cut.contains(&(from, to)))
    }

    /// Called by the simulator when a message is due: whether to deliver it (its link may have been
    /// cut while it was in flight, then it is dropped). Counts the outcome.
    pub fn arrive(&mut self, from: NodeId, to: NodeId) -> bool {
        if self.can_deliver(from, to) {
            self.stats.delivered += 1;
            true
        } else {
            self.stats.dropped += 1;
            false
        }
    }

    /// Cuts the links the shape describes, in addition to any already cut.
    pub fn partition(&mut self, partition: &Partition) {
        let mut cut_across = |a: &[NodeId], b: &[NodeId], both_ways: bool| {
            for &x in a {
                for &y in b {
                    if x != y {
                        self.cut.insert((x, y));
                        if both_ways {
                            self.cut.insert((y, x));
                        }
                    }
                }
            }
        };
        match partition {
            Partition::Isolate { node } => {
                self.isolated.insert(*node);
            }
            Partition::Split { side_a, side_b } | Partition::Bridge { side_a, side_b, .. } => {
                cut_across(side_a, side_b, true)
            }
            Partition::MajorityMinority { majority, minority } => cut_across(majority, minority, true),
            Partition::OneWay { from, to } => cut_across(from, to, false),
        }
    }

    /// Restores every link and clears every clog. Per-link latencies stay.
    pub fn heal(&mut self) {
        self.isolated.clear();
        self.cut.clear();
        for link in self.links.values_mut() {
            link.clogged_until = None;
        }
    }

    /// The chaos is over: from now on no message is lost, duplicated or held in a latency tail
    /// (messages already in flight keep their delivery times). The base latency stays.
    pub fn calm(&mut self) {
        self.options.loss_probability = 0.0;
        self.options.duplicate_probability = 0.0;
        self.options.tail_probability = 0.0;
    }

    /// Holds the link `from -> to`: messages sent on it are delivered no earlier than `until`.
    /// A second clog of the same link extends the first, never shortens it.
    pub fn clog(&mut self, from: NodeId, to: NodeId, until: Time) {
        let link = self.links.entry((from, to)).or_default();
        link.clogged_until = Some(link.clogged_until.map_or(until, |current| current.max(until)));
    }

    pub fn unclog(&mut self, from: NodeId, to: NodeId) {
        if let Some(link) = self.links.get_mut(&(from, to)) {
            link.clogged_until = None;
        }
    }

    /// Gives the link `from -> to` its own latency range (the long tail still applies).
    pub fn set_link_latency(&mut self, from: NodeId, to: NodeId, latency_ns_min: u64, latency_ns_max: u64) {
        assert!(latency_ns_min <= latency_ns_max, "latency range inverted");
        self.links.entry((from, to)).or_default().latency_ns = Some((latency_ns_min, latency_ns_max));
    }

    pub fn clear_link_latency(&mut self, from: NodeId, to: NodeId) {
        if let Some(link) = self.links.get_mut(&(from, to)) {
            link.latency_ns = None;
        }
    }

    fn delivery_time(&mut self, now: Time, from: NodeId, to: NodeId) -> Time {
        let (latency_ns_min, latency_ns_max) = self
            .links
            .get(&(from, to))
            .and_then(|link| link.latency_ns)
            .unwrap_or((self.options.latency_ns_min, self.options.latency_ns_max));
        let latency_ns = if rng::chance(&mut self.rng, self.options.tail_probability) {
            let tail_max = self.options.tail_latency_ns_max.max(latency_ns_max);
            rng::range_u64(&mut self.rng, latency_ns_max, tail_max)
        } else {
            rng::range_u64(&mut self.rng, latency_ns_min, latency_ns_max)
        };
        let mut at = now.plus_nanos(latency_ns);
        if let Some(until) = self.links.get(&(from, to)).and_then(|link| link.clogged_until) {
            at = at.max(until);
        }
        self.fifo(now, from, to, at)
    }

    /// Applies per-link FIFO (unless reordering is on) and records the delivery time.
    fn fifo(&mut self, now: Time, from: NodeId, to: NodeId, at: Time) -> Time {
        debug_assert!(at >= now);
        let reorder = self.options.reorder && from != to;
        let link = self.links.entry((from, to)).or_default();
        let at = if reorder { at } else { at.max(link.last_delivery) };
        link.last_delivery = link.last_delivery.max(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u32) -> Vec<NodeId> {
        (0..n).map(NodeId).collect()
    }

    fn net(options: NetOptions, seed: u64) -> SimNet<u32> {
        SimNet::new(options, rng::stream(seed, "network"))
    }

    /// Every ordered pair of distinct nodes that can talk.
    fn reachable(net: &SimNet<u32>, all: &[NodeId]) -> BTreeSet<(u32, u32)> {
        let mut pairs = BTreeSet::new();
        for &a in all {
            for &b in all {
                if a != b && net.can_deliver(a, b) {
                    pairs.insert((a.0, b.0));
                }
            }
        }
        pairs
    }

    fn all_pairs_except(n: u32, cut: &[(u32, u32)]) -> BTreeSet<(u32, u32)> {
        let mut pairs = BTreeSet::new();
        for a in 0..n {
            for b in 0..n {
                if a != b && !cut.contains(&(a, b)) {
                    pairs.insert((a, b));
                }
            }
        }
        pairs
    }

    #[test]
    fn node_ids_print_as_n_and_number() {
        assert_eq!(NodeId(3).to_string(), "n3");
        assert_eq!(serde_json::to_string(&NodeId(3)).unwrap(), "3");
    }

    #[test]
    fn isolate_cuts_the_node_both_ways_only() {
        let mut net = net(NetOptions::reliable(), 1);
        net.partition(&Partition::Isolate { node: NodeId(1) });
        let cut = [(0, 1), (1, 0), (1, 2), (2, 1)];
        assert_eq!(reachable(&net, &nodes(3)), all_pairs_except(3, &cut));
        assert!(net.can_deliver(NodeId(1), NodeId(1)), "loopback survives isolation");
    }

    #[test]
    fn split_is_symmetric() {
        let mut net = net(NetOptions::reliable(), 1);
        let split = Partition::Split { side_a: vec![NodeId(0), NodeId(1)], side_b: vec![NodeId(2)] };
        net.partition(&split);
        let cut = [(0, 2), (2, 0), (1, 2), (2, 1)];
        assert_eq!(reachable(&net, &nodes(3)), all_pairs_except(3, &cut));
    }

    #[test]
    fn one_way_cuts_a_single_direction() {
        let mut net = net(NetOptions::reliable(), 1);
        net.partition(&Partition::OneWay { from: vec![NodeId(0)], to: vec![NodeId(1), NodeId(2)] });
        assert_eq!(reachable(&net, &nodes(3)), all_pairs_except(3, &[(0, 1), (0, 2)]));
    }

    #[test]
    fn bridge_talks_to_both_sides_which_cannot_talk_to_each_other() {
        let mut net = net(NetOptions::reliable(), 1);
        let bridge = Partition::Bridge {
            bridge: NodeId(2),
            side_a: vec![NodeId(0), NodeId(1)],
            side_b: vec![NodeId(3), NodeId(4)],
        };
        net.partition(&bridge);
        let mut cut = Vec::new();
        for a in [0, 1] {
            for b in [3, 4] {
                cut.push((a, b));
                cut.push((b, a));
            }
        }
        assert_eq!(reachable(&net, &nodes(5)), all_pairs_except(5, &cut));
    }

    #[test]
    fn majority_minority_leaves_a_strict_majority_together() {
        for seed in 0..200 {
            let mut rng = rng::stream(seed, "test");
            let all = nodes(5);
            let Partition::MajorityMinority { majority, minority } =
                Partition::majority_minority(&mut rng, &all)
            else {
                panic!("wrong shape");
            };
            assert!(majority.len() >= 3 && !minority.is_empty(), "{majority:?} {minority:?}");
            let mut union: Vec<NodeId> = majority.iter().chain(&minority).copied().collect();
            union.sort_unstable();
            assert_eq!(union, all);
            let mut net = net(NetOptions::reliable(), seed);
            net.partition(&Partition::MajorityMinority {
                majority: majority.clone(),
                minority: minority.clone(),
            });
            for a in &majority {
                for b in &minority {
                    assert!(!net.can_deliver(*a, *b) && !net.can_deliver(*b, *a));
                }
                for b in &majority {
                    assert!(net.can_deliver(*a, *b));
                }
            }
        }
    }

    #[test]
    fn random_partitions_cover_every_shape_and_agree_with_blocks() {
        let all = nodes(5);
        let mut shapes = BTreeSet::new();
        for seed in 0..300 {
            let mut rng = rng::stream(seed, "test");
            let partition = Partition::random(&mut rng, &all);
            shapes.insert(match partition {
                Partition::Isolate { .. } => "isolate",
                Partition::Split { .. } => "split",
                Partition::OneWay { .. } => "one_way",
                Partition::MajorityMinority { .. } => "majority_minority",
                Partition::Bridge { .. } => "bridge",
            });
            let mut net = net(NetOptions::reliable(), seed);
            net.partition(&partition);
            let mut some_cut = false;
            for &a in &all {
                for &b in &all {
                    assert_eq!(net.can_deliver(a, b), !partition.blocks(a, b), "{partition:?} {a}->{b}");
                    some_cut |= partition.blocks(a, b);
                }
            }
            assert!(some_cut, "{partition:?} cuts nothing");
            if let Partition::Bridge { bridge, side_a, side_b } = &partition {
                assert!(!side_a.contains(bridge) && !side_b.contains(bridge));
                assert!(!side_a.is_empty() && !side_b.is_empty());
            }
        }
        assert_eq!(shapes.len(), 5, "every shape is drawn");
        let single = Partition::random(&mut rng::stream(1, "test"), &[NodeId(7)]);
        assert_eq!(single, Partition::Isolate { node: NodeId(7) });
    }

    #[test]
    fn cuts_accumulate_and_heal_restores_everything() {
        let mut net = net(NetOptions::reliable(), 1);
        net.partition(&Partition::OneWay { from: vec![NodeId(0)], to: vec![NodeId(1)] });
        net.partition(&Partition::OneWay { from: vec![NodeId(1)], to: vec![NodeId(2)] });
        assert_eq!(reachable(&net, &nodes(3)), all_pairs_except(3, &[(0, 1), (1, 2)]));
        net.clog(NodeId(2), NodeId(0), Time::from_millis(1_000));
        net.heal();
        assert_eq!(reachable(&net, &nodes(3)), all_pairs_except(3, &[]));
        let deliveries = net.send(Time::ZERO, NodeId(2), NodeId(0), 1);
        assert!(deliveries[0].0 < Time::from_millis(1), "heal clears clogs");
    }

    #[test]
    fn cut_links_drop_at_send_and_in_flight_messages_drop_at_arrival() {
        let mut net = net(NetOptions::reliable(), 1);
        let deliveries = net.send(Time::ZERO, NodeId(0), NodeId(1), 7);
        assert_eq!(deliveries.len(), 1);
        net.partition(&Partition::Isolate { node: NodeId(1) });
        assert!(!net.arrive(NodeId(0), NodeId(1)), "the in-flight message meets the new cut");
        assert!(net.send(Time::ZERO, NodeId(0), NodeId(1), 8).is_empty());
        assert_eq!(net.stats().dropped, 2);
        assert_eq!(net.stats().delivered, 0);
    }

    #[test]
    fn loopback_is_immediate_and_never_lost() {
        let options =
            NetOptions { loss_probability: 1.0, duplicate_probability: 1.0, ..NetOptions::reliable() };
        let mut net = net(options, 1);
        net.partition(&Partition::Isolate { node: NodeId(0) });
        net.clog(NodeId(0), NodeId(0), Time::from_millis(50));
        let deliveries = net.send(Time::from_millis(3), NodeId(0), NodeId(0), 9);
        assert_eq!(deliveries, vec![(Time::from_millis(3), 9)]);
        assert!(net.arrive(NodeId(0), NodeId(0)));
    }

    #[test]
    fn without_reorder_each_link_is_fifo() {
        let options = NetOptions {
            latency_ns_min: 1_000,
            latency_ns_max: 10_000_000,
            tail_probability: 0.05,
            tail_latency_ns_max: 100_000_000,
            duplicate_probability: 0.1,
            ..NetOptions::reliable()
        };
        let mut net = net(options, 5);
        let mut last = BTreeMap::new();
        for i in 0..5_000u32 {
            let now = Time(u64::from(i) * 10_000);
            let from = NodeId(i % 3);
            let to = NodeId((i / 3) % 3);
            for (at, message) in net.send(now, from, to, i) {
                assert!(at >= now);
                let previous = last.insert((from, to), at).unwrap_or(Time::ZERO);
                assert!(at >= previous, "message {message} on {from}->{to} overtakes an earlier one");
            }
        }
    }

    #[test]
    fn with_reorder_messages_overtake() {
        let options = NetOptions {
            latency_ns_min: 1_000,
            latency_ns_max: 10_000_000,
            reorder: true,
            ..NetOptions::reliable()
        };
        let mut net = net(options, 5);
        let times: Vec<Time> =
            (0..1_000u64).map(|i| net.send(Time(i * 1_000), NodeId(0), NodeId(1), 0)[0].0).collect();
        let overtaken = times.windows(2).filter(|pair| pair[1] < pair[0]).count();
        assert!(overtaken > 100, "only {overtaken} reorderings");
    }

    #[test]
    fn clogged_links_hold_messages_until_the_clog_ends() {
        let mut net = net(NetOptions::reliable(), 1);
        let until = Time::from_millis(500);
        net.clog(NodeId(0), NodeId(1), until);
        net.clog(NodeId(0), NodeId(1), Time::from_millis(100));
        assert_eq!(net.send(Time::from_millis(1), NodeId(0), NodeId(1), 1)[0].0, until, "never shortened");
        assert!(net.send(Time::from_millis(1), NodeId(1), NodeId(0), 2)[0].0 < until, "only that direction");
        net.unclog(NodeId(0), NodeId(1));
        let after_unclog = net.send(Time::from_millis(2), NodeId(0), NodeId(1), 3)[0].0;
        assert_eq!(after_unclog, until, "FIFO: still not before the held message");
        let later = net.send(Time::from_millis(600), NodeId(0), NodeId(1), 4)[0].0;
        assert!(later > Time::from_millis(600) && later < Time::from_millis(601));
    }

    #[test]
    fn per_link_latency_overrides_the_options() {
        let mut net = net(NetOptions::reliable(), 1);
        net.set_link_latency(NodeId(0), NodeId(1), 7_000_000, 7_000_000);
        assert_eq!(net.send(Time::ZERO, NodeId(0), NodeId(1), 1)[0].0, Time(7_000_000));
        assert!(net.send(Time::ZERO, NodeId(0), NodeId(2), 1)[0].0 <= Time(200_000));
        net.clear_link_latency(NodeId(0), NodeId(1));
        assert!(net.send(Time(7_000_000), NodeId(0), NodeId(1), 1)[0].0 <= Time(7_200_000));
    }

    #[test]
    fn duplication_sends_two_copies() {
        let options = NetOptions { duplicate_probability: 1.0, ..NetOptions::reliable() };
        let mut net = net(options, 1);
        let deliveries = net.send(Time::ZERO, NodeId(0), NodeId(1), 42);
        assert_eq!(deliveries.iter().map(|(_, m)| *m).collect::<Vec<_>>(), vec![42, 42]);
        assert!(deliveries[0].0 <= deliveries[1].0);
        assert_eq!(net.stats().duplicated, 1);
    }

    #[test]
    fn loss_rate_is_roughly_the_option() {
        let options = NetOptions { loss_probability: 0.1, ..NetOptions::reliable() };
        let mut net = net(options, 11);
        let delivered: usize = (0..20_000).map(|i| net.send(Time(i), NodeId(0), NodeId(1), 0).len()).sum();
        assert!((17_700..18_300).contains(&delivered), "{delivered}");
        assert_eq!(net.stats().lost as usize, 20_000 - delivered);
    }

    #[test]
    fn latency_and_tail_stay_within_bounds() {
        let options = NetOptions {
            latency_ns_min: 1_000,
            latency_ns_max: 2_000,
            tail_probability: 0.1,
            tail_latency_ns_max: 1_000_000,
            reorder: true,
            ..NetOptions::reliable()
        };
        let mut net = net(options, 3);
        let mut tails = 0;
        for _ in 0..10_000 {
            let at = net.send(Time::ZERO, NodeId(0), NodeId(1), 0)[0].0;
            assert!((1_000..=1_000_000).contains(&at.as_nanos()));
            tails += usize::from(at.as_nanos() > 2_000);
        }
        assert!((800..1_200).contains(&tails), "{tails}");
    }

    #[test]
    fn same_seed_same_deliveries_and_generated_options_are_valid() {
        let run = |seed: u64| -> Vec<(Time, u32)> {
            let options = NetOptions::generate(&mut rng::stream(seed, "options"));
            let mut net = net(options, seed);
            (0..2_000u32)
                .flat_map(|i| net.send(Time(u64::from(i) * 1_000), NodeId(i % 4), NodeId(i % 3), i))
                .collect()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        for seed in 0..100 {
            NetOptions::generate(&mut rng::stream(seed, "options")).validate();
        }
    }
}
