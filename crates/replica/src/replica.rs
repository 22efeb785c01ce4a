//! `Replica`: one `raft::RawNode` joined to one `rsm::StateMachine`.
//!
//! Owns the driver loop in contract order (see `raft::raw_node`): send the
//! Ready's `messages` (before the fsync, so the leader's log write runs in
//! parallel with replication); on a leader, apply committed entries
//! (committed means durable on a majority already, so this need not wait for
//! our own fsync), then persist and send `persisted_messages`; on any other
//! node, persist and send `persisted_messages` (its acknowledgements) first,
//! then apply; install the snapshot, record read
//! states, advance, and check a snapshot received in full from the leader
//! (see below); then fail requests whose leadership is gone, serve reads, and
//! snapshot when the log is over its threshold (bytes) or enough entries were
//! applied since the last snapshot (count).
//!
//! # Installing a leader's snapshot: one state in memory, refused before Raft takes it
//!
//! A snapshot is as large as the state, so a follower must not hold its old state and
//! the decoded new one at once, and must not make the whole snapshot file resident
//! while it decodes it. It must also refuse a snapshot that will not decode *before*
//! Raft accepts it (accepting replaces the log: the follower would have neither). So
//! `check_received_snapshot` drops the old state first and decodes the snapshot into
//! the machine (`rsm::StateMachine::replace_with_snapshot`, which releases the file's
//! pages behind the decoder through `raft::Storage::release_read`); only if that
//! succeeds is the snapshot accepted, and the next Ready, which carries it, finds the
//! machine at its index already. If it fails, the machine is rebuilt from this node's
//! own storage (`rebuild`: its snapshot, then its log up to the applied index, all
//! still there because nothing was accepted) and the snapshot is refused. A refusal
//! costs a replay; an install costs one decode and no second state. (The alternative,
//! a validating pass that builds nothing before dropping the old state, needs a
//! second decoder per machine that must agree with the real one; this one reuses
//! `apply` and `replace_with_snapshot`, which every machine has.) The boot restore
//! goes through the same `replace` (a fresh machine holds nothing to drop).
//!
//! With [`Config::leader_sync_by_host`], a leader's Ready is written without a
//! sync (`raft::RawNode::write`) and the host runs the sync ([`Replica::take_sync`],
//! then [`Replica::synced`]) while it keeps feeding inputs: the leader's own fsync
//! no longer holds up the acknowledgements that commit (dissertation §10.2.1).
//! Everyone else's Ready is still persisted inside `drive`.
//!
//! Invariants:
//! - `sm.applied_index() == node.status().applied` between drives;
//! - at most one host sync is out (`sync_out`); it covers the entry it names;
//! - every accepted request (token) gets exactly one `Completion`;
//! - no time source but the `now_ms` the host passes in.

use raft::{EntryKind, Message, RawNode, Ready, Role, Storage};

use crate::config::Config;
use crate::counters::Counters;
use crate::error::{Rejected, ReplicaError};
use crate::log_size::{self, LogSize};
use crate::outcome::{Completion, Token};
use crate::proposals::Proposals;
use crate::reads::Reads;

/// A sync the host is to run ([`Replica::take_sync`]): it must start after
/// `take_sync` returns and make every write so far durable; it covers the log up
/// to the entry `(index, term)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub index: raft::Index,
    pub term: raft::Term,
}

/// A point-in-time view of a replica, for `raftkv status`, INFO and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub raft: raft::Status,
    pub pending_proposals: usize,
    pub pending_reads: usize,
    /// Persisted Raft state size (hard state and entries, by `Entry::size_bytes`), as
    /// the snapshot trigger counts it.
    pub log_bytes: u64,
    /// The state machine's `item_count` (kv: keys).
    pub keys: usize,
    /// The state machine's `expiring_count` (kv: keys with a TTL).
    pub expires: usize,
    /// The state machine's `expired_count` (keys removed by active expiry
    /// in this process; INFO's `expired_keys`).
    pub expired: u64,
    pub sessions: usize,
    /// Snapshots from a leader dropped because they would not restore
    /// (`rsm::StateMachine::replace_with_snapshot`); the host logs when it grows,
    /// with [`Replica::last_snapshot_rejection`].
    pub snapshots_rejected: u64,
    /// What the replica has done since it was created (`/metrics`).
    pub counters: Counters,
}

pub struct Replica<S: Storage, M: rsm::StateMachine> {
    node: RawNode<S>,
    sm: M,
    session_tick_interval_ms: Option<u64>,
    snapshot_every_entries: Option<u64>,
    proposals: Proposals,
    reads: Reads<M>,
    log_size: LogSize,
    /// Latest time the host told us (never decreases).
    now_ms: u64,
    /// When this node last proposed anything (for the session tick).
    last_proposal_ms: u64,
    counters: Counters,
    /// The latest term in which a leader was counted (`Counters::leader_changes`).
    leader_term: raft::Term,
    /// `Config::leader_sync_by_host`.
    sync_by_host: bool,
    /// The host sync handed out and not yet reported, if any.
    sync_out: Option<SyncRequest>,
}

impl<S: Storage, M: rsm::StateMachine> Replica<S, M> {
    /// Boots from `storage` with `sm`, a fresh state machine carrying its own
    /// configuration: restores it from the storage's snapshot, if any, and
    /// lets Raft replay the rest of the log.
    pub fn new(cfg: Config, storage: S, mut sm: M) -> Result<Self, ReplicaError> {
        assert_eq!(
            sm.applied_index(),
            0,
            "Replica::new wants a fresh state machine"
        );
        let snap = storage.snapshot()?;
        if !snap.is_empty() {
            replace(&mut sm, &storage, snap.meta.index, &snap.data)?;
        }
        let mut raft_cfg = cfg.raft;
        raft_cfg.applied = snap.meta.index;
        // A leader's snapshot that would not restore is dropped before it is
        // persisted (see `check_received_snapshot`, `Status::snapshots_rejected`).
        raft_cfg.check_received_snapshots = true;
        let log_size = LogSize::new(cfg.snapshot_threshold_bytes, &storage);
        Ok(Replica {
            node: RawNode::new(raft_cfg, storage)?,
            sm,
            session_tick_interval_ms: cfg.session_tick_interval_ms,
            snapshot_every_entries: cfg.snapshot_every_entries,
            proposals: Proposals::default(),
            reads: Reads::default(),
            log_size,
            now_ms: 0,
            last_proposal_ms: 0,
            counters: Counters::default(),
            leader_term: 0,
            sync_by_host: cfg.leader_sync_by_host,
            sync_out: None,
        })
    }

    /// One Raft tick at host time `now_ms`. A leader idle for the session tick
    /// interval proposes the machine's `tick_command` so log time keeps moving;
    /// so does one whose machine has state due for purging (`purge_due`:
    /// expired keys), at most every `rsm::PURGE_TICK_INTERVAL_MS`.
    pub fn tick(&mut self, now_ms: u64) {
        self.observe_time(now_ms);
        self.node.tick();
        let Some(interval) = self.session_tick_interval_ms else {
            return;
        };
        let idle_ms = self.now_ms.saturating_sub(self.last_proposal_ms);
        let purge = idle_ms >= rsm::PURGE_TICK_INTERVAL_MS && self.sm.purge_due(self.now_ms);
        if !self.is_leader() || (idle_ms < interval && !purge) {
            return;
        }
        if let Some(data) = self.sm.tick_command(self.now_ms) {
            if self.node.propose(data).is_ok() {
                self.last_proposal_ms = self.now_ms;
            }
        }
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, msg: Message) {
        self.node.step(msg);
    }

    /// Proposes `cmd` stamped with `now_ms`. On `Ok`, exactly one
    /// `Completion` for `token` comes out of a later `drive`.
    pub fn propose(&mut self, token: Token, cmd: M::Command, now_ms: u64) -> Result<(), Rejected> {
        self.observe_time(now_ms);
        let data = self.sm.encode_command(&cmd, self.now_ms);
        let result = self.node.propose(data);
        self.counters.proposals_rejected += u64::from(result.is_err());
        match result {
            Ok(index) => {
                self.proposals.insert(index, self.node.raft().term(), token);
                self.last_proposal_ms = self.now_ms;
                self.counters.proposals += 1;
                Ok(())
            }
            Err(raft::RaftError::ProposalDropped { uncommitted_bytes }) => {
                Err(Rejected::Busy { uncommitted_bytes })
            }
            // Leadership is being handed to `to`: that is where to retry.
            Err(raft::RaftError::TransferInProgress { to }) => {
                Err(Rejected::NotLeader { hint: Some(to) })
            }
            Err(_) => Err(Rejected::NotLeader {
                hint: self.node.raft().leader(),
            }),
        }
    }

    /// Queues a linearizable read (ReadIndex, no log entry), answered by the
    /// machine's `query` once it has applied the confirmed read index. Reads
    /// queued while no confirmation is in flight share the next `drive`'s;
    /// reads queued while one is in flight share the one after it.
    pub fn read(&mut self, token: Token, query: M::Query) -> Result<(), Rejected> {
        if !self.is_leader() {
            return Err(Rejected::NotLeader {
                hint: self.node.raft().leader(),
            });
        }
        self.reads.queue(self.node.raft().term(), token, query);
        Ok(())
    }

    /// Runs the driver loop until Raft has nothing ready; returns the
    /// requests that finished. `send` gets every outgoing message, in order.
    pub fn drive(
        &mut self,
        send: &mut dyn FnMut(Message),
    ) -> Result<Vec<Completion<M>>, ReplicaError> {
        let mut done = Vec::new();
        self.drive_with(send, &mut |c| done.push(c))?;
        Ok(done)
    }

    /// [`Replica::drive`], but each finished request goes to `complete` as
    /// soon as it is known — a committed proposal before the fsync of the
    /// Ready that carried its commit — so a host can answer it while this
    /// node's own log write is still in progress.
    pub fn drive_with(
        &mut self,
        send: &mut dyn FnMut(Message),
        complete: &mut dyn FnMut(Completion<M>),
    ) -> Result<(), ReplicaError> {
        let mut done = Vec::new();
        self.fail_stale(&mut done);
        loop {
            self.start_reads(&mut done);
            while self.node.has_ready() {
                let rd = self.node.ready();
                self.handle_ready(rd, send, &mut done, complete)?;
            }
            // The round in flight was confirmed in this drive: the reads that
            // waited for it start theirs now, not at the next input (at most
            // once more: no read is queued during a drive).
            if !self.reads.can_start() {
                break;
            }
        }
        self.fail_stale(&mut done);
        self.reads.serve(&self.sm, &mut done);
        done.drain(..).for_each(&mut *complete);
        self.maybe_snapshot()?;
        let raft = self.node.raft();
        let (term, leader) = (raft.term(), raft.leader());
        self.counters.on_leader(&mut self.leader_term, term, leader);
        Ok(())
    }

    /// One Ready, in contract order, except that a leader applies committed
    /// entries (and completes their proposals) before the persist: they are
    /// committed, so a majority has them durably already, whatever its own
    /// log write is doing (etcd's leader applies in parallel with its WAL
    /// write the same way). Everyone else persists first and sends its
    /// `persisted_messages` (a follower's acknowledgements, which the
    /// leader's commit waits for) before applying: no request of its own
    /// waits for that apply. A snapshot Ready carries no committed entries;
    /// the snapshot is installed after the persist as before.
    fn handle_ready(
        &mut self,
        mut rd: Ready,
        send: &mut dyn FnMut(Message),
        done: &mut Vec<Completion<M>>,
        complete: &mut dyn FnMut(Completion<M>),
    ) -> Result<(), ReplicaError> {
        for m in std::mem::take(&mut rd.messages) {
            self.counters.on_send(&m);
            send(m);
        }
        let apply_first = self.is_leader();
        if !apply_first {
            self.persist(&mut rd, send)?;
        }
        for e in &rd.committed_entries {
            let response = self.sm.apply(e.index, entry_data(e));
            self.proposals.on_applied(e.index, e.term, &response, done);
        }
        done.drain(..).for_each(&mut *complete);
        if apply_first {
            self.persist(&mut rd, send)?;
        }
        if let Some(snap) = &rd.snapshot {
            // `check_received_snapshot` put the machine at the snapshot's index already
            // (the only way a snapshot is accepted); anything else is decoded now.
            if self.sm.applied_index() != snap.meta.index {
                self.replace_state(snap.meta.index, &snap.data)?;
            }
            self.counters.snapshots_installed += 1;
            self.counters.snapshot_bytes_installed += snap.data.len() as u64;
            self.proposals.on_snapshot(snap.meta.index, done);
            self.log_size.measure(self.node.storage());
        }
        for rs in &rd.read_states {
            self.reads.on_read_state(rs.ctx, rs.index);
        }
        self.node.advance(rd);
        debug_assert_eq!(
            self.sm.applied_index(),
            self.node.status().applied,
            "state machine and raft disagree on applied"
        );
        self.check_received_snapshot()
    }

    /// Persists a Ready's log writes (a leader with `Config::leader_sync_by_host`
    /// only writes them: the host syncs), then sends its `persisted_messages`.
    fn persist(
        &mut self,
        rd: &mut Ready,
        send: &mut dyn FnMut(Message),
    ) -> Result<(), ReplicaError> {
        if self.sync_by_host && self.node.can_write(rd) {
            // The host syncs it (`take_sync`); until then the leader does not count
            // itself toward committing these entries (§10.2.1, `RawNode::write`).
            self.node.write(rd)?;
        } else {
            self.node.persist(rd)?;
        }
        for m in std::mem::take(&mut rd.persisted_messages) {
            self.counters.on_send(&m);
            send(m);
        }
        Ok(())
    }

    /// With `Config::leader_sync_by_host`: the sync the host should start now, if
    /// writes are waiting for one and none is out. The host runs it (it must start
    /// after this returns: it covers what was written before), then calls
    /// [`Replica::synced`] and drives again.
    pub fn take_sync(&mut self) -> Option<SyncRequest> {
        if self.sync_out.is_some() {
            return None;
        }
        let (index, term) = self.node.unsynced()?;
        let req = SyncRequest { index, term };
        self.sync_out = Some(req);
        Some(req)
    }

    /// The host's sync for `req` has completed: the leader now counts itself as
    /// holding the log up to it (which may commit entries: drive next).
    pub fn synced(&mut self, req: SyncRequest) {
        if self.sync_out == Some(req) {
            self.sync_out = None;
        }
        self.node.synced(req.index, req.term);
    }

    /// A snapshot from the leader arrived in full (its chunks are in storage): unless
    /// the log already holds its last entry (Raft then only commits up to it, §7), the
    /// machine's state is replaced by it (the old one dropped first) before Raft is told
    /// to accept it; the next Ready installs it and finds the machine there. One that
    /// will not restore (or restores to another index) is refused and counted
    /// (`Status::snapshots_rejected`), and the machine rebuilt as it was (`rebuild`).
    /// Between here and that Ready (the same drive) the machine is ahead of Raft's
    /// applied index; nothing reads it meanwhile (a follower serves no reads).
    fn check_received_snapshot(&mut self) -> Result<(), ReplicaError> {
        let Some((meta, data)) = self.node.received_snapshot() else {
            return Ok(());
        };
        if self.node.raft().log().match_term(meta.index, meta.term) {
            self.node.accept_received_snapshot(meta, data);
            return Ok(());
        }
        let applied = self.sm.applied_index();
        match self.replace_state(meta.index, &data) {
            Ok(()) => self.node.accept_received_snapshot(meta, data),
            Err(e) => {
                let (why, changed) = match e {
                    ReplicaError::SnapshotIndex { applied, .. } => {
                        (format!("it restores to index {applied}"), true)
                    }
                    ReplicaError::Snapshot { source, .. } => (source.to_string(), false),
                    other => (other.to_string(), false),
                };
                // Dropped whole, decoded or not: nothing of it stays in the machine.
                self.rebuild(applied, changed)?;
                self.node.refuse_received_snapshot(meta, why);
            }
        }
        Ok(())
    }

    /// Puts the machine back at `applied` after a leader's snapshot failed to replace
    /// its state: from this node's own storage, its snapshot, then its log entries up to
    /// `applied` (still there: nothing of the refused snapshot was accepted), applied
    /// again (deterministic: the same state; the responses were given the first time
    /// and are dropped). Nothing to do if the machine refused before dropping anything
    /// (it is still at `applied`, and not `changed` by a snapshot of another index).
    /// Statistics a machine counts while applying (kv's expired keys) count the
    /// replayed entries again.
    fn rebuild(&mut self, applied: raft::Index, changed: bool) -> Result<(), ReplicaError> {
        if !changed && self.sm.applied_index() == applied {
            return Ok(());
        }
        let snap = self.node.storage().snapshot()?;
        if !snap.is_empty() {
            self.replace_state(snap.meta.index, &snap.data)?;
        }
        while self.sm.applied_index() < applied {
            let from = self.sm.applied_index() + 1;
            let log = self.node.raft().log();
            for e in log.slice(from, applied + 1, REBUILD_BATCH_BYTES)? {
                self.sm.apply(e.index, entry_data(&e));
            }
        }
        Ok(())
    }

    /// [`replace`] of this replica's machine, with pages released through its storage.
    fn replace_state(&mut self, index: raft::Index, data: &[u8]) -> Result<(), ReplicaError> {
        replace(&mut self.sm, self.node.storage(), index, data)
    }

    /// Fails proposals and unconfirmed reads of terms this node no longer leads.
    fn fail_stale(&mut self, done: &mut Vec<Completion<M>>) {
        let raft = self.node.raft();
        let leading = (raft.role() == Role::Leader).then_some(raft.term());
        let hint = raft.leader();
        self.proposals.retain_term(leading, hint, done);
        self.reads.retain_term(leading, hint, done);
    }

    fn start_reads(&mut self, done: &mut Vec<Completion<M>>) {
        let Some(ctx) = self.reads.start_batch() else {
            return;
        };
        self.counters.read_index_rounds += 1;
        if self.node.read_index(ctx).is_err() {
            self.reads.abort_batch(ctx, self.node.raft().leader(), done);
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), ReplicaError> {
        let status = self.node.status();
        let by_count = self
            .snapshot_every_entries
            .is_some_and(|n| status.applied >= status.snapshot_index.saturating_add(n));
        let by_size = !by_count && self.log_size.due(self.node.storage(), status.applied);
        if !(by_count || by_size) || status.applied <= status.snapshot_index {
            return Ok(());
        }
        // The snapshot may cover entries whose write is still in flight: make them
        // durable before the log they are in is dropped.
        self.node.sync()?;
        // Streamed from the machine's encoder into the store (a snapshot file, for a
        // store on disk): the state is never encoded whole in memory.
        let sm = &self.sm;
        self.node
            .compact_streamed(status.applied, &mut |out| sm.snapshot_to(out))?;
        self.log_size.measure(self.node.storage());
        self.counters.snapshots_taken += 1;
        Ok(())
    }

    fn observe_time(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    // ---- queries -------------------------------------------------------------

    /// Whether a ReadIndex round is in flight: a read queued now starts no round
    /// of its own before this one ends, and it ends in a drive (its answers
    /// arrive as messages, or leadership is lost).
    pub fn read_round_in_flight(&self) -> bool {
        self.reads.round_in_flight()
    }

    /// Proposals accepted and not yet answered (committed and applied, or
    /// ended by a lost leadership): the writes this replica has in flight.
    pub fn proposals_in_flight(&self) -> usize {
        self.proposals.len()
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft().role() == Role::Leader
    }

    /// The leader this node knows of (itself if it leads).
    pub fn leader(&self) -> Option<raft::NodeId> {
        self.node.raft().leader()
    }

    pub fn status(&self) -> Status {
        Status {
            raft: self.node.status(),
            pending_proposals: self.proposals.len(),
            pending_reads: self.reads.len(),
            log_bytes: log_size::persisted_bytes(self.node.storage()),
            keys: self.sm.item_count(),
            expires: self.sm.expiring_count(),
            expired: self.sm.expired_count(),
            sessions: self.sm.session_count(),
            snapshots_rejected: self.node.raft().rejected_snapshots().0,
            counters: self.counters,
        }
    }

    /// Why the latest snapshot from a leader was dropped (see
    /// `Status::snapshots_rejected`).
    pub fn last_snapshot_rejection(&self) -> Option<&str> {
        self.node.raft().rejected_snapshots().1
    }

    /// The state machine (tests, metrics; serve client reads through `read`).
    pub fn state_machine(&self) -> &M {
        &self.sm
    }

    /// The Raft node (tests and invariant checks).
    pub fn raw_node(&self) -> &RawNode<S> {
        &self.node
    }

    pub fn storage(&self) -> &S {
        self.node.storage()
    }

    /// The store, writable: only for the host's own sync of it (`take_sync`);
    /// anything else written through it bypasses Raft.
    pub fn storage_mut(&mut self) -> &mut S {
        self.node.storage_mut()
    }

    /// Gives the storage back (a simulated crash keeps it). Pending requests
    /// are dropped without completions: the host is going away with them.
    pub fn into_storage(self) -> S {
        self.node.into_storage()
    }

    /// Starts an election now (tests, leadership hand-off).
    pub fn campaign(&mut self) {
        self.node.campaign();
    }

    /// Proposes a membership change (leader only); returns its log index. It is in
    /// force once appended; callers watch `membership_index` and the commit index.
    pub fn propose_conf_change(
        &mut self,
        change: raft::ConfChange,
    ) -> Result<raft::Index, raft::RaftError> {
        self.node.propose_conf_change(change)
    }

    /// Starts handing leadership to `to` (leader only).
    pub fn transfer_leader(&mut self, to: raft::NodeId) -> Result<(), raft::RaftError> {
        self.node.transfer_leader(to)
    }

    /// The membership in force (the latest in this node's log).
    pub fn membership(&self) -> &raft::Membership {
        self.node.raft().membership()
    }
}

/// Log bytes read at a time when `Replica::rebuild` replays the log.
const REBUILD_BATCH_BYTES: u64 = 4 << 20;

/// What the machine applies for entry `e`: no-ops and membership changes advance its
/// applied index only.
fn entry_data(e: &raft::Entry) -> &[u8] {
    if e.kind == EntryKind::Normal {
        &e.data
    } else {
        &[]
    }
}

/// Replaces `sm`'s state with the snapshot at `index` (`data`, handed out by
/// `storage`, which releases its pages as the decoder reads them) and checks it covers
/// exactly that index. On `Err` the machine is unchanged, empty, or (`SnapshotIndex`)
/// at another index: the caller rebuilds it or stops.
fn replace<S: Storage, M: rsm::StateMachine>(
    sm: &mut M,
    storage: &S,
    index: raft::Index,
    data: &[u8],
) -> Result<(), ReplicaError> {
    let release = |part: &[u8]| storage.release_read(part);
    sm.replace_with_snapshot(rsm::SnapshotInput::new(data, &release))
        .map_err(|source| ReplicaError::Snapshot { index, source })?;
    if sm.applied_index() != index {
        return Err(ReplicaError::SnapshotIndex {
            index,
            applied: sm.applied_index(),
        });
    }
    Ok(())
}
