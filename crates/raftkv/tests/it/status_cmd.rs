//! `raftkv status` against real nodes: a node stopped with SIGSTOP (it
//! accepts connections but never answers) shows as `timeout` and does not
//! hold up the command or the other rows.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{serial, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_shows_as_timeout_and_does_not_hang_status() {
    let _g = serial();
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let stopped = if leader == 2 { 3 } else { 2 };
    c.signal(stopped, libc::SIGSTOP);
    let eps: Vec<String> = (1..=3).map(|i| c.endpoint(i)).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args([
            "status",
            "--json",
            "--timeout",
            "1",
            "--endpoints",
            &eps.join(","),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait: without the per-node timeout the command never returns.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            c.signal(stopped, libc::SIGCONT);
            let _ = child.kill();
            panic!("raftkv status still running after 30 s with --timeout 1");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    c.signal(stopped, libc::SIGCONT);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        let id = i as u64 + 1;
        assert_eq!(row["endpoint"], eps[i].as_str());
        if id == stopped {
            assert_eq!(row["error"], "timeout", "{row}");
        } else {
            assert_eq!(row["error"], "", "{row}");
            assert_eq!(row["id"], id.to_string().as_str());
            assert_eq!(row["leader"], leader.to_string().as_str());
            let want = if id == leader { "leader" } else { "follower" };
            assert_eq!(row["role"], want, "{row}");
        }
    }
}
