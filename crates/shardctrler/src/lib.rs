//! raftkv's shard controller (the classic lab's 4A): a replicated state
//! machine holding the history of numbered configurations — which group
//! owns each shard, and which nodes make up each group.
//!
//! This crate owns:
//! - the commands ([`Op`], [`Request`], [`Command`], [`Entry`]) and their
//!   replies ([`Reply`], [`CtrlError`], [`Response`]);
//! - [`Controller`], the state machine: `Join` (several groups at once),
//!   `Leave` (several), `Move`, `Query(num | latest)`, with kv's
//!   exactly-once client sessions ([`kv::session`], the same code);
//! - [`rebalance`], the pure, minimal, deterministic shard assignment;
//! - the byte formats ([`encode_entry`], [`encode_response`], snapshots);
//! - [`lab`]: the lab's checks as functions the simulator reuses.
//!
//! # Semantics
//!
//! - Every successful Join, Leave or Move creates configuration
//!   `latest + 1` and replies [`Reply::NewConfig`]. Configurations never
//!   change afterwards, so `Query(n)` for an existing `n` is the same
//!   answer on every replica at any time.
//! - Join and Leave rebalance: groups differ by at most one shard and the
//!   fewest shards move. Move pins one shard and does not rebalance; the
//!   next Join or Leave rebalances from the moved state.
//! - Rejected ops ([`CtrlError::GroupExists`], [`CtrlError::ReservedGroup`],
//!   [`CtrlError::BadMembers`], [`CtrlError::UnknownGroup`],
//!   [`CtrlError::NoSuchShard`], [`CtrlError::EmptyRequest`],
//!   [`CtrlError::TooLarge`]) create no configuration. They are cached in
//!   the session like any reply, so a retry gets the same error.
//! - `Query(None)` and `Query(Some(n))` with `n` beyond the latest answer
//!   the latest configuration (the lab's semantics), never an error: a
//!   client polling for "the next configuration" checks the number it got.
//! - Sessions are kv's: register through the log (the id is the register
//!   entry's index), then `Request { client_id, seq, op }`; every entry
//!   carries the leader's clock and idle sessions expire by that log time.
//!   Queries need no session (they change nothing).
//!
//! # How a host uses it
//!
//! A host (the replica driver, a test) encodes a command with
//! [`Controller::encode_command`] (the leader's `now_ms` inside), proposes
//! the bytes, and on commit every replica calls [`Controller::apply`]; the
//! proposing replica hands the [`Response`] back (over a network:
//! [`encode_response`] / [`decode_response`]). A linearizable "latest"
//! read without a log entry is a ReadIndex read answered by
//! [`Controller::query`].
//!
//! ```
//! use std::collections::{BTreeMap, BTreeSet};
//! use shardctrler::{Command, Controller, Op, Reply, Request, Settings};
//! use shardmeta::Member;
//!
//! let mut c = Controller::new(Settings::with_shards(10));
//! let reg = c.encode_command(&Command::RegisterSession, 1_000);
//! let Ok(Reply::Registered { client_id }) = c.apply(1, &reg) else { panic!() };
//!
//! let members = vec![Member { id: 1, addr: "10.0.0.1:7000".into() }];
//! let join = Op::Join { groups: BTreeMap::from([(100, members)]) };
//! let cmd = Command::Request(Request { client_id, seq: 1, op: join });
//! let bytes = c.encode_command(&cmd, 1_001);
//! assert_eq!(c.apply(2, &bytes), Ok(Reply::NewConfig { num: 1 }));
//! assert_eq!(c.apply(3, &bytes), Ok(Reply::NewConfig { num: 1 })); // a retry: cached
//! assert_eq!(c.latest().shards, vec![100; 10]);
//! shardctrler::lab::check(&BTreeSet::from([100]), c.latest()).unwrap();
//!
//! let restored = Controller::restore(&c.snapshot()).unwrap();
//! assert_eq!(restored, c);
//! ```

mod codec;
mod command;
pub mod lab;
mod machine;
mod rebalance;
mod rsm_impl;
mod settings;

pub use codec::{
    decode_entry, decode_response, encode_entry, encode_response, DecodeError, SnapshotError,
    SNAPSHOT_MAGIC, SNAPSHOT_VERSION, WIRE_VERSION,
};
pub use command::{Command, CtrlError, Entry, Op, Reply, Request, Response};
pub use machine::Controller;
pub use rebalance::rebalance;
pub use settings::{Settings, MAX_ADDR_BYTES, MAX_GROUPS_PER_REQUEST, MAX_MEMBERS_PER_GROUP};
