//! `INFO [section ...]` in Redis 7's format: `# Section` headers, then
//! `field:value` lines, CRLF-terminated, a blank line between sections.
//!
//! Sections, in Redis's order: `server`, `clients`, `memory`,
//! `persistence`, `stats`, `replication`, `cpu`, `modules`, `errorstats`,
//! `cluster`, `keyspace`, then raftkv's own: `raft` (a single group's
//! node) or `sharding` (a sharded process; also answered for `raft`); and
//! `commandstats` (only when named, or with `all` / `everything`, as in
//! Redis). No argument or `default` gives every other section; several
//! arguments give their union; an unknown section gives nothing (as Redis).
//! Field names appear once across the sections raftkv adds, except `role`:
//! Redis's (`replication`, `master`) and Raft's (`raft`, `leader` ...),
//! which comes later, so [`parse`] of a full INFO keeps Raft's.
//!
//! Translations where Redis's notion does not fit raftkv (also in the README):
//! - `replication`: `role:master` on every node with `connected_slaves:0`:
//!   every node accepts writes and serves linearizable reads (a follower
//!   forwards to the leader), so to a Redis tool each node is a master; the
//!   Raft role is in the `raft` section.
//! - `persistence`: no RDB and no fork; `aof_enabled:1` because every
//!   acknowledged write is fsync'd in the Raft log; `log_write_status` says
//!   whether the log can be written (`no_space` on a full disk, `low_space`
//!   while the file system is below `--min-free-bytes`: writes refused).
//! - `memory`: see [`crate::memory`]; `maxmemory:0` (no eviction).
//! - `keyspace`: `db0:keys=N,expires=M,avg_ttl=0` from the replicated state
//!   (omitted when empty, as Redis does); `expires` counts keys with a TTL
//!   (the state machine's `expiring_count`).
//! - `stats`: keyspace hits and misses count the string reads whose reply
//!   tells (`GET`, `GETEX`, `GETDEL`, `MGET`), see [`crate::stats`];
//!   `expired_keys` counts keys this process's active expiry removed (the
//!   state machine's `expired_count`; a dead key overwritten before the purge
//!   reaches it is not counted, where Redis would count its lazy expiry).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::memory;
use crate::port_state::PortState;
use crate::requests::Requests;
use crate::service::Service;

/// The Redis version raftkv answers as (`redis_version`, `HELLO`'s
/// `version`): client libraries gate features on it.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

/// Every section, in the order they are written.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
    "raft",
    "sharding",
];

/// Sections only `all`, `everything` or their name give.
const NOT_DEFAULT: &[&str] = &["commandstats"];

/// What the replicated side contributes (single group or sharded).
struct Replicated {
    keys: usize,
    expires: usize,
    /// Keys removed by active expiry in this process (`expired_keys`).
    expired: u64,
    /// `(status, why)` of writing the log.
    log_write: (&'static str, String),
    /// The `raft` or `sharding` section, rendered.
    own: String,
    own_name: &'static str,
}

/// INFO's text for `sections` (lower case; empty: the default set).
pub fn render(port: &PortState, node: &Service, sections: &[String]) -> String {
    let named = |n: &str| sections.iter().any(|s| s == n);
    let all = named("all") || named("everything");
    let default = sections.is_empty() || named("default") || all;
    let rep = replicated(node);
    let want = |name: &str| {
        (default && !NOT_DEFAULT.contains(&name))
            || all
            || sections.iter().any(|s| {
                s == name || (name == rep.own_name && s == "raft") // `raft` answers sharding too
            })
    };
    let mut out = String::new();
    for name in SECTIONS {
        if !want(name) {
            continue;
        }
        let body = match *name {
            "server" => server(port),
            "clients" => clients(port),
            "memory" => memory_section(),
            "persistence" => persistence(&rep),
            "stats" => stats(port, &rep),
            "replication" => replication(),
            "cpu" => cpu(),
            "modules" => String::new(),
            "commandstats" => commandstats(port),
            "errorstats" => errorstats(port),
            "cluster" => format!("cluster_enabled:{}\r\n", u8::from(node.is_sharded())),
            "keyspace" => keyspace(&rep),
            own if own == rep.own_name => rep.own.clone(),
            _ => continue,
        };
        let _ = write!(out, "# {}\r\n{body}\r\n", title(name));
    }
    out
}

fn title(name: &str) -> String {
    match name {
        "cpu" => "CPU".into(),
        "commandstats" => "Commandstats".into(),
        "errorstats" => "Errorstats".into(),
        _ => {
            let mut t = name.to_string();
            t[..1].make_ascii_uppercase();
            t
        }
    }
}

fn replicated(node: &Service) -> Replicated {
    match node {
        Service::Single(r) => single(r),
        Service::Sharded(r) => {
            let (keys, expires, expired, own) = crate::shard::info::sharding(r);
            Replicated {
                keys,
                expires,
                expired,
                log_write: crate::shard::info::log_write(r),
                own,
                own_name: "sharding",
            }
        }
    }
}

fn single(node: &Requests) -> Replicated {
    let st = node.driver.status();
    let log_write = match (node.driver.disk_full(), node.reserve.low()) {
        (None, None) => ("ok", String::new()),
        (Some(why), _) => ("no_space", why.replace(['\r', '\n'], " ")),
        (None, Some(why)) => ("low_space", why.replace(['\r', '\n'], " ")),
    };
    let mut own = String::new();
    let _ = write!(
        own,
        "id:{}\r\nrole:{}\r\nterm:{}\r\nleader:{}\r\ncommit:{}\r\napplied:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\npending_proposals:{}\r\npending_reads:{}\r\nlog_bytes:{}\r\nsessions:{}\r\nkeys:{}\r\n",
        st.raft.id,
        role_name(st.raft.role),
        st.raft.term,
        st.raft.leader.unwrap_or(0),
        st.raft.commit,
        st.raft.applied,
        st.raft.last_index,
        st.raft.snapshot_index,
        st.pending_proposals,
        st.pending_reads,
        st.log_bytes,
        st.sessions,
        st.keys,
    );
    Replicated {
        keys: st.keys,
        expires: st.expires,
        expired: st.expired,
        log_write,
        own,
        own_name: "raft",
    }
}

/// Raft's role as the `raft` section names it.
pub fn role_name(r: raft::Role) -> &'static str {
    match r {
        raft::Role::Leader => "leader",
        raft::Role::Follower => "follower",
        raft::Role::Candidate => "candidate",
        raft::Role::PreCandidate => "precandidate",
    }
}

fn server(port: &PortState) -> String {
    let uptime = port.started.elapsed().as_secs();
    let s = &port.settings;
    format!(
        "redis_version:{REDIS_COMPAT_VERSION}\r\nraftkv_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:{}\r\narch_bits:{}\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:0\r\nexecutable:{}\r\nconfig_file:\r\nio_threads_active:0\r\n",
        env!("CARGO_PKG_VERSION"),
        if s.sharded { "cluster" } else { "standalone" },
        os_line(),
        usize::BITS,
        std::process::id(),
        port.run_id,
        s.listen.port(),
        crate::stats::unix_micros(),
        uptime / 86_400,
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    )
}

/// `Linux 6.1.0 x86_64`, as Redis's `os` field (from uname).
fn os_line() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/ostype")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    format!("{kernel} {} {}", release.trim(), std::env::consts::ARCH)
}

fn clients(port: &PortState) -> String {
    format!(
        "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\ntotal_blocking_keys:0\r\ntotal_blocking_keys_on_nokey:0\r\n",
        port.clients.count(),
        port.settings.max_connections,
    )
}

fn memory_section() -> String {
    let m = memory::usage();
    format!(
        "used_memory:{}\r\nused_memory_human:{}\r\nused_memory_source:{}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\ntotal_system_memory:{}\r\ntotal_system_memory_human:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:{}\r\n",
        m.used,
        memory::human(m.used),
        if m.from_allocator { "allocator" } else { "rss" },
        m.rss,
        memory::human(m.rss),
        m.rss_peak,
        memory::human(m.rss_peak),
        m.system_total,
        memory::human(m.system_total),
        if m.used > 0 { m.rss as f64 / m.used as f64 } else { 0.0 },
        memory::allocator_name(),
    )
}

fn persistence(rep: &Replicated) -> String {
    format!(
        "loading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:0\r\nrdb_last_bgsave_status:ok\r\nrdb_saves:0\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_write_status:{}\r\nlog_write_status:{}\r\nlog_write_error:{}\r\n",
        if rep.log_write.0 == "ok" { "ok" } else { "err" },
        rep.log_write.0,
        rep.log_write.1,
    )
}

fn stats(port: &PortState, rep: &Replicated) -> String {
    let s = &port.stats;
    let rate = s.instantaneous();
    let kbps = |bytes_per_sec: f64| bytes_per_sec / 1024.0;
    format!(
        "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nevicted_clients:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\ntotal_error_replies:{}\r\n",
        s.connections_received.load(Relaxed),
        s.commands_processed.load(Relaxed),
        rate.ops.round() as u64,
        s.net_input_bytes.load(Relaxed),
        s.net_output_bytes.load(Relaxed),
        kbps(rate.input_bytes),
        kbps(rate.output_bytes),
        s.rejected_connections.load(Relaxed),
        rep.expired,
        s.keyspace_hits.load(Relaxed),
        s.keyspace_misses.load(Relaxed),
        s.error_replies.load(Relaxed),
    )
}

fn replication() -> String {
    "role:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nrepl_backlog_active:0\r\n".into()
}

/// CPU seconds of this process from `/proc/self/stat` (utime, stime).
fn cpu() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces: state is field 3,
    // utime 14 and stime 15 (1-based), in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let secs = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / 100.0;
    format!(
        "used_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n",
        secs(12),
        secs(11),
    )
}

/// `cmdstat_<name>:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..`.
fn commandstats(port: &PortState) -> String {
    port.stats
        .per_command()
        .into_iter()
        .map(|(name, s)| {
            let per_call = if s.calls > 0 {
                s.usec as f64 / s.calls as f64
            } else {
                0.0
            };
            format!(
                "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                s.calls, s.usec, s.rejected, s.failed
            )
        })
        .collect()
}

fn errorstats(port: &PortState) -> String {
    port.stats
        .errors_by_code()
        .into_iter()
        .map(|(code, n)| format!("errorstat_{code}:count={n}\r\n"))
        .collect()
}

fn keyspace(rep: &Replicated) -> String {
    if rep.keys == 0 {
        return String::new();
    }
    format!(
        "db0:keys={},expires={},avg_ttl=0\r\n",
        rep.keys, rep.expires
    )
}

/// Parses `field:value` lines (for clients of INFO: the CLI and tests); a
/// field named twice keeps its last value.
pub fn parse(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_match_redis() {
        assert_eq!(title("server"), "Server");
        assert_eq!(title("cpu"), "CPU");
        assert_eq!(title("keyspace"), "Keyspace");
        assert_eq!(title("errorstats"), "Errorstats");
    }

    #[test]
    fn cpu_times_parse() {
        let text = cpu();
        let f = parse(&text);
        assert!(f["used_cpu_user"].parse::<f64>().is_ok());
        assert!(f["used_cpu_sys"].parse::<f64>().is_ok());
    }
}
