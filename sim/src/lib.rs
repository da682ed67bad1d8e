//! The simulator.
pub mod rng;
