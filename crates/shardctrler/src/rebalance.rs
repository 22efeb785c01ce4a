//! Rebalancing: which group owns each shard after a Join or Leave.
//!
//! Owns [`rebalance`], a pure function of the previous assignment and the
//! new set of groups. Every replica runs it on the same inputs, so it may
//! depend on nothing else: ordered collections only, ties broken by group id
//! and shard number.
//!
//! The rule, for `n` shards over `g` groups (`base = n / g`,
//! `extra = n % g`):
//! 1. targets: `extra` groups own `base + 1` shards, the rest `base`; the
//!    `+1`s go to the groups that own the most shards now (ties: lower group
//!    id), which keeps the most shards where they are;
//! 2. a shard stays with its owner if the owner is still a group and is
//!    within its target (a group over target keeps its lowest-numbered
//!    shards);
//! 3. every other shard (unassigned, owned by a departed group, or a group's
//!    excess) goes, in ascending shard order, to the groups under target in
//!    ascending group-id order.
//!
//! Guarantees (property-tested against a brute-force model in the tests
//! below): with at least one group every shard is owned by one of `groups`
//! and owned counts differ by at most one; with none every shard is
//! [`NO_GROUP`]; the number of shards that change owner is the minimum any
//! balanced assignment could achieve; a balanced assignment over the same
//! groups is returned unchanged.

use std::collections::{BTreeMap, BTreeSet};

use shardmeta::{GroupId, NO_GROUP};

/// The balanced assignment of `prev.len()` shards over `groups` that moves
/// the fewest shards away from `prev`. `groups` must not contain
/// [`NO_GROUP`].
pub fn rebalance(prev: &[GroupId], groups: &BTreeSet<GroupId>) -> Vec<GroupId> {
    assert!(
        !groups.contains(&NO_GROUP),
        "group id {NO_GROUP} cannot own shards"
    );
    if groups.is_empty() {
        return vec![NO_GROUP; prev.len()];
    }
    let targets = targets(prev, groups);
    let mut next = prev.to_vec();
    let mut kept: BTreeMap<GroupId, usize> = groups.iter().map(|&g| (g, 0)).collect();
    let mut free = Vec::new();
    for (shard, owner) in next.iter_mut().enumerate() {
        match kept.get_mut(owner) {
            Some(count) if *count < targets[owner] => *count += 1,
            _ => {
                *owner = NO_GROUP;
                free.push(shard);
            }
        }
    }
    let mut free = free.into_iter();
    for (gid, count) in kept {
        for _ in count..targets[&gid] {
            let shard = free.next().expect("targets sum to the shard count");
            next[shard] = gid;
        }
    }
    assert!(free.next().is_none(), "every free shard found a group");
    next
}

/// How many shards each group should own: `base + 1` for the `extra`
/// groups owning the most shards in `prev` (ties: lower id), else `base`.
fn targets(prev: &[GroupId], groups: &BTreeSet<GroupId>) -> BTreeMap<GroupId, usize> {
    let n = prev.len();
    let (base, extra) = (n / groups.len(), n % groups.len());
    let mut owned: BTreeMap<GroupId, usize> = groups.iter().map(|&g| (g, 0)).collect();
    for owner in prev {
        if let Some(count) = owned.get_mut(owner) {
            *count += 1;
        }
    }
    let mut by_size: Vec<(GroupId, usize)> = owned.into_iter().collect();
    // Stable sort: equal counts keep ascending group-id order.
    by_size.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    by_size
        .iter()
        .enumerate()
        .map(|(rank, &(gid, _))| (gid, base + usize::from(rank < extra)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(gids: &[GroupId]) -> BTreeSet<GroupId> {
        gids.iter().copied().collect()
    }

    fn moved(a: &[GroupId], b: &[GroupId]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    /// The naive model of the fewest moves: try every choice of which
    /// groups get `base + 1` shards and keep the best (a group keeps at
    /// most its target of the shards it owns; everything else moves).
    fn brute_force_min_moves(prev: &[GroupId], groups: &BTreeSet<GroupId>) -> usize {
        if groups.is_empty() {
            return prev.iter().filter(|&&g| g != NO_GROUP).count();
        }
        let gs: Vec<GroupId> = groups.iter().copied().collect();
        let (base, extra) = (prev.len() / gs.len(), prev.len() % gs.len());
        let owned = |g: GroupId| prev.iter().filter(|&&o| o == g).count();
        let mut best_kept = 0;
        for mask in 0u32..(1 << gs.len()) {
            if mask.count_ones() as usize != extra {
                continue;
            }
            let kept: usize = gs
                .iter()
                .enumerate()
                .map(|(i, &g)| owned(g).min(base + usize::from(mask & (1 << i) != 0)))
                .sum();
            best_kept = best_kept.max(kept);
        }
        prev.len() - best_kept
    }

    /// A previous assignment over gids 0..=8 (0: unassigned) and a new
    /// group set drawn from 1..=8.
    fn case() -> impl Strategy<Value = (Vec<GroupId>, BTreeSet<GroupId>)> {
        (
            proptest::collection::vec(0u64..=8, 1..24),
            proptest::collection::btree_set(1u64..=8, 0..7),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn balanced_and_complete((prev, groups) in case()) {
            let next = rebalance(&prev, &groups);
            prop_assert_eq!(next.len(), prev.len());
            if groups.is_empty() {
                prop_assert!(next.iter().all(|&g| g == NO_GROUP));
            } else {
                prop_assert!(next.iter().all(|g| groups.contains(g)));
                let counts: Vec<usize> = groups
                    .iter()
                    .map(|&g| next.iter().filter(|&&o| o == g).count())
                    .collect();
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                prop_assert!(hi - lo <= 1, "counts {:?}", counts);
            }
        }

        #[test]
        fn moves_the_fewest_shards((prev, groups) in case()) {
            let next = rebalance(&prev, &groups);
            prop_assert_eq!(moved(&prev, &next), brute_force_min_moves(&prev, &groups));
        }

        #[test]
        fn deterministic_and_idempotent((prev, groups) in case()) {
            let next = rebalance(&prev, &groups);
            prop_assert_eq!(&rebalance(&prev, &groups.clone()), &next);
            // A balanced assignment is a fixed point: nothing moves.
            prop_assert_eq!(rebalance(&next, &groups), next);
        }
    }

    #[test]
    fn first_join_takes_every_shard_and_last_leave_frees_them() {
        let prev = vec![NO_GROUP; 10];
        assert_eq!(rebalance(&prev, &set(&[7])), vec![7; 10]);
        assert_eq!(rebalance(&[7; 10], &set(&[])), vec![NO_GROUP; 10]);
    }

    #[test]
    fn ties_go_to_the_lower_group_id() {
        // 10 shards over 3 empty groups: the extra shard goes to group 1.
        let next = rebalance(&[NO_GROUP; 10], &set(&[3, 1, 2]));
        assert_eq!(next, vec![1, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    }

    #[test]
    fn join_takes_only_the_excess() {
        let prev = vec![1; 10];
        let next = rebalance(&prev, &set(&[1, 2]));
        assert_eq!(next, vec![1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
        assert_eq!(moved(&prev, &next), 5);
    }

    #[test]
    fn more_groups_than_shards_leaves_some_idle() {
        let next = rebalance(&[1, 2, 3], &set(&[1, 2, 3, 4, 5]));
        assert_eq!(next, vec![1, 2, 3]);
        let next = rebalance(&[NO_GROUP; 2], &set(&[4, 5, 6]));
        assert_eq!(next, vec![4, 5]);
    }
}
