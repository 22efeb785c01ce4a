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
    assert!(done > 200, "too few completed operations: {done}");
    assert_linearizable(&history);
}
