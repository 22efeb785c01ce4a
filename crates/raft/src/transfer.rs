//! Leadership transfer (dissertation §3.10).
//!
//! The leader (1) stops accepting proposals and membership changes, so the target can
//! catch up with a log that no longer grows; (2) brings the target's log up to date by
//! ordinary replication; (3) sends it `TimeoutNow`, on which the target campaigns at
//! once (no pre-vote) with votes marked as a hand-off, which voters grant even inside
//! the check-quorum lease. The target's higher term then deposes the old leader. If the
//! target has not taken over within an election timeout (crashed, partitioned, too
//! slow), the leader abandons the transfer and accepts proposals again.
//!
//! Safety is unchanged: the target still needs a majority's votes under the usual
//! up-to-date rule (§5.4.1); a hand-off only skips waiting.
//!
//! Invariant: `lead_transferee` is set only on a leader, and only to a voter other than
//! itself.

use crate::error::{RaftError, Result};
use crate::message::MessageBody;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{NodeId, Role};

impl<S: Storage> Raft<S> {
    /// Starts handing leadership to `to`. A transfer already under way to another node
    /// is replaced; one to `to` itself continues (its timeout is not restarted).
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<()> {
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader { hint: self.leader });
        }
        if to == self.id {
            return Err(RaftError::InvalidTransfer {
                id: to,
                reason: "it is already the leader",
            });
        }
        if !self.is_voter(to) {
            return Err(RaftError::InvalidTransfer {
                id: to,
                reason: "it is not a voter",
            });
        }
        if self.lead_transferee == Some(to) {
            return Ok(());
        }
        self.lead_transferee = Some(to);
        self.transfer_elapsed = 0;
        if !self.maybe_send_timeout_now(to) {
            self.send_append(to, true);
        }
        Ok(())
    }

    /// Leader: the other voter whose log matches the most of ours (lowest id on a
    /// tie), the natural target of a transfer; `None` on a follower or a lone voter.
    pub fn best_transfer_target(&self) -> Option<NodeId> {
        self.progress
            .iter()
            .filter(|(&id, _)| id != self.id && self.is_voter(id))
            .max_by_key(|(&id, pr)| (pr.matched, std::cmp::Reverse(id)))
            .map(|(&id, _)| id)
    }

    /// Sends `TimeoutNow` if `to` is the transfer's target and holds the whole log.
    pub(crate) fn maybe_send_timeout_now(&mut self, to: NodeId) -> bool {
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|pr| pr.matched == self.log.last_index());
        if self.lead_transferee != Some(to) || !caught_up {
            return false;
        }
        self.send(to, self.term, MessageBody::TimeoutNow);
        true
    }

    /// Leader tick: abandons a transfer that has not completed within an election timeout.
    pub(crate) fn tick_transfer(&mut self) {
        if self.lead_transferee.is_none() {
            return;
        }
        self.transfer_elapsed += 1;
        if self.transfer_elapsed >= self.cfg.election_ticks {
            self.lead_transferee = None;
        }
    }
}
