//! One simulated raftkv process of a sharded deployment: the real
//! `host::ShardNode` (its controller and data-group replicas and their
//! migration agents — the code the server runs) plus the simulator's map
//! from the node's tokens to the clerk waiting for each answer. This file
//! only translates between the node's inputs/outputs and simulated packets.
//!
//! Crash model: each replica's `MemStorage` changes only inside a drive,
//! which runs to completion within one event, so at a crash it holds
//! exactly what was synced. Everything else here is volatile.

use std::collections::BTreeMap;

use host::{
    GroupCommand, GroupMachine, GroupQuery, GroupQueryResult, GroupResponse, Outbound, Refused,
    ShardNode,
};
use raft::{MemStorage, Message, NodeId};
use replica::{Outcome, Rejected, Token};
use shardkv::{GroupReply, GroupRequest, ShardKv};
use shardmeta::{Config, GroupId, CONTROLLER_GROUP};

use crate::kv::ClientId;
use crate::shard::wire::{
    CtrlBody, CtrlReply, CtrlRequest, DataBody, DataReply, DataRequest, Packet, ReplyBody,
};

/// The controller's state machine.
pub type CtrlMachine = shardctrler::Controller;

/// Where a packet goes: a process or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Node(NodeId),
    Client(ClientId),
}

pub struct Process {
    pub node: ShardNode<MemStorage>,
    /// token -> (client, op_id) of accepted client requests not yet answered.
    waiting: BTreeMap<Token, (ClientId, u64)>,
    next_token: Token,
}

impl Process {
    pub fn new(node: ShardNode<MemStorage>) -> Self {
        Process {
            node,
            waiting: BTreeMap::new(),
            next_token: 0,
        }
    }

    /// Gives back every replica's storage (a crash keeps them).
    pub fn into_storages(self) -> BTreeMap<GroupId, MemStorage> {
        self.node.into_storages()
    }

    /// One tick; the packets the leading groups' agents need sent.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(Dest, Packet)> {
        self.node
            .tick(now_ms)
            .into_iter()
            .map(|o| match o {
                Outbound::ConfigQuery { to, group, num } => {
                    (Dest::Node(to), Packet::ConfigQuery { group, num })
                }
                Outbound::Group {
                    to,
                    from_group,
                    to_group,
                    request,
                } => (
                    Dest::Node(to),
                    Packet::Group {
                        from_group,
                        to_group,
                        request,
                    },
                ),
            })
            .collect()
    }

    /// A Raft message for one of the hosted groups (dropped if not hosted).
    pub fn step(&mut self, group: GroupId, msg: Message) {
        let _ = self.node.step(group, msg);
    }

    fn token(&mut self, waiter: (ClientId, u64)) -> Token {
        self.next_token += 1;
        self.waiting.insert(self.next_token, waiter);
        self.next_token
    }

    /// A clerk's request to a data group; a refusal is answered at once.
    pub fn on_data_request(&mut self, req: DataRequest, now_ms: u64) -> Option<(Dest, Packet)> {
        let token = self.token((req.client, req.op_id));
        let result = match req.body {
            DataBody::Write(r) => {
                let cmd = GroupCommand::Data(shardkv::Command::Request(r));
                self.node.propose(req.group, token, cmd, now_ms)
            }
            DataBody::Read { key } => {
                let q = shardkv::Query::Op(kv::Op::Get { key });
                self.node.read(req.group, token, GroupQuery::Data(q))
            }
        };
        let why = refusal(result)?;
        self.waiting.remove(&token);
        let reply = DataReply {
            op_id: req.op_id,
            body: ReplyBody::Rejected(why),
        };
        Some((Dest::Client(req.client), Packet::DataReply(reply)))
    }

    /// A controller clerk's request; a refusal is answered at once.
    pub fn on_ctrl_request(&mut self, req: CtrlRequest, now_ms: u64) -> Option<(Dest, Packet)> {
        let token = self.token((req.client, req.op_id));
        let result = match req.body {
            CtrlBody::Propose(cmd) => {
                self.node
                    .propose(CONTROLLER_GROUP, token, GroupCommand::Ctrl(cmd), now_ms)
            }
            CtrlBody::Read(num) => self
                .node
                .read(CONTROLLER_GROUP, token, GroupQuery::Ctrl(num)),
        };
        let why = refusal(result)?;
        self.waiting.remove(&token);
        let reply = CtrlReply {
            op_id: req.op_id,
            body: ReplyBody::Rejected(why),
        };
        Some((Dest::Client(req.client), Packet::CtrlReply(reply)))
    }

    pub fn on_config_query(&self, num: u64) -> Option<Config> {
        self.node.config(num)
    }

    pub fn on_config_reply(&mut self, group: GroupId, config: Option<Config>, now_ms: u64) {
        if let Some(config) = config {
            self.node.on_config(group, config, now_ms);
        }
    }

    pub fn on_group_request(
        &mut self,
        to_group: GroupId,
        request: &GroupRequest,
        now_ms: u64,
    ) -> Option<GroupReply> {
        self.node.on_group_request(to_group, request, now_ms)
    }

    pub fn on_group_reply(&mut self, to_group: GroupId, reply: GroupReply, now_ms: u64) {
        self.node.on_group_reply(to_group, reply, now_ms);
    }

    /// Drives every hosted replica; Raft messages go to `send` as
    /// (destination node, group, message); client answers are returned.
    pub fn drive(&mut self, send: &mut dyn FnMut(NodeId, GroupId, Message)) -> Vec<(Dest, Packet)> {
        let done = self
            .node
            .drive(&mut |env| send(env.to(), env.group, env.msg))
            .expect("MemStorage never fails; snapshots come from our own machines");
        let mut out = Vec::new();
        for gc in done {
            let Some((client, op_id)) = self.waiting.remove(&gc.completion.token) else {
                continue;
            };
            let packet = if gc.group == CONTROLLER_GROUP {
                Packet::CtrlReply(CtrlReply {
                    op_id,
                    body: ReplyBody::Done(narrow_ctrl(gc.completion.outcome)),
                })
            } else {
                Packet::DataReply(DataReply {
                    op_id,
                    body: ReplyBody::Done(narrow_data(gc.completion.outcome)),
                })
            };
            out.push((Dest::Client(client), packet));
        }
        out
    }
}

/// The replica's refusal to send back (`None`: accepted).
fn refusal(result: Result<(), Refused>) -> Option<Rejected> {
    match result {
        Ok(()) => None,
        Err(Refused::Rejected { rejected, .. }) => Some(rejected),
        Err(
            Refused::NoSuchGroup { .. } | Refused::Misaddressed { .. } | Refused::DiskFull { .. },
        ) => Some(Rejected::NotLeader { hint: None }),
    }
}

fn narrow_data(o: Outcome<GroupMachine>) -> Outcome<ShardKv> {
    match o {
        Outcome::Applied(GroupResponse::Data(r)) => Outcome::Applied(r),
        Outcome::Value(GroupQueryResult::Data(v)) => Outcome::Value(v),
        Outcome::Unknown { hint } => Outcome::Unknown { hint },
        Outcome::ReadAborted { hint } => Outcome::ReadAborted { hint },
        other => unreachable!("a data group answered {other:?}"),
    }
}

fn narrow_ctrl(o: Outcome<GroupMachine>) -> Outcome<CtrlMachine> {
    match o {
        Outcome::Applied(GroupResponse::Ctrl(r)) => Outcome::Applied(r),
        Outcome::Value(GroupQueryResult::Ctrl(c)) => Outcome::Value(c),
        Outcome::Unknown { hint } => Outcome::Unknown { hint },
        Outcome::ReadAborted { hint } => Outcome::ReadAborted { hint },
        other => unreachable!("the controller answered {other:?}"),
    }
}
