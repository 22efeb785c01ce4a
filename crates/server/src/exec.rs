//! Executes one parsed RESP command against the node and builds its reply.
//! One function per command family; errors map to Redis-style replies.
//!
//! In a sharded process, before a keyed command runs: a multi-key command
//! whose keys are in different slots is `-CROSSSLOT`; and on a connection
//! that asked for the cluster layout (`CLUSTER SLOTS | SHARDS | NODES`), a
//! key this process does not host is `-MOVED` (or `-TRYAGAIN`: see
//! `shard::router::Router::redirect`). Every other connection is served
//! whatever the key: the node forwards it, so plain clients keep working.

use bytes::Bytes;

use crate::cluster_view::{self, Layout, CLUSTER_DISABLED};
use crate::resp::{ClusterQuery, Command, Frame, Protocol};
use crate::service::Service;
use crate::shard::{self, router::Router};

/// Per-connection state the commands see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnState {
    pub proto: Protocol,
    /// The client asked for the cluster layout: it follows `-MOVED`.
    pub cluster_aware: bool,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            proto: Protocol::Resp2,
            cluster_aware: false,
        }
    }
}

/// Runs `cmd`; the reply frame to send.
pub async fn execute(node: &Service, conn: &mut ConnState, cmd: Command) -> Frame {
    if let Service::Sharded(router) = node {
        if let Some(err) = redirect(router, conn, &cmd) {
            return Frame::Error(err);
        }
    }
    match cmd {
        Command::Ping(None) => Frame::Simple("PONG".into()),
        Command::Ping(Some(msg)) => Frame::Bulk(msg),
        Command::Data(op) => data(node, op).await,
        Command::Cluster(q) => match node {
            Service::Single(r) => cluster_single(r.peers.len() + 1, q),
            Service::Sharded(r) => cluster_sharded(r, conn, q),
        },
        Command::ShardCtl(c) => match node {
            Service::Single(_) => Frame::Error(
                "ERR SHARDCTL needs a sharded deployment; this node runs a single group".into(),
            ),
            Service::Sharded(r) => shard::admin::execute(r, c).await,
        },
        Command::Raft(crate::admin::AdminOp::Snapshot) => match node {
            Service::Single(r) => backup(&r.driver).await,
            Service::Sharded(_) => Frame::Error("ERR RAFT SNAPSHOT backs up a single group".into()),
        },
        Command::Raft(op) => match node {
            Service::Single(r) => admin_reply(r.driver.admin(op).await),
            Service::Sharded(_) => Frame::Error(
                "ERR RAFT administers a single group; a sharded deployment moves replicas with SHARDCTL".into(),
            ),
        },
        Command::Quit | Command::Acknowledge => Frame::Simple("OK".into()),
        Command::Hello { .. } | Command::Auth { .. } | Command::Server(_) => {
            unreachable!("HELLO, AUTH and server commands are answered by the connection")
        }
    }
}

/// `RAFT SNAPSHOT` (see `crate::admin`): a ReadIndex read on this node, which
/// must lead, then its state machine's snapshot.
async fn backup(driver: &crate::driver::DriverHandle) -> Frame {
    use crate::driver::Answer;
    match driver
        .read(Bytes::from_static(b"raftkv:backup-read-point"))
        .await
    {
        Answer::Value(_) => {}
        Answer::NotLeader { hint: Some(l) } => {
            return Frame::Error(format!("NOTLEADER leader is node {l}"))
        }
        Answer::NotLeader { hint: None } => {
            return Frame::Error("NOTLEADER no leader known".into())
        }
        other => return Frame::Error(format!("TRYAGAIN read point not confirmed ({other:?})")),
    }
    match driver.snapshot().await {
        Some((index, data)) => Frame::Array(vec![Frame::Integer(index as i64), Frame::Bulk(data)]),
        None => Frame::Error("TRYAGAIN the node is busy or stopping".into()),
    }
}

/// `+OK`, the lines of a listing, or the error line.
fn admin_reply(r: crate::admin::AdminReply) -> Frame {
    match r {
        Ok(lines) if lines.is_empty() => Frame::Simple("OK".into()),
        Ok(lines) => Frame::Array(
            lines
                .into_iter()
                .map(|l| Frame::Bulk(Bytes::from(l)))
                .collect(),
        ),
        Err(e) => Frame::Error(e),
    }
}

/// The keys of a keyed command.
fn keys_of(cmd: &Command) -> Vec<Bytes> {
    match cmd {
        Command::Data(op) => op.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `-CROSSSLOT`, `-MOVED` or `-TRYAGAIN` instead of running `cmd` here.
fn redirect(router: &Router, conn: &ConnState, cmd: &Command) -> Option<String> {
    let keys = keys_of(cmd);
    if let Err(e) = cluster_view::same_slot(&keys) {
        return Some(e.to_string());
    }
    match keys.first() {
        Some(key) if conn.cluster_aware => router.redirect(key),
        _ => None,
    }
}

/// A data command. `GET` is a ReadIndex read (no log entry); every other
/// op, writes and the other reads alike, is one log entry applied with
/// exactly-once (a retried `INCR` is answered from the session's cache),
/// and a multi-key op is atomic.
async fn data(node: &Service, op: kv::Op) -> Frame {
    let result = match op {
        kv::Op::Get { key } => node.read(key).await.map(kv::Reply::Value),
        op => node.write(op).await,
    };
    match result {
        Ok(r) => render(r),
        Err(e) => Frame::Error(e.to_string()),
    }
}

/// A data command's reply as RESP (Redis's reply type for each).
pub fn render(reply: kv::Reply) -> Frame {
    let bulk_or_null = |v: Option<Bytes>| v.map_or(Frame::Null, Frame::Bulk);
    match reply {
        kv::Reply::Value(v) => bulk_or_null(v),
        kv::Reply::Done => Frame::Simple("OK".into()),
        kv::Reply::Length(n) => Frame::Integer(n as i64),
        kv::Reply::Deleted(existed) => Frame::Integer(i64::from(existed)),
        kv::Reply::Int(n) => Frame::Integer(n),
        kv::Reply::Values(vs) => Frame::Array(vs.into_iter().map(bulk_or_null).collect()),
        kv::Reply::Error(e) => Frame::Error(e.to_string()),
        kv::Reply::Status(s) => Frame::Simple(s),
        kv::Reply::Array(items) => Frame::Array(items.into_iter().map(Frame::Bulk).collect()),
        kv::Reply::Scan { cursor, keys } => Frame::Array(vec![
            Frame::Bulk(Bytes::from(cursor.to_string())),
            Frame::Array(keys.into_iter().map(Frame::Bulk).collect()),
        ]),
        kv::Reply::Registered { .. } => Frame::error("ERR unexpected session reply".to_string()),
    }
}

/// `CLUSTER` on a single-group node: one group owns every slot; the
/// layout subcommands are Redis's "cluster support disabled".
fn cluster_single(nodes: usize, q: ClusterQuery) -> Frame {
    match q {
        ClusterQuery::KeySlot(key) => Frame::Integer(shardmeta::key_slot(&key).into()),
        ClusterQuery::Info => Frame::Bulk(Bytes::from(cluster_view::info_text(
            u32::from(shardmeta::SLOTS),
            nodes,
            1,
            0,
        ))),
        ClusterQuery::Slots | ClusterQuery::Shards | ClusterQuery::Nodes | ClusterQuery::MyId => {
            Frame::Error(CLUSTER_DISABLED.into())
        }
    }
}

/// `CLUSTER` on a sharded process, from its routing configuration. Asking
/// for the layout marks the connection cluster-aware (it will get `-MOVED`).
fn cluster_sharded(router: &Router, conn: &mut ConnState, q: ClusterQuery) -> Frame {
    let (config, _) = router.driver.routing();
    let leaders = router.leaders(&config);
    let layout = Layout {
        config: &config,
        keyspace: router.keyspace,
        me: router.id,
        leaders: &leaders,
    };
    match q {
        ClusterQuery::KeySlot(key) => Frame::Integer(shardmeta::key_slot(&key).into()),
        ClusterQuery::Info => Frame::Bulk(Bytes::from(layout.info())),
        ClusterQuery::MyId => Frame::Bulk(Bytes::from(cluster_view::node_name(router.id))),
        ClusterQuery::Slots => {
            conn.cluster_aware = true;
            layout.slots()
        }
        ClusterQuery::Shards => {
            conn.cluster_aware = true;
            layout.shards()
        }
        ClusterQuery::Nodes => {
            conn.cluster_aware = true;
            Frame::Bulk(Bytes::from(layout.nodes()))
        }
    }
}
