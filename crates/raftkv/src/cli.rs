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
    /// Run one node of a replica group.
    Server(ServerArgs),
    /// Start a local cluster of N `raftkv server` processes on 127.0.0.1; Ctrl-C stops them.
    Cluster(ClusterArgs),
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
    /// Per node: id, role, term, leader, commit, applied, last index, snapshot index.
    Status(Endpoints),
    /// Load generator: N clients for S seconds; prints throughput and latency percentiles.
    Bench(BenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Endpoints {
    /// Client (RESP) addresses to try, in order.
    #[arg(long, default_value = "127.0.0.1:6379", value_delimiter = ',')]
    pub endpoints: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// This node's id: one of the ids in --cluster.
    #[arg(long)]
    pub id: u64,
    /// Every member with its PEER address, this node included: ID=HOST:PORT[,ID=HOST:PORT...].
    #[arg(long)]
    pub cluster: String,
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
    /// Snapshot and compact the log once it reaches this many bytes (0 = never).
    #[arg(long, default_value_t = 64 << 20)]
    pub snapshot_threshold_bytes: u64,
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
    /// Without it, no AUTH is needed. Applies to client connections only: the peer port is not authenticated.
    #[arg(long)]
    pub requirepass_file: Option<PathBuf>,
    /// Log filter (tracing's EnvFilter syntax, e.g. `info`, `server=debug`); RUST_LOG overrides.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Client port of node 1; node i listens on P+i-1, its peer port is P+10000+i-1.
    #[arg(long, default_value_t = 6379)]
    pub base_port: u16,
    /// Data directory; node i uses DIR/node-i. Default: a new directory under the system temp dir.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
}
