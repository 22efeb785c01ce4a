//! The WAL segments a snapshot covers are deleted on the process's removal thread
//! (`raft-remove`), never on the thread that runs Raft — in a single-group node and in
//! a sharded process alike (one removal thread serves both drivers) — and a node
//! restarted on the same data directory afterwards recovers every write. A failed
//! removal stops a sharded process, naming the group. No segment vanishes under a
//! recovery: a sharded process finishes its queued removals before it stops, and a
//! group parked on a full disk is reopened only after the removals it handed over ran.
//! One real process on 127.0.0.1 with small segments and a small snapshot threshold,
//! over a file system that notes which thread touched which segment file (and listed
//! which directory) and can hold removals back; bounded waits that poll.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;
use server::shard::ShardedConfig;
use server::{NodeConfig, RunningNode};
use storage::fault::FaultyFs;
use storage::fs::{FileSystem, ReadOnlyFile, StdFs, WritableFile};
use tokio::net::TcpListener;

/// A rename, cut or unlink of a segment file (`*.wal`, `*.wal.tmp`), or a listing of
/// a directory ([`LIST`]).
#[derive(Clone, Debug)]
struct SegmentOp {
    thread: String,
    op: &'static str,
    path: PathBuf,
    /// Renames for removal waiting at the gate when it was made.
    held: usize,
}

/// The `op` of a directory listing (`path`: the directory); recovery lists a store's
/// directory before it reads a segment.
const LIST: &str = "list";

/// Holds every rename of a segment for removal while closed (a removal thread stuck
/// on a slow disk), noting which segments it held and how many renames wait now.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    opened: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    held: Vec<PathBuf>,
    waiting: usize,
}

impl Gate {
    fn close(&self) {
        self.state.lock().unwrap().closed = true;
    }

    fn open(&self) {
        self.state.lock().unwrap().closed = false;
        self.opened.notify_all();
    }

    /// Waits while the gate is closed.
    fn pass(&self, segment: &Path) {
        let mut state = self.state.lock().unwrap();
        if !state.closed {
            return;
        }
        state.held.push(segment.to_path_buf());
        state.waiting += 1;
        while state.closed {
            state = self.opened.wait(state).unwrap();
        }
        state.waiting -= 1;
    }

    fn waiting(&self) -> usize {
        self.state.lock().unwrap().waiting
    }

    /// Whether it has held a segment of `dir`.
    fn held_in(&self, dir: &Path) -> bool {
        let state = self.state.lock().unwrap();
        state.held.iter().any(|p| p.parent() == Some(dir))
    }
}

/// `inner` (by default [`StdFs`]), noting every operation on a segment file and every
/// directory listing with the thread that made it; while `fail_removal` is set,
/// renaming a segment for removal fails (EIO); each such rename first passes `gate`,
/// then waits `removal_delay_ms` (a slow disk).
#[derive(Clone, Debug)]
struct ThreadFs {
    inner: Arc<dyn FileSystem>,
    ops: Arc<Mutex<Vec<SegmentOp>>>,
    fail_removal: Arc<AtomicBool>,
    removal_delay_ms: Arc<AtomicU64>,
    gate: Arc<Gate>,
}

impl Default for ThreadFs {
    fn default() -> Self {
        ThreadFs::over(Arc::new(StdFs))
    }
}

impl ThreadFs {
    fn over(inner: Arc<dyn FileSystem>) -> ThreadFs {
        ThreadFs {
            inner,
            ops: Arc::default(),
            fail_removal: Arc::default(),
            removal_delay_ms: Arc::default(),
            gate: Arc::default(),
        }
    }

    fn note(&self, op: &'static str, path: &Path) {
        let name = path.file_name().unwrap().to_string_lossy();
        if op == LIST || name.ends_with(".wal") || name.ends_with(".wal.tmp") {
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            let path = path.to_path_buf();
            let held = self.gate.waiting();
            self.ops.lock().unwrap().push(SegmentOp {
                thread,
                op,
                path,
                held,
            });
        }
    }

    /// The segment operations so far, in order.
    fn ops(&self) -> Vec<SegmentOp> {
        let ops = self.ops.lock().unwrap();
        ops.iter().filter(|o| o.op != LIST).cloned().collect()
    }

    /// The segment operations and directory listings so far, in order.
    fn events(&self) -> Vec<SegmentOp> {
        self.ops.lock().unwrap().clone()
    }
}

impl FileSystem for ThreadFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.note(LIST, dir);
        self.inner.list_dir(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn map_read(&self, path: &Path) -> io::Result<ReadOnlyFile> {
        self.inner.map_read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read_at(path, offset, len)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.inner.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.inner.open_append(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.note("truncate", path);
        self.inner.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let segment = from.extension().is_some_and(|e| e == "wal");
        if segment {
            self.gate.pass(from);
        }
        self.note("rename", from);
        if segment && self.fail_removal.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO"));
        }
        if segment {
            let delay = self.removal_delay_ms.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(delay));
        }
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.note("remove", path);
        self.inner.remove_file(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
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

/// Safety rule (no segment vanishes under a recovery), at a reopen: a data group
/// parked on a full disk while removals it handed over are still queued is rebuilt
/// from its directory only after they ran. The removals are held back (`Gate`) until
/// a reopen has been due for a while; the record then shows that none was still held
/// when the reopen listed the group's directory and every removal in it ran before
/// that listing, and the reopened group serves every acknowledged write. Nothing is
/// written after the park, so the reopened store detaches no segment of its own: a
/// removal after that listing can only be one the old store handed over. (Without
/// the drain, the reopen lists segments a queued job then deletes, and the new
/// store's own removal of them fails: the process stops.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_group_is_reopened_only_after_its_queued_removals_ran() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("group-1");
    let (disk_fs, disk) = FaultyFs::new(true);
    let fs = ThreadFs::over(Arc::new(disk_fs));
    let mut node = sharded(dir.path(), &fs).await;
    fs.gate.close();
    write_all(&node).await;
    eventually(10, "a removal of group 1's segments queued", async || {
        fs.gate.held_in(&group)
    })
    .await;

    disk.set_full(true);
    let mut c = Client::connect(&node.client_addr.to_string())
        .await
        .unwrap();
    // The write that finds the disk full parks the group (it may end unknown).
    eventually(10, "group 1 parked on the full disk", async || {
        match c.call(&["SET", "full", "x"]).await.unwrap() {
            Frame::Error(e) => e.starts_with("MISCONF "),
            _ => false,
        }
    })
    .await;
    let parked_at = fs.events().len();
    disk.set_full(false);
    // The reopen's recovery lists the group's directory on the driver's worker (a
    // tokio worker, inside `block_in_place`); after the park nothing else lists it
    // but the removal thread, whose listings are not the reopen's.
    let reopen_listing = |events: &[SegmentOp]| {
        events[parked_at..]
            .iter()
            .position(|o| o.op == LIST && o.path == group && o.thread != "raft-remove")
            .map(|i| i + parked_at)
    };
    // A reopen is due a second after the park (`replica::space::DISK_FULL_RETRY_MS`);
    // give one the time to list the directory while the removals are held (it must
    // not: the driver waits for them). This wait bounds only how surely a missing
    // drain is caught, never whether the test passes.
    let held_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < held_until && reopen_listing(&fs.events()).is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fs.gate.open();
    eventually(10, "group 1 reopened from its directory", async || {
        reopen_listing(&fs.events()).is_some()
    })
    .await;
    let events = fs.events();
    let reopen = reopen_listing(&events).unwrap();
    assert_eq!(
        events[reopen].held, 0,
        "group 1's reopen listed its directory while its removals were held back: {:#?}",
        events[reopen]
    );
    read_all(&node).await;

    let events = fs.events();
    let removal = |o: &SegmentOp| o.thread == "raft-remove" && o.path.parent() == Some(&*group);
    let after_park = events[parked_at..reopen]
        .iter()
        .filter(|o| removal(o))
        .count();
    let late: Vec<&SegmentOp> = events[reopen..].iter().filter(|o| removal(o)).collect();
    assert!(
        late.is_empty(),
        "segment removals of group 1 after its reopen listed the directory (event {reopen}): {late:#?}"
    );
    assert!(
        after_park > 0,
        "no removal of group 1 was queued at the park"
    );
    let names = StdFs.list_dir(&group).unwrap();
    assert!(!names.iter().any(|n| n.ends_with(".wal.tmp")), "{names:?}");
    eprintln!(
        "group 1: parked at event {parked_at}, {after_park} segment operations of its queued removals after the park, reopen listed its directory at event {reopen}"
    );
    node.stop().await;
}
