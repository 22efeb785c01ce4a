//! `Raft`: one node's consensus state and the entry points that change it — `tick`,
//! `step`, `propose`, `read_index`. Role-specific handling lives in `election.rs`,
//! `replication.rs` (leader), `append.rs` (follower), `snapshot.rs` and `read_index.rs`.
//!
//! Invariants (checked by `check_invariants` after every input in debug builds):
//! - `applied <= committed <= last_index` (in `RaftLog`);
//! - a leader has voted for itself in its term and tracks a `Progress` for itself and
//!   every member (voter or learner) of the current membership, and of the membership at
//!   its commit index (a member being removed is replicated to until the removal commits);
//! - `leader == Some(id)` iff `role == Leader`.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::error::{RaftError, Result};
use crate::log::RaftLog;
use crate::membership::{ConfChangeEntry, ConfLog, Membership};
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::read_index::ReadOnly;
use crate::storage::Storage;
use crate::types::{
    Entry, EntryKind, Index, NodeId, ReadState, Role, SnapshotChunk, SnapshotMeta, Term, MAX_INDEX,
    MAX_TERM,
};

/// A snapshot being received from the leader, chunk by chunk. Its bytes go to storage
/// through `Ready::snapshot_chunks`; the core keeps only their count.
pub(crate) struct IncomingSnapshot {
    pub meta: SnapshotMeta,
    /// The leader it comes from and the membership it carries (every chunk repeats it).
    pub from: NodeId,
    pub conf: Option<Membership>,
    /// Bytes received in order (written, or handed out to be written).
    pub received: u64,
    /// The last chunk arrived: once it is persisted (`RawNode::advance`), the snapshot
    /// is read back from storage, checked, and installed or dropped.
    pub complete: bool,
}

pub struct Raft<S: Storage> {
    pub(crate) id: NodeId,
    /// The memberships in the log; the latest is in force (see `membership`).
    pub(crate) conf: ConfLog,
    pub(crate) cfg: Config,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    /// Leader only: one entry per peer, this node included.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Candidate / pre-candidate: responses received in this campaign.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) randomized_election_ticks: u32,
    rng: ChaCha8Rng,
    /// Messages that may leave at once (the leader's; see `RawNode`).
    pub(crate) msgs: Vec<Message>,
    /// Messages that may leave only after the Ready's writes are durable.
    pub(crate) msgs_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) read_only: ReadOnly,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// Chunks of `incoming_snapshot` not yet handed out in a `Ready`.
    pub(crate) snapshot_chunks: Vec<SnapshotChunk>,
    /// Snapshots from a leader that were refused (by the driver's check, see
    /// `Config::check_received_snapshots`, or unreadable once received), and why the
    /// latest was (for the host to report; never persisted).
    pub(crate) rejected_snapshots: u64,
    pub(crate) last_snapshot_rejection: Option<String>,
    /// Leader: proposals appended since the last broadcast.
    pub(crate) pending_broadcast: bool,
    /// Leader: (index, bytes) of appended-but-uncommitted proposals, for flow control.
    pub(crate) uncommitted: VecDeque<(Index, u64)>,
    pub(crate) uncommitted_bytes: u64,
    /// The first log index written to storage but not yet known durable, if any: the
    /// leader's own log write in flight (`RawNode::write`, dissertation §10.2.1). The
    /// leader counts itself toward a commit quorum only for entries below it.
    pub(crate) unsynced_from: Option<Index>,
    /// Leader: the voter leadership is being handed to, if any (see `transfer`).
    pub(crate) lead_transferee: Option<NodeId>,
    /// Leader: ticks since the transfer started; it is abandoned after an election timeout.
    pub(crate) transfer_elapsed: u32,
}

impl<S: Storage> Raft<S> {
    pub fn new(cfg: Config, storage: S) -> Result<Self> {
        cfg.validate()?;
        let hs = storage.hard_state();
        if hs.term > MAX_TERM {
            return Err(RaftError::ImpossibleTerm { term: hs.term });
        }
        let conf = load_conf_log(&storage, &cfg.peers)?;
        let log = RaftLog::new(storage, cfg.applied);
        let mut r = Raft {
            id: cfg.id,
            conf,
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: cfg.election_ticks,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            read_only: ReadOnly::default(),
            incoming_snapshot: None,
            snapshot_chunks: Vec::new(),
            rejected_snapshots: 0,
            last_snapshot_rejection: None,
            pending_broadcast: false,
            uncommitted: VecDeque::new(),
            uncommitted_bytes: 0,
            unsynced_from: None,
            lead_transferee: None,
            transfer_elapsed: 0,
            cfg,
        };
        r.reset_election_timer();
        Ok(r)
    }

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// How many snapshots from a leader were refused (by the driver's check, see
    /// `Config::check_received_snapshots`, or unreadable once received), and why the
    /// latest was.
    pub fn rejected_snapshots(&self) -> (u64, Option<&str>) {
        (
            self.rejected_snapshots,
            self.last_snapshot_rejection.as_deref(),
        )
    }
    pub fn log(&self) -> &RaftLog<S> {
        &self.log
    }
    /// The membership in force (the latest in the log, committed or not).
    pub fn membership(&self) -> &Membership {
        self.conf.current()
    }
    /// Log index of the entry (or snapshot) that set the membership in force.
    pub fn membership_index(&self) -> Index {
        self.conf.current_index()
    }
    /// The voter leadership is being transferred to, if any.
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.lead_transferee
    }
    pub(crate) fn is_voter(&self, id: NodeId) -> bool {
        self.conf.current().is_voter(id)
    }
    /// Votes needed for a majority of the current voters.
    pub(crate) fn quorum(&self) -> usize {
        crate::quorum::majority(self.conf.current().voters.len())
    }
    /// Whether `ids` include a majority of the current voters.
    pub(crate) fn has_quorum<'a>(&self, ids: impl IntoIterator<Item = &'a NodeId>) -> bool {
        let voters = &self.conf.current().voters;
        ids.into_iter().filter(|id| voters.contains(id)).count() >= self.quorum()
    }
    /// Voters other than this node (whom a candidate asks).
    pub(crate) fn other_voters(&self) -> Vec<NodeId> {
        let voters = &self.conf.current().voters;
        voters.iter().copied().filter(|&p| p != self.id).collect()
    }
    /// Leader: every node it replicates to (voters and learners, and members being
    /// removed until the removal commits).
    pub(crate) fn others(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&p| p != self.id)
            .collect()
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.cfg.election_ticks;
        self.randomized_election_ticks = base + self.rng.gen_range(0..base);
    }

    /// Queues a message. The leader's messages may leave before this Ready is persisted
    /// (the leader writes its log in parallel with replication, §10.2.1 of the
    /// dissertation); everyone else's replies attest to persisted state and must wait.
    pub(crate) fn send(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let m = Message {
            from: self.id,
            to,
            term,
            body,
        };
        // One Append per follower, one ack per leader, where the rules allow (`coalesce`).
        let queue = if self.role == Role::Leader {
            &mut self.msgs
        } else {
            &mut self.msgs_after_persist
        };
        crate::coalesce::push(queue, m, self.cfg.max_append_bytes);
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed = self.election_elapsed.saturating_add(1);
            if self.election_elapsed >= self.randomized_election_ticks {
                self.campaign();
            }
        }
        self.check_invariants();
    }

    /// Proposes `data` for replication. Only the leader accepts; returns the entry's index.
    pub fn propose(&mut self, data: Bytes) -> Result<Index> {
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader { hint: self.leader });
        }
        if let Some(to) = self.lead_transferee {
            return Err(RaftError::TransferInProgress { to });
        }
        if self.uncommitted_bytes > self.cfg.max_uncommitted_bytes {
            return Err(RaftError::ProposalDropped {
                uncommitted_bytes: self.uncommitted_bytes,
            });
        }
        let Some(index) = next_index(self.log.last_index()) else {
            return Err(RaftError::ProposalDropped {
                uncommitted_bytes: self.uncommitted_bytes,
            });
        };
        let entry = Entry::normal(self.term, index, data);
        self.append_as_leader(vec![entry]);
        Ok(index)
    }

    /// Starts a linearizable read identified by `ctx`; the answer arrives as a
    /// `ReadState` in a later `Ready`. Reads issued together share one confirmation round.
    pub fn read_index(&mut self, ctx: u64) -> Result<()> {
        match self.role {
            Role::Leader => {
                self.leader_read_index(self.id, ctx);
                Ok(())
            }
            _ => match self.leader {
                Some(l) => {
                    self.send(l, self.term, MessageBody::ReadIndex { ctx });
                    Ok(())
                }
                None => Err(RaftError::NotLeader { hint: None }),
            },
        }
    }

    /// Feeds one message in. Messages to another node, from ourselves or from id 0, or
    /// otherwise malformed are dropped; none can make the node panic.
    ///
    /// Senders outside our membership are heard on purpose: a lagging member must follow
    /// a leader its log does not know yet, and a joining node knows no membership at all.
    /// What keeps a removed (or unknown) node from disrupting the group is pre-vote and
    /// the check-quorum lease (`reconcile_term`), and a leader ignores replies from nodes
    /// it does not replicate to.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || m.from == self.id || m.from == 0 {
            return;
        }
        if m.check_bounds().is_err() {
            // An impossible term or index (corrupt or hostile): never adopted,
            // never persisted. The transport logs these before they get here.
            return;
        }
        if !self.reconcile_term(&m) {
            return;
        }
        match m.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.handle_vote_request(m),
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
        self.check_invariants();
    }

    /// Figure 2, "Rules for all servers": a higher term makes us a follower; a lower term
    /// is stale. Returns whether the message should be processed further.
    fn reconcile_term(&mut self, m: &Message) -> bool {
        use MessageBody::*;
        if m.term > self.term {
            let is_request = matches!(
                m.body,
                PreVote { .. }
                    | Vote {
                        transfer: false,
                        ..
                    }
            );
            let in_lease = self.cfg.check_quorum
                && self.leader.is_some()
                && self.election_elapsed < self.cfg.election_ticks;
            if is_request && in_lease {
                // We heard from a live leader within the election timeout: a disruptive
                // candidate must not depose it (check-quorum lease, §6 of the dissertation).
                return false;
            }
            match m.body {
                // A pre-vote asks about a future term; it never changes ours.
                PreVote { .. } => {}
                // A granted pre-vote echoes the term we would campaign in.
                PreVoteResponse { reject: false } => {}
                Append { .. } | Heartbeat { .. } | Snapshot { .. } => {
                    self.become_follower(m.term, Some(m.from))
                }
                _ => self.become_follower(m.term, None),
            }
            return true;
        }
        if m.term < self.term {
            match m.body {
                // Tell a stale leader about the newer term so it steps down; otherwise a
                // node stuck in a higher term (a failed campaign) would never be heard.
                Append { .. } | Heartbeat { .. } | Snapshot { .. } => {
                    let body = AppendResponse {
                        reject: true,
                        index: 0,
                        hint: None,
                    };
                    self.send(m.from, self.term, body);
                }
                PreVote { .. } => {
                    self.send(m.from, self.term, PreVoteResponse { reject: true });
                }
                _ => {}
            }
            return false;
        }
        true
    }

    fn step_follower(&mut self, m: Message) {
        use MessageBody::*;
        match m.body {
            Append { .. } | Heartbeat { .. } | Snapshot { .. } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_leader_message(m);
            }
            ReadIndex { ctx } => {
                // Only the leader answers; tell the asker we cannot.
                self.send(m.from, self.term, ReadIndexResponse { ctx, index: None });
            }
            ReadIndexResponse {
                ctx,
                index: Some(index),
            } => {
                self.read_states.push(ReadState { ctx, index });
            }
            TimeoutNow => self.campaign_transfer(),
            _ => {}
        }
    }

    fn step_candidate(&mut self, m: Message) {
        use MessageBody::*;
        match m.body {
            Append { .. } | Heartbeat { .. } | Snapshot { .. } => {
                // A leader of our term exists (§5.2): stand down and follow it.
                self.become_follower(m.term, Some(m.from));
                self.handle_leader_message(m);
            }
            PreVoteResponse { reject } if self.role == Role::PreCandidate => {
                self.record_vote(m.from, !reject)
            }
            VoteResponse { reject } if self.role == Role::Candidate => {
                self.record_vote(m.from, !reject)
            }
            ReadIndex { ctx } => {
                self.send(m.from, self.term, ReadIndexResponse { ctx, index: None })
            }
            _ => {}
        }
    }

    pub(crate) fn handle_leader_message(&mut self, m: Message) {
        match m.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(m.from, prev_index, prev_term, entries, commit),
            MessageBody::Heartbeat { commit, read_round } => {
                self.handle_heartbeat(m.from, commit, read_round)
            }
            MessageBody::Snapshot {
                meta,
                conf,
                offset,
                data,
                done,
            } => self.handle_snapshot_chunk(m.from, meta, conf, offset, data, done),
            _ => unreachable!("only leader messages are routed here"),
        }
    }

    /// Panics with context if an invariant is broken (debug builds only).
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let (applied, committed, last) = (
            self.log.applied(),
            self.log.committed(),
            self.log.last_index(),
        );
        assert!(
            applied <= committed && committed <= last,
            "node {}: applied {applied} committed {committed} last {last}",
            self.id
        );
        assert!(
            self.term <= MAX_TERM && last <= MAX_INDEX,
            "node {}: term {} or last index {last} beyond the bounds",
            self.id,
            self.term
        );
        assert_eq!(
            self.role == Role::Leader,
            self.leader == Some(self.id),
            "node {}: role/leader mismatch",
            self.id
        );
        if self.role == Role::Leader {
            assert_eq!(
                self.vote,
                Some(self.id),
                "node {}: leader without self-vote",
                self.id
            );
            for id in self.conf.current().members() {
                assert!(
                    self.progress.contains_key(&id),
                    "node {}: no progress for member {id}",
                    self.id
                );
            }
            // §10.2.1: the leader may replicate before its own write is durable, but it
            // counts itself toward a commit quorum only for what it has synced.
            if let (Some(from), Some(me)) = (self.unsynced_from, self.progress.get(&self.id)) {
                assert!(
                    me.matched < from,
                    "node {}: leader counts itself at {} but its log from {from} is not durable",
                    self.id,
                    me.matched
                );
            }
            for (id, pr) in &self.progress {
                assert!(
                    pr.matched < pr.next,
                    "node {}: progress of {id}: match {} next {}",
                    self.id,
                    pr.matched,
                    pr.next
                );
                assert!(
                    pr.matched <= last,
                    "node {}: progress of {id} past log end",
                    self.id
                );
            }
        }
    }
}

/// `index + 1` if it stays within [`MAX_INDEX`].
pub(crate) fn next_index(index: Index) -> Option<Index> {
    index.checked_add(1).filter(|&i| i <= MAX_INDEX)
}

/// `term + 1` if it stays within [`MAX_TERM`].
pub(crate) fn next_term(term: Term) -> Option<Term> {
    term.checked_add(1).filter(|&t| t <= MAX_TERM)
}

/// The memberships a restarted node's storage holds: the snapshot's (or the configured
/// peers', for a snapshot from before memberships were recorded, or none), then every
/// change in the log, committed or not (they take effect when appended).
fn load_conf_log<S: Storage>(storage: &S, peers: &[NodeId]) -> Result<ConfLog> {
    /// Entries are read back in batches of about this many bytes.
    const BATCH_BYTES: u64 = 4 << 20;
    let snap = storage.snapshot()?;
    let base = snap
        .conf
        .unwrap_or_else(|| Membership::with_voters(peers.iter().copied()));
    let mut conf = ConfLog::new(snap.meta.index, base);
    let (mut lo, last) = (storage.first_index(), storage.last_index());
    while lo <= last {
        let batch = storage.entries(lo, last + 1, BATCH_BYTES)?;
        for e in &batch {
            if e.kind == EntryKind::ConfChange {
                let cc = ConfChangeEntry::decode(&e.data).ok_or_else(|| {
                    RaftError::InvalidConfig(format!(
                        "log entry {} holds an undecodable membership change",
                        e.index
                    ))
                })?;
                conf.push(e.index, cc.membership);
            }
        }
        lo += batch.len() as u64;
    }
    Ok(conf)
}
