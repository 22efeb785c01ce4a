//! `raftkv cluster`: N child `raftkv server` processes on 127.0.0.1, their
//! client addresses printed, all stopped on Ctrl-C/SIGTERM (SIGTERM to each
//! child, SIGKILL after 5 s). If a child exits on its own (e.g. its port is
//! taken), the others are stopped and the command fails naming it.
//!
//! Each child's log lines are relayed to our stderr prefixed with `[node N]`,
//! so the interleaved output of the cluster stays readable.
//!
//! Invariant: no child outlives this process's normal exit paths (a `Drop`
//! guard stops them on error returns and panics too).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::ClusterArgs;

struct Children(Vec<(u64, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, c) in &mut self.0 {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn run(a: ClusterArgs) -> Result<(), String> {
    if a.nodes == 0 || a.nodes > 99 {
        return Err("--nodes must be between 1 and 99".into());
    }
    let top = u32::from(a.base_port) + 10_000 + a.nodes as u32 - 1;
    if top > 65_535 || a.base_port == 0 {
        return Err(format!(
            "--base-port {} leaves no room for {} client ports and peer ports (+10000)",
            a.base_port, a.nodes
        ));
    }
    let dir = a.data_dir.clone().unwrap_or_else(default_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the raftkv executable: {e}"))?;
    let port = |i: u64, off: u32| u32::from(a.base_port) + off + i as u32 - 1;
    let cluster: Vec<String> = (1..=a.nodes)
        .map(|i| format!("{i}=127.0.0.1:{}", port(i, 10_000)))
        .collect();
    let cluster = cluster.join(",");
    let mut children = Children(Vec::new());
    println!("data directory: {}", dir.display());
    for i in 1..=a.nodes {
        let listen = format!("127.0.0.1:{}", port(i, 0));
        let child = Command::new(&exe)
            .args([
                "server",
                "--id",
                &i.to_string(),
                "--cluster",
                &cluster,
                "--listen",
                &listen,
                "--log-level",
                &a.log_level,
            ])
            .arg("--data-dir")
            .arg(dir.join(format!("node-{i}")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start node {i}: {e}"))?;
        let mut child = child;
        relay(i, child.stdout.take());
        relay(i, child.stderr.take());
        children.0.push((i, child));
        println!("node {i}: client {listen}  (redis-cli -p {})", port(i, 0));
    }
    println!("cluster of {} nodes running; Ctrl-C stops it", a.nodes);
    crate::runtime().block_on(watch(&mut children))
}

/// Waits for a stop signal (Ok) or a child's own exit (Err).
async fn watch(children: &mut Children) -> Result<(), String> {
    let signal = crate::server_cmd::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for (i, c) in &mut children.0 {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(format!("node {i} exited ({status}); stopping the cluster"));
            }
        }
    }
}

/// Copies `from` to our stderr line by line, each line prefixed with the node.
fn relay(node: u64, from: Option<impl Read + Send + 'static>) {
    let Some(from) = from else { return };
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let _ = writeln!(std::io::stderr().lock(), "[node {node}] {line}");
        }
    });
}

fn default_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("raftkv-{}-{nanos:x}", std::process::id()))
}
