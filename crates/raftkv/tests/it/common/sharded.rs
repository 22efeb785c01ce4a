//! A sharded deployment of `raftkv server` child processes on 127.0.0.1:
//! data groups of processes (`--group`), the controller on the first
//! group's processes, every process told about every other (`--peers`,
//! including groups that only join later). kill -9 and restart by id,
//! bounded polling waits on `INFO`.
//!
//! Invariant: every child is killed when the `ShardCluster` drops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use server::resp::Frame;

use super::{call, pick_port, wait_stopped};

pub struct Proc {
    pub id: u64,
    pub client: String,
    pub peer: String,
    pub data: PathBuf,
    child: Option<Child>,
}

pub struct ShardCluster {
    pub procs: Vec<Proc>,
    /// Data group -> its processes.
    pub groups: BTreeMap<u64, Vec<u64>>,
    pub controllers: Vec<u64>,
    /// Process id -> the data groups it is started to join (`--join-group`).
    pub joins: BTreeMap<u64, Vec<u64>>,
    pub log_level: String,
    /// When set, each process's output goes to `proc-<id>.log` here.
    pub log_dir: Option<PathBuf>,
    /// Process id -> its `--peers` value when it is not the real addresses
    /// (partition tests route links through proxies).
    views: BTreeMap<u64, String>,
    _dir: tempfile::TempDir,
}

impl ShardCluster {
    /// Lays out `groups` data groups of `per_group` processes (group g is
    /// processes `(g-1)*per_group+1 ..`); starts none.
    pub fn new(groups: u64, per_group: u64) -> ShardCluster {
        let dir = tempfile::tempdir().unwrap();
        let n = groups * per_group;
        let procs = (1..=n)
            .map(|id| Proc {
                id,
                client: format!("127.0.0.1:{}", pick_port()),
                peer: format!("127.0.0.1:{}", pick_port()),
                data: dir.path().join(format!("proc-{id}")),
                child: None,
            })
            .collect();
        let groups = (1..=groups)
            .map(|g| (g, ((g - 1) * per_group + 1..=g * per_group).collect()))
            .collect();
        ShardCluster {
            procs,
            groups,
            controllers: (1..=per_group).collect(),
            joins: BTreeMap::new(),
            log_level: "warn".into(),
            log_dir: None,
            views: BTreeMap::new(),
            _dir: dir,
        }
    }

    /// Lays out one more process, in no group's first members: it joins
    /// data groups `joins` (`--join-group`) when spawned. Call before
    /// spawning the others, so their `--peers` lists it. Its id.
    pub fn add_spare(&mut self, joins: &[u64]) -> u64 {
        let id = self.procs.len() as u64 + 1;
        self.procs.push(Proc {
            id,
            client: format!("127.0.0.1:{}", pick_port()),
            peer: format!("127.0.0.1:{}", pick_port()),
            data: self._dir.path().join(format!("proc-{id}")),
            child: None,
        });
        self.joins.insert(id, joins.to_vec());
        id
    }

    pub fn spawn_all(&mut self) {
        for id in 1..=self.procs.len() as u64 {
            self.spawn(id);
        }
    }

    /// Process `id` dials `addr(j)` to reach process `j` from its next
    /// spawn on (its own entry stays its real peer address, which it binds).
    pub fn set_view(&mut self, id: u64, addr: impl Fn(u64) -> String) {
        let view: Vec<String> = self
            .procs
            .iter()
            .map(|p| {
                let a = if p.id == id {
                    p.peer.clone()
                } else {
                    addr(p.id)
                };
                format!("{}={a}", p.id)
            })
            .collect();
        self.views.insert(id, view.join(","));
    }

    pub fn spawn(&mut self, id: u64) {
        let real: Vec<String> = self
            .procs
            .iter()
            .map(|p| format!("{}={}", p.id, p.peer))
            .collect();
        let peers = self
            .views
            .get(&id)
            .cloned()
            .unwrap_or_else(|| real.join(","));
        let ids = |v: &[u64]| {
            v.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let p = &self.procs[id as usize - 1];
        assert!(p.child.is_none(), "process {id} already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftkv"));
        cmd.args(["server", "--id", &id.to_string(), "--peers", &peers])
            .args(["--controllers", &ids(&self.controllers)])
            .args(["--listen", &p.client, "--log-level", &self.log_level])
            .arg("--data-dir")
            .arg(&p.data)
            .args(super::peer_auth_flags(self._dir.path()))
            .stdin(Stdio::null());
        for (g, members) in &self.groups {
            cmd.args(["--group", &format!("{g}={}", ids(members))]);
        }
        for g in self.joins.get(&id).into_iter().flatten() {
            cmd.args(["--join-group", &g.to_string()]);
        }
        if let Some(dir) = &self.log_dir {
            super::log_output_to(&mut cmd, &dir.join(format!("proc-{id}.log")));
        }
        let child = cmd.spawn().expect("spawn raftkv server");
        self.procs[id as usize - 1].child = Some(child);
    }

    /// Waits (bounded) until process `id` has exited; its status.
    pub async fn wait_exit(&mut self, id: u64, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            let child = self.procs[id as usize - 1]
                .child
                .as_mut()
                .expect("process running");
            if let Some(status) = child.try_wait().expect("wait") {
                self.procs[id as usize - 1].child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "process {id} did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.procs[id as usize - 1].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, id: u64, sig: i32) {
        let c = self.procs[id as usize - 1]
            .child
            .as_ref()
            .expect("process running");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(c.id() as i32, sig) }, 0);
        if sig == libc::SIGSTOP {
            wait_stopped(c.id());
        }
    }

    pub fn endpoint(&self, id: u64) -> String {
        self.procs[id as usize - 1].client.clone()
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.client.clone()).collect()
    }

    /// `GID=ID@CLIENT,...` for `SHARDCTL JOIN`.
    pub fn join_arg(&self, gid: u64) -> String {
        let members: Vec<String> = self.groups[&gid]
            .iter()
            .map(|&id| format!("{id}@{}", self.endpoint(id)))
            .collect();
        format!("{gid}={}", members.join(","))
    }

    /// Runs `SHARDCTL args...` through process `via` until it succeeds.
    pub async fn shardctl(&self, via: u64, args: &[&str], within: Duration) -> String {
        let mut full: Vec<&[u8]> = vec![b"SHARDCTL"];
        full.extend(args.iter().map(|a| a.as_bytes()));
        let deadline = Instant::now() + within;
        loop {
            match call(&self.endpoint(via), &full).await {
                Some(Frame::Bulk(b)) => return String::from_utf8_lossy(&b).into_owned(),
                other => assert!(
                    Instant::now() < deadline,
                    "SHARDCTL {args:?} via {via}: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// INFO sharding of process `id`: `group_<gid>` lines parsed into fields.
    pub async fn groups_of(&self, id: u64) -> Option<BTreeMap<u64, BTreeMap<String, String>>> {
        let reply = call(&self.endpoint(id), &[b"INFO", b"sharding"]).await?;
        let Frame::Bulk(b) = reply else { return None };
        let info = server::info::parse(&String::from_utf8_lossy(&b));
        let mut out = BTreeMap::new();
        for (k, v) in info {
            let Some(g) = k.strip_prefix("group_").and_then(|g| g.parse().ok()) else {
                continue;
            };
            let fields = v
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            out.insert(g, fields);
        }
        Some(out)
    }

    /// Waits (bounded by `within`) until a member of data group `gid`
    /// reports leading it; that process.
    pub async fn wait_group_leader(&self, gid: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.group_leader(gid).await {
                return l;
            }
            assert!(Instant::now() < deadline, "group {gid} never had a leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process that leads data group `gid`, as its members report.
    pub async fn group_leader(&self, gid: u64) -> Option<u64> {
        for &id in &self.groups[&gid] {
            if let Some(groups) = self.groups_of(id).await {
                if groups.get(&gid)?.get("role").map(String::as_str) == Some("leader") {
                    return Some(id);
                }
            }
        }
        None
    }

    /// Waits until some replica of group `gid` reports a shard it is pulling
    /// for configuration `num`, or has already finished pulling for it.
    ///
    /// A pull can start and finish between two polls (the source group
    /// elects a new leader around a frozen one and serves the shard at
    /// once); waiting only for the transient "pulling" state then waits
    /// forever. Either way the caller's next fault lands during or right
    /// after the migration; which one happened is printed.
    pub async fn wait_pulling(&self, gid: u64, num: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            for &id in &self.groups[&gid] {
                let fields = self.groups_of(id).await.and_then(|g| g.get(&gid).cloned());
                let Some(f) = fields else { continue };
                if f.get("pulling").is_some_and(|p| p != "-") {
                    return;
                }
                let config = f.get("config").and_then(|c| c.parse::<u64>().ok());
                if config.is_some_and(|c| c >= num) {
                    eprintln!("group {gid} finished pulling for config {num} between two polls");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "group {gid} never pulled a shard for config {num} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every replica of every group in `gids` has applied
    /// configuration `num` with no shard in transit.
    pub async fn wait_settled(&self, gids: &[u64], num: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut settled = true;
            for &g in gids {
                for &id in &self.groups[&g] {
                    let ok = self.groups_of(id).await.and_then(|groups| {
                        let f = groups.get(&g)?.clone();
                        let idle = ["pulling", "handing_off", "gc"]
                            .iter()
                            .all(|k| f.get(*k).map(String::as_str) == Some("-"));
                        Some(f.get("config")? == &num.to_string() && idle)
                    });
                    settled &= ok == Some(true);
                }
            }
            if settled {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "groups {gids:?} did not settle at configuration {num} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ShardCluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                // SAFETY: kill(2) on our own child; SIGCONT first in case it is stopped.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
