//! The layout of a local cluster, decided before anything starts: each
//! process's ports, data dir and `raftkv server` flags; the check that every
//! port is free; and the data directory's layout stamp.
//!
//! Ports: process i (from 1) listens for clients on P+i-1, for peers on
//! P+10000+i-1, for metrics scrapes on P+20000+i-1 (P = `--base-port`).
//!
//! Invariant: a data directory is only ever resumed with the layout that
//! created it (the stamp file `raftkv-cluster.txt` records it), because the
//! data remembers it: Raft membership by process id and, sharded, every
//! group's client addresses in the controller's configurations (so there
//! the base port is part of the layout; a single group can move ports).

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::cli::ClusterArgs;

/// Offset of the peer ports from the client ports.
pub const PEER_OFFSET: u32 = 10_000;
/// Offset of the metrics ports from the client ports.
pub const METRICS_OFFSET: u32 = 20_000;
/// Most processes one `raftkv cluster` starts.
const MAX_PROCS: u64 = 99;
/// The file in the data directory that records the layout.
pub const STAMP: &str = "raftkv-cluster.txt";

/// One process of the cluster.
pub struct Proc {
    pub id: u64,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_port: u16,
    /// `raftkv server ...` flags (without the program name).
    pub args: Vec<String>,
    /// Sharded: the data group it belongs to (group 1 also hosts the controller).
    pub group: Option<u64>,
}

pub struct Plan {
    pub procs: Vec<Proc>,
    /// Sharded: the number of data groups.
    pub groups: Option<u64>,
    /// Replicas per group.
    pub nodes: u64,
    pub dir: PathBuf,
    /// The layout as flags, what the stamp file holds.
    pub layout: String,
}

impl Plan {
    pub fn new(a: &ClusterArgs) -> Result<Plan, String> {
        let procs = process_count(a)?;
        let top = u32::from(a.base_port) + METRICS_OFFSET + procs as u32 - 1;
        if a.base_port == 0 || top > 65_535 {
            return Err(format!(
                "--base-port {} leaves no room for {procs} client, peer and metrics ports \
                 (P..P+{}, P+{PEER_OFFSET}.., P+{METRICS_OFFSET}..): pick one between 1 and {}",
                a.base_port,
                procs - 1,
                65_535 - METRICS_OFFSET - procs as u32 + 1
            ));
        }
        let port = |i: u64, off: u32| (u32::from(a.base_port) + off + i as u32 - 1) as u16;
        let peers: Vec<String> = (1..=procs)
            .map(|i| format!("{i}=127.0.0.1:{}", port(i, PEER_OFFSET)))
            .collect();
        let shared = match a.groups {
            Some(g) => sharded_flags(g, a.nodes, a.shards, &peers.join(",")),
            None => vec!["--cluster".into(), peers.join(",")],
        };
        let dir = a.data_dir.clone();
        let procs = (1..=procs)
            .map(|i| {
                let data_dir = dir.join(format!("node-{i}"));
                let mut args = vec!["server".to_string(), "--id".into(), i.to_string()];
                args.extend(shared.iter().cloned());
                args.extend([
                    "--listen".into(),
                    format!("127.0.0.1:{}", port(i, 0)),
                    "--data-dir".into(),
                    data_dir.to_string_lossy().into_owned(),
                    "--metrics-listen".into(),
                    format!("127.0.0.1:{}", port(i, METRICS_OFFSET)),
                    "--log-level".into(),
                    a.log_level.clone(),
                ]);
                Proc {
                    id: i,
                    client_port: port(i, 0),
                    peer_port: port(i, PEER_OFFSET),
                    metrics_port: port(i, METRICS_OFFSET),
                    args,
                    group: a.groups.map(|_| (i - 1) / a.nodes + 1),
                }
            })
            .collect();
        let layout = match a.groups {
            Some(g) => format!(
                "--groups {g} --nodes {} --shards {} --base-port {}",
                a.nodes, a.shards, a.base_port
            ),
            // A single group's data names no address: any --base-port resumes it.
            None => format!("--nodes {}", a.nodes),
        };
        Ok(Plan {
            procs,
            groups: a.groups,
            nodes: a.nodes,
            dir,
            layout,
        })
    }

    /// "node 2" (single group) or "process 2" (sharded).
    pub fn label(&self, id: u64) -> String {
        match self.groups {
            Some(_) => format!("process {id}"),
            None => format!("node {id}"),
        }
    }

    /// Every client endpoint, comma-separated (for `--endpoints`).
    pub fn endpoints(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Binds every client, peer and metrics port on 127.0.0.1 once (then lets go), so
    /// a port in use fails the command before any process starts.
    pub fn check_ports(&self) -> Result<(), String> {
        for p in &self.procs {
            let ports = [
                (p.client_port, "client"),
                (p.peer_port, "peer"),
                (p.metrics_port, "metrics"),
            ];
            for (port, what) in ports {
                if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
                    return Err(format!(
                        "port {port} ({what} port of {}) is not free on 127.0.0.1: {e}; \
                         pick other ports with --base-port{}",
                        self.label(p.id),
                        suggestion(self.procs.len() as u32)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates the data directory or checks that it holds a cluster of this
    /// layout; returns whether it is resumed (it held one already).
    pub fn prepare_dir(&self) -> Result<bool, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", self.dir.display()))?;
        let stamp = self.dir.join(STAMP);
        match std::fs::read_to_string(&stamp) {
            Ok(old) if old.trim() == self.layout => Ok(true),
            Ok(old) => Err(format!(
                "{} holds a cluster started with `{}`; rerun with those flags to resume it, \
                 or pass another --data-dir (or remove it to start empty)",
                self.dir.display(),
                old.trim()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(&stamp, format!("{}\n", self.layout))
                    .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
                Ok(false)
            }
            Err(e) => Err(format!("cannot read {}: {e}", stamp.display())),
        }
    }
}

fn process_count(a: &ClusterArgs) -> Result<u64, String> {
    if a.nodes == 0 || a.nodes > MAX_PROCS {
        return Err(format!("--nodes must be between 1 and {MAX_PROCS}"));
    }
    match a.groups {
        None => Ok(a.nodes),
        Some(g) if g == 0 || g * a.nodes > MAX_PROCS => Err(format!(
            "--groups x --nodes must be between 1 and {MAX_PROCS} processes"
        )),
        Some(g) => Ok(g * a.nodes),
    }
}

/// " (e.g. --base-port P)" for the first P from 7000 up, in steps of 100,
/// whose whole range binds now; empty if none does.
fn suggestion(procs: u32) -> String {
    let free = |p: u32| {
        (0..procs).all(|i| {
            [p + i, p + PEER_OFFSET + i, p + METRICS_OFFSET + i]
                .iter()
                .all(|&q| TcpListener::bind(("127.0.0.1", q as u16)).is_ok())
        })
    };
    (7000..12_000)
        .step_by(100)
        .find(|&p| free(p))
        .map(|p| format!(" (e.g. --base-port {p}, free now)"))
        .unwrap_or_default()
}

/// The sharded flags every process gets: process ids `(g-1)*N+1 ..= g*N`
/// form group g; the controller group runs on group 1's processes.
fn sharded_flags(groups: u64, nodes: u64, shards: u32, peers: &str) -> Vec<String> {
    let ids = |g: u64| {
        (1..=nodes)
            .map(|k| ((g - 1) * nodes + k).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut flags = vec![
        "--peers".to_string(),
        peers.to_string(),
        "--controllers".into(),
        ids(1),
        "--shards".into(),
        shards.to_string(),
    ];
    for g in 1..=groups {
        flags.extend(["--group".to_string(), format!("{g}={}", ids(g))]);
    }
    flags
}

/// `path` relative to the current directory when it is under it (shorter to copy).
pub fn short(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
}
