//! The run's trace: every simulated event, folded into a running hash.
//!
//! Each event is folded into a 64-bit FNV-1a hash (by words, see [`Fnv`]) with its exact time. Most events are a canonical
//! text line (`seq time node what`) and the hash takes that line's bytes, streamed into it without
//! building the line. A delivered message — most of a busy run's events — is hashed from its
//! structured fields instead (its `Hash` implementation: every field, payload bytes included), so
//! a run does not pay for formatting messages nobody reads. Two runs of the same seed must produce
//! the same hash; a test checks it on every CI run. With `--trace` each event is also emitted as a
//! line through `tracing` (target `seedlog_sim`); a message's line renders the same fields that
//! were hashed.

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};

use seedlog_core::env::Time;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over whatever is written to it, as bytes (`Hasher`) or as text (`fmt::Write`), taking
/// eight bytes a step (payloads are most of what a busy run hashes), the tail a byte a step.
/// Multiplying by the odd prime is a bijection, so any one changed bit changes the hash.
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.0 ^= u64::from_le_bytes(word.try_into().expect("chunks of eight"));
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        for byte in words.remainder() {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl fmt::Write for Fnv {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.write(text.as_bytes());
        Ok(())
    }
}

pub struct Trace {
    hash: u64,
    events: u64,
    emit: bool,
}

impl Trace {
    pub fn new(emit: bool) -> Trace {
        Trace { hash: FNV_OFFSET_BASIS, events: 0, emit }
    }

    /// Records one event. `node` is the node it happened on (`-` for the simulator itself).
    pub fn event(&mut self, sequence: u64, now: Time, node: &dyn fmt::Display, what: fmt::Arguments<'_>) {
        // The hash takes the exact nanoseconds and the sequence number as numbers, the rest as
        // the line's text (a constant text is not formatted at all).
        let mut hasher = Fnv(self.hash);
        hasher.write(&now.as_nanos().to_le_bytes());
        hasher.write_u64(sequence);
        let _ = write!(hasher, "{node} ");
        match what.as_str() {
            Some(text) => hasher.write(text.as_bytes()),
            None => {
                let _ = hasher.write_fmt(what);
            }
        }
        hasher.write(b"\n");
        self.hash = hasher.0;
        self.events += 1;
        if self.emit {
            tracing::info!(target: "seedlog_sim", seq = sequence, time = %now, node = %node, "{what}");
        }
    }

    /// Records one event whose content is `fields`, hashed structurally with `kind` (what sort of
    /// event it is) and `node`; no text is built unless the trace is emitted, when `render` gives
    /// the event's line, which must show what `fields` hold.
    pub fn structured<N: fmt::Display + Hash, T: Hash + ?Sized>(
        &mut self,
        sequence: u64,
        now: Time,
        node: &N,
        kind: &'static str,
        fields: &T,
        render: impl FnOnce() -> String,
    ) {
        let mut hasher = Fnv(self.hash);
        hasher.write(&now.as_nanos().to_le_bytes());
        hasher.write_u64(sequence);
        node.hash(&mut hasher);
        hasher.write(kind.as_bytes());
        fields.hash(&mut hasher);
        hasher.write(b"\n");
        self.hash = hasher.0;
        self.events += 1;
        if self.emit {
            tracing::info!(target: "seedlog_sim", seq = sequence, time = %now, node = %node, "{}", render());
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

    #[test]
    fn a_structured_event_hashes_its_fields_not_its_rendering() {
        let hash = |payload: &[u8], render: &str| {
            let mut trace = Trace::new(false);
            let render = render.to_string();
            trace.structured(7, Time(10), &1u32, "recv", payload, || render);
            trace.hash()
        };
        let base = hash(b"0123456789abcdef!", "a");
        assert_eq!(base, hash(b"0123456789abcdef!", "another rendering"));
        // A change in a full word, in the tail, or in the length changes the hash.
        assert_ne!(base, hash(b"0123456789abcdeF!", "a"));
        assert_ne!(base, hash(b"0123456789abcdef?", "a"));
        assert_ne!(base, hash(b"0123456789abcdef", "a"));
    }
}
