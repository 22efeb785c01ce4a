//! The sharded clerk: a client of the sharded store as a sans-I/O state
//! machine (inputs: start an operation, a reply, a timer; outputs:
//! [`Effects`]).
//!
//! It maps a key to its shard and the shard to a group through the latest
//! configuration it knows, sends to that group's members (following leader
//! hints), and on `WrongGroup` — or when the shard has no group — asks the
//! controller for the latest configuration and tries again. Every attempt
//! of a write carries the same (client id, seq): the group's session (which
//! moves with the shard) makes the retry exactly-once, provided the clerk
//! keeps the retry-deadline rule of `shardkv::session` — it gives up
//! (result `Unknown`) once `retry_deadline` has passed since the first send.
//!
//! Invariants: at most one operation in flight; seqs are 1, 2, … and never
//! reused; a reply counts only if it names the current operation (`op_id`);
//! a timer counts only if it is the latest one set.

use bytes::Bytes;
use raft::NodeId;
use replica::{Outcome, Rejected};
use shardkv::{OpError, Reply, Response};
use shardmeta::{Config, Keyspace};

use crate::events::Micros;
use crate::kv::{ClerkOp, ClerkResult, ClientId};
use crate::shard::ctrl_clerk::latest_query;
use crate::shard::wire::{
    CtrlBody, CtrlReply, CtrlRequest, DataBody, DataReply, DataRequest, Packet, ReplyBody,
};

/// What the host must do after one clerk input.
#[derive(Debug, Default)]
pub struct Effects {
    pub sends: Vec<(NodeId, Packet)>,
    /// Arm the clerk's timer: call `on_timer(gen)` at this time.
    pub timer: Option<(Micros, u64)>,
    pub done: Option<ClerkResult>,
    /// A controller clerk's operation finished.
    pub ctrl_done: Option<crate::shard::ctrl_clerk::CtrlResult>,
}

#[derive(Clone, Copy, Debug)]
pub struct ShardClerkConfig {
    /// How long to wait for an answer before trying the next server.
    pub attempt_timeout: Micros,
    /// Pause before asking again when nobody could take the request.
    pub backoff: Micros,
    /// Give up on an operation (result `Unknown`) this long after its first
    /// send: half the groups' session timeout (`shardkv::session`'s rule).
    pub retry_deadline: Micros,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    Timeout,
    Backoff,
}

#[derive(Debug)]
enum Phase {
    /// Asking the controller for the latest configuration.
    Config,
    /// Asking the group that owns the key in `config`.
    Data,
}

#[derive(Debug)]
struct Current {
    op: ClerkOp,
    op_id: u64,
    /// `None` for a read.
    seq: Option<u64>,
    started: Micros,
    phase: Phase,
}

pub struct ShardClerk {
    id: ClientId,
    cfg: ShardClerkConfig,
    keyspace: Keyspace,
    controllers: Vec<NodeId>,
    ctrl_target: usize,
    /// The latest configuration this clerk has seen (never goes back).
    config: Config,
    /// Index into the owning group's members of the presumed leader.
    target: usize,
    // Invariant: the next write gets this seq; never reused.
    next_seq: u64,
    next_op_id: u64,
    current: Option<Current>,
    timer_gen: u64,
    timer_kind: TimerKind,
    redirects: usize,
    /// Attempts at the current group that timed out since the last
    /// configuration refresh: after one per member, refresh (the group
    /// may be gone, the shard moved where no reply can say so).
    timeouts: usize,
}

impl ShardClerk {
    /// `id` is also the session's client id: unique among all clients.
    pub fn new(
        id: ClientId,
        keyspace: Keyspace,
        controllers: Vec<NodeId>,
        cfg: ShardClerkConfig,
    ) -> Self {
        assert!(!controllers.is_empty(), "a clerk needs the controller");
        ShardClerk {
            id,
            cfg,
            keyspace,
            ctrl_target: id as usize % controllers.len(),
            controllers,
            config: Config::initial(keyspace.shards()),
            target: id as usize,
            next_seq: 1,
            next_op_id: 0,
            current: None,
            timer_gen: 0,
            timer_kind: TimerKind::Timeout,
            redirects: 0,
            timeouts: 0,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// Starts `op`. Panics if one is already in flight (a harness bug).
    pub fn start(&mut self, op: ClerkOp, now: Micros) -> Effects {
        assert!(self.current.is_none(), "clerk {} is busy", self.id);
        let seq = (!matches!(op, ClerkOp::Get(_))).then(|| {
            self.next_seq += 1;
            self.next_seq - 1
        });
        self.next_op_id += 1;
        self.current = Some(Current {
            op,
            op_id: self.next_op_id,
            seq,
            started: now,
            phase: Phase::Data,
        });
        self.redirects = 0;
        self.attempt(now)
    }

    pub fn on_data_reply(&mut self, from: NodeId, reply: DataReply, now: Micros) -> Effects {
        if !self.is_current(reply.op_id, false) {
            return Effects::default();
        }
        match reply.body {
            ReplyBody::Rejected(Rejected::Busy { .. }) => self.backoff(now),
            ReplyBody::Rejected(Rejected::NotLeader { hint })
            | ReplyBody::Done(Outcome::Unknown { hint })
            | ReplyBody::Done(Outcome::ReadAborted { hint }) => self.redirect(from, hint, now),
            ReplyBody::Done(Outcome::Value(Ok(reply))) => self.finish(result_of(reply)),
            ReplyBody::Done(Outcome::Value(Err(_wrong_group))) => self.refresh(now),
            ReplyBody::Done(Outcome::Applied(Response::Op(result))) => match result {
                Ok(reply) => self.finish(result_of(reply)),
                Err(OpError::WrongGroup(_)) => self.refresh(now),
                Err(OpError::SessionsFull) => self.backoff(now),
                Err(OpError::StaleRequest { .. }) => self.finish(ClerkResult::Unknown),
                Err(OpError::ValueTooLarge { len, max }) => {
                    self.finish(ClerkResult::Failed(kv::KvError::ValueTooLarge { len, max }))
                }
            },
            // Not an answer to a client request: a harness bug upstream.
            ReplyBody::Done(Outcome::Applied(other)) => {
                panic!("clerk {}: request answered with {other:?}", self.id)
            }
        }
    }

    pub fn on_ctrl_reply(&mut self, reply: CtrlReply, now: Micros) -> Effects {
        if !self.is_current(reply.op_id, true) {
            return Effects::default();
        }
        match crate::shard::ctrl_clerk::config_of(&reply.body) {
            Some(config) => {
                if config.num > self.config.num {
                    self.config = config;
                }
                self.current.as_mut().expect("an op").phase = Phase::Data;
                if self.owner_members().is_empty() {
                    // No group owns the shard yet: ask again after a pause.
                    return self.backoff(now);
                }
                self.attempt(now)
            }
            None => {
                self.ctrl_target = (self.ctrl_target + 1) % self.controllers.len();
                self.backoff(now)
            }
        }
    }

    pub fn on_timer(&mut self, gen: u64, now: Micros) -> Effects {
        if gen != self.timer_gen || self.current.is_none() {
            return Effects::default();
        }
        if self.timer_kind == TimerKind::Timeout {
            match self.current.as_ref().expect("an op").phase {
                Phase::Config => self.ctrl_target = (self.ctrl_target + 1) % self.controllers.len(),
                Phase::Data => {
                    self.target += 1;
                    self.timeouts += 1;
                    if self.timeouts >= self.owner_members().len().max(1) {
                        self.timeouts = 0;
                        return self.refresh(now);
                    }
                }
            }
        } else if matches!(self.current.as_ref().expect("an op").phase, Phase::Data)
            && self.owner_members().is_empty()
        {
            return self.refresh(now);
        }
        self.redirects = 0;
        self.attempt(now)
    }

    // ---- transitions ---------------------------------------------------------------

    fn is_current(&self, op_id: u64, config_phase: bool) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.op_id == op_id && matches!(c.phase, Phase::Config) == config_phase)
    }

    fn attempt(&mut self, now: Micros) -> Effects {
        let cur = self.current.as_ref().expect("an op in flight");
        if now.saturating_sub(cur.started) > self.cfg.retry_deadline {
            return self.finish(ClerkResult::Unknown);
        }
        let (to, packet) = match cur.phase {
            Phase::Config => self.config_request(),
            Phase::Data => match self.data_request() {
                Some(send) => send,
                None => return self.refresh(now),
            },
        };
        let mut fx = self.arm(TimerKind::Timeout, now + self.cfg.attempt_timeout);
        fx.sends.push((to, packet));
        fx
    }

    fn config_request(&self) -> (NodeId, Packet) {
        let cur = self.current.as_ref().expect("an op in flight");
        let req = CtrlRequest {
            client: self.id,
            op_id: cur.op_id,
            body: CtrlBody::Read(latest_query()),
        };
        (self.controllers[self.ctrl_target], Packet::Ctrl(req))
    }

    fn data_request(&self) -> Option<(NodeId, Packet)> {
        let cur = self.current.as_ref().expect("an op in flight");
        let members = self.owner_members();
        if members.is_empty() {
            return None;
        }
        let gid = self
            .config
            .owner(self.keyspace.shard_of_key(key_of(&cur.op)));
        let body = match (&cur.op, cur.seq) {
            (ClerkOp::Get(key), _) => DataBody::Read { key: key.clone() },
            (op, Some(seq)) => DataBody::Write(shardkv::Request {
                client_id: self.id,
                seq,
                op: shard_op(op),
            }),
            (op, None) => unreachable!("write {op:?} without a seq"),
        };
        let req = DataRequest {
            client: self.id,
            op_id: cur.op_id,
            group: gid,
            body,
        };
        Some((members[self.target % members.len()], Packet::Data(req)))
    }

    /// Members (node ids) of the group owning the current op's key.
    fn owner_members(&self) -> Vec<NodeId> {
        let Some(cur) = self.current.as_ref() else {
            return Vec::new();
        };
        let gid = self
            .config
            .owner(self.keyspace.shard_of_key(key_of(&cur.op)));
        self.config.members(gid).iter().map(|m| m.id).collect()
    }

    /// Asks the controller for the latest configuration.
    fn refresh(&mut self, now: Micros) -> Effects {
        self.timeouts = 0;
        self.current.as_mut().expect("an op").phase = Phase::Config;
        self.attempt(now)
    }

    fn redirect(&mut self, from: NodeId, hint: Option<NodeId>, now: Micros) -> Effects {
        let members = self.owner_members();
        self.redirects += 1;
        if members.is_empty() || self.redirects > 2 * members.len() {
            self.target += 1;
            return self.backoff(now);
        }
        let from_at = members.iter().position(|&m| m == from);
        self.target = match hint.and_then(|h| members.iter().position(|&m| m == h)) {
            Some(i) if members[i] != from => i,
            _ => from_at.map_or(self.target + 1, |i| i + 1),
        };
        self.attempt(now)
    }

    fn backoff(&mut self, now: Micros) -> Effects {
        self.arm(TimerKind::Backoff, now + self.cfg.backoff)
    }

    fn finish(&mut self, result: ClerkResult) -> Effects {
        self.current = None;
        self.timer_gen += 1;
        Effects {
            done: Some(result),
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
}

fn key_of(op: &ClerkOp) -> &Bytes {
    match op {
        ClerkOp::Get(k) | ClerkOp::Delete(k) => k,
        ClerkOp::Put(k, _) | ClerkOp::Append(k, _) => k,
    }
}

fn shard_op(op: &ClerkOp) -> shardkv::Op {
    match op.clone() {
        ClerkOp::Get(key) => shardkv::Op::Get { key },
        ClerkOp::Put(key, value) => shardkv::Op::Put { key, value },
        ClerkOp::Append(key, value) => shardkv::Op::Append { key, value },
        ClerkOp::Delete(key) => shardkv::Op::Delete { key },
    }
}

fn result_of(reply: Reply) -> ClerkResult {
    match reply {
        Reply::Value(v) => ClerkResult::Value(v),
        Reply::Done => ClerkResult::Done,
        Reply::Length(n) => ClerkResult::Length(n),
        Reply::Deleted(b) => ClerkResult::Deleted(b),
        other => unreachable!("no op the workload sends is answered {other:?}"),
    }
}
