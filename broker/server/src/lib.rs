//! Seedlog's production driver: the core's environment on real files, the system clock and
//! sockets, and the `seedlog` binary.
//!
//! What exists: [`fs::FileStorage`], the core's `Storage` on real files. What does not yet: the
//! broker itself (Kafka wire protocol, tokio, group-committed syncs) — issue 5.

pub mod fs;
