//! Leader election (§5.2) with pre-vote (dissertation §9.6) and role transitions.
//!
//! Safety: a node grants at most one vote per term (the vote is persisted before the
//! response leaves, see `Raft::send`), and only to a candidate whose log is at least as
//! up-to-date as its own (§5.4.1). Pre-votes change no state.

use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::quorum::{vote_result, VoteResult};
use crate::raft::{next_term, Raft};
use crate::storage::Storage;
use crate::types::{Entry, NodeId, Role, Term};

impl<S: Storage> Raft<S> {
    pub fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.abandon_leadership();
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_timer();
    }

    fn abandon_leadership(&mut self) {
        if self.role == Role::Leader {
            self.fail_pending_reads();
        }
        self.progress.clear();
        self.lead_transferee = None;
        self.pending_broadcast = false;
        self.uncommitted.clear();
        self.uncommitted_bytes = 0;
    }

    /// Starts an election: a pre-vote round first when enabled. Only voters campaign
    /// (learners, removed nodes and nodes still joining never do).
    pub(crate) fn campaign(&mut self) {
        if next_term(self.term).is_none() || !self.is_voter(self.id) {
            // Every term is used up (unreachable in practice: MAX_TERM), or we are not
            // a voter: reset the timer so we do not retry every tick.
            self.reset_election_timer();
            return;
        }
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// TimeoutNow from the leader (dissertation §3.10): campaign at once, skipping the
    /// pre-vote round, with votes marked as a hand-off so the lease does not block them.
    pub(crate) fn campaign_transfer(&mut self) {
        if next_term(self.term).is_none() || !self.is_voter(self.id) {
            return;
        }
        self.become_candidate(true);
    }

    fn become_pre_candidate(&mut self) {
        self.abandon_leadership();
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(true, false);
    }

    fn become_candidate(&mut self, transfer: bool) {
        self.abandon_leadership();
        self.role = Role::Candidate;
        self.term = next_term(self.term).expect("campaign checked the term bound");
        self.vote = Some(self.id);
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(false, transfer);
    }

    fn request_votes(&mut self, pre: bool, transfer: bool) {
        self.votes.insert(self.id, true);
        if self.tally() != VoteResult::Pending {
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let term = if pre {
            next_term(self.term).expect("campaign checked the term bound")
        } else {
            self.term
        };
        for to in self.other_voters() {
            let body = if pre {
                MessageBody::PreVote {
                    last_index,
                    last_term,
                }
            } else {
                MessageBody::Vote {
                    last_index,
                    last_term,
                    transfer,
                }
            };
            self.send(to, term, body);
        }
    }

    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) {
        if !self.is_voter(from) {
            return; // only voters count
        }
        self.votes.entry(from).or_insert(granted);
        self.tally();
    }

    /// Acts on the campaign's outcome so far.
    fn tally(&mut self) -> VoteResult {
        let result = vote_result(self.conf.current().voters.len(), &self.votes);
        match result {
            VoteResult::Won if self.role == Role::PreCandidate => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
        result
    }

    fn become_leader(&mut self) {
        debug_assert_eq!(self.role, Role::Candidate);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next = self.log.last_index() + 1;
        self.progress.clear();
        self.progress.insert(self.id, Progress::new(next));
        self.sync_progress();
        // Only what is durable counts (an unsynced tail of an earlier leadership does not).
        let persisted = match self.unsynced_from {
            Some(from) => self.log.persisted_index().min(from - 1),
            None => self.log.persisted_index(),
        };
        let me = self.progress.get_mut(&self.id).expect("self progress");
        me.matched = persisted;
        me.become_replicate();
        me.recent_active = true;
        // §5.4.2 / dissertation §6.4: commit an entry of our own term at once; it commits
        // every earlier entry and gates ReadIndex.
        let noop = Entry::noop(self.term, next);
        self.append_as_leader(vec![noop]);
    }

    /// RequestVote / PreVote receiver (Figure 2, §5.2, §5.4.1, dissertation §9.6).
    pub(crate) fn handle_vote_request(&mut self, m: Message) {
        let (pre, last_index, last_term) = match m.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => (true, last_index, last_term),
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => (false, last_index, last_term),
            _ => return,
        };
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && m.term > self.term);
        let grant = can_vote && self.log.is_up_to_date(last_index, last_term);
        if pre {
            // A granted pre-vote echoes the asked term so the asker counts it.
            let term = if grant { m.term } else { self.term };
            self.send(
                m.from,
                term,
                MessageBody::PreVoteResponse { reject: !grant },
            );
            return;
        }
        if grant {
            debug_assert!(
                self.vote.is_none() || self.vote == Some(m.from),
                "one vote per term"
            );
            self.vote = Some(m.from);
            self.election_elapsed = 0;
        }
        self.send(
            m.from,
            self.term,
            MessageBody::VoteResponse { reject: !grant },
        );
    }
}
