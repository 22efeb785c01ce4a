//! The exposition: every metric family of `/metrics`, from one [`Scrape`]
//! (values read at scrape time: the replicas' published statuses, the I/O
//! edge's atomics, the port's counters, the peer links). A pure function of
//! its input, so tests render a hand-made `Scrape`.
//!
//! Invariant: a family is always present (with `# HELP`/`# TYPE`) even when
//! it has no sample yet, so a dashboard or alert naming it never sees the
//! name vanish; families with labels that come and go (per command, per
//! peer) hold only the series that exist.

use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

use super::commands::{CommandMetrics, ERROR_KINDS};
use super::family::{Family, Value};
use super::group::Telemetry;

/// One peer link as a scrape sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSample {
    pub id: u64,
    pub connected: bool,
    pub sent_bytes: u64,
    pub received_bytes: u64,
    pub dropped_sends: u64,
}

/// Process-wide numbers a scrape reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub connected_clients: u64,
    pub connections_accepted: u64,
    pub connections_rejected: u64,
    pub resident_bytes: u64,
    /// The data directory's file system is below `--min-free-bytes`
    /// (`crate::space`): writes are refused before the disk fills.
    pub low_space: bool,
    /// Peer-side refusals: handshakes refused, handshakes timed out,
    /// connections closed for what they sent, messages dropped.
    pub peer_rejections: [u64; 4],
}

/// The `reason` labels of `Process::peer_rejections`, in order.
pub const PEER_REJECTION_REASONS: [&str; 4] = [
    "handshake_refused",
    "handshake_timeout",
    "connection_closed",
    "message_dropped",
];

/// Everything one scrape reads (module docs).
pub struct Scrape<'a> {
    /// Each hosted group's id and status (`0`: a single group).
    pub groups: Vec<(u64, replica::Status)>,
    /// The hosted groups that cannot write their log (disk full): their
    /// writes get `-MISCONF` until the driver's reopen succeeds.
    pub disk_full: Vec<u64>,
    pub telemetry: &'a Telemetry,
    pub commands: &'a CommandMetrics,
    pub peers: Vec<PeerSample>,
    pub process: Process,
}

/// The exposition text of `s`.
pub fn render(s: &Scrape) -> String {
    let mut reg = Registry::with_prefix("raftkv");
    for f in group_gauges(&s.groups)
        .into_iter()
        .chain(log_write(&s.groups, &s.disk_full))
        .chain(group_counters(&s.groups))
        .chain(io_edge(s.telemetry))
        .chain(commands(s.commands))
        .chain(peers(&s.peers, &s.process))
        .chain(process(&s.process))
    {
        f.register(&mut reg);
    }
    let mut out = String::new();
    encode(&mut out, &reg).expect("encoding to a String cannot fail");
    out
}

/// A per-group family: name, help, how to read it from a status.
type Spec = (&'static str, &'static str, fn(&replica::Status) -> u64);

fn gauge(v: u64) -> Value {
    Value::Gauge(i64::try_from(v).unwrap_or(i64::MAX))
}

fn group_gauges(groups: &[(u64, replica::Status)]) -> Vec<Family> {
    let spec: [Spec; 13] = [
        ("raft_term", "Current Raft term", |s| s.raft.term),
        ("raft_is_leader", "1 if this replica leads its group", |s| {
            u64::from(s.raft.role == raft::Role::Leader)
        }),
        (
            "raft_leader_id",
            "The leader this replica knows (0: none)",
            |s| s.raft.leader.unwrap_or(0),
        ),
        ("raft_commit_index", "Raft commit index", |s| s.raft.commit),
        (
            "raft_applied_index",
            "Index applied to the state machine",
            |s| s.raft.applied,
        ),
        ("raft_last_index", "Last index in the log", |s| {
            s.raft.last_index
        }),
        ("raft_snapshot_index", "Index of the latest snapshot", |s| {
            s.raft.snapshot_index
        }),
        ("raft_apply_lag", "Committed entries not applied yet", |s| {
            s.raft.commit.saturating_sub(s.raft.applied)
        }),
        (
            "raft_log_bytes",
            "Persisted Raft log size in bytes (hard state and entries), as the snapshot threshold counts it",
            |s| s.log_bytes,
        ),
        ("pending_proposals", "Proposals awaiting commit", |s| {
            s.pending_proposals as u64
        }),
        ("pending_reads", "Reads awaiting ReadIndex", |s| {
            s.pending_reads as u64
        }),
        ("keys", "Keys in the state machine", |s| s.keys as u64),
        ("sessions", "Client sessions in the state machine", |s| {
            s.sessions as u64
        }),
    ];
    let mut out = per_group(groups, Family::gauge, &spec, gauge);
    let mut role = Family::gauge("raft_role", "1 for the replica's current role");
    for (g, st) in groups {
        let g = g.to_string();
        for (name, this) in [
            ("leader", raft::Role::Leader),
            ("follower", raft::Role::Follower),
            ("candidate", raft::Role::Candidate),
            ("precandidate", raft::Role::PreCandidate),
        ] {
            let v = Value::Gauge(i64::from(st.raft.role == this));
            role.add(&[("group", &g), ("role", name)], v);
        }
    }
    out.push(role);
    out
}

fn group_counters(groups: &[(u64, replica::Status)]) -> Vec<Family> {
    let spec: [Spec; 10] = [
        (
            "raft_leader_changes",
            "Terms in which this replica learned of a leader (elections won, by anyone)",
            |s| s.counters.leader_changes,
        ),
        (
            "raft_proposals",
            "Commands this replica accepted into the log as leader",
            |s| s.counters.proposals,
        ),
        (
            "raft_proposals_rejected",
            "Proposals refused (not the leader, or too much uncommitted)",
            |s| s.counters.proposals_rejected,
        ),
        (
            "raft_read_index_rounds",
            "ReadIndex rounds started (each serves a batch of reads)",
            |s| s.counters.read_index_rounds,
        ),
        (
            "raft_snapshot_chunks_sent",
            "InstallSnapshot chunks sent to followers",
            |s| s.counters.snapshot_chunks_sent,
        ),
        (
            "raft_snapshot_sent_bytes",
            "Snapshot data bytes sent to followers",
            |s| s.counters.snapshot_bytes_sent,
        ),
        (
            "raft_snapshots_installed",
            "Snapshots from a leader installed here",
            |s| s.counters.snapshots_installed,
        ),
        (
            "raft_snapshot_installed_bytes",
            "Bytes of the snapshots installed here",
            |s| s.counters.snapshot_bytes_installed,
        ),
        (
            "raft_snapshots_taken",
            "Snapshots of the own state machine (log compactions)",
            |s| s.counters.snapshots_taken,
        ),
        (
            "raft_snapshots_rejected",
            "Snapshots from a leader dropped because they would not restore",
            |s| s.snapshots_rejected,
        ),
    ];
    per_group(groups, Family::counter, &spec, Value::Counter)
}

/// One family per `spec` row, one sample per group.
fn per_group(
    groups: &[(u64, replica::Status)],
    make: fn(&'static str, &'static str) -> Family,
    spec: &[Spec],
    value: fn(u64) -> Value,
) -> Vec<Family> {
    spec.iter()
        .map(|(name, help, read)| {
            let mut f = make(name, help);
            for (g, st) in groups {
                f.add(&[("group", &g.to_string())], value(read(st)));
            }
            f
        })
        .collect()
}

fn io_edge(t: &Telemetry) -> Vec<Family> {
    let mut proposal = Family::histogram(
        "proposal_duration_seconds",
        "Proposal handed to the driver to its answer (commit and apply, or refusal)",
    );
    let mut fsync = Family::histogram(
        "disk_fsync_duration_seconds",
        "fdatasync of the group's WAL and snapshot files",
    );
    let mut written = Family::counter(
        "disk_written_bytes",
        "Bytes the group's storage wrote (records, snapshots, preallocation)",
    );
    for (g, m) in t.groups() {
        let l = [("group", g.to_string())];
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        proposal.add(&l, Value::Histogram(m.proposal_latency.snapshot()));
        fsync.add(&l, Value::Histogram(m.fsync_latency.snapshot()));
        written.add(&l, Value::Counter(m.disk_written_bytes.load(Relaxed)));
    }
    vec![proposal, fsync, written]
}

fn commands(c: &CommandMetrics) -> Vec<Family> {
    let mut calls = Family::counter(
        "commands",
        "Client requests by command (executed or refused); `unknown`: no such command",
    );
    let mut errors = Family::counter(
        "command_errors",
        "Error replies by command and kind (the reply's first word)",
    );
    let mut latency = Family::histogram(
        "command_duration_seconds",
        "Executed commands, parse to reply (replication included)",
    );
    for (name, e) in c.called() {
        calls.add(&[("cmd", name)], Value::Counter(e.calls.load(Relaxed)));
        for (kind, n) in ERROR_KINDS.iter().zip(&e.errors) {
            let n = n.load(Relaxed);
            if n > 0 {
                errors.add(&[("cmd", name), ("kind", kind)], Value::Counter(n));
            }
        }
        latency.add(&[("cmd", name)], Value::Histogram(e.latency.snapshot()));
    }
    vec![calls, errors, latency]
}

fn peers(links: &[PeerSample], p: &Process) -> Vec<Family> {
    let mut up = Family::gauge(
        "peer_up",
        "1 while the outbound link to the peer is connected",
    );
    let mut sent = Family::counter(
        "peer_sent_bytes",
        "Bytes written to the peer's socket (TLS records included)",
    );
    let mut received = Family::counter(
        "peer_received_bytes",
        "Frame bytes read from the peer after its handshakes (decrypted, with TLS)",
    );
    let mut dropped = Family::counter(
        "peer_dropped_sends",
        "Messages to the peer not sent (queue full or write failed; Raft retransmits)",
    );
    for l in links {
        let id = l.id.to_string();
        let at = [("peer", id.as_str())];
        up.add(&at, Value::Gauge(i64::from(l.connected)));
        sent.add(&at, Value::Counter(l.sent_bytes));
        received.add(&at, Value::Counter(l.received_bytes));
        dropped.add(&at, Value::Counter(l.dropped_sends));
    }
    let mut rejected = Family::counter(
        "peer_rejections",
        "Inbound peer connections and messages refused, by reason",
    );
    for (reason, n) in PEER_REJECTION_REASONS.iter().zip(p.peer_rejections) {
        rejected.add(&[("reason", reason)], Value::Counter(n));
    }
    vec![up, sent, received, dropped, rejected]
}

/// `disk_full{group}`: 1 while the group cannot write its log (the same
/// condition as INFO persistence's `log_write_status:no_space`).
fn log_write(groups: &[(u64, replica::Status)], disk_full: &[u64]) -> Vec<Family> {
    let mut full = Family::gauge(
        "disk_full",
        "1 while the group cannot write its log (disk full): writes get -MISCONF until space returns",
    );
    for (g, _) in groups {
        full.add(
            &[("group", &g.to_string())],
            Value::Gauge(i64::from(disk_full.contains(g))),
        );
    }
    vec![full]
}

fn process(p: &Process) -> Vec<Family> {
    let one = |f: fn(&'static str, &'static str) -> Family, name, help, v: Value| {
        let mut fam = f(name, help);
        fam.add(&[], v);
        fam
    };
    vec![
        one(
            Family::gauge,
            "connected_clients",
            "Open client connections",
            gauge(p.connected_clients),
        ),
        one(
            Family::counter,
            "connections_accepted",
            "Client connections accepted (CONFIG RESETSTAT zeroes it, as INFO's)",
            Value::Counter(p.connections_accepted),
        ),
        one(
            Family::counter,
            "connections_rejected",
            "Client connections refused at maxclients (CONFIG RESETSTAT zeroes it)",
            Value::Counter(p.connections_rejected),
        ),
        one(
            Family::gauge,
            "process_resident_memory_bytes",
            "Resident memory of this process",
            gauge(p.resident_bytes),
        ),
        one(
            Family::gauge,
            "low_space",
            "1 while the data directory's file system is below --min-free-bytes (writes refused)",
            Value::Gauge(i64::from(p.low_space)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_family_is_named_and_typed_and_samples_carry_their_labels() {
        let telemetry = Telemetry::new([0, 3]);
        let g3 = telemetry.group(3);
        g3.proposal_latency.observe(Duration::from_millis(2));
        g3.disk_written_bytes.fetch_add(4096, Relaxed);
        let commands = CommandMetrics::default();
        commands.done(Some("set"), None, Duration::from_micros(300));
        commands.done(Some("set"), Some("MOVED 1 127.0.0.1:7001"), Duration::ZERO);
        let mut st = replica::Status {
            raft: raft::Status {
                id: 1,
                role: raft::Role::Follower,
                term: 2,
                leader: Some(2),
                commit: 5,
                applied: 5,
                last_index: 5,
                snapshot_index: 0,
            },
            pending_proposals: 0,
            pending_reads: 0,
            log_bytes: 0,
            keys: 0,
            expires: 0,
            expired: 0,
            sessions: 0,
            snapshots_rejected: 1,
            counters: replica::Counters::default(),
        };
        st.counters.proposals = 7;
        let text = render(&Scrape {
            groups: vec![(3, st)],
            disk_full: vec![3],
            telemetry: &telemetry,
            commands: &commands,
            peers: vec![PeerSample {
                id: 2,
                connected: true,
                sent_bytes: 10,
                ..PeerSample::default()
            }],
            process: Process {
                connections_accepted: 4,
                low_space: true,
                ..Process::default()
            },
        });
        for line in [
            "# TYPE raftkv_raft_proposals counter",
            "raftkv_raft_proposals_total{group=\"3\"} 7",
            "raftkv_raft_snapshots_rejected_total{group=\"3\"} 1",
            "# TYPE raftkv_proposal_duration_seconds histogram",
            "raftkv_proposal_duration_seconds_bucket{le=\"0.0025\",group=\"3\"} 1",
            "raftkv_proposal_duration_seconds_count{group=\"0\"} 0",
            "raftkv_disk_written_bytes_total{group=\"3\"} 4096",
            "raftkv_commands_total{cmd=\"set\"} 2",
            "raftkv_command_errors_total{cmd=\"set\",kind=\"MOVED\"} 1",
            "raftkv_command_duration_seconds_count{cmd=\"set\"} 2",
            "raftkv_peer_up{peer=\"2\"} 1",
            "raftkv_peer_sent_bytes_total{peer=\"2\"} 10",
            "raftkv_peer_rejections_total{reason=\"handshake_refused\"} 0",
            "raftkv_disk_full{group=\"3\"} 1",
            "raftkv_low_space 1",
            "raftkv_connections_accepted_total 4",
            "raftkv_raft_role{group=\"3\",role=\"follower\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
