//! The classic shard-controller lab catalogue (4A) on the sharded simulator:
//! three controller replicas (the real `shardctrler::Controller` joined to
//! Raft by `replica`), clerks issuing Join/Leave/Move through exactly-once
//! sessions and Query as linearizable reads, in virtual time, with the
//! lab's checks: every shard assigned to a live group, groups within one
//! shard of each other, the fewest shards moved, historical queries stable,
//! and the same configuration on every replica after the leader dies.
//!
//! Reproduce a failure with the printed `SIM_SEED=... cargo test -p sim --test it ctrler_catalogue::NAME`.

use std::collections::BTreeMap;

use shardmeta::{Config, GroupId, Member};
use sim::shard::{CtrlOp, CtrlResult, ShardConfig, ShardWorld};
use sim::{seed_from_env, SeedGuard, SEC};

const NSHARDS: u32 = 10;

fn world(name: &'static str) -> (ShardWorld, SeedGuard) {
    let seed = seed_from_env(0x4a4a);
    let guard = SeedGuard(seed, name);
    let mut cfg = ShardConfig::lab(seed);
    cfg.groups = 0;
    cfg.shards = NSHARDS;
    (ShardWorld::new(cfg), guard)
}

fn members(names: &[&str]) -> Vec<Member> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Member {
            id: 1000 + i as u64,
            addr: n.to_string(),
        })
        .collect()
}

fn join(w: &mut ShardWorld, ck: u64, groups: &[(GroupId, Vec<Member>)]) {
    let op = CtrlOp::Join(groups.iter().cloned().collect());
    assert_eq!(w.ctrl(ck, op), CtrlResult::Done);
}

fn leave(w: &mut ShardWorld, ck: u64, gids: &[GroupId]) {
    assert_eq!(w.ctrl(ck, CtrlOp::Leave(gids.to_vec())), CtrlResult::Done);
}

fn query(w: &mut ShardWorld, ck: u64, num: Option<u64>) -> Config {
    match w.ctrl(ck, CtrlOp::Query(num)) {
        CtrlResult::Config(c) => c,
        other => panic!("query {num:?} -> {other:?}"),
    }
}

/// The lab's `check`: exactly `groups`, every shard on one of them, balanced.
fn check(w: &mut ShardWorld, ck: u64, groups: &[GroupId]) {
    let c = query(w, ck, None);
    assert_eq!(c.groups.len(), groups.len(), "groups in {c:?}");
    for g in groups {
        assert!(c.groups.contains_key(g), "missing group {g}");
    }
    if !groups.is_empty() {
        for (s, g) in c.shards.iter().enumerate() {
            assert!(c.groups.contains_key(g), "shard {s} -> invalid group {g}");
        }
    }
    let mut counts: BTreeMap<GroupId, usize> = BTreeMap::new();
    for g in &c.shards {
        *counts.entry(*g).or_default() += 1;
    }
    let per: Vec<usize> = c
        .groups
        .keys()
        .map(|g| counts.get(g).copied().unwrap_or(0))
        .collect();
    if let (Some(min), Some(max)) = (per.iter().min(), per.iter().max()) {
        assert!(
            max <= &(min + 1),
            "max {max} too much larger than min {min}: {c:?}"
        );
    }
}

/// Runs one controller op on each of several clients at once.
fn concurrently(w: &mut ShardWorld, ops: Vec<Vec<CtrlOp>>) {
    let clients: Vec<u64> = ops.iter().map(|_| w.make_ctrl_client()).collect();
    let mut queues: Vec<std::collections::VecDeque<CtrlOp>> =
        ops.into_iter().map(Into::into).collect();
    loop {
        let mut running = Vec::new();
        for (i, &c) in clients.iter().enumerate() {
            if w.is_idle(c) {
                if let Some(r) = w.last_ctrl(c) {
                    assert_eq!(r, &CtrlResult::Done, "client {c}");
                }
                if let Some(op) = queues[i].pop_front() {
                    w.start_ctrl(c, op);
                    running.push(c);
                }
            } else {
                running.push(c);
            }
        }
        if running.is_empty() {
            return;
        }
        let finished = w.run_until(60 * SEC, |w| running.iter().any(|&c| w.is_idle(c)));
        assert!(finished, "controller ops did not finish within 60 s");
    }
}

/// Shards that stayed on `old_groups` in `after` were theirs in `before`
/// (no shard moved between two groups that were both present).
fn assert_minimal(
    before: &Config,
    after: &Config,
    old_groups: impl Iterator<Item = GroupId> + Clone,
    what: &str,
) {
    for g in old_groups {
        for s in 0..before.shards.len() {
            if after.shards[s] == g {
                assert_eq!(before.shards[s], g, "non-minimal transfer after {what}");
            }
        }
    }
}

#[test]
fn basic_leave_join_historical_move_4a() {
    let (mut w, _g) = world("basic_leave_join_historical_move_4a");
    let ck = w.make_ctrl_client();
    let mut cfa = vec![query(&mut w, ck, None)];
    check(&mut w, ck, &[]);
    join(&mut w, ck, &[(1, members(&["x", "y", "z"]))]);
    check(&mut w, ck, &[1]);
    cfa.push(query(&mut w, ck, None));
    join(&mut w, ck, &[(2, members(&["a", "b", "c"]))]);
    check(&mut w, ck, &[1, 2]);
    cfa.push(query(&mut w, ck, None));
    let cfx = query(&mut w, ck, None);
    assert_eq!(cfx.groups[&1], members(&["x", "y", "z"]));
    assert_eq!(cfx.groups[&2], members(&["a", "b", "c"]));
    leave(&mut w, ck, &[1]);
    check(&mut w, ck, &[2]);
    cfa.push(query(&mut w, ck, None));
    leave(&mut w, ck, &[2]);
    cfa.push(query(&mut w, ck, None));

    // Historical queries: each configuration by number, with each server down in turn.
    for s in 0..3 {
        w.shutdown_controller(s);
        for c in &cfa {
            assert_eq!(
                &query(&mut w, ck, Some(c.num)),
                c,
                "historical query {}",
                c.num
            );
        }
        w.start_controller(s);
        w.heal();
    }

    // Move.
    join(&mut w, ck, &[(503, members(&["3a", "3b", "3c"]))]);
    join(&mut w, ck, &[(504, members(&["4a", "4b", "4c"]))]);
    for i in 0..NSHARDS {
        let cf = query(&mut w, ck, None);
        let to = if i < NSHARDS / 2 { 503 } else { 504 };
        assert_eq!(w.ctrl(ck, CtrlOp::Move(i, to)), CtrlResult::Done);
        if cf.shards[i as usize] != to {
            assert!(
                query(&mut w, ck, None).num > cf.num,
                "Move should increase Config.Num"
            );
        }
    }
    let cf2 = query(&mut w, ck, None);
    for i in 0..NSHARDS as usize {
        let want = if i < NSHARDS as usize / 2 { 503 } else { 504 };
        assert_eq!(cf2.shards[i], want, "shard {i}");
    }
    leave(&mut w, ck, &[503]);
    leave(&mut w, ck, &[504]);

    // Concurrent leave/join.
    let npara = 10u64;
    let gids: Vec<GroupId> = (0..npara).map(|i| i * 10 + 100).collect();
    let ops = gids
        .iter()
        .map(|&gid| {
            vec![
                CtrlOp::Join(
                    [(gid + 1000, members(&[&format!("s{gid}a")]))]
                        .into_iter()
                        .collect(),
                ),
                CtrlOp::Join(
                    [(gid, members(&[&format!("s{gid}b")]))]
                        .into_iter()
                        .collect(),
                ),
                CtrlOp::Leave(vec![gid + 1000]),
            ]
        })
        .collect();
    concurrently(&mut w, ops);
    check(&mut w, ck, &gids);

    // Minimal transfers after joins, then after leaves.
    let c1 = query(&mut w, ck, None);
    for i in 0..5 {
        let gid = npara + 1 + i;
        join(&mut w, ck, &[(gid, members(&["a", "b", "b"]))]);
    }
    let c2 = query(&mut w, ck, None);
    assert_minimal(&c1, &c2, gids.iter().copied(), "Join()s");
    for i in 0..5 {
        leave(&mut w, ck, &[npara + 1 + i]);
    }
    let c3 = query(&mut w, ck, None);
    assert_minimal(&c2, &c3, gids.iter().copied(), "Leave()s");
    w.end();
}

#[test]
fn multi_join_leave_and_same_config_after_leader_dies_4a() {
    let (mut w, _g) = world("multi_join_leave_and_same_config_after_leader_dies_4a");
    let ck = w.make_ctrl_client();
    check(&mut w, ck, &[]);
    join(
        &mut w,
        ck,
        &[
            (1, members(&["x", "y", "z"])),
            (2, members(&["a", "b", "c"])),
        ],
    );
    check(&mut w, ck, &[1, 2]);
    join(&mut w, ck, &[(3, members(&["j", "k", "l"]))]);
    check(&mut w, ck, &[1, 2, 3]);
    let cfx = query(&mut w, ck, None);
    assert_eq!(cfx.groups[&3], members(&["j", "k", "l"]));
    leave(&mut w, ck, &[1, 3]);
    check(&mut w, ck, &[2]);
    assert_eq!(
        query(&mut w, ck, None).groups[&2],
        members(&["a", "b", "c"])
    );
    leave(&mut w, ck, &[2]);

    // Concurrent multi leave/join.
    let npara = 10u64;
    let gids: Vec<GroupId> = (0..npara).map(|i| i + 1000).collect();
    let ops = gids
        .iter()
        .map(|&gid| {
            let groups: BTreeMap<GroupId, Vec<Member>> = [
                (
                    gid,
                    members(&[&format!("{gid}a"), &format!("{gid}b"), &format!("{gid}c")]),
                ),
                (gid + 1000, members(&[&format!("{}a", gid + 1000)])),
                (gid + 2000, members(&[&format!("{}a", gid + 2000)])),
            ]
            .into_iter()
            .collect();
            vec![
                CtrlOp::Join(groups),
                CtrlOp::Leave(vec![gid + 1000, gid + 2000]),
            ]
        })
        .collect();
    concurrently(&mut w, ops);
    check(&mut w, ck, &gids);

    // Minimal transfers after a multi-join, then a multi-leave.
    let c1 = query(&mut w, ck, None);
    let new: Vec<(GroupId, Vec<Member>)> = (0..5)
        .map(|i| {
            let gid = npara + 1 + i;
            (gid, members(&[&format!("{gid}a"), &format!("{gid}b")]))
        })
        .collect();
    join(&mut w, ck, &new);
    let c2 = query(&mut w, ck, None);
    assert_minimal(&c1, &c2, gids.iter().copied(), "Join()s");
    let new_gids: Vec<GroupId> = new.iter().map(|(g, _)| *g).collect();
    leave(&mut w, ck, &new_gids);
    let c3 = query(&mut w, ck, None);
    assert_minimal(&c2, &c3, gids.iter().copied(), "Leave()s");

    // Same configuration on every replica after the leader is killed.
    let c = query(&mut w, ck, None);
    let leader = w.controller_leader().expect("a controller leader");
    let leader_index = w
        .controllers()
        .iter()
        .position(|&n| n == leader)
        .expect("a controller");
    w.shutdown_controller(leader_index);
    let c1 = query(&mut w, ck, None);
    assert_eq!(c, c1, "the new leader's latest configuration");
    for id in w.controllers() {
        if let Some(sm) = w.controller_state(id) {
            assert_eq!(
                sim::shard::ctrl_clerk::applied_config(sm, c.num).as_ref(),
                Some(&c),
                "controller {id} holds another configuration {}",
                c.num
            );
        }
    }
    w.end();
}

/// Controller errors leave the configuration unchanged.
#[test]
fn bad_requests_change_nothing_4a() {
    let (mut w, _g) = world("bad_requests_change_nothing_4a");
    let ck = w.make_ctrl_client();
    join(&mut w, ck, &[(1, members(&["x"]))]);
    let before = query(&mut w, ck, None);
    for op in [
        CtrlOp::Join([(1, members(&["again"]))].into_iter().collect()),
        CtrlOp::Join([(0, members(&["zero"]))].into_iter().collect()),
        CtrlOp::Leave(vec![99]),
        CtrlOp::Move(NSHARDS, 1),
        CtrlOp::Move(0, 99),
    ] {
        let r = w.ctrl(ck, op.clone());
        assert!(matches!(r, CtrlResult::Failed(_)), "{op:?} -> {r:?}");
    }
    assert_eq!(query(&mut w, ck, None), before);
    w.end();
}
