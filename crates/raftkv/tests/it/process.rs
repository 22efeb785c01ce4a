//! Real-process fault tests: `raftkv server` children on 127.0.0.1, driven
//! over RESP. Each test is bounded (polling waits with deadlines) and kills
//! its processes on exit, panics included (the harness's `Drop`).

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bulk, call, call_ok, num, serial, Cluster};
use server::resp::Frame;

const ELECTION: Duration = Duration::from_secs(10);
const FLAGS: &[&str] = &["--request-timeout-ms", "2000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_agree_through_followers_and_leader() {
    let _g = serial();
    let c = Cluster::start(3, FLAGS);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let f = *[1, 2, 3].iter().find(|&&i| i != leader).unwrap();
    let (le, fe) = (c.endpoint(leader), c.endpoint(f));
    assert_eq!(
        call(&fe, &[b"SET", b"k", b"v1"]).await,
        Some(Frame::Simple("OK".into()))
    );
    assert_eq!(call(&le, &[b"GET", b"k"]).await, Some(bulk("v1")));
    assert_eq!(
        call(&le, &[b"APPEND", b"k", b"23"]).await,
        Some(Frame::Integer(4))
    );
    assert_eq!(call(&fe, &[b"GET", b"k"]).await, Some(bulk("v123")));
    assert_eq!(
        call(&fe, &[b"EXISTS", b"k", b"nope", b"k"]).await,
        Some(Frame::Integer(2))
    );
    assert_eq!(
        call(&fe, &[b"DEL", b"k", b"nope"]).await,
        Some(Frame::Integer(1))
    );
    assert_eq!(call(&le, &[b"GET", b"k"]).await, Some(Frame::Null));
    assert_eq!(
        call(&fe, &[b"PING"]).await,
        Some(Frame::Simple("PONG".into()))
    );
    let Some(Frame::Error(e)) = call(&fe, &[b"GET"]).await else {
        panic!("arity")
    };
    assert_eq!(e, "ERR wrong number of arguments for 'get' command");
    let Some(Frame::Error(e)) = call(&fe, &[b"NOSUCHCMD"]).await else {
        panic!("unknown")
    };
    assert!(e.starts_with("ERR unknown command 'NOSUCHCMD'"), "{e}");
}

/// Writers on distinct keys; returns the acknowledged (key, value) pairs.
fn spawn_writers(
    endpoints: Vec<String>,
    n: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(String, String)>>> {
    (0..n)
        .map(|w| {
            let (eps, stop) = (endpoints.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (k, v) = (
                        format!("w{w}-{i}"),
                        format!("value-{w}-{i}-{}", "x".repeat(200)),
                    );
                    let ep = &eps[(i as usize + w) % eps.len()];
                    if let Some(Frame::Simple(ok)) =
                        call(ep, &[b"SET", k.as_bytes(), v.as_bytes()]).await
                    {
                        assert_eq!(ok, "OK");
                        acked.push((k, v));
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect()
}

async fn assert_all_present(c: &Cluster, ep: &str, acked: &[(String, String)]) {
    for (k, v) in acked {
        let got = call_ok(ep, &[b"GET", k.as_bytes()], Duration::from_secs(10)).await;
        assert_eq!(got, bulk(v), "acknowledged write {k} lost");
    }
    let _ = c;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader_under_writes_then_restart_catches_up_via_snapshot() {
    let _g = serial();
    let mut c = Cluster::start(
        3,
        &[
            "--request-timeout-ms",
            "2000",
            "--snapshot-threshold-bytes",
            "65536",
        ],
    );
    let old = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != old).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Writers use only the survivors' endpoints, so they keep going after the kill.
    let writers = spawn_writers(
        others.iter().map(|&i| c.endpoint(i)).collect(),
        4,
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await; // let some writes land before the fault
    c.kill(old);
    let new = c.wait_leader(&others, ELECTION).await;
    assert_ne!(new, old);
    // Keep writing on the new leader until the log has been compacted past what `old` has.
    c.wait_info(
        new,
        Duration::from_secs(30),
        "a snapshot after the kill",
        |i| num(i, "snapshot_index") > 0 && num(i, "commit") > 300,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 100,
        "too few writes acknowledged: {}",
        acked.len()
    );
    assert_all_present(&c, &c.endpoint(new), &acked).await;

    c.spawn(old);
    let target = num(&c.info(new).await.unwrap(), "commit");
    c.wait_info(old, Duration::from_secs(30), "catch-up", |i| {
        num(i, "applied") >= target
    })
    .await;
    assert!(
        num(&c.info(old).await.unwrap(), "snapshot_index") > 0,
        "the restarted node should have installed or taken a snapshot"
    );
    assert_all_present(
        &c,
        &c.endpoint(old),
        &acked[acked.len().saturating_sub(50)..],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_restart_keeps_acknowledged_writes() {
    let _g = serial();
    let mut c = Cluster::start(3, FLAGS);
    c.wait_leader(&[1, 2, 3], ELECTION).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers((1..=3).map(|i| c.endpoint(i)).collect(), 3, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // kill -9 everything while writes are in flight.
    for id in 1..=3 {
        c.kill(id);
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(!acked.is_empty());
    for id in 1..=3 {
        c.spawn(id);
    }
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    assert_all_present(&c, &c.endpoint(leader), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_leader_steps_down_and_serves_no_stale_read() {
    let _g = serial();
    let c = Cluster::start(3, FLAGS);
    let old = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != old).collect();
    assert_eq!(
        call_ok(&c.endpoint(old), &[b"SET", b"x", b"before"], ELECTION).await,
        Frame::Simple("OK".into())
    );
    c.signal(old, libc::SIGSTOP);
    let new = c.wait_leader(&others, ELECTION).await;
    assert_eq!(
        call_ok(&c.endpoint(new), &[b"SET", b"x", b"after"], ELECTION).await,
        Frame::Simple("OK".into())
    );
    c.signal(old, libc::SIGCONT);
    // The very first read through the old leader must not be stale: it
    // either answers the new value or an error, never "before".
    let first = call(&c.endpoint(old), &[b"GET", b"x"]).await;
    assert_ne!(
        first,
        Some(bulk("before")),
        "stale read from a deposed leader"
    );
    c.wait_info(old, ELECTION, "step down", |i| {
        i.get("role").map(String::as_str) == Some("follower")
    })
    .await;
    assert_eq!(
        call_ok(&c.endpoint(old), &[b"GET", b"x"], ELECTION).await,
        bulk("after")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_serve_with_two_down_and_refuse_with_three_down() {
    let _g = serial();
    let mut c = Cluster::start(5, &["--request-timeout-ms", "1500"]);
    let leader = c.wait_leader(&[1, 2, 3, 4, 5], ELECTION).await;
    // Take down the leader and one more.
    let down: Vec<u64> = std::iter::once(leader)
        .chain((1..=5).filter(|&i| i != leader).take(1))
        .collect();
    down.iter().for_each(|&i| c.kill(i));
    let live = c.live();
    c.wait_leader(&live, ELECTION).await;
    assert_eq!(
        call_ok(&c.endpoint(live[0]), &[b"SET", b"k", b"v"], ELECTION).await,
        Frame::Simple("OK".into())
    );
    assert_eq!(
        call_ok(&c.endpoint(live[2]), &[b"GET", b"k"], ELECTION).await,
        bulk("v")
    );
    // A third down: no majority. Wait until the survivors know there is no leader.
    c.kill(live[0]);
    let survivors = c.live();
    for &s in &survivors {
        c.wait_info(s, ELECTION, "no leader", |i| num(i, "leader") == 0)
            .await;
    }
    let t0 = Instant::now();
    let reply = call(&c.endpoint(survivors[0]), &[b"SET", b"k", b"w"]).await;
    let Some(Frame::Error(e)) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert!(e.starts_with("CLUSTERDOWN"), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "CLUSTERDOWN took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_history_under_leader_crash_is_linearizable() {
    use common::history::{assert_linearizable, completed_between, recorder, spawn_clients};
    let _g = serial();
    let mut c = Cluster::start(3, FLAGS);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let rec = recorder();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    // Bounded per client so the checker stays decisive; the pause spreads ops over the fault.
    let clients = spawn_clients(
        &vec![eps; 6],
        400,
        Duration::from_millis(8),
        &rec,
        &stop,
        t0,
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    c.kill(leader);
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    c.wait_leader(&others, ELECTION).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.spawn(leader);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    let killed_at = 1_000_000; // µs
    let history = rec.lock().unwrap().history().to_vec();
    let done = completed_between(&history, 0, u64::MAX);
    let after_kill = completed_between(&history, killed_at + 1, u64::MAX);
    assert!(
        after_kill > 50,
        "the fault must fall inside the history: {after_kill} ops completed after the kill"
    );
    assert!(done > 50, "too few completed operations: {done}");
    assert_linearizable(&history);
}
