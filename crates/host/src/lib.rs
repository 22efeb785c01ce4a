//! raftkv's multi-group host: every Raft group replica one process runs, keyed
//! by [`GroupId`], behind one sans-I/O interface. The simulator and the server
//! host this same code, one level above `replica`, so "what the simulator
//! proves is what runs" holds for sharded deployments too.
//!
//! Owns: the map group → [`replica::Replica`], which groups have input since
//! their last drive, and the tagging of everything that crosses the process
//! boundary with its group ([`Envelope`], [`GroupCompletion`]). It owns no
//! sockets, clocks, threads or files: the host's own host (server driver
//! thread, simulator) ticks it, feeds it envelopes and client requests, and
//! calls [`Host::drive`].
//!
//! Ids: a process is a `shardmeta::NodeId`; the replica of group `g` on
//! process `p` has Raft id `p` (so one node id names a process for every group
//! it hosts), and peer traffic is `(group, raft::Message)` envelopes between
//! processes. Group 0 is the shard controller's group by convention
//! (`shardmeta::CONTROLLER_GROUP`); data groups are >= 1.
//!
//! # The loop
//!
//! ```text
//! on timer:             host.tick(now_ms)                       // every group
//! on peer envelope:     host.step(env.group, env.msg)?           // Err: a group we do not host, or not for us
//! on client request:    host.propose(group, token, cmd, now_ms)? / host.read(group, token, query)?
//! new/removed group:    host.add_group(group, cfg, storage, machine)? / host.remove_group(group)
//! after any of these:   host.drive_with(&mut |env| send(env), &mut |gc| answer(gc))?
//! ```
//!
//! `drive` runs only the groups that had input (a tick, a message, a request)
//! since their last drive, in group-id order (deterministic), each with the
//! replica's own driver loop unchanged. Every request accepted (`Ok`) gets
//! exactly one [`GroupCompletion`] from a later drive — unless its group is
//! removed or the host is dropped, which drops that group's pending requests
//! (as a crash would).
//!
//! # Kinds of groups
//!
//! `Host<S, M>` hosts replicas of one machine type `M`. A process that runs
//! the controller group and data groups side by side hosts an enum machine
//! (one variant per kind) implementing `rsm::StateMachine` with enum
//! commands and responses; the host itself never looks inside a machine.
//!
//! # Durability: one fsync per group per drive, today
//!
//! Each replica persists to its own `S` inside its own drive, so a drive that
//! runs `k` groups over disk storage costs up to `k` fsyncs. One fsync per
//! drive covering every group (TiKV's raftstore does this with one write batch
//! for all regions) needs two things this crate does not have yet:
//!
//! 1. a shared write-ahead log: one segment stream whose records are tagged
//!    with their group, a per-group `raft::Storage` view of it whose `persist`
//!    only buffers (appends without syncing), and one `sync` of the shared log;
//! 2. a replica whose Ready handling is split at the fsync: phase one sends
//!    the Ready's early messages, applies committed entries and buffers the
//!    persist; phase two (after the shared sync) sends the messages that
//!    waited for the persist, installs the snapshot and advances. The host's
//!    drive would then run phase one for every group with input, sync once,
//!    and run phase two for every one of them, keeping each group's
//!    persist → send → advance order.
//!
//! Coalesced heartbeats per process pair (CockroachDB) and quiescing idle
//! groups are further steps of the same kind; neither is done here.
//!
//! ```
//! use host::Host;
//! use raft::MemStorage;
//!
//! // One process (node 1) hosting two single-replica groups.
//! let mut h: Host<MemStorage, kv::StateMachine> = Host::new(1);
//! for group in [1, 2] {
//!     let mut raft = raft::Config::new(1, vec![1]);
//!     raft.seed = group;
//!     let machine = kv::StateMachine::new(kv::Config::default());
//!     h.add_group(group, replica::Config::new(raft), MemStorage::new(), machine).unwrap();
//! }
//! for t in 0..40 {
//!     h.tick(t * 10);
//!     h.drive().unwrap();
//! }
//! assert!(h.replica(1).unwrap().is_leader() && h.replica(2).unwrap().is_leader());
//!
//! h.propose(2, 7, kv::Command::RegisterSession, 400).unwrap();
//! let out = h.drive().unwrap();
//! assert_eq!((out.completions[0].group, out.completions[0].completion.token), (2, 7));
//! ```
//!
//! # Sharded processes
//!
//! [`ShardNode`] is the host of a sharded deployment's process: a
//! `Host<S, GroupMachine>` ([`GroupMachine`]: the shard controller or a
//! sharded data group) plus the data groups' migration agents and the
//! answers to other processes' migration and configuration requests. The
//! simulator's sharded world and the server both run it.
//!
//! Files: `error` (what the host refuses and why it stops), `host` (the map
//! and the drive), `machine` (the controller-or-data-group machine),
//! `sharded` (a sharded process: host + agents).

mod error;
mod host;
mod machine;
mod sharded;

pub use error::{HostError, Refused};
pub use host::{DriveOutput, Envelope, GroupCompletion, Host};
pub use machine::{GroupCommand, GroupMachine, GroupQuery, GroupQueryResult, GroupResponse};
pub use sharded::{Outbound, ShardNode, INTERNAL_TOKEN_BIT};
pub use shardmeta::{GroupId, NodeId};
