//! A node's settings and the parsing of `--cluster` lists.
//!
//! Invariants (checked by [`NodeConfig::validate`]): the id is non-zero and
//! listed in `members`; ids are distinct; the tick divides into at least two
//! heartbeats per election timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use raft::NodeId;

/// kv's response window for every node's sessions. Must be identical on
/// every replica (kv decides staleness with it), hence a constant here.
pub const KV_RESPONSE_WINDOW: u64 = 64;

/// Everything one `raftkv server` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Peer address of every member, this node included.
    pub members: BTreeMap<NodeId, String>,
    /// The RESP client address.
    pub listen: String,
    pub data_dir: PathBuf,
    pub tick_ms: u64,
    /// Base election timeout; Raft randomizes in [1x, 2x).
    pub election_timeout_ms: u64,
    pub heartbeat_ms: u64,
    /// Snapshot once the log reaches this many bytes; 0 = never.
    pub snapshot_threshold_bytes: u64,
    /// A client command gets `-CLUSTERDOWN`/`-TIMEOUT` after this long.
    pub request_timeout_ms: u64,
    pub max_connections: usize,
    /// The store's options (segment size, caches; tests swap in a
    /// fault-injecting file system).
    pub storage: storage::DiskOptions,
}

impl NodeConfig {
    /// Defaults for everything but identity and addresses.
    pub fn new(
        id: NodeId,
        members: BTreeMap<NodeId, String>,
        listen: String,
        data_dir: PathBuf,
    ) -> Self {
        NodeConfig {
            id,
            members,
            listen,
            data_dir,
            tick_ms: 10,
            election_timeout_ms: 300,
            heartbeat_ms: 50,
            snapshot_threshold_bytes: 64 << 20,
            request_timeout_ms: 3000,
            max_connections: 10_000,
            storage: storage::DiskOptions::default(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("--id must be a positive integer".into());
        }
        if !self.members.contains_key(&self.id) {
            let ids: Vec<String> = self.members.keys().map(|k| k.to_string()).collect();
            return Err(format!(
                "--cluster does not contain --id {} (it lists ids {})",
                self.id,
                ids.join(",")
            ));
        }
        if self.tick_ms == 0
            || self.heartbeat_ms < self.tick_ms
            || self.election_timeout_ms < 2 * self.heartbeat_ms
        {
            return Err("need 0 < --tick-ms <= --heartbeat-ms and --election-timeout-ms >= 2 x --heartbeat-ms".into());
        }
        if self.max_connections == 0 || self.request_timeout_ms == 0 {
            return Err("--max-connections and --request-timeout-ms must be positive".into());
        }
        Ok(())
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The kv state machine's configuration (the same on every node).
    pub fn kv_config(&self) -> kv::Config {
        kv::Config {
            response_window: KV_RESPONSE_WINDOW,
            ..kv::Config::default()
        }
    }

    /// The replica's configuration derived from these settings.
    pub fn replica_config(&self) -> replica::Config {
        let mut raft = raft::Config::new(self.id, self.members.keys().copied().collect());
        raft.election_ticks = (self.election_timeout_ms / self.tick_ms).max(2) as u32;
        raft.heartbeat_ticks = (self.heartbeat_ms / self.tick_ms).max(1) as u32;
        raft.seed =
            self.id ^ crate::driver::unix_ms().rotate_left(17) ^ u64::from(std::process::id());
        let mut cfg = replica::Config::new(raft);
        cfg.snapshot_threshold_bytes =
            (self.snapshot_threshold_bytes > 0).then_some(self.snapshot_threshold_bytes);
        cfg
    }
}

/// Parses `ID=HOST:PORT[,ID=HOST:PORT...]`.
pub fn parse_cluster(s: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut members = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--cluster entry '{item}' is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("--cluster entry '{item}': '{id}' is not a node id"))?;
        if id == 0 {
            return Err(format!("--cluster entry '{item}': node ids start at 1"));
        }
        if !addr.contains(':') {
            return Err(format!(
                "--cluster entry '{item}': '{addr}' is not HOST:PORT"
            ));
        }
        if members.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("--cluster lists node {id} twice"));
        }
    }
    if members.is_empty() {
        return Err("--cluster is empty".into());
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let m = parse_cluster("1=127.0.0.1:7001,2=h:7002").unwrap();
        assert_eq!(m[&2], "h:7002");
        assert!(parse_cluster("1=a:1,1=b:2").is_err());
        assert!(parse_cluster("0=a:1").is_err());
        assert!(parse_cluster("x=a:1").is_err());
        assert!(parse_cluster("1=a").is_err());
        assert!(parse_cluster("").is_err());
    }
}
