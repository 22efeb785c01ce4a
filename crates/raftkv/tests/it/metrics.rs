//! `--metrics-listen`: a real node's `/metrics` is Prometheus text format
//! (every line a comment or a well-formed sample) and moves with the node:
//! gauges (commit index, keys), the replica's counters (proposals,
//! ReadIndex rounds, leaderships), the I/O edge's (client commands and
//! their errors by kind, fsyncs, disk bytes, peer bytes and link state).
//! Also: every metric name the shipped dashboard and Prometheus files use
//! is one a real node exports.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{call, call_ok, serial, Cluster};
use server::resp::Frame;

/// GET `path` over plain HTTP/1.1; the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("HTTP head");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Checks every line of a text exposition and returns the samples.
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line == "# EOF" {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line:?}");
                for kv in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                    assert!(
                        !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                        "{line:?}"
                    );
                }
            }
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((series.to_string(), v));
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
        .1
}

/// A free port below the ephemeral range (so no outgoing connection of a
/// parallel test takes it between pick and bind).
fn metrics_port() -> u16 {
    common::port_below_ephemeral(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            % 30_000
            + 2048
    })
}

/// A scrape's samples.
fn scrape(addr: &str) -> Vec<(String, f64)> {
    let (status, body) = get(addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    parse(&body)
}

/// The series names an exposition declares: from each `# TYPE name kind`
/// line, the names its samples take (`name_total` for a counter;
/// `name_bucket`, `_sum`, `_count` for a histogram), whether or not a
/// sample exists yet (no error of a kind yet is still a declared family).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `raftkv_...` name in `text` (PromQL expressions, rule files).
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("raftkv_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The PromQL of every panel target in a Grafana dashboard.
fn dashboard_exprs(json: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in json["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_writes() {
    let _g = serial();
    let addr = format!("127.0.0.1:{}", metrics_port());
    let c = Cluster::start(1, &["--metrics-listen", &addr]);
    c.wait_leader(&[1], Duration::from_secs(10)).await;
    let before = scrape(&addr);
    assert_eq!(value(&before, "raftkv_raft_is_leader{group=\"0\"}"), 1.0);
    assert_eq!(
        value(&before, "raftkv_raft_role{group=\"0\",role=\"leader\"}"),
        1.0
    );
    assert!(value(&before, "raftkv_process_resident_memory_bytes") > 0.0);
    assert!(value(&before, "raftkv_raft_leader_changes_total{group=\"0\"}") >= 1.0);
    let commit = value(&before, "raftkv_raft_commit_index{group=\"0\"}");
    let proposals = value(&before, "raftkv_raft_proposals_total{group=\"0\"}");
    const N: usize = 5;
    for i in 0..N {
        let k = format!("k{i}");
        call_ok(
            &c.endpoint(1),
            &[b"SET", k.as_bytes(), b"v"],
            Duration::from_secs(10),
        )
        .await;
    }
    call_ok(&c.endpoint(1), &[b"GET", b"k0"], Duration::from_secs(10)).await;
    call_ok(
        &c.endpoint(1),
        &[b"HSET", b"h", b"f", b"v"],
        Duration::from_secs(10),
    )
    .await;
    let wrongtype = call(&c.endpoint(1), &[b"GET", b"h"]).await;
    assert!(
        matches!(&wrongtype, Some(Frame::Error(e)) if e.starts_with("WRONGTYPE")),
        "{wrongtype:?}"
    );
    let unknown = call(&c.endpoint(1), &[b"NOSUCHCOMMAND"]).await;
    assert!(matches!(unknown, Some(Frame::Error(_))), "{unknown:?}");

    let n = N as f64;
    // The gauges are read from the status the driver publishes after each
    // drive, which can trail the reply to the last write: wait (bounded)
    // for the key count, then check everything from that scrape.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(&addr);
        if value(&s, "raftkv_keys{group=\"0\"}") == n + 1.0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(value(&after, "raftkv_raft_commit_index{group=\"0\"}") >= commit + n);
    assert_eq!(value(&after, "raftkv_keys{group=\"0\"}"), n + 1.0);
    assert!(value(&after, "raftkv_raft_proposals_total{group=\"0\"}") >= proposals + n);
    assert!(value(&after, "raftkv_commands_total{cmd=\"set\"}") >= n);
    assert!(value(&after, "raftkv_command_duration_seconds_count{cmd=\"set\"}") >= n);
    assert!(
        value(
            &after,
            "raftkv_command_duration_seconds_bucket{le=\"+Inf\",cmd=\"set\"}"
        ) >= n
    );
    assert_eq!(
        value(
            &after,
            "raftkv_command_errors_total{cmd=\"get\",kind=\"WRONGTYPE\"}"
        ),
        1.0
    );
    assert_eq!(value(&after, "raftkv_commands_total{cmd=\"unknown\"}"), 1.0);
    assert!(value(&after, "raftkv_raft_read_index_rounds_total{group=\"0\"}") >= 1.0);
    assert!(
        value(
            &after,
            "raftkv_disk_fsync_duration_seconds_count{group=\"0\"}"
        ) >= n
    );
    assert!(value(&after, "raftkv_disk_written_bytes_total{group=\"0\"}") > 0.0);
    assert!(
        value(
            &after,
            "raftkv_proposal_duration_seconds_count{group=\"0\"}"
        ) >= n
    );
    assert!(value(&after, "raftkv_connections_accepted_total") >= (N + 4) as f64);
    assert!(get(&addr, "/nope").0.contains("404"));
}

/// Three nodes, each with its own metrics port: a follower counts the
/// commands it forwards and the error reply the leader's state machine gave
/// one (`ERR`; `NOTLEADER` now needs an unreachable leader, so it is not
/// provoked here), the leader's proposals count the writes, and
/// every node's peer links are up with bytes both ways. Then: every name
/// the dashboard and the Prometheus files reference is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_errors_and_the_dashboard_names() {
    let _g = serial();
    let ports: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", metrics_port()))
        .collect();
    let mut c = Cluster::new(3, &[]);
    for id in 1..=3u64 {
        c.spawn_with(id, &["--metrics-listen", &ports[id as usize - 1]]);
    }
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let metrics = |id: u64| ports[id as usize - 1].clone();
    for i in 0..3 {
        let k = format!("k{i}");
        call_ok(
            &c.endpoint(follower),
            &[b"SET", k.as_bytes(), b"v"],
            Duration::from_secs(10),
        )
        .await;
    }
    // The leader's state machine refuses it; the follower that forwarded
    // it counts the error reply it gave its client.
    let refused = call(&c.endpoint(follower), &[b"INCR", b"k0"]).await;
    assert!(
        matches!(&refused, Some(Frame::Error(e)) if e.starts_with("ERR")),
        "{refused:?}"
    );
    let f = scrape(&metrics(follower));
    assert_eq!(
        value(&f, "raftkv_command_errors_total{cmd=\"incr\",kind=\"ERR\"}"),
        1.0
    );
    assert!(value(&f, "raftkv_commands_total{cmd=\"set\"}") >= 3.0);
    let l = scrape(&metrics(leader));
    assert!(value(&l, "raftkv_raft_proposals_total{group=\"0\"}") >= 3.0);
    for id in (1..=3u64).filter(|&id| id != leader) {
        let peer = |name: &str| format!("{name}{{peer=\"{id}\"}}");
        assert_eq!(value(&l, &peer("raftkv_peer_up")), 1.0);
        assert!(value(&l, &peer("raftkv_peer_sent_bytes_total")) > 0.0);
        assert!(value(&l, &peer("raftkv_peer_received_bytes_total")) > 0.0);
    }

    let exported = exported_names(&get(&metrics(leader), "/metrics").1);
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let dashboard = std::fs::read_to_string(deploy.join("grafana/raftkv.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut referenced = BTreeSet::new();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 10, "too few panel queries: {exprs:?}");
    for e in &exprs {
        referenced.extend(referenced_names(e));
    }
    for file in ["prometheus.yml", "raftkv-alerts.yml"] {
        if let Ok(text) = std::fs::read_to_string(deploy.join(file)) {
            referenced.extend(referenced_names(&text));
        }
    }
    assert!(referenced.len() >= 10, "{referenced:?}");
    let missing: Vec<&String> = referenced.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "deploy/ references metrics no node exports: {missing:?}\nexported: {exported:?}"
    );
}

/// `deploy/prometheus.yml` and the alert rules it loads pass Prometheus's
/// own checker, where `promtool` is installed (Debian: `apt-get install
/// prometheus`); skipped, saying so, where it is not.
#[test]
fn the_prometheus_files_pass_promtool() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let run = |args: &[&str]| std::process::Command::new("promtool").args(args).output();
    let config = deploy.join("prometheus.yml");
    let out = match run(&["check", "config", config.to_str().unwrap()]) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: promtool not runnable ({e}); install Debian's prometheus package to check deploy/*.yml");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check config:\n{text}");
    assert!(text.contains("1 rule files found"), "{text}");
}
