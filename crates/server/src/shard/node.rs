//! Starting a sharded process: bind both ports, open one
//! `storage::DiskStorage` per hosted group (the controller in
//! `DATA_DIR/controller`, data group `g` in `DATA_DIR/group-g`: separate
//! logs, so each group compacts and recovers on its own), boot the
//! `host::ShardNode`, start its driver task, the peer links to every
//! process in `--peers`, the peer acceptor and the RESP listener.
//!
//! Restarted with the same data dir, every hosted replica resumes from its
//! own directory, including groups it joined after its first start (a
//! `group-g` directory is hosted whatever the flags say). The boot epoch in `DATA_DIR/client-epoch` is
//! incremented (and synced) on every start, before any client session is
//! made, so session ids never repeat across restarts (`router::ClientIds`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use host::ShardNode;
use shardmeta::{GroupId, Keyspace, CONTROLLER_GROUP};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};

use super::config::ShardedConfig;
use super::driver::{self, DriverConfig};
use super::forward::{Forwards, Sink};
use super::router::{ClientIds, Router};
use crate::forward::ForwardTable;
use crate::listener;
use crate::metrics::disk::MeteredFs;
use crate::metrics::{Sources, Telemetry};
use crate::node::{Driver, NodeError, RunningNode};
use crate::peer::{inbound, LinkTimeouts, Peers};
use crate::port_state::{PortSettings, PortState};
use crate::requests::Timeouts;
use crate::service::Service;

/// Binds the addresses in `cfg` and starts the process.
pub async fn start_sharded(mut cfg: ShardedConfig) -> Result<RunningNode, NodeError> {
    adopt_group_dirs(&mut cfg)?;
    cfg.validate().map_err(NodeError::Config)?;
    let client = bind(&cfg.base.listen, "client port, --listen").await?;
    let peer = bind(&cfg.base.members[&cfg.base.id], "peer port, from --peers").await?;
    start_sharded_with(cfg, client, peer).await
}

/// [`ShardedConfig::adopt_group_dirs`], its I/O error as a data-dir error.
fn adopt_group_dirs(cfg: &mut ShardedConfig) -> Result<Vec<shardmeta::GroupId>, NodeError> {
    cfg.adopt_group_dirs().map_err(|source| NodeError::DataDir {
        path: cfg.base.data_dir.display().to_string(),
        source,
    })
}

async fn bind(addr: &str, what: &'static str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Starts the process on listeners the caller bound (tests use port 0).
pub async fn start_sharded_with(
    mut cfg: ShardedConfig,
    client: TcpListener,
    peer: TcpListener,
) -> Result<RunningNode, NodeError> {
    let adopted = adopt_group_dirs(&mut cfg)?;
    cfg.validate().map_err(NodeError::Config)?;
    let base = &cfg.base;
    let dir_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| NodeError::DataDir { path, source }
    };
    std::fs::create_dir_all(&base.data_dir).map_err(dir_err(&base.data_dir))?;
    let checked = crate::identity::check(&base.data_dir, base.id, &base.peer_auth.cluster)
        .map_err(NodeError::Config)?;
    crate::identity::log(&checked, &base.data_dir, base.id, &base.peer_auth.cluster);
    let epoch = bump_epoch(&base.data_dir).map_err(dir_err(&base.data_dir))?;
    if !adopted.is_empty() {
        tracing::info!(groups = ?adopted, "resuming data groups found in the data dir (not named by --group or --join-group)");
    }
    let mut hosted: BTreeSet<GroupId> = cfg.hosted_groups().into_iter().collect();
    if cfg.hosts_controller() {
        hosted.insert(CONTROLLER_GROUP);
    }
    let telemetry = Telemetry::new(hosted.iter().copied());
    let node = boot(&cfg, &telemetry).await?;

    let link_timeouts =
        LinkTimeouts::for_election_timeout(Duration::from_millis(base.election_timeout_ms));
    let auth = Arc::new(base.peer_auth.clone());
    let peers = Peers::start(
        base.id,
        &base.members,
        Arc::new(ForwardTable::default()),
        link_timeouts,
        auth.clone(),
    );
    let (fatal_tx, fatal) = oneshot::channel();
    let dcfg = DriverConfig {
        id: base.id,
        tick: base.tick(),
        config_poll: Duration::from_millis(cfg.config_poll_ms),
        controllers: cfg.controllers.clone(),
        shards: cfg.shards,
        telemetry: telemetry.clone(),
    };
    let reopen = reopen(&cfg, telemetry.clone());
    let (driver, driver_task) = driver::start(node, dcfg, peers.clone(), fatal_tx, reopen);

    let forwards = Arc::new(Forwards::default());
    let sink = Sink {
        self_id: base.id,
        driver: driver.clone(),
        peers: peers.clone(),
        forwards: forwards.clone(),
    };
    let inbound = inbound::Inbound {
        self_id: base.id,
        members: Arc::new(base.members.clone()),
        driver: None,
        shard: Some(Arc::new(sink)),
        peers: peers.clone(),
        forwards: Arc::new(ForwardTable::default()),
        timeouts: link_timeouts,
        auth: auth.clone(),
    };
    let timeouts = Timeouts {
        request: Duration::from_millis(base.request_timeout_ms),
        forward_attempt: Duration::from_millis((base.election_timeout_ms * 2).clamp(200, 2000)),
    };
    let reserve = crate::space::Reserve::new(&base.data_dir, base.reserve.clone());
    let metrics = Sources {
        port: PortState::new(PortSettings {
            listen: client.local_addr().expect("bound"),
            max_connections: base.max_connections,
            client: base.client.clone(),
            data_dir: base.data_dir.clone(),
            sharded: true,
        }),
        peers: peers.clone(),
        telemetry,
        reserve: reserve.clone(),
    };
    let mut router = Router::new(
        base.id,
        Keyspace::new(cfg.shards).expect("validated"),
        cfg.controllers.clone(),
        hosted,
        driver.clone(),
        peers,
        forwards,
        timeouts,
        cfg.group_settings(1).response_window,
        ClientIds::new(base.id, epoch),
        reserve,
    );
    router.probe_tls = base.client.tls.as_ref().map(|t| t.probe.clone());
    router.self_peer = base.members[&base.id].clone();
    let (shutdown, _) = broadcast::channel(1);
    let (client_addr, peer_addr) = (
        client.local_addr().expect("bound"),
        peer.local_addr().expect("bound"),
    );
    let tasks = vec![
        tokio::spawn(inbound::accept_loop(peer, inbound)),
        tokio::spawn(listener::accept_loop(
            client,
            Arc::new(Service::Sharded(router)),
            metrics.port.clone(),
            shutdown.clone(),
        )),
    ];
    tracing::info!(id = base.id, client = %client_addr, peer = %peer_addr, data_dir = %base.data_dir.display(),
        controller = cfg.hosts_controller(), groups = ?cfg.hosted_groups(), cluster = %auth.cluster, "sharded process started");
    auth.warn_if_open(&peer_addr);
    auth.warn_if_default_cluster(base.members.len());
    Ok(RunningNode {
        client_addr,
        peer_addr,
        driver: Driver::Sharded(driver),
        driver_task: Some(driver_task),
        tasks,
        shutdown,
        fatal,
        // As a single-group node: a graceful stop hands over every group it
        // leads first, waiting at most two election timeouts.
        handoff: Duration::from_millis(2 * base.election_timeout_ms),
        metrics,
        forwards: None,
    })
}

/// Opens every hosted group's storage and adds its replica.
async fn boot(cfg: &ShardedConfig, telemetry: &Arc<Telemetry>) -> Result<driver::Node, NodeError> {
    let mut node = ShardNode::new(cfg.base.id, cfg.controllers.clone(), cfg.agent_resend_ms);
    let mut groups = cfg.hosted_groups();
    if cfg.hosts_controller() {
        groups.insert(0, CONTROLLER_GROUP);
    }
    for gid in groups {
        let storage = open(cfg, gid, telemetry).await?;
        add_group(&mut node, cfg, gid, storage)?;
    }
    Ok(node)
}

/// Adds hosted group `gid`'s replica over its opened storage (at boot, and
/// when a group parked by a full disk is reopened).
fn add_group(
    node: &mut driver::Node,
    cfg: &ShardedConfig,
    gid: GroupId,
    storage: storage::DiskStorage,
) -> Result<(), host::HostError> {
    if gid == CONTROLLER_GROUP {
        node.add_controller(cfg.replica_config(gid), storage, cfg.controller_settings())
    } else {
        node.add_data_group(cfg.replica_config(gid), storage, cfg.group_settings(gid))
    }
}

/// Opens group `gid`'s store with the process's storage options (`--data-dir`
/// layout in the module docs), its writes and fsyncs measured (`/metrics`),
/// and logs what recovery repaired.
fn open_blocking(
    cfg: &ShardedConfig,
    gid: GroupId,
    telemetry: &Telemetry,
) -> Result<storage::DiskStorage, storage::OpenError> {
    let mut opts = cfg.base.storage.clone();
    opts.fs = MeteredFs::wrap(opts.fs, telemetry.group(gid));
    // The driver deletes covered segments on its removal thread (`driver` module docs).
    opts.defer_segment_removal = true;
    let storage = storage::DiskStorage::open(&cfg.group_dir(gid), opts)?;
    crate::node::log_recovery(Some(gid), storage.recovery_report());
    Ok(storage)
}

async fn open(
    cfg: &ShardedConfig,
    gid: GroupId,
    telemetry: &Arc<Telemetry>,
) -> Result<storage::DiskStorage, NodeError> {
    let (cfg, telemetry) = (cfg.clone(), telemetry.clone());
    let storage = tokio::task::spawn_blocking(move || open_blocking(&cfg, gid, &telemetry))
        .await
        .expect("storage open task")?;
    Ok(storage)
}

/// How the driver rebuilds a group parked by a full disk once there is
/// space: what a restart does for it (open, log the repairs, boot).
fn reopen(cfg: &ShardedConfig, telemetry: Arc<Telemetry>) -> driver::Reopen {
    let cfg = cfg.clone();
    Box::new(move |node, gid| {
        let storage = open_blocking(&cfg, gid, &telemetry).map_err(|e| e.to_string())?;
        add_group(node, &cfg, gid, storage).map_err(|e| e.to_string())
    })
}

/// Reads, increments and durably rewrites `DIR/client-epoch`; returns the new epoch.
fn bump_epoch(dir: &Path) -> std::io::Result<u64> {
    let path = dir.join("client-epoch");
    let old = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse::<u64>().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a number", path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let epoch = old + 1;
    let tmp = dir.join("client-epoch.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{epoch}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(epoch)
}
