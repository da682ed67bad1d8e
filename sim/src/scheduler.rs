//! The simulator's event queue: virtual time that jumps to the next event.
//!
//! Events are ordered by `(time, sequence)`: the sequence number is the order in which they were
//! scheduled, so two events at the same virtual instant always pop in the same order — the
//! deterministic tie-break every replay relies on. Nothing here reads a real clock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use seedlog_core::env::Time;

/// A queued event's place in the heap; the event itself waits in the scheduler's slab, so sifting
/// the heap moves 24 bytes, not a whole event (a message with its payload).
struct Entry {
    at: Time,
    sequence: u64,
    slot: usize,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

/// A world's bound on queued events; a run stops `QUEUE_HEADROOM` events before it (see
/// [`Scheduler::is_nearly_full`]): a message storm — two leaders of one epoch answering each
/// other's followers, say — is reported as an anomaly of the run, not a crash of the simulator.
pub const QUEUE_MAX: usize = 1_000_000;
pub const QUEUE_HEADROOM: usize = 10_000;

pub struct Scheduler<E> {
    queue: BinaryHeap<Entry>,
    /// The queued events by slot; `free_slots` lists the empty ones for reuse.
    events: Vec<Option<E>>,
    free_slots: Vec<usize>,
    now: Time,
    next_sequence: u64,
    /// A bound on the queue: exceeding it is a bug in the simulation, reported with the seed.
    queue_length_max: usize,
}

impl<E> Scheduler<E> {
    pub fn new(queue_length_max: usize) -> Scheduler<E> {
        Scheduler {
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free_slots: Vec::new(),
            now: Time::ZERO,
            next_sequence: 0,
            queue_length_max,
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the queue is within `headroom` events of its bound: a world stops its run there
    /// (a message storm is an anomaly of the run, not a crash of the simulator).
    pub fn is_nearly_full(&self, headroom: usize) -> bool {
        self.queue.len() + headroom >= self.queue_length_max
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Schedules `event` at `at`; an instant in the past means "now" (time never runs backwards).
    pub fn schedule(&mut self, at: Time, event: E) {
        assert!(
            self.queue.len() < self.queue_length_max,
            "event queue exceeded its bound of {} events",
            self.queue_length_max
        );
        let at = at.max(self.now);
        self.next_sequence += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.events[slot] = Some(event);
                slot
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        self.queue.push(Entry { at, sequence: self.next_sequence, slot });
    }

    pub fn schedule_after_nanos(&mut self, delay_nanos: u64, event: E) {
        self.schedule(self.now.plus_nanos(delay_nanos), event);
    }

    /// Pops the next event and advances virtual time to it. Returns its time and sequence number.
    pub fn pop(&mut self) -> Option<(Time, u64, E)> {
        let entry = self.queue.pop()?;
        assert!(entry.at >= self.now, "virtual time never runs backwards");
        self.now = entry.at;
        let event = self.events[entry.slot].take().expect("a queued entry's slot holds its event");
        self.free_slots.push(entry.slot);
        Some((entry.at, entry.sequence, event))
    }

    /// The time of the next event, without popping it.
    pub fn peek_time(&self) -> Option<Time> {
        self.queue.peek().map(|entry| entry.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_with_fifo_ties() {
        let mut scheduler = Scheduler::new(100);
        scheduler.schedule(Time(30), "c");
        scheduler.schedule(Time(10), "a1");
        scheduler.schedule(Time(20), "b");
        scheduler.schedule(Time(10), "a2");
        let order: Vec<_> = std::iter::from_fn(|| scheduler.pop().map(|(_, _, e)| e)).collect();
        assert_eq!(order, ["a1", "a2", "b", "c"]);
        assert_eq!(scheduler.now(), Time(30));
    }

    #[test]
    fn past_instants_mean_now() {
        let mut scheduler = Scheduler::new(100);
        scheduler.schedule(Time(50), 1);
        scheduler.pop();
        scheduler.schedule(Time(10), 2);
        assert_eq!(scheduler.pop().map(|(at, _, e)| (at, e)), Some((Time(50), 2)));
    }

    #[test]
    #[should_panic(expected = "exceeded its bound")]
    fn the_queue_is_bounded() {
        let mut scheduler = Scheduler::new(2);
        for i in 0..3 {
            scheduler.schedule(Time(i), i);
        }
    }
}
