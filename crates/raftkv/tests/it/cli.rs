//! The CLI's error contract: non-zero exit and a one-line stderr message for
//! bad flags, a `--cluster` without `--id`, an occupied port, an unusable or
//! corrupt data dir.

use crate::common;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

fn raftkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .output()
        .unwrap()
}

fn assert_fails_with(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(needle),
        "stderr {err:?} does not mention {needle:?}"
    );
}

fn one_line(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
}

#[test]
fn bad_flags_and_bad_cluster_lists_fail() {
    assert_fails_with(&raftkv(&["server", "--bogus"]), "--bogus");
    let out = raftkv(&[
        "server",
        "--id",
        "4",
        "--cluster",
        "1=127.0.0.1:1,2=127.0.0.1:2",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "/tmp/x",
    ]);
    assert_fails_with(&out, "does not contain --id 4");
    one_line(&out);
    let out = raftkv(&[
        "server",
        "--id",
        "1",
        "--cluster",
        "1=nocolon",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "/tmp/x",
    ]);
    assert_fails_with(&out, "HOST:PORT");
    one_line(&out);
}

#[test]
fn occupied_port_fails() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = raftkv(&[
        "server",
        "--id",
        "1",
        "--cluster",
        &format!("1=127.0.0.1:{peer}"),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_fails_with(&out, &format!("cannot listen on 127.0.0.1:{port}"));
    one_line(&out);
}

#[test]
fn unusable_data_dir_fails() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let bad = file.path().join("sub");
    let out = raftkv(&[
        "server",
        "--id",
        "1",
        "--cluster",
        "1=127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        bad.to_str().unwrap(),
    ]);
    assert_fails_with(&out, "cannot create data directory");
    one_line(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_dir_is_refused_naming_the_file() {
    let _g = common::serial();
    let mut c = common::Cluster::start(1, &[]);
    c.wait_leader(&[1], Duration::from_secs(10)).await;
    common::call_ok(
        &c.endpoint(1),
        &[b"SET", b"k", b"v"],
        Duration::from_secs(10),
    )
    .await;
    c.kill(1);
    let data = c.nodes[0].data.clone();
    // Damage the first segment's header (not a torn tail: recovery must refuse).
    let seg = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap() != "LOCK")
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[2] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let out = raftkv(&[
        "server",
        "--id",
        "1",
        "--cluster",
        &format!("1={}", c.nodes[0].peer),
        "--listen",
        &c.endpoint(1),
        "--data-dir",
        data.to_str().unwrap(),
        // The cluster the directory belongs to (`common::peer_auth_flags`):
        // under another id it is refused before storage is opened.
        "--cluster-id",
        "test",
    ]);
    assert_fails_with(&out, seg.file_name().unwrap().to_str().unwrap());
    one_line(&out);
}
