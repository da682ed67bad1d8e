//! The controller workload: a KRaft cluster run under faults, checked against Raft's and KRaft's
//! invariants (see [`invariants`]), with admin clients as the workload (see [`admin`]).

pub mod admin;
pub mod clients;
pub mod invariants;
pub mod options;
pub mod replicas;
pub mod script;
pub mod world;

pub use options::ClusterOptions;
pub use world::ClusterWorld;
