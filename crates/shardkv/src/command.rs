//! The vocabulary of a sharded group's log: client operations, the control
//! commands that move shards, and what applying them answers. Plain data;
//! encoding lives in `codec`, behaviour in `machine`.
//!
//! The client operations are `kv`'s ([`Op`], [`Reply`]): one vocabulary
//! and one implementation of their meaning (`kv::ops`), which a group runs
//! on the store of the key's shard. What differs here is the error set:
//! sessions are created lazily (no `SessionExpired`), and a request can be
//! refused with [`OpError::WrongGroup`]. The key/value limits are `kv`'s
//! ([`kv::MAX_KEY_BYTES`], [`kv::MAX_VALUE_BYTES`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shardmeta::{Config, ShardId};

use crate::session::Session;

pub use kv::{Op, Reply};

/// A client operation in its session: the unit of exactly-once.
///
/// `client_id` is globally unique across every group (the host derives it,
/// e.g. node id in the high bits and a counter below), because a shard's
/// session state moves with it and is merged into the new owner's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client_id: u64,
    /// 1, 2, 3, ... per client; a retry reuses its number.
    pub seq: u64,
    pub op: Op,
}

/// The data of one shard: its keys in order, with their types, expiries
/// and versions (`kv`'s store).
pub type ShardData = kv::Store;

/// A session table as shipped between groups (client id -> session).
pub type SessionExport = BTreeMap<u64, Session>;

/// What one log entry asks the group to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A client operation. Applied only if its key's shard is Serving or Gc
    /// in the applied configuration; otherwise [`OpError::WrongGroup`], and
    /// the session is not touched.
    Request(Request),
    /// Adopt configuration `num = current + 1`. Ignored unless the numbers
    /// follow and every shard is Serving or NotOwned (one change at a time).
    NewConfig(Config),
    /// Shards pulled from their previous owner at configuration `num`, with
    /// that owner's session table. Installs only shards still Pulling at
    /// `num` (Pulling -> Gc); the sessions are merged if any shard was.
    InstallShards {
        num: u64,
        shards: BTreeMap<ShardId, ShardData>,
        sessions: SessionExport,
    },
    /// The new owner has installed these shards of configuration `num`:
    /// HandingOff -> NotOwned, data dropped. Idempotent.
    DeleteShards { num: u64, shards: Vec<ShardId> },
    /// The previous owner deleted these shards of configuration `num`:
    /// Gc -> Serving. Idempotent.
    ConfirmGc { num: u64, shards: Vec<ShardId> },
    /// Advances log time only (expires idle sessions on an idle group).
    Tick,
}

/// The payload of a log entry: a command stamped with the proposing
/// leader's clock. Log time is the largest stamp applied so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub cmd: Command,
}

/// "This group does not serve that key now": the key's shard is not Serving
/// or Gc here in configuration `config_num`. The client refreshes its
/// configuration and retries elsewhere (or here later, with the same seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("shard {shard} is not served by this group in configuration {config_num}")]
pub struct WrongGroup {
    pub shard: ShardId,
    pub config_num: u64,
}

/// A ReadIndex read of a sharded group (`rsm::StateMachine::Query`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// A keyed read-only op ([`Op::is_read_only`]), answered by the shard
    /// of its keys if this group serves it.
    Op(Op),
    /// A keyless read-only op (`DBSIZE`, `KEYS`, `RANDOMKEY`, `SCAN`) over
    /// exactly `shards`, every one of which this group must serve (else
    /// [`WrongGroup`] for the first that is not). `DBSIZE` sums, `KEYS`
    /// concatenates, `RANDOMKEY` takes the first live key from a shard
    /// chosen by log time; `SCAN` scans the first shard only (its cursor is
    /// a position in that shard's hash order).
    Shards { shards: Vec<ShardId>, op: Op },
}

/// What a [`Query`] answers.
pub type QueryResult = Result<Reply, WrongGroup>;

/// Expected failures of a client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OpError {
    /// Not applied, not recorded: retry with the same seq after refreshing.
    #[error(transparent)]
    WrongGroup(#[from] WrongGroup),
    /// `seq` is below the session's response window: it may or may not have
    /// been applied and its response is gone. Not applied now.
    #[error("request {seq} of client {client_id} is older than the response window")]
    StaleRequest { client_id: u64, seq: u64 },
    /// An `Append` would grow a value past [`kv::MAX_VALUE_BYTES`]; the
    /// value is unchanged. (Recorded: a retry gets the same error.)
    #[error("value would be {len} bytes, more than the {max} allowed")]
    ValueTooLarge { len: u64, max: u64 },
    /// The session table is at its cap and this client has no session. Not
    /// applied; retry later (idle sessions expire by log time).
    #[error("too many client sessions")]
    SessionsFull,
}

/// The outcome of one client operation (also what a session caches).
pub type OpResult = Result<Reply, OpError>;

/// What applying one log entry produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A [`Command::Request`]'s outcome.
    Op(OpResult),
    /// A control command; `changed` says whether it changed any state
    /// (false: a duplicate, stale or premature one, ignored).
    Control { changed: bool },
    /// A [`Command::Tick`] or an empty (Raft no-op) entry.
    Done,
    /// The entry could not be decoded; nothing but the applied index moved.
    Malformed { reason: String },
}
