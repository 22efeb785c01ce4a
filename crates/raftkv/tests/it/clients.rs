//! Real Redis client libraries against a real 3-node `raftkv server`
//! cluster on 127.0.0.1: the Rust `redis` crate (always: a dev-dependency),
//! redis-py (when `python3 -c 'import redis'` works; `.ci/run` installs
//! it) and node's ioredis (when `node` can load it; `.ci/run` installs it).
//! A client whose runtime is missing is skipped with a printed reason,
//! never counted as a pass in the output.
//!
//! Every client connects to a follower as well as to the leader, so the
//! forwarding path answers them too. redis-py's `RedisCluster` and
//! ioredis's `Cluster` also run against a sharded deployment (two groups of
//! three processes): they route by `CLUSTER SLOTS` and by the key positions
//! parsed from `COMMAND`, and send the keyless commands (`DBSIZE`, `KEYS`,
//! `SCAN`, `FLUSHALL`) to every master, which answers for its own slots —
//! checked over raw RESP too, with no client library.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::sharded::ShardCluster;
use common::{call, call_ok, serial, Cluster};
use redis::{ProtocolVersion, Value};
use server::resp::Frame;

const ELECTION: Duration = Duration::from_secs(10);
const FLAGS: &[&str] = &["--request-timeout-ms", "5000"];

/// A 3-node cluster that has served a write through every node.
async fn ready_cluster() -> Cluster {
    let c = Cluster::start(3, FLAGS);
    c.wait_leader(&[1, 2, 3], ELECTION).await;
    for id in 1..=3 {
        assert_eq!(
            call_ok(&c.endpoint(id), &[b"SET", b"ready", b"1"], ELECTION).await,
            Frame::Simple("OK".into())
        );
    }
    c
}

/// The connection-time and everyday commands of an application, over one
/// connection of the Rust `redis` crate in `proto`.
fn rust_client_session(endpoint: &str, proto: ProtocolVersion) {
    let url = match proto {
        ProtocolVersion::RESP2 => format!("redis://{endpoint}/"),
        _ => format!("redis://{endpoint}/?protocol=resp3"),
    };
    let client = redis::Client::open(url).unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect (the crate sends HELLO / CLIENT SETINFO)");
    con.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let tag = format!("{endpoint} {proto:?}");
    let q = |cmd: &mut redis::Cmd, con: &mut redis::Connection| -> Value {
        cmd.query(con)
            .unwrap_or_else(|e| panic!("{tag}: {cmd:?}: {e}"))
    };

    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG", "{tag}");
    let key = format!("rs:{endpoint}:{proto:?}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query(&mut con)
        .unwrap();
    let got: Option<String> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some("v"), "{tag}");
    let n: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .arg("rs:missing")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1, "{tag}");
    let n: i64 = redis::cmd("DEL").arg(&key).query(&mut con).unwrap();
    assert_eq!(n, 1, "{tag}");
    let got: Option<String> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(got, None, "{tag}");

    let info: redis::InfoDict = redis::cmd("INFO").query(&mut con).unwrap();
    let version: String = info.get("redis_version").expect("redis_version");
    assert!(version.starts_with("7."), "{tag}: {version}");
    assert!(info.get::<u64>("connected_clients").unwrap() >= 1, "{tag}");
    // The binary's allocator, counted: used_memory is its live heap, not RSS.
    let allocator: String = info.get("mem_allocator").expect("mem_allocator");
    assert_eq!(allocator, "jemalloc", "{tag}");
    let source: String = info.get("used_memory_source").expect("used_memory_source");
    assert_eq!(source, "allocator", "{tag}");

    let Value::Array(rows) = q(&mut redis::cmd("COMMAND"), &mut con) else {
        panic!("{tag}: COMMAND is not an array");
    };
    assert_eq!(rows.len(), server::resp::table::COMMANDS.len(), "{tag}");

    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("rust-app")
        .query(&mut con)
        .unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut con).unwrap();
    assert_eq!(name, "rust-app", "{tag}");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains(" name=rust-app ") && l.contains(" lib-name=redis-rs ")),
        "{tag}: the crate's CLIENT SETINFO and our SETNAME are listed: {list}"
    );

    // 100 pipelined commands in one write; replies in order.
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.cmd("SET").arg(format!("rs:pipe:{i}")).arg(i).ignore();
    }
    for i in 0..50 {
        pipe.cmd("GET").arg(format!("rs:pipe:{i}"));
    }
    let values: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(values, (0..50).collect::<Vec<i64>>(), "{tag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_redis_crate_resp2_and_resp3() {
    let _g = serial();
    let c = ready_cluster().await;
    let endpoints: Vec<String> = [1, 2].iter().map(|&id| c.endpoint(id)).collect();
    tokio::task::spawn_blocking(move || {
        for ep in &endpoints {
            rust_client_session(ep, ProtocolVersion::RESP2);
            rust_client_session(ep, ProtocolVersion::RESP3);
        }
    })
    .await
    .unwrap();
}

/// Runs `program args` (a client script), or says why it was skipped.
fn run_script(what: &str, probe: &mut Command, run: &mut Command) {
    match probe.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED {what}: its runtime or library is missing ({}); `.ci/run` installs it",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .find(|l| l.contains("Error"))
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED {what}: cannot run its runtime ({e})");
            return;
        }
    }
    let out = run.output().expect("run the client script");
    assert!(
        out.status.success(),
        "{what} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_resp2_and_resp3() {
    let _g = serial();
    let c = ready_cluster().await;
    let (leader_ep, follower_ep) = (c.endpoint(1), c.endpoint(2));
    tokio::task::spawn_blocking(move || {
        run_script(
            "redis-py",
            Command::new("python3").args(["-c", "import redis"]),
            Command::new("python3").args([&script("redis_py.py"), &leader_ep, &follower_ep]),
        )
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ioredis() {
    let _g = serial();
    let c = ready_cluster().await;
    let (leader_ep, follower_ep) = (c.endpoint(1), c.endpoint(3));
    tokio::task::spawn_blocking(move || {
        run_script(
            "ioredis (node)",
            Command::new("node").args(["-e", "require('ioredis')"]),
            Command::new("node").args([&script("ioredis.js"), &leader_ep, &follower_ep]),
        )
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_cluster_client_on_a_sharded_deployment() {
    let probe = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED redis-py RedisCluster: python3 or redis-py is missing; `.ci/run` installs it"
        );
        return;
    }
    let _g = serial();
    let c = settled_shard_cluster().await;
    let seed = c.endpoint(4);
    tokio::task::spawn_blocking(move || {
        run_script(
            "redis-py RedisCluster",
            Command::new("python3").args(["-c", "import redis.cluster"]),
            Command::new("python3").args([&script("redis_py.py"), "--cluster", &seed]),
        )
    })
    .await
    .unwrap();
}

/// Two groups of three `raftkv server` processes, joined and settled.
async fn settled_shard_cluster() -> ShardCluster {
    let settle = Duration::from_secs(60);
    let mut c = ShardCluster::new(2, 3);
    c.spawn_all();
    let join = ["JOIN".to_string(), c.join_arg(1), c.join_arg(2)];
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    assert_eq!(c.shardctl(1, &join, settle).await, "config 1");
    c.wait_settled(&[1, 2], 1, settle).await;
    c
}

/// ioredis's `Cluster`: keys over many slots, then `SCAN` and `DBSIZE` on
/// every master it found in `CLUSTER SLOTS` find every key exactly once
/// (each process answers for the slots it is master of).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ioredis_cluster_scans_every_master() {
    let probe = Command::new("node")
        .args(["-e", "require('ioredis')"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED ioredis Cluster: node or ioredis is missing; `.ci/run` installs it");
        return;
    }
    let _g = serial();
    let c = settled_shard_cluster().await;
    let seed = c.endpoint(1);
    tokio::task::spawn_blocking(move || {
        run_script(
            "ioredis Cluster",
            Command::new("node").args(["-e", "require('ioredis')"]),
            Command::new("node").args([&script("ioredis.js"), "--cluster", &seed]),
        )
    })
    .await
    .unwrap();
}

/// The masters `CLUSTER SLOTS` lists (client addresses), deduplicated.
async fn masters(endpoint: &str) -> Vec<String> {
    let reply = call_ok(endpoint, &[b"CLUSTER", b"SLOTS"], Duration::from_secs(10)).await;
    let Frame::Array(rows) = reply else {
        panic!("CLUSTER SLOTS: {reply:?}")
    };
    let mut out: Vec<String> = rows
        .iter()
        .map(|row| match row {
            Frame::Array(r) => match &r[2] {
                Frame::Array(m) => match (&m[0], &m[1]) {
                    (Frame::Bulk(ip), Frame::Integer(port)) => {
                        format!("{}:{port}", String::from_utf8_lossy(ip))
                    }
                    other => panic!("master: {other:?}"),
                },
                other => panic!("row: {other:?}"),
            },
            other => panic!("row: {other:?}"),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn int(f: Option<Frame>) -> i64 {
    match f {
        Some(Frame::Integer(n)) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn bulks(f: &Frame) -> Vec<String> {
    match f {
        Frame::Array(items) => items
            .iter()
            .map(|i| match i {
                Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Redis Cluster's keyless commands over raw RESP on a sharded deployment:
/// each master `CLUSTER SLOTS` lists answers `DBSIZE`, `KEYS`, `SCAN`,
/// `RANDOMKEY` and `FLUSHALL` for its own slots, so over the masters every
/// key is counted, listed and scanned exactly once, and flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_commands_answer_per_master_on_a_sharded_deployment() {
    let _g = serial();
    let c = settled_shard_cluster().await;
    let within = Duration::from_secs(20);
    let keys: Vec<String> = (0..60).map(|i| format!("ks:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        // A plain connection: the node forwards to the owner.
        let ep = c.endpoint(1 + (i as u64 % 6));
        call_ok(&ep, &[b"SET", k.as_bytes(), b"v"], within).await;
    }
    let masters = masters(&c.endpoint(1)).await;
    assert_eq!(masters.len(), 2, "one master per group: {masters:?}");
    let (mut size, mut listed, mut scanned) = (0, Vec::new(), Vec::new());
    for m in &masters {
        size += int(call(m, &[b"DBSIZE"]).await);
        listed.extend(bulks(&call_ok(m, &[b"KEYS", b"ks:*"], within).await));
        let mut cursor = b"0".to_vec();
        loop {
            let page = call_ok(m, &[b"SCAN", &cursor, b"COUNT", b"4"], within).await;
            let Frame::Array(parts) = page else {
                panic!("SCAN: {page:?}")
            };
            scanned.extend(bulks(&parts[1]));
            let Frame::Bulk(next) = &parts[0] else {
                panic!("cursor: {:?}", parts[0])
            };
            if next.as_ref() == b"0" {
                break;
            }
            cursor = next.to_vec();
        }
        match call(m, &[b"RANDOMKEY"]).await {
            Some(Frame::Bulk(k)) => assert!(keys.contains(&String::from_utf8_lossy(&k).into())),
            other => panic!("RANDOMKEY: {other:?}"),
        }
    }
    let mut want = keys.clone();
    want.sort();
    listed.sort();
    scanned.sort();
    assert_eq!(size, 60, "DBSIZE summed over the masters");
    assert_eq!(listed, want, "KEYS over the masters: each key once");
    assert_eq!(scanned, want, "SCAN over the masters: each key once");
    for m in &masters {
        assert_eq!(
            call(m, &[b"FLUSHALL"]).await,
            Some(Frame::Simple("OK".into()))
        );
    }
    let mut left = 0;
    for m in &masters {
        left += int(call(m, &[b"DBSIZE"]).await);
    }
    assert_eq!(left, 0, "FLUSHALL on every master empties the cluster");
}
