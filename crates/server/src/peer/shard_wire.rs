//! The peer frames of a sharded deployment ([`ShardFrame`], carried inside
//! `PeerFrame::Shard`): Raft messages tagged with their group, the data
//! groups' configuration queries and migration traffic, and client requests
//! forwarded to the leader of the group that owns them.
//!
//! Invariants: every frame names the group it is for, and a receiver that
//! does not host that group answers "not leader" or drops it (a sender's
//! configuration can be stale); migration requests and replies travel as
//! `shardkv::message`'s strictly decoded bytes; a forwarded write's key and
//! value are within kv's limits or the frame is refused (see [`check`]).

use bytes::Bytes;
use raft::{Message, NodeId};
use serde::{Deserialize, Serialize};
use shardmeta::{Config, GroupId};

/// What flows between two processes of a sharded deployment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ShardFrame {
    /// Raft messages of any of the groups two processes share, in send
    /// order: one frame per batch for all groups (heartbeats of every
    /// shared group travel together).
    Raft(Vec<(GroupId, Message)>),
    /// "Send configuration `num` if your controller replica has it", for
    /// the asking process's data group `for_group`'s agent, or for its
    /// router when `for_group` is 0 (`shardmeta::NO_GROUP`).
    ConfigQuery { for_group: GroupId, num: u64 },
    ConfigReply {
        for_group: GroupId,
        config: Option<Config>,
    },
    /// A data group's migration request to another group
    /// (`shardkv::message::encode_group_request` bytes).
    GroupRequest {
        from_group: GroupId,
        to_group: GroupId,
        request: Bytes,
    },
    /// The answer to the requesting group's agent
    /// (`shardkv::message::encode_group_reply` bytes).
    GroupReply { to_group: GroupId, reply: Bytes },
    /// A client request handed to the process presumed to lead `group`.
    Forward {
        id: u64,
        group: GroupId,
        req: GroupForward,
    },
    /// That process's answer to `Forward { id }`.
    ForwardReply { id: u64, answer: GroupAnswer },
}

/// A client request for one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupForward {
    /// Propose a data group's client request.
    Write(shardkv::Request),
    /// A linearizable read-only op (ReadIndex on the group's leader).
    Read(shardkv::Query),
    /// Propose a controller command.
    Ctrl(shardctrler::Command),
    /// A linearizable read of a configuration (`None`: the latest).
    CtrlRead(Option<u64>),
    /// A membership or leadership operation on the group's replica
    /// (`crate::admin`; changes and transfers run on its leader).
    Admin(crate::admin::AdminOp),
}

impl GroupForward {
    /// Whether it goes through the log (a write) rather than being a read.
    pub fn is_write(&self) -> bool {
        matches!(self, GroupForward::Write(_) | GroupForward::Ctrl(_))
    }
}

/// How a request to a group ended, on the wire and inside the process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupAnswer {
    /// A data group applied the request.
    Applied(shardkv::OpResult),
    /// A data group's read (or `WrongGroup`).
    Value(shardkv::QueryResult),
    /// The controller applied the command.
    Ctrl(shardctrler::Response),
    /// The controller's configuration read.
    Config(Config),
    /// Refused, nothing started: not the leader (or the group is not hosted there).
    NotLeader { hint: Option<NodeId> },
    /// Refused, nothing started: too much in flight.
    Busy,
    /// Proposed, fate unknown (leadership lost): retry with the same seq.
    Unknown,
    /// The read was not confirmed; no effect.
    ReadAborted,
    /// Never reached a leader (link down, queue full): no effect.
    NotSent,
    /// How an admin operation ended (`crate::admin::AdminReply`).
    Admin(Result<Vec<String>, String>),
}

impl GroupAnswer {
    /// Whether this answer can answer `req` (a reply of another kind from a
    /// peer is treated as `Unknown`: maybe proposed, the safe side).
    pub fn fits(&self, req: &GroupForward) -> bool {
        match self {
            GroupAnswer::Applied(_) => matches!(req, GroupForward::Write(_)),
            GroupAnswer::Value(_) => matches!(req, GroupForward::Read(_)),
            GroupAnswer::Ctrl(_) => matches!(req, GroupForward::Ctrl(_)),
            GroupAnswer::Config(_) => matches!(req, GroupForward::CtrlRead(_)),
            GroupAnswer::Admin(_) => matches!(req, GroupForward::Admin(_)),
            GroupAnswer::ReadAborted => {
                matches!(req, GroupForward::Read(_) | GroupForward::CtrlRead(_))
            }
            GroupAnswer::NotLeader { .. }
            | GroupAnswer::Busy
            | GroupAnswer::Unknown
            | GroupAnswer::NotSent => true,
        }
    }
}

/// Refuses a forwarded request a correct peer never sends: keys or values
/// beyond kv's limits.
pub fn check(req: &GroupForward) -> Result<(), String> {
    match req {
        GroupForward::Write(r) => {
            r.op.check_limits()
                .map_err(|why| format!("forwarded write refused: {why}"))
        }
        GroupForward::Read(shardkv::Query::Op(op) | shardkv::Query::Shards { op, .. })
            if op.check_limits().is_err() =>
        {
            Err("forwarded read beyond kv's limits".into())
        }
        _ => Ok(()),
    }
}
