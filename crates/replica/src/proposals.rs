//! Pending proposals: the log slot (index, term) each accepted proposal got,
//! and the token to answer when that slot is applied.
//!
//! Invariants: at most one pending proposal per index (a later term's
//! proposal displaces an earlier one, which then ends `Unknown`); every pending proposal was
//! made in a term this node led. A proposal is answered exactly once:
//! `Applied` when its own entry (same index *and* term) applies, `Unknown`
//! when the slot applies with another entry, is covered by a snapshot, or the
//! node stops leading the proposal's term.

use std::collections::BTreeMap;

use raft::{Index, NodeId, Term};

use crate::outcome::{Completion, Outcome, Token};

#[derive(Debug)]
pub struct Proposals {
    // Invariant: keys are distinct log indexes of entries this node appended as leader.
    by_index: BTreeMap<Index, (Term, Token)>,
    /// Proposals whose slot a later-term proposal of this node took before
    /// a drive noticed (the host fed many inputs between drives); answered
    /// `Unknown` by the next `retain_term`.
    displaced: Vec<Token>,
    /// Invariant: no pending proposal's term is below this (`Term::MAX` when
    /// none is pending). It may be lower than the true least term (removals
    /// leave it); `retain_term` skips its scan only when it shows that every
    /// proposal is of the leading term.
    min_term: Term,
}

impl Default for Proposals {
    fn default() -> Self {
        Proposals {
            by_index: BTreeMap::new(),
            displaced: Vec::new(),
            min_term: Term::MAX,
        }
    }
}

impl Proposals {
    /// Records a proposal at (index, term). A pending proposal of an earlier
    /// term at the same index (this node lost and regained leadership between
    /// drives, and its log was overwritten there) is displaced.
    pub fn insert(&mut self, index: Index, term: Term, token: Token) {
        self.min_term = self.min_term.min(term);
        if let Some((t, old)) = self.by_index.insert(index, (term, token)) {
            assert!(
                t < term,
                "two proposals at index {index} in terms {t} and {term}"
            );
            self.displaced.push(old);
        }
    }

    pub fn len(&self) -> usize {
        self.by_index.len() + self.displaced.len()
    }

    /// The entry (index, term) was applied with `response`: answers the
    /// proposal at `index`, if any.
    pub fn on_applied<M: rsm::StateMachine>(
        &mut self,
        index: Index,
        term: Term,
        response: &M::Response,
        out: &mut Vec<Completion<M>>,
    ) {
        let Some((t, token)) = self.by_index.remove(&index) else {
            return;
        };
        let outcome = if t == term {
            Outcome::Applied(response.clone())
        } else {
            Outcome::Unknown { hint: None }
        };
        out.push(Completion { token, outcome });
    }

    /// A snapshot covering `..=index` was installed: proposals it covers
    /// cannot be told apart from entries of other leaders.
    pub fn on_snapshot<M: rsm::StateMachine>(
        &mut self,
        index: Index,
        out: &mut Vec<Completion<M>>,
    ) {
        let rest = self.by_index.split_off(&(index + 1));
        let covered = std::mem::replace(&mut self.by_index, rest);
        for (_, (_, token)) in covered {
            out.push(Completion {
                token,
                outcome: Outcome::Unknown { hint: None },
            });
        }
    }

    /// Fails every proposal not made in `leading_term` (`None`: the node does
    /// not lead now, so it fails all).
    pub fn retain_term<M: rsm::StateMachine>(
        &mut self,
        leading_term: Option<Term>,
        hint: Option<NodeId>,
        out: &mut Vec<Completion<M>>,
    ) {
        for token in self.displaced.drain(..) {
            out.push(Completion {
                token,
                outcome: Outcome::Unknown { hint },
            });
        }
        // Every drive calls this twice, nearly always keeping everything: no scan
        // when every proposal is of the leading term (none is of a later one:
        // proposals are made in terms this node led, and it leads the latest).
        if leading_term.is_some_and(|t| self.min_term >= t) {
            return;
        }
        self.min_term = leading_term.unwrap_or(Term::MAX);
        self.by_index.retain(|_, &mut (term, token)| {
            let keep = Some(term) == leading_term;
            if !keep {
                out.push(Completion {
                    token,
                    outcome: Outcome::Unknown { hint },
                });
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proposal displaced by a later term's proposal at the same index is
    /// answered `Unknown` (it was overwritten, never applied), not a panic.
    #[test]
    fn a_later_terms_proposal_displaces_an_earlier_one() {
        let mut p = Proposals::default();
        p.insert(10, 5, 1);
        p.insert(10, 7, 2);
        assert_eq!(p.len(), 2);
        let mut out: Vec<Completion<kv::StateMachine>> = Vec::new();
        p.retain_term(Some(7), None, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].token, 1);
        assert!(matches!(out[0].outcome, Outcome::Unknown { .. }));
        assert_eq!(p.len(), 1);
    }

    /// Proposals of an earlier term fail once the node leads a later one, also
    /// after drives that kept everything (the scan is skipped only while every
    /// proposal is of the leading term).
    #[test]
    fn a_new_term_fails_the_earlier_terms_proposals() {
        let mut p = Proposals::default();
        let mut out: Vec<Completion<kv::StateMachine>> = Vec::new();
        p.insert(10, 5, 1);
        p.insert(11, 5, 2);
        p.retain_term(Some(5), None, &mut out);
        assert!(out.is_empty());
        p.insert(12, 7, 3);
        p.retain_term(Some(7), None, &mut out);
        let failed: Vec<Token> = out.iter().map(|c| c.token).collect();
        assert_eq!(failed, vec![1, 2]);
        assert_eq!(p.len(), 1);
        p.retain_term(None, None, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(p.len(), 0);
        p.insert(13, 9, 4);
        p.retain_term(Some(9), None, &mut out);
        assert_eq!(p.len(), 1, "a fresh proposal of the leading term stays");
    }
}
