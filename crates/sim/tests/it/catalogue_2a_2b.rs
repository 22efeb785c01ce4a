//! The classic Raft lab catalogue, parts 2A (election) and 2B (agreement), ported to
//! the simulator with the same setup and checks, in virtual time.
//!
//! Deviation, on purpose: a new leader appends a no-op entry of its term (§5.4.2,
//! dissertation §6.4), so command indexes are offset by the number of no-ops before them;
//! where the lab asserts an exact index, we assert the index relative to the first one.

use bytes::Bytes;
use rand::Rng;
use sim::{cmd, Cluster, ClusterConfig, SeedGuard, MS, SEC};

const RAFT_ELECTION_TIMEOUT: u64 = 1000 * MS;

fn cluster(servers: usize, reliable: bool, name: &'static str) -> (Cluster, SeedGuard) {
    let cfg = ClusterConfig::new(servers, reliable);
    let guard = SeedGuard(cfg.seed, name);
    (Cluster::new(cfg), guard)
}

#[test]
fn initial_election_2a() {
    let (mut c, _g) = cluster(3, true, "initial_election_2a");
    c.check_one_leader();
    // Let things settle: all agree on the term.
    c.run_for(50 * MS);
    let term1 = c.check_terms();
    assert!(term1 >= 1, "term is {term1}, but should be at least 1");
    // Without failures the leader and term stay the same.
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    let term2 = c.check_terms();
    assert_eq!(
        term1, term2,
        "term changed even though there were no failures"
    );
    c.check_one_leader();
    c.end();
}

#[test]
fn reelection_2a() {
    let (mut c, _g) = cluster(3, true, "reelection_2a");
    let leader1 = c.check_one_leader();
    // If the leader disconnects, a new one is elected.
    c.disconnect(leader1);
    c.check_one_leader();
    // The old leader rejoining does not disturb the new one.
    c.connect(leader1);
    let leader2 = c.check_one_leader();
    // With no quorum, no new leader.
    c.disconnect(leader2);
    c.disconnect(leader2 % 3 + 1);
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    c.check_no_leader();
    // With a quorum again, a leader.
    c.connect(leader2 % 3 + 1);
    c.check_one_leader();
    // Rejoining the last node: still one leader.
    c.connect(leader2);
    c.check_one_leader();
    c.end();
}

#[test]
fn many_elections_2a() {
    let (mut c, _g) = cluster(7, true, "many_elections_2a");
    c.check_one_leader();
    for _ in 0..10 {
        // Disconnect three random nodes.
        let picks: Vec<u64> = (0..3).map(|_| c.rng.gen_range(1..=7)).collect();
        for &p in &picks {
            c.disconnect(p);
        }
        // Either the current leader is still alive, or the remaining four elect one.
        c.check_one_leader();
        for &p in &picks {
            c.connect(p);
        }
    }
    c.check_one_leader();
    c.end();
}

#[test]
fn basic_agree_2b() {
    let (mut c, _g) = cluster(3, true, "basic_agree_2b");
    let mut first = None;
    for index in 1..=3u64 {
        let (nd, _) = c.n_committed(index + 1);
        assert_eq!(nd, 0, "some have committed before Start()");
        let xindex = c.one(cmd(index * 100), 3, false);
        let base = *first.get_or_insert(xindex - (index - 1));
        assert_eq!(
            xindex,
            base + index - 1,
            "got index {xindex} but expected {}",
            base + index - 1
        );
    }
    assert_eq!(
        first,
        Some(2),
        "the first command follows the leader's no-op"
    );
    c.end();
}

#[test]
fn rpc_bytes_2b() {
    let (mut c, _g) = cluster(3, true, "rpc_bytes_2b");
    c.one(cmd(99), 3, false);
    let bytes0 = c.total_bytes();
    let mut sent = 0u64;
    for _ in 0..10 {
        let data: Vec<u8> = (0..5000).map(|_| c.rng.gen_range(b'a'..=b'z')).collect();
        sent += data.len() as u64;
        c.one(Bytes::from(data), 3, false);
    }
    let got = c.total_bytes() - bytes0;
    let expected = 3 * sent;
    assert!(
        got <= expected + 50_000,
        "too many RPC bytes; got {got}, expected {expected}"
    );
    c.end();
}

#[test]
fn follower_failure_2b() {
    let (mut c, _g) = cluster(3, true, "follower_failure_2b");
    c.one(cmd(101), 3, false);
    // Disconnect one follower: the other two still agree.
    let leader1 = c.check_one_leader();
    c.disconnect(leader1 % 3 + 1);
    c.one(cmd(102), 2, false);
    c.run_for(RAFT_ELECTION_TIMEOUT);
    c.one(cmd(103), 2, false);
    // Disconnect the remaining follower.
    let leader2 = c.check_one_leader();
    c.disconnect(leader2 % 3 + 1);
    c.disconnect((leader2 + 1) % 3 + 1);
    // Submit a command: it must not commit.
    let (index, _) = c
        .start_cmd(leader2, cmd(104))
        .expect("leader rejected Start()");
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    let (n, _) = c.n_committed(index);
    assert_eq!(n, 0, "{n} committed but no majority");
    c.end();
}

#[test]
fn leader_failure_2b() {
    let (mut c, _g) = cluster(3, true, "leader_failure_2b");
    c.one(cmd(101), 3, false);
    let leader1 = c.check_one_leader();
    c.disconnect(leader1);
    // The remaining followers elect a new leader.
    c.one(cmd(102), 2, false);
    c.run_for(RAFT_ELECTION_TIMEOUT);
    c.one(cmd(103), 2, false);
    let leader2 = c.check_one_leader();
    c.disconnect(leader2);
    // Submit to every server; nothing may commit.
    let indexes: Vec<u64> = (1..=3)
        .filter_map(|id| c.start_cmd(id, cmd(104)))
        .map(|(i, _)| i)
        .collect();
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    for index in indexes {
        let (n, _) = c.n_committed(index);
        assert_eq!(n, 0, "{n} committed index {index} but no majority");
    }
    c.end();
}

#[test]
fn fail_agree_2b() {
    let (mut c, _g) = cluster(3, true, "fail_agree_2b");
    c.one(cmd(101), 3, false);
    // Disconnect one follower.
    let leader = c.check_one_leader();
    c.disconnect(leader % 3 + 1);
    // The leader and the remaining follower agree.
    c.one(cmd(102), 2, false);
    c.one(cmd(103), 2, false);
    c.run_for(RAFT_ELECTION_TIMEOUT);
    c.one(cmd(104), 2, false);
    c.one(cmd(105), 2, false);
    // Reconnect: it catches up.
    c.connect(leader % 3 + 1);
    c.one(cmd(106), 3, true);
    c.run_for(RAFT_ELECTION_TIMEOUT);
    c.one(cmd(107), 3, true);
    c.end();
}

#[test]
fn fail_no_agree_2b() {
    let (mut c, _g) = cluster(5, true, "fail_no_agree_2b");
    c.one(cmd(10), 5, false);
    // Three of five followers disconnect.
    let leader = c.check_one_leader();
    for k in 1..=3 {
        c.disconnect((leader + k - 1) % 5 + 1);
    }
    let (index, _) = c
        .start_cmd(leader, cmd(20))
        .expect("leader rejected Start()");
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    let (n, _) = c.n_committed(index);
    assert_eq!(n, 0, "{n} committed but no majority");
    // Repair.
    for k in 1..=3 {
        c.connect((leader + k - 1) % 5 + 1);
    }
    // The disconnected majority may have chosen a leader among themselves, forgetting
    // index; or the old leader is still leader.
    let leader2 = c.check_one_leader();
    let (index2, _) = c
        .start_cmd(leader2, cmd(30))
        .expect("leader2 rejected Start()");
    assert!(index2 >= 2, "unexpected index {index2}");
    c.one(cmd(1000), 5, true);
    c.end();
}

#[test]
fn concurrent_starts_2b() {
    let (mut c, _g) = cluster(3, true, "concurrent_starts_2b");
    let mut success = false;
    'outer: for attempt in 0..5 {
        if attempt > 0 {
            c.run_for(3 * SEC);
        }
        let leader = c.check_one_leader();
        let Some((_, term)) = c.start_cmd(leader, cmd(1)) else {
            continue;
        };
        // Five "concurrent" Starts: issued in the same virtual instant.
        let mut indexes = Vec::new();
        for i in 0..5 {
            match c.start_cmd(leader, cmd(100 + i)) {
                Some((idx, t)) if t == term => indexes.push((idx, 100 + i)),
                _ => continue 'outer,
            }
        }
        let mut cmds = Vec::new();
        for (idx, _) in &indexes {
            match c.wait(*idx, 3, Some(term)) {
                Some(v) => cmds.push(u64::from_be_bytes(v[..8].try_into().expect("u64"))),
                None => continue 'outer, // term changed: try again
            }
        }
        for (_, x) in &indexes {
            assert!(cmds.contains(x), "cmd {x} missing in {cmds:?}");
        }
        success = true;
        break;
    }
    assert!(success, "term changed too often");
    c.end();
}

#[test]
fn rejoin_2b() {
    let (mut c, _g) = cluster(3, true, "rejoin_2b");
    c.one(cmd(101), 3, true);
    // The leader is partitioned.
    let leader1 = c.check_one_leader();
    c.disconnect(leader1);
    // It is given commands it cannot commit.
    c.start_cmd(leader1, cmd(102));
    c.start_cmd(leader1, cmd(103));
    c.start_cmd(leader1, cmd(104));
    // A new leader commits, also for index 2.
    c.one(cmd(103), 2, true);
    // The new leader is partitioned; the old one reconnects.
    let leader2 = c.check_one_leader();
    c.disconnect(leader2);
    c.connect(leader1);
    c.one(cmd(104), 2, true);
    // Everyone rejoins.
    c.connect(leader2);
    c.one(cmd(105), 3, true);
    c.end();
}

/// Leader backs up quickly over incorrect follower logs (fast backtracking).
#[test]
fn backup_2b() {
    let (mut c, _g) = cluster(5, true, "backup_2b");
    let mut r = || rand::random::<u64>();
    let _ = &mut r;
    let mut next = 1000u64;
    let mut fresh = || {
        next += 1;
        cmd(next)
    };
    c.one(fresh(), 5, true);
    // Put the leader and one follower in a partition.
    let leader1 = c.check_one_leader();
    let others: Vec<u64> = (1..=5).filter(|&i| i != leader1).collect();
    c.disconnect(others[1]);
    c.disconnect(others[2]);
    c.disconnect(others[3]);
    // Submit lots of commands that won't commit.
    for _ in 0..50 {
        c.start_cmd(leader1, fresh());
    }
    c.run_for(RAFT_ELECTION_TIMEOUT / 2);
    c.disconnect(leader1);
    c.disconnect(others[0]);
    // Allow the other partition to recover.
    c.connect(others[1]);
    c.connect(others[2]);
    c.connect(others[3]);
    // Lots of successful commands to the new group.
    for _ in 0..50 {
        c.one(fresh(), 3, true);
    }
    // Now another partitioned leader and one follower.
    let leader2 = c.check_one_leader();
    let other = [others[1], others[2], others[3]]
        .into_iter()
        .find(|&i| i != leader2)
        .expect("other");
    c.disconnect(other);
    // Lots more commands that won't commit.
    for _ in 0..50 {
        c.start_cmd(leader2, fresh());
    }
    c.run_for(RAFT_ELECTION_TIMEOUT / 2);
    // Bring the original leader back to life.
    for i in 1..=5 {
        c.disconnect(i);
    }
    c.connect(leader1);
    c.connect(others[0]);
    c.connect(other);
    // Lots of successful commands to the new group.
    let (m0, t0) = (c.total_messages(), c.now);
    for _ in 0..50 {
        c.one(fresh(), 3, true);
    }
    // Now everyone.
    for i in 1..=5 {
        c.connect(i);
    }
    c.one(fresh(), 5, true);
    eprintln!(
        "backup_2b: {} messages ({} RPCs) and {} ms of virtual time in all; the catch-up phase took {} messages and {} ms",
        c.total_messages(),
        c.total_rpcs(),
        c.now / MS,
        c.total_messages() - m0,
        (c.now - t0) / MS
    );
    c.end();
}

/// RPC counts aren't too high.
#[test]
fn count_2b() {
    let (mut c, _g) = cluster(3, true, "count_2b");
    let leader = c.check_one_leader();
    let total1 = c.total_rpcs();
    assert!(
        (1..=30).contains(&total1),
        "too many or few RPCs ({total1}) to elect initial leader"
    );
    let mut success = false;
    let mut total2 = 0;
    let mut agree_rpcs = 0;
    'outer: for attempt in 0..5 {
        if attempt > 0 {
            c.run_for(3 * SEC);
        }
        let leader = c.check_one_leader();
        let total1 = c.total_rpcs();
        let iters = 10u64;
        let Some((_, term)) = c.start_cmd(leader, cmd(1)) else {
            continue;
        };
        let mut cmds = Vec::new();
        let mut indexes = Vec::new();
        for i in 1..iters + 2 {
            let x = 1000 + i;
            cmds.push(x);
            match c.start_cmd(leader, cmd(x)) {
                Some((idx, t)) if t == term => indexes.push(idx),
                _ => continue 'outer,
            }
        }
        for (k, idx) in indexes.iter().enumerate() {
            match c.wait(*idx, 3, Some(term)) {
                Some(v) => assert_eq!(v, cmd(cmds[k]), "wrong value committed at {idx}"),
                None => continue 'outer,
            }
        }
        total2 = c.total_rpcs();
        agree_rpcs = total2 - total1;
        assert!(
            total2 - total1 <= (iters + 1 + 3) * 3,
            "too many RPCs ({}) for {iters} entries",
            total2 - total1
        );
        success = true;
        break;
    }
    assert!(success, "term changed too often");
    let _ = leader;
    c.run_for(RAFT_ELECTION_TIMEOUT);
    let total3 = c.total_rpcs();
    assert!(
        total3 - total2 <= 3 * 20,
        "too many RPCs ({}) for 1 second of idleness",
        total3 - total2
    );
    eprintln!(
        "count_2b: {} RPCs to elect, {} RPCs for 11 agreements, {} RPCs idle for 1 s; {} messages and {} ms of virtual time in all",
        total1,
        agree_rpcs,
        total3 - total2,
        c.total_messages(),
        c.now / MS
    );
    c.end();
}
