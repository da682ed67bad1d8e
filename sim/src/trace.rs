//! The run's trace: every simulated event, folded into a running hash.
//!
//! Each event is rendered as one canonical line (`seq time node what`) and folded into a 64-bit
//! FNV-1a hash. Two runs of the same seed must produce the same hash; a test checks it on every CI
//! run. With `--trace` the same lines are also emitted through `tracing` (target `seedlog_sim`),
//! so what a developer reads is exactly what was hashed.

use std::fmt::{self, Write as _};

use seedlog_core::env::Time;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub struct Trace {
    hash: u64,
    events: u64,
    emit: bool,
    line: String,
}

impl Trace {
    pub fn new(emit: bool) -> Trace {
        Trace { hash: FNV_OFFSET_BASIS, events: 0, emit, line: String::new() }
    }

    /// Records one event. `node` is the node it happened on (`-` for the simulator itself).
    pub fn event(&mut self, sequence: u64, now: Time, node: &dyn fmt::Display, what: fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{sequence} {now} {node} {what}");
        // The line shows microseconds; the hash takes the exact nanoseconds too.
        let exact_time = now.as_nanos().to_le_bytes();
        for byte in exact_time.into_iter().chain(self.line.bytes()).chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.events += 1;
        if self.emit {
            tracing::info!(target: "seedlog_sim", seq = sequence, time = %now, node = %node, "{what}");
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn events(&self) -> u64 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_every_field_and_the_order() {
        let hash = |lines: &[(u64, u64, &str)]| {
            let mut trace = Trace::new(false);
            for (sequence, time, what) in lines {
                trace.event(*sequence, Time(*time), &"n0", format_args!("{what}"));
            }
            trace.hash()
        };
        let base = hash(&[(1, 10, "a"), (2, 20, "b")]);
        assert_eq!(base, hash(&[(1, 10, "a"), (2, 20, "b")]));
        assert_ne!(base, hash(&[(2, 20, "b"), (1, 10, "a")]));
        assert_ne!(base, hash(&[(1, 11, "a"), (2, 20, "b")]));
        assert_ne!(base, hash(&[(1, 10, "a"), (2, 20, "c")]));
        assert_ne!(hash(&[]), base);
    }
}
