//! Shard metadata shared by the shard controller, the sharded groups, the
//! multi-group host and the server's routing: who owns which keys.
//!
//! - [`key_slot`]: Redis Cluster's hash slot of a key (CRC16-XMODEM of the
//!   key, or of its `{hash tag}`, modulo [`SLOTS`]), so a cluster-aware
//!   client's slot math agrees with ours.
//! - [`Keyspace`]: slots grouped into a fixed number of shards, each a
//!   contiguous slot range, chosen when a cluster is created and never
//!   changed (a shard is the unit that moves between groups).
//! - [`Config`]: one numbered configuration of the controller — shard ->
//!   group, group -> members.
//!
//! Invariants: `key_slot(k) < SLOTS`; the shards of a [`Keyspace`] partition
//! `0..SLOTS` into contiguous, non-empty, ascending ranges; in a [`Config`],
//! every shard's group is [`NO_GROUP`] or a key of `groups`.

mod config;
mod slot;

pub use config::{Config, GroupId, Member, NodeId, ShardId, CONTROLLER_GROUP, NO_GROUP};
pub use slot::{hash_tag, key_slot, Keyspace, KeyspaceError, MAX_SHARDS, SLOTS};
