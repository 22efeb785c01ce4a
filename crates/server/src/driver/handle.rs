//! [`DriverHandle`]: what the rest of the node holds of the driver task. It
//! hands inputs to the driver over its bounded channel (or, for a lone read
//! while a ReadIndex round is out, beside it: [`QuietReads`]) and reads what
//! the driver publishes after each drive (status, leader, disk full).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::{Message, NodeId};
use replica::Status;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::{Answer, Input, QuietReads};
use crate::admin::{AdminOp, AdminReply};
use crate::metrics::GroupMetrics;

/// Cloneable access to the driver task.
#[derive(Clone)]
pub struct DriverHandle {
    /// Shared so that the driver can lend the sync thread a sender per job without
    /// holding one itself (it ends once every handle is dropped).
    pub(super) tx: Arc<mpsc::Sender<Input>>,
    pub(super) status: Arc<Mutex<Status>>,
    /// The leader this node knows of (0: none), published with `status`
    /// but read without a lock: every client request asks for it.
    pub(super) leader: Arc<AtomicU64>,
    /// Why the log cannot be written (disk full), while it cannot.
    pub(super) disk_full: Arc<Mutex<Option<String>>>,
    pub(super) metrics: Arc<GroupMetrics>,
    pub(super) quiet: Arc<QuietReads>,
}

impl DriverHandle {
    /// Feeds a peer's message (dropped if the queue is full: Raft retransmits).
    pub fn step(&self, msg: Message) {
        let _ = self.tx.try_send(Input::Step(msg));
    }

    /// Proposes `cmd`; the time to its answer goes to the proposal
    /// latency histogram (measured here, at the edge: the replica has no clock).
    pub async fn propose(&self, cmd: kv::Command) -> Answer {
        let started = Instant::now();
        let (reply, rx) = oneshot::channel();
        let answer = self.submit(Input::Propose { cmd, reply }, rx).await;
        self.metrics.proposal_latency.observe(started.elapsed());
        answer
    }

    /// Hands `cmds` to the driver as one unit ([`Input::ProposeUnit`]); each
    /// receiver yields its command's answer (a dropped sender: the driver
    /// stopped, outcome unknown). `Err` when the queue refused the whole unit
    /// (nothing was started).
    pub fn propose_unit(
        &self,
        cmds: Vec<kv::Command>,
    ) -> Result<Vec<oneshot::Receiver<Answer>>, Answer> {
        let (cmds, rxs): (Vec<_>, Vec<_>) = cmds
            .into_iter()
            .map(|cmd| {
                let (reply, rx) = oneshot::channel();
                ((cmd, reply), rx)
            })
            .unzip();
        self.send(Input::ProposeUnit { cmds }).map(|()| rxs)
    }

    /// Records one proposal's latency (a unit's, measured by its waiter).
    pub fn observe_proposal(&self, took: Duration) {
        self.metrics.proposal_latency.observe(took);
    }

    /// Starts a ReadIndex read of a read-only op without waiting for it: the
    /// receiver yields its answer. `Err` when the queue refused it.
    ///
    /// Always through the channel, never [`QuietReads`]: a pipelined unit's
    /// reads must reach the replica in pipeline order (`crate::pipeline`), and
    /// the channel keeps their order. Split between the two, read k could be
    /// sent on the channel just after the driver emptied it and read k+1 left
    /// beside it, which the driver takes first: k+1 would join an earlier
    /// ReadIndex round than k and could answer from an older state.
    pub fn start_read(&self, op: kv::Op) -> Result<oneshot::Receiver<Answer>, Answer> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Read { op, reply }).map(|()| rx)
    }

    /// A ReadIndex read of a read-only op (left without a wake-up while a
    /// round is in flight: [`QuietReads`]).
    pub async fn read(&self, op: kv::Op) -> Answer {
        let (reply, rx) = oneshot::channel();
        match self.quiet.offer((op, reply)) {
            Ok(()) => rx.await.unwrap_or(Answer::Unknown),
            Err((op, reply)) => self.submit(Input::Read { op, reply }, rx).await,
        }
    }

    /// The state machine's current snapshot and applied index; `None` if the
    /// driver is busy, stopping, or waiting for disk space.
    pub async fn snapshot(&self) -> Option<(u64, Bytes)> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Input::Snapshot { reply }).ok()?;
        rx.await.ok()
    }

    /// Runs an admin request on the driver (`crate::admin`).
    pub async fn admin(&self, op: AdminOp) -> AdminReply {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Input::Admin { op, reply }) {
            Ok(()) => rx.await.unwrap_or_else(|_| {
                Err("TIMEOUT the node stopped before answering; the request may or may not have taken effect".into())
            }),
            Err(_) => Err("ERR the node is busy or stopping; try again".into()),
        }
    }

    async fn submit(&self, input: Input, rx: oneshot::Receiver<Answer>) -> Answer {
        match self.send(input) {
            Ok(()) => rx.await.unwrap_or(Answer::Unknown),
            Err(refusal) => refusal,
        }
    }

    /// Queues `input` for the driver; the refusal when it cannot (nothing started).
    fn send(&self, input: Input) -> Result<(), Answer> {
        self.tx.try_send(input).map_err(|e| match e {
            TrySendError::Full(_) => Answer::Busy,
            TrySendError::Closed(_) => Answer::NotSent,
        })
    }

    /// The leader the replica knew of after the latest drive (lock-free).
    pub fn leader(&self) -> Option<NodeId> {
        Some(self.leader.load(Ordering::Acquire)).filter(|&l| l != 0)
    }

    /// The replica's status after the latest drive.
    pub fn status(&self) -> Status {
        *self.status.lock().expect("status lock")
    }

    /// While the disk is full: why (the storage error). `None` when writing.
    pub fn disk_full(&self) -> Option<String> {
        self.disk_full.lock().expect("disk_full lock").clone()
    }

    /// Asks the driver to stop after the inputs queued before this one (waits
    /// for room in the queue, not for the driver to stop).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Input::Shutdown).await;
    }
}
