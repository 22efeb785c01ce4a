//! raftkv's tokio shell around the `replica`: the RESP client port, the peer
//! transport, the driver task that owns the replica, and forwarding to the
//! leader. The replica's Ready handling runs here unchanged (the simulator
//! hosts the same code); this crate only moves bytes, keeps time and owns
//! sockets.
//!
//! Two modes behind one RESP port ([`service::Service`]): a single Raft
//! group (below), or a process of a sharded deployment ([`shard`]), whose
//! driver task hosts a `host::ShardNode` (its controller and data-group
//! replicas and their migration agents, again the simulator's code) and
//! whose client path routes each key to the group that owns it.
//!
//! ```text
//!  RESP clients ──► listener ─► connection ─► exec / pipeline ─► requests ──┬─► driver task (Replica<DiskStorage, kv::StateMachine>)
//!                                                                          └─► peer::outbound ─► leader's peer::inbound ─► forward::serve
//!  peers ──► peer::inbound ─► driver (Raft messages) ;  driver ─► peer::outbound (Raft messages, batched per peer)
//! ```
//!
//! Files, one job each: `config` (settings, `--cluster` parsing), `identity` (the
//! data directory's node id and cluster id), `admin`
//! (membership changes and leadership transfer: `RAFT MEMBER`, `RAFT TRANSFER`), `node`
//! (start/stop), `driver` (the replica's task: ticks, group commit),
//! `peer::{wire, outbound, inbound}` (the transport), `forward` (requests
//! handed to the leader), `sessions` (the node's kv sessions), `requests`
//! (the client path: retries, CLUSTERDOWN vs TIMEOUT), `resp::{frame,
//! command, table}` (the protocol and the one command table), `listener` + `connection` + `exec`
//! (the RESP port; `connection` holds its per-connection limits), `pipeline`
//! (a connection's pipelined reads and writes, overlapped in order), `servercmd`
//! (commands that need no log: `ECHO`, `TIME`, `SELECT`, `INFO`, `COMMAND`,
//! `CLIENT`, `CONFIG`), `port_state` + `clients` + `stats` + `memory` +
//! `info` (what the port knows about itself and reports), `auth`
//! (`--requirepass-file`), `cluster_view` (Redis Cluster's replies: `CLUSTER ...`,
//! `-MOVED`, `-CROSSSLOT`), `metrics` (`/metrics`), `tls` + `stream` (TLS on both
//! ports: `--tls-*`), `tls_certs` (throwaway certificates: `raftkv cluster --tls`), `service` (single-group or sharded behind the
//! port), `shard` (the sharded mode: its own module docs), `client` (a
//! small RESP client).

pub mod admin;
pub mod auth;
pub mod client;
pub mod clients;
pub mod cluster_view;
pub mod config;
pub mod connection;
pub mod driver;
pub mod exec;
pub mod forward;
pub mod identity;
pub mod info;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod name_map;
pub mod node;
pub mod peer;
pub mod pipeline;
pub mod port_state;
pub mod requests;
pub mod resp;
pub mod servercmd;
pub mod service;
pub mod sessions;
pub mod shard;
pub mod space;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod tls_certs;

pub use config::{parse_cluster, NodeConfig};
pub use node::{start, start_with, NodeError, RunningNode};
