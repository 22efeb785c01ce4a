//! Pending ReadIndex reads (dissertation §6.4), in three stages:
//!
//! 1. `queued`: accepted and not yet in a round; all of them share one
//!    `read_index` call (one heartbeat round), started by the first drive
//!    with no round of this node's in flight (etcd's read loop does the
//!    same): reads that arrive while a round is out wait for it and then go
//!    together, so a steady stream of reads costs one round per round trip,
//!    not one per drive (each round is a heartbeat to and an answer from
//!    as many followers as make a majority with the leader, `raft::read_index`:
//!    messages and thread wake-ups on both ends);
//! 2. `confirming`: a `read_index(ctx)` is out, waiting for its `ReadState`;
//! 3. `confirmed`: the read index is known; served once the state machine has
//!    applied it.
//!
//! Invariants: every read is answered exactly once; a read is served only
//! from a state that has applied at least its confirmed read index; reads in
//! stages 1–2 belong to the term in which they were accepted and are aborted
//! when the node stops leading that term (a later leader's ReadState would not
//! be theirs). Confirmed reads stay valid after a leadership change: the
//! index was confirmed while leading.

use std::collections::BTreeMap;

use raft::{Index, NodeId, Term};

use crate::outcome::{Completion, Outcome, Token};

type Batch<M> = Vec<(Token, <M as rsm::StateMachine>::Query)>;

pub struct Reads<M: rsm::StateMachine> {
    queued: Batch<M>,
    /// The term the queued reads were accepted in.
    queued_term: Term,
    /// ctx -> (term, batch).
    confirming: BTreeMap<u64, (Term, Batch<M>)>,
    /// (read index, batch), in arrival order.
    confirmed: Vec<(Index, Batch<M>)>,
    next_ctx: u64,
}

impl<M: rsm::StateMachine> Default for Reads<M> {
    fn default() -> Self {
        Reads {
            queued: Vec::new(),
            queued_term: 0,
            confirming: BTreeMap::new(),
            confirmed: Vec::new(),
            next_ctx: 0,
        }
    }
}

impl<M: rsm::StateMachine> Reads<M> {
    pub fn queue(&mut self, term: Term, token: Token, query: M::Query) {
        if !self.queued.is_empty() && self.queued_term != term {
            // Leadership changed between two drives: park the older batch
            // under a ctx never sent; `retain_term` aborts it next drive.
            self.next_ctx += 1;
            let old = std::mem::take(&mut self.queued);
            self.confirming
                .insert(self.next_ctx, (self.queued_term, old));
        }
        self.queued_term = term;
        self.queued.push((token, query));
    }

    pub fn len(&self) -> usize {
        self.queued.len()
            + self
                .confirming
                .values()
                .map(|(_, b)| b.len())
                .sum::<usize>()
            + self.confirmed.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// Whether a round is in flight: reads queued now wait for it to end.
    pub fn round_in_flight(&self) -> bool {
        !self.confirming.is_empty()
    }

    /// Whether `start_batch` would start a round: reads are queued and no
    /// round is in flight.
    pub fn can_start(&self) -> bool {
        !self.queued.is_empty() && self.confirming.is_empty()
    }

    /// Takes the queued batch and names it with a fresh ctx, if there is one
    /// and no earlier batch is still being confirmed (one round in flight:
    /// the module docs). Call after `retain_term`, which ends batches of
    /// other terms, so a stale batch never holds the queue back.
    pub fn start_batch(&mut self) -> Option<u64> {
        if !self.can_start() {
            return None;
        }
        self.next_ctx += 1;
        let batch = std::mem::take(&mut self.queued);
        self.confirming
            .insert(self.next_ctx, (self.queued_term, batch));
        Some(self.next_ctx)
    }

    /// `read_index(ctx)` refused at once: the batch is aborted.
    pub fn abort_batch(&mut self, ctx: u64, hint: Option<NodeId>, out: &mut Vec<Completion<M>>) {
        if let Some((_, batch)) = self.confirming.remove(&ctx) {
            abort(batch, hint, out);
        }
    }

    /// The leader confirmed `ctx` at `index`.
    pub fn on_read_state(&mut self, ctx: u64, index: Index) {
        if let Some((_, batch)) = self.confirming.remove(&ctx) {
            self.confirmed.push((index, batch));
        }
    }

    /// Serves every confirmed read whose index `sm` has applied.
    pub fn serve(&mut self, sm: &M, out: &mut Vec<Completion<M>>) {
        let applied = sm.applied_index();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(i, _)| *i <= applied);
        self.confirmed = waiting;
        for (_, batch) in ready {
            for (token, query) in batch {
                out.push(Completion {
                    token,
                    outcome: Outcome::Value(sm.query(&query)),
                });
            }
        }
    }

    /// Aborts unconfirmed reads not accepted in `leading_term` (`None`: all).
    pub fn retain_term(
        &mut self,
        leading_term: Option<Term>,
        hint: Option<NodeId>,
        out: &mut Vec<Completion<M>>,
    ) {
        if !self.queued.is_empty() && Some(self.queued_term) != leading_term {
            abort(std::mem::take(&mut self.queued), hint, out);
        }
        let confirming = std::mem::take(&mut self.confirming);
        for (ctx, (term, batch)) in confirming {
            if Some(term) == leading_term {
                self.confirming.insert(ctx, (term, batch));
            } else {
                abort(batch, hint, out);
            }
        }
    }
}

fn abort<M: rsm::StateMachine>(
    batch: Batch<M>,
    hint: Option<NodeId>,
    out: &mut Vec<Completion<M>>,
) {
    for (token, _) in batch {
        out.push(Completion {
            token,
            outcome: Outcome::ReadAborted { hint },
        });
    }
}
