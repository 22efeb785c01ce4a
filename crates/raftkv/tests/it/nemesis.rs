//! A randomized Jepsen-style "nemesis" test with real `raftkv server`
//! processes on 127.0.0.1.
//!
//! Three nodes (`NEMESIS_NODES=5` for five), every peer link through a
//! per-link proxy (`common::proxy`). Six to nine clients issue random
//! GET/SET/APPEND/DEL on a small key set (rotating every few seconds, so
//! each key sees a bounded number of operations and the checker stays
//! decisive) through every node's client port, and record a history. A
//! write answered `-TIMEOUT` or not answered is unknown (it may or may not
//! have taken effect); one answered `-CLUSTERDOWN` certainly did not, so it
//! is left out of the history (if it took effect anyway, a read exposes it);
//! a read that fails has no effect. Meanwhile a nemesis follows a fault
//! schedule drawn in full from one seed before the run starts: kill -9 and
//! restart from the same data dir, SIGSTOP/SIGCONT (some shorter than an
//! election timeout, most longer), isolating a node, splitting into random
//! halves, one-way cuts, rarely a full-cluster kill -9, and healing
//! everything. Most of the time at most a minority is faulty; sometimes a
//! majority is, briefly (the cluster must refuse, then recover). The
//! server's election timeout, request timeout and snapshot threshold are
//! drawn from the seed too. At the end everything is healed and restarted
//! and the test checks:
//!
//! 1. the history, with a final read of every key through every node, is
//!    linearizable (lincheck must answer Ok, not Unknown): every
//!    acknowledged write is visible, no refused write took effect, no read
//!    was stale;
//! 2. no node process died on its own;
//! 3. all nodes converge: the same term, leader, commit, applied, last
//!    index and key count in INFO, and the same state machine contents
//!    (each node is made leader in turn and every key is read through it,
//!    so the read is served from its own state);
//! 4. the cluster kept serving while at most a minority was faulty (no
//!    stall longer than `NEMESIS_MAX_STALL_MS`, 3 s of grace after each
//!    majority fault) and serves again after the final heal.
//!
//! Environment: `NEMESIS_SEED` replays a schedule (real processes are not
//! deterministic; the schedule, the server flags and each client's choices
//! are), `NEMESIS_SECS` (default 15) sets the fault phase's length,
//! `NEMESIS_NODES` (3 or 5), `NEMESIS_MAX_STALL_MS` (default 10000). The
//! seed, flags and schedule are printed first. Node logs (info level), data
//! dirs, the schedule as planned and as executed, and the history are kept
//! under `$CARGO_TARGET_TMPDIR/nemesis-<seed>-<pid>` when the test fails and
//! removed when it passes. Node ports are drawn below the ephemeral port
//! range, so a killed node's port is not taken by some outgoing connection
//! before it restarts.
//!
//! Layout: `nemesis/schedule.rs` draws the faults from the seed,
//! `nemesis/world.rs` applies them to the processes and proxies,
//! `nemesis/clients.rs` runs the clients and logs their history,
//! `nemesis/checks.rs` holds what is checked afterwards; this file runs them.

use crate::common;
mod checks;
mod clients;
mod schedule;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::history::micros;
use common::proxy::Net;
use common::{num, port_below_ephemeral, serial, wait_converged, Cluster};
use lincheck::{check_with, describe, CheckOptions, KvInput, KvOperation, KvOutput, Operation};
use server::resp::Frame;

use checks::*;
use clients::*;
use schedule::*;
use world::*;

/// A client gives up on a reply this long after the server's request
/// timeout (then the outcome is unknown).
pub const CLIENT_SLACK: Duration = Duration::from_secs(1);
/// Keys rotate every epoch, so each key sees a bounded number of operations
/// and the checker stays decisive.
pub const EPOCH_MS: u64 = 4000;
pub const KEYS_PER_EPOCH: u64 = 3;
/// Clean traffic before the first fault, and after the final heal.
pub const WARMUP_MS: u64 = 1000;
pub const COOLDOWN_MS: u64 = 2500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis() {
    let _g = serial();
    let seed = env_u64("NEMESIS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (t.as_nanos() as u64 ^ (std::process::id() as u64) << 32) % 1_000_000_000
    });
    let secs = env_u64("NEMESIS_SECS").unwrap_or(15);
    let n = env_u64("NEMESIS_NODES").unwrap_or(3);
    assert!(n == 3 || n == 5, "NEMESIS_NODES must be 3 or 5");
    let max_stall = Duration::from_millis(env_u64("NEMESIS_MAX_STALL_MS").unwrap_or(10_000));
    let minority = (n - 1) / 2;
    let replay = format!("NEMESIS_SEED={seed} NEMESIS_SECS={secs} NEMESIS_NODES={n} cargo test [--release] -p raftkv --test it nemesis:: -- --nocapture");
    eprintln!("nemesis: seed {seed}, {secs} s, {n} nodes\nreplay: {replay}");

    let mut rng = Rng(seed);
    let mut sched_rng = rng.fork(1);
    let mut port_rng = rng.fork(2);
    let mut client_rng = rng.fork(3);
    // Server settings vary by seed too.
    let mut flag_rng = rng.fork(4);
    let election_ms = flag_rng.pick(&[200, 300, 500]);
    let request_ms = flag_rng.pick(&[1000, 2000]);
    let snapshot_bytes = flag_rng.pick(&[8192, 32768, 1 << 20]);
    let client_timeout = Duration::from_millis(request_ms) + CLIENT_SLACK;
    let flags: Vec<String> = [
        ("--election-timeout-ms", election_ms),
        ("--request-timeout-ms", request_ms),
        ("--snapshot-threshold-bytes", snapshot_bytes),
    ]
    .iter()
    .flat_map(|(f, v)| [f.to_string(), v.to_string()])
    .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    eprintln!("server flags: {}", flags.join(" "));
    let events = schedule(&mut sched_rng, n, secs, election_ms);
    let mut plan = String::new();
    for e in &events {
        let _ = writeln!(plan, "  {}", e.line(n));
    }
    eprintln!("fault schedule ({} events):\n{plan}", events.len());

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nemesis-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&path).unwrap();
    let run_dir = RunDir {
        path: path.clone(),
        replay,
    };
    std::fs::write(path.join("schedule.txt"), &plan).unwrap();

    // Proxies first (they hold their ports), then node ports below the
    // ephemeral range (a restarted node must find its ports free).
    let ids: Vec<u64> = (1..=n).collect();
    let mut net = Net::bind(&ids).await;
    let mut c = Cluster::with_layout(n, &flags, &path, || {
        port_below_ephemeral(|| port_rng.range(16_000, 31_999) as u16)
    });
    c.log_level = "info".into();
    c.log_dir = Some(path.clone());
    net.start(|j| c.nodes[j as usize - 1].peer.clone());
    for &id in &ids {
        c.set_view(id, |j| net.addr(id, j));
        c.spawn(id);
    }
    let mut w = World {
        c,
        net,
        n,
        stopped: BTreeSet::new(),
        cuts: BTreeMap::new(),
        cut_now: BTreeSet::new(),
        crashes: Vec::new(),
    };
    w.c.wait_leader(&ids, Duration::from_secs(15)).await;

    // Clients.
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = ids.iter().map(|&i| w.c.endpoint(i)).collect();
    let n_clients = client_rng.range(6, 9);
    let clients: Vec<_> = (0..n_clients)
        .map(|cl| {
            spawn_client(
                cl,
                client_rng.fork(cl),
                eps.clone(),
                client_timeout,
                stop.clone(),
                t0,
            )
        })
        .collect();

    // The nemesis.
    let mut executed: Vec<(u64, Event)> = Vec::new();
    for e in &events {
        let due = t0 + Duration::from_millis(e.at_ms);
        while Instant::now() < due {
            w.reap(micros(t0));
            tokio::time::sleep((due - Instant::now()).min(Duration::from_millis(50))).await;
        }
        w.reap(micros(t0));
        let at = micros(t0);
        w.apply(&e.act).await;
        let late = at / 1000 - e.at_ms.min(at / 1000);
        if late > 200 {
            eprintln!("(event at {} ms ran {late} ms late)", e.at_ms);
        }
        executed.push((at, e.clone()));
    }
    let healed_at = micros(t0);
    // Everything is healed: the cluster must serve again. A few more
    // seconds of traffic, then stop.
    w.c.wait_leader(&ids, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(COOLDOWN_MS)).await;
    w.reap(micros(t0));
    stop.store(true, Ordering::Relaxed);
    let mut history: Vec<KvOperation> = Vec::new();
    let (mut refused, mut unexpected) = (Vec::new(), Vec::new());
    for cl in clients {
        let log = cl.await.unwrap();
        history.extend(log.ops);
        refused.extend(log.refused);
        unexpected.extend(log.unexpected);
    }
    let stopped_at = micros(t0);

    // Final reads: every key through every node while it leads, so each
    // read is served from that node's own state machine (a leader answers
    // a read from its state after ReadIndex); the states must be equal.
    // Converged first: no entry is left that a later leader could still
    // commit between two nodes' reads.
    wait_converged(&w.c, &ids, Duration::from_secs(30)).await;
    let keys: BTreeSet<Bytes> = history.iter().map(|o| o.input.key().clone()).collect();
    let mut states: BTreeMap<u64, BTreeMap<Bytes, Option<Bytes>>> = BTreeMap::new();
    for &id in &ids {
        let mut tries = 0;
        let state = loop {
            tries += 1;
            assert!(
                tries <= 5,
                "node {id} did not stay leader through its final reads"
            );
            let term = make_leader(&w, id, &ids).await;
            let mut state = BTreeMap::new();
            for key in &keys {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let call = micros(t0);
                    let value = match call_within(
                        &w.c.endpoint(id),
                        &[b"GET".as_slice(), key.as_ref()],
                        client_timeout,
                    )
                    .await
                    {
                        Sent::Reply(Frame::Bulk(b)) => Some(b),
                        Sent::Reply(Frame::Null) => None,
                        Sent::Reply(other) => {
                            assert!(
                                Instant::now() < deadline,
                                "final read of {key:?} via node {id} failed for 20 s: {other:?}"
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        _ => {
                            assert!(
                                Instant::now() < deadline,
                                "final read of {key:?} via node {id} failed for 20 s: no reply"
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    history.push(Operation::returned(
                        1000 + id,
                        KvInput::get(key.clone()),
                        call,
                        micros(t0),
                        KvOutput::Get(value.clone()),
                    ));
                    state.insert(key.clone(), value);
                    break;
                }
            }
            let info = w.c.info(id).await.unwrap_or_default();
            if info.get("role").map(String::as_str) == Some("leader") && num(&info, "term") == term
            {
                break state;
            }
        };
        states.insert(id, state);
    }

    // The history, for the record.
    let mut dump = String::new();
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| history[i].call);
    for &i in &order {
        let _ = writeln!(dump, "{}", describe(i, &history[i]));
    }
    std::fs::write(path.join("history.txt"), &dump).unwrap();
    let mut exec_log = String::new();
    for (at, e) in &executed {
        let _ = writeln!(
            exec_log,
            "{:>7} ms (planned {:>6})  {}",
            at / 1000,
            e.at_ms,
            e.line(n)
        );
    }
    std::fs::write(path.join("executed.txt"), &exec_log).unwrap();

    let total = history.len();
    let unknown_writes = history
        .iter()
        .filter(|o| o.is_unknown() && !matches!(o.input, KvInput::Get { .. }))
        .count();
    let failed_reads = history
        .iter()
        .filter(|o| o.is_unknown() && matches!(o.input, KvInput::Get { .. }))
        .count();
    let completed: Vec<u64> = history
        .iter()
        .filter_map(|o| o.return_time())
        .filter(|&t| t < stopped_at)
        .collect();
    let after_heal = completed.iter().filter(|&&t| t > healed_at).count();
    let (stall, stall_at) = longest_stall(&completed, &executed, minority, 3_000_000, healed_at);
    eprintln!(
        "history: {total} ops over {} keys from {n_clients} clients; {} completed, {unknown_writes} unknown writes, {failed_reads} failed reads, \
         {} refused writes (CLUSTERDOWN), {after_heal} completed after the final heal; longest stall under a minority fault: {} ms at {} ms",
        keys.len(),
        completed.len(),
        refused.len(),
        stall / 1000,
        stall_at / 1000
    );

    // (2) no crash.
    assert!(
        w.crashes.is_empty(),
        "node processes died on their own: {:?}",
        w.crashes
    );
    // (1) linearizable, decisively.
    let report = check_with(
        &lincheck::KvModel,
        &history,
        &CheckOptions {
            max_steps_per_partition: 50_000_000,
        },
    );
    eprintln!("lincheck: {:?}", report.stats);
    if let Some(v) = report.result.violation() {
        // Did a refused write take effect?
        let refused_tokens: BTreeMap<&str, &str> = refused
            .iter()
            .map(|(k, v)| (v.as_str(), k.as_str()))
            .collect();
        for (tok, idx) in read_tokens(&history) {
            if let Some(k) = refused_tokens.get(tok.as_str()) {
                eprintln!(
                    "!!! {tok} was answered -CLUSTERDOWN (key {k}) yet read by op #{idx}: {}",
                    describe(idx, &history[idx])
                );
            }
        }
        panic!("NOT LINEARIZABLE (seed {seed}):\n{}", v.explanation());
    }
    assert!(
        report.result.is_ok(),
        "checker undecided on {total} ops: {:?}",
        report.result
    );
    assert!(unexpected.is_empty(), "unexpected replies: {unexpected:#?}");
    // (3) convergence: the same state machine on every node, and the same
    // indexes.
    for (&id, state) in &states {
        let (first, reference) = states.iter().next().unwrap();
        let diff: Vec<String> = keys
            .iter()
            .filter(|k| state.get(*k) != reference.get(*k))
            .map(|k| {
                format!(
                    "{k:?}: node {first} has {:?}, node {id} has {:?}",
                    reference.get(k),
                    state.get(k)
                )
            })
            .collect();
        assert!(diff.is_empty(), "state machines diverge: {diff:#?}");
    }
    let agreed = wait_converged(&w.c, &ids, Duration::from_secs(30)).await;
    eprintln!(
        "converged: term {} leader {} commit {} applied {} last_index {} snapshot_index {} keys {}",
        num(&agreed, "term"),
        num(&agreed, "leader"),
        num(&agreed, "commit"),
        num(&agreed, "applied"),
        num(&agreed, "last_index"),
        num(&agreed, "snapshot_index"),
        num(&agreed, "keys"),
    );
    let live_keys = states[&1].values().filter(|v| v.is_some()).count() as u64;
    assert_eq!(
        num(&agreed, "keys"),
        live_keys,
        "INFO keys disagrees with the final reads"
    );
    // (4) availability.
    assert!(
        after_heal > 20,
        "only {after_heal} operations completed after the final heal"
    );
    assert!(
        Duration::from_micros(stall) <= max_stall,
        "the cluster served nothing for {} ms (from {} ms) while at most a minority was faulty",
        stall / 1000,
        stall_at / 1000
    );
    drop(w);
    drop(run_dir);
}
