//! raftkv's deterministic simulator.
//!
//! One process, virtual time, one seed: N servers of the real Raft core (`raft::RawNode`
//! over `MemStorage`) on a network that drops, delays, duplicates and reorders messages,
//! with partitions, crashes and restarts. A run is a pure function of its seed, so a
//! failure prints `SIM_SEED=...` and replays exactly.
//!
//! Files: `events` (the virtual-time queue), `network` (link state and message fates),
//! `node` (one server and its applier state machine), `cluster` (the world and the lab's
//! test helpers), `invariants` (safety properties checked during the run), `store`
//! (what a node's durable store keeps across a crash: in memory or the real disk WAL).

pub mod cluster;
pub mod events;
pub mod invariants;
pub mod kv;
pub mod network;
pub mod node;
pub mod store;

pub use cluster::{cmd, seed_from_env, Cluster, ClusterConfig, SeedGuard, MS, SEC, TICK_US};
