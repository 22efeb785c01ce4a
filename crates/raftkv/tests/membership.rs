//! Membership changes on real processes, through the `raftkv` CLI, under a
//! concurrent client load whose history is checked for linearizability:
//! grow 3 → 5 (join as learner, catch up, promote), move leadership, shrink
//! 5 → 3 (the leader included), and refuse a removed node's restart.
//! Each step's wall time is printed (`--nocapture`) for the operations notes.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{num, serial, Cluster};

const WAIT: Duration = Duration::from_secs(20);
const FLAGS: &[&str] = &["--request-timeout-ms", "2000"];

/// Runs the CLI; (success, stdout, stderr).
async fn raftkv(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `raftkv ARGS --endpoints (every node)`, retried (bounded) until it succeeds.
async fn admin(c: &Cluster, args: &[&str]) -> String {
    let eps: Vec<String> = (1..=c.nodes.len() as u64).map(|i| c.endpoint(i)).collect();
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.extend(["--endpoints".into(), eps.join(",")]);
    let deadline = Instant::now() + WAIT;
    loop {
        let (ok, out, err) = raftkv(full.clone()).await;
        if ok {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "raftkv {args:?} kept failing: {err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Voters and learners as `member list` prints them.
async fn members(c: &Cluster) -> (Vec<u64>, Vec<u64>) {
    let out = admin(c, &["member", "list"]).await;
    let (mut voters, mut learners) = (Vec::new(), Vec::new());
    for line in out.lines() {
        let mut w = line.split_whitespace();
        let id: u64 = w.next().unwrap().parse().unwrap();
        match w.next() {
            Some("voter") => voters.push(id),
            Some("learner") => learners.push(id),
            other => panic!("bad member line {line:?} ({other:?})"),
        }
    }
    (voters, learners)
}

/// Waits (bounded) until `member list` shows exactly these voters and learners.
async fn wait_members(c: &Cluster, voters: &[u64], learners: &[u64]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = members(c).await;
        if got.0 == voters && got.1 == learners {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members {got:?}, want {voters:?} {learners:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until node `id` has applied what the leader had committed when called.
async fn caught_up(c: &Cluster, id: u64, leader: u64) {
    let target = num(&c.info(leader).await.expect("leader answers"), "commit");
    c.wait_info(id, WAIT, "caught up", |i| num(i, "applied") >= target)
        .await;
}

fn timed(what: &str, t: Instant) {
    eprintln!("timing: {what}: {} ms", t.elapsed().as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_to_five_move_leadership_and_shrink_to_three_under_load() {
    use common::history::{assert_linearizable, completed_between, recorder, spawn_clients};
    let _g = serial();
    let mut c = Cluster::new(5, FLAGS);
    for id in 1..=3 {
        c.set_members(id, &[1, 2, 3]);
        c.spawn(id);
    }
    let first = c.wait_leader(&[1, 2, 3], WAIT).await;
    let rec = recorder();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let clients = spawn_clients(
        &vec![eps; 4],
        600,
        Duration::from_millis(10),
        &rec,
        &stop,
        t0,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Grow: each new node starts with --join, is added as a learner, catches
    // up, and is promoted.
    for id in [4, 5] {
        c.set_members(id, &[1, 2, 3, id]);
        c.spawn_with(id, &["--join"]);
        let peer = c.nodes[id as usize - 1].peer.clone();
        let t = Instant::now();
        admin(&c, &["member", "add", &format!("{id}={peer}"), "--learner"]).await;
        timed(&format!("member add {id} --learner"), t);
        let t = Instant::now();
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await;
        caught_up(&c, id, leader).await;
        timed(&format!("learner {id} caught up"), t);
        let t = Instant::now();
        admin(&c, &["member", "promote", &id.to_string()]).await;
        timed(&format!("member promote {id}"), t);
    }
    wait_members(&c, &[1, 2, 3, 4, 5], &[]).await;

    // Move leadership to a new member.
    let t = Instant::now();
    admin(&c, &["leader", "transfer", "--to", "5"]).await;
    timed("leader transfer --to 5", t);
    assert_eq!(c.wait_leader(&[1, 2, 3, 4, 5], WAIT).await, 5);

    // Shrink: remove 4, then 5, the leader (it hands leadership over).
    for id in [4, 5] {
        let t = Instant::now();
        admin(&c, &["member", "remove", &id.to_string()]).await;
        timed(&format!("member remove {id}"), t);
    }
    let after = c.wait_leader(&[1, 2, 3], WAIT).await;
    wait_members(&c, &[1, 2, 3], &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    eprintln!("leaders: first {first}, last {after}");

    // A removed node restarted on its data directory is refused, clearly.
    // (Node 5 certainly holds its own removal: it appended it as leader.)
    c.kill(5);
    c.spawn(5);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = c.exited(5) {
            break s;
        }
        assert!(Instant::now() < deadline, "removed node 5 kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "a removed node must not start");

    let history = rec.lock().unwrap().history().to_vec();
    let done = completed_between(&history, 0, u64::MAX);
    assert!(done > 100, "too few completed operations: {done}");
    assert_linearizable(&history);
}

/// A rolling restart with SIGTERM: every stopping leader hands leadership over
/// first — its log says the hand-off completed (the successor led before it
/// stopped) — and the group's term grows by exactly one per leader stop, so
/// no election was left to a timeout. Without the hand-off in
/// `RunningNode::run_until`, the log lines are missing and this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_with_sigterm_hands_over_leadership() {
    use common::history::{assert_linearizable, completed_between, recorder, spawn_clients};
    let _g = serial();
    let logs = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(3, FLAGS);
    c.log_level = "info".into();
    c.log_dir = Some(logs.path().to_path_buf());
    for id in 1..=3 {
        c.spawn(id);
    }
    c.wait_leader(&[1, 2, 3], WAIT).await;
    let rec = recorder();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let clients = spawn_clients(
        &vec![eps; 4],
        500,
        Duration::from_millis(10),
        &rec,
        &stop,
        t0,
    );
    let leader = c.wait_leader(&[1, 2, 3], WAIT).await;
    let term_before = num(&c.info(leader).await.unwrap(), "term");
    let mut leader_stops = 0;
    for id in 1..=3 {
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await;
        leader_stops += u64::from(leader == id);
        let t = Instant::now();
        c.signal(id, libc::SIGTERM);
        let deadline = Instant::now() + WAIT;
        while c.exited(id).is_none() {
            assert!(
                Instant::now() < deadline,
                "node {id} did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        timed(&format!("SIGTERM node {id} (leader: {})", leader == id), t);
        c.spawn(id);
        let t = Instant::now();
        let now_leader = c.wait_leader(&[1, 2, 3], WAIT).await;
        caught_up(&c, id, now_leader).await;
        timed(&format!("node {id} back and caught up"), t);
        tokio::time::sleep(Duration::from_millis(400)).await; // load between restarts
    }
    let leader = c.wait_leader(&[1, 2, 3], WAIT).await;
    let term_after = num(&c.info(leader).await.unwrap(), "term");
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    eprintln!("rolling restart: {leader_stops} leader stops, term {term_before} -> {term_after}");
    assert!(leader_stops >= 1, "the leader was among the stopped");
    let handed_over: usize = (1..=3)
        .map(|id| {
            let log = std::fs::read_to_string(logs.path().join(format!("node-{id}.log"))).unwrap();
            log.matches("leadership handed over before stopping")
                .count()
        })
        .sum();
    assert_eq!(
        handed_over as u64, leader_stops,
        "every stopping leader handed over"
    );
    assert_eq!(
        term_after - term_before,
        leader_stops,
        "one election per leader stop, none by timeout"
    );
    let history = rec.lock().unwrap().history().to_vec();
    assert!(completed_between(&history, 0, u64::MAX) > 200);
    assert_linearizable(&history);
}

/// `snapshot save` works on a loaded cluster; a save taken once the load
/// stopped, restored into a new three-node group, serves every key with the
/// old group's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_save_under_load_and_restore_into_a_new_group() {
    use common::history::{recorder, spawn_clients};
    use common::{call, call_ok};
    let _g = serial();
    let c = Cluster::start(3, FLAGS);
    c.wait_leader(&[1, 2, 3], WAIT).await;
    let rec = recorder();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let clients = spawn_clients(
        &vec![eps; 4],
        300,
        Duration::from_millis(5),
        &rec,
        &stop,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = dir.path().join("loaded.snap");
    let t = Instant::now();
    let out = admin(&c, &["snapshot", "save", loaded.to_str().unwrap()]).await;
    timed("snapshot save under load", t);
    assert!(out.contains("saved"), "{out}");
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    let file = dir.path().join("quiet.snap");
    admin(&c, &["snapshot", "save", file.to_str().unwrap()]).await;
    let keys: Vec<String> = (0..16).map(|k| format!("k{k}")).collect();
    let mut old = Vec::new();
    for k in &keys {
        old.push(call_ok(&c.endpoint(1), &[b"GET", k.as_bytes()], WAIT).await);
    }
    assert!(
        old.iter()
            .any(|v| matches!(v, server::resp::Frame::Bulk(_))),
        "the load wrote keys"
    );

    let mut fresh = Cluster::new(3, FLAGS);
    let cluster_arg: Vec<String> = fresh
        .nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.peer))
        .collect();
    let t = Instant::now();
    for n in &fresh.nodes {
        let args = vec![
            "snapshot".to_string(),
            "restore".into(),
            file.to_str().unwrap().into(),
            "--data-dir".into(),
            n.data.to_str().unwrap().into(),
            "--id".into(),
            n.id.to_string(),
            "--cluster".into(),
            cluster_arg.join(","),
        ];
        let (ok, _, err) = raftkv(args).await;
        assert!(ok, "restore node {}: {err}", n.id);
    }
    for id in 1..=3 {
        fresh.spawn(id);
    }
    fresh.wait_leader(&[1, 2, 3], WAIT).await;
    timed("restore into 3 data dirs + start + elect", t);
    for (k, want) in keys.iter().zip(&old) {
        let got = call(&fresh.endpoint(2), &[b"GET", k.as_bytes()]).await;
        assert_eq!(got.as_ref(), Some(want), "key {k}");
    }
    // The restored group takes writes.
    assert_eq!(
        call_ok(&fresh.endpoint(3), &[b"SET", b"after", b"restore"], WAIT).await,
        server::resp::Frame::Simple("OK".into())
    );
    // Restoring over an existing data dir is refused.
    let (ok, _, err) = raftkv(vec![
        "snapshot".into(),
        "restore".into(),
        file.to_str().unwrap().into(),
        "--data-dir".into(),
        fresh.nodes[0].data.to_str().unwrap().into(),
        "--id".into(),
        "1".into(),
        "--cluster".into(),
        cluster_arg.join(","),
    ])
    .await;
    assert!(!ok && err.contains("not empty"), "{err}");
}

/// Replacing a failed machine: node 3 is killed with -9 and its data
/// directory deleted; it is removed, and a new node (id 4, empty data
/// directory, `--join`) is added as a learner and promoted — all under a
/// checked load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_node_killed_with_its_data_dir_deleted() {
    use common::history::{assert_linearizable, completed_between, recorder, spawn_clients};
    let _g = serial();
    let mut c = Cluster::new(4, FLAGS);
    for id in 1..=3 {
        c.set_members(id, &[1, 2, 3]);
        c.spawn(id);
    }
    c.wait_leader(&[1, 2, 3], WAIT).await;
    // Clients use nodes 1 and 2, which stay throughout.
    let rec = recorder();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = (1..=2).map(|i| c.endpoint(i)).collect();
    let clients = spawn_clients(
        &vec![eps; 4],
        500,
        Duration::from_millis(10),
        &rec,
        &stop,
        t0,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill(3);
    std::fs::remove_dir_all(&c.nodes[2].data).unwrap();
    let t = Instant::now();
    admin(&c, &["member", "remove", "3"]).await;
    timed("member remove 3 (dead)", t);
    c.set_members(4, &[1, 2, 4]);
    c.spawn_with(4, &["--join"]);
    let peer = c.nodes[3].peer.clone();
    let t = Instant::now();
    admin(&c, &["member", "add", &format!("4={peer}"), "--learner"]).await;
    let leader = c.wait_leader(&[1, 2], WAIT).await;
    caught_up(&c, 4, leader).await;
    admin(&c, &["member", "promote", "4"]).await;
    timed("replacement 4 added, caught up, promoted", t);
    wait_members(&c, &[1, 2, 4], &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    // The new member alone with one old one is a quorum: it really votes.
    c.kill(2);
    c.wait_leader(&[1, 4], WAIT).await;
    let history = rec.lock().unwrap().history().to_vec();
    assert!(completed_between(&history, 0, u64::MAX) > 100);
    assert_linearizable(&history);
}
