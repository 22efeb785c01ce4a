//! What one RESP port keeps beside the node it serves: its settings (what
//! `CONFIG GET` and INFO report), its open connections ([`Clients`]), its
//! counters ([`Stats`]) and when it started. The listener creates one per
//! node; every connection on the port shares it.
//!
//! Invariant: nothing here is replicated state; it describes this process
//! only (as Redis's INFO describes one server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::clients::Clients;
use crate::config::ClientPortConfig;
use crate::stats::Stats;

/// The settings of a port, fixed at startup.
#[derive(Clone, Debug)]
pub struct PortSettings {
    /// The bound client address.
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub client: ClientPortConfig,
    pub data_dir: PathBuf,
    /// A process of a sharded deployment (Redis's `cluster_enabled`).
    pub sharded: bool,
}

pub struct PortState {
    pub settings: PortSettings,
    pub clients: Arc<Clients>,
    pub stats: Stats,
    pub started: Instant,
    /// Seconds since the Unix epoch at start.
    pub started_unix: u64,
    /// Redis's `run_id`: 40 hex characters, new for every process start.
    pub run_id: String,
}

impl PortState {
    pub fn new(settings: PortSettings) -> Arc<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Arc::new(PortState {
            run_id: run_id(&settings, now.as_nanos()),
            settings,
            clients: Arc::new(Clients::default()),
            stats: Stats::default(),
            started: Instant::now(),
            started_unix: now.as_secs(),
        })
    }
}

/// A run id that differs between process starts (and ports): the SHA-256
/// of the start time, process id and address, as 40 hex characters. Not a
/// secret (Redis's is not either); only distinct.
fn run_id(settings: &PortSettings, start_nanos: u128) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(start_nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(settings.listen.to_string().as_bytes());
    h.finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}
