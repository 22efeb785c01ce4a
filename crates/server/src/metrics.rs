//! `--metrics-listen`: Prometheus text format at `GET /metrics`.
//!
//! What it owns: a tiny HTTP/1.1 responder (one request per connection,
//! bounded: 8 KiB of request head, 5 s to send it) and the rendering of
//! gauges with `prometheus-client`. Every value is read at scrape time from
//! the status the driver thread already publishes after each drive (the
//! same one `INFO` reads), so serving metrics costs the hot path nothing.
//!
//! Exported, per group (label `group`: `0` for a single group, else the
//! group id; the controller is `0` on a sharded process too):
//! `raftkv_raft_term`, `raftkv_raft_is_leader`, `raftkv_raft_role` (label
//! `role`, 1 for the current one), `raftkv_raft_leader_id`,
//! `raftkv_raft_commit_index`, `raftkv_raft_applied_index`,
//! `raftkv_raft_last_index`, `raftkv_raft_snapshot_index`,
//! `raftkv_raft_apply_lag` (commit - applied), `raftkv_raft_log_bytes`,
//! `raftkv_pending_proposals`, `raftkv_pending_reads`, `raftkv_keys`,
//! `raftkv_sessions`; per process: `raftkv_process_resident_memory_bytes`.
//! Counters and histograms (proposals, latencies, fsync, peer bytes) are not
//! exported yet.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::node::{Driver, RunningNode};

/// Most bytes of request head read before answering.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a scraper gets to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

type Labels = Vec<(String, String)>;

/// Where the values come from: each hosted group's id and status.
type Source = Arc<dyn Fn() -> Vec<(u64, replica::Status)> + Send + Sync>;

impl RunningNode {
    /// Serves `/metrics` on `listener` until the node stops.
    pub fn serve_metrics(&mut self, listener: TcpListener) {
        let source: Source = match &self.driver {
            Driver::Single(d) => {
                let d = d.clone();
                Arc::new(move || vec![(0, d.status())])
            }
            Driver::Sharded(d) => {
                let d = d.clone();
                Arc::new(move || {
                    d.view()
                        .groups
                        .iter()
                        .map(|(g, v)| (*g, v.status))
                        .collect()
                })
            }
        };
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
            "text/plain; version=0.0.4; charset=utf-8",
            render(&source()),
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

/// The exposition text for these groups' statuses.
pub fn render(groups: &[(u64, replica::Status)]) -> String {
    let mut reg = Registry::with_prefix("raftkv");
    let gauge = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Gauge>::default();
        reg.register(name, help, f.clone());
        f
    };
    let term = gauge(&mut reg, "raft_term", "Current Raft term");
    let leader = gauge(
        &mut reg,
        "raft_is_leader",
        "1 if this replica leads its group",
    );
    let role = gauge(&mut reg, "raft_role", "1 for the replica's current role");
    let leader_id = gauge(
        &mut reg,
        "raft_leader_id",
        "The leader this replica knows (0: none)",
    );
    let commit = gauge(&mut reg, "raft_commit_index", "Raft commit index");
    let applied = gauge(
        &mut reg,
        "raft_applied_index",
        "Index applied to the state machine",
    );
    let last = gauge(&mut reg, "raft_last_index", "Last index in the log");
    let snap = gauge(
        &mut reg,
        "raft_snapshot_index",
        "Index of the latest snapshot",
    );
    let lag = gauge(
        &mut reg,
        "raft_apply_lag",
        "Committed entries not applied yet",
    );
    let log = gauge(
        &mut reg,
        "raft_log_bytes",
        "Persisted Raft log size (upper bound)",
    );
    let props = gauge(&mut reg, "pending_proposals", "Proposals awaiting commit");
    let reads = gauge(&mut reg, "pending_reads", "Reads awaiting ReadIndex");
    let keys = gauge(&mut reg, "keys", "Keys in the state machine");
    let sessions = gauge(&mut reg, "sessions", "Client sessions in the state machine");
    for (g, st) in groups {
        let l: Labels = vec![("group".into(), g.to_string())];
        let r = &st.raft;
        let set = |f: &Family<Labels, Gauge>, v: u64| {
            f.get_or_create(&l)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&term, r.term);
        set(&leader, u64::from(r.role == raft::Role::Leader));
        set(&leader_id, r.leader.unwrap_or(0));
        set(&commit, r.commit);
        set(&applied, r.applied);
        set(&last, r.last_index);
        set(&snap, r.snapshot_index);
        set(&lag, r.commit.saturating_sub(r.applied));
        set(&log, st.log_bytes);
        set(&props, st.pending_proposals as u64);
        set(&reads, st.pending_reads as u64);
        set(&keys, st.keys as u64);
        set(&sessions, st.sessions as u64);
        for (name, this) in [
            ("leader", raft::Role::Leader),
            ("follower", raft::Role::Follower),
            ("candidate", raft::Role::Candidate),
            ("precandidate", raft::Role::PreCandidate),
        ] {
            let mut rl = l.clone();
            rl.push(("role".into(), name.into()));
            role.get_or_create(&rl).set(i64::from(r.role == this));
        }
    }
    let rss = Gauge::<i64>::default();
    reg.register(
        "process_resident_memory_bytes",
        "Resident memory of this process",
        rss.clone(),
    );
    rss.set(resident_bytes());
    let mut out = String::new();
    encode(&mut out, &reg).expect("encoding to a String cannot fail");
    out
}

/// Resident set size from /proc/self/statm (0 where there is none),
/// assuming 4 KiB pages (Linux on x86-64 and most arm64 kernels).
fn resident_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .unwrap_or(0)
        * 4096
}
