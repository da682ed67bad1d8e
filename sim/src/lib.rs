//! The simulator.
pub mod rng;
pub mod clock;
pub mod net;
pub mod disk;
