//! The clerk: a KV client as a sans-I/O state machine (inputs: start an
//! operation, a reply, a timer; outputs: [`Effects`]).
//!
//! It finds the leader (following `NotLeader` hints, else trying servers in
//! turn), retries on timeouts, wrong-leader answers and unknown outcomes with
//! the SAME (client id, seq) — the server's session makes the retry
//! exactly-once — and finishes an operation only when it took effect (or,
//! for [`ClerkResult::Unknown`], when the session itself was lost and no one
//! can tell any more).
//!
//! Invariants: at most one operation in flight; writes are numbered 1, 2, …
//! within a session and a number is never reused for another operation; a
//! reply counts only if it names the current operation (`op_id`); a timer
//! counts only if it is the latest one set (`timer_gen`).

use bytes::Bytes;
use raft::NodeId;
use replica::Rejected;

use crate::events::Micros;
use crate::kv::net::ClientId;
use crate::kv::wire::{ClientReply, ClientRequest, Outcome, ReplyBody, RequestBody};

/// An operation a clerk performs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkOp {
    Get(Bytes),
    Put(Bytes, Bytes),
    Append(Bytes, Bytes),
    Delete(Bytes),
}

/// How a clerk operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkResult {
    Value(Option<Bytes>),
    Done,
    Length(u64),
    Deleted(bool),
    /// The state machine refused it deterministically (e.g. value too large).
    Failed(kv::KvError),
    /// The session expired: whether the operation took effect is unknown.
    Unknown,
}

/// What the host must do after one clerk input.
#[derive(Debug, Default)]
pub struct Effects {
    pub sends: Vec<(NodeId, ClientRequest)>,
    /// Arm the clerk's timer: call `on_timer(gen)` at this time.
    pub timer: Option<(Micros, u64)>,
    pub done: Option<ClerkResult>,
}

#[derive(Clone, Copy, Debug)]
pub struct ClerkConfig {
    /// How long to wait for an answer before trying the next server.
    pub attempt_timeout: Micros,
    /// Pause after every server refused (no leader known) or one was busy.
    pub backoff: Micros,
}

#[derive(Debug)]
enum Phase {
    Registering,
    /// `seq` is `None` for a read.
    Running {
        seq: Option<u64>,
    },
}

#[derive(Debug)]
struct Current {
    op: ClerkOp,
    op_id: u64,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    Timeout,
    Backoff,
}

pub struct Clerk {
    id: ClientId,
    cfg: ClerkConfig,
    servers: Vec<NodeId>,
    /// Index into `servers` of the presumed leader.
    target: usize,
    session: Option<u64>,
    // Invariant: the next write gets this seq; never reused.
    next_seq: u64,
    next_op_id: u64,
    current: Option<Current>,
    timer_gen: u64,
    timer_kind: TimerKind,
    /// Redirects since the last timer: bounds hint ping-pong.
    redirects: usize,
}

impl Clerk {
    pub fn new(id: ClientId, servers: Vec<NodeId>, cfg: ClerkConfig) -> Self {
        assert!(!servers.is_empty(), "a clerk needs servers");
        let target = (id as usize) % servers.len();
        Clerk {
            id,
            cfg,
            servers,
            target,
            session: None,
            next_seq: 1,
            next_op_id: 0,
            current: None,
            timer_gen: 0,
            timer_kind: TimerKind::Timeout,
            redirects: 0,
        }
    }

    pub fn id(&self) -> ClientId {
        self.id
    }

    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// The session in use, if registered.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    /// Starts `op`. Panics if one is already in flight (a harness bug).
    pub fn start(&mut self, op: ClerkOp, now: Micros) -> Effects {
        assert!(
            self.current.is_none(),
            "clerk {} started an op while busy",
            self.id
        );
        let phase = match (&op, self.session) {
            (ClerkOp::Get(_), _) => Phase::Running { seq: None },
            (_, None) => Phase::Registering,
            (_, Some(_)) => Phase::Running {
                seq: Some(self.take_seq()),
            },
        };
        let op_id = self.take_op_id();
        self.current = Some(Current { op, op_id, phase });
        self.redirects = 0;
        self.attempt(now)
    }

    pub fn on_reply(&mut self, from: NodeId, reply: ClientReply, now: Micros) -> Effects {
        let Some(cur) = &self.current else {
            return Effects::default();
        };
        if cur.op_id != reply.op_id {
            return Effects::default();
        }
        match reply.body {
            ReplyBody::Rejected(Rejected::Busy { .. }) => self.backoff(now),
            ReplyBody::Rejected(Rejected::NotLeader { hint })
            | ReplyBody::Done(Outcome::Unknown { hint })
            | ReplyBody::Done(Outcome::ReadAborted { hint }) => self.redirect(from, hint, now),
            ReplyBody::Done(Outcome::Value(reply)) => self.finish(result_of(reply)),
            ReplyBody::Done(Outcome::Applied(Ok(kv::Reply::Registered { client_id }))) => {
                self.registered(client_id, now)
            }
            ReplyBody::Done(Outcome::Applied(Ok(reply))) => self.finish(result_of(reply)),
            ReplyBody::Done(Outcome::Applied(Err(e))) => self.failed(e),
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

    // ---- transitions ---------------------------------------------------------------

    fn attempt(&mut self, now: Micros) -> Effects {
        let cur = self.current.as_ref().expect("an op in flight");
        let body = match (&cur.phase, &cur.op) {
            (Phase::Registering, _) => RequestBody::Register,
            (Phase::Running { seq: None }, ClerkOp::Get(key)) => {
                RequestBody::Read { key: key.clone() }
            }
            (Phase::Running { seq: Some(seq) }, op) => RequestBody::Write(kv::Request {
                client_id: self.session.expect("a write runs in a session"),
                seq: *seq,
                op: kv_op(op),
            }),
            (Phase::Running { seq: None }, op) => unreachable!("write {op:?} without a seq"),
        };
        let req = ClientRequest {
            client: self.id,
            op_id: cur.op_id,
            body,
        };
        let to = self.servers[self.target];
        let mut fx = self.arm(TimerKind::Timeout, now + self.cfg.attempt_timeout);
        fx.sends.push((to, req));
        fx
    }

    fn redirect(&mut self, from: NodeId, hint: Option<NodeId>, now: Micros) -> Effects {
        self.redirects += 1;
        if self.redirects > 2 * self.servers.len() {
            return self.backoff_next(now);
        }
        let next = match hint.and_then(|h| self.servers.iter().position(|&s| s == h)) {
            Some(i) if self.servers[i] != from => i,
            _ => {
                (self
                    .servers
                    .iter()
                    .position(|&s| s == from)
                    .unwrap_or(self.target)
                    + 1)
                    % self.servers.len()
            }
        };
        if next == self.target && self.servers[next] == from {
            return self.backoff(now);
        }
        self.target = next;
        self.attempt(now)
    }

    fn backoff(&mut self, now: Micros) -> Effects {
        self.arm(TimerKind::Backoff, now + self.cfg.backoff)
    }

    fn backoff_next(&mut self, now: Micros) -> Effects {
        self.target = (self.target + 1) % self.servers.len();
        self.backoff(now)
    }

    fn registered(&mut self, client_id: u64, now: Micros) -> Effects {
        let cur = self.current.as_mut().expect("an op in flight");
        if !matches!(cur.phase, Phase::Registering) {
            return Effects::default();
        }
        self.session = Some(client_id);
        self.next_seq = 1;
        let seq = self.take_seq();
        let op_id = self.take_op_id();
        let cur = self.current.as_mut().expect("an op in flight");
        cur.phase = Phase::Running { seq: Some(seq) };
        cur.op_id = op_id;
        self.attempt(now)
    }

    fn failed(&mut self, e: kv::KvError) -> Effects {
        match e {
            kv::KvError::SessionExpired { .. } | kv::KvError::StaleRequest { .. } => {
                self.session = None;
                self.finish(ClerkResult::Unknown)
            }
            other => self.finish(ClerkResult::Failed(other)),
        }
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

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    fn take_op_id(&mut self) -> u64 {
        self.next_op_id += 1;
        self.next_op_id
    }
}

fn kv_op(op: &ClerkOp) -> kv::Op {
    match op.clone() {
        ClerkOp::Get(key) => kv::Op::Get { key },
        ClerkOp::Put(key, value) => kv::Op::Put { key, value },
        ClerkOp::Append(key, value) => kv::Op::Append { key, value },
        ClerkOp::Delete(key) => kv::Op::Delete { key },
    }
}

fn result_of(reply: kv::Reply) -> ClerkResult {
    match reply {
        kv::Reply::Value(v) => ClerkResult::Value(v),
        kv::Reply::Done | kv::Reply::Registered { .. } => ClerkResult::Done,
        kv::Reply::Length(n) => ClerkResult::Length(n),
        kv::Reply::Deleted(b) => ClerkResult::Deleted(b),
        other => unreachable!("no op the workload sends is answered {other:?}"),
    }
}
