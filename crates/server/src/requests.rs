//! The client path on one node: runs a write or a read to completion
//! against whichever node leads, and decides `-CLUSTERDOWN` vs `-TIMEOUT`.
//!
//! Each attempt goes to the local replica when this node leads, else is
//! forwarded to the leader it knows over the peer transport. Attempts repeat
//! (same session and seq for a write, so the retry is exactly-once) until one
//! is answered or the request deadline passes.
//!
//! The rule of DESIGN.md, kept by `handed`: an attempt that may have been
//! proposed (answered `Unknown`, or no answer in time from a leader it was
//! written to) sets it; refusals that started nothing (`NotLeader`, `Busy`,
//! `NotSent`, `ReadAborted`) do not. At the deadline: `handed` → `Timeout`
//! (may or may not have taken effect), else `ClusterDown` (certainly not).
//!
//! Admin requests (`Requests::admin`) take the same forwarding path, once:
//! a membership change is not idempotent, so it is never retried here.

use std::sync::Arc;
use std::time::Duration;

use raft::NodeId;
use tokio::time::Instant;

use crate::admin::{AdminOp, AdminOutcome};
use crate::driver::{Answer, DriverHandle};
use crate::forward::{Expect, ForwardTable};
use crate::peer::{ForwardRequest, Outgoing, Peers};
use crate::sessions::{SessionPool, Take};

/// Pause between attempts that were refused (no leader yet, busy).
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Why a request did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No leader could be reached in time and nothing was proposed.
    #[error("CLUSTERDOWN no leader reachable in time; the command did not take effect")]
    ClusterDown,
    /// It may have been proposed; its outcome is unknown.
    #[error("TIMEOUT no answer in time; the command may or may not have taken effect")]
    Timeout,
    /// The log cannot take writes (disk full, or below `--min-free-bytes`):
    /// the write was refused and certainly did not take effect. Redis's reply
    /// for a node that cannot persist.
    #[error("MISCONF the Raft log cannot take writes ({0}); writes are refused until space is freed on its data directory's file system, then it resumes by itself; the command did not take effect")]
    NoSpace(String),
    /// The state machine refused it (e.g. a value too large).
    #[error("ERR {0}")]
    Kv(kv::KvError),
}

/// Time limits of the client path.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Whole-request deadline.
    pub request: Duration,
    /// How long one forwarded attempt waits for the leader's answer.
    pub forward_attempt: Duration,
}

enum Work {
    Register,
    Write(kv::Request),
    Read(kv::Op),
}

/// The node's client-facing core, shared by all connections.
pub struct Requests {
    pub id: NodeId,
    pub driver: DriverHandle,
    pub peers: Peers,
    pub forwards: Arc<ForwardTable>,
    pub sessions: SessionPool,
    pub timeouts: Timeouts,
    /// The free-space floor (`crate::space`): writes entering here are
    /// refused while this node's file system is below it.
    pub reserve: crate::space::Reserve,
    registering: tokio::sync::Mutex<()>,
}

impl Requests {
    pub fn new(
        id: NodeId,
        driver: DriverHandle,
        peers: Peers,
        forwards: Arc<ForwardTable>,
        window: u64,
        timeouts: Timeouts,
        reserve: crate::space::Reserve,
    ) -> Self {
        Requests {
            reserve,
            id,
            driver,
            peers,
            forwards,
            sessions: SessionPool::new(window),
            timeouts,
            registering: Default::default(),
        }
    }

    /// A linearizable read of a read-only op (`kv::Op::is_read_only`):
    /// ReadIndex on the leader, no log entry (why that is linearizable,
    /// expiry included: `kv::state_machine`'s module docs).
    /// With a full disk it still forwards to another leader it knows of.
    pub async fn read(&self, op: kv::Op) -> Result<kv::Reply, RequestError> {
        let deadline = Instant::now() + self.timeouts.request;
        if let Some(why) = self.driver.disk_full() {
            if self.driver.leader().is_none_or(|l| l == self.id) {
                return Err(RequestError::NoSpace(why));
            }
        }
        match self
            .run(&Work::Read(op), deadline, None)
            .await
            .map_err(|e| self.explain(e))?
        {
            (Answer::Value(v), _) => Ok(v),
            (other, _) => {
                // `ForwardTable` and the driver answer reads with values only.
                tracing::error!("a read was answered {other:?}; failing it");
                Err(RequestError::Timeout)
            }
        }
    }

    /// A write through the log, exactly once per call.
    pub async fn write(&self, op: kv::Op) -> Result<kv::Reply, RequestError> {
        let deadline = Instant::now() + self.timeouts.request;
        if let Some(why) = self.write_refusal() {
            return Err(RequestError::NoSpace(why));
        }
        let seq = self.take_seq(deadline).await.map_err(|e| self.explain(e))?;
        self.settle_write(seq, op, None, deadline).await
    }

    /// Why writes are refused here now (disk full, or below the free-space floor).
    pub(crate) fn write_refusal(&self) -> Option<String> {
        self.driver.disk_full().or_else(|| self.reserve.low())
    }

    /// Runs the write `op` under `(client_id, seq)` (taken from the pool)
    /// until it is answered, releasing the seq. `first`: the answer of an
    /// attempt already made (a pipelined unit's: `crate::pipeline`); a
    /// refused or unknown one is retried after a pause, same seq.
    pub(crate) async fn settle_write(
        &self,
        (mut client_id, mut seq): (u64, u64),
        op: kv::Op,
        mut first: Option<Answer>,
        deadline: Instant,
    ) -> Result<kv::Reply, RequestError> {
        loop {
            let req = kv::Request {
                client_id,
                seq,
                op: op.clone(),
            };
            let res = self.run(&Work::Write(req), deadline, first.take()).await;
            self.sessions.release(client_id, seq);
            match res.map_err(|e| self.explain(e))? {
                (Answer::Applied(Ok(reply)), _) => return Ok(reply),
                (Answer::Applied(Err(kv::KvError::SessionExpired { .. })), false) => {
                    self.sessions.forget(client_id)
                }
                (Answer::Applied(Err(kv::KvError::ValueTooLarge { len, max })), _) => {
                    return Err(RequestError::Kv(kv::KvError::ValueTooLarge { len, max }))
                }
                (Answer::Applied(Err(_)), _) => return Err(RequestError::Timeout),
                (other, _) => {
                    // Writes are answered `Applied` only; may have taken effect.
                    tracing::error!("a write was answered {other:?}; failing it");
                    return Err(RequestError::Timeout);
                }
            }
            (client_id, seq) = self.take_seq(deadline).await.map_err(|e| self.explain(e))?;
        }
    }

    /// A `ClusterDown` (certainly no effect) while this node's disk is full
    /// is that: say so. A `Timeout` (may have taken effect) stays one.
    pub(crate) fn explain(&self, e: RequestError) -> RequestError {
        match (e, self.driver.disk_full()) {
            (RequestError::ClusterDown, Some(why)) => RequestError::NoSpace(why),
            (e, _) => e,
        }
    }

    /// A (session, seq) for a new write, registering a session if needed.
    async fn take_seq(&self, deadline: Instant) -> Result<(u64, u64), RequestError> {
        loop {
            match self.sessions.try_take() {
                Take::Seq(c, s) => return Ok((c, s)),
                Take::Full => pause(deadline)
                    .await
                    .map_err(|_| RequestError::ClusterDown)?,
                Take::Register => {
                    let _one_at_a_time = self.registering.lock().await;
                    if let Take::Seq(c, s) = self.sessions.try_take() {
                        return Ok((c, s));
                    }
                    // Registering has no effect a client can see: a failure is CLUSTERDOWN.
                    match self
                        .run(&Work::Register, deadline, None)
                        .await
                        .map_err(|_| RequestError::ClusterDown)?
                    {
                        (Answer::Applied(Ok(kv::Reply::Registered { client_id })), _) => {
                            self.sessions.add(client_id)
                        }
                        _ => return Err(RequestError::ClusterDown),
                    }
                }
            }
        }
    }

    /// Attempts `work` until answered (`first`: the answer of an attempt
    /// already made); returns the answer and whether any earlier attempt may
    /// have been proposed.
    async fn run(
        &self,
        work: &Work,
        deadline: Instant,
        mut first: Option<Answer>,
    ) -> Result<(Answer, bool), RequestError> {
        let mut handed = false;
        loop {
            let answer = match first.take() {
                Some(answer) => answer,
                None => self.attempt(work, deadline).await,
            };
            match answer {
                a @ (Answer::Applied(_) | Answer::Value(_)) => return Ok((a, handed)),
                // `Admin` never answers a client request (the forward table checks
                // the kind); the safe side if it did.
                Answer::Unknown | Answer::Admin(_) => handed = true,
                // A leader below its free-space floor: certainly no effect, so
                // say so at once — unless an earlier attempt may have taken effect.
                Answer::NoSpace(why) if !handed => return Err(RequestError::NoSpace(why)),
                Answer::NotLeader { .. }
                | Answer::Busy
                | Answer::NotSent
                | Answer::ReadAborted
                | Answer::NoSpace(_) => {}
            }
            if pause(deadline).await.is_err() {
                return Err(if handed {
                    RequestError::Timeout
                } else {
                    RequestError::ClusterDown
                });
            }
        }
    }

    async fn attempt(&self, work: &Work, deadline: Instant) -> Answer {
        match self.driver.leader() {
            Some(l) if l == self.id => self.local(work, deadline).await,
            Some(l) => self.forward(l, work, deadline).await,
            None => Answer::NotLeader { hint: None },
        }
    }

    async fn local(&self, work: &Work, deadline: Instant) -> Answer {
        let fut = async {
            match work {
                Work::Register => self.driver.propose(kv::Command::RegisterSession).await,
                Work::Write(r) => self.driver.propose(kv::Command::Request(r.clone())).await,
                Work::Read(op) => self.driver.read(op.clone()).await,
            }
        };
        tokio::time::timeout_at(deadline, fut)
            .await
            .unwrap_or(Answer::Unknown)
    }

    async fn forward(&self, leader: NodeId, work: &Work, deadline: Instant) -> Answer {
        let Some(peer) = self.peers.get(leader) else {
            return Answer::NotSent;
        };
        if !peer.is_connected() {
            return Answer::NotSent;
        }
        let req = match work {
            Work::Register => ForwardRequest::Register,
            Work::Write(r) => ForwardRequest::Write(kv::encode_request(r)),
            Work::Read(op) => ForwardRequest::Read(op.clone()),
        };
        let expect = match work {
            Work::Read(_) => Expect::Value,
            Work::Register | Work::Write(_) => Expect::Applied,
        };
        let (id, rx) = self.forwards.register(leader, expect);
        if !peer.send(Outgoing::Forward { id, req }) {
            self.forwards.forget(id);
            return Answer::NotSent;
        }
        let until = deadline.min(Instant::now() + self.timeouts.forward_attempt);
        match tokio::time::timeout_at(until, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                self.forwards.forget(id);
                Answer::Unknown
            }
        }
    }
}

impl Requests {
    /// An admin request (`crate::admin`) through this node, run on the leader:
    /// here if this node leads (or knows no leader: the local refusal says
    /// so), else forwarded once to the leader it knows, which runs it locally
    /// and never forwards it again. `MEMBER LIST` falls back to this node's
    /// own view when the leader does not answer.
    pub async fn admin(&self, op: AdminOp) -> AdminOutcome {
        let to = self.driver.leader().filter(|&l| l != self.id);
        let Some(to) = to else {
            return crate::admin::run_local(&self.driver, op).await;
        };
        if op == AdminOp::List {
            return match self.forward_admin(to, op.clone()).await {
                AdminOutcome::Error(_) => crate::admin::run_local(&self.driver, op).await,
                listed => listed,
            };
        }
        self.forward_admin(to, op).await
    }

    async fn forward_admin(&self, to: NodeId, op: AdminOp) -> AdminOutcome {
        let Some(peer) = self.peers.get(to).filter(|p| p.is_connected()) else {
            return not_reached(to);
        };
        let (id, rx) = self.forwards.register(to, Expect::Admin);
        let req = ForwardRequest::Admin(op);
        if !peer.send(Outgoing::Forward { id, req }) {
            self.forwards.forget(id);
            return not_reached(to);
        }
        match tokio::time::timeout(self.timeouts.request, rx).await {
            Ok(Ok(Answer::Admin(outcome))) => outcome,
            Ok(Ok(Answer::NotLeader { hint })) => AdminOutcome::Error(match hint {
                Some(h) => format!("NOTLEADER leader is node {h}"),
                None => "NOTLEADER no leader known".into(),
            }),
            Ok(Ok(Answer::NotSent)) => not_reached(to),
            other => {
                if other.is_err() {
                    self.forwards.forget(id);
                }
                AdminOutcome::Error(format!(
                    "TIMEOUT no answer from the leader (node {to}) within {} ms; the request may or may not have taken effect (check RAFT MEMBER LIST)",
                    self.timeouts.request.as_millis()
                ))
            }
        }
    }
}

/// The leader is known but this node cannot reach it: nothing was started.
fn not_reached(leader: NodeId) -> AdminOutcome {
    AdminOutcome::Error(format!(
        "NOTLEADER leader is node {leader}, which this node cannot reach now; try again or ask another node"
    ))
}

/// Sleeps `RETRY_PAUSE`, or fails if that would pass the deadline.
async fn pause(deadline: Instant) -> Result<(), ()> {
    if Instant::now() + RETRY_PAUSE >= deadline {
        return Err(());
    }
    tokio::time::sleep(RETRY_PAUSE).await;
    Ok(())
}
