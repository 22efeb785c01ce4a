//! Network-partition tests with real `raftkv server` processes on 127.0.0.1.
//!
//! Every node dials its peers through per-link TCP proxies placed by the test
//! (`common::proxy`): node i's `--cluster` view lists its own real peer
//! address and, for every other node j, the proxy of link (i→j). Nodes know
//! each other by the `Hello` handshake id, so the proxies are transparent
//! until a link is cut. Waits are bounded and polling; the `Cluster` kills
//! its processes on drop (panics included) and the `Net` stops its proxies.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::history::{assert_linearizable, completed_between, micros, recorder, spawn_clients};
use common::proxy::{Fault, Net};
use common::{bulk, call, call_ok, num, serial, wait_converged, Cluster};
use server::resp::Frame;

const ELECTION: Duration = Duration::from_secs(10);
const ALL: [u64; 3] = [1, 2, 3];
const FLAGS: &[&str] = &["--request-timeout-ms", "2000"];

/// Three nodes whose every peer link goes through a proxy of `Net`.
async fn proxied_cluster(extra: &[&str]) -> (Cluster, Net) {
    let mut net = Net::bind(&ALL).await;
    let mut c = Cluster::new(3, extra);
    net.start(|j| c.nodes[j as usize - 1].peer.clone());
    for id in ALL {
        c.set_view(id, |j| net.addr(id, j));
        c.spawn(id);
    }
    (c, net)
}

fn others(id: u64) -> Vec<u64> {
    ALL.into_iter().filter(|&i| i != id).collect()
}

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

fn is_refusal(reply: &Option<Frame>) -> bool {
    matches!(reply, Some(Frame::Error(e)) if e.starts_with("TIMEOUT") || e.starts_with("CLUSTERDOWN"))
}

/// Sends `args` (built from the iteration number) to `ep` in a loop until
/// `stop`; returns each reply.
fn probe(
    ep: String,
    stop: Arc<AtomicBool>,
    args: fn(u64) -> Vec<Vec<u8>>,
) -> tokio::task::JoinHandle<Vec<Option<Frame>>> {
    tokio::spawn(async move {
        let mut replies = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let a = args(i);
            let a: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
            replies.push(call(&ep, &a).await);
            i += 1;
        }
        replies
    })
}

/// Scenario 1: the leader is cut off from both followers, both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_serves_nothing_then_rejoins_and_converges() {
    let _g = serial();
    let (c, net) = proxied_cluster(FLAGS).await;
    let old = c.wait_leader(&ALL, ELECTION).await;
    let (oe, majority) = (c.endpoint(old), others(old));
    assert_eq!(
        call_ok(&oe, &[b"SET", b"x", b"before"], ELECTION).await,
        ok()
    );
    let term_before = num(&c.info(old).await.unwrap(), "term");

    net.isolate(old, Fault::Blackhole).await;
    let t_cut = Instant::now();
    // From now on, the old leader's clients: reads of x and writes of y.
    let stop = Arc::new(AtomicBool::new(false));
    let gets = probe(oe.clone(), stop.clone(), |_| {
        vec![b"GET".to_vec(), b"x".to_vec()]
    });
    let sets = probe(oe.clone(), stop.clone(), |i| {
        vec![
            b"SET".to_vec(),
            b"y".to_vec(),
            format!("stale-{i}").into_bytes(),
        ]
    });

    // The majority elects a new leader and keeps serving, through both of its nodes.
    let new = c.wait_leader(&majority, ELECTION).await;
    let elected_in = t_cut.elapsed();
    assert_ne!(new, old);
    for (i, &n) in majority.iter().cycle().take(20).enumerate() {
        let v = format!("z{i}");
        assert_eq!(
            call_ok(
                &c.endpoint(n),
                &[b"SET", v.as_bytes(), v.as_bytes()],
                ELECTION
            )
            .await,
            ok()
        );
    }
    assert_eq!(
        call(&c.endpoint(new), &[b"SET", b"x", b"after"]).await,
        Some(ok()),
        "the new majority refused a write"
    );
    // Check-quorum: the old leader notices it lost the majority and steps down.
    c.wait_info(old, ELECTION, "step down while cut off", |i| {
        i.get("role").map(String::as_str) != Some("leader")
    })
    .await;
    let stepped_down_in = t_cut.elapsed();
    // Once x=after is acknowledged, the old node must not answer "before"
    // (nor anything: a read needs a quorum it cannot reach).
    for _ in 0..2 {
        let r = call(&oe, &[b"GET", b"x"]).await;
        assert!(
            is_refusal(&r),
            "old leader answered a read while cut off (after x=after was acknowledged): {r:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (gets, sets) = (gets.await.unwrap(), sets.await.unwrap());
    assert!(!gets.is_empty() && !sets.is_empty());
    for r in &gets {
        assert!(
            is_refusal(r),
            "old leader answered a read while cut off: {r:?}"
        );
    }
    for r in &sets {
        assert!(
            is_refusal(r),
            "old leader answered a write while cut off with {r:?} (want -TIMEOUT/-CLUSTERDOWN)"
        );
    }
    eprintln!(
        "cut at 0: new leader {new} after {elected_in:?}, old leader {old} stepped down after {stepped_down_in:?}; \
         old answered {} reads and {} writes, all refused",
        gets.len(),
        sets.len()
    );

    // Heal: the old node rejoins as a follower of the same leader (pre-vote:
    // its term did not grow while cut off) and converges.
    net.heal_all();
    let agreed = wait_converged(&c, &ALL, ELECTION).await;
    assert_eq!(
        num(&agreed, "leader"),
        new,
        "the rejoining node disturbed the new leader"
    );
    assert!(num(&agreed, "term") > term_before);
    assert_eq!(call_ok(&oe, &[b"GET", b"x"], ELECTION).await, bulk("after"));
    // The writes refused while cut off never took effect: they were only in
    // the old leader's log, which the new leader's overwrote.
    for id in ALL {
        assert_eq!(
            call_ok(&c.endpoint(id), &[b"GET", b"y"], ELECTION).await,
            Frame::Null,
            "a refused write took effect"
        );
        assert_eq!(
            call_ok(&c.endpoint(id), &[b"GET", b"z19"], ELECTION).await,
            bulk("z19")
        );
    }
    // x and z0..z19; y never existed.
    assert_eq!(num(&agreed, "keys"), 21);
}

/// Scenario 2: concurrent clients through all three endpoints while the
/// leader is partitioned away and then healed; the history is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_history_under_leader_partition_is_linearizable() {
    let _g = serial();
    let (c, net) = proxied_cluster(FLAGS).await;
    let old = c.wait_leader(&ALL, ELECTION).await;
    let rec = recorder();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = ALL.iter().map(|&i| c.endpoint(i)).collect();
    // Six clients rotate over all three endpoints; three more are pinned,
    // one per node, so the majority keeps getting traffic while every
    // third operation of a rotating client waits on the cut-off node.
    let routes: Vec<Vec<String>> = (0..9)
        .map(|cl| {
            if cl < 6 {
                eps.clone()
            } else {
                vec![eps[cl % 3].clone()]
            }
        })
        .collect();
    let clients = spawn_clients(&routes, 400, Duration::from_millis(8), &rec, &stop, t0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cut_at = micros(t0);
    net.isolate(old, Fault::Blackhole).await;
    c.wait_leader(&others(old), ELECTION).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // longer than the request timeout
    let healed_at = micros(t0);
    net.heal_all();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    let history = rec.lock().unwrap().history().to_vec();
    let (before, during, after) = (
        completed_between(&history, 0, cut_at),
        completed_between(&history, cut_at, healed_at),
        completed_between(&history, healed_at, u64::MAX),
    );
    let unknown = history.iter().filter(|o| o.is_unknown()).count();
    eprintln!("history: {} ops, completed {before} before the cut, {during} during, {after} after the heal; {unknown} unknown", history.len());
    assert!(
        during > 30,
        "too few operations completed during the partition: {during}"
    );
    assert!(
        after > 30,
        "too few operations completed after the heal: {after}"
    );
    assert_linearizable(&history);
    wait_converged(&c, &ALL, ELECTION).await;
}

/// Scenario 3: a follower partitioned one way (it hears nothing from the
/// leader) and then fully (with refused connections): the leader keeps its
/// term and keeps serving; the follower catches up after each heal, the
/// second time through a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_follower_does_not_disturb_and_catches_up() {
    let _g = serial();
    let (c, net) = proxied_cluster(&[
        "--request-timeout-ms",
        "2000",
        "--snapshot-threshold-bytes",
        "65536",
    ])
    .await;
    let leader = c.wait_leader(&ALL, ELECTION).await;
    let (f, g) = (others(leader)[0], others(leader)[1]);
    let term = num(&c.info(leader).await.unwrap(), "term");
    let serving = [c.endpoint(leader), c.endpoint(g)];
    let write_batch = |tag: &'static str, n: usize, size: usize| {
        let serving = serving.clone();
        async move {
            let tasks: Vec<_> = (0..4)
                .map(|w| {
                    let serving = serving.clone();
                    tokio::spawn(async move {
                        for i in (w..n).step_by(4) {
                            let (k, v) = (
                                format!("{tag}{i}"),
                                format!("{tag}{i}-{}", "v".repeat(size)),
                            );
                            let r =
                                call(&serving[i % 2], &[b"SET", k.as_bytes(), v.as_bytes()]).await;
                            assert_eq!(
                                r,
                                Some(ok()),
                                "write {k} refused while only a follower was partitioned"
                            );
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    let leader_kept = |info: &BTreeMap<String, String>, what: &str| {
        assert_eq!(
            (num(info, "leader"), num(info, "term")),
            (leader, term),
            "{what}: the leader changed"
        );
    };

    // One way: the leader's messages to f are lost; f can still send.
    net.cut(leader, f, Fault::Blackhole).await;
    write_batch("a", 40, 100).await;
    c.wait_info(f, ELECTION, "lose the leader", |i| num(i, "leader") == 0)
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await; // more than an election timeout of pre-votes from f
    leader_kept(&c.info(leader).await.unwrap(), "one-way cut");
    assert_eq!(
        num(&c.info(f).await.unwrap(), "term"),
        term,
        "pre-vote: a cut-off follower must not raise its term"
    );
    net.heal(leader, f);
    leader_kept(&wait_converged(&c, &ALL, ELECTION).await, "one-way heal");

    // Fully isolated, with connection attempts refused; enough writes that
    // the leader compacts its log past what f has.
    net.isolate(f, Fault::Refuse).await;
    write_batch("b", 160, 1000).await;
    c.wait_info(leader, ELECTION, "a snapshot", |i| {
        num(i, "snapshot_index") > 0
    })
    .await;
    leader_kept(&c.info(leader).await.unwrap(), "isolation");
    assert_eq!(
        num(&c.info(f).await.unwrap(), "term"),
        term,
        "pre-vote: an isolated follower must not raise its term"
    );
    net.heal_all();
    let agreed = wait_converged(&c, &ALL, Duration::from_secs(20)).await;
    leader_kept(&agreed, "heal");
    assert_eq!(num(&agreed, "keys"), 200);
    let fi = c.info(f).await.unwrap();
    eprintln!(
        "follower {f} after catch-up: snapshot_index {} applied {}",
        num(&fi, "snapshot_index"),
        num(&fi, "applied")
    );
    assert_eq!(
        call_ok(&c.endpoint(f), &[b"GET", b"b159"], ELECTION).await,
        bulk(&format!("b159-{}", "v".repeat(1000)))
    );
}

/// Scenario 4: a partition that heals into half-open connections. The
/// leader is cut off by proxies that accept connections and swallow what
/// they carry, and keep swallowing on those connections after the heal (a
/// middlebox that kept its state). Then the new leader is killed, so a
/// quorum needs the formerly cut-off node again: the survivors must notice
/// that their links to each other are dead (no bytes reported read by the
/// peer), re-dial, and elect a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_links_after_a_heal_are_redialled() {
    let _g = serial();
    let (mut c, net) = proxied_cluster(FLAGS).await;
    let old = c.wait_leader(&ALL, ELECTION).await;
    let oe = c.endpoint(old);
    assert_eq!(call_ok(&oe, &[b"SET", b"x", b"1"], ELECTION).await, ok());

    net.isolate(old, Fault::HalfOpen).await;
    let new = c.wait_leader(&others(old), ELECTION).await;
    let ne = c.endpoint(new);
    assert_eq!(call_ok(&ne, &[b"SET", b"x", b"2"], ELECTION).await, ok());
    // Longer than a link's `dead_after` (2.4 s here): links give up on a
    // swallowed connection and re-dial into the still-cut proxy meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.heal_all();
    let t_heal = Instant::now();
    c.kill(new);
    let rest: Vec<u64> = others(new);
    let leader = c.wait_leader(&rest, Duration::from_secs(15)).await;
    let elected_in = t_heal.elapsed();
    let le = c.endpoint(leader);
    assert_eq!(call_ok(&le, &[b"SET", b"x", b"3"], ELECTION).await, ok());
    let written_in = t_heal.elapsed();
    for id in rest {
        assert_eq!(
            call_ok(&c.endpoint(id), &[b"GET", b"x"], ELECTION).await,
            bulk("3")
        );
    }
    eprintln!(
        "half-open heal: leader {leader} among {:?} after {elected_in:?}, first write after {written_in:?}",
        others(new)
    );
}
