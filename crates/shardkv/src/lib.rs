//! A sharded replica group: the replicated state machine of one data group
//! of a sharded cluster ([`ShardKv`]) and its sans-I/O agent ([`Agent`],
//! [`respond`]), independent of Raft and of any I/O.
//!
//! The shard controller publishes numbered configurations
//! ([`shardmeta::Config`]: shard -> group, group -> members). A group
//! serves the keys of the shards it owns in the configuration it has
//! *applied*, and moves shards to and from other groups through its own log:
//!
//! - [`Command::NewConfig`] — configurations are applied one at a time, in
//!   order (`num = current + 1`), and only when no shard is in transit;
//!   a group that was down catches up through every configuration it missed.
//! - [`Command::InstallShards`] — data pulled from the previous owner, with
//!   its client-session table (merged, so retries stay exactly-once).
//! - [`Command::DeleteShards`] — at the previous owner, once the new owner
//!   has installed: the frozen copy is dropped (garbage collection).
//! - [`Command::ConfirmGc`] — at the new owner, once the previous owner has
//!   deleted: the shard leaves the Gc status.
//! - [`Command::Request`] — any of `kv`'s data ops ([`Op`]), with `kv`'s
//!   semantics (`kv::ops`, the same code the single group runs), applied
//!   to the key's shard only if that shard is served here, else
//!   [`OpError::WrongGroup`].
//!
//! The [`Agent`] (run on a group's leader) asks the controller for the next
//! configuration, asks previous owners for Pulling shards and tells them to
//! delete Gc ones, resending until the applied state moves on; replies turn
//! into the commands above. [`respond`] answers those requests on any
//! replica from applied state. The inter-group messages are in [`message`].
//!
//! # Why migration is safe
//!
//! **At most one group serves a shard for a configuration number, and the
//! hand-off is linearizable.** A group serves shard `s` (Serving or Gc) only
//! while its applied configuration `n` names it as the owner, and owners are
//! unique per `n`. Ownership is checked when an entry is applied and when a
//! ReadIndex read is answered (after `applied >= read index`), never only
//! when a request arrives. The previous owner stops serving `s` at the log
//! entry that applies `n` (the shard becomes HandingOff, its data frozen:
//! nothing writes it again). The new owner serves `s` only after applying
//! an InstallShards for `n`, whose data came from a replica of the previous
//! owner that had applied `n` — so after the freeze, with every write the
//! previous owner ever applied to `s`. Serving intervals of one shard are
//! thus disjoint and each owner starts from the last one's final state.
//!
//! **A retry applies exactly once across a move.** Client ids are globally
//! unique and a session caches the responses of a window of recent seqs.
//! Every request applied to `s` at the previous owner precedes the freeze,
//! so its response is in the session table the pull answer carries, and the
//! new owner merges that table at install. A retry arriving at the new owner
//! before the install gets WrongGroup and is not recorded (so it cannot
//! "apply" a second time later either); after the install, it finds the
//! cached response. Sessions are created lazily and expire by log time, so
//! the client keeps the retry-deadline rule of [`session`]: never retry
//! later than `session_timeout_ms / 2` after first sending (a session that
//! applied the request cannot have expired anywhere by then), and never run
//! more than `response_window` seqs ahead of its oldest unanswered one.
//!
//! **GC is safe under crashes and message loss.** The previous owner drops
//! a shard only when its log applies DeleteShards for `n`, which its leader
//! proposes only on a DeleteShards request from the new owner, which the
//! new owner sends only for Gc shards — i.e. after its install committed in
//! its own log. So a deleted shard always lives on, durably, at the new
//! owner. The new owner leaves Gc (ConfirmGc) only on a `Done` reply, given
//! only when the previous owner has applied the deletion (or is past `n`,
//! which requires it). Every step is recorded by a log entry, the agent
//! derives what to ask from applied state alone, and every message is
//! idempotent by configuration number, so lost, duplicated, reordered or
//! stale messages and crashes at any point only cause resends. Neither
//! group can take configuration `n + 1` before its part of `n` is finished
//! (stability), which is what lets "past `n`" stand for "done with `n`".
//!
//! One loss is by design: when a configuration assigns a shard to no group
//! (the last group left), its owner drops the data, as the controller asked.
//!
//! ```
//! use bytes::Bytes;
//! use shardkv::{Command, Op, Reply, Request, Response, Settings, ShardKv};
//! use shardmeta::{Config, Member};
//!
//! let mut sm = ShardKv::new(Settings::new(1, 10));
//! let mut config = Config::initial(10);
//! config.num = 1;
//! config.shards = vec![1; 10];
//! config.groups.insert(1, vec![Member { id: 1, addr: "127.0.0.1:7001".into() }]);
//! let entry = sm.encode_command(&Command::NewConfig(config), 1_000);
//! assert_eq!(sm.apply(1, &entry), Response::Control { changed: true });
//!
//! let put = Request { client_id: 42, seq: 1, op: Op::Put { key: Bytes::from("k"), value: Bytes::from("v") } };
//! let entry = sm.encode_command(&Command::Request(put), 1_005);
//! assert_eq!(sm.apply(2, &entry), Response::Op(Ok(Reply::Done)));
//! assert_eq!(sm.apply(3, &entry), Response::Op(Ok(Reply::Done))); // a duplicate: not re-applied
//! assert_eq!(sm.query(b"k"), Ok(Some(Bytes::from("v"))));
//!
//! let mut copy = ShardKv::new(Settings::new(1, 10));
//! copy.restore(&sm.snapshot()).unwrap();
//! assert_eq!(copy, sm);
//! ```

mod agent;
mod codec;
mod command;
mod legacy;
mod machine;
pub mod message;
mod rsm_impl;
pub mod session;
mod settings;

pub use agent::{respond, Agent, Answer, Outbound, DEFAULT_RESEND_INTERVAL_MS};
pub use codec::{
    decode_entry, encode_entry, DecodeError, SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
    WIRE_VERSION,
};
pub use command::{
    Command, Entry, Op, OpError, OpResult, Query, QueryResult, Reply, Request, Response,
    SessionExport, ShardData, WrongGroup,
};
pub use machine::{ShardKv, ShardStatus};
pub use message::{DeleteReply, DeleteShards, GroupReply, GroupRequest, PullReply, PullShards};
pub use session::{Session, Sessions};
pub use settings::Settings;
