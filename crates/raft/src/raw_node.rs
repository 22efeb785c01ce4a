//! `RawNode`: the driver-facing API — inputs in, a `Ready` out.
//!
//! # The driver contract
//!
//! ```text
//! loop {
//!     feed inputs: node.tick(), node.step(msg), node.propose(data), node.read_index(ctx)
//!     if node.has_ready() {
//!         let rd = node.ready();
//!         send(rd.messages);            // may go before the fsync (the leader's log
//!                                       // write runs in parallel with replication)
//!         node.persist(&rd)?;           // snapshot, snapshot chunks received, entries,
//!                                       // hard state, then one sync
//!                                       // (none for a commit-index-only change)
//!         send(rd.persisted_messages);  // replies that attest to persisted state
//!         apply(rd.snapshot, rd.committed_entries); answer(rd.read_states);
//!         node.advance(rd);
//!     }
//! }
//! ```
//!
//! No input may be fed between `ready()` and `advance()`.
//!
//! # The leader's log write in flight (dissertation §10.2.1)
//!
//! A leader may instead `write` its Ready (append, no sync) when [`RawNode::can_write`]
//! allows, `advance`, and keep stepping inputs while the host syncs the storage
//! elsewhere; once that sync (started after the write returned) is done, the host
//! calls [`RawNode::synced`] with the last entry it covers. Replication, the
//! followers' acknowledgements and commitment carry on meanwhile: the leader has sent
//! its Appends already, and a majority of *followers* may commit an entry without it.
//! The leader counts itself toward the commit quorum only for entries it has synced
//! (`Raft::unsynced_from` bounds its own match index; `check_invariants` asserts it).
//! Followers and candidates always `persist`: their replies attest to durable state.
//! Any `persist` that finds writes in flight syncs them too.
//!
//! ```
//! use raft::{Config, MemStorage, RawNode};
//! let mut node = RawNode::new(Config::new(1, vec![1]), MemStorage::new()).unwrap();
//! for _ in 0..30 { node.tick(); }               // a single node elects itself
//! let mut drive = |node: &mut RawNode<MemStorage>| while node.has_ready() {
//!     let rd = node.ready();
//!     node.persist(&rd).unwrap();
//!     node.advance(rd);
//! };
//! drive(&mut node);
//! let index = node.propose(bytes::Bytes::from_static(b"x")).unwrap();
//! let rd = node.ready();
//! node.persist(&rd).unwrap();
//! node.advance(rd);
//! let rd = node.ready();                         // committed once our own fsync is done
//! assert_eq!(rd.committed_entries.last().unwrap().index, index);
//! node.advance(rd);
//! ```

use bytes::Bytes;

use crate::config::Config;
use crate::error::{RaftError, Result};
use crate::membership::{ConfChange, Membership};
use crate::message::Message;
use crate::raft::Raft;
use crate::storage::{Storage, WriteSnapshot};
use crate::types::{
    Entry, HardState, Index, NodeId, ReadState, Role, Snapshot, SnapshotChunk, SnapshotMeta,
    SoftState, Term,
};

/// What the driver must do now. See the module docs for the order.
#[derive(Debug, Default)]
pub struct Ready {
    /// Changed leader or role, if any.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot from the leader to persist and install in the state machine.
    pub snapshot: Option<Snapshot>,
    /// Pieces of a snapshot being received from the leader, to write to storage
    /// (`Storage::write_snapshot_chunk`, in order, after `snapshot`).
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// Entries to append to stable storage (may overwrite a suffix).
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Message>,
    /// Messages that may be sent only after this Ready is persisted.
    pub persisted_messages: Vec<Message>,
    /// Entries to apply, in order (all committed, all persisted once this Ready is).
    pub committed_entries: Vec<Entry>,
    /// Reads that may be served once the state machine has applied their index.
    pub read_states: Vec<ReadState>,
}

/// Whether `rd` changes the term or the vote (which must be durable before anything
/// that depends on them is sent).
fn changes_term_or_vote(rd: &Ready, prev: &HardState) -> bool {
    rd.hard_state
        .is_some_and(|hs| hs.term != prev.term || hs.vote != prev.vote)
}

/// A snapshot of a node's status, for `raftkv status` and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
}

pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft: SoftState,
    prev_hard: HardState,
    /// The last entry `write` wrote whose sync has not been reported (`synced`).
    /// Invariant: `Some` iff `raft.unsynced_from` is.
    unsynced_last: Option<(Index, Term)>,
    /// Bound on the bytes of committed entries handed out in one Ready.
    max_apply_bytes: u64,
}

impl<S: Storage> RawNode<S> {
    pub fn new(cfg: Config, storage: S) -> Result<Self> {
        let prev_hard = storage.hard_state();
        let raft = Raft::new(cfg, storage)?;
        let prev_soft = SoftState {
            leader: None,
            role: Role::Follower,
        };
        Ok(RawNode {
            raft,
            prev_soft,
            prev_hard,
            unsynced_last: None,
            max_apply_bytes: 64 << 20,
        })
    }

    pub fn tick(&mut self) {
        self.raft.tick()
    }
    pub fn step(&mut self, m: Message) {
        self.raft.step(m)
    }
    pub fn propose(&mut self, data: Bytes) -> Result<Index> {
        self.raft.propose(data)
    }
    pub fn read_index(&mut self, ctx: u64) -> Result<()> {
        self.raft.read_index(ctx)
    }
    /// Proposes a membership change (leader only; see `membership` for the rules).
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index> {
        self.raft.propose_conf_change(change)
    }
    /// Starts handing leadership to `to` (leader only; see `transfer`).
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<()> {
        self.raft.transfer_leader(to)
    }
    /// Starts an election now (tests and leadership hand-off).
    pub fn campaign(&mut self) {
        if self.raft.role != Role::Leader {
            self.raft.campaign();
        }
    }
    pub fn raft(&self) -> &Raft<S> {
        &self.raft
    }
    pub fn storage(&self) -> &S {
        &self.raft.log.storage
    }
    /// The store, writable: only for a host-run sync of what `write` wrote (see the
    /// module docs); anything else written through it bypasses the core.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }
    /// Gives the storage back (the simulator keeps it across a simulated crash).
    pub fn into_storage(self) -> S {
        self.raft.log.storage
    }

    pub fn status(&self) -> Status {
        let log = &self.raft.log;
        Status {
            id: self.raft.id,
            role: self.raft.role,
            term: self.raft.term,
            leader: self.raft.leader,
            commit: log.committed(),
            applied: log.applied(),
            last_index: log.last_index(),
            snapshot_index: log.first_index() - 1,
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.raft.term,
            vote: self.raft.vote,
            commit: self.raft.log.committed(),
        }
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.raft.leader,
            role: self.raft.role,
        }
    }

    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        self.soft_state() != self.prev_soft
            || self.hard_state() != self.prev_hard
            || r.log.unstable.snapshot.is_some()
            || !r.snapshot_chunks.is_empty()
            || !r.log.unstable.entries.is_empty()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || r.log.has_next_committed_entries()
            || !r.read_states.is_empty()
            || (r.role == Role::Leader && r.pending_broadcast)
            || r.read_only.rounds.back().is_some_and(|round| !round.sent)
    }

    pub fn ready(&mut self) -> Ready {
        self.raft.flush_broadcast();
        if self.raft.role == Role::Leader {
            self.raft.flush_read_rounds();
        }
        let r = &mut self.raft;
        let soft = SoftState {
            leader: r.leader,
            role: r.role,
        };
        let hard = HardState {
            term: r.term,
            vote: r.vote,
            commit: r.log.committed(),
        };
        let snapshot = r.log.unstable.snapshot.clone();
        let committed_entries = if snapshot.is_some() {
            Vec::new() // apply the snapshot first; entries after it come next Ready
        } else {
            r.log.next_committed_entries(self.max_apply_bytes)
        };
        Ready {
            soft_state: (soft != self.prev_soft).then_some(soft),
            hard_state: (hard != self.prev_hard).then_some(hard),
            snapshot,
            snapshot_chunks: std::mem::take(&mut r.snapshot_chunks),
            entries: r.log.unstable.entries.clone(),
            messages: std::mem::take(&mut r.msgs),
            persisted_messages: std::mem::take(&mut r.msgs_after_persist),
            committed_entries,
            read_states: std::mem::take(&mut r.read_states),
        }
    }

    /// Writes a Ready's durable part to storage and syncs: snapshot, received snapshot
    /// chunks (not synced on their own: a crash loses the partial transfer, which the
    /// leader then restarts), entries, hard state.
    ///
    /// A hard state whose only change is the commit index is written but not synced
    /// on its own (as etcd's `MustSync`): nothing sent or answered attests to a durable
    /// commit index, and a restarted node that finds an older one learns the rest from
    /// the leader (`RaftLog::new` clamps it to the log). It becomes durable with the next
    /// sync. This keeps a second fsync off every write's path on the leader (one for its
    /// entries, one more for the commit index before applying).
    pub fn persist(&mut self, rd: &Ready) -> Result<()> {
        let prev = self.prev_hard;
        let storage = &mut self.raft.log.storage;
        if let Some(snap) = &rd.snapshot {
            storage.install_snapshot(snap.clone())?;
        }
        for chunk in &rd.snapshot_chunks {
            storage.write_snapshot_chunk(chunk.meta, chunk.offset, &chunk.data)?;
        }
        if !rd.entries.is_empty() {
            storage.append(&rd.entries)?;
        }
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs)?;
        }
        let term_or_vote = changes_term_or_vote(rd, &prev);
        if rd.snapshot.is_some() || !rd.entries.is_empty() || term_or_vote {
            storage.sync()?;
        } else if self.unsynced_last.is_some() {
            // Replies in this Ready may attest to the writes in flight: sync them first.
            storage.sync()?;
        }
        // Everything written so far is durable now, the writes in flight included.
        if let Some((index, term)) = self.unsynced_last.take() {
            self.raft.unsynced_from = None;
            self.raft.on_persisted(index, term);
        }
        Ok(())
    }

    /// Whether this Ready may be written without waiting for it to be durable
    /// (`write`): a leader's, carrying no snapshot (nor chunks of one), no reply that
    /// must wait for persistence, and no change of term or vote (those are synced
    /// before anything that depends on them leaves: a vote must never be forgotten).
    pub fn can_write(&self, rd: &Ready) -> bool {
        self.raft.role == Role::Leader
            && rd.snapshot.is_none()
            && rd.snapshot_chunks.is_empty()
            && rd.persisted_messages.is_empty()
            && !changes_term_or_vote(rd, &self.prev_hard)
    }

    /// Hands a Ready's entries and hard state to storage without syncing: the leader's
    /// log write runs on while it keeps replicating (dissertation §10.2.1; module docs).
    /// The store may keep them in its own buffer: the host's sync must cover every
    /// write so far (a disk store's sync job writes its buffer out before it is made).
    /// Until `synced` reports a sync covering them, the leader does not count itself as
    /// holding these entries (`Raft::unsynced_from`). Only when `can_write` allows.
    pub fn write(&mut self, rd: &Ready) -> Result<()> {
        assert!(
            self.can_write(rd),
            "RawNode::write of a Ready that must be persisted"
        );
        let storage = &mut self.raft.log.storage;
        if !rd.entries.is_empty() {
            storage.append(&rd.entries)?;
        }
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs)?;
        }
        if let (Some(first), Some(last)) = (rd.entries.first(), rd.entries.last()) {
            self.raft.unsynced_from.get_or_insert(first.index);
            self.unsynced_last = Some((last.index, last.term));
        }
        Ok(())
    }

    /// Syncs the storage now, covering every write in flight (`write`), as `persist`
    /// would (for example before a compaction, whose snapshot may cover them).
    pub fn sync(&mut self) -> Result<()> {
        let Some((index, term)) = self.unsynced_last.take() else {
            return Ok(());
        };
        self.raft.log.storage.sync()?;
        self.raft.unsynced_from = None;
        self.raft.on_persisted(index, term);
        self.raft.check_invariants();
        Ok(())
    }

    /// The first entry written (by `write`) and not yet reported durable: a crash may
    /// lose it and everything after it.
    pub fn unsynced_from(&self) -> Option<Index> {
        self.raft.unsynced_from
    }

    /// The last entry written (by `write`) and not yet reported durable: what a sync
    /// started now covers.
    pub fn unsynced(&self) -> Option<(Index, Term)> {
        self.unsynced_last
    }

    /// A sync that started after the entry `(index, term)` was written has completed:
    /// the log up to it is durable, and the leader counts itself toward committing it.
    /// A stale report (its entry since replaced, or already covered) changes nothing
    /// but what it covers.
    pub fn synced(&mut self, index: Index, term: Term) {
        // Log Matching: if our entry at `index` still has `term`, every entry up to it
        // is the one that was written before the sync started (a replaced suffix is
        // rewritten through `persist`, which syncs it), so all of them are durable.
        if self.raft.log.term(index).ok() != Some(term) {
            return;
        }
        if let Some((last, _)) = self.unsynced_last {
            if index >= last {
                self.unsynced_last = None;
                self.raft.unsynced_from = None;
            } else if self.raft.unsynced_from.is_some_and(|from| index >= from) {
                self.raft.unsynced_from = Some(index + 1);
            }
        }
        self.raft.on_persisted(index, term);
        self.raft.check_invariants();
    }

    /// The Ready has been persisted, sent and applied. If it held the last chunk of a
    /// snapshot from the leader, the next Ready installs that snapshot, or, when the
    /// driver checks received snapshots (`Config::check_received_snapshots`), it now
    /// waits for the driver's verdict (`received_snapshot`).
    pub fn advance(&mut self, rd: Ready) {
        if let Some(ss) = rd.soft_state {
            self.prev_soft = ss;
        }
        if let Some(hs) = rd.hard_state {
            self.prev_hard = hs;
        }
        let r = &mut self.raft;
        if let Some(snap) = &rd.snapshot {
            r.log.stable_snapshot_to(snap.meta.index);
            r.log.applied_to(snap.meta.index);
        }
        if let Some(last) = rd.entries.last() {
            r.log.stable_to(last.index, last.term);
            // Written but maybe not durable (`write`): the leader's own vote waits for
            // `synced` (on_persisted never counts past `unsynced_from`).
            r.on_persisted(last.index, last.term);
        }
        if let Some(last) = rd.committed_entries.last() {
            r.log.applied_to(last.index);
        }
        if r.snapshot_chunks.is_empty() {
            // The last chunk of an incoming snapshot, if this Ready had it, is written.
            r.finish_incoming_snapshot();
        }
        r.check_invariants();
    }

    /// The snapshot received in full from the leader, persisted and awaiting the
    /// driver's check (`Config::check_received_snapshots`), read back from storage;
    /// answer with `accept_received_snapshot` or `refuse_received_snapshot` before the
    /// next `ready()`. `None` if there is none (or reading it failed: it is then dropped
    /// as refused).
    pub fn received_snapshot(&mut self) -> Option<(SnapshotMeta, Bytes)> {
        self.raft.read_received_snapshot()
    }

    /// The driver's check passed: the snapshot `meta` (with `data`, as
    /// `received_snapshot` gave it) replaces the log through the next `Ready`.
    pub fn accept_received_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) {
        self.raft.accept_received_snapshot(meta, data);
        self.raft.check_invariants();
    }

    /// The driver's check refused the snapshot `meta` (`why`): it is dropped whole.
    pub fn refuse_received_snapshot(&mut self, meta: SnapshotMeta, why: String) {
        self.raft.refuse_received_snapshot(meta, why);
    }

    /// The application took a snapshot of its state machine at `index` (which it has
    /// applied): record it and discard the log before it.
    pub fn compact(&mut self, index: Index, data: Bytes) -> Result<()> {
        let (meta, conf) = self.compaction_point(index)?;
        self.raft
            .log
            .storage
            .compact(Snapshot { meta, conf, data })?;
        self.raft.conf.compact_to(index);
        Ok(())
    }

    /// [`RawNode::compact`], with the snapshot's data written by `write_data` straight
    /// into the store (`Storage::compact_streamed`): a store that keeps snapshots in
    /// files never holds the data whole in memory.
    pub fn compact_streamed(
        &mut self,
        index: Index,
        write_data: &mut WriteSnapshot<'_>,
    ) -> Result<()> {
        let (meta, conf) = self.compaction_point(index)?;
        self.raft
            .log
            .storage
            .compact_streamed(meta, conf, write_data)?;
        self.raft.conf.compact_to(index);
        Ok(())
    }

    /// What a snapshot at `index` records besides its data; refuses an index not
    /// applied or already compacted.
    fn compaction_point(&self, index: Index) -> Result<(SnapshotMeta, Option<Membership>)> {
        let log = &self.raft.log;
        let applied = log.applied();
        if index > applied {
            return Err(RaftError::CompactBeyondApplied { index, applied });
        }
        let first_index = log.first_index();
        if index < first_index {
            return Err(RaftError::AlreadyCompacted { index, first_index });
        }
        let term = log.term(index)?;
        let conf = Some(self.raft.conf.at(index).clone());
        Ok((SnapshotMeta { index, term }, conf))
    }
}
