//! `--metrics-listen`: a real node's `/metrics` is Prometheus text format
//! (every line a comment or a well-formed sample) and moves with the node
//! (its commit index grows after writes).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{call_ok, serial, Cluster};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_writes() {
    let _g = serial();
    let port = common::port_below_ephemeral(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            % 30_000
            + 2048
    });
    let addr = format!("127.0.0.1:{port}");
    let c = Cluster::start(1, &["--metrics-listen", &addr]);
    c.wait_leader(&[1], Duration::from_secs(10)).await;
    let (status, body) = get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    let before = parse(&body);
    assert_eq!(value(&before, "raftkv_raft_is_leader{group=\"0\"}"), 1.0);
    assert_eq!(
        value(&before, "raftkv_raft_role{group=\"0\",role=\"leader\"}"),
        1.0
    );
    assert!(value(&before, "raftkv_process_resident_memory_bytes") > 0.0);
    let commit = value(&before, "raftkv_raft_commit_index{group=\"0\"}");
    for i in 0..5 {
        let k = format!("k{i}");
        call_ok(
            &c.endpoint(1),
            &[b"SET", k.as_bytes(), b"v"],
            Duration::from_secs(10),
        )
        .await;
    }
    let after = parse(&get(&addr, "/metrics").1);
    assert!(value(&after, "raftkv_raft_commit_index{group=\"0\"}") >= commit + 5.0);
    assert_eq!(value(&after, "raftkv_keys{group=\"0\"}"), 5.0);
    assert!(get(&addr, "/nope").0.contains("404"));
}
