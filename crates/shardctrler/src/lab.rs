//! The lab's 4A checks, as functions any test can call: the state-machine
//! tests in this crate, and the simulator's replicated catalogue.
//!
//! Owns nothing but these pure checks. Each returns `Err` with a sentence
//! saying what is wrong, so a caller can add its seed or step and panic.

use std::collections::BTreeSet;

use shardmeta::{Config, GroupId, NO_GROUP};

/// The lab's `check(groups, config)`: `config` holds exactly `groups`;
/// with at least one group every shard is owned by one of them, with none
/// every shard is unassigned; owned counts differ by at most one.
pub fn check(groups: &BTreeSet<GroupId>, config: &Config) -> Result<(), String> {
    let n = config.num;
    let have: BTreeSet<GroupId> = config.groups.keys().copied().collect();
    if &have != groups {
        return Err(format!("config {n}: groups {have:?}, expected {groups:?}"));
    }
    config.check()?;
    for (shard, &gid) in config.shards.iter().enumerate() {
        if groups.is_empty() && gid != NO_GROUP {
            return Err(format!(
                "config {n}: shard {shard} owned by {gid} with no groups"
            ));
        }
        if !groups.is_empty() && !groups.contains(&gid) {
            return Err(format!(
                "config {n}: shard {shard} owned by {gid}, not a group"
            ));
        }
    }
    check_balanced(config)
}

/// Owned counts of the groups in `config` differ by at most one (groups
/// owning nothing count as 0). Not true after a Move.
pub fn check_balanced(config: &Config) -> Result<(), String> {
    let counts: Vec<usize> = config
        .groups
        .keys()
        .map(|&g| config.shards_of(g).len())
        .collect();
    let (lo, hi) = (counts.iter().min(), counts.iter().max());
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if hi - lo > 1 {
            return Err(format!(
                "config {}: unbalanced, {counts:?} shards per group",
                config.num
            ));
        }
    }
    Ok(())
}

/// Shards whose owner differs between `a` and `b`.
pub fn moved_shards(a: &Config, b: &Config) -> usize {
    a.shards
        .iter()
        .zip(&b.shards)
        .filter(|(x, y)| x != y)
        .count()
}

/// The fewest shards any balanced assignment over `after`'s groups could
/// move away from `before` (computed on its own, not by the rebalancer):
/// the groups owning the most shards get the `n % g` larger targets, and
/// each keeps at most its target of what it owns.
pub fn min_moves(before: &Config, after: &Config) -> usize {
    let n = before.shards.len();
    let groups: Vec<GroupId> = after.groups.keys().copied().collect();
    if groups.is_empty() {
        return before.shards.iter().filter(|&&g| g != NO_GROUP).count();
    }
    let mut owned: Vec<usize> = groups
        .iter()
        .map(|&g| before.shards.iter().filter(|&&o| o == g).count())
        .collect();
    owned.sort_unstable_by(|a, b| b.cmp(a));
    let (base, extra) = (n / groups.len(), n % groups.len());
    let kept: usize = owned
        .iter()
        .enumerate()
        .map(|(rank, &c)| c.min(base + usize::from(rank < extra)))
        .sum();
    n - kept
}

/// The lab's "minimal transfers after joins": a shard owned in `after` by a
/// group that was already in `before` did not move.
pub fn check_minimal_after_join(before: &Config, after: &Config) -> Result<(), String> {
    for (shard, (&b, &a)) in before.shards.iter().zip(&after.shards).enumerate() {
        if before.groups.contains_key(&a) && a != b {
            return Err(format!(
                "configs {} -> {}: shard {shard} moved from {b} to {a}, both old groups",
                before.num, after.num
            ));
        }
    }
    check_fewest(before, after)
}

/// The lab's "minimal transfers after leaves": a shard whose owner in
/// `before` is still in `after` did not move.
pub fn check_minimal_after_leave(before: &Config, after: &Config) -> Result<(), String> {
    for (shard, (&b, &a)) in before.shards.iter().zip(&after.shards).enumerate() {
        if after.groups.contains_key(&b) && a != b {
            return Err(format!(
                "configs {} -> {}: shard {shard} moved from remaining group {b} to {a}",
                before.num, after.num
            ));
        }
    }
    check_fewest(before, after)
}

/// `after` moved no more shards than [`min_moves`] allows.
pub fn check_fewest(before: &Config, after: &Config) -> Result<(), String> {
    let (moved, least) = (moved_shards(before, after), min_moves(before, after));
    if moved > least {
        return Err(format!(
            "configs {} -> {}: moved {moved} shards, {least} would do",
            before.num, after.num
        ));
    }
    Ok(())
}

/// "Same configuration on every replica": every controller's answer for
/// the same number is identical.
pub fn check_same(configs: &[Config]) -> Result<(), String> {
    match configs.split_first() {
        Some((first, rest)) => match rest.iter().find(|c| *c != first) {
            Some(other) => Err(format!("replicas disagree: {first:?} vs {other:?}")),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmeta::Member;

    fn config(num: u64, shards: &[GroupId]) -> Config {
        let groups = shards
            .iter()
            .filter(|&&g| g != NO_GROUP)
            .map(|&g| {
                (
                    g,
                    vec![Member {
                        id: g,
                        addr: String::new(),
                    }],
                )
            })
            .collect();
        Config {
            num,
            shards: shards.to_vec(),
            groups,
        }
    }

    #[test]
    fn check_finds_unbalanced_unassigned_and_wrong_groups() {
        let set = |g: &[GroupId]| g.iter().copied().collect::<BTreeSet<_>>();
        assert!(check(&set(&[1, 2]), &config(1, &[1, 2, 1, 2])).is_ok());
        assert!(check(&set(&[1, 2]), &config(1, &[1, 1, 1, 2])).is_err());
        assert!(check(&set(&[1, 2, 3]), &config(1, &[1, 2, 1, 2])).is_err());
        let mut unassigned = config(1, &[1, 2, 1, 2]);
        unassigned.shards[0] = NO_GROUP;
        assert!(check(&set(&[1, 2]), &unassigned).is_err());
        assert!(check(&set(&[]), &config(0, &[0, 0])).is_ok());
    }

    #[test]
    fn minimal_transfer_checks_catch_needless_moves() {
        let before = config(1, &[1, 1, 2, 2]);
        let mut after = config(2, &[1, 1, 2, 3]);
        after.groups.insert(
            3,
            vec![Member {
                id: 3,
                addr: String::new(),
            }],
        );
        assert!(check_minimal_after_join(&before, &after).is_ok());
        let mut swapped = after.clone();
        swapped.shards = vec![2, 1, 1, 3]; // old groups traded shards
        assert!(check_minimal_after_join(&before, &swapped).is_err());
        let gone = config(3, &[1, 1, 2, 2]);
        assert!(check_minimal_after_leave(&after, &gone).is_ok());
        let shuffled = config(3, &[2, 1, 2, 1]);
        assert!(check_minimal_after_leave(&after, &shuffled).is_err());
        assert_eq!(min_moves(&after, &gone), 1);
        let wasteful = config(2, &[1, 3, 2, 3]);
        assert!(check_fewest(&before, &wasteful).is_err());
    }
}
