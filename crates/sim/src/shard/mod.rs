//! The sharded simulation: a controller group and data groups of the real
//! replicas (`shardctrler::Controller` and `shardkv::ShardKv` joined to Raft
//! by the same `replica` code the server runs), their migration agents,
//! clerks, a lossy network, crashes and partitions, in one deterministic
//! event loop. Every client operation is recorded and checked for
//! linearizability; after every event the world checks that no shard is
//! served by two groups in one configuration.
//!
//! Files, one job each: `wire` (what travels), `process` (one process and
//! the replicas it hosts), `clerk` (the sharded client), `ctrl_clerk` (the
//! controller's client), `script` (scripted client workloads), `world` (the
//! event loop, processes, faults, checks), `clients` (the world's clients
//! and the lab's helpers), `sweep` (random schedules).

pub mod clerk;
mod clients;
pub mod ctrl_clerk;
pub mod process;
pub mod script;
pub mod sweep;
pub mod wire;
pub mod world;

pub use clerk::{ShardClerk, ShardClerkConfig};
pub use ctrl_clerk::{CtrlOp, CtrlResult};
pub use world::{ShardConfig, ShardWorld, FIRST_GID};
