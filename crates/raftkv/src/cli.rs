//! The command line, exactly as DESIGN.md's contract: `server`, `cluster`,
//! `get`/`put`/`append`/`del`, `status`, `bench`. clap parses and documents
//! every flag (`raftkv help <command>`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "raftkv",
    version,
    about = "A linearizable key-value store on Raft that speaks RESP (the Redis protocol)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run one node of a replica group, or one process of a sharded deployment (--peers).
    Server(Box<ServerArgs>),
    /// Start a local cluster of `raftkv server` processes on 127.0.0.1 (sharded with --groups); a node that dies is restarted; Ctrl-C stops them.
    Cluster(ClusterArgs),
    /// Drive the shard controller of a sharded deployment through any process's client port.
    Shard {
        #[command(subcommand)]
        op: ShardOp,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Print KEY's value (`(nil)` when missing).
    Get {
        key: String,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Set KEY to VALUE.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Append VALUE to KEY's value; prints the new length.
    Append {
        key: String,
        value: String,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Delete KEY; prints 1 if it existed, else 0.
    Del {
        key: String,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Per node: id, role, term, leader, commit, applied, last index, snapshot index, log size, version, errors (sharded: per hosted group, with its shards).
    Status(StatusArgs),
    /// List or change a group's members. Any node takes a change and forwards it to the leader; the endpoints are tried in order until one answers. Sharded: name the group with --group.
    Member {
        #[command(subcommand)]
        op: MemberOp,
        /// Sharded mode: the group (a data group's id, or 0 for the controller: list only). In `add`,
        /// ID=HOST:PORT is then the process's CLIENT address (it must be in every process's --peers and
        /// started with --join-group GID); the controller's configuration lists it for routing.
        #[arg(long, global = true)]
        group: Option<u64>,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Back up a live group's state to a file, or bootstrap a new group's data directories from one.
    Snapshot {
        #[command(subcommand)]
        op: SnapshotOp,
    },
    /// Move leadership of the group (sharded: of group --group).
    Leader {
        #[command(subcommand)]
        op: LeaderOp,
        /// Sharded mode: the group whose leadership moves (0: the controller).
        #[arg(long, global = true)]
        group: Option<u64>,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Load generator: N clients for S seconds; prints throughput and latency percentiles.
    Bench(BenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Endpoints {
    /// Client (RESP) addresses to try, in order.
    #[arg(
        long,
        default_value = "127.0.0.1:6379",
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

/// TLS towards the client port, with redis-cli's flag names.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// Talk TLS to the endpoints (servers started with --tls-cert-file); needs --cacert.
    #[arg(long, global = true, requires = "cacert")]
    pub tls: bool,
    /// CA certificate (PEM) to verify the servers' certificates with.
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate to authenticate with (servers with --tls-auth-clients).
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert.
    #[arg(
        long = "key",
        id = "tls_key",
        global = true,
        value_name = "FILE",
        requires = "cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Server name to verify instead of the endpoint's host.
    #[arg(long, global = true, value_name = "HOST")]
    pub sni: Option<String>,
}

impl ClientTlsArgs {
    /// The TLS settings these flags ask for (`None` without --tls).
    pub fn load(&self) -> Result<Option<server::client::ClientTls>, String> {
        if !self.tls {
            if self.cacert.is_some() || self.cert.is_some() || self.sni.is_some() {
                return Err("--cacert, --cert, --key and --sni need --tls".into());
            }
            return Ok(None);
        }
        let ca = self.cacert.as_deref().ok_or("--tls needs --cacert FILE")?;
        let pair = self.cert.as_deref().zip(self.tls_key.as_deref());
        Ok(Some(server::client::ClientTls {
            config: server::tls::client_config(ca, pair)?,
            sni: self.sni.clone(),
        }))
    }
}

impl Cmd {
    /// The endpoints (and their TLS flags) of a client command.
    pub fn endpoints(&self) -> Option<&Endpoints> {
        match self {
            Cmd::Server(_) | Cmd::Cluster(_) => None,
            Cmd::Shard { ep, .. }
            | Cmd::Get { ep, .. }
            | Cmd::Put { ep, .. }
            | Cmd::Append { ep, .. }
            | Cmd::Del { ep, .. }
            | Cmd::Member { ep, .. }
            | Cmd::Leader { ep, .. } => Some(ep),
            Cmd::Status(a) => Some(&a.ep),
            Cmd::Bench(a) => Some(&a.ep),
            Cmd::Snapshot {
                op: SnapshotOp::Save { ep, .. },
            } => Some(ep),
            Cmd::Snapshot {
                op: SnapshotOp::Restore(_),
            } => None,
        }
    }
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub ep: Endpoints,
    /// Seconds to wait for each endpoint (connect and replies together); a node that does not answer
    /// in time shows as `timeout`. The endpoints are asked at once.
    #[arg(long, default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,
    /// Print JSON (an array of rows; with --watch, one array per line) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECS seconds (default 2) until Ctrl-C, like `redis-cli --stat`.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2", value_parser = parse_secs)]
    pub watch: Option<std::time::Duration>,
}

#[derive(Subcommand, Debug)]
pub enum MemberOp {
    /// One line per member: ID ROLE PEER-ADDR, "(leader)" on the leader's.
    List,
    /// Add a member: ID=HOST:PORT with its PEER address (start it first with `raftkv server --join`).
    /// Add it with --learner, then `member promote` once it caught up: adding a voter directly is
    /// refused without --force, since it would count toward the quorum from the moment it is added,
    /// while still down or far behind.
    Add {
        member: String,
        /// Add as a non-voting learner (receives the log, never votes or counts).
        #[arg(long)]
        learner: bool,
        /// Add as a voter at once (without --learner), knowing the group needs it for its quorum.
        #[arg(long)]
        force: bool,
    },
    /// Make a learner a voter. Refused (unless --force) while the leader does not hear from it or it
    /// holds less than 90% of the committed log.
    Promote {
        id: u64,
        /// Promote even a silent or lagging learner.
        #[arg(long)]
        force: bool,
    },
    /// Remove a member for good (its id can never be reused). Removing the leader hands leadership over.
    /// Refused (unless --force) when fewer of the remaining voters than a quorum answer the leader.
    Remove {
        id: u64,
        /// Remove it even though the remaining voters the leader hears from are too few to commit.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotOp {
    /// Write a consistent, checksummed snapshot of the state machine, taken on the leader after a
    /// linearizable read (it holds every write acknowledged before the command started).
    Save {
        file: PathBuf,
        #[command(flatten)]
        ep: Endpoints,
    },
    /// Create ONE new node's data directory from a saved snapshot, as a member of a NEW group whose
    /// voters are --cluster, under a NEW cluster id (printed). Run it once per new node (same FILE and
    /// --cluster, each node's own --id and --data-dir), then start each with `raftkv server`, the same
    /// --cluster and the printed --cluster-id. The old group is not touched.
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub file: PathBuf,
    /// The new node's data directory; must not exist or be empty.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The new node's id (one of --cluster's).
    #[arg(long)]
    pub id: u64,
    /// The new group's members with their PEER addresses: ID=HOST:PORT[,...].
    #[arg(long)]
    pub cluster: String,
    /// The new group's cluster id (see `raftkv server --cluster-id`). Default: `restored-` and 16 hex
    /// digits derived from FILE's contents and --cluster, so every node restored with the same FILE and
    /// --cluster gets the same id, and none of the old group's data directories can join the new group.
    #[arg(long)]
    pub cluster_id: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum LeaderOp {
    /// Hand leadership to --to (default: the most up-to-date other voter); returns once it leads.
    Transfer {
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ShardOp {
    /// Print a configuration (default: the latest): number, shard -> group, group -> members.
    Query { num: Option<u64> },
    /// Add groups: GID=ID@HOST:PORT,ID@HOST:PORT,... (one argument per group; HOST:PORT is each process's CLIENT address).
    Join {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Remove groups (their shards move to the remaining groups).
    Leave {
        #[arg(required = true)]
        gids: Vec<u64>,
    },
    /// Move one shard to a group.
    Move { shard: u32, gid: u64 },
}

/// `server::config::parse_bytes` for a `u64` flag (clap downcasts to the
/// field's exact type: a `usize` parser on a `u64` field panics at startup).
fn parse_bytes_u64(s: &str) -> Result<u64, String> {
    server::config::parse_bytes(s).map(|n| n as u64)
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// This process's id: one of the ids in --cluster (single group) or --peers (sharded).
    #[arg(long)]
    pub id: u64,
    /// Single-group mode: every member with its PEER address, this node included: ID=HOST:PORT[,ID=HOST:PORT...].
    /// On a fresh data directory without --join, these ids are the new group's voters. Once the group's
    /// membership changes (`raftkv member ...`), the data directory's membership wins and members added
    /// later are dialled at the address their change carried.
    #[arg(long, required_unless_present = "peers", conflicts_with = "peers")]
    pub cluster: Option<String>,
    /// Single-group mode: join an EXISTING group instead of bootstrapping one (etcd's
    /// --initial-cluster-state existing). The node starts as nobody's voter and never campaigns; --cluster
    /// lists the group's current members and this node's own new id and peer address. Then, on any member:
    /// `raftkv member add ID=PEER-HOST:PORT --learner`, wait until `raftkv status` shows it caught up,
    /// and `raftkv member promote ID`. To replace a failed machine: `raftkv member remove OLD-ID`, then
    /// join the new one under a NEW id with an empty data directory (a removed id is refused for good).
    #[arg(long, conflicts_with = "peers")]
    pub join: bool,
    /// Sharded mode: EVERY process of the deployment with its PEER address (also those that join later): ID=HOST:PORT[,...].
    #[arg(long, requires = "controllers")]
    pub peers: Option<String>,
    /// Sharded mode: the processes hosting the shard controller group: ID,ID,ID.
    #[arg(long)]
    pub controllers: Option<String>,
    /// Sharded mode, repeated: a data group and its FIRST processes, GID=ID,ID,ID (on a fresh data
    /// directory they are the group's voters). This process hosts every group that lists its id. A group
    /// serves keys once `raftkv shard join` adds it. Later changes (`raftkv member ... --group GID`) are
    /// kept in the data directory, which wins over this list.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Sharded mode, repeated: host a NEW replica of existing data group GID, which starts with no
    /// membership and never campaigns until the group adds it: then, on any process,
    /// `raftkv member add ID=CLIENT-HOST:PORT --group GID --learner` and, once caught up,
    /// `raftkv member promote ID --group GID`. A restart needs neither this nor --group for a group
    /// whose directory (DATA_DIR/group-GID) the data directory holds: it resumes every one.
    #[arg(long = "join-group", value_name = "GID")]
    pub join_groups: Vec<u64>,
    /// Sharded mode: shards in the keyspace (fixed slot ranges of the 16384 hash slots); the same on every process, never changed.
    #[arg(long, default_value_t = server::shard::DEFAULT_SHARDS)]
    pub shards: u32,
    /// Client address (RESP), HOST:PORT; a bare PORT (or :PORT) binds 127.0.0.1 only.
    #[arg(long)]
    pub listen: String,
    /// Directory for everything durable (log, hard state, snapshots). Created if missing.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Raft tick period in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Election timeout in milliseconds (randomized per election in [T, 2T)).
    #[arg(long, default_value_t = 300)]
    pub election_timeout_ms: u64,
    /// Leader heartbeat period in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Snapshot and compact the log once it reaches this many bytes (0 = never). Also bounds the
    /// log kept after a snapshot: on disk, plus 32 bytes per entry in memory.
    #[arg(long, default_value_t = 64 << 20)]
    pub snapshot_threshold_bytes: u64,
    /// Newest log entries kept in memory, in bytes (older ones are read back from the WAL when a
    /// lagging follower needs them). Single-group mode; sharded groups use the default. Sizes as
    /// for --min-free-bytes.
    #[arg(long, default_value = "16mb", value_parser = parse_bytes_u64)]
    pub log_cache_bytes: u64,
    /// Refuse new writes (-MISCONF; reads and Raft go on) while the data directory's file system has less free space than this, so a group
    /// whose members fill alike stops taking writes before any member's disk is full, instead of every member hitting ENOSPC at once.
    /// Measured with statvfs (space available to this user); writes resume by themselves once space is freed. 0 turns it off.
    /// Sizes take Redis's units: 65536, 64kb, 16mb, 1gb.
    #[arg(long, default_value = "64mb", value_parser = parse_bytes_u64)]
    pub min_free_bytes: u64,
    /// A command not answered in this many milliseconds gets -CLUSTERDOWN (never reached a leader) or -TIMEOUT (may have taken effect).
    #[arg(long, default_value_t = 3000)]
    pub request_timeout_ms: u64,
    /// Most concurrent client connections (Redis's maxclients); one more is answered `-ERR max number of clients reached` and closed.
    #[arg(long, alias = "maxclients", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Largest bulk string (value, key or argument) a request may carry (Redis's proto-max-bulk-len), at most kv's 16 MiB value limit.
    /// Larger is refused when its header arrives: `-ERR Protocol error: invalid bulk length`, then the connection closes.
    /// Sizes take Redis's units: 65536, 64kb, 16mb, 1gb.
    #[arg(long, default_value = "16mb", value_parser = server::config::parse_bytes)]
    pub proto_max_bulk_len: usize,
    /// Most memory one request may hold while it arrives (Redis's client-query-buffer-limit); past it:
    /// `-ERR Protocol error: too big request ...`, then the connection closes. At least --proto-max-bulk-len + 64kb.
    #[arg(long, default_value = "64mb", value_parser = server::config::parse_bytes)]
    pub client_query_buffer_limit: usize,
    /// Most reply bytes a client may leave unread (Redis's client-output-buffer-limit, one hard limit);
    /// a client that pipelines requests without reading past it is disconnected.
    #[arg(long, default_value = "64mb", value_parser = server::config::parse_bytes)]
    pub client_output_buffer_limit: usize,
    /// Close a client connection idle for this many seconds (Redis's timeout); 0 = never.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// File holding the password clients must AUTH with (Redis's requirepass; one trailing newline is ignored).
    /// Without it, no AUTH is needed. Applies to client connections only (the peer port: --peer-secret-file).
    #[arg(long)]
    pub requirepass_file: Option<PathBuf>,
    /// File holding the cluster's shared peer secret (at least 16 bytes; e.g. `openssl rand -hex 32 > FILE`, chmod 600),
    /// the same on every node. Every peer connection then starts with an HMAC-SHA256 challenge-response in both
    /// directions: a process that cannot prove the secret is refused before anything it sends is read.
    /// Without it the peer port is unauthenticated (a warning at startup). It does not encrypt peer traffic.
    /// Fixed peer-port limits, with or without it: 64 connections, 16 of them in their handshake and 8 of those
    /// from one source address (more closes the busiest address's oldest), a handshake within the link's
    /// dead-after bound (8 election timeouts within 2-60 s: 2.4 s by default), frames of at most 4 KiB before the
    /// handshake and 64 MiB after it, memory for a frame taken only as its bytes arrive.
    #[arg(long)]
    pub peer_secret_file: Option<PathBuf>,
    /// The deployment's name, the same on every node; a peer naming another cluster is refused (both ids logged),
    /// with or without a secret. 1-64 characters from A-Z a-z 0-9 . _ -. Give each deployment its own: the default
    /// is shared by every deployment that keeps it (a warning at startup); it is a label, only the secret keeps others out.
    #[arg(long, default_value = server::peer::handshake::DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    /// Serve Prometheus metrics (text format) at http://HOST:PORT/metrics; a bare PORT binds 127.0.0.1.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Log filter (tracing's EnvFilter syntax, e.g. `info`, `server=debug`); RUST_LOG overrides.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// TLS, with Redis's setting names (tls-cert-file, tls-key-file, tls-ca-cert-file, tls-auth-clients;
/// --tls-peers is Redis's tls-cluster).
#[derive(Args, Debug, Clone, Default)]
pub struct ServerTlsArgs {
    /// This process's certificate chain (PEM). With --tls-key-file, the client port (--listen) speaks TLS
    /// only (redis-cli --tls, redis-py ssl=True); plaintext clients are refused. Give it to every process
    /// of a deployment: the client addresses a sharded cluster advertises (-MOVED, CLUSTER SLOTS) are then
    /// all TLS ports.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates (--tls-auth-clients) and peers' certificates
    /// (--tls-peers) must be signed by.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate signed by --tls-ca-cert-file: no (the default here;
    /// Redis's is yes), optional (verified if presented) or yes.
    #[arg(long, value_enum, default_value_t = TlsAuthClients::No)]
    pub tls_auth_clients: TlsAuthClients,
    /// Mutual TLS on every peer link (Redis's tls-cluster), with --tls-cert-file/--tls-key-file and the cluster
    /// CA --tls-ca-cert-file, the same flags on every process: a process without a certificate signed by that CA
    /// cannot connect, and a member's certificate must carry the DNS name node-<ID>.<CLUSTER-ID>.raftkv of the
    /// id it claims (--cluster-id names the cluster). Combines with --peer-secret-file (optional with TLS).
    #[arg(long)]
    pub tls_peers: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum TlsAuthClients {
    #[default]
    No,
    Optional,
    Yes,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of nodes (with --groups: replicas per group).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// A sharded cluster: a controller group (on the first data group's processes) and G data groups, joined, shards balanced.
    #[arg(long)]
    pub groups: Option<u64>,
    /// Shards in the keyspace (with --groups).
    #[arg(long, default_value_t = server::shard::DEFAULT_SHARDS)]
    pub shards: u32,
    /// Client port of process 1; process i listens on P+i-1, its peer port is P+10000+i-1,
    /// its metrics port (http://127.0.0.1:PORT/metrics) P+20000+i-1.
    /// Every port is checked free before anything starts.
    #[arg(long, default_value_t = 6379)]
    pub base_port: u16,
    /// Data directory, kept on exit: node i uses DIR/node-i, so the same command run again resumes
    /// the cluster with its data (remove DIR to start empty). DIR records the layout (--nodes,
    /// --groups, --shards, --base-port) and refuses another one. A peer secret (DIR/peer-secret) and a
    /// cluster id (DIR/cluster-id) are generated there on first use and passed to every node
    /// (--peer-secret-file, --cluster-id).
    #[arg(long, default_value = "raftkv-data")]
    pub data_dir: PathBuf,
    /// Seconds to wait before restarting a node that exited (doubled for each exit in a row
    /// within 10 s of its start; a node that exits so 5 times in a row is left down).
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub restart_delay: std::time::Duration,
    /// Leave a node that exits down instead of restarting it.
    #[arg(long)]
    pub no_restart: bool,
    /// TLS everywhere: a throwaway CA and one certificate per process are made in DIR/tls on first use
    /// (kept and reused on resume), every client port speaks TLS only and peer links use mutual TLS
    /// (--tls-cert-file, --tls-key-file, --tls-ca-cert-file, --tls-peers). Clients need the CA:
    /// `redis-cli --tls --cacert DIR/tls/ca.crt`, `raftkv ... --tls --cacert DIR/tls/ca.crt`.
    #[arg(long)]
    pub tls: bool,
    /// Log filter passed to every node.
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    Write,
    Read,
    Mixed,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub ep: Endpoints,
    /// Concurrent clients (one connection each, one request in flight each), spread over the endpoints.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Size of the key space (keys are chosen uniformly).
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// write: SET only; read: GET only (keys preloaded); mixed: 50/50.
    #[arg(long, value_enum, default_value_t = Mix::Write)]
    pub mix: Mix,
    /// Open loop: send OPS requests per second in total (spread evenly over the clients) instead of
    /// each client sending its next request as soon as the previous one answered. Latency is then
    /// measured from when a request was due, so a slow server shows as latency, not as fewer requests.
    #[arg(long, value_name = "OPS")]
    pub rate: Option<f64>,
    /// Also write the results (settings, counts, percentiles, histogram buckets) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Memory mode instead of a timed run: write N distinct keys (`key:0` .. `key:N-1`, values of
    /// --value-size bytes) once, pipelined, then wait until every endpoint holds them and print each
    /// endpoint's memory (RSS, peak RSS, used_memory) and bytes per key. Works against redis-server.
    #[arg(long, value_name = "N")]
    pub load_keys: Option<u64>,
    /// Memory mode: commands in flight per client connection.
    #[arg(long, default_value_t = 64, value_name = "P")]
    pub pipeline: usize,
}

/// Seconds as a duration: a decimal number from 0 to 3600 (`0.5`, `2`).
pub fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=3600.0).contains(&x) => Ok(std::time::Duration::from_secs_f64(x)),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// Every `raftkv server` flag parses into its field: clap downcasts a
    /// value parser's output to the field's exact type and panics at
    /// startup on a mismatch (`--min-free-bytes` once did, on every start).
    #[test]
    fn a_server_command_line_parses() {
        let cli = super::Cli::try_parse_from([
            "raftkv",
            "server",
            "--id",
            "1",
            "--cluster",
            "1=127.0.0.1:7001",
            "--listen",
            "7000",
            "--data-dir",
            "/tmp/x",
            "--min-free-bytes",
            "1mb",
            "--client-query-buffer-limit",
            "2mb",
        ])
        .unwrap();
        let super::Cmd::Server(a) = cli.command else {
            panic!("not a server command")
        };
        assert_eq!(a.min_free_bytes, 1 << 20);
    }
}
