//! Membership changes and leadership transfer in the simulator, over the real replica
//! driver, with Figure 3's properties checked as the runs go (`sim::invariants`):
//!
//! - a random-schedule sweep mixing add (learner or voter), promote, remove (the leader
//!   included) and transfer into crashes, restarts, partitions, loss and reordering,
//!   then a liveness phase (heal; every member must apply a new command);
//! - the single-server-change bug reported on raft-dev in 2015, replayed step by step
//!   (it breaks Leader Completeness when the leader's "own-term entry first" rule is
//!   removed);
//! - a removed node that keeps running, and campaigning, cannot disrupt the group;
//! - leadership transfer to a lagging follower and to a crashed one.
//!
//! `SIM_SEEDS=N` / `SIM_SEED=S` as in `sweep.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use raft::{ConfChange, NodeId, RaftError, Role};
use rand::{Rng, SeedableRng};
use sim::{cmd, seed_from_env, Cluster, ClusterConfig, SeedGuard, MS, SEC};

const DEFAULT_SEEDS: u64 = 150;

fn addr(id: NodeId) -> String {
    format!("sim:{id}")
}

/// Counts of what one schedule did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    changes_accepted: u64,
    transfers_started: u64,
    applied: u64,
    digest: u64,
}

/// One random membership operation against the current leader, if any.
fn random_change(c: &mut Cluster, all: &[NodeId], out: &mut Outcome) {
    let Some(leader) = c.leader() else { return };
    let m = c.membership(leader).expect("live leader");
    let pick = |c: &mut Cluster, from: Vec<NodeId>| -> Option<NodeId> {
        (!from.is_empty()).then(|| from[c.rng.gen_range(0..from.len())])
    };
    let outsiders: Vec<NodeId> = all
        .iter()
        .copied()
        .filter(|id| !m.contains(*id) && !m.removed.contains(id))
        .collect();
    let members: Vec<NodeId> = m.members().into_iter().collect();
    let change = match c.rng.gen_range(0..5) {
        0 => pick(c, outsiders).map(|id| ConfChange::AddLearner { id, addr: addr(id) }),
        1 => pick(c, outsiders).map(|id| ConfChange::AddVoter { id, addr: addr(id) }),
        2 => pick(c, m.learners.iter().copied().collect()).map(|id| ConfChange::Promote { id }),
        3 if m.voters.len() > 2 => pick(c, members).map(|id| ConfChange::Remove { id }),
        _ => {
            let voters: Vec<NodeId> = m.voters.iter().copied().filter(|&v| v != leader).collect();
            if let Some(to) = pick(c, voters) {
                if c.transfer_leader(to).is_ok() {
                    out.transfers_started += 1;
                }
            }
            None
        }
    };
    if let Some(change) = change {
        if c.change_membership_on(leader, change).is_ok() {
            out.changes_accepted += 1;
        }
    }
}

fn run_schedule(seed: u64) -> Outcome {
    let mut probe = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let servers = if probe.gen_bool(0.5) { 3 } else { 5 };
    let mut cfg = ClusterConfig::new(servers, probe.gen_bool(0.5)).seed(seed);
    cfg.spares = 3;
    if probe.gen_bool(0.6) {
        cfg = cfg.snapshots(probe.gen_range(3..30));
    }
    if probe.gen_bool(0.5) {
        cfg.snapshot_chunk_bytes = probe.gen_range(16..256);
    }
    let mut c = Cluster::new(cfg);
    let all = c.ids();
    let n = all.len() as u64;
    let mut out = Outcome::default();
    let mut next_cmd = seed << 20;
    let mut next_read = 0;
    for _ in 0..80 {
        match c.rng.gen_range(0..100) {
            0..=24 => {
                for _ in 0..c.rng.gen_range(1..6) {
                    next_cmd += 1;
                    let id = c.rng.gen_range(1..=n);
                    c.start_cmd(id, cmd(next_cmd));
                }
            }
            25..=31 => {
                next_read += 1;
                let id = c.rng.gen_range(1..=n);
                c.read_index(id, next_read);
            }
            32..=54 => random_change(&mut c, &all, &mut out),
            55..=61 => {
                let id = c.rng.gen_range(1..=n);
                c.crash(id);
            }
            62..=68 => {
                let id = c.rng.gen_range(1..=n);
                c.start(id);
            }
            69..=74 => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for &id in &all {
                    if c.rng.gen_bool(0.5) {
                        a.push(id)
                    } else {
                        b.push(id)
                    }
                }
                c.net.partition(&[&a, &b]);
            }
            75..=80 => c.net.heal(),
            81..=86 => {
                let on = c.rng.gen_bool(0.5);
                c.set_unreliable(on);
            }
            87..=89 => {
                let on = c.rng.gen_bool(0.3);
                c.set_long_reordering(on);
            }
            _ => {
                c.net.heal();
                for &id in &all {
                    c.start(id);
                }
            }
        }
        let pause = c.rng.gen_range(1..500) * MS;
        c.run_for(pause);
    }
    // Liveness: heal, restart everyone (removed nodes too: they keep running), and
    // require every member of the final membership to apply a new command.
    c.net.heal();
    c.set_unreliable(false);
    c.set_long_reordering(false);
    for &id in &all {
        c.start(id);
    }
    c.run_for(3 * SEC);
    let leader = c.check_one_leader();
    let members = c.membership(leader).expect("leader").members().len();
    c.one(cmd(u64::MAX - seed), members, true);
    c.end();
    out.applied = c.inv.applied_count() as u64;
    out.digest = c.trace_digest;
    out
}

#[test]
fn random_schedules_with_membership_changes_keep_raft_safe() {
    let first = seed_from_env(1);
    let count: u64 = match std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()) {
        Some(n) => n,
        None if std::env::var("SIM_SEED").is_ok() => 1,
        None => DEFAULT_SEEDS,
    };
    let (mut changes, mut transfers) = (0, 0);
    for seed in first..first + count {
        match catch_unwind(AssertUnwindSafe(|| run_schedule(seed))) {
            Ok(o) => {
                changes += o.changes_accepted;
                transfers += o.transfers_started;
            }
            Err(panic) => {
                eprintln!("seed {seed} failed; reproduce with: SIM_SEED={seed} SIM_SEEDS=1 cargo test -p sim --test it membership::random_schedules");
                std::panic::resume_unwind(panic);
            }
        }
    }
    eprintln!("membership sweep: {count} seeds from {first}, {changes} changes accepted, {transfers} transfers started");
    assert!(
        changes > count,
        "almost no changes: {changes} over {count} seeds"
    );
    assert!(transfers > count / 2, "almost no transfers: {transfers}");
}

#[test]
fn a_membership_schedule_replays_identically() {
    assert_eq!(run_schedule(11), run_schedule(11));
}

/// Waits (bounded) for a leader among `among`; returns it.
fn leader_among(c: &mut Cluster, among: &[NodeId]) -> NodeId {
    let found = c.run_until(10 * SEC, |c| c.leader().is_some_and(|l| among.contains(&l)));
    assert!(found, "no leader among {among:?}");
    c.leader().unwrap()
}

/// Ongaro's 2015 raft-dev report, replayed. Four voters; leader L1 starts adding node 5
/// (C1, five voters) but only node 5 gets the entry. Another node, L2, wins the next
/// term in the old configuration C0 and, *before an entry of its own term commits*,
/// removes a third node X (C2 = C0 − X, three voters): L2 and the fourth node Y are a
/// majority of C2, so C2 and a command commit and are applied. Then L1, 5 and X — a
/// majority of C1 — elect a leader whose log lacks those applied entries.
///
/// The own-term rule stops L2 at the removal (`ConfChangeTooEarly`: its no-op cannot
/// commit without three of C0's four), so nothing of the kind happens. With the rule
/// taken out of `Raft::propose_conf_change`, this test fails with "Leader Completeness
/// violated".
#[test]
fn the_2015_single_server_change_bug_cannot_happen() {
    let seed = seed_from_env(2015);
    let _guard = SeedGuard(seed, "-p sim --test it membership::the_2015");
    let mut cfg = ClusterConfig::new(4, true).seed(seed);
    cfg.spares = 1;
    let mut c = Cluster::new(cfg);
    let l1 = c.check_one_leader();
    c.one(cmd(1), 4, true);
    let others: Vec<NodeId> = c
        .initial_voters()
        .into_iter()
        .filter(|&i| i != l1)
        .collect();
    // C1 (add 5) reaches node 5 only.
    c.net.partition(&[&[l1, 5], &others]);
    c.change_membership_on(
        l1,
        ConfChange::AddVoter {
            id: 5,
            addr: addr(5),
        },
    )
    .expect("L1 committed its no-op long ago");
    let reached = c.run_until(2 * SEC, |c| c.membership(5).unwrap().is_voter(5));
    assert!(reached, "node 5 got C1");
    // L2 wins among the other three; X is cut off the moment L2 wins, before it
    // receives anything from L2.
    let l2 = leader_among(&mut c, &others);
    let x = *others.iter().find(|&&i| i != l2).unwrap();
    let y = *others.iter().find(|&&i| i != l2 && i != x).unwrap();
    c.net.partition(&[&[l1, 5], &[l2, y], &[x]]);
    let refused = c.change_membership_on(l2, ConfChange::Remove { id: x });
    if refused.is_ok() {
        // Only reachable without the rule: L2 commits C2 and a command with Y.
        c.start_cmd(l2, cmd(2));
        c.run_for(500 * MS);
    }
    // L1, 5 and X, a majority of C1, meet.
    c.net.partition(&[&[l1, 5, x], &[l2, y]]);
    c.run_for(5 * SEC);
    c.net.heal();
    c.run_for(3 * SEC);
    c.one(cmd(3), 4, true);
    c.end();
    assert!(
        matches!(refused, Err(RaftError::ConfChangeTooEarly { .. })),
        "L2 should have been refused: {refused:?}"
    );
}

/// A voter removed while cut off never learns of it. Back on the network it keeps its
/// old membership and campaigns; the group's leader and term do not move.
#[test]
fn a_removed_node_that_keeps_running_cannot_disrupt_the_group() {
    let seed = seed_from_env(77);
    let _guard = SeedGuard(seed, "-p sim --test it membership::a_removed_node");
    let mut c = Cluster::new(ClusterConfig::new(3, true).seed(seed));
    let leader = c.check_one_leader();
    let gone = c.ids().into_iter().find(|&i| i != leader).unwrap();
    c.disconnect(gone);
    c.change_membership(ConfChange::Remove { id: gone })
        .unwrap();
    c.one(cmd(1), 2, true);
    let term = c.state(leader).unwrap().0;
    c.connect(gone);
    for k in 0..20 {
        c.run_for(500 * MS);
        c.one(cmd(100 + k), 2, true);
    }
    assert!(c.membership(gone).unwrap().is_voter(gone), "it never heard");
    assert_eq!(
        c.state(leader),
        Some((term, true)),
        "leader and term unchanged"
    );
    assert!(
        c.sent_by_kind.get("PreVote").copied().unwrap_or(0) > 10,
        "the removed node did keep campaigning"
    );
    c.end();
}

#[test]
fn transfer_to_a_lagging_follower_catches_it_up_and_hands_over() {
    let seed = seed_from_env(31);
    let _guard = SeedGuard(seed, "-p sim --test it membership::transfer_to_a_lagging");
    let mut cfg = ClusterConfig::new(3, true).seed(seed);
    cfg.snapshot_interval = Some(5);
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    let lagging = c.ids().into_iter().find(|&i| i != leader).unwrap();
    c.disconnect(lagging);
    for k in 0..30 {
        c.one(cmd(k), 2, true);
    }
    c.connect(lagging);
    let before = c.now;
    c.transfer_leader(lagging).unwrap();
    let done = c.run_until(2 * SEC, |c| c.leader() == Some(lagging));
    assert!(done, "the lagging follower took over");
    let took_ms = (c.now - before) / MS;
    assert!(
        took_ms < 300,
        "a hand-off needs no election timeout (300 ms+), took {took_ms} ms"
    );
    c.one(cmd(99), 3, true);
    c.end();
}

#[test]
fn transfer_to_a_crashed_follower_is_abandoned_and_the_leader_carries_on() {
    let seed = seed_from_env(32);
    let _guard = SeedGuard(seed, "-p sim --test it membership::transfer_to_a_crashed");
    let mut c = Cluster::new(ClusterConfig::new(3, true).seed(seed));
    let leader = c.check_one_leader();
    let dead = c.ids().into_iter().find(|&i| i != leader).unwrap();
    c.crash(dead);
    c.transfer_leader(dead).unwrap();
    assert!(
        c.start_cmd(leader, cmd(1)).is_none(),
        "proposals wait during a transfer"
    );
    c.run_for(700 * MS); // more than an election timeout (300–600 ms)
    assert_eq!(c.leader(), Some(leader));
    let node = c.node(leader).unwrap().raw().raft();
    assert_eq!(node.lead_transferee(), None);
    assert_eq!(node.role(), Role::Leader);
    c.one(cmd(2), 2, true);
    c.end();
}
