//! Whether a membership change would put the group's availability at risk, judged on
//! the leader from what it hears: the operator's guard rail, not a safety rule (the
//! log stays consistent either way; `membership` has those rules). The application
//! refuses a hazardous change unless the operator insists (`--force`).
//!
//! A change is hazardous when, once in force,
//! - a voter counts toward the quorum before it has caught up or while the leader
//!   does not hear from it: adding a voter directly (it is never known to be caught
//!   up: add it as a learner first), or promoting a learner that is silent or behind;
//! - the remaining voters the leader hears from are fewer than a quorum of the new
//!   voter set (a removal that would leave the group unable to commit).
//!
//! "Heard from" means an answer within the last election timeout
//! (`Progress::silent_ticks`); a member is presumed heard for one election timeout
//! after the leader was elected or the member added. "Caught up" follows etcd's rule
//! for promoting a learner: it holds at least 90% of the committed log.
//!
//! Invariant: pure: nothing here changes state; a follower finds no hazard (the
//! change is refused as `NotLeader` anyway).

use crate::membership::ConfChange;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::NodeId;

/// A learner is caught up once it holds this share (in percent) of the committed log.
pub const CAUGHT_UP_PERCENT: u64 = 90;

impl<S: Storage> Raft<S> {
    /// Leader: whether `id` (this node included) answered within the last election
    /// timeout. `false` for a node the leader does not replicate to.
    pub fn hears_from(&self, id: NodeId) -> bool {
        id == self.id
            || self
                .progress
                .get(&id)
                .is_some_and(|pr| pr.silent_ticks < self.cfg.election_ticks)
    }

    /// Leader: the log index `id` is known to hold (0 if unknown).
    /// On the leader: `Some(last_index)` when follower `id` last said its
    /// log ends before the index it had acknowledged (see
    /// `Progress::lost_log`): it lost durable state and must be replaced.
    pub fn lost_log(&self, id: NodeId) -> Option<u64> {
        self.progress.get(&id).and_then(|pr| pr.lost_log)
    }

    pub fn matched(&self, id: NodeId) -> u64 {
        if id == self.id {
            return self.log.last_index();
        }
        self.progress.get(&id).map_or(0, |pr| pr.matched)
    }

    /// Leader: whether `id` holds at least [`CAUGHT_UP_PERCENT`] of the committed log.
    pub fn is_caught_up(&self, id: NodeId) -> bool {
        self.matched(id).saturating_mul(100)
            >= self.log.committed().saturating_mul(CAUGHT_UP_PERCENT)
    }

    /// Why `change` would risk the group's availability, if it would (see the
    /// module docs); `None` for a safe change, on a follower, and for a change the
    /// membership refuses anyway (`propose_conf_change` then says why).
    pub fn conf_change_hazard(&self, change: &ConfChange) -> Option<String> {
        if self.role != crate::types::Role::Leader || self.conf.current().apply(change).is_err() {
            return None;
        }
        match *change {
            ConfChange::AddVoter { id, .. } => Some(format!(
                "node {id} would count toward the quorum at once, before it has caught up \
                 (and whether it is reachable is unknown): add it as a learner first, \
                 promote it once it has caught up"
            )),
            ConfChange::AddLearner { .. } => None,
            ConfChange::Promote { id } => self.promote_hazard(id),
            ConfChange::Remove { id } => self.remove_hazard(id),
        }
    }

    fn promote_hazard(&self, id: NodeId) -> Option<String> {
        if !self.hears_from(id) {
            return Some(format!(
                "learner {id} has not answered the leader for an election timeout: \
                 as a voter it would count against the quorum while down"
            ));
        }
        let (matched, committed) = (self.matched(id), self.log.committed());
        if !self.is_caught_up(id) {
            return Some(format!(
                "learner {id} has not caught up (it holds the log up to index {matched}, \
                 {committed} is committed): wait until it has, then promote it"
            ));
        }
        None
    }

    fn remove_hazard(&self, id: NodeId) -> Option<String> {
        let current = self.conf.current();
        if !current.is_voter(id) {
            return None;
        }
        let remaining: Vec<NodeId> = current
            .voters
            .iter()
            .copied()
            .filter(|&v| v != id)
            .collect();
        let silent: Vec<String> = remaining
            .iter()
            .filter(|&&v| !self.hears_from(v))
            .map(|v| v.to_string())
            .collect();
        let heard = remaining.len() - silent.len();
        let quorum = crate::quorum::majority(remaining.len());
        (heard < quorum).then(|| {
            format!(
                "after removing node {id}, the leader hears from {heard} of the {} remaining \
                 voters (not from node {}), fewer than the {quorum} a quorum needs: the group \
                 could not commit anything until they return",
                remaining.len(),
                silent.join(", node ")
            )
        })
    }
}
