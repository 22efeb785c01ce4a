//! `raftkv cluster` as a user runs it: a node killed with -9 is told on
//! stderr and restarted while writes continue through the others; a port in
//! use fails before anything starts, naming `--base-port`; a closed stdout
//! ends the command quietly with its children stopped; with `--tls --groups`
//! every advertised client port speaks TLS.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{call_ok, serial};
use server::client::Client;
use server::resp::Frame;

const WAIT: Duration = Duration::from_secs(60);

/// A base port P whose client ports P.., peer ports P+10000.. and metrics
/// ports P+20000.. (for `procs` processes) all bind now, below the ephemeral
/// range.
fn base_port(procs: u16) -> u16 {
    let seed = std::process::id() as u16;
    for k in 0..500u16 {
        let p = 2000 + (seed.wrapping_add(k.wrapping_mul(97)) % 100) * 100;
        let free = (0..procs).all(|i| {
            [p + i, p + 10_000 + i, p + 20_000 + i]
                .iter()
                .all(|&q| TcpListener::bind(("127.0.0.1", q)).is_ok())
        });
        if free {
            return p;
        }
    }
    panic!("no free base port");
}

/// A running `raftkv cluster`, its stdout and stderr lines collected.
struct ClusterCmd {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl ClusterCmd {
    fn start(args: &[&str], data: &Path) -> ClusterCmd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("cluster")
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        ClusterCmd { child, out, err }
    }

    /// Waits (bounded) for a line of stdout (`out`) or stderr containing `needle`.
    fn wait_line(&self, stdout: bool, needle: &str) -> String {
        let lines = if stdout { &self.out } else { &self.err };
        let deadline = Instant::now() + WAIT;
        loop {
            let found = lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned();
            if let Some(l) = found {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?}; stdout {:?} stderr {:?}",
                self.out.lock().unwrap(),
                self.err.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status (bounded).
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut self.child)
    }
}

impl Drop for ClusterCmd {
    fn drop(&mut self) {
        // SIGTERM first so it stops its children (they also get SIGTERM if it dies).
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(from).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    lines
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "did not exit within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `INFO all` of one node, bounded.
async fn info(ep: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let fut = async {
        let mut c = Client::connect(ep).await.ok()?;
        match c.call(&["INFO", "all"]).await.ok()? {
            Frame::Bulk(b) => Some(server::info::parse(&String::from_utf8_lossy(&b))),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .ok()
        .flatten()
}

async fn refuses(ep: &str) -> bool {
    Client::connect(ep).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_restarted_while_writes_continue() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = base_port(3);
    let mut c = ClusterCmd::start(
        &["--base-port", &p.to_string(), "--restart-delay", "0.3"],
        dir.path(),
    );
    c.wait_line(true, "Ctrl-C stops it");
    let eps: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", p + i)).collect();
    c.wait_line(true, &format!("redis-cli -p {p} SET"));
    c.wait_line(true, &format!("status --endpoints {}", eps.join(",")));

    call_ok(&eps[0], &[b"SET", b"before", b"1"], WAIT).await;
    let victim = info(&eps[1]).await.expect("node 2 answers");
    let pid: i32 = victim["process_id"].parse().unwrap();
    // SAFETY: kill(2) on a grandchild of ours (node 2, started by the cluster).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    c.wait_line(false, "node 2 exited (signal: 9");

    // The others keep serving (a new election if node 2 led).
    call_ok(&eps[2], &[b"SET", b"during", b"2"], WAIT).await;
    c.wait_line(false, "node 2 restarted");

    // Node 2 is back, a new process, and catches up past the write it missed.
    let commit = common::num(&info(&eps[2]).await.expect("node 3 answers"), "commit");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(i) = info(&eps[1]).await {
            if i["process_id"] != victim["process_id"] && common::num(&i, "applied") >= commit {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node 2 did not come back and catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        call_ok(&eps[1], &[b"GET", b"during"], WAIT).await,
        common::bulk("2")
    );
    assert!(c.stop().success());
    for ep in &eps {
        assert!(
            refuses(ep).await,
            "{ep} still answers after the cluster stopped"
        );
    }
}

#[test]
fn a_port_in_use_fails_before_anything_starts() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = base_port(3);
    let _taken = TcpListener::bind(("127.0.0.1", p + 10_001)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["cluster", "--base-port", &p.to_string(), "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {}", p + 10_001)) && err.contains("--base-port"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!data.exists(), "the data dir was created before the check");
    assert!(
        TcpListener::bind(("127.0.0.1", p)).is_ok(),
        "node 1 started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_stops_the_cluster_quietly() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = base_port(3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["cluster", "--base-port", &p.to_string(), "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `| head -1`: read one line, then close the pipe.
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("data directory:"), "{first}");
    drop(stdout);
    let status = wait_exit(&mut child);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    for i in 0..3 {
        assert!(
            refuses(&format!("127.0.0.1:{}", p + i)).await,
            "a node outlived the cluster"
        );
    }
}

/// `raftkv cluster --tls --groups 2`: every client port speaks TLS with the
/// certificates it made in DIR/tls, `CLUSTER SLOTS` advertises those TLS
/// ports, a plaintext client is refused, and redis-py's `RedisCluster`
/// with `ssl=True` follows the layout (skipped, saying so, without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_sharded_cluster_advertises_its_tls_ports() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = base_port(6);
    let base = p.to_string();
    let mut cmd = ClusterCmd::start(
        &[
            "--tls",
            "--groups",
            "2",
            "--base-port",
            &base,
            "--no-restart",
        ],
        dir.path(),
    );
    cmd.wait_line(true, "TLS: client ports and peer links");
    cmd.wait_line(true, "sharded cluster of 2 groups");
    let ca = dir.path().join("tls/ca.crt");
    let tls = server::client::ClientTls {
        config: server::tls::client_config(&ca, None).unwrap(),
        sni: None,
    };
    let ep = format!("127.0.0.1:{p}");
    let mut c = Client::connect_with(&ep, Some(&tls)).await.unwrap();
    // Until process 1 has applied the joined configuration, no slot is owned.
    let deadline = Instant::now() + WAIT;
    let ranges = loop {
        match c.call(&["CLUSTER", "SLOTS"]).await.unwrap() {
            Frame::Array(r) if r.len() >= 2 => break r,
            other => assert!(Instant::now() < deadline, "CLUSTER SLOTS: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut ports = std::collections::BTreeSet::new();
    for range in ranges {
        let Frame::Array(parts) = range else {
            panic!("a slot range is not an array")
        };
        for node in &parts[2..] {
            let Frame::Array(node) = node else {
                panic!("a node is not an array")
            };
            let Frame::Integer(port) = node[1] else {
                panic!("no port: {node:?}")
            };
            ports.insert(port as u16);
        }
    }
    assert_eq!(ports, (p..p + 6).collect(), "advertised ports");
    for port in ports {
        let ep = format!("127.0.0.1:{port}");
        let mut c = Client::connect_with(&ep, Some(&tls)).await.unwrap();
        assert_eq!(
            c.call(&["PING"]).await.unwrap(),
            Frame::Simple("PONG".into())
        );
        assert!(refuses_plaintext(&ep).await, "{ep} answered plaintext");
    }
    redis_py_cluster_tls(&ep, &ca);
    assert!(cmd.stop().success());
}

/// A plaintext PING on a TLS port gets no answer (bounded).
async fn refuses_plaintext(ep: &str) -> bool {
    let ping = async {
        let mut c = Client::connect(ep).await?;
        c.call(&["PING"]).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), ping).await,
        Ok(Err(_))
    )
}

fn redis_py_cluster_tls(seed: &str, ca: &Path) {
    let probe = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED redis-py RedisCluster ssl=True: python3 or redis-py is missing; `.ci/run` installs it");
        return;
    }
    let (host, port) = seed.rsplit_once(':').unwrap();
    let script = r#"
import sys, redis
from redis.cluster import RedisCluster
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rc = RedisCluster(host=host, port=port, ssl=True, ssl_ca_certs=ca, socket_timeout=20)
for i in range(40):
    assert rc.set(f"k{i}", f"v{i}") is True
for i in range(40):
    assert rc.get(f"k{i}") == f"v{i}".encode()
nodes = sorted(n.port for n in rc.get_nodes())
print("redis-py", redis.__version__, "RedisCluster ssl=True: 40 keys over nodes", nodes)
"#;
    let out = Command::new("python3")
        .args(["-c", script, host, port, &ca.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py RedisCluster failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}
