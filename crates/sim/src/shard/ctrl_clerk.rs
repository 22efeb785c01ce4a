//! The controller's clerk: Join / Leave / Move through the controller's log
//! inside an exactly-once session, Query as a linearizable ReadIndex read —
//! a sans-I/O state machine like the KV clerk. Also the few places that
//! know the controller's API (`new_controller`, `applied_config`,
//! `latest_query`, `config_of`), so the rest of the simulation does not.
//!
//! Invariants: at most one operation in flight; a write's seq is never
//! reused; a reply counts only if it names the current operation.

use std::collections::BTreeMap;

use raft::NodeId;
use replica::{Outcome, Rejected};
use shardctrler::{Command, Controller, CtrlError, Op, Reply, Request};
use shardmeta::{Config, GroupId, Member, ShardId};

use crate::events::Micros;
use crate::kv::ClientId;
use crate::shard::clerk::{Effects, ShardClerkConfig};
use crate::shard::wire::{CtrlBody, CtrlReply, CtrlRequest, Packet, ReplyBody};

/// A controller operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlOp {
    Join(BTreeMap<GroupId, Vec<Member>>),
    Leave(Vec<GroupId>),
    Move(ShardId, GroupId),
    /// A configuration by number, or the latest (`None`).
    Query(Option<u64>),
}

/// How a controller operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlResult {
    Done,
    Config(Config),
    /// The controller refused it (e.g. an unknown group); nothing changed.
    Failed(String),
}

/// Configuration `num` from a replica's applied state, if it has it.
pub fn applied_config(sm: &Controller, num: u64) -> Option<Config> {
    sm.configs()
        .get(num as usize)
        .filter(|c| c.num == num)
        .cloned()
}

/// The ReadIndex query for the latest configuration.
pub fn latest_query() -> <Controller as rsm::StateMachine>::Query {
    None
}

/// The configuration in a read's answer, if the reply is one.
pub fn config_of(body: &ReplyBody<Controller>) -> Option<Config> {
    match body {
        ReplyBody::Done(Outcome::Value(config)) => Some(config.clone()),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    Timeout,
    Backoff,
}

#[derive(Debug)]
enum Phase {
    Registering,
    /// `seq` is `None` for a query.
    Running {
        seq: Option<u64>,
    },
}

#[derive(Debug)]
struct Current {
    op: CtrlOp,
    op_id: u64,
    phase: Phase,
}

pub struct CtrlClerk {
    id: ClientId,
    cfg: ShardClerkConfig,
    servers: Vec<NodeId>,
    target: usize,
    session: Option<u64>,
    next_seq: u64,
    next_op_id: u64,
    current: Option<Current>,
    timer_gen: u64,
    timer_kind: TimerKind,
    redirects: usize,
}

impl CtrlClerk {
    pub fn new(id: ClientId, servers: Vec<NodeId>, cfg: ShardClerkConfig) -> Self {
        assert!(!servers.is_empty(), "a clerk needs servers");
        CtrlClerk {
            id,
            cfg,
            target: id as usize % servers.len(),
            servers,
            session: None,
            next_seq: 1,
            next_op_id: 0,
            current: None,
            timer_gen: 0,
            timer_kind: TimerKind::Timeout,
            redirects: 0,
        }
    }

    pub fn start(&mut self, op: CtrlOp, now: Micros) -> Effects {
        assert!(
            self.current.is_none(),
            "controller clerk {} is busy",
            self.id
        );
        let phase = match (&op, self.session) {
            (CtrlOp::Query(_), _) => Phase::Running { seq: None },
            (_, None) => Phase::Registering,
            (_, Some(_)) => Phase::Running {
                seq: Some(self.take_seq()),
            },
        };
        self.next_op_id += 1;
        self.current = Some(Current {
            op,
            op_id: self.next_op_id,
            phase,
        });
        self.redirects = 0;
        self.attempt(now)
    }

    pub fn on_reply(&mut self, from: NodeId, reply: CtrlReply, now: Micros) -> Effects {
        if self.current.as_ref().is_none_or(|c| c.op_id != reply.op_id) {
            return Effects::default();
        }
        match reply.body {
            ReplyBody::Rejected(Rejected::Busy { .. }) => self.backoff(now),
            ReplyBody::Rejected(Rejected::NotLeader { hint })
            | ReplyBody::Done(Outcome::Unknown { hint })
            | ReplyBody::Done(Outcome::ReadAborted { hint }) => self.redirect(from, hint, now),
            ReplyBody::Done(Outcome::Value(config)) => self.finish_query(config),
            ReplyBody::Done(Outcome::Applied(Ok(Reply::Registered { client_id }))) => {
                self.registered(client_id, now)
            }
            ReplyBody::Done(Outcome::Applied(Ok(Reply::Config(config)))) => {
                self.finish(CtrlResult::Config(config))
            }
            ReplyBody::Done(Outcome::Applied(Ok(_))) => self.finish(CtrlResult::Done),
            ReplyBody::Done(Outcome::Applied(Err(e))) => {
                if matches!(
                    e,
                    CtrlError::SessionExpired { .. } | CtrlError::StaleRequest { .. }
                ) {
                    // The session expired: whether the change happened is
                    // unknown. The harness treats it as a failure.
                    self.session = None;
                }
                self.finish(CtrlResult::Failed(e.to_string()))
            }
        }
    }

    pub fn on_timer(&mut self, gen: u64, now: Micros) -> Effects {
        if gen != self.timer_gen || self.current.is_none() {
            return Effects::default();
        }
        if self.timer_kind == TimerKind::Timeout {
            self.target = (self.target + 1) % self.servers.len();
        }
        self.redirects = 0;
        self.attempt(now)
    }

    fn attempt(&mut self, now: Micros) -> Effects {
        let cur = self.current.as_ref().expect("an op in flight");
        let body = match (&cur.phase, &cur.op) {
            (Phase::Registering, _) => CtrlBody::Propose(Command::RegisterSession),
            (Phase::Running { .. }, CtrlOp::Query(num)) => CtrlBody::Read(*num),
            (Phase::Running { seq: Some(seq) }, op) => {
                CtrlBody::Propose(Command::Request(Request {
                    client_id: self.session.expect("a write runs in a session"),
                    seq: *seq,
                    op: ctrl_op(op),
                }))
            }
            (Phase::Running { seq: None }, op) => unreachable!("write {op:?} without a seq"),
        };
        let req = CtrlRequest {
            client: self.id,
            op_id: cur.op_id,
            body,
        };
        let to = self.servers[self.target];
        let mut fx = self.arm(TimerKind::Timeout, now + self.cfg.attempt_timeout);
        fx.sends.push((to, Packet::Ctrl(req)));
        fx
    }

    fn redirect(&mut self, from: NodeId, hint: Option<NodeId>, now: Micros) -> Effects {
        self.redirects += 1;
        if self.redirects > 2 * self.servers.len() {
            self.target = (self.target + 1) % self.servers.len();
            return self.backoff(now);
        }
        let from_at = self.servers.iter().position(|&s| s == from);
        self.target = match hint.and_then(|h| self.servers.iter().position(|&s| s == h)) {
            Some(i) if self.servers[i] != from => i,
            _ => from_at.map_or(self.target + 1, |i| i + 1) % self.servers.len(),
        };
        self.attempt(now)
    }

    fn registered(&mut self, client_id: u64, now: Micros) -> Effects {
        let cur = self.current.as_ref().expect("an op in flight");
        if !matches!(cur.phase, Phase::Registering) {
            return Effects::default();
        }
        self.session = Some(client_id);
        self.next_seq = 1;
        let seq = self.take_seq();
        self.next_op_id += 1;
        let cur = self.current.as_mut().expect("an op in flight");
        cur.phase = Phase::Running { seq: Some(seq) };
        cur.op_id = self.next_op_id;
        self.attempt(now)
    }

    fn finish_query(&mut self, config: Config) -> Effects {
        self.finish(CtrlResult::Config(config))
    }

    fn backoff(&mut self, now: Micros) -> Effects {
        self.arm(TimerKind::Backoff, now + self.cfg.backoff)
    }

    fn finish(&mut self, result: CtrlResult) -> Effects {
        self.current = None;
        self.timer_gen += 1;
        Effects {
            ctrl_done: Some(result),
            ..Effects::default()
        }
    }

    fn arm(&mut self, kind: TimerKind, at: Micros) -> Effects {
        self.timer_gen += 1;
        self.timer_kind = kind;
        Effects {
            timer: Some((at, self.timer_gen)),
            ..Effects::default()
        }
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }
}

fn ctrl_op(op: &CtrlOp) -> Op {
    match op.clone() {
        CtrlOp::Join(groups) => Op::Join { groups },
        CtrlOp::Leave(gids) => Op::Leave {
            gids: gids.into_iter().collect(),
        },
        CtrlOp::Move(shard, gid) => Op::Move { shard, gid },
        CtrlOp::Query(_) => unreachable!("a query is a read, not a session request"),
    }
}
