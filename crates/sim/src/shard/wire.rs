//! What travels between processes and clients in the sharded simulation.
//! (The server crate will carry the same meanings over TCP.)
//!
//! `op_id` names a clerk's operation, not an attempt: any reply to any
//! attempt of the current operation answers it, because every attempt of a
//! write carries the same (client id, seq) and a read attempt is linearized
//! inside the operation's interval.

use bytes::Bytes;
use raft::Message;
use replica::{Outcome, Rejected};
use shardkv::{GroupReply, GroupRequest, ShardKv};
use shardmeta::{Config, GroupId};

use crate::kv::ClientId;
use crate::shard::process::CtrlMachine;

/// One message on the simulated network.
#[derive(Clone, Debug)]
pub enum Packet {
    /// Raft traffic of one group between two of its replicas.
    Raft {
        group: GroupId,
        msg: Message,
    },
    /// A clerk's request to a data group's replica.
    Data(DataRequest),
    DataReply(DataReply),
    /// A controller clerk's request to a controller replica.
    Ctrl(CtrlRequest),
    CtrlReply(CtrlReply),
    /// A data group's agent asks a controller replica for configuration `num`.
    ConfigQuery {
        group: GroupId,
        num: u64,
    },
    /// The answer: the configuration if that replica has it.
    ConfigReply {
        group: GroupId,
        config: Option<Config>,
    },
    /// One data group's agent asks another (migration, garbage collection).
    Group {
        from_group: GroupId,
        to_group: GroupId,
        request: GroupRequest,
    },
    GroupReply {
        to_group: GroupId,
        reply: GroupReply,
    },
}

/// A clerk's request for a data group.
#[derive(Clone, Debug)]
pub struct DataRequest {
    pub client: ClientId,
    pub op_id: u64,
    pub group: GroupId,
    pub body: DataBody,
}

#[derive(Clone, Debug)]
pub enum DataBody {
    Write(shardkv::Request),
    /// A ReadIndex read of a key (ownership checked when it is served).
    Read {
        key: Bytes,
    },
}

#[derive(Clone, Debug)]
pub struct DataReply {
    pub op_id: u64,
    pub body: ReplyBody<ShardKv>,
}

/// A controller clerk's request.
#[derive(Clone, Debug)]
pub struct CtrlRequest {
    pub client: ClientId,
    pub op_id: u64,
    pub body: CtrlBody,
}

#[derive(Clone, Debug)]
pub enum CtrlBody {
    Propose(<CtrlMachine as rsm::StateMachine>::Command),
    Read(<CtrlMachine as rsm::StateMachine>::Query),
}

#[derive(Clone, Debug)]
pub struct CtrlReply {
    pub op_id: u64,
    pub body: ReplyBody<CtrlMachine>,
}

/// How a replica answered: it took the request and this is how it ended,
/// or it refused (it certainly did not take effect).
pub enum ReplyBody<M: rsm::StateMachine> {
    Done(Outcome<M>),
    Rejected(Rejected),
}

impl<M: rsm::StateMachine> Clone for ReplyBody<M> {
    fn clone(&self) -> Self {
        match self {
            ReplyBody::Done(o) => ReplyBody::Done(o.clone()),
            ReplyBody::Rejected(r) => ReplyBody::Rejected(*r),
        }
    }
}

impl<M: rsm::StateMachine> std::fmt::Debug for ReplyBody<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyBody::Done(o) => f.debug_tuple("Done").field(o).finish(),
            ReplyBody::Rejected(r) => f.debug_tuple("Rejected").field(r).finish(),
        }
    }
}
