//! ReadIndex (dissertation §6.4): linearizable reads without log entries.
//!
//! The leader records its commit index, confirms it is still the leader with one
//! heartbeat round, and then lets the read be served once that index is applied.
//! Reads requested before the next heartbeat broadcast join the same round, so a burst
//! of reads costs one round. A leader that has not yet committed an entry of its own
//! term does not know the true commit index: reads wait until its no-op commits.
//!
//! A round's heartbeat goes only to as many followers as make a majority with the
//! leader, those heard from most recently (in a group of three: one follower, not
//! two): confirming takes a majority's acknowledgements, never everyone's, and every
//! follower asked costs a message and a thread wake-up on each end. A round still
//! unconfirmed a tick after it went out (a chosen follower is slow or gone) is asked
//! of every follower ([`Raft::resend_read_rounds`]); the periodic heartbeat carries the
//! newest round to every follower anyway.
//!
//! Invariant: `rounds` is ordered by id; an acknowledgement of round `r` confirms every
//! round `<= r` (it was sent after all of them started). Only voters' acknowledgements
//! count toward a round, whoever was asked.

use std::collections::{BTreeSet, VecDeque};

use crate::message::MessageBody;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Index, NodeId, ReadState};

/// One heartbeat round confirming leadership for a batch of reads.
#[derive(Debug)]
pub(crate) struct ReadRound {
    pub id: u64,
    pub index: Index,
    /// (requester, ctx) pairs answered when the round is confirmed.
    pub requests: Vec<(NodeId, u64)>,
    pub acks: BTreeSet<NodeId>,
    /// Whether the round's heartbeat has gone out (an unsent round still takes new reads).
    pub sent: bool,
}

#[derive(Debug, Default)]
pub struct ReadOnly {
    pub(crate) rounds: VecDeque<ReadRound>,
    /// Reads that arrived before this leader committed an entry of its term.
    pub(crate) waiting_for_commit: Vec<(NodeId, u64)>,
    next_round: u64,
    /// The newest round whose heartbeat went to only some followers since the last
    /// tick.
    partial: Option<u64>,
    /// `partial` as of the last tick: if it (or an earlier round) is still unconfirmed
    /// at the next tick, every follower is asked.
    overdue: Option<u64>,
}

impl ReadOnly {
    pub(crate) fn latest_round(&self) -> u64 {
        self.rounds.back().map_or(0, |r| r.id)
    }
}

impl<S: Storage> Raft<S> {
    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed()).ok() == Some(self.term)
    }

    pub(crate) fn leader_read_index(&mut self, from: NodeId, ctx: u64) {
        if !self.committed_in_current_term() {
            self.read_only.waiting_for_commit.push((from, ctx));
            return;
        }
        let index = self.log.committed();
        if self.has_quorum(&[self.id]) {
            // We alone are a majority of the voters: nobody else can lead this term.
            return self.answer_read(from, ctx, index);
        }
        let ro = &mut self.read_only;
        match ro.rounds.back_mut() {
            Some(round) if !round.sent => {
                // Joining an unsent round: its index may only move forward (a later
                // request must see every write acknowledged before it).
                round.index = index;
                round.requests.push((from, ctx));
            }
            _ => {
                ro.next_round += 1;
                let acks = BTreeSet::from([self.id]);
                let id = ro.next_round;
                ro.rounds.push_back(ReadRound {
                    id,
                    index,
                    requests: vec![(from, ctx)],
                    acks,
                    sent: false,
                });
            }
        }
    }

    /// Sends the heartbeat of the newest round if it has not gone out (called when the
    /// driver collects a `Ready`, so concurrent reads share it).
    pub(crate) fn flush_read_rounds(&mut self) {
        let Some(round) = self.read_only.rounds.back_mut() else {
            return;
        };
        if round.sent {
            return;
        }
        round.sent = true;
        let id = round.id;
        let others = self.others();
        let targets = self.read_round_targets(&others);
        if targets.len() < others.len() {
            self.read_only.partial = Some(id);
        }
        for to in targets {
            self.send_heartbeat(to, id);
        }
    }

    /// The followers a read round asks (module docs): voters in order of how recently
    /// each was heard from (then by id), until they and this leader are a majority;
    /// every follower if they cannot be.
    fn read_round_targets(&self, others: &[NodeId]) -> Vec<NodeId> {
        let mut voters: Vec<NodeId> = others
            .iter()
            .copied()
            .filter(|p| self.conf.current().voters.contains(p))
            .collect();
        voters.sort_by_key(|p| (self.progress[p].silent_ticks, *p));
        let mut asked = vec![self.id];
        for p in voters {
            if self.has_quorum(&asked) {
                break;
            }
            asked.push(p);
        }
        if !self.has_quorum(&asked) {
            return others.to_vec();
        }
        asked.retain(|&p| p != self.id);
        asked
    }

    /// On a leader's tick without a periodic heartbeat: a round asked of only some
    /// followers a tick ago or more and still unconfirmed is asked of every follower
    /// (module docs). A round younger than a tick waits (rounds go out back to back
    /// under load: one is nearly always in flight when a tick comes).
    pub(crate) fn resend_read_rounds(&mut self) {
        let overdue = std::mem::replace(&mut self.read_only.overdue, self.read_only.partial.take());
        if let Some(id) = overdue {
            if self.read_only.rounds.front().is_some_and(|r| r.id <= id) {
                self.read_only.overdue = None;
                self.broadcast_heartbeat();
            }
        }
    }

    /// The periodic heartbeat carries the newest round to every follower.
    pub(crate) fn read_rounds_sent_to_all(&mut self) {
        self.read_only.partial = None;
        self.read_only.overdue = None;
    }

    /// Only voters' acknowledgements count toward the majority (a learner's, or this
    /// leader's own once it is being removed, confirm nothing).
    pub(crate) fn ack_read_round(&mut self, from: NodeId, round_id: u64) {
        let mut confirmed = None;
        for i in 0..self.read_only.rounds.len() {
            let round = &mut self.read_only.rounds[i];
            if round.id > round_id {
                break;
            }
            round.acks.insert(from);
            let id = round.id;
            if self.has_quorum(&self.read_only.rounds[i].acks) {
                confirmed = Some(id);
            }
        }
        let Some(upto) = confirmed else { return };
        while self.read_only.rounds.front().is_some_and(|r| r.id <= upto) {
            let round = self.read_only.rounds.pop_front().expect("round");
            for (from, ctx) in round.requests {
                self.answer_read(from, ctx, round.index);
            }
        }
    }

    fn answer_read(&mut self, from: NodeId, ctx: u64, index: Index) {
        if from == self.id {
            self.read_states.push(ReadState { ctx, index });
        } else {
            self.send(
                from,
                self.term,
                MessageBody::ReadIndexResponse {
                    ctx,
                    index: Some(index),
                },
            );
        }
    }

    /// Called when the commit index moved: reads waiting for this term's first commit go.
    pub(crate) fn on_commit_advanced(&mut self) {
        if self.read_only.waiting_for_commit.is_empty() || !self.committed_in_current_term() {
            return;
        }
        for (from, ctx) in std::mem::take(&mut self.read_only.waiting_for_commit) {
            self.leader_read_index(from, ctx);
        }
    }

    /// Leadership lost: pending reads cannot be confirmed. Forwarded ones are told so;
    /// local ones are dropped (the application times them out and retries).
    pub(crate) fn fail_pending_reads(&mut self) {
        self.read_rounds_sent_to_all();
        let mut failed: Vec<(NodeId, u64)> = std::mem::take(&mut self.read_only.waiting_for_commit);
        for round in std::mem::take(&mut self.read_only.rounds) {
            failed.extend(round.requests);
        }
        let term = self.term;
        for (from, ctx) in failed {
            if from != self.id {
                self.msgs.push(crate::message::Message {
                    from: self.id,
                    to: from,
                    term,
                    body: MessageBody::ReadIndexResponse { ctx, index: None },
                });
            }
        }
    }
}
