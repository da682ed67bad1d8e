//! Seedlog's broker core: deterministic, sans-IO state machines.
//!
//! This crate has no networking, no files, no clock and no threads. Every decision Seedlog makes
//! is made here, from events a driver hands in (with the current time) through an [`env::Env`];
//! the driver executes the effects. The same code runs under the production driver
//! (`broker/server`) and inside the seeded simulator (`sim`), which is why a failure the simulator
//! finds is a failure of the code users run, and why every seed replays bit for bit.
//!
//! What it must never do: read `std::time`, touch `std::fs`/`std::net`, spawn threads, draw from
//! `thread_rng`, or let the iteration order of a `HashMap`/`HashSet` decide anything.
//! `broker/core/clippy.toml` makes those build errors under `cargo clippy -D warnings`.

pub mod broker;
pub mod env;
pub mod log;
pub mod metadata;
pub mod node;
pub mod protocol;
pub mod quorum;
pub mod record;
pub mod replica;
#[cfg(test)]
mod test_support;
