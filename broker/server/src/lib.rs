//! The production driver (skeleton).
