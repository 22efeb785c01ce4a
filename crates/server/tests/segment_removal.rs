//! The WAL segments a snapshot covers are deleted on the process's removal thread
//! (`raft-remove`), never on the thread that runs Raft — in a single-group node and in
//! a sharded process alike (one removal thread serves both drivers) — and a node
//! restarted on the same data directory afterwards recovers every write. A failed
//! removal stops a sharded process, naming the group. One real process on 127.0.0.1
//! with small segments and a small snapshot threshold, over a file system that notes
//! which thread touched which segment file; bounded waits that poll.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;
use server::shard::ShardedConfig;
use server::{NodeConfig, RunningNode};
use storage::fs::{FileSystem, ReadOnlyFile, StdFs, WritableFile};
use tokio::net::TcpListener;

/// A rename, cut or unlink of a segment file (`*.wal`, `*.wal.tmp`).
#[derive(Clone, Debug)]
struct SegmentOp {
    thread: String,
    op: &'static str,
    path: PathBuf,
}

/// [`StdFs`], noting every operation on a segment file with the thread that made it;
/// while `fail_removal` is set, renaming a segment for removal fails (EIO); each
/// such rename first waits `removal_delay_ms` (a slow disk).
#[derive(Clone, Debug, Default)]
struct ThreadFs {
    ops: Arc<Mutex<Vec<SegmentOp>>>,
    fail_removal: Arc<AtomicBool>,
    removal_delay_ms: Arc<AtomicU64>,
}

impl ThreadFs {
    fn note(&self, op: &'static str, path: &Path) {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.ends_with(".wal") || name.ends_with(".wal.tmp") {
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            let path = path.to_path_buf();
            self.ops
                .lock()
                .unwrap()
                .push(SegmentOp { thread, op, path });
        }
    }

    fn ops(&self) -> Vec<SegmentOp> {
        self.ops.lock().unwrap().clone()
    }
}

impl FileSystem for ThreadFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFs.read(path)
    }
    fn map_read(&self, path: &Path) -> io::Result<ReadOnlyFile> {
        StdFs.map_read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        StdFs.read_at(path, offset, len)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        StdFs.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        StdFs.open_append(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.note("truncate", path);
        StdFs.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.note("rename", from);
        let segment = from.extension().is_some_and(|e| e == "wal");
        if segment && self.fail_removal.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO"));
        }
        if segment {
            let delay = self.removal_delay_ms.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(delay));
        }
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.note("remove", path);
        StdFs.remove_file(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        StdFs.file_len(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }
}

/// Small segments and a small snapshot threshold: 100 writes of 2 KiB take
/// several snapshots, each covering several segments.
fn base(dir: &Path, peer: &TcpListener, fs: &ThreadFs) -> NodeConfig {
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let mut cfg = NodeConfig::new(1, members, String::new(), dir.to_path_buf());
    cfg.request_timeout_ms = 2000;
    cfg.snapshot_threshold_bytes = 48 << 10;
    cfg.storage.segment_max_bytes = 16 << 10;
    cfg.storage.preallocate_bytes = 0;
    cfg.storage.fs = Arc::new(fs.clone());
    cfg
}

async fn listeners() -> (TcpListener, TcpListener) {
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (client, peer)
}

async fn single(dir: &Path, fs: &ThreadFs) -> RunningNode {
    let (client, peer) = listeners().await;
    let cfg = base(dir, &peer, fs);
    server::start_with(cfg, client, peer).await.unwrap()
}

/// A process hosting the controller and data group 1, group 1 joined.
async fn sharded(dir: &Path, fs: &ThreadFs) -> RunningNode {
    let (client, peer) = listeners().await;
    let cfg = ShardedConfig::new(
        base(dir, &peer, fs),
        vec![1],
        BTreeMap::from([(1, vec![1])]),
    );
    let node = server::shard::start_sharded_with(cfg, client, peer)
        .await
        .unwrap();
    let addr = node.client_addr.to_string();
    let mut c = Client::connect(&addr).await.unwrap();
    let join = format!("1=1@{addr}");
    eventually(10, "group 1 joined", async || {
        match c.call(&["SHARDCTL", "JOIN", &join]).await.unwrap() {
            Frame::Bulk(_) => true,
            Frame::Error(e) => e.contains("already"),
            _ => false,
        }
    })
    .await;
    node
}

/// Polls `f` until it returns true, for at most `secs`.
async fn eventually(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < until, "not within {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn value(i: usize) -> String {
    format!("{i:04}{}", "v".repeat(2044))
}

async fn write_all(node: &RunningNode) {
    write_range(node, 0..100).await;
}

async fn write_range(node: &RunningNode, keys: std::ops::Range<usize>) {
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    let first = keys.start;
    eventually(10, "first write", async || {
        let key = format!("k{first}");
        c.call(&["SET", &key, &value(first)]).await.unwrap() == Frame::Simple("OK".into())
    })
    .await;
    for i in keys.skip(1) {
        let key = format!("k{i}");
        let answer = c.call(&["SET", &key, &value(i)]).await.unwrap();
        assert_eq!(answer, Frame::Simple("OK".into()), "SET {key}");
    }
}

async fn read_all(node: &RunningNode) {
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    eventually(10, "first read", async || {
        c.call(&["GET", "k0"]).await.unwrap() == Frame::Bulk(value(0).into())
    })
    .await;
    for i in 1..100 {
        let key = format!("k{i}");
        let answer = c.call(&["GET", &key]).await.unwrap();
        assert_eq!(answer, Frame::Bulk(value(i).into()), "GET {key}");
    }
}

/// The covered segments in `dir` are deleted, each renamed to `*.wal.tmp` first, all
/// on the removal thread; none by the Raft thread (which would have unlinked it
/// whole, inline in its `sync`). Waits until every renamed one is gone.
async fn check_removed_on_the_removal_thread(fs: &ThreadFs, dir: &Path) {
    eventually(10, "a covered segment removed", async || {
        fs.ops()
            .iter()
            .any(|o| o.op != "truncate" && o.path.parent() == Some(dir))
    })
    .await;
    eventually(10, "the renamed segments deleted", async || {
        let names = StdFs.list_dir(dir).unwrap();
        !names.iter().any(|n| n.ends_with(".wal.tmp"))
    })
    .await;
    let ops = fs.ops();
    // (Recovery at open may cut a segment's torn tail: that is not a removal.)
    let cut_tail =
        |o: &SegmentOp| o.op == "truncate" && o.path.extension().is_some_and(|e| e == "wal");
    let elsewhere: Vec<&SegmentOp> = ops
        .iter()
        .filter(|o| o.thread != "raft-remove" && !cut_tail(o))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "segment files touched off the removal thread: {elsewhere:#?}"
    );
    let renamed: Vec<&SegmentOp> = ops
        .iter()
        .filter(|o| o.op == "rename" && o.path.parent() == Some(dir))
        .collect();
    for o in &renamed {
        assert!(!o.path.exists(), "{} still there", o.path.display());
    }
    eprintln!(
        "{}: {} segments removed, {} segment operations, all on raft-remove",
        dir.display(),
        renamed.len(),
        ops.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_group_node_removes_covered_segments_on_the_removal_thread() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ThreadFs::default();
    let mut node = single(dir.path(), &fs).await;
    write_all(&node).await;
    check_removed_on_the_removal_thread(&fs, dir.path()).await;
    node.stop().await;

    let mut node = single(dir.path(), &fs).await;
    read_all(&node).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_process_removes_covered_segments_on_the_removal_thread() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ThreadFs::default();
    let mut node = sharded(dir.path(), &fs).await;
    write_all(&node).await;
    check_removed_on_the_removal_thread(&fs, &dir.path().join("group-1")).await;
    node.stop().await;

    // Restarted on the same directory (every job has run: the driver drains its
    // removal thread before it exits), the group recovers every write.
    let mut node = sharded(dir.path(), &fs).await;
    read_all(&node).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_removal_stops_the_sharded_process() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ThreadFs::default();
    let node = sharded(dir.path(), &fs).await;
    fs.fail_removal.store(true, Ordering::SeqCst);
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    let writes = async {
        for i in 0..1000 {
            let key = format!("k{i}");
            if c.call(&["SET", &key, &value(i)]).await.is_err() {
                break; // the process stopped
            }
        }
        std::future::pending::<()>().await
    };
    let stopped = tokio::time::timeout(Duration::from_secs(20), node.run_until(writes))
        .await
        .expect("a failed segment removal stops the process");
    let err = stopped
        .expect_err("the process reports why it stopped")
        .to_string();
    eprintln!("process stopped: {err}");
    assert!(
        err.contains("group 1: ") && err.contains("injected EIO"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_process_finishes_its_queued_removals_before_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("group-1");
    let fs = ThreadFs::default();
    fs.removal_delay_ms.store(200, Ordering::SeqCst);
    let mut node = sharded(dir.path(), &fs).await;
    write_all(&node).await;
    let queued = fs.ops().len();
    node.stop().await;
    // Safety rule (no segment vanishes under a recovery): when the stop returns, no
    // removal is still running, so a store reopened on the directory now (a restart
    // in this process) lists only segments that stay.
    let at_stop = fs.ops();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        fs.ops().len(),
        at_stop.len(),
        "segment files touched after the stop"
    );
    assert!(
        at_stop.len() > queued,
        "removals were still queued at the stop"
    );
    let names = StdFs.list_dir(&group).unwrap();
    assert!(!names.iter().any(|n| n.ends_with(".wal.tmp")), "{names:?}");
    eprintln!(
        "segment operations: {queued} when the writes ended, {} when the stop returned",
        at_stop.len()
    );

    fs.removal_delay_ms.store(0, Ordering::SeqCst);
    let mut node = sharded(dir.path(), &fs).await;
    read_all(&node).await;
    // The restarted store detaches and removes the segments its own snapshots cover.
    write_range(&node, 100..200).await;
    check_removed_on_the_removal_thread(&fs, &group).await;
    node.stop().await;
}
