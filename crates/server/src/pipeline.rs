//! Commands pipelined on one connection, overlapped: a run of consecutive
//! plain writes goes to the driver as one unit (one round through Raft for
//! all of them), a run of consecutive plain reads as one batch of ReadIndex
//! reads, instead of one full round trip per command.
//!
//! Owns: which commands may join a unit ([`kind_of`]), the unit being
//! gathered ([`Unit`]), and running it ([`run`]).
//!
//! Invariant: a connection's commands take effect in pipeline order, and
//! each is answered in that order with what it did; a later command sees an
//! earlier one's effect. How:
//! - a unit is one kind only; the connection runs it to its last answer
//!   before the next unit or any other command starts, so a read after a
//!   write (or a write after a read) of the same pipeline starts only once
//!   the earlier one is answered (a write is answered once applied here, so
//!   a ReadIndex read taken after it covers it);
//! - a write unit is handed to the driver whole (`Input::ProposeUnit`): its
//!   commands take consecutive log entries of one term, or the driver refuses
//!   from the first one the replica refuses and proposes none after it. All
//!   answers of the unit are awaited (or its deadline passes) before any of
//!   them is retried, and the ones not applied are then settled one by one in
//!   order (same session and seq: a retry of one that did take effect is
//!   answered from the session's cache). So a retried command can never land
//!   after a later one: a later entry of the same term and leader commits only
//!   with the earlier ones, and anything proposed afterwards goes after them
//!   in any log that keeps them;
//! - each write of a unit holds a seq of one and the same pooled session
//!   (`SessionPool::take_run`, which keeps kv's window rule): an expired
//!   session then fails the whole unit, never a part of it that others
//!   follow. A unit takes at most a window's worth, and only the seqs that
//!   session has room for at once (fewer than two: the first command runs
//!   alone);
//! - a unit's answers arrive, and are held, together: its size starts small
//!   and adapts to what its replies weigh ([`Unit::adapt`]), and the
//!   connection checks its output buffer limit before appending each reply,
//!   as it does before each lone command;
//! - a read unit's answers are used up to the first that is not a value;
//!   that read and every later one of the unit run again one by one, so no
//!   read is answered from an older state than an earlier read of the unit.
//!
//! Only a single-group node that leads runs units (a follower forwards each
//! command to the leader, one by one as before); a unit of one command, and
//! everything else on the connection (transactions, server commands, the
//! sharded mode), takes the path of a lone command. Every write still
//! commits (fsync'd on a majority) and applies before it is answered.

use std::time::Instant;

use crate::driver::Answer;
use crate::exec;
use crate::requests::{RequestError, Requests};
use crate::resp::{Command, Frame};
use crate::service::Service;

/// Which commands a unit holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Writes,
    Reads,
}

/// The kind of unit `cmd` may join on a connection in `conn`'s state, or
/// `None` when it runs alone (after everything before it is answered).
pub fn kind_of(node: &Service, conn: &exec::ConnState, cmd: &Command) -> Option<Kind> {
    match (node, cmd) {
        (Service::Single(_), Command::Data(op)) if !conn.tx.in_multi() => {
            Some(if op.is_read_only() {
                Kind::Reads
            } else {
                Kind::Writes
            })
        }
        _ => None,
    }
}

/// One command waiting in a unit, with what the connection's stats want.
pub struct Pending {
    pub op: kv::Op,
    pub name: Option<&'static str>,
    pub started: Instant,
}

/// A unit's size when a connection starts.
const FIRST_CAP: usize = 4;
/// The most a unit's size grows to (a window bounds it too).
const MAX_CAP: usize = 1024;
/// Reply bytes a unit may make: its answers arrive (and are held) together,
/// so a unit of large replies is cut down to this much, and a connection
/// that never reads cannot get far past its output buffer limit.
pub const UNIT_REPLY_BYTES: usize = 256 << 10;

/// The unit being gathered on a connection: commands of one kind, in
/// pipeline order, at most `cap` of them (at most a window's worth).
pub struct Unit {
    kind: Option<Kind>,
    pub commands: Vec<Pending>,
    /// Starts at [`FIRST_CAP`]; doubles after a full unit of small replies,
    /// shrinks to fit [`UNIT_REPLY_BYTES`] after one of large replies.
    cap: usize,
}

impl Default for Unit {
    fn default() -> Self {
        Unit {
            kind: None,
            commands: Vec::new(),
            cap: FIRST_CAP,
        }
    }
}

impl Unit {
    /// Whether a command of `kind` may join (the unit holds another kind: no).
    pub fn accepts(&self, kind: Kind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }

    pub fn push(&mut self, kind: Kind, pending: Pending) {
        debug_assert!(self.accepts(kind));
        self.kind = Some(kind);
        self.commands.push(pending);
    }

    /// Whether the unit is as large as one may be on `node`.
    pub fn is_full(&self, node: &Service) -> bool {
        match node {
            Service::Single(r) => self.commands.len() >= self.cap.min(r.sessions.window() as usize),
            Service::Sharded(_) => true,
        }
    }

    /// A unit of `n` commands made `bytes` of replies: sizes the next one.
    pub fn adapt(&mut self, n: usize, bytes: usize) {
        if bytes > UNIT_REPLY_BYTES {
            self.cap = (UNIT_REPLY_BYTES * n / bytes).max(1);
        } else if n >= self.cap {
            self.cap = (self.cap * 2).min(MAX_CAP);
        }
    }

    /// The kind of the gathered commands (`None`: the unit is empty).
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// Empties the unit (keeping its room for the next).
    pub fn clear(&mut self) {
        self.kind = None;
        self.commands.clear();
    }
}

/// Runs one command alone: exactly the path it takes outside a pipeline.
pub async fn run_one(node: &Service, kind: Kind, op: kv::Op) -> Frame {
    reply(match kind {
        Kind::Writes => node.write(op).await,
        Kind::Reads => node.read(op).await,
    })
}

/// Runs `ops` (one kind, in pipeline order) as a unit; their replies in that order.
pub async fn run(node: &Service, kind: Kind, ops: Vec<kv::Op>) -> Vec<Frame> {
    let results = match (node, kind) {
        (Service::Single(r), Kind::Writes) => r.write_unit(ops).await,
        (Service::Single(r), Kind::Reads) => r.read_unit(ops).await,
        // Units are single-group only (`kind_of`); one by one otherwise.
        (Service::Sharded(_), _) => {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(run_one(node, kind, op).await);
            }
            return out;
        }
    };
    results.into_iter().map(reply).collect()
}

fn reply(result: Result<kv::Reply, RequestError>) -> Frame {
    match result {
        Ok(reply) => exec::render(reply),
        Err(e) => Frame::Error(e.to_string()),
    }
}

impl Requests {
    /// Whether this node leads now (units run only on the leader).
    fn leads(&self) -> bool {
        self.driver.leader() == Some(self.id)
    }

    /// Writes `ops` in order, as units where it can (module docs).
    async fn write_unit(&self, ops: Vec<kv::Op>) -> Vec<Result<kv::Reply, RequestError>> {
        let mut out = Vec::with_capacity(ops.len());
        let mut rest = ops.into_iter().peekable();
        while rest.peek().is_some() {
            if !self.leads() || self.write_refusal().is_some() {
                for op in rest.by_ref() {
                    out.push(self.write(op).await);
                }
                break;
            }
            let mut seqs = self
                .sessions
                .take_run(rest.len().min(self.sessions.window() as usize));
            if seqs.len() < 2 {
                // No room for a unit now: this one alone (registering a
                // session or waiting for room, as a lone write does).
                let op = rest.next().expect("peeked");
                out.push(match seqs.pop() {
                    Some(seq) => {
                        let deadline = tokio::time::Instant::now() + self.timeouts.request;
                        self.settle_write(seq, op, None, deadline).await
                    }
                    None => self.write(op).await,
                });
                continue;
            }
            let unit: Vec<kv::Op> = rest.by_ref().take(seqs.len()).collect();
            out.extend(self.propose_unit(seqs, unit).await);
        }
        out
    }

    /// One write unit under `seqs` (one per op), answered in order.
    async fn propose_unit(
        &self,
        seqs: Vec<(u64, u64)>,
        ops: Vec<kv::Op>,
    ) -> Vec<Result<kv::Reply, RequestError>> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeouts.request;
        let cmds = seqs
            .iter()
            .zip(&ops)
            .map(|(&(client_id, seq), op)| {
                kv::Command::Request(kv::Request {
                    client_id,
                    seq,
                    op: op.clone(),
                })
            })
            .collect();
        // Every answer first (`None`: still pending at the deadline), so
        // nothing of the unit is proposed again while a part of it is out.
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(ops.len());
        match self.driver.propose_unit(cmds) {
            Err(refusal) => answers.resize(ops.len(), Some(refusal)),
            Ok(receivers) => {
                for rx in receivers {
                    let answer = tokio::time::timeout_at(deadline, rx).await;
                    answers.push(answer.ok().map(|a| a.unwrap_or(Answer::Unknown)));
                    self.driver.observe_proposal(started.elapsed());
                }
            }
        }
        let mut out = Vec::with_capacity(ops.len());
        for ((seq, op), answer) in seqs.into_iter().zip(ops).zip(answers) {
            out.push(match answer {
                // Out at the deadline: it may still take effect.
                None => {
                    self.sessions.release(seq.0, seq.1);
                    Err(RequestError::Timeout)
                }
                Some(first) => self.settle_write(seq, op, Some(first), deadline).await,
            });
        }
        out
    }

    /// Reads `ops` in order: one batch of ReadIndex reads (module docs).
    async fn read_unit(&self, ops: Vec<kv::Op>) -> Vec<Result<kv::Reply, RequestError>> {
        let mut out = Vec::with_capacity(ops.len());
        if !self.leads() || self.driver.disk_full().is_some() {
            for op in ops {
                out.push(self.read(op).await);
            }
            return out;
        }
        let deadline = tokio::time::Instant::now() + self.timeouts.request;
        let started: Vec<_> = ops
            .iter()
            .map(|op| self.driver.start_read(op.clone()))
            .collect();
        let mut alone = false;
        for (op, read) in ops.into_iter().zip(started) {
            if !alone {
                if let Ok(rx) = read {
                    match tokio::time::timeout_at(deadline, rx).await {
                        Ok(Ok(Answer::Value(v))) => {
                            out.push(Ok(v));
                            continue;
                        }
                        // A read cannot take effect: out at the deadline, it
                        // is a timeout like a lone read's.
                        Err(_) => {
                            out.push(Err(RequestError::Timeout));
                            continue;
                        }
                        Ok(_) => {}
                    }
                }
                // From here on, one by one: none is answered from a state
                // older than an earlier one's.
                alone = true;
            }
            out.push(self.read(op).await);
        }
        out
    }
}
