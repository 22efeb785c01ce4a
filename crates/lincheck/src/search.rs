//! The search over one partition: Wing & Gong's algorithm with Lowe's
//! memoisation, as in Porcupine.
//!
//! Walk the event list from the head. At a call, try to linearize that
//! operation now: step the model; if the resulting (linearized set, state)
//! was never seen, lift the operation out of the list, push it on the stack
//! and restart from the head. At a return of an operation not yet
//! linearized, nothing left of it can be ordered before that return:
//! backtrack by popping the last linearized operation and trying the next
//! entry after it. The history is linearizable when every operation with a
//! known outcome has been lifted; operations with unknown outcome never have
//! to be (their return is at infinity, after every other entry).
//!
//! One pruning rule on top: a read-only operation (per
//! [`Model::is_read_only`]) that is legal now is linearized now, before any
//! other candidate, and if that fails there is no point trying alternatives
//! at this level. Proof sketch:
//! take any successful completion of the current prefix that places the read
//! later. Every operation that must precede the read is already in the
//! prefix (it is a candidate), and the read leaves the state unchanged, so
//! moving it to right after the prefix gives another successful completion.
//! Hence "prefix + read" has a completion iff "prefix" has one.

use std::collections::HashSet;

use crate::bitset::Bitset;
use crate::entries::EntryList;
use crate::fxhash::FxBuildHasher;
use crate::history::Operation;
use crate::model::Model;

/// How many candidate operations a dead end reports at most.
const MAX_CANDIDATES: usize = 16;

/// What the search of one partition found.
pub(crate) enum SearchOutcome<S> {
    Linearizable,
    Illegal(DeadEnd<S>),
    /// The step budget ran out first.
    Exhausted,
}

/// The deepest point the search reached before failing: indices are into
/// the partition's operation list.
pub(crate) struct DeadEnd<S> {
    /// Operations linearized, in order.
    pub prefix: Vec<usize>,
    /// The model state after `prefix`.
    pub state: S,
    /// The operation whose return was reached while it could not be placed.
    pub blocked: usize,
    /// Operations (other than `prefix`) called before `blocked` returned.
    pub candidates: Vec<usize>,
}

/// The search's mutable state, so helpers stay small.
struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a Operation<M::Input, M::Output>],
    list: EntryList,
    linearized: Bitset,
    seen: HashSet<(Bitset, M::State), FxBuildHasher>,
    /// Per operation: whether its input is read-only.
    read_only: Vec<bool>,
    /// (call entry, state before it) for each linearized operation, in order.
    stack: Vec<(usize, M::State)>,
    state: M::State,
    deepest: Option<DeadEnd<M::State>>,
    /// Model steps taken, and the budget.
    steps: u64,
    max_steps: u64,
}

/// Where the search goes next.
enum Next {
    /// Visit this entry.
    Visit(usize),
    /// The prefix grew: linearize legal reads, then scan from the head.
    Restart,
    /// The current prefix has no completion.
    Backtrack,
}

/// Checks one partition's operations, spending at most `max_steps` model
/// steps. Returns the outcome and the steps spent.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    max_steps: u64,
) -> (SearchOutcome<M::State>, u64) {
    let intervals: Vec<_> = ops.iter().map(|o| (o.call, o.return_time())).collect();
    let mut s = Search {
        model,
        ops,
        list: EntryList::new(&intervals),
        linearized: Bitset::new(ops.len()),
        seen: HashSet::default(),
        read_only: ops.iter().map(|o| model.is_read_only(&o.input)).collect(),
        stack: Vec::with_capacity(ops.len()),
        state: model.init(),
        deepest: None,
        steps: 0,
        max_steps,
    };
    let outcome = s.run();
    (outcome, s.steps)
}

impl<M: Model> Search<'_, M> {
    fn run(&mut self) -> SearchOutcome<M::State> {
        let mut next = Next::Restart;
        loop {
            let entry = match next {
                Next::Visit(entry) => entry,
                Next::Restart => match self.linearize_reads() {
                    Some(true) => self.list.first(),
                    Some(false) => {
                        next = Next::Backtrack;
                        continue;
                    }
                    None => return SearchOutcome::Exhausted,
                },
                Next::Backtrack => match self.backtrack() {
                    Some(entry) => entry,
                    None => {
                        return SearchOutcome::Illegal(self.deepest.take().expect("dead end noted"))
                    }
                },
            };
            if self.list.is_tail(entry) {
                return SearchOutcome::Linearizable;
            }
            let op = self.list.op(entry);
            next = if !self.list.is_call(entry) {
                if self.ops[op].is_unknown() {
                    return SearchOutcome::Linearizable;
                }
                self.note_dead_end(entry);
                Next::Backtrack
            } else if self.read_only[op] {
                // `linearize_reads` already found it illegal here.
                Next::Visit(self.list.next(entry))
            } else if !self.spend_step() {
                return SearchOutcome::Exhausted;
            } else {
                self.try_linearize(entry)
            };
        }
    }

    /// Counts one model step; `false` when the budget is spent.
    fn spend_step(&mut self) -> bool {
        if self.steps == self.max_steps {
            return false;
        }
        self.steps += 1;
        true
    }

    /// Linearizes legal read-only candidates until none is left (see the
    /// module docs for why no alternative to them need be tried). Returns
    /// `Some(false)` when one leads to an explored configuration, so the
    /// prefix has no completion; `None` when the budget is spent.
    fn linearize_reads(&mut self) -> Option<bool> {
        'rescan: loop {
            let mut entry = self.list.first();
            while !self.list.is_tail(entry) && self.list.is_call(entry) {
                let op = self.list.op(entry);
                if self.read_only[op] {
                    if !self.spend_step() {
                        return None;
                    }
                    if let Some(next) =
                        self.model
                            .step(&self.state, &self.ops[op].input, self.ops[op].output())
                    {
                        if !self.push(entry, next) {
                            return Some(false);
                        }
                        continue 'rescan;
                    }
                }
                entry = self.list.next(entry);
            }
            return Some(true);
        }
    }

    /// Tries to linearize the (not read-only) operation of call entry
    /// `entry` now.
    fn try_linearize(&mut self, entry: usize) -> Next {
        let op = self.list.op(entry);
        let next = self
            .model
            .step(&self.state, &self.ops[op].input, self.ops[op].output());
        if next.is_some_and(|next| self.push(entry, next)) {
            Next::Restart
        } else {
            Next::Visit(self.list.next(entry))
        }
    }

    /// Linearizes the operation of call entry `entry`, moving to state
    /// `next`, unless that configuration was explored before. Returns whether
    /// it did.
    fn push(&mut self, entry: usize, next: M::State) -> bool {
        let op = self.list.op(entry);
        self.linearized.insert(op);
        if !self.seen.insert((self.linearized.clone(), next.clone())) {
            self.linearized.remove(op);
            return false;
        }
        let before = std::mem::replace(&mut self.state, next);
        self.stack.push((entry, before));
        self.list.lift(entry);
        true
    }

    /// Undoes linearizations until one that has alternatives worth trying
    /// (not read-only, see the module docs). Returns the entry after it, or
    /// `None` when there is nothing left to undo.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let (call, before) = self.stack.pop()?;
            let op = self.list.op(call);
            self.linearized.remove(op);
            self.state = before;
            self.list.unlift(call);
            if !self.read_only[op] {
                return Some(self.list.next(call));
            }
        }
    }

    /// Remembers this dead end if it is the deepest so far.
    fn note_dead_end(&mut self, ret_entry: usize) {
        if self
            .deepest
            .as_ref()
            .is_some_and(|d| d.prefix.len() >= self.stack.len())
        {
            return;
        }
        let blocked = self.list.op(ret_entry);
        let mut candidates = Vec::new();
        let mut e = self.list.first();
        while e != ret_entry && candidates.len() < MAX_CANDIDATES {
            if self.list.is_call(e) && self.list.op(e) != blocked {
                candidates.push(self.list.op(e));
            }
            e = self.list.next(e);
        }
        self.deepest = Some(DeadEnd {
            prefix: self
                .stack
                .iter()
                .map(|&(call, _)| self.list.op(call))
                .collect(),
            state: self.state.clone(),
            blocked,
            candidates,
        });
    }
}
