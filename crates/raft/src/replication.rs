//! Leader side of log replication (§5.3): batching, pipelining, fast backtracking,
//! commitment (Figure 8), heartbeats and check-quorum.
//!
//! Batching: `propose` only appends; Appends go out when the driver collects a `Ready`
//! (`flush_broadcast`), so every proposal made since the last Ready travels in one
//! message per follower. Pipelining: a follower in `Replicate` state gets up to
//! `max_inflight_appends` unacknowledged Appends.

use crate::message::{Message, MessageBody, RejectHint};
use crate::progress::ProgressState;
use crate::quorum::committed_index;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Entry, Index, NodeId, Role, Term};

impl<S: Storage> Raft<S> {
    pub(crate) fn append_as_leader(&mut self, entries: Vec<Entry>) {
        for e in &entries {
            let size = e.size_bytes();
            self.uncommitted.push_back((e.index, size));
            self.uncommitted_bytes += size;
        }
        self.log.append(&entries);
        // A single voter has nothing to wait for but its own fsync (see `on_persisted`).
        self.pending_broadcast = true;
    }

    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        for pr in self.progress.values_mut() {
            pr.silent_ticks = pr.silent_ticks.saturating_add(1);
        }
        self.tick_transfer();
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                // Check-quorum: we cannot reach a majority, so we may not be the leader
                // any more; step down rather than serve a partition (dissertation §6.2).
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.read_rounds_sent_to_all();
            self.broadcast_heartbeat();
            self.resend_stalled_snapshots();
        } else {
            self.resend_read_rounds();
        }
    }

    /// Whether a majority of the voters was heard from in this period (this node counts
    /// if it is a voter); resets the marks.
    fn quorum_active(&mut self) -> bool {
        let id = self.id;
        let mut active = Vec::new();
        for (&p, pr) in self.progress.iter_mut() {
            if p == id || pr.recent_active {
                active.push(p);
            }
            pr.recent_active = p == id;
        }
        self.has_quorum(&active)
    }

    pub(crate) fn broadcast_heartbeat(&mut self) {
        let read_round = self.read_only.latest_round();
        self.broadcast_heartbeat_with(read_round);
    }

    pub(crate) fn broadcast_heartbeat_with(&mut self, read_round: u64) {
        for to in self.others() {
            self.send_heartbeat(to, read_round);
        }
    }

    pub(crate) fn send_heartbeat(&mut self, to: NodeId, read_round: u64) {
        // Never tell a follower to commit past what it is known to match.
        let commit = self.progress[&to].matched.min(self.log.committed());
        self.send(to, self.term, MessageBody::Heartbeat { commit, read_round });
    }

    /// Sends what proposals appended since the last Ready, one message per follower.
    pub(crate) fn flush_broadcast(&mut self) {
        if self.role != Role::Leader || !self.pending_broadcast {
            return;
        }
        self.pending_broadcast = false;
        for to in self.others() {
            self.send_append(to, false);
        }
    }

    /// Sends the next Append (or snapshot) to `to`, unless its window is full.
    /// With `send_if_empty`, an empty Append probes the follower's position.
    pub(crate) fn send_append(&mut self, to: NodeId, send_if_empty: bool) {
        let max_inflight = self.cfg.max_inflight_appends;
        let pr = &self.progress[&to];
        if pr.is_paused(max_inflight) {
            return;
        }
        let next = pr.next;
        let prev_index = next - 1;
        let (prev_term, entries) = match (
            self.log.term(prev_index),
            self.log.entries_from(next, self.cfg.max_append_bytes),
        ) {
            (Ok(t), Ok(e)) => (t, e),
            // The follower needs entries we compacted: send the snapshot instead.
            _ => return self.start_snapshot(to),
        };
        if entries.is_empty() && !send_if_empty {
            return;
        }
        let last = entries.last().map_or(prev_index, |e| e.index);
        let had_entries = !entries.is_empty();
        let commit = self.log.committed();
        let pr = self.progress.get_mut(&to).expect("progress");
        pr.on_append_sent(last, had_entries);
        self.send(
            to,
            self.term,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
    }

    pub(crate) fn step_leader(&mut self, m: Message) {
        use MessageBody::*;
        let from = m.from;
        let Some(pr) = self.progress.get_mut(&from) else {
            return; // not (or no longer) a node we replicate to
        };
        pr.recent_active = true;
        pr.silent_ticks = 0;
        match m.body {
            AppendResponse {
                reject: false,
                index,
                ..
            } => self.handle_append_success(from, index),
            AppendResponse {
                reject: true,
                index,
                hint,
            } => self.handle_append_reject(from, index, hint),
            HeartbeatResponse { read_round } => {
                let last = self.log.last_index();
                let max_inflight = self.cfg.max_inflight_appends;
                let pr = self.progress.get_mut(&from).expect("progress");
                let behind = pr.matched < last;
                match pr.state {
                    // The follower is alive: allow the next probe even if the last was lost.
                    ProgressState::Probe => pr.probe_sent = false,
                    // A full window may be full of lost Appends: make room for a probe.
                    ProgressState::Replicate if pr.inflight.len() >= max_inflight => {
                        pr.inflight.pop_front();
                    }
                    _ => {}
                }
                if behind && pr.state != ProgressState::Snapshot {
                    self.send_append(from, true);
                }
                if read_round > 0 {
                    self.ack_read_round(from, read_round);
                }
            }
            SnapshotResponse { index, received } => self.handle_snapshot_ack(from, index, received),
            ReadIndex { ctx } => self.leader_read_index(from, ctx),
            _ => {}
        }
    }

    fn handle_append_success(&mut self, from: NodeId, index: Index) {
        if index > self.log.last_index() {
            return; // malformed: claims entries we never had
        }
        let pr = self.progress.get_mut(&from).expect("progress");
        let was_paused = pr.is_paused(self.cfg.max_inflight_appends);
        if !pr.maybe_update(index) {
            if was_paused && pr.state == ProgressState::Replicate {
                self.send_append(from, false);
            }
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot => {
                let snap_index = pr.snapshot.as_ref().map_or(0, |s| s.meta.index);
                if pr.matched >= snap_index {
                    pr.become_probe();
                }
            }
            ProgressState::Replicate => {}
        }
        self.maybe_commit();
        if self.role != Role::Leader {
            return; // the commit removed us from the group
        }
        self.send_append(from, false);
        self.maybe_send_timeout_now(from);
    }

    /// Fast backtracking (§5.3, "the leader can decrement nextIndex to bypass all of the
    /// conflicting entries in that term"): one round trip per term, not per entry.
    fn handle_append_reject(&mut self, from: NodeId, rejected: Index, hint: Option<RejectHint>) {
        let Some(hint) = hint else { return };
        if rejected > self.log.last_index() {
            return; // malformed: we never sent that prev_index
        }
        let next = match hint.conflict_term {
            Some(t) => match self.log.last_index_of_term(rejected, t) {
                Some(i) => i + 1,
                None => hint.conflict_index,
            },
            None => hint.conflict_index,
        };
        let pr = self.progress.get_mut(&from).expect("progress");
        if hint.conflict_term.is_none() && hint.conflict_index <= pr.matched {
            // Its log ends (at conflict_index - 1) before what it acknowledged.
            pr.lost_log = Some(hint.conflict_index.saturating_sub(1));
        }
        if pr.maybe_decrease_to(rejected, next.max(1)) {
            // next <= rejected <= last_index, so this Append carries entries.
            self.send_append(from, false);
        }
    }

    /// Advances the commit index to what a majority of the voters has persisted,
    /// counting only entries of the current term (Figure 8).
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let voters = &self.conf.current().voters;
        let mut matched: Vec<Index> = self
            .progress
            .iter()
            .filter(|(id, _)| voters.contains(id))
            .map(|(_, p)| p.matched)
            .collect();
        let index = committed_index(&mut matched);
        if !self.log.maybe_commit(index, self.term) {
            return false;
        }
        self.release_uncommitted(index);
        self.on_commit_advanced();
        self.on_leader_commit_membership();
        true
    }

    fn release_uncommitted(&mut self, committed: Index) {
        while let Some(&(i, size)) = self.uncommitted.front() {
            if i > committed {
                break;
            }
            self.uncommitted_bytes -= size;
            self.uncommitted.pop_front();
        }
    }

    /// The driver persisted the log up to `index` (with `term`): for a leader this is its
    /// own vote in the commit quorum — never past a write still in flight
    /// (`unsynced_from`; see `check_invariants`).
    pub(crate) fn on_persisted(&mut self, index: Index, term: Term) {
        if self.role != Role::Leader || self.log.term(index).ok() != Some(term) {
            return;
        }
        let index = match self.unsynced_from {
            Some(from) => index.min(from - 1),
            None => index,
        };
        let id = self.id;
        if let Some(pr) = self.progress.get_mut(&id) {
            pr.maybe_update(index);
        }
        self.maybe_commit();
    }
}
