//! `raftkv server`: one node until SIGTERM or Ctrl-C, then a clean stop.

use crate::cli::ServerArgs;
use server::NodeConfig;

pub fn run(a: ServerArgs) -> Result<(), String> {
    init_logging(&a.log_level);
    raise_fd_limit();
    let sharded = a.peers.is_some();
    let metrics = a.metrics_listen.clone();
    let list = a
        .peers
        .as_deref()
        .or(a.cluster.as_deref())
        .unwrap_or_default();
    let members = server::parse_cluster(list).map_err(|e| {
        if sharded {
            e.replace("--cluster", "--peers")
        } else {
            e
        }
    })?;
    let mut cfg = NodeConfig::new(
        a.id,
        members,
        server::config::listen_addr(&a.listen),
        a.data_dir,
    );
    cfg.join = a.join;
    cfg.tick_ms = a.tick_ms;
    cfg.election_timeout_ms = a.election_timeout_ms;
    cfg.heartbeat_ms = a.heartbeat_ms;
    cfg.snapshot_threshold_bytes = a.snapshot_threshold_bytes;
    cfg.storage.cache_max_bytes = a.log_cache_bytes;
    cfg.reserve.min_free_bytes = a.min_free_bytes;
    cfg.request_timeout_ms = a.request_timeout_ms;
    cfg.max_connections = a.max_connections;
    cfg.client.proto_max_bulk_len = a.proto_max_bulk_len;
    cfg.client.query_buffer_limit_bytes = a.client_query_buffer_limit;
    cfg.client.output_buffer_limit_bytes = a.client_output_buffer_limit;
    cfg.client.idle_timeout = (a.timeout > 0).then(|| std::time::Duration::from_secs(a.timeout));
    if let Some(file) = &a.requirepass_file {
        cfg.client.requirepass = Some(server::auth::Password::load(file)?);
    }
    cfg.peer_auth.cluster = a.cluster_id.clone();
    if let Some(file) = &a.peer_secret_file {
        cfg.peer_auth.secret = Some(server::peer::PeerSecret::load(file)?);
    }
    if let Some(tls) = tls_files(&a.tls).load(a.id, &a.cluster_id)? {
        cfg.client.tls = tls.client;
        cfg.peer_auth.tls = tls.peers;
    }
    if sharded {
        let controllers = server::shard::parse_ids(
            "--controllers",
            a.controllers.as_deref().unwrap_or_default(),
        )?;
        let groups = server::shard::parse_groups(&a.groups)?;
        let mut cfg = server::shard::ShardedConfig::new(cfg, controllers, groups);
        cfg.shards = a.shards;
        for &g in &a.join_groups {
            if !cfg.joins.insert(g) {
                return Err(format!("--join-group {g} is given twice"));
            }
        }
        cfg.adopt_group_dirs().map_err(|e| {
            format!(
                "cannot read --data-dir {}: {e}",
                cfg.base.data_dir.display()
            )
        })?;
        cfg.validate()?;
        return crate::runtime().block_on(async move {
            let mut node = server::shard::start_sharded(cfg)
                .await
                .map_err(|e| e.to_string())?;
            serve_metrics(&mut node, metrics.as_deref()).await?;
            node.run_until(shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        });
    }
    if !a.groups.is_empty() || !a.join_groups.is_empty() {
        return Err(
            "--group and --join-group need --peers and --controllers (sharded mode)".into(),
        );
    }
    cfg.validate()?;
    crate::runtime().block_on(async move {
        let mut node = server::start(cfg).await.map_err(|e| e.to_string())?;
        serve_metrics(&mut node, metrics.as_deref()).await?;
        node.run_until(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

fn tls_files(a: &crate::cli::ServerTlsArgs) -> server::tls::TlsFiles {
    use crate::cli::TlsAuthClients as A;
    use server::tls::AuthClients;
    server::tls::TlsFiles {
        cert: a.tls_cert_file.clone(),
        key: a.tls_key_file.clone(),
        ca: a.tls_ca_cert_file.clone(),
        auth_clients: match a.tls_auth_clients {
            A::No => AuthClients::No,
            A::Optional => AuthClients::Optional,
            A::Yes => AuthClients::Yes,
        },
        peers: a.tls_peers,
    }
}

/// With `--metrics-listen`, binds it and serves `/metrics` there.
async fn serve_metrics(node: &mut server::RunningNode, addr: Option<&str>) -> Result<(), String> {
    let Some(addr) = addr else { return Ok(()) };
    let addr = server::config::listen_addr(addr);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (metrics port, --metrics-listen): {e}"))?;
    node.serve_metrics(listener);
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Thousands of client connections need more than the usual 1024 descriptors.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
