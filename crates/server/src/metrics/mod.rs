//! `--metrics-listen`: Prometheus text format at `GET /metrics`.
//!
//! What it owns: a tiny HTTP/1.1 responder (one request per connection,
//! bounded: 8 KiB of request head, 5 s to send it) and what a scrape reads.
//! Nothing is computed per request for metrics beyond relaxed atomic adds:
//! gauges and the replica's counters are read at scrape time from the
//! status the driver already publishes after each drive (the same
//! one `INFO` reads); the I/O edge (client connections, proposals, disk,
//! peer links) bumps atomics that a scrape reads.
//!
//! Exported (prefix `raftkv_`; label `group`: `0` for a single group, else
//! the group id, the controller is `0` on a sharded process too):
//! - per group, gauges: `raft_term`, `raft_is_leader`, `raft_role{role}`,
//!   `raft_leader_id`, `raft_commit_index`, `raft_applied_index`,
//!   `raft_last_index`, `raft_snapshot_index`, `raft_apply_lag`,
//!   `raft_log_bytes`, `pending_proposals`, `pending_reads`, `keys`,
//!   `sessions`;
//! - per group, counters (`_total`) from `replica::Counters`:
//!   `raft_leader_changes`, `raft_proposals`, `raft_proposals_rejected`,
//!   `raft_read_index_rounds`, `raft_snapshot_chunks_sent`,
//!   `raft_snapshot_sent_bytes`, `raft_snapshots_installed`,
//!   `raft_snapshot_installed_bytes`, `raft_snapshots_taken`,
//!   `raft_snapshots_rejected`; from the I/O edge ([`group`], [`disk`]):
//!   histograms `proposal_duration_seconds`, `disk_fsync_duration_seconds`
//!   and the counter `disk_written_bytes`;
//! - per client command ([`commands`]): `commands{cmd}`,
//!   `command_errors{cmd,kind}`, histogram `command_duration_seconds{cmd}`;
//! - per peer: `peer_up{peer}`, `peer_sent_bytes`, `peer_received_bytes`,
//!   `peer_dropped_sends`; per process `peer_rejections{reason}`;
//! - per group, `disk_full` (1 while the group cannot write its log);
//! - per process: `connected_clients`, `connections_accepted`,
//!   `connections_rejected`, `process_resident_memory_bytes`, `low_space`
//!   (1 while the data dir is below `--min-free-bytes`).
//!
//! Files: `histogram` (lock-free latency buckets), `group` (per-group I/O
//! measurements), `disk` (the metered file system), `commands` (per client
//! command), `family` (a scrape-time family for the encoder), `render`
//! (the exposition).

pub mod commands;
pub mod disk;
pub mod family;
pub mod group;
pub mod histogram;
pub mod render;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use group::{GroupMetrics, Telemetry};
pub use render::{render, PeerSample, Process, Scrape};

use crate::node::{Driver, RunningNode};
use crate::peer::Peers;
use crate::port_state::PortState;

/// Most bytes of request head read before answering.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a scraper gets to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What a node hands `/metrics`: the things a scrape reads besides the
/// driver's published status.
#[derive(Clone)]
pub(crate) struct Sources {
    pub port: Arc<PortState>,
    pub peers: Peers,
    pub telemetry: Arc<Telemetry>,
    /// The data directory's free-space floor (`--min-free-bytes`).
    pub reserve: crate::space::Reserve,
}

/// Each hosted group's status, and the groups that cannot write their log.
type Statuses = (Vec<(u64, replica::Status)>, Vec<u64>);

/// Renders one scrape.
type Source = Arc<dyn Fn() -> String + Send + Sync>;

impl RunningNode {
    /// Serves `/metrics` on `listener` until the node stops.
    pub fn serve_metrics(&mut self, listener: TcpListener) {
        let statuses: Arc<dyn Fn() -> Statuses + Send + Sync> = match &self.driver {
            Driver::Single(d) => {
                let d = d.clone();
                Arc::new(move || {
                    let full = d.disk_full().map(|_| 0).into_iter().collect();
                    (vec![(0, d.status())], full)
                })
            }
            Driver::Sharded(d) => {
                let d = d.clone();
                Arc::new(move || {
                    let view = d.view();
                    let groups = view.groups.iter().map(|(g, v)| (*g, v.status)).collect();
                    (groups, view.disk_full.keys().copied().collect())
                })
            }
        };
        let src = self.metrics.clone();
        let source: Source = Arc::new(move || scrape(&src, statuses()));
        let mut stop = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.recv() => return,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(answer(stream, source.clone()));
                        }
                    }
                }
            }
        }));
    }
}

/// Reads everything once and renders it.
fn scrape(src: &Sources, (groups, disk_full): Statuses) -> String {
    let stats = &src.port.stats;
    let r = src.peers.rejections();
    let process = Process {
        connected_clients: src.port.clients.count() as u64,
        connections_accepted: stats.connections_received.load(Relaxed),
        connections_rejected: stats.rejected_connections.load(Relaxed),
        resident_bytes: resident_bytes(),
        low_space: src.reserve.low().is_some(),
        peer_rejections: [
            r.handshakes_refused.load(Relaxed),
            r.handshakes_timed_out.load(Relaxed),
            r.connections_closed.load(Relaxed),
            r.messages_dropped.load(Relaxed),
        ],
    };
    let peers = src
        .peers
        .addrs()
        .into_keys()
        .filter_map(|id| {
            let p = src.peers.get(id)?;
            let l = p.link();
            Some(PeerSample {
                id,
                connected: p.is_connected(),
                sent_bytes: l.sent_bytes.load(Relaxed),
                received_bytes: l.received_bytes.load(Relaxed),
                dropped_sends: l.dropped_sends.load(Relaxed),
            })
        })
        .collect();
    render(&Scrape {
        groups,
        disk_full,
        telemetry: &src.telemetry,
        commands: &stats.commands,
        peers,
        process,
    })
}

async fn answer(mut stream: TcpStream, source: Source) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, ctype, body) = if line.starts_with(b"GET /metrics ") {
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            source(),
        )
    } else {
        ("404 Not Found", "text/plain", "try GET /metrics\n".into())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Resident set size from /proc/self/statm (0 where there is none),
/// assuming 4 KiB pages (Linux on x86-64 and most arm64 kernels).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}
