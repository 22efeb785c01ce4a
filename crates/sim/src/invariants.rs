//! Safety properties checked while a simulation runs (Figure 3 of the Raft paper):
//! Election Safety, Log Matching, Leader Completeness and State Machine Safety.
//! A violation panics with context; the test's `SeedGuard` then prints the seed.

use std::collections::BTreeMap;

use raft::log::RaftLog;
use raft::{Index, NodeId, RawNode, Storage, Term};

use crate::cluster::ClusterConfig;
use crate::node::Applied;

#[derive(Default)]
pub struct Invariants {
    /// Election Safety: the one leader of each term seen so far.
    leaders: BTreeMap<Term, NodeId>,
    /// State Machine Safety: the value applied at each index by whoever applied it first.
    applied: BTreeMap<Index, Applied>,
    pub leaders_elected: u64,
}

impl Invariants {
    pub fn on_leader<S: Storage>(
        &mut self,
        id: NodeId,
        term: Term,
        log: &RaftLog<S>,
        _cfg: &ClusterConfig,
    ) {
        self.leaders_elected += 1;
        if let Some(&other) = self.leaders.get(&term) {
            assert_eq!(
                other, id,
                "Election Safety violated: {other} and {id} both lead term {term}"
            );
        }
        self.leaders.insert(term, id);
        // Leader Completeness: a new leader holds every entry anyone applied.
        let first = log.first_index();
        if let Some((&max_applied, _)) = self.applied.iter().next_back() {
            assert!(
                log.last_index() >= max_applied,
                "Leader Completeness violated: leader {id} of term {term} ends at {} but {max_applied} was applied",
                log.last_index()
            );
        }
        for (&index, value) in self.applied.range(first..) {
            let e = log
                .slice(index, index + 1, u64::MAX)
                .expect("entry in leader log");
            let got = crate::node::entry_payload(e[0].kind, &e[0].data);
            assert_eq!(
                &got, value,
                "Leader Completeness violated: leader {id} term {term} index {index}"
            );
        }
    }

    pub fn on_apply(&mut self, id: NodeId, index: Index, value: &Applied) {
        match self.applied.get(&index) {
            Some(v) => assert_eq!(
                v, value,
                "State Machine Safety violated: server {id} applied a different value at {index}"
            ),
            None => {
                self.applied.insert(index, value.clone());
            }
        }
    }

    pub fn on_snapshot_installed(&mut self, id: NodeId, state: &BTreeMap<Index, Applied>) {
        for (&index, value) in state {
            self.on_apply(id, index, value);
        }
    }

    pub fn max_applied_index(&self) -> Index {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }

    pub fn applied_count(&self) -> usize {
        self.applied.len()
    }
}

/// Log Matching: if two logs hold an entry with the same index and term, they are
/// identical up to it. Checks the highest such index and a window before it.
pub fn check_log_matching<S: Storage>(a: &RawNode<S>, b: &RawNode<S>) {
    const WINDOW: u64 = 256;
    let (la, lb) = (a.raft().log(), b.raft().log());
    let lo = la.first_index().max(lb.first_index());
    let hi = la.last_index().min(lb.last_index());
    if lo > hi {
        return;
    }
    let mut i = hi;
    while i >= lo && la.term(i).ok() != lb.term(i).ok() {
        i -= 1;
        if i == 0 {
            return;
        }
    }
    if i < lo {
        return;
    }
    let from = lo.max(i.saturating_sub(WINDOW));
    let ea = la.slice(from, i + 1, u64::MAX).expect("entries");
    let eb = lb.slice(from, i + 1, u64::MAX).expect("entries");
    assert_eq!(
        ea,
        eb,
        "Log Matching violated between {} and {} in {from}..={i}",
        a.raft().id(),
        b.raft().id()
    );
}
