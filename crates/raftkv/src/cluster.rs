//! `raftkv cluster`: N child `raftkv server` processes on 127.0.0.1, their
//! client addresses printed, all stopped on Ctrl-C/SIGTERM (SIGTERM to each
//! child, SIGKILL after 5 s). If a child exits on its own (e.g. its port is
//! taken), the others are stopped and the command fails naming it.
//!
//! With `--groups G`: G data groups of N processes each (process ids
//! `(g-1)*N+1 ..= g*N` form group g), the controller group on the first
//! group's processes (so those host two groups each), every process started
//! with the same `--peers`/`--controllers`/`--group` flags; then all G groups
//! are joined in one `SHARDCTL JOIN` (the controller balances the shards;
//! a restart over an existing data dir finds them joined already).
//!
//! Peer links are authenticated: a random peer secret and cluster id are
//! generated into the data directory on first use (`peer-secret`, 0600;
//! `cluster-id`) and passed to every child.
//!
//! Each child's log lines are relayed to our stderr prefixed with `[node N]`,
//! so the interleaved output of the cluster stays readable.
//!
//! Invariant: no child outlives this process's normal exit paths (a `Drop`
//! guard stops them on error returns and panics too).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
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
    if a.base_port == 0 {
        return Err("--base-port must be positive".into());
    }
    let groups = a.groups.unwrap_or(0);
    let procs = if a.groups.is_some() {
        if groups == 0 || groups * a.nodes > 99 {
            return Err("--groups x --nodes must be between 1 and 99 processes".into());
        }
        groups * a.nodes
    } else {
        a.nodes
    };
    let top = u32::from(a.base_port) + 10_000 + procs as u32 - 1;
    if top > 65_535 {
        return Err(format!(
            "--base-port {} leaves no room for {procs} client ports and peer ports (+10000)",
            a.base_port
        ));
    }
    let dir = a.data_dir.clone().unwrap_or_else(default_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let (secret_file, cluster_id) = peer_credentials(&dir)?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the raftkv executable: {e}"))?;
    let port = |i: u64, off: u32| u32::from(a.base_port) + off + i as u32 - 1;
    let cluster: Vec<String> = (1..=a.nodes)
        .map(|i| format!("{i}=127.0.0.1:{}", port(i, 10_000)))
        .collect();
    let cluster = cluster.join(",");
    let layout = a.groups.map(|g| sharded_flags(g, a.nodes, a.shards, &port));
    let mut children = Children(Vec::new());
    println!("data directory: {}", dir.display());
    println!(
        "peer links: cluster id {cluster_id}, secret in {}",
        secret_file.display()
    );
    for i in 1..=procs {
        let listen = format!("127.0.0.1:{}", port(i, 0));
        let mut args: Vec<String> = vec!["server".into(), "--id".into(), i.to_string()];
        match &layout {
            Some(flags) => args.extend(flags.iter().cloned()),
            None => args.extend(["--cluster".to_string(), cluster.clone()]),
        }
        args.extend([
            "--listen".to_string(),
            listen.clone(),
            "--log-level".into(),
            a.log_level.clone(),
            "--cluster-id".into(),
            cluster_id.clone(),
        ]);
        let child = Command::new(&exe)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.join(format!("node-{i}")))
            .arg("--peer-secret-file")
            .arg(&secret_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start node {i}: {e}"))?;
        let mut child = child;
        relay(i, child.stdout.take());
        relay(i, child.stderr.take());
        children.0.push((i, child));
        match a.groups {
            Some(_) => {
                let g = (i - 1) / a.nodes + 1;
                let ctrl = if g == 1 { " + controller" } else { "" };
                println!(
                    "process {i} (group {g}{ctrl}): client {listen}  (redis-cli -c -p {})",
                    port(i, 0)
                );
            }
            None => println!("node {i}: client {listen}  (redis-cli -p {})", port(i, 0)),
        }
    }
    crate::runtime().block_on(async {
        if let Some(g) = a.groups {
            join_all(g, a.nodes, &port, &mut children).await?;
            println!(
                "sharded cluster of {g} groups x {} replicas running; Ctrl-C stops it",
                a.nodes
            );
        } else {
            println!("cluster of {} nodes running; Ctrl-C stops it", a.nodes);
        }
        watch(&mut children).await
    })
}

/// The sharded flags every process gets.
fn sharded_flags(
    groups: u64,
    nodes: u64,
    shards: u32,
    port: &dyn Fn(u64, u32) -> u32,
) -> Vec<String> {
    let procs = groups * nodes;
    let peers: Vec<String> = (1..=procs)
        .map(|i| format!("{i}=127.0.0.1:{}", port(i, 10_000)))
        .collect();
    let ids = |g: u64| {
        (1..=nodes)
            .map(|k| ((g - 1) * nodes + k).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut flags = vec![
        "--peers".to_string(),
        peers.join(","),
        "--controllers".into(),
        ids(1),
        "--shards".into(),
        shards.to_string(),
    ];
    for g in 1..=groups {
        flags.extend(["--group".to_string(), format!("{g}={}", ids(g))]);
    }
    flags
}

/// Joins every group through process 1, retrying until the controller has
/// a leader (at most a minute); "already joined" (a restart) is success.
async fn join_all(
    groups: u64,
    nodes: u64,
    port: &dyn Fn(u64, u32) -> u32,
    children: &mut Children,
) -> Result<(), String> {
    let mut args = vec!["SHARDCTL".to_string(), "JOIN".into()];
    for g in 1..=groups {
        let members: Vec<String> = (1..=nodes)
            .map(|k| (g - 1) * nodes + k)
            .map(|i| format!("{i}@127.0.0.1:{}", port(i, 0)))
            .collect();
        args.push(format!("{g}={}", members.join(",")));
    }
    let ep = format!("127.0.0.1:{}", port(1, 0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        for (i, c) in &mut children.0 {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(format!(
                    "process {i} exited ({status}); stopping the cluster"
                ));
            }
        }
        match server::client::Client::connect(&ep).await {
            Ok(mut c) => match c.call(&args).await {
                Ok(server::resp::Frame::Bulk(b)) => {
                    println!(
                        "joined groups 1..={groups}: {}",
                        String::from_utf8_lossy(&b)
                    );
                    return Ok(());
                }
                Ok(server::resp::Frame::Error(e)) if e.contains("already joined") => return Ok(()),
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("could not join the groups within 60 s: {last}"))
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

/// The cluster's peer secret file and cluster id under `dir`: made on first
/// use (a 32-byte random secret, mode 0600; a random `local-...` id), read
/// back on a restart over the same directory.
fn peer_credentials(dir: &Path) -> Result<(PathBuf, String), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let secret = dir.join("peer-secret");
    if !secret.exists() {
        let hex = server::peer::handshake::random_hex(32)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret)
            .map_err(|e| format!("cannot create {}: {e}", secret.display()))?;
        writeln!(f, "{hex}").map_err(|e| format!("cannot write {}: {e}", secret.display()))?;
    }
    let id_file = dir.join("cluster-id");
    let id = match std::fs::read_to_string(&id_file) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("local-{}", server::peer::handshake::random_hex(4)?);
            std::fs::write(&id_file, format!("{id}\n"))
                .map_err(|e| format!("cannot write {}: {e}", id_file.display()))?;
            id
        }
        Err(e) => return Err(format!("cannot read {}: {e}", id_file.display())),
    };
    server::peer::handshake::validate_cluster_id(&id)
        .map_err(|e| format!("{}: {e}", id_file.display()))?;
    Ok((secret, id))
}

fn default_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("raftkv-{}-{nanos:x}", std::process::id()))
}
