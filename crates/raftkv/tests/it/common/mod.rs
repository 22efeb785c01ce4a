//! Real-process test harness: a cluster of `raftkv server` child processes
//! on 127.0.0.1 ephemeral ports, with kill -9 / SIGSTOP / SIGCONT / restart,
//! and polling helpers with bounded waits.
//!
//! Invariants: every child is killed when the `Cluster` drops (also on
//! panic); process tests run one at a time (`serial()`), so they do not
//! starve each other's election timers on a 2-core machine.

#![allow(dead_code)]

pub mod history;
pub mod proxy;
pub mod sharded;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;

static SERIAL: Mutex<()> = Mutex::new(());

/// The process-test lock, held for a test's lifetime (across its awaits, on
/// purpose: only whole tests take it, never a task inside one).
pub struct Serial(MutexGuard<'static, ()>);

pub fn serial() -> Serial {
    Serial(SERIAL.lock().unwrap_or_else(|p| p.into_inner()))
}

pub struct Node {
    pub id: u64,
    pub client: String,
    pub peer: String,
    pub data: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Each node's `--cluster` value (its own view of the peer addresses).
    views: Vec<String>,
    extra: Vec<String>,
    /// `--log-level` of the children (default `warn`).
    pub log_level: String,
    /// When set, each child's stdout and stderr append to `node-{id}.log`
    /// here (across restarts); else they are inherited.
    pub log_dir: Option<PathBuf>,
    /// Flags for one node only (its certificate: `use_tls`).
    per_node: BTreeMap<u64, Vec<String>>,
    /// With TLS on the client ports: how the harness's own calls connect.
    pub client_tls: Option<server::client::ClientTls>,
    /// With `--requirepass-file`: the harness's own calls `AUTH` first.
    pub password: Option<String>,
    /// The temp dir holding the data dirs, when the cluster owns one.
    _dir: Option<tempfile::TempDir>,
}

/// A node's port: free now, below the ephemeral range (see
/// `port_below_ephemeral`), so a node that is stopped and started again
/// (refused start, rolling restart, kill -9) finds it still free.
pub fn pick_port() -> u16 {
    port_below_ephemeral(|| 20_000 + (rand_u16() % 12_000))
}

/// Not a generator of quality: the spread of `pick_port`'s first tries.
fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (nanos ^ (nanos >> 13) ^ std::process::id()) as u16
}

/// Ports handed out by `port_below_ephemeral` in this test binary.
static HANDED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port drawn by `pick` (which must stay in `[1024, 32768)`) that binds
/// now and was never handed out before by this process. Below Linux's
/// ephemeral range (32768+), so the kernel does not give it to an outgoing
/// connection's local end while its node is down (the `free_port` race: a
/// restarted node would find its port taken).
pub fn port_below_ephemeral(mut pick: impl FnMut() -> u16) -> u16 {
    let mut handed = HANDED.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..1000 {
        let p = pick();
        assert!((1024..32768).contains(&p), "port {p} outside [1024, 32768)");
        if handed.contains(&p) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            handed.insert(p);
            return p;
        }
    }
    panic!("no free port below the ephemeral range after 1000 tries");
}

/// Every real-process cluster runs as a deployment should: peer links
/// authenticated with a shared secret (written under `root`) and a cluster id.
pub fn peer_auth_flags(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).unwrap();
    let secret = root.join("peer-secret");
    if !secret.exists() {
        // Written aside and renamed: a node starting meanwhile never reads half of it.
        let tmp = root.join("peer-secret.tmp");
        std::fs::write(&tmp, "a test secret, not a good one\n").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &secret).unwrap();
    }
    vec![
        "--peer-secret-file".into(),
        secret.display().to_string(),
        "--cluster-id".into(),
        "test".into(),
    ]
}

impl Cluster {
    /// Starts `n` nodes with `extra` server flags.
    pub fn start(n: u64, extra: &[&str]) -> Cluster {
        let mut c = Cluster::new(n, extra);
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    /// Lays out `n` nodes (ports, data dirs, every node seeing every real
    /// peer address) without starting any: `set_view` then `spawn` each.
    pub fn new(n: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster::with_layout(n, extra, dir.path(), pick_port);
        c._dir = Some(dir);
        c
    }

    /// Like `new`, with the data dirs under `root` (left in place when the
    /// cluster drops) and ports from `port` (client, then peer, per node).
    pub fn with_layout(
        n: u64,
        extra: &[&str],
        root: &Path,
        mut port: impl FnMut() -> u16,
    ) -> Cluster {
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                client: format!("127.0.0.1:{}", port()),
                peer: format!("127.0.0.1:{}", port()),
                data: root.join(format!("node-{id}")),
                child: None,
            })
            .collect();
        let cluster_arg = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.peer))
            .collect::<Vec<_>>()
            .join(",");
        let views = vec![cluster_arg; nodes.len()];
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        extra.extend(peer_auth_flags(root));
        Cluster {
            nodes,
            views,
            extra,
            log_level: "warn".into(),
            log_dir: None,
            per_node: BTreeMap::new(),
            client_tls: None,
            password: None,
            _dir: None,
        }
    }

    /// TLS on every client port and mutual TLS on the peer links, with the
    /// throwaway certificates of `files` (made for cluster id `test`, the
    /// harness's): from each node's next `spawn` on.
    pub fn use_tls(&mut self, files: &server::tls_certs::ClusterFiles) {
        for n in &self.nodes {
            let flags = [
                "--tls-cert-file".to_string(),
                files.cert(n.id).display().to_string(),
                "--tls-key-file".into(),
                files.key(n.id).display().to_string(),
                "--tls-ca-cert-file".into(),
                files.ca().display().to_string(),
                "--tls-peers".into(),
            ];
            self.per_node.insert(n.id, flags.to_vec());
        }
        let config = server::tls::client_config(&files.ca(), None).expect("client TLS config");
        self.client_tls = Some(server::client::ClientTls { config, sni: None });
    }

    /// The flags of node `id`'s own (the per-node part of its command line).
    pub fn node_flags(&mut self, id: u64) -> &mut Vec<String> {
        self.per_node.entry(id).or_default()
    }

    /// Node `id`'s `--cluster` list from its next `spawn` on: `addr(j)` is
    /// the address it dials for node `j` (its own entry is always its real
    /// peer address, which it binds).
    pub fn set_view(&mut self, id: u64, addr: impl Fn(u64) -> String) {
        let view = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{}={}",
                    n.id,
                    if n.id == id {
                        n.peer.clone()
                    } else {
                        addr(n.id)
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        self.views[id as usize - 1] = view;
    }

    /// Node `id`'s `--cluster` list from its next `spawn` on: only `ids`
    /// (its own included), at their real peer addresses. For a group that
    /// starts smaller than the layout, and for nodes that join it.
    pub fn set_members(&mut self, id: u64, ids: &[u64]) {
        self.views[id as usize - 1] = ids
            .iter()
            .map(|&j| format!("{j}={}", self.nodes[j as usize - 1].peer))
            .collect::<Vec<_>>()
            .join(",");
    }

    /// Every node's `--cluster-id` from its next `spawn` on.
    pub fn set_cluster_id(&mut self, id: &str) {
        let at = self
            .extra
            .iter()
            .position(|f| f == "--cluster-id")
            .expect("peer_auth_flags sets --cluster-id");
        self.extra[at + 1] = id.to_string();
    }

    /// `spawn` with extra flags for this start only (e.g. `--join`).
    pub fn spawn_with(&mut self, id: u64, flags: &[&str]) {
        let saved = self.extra.clone();
        self.extra.extend(flags.iter().map(|s| s.to_string()));
        self.spawn(id);
        self.extra = saved;
    }

    pub fn spawn(&mut self, id: u64) {
        let exe = env!("CARGO_BIN_EXE_raftkv");
        let node = &self.nodes[id as usize - 1];
        assert!(node.child.is_none(), "node {id} already running");
        let mut cmd = Command::new(exe);
        cmd.args([
            "server",
            "--id",
            &id.to_string(),
            "--cluster",
            &self.views[id as usize - 1],
            "--listen",
            &node.client,
        ])
        .arg("--data-dir")
        .arg(&node.data)
        .args(["--log-level", &self.log_level])
        .args(&self.extra)
        .args(self.per_node.get(&id).into_iter().flatten())
        .stdin(Stdio::null());
        if let Some(dir) = &self.log_dir {
            log_output_to(&mut cmd, &dir.join(format!("node-{id}.log")));
        }
        let child = cmd.spawn().expect("spawn raftkv server");
        self.nodes[id as usize - 1].child = Some(child);
    }

    pub fn endpoint(&self, id: u64) -> String {
        self.nodes[id as usize - 1].client.clone()
    }

    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes[id as usize - 1].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The exit status of node `id` if its process ended on its own (it was
    /// not killed through `kill`); the child is then forgotten.
    pub fn exited(&mut self, id: u64) -> Option<ExitStatus> {
        let node = &mut self.nodes[id as usize - 1];
        let status = node.child.as_mut()?.try_wait().ok()??;
        node.child = None;
        Some(status)
    }

    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes[id as usize - 1].child.as_ref().map(|c| c.id())
    }

    pub fn signal(&self, id: u64, sig: i32) {
        let c = self.nodes[id as usize - 1]
            .child
            .as_ref()
            .expect("node running");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(c.id() as i32, sig) }, 0);
        if sig == libc::SIGSTOP {
            wait_stopped(c.id());
        }
    }

    /// INFO raft of one node, if it answers.
    pub async fn info(&self, id: u64) -> Option<BTreeMap<String, String>> {
        self.info_section(id, "raft").await
    }

    /// One INFO section (`all` for every field) of one node, if it answers.
    pub async fn info_section(&self, id: u64, section: &str) -> Option<BTreeMap<String, String>> {
        let fut = async {
            let mut c = Client::connect_with(&self.endpoint(id), self.client_tls.as_ref())
                .await
                .ok()?;
            if let Some(pw) = &self.password {
                c.call(&["AUTH", pw]).await.ok()?;
            }
            match c.call(&["INFO", section]).await.ok()? {
                Frame::Bulk(b) => Some(server::info::parse(&String::from_utf8_lossy(&b))),
                _ => None,
            }
        };
        tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .ok()
            .flatten()
    }

    /// Waits until every node in `among` that answers agrees on one leader
    /// (itself in `among`) that says it leads. Panics after `within`.
    pub async fn wait_leader(&self, among: &[u64], within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.agreed_leader(among).await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {among:?} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader every node of `among` names, if they agree and it says so.
    pub async fn agreed_leader(&self, among: &[u64]) -> Option<u64> {
        let mut leader = None;
        for &id in among {
            let info = self.info(id).await?;
            let l: u64 = info.get("leader")?.parse().ok()?;
            if l == 0 || !among.contains(&l) || leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        let l = leader?;
        (self.info(l).await?.get("role")? == "leader").then_some(l)
    }

    /// Waits until `cond(info of id)` holds.
    pub async fn wait_info(
        &self,
        id: u64,
        within: Duration,
        what: &str,
        cond: impl Fn(&BTreeMap<String, String>) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.info(id).await {
                if cond(&i) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id}: {what} not reached within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                // SAFETY: kill(2) on our own child; SIGCONT first in case it is stopped.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Waits until every node in `ids` has applied everything committed and
/// they agree on term, leader, commit, last index and key count; returns
/// the agreed INFO (all sections).
pub async fn wait_converged(
    c: &Cluster,
    ids: &[u64],
    within: Duration,
) -> BTreeMap<String, String> {
    const SAME: [&str; 6] = ["term", "leader", "commit", "applied", "last_index", "keys"];
    let deadline = Instant::now() + within;
    loop {
        let mut infos = Vec::new();
        for &id in ids {
            infos.extend(c.info_section(id, "all").await);
        }
        let agree = infos.len() == ids.len()
            && infos
                .iter()
                .all(|i| num(i, "applied") == num(i, "commit") && num(i, "leader") != 0)
            && infos
                .windows(2)
                .all(|w| SAME.iter().all(|k| w[0].get(*k) == w[1].get(*k)));
        if agree {
            return infos.swap_remove(0);
        }
        if Instant::now() >= deadline {
            let seen: Vec<String> = infos
                .iter()
                .map(|i| SAME.map(|k| format!("{k}={}", num(i, k))).join(" "))
                .collect();
            panic!("nodes {ids:?} did not converge within {within:?}: {seen:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn num(info: &BTreeMap<String, String>, k: &str) -> u64 {
    info.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One command with a bounded wait; `None` on connection failure or timeout.
pub async fn call(endpoint: &str, args: &[&[u8]]) -> Option<Frame> {
    let fut = async {
        let mut c = Client::connect(endpoint).await.ok()?;
        c.call(args).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .ok()
        .flatten()
}

/// Calls until a non-error reply (bounded).
pub async fn call_ok(endpoint: &str, args: &[&[u8]], within: Duration) -> Frame {
    let deadline = Instant::now() + within;
    loop {
        match call(endpoint, args).await {
            Some(Frame::Error(_)) | None => {}
            Some(f) => return f,
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint}: no successful reply to {:?} within {within:?}",
            String::from_utf8_lossy(args[0])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

/// Waits (at most 10 s) until every thread of process `pid` is stopped
/// (state `T` in each `/proc/PID/task/TID/stat`): kill(2) returns before a
/// SIGSTOP takes effect, and a test that goes on at once could still be
/// answered by the process it meant to freeze.
pub fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = |stat: &Path| -> Option<char> {
        // The state follows the command name, which ends with the last ')'.
        let s = std::fs::read_to_string(stat).ok()?;
        s.rsplit_once(')')?.1.trim_start().chars().next()
    };
    while Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return; // gone: nothing left to answer
        };
        let all_stopped = tasks
            .flatten()
            .all(|t| matches!(state(&t.path().join("stat")), Some('T') | None));
        if all_stopped {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends a process's stdout and stderr to the end of `file`.
pub fn log_output_to(cmd: &mut Command, file: &Path) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("open process log");
    cmd.stdout(log.try_clone().expect("dup process log"))
        .stderr(log);
}
