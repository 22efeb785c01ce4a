//! Counters, expiry and `MULTI`/`EXEC` blocks under faults, checked for
//! linearizability with lincheck's Redis model: real `raftkv server`
//! processes on 127.0.0.1, every peer link through a proxy (`common::proxy`).
//!
//! Six clients issue `INCRBY`, `GET`, `SET [EX]`, `DEL`, `EXISTS`,
//! `EXPIRE`, `PERSIST`, `TTL` and `MULTI ... EXEC` blocks over keys of eight
//! hash tags through every node, while the leader is cut off and later
//! killed with -9 and restarted. A reply of the expected shape completes an
//! operation; `-TIMEOUT`, `-CLUSTERDOWN` or no reply leaves it unknown (may
//! or may not have taken effect). TTLs are far longer than the run, so the
//! model's view of expiry (which keys carry one) is exact; see
//! `lincheck::redis` for what is and is not modelled.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::history::micros;
use common::proxy::{Fault, Net};
use common::{serial, wait_converged, Cluster};
use lincheck::{
    check_with, CheckOptions, HistoryRecorder, RedisInput, RedisModel, RedisOutput, TtlKind,
};
use server::client::Client;
use server::resp::Frame;

const ELECTION: Duration = Duration::from_secs(10);
const ALL: [u64; 3] = [1, 2, 3];
const FLAGS: &[&str] = &["--request-timeout-ms", "2000"];
/// Hash tags the keys spread over: the checker searches each on its own,
/// so more tags keep each partition's search small and decisive.
const TAGS: u64 = 8;

type Recorder = Arc<Mutex<HistoryRecorder<RedisInput, RedisOutput>>>;

/// Three nodes whose every peer link goes through a proxy of `Net`.
async fn proxied_cluster() -> (Cluster, Net) {
    let mut net = Net::bind(&ALL).await;
    let mut c = Cluster::new(3, FLAGS);
    net.start(|j| c.nodes[j as usize - 1].peer.clone());
    for id in ALL {
        c.set_view(id, |j| net.addr(id, j));
        c.spawn(id);
    }
    (c, net)
}

fn key(tag: u64, name: &str) -> Bytes {
    Bytes::from(format!("{{t{tag}}}{name}"))
}

/// Client `cl`'s `i`-th command (deterministic in both).
fn command(cl: u64, i: u64) -> RedisInput {
    let tag = (cl + i) % TAGS;
    let (n, m) = (key(tag, "n"), key(tag, "m"));
    let pick = |a: &Bytes, b: &Bytes| {
        if (cl * 3 + i).is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        }
    };
    let k = pick(&n, &m);
    match (cl * 7 + i * 11) % 16 {
        0..=4 => RedisInput::IncrBy {
            key: k,
            by: 1 + (i % 3) as i64,
        },
        5 | 6 => RedisInput::Get { key: k },
        7 => RedisInput::Set {
            key: k,
            value: Bytes::from(if i.is_multiple_of(5) {
                format!("x{cl}.{i}")
            } else {
                format!("{}", cl * 1000 + i)
            }),
            ttl: i.is_multiple_of(2),
        },
        8 => RedisInput::Del {
            keys: vec![n.clone(), m.clone()],
        },
        9 => RedisInput::Exists { keys: vec![n, m] },
        10 => RedisInput::Expire { key: k },
        11 => RedisInput::Persist { key: k },
        12 => RedisInput::Ttl { key: k },
        _ => RedisInput::Exec {
            ops: vec![
                RedisInput::IncrBy {
                    key: n.clone(),
                    by: 10,
                },
                RedisInput::IncrBy {
                    key: m.clone(),
                    by: -10,
                },
                RedisInput::Exists { keys: vec![n, m] },
            ],
        },
    }
}

/// The RESP arguments of one command.
fn args(input: &RedisInput) -> Vec<Vec<u8>> {
    let b = |s: &[u8]| s.to_vec();
    match input {
        RedisInput::Get { key } => vec![b(b"GET"), key.to_vec()],
        RedisInput::Set { key, value, ttl } => {
            let mut a = vec![b(b"SET"), key.to_vec(), value.to_vec()];
            if *ttl {
                a.extend([b(b"EX"), b(b"100000")]);
            }
            a
        }
        RedisInput::IncrBy { key, by } => {
            vec![b(b"INCRBY"), key.to_vec(), by.to_string().into_bytes()]
        }
        RedisInput::Del { keys } => {
            [vec![b(b"DEL")], keys.iter().map(|k| k.to_vec()).collect()].concat()
        }
        RedisInput::Exists { keys } => [
            vec![b(b"EXISTS")],
            keys.iter().map(|k| k.to_vec()).collect(),
        ]
        .concat(),
        RedisInput::Expire { key } => vec![b(b"EXPIRE"), key.to_vec(), b(b"100000")],
        RedisInput::Persist { key } => vec![b(b"PERSIST"), key.to_vec()],
        RedisInput::Ttl { key } => vec![b(b"TTL"), key.to_vec()],
        RedisInput::Exec { .. } => unreachable!("a block is sent command by command"),
    }
}

/// What a reply says, if it is a known outcome of `input`.
fn output(input: &RedisInput, reply: &Frame) -> Option<RedisOutput> {
    Some(match (input, reply) {
        (RedisInput::IncrBy { .. }, Frame::Error(e))
            if e.starts_with("ERR value is not an integer") =>
        {
            RedisOutput::Error
        }
        (_, Frame::Error(_)) => return None,
        (RedisInput::Get { .. }, Frame::Bulk(v)) => RedisOutput::Value(Some(v.clone())),
        (RedisInput::Get { .. }, Frame::Null) => RedisOutput::Value(None),
        (RedisInput::Set { .. }, Frame::Simple(s)) if s == "OK" => RedisOutput::Ok,
        (RedisInput::Ttl { .. }, Frame::Integer(n)) => RedisOutput::Ttl(TtlKind::of(*n)?),
        (
            RedisInput::IncrBy { .. }
            | RedisInput::Del { .. }
            | RedisInput::Exists { .. }
            | RedisInput::Expire { .. }
            | RedisInput::Persist { .. },
            Frame::Integer(n),
        ) => RedisOutput::Int(*n),
        (RedisInput::Exec { ops }, Frame::Array(replies)) if replies.len() == ops.len() => {
            let outs: Option<Vec<RedisOutput>> =
                ops.iter().zip(replies).map(|(o, r)| output(o, r)).collect();
            RedisOutput::Multi(outs?)
        }
        _ => return None,
    })
}

/// Runs one command (a block: MULTI, each command, EXEC on one connection).
async fn run(endpoint: &str, input: &RedisInput) -> Option<Frame> {
    let fut = async {
        let mut c = Client::connect(endpoint).await.ok()?;
        match input {
            RedisInput::Exec { ops } => {
                c.call(&[b"MULTI"]).await.ok()?;
                for op in ops {
                    match c.call(&args(op)).await.ok()? {
                        Frame::Simple(s) if s == "QUEUED" => {}
                        _ => return None,
                    }
                }
                c.call(&[b"EXEC"]).await.ok()
            }
            op => c.call(&args(op)).await.ok(),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .ok()
        .flatten()
}

fn spawn_clients(
    eps: &[String],
    rec: &Recorder,
    stop: &Arc<AtomicBool>,
    t0: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6u64)
        .map(|cl| {
            let (rec, stop, eps) = (rec.clone(), stop.clone(), eps.to_vec());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < 150 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    i += 1;
                    let input = command(cl, i);
                    let h = rec.lock().unwrap().invoke(cl, input.clone(), micros(t0));
                    let ep = &eps[((cl + i) % eps.len() as u64) as usize];
                    let reply = run(ep, &input).await;
                    if let Some(out) = reply.as_ref().and_then(|r| output(&input, r)) {
                        rec.lock().unwrap().complete(h, out, micros(t0));
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_expiry_and_blocks_stay_linearizable_under_partition_and_kill() {
    let _g = serial();
    let (mut c, net) = proxied_cluster().await;
    let old = c.wait_leader(&ALL, ELECTION).await;
    let rec: Recorder = Arc::new(Mutex::new(HistoryRecorder::new()));
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = ALL.iter().map(|&i| c.endpoint(i)).collect();
    let clients = spawn_clients(&eps, &rec, &stop, t0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    net.isolate(old, Fault::Blackhole).await;
    let others: Vec<u64> = ALL.into_iter().filter(|&i| i != old).collect();
    let new = c.wait_leader(&others, ELECTION).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the request timeout
    net.heal_all();
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.kill(new);
    c.wait_leader(
        &ALL.into_iter().filter(|&i| i != new).collect::<Vec<_>>(),
        ELECTION,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.spawn(new);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    for cl in clients {
        cl.await.unwrap();
    }
    let history = rec.lock().unwrap().history().to_vec();
    let known = history.iter().filter(|o| !o.is_unknown()).count();
    let blocks = history
        .iter()
        .filter(|o| !o.is_unknown() && matches!(o.input, RedisInput::Exec { .. }))
        .count();
    eprintln!(
        "history: {} ops, {known} with a known outcome ({blocks} EXEC blocks)",
        history.len()
    );
    assert!(known > 150, "too few operations completed: {known}");
    assert!(blocks > 5, "too few blocks completed: {blocks}");
    let report = check_with(
        &RedisModel,
        &history,
        &CheckOptions {
            max_steps_per_partition: 50_000_000,
        },
    );
    eprintln!("lincheck: {:?}", report.stats);
    assert!(
        !report.result.is_illegal(),
        "NOT LINEARIZABLE: {:?}",
        report.result.violation().map(|v| v.to_string())
    );
    assert!(
        report.result.is_ok(),
        "checker undecided: {:?}",
        report.result
    );
    wait_converged(&c, &ALL, ELECTION).await;
}
