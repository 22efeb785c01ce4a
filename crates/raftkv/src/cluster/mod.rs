//! `raftkv cluster`: a local cluster of child `raftkv server` processes on
//! 127.0.0.1 that keeps running when one of them dies.
//!
//! Order: the layout is decided and every client and peer port is checked
//! free (`plan`), the data directory is created or checked against the
//! layout that made it, the peer secret and cluster id (and with `--tls` the
//! certificates) are made or read there (`credentials`), the children start (`supervisor`); sharded
//! (`--groups G`), the G groups are then joined in one `SHARDCTL JOIN` (a
//! restart over an existing data dir finds them joined already); single
//! group, we wait for a leader. Then we print the lines to copy (`redis-cli`,
//! `raftkv status`) for the ports in use and supervise: a child that exits is
//! told on stderr and restarted with the same flags and data dir, until
//! Ctrl-C or SIGTERM stops them all.
//!
//! A child exiting *during* startup stops the cluster (a configuration
//! problem, e.g. a corrupt data dir), naming it.
//!
//! stdout carries only the startup lines. If it is closed (`raftkv cluster |
//! head -2`), we stop the children and exit quietly as a Unix tool killed by
//! SIGPIPE would, instead of panicking in `println!`.

mod credentials;
mod plan;
mod supervisor;

use std::io::Write;
use std::time::{Duration, Instant};

use server::resp::Frame;

use crate::cli::ClusterArgs;
use plan::Plan;
use supervisor::{note, Supervisor};

/// Why the cluster command ended early.
enum Failure {
    /// stdout is closed: exit quietly.
    StdoutClosed,
    Msg(String),
}

impl From<String> for Failure {
    fn from(m: String) -> Failure {
        Failure::Msg(m)
    }
}

pub fn run(a: ClusterArgs) -> Result<(), String> {
    match run_cluster(a) {
        Ok(()) => Ok(()),
        Err(Failure::Msg(m)) => Err(m),
        Err(Failure::StdoutClosed) => {
            // The children are stopped (the supervisor dropped). End as a
            // tool whose reader went away does: by SIGPIPE, silently.
            // SAFETY: restoring the default disposition, then raising it.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            std::process::exit(141)
        }
    }
}

/// One line to stdout; a closed stdout ends the command.
fn say(line: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|_| Failure::StdoutClosed)
}

fn run_cluster(a: ClusterArgs) -> Result<(), Failure> {
    let mut plan = Plan::new(&a)?;
    plan.check_ports()?;
    let resumed = plan.prepare_dir()?;
    let creds = credentials::Credentials::ensure(&plan.dir)?;
    for p in &mut plan.procs {
        p.args.extend(creds.flags());
    }
    let tls = match a.tls {
        false => None,
        true => {
            let ids: Vec<u64> = plan.procs.iter().map(|p| p.id).collect();
            let files = credentials::ensure_tls(&plan.dir, &ids, &creds.cluster_id)?;
            for p in &mut plan.procs {
                p.args.extend(credentials::tls_flags(&files, p.id));
            }
            let config = server::tls::client_config(&files.ca(), None)?;
            crate::connect::init(Some(server::client::ClientTls { config, sni: None }));
            Some(files)
        }
    };
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the raftkv executable: {e}"))?;
    let restart = (!a.no_restart).then_some(a.restart_delay);
    let mut sup = Supervisor::new(exe, restart);
    let dir = plan::short(&plan.dir);
    say(&if resumed {
        format!(
            "data directory: {} (resuming the cluster stored there; remove it to start empty)",
            dir.display()
        )
    } else {
        format!(
            "data directory: {} (new; kept on exit: run the same command again to resume)",
            dir.display()
        )
    })?;
    say(&format!(
        "peer links: cluster id {}, secret in {}",
        creds.cluster_id,
        plan::short(&creds.secret_file).display()
    ))?;
    if let Some(files) = &tls {
        say(&format!(
            "TLS: client ports and peer links (mutual); CA and certificates in {}",
            plan::short(&files.dir).display()
        ))?;
    }
    for p in &plan.procs {
        sup.start(p.id, plan.label(p.id), p.args.clone())?;
        let role = match p.group {
            Some(1) => " (group 1 + controller)".to_string(),
            Some(g) => format!(" (group {g})"),
            None => String::new(),
        };
        say(&format!(
            "{}{role}: client 127.0.0.1:{}  peer 127.0.0.1:{}  metrics http://127.0.0.1:{}/metrics",
            plan.label(p.id),
            p.client_port,
            p.peer_port,
            p.metrics_port
        ))?;
    }
    crate::runtime().block_on(async {
        let ready = match plan.groups {
            Some(g) => join_all(&plan, g, &mut sup).await?,
            None => wait_leader(&plan, &mut sup).await?,
        };
        say(&ready)?;
        print_copy_lines(&plan, tls.as_ref())?;
        supervise(&mut sup, plan.procs.len()).await
    })
}

/// The commands to copy for the ports in use.
fn print_copy_lines(
    plan: &Plan,
    tls: Option<&server::tls_certs::ClusterFiles>,
) -> Result<(), Failure> {
    let p1 = plan.procs[0].client_port;
    let last = plan.procs[plan.procs.len() - 1].client_port;
    let me = program();
    let tls_flags = tls.map_or(String::new(), |f| {
        format!(" --tls --cacert {}", plan::short(&f.ca()).display())
    });
    let eps = format!("{}{tls_flags}", plan.endpoints());
    let cluster = if plan.groups.is_some() { " -c" } else { "" };
    let redis = format!("redis-cli{cluster}{tls_flags}");
    say(&format!(
        "Ctrl-C stops it; a node that dies is restarted. Try (any port {p1}-{last}):"
    ))?;
    say(&format!("  {redis} -p {p1} SET greeting hello"))?;
    say(&format!("  {redis} -p {last} GET greeting"))?;
    say(&format!("  {me} status --endpoints {eps}"))?;
    say(&format!("  {me} status --watch --endpoints {eps}"))
}

/// How to name this program in a line to copy: as it was invoked, relative
/// to the current directory when it is under it.
fn program() -> String {
    let argv0 = std::env::args().next().unwrap_or_else(|| "raftkv".into());
    if !argv0.contains('/') {
        return argv0;
    }
    plan::short(std::path::Path::new(&argv0))
        .display()
        .to_string()
}

/// Single group: waits (at most 30 s) until a node says it leads; returns the
/// "running" line.
async fn wait_leader(plan: &Plan, sup: &mut Supervisor) -> Result<String, Failure> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let n = plan.procs.len();
    while Instant::now() < deadline {
        sup.check_none_exited()?;
        for p in &plan.procs {
            let ep = format!("127.0.0.1:{}", p.client_port);
            if let Some(info) = info_raft(&ep).await {
                if info.get("role").map(String::as_str) == Some("leader") {
                    return Ok(format!("cluster of {n} nodes running; node {} leads", p.id));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(format!(
        "cluster of {n} nodes running, no leader elected yet (30 s): see the [node N] lines"
    ))
}

/// `INFO raft` of one node, bounded by a second.
async fn info_raft(ep: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let fut = async {
        let mut c = crate::connect::connect(ep).await.ok()?;
        match c.call(&["INFO", "raft"]).await.ok()? {
            Frame::Bulk(b) => Some(server::info::parse(&String::from_utf8_lossy(&b))),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(1), fut)
        .await
        .ok()
        .flatten()
}

/// Joins every group through process 1, retrying until the controller has
/// a leader (at most a minute); "already joined" (a restart) is success.
/// Returns the "running" line.
async fn join_all(plan: &Plan, groups: u64, sup: &mut Supervisor) -> Result<String, Failure> {
    let mut args = vec!["SHARDCTL".to_string(), "JOIN".into()];
    for g in 1..=groups {
        let members: Vec<String> = plan
            .procs
            .iter()
            .filter(|p| p.group == Some(g))
            .map(|p| format!("{}@127.0.0.1:{}", p.id, p.client_port))
            .collect();
        args.push(format!("{g}={}", members.join(",")));
    }
    let ep = format!("127.0.0.1:{}", plan.procs[0].client_port);
    let running = format!(
        "sharded cluster of {groups} groups x {} replicas running",
        plan.nodes
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        sup.check_none_exited()?;
        match crate::connect::connect(&ep).await {
            Ok(mut c) => match c.call(&args).await {
                Ok(Frame::Bulk(b)) => {
                    say(&format!(
                        "joined groups 1..={groups}: {}",
                        String::from_utf8_lossy(&b)
                    ))?;
                    return Ok(running);
                }
                Ok(Frame::Error(e)) if e.contains("already joined") => return Ok(running),
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("could not join the groups within 60 s: {last}").into())
}

/// Restarts children that exit, until a stop signal.
async fn supervise(sup: &mut Supervisor, procs: usize) -> Result<(), Failure> {
    let signal = crate::server_cmd::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            biased;
            _ = &mut signal => {
                note(&format!("stopping {procs} processes"));
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => sup.tick(),
        }
    }
}
