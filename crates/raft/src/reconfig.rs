//! Membership changes on the leader: proposing one (with the rules `membership`
//! explains), keeping the progress tracker in step with the membership, and stepping
//! down once the leader's own removal commits. The follower side is in `append.rs`
//! (memberships arrive with the entries) and `snapshot.rs` (with a snapshot).
//!
//! Invariant (leader): `progress` holds this node, every member of the membership in
//! force, and every member of the membership at the commit index (a member being removed
//! keeps receiving the log until its removal commits, so it usually learns of it and
//! stops campaigning); nobody else.

use crate::error::{RaftError, Result};
use crate::membership::{ConfChange, ConfChangeEntry};
use crate::message::MessageBody;
use crate::progress::Progress;
use crate::raft::{next_index, Raft};
use crate::storage::Storage;
use crate::types::{Entry, EntryKind, Index, Role};

impl<S: Storage> Raft<S> {
    /// Proposes a single-server membership change; returns the index of its entry. It
    /// takes effect on every node as soon as that node appends it.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index> {
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader { hint: self.leader });
        }
        if let Some(to) = self.lead_transferee {
            return Err(RaftError::TransferInProgress { to });
        }
        // Rule 1 (`membership`): an entry of our own term must have committed.
        if self.log.term(self.log.committed()).ok() != Some(self.term) {
            return Err(RaftError::ConfChangeTooEarly { term: self.term });
        }
        // Rule 2: at most one change in flight.
        let pending = self.conf.current_index();
        if pending > self.log.committed() {
            return Err(RaftError::ConfChangePending {
                index: pending,
                committed: self.log.committed(),
            });
        }
        let id = change.id();
        let membership = self
            .conf
            .current()
            .apply(&change)
            .map_err(|reason| RaftError::InvalidConfChange { id, reason })?;
        let Some(index) = next_index(self.log.last_index()) else {
            return Err(RaftError::ProposalDropped {
                uncommitted_bytes: self.uncommitted_bytes,
            });
        };
        let data = ConfChangeEntry {
            change,
            membership: membership.clone(),
        }
        .encode();
        let entry = Entry {
            term: self.term,
            index,
            kind: EntryKind::ConfChange,
            data,
        };
        self.append_as_leader(vec![entry]);
        self.conf.push(index, membership);
        let known: Vec<_> = self.progress.keys().copied().collect();
        self.sync_progress();
        // Probe a new member at once rather than at the next heartbeat.
        if !known.contains(&id) && self.progress.contains_key(&id) {
            self.send_append(id, true);
        }
        // The voter set changed: the commit point may have moved (a removed voter no
        // longer holds it back).
        self.maybe_commit();
        Ok(index)
    }

    /// Brings `progress` in line with the memberships (the invariant above). New
    /// members start probing from the log's end and count as recently active, so one
    /// added just now does not trip check-quorum before it could answer.
    pub(crate) fn sync_progress(&mut self) {
        let mut targets = self.conf.current().members();
        targets.extend(self.conf.at(self.log.committed()).members());
        targets.insert(self.id);
        self.progress.retain(|id, _| targets.contains(id));
        let next = self.log.last_index() + 1;
        for id in targets {
            self.progress.entry(id).or_insert_with(|| {
                let mut pr = Progress::new(next);
                pr.recent_active = true;
                pr
            });
        }
        if let Some(to) = self.lead_transferee {
            if !self.is_voter(to) {
                self.lead_transferee = None;
            }
        }
    }

    /// The commit index moved on the leader: drop members whose removal committed, and
    /// step down if that removed this node (dissertation §4.2.2: a leader that is not in
    /// the new configuration manages the group until the change commits, then leaves).
    /// On the way out it tells everyone the commit index and sends TimeoutNow to the
    /// most up-to-date voter, so the group need not wait an election timeout.
    pub(crate) fn on_leader_commit_membership(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        // On the commit path: no allocation unless someone is being removed.
        let current = self.conf.current();
        let departing = self
            .progress
            .keys()
            .any(|&id| id != self.id && !current.contains(id));
        if departing {
            self.sync_progress();
        }
        let committed = self.log.committed();
        let removed = !self.conf.current().contains(self.id);
        if removed && self.conf.current_index() <= committed {
            self.broadcast_heartbeat();
            let successor = self
                .progress
                .iter()
                .filter(|(id, _)| self.is_voter(**id))
                .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
                .map(|(id, _)| *id);
            if let Some(to) = successor {
                self.send(to, self.term, MessageBody::TimeoutNow);
            }
            self.become_follower(self.term, None);
        }
    }
}
