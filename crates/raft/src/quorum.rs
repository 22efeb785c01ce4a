//! Pure majority math: the commit index a set of match indexes supports, and the
//! outcome of a vote. No state, so it is checked against a naive model in tests.

use std::collections::BTreeMap;

use crate::types::{Index, NodeId};

/// The largest index that a majority of `matched` (one value per voter) has reached.
pub fn committed_index(matched: &mut [Index]) -> Index {
    if matched.is_empty() {
        return 0;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[majority(matched.len()) - 1]
}

/// Votes needed for a majority of `voters`.
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// Tallies `votes` (true = granted) among `voters` voters.
pub fn vote_result(voters: usize, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let granted = votes.values().filter(|&&g| g).count();
    let rejected = votes.len() - granted;
    let need = majority(voters);
    if granted >= need {
        VoteResult::Won
    } else if voters - rejected < need {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive model: the largest i such that at least a majority have matched >= i.
    fn naive(matched: &[Index]) -> Index {
        let max = matched.iter().copied().max().unwrap_or(0);
        (0..=max)
            .rev()
            .find(|&i| matched.iter().filter(|&&m| m >= i).count() >= majority(matched.len()))
            .unwrap_or(0)
    }

    proptest! {
        #[test]
        fn committed_index_matches_naive(mut v in proptest::collection::vec(0u64..50, 1..8)) {
            let expect = naive(&v);
            prop_assert_eq!(committed_index(&mut v), expect);
        }
    }

    #[test]
    fn vote_outcomes() {
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        assert_eq!(vote_result(3, &votes), VoteResult::Pending);
        votes.insert(2, false);
        assert_eq!(vote_result(3, &votes), VoteResult::Pending);
        votes.insert(3, false);
        assert_eq!(vote_result(3, &votes), VoteResult::Lost);
        votes.insert(3, true);
        assert_eq!(vote_result(3, &votes), VoteResult::Won);
        assert_eq!(
            vote_result(1, &BTreeMap::from([(1, true)])),
            VoteResult::Won
        );
    }
}
