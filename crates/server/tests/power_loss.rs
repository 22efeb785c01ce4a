//! Power loss: every answered write is fsync'd on a majority before its reply, the
//! leader's own log sync included (it runs on the driver's sync thread, and the leader
//! counts itself toward a commit only once that sync is done: dissertation §10.2.1).
//! A `kill -9` cannot show this (the page cache survives it), so three in-process
//! nodes on 127.0.0.1 run over a file system that remembers how much of each file an
//! fdatasync made durable; a power loss makes every change fail from then on, and,
//! once the node has stopped, zeroes every byte written after its file's last
//! fdatasync (as the WAL's preallocated blocks read after a crash).
//!
//! With one follower stopped, the leader's disk is on the commit path: writes commit
//! on the leader and the other follower. Both then lose power, and the leader restarts
//! with the follower that was stopped before those writes: every answered write must
//! be there (a leader that counted its write before its fsync loses them).
//!
//! The leader's sync thread is slowed (`LEADER_SYNC`): with a fast disk its fsync
//! ends before the follower's acknowledgement arrives, and a leader counting its write
//! too early would go unseen.
//!
//! The same for a sharded deployment's data group (three processes host the
//! controller and data group 1; the group's leader is the one on the commit path),
//! whose leaders sync their log inside the drive.

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
use storage::{FileSystem, ReadOnlyFile, StdFs, SyncFile, WritableFile};
use tokio::net::{TcpListener, TcpSocket};

/// One file's append position and how much of it an fdatasync made durable.
#[derive(Debug)]
struct Track {
    path: PathBuf,
    written: AtomicU64,
    durable: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    files: Mutex<Vec<Arc<Track>>>,
    syncs: AtomicU64,
    /// Power is off: every change to the disk fails.
    off: AtomicBool,
}

/// A [`FileSystem`] that counts fdatasyncs and can lose power (module docs).
#[derive(Clone, Debug, Default)]
struct PowerFs(Arc<State>);

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl PowerFs {
    fn syncs(&self) -> u64 {
        self.0.syncs.load(Ordering::SeqCst)
    }

    fn lose_power(&self) {
        self.0.off.store(true, Ordering::SeqCst);
    }

    /// After the node stopped: zeroes what no fdatasync covered.
    fn drop_unsynced(&self) {
        use std::os::unix::fs::FileExt;
        for t in self.0.files.lock().unwrap().iter() {
            let (durable, written) = (
                t.durable.load(Ordering::SeqCst),
                t.written.load(Ordering::SeqCst),
            );
            if written <= durable {
                continue;
            }
            let Ok(f) = std::fs::OpenOptions::new().write(true).open(&t.path) else {
                continue; // removed since
            };
            f.write_all_at(&vec![0u8; (written - durable) as usize], durable)
                .unwrap();
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.0.off.load(Ordering::SeqCst) {
            return Err(eio());
        }
        Ok(())
    }

    fn track(&self, path: &Path, inner: Box<dyn WritableFile>, at: u64) -> Box<dyn WritableFile> {
        let track = Arc::new(Track {
            path: path.to_path_buf(),
            written: AtomicU64::new(at),
            durable: AtomicU64::new(at),
        });
        self.0.files.lock().unwrap().push(track.clone());
        Box::new(PowerFile {
            inner,
            track,
            fs: self.clone(),
        })
    }

    /// An fdatasync that started after `written` bytes were written has completed.
    fn synced(&self, track: &Track, written: u64) {
        track.durable.fetch_max(written, Ordering::SeqCst);
        self.0.syncs.fetch_add(1, Ordering::SeqCst);
    }
}

struct PowerFile {
    inner: Box<dyn WritableFile>,
    track: Arc<Track>,
    fs: PowerFs,
}

impl WritableFile for PowerFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.fs.check()?;
        self.inner.write_all(buf)?;
        self.track
            .written
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    fn zero_fill(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.fs.check()?;
        self.inner.zero_fill(offset, len)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.fs.check()?;
        self.inner.write_at(offset, buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.check()?;
        let written = self.track.written.load(Ordering::SeqCst);
        self.inner.sync_data()?;
        self.fs.synced(&self.track, written);
        Ok(())
    }
    fn sync_handle(&self) -> io::Result<Arc<dyn SyncFile>> {
        Ok(Arc::new(PowerSync {
            inner: self.inner.sync_handle()?,
            track: self.track.clone(),
            fs: self.fs.clone(),
        }))
    }
}

struct PowerSync {
    inner: Arc<dyn SyncFile>,
    track: Arc<Track>,
    fs: PowerFs,
}

/// How long a leader's log sync on its sync thread takes (`SyncFile`, the handle the
/// WAL's sync job uses): a slow disk. A leader that counted a write toward its commit
/// before this completed would answer it while its own copy is still volatile, and
/// the power loss right after the last answer would find it so (without the delay,
/// a driver that counted the leader at hand-over passed this test 3 times of 3).
const LEADER_SYNC: Duration = Duration::from_millis(20);

impl SyncFile for PowerSync {
    fn sync_data(&self) -> io::Result<()> {
        std::thread::sleep(LEADER_SYNC);
        self.fs.check()?;
        let written = self.track.written.load(Ordering::SeqCst);
        self.inner.sync_data()?;
        self.fs.synced(&self.track, written);
        Ok(())
    }
}

impl FileSystem for PowerFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
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
        self.check()?;
        Ok(self.track(path, StdFs.create(path)?, 0))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check()?;
        let at = std::fs::metadata(path)?.len();
        Ok(self.track(path, StdFs.open_append(path)?, at))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.check()?;
        StdFs.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check()?;
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        StdFs.remove_file(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.check()?;
        StdFs.file_len(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        StdFs.sync_dir(dir)
    }
}

/// The data group the sharded cluster writes to.
const GROUP: u64 = 1;

struct Cluster {
    members: BTreeMap<u64, String>,
    dir: tempfile::TempDir,
    nodes: Vec<Option<RunningNode>>,
    disks: Vec<PowerFs>,
    /// Processes of a sharded deployment: the controller and data group
    /// [`GROUP`] on all three.
    sharded: bool,
}

impl Cluster {
    async fn start(sharded: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut peers = Vec::new();
        let mut members = BTreeMap::new();
        for id in 1..=3 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            members.insert(id, l.local_addr().unwrap().to_string());
            peers.push(l);
        }
        let mut c = Cluster {
            members,
            dir,
            nodes: Vec::new(),
            disks: Vec::new(),
            sharded,
        };
        for (i, peer) in peers.into_iter().enumerate() {
            let disk = PowerFs::default();
            let node = c.start_node(i, peer, disk.clone()).await;
            c.nodes.push(Some(node));
            c.disks.push(disk);
        }
        c
    }

    async fn start_node(&self, i: usize, peer: TcpListener, disk: PowerFs) -> RunningNode {
        let id = i as u64 + 1;
        let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let data = self.dir.path().join(format!("n{id}"));
        let mut cfg = NodeConfig::new(id, self.members.clone(), String::new(), data);
        cfg.election_timeout_ms = 1000;
        cfg.request_timeout_ms = 20_000;
        cfg.storage.fs = Arc::new(disk);
        if !self.sharded {
            return server::start_with(cfg, client, peer).await.unwrap();
        }
        let cfg = ShardedConfig::new(cfg, vec![1, 2, 3], BTreeMap::from([(GROUP, vec![1, 2, 3])]));
        server::shard::start_sharded_with(cfg, client, peer)
            .await
            .unwrap()
    }

    /// Sharded: the controller assigns every shard to group [`GROUP`] (its
    /// members at their client addresses) and the group's leader serves them.
    async fn join(&self) {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{}@{}", i + 1, n.as_ref().unwrap().client_addr))
            .collect();
        let join = format!("{GROUP}={}", addrs.join(","));
        let mut c = self.client(0).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match c.call(&["SHARDCTL", "JOIN", &join]).await.unwrap() {
                Frame::Bulk(_) => return,
                Frame::Error(e) if e.contains("already") => return,
                _ => {}
            }
            assert!(Instant::now() < deadline, "group {GROUP} not joined");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether node `i` leads: the single group, or data group [`GROUP`] in a
    /// configuration that gives it the shards.
    fn leads(&self, i: usize) -> bool {
        let Some(n) = self.nodes[i].as_ref() else {
            return false;
        };
        if !self.sharded {
            return n.status().raft.role == raft::Role::Leader;
        }
        n.shard_view()
            .and_then(|v| v.groups.get(&GROUP).cloned())
            .is_some_and(|g| {
                g.status.raft.role == raft::Role::Leader
                    && g.config_num >= 1
                    && !g.serving.is_empty()
            })
    }

    /// Starts node `i` again on its peer address, over a fresh `PowerFs`.
    async fn restart(&mut self, i: usize) {
        let addr = self.members[&(i as u64 + 1)].parse().unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let peer = socket.listen(128).unwrap();
        let disk = PowerFs::default();
        self.nodes[i] = Some(self.start_node(i, peer, disk.clone()).await);
        self.disks[i] = disk;
    }

    async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().stop().await;
    }

    async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leader = (0..self.nodes.len()).find(|&i| self.leads(i));
            if let Some(i) = leader {
                return i;
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn client(&self, i: usize) -> Client {
        let addr = self.nodes[i].as_ref().unwrap().client_addr.to_string();
        Client::connect(&addr).await.unwrap()
    }
}

async fn set(c: &mut Client, k: &str, v: &str) {
    let reply = c.call(&["SET", k, v]).await.unwrap();
    assert_eq!(reply, Frame::Simple("OK".into()), "SET {k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_write_survives_a_power_loss_of_the_leader_and_the_follower_that_acknowledged_it(
) {
    power_loss_of_the_leader_and_the_follower_that_acknowledged(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_write_to_a_sharded_group_survives_a_power_loss_of_its_leader_and_the_follower_that_acknowledged_it(
) {
    power_loss_of_the_leader_and_the_follower_that_acknowledged(true).await;
}

/// The test of the module docs, for the single group or (`sharded`) data group
/// [`GROUP`] of a sharded deployment.
async fn power_loss_of_the_leader_and_the_follower_that_acknowledged(sharded: bool) {
    let mut cl = Cluster::start(sharded).await;
    if sharded {
        cl.join().await;
    }
    let l = cl.wait_leader().await;
    let mut c = cl.client(l).await;
    for i in 0..20 {
        set(&mut c, &format!("a{i}"), &format!("{i}")).await;
    }

    // One follower down: each write needs the leader's own fsync for its majority.
    let (down, up) = ((l + 1) % 3, (l + 2) % 3);
    cl.stop(down).await;
    let before = cl.disks[l].syncs();
    for i in 0..20 {
        set(&mut c, &format!("b{i}"), &format!("{i}")).await;
    }
    let syncs = cl.disks[l].syncs() - before;

    // Power loss on the leader and on the follower that committed the b-writes with it.
    cl.disks[l].lose_power();
    cl.disks[up].lose_power();
    cl.stop(l).await;
    cl.stop(up).await;
    for d in &cl.disks {
        d.drop_unsynced();
    }
    // The leader comes back with the follower that never saw the b-writes.
    cl.restart(l).await;
    cl.restart(down).await;
    let leader = cl.wait_leader().await;
    let mut c = cl.client(leader).await;
    for p in ["a", "b"] {
        for i in 0..20 {
            let k = format!("{p}{i}");
            let got = c.call(&["GET", k.as_str()]).await.unwrap();
            assert_eq!(
                got,
                Frame::Bulk(i.to_string().into()),
                "{k} after the power loss"
            );
        }
    }
    for i in [l, down] {
        cl.stop(i).await;
    }
    // One client's writes, one at a time: each waited for a sync of the leader's.
    assert!(syncs >= 20, "{syncs} leader fsyncs for 20 writes");
}
