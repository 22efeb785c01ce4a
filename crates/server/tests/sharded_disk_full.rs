//! Issue 11, disk full in a sharded process: a group whose log write finds no space
//! is parked (writes refused with `-MISCONF`, INFO says which groups), the process
//! keeps running, and the group resumes by itself once space returns — the
//! single-group node's behaviour (`disk_full.rs`), through the same policy
//! (`replica::space`). One real process on 127.0.0.1 hosting the controller and one
//! data group, over the storage crate's fault-injecting file system (which the
//! sharded process now takes from `--data-dir`'s storage options, like a single
//! group); bounded waits that poll.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;
use server::shard::ShardedConfig;
use server::{NodeConfig, RunningNode};
use storage::fault::{FaultHandle, FaultyFs};
use tokio::net::TcpListener;

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

fn info_field(f: &Frame, name: &str) -> String {
    let Frame::Bulk(b) = f else {
        panic!("INFO answered {f:?}")
    };
    server::info::parse(std::str::from_utf8(b).unwrap())
        .remove(name)
        .unwrap_or_default()
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
    eventually(10, "first write", async || {
        call(&mut c, &["SET", "k", "v1"]).await == Frame::Simple("OK".into())
    })
    .await;

    disk.set_full(true);
    // The write that finds the disk full may end unknown; later ones are refused.
    let _ = call(&mut c, &["SET", "k", "v2"]).await;
    let refused = call(&mut c, &["SET", "k", "v3"]).await;
    let Frame::Error(msg) = &refused else {
        panic!("a write on a full disk answered {refused:?}")
    };
    eprintln!("client sees (write): -{msg}");
    assert!(
        msg.starts_with("MISCONF ") && msg.contains("No space left"),
        "{msg}"
    );
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
