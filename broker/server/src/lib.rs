//! Seedlog's production driver: Kafka's wire protocol over TCP, real files and the system clock
//! around the deterministic core (`seedlog-core`), plus the `seedlog` command's tools.
//!
//! - [`config`]: the properties file (Kafka's key names) into the core's `NodeConfig`.
//! - [`wire`]: Kafka frames into one-partition core requests and back.
//! - [`driver`]: the tasks around one `Node` (core task, sync thread, client connections).
//! - [`peer`]: node-to-node links carrying the core's messages.
//! - [`net`]: the socket trait the driver is written against (tokio's sockets in production).
//! - [`fs`]: the core's `Storage` on files, behind a small file-system trait (`std::fs` in
//!   production).
//! - `turmoil_host` (feature `turmoil`, for the turmoil test tier): turmoil's simulated sockets,
//!   files, clock and a seeded rng as the driver's platform.
//! - [`client`], [`tools`]: a minimal Kafka client and the `topics`/`produce`/`consume` commands.
//! - [`cluster`]: `seedlog cluster`, a local multi-broker cluster of child processes.

pub mod client;
pub mod cluster;
pub mod config;
pub mod driver;
pub mod fs;
pub mod net;
pub mod peer;
pub mod tools;
#[cfg(feature = "turmoil")]
pub mod turmoil_host;
pub mod wire;
