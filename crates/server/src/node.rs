//! Starting and stopping one node: bind both ports, open the data dir, boot
//! the replica, start the driver task, the peer links, the peer acceptor
//! and the RESP listener; on stop, close client connections, stop the driver
//! (it finishes its current drive, so everything accepted is persisted or
//! failed), and join it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::config::{NodeConfig, KV_RESPONSE_WINDOW};
use crate::driver::{self, DriverConfig, DriverHandle};
use crate::forward::ForwardTable;
use crate::listener;
use crate::metrics::disk::MeteredFs;
use crate::metrics::{Sources, Telemetry};
use crate::peer::{inbound, LinkTimeouts, Peers};
use crate::port_state::{PortSettings, PortState};
use crate::requests::{Requests, Timeouts};
use crate::service::Service;

/// Why a node could not start or had to stop. Display is a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Storage(#[from] storage::OpenError),
    #[error("cannot boot the replica: {0}")]
    Replica(#[from] replica::ReplicaError),
    #[error("{0}")]
    Host(#[from] host::HostError),
    #[error("node failed: {0}")]
    Fatal(String),
}

/// The driver task a node runs: one replica, or a sharded process's groups.
pub(crate) enum Driver {
    Single(DriverHandle),
    Sharded(crate::shard::driver::DriverHandle),
}

/// A started node.
pub struct RunningNode {
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub(crate) driver: Driver,
    /// Ends when the driver has stopped.
    pub(crate) driver_task: Option<JoinHandle<()>>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    pub(crate) shutdown: broadcast::Sender<()>,
    pub(crate) fatal: oneshot::Receiver<String>,
    /// How long a leader stopping gracefully waits for leadership to move
    /// (two election timeouts); zero: no hand-off (sharded processes).
    pub(crate) handoff: Duration,
    /// What `/metrics` reads besides the driver's status.
    pub(crate) metrics: Sources,
    /// The single-group node's forwarded requests (`None` when sharded).
    pub(crate) forwards: Option<Arc<ForwardTable>>,
}

/// Binds the addresses in `cfg` and starts the node.
pub async fn start(cfg: NodeConfig) -> Result<RunningNode, NodeError> {
    cfg.validate().map_err(NodeError::Config)?;
    let client = bind(&cfg.listen, "client port, --listen").await?;
    let peer = bind(&cfg.members[&cfg.id], "peer port, from --cluster").await?;
    start_with(cfg, client, peer).await
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

/// Starts the node on listeners the caller bound (tests use port 0).
pub async fn start_with(
    mut cfg: NodeConfig,
    client: TcpListener,
    peer: TcpListener,
) -> Result<RunningNode, NodeError> {
    cfg.validate().map_err(NodeError::Config)?;
    // The group's disk writes and fsyncs are measured at the file-system seam.
    let telemetry = Telemetry::new([0]);
    cfg.storage.fs = MeteredFs::wrap(cfg.storage.fs.clone(), telemetry.group(0));
    // The driver deletes covered segments on its removal thread (`driver` module docs).
    cfg.storage.defer_segment_removal = true;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| NodeError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })?;
    let checked = crate::identity::check(&cfg.data_dir, cfg.id, &cfg.peer_auth.cluster)
        .map_err(NodeError::Config)?;
    crate::identity::log(&checked, &cfg.data_dir, cfg.id, &cfg.peer_auth.cluster);
    let (dir, opts) = (cfg.data_dir.clone(), cfg.storage.clone());
    let storage = tokio::task::spawn_blocking(move || storage::DiskStorage::open(&dir, opts))
        .await
        .expect("storage open task")?;
    log_recovery(None, storage.recovery_report());
    let machine = kv::StateMachine::new(cfg.kv_config());
    let replica = replica::Replica::new(single_group_replica_config(&cfg), storage, machine)?;
    if replica.membership().removed.contains(&cfg.id) {
        return Err(NodeError::Config(format!(
            "node {} was removed from its group (its data directory {} says so) and cannot rejoin under that id; start a new node with a new id and an empty data directory (--join), then `raftkv member add`",
            cfg.id,
            cfg.data_dir.display()
        )));
    }

    let forwards = Arc::new(ForwardTable::default());
    let link_timeouts =
        LinkTimeouts::for_election_timeout(Duration::from_millis(cfg.election_timeout_ms));
    let auth = Arc::new(cfg.peer_auth.clone());
    let peers = Peers::start(
        cfg.id,
        &cfg.members,
        forwards.clone(),
        link_timeouts,
        auth.clone(),
    );
    let (fatal_tx, fatal) = oneshot::channel();
    let reserve = crate::space::Reserve::new(&cfg.data_dir, cfg.reserve.clone());
    let (driver, driver_task) = driver::start(
        replica,
        DriverConfig {
            tick: cfg.tick(),
            metrics: telemetry.group(0),
        },
        peers.clone(),
        fatal_tx,
        Some(reopen(&cfg)),
        reserve.clone(),
    );

    let members: Arc<BTreeMap<_, _>> = Arc::new(cfg.members.clone());
    let inbound = inbound::Inbound {
        self_id: cfg.id,
        members,
        driver: Some(driver.clone()),
        shard: None,
        peers: peers.clone(),
        forwards: forwards.clone(),
        timeouts: link_timeouts,
        auth: auth.clone(),
    };
    let timeouts = Timeouts {
        request: Duration::from_millis(cfg.request_timeout_ms),
        forward_attempt: Duration::from_millis((cfg.election_timeout_ms * 2).clamp(200, 2000)),
    };
    let metrics = Sources {
        port: PortState::new(PortSettings {
            listen: client.local_addr().expect("bound"),
            max_connections: cfg.max_connections,
            client: cfg.client.clone(),
            data_dir: cfg.data_dir.clone(),
            sharded: false,
        }),
        peers: peers.clone(),
        telemetry,
        reserve: reserve.clone(),
    };
    let requests = Arc::new(Service::Single(Requests::new(
        cfg.id,
        driver.clone(),
        peers,
        forwards.clone(),
        KV_RESPONSE_WINDOW,
        timeouts,
        reserve,
    )));
    let (shutdown, _) = broadcast::channel(1);
    let (client_addr, peer_addr) = (
        client.local_addr().expect("bound"),
        peer.local_addr().expect("bound"),
    );
    let tasks = vec![
        tokio::spawn(inbound::accept_loop(peer, inbound)),
        tokio::spawn(listener::accept_loop(
            client,
            requests,
            metrics.port.clone(),
            shutdown.clone(),
        )),
    ];
    tracing::info!(id = cfg.id, client = %client_addr, peer = %peer_addr, data_dir = %cfg.data_dir.display(), cluster = %auth.cluster, "node started");
    auth.warn_if_open(&peer_addr);
    auth.warn_if_default_cluster(cfg.members.len());
    Ok(RunningNode {
        client_addr,
        peer_addr,
        driver: Driver::Single(driver),
        driver_task: Some(driver_task),
        tasks,
        shutdown,
        fatal,
        handoff: Duration::from_millis(2 * cfg.election_timeout_ms),
        metrics,
        forwards: Some(forwards),
    })
}

/// How the driver rebuilds the replica from the data directory once a full
/// disk has space again: what a restart does (open, log the repairs, boot).
fn reopen(cfg: &NodeConfig) -> driver::Reopen {
    let cfg = cfg.clone();
    Box::new(move || {
        let storage = storage::DiskStorage::open(&cfg.data_dir, cfg.storage.clone())
            .map_err(|e| e.to_string())?;
        log_recovery(None, storage.recovery_report());
        let machine = kv::StateMachine::new(cfg.kv_config());
        replica::Replica::new(single_group_replica_config(&cfg), storage, machine)
            .map_err(|e| e.to_string())
    })
}

/// The single-group replica's configuration: the driver runs the leader's log syncs
/// on its sync thread (`driver` module docs), so the leader keeps stepping
/// acknowledgements while its own fsync runs. (The sharded host syncs inside `drive`.)
fn single_group_replica_config(cfg: &NodeConfig) -> replica::Config {
    let mut rc = cfg.replica_config();
    rc.leader_sync_by_host = true;
    rc
}

/// Storage does not log; what its recovery repaired on disk is said here,
/// loudly (`group`: which hosted group's directory, in a sharded process).
pub(crate) fn log_recovery(group: Option<u64>, report: &storage::RecoveryReport) {
    if let Some(cut) = &report.truncated {
        tracing::warn!(?group, "storage recovery: {cut}");
    }
    if let Some(path) = &report.removed_unborn_segment {
        tracing::warn!(?group, path = %path.display(), "storage recovery: removed a WAL segment whose header was never completely written (a crash while creating it)");
    }
    for path in &report.removed_temp_files {
        tracing::info!(?group, path = %path.display(), "storage recovery: removed a temporary file left by a crash");
    }
}

impl RunningNode {
    /// Runs until `signal` completes (then stops cleanly) or the node fails.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let failed = tokio::select! {
            _ = signal => None,
            r = &mut self.fatal => r.ok(),
        };
        if failed.is_none() {
            self.hand_off_leadership().await;
        }
        self.stop().await;
        match failed {
            Some(e) => Err(NodeError::Fatal(e)),
            None => Ok(()),
        }
    }

    /// A graceful stop of a leader first hands leadership to the most
    /// up-to-date other voter (dissertation §3.10), so a rolling restart costs
    /// no election timeout; if that does not finish within `handoff`, the node
    /// stops anyway and the group elects a leader the usual way.
    pub async fn hand_off_leadership(&self) {
        let driver = match &self.driver {
            Driver::Single(d) => d,
            Driver::Sharded(d) => return self.hand_off_groups(d).await,
        };
        let st = driver.status();
        if self.handoff.is_zero() || st.raft.role != raft::Role::Leader {
            return;
        }
        let op = crate::admin::AdminOp::Transfer(None);
        match tokio::time::timeout(self.handoff, driver.admin(op)).await {
            Ok(Ok(_)) => tracing::info!("leadership handed over before stopping"),
            Ok(Err(e)) => tracing::warn!("leadership hand-off before stopping failed: {e}"),
            Err(_) => tracing::warn!("leadership hand-off before stopping timed out"),
        }
    }

    /// [`RunningNode::hand_off_leadership`] for a sharded process: every
    /// group it leads (controller included) starts a transfer at once, and
    /// the stop waits until none of them is led here any more, or `handoff`.
    async fn hand_off_groups(&self, driver: &crate::shard::driver::DriverHandle) {
        if self.handoff.is_zero() {
            return;
        }
        let started = driver.hand_off().await;
        if started.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.handoff;
        loop {
            let view = driver.view();
            let still: Vec<_> = started
                .iter()
                .filter(|(g, _)| {
                    view.groups
                        .get(g)
                        .is_some_and(|v| v.status.raft.role == raft::Role::Leader)
                })
                .map(|(g, _)| *g)
                .collect();
            if still.is_empty() {
                tracing::info!(groups = ?started, "leadership handed over before stopping");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(groups = ?still, "leadership hand-off before stopping timed out");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Stops the node: no new requests, the driver finishes its drive and exits.
    pub async fn stop(&mut self) {
        let _ = self.shutdown.send(());
        self.tasks.iter().for_each(JoinHandle::abort);
        match &self.driver {
            Driver::Single(d) => d.shutdown().await,
            Driver::Sharded(d) => d.shutdown().await,
        }
        if let Some(t) = self.driver_task.take() {
            drop(t.await);
        }
        tracing::info!("node stopped");
    }

    /// The replica's status; in a sharded process, that of its
    /// lowest-numbered hosted group (see [`RunningNode::shard_view`]).
    pub fn status(&self) -> replica::Status {
        match &self.driver {
            Driver::Single(d) => d.status(),
            Driver::Sharded(d) => {
                let view = d.view();
                view.groups
                    .values()
                    .next()
                    .expect("a sharded process hosts a group")
                    .status
            }
        }
    }

    /// How many requests this single-group node has forwarded to a leader
    /// so far (the last forwarded request's id); `None` when sharded.
    pub fn forwards_issued(&self) -> Option<u64> {
        self.forwards.as_ref().map(|f| f.issued())
    }

    /// A sharded process's groups and routing configuration.
    pub fn shard_view(&self) -> Option<crate::shard::driver::View> {
        match &self.driver {
            Driver::Single(_) => None,
            Driver::Sharded(d) => Some(d.view()),
        }
    }
}
