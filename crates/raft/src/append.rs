//! Follower side of AppendEntries and heartbeats (Figure 2, "AppendEntries RPC",
//! receiver implementation), with the fast-backtracking hint on rejection.
//!
//! A reply attests to what this node has persisted, so it travels in the
//! "after persist" message list (see `Raft::send`).

use crate::membership::ConfChangeEntry;
use crate::message::{MessageBody, RejectHint};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Entry, EntryKind, Index, NodeId, Term};

impl<S: Storage> Raft<S> {
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    ) {
        if !entries_well_formed(prev_index, prev_term, self.term, &entries) {
            return; // malformed: ignore rather than trust it
        }
        let committed = self.log.committed();
        if prev_index < committed {
            // Everything up to our commit index matches the leader's (Log Matching): tell it
            // where we are so it resumes from there.
            let body = MessageBody::AppendResponse {
                reject: false,
                index: committed,
                hint: None,
            };
            return self.send(from, self.term, body);
        }
        let body = match self
            .log
            .maybe_append(prev_index, prev_term, commit, &entries)
        {
            Some(last_new) => {
                self.track_appended_memberships(&entries);
                MessageBody::AppendResponse {
                    reject: false,
                    index: last_new,
                    hint: None,
                }
            }
            None => MessageBody::AppendResponse {
                reject: true,
                index: prev_index,
                hint: Some(self.reject_hint(prev_index)),
            },
        };
        self.send(from, self.term, body);
    }

    /// Memberships take effect when appended (`membership`): the ones `entries` carry
    /// replace whatever the log held at their positions, and any the append truncated go.
    fn track_appended_memberships(&mut self, entries: &[Entry]) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let added = entries
            .iter()
            .filter(|e| e.kind == EntryKind::ConfChange)
            .filter_map(|e| Some((e.index, ConfChangeEntry::decode(&e.data)?.membership)))
            .collect();
        let last_index = self.log.last_index();
        self.conf
            .on_append(first.index, last.index, last_index, added);
    }

    /// Where the leader should retry: the first index of our conflicting term, or our
    /// log end when our log is too short.
    fn reject_hint(&self, prev_index: Index) -> RejectHint {
        let last = self.log.last_index();
        if prev_index > last {
            return RejectHint {
                conflict_term: None,
                conflict_index: last + 1,
            };
        }
        match self.log.term(prev_index) {
            Ok(t) => {
                let floor = self.log.committed() + 1;
                RejectHint {
                    conflict_term: Some(t),
                    conflict_index: self.log.first_index_of_term(prev_index, t, floor),
                }
            }
            Err(_) => RejectHint {
                conflict_term: None,
                conflict_index: self.log.committed() + 1,
            },
        }
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, commit: Index, read_round: u64) {
        // The leader caps `commit` at our match index, so our log matches up to it.
        if commit <= self.log.last_index() {
            self.log.commit_to(commit);
        }
        self.send(
            from,
            self.term,
            MessageBody::HeartbeatResponse { read_round },
        );
    }
}

/// Entries must be contiguous after `prev_index`, with terms non-decreasing from
/// `prev_term` and no later than the sender's term.
fn entries_well_formed(
    prev_index: Index,
    prev_term: Term,
    msg_term: Term,
    entries: &[Entry],
) -> bool {
    let mut min_term = prev_term;
    for (expect_index, e) in (prev_index + 1..).zip(entries) {
        if e.index != expect_index || e.term < min_term || e.term > msg_term {
            return false;
        }
        min_term = e.term;
    }
    prev_term <= msg_term
}
