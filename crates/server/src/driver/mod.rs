//! The node driver: one task on the node's tokio runtime that owns the
//! `replica::Replica` and is the only code that touches it. It hosts the
//! replica's own Ready handling (`Replica::drive`), never a copy of it.
//!
//! Loop (`task::next_inputs`): wait for input until the next tick is due
//! (if one was already waiting, or several writes await commit, yield once
//! first, so the tasks woken with it send theirs too); take everything else
//! that has arrived (peer messages, proposals, reads: up to
//! [`MAX_INPUTS_PER_DRIVE`]); tick if due; `drive` once. On a follower, one
//! `drive` persists all of it with one fsync (group commit) before its
//! replies leave; a leader's `drive` writes its log without the fsync
//! (below), sends its appends, and answers what has committed
//! (`Replica::drive_with`).
//!
//! A task, not a thread: a connection's request or a peer's message then
//! reaches the driver as a task wake-up on the same runtime (often the same
//! worker), and the driver's answers wake the waiting tasks the same way, with
//! no futex wake of another thread in between. The price: what blocks inside
//! a drive blocks the worker it runs on — a follower's fsync (about 0.5-2 ms
//! here), the rare inline sync that rolls a segment, a snapshot. The node's
//! runtime is multi-thread with at least two workers (`raftkv`'s `runtime`),
//! so another worker runs the connections and links meanwhile. The
//! disk-full wait's blocking steps (draining the removal thread, reopening
//! the store) go through `task::blocking` (`tokio::task::block_in_place`).
//! The sharded host's driver (`crate::shard::driver`) is a task the same way
//! and shares `task`'s input loop and blocking helper.
//!
//! The leader's own fsync runs on a second thread, the sync thread
//! (`replica::Config::leader_sync_by_host`, dissertation §10.2.1): after a
//! drive, the driver hands it the WAL's sync job (`Replica::take_sync`,
//! `DiskStorage::sync_job`; at most one out), and goes on stepping the
//! followers' acknowledgements and new proposals meanwhile, so two followers'
//! acks commit an entry without waiting for the leader's disk. The job's end
//! comes back as [`Input::Synced`]; only then does the leader count itself
//! toward the commit quorum (`raft::RawNode::synced`). Followers and
//! candidates still sync inside `drive`, before any reply leaves. A failed
//! fsync on the sync thread stops the node like any other.
//!
//! WAL segments a durable snapshot covers are deleted on a third thread, the
//! removal thread (`removal_thread`): the store detaches them in the `sync`
//! that makes the snapshot's marker durable and the driver hands the deletion
//! over after every drive (`DiskStorage::take_segment_removal`; the store is
//! opened with `DiskOptions::defer_segment_removal`). A failed removal stops
//! the node too.
//!
//! A read that arrives while a ReadIndex round is in flight is left beside the
//! channel ([`QuietReads`]) without waking the driver: it could not start a
//! round before that one ends, and the end wakes the driver anyway.
//!
//! Invariants: every accepted request's `oneshot` is answered exactly once,
//! or dropped when the driver stops or the runtime drops its task (the
//! waiter then treats it as unknown);
//! a `ReplicaError` stops the driver and is reported through `fatal` —
//! except a full disk.
//!
//! Disk full (`StorageError::NoSpace`: a log write found no space; nothing
//! unsynced was acknowledged): the driver drops the replica (pending
//! requests end unknown), publishes the condition ([`DriverHandle::disk_full`]:
//! writes get `-MISCONF`, INFO shows it), refuses forwarded requests with
//! `NotLeader`, and every [`replica::DISK_FULL_RETRY_MS`] rebuilds the replica
//! from the data directory with the host's `reopen` — exactly what a restart would do
//! (recovery cuts the half-written record), in-process. Until that works the
//! node takes no part in Raft: to its peers it is down. Any other storage
//! failure, above all a failed fsync (its data may be lost from the page cache
//! while the file reads fine: fsyncgate), still stops the node.

mod handle;
mod quiet_reads;
pub(crate) mod removal_thread;
mod sync_thread;
pub(crate) mod task;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use raft::{Message, NodeId};
use replica::{Rejected, ReplicaError, SpaceWait, Status};

/// The replica this driver hosts: the kv state machine over the disk WAL.
pub type KvReplica = replica::Replica<DiskStorage, kv::StateMachine>;
type Outcome = replica::Outcome<kv::StateMachine>;
use storage::DiskStorage;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::admin::{AdminOp, AdminReply, AdminWaits};
use crate::metrics::GroupMetrics;
use crate::peer::Peers;
use crate::space::Reserve;
pub use handle::DriverHandle;
use quiet_reads::QuietReads;
use removal_thread::RemovalThread;
use sync_thread::SyncThread;
use task::{blocking, next_inputs, Ticker};

/// Inputs queued for the driver before senders see `Busy`.
pub const QUEUE_INPUTS: usize = 65_536;
/// How often the driver takes the snapshot file's pages out of the resident set
/// (`storage::DiskStorage::release_snapshot_pages`). A leader sending its snapshot to a
/// follower reads the file through its map at tens of MiB a second, so this interval
/// bounds how much of it is resident at once (at 1M keys x 100 B, a 120 MiB snapshot:
/// the leader's peak while sending rose 90-115 MiB at 1 s, 42 MiB at 100 ms). One
/// `madvise` over the map: microseconds when few of its pages are resident.
pub(crate) const SNAPSHOT_RELEASE_INTERVAL: Duration = Duration::from_millis(100);

/// Inputs handled between two drives, so a flood cannot starve ticks.
pub const MAX_INPUTS_PER_DRIVE: usize = 8192;

/// Rebuilds the replica from the data directory (open the store, boot a fresh
/// state machine from it): how a driver resumes after a full disk. The old
/// replica, and with it the directory's lock, is dropped before it is called.
pub type Reopen = Box<dyn FnMut() -> Result<KvReplica, String> + Send>;

/// How a request handed to a replica ended, as the client path sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Applied(kv::Response),
    /// A ReadIndex read's reply.
    Value(kv::Reply),
    /// Refused: nothing was started.
    NotLeader {
        hint: Option<NodeId>,
    },
    /// Refused (too much uncommitted, or the queue is full): nothing started.
    Busy,
    /// Proposed but its fate is unknown (leadership lost): retry, same seq.
    Unknown,
    /// The read was not confirmed; no effect.
    ReadAborted,
    /// Never reached a leader (peer not connected, queue full): no effect.
    NotSent,
    /// Refused by a leader whose file system is below `--min-free-bytes`
    /// (`crate::space`): nothing started.
    NoSpace(String),
    /// What a forwarded admin request came to on the leader.
    Admin(crate::admin::AdminOutcome),
}

pub enum Input {
    Step(Message),
    Propose {
        cmd: kv::Command,
        reply: oneshot::Sender<Answer>,
    },
    /// A connection's pipelined writes, in pipeline order
    /// (`crate::pipeline`): proposed in one step, so they take consecutive
    /// log entries of one term; from the first one the replica refuses, that
    /// one and every later one get its refusal and none of them is proposed.
    /// So the unit's accepted commands are always a prefix of it.
    ProposeUnit {
        cmds: Vec<(kv::Command, oneshot::Sender<Answer>)>,
    },
    /// A ReadIndex read of a read-only op (`kv::Op::is_read_only`).
    Read {
        op: kv::Op,
        reply: oneshot::Sender<Answer>,
    },
    /// The state machine's snapshot now, with its applied index (backups:
    /// `crate::admin::backup`).
    Snapshot {
        reply: oneshot::Sender<(u64, Bytes)>,
    },
    /// Membership and leadership administration (`crate::admin`).
    Admin {
        op: AdminOp,
        reply: oneshot::Sender<AdminReply>,
    },
    /// The sync thread finished the job for `req` (started for the replica of
    /// this `epoch`: a rebuilt replica ignores its predecessor's).
    Synced {
        req: replica::SyncRequest,
        epoch: u64,
        result: Result<(), raft::StorageError>,
    },
    Shutdown,
}

/// Driver settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub tick: Duration,
    /// Where [`DriverHandle::propose`] records its latency (`/metrics`).
    pub metrics: Arc<GroupMetrics>,
}

/// Starts the driver as a task on the current tokio runtime. `fatal` fires
/// if the replica fails; the returned join handle ends after `shutdown`. With
/// `reopen`, a full disk does not stop the node (see the module docs);
/// without, it does.
pub fn start(
    replica: KvReplica,
    cfg: DriverConfig,
    peers: Peers,
    fatal: oneshot::Sender<String>,
    reopen: Option<Reopen>,
    reserve: Reserve,
) -> (DriverHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_INPUTS);
    let status = Arc::new(Mutex::new(replica.status()));
    let leader = Arc::new(AtomicU64::new(replica.leader().unwrap_or(0)));
    let disk_full = Arc::new(Mutex::new(None));
    let metrics = cfg.metrics.clone();
    let tx = Arc::new(tx);
    let syncs = SyncThread::start(Arc::downgrade(&tx));
    let quiet = Arc::new(QuietReads::default());
    let mut driver = Driver {
        quiet: quiet.clone(),
        replica: Some(replica),
        reopen,
        reserve,
        disk_full: disk_full.clone(),
        peers,
        pending: HashMap::new(),
        next_token: 1,
        status: status.clone(),
        leader: leader.clone(),
        last_role: None,
        last_snapshot_index: 0,
        snapshots_rejected: 0,
        admin: AdminWaits::default(),
        membership_index: None,
        syncs,
        removals: RemovalThread::start(),
        epoch: 0,
        sync_failed: None,
    };
    let join = tokio::spawn(async move {
        let result = driver.run(rx, cfg).await;
        // Drains the removal thread and ends the reads left beside the channel
        // (`Driver`'s `Drop`) before the failure is reported.
        blocking(move || drop(driver));
        if let Err(e) = result {
            tracing::error!("node stopped: {e}");
            let _ = fatal.send(e.to_string());
        }
    });
    let handle = DriverHandle {
        tx,
        status,
        leader,
        disk_full,
        metrics,
        quiet,
    };
    (handle, join)
}

struct Driver {
    /// Invariant: `Some` except while waiting for disk space.
    replica: Option<KvReplica>,
    reopen: Option<Reopen>,
    /// Client writes are refused while its floor is not met.
    reserve: Reserve,
    disk_full: Arc<Mutex<Option<String>>>,
    peers: Peers,
    /// Invariant: exactly the tokens accepted by the replica and not yet completed.
    pending: HashMap<u64, oneshot::Sender<Answer>>,
    next_token: u64,
    status: Arc<Mutex<Status>>,
    leader: Arc<AtomicU64>,
    last_role: Option<(raft::Role, u64, Option<NodeId>)>,
    last_snapshot_index: u64,
    /// Leader snapshots dropped as undecodable, as last logged.
    snapshots_rejected: u64,
    admin: AdminWaits,
    /// Index of the membership last pushed to `peers` (new members' addresses).
    membership_index: Option<raft::Index>,
    syncs: SyncThread,
    removals: RemovalThread,
    /// Bumped whenever the replica is dropped (disk full): sync results of an
    /// earlier epoch are ignored.
    epoch: u64,
    /// A failed fsync on the sync thread: the node stops with it.
    sync_failed: Option<raft::StorageError>,
    quiet: Arc<QuietReads>,
}

impl Driver {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Input>,
        cfg: DriverConfig,
    ) -> Result<(), ReplicaError> {
        let mut ticker = Ticker::new(cfg.tick);
        let mut next_release = Instant::now();
        // Reads taken after the last drive (no round was in flight): drive for them
        // before waiting.
        let mut unstarted = false;
        loop {
            let writes = self
                .replica
                .as_ref()
                .is_some_and(|r| r.proposals_in_flight() > 1);
            let Some(inputs) = next_inputs(&mut rx, &mut ticker, !unstarted, writes).await else {
                return Ok(());
            };
            for input in inputs {
                if !self.handle(input) {
                    if let Some(e) = self.sync_failed.take() {
                        return Err(ReplicaError::Storage(e));
                    }
                    return self.drive();
                }
            }
            for (op, reply) in self.quiet.take() {
                self.handle(Input::Read { op, reply });
            }
            let now = Instant::now();
            if ticker.due(now) {
                self.replica().tick(unix_ms());
            }
            if now >= next_release {
                // Restoring from the snapshot file or streaming it to a follower maps its
                // pages in; without this they stay in RSS, a snapshot's worth.
                self.replica().storage().release_snapshot_pages();
                next_release = now + SNAPSHOT_RELEASE_INTERVAL;
            }
            // A full disk may be found by the drive or, on a leader, by the write its
            // sync job makes of what the drives buffered (`DiskStorage::sync_job`).
            let driven = self.drive().and_then(|()| self.start_sync());
            match driven.and_then(|()| self.start_removal()) {
                Err(e) if self.reopen.is_some() => match SpaceWait::from_error(&e, unix_ms()) {
                    Some(wait) => {
                        if !self.wait_for_space(&mut rx, wait).await {
                            return Ok(());
                        }
                    }
                    None => return Err(e),
                },
                done => done?,
            }
            let round_out = self
                .replica
                .as_ref()
                .is_some_and(|r| r.read_round_in_flight());
            let late = self.quiet.publish(round_out);
            unstarted = !late.is_empty();
            for (op, reply) in late {
                self.handle(Input::Read { op, reply });
            }
        }
    }

    /// Hands the leader's pending log sync to the sync thread, if one is due
    /// (`Replica::take_sync`). When the active segment is full, or a snapshot
    /// covers segments still on disk, the sync runs here instead (it rolls the
    /// segment, or deletes the covered ones), and is reported at once.
    fn start_sync(&mut self) -> Result<(), ReplicaError> {
        let Some(replica) = self.replica.as_mut() else {
            return Ok(());
        };
        let Some(req) = replica.take_sync() else {
            return Ok(());
        };
        match replica.storage_mut().sync_job()? {
            Some(job) => {
                if !self.syncs.send(req, self.epoch, job) {
                    return Err(ReplicaError::Storage(raft::StorageError::Io(
                        "the WAL sync thread is gone".into(),
                    )));
                }
            }
            None => {
                raft::Storage::sync(replica.storage_mut())?;
                replica.synced(req);
                self.drive()?;
            }
        }
        Ok(())
    }

    /// Hands the deletion of WAL segments a durable snapshot now covers to the
    /// removal thread, and stops the node if an earlier one failed.
    fn start_removal(&mut self) -> Result<(), ReplicaError> {
        if let Some(e) = self.removals.failed(self.epoch) {
            return Err(ReplicaError::Storage(e));
        }
        let Some(replica) = self.replica.as_mut() else {
            return Ok(());
        };
        let Some(removal) = replica.storage_mut().take_segment_removal() else {
            return Ok(());
        };
        if !self.removals.send(self.epoch, removal) {
            return Err(ReplicaError::Storage(raft::StorageError::Io(
                "the segment removal thread is gone".into(),
            )));
        }
        Ok(())
    }

    fn replica(&mut self) -> &mut KvReplica {
        self.replica.as_mut().expect("a replica while driving")
    }

    /// Disk full: drops the replica and rebuilds it every
    /// [`replica::DISK_FULL_RETRY_MS`] until that works (true) or the driver
    /// is shut down (false). The policy is `replica::space`'s, shared with
    /// the sharded host.
    async fn wait_for_space(
        &mut self,
        rx: &mut mpsc::Receiver<Input>,
        mut wait: SpaceWait,
    ) -> bool {
        tracing::error!("{}", wait.describe());
        for (_, reply) in self.quiet.publish(false) {
            let _ = reply.send(Answer::NotLeader { hint: None });
        }
        self.replica = None;
        self.epoch += 1;
        // Reopening lists the segments: none may vanish under it.
        blocking(|| self.removals.drain());
        self.pending.clear();
        self.admin = AdminWaits::default();
        *self.disk_full.lock().expect("disk_full lock") = Some(wait.why().to_string());
        // Reads may still go to another leader; never to ourselves. The status
        // stops claiming a role this node no longer plays (it takes no part in
        // Raft): a follower of nobody until it resumes.
        let own = {
            let mut st = self.status.lock().expect("status lock");
            if st.raft.leader == Some(st.raft.id) {
                st.raft.leader = None;
            }
            st.raft.role = raft::Role::Follower;
            st.raft.id
        };
        let _ = self
            .leader
            .compare_exchange(own, 0, Ordering::AcqRel, Ordering::Acquire);
        loop {
            let wait_ms = wait.next_try_ms().saturating_sub(unix_ms());
            let input = tokio::time::timeout(Duration::from_millis(wait_ms), rx.recv()).await;
            match input {
                Ok(Some(Input::Shutdown) | None) => return false,
                Ok(Some(Input::Step(_))) => {}
                Ok(Some(Input::Propose { reply, .. } | Input::Read { reply, .. })) => {
                    let _ = reply.send(Answer::NotLeader { hint: None });
                }
                Ok(Some(Input::ProposeUnit { cmds })) => {
                    for (_, reply) in cmds {
                        let _ = reply.send(Answer::NotLeader { hint: None });
                    }
                }
                Ok(Some(Input::Snapshot { .. } | Input::Synced { .. })) => {}
                Ok(Some(Input::Admin { reply, .. })) => {
                    let _ = reply.send(Err("MISCONF the disk is full; this node takes no part in Raft until it has space".into()));
                }
                Err(_elapsed) if wait.due(unix_ms()) => {
                    let reopen = self.reopen.as_mut().expect("reopen is set");
                    match blocking(reopen) {
                        Ok(replica) => break self.replica = Some(replica),
                        Err(e) => tracing::debug!("disk full: reopening failed: {e}"),
                    }
                    wait.reopen_failed(unix_ms());
                }
                Err(_elapsed) => {}
            }
        }
        tracing::warn!("the Raft log is writable again; node resumed from its data directory");
        *self.disk_full.lock().expect("disk_full lock") = None;
        self.last_role = None;
        self.publish();
        true
    }

    /// Takes one input; false on shutdown.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Step(msg) => self.replica().step(msg),
            Input::Propose { cmd, reply } => drop(self.propose(cmd, reply)),
            Input::ProposeUnit { cmds } => {
                let mut refused = None;
                for (cmd, reply) in cmds {
                    match &refused {
                        // Nothing after a refused command is proposed: a later
                        // one must never take effect before an earlier one.
                        Some(answer) => drop(reply.send(Answer::clone(answer))),
                        None => refused = self.propose(cmd, reply).err(),
                    }
                }
            }
            Input::Read { op, reply } => {
                let token = self.token();
                match self.replica().read(token, op) {
                    Ok(()) => drop(self.pending.insert(token, reply)),
                    Err(r) => drop(reply.send(rejected(r))),
                }
            }
            Input::Snapshot { reply } => {
                let sm = self.replica().state_machine();
                let _ = reply.send((
                    rsm::StateMachine::applied_index(sm),
                    rsm::StateMachine::snapshot(sm),
                ));
            }
            Input::Admin { op, reply } => {
                let replica = self.replica.as_mut().expect("a replica while driving");
                crate::admin::start(replica, op, reply.into(), &mut self.admin);
                // A member just added is dialled before its first Append leaves.
                self.sync_peers();
            }
            Input::Synced { req, epoch, result } => {
                if epoch != self.epoch {
                    return true; // for a replica since dropped
                }
                match result {
                    // §10.2.1: only now does the leader count itself as holding
                    // the log up to `req` (the next drive may commit).
                    Ok(()) => self.replica().synced(req),
                    Err(e) => {
                        self.sync_failed = Some(e);
                        return false;
                    }
                }
            }
            Input::Shutdown => return false,
        }
        true
    }

    /// Proposes `cmd`; on refusal, answers `reply` and returns the refusal.
    fn propose(&mut self, cmd: kv::Command, reply: oneshot::Sender<Answer>) -> Result<(), Answer> {
        let refusal = match (&cmd, self.reserve.low()) {
            (kv::Command::Request(_), Some(why)) => Answer::NoSpace(why),
            _ => {
                let token = self.token();
                match self.replica().propose(token, cmd, unix_ms()) {
                    Ok(()) => {
                        self.pending.insert(token, reply);
                        return Ok(());
                    }
                    Err(r) => rejected(r),
                }
            }
        };
        let _ = reply.send(refusal.clone());
        Err(refusal)
    }

    fn drive(&mut self) -> Result<(), ReplicaError> {
        let (peers, pending) = (&self.peers, &mut self.pending);
        // Answers go out as soon as the replica knows them: a commit is
        // answered before this node's fsync of the next batch finishes.
        let replica = self.replica.as_mut().expect("a replica while driving");
        replica.drive_with(&mut |m| peers.send_raft(m), &mut |c| {
            if let Some(reply) = pending.remove(&c.token) {
                let _ = reply.send(outcome(c.outcome));
            }
        })?;
        crate::admin::check(replica, &mut self.admin);
        self.sync_peers();
        self.publish();
        Ok(())
    }

    /// Dials members the membership knows and the transport does not (added by a
    /// membership change) at the address the change carried.
    fn sync_peers(&mut self) {
        let replica = self.replica.as_ref().expect("a replica while driving");
        let raft = replica.raw_node().raft();
        let index = raft.membership_index();
        if self.membership_index == Some(index) {
            return;
        }
        let addrs = raft.membership().addrs.clone();
        for (id, addr) in addrs {
            self.peers.ensure(id, &addr);
        }
        self.membership_index = Some(index);
    }

    fn publish(&mut self) {
        let st = self.replica().status();
        let role = (st.raft.role, st.raft.term, st.raft.leader);
        if self.last_role != Some(role) {
            tracing::info!(role = ?st.raft.role, term = st.raft.term, leader = ?st.raft.leader, "raft role");
            self.last_role = Some(role);
        }
        if st.raft.snapshot_index != self.last_snapshot_index {
            tracing::info!(
                index = st.raft.snapshot_index,
                log_bytes = st.log_bytes,
                "snapshot (taken or installed); log compacted"
            );
            self.last_snapshot_index = st.raft.snapshot_index;
        }
        let why = self.replica().last_snapshot_rejection().map(str::to_string);
        log_rejected_snapshots(None, &mut self.snapshots_rejected, &st, why.as_deref());
        self.leader
            .store(st.raft.leader.unwrap_or(0), Ordering::Release);
        *self.status.lock().expect("status lock") = st;
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }
}

impl Drop for Driver {
    /// At stop, or when the runtime drops the task: a store reopened on this
    /// directory (a restart in this process) must not see segments vanish under
    /// its recovery, and reads left beside the channel end as the channel's do
    /// (dropped: unknown), with no more left there.
    fn drop(&mut self) {
        self.removals.drain();
        drop(self.quiet.publish(false));
    }
}

fn rejected(r: Rejected) -> Answer {
    match r {
        Rejected::NotLeader { hint } => Answer::NotLeader { hint },
        Rejected::Busy { .. } => Answer::Busy,
    }
}

fn outcome(o: Outcome) -> Answer {
    match o {
        Outcome::Applied(resp) => Answer::Applied(resp),
        Outcome::Value(v) => Answer::Value(v),
        Outcome::Unknown { .. } => Answer::Unknown,
        Outcome::ReadAborted { .. } => Answer::ReadAborted,
    }
}

/// Wall-clock milliseconds: the log time stamped on entries (session expiry).
/// Logs (at ERROR) leader snapshots the replica dropped since `seen`
/// because they would not restore: the node keeps running, behind, until
/// the leader sends one that does.
pub(crate) fn log_rejected_snapshots(
    group: Option<u64>,
    seen: &mut u64,
    st: &replica::Status,
    why: Option<&str>,
) {
    if st.snapshots_rejected > *seen {
        tracing::error!(
            ?group,
            dropped = st.snapshots_rejected - *seen,
            total = st.snapshots_rejected,
            "dropped a snapshot from the leader that does not decode (nothing of it was persisted or applied; \
             this node stays behind until the leader sends a good one): {}",
            why.unwrap_or("?")
        );
        *seen = st.snapshots_rejected;
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
