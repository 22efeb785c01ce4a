//! A sharded raftkv process: the controller and/or data-group replicas it
//! hosts (`host::ShardNode`, the same code the simulator runs), their peer
//! traffic, and the client path that routes any key to its owning group.
//!
//! Files, one job each: `config` (the flags: `--peers`, `--controllers`,
//! `--group`, `--join-group`, `--shards`, and the groups found in the data
//! dir), `node` (start: one data dir, one subdirectory
//! and one `storage::DiskStorage` per hosted group), `driver` (the task
//! that owns the ShardNode), `removals` (its hand-over of the groups'
//! covered WAL segments to the removal thread), `forward` (requests handed to another process,
//! and the dispatch of inbound sharded frames), `router` (the client path:
//! key -> slot -> shard -> group -> leader, retries, `-MOVED`/`-TRYAGAIN`),
//! `keyspace` (`DBSIZE`, `KEYS`, `SCAN`, `RANDOMKEY`, `FLUSHALL` over the
//! slots this process is the primary of), `admin` (`SHARDCTL`: the
//! controller's Join/Leave/Move/Query), `members` (`RAFT GROUP GID ...`: a
//! group's membership and leadership, kept in step with the controller's
//! member list), `info` (`INFO` of a sharded process).
//!
//! A configuration's `Member::addr` is the member process's **client**
//! (RESP) address: it is what `CLUSTER SLOTS` and `-MOVED` hand to clients.
//! Processes find each other's peer addresses in `--peers`, which lists
//! every process of the deployment (including those that will only join
//! later).

pub mod admin;
pub mod config;
pub mod driver;
pub mod forward;
pub mod info;
pub mod keyspace;
pub mod members;
pub mod node;
mod removals;
pub mod router;

pub use config::{parse_groups, parse_ids, ShardedConfig, DEFAULT_SHARDS};
pub use node::{start_sharded, start_sharded_with};
