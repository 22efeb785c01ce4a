//! Issue 11, disk full: a node whose log write finds no space refuses writes with
//! `-MISCONF` and says so in INFO instead of exiting, and resumes by itself once space
//! returns; a failed fsync (EIO) still stops it (fsyncgate). One real node on
//! 127.0.0.1 over the storage crate's fault-injecting file system; bounded waits that poll.
//!
//! The same in a sharded process: a group whose log write finds no space is parked
//! (writes refused with `-MISCONF`, INFO says which groups), the process keeps
//! running, and the group resumes by itself once space returns, through the same
//! policy (`replica::space`). One process hosting the controller and one data group,
//! over the same fault-injecting file system (which the sharded process takes from
//! `--data-dir`'s storage options, like a single group).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;
use server::shard::ShardedConfig;
use server::{NodeConfig, RunningNode};
use storage::fault::{FaultHandle, FaultyFs};
use tokio::net::TcpListener;

async fn one_node(dir: &std::path::Path) -> (RunningNode, FaultHandle) {
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let mut cfg = NodeConfig::new(1, members, String::new(), dir.to_path_buf());
    cfg.request_timeout_ms = 1000;
    let (fs, h) = FaultyFs::new(true);
    cfg.storage.fs = Arc::new(fs);
    (server::start_with(cfg, client, peer).await.unwrap(), h)
}

async fn one_process(dir: &std::path::Path) -> (RunningNode, FaultHandle) {
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let mut base = NodeConfig::new(1, members, String::new(), dir.to_path_buf());
    base.request_timeout_ms = 1000;
    let (fs, h) = FaultyFs::new(true);
    base.storage.fs = Arc::new(fs);
    let cfg = ShardedConfig::new(base, vec![1], BTreeMap::from([(1, vec![1])]));
    let node = server::shard::start_sharded_with(cfg, client, peer)
        .await
        .unwrap();
    (node, h)
}

async fn call(c: &mut Client, args: &[&str]) -> Frame {
    c.call(args).await.unwrap()
}

/// Polls `f` until it returns true, for at most `secs`.
async fn eventually(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < until, "not within {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This node's `raftkv_disk_full{group="0"}` sample from `/metrics`.
async fn disk_full_metric(metrics: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("raftkv_disk_full{group=\"0\"} "))
        .unwrap_or("absent")
        .to_string()
}

/// One write succeeds; then the disk fills, and a write after the one that
/// found it full is refused with Redis's `-MISCONF` naming the cause.
async fn write_then_fill_the_disk(c: &mut Client, disk: &FaultHandle) {
    eventually(10, "first write", async || {
        call(c, &["SET", "k", "v1"]).await == Frame::Simple("OK".into())
    })
    .await;
    disk.set_full(true);
    // The write that finds the disk full may end unknown; later ones are refused.
    let _ = call(c, &["SET", "k", "v2"]).await;
    let refused = call(c, &["SET", "k", "v3"]).await;
    let Frame::Error(msg) = &refused else {
        panic!("a write on a full disk answered {refused:?}")
    };
    eprintln!("client sees (write): -{msg}");
    assert!(
        msg.starts_with("MISCONF ") && msg.contains("No space left"),
        "{msg}"
    );
}

fn info_field(f: &Frame, name: &str) -> String {
    let Frame::Bulk(b) = f else {
        panic!("INFO answered {f:?}")
    };
    server::info::parse(std::str::from_utf8(b).unwrap())
        .remove(name)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_writes_with_misconf_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, disk) = one_node(dir.path()).await;
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    node.serve_metrics(metrics);
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    assert_eq!(disk_full_metric(metrics_addr).await, "0");
    write_then_fill_the_disk(&mut c, &disk).await;
    let info = call(&mut c, &["INFO", "persistence"]).await;
    assert_eq!(info_field(&info, "log_write_status"), "no_space");
    assert!(info_field(&info, "log_write_error").contains("No space left"));
    // It led before; while it takes no part in Raft it must not say it leads.
    let raft = call(&mut c, &["INFO", "raft"]).await;
    assert_eq!(info_field(&raft, "role"), "follower");
    assert_eq!(info_field(&raft, "leader"), "0");
    assert_eq!(disk_full_metric(metrics_addr).await, "1");

    disk.set_full(false);
    eventually(10, "writes resume once space returns", async || {
        call(&mut c, &["SET", "k", "v4"]).await == Frame::Simple("OK".into())
    })
    .await;
    assert_eq!(call(&mut c, &["GET", "k"]).await, Frame::Bulk("v4".into()));
    let info = call(&mut c, &["INFO", "persistence"]).await;
    assert_eq!(info_field(&info, "log_write_status"), "ok");
    assert_eq!(disk_full_metric(metrics_addr).await, "0");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_stops_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = one_node(dir.path()).await;
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    eventually(10, "first write", async || {
        call(&mut c, &["SET", "k", "v1"]).await == Frame::Simple("OK".into())
    })
    .await;
    disk.fail_sync_after(0);
    let answer = call(&mut c, &["SET", "k", "v2"]).await;
    assert_ne!(answer, Frame::Simple("OK".into()), "nothing acknowledged");
    let stopped = tokio::time::timeout(
        Duration::from_secs(10),
        node.run_until(std::future::pending()),
    )
    .await
    .expect("a failed fsync stops the node");
    let err = stopped
        .expect_err("the node reports why it stopped")
        .to_string();
    eprintln!("node stopped: {err}");
    assert!(err.contains("fdatasync"), "{err}");
}

/// Issue 11, the free-space floor (`--min-free-bytes`): below it the node refuses
/// writes with `-MISCONF` before any log write can fail, keeps serving reads, says so
/// in INFO, and takes writes again once space is back. The free-space figure comes
/// from a probe the test controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_floor_writes_are_refused_and_reads_served() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let mut cfg = NodeConfig::new(1, members, String::new(), dir.path().to_path_buf());
    cfg.request_timeout_ms = 1000;
    let free = Arc::new(AtomicU64::new(1 << 30));
    let probe_free = free.clone();
    cfg.reserve.min_free_bytes = 64 << 20;
    cfg.reserve.probe = Arc::new(move |_| Ok(probe_free.load(Ordering::SeqCst)));
    let node = server::start_with(cfg, client, peer).await.unwrap();
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    eventually(10, "first write", async || {
        call(&mut c, &["SET", "k", "v1"]).await == Frame::Simple("OK".into())
    })
    .await;

    free.store(1 << 20, Ordering::SeqCst);
    // The figure is re-read at most every 10 ms: a write may still pass meanwhile.
    let mut last = "v1";
    eventually(2, "writes refused below the floor", async || {
        match call(&mut c, &["SET", "k", "v2"]).await {
            Frame::Simple(ok) if ok == "OK" => last = "v2",
            Frame::Error(m) => {
                return m.starts_with("MISCONF ") && m.contains("below --min-free-bytes")
            }
            other => panic!("SET answered {other:?}"),
        }
        false
    })
    .await;
    let refused = call(&mut c, &["SET", "k", "v3"]).await;
    eprintln!("client sees (write): {refused:?}");
    assert!(matches!(refused, Frame::Error(_)), "{refused:?}");
    assert_eq!(call(&mut c, &["GET", "k"]).await, Frame::Bulk(last.into()));
    let info = call(&mut c, &["INFO", "persistence"]).await;
    assert_eq!(info_field(&info, "log_write_status"), "low_space");

    free.store(1 << 30, Ordering::SeqCst);
    eventually(2, "writes resume above the floor", async || {
        call(&mut c, &["SET", "k", "v4"]).await == Frame::Simple("OK".into())
    })
    .await;
    assert_eq!(call(&mut c, &["GET", "k"]).await, Frame::Bulk("v4".into()));
    let mut node = node;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_group_on_a_full_disk_refuses_writes_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = one_process(dir.path()).await;
    let addr = node.client_addr.to_string();
    let mut c = Client::connect(&addr).await.unwrap();
    let join = format!("1=1@{addr}");
    eventually(10, "group 1 joined", async || {
        matches!(
            call(&mut c, &["SHARDCTL", "JOIN", &join]).await,
            Frame::Bulk(_)
        )
    })
    .await;
    write_then_fill_the_disk(&mut c, &disk).await;
    let read = call(&mut c, &["GET", "k"]).await;
    eprintln!("client sees (read, no other member to ask): {read:?}");
    let info = call(&mut c, &["INFO", "persistence"]).await;
    assert_eq!(info_field(&info, "log_write_status"), "no_space");
    let why = info_field(&info, "log_write_error");
    eprintln!("INFO persistence log_write_error: {why}");
    assert!(
        why.contains("group 1: ") && why.contains("No space left"),
        "{why}"
    );
    let sharding = call(&mut c, &["INFO", "sharding"]).await;
    assert!(
        info_field(&sharding, "disk_full")
            .split(',')
            .any(|g| g == "1"),
        "{sharding:?}"
    );

    disk.set_full(false);
    eventually(10, "writes resume once space returns", async || {
        call(&mut c, &["SET", "k", "v4"]).await == Frame::Simple("OK".into())
    })
    .await;
    assert_eq!(call(&mut c, &["GET", "k"]).await, Frame::Bulk("v4".into()));
    eventually(10, "INFO says the log is writable", async || {
        let info = call(&mut c, &["INFO", "persistence"]).await;
        info_field(&info, "log_write_status") == "ok"
    })
    .await;
    let mut node = node;
    node.stop().await;
}
