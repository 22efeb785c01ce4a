//! The controller's vocabulary: operations, requests, log entries, replies
//! and errors. Plain data only; encoding lives in `codec`, behaviour in
//! `machine` and `rebalance`.
//!
//! Invariants (enforced by the decoders and re-checked on apply): a
//! [`Request`]'s `client_id` names a session created by
//! [`Command::RegisterSession`]; every request stays within the limits in
//! `settings` (groups per join, members per group, address length).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use shardmeta::{Config, GroupId, Member, ShardId};

/// One change to the configuration. Each successful op creates exactly one
/// new configuration, numbered one more than the latest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Add groups (several at once) with their members, then rebalance.
    /// Replies [`Reply::NewConfig`].
    Join {
        groups: BTreeMap<GroupId, Vec<Member>>,
    },
    /// Remove groups (several at once); their shards go to the remaining
    /// groups, or to [`shardmeta::NO_GROUP`] when none remain.
    /// Replies [`Reply::NewConfig`].
    Leave { gids: BTreeSet<GroupId> },
    /// Pin `shard` to `gid` without rebalancing (the next Join or Leave
    /// rebalances from there). Replies [`Reply::NewConfig`].
    Move { shard: ShardId, gid: GroupId },
    /// Replace the member list of group `gid`, already in the
    /// configuration, keeping every shard where it is: what follows a change
    /// of the group's replicas, so routing and migration reach its current
    /// members. Replies [`Reply::NewConfig`]. (Last variant: entries logged
    /// before it existed decode unchanged.)
    Members { gid: GroupId, members: Vec<Member> },
}

/// A client's op inside its session: the unit of exactly-once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session, as returned by [`Reply::Registered`].
    pub client_id: u64,
    /// 1, 2, 3, ... per session; a retry reuses its number.
    pub seq: u64,
    pub op: Op,
}

/// What one log entry asks the controller to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Open a session; its id is this entry's log index.
    /// Replies [`Reply::Registered`].
    RegisterSession,
    /// A change (Join / Leave / Move) within a session.
    Request(Request),
    /// Read configuration `num` through the log (`None`: the latest). No
    /// session: a read changes nothing, so repeating it is harmless.
    /// Replies [`Reply::Config`]. A `num` beyond the latest answers the
    /// latest (the lab's semantics: "Query(-1) or a too-large number").
    Query { num: Option<u64> },
    /// Advances log time only (expires idle sessions). Replies [`Reply::Done`].
    Tick,
}

/// A log entry's payload: the command and the proposing leader's clock.
/// The controller's log time is the largest `timestamp_ms` applied so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub cmd: Command,
}

/// The successful outcome of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A new session: use this `client_id` in every [`Request`].
    Registered { client_id: u64 },
    /// Join / Leave / Move created configuration `num`.
    NewConfig { num: u64 },
    /// A Query's configuration.
    Config(Config),
    /// `Tick`, and an empty (Raft no-op) entry.
    Done,
}

/// Expected failures a caller acts on. A rejected op creates no
/// configuration; within a session it is still "applied" (cached), so a
/// retry gets the same error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CtrlError {
    /// Unknown session (never registered, expired, evicted); not applied.
    /// Register a new session.
    #[error("session {client_id} expired or unknown")]
    SessionExpired { client_id: u64 },
    /// `seq` is older than the response window; not applied now.
    #[error("request {seq} of session {client_id} is older than the response window")]
    StaleRequest { client_id: u64, seq: u64 },
    /// Join of a group id already in the latest configuration.
    #[error("group {gid} already joined")]
    GroupExists { gid: GroupId },
    /// Join of group id 0 (it means "no group").
    #[error("group id {gid} is reserved")]
    ReservedGroup { gid: GroupId },
    /// Join of a group with no members, or with one member listed twice.
    #[error("group {gid} has an empty or duplicated member list")]
    BadMembers { gid: GroupId },
    /// Leave of a group, or Move to a group, not in the latest configuration.
    #[error("group {gid} is not in the configuration")]
    UnknownGroup { gid: GroupId },
    /// Move of a shard the keyspace does not have.
    #[error("shard {shard} does not exist (there are {shards})")]
    NoSuchShard { shard: ShardId, shards: u32 },
    /// Join or Leave naming no group.
    #[error("empty request: no group named")]
    EmptyRequest,
    /// A request beyond a limit (groups per request, members, address bytes).
    #[error("{what} is {len}, more than the {max} allowed")]
    TooLarge { what: String, len: u64, max: u64 },
    /// The entry could not be decoded; nothing was applied.
    #[error("malformed command: {reason}")]
    Malformed { reason: String },
}

/// What applying one entry produced; also what a host sends back.
pub type Response = Result<Reply, CtrlError>;
