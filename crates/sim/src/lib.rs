//! raftkv's deterministic simulator.
//!
//! One process, virtual time, one seed: N servers of the real replica (`replica::Replica`,
//! the driver loop the server binary runs, over `MemStorage` or the disk WAL) on a
//! network that drops, delays, duplicates and reorders messages,
//! with partitions, crashes and restarts. A run is a pure function of its seed, so a
//! failure prints `SIM_SEED=...` and replays exactly.
//!
//! Files: `events` (the virtual-time queue), `network` (link state and message fates),
//! `node` (one server: the replica and the lab's applier state machine, an
//! `rsm::StateMachine`), `cluster` (the Raft lab's world and test helpers; the `kv`
//! module is the KV lab's, over the kv state machine), `invariants` (safety properties checked during the run), `store`
//! (what a node's durable store keeps across a crash: in memory or the real disk WAL).

pub mod cluster;
pub mod events;
pub mod invariants;
pub mod kv;
pub mod network;
pub mod node;
pub mod shard;
pub mod store;

pub use cluster::{cmd, seed_from_env, Cluster, ClusterConfig, SeedGuard, MS, SEC, TICK_US};
