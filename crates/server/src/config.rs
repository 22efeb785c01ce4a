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

/// Unacknowledged Appends the leader keeps in flight to one follower (raft's default is
/// 256). A follower steps whatever arrived while it was fsyncing as one batch, so more
/// than two in flight only splits that batch into more frames, reads and wake-ups; with
/// two, what is proposed meanwhile waits at the leader and leaves as one Append with the
/// next ack. A lost Append (a dropped link) then stalls that follower until a heartbeat
/// reply frees the window (`raft::replication`), about one heartbeat. Quick A/B at 64
/// writers on loopback: ahead in 5 of 6 rounds, follower tokio CPU per write 3.3-3.9 us
/// against 3.8-4.8.
pub const MAX_INFLIGHT_APPENDS: usize = 2;

/// Everything one `raftkv server` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Peer address of every member, this node included.
    pub members: BTreeMap<NodeId, String>,
    /// Joining an existing group (`--join`): this node starts knowing no
    /// membership and never campaigns until the group's log makes it a voter;
    /// `members` then only says where the existing members are. Without it,
    /// a fresh data directory bootstraps a group whose voters are `members`.
    /// Once the data directory holds a membership, that wins either way.
    pub join: bool,
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
    /// Per-connection limits and authentication on the client port.
    pub client: ClientPortConfig,
    /// The store's options (segment size, caches; tests swap in a
    /// fault-injecting file system).
    pub storage: storage::DiskOptions,
    /// The free-space floor below which new writes are refused
    /// (`--min-free-bytes`; `crate::space`).
    pub reserve: crate::space::ReserveConfig,
    /// The cluster id and shared secret of the peer port
    /// (`--cluster-id`, `--peer-secret-file`; `peer::handshake`).
    pub peer_auth: crate::peer::PeerAuth,
}

/// The client port's per-connection limits (Redis's names) and password.
///
/// Memory one connection can hold is about `query_buffer_limit_bytes` (the
/// request being received) plus `output_buffer_limit_bytes` plus one reply
/// (replies not yet taken by the kernel), so the node-wide worst case is
/// `max_connections` times that; lower the limits or the connection cap
/// for a node with little memory.
#[derive(Clone, Debug)]
pub struct ClientPortConfig {
    /// Largest bulk string a request may carry (`proto-max-bulk-len`);
    /// larger is refused when its header arrives, with `-ERR Protocol
    /// error: invalid bulk length`, and the connection closes. At most
    /// kv's value limit, which is also the default.
    pub proto_max_bulk_len: usize,
    /// Most memory one request may hold while it is being received
    /// (`client-query-buffer-limit`); over it: `-ERR Protocol error: too
    /// big request ...` and the connection closes. At least
    /// `proto_max_bulk_len` plus 64 KiB, so the largest value fits.
    pub query_buffer_limit_bytes: usize,
    /// Replies a client has not read yet (`client-output-buffer-limit`,
    /// one hard limit): past it the connection is closed, since a client
    /// that pipelines without reading would otherwise grow it without end.
    pub output_buffer_limit_bytes: usize,
    /// Close a connection that sent nothing (or took none of our replies)
    /// for this long (Redis's `timeout`); `None` = never.
    pub idle_timeout: Option<Duration>,
    /// `--requirepass-file`: clients must `AUTH` first.
    pub requirepass: Option<crate::auth::Password>,
    /// `--tls-cert-file`: the port speaks TLS only (`crate::tls`).
    pub tls: Option<crate::tls::Acceptor>,
}

impl Default for ClientPortConfig {
    fn default() -> Self {
        ClientPortConfig {
            proto_max_bulk_len: kv::MAX_VALUE_BYTES,
            query_buffer_limit_bytes: 64 << 20,
            output_buffer_limit_bytes: 64 << 20,
            idle_timeout: None,
            requirepass: None,
            tls: None,
        }
    }
}

impl ClientPortConfig {
    /// The smallest query buffer limit accepted beyond the bulk limit: room
    /// for the command name, a key and the framing around the largest value.
    pub const QUERY_BUFFER_HEADROOM_BYTES: usize = 64 << 10;

    pub fn validate(&self) -> Result<(), String> {
        if self.proto_max_bulk_len < 1024 || self.proto_max_bulk_len > kv::MAX_VALUE_BYTES {
            return Err(format!(
                "--proto-max-bulk-len must be between 1024 and {} bytes (kv's value limit)",
                kv::MAX_VALUE_BYTES
            ));
        }
        let min_query = self.proto_max_bulk_len + Self::QUERY_BUFFER_HEADROOM_BYTES;
        if self.query_buffer_limit_bytes < min_query {
            return Err(format!(
                "--client-query-buffer-limit must be at least --proto-max-bulk-len + 64 KiB ({min_query} bytes)"
            ));
        }
        if self.output_buffer_limit_bytes < 64 << 10 {
            return Err("--client-output-buffer-limit must be at least 64 KiB".into());
        }
        Ok(())
    }

    /// The frame limits the connection's decoder enforces.
    pub fn frame_limits(&self) -> crate::resp::Limits {
        crate::resp::Limits {
            max_bulk_bytes: self.proto_max_bulk_len,
            ..crate::resp::Limits::default()
        }
    }
}

/// The client address for `--listen`: `PORT` or `:PORT` alone binds
/// 127.0.0.1 only (Redis's default `bind 127.0.0.1`, its protected mode in
/// spirit): reaching the node from other machines takes an explicit host.
pub fn listen_addr(s: &str) -> String {
    let port = s.strip_prefix(':').unwrap_or(s);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{port}")
    } else {
        s.to_string()
    }
}

/// Parses a byte size the way Redis's config does: a number with an
/// optional unit, `k`/`m`/`g` (powers of 1000) or `kb`/`mb`/`gb` (powers of
/// 1024), case-insensitive: `64mb`, `1gb`, `65536`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mul: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(format!("'{s}' is not a size (e.g. 65536, 64mb, 1gb)")),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 65536, 64mb, 1gb)"))
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
            join: false,
            listen,
            data_dir,
            tick_ms: 10,
            election_timeout_ms: 300,
            heartbeat_ms: 50,
            snapshot_threshold_bytes: 64 << 20,
            request_timeout_ms: 3000,
            max_connections: 10_000,
            client: ClientPortConfig::default(),
            storage: storage::DiskOptions::default(),
            reserve: crate::space::ReserveConfig::default(),
            peer_auth: crate::peer::PeerAuth::default(),
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
        self.peer_auth.validate()?;
        self.client.validate()
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
        let voters = if self.join {
            Vec::new()
        } else {
            self.members.keys().copied().collect()
        };
        let mut raft = raft::Config::new(self.id, voters);
        raft.max_inflight_appends = MAX_INFLIGHT_APPENDS;
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

    #[test]
    fn a_bare_port_listens_on_loopback() {
        assert_eq!(listen_addr("6379"), "127.0.0.1:6379");
        assert_eq!(listen_addr(":6379"), "127.0.0.1:6379");
        assert_eq!(listen_addr("0.0.0.0:6379"), "0.0.0.0:6379");
        assert_eq!(listen_addr("[::1]:6379"), "[::1]:6379");
        assert_eq!(listen_addr("host:1"), "host:1");
    }

    #[test]
    fn sizes_parse_like_redis() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64mb"), Ok(64 << 20));
        assert_eq!(parse_bytes("1GB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2k"), Ok(2000));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("mb").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1tb").is_err());
        assert!(parse_bytes("99999999999999999999gb").is_err());
    }

    #[test]
    fn client_limits_are_validated() {
        let mut c = ClientPortConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.query_buffer_limit_bytes = c.proto_max_bulk_len;
        assert!(c.validate().is_err());
        c = ClientPortConfig {
            proto_max_bulk_len: kv::MAX_VALUE_BYTES + 1,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
