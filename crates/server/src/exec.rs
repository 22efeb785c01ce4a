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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnState {
    pub proto: Protocol,
    /// The client asked for the cluster layout: it follows `-MOVED`.
    pub cluster_aware: bool,
    /// The slot of the last `-MOVED` this connection was given, and when:
    /// a client back with a key of that slot soon after was sent here by a
    /// process that disagrees with this one (see `redirect`).
    pub last_moved: Option<(u16, std::time::Instant)>,
    pub tx: Transaction,
}

/// A connection's `MULTI` / `WATCH` state. Nothing of it is replicated
/// until `EXEC`, which sends the queued ops and the watched versions as one
/// `kv::Op::Exec` (one log entry, applied atomically, exactly once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// `Some` between `MULTI` and `EXEC` / `DISCARD`: the queued ops.
    pub queued: Option<Vec<kv::Op>>,
    /// A command was refused while queueing: `EXEC` aborts (`EXECABORT`).
    pub dirty: bool,
    /// `WATCH`ed keys and the versions read then.
    pub watched: Vec<(Bytes, u64)>,
}

impl Transaction {
    pub fn in_multi(&self) -> bool {
        self.queued.is_some()
    }

    /// Ends the transaction (`EXEC`, `DISCARD`): queue and watches dropped.
    fn reset(&mut self) {
        *self = Transaction::default();
    }
}

/// Redis's words for a command a `MULTI` block cannot queue here.
pub const NOT_QUEUEABLE: &str =
    "ERR raftkv queues only data commands (strings, counters, keys, expiry, hashes) inside MULTI";

/// Runs `cmd`; the reply frame to send.
pub async fn execute(node: &Service, conn: &mut ConnState, cmd: Command) -> Frame {
    if let Service::Sharded(router) = node {
        if let Some(err) = redirect(router, conn, &cmd).await {
            return Frame::Error(err);
        }
    }
    if conn.tx.in_multi() {
        return queue(node, conn, cmd).await;
    }
    match cmd {
        Command::Ping(None) => Frame::Simple("PONG".into()),
        Command::Ping(Some(msg)) => Frame::Bulk(msg),
        Command::Data(op) => data(node, op).await,
        Command::Multi => {
            conn.tx.queued = Some(Vec::new());
            Frame::Simple("OK".into())
        }
        Command::Exec => Frame::Error("ERR EXEC without MULTI".into()),
        Command::Discard => Frame::Error("ERR DISCARD without MULTI".into()),
        Command::Watch(keys) => watch(node, conn, keys).await,
        Command::Unwatch => {
            conn.tx.watched.clear();
            Frame::Simple("OK".into())
        }
        Command::Cluster(q) => match node {
            Service::Single(r) => cluster_single(r.peers.len() + 1, q),
            Service::Sharded(r) => cluster_sharded(r, conn, q).await,
        },
        Command::ShardCtl(c) => match node {
            Service::Single(_) => Frame::Error(
                "ERR SHARDCTL needs a sharded deployment; this node runs a single group".into(),
            ),
            Service::Sharded(r) => shard::admin::execute(r, c).await,
        },
        Command::Raft { group, op } => match (node, group) {
            (Service::Single(r), None) => admin_reply(r.admin(op).await),
            (Service::Single(_), Some(_)) => Frame::Error(
                "ERR RAFT GROUP needs a sharded deployment; this node runs a single group (use RAFT MEMBER ...)".into(),
            ),
            (Service::Sharded(r), Some(gid)) => admin_reply(shard::members::execute(r, gid, op).await),
            (Service::Sharded(_), None) => Frame::Error(
                "ERR a sharded process hosts several groups: name one with RAFT GROUP GID ... (raftkv member ... --group GID)".into(),
            ),
        },
        Command::Quit | Command::Acknowledge => Frame::Simple("OK".into()),
        Command::Hello { .. } | Command::Auth { .. } | Command::Server(_) => {
            unreachable!("HELLO, AUTH and server commands are answered by the connection")
        }
    }
}

/// `+OK`, the lines of a listing, a snapshot, or the error line.
fn admin_reply(r: crate::admin::AdminOutcome) -> Frame {
    use crate::admin::AdminOutcome;
    match r {
        AdminOutcome::Lines(lines) if lines.is_empty() => Frame::Simple("OK".into()),
        AdminOutcome::Lines(lines) => Frame::Array(
            lines
                .into_iter()
                .map(|l| Frame::Bulk(Bytes::from(l)))
                .collect(),
        ),
        AdminOutcome::Snapshot { index, data } => {
            Frame::Array(vec![Frame::Integer(index as i64), Frame::Bulk(data)])
        }
        AdminOutcome::Error(e) => Frame::Error(e),
    }
}

/// A command between `MULTI` and `EXEC`: data commands are queued
/// (`+QUEUED`); `EXEC` runs the block, `DISCARD` drops it.
async fn queue(node: &Service, conn: &mut ConnState, cmd: Command) -> Frame {
    match cmd {
        Command::Data(op) => {
            conn.tx.queued.get_or_insert_with(Vec::new).push(op);
            Frame::Simple("QUEUED".into())
        }
        Command::Exec => exec_block(node, conn).await,
        Command::Discard => {
            conn.tx.reset();
            Frame::Simple("OK".into())
        }
        Command::Multi => Frame::Error("ERR MULTI calls can not be nested".into()),
        Command::Watch(_) => Frame::Error("ERR WATCH inside MULTI is not allowed".into()),
        _ => {
            conn.tx.dirty = true;
            Frame::Error(NOT_QUEUEABLE.into())
        }
    }
}

/// `EXEC`: the queued ops and watched versions as one `kv::Op::Exec`.
async fn exec_block(node: &Service, conn: &mut ConnState) -> Frame {
    let tx = std::mem::take(&mut conn.tx);
    if tx.dirty {
        return Frame::Error("EXECABORT Transaction discarded because of previous errors.".into());
    }
    let ops = tx.queued.unwrap_or_default();
    if ops.is_empty() && tx.watched.is_empty() {
        return Frame::Array(vec![]);
    }
    let op = kv::Op::Exec {
        ops,
        watch: tx.watched,
    };
    if node.is_sharded() {
        let keys: Vec<Bytes> = op.keys().cloned().collect();
        if let Err(e) = cluster_view::same_slot(&keys) {
            return Frame::Error(e.to_string());
        }
    }
    match node.write(op).await {
        Ok(r) => render(r),
        Err(e) => Frame::Error(e.to_string()),
    }
}

/// `WATCH key...`: reads the keys' versions (a ReadIndex read, so
/// linearizable) and keeps them for `EXEC`.
async fn watch(node: &Service, conn: &mut ConnState, keys: Vec<Bytes>) -> Frame {
    if node.is_sharded() {
        if let Err(e) = cluster_view::same_slot(&keys) {
            return Frame::Error(e.to_string());
        }
    }
    match node.read(kv::Op::Watch { keys: keys.clone() }).await {
        Ok(kv::Reply::Versions(versions)) => {
            conn.tx.watched.extend(keys.into_iter().zip(versions));
            Frame::Simple("OK".into())
        }
        Ok(other) => render(other),
        Err(e) => Frame::Error(e.to_string()),
    }
}

/// The keys of a keyed command.
fn keys_of(cmd: &Command) -> Vec<Bytes> {
    match cmd {
        Command::Data(op) => op.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// How soon after a `-MOVED` a client back with a key of the same slot
/// makes this process recheck its configuration before redirecting again.
const SENT_BACK_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// `-CROSSSLOT`, `-MOVED` or `-TRYAGAIN` instead of running `cmd` here.
///
/// A client given `-MOVED` for a slot that comes back with that slot
/// within [`SENT_BACK_WITHIN`] was redirected here by a process whose
/// configuration disagrees with this one's; before redirecting it again,
/// this process asks a controller for a newer configuration
/// (`Router::recheck_redirect`), so two processes that learned a shard move
/// at different moments never bounce a client between them.
async fn redirect(router: &Router, conn: &mut ConnState, cmd: &Command) -> Option<String> {
    let keys = keys_of(cmd);
    if let Err(e) = cluster_view::same_slot(&keys) {
        return Some(e.to_string());
    }
    let key = match keys.first() {
        Some(key) if conn.cluster_aware => key,
        _ => return None,
    };
    let slot = shardmeta::key_slot(key);
    let mut r = router.redirect(key);
    let sent_back = conn
        .last_moved
        .is_some_and(|(s, at)| s == slot && at.elapsed() < SENT_BACK_WITHIN);
    if sent_back && matches!(r, Some(shard::router::Redirect::Moved { .. })) {
        r = router.recheck_redirect(key).await;
    }
    if matches!(r, Some(shard::router::Redirect::Moved { .. })) {
        conn.last_moved = Some((slot, std::time::Instant::now()));
    }
    r.map(|r| r.to_string())
}

/// A data command. A pure read (`kv::Op::is_read_only`: `GET`, `MGET`,
/// `EXISTS`, `TTL`, `TYPE`, the hash reads, `SCAN`, `DBSIZE` ...) is a
/// ReadIndex read, no log entry; every write is one log entry applied with
/// exactly-once (a retried `INCR` is answered from the session's cache),
/// and a multi-key op is atomic.
async fn data(node: &Service, op: kv::Op) -> Frame {
    let result = if op.is_read_only() {
        node.read(op).await
    } else {
        node.write(op).await
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
        kv::Reply::Map(pairs) => Frame::Map(
            pairs
                .into_iter()
                .map(|(f, v)| (Frame::Bulk(f), Frame::Bulk(v)))
                .collect(),
        ),
        kv::Reply::Multi(None) => Frame::NullArray,
        kv::Reply::Multi(Some(replies)) => Frame::Array(replies.into_iter().map(render).collect()),
        kv::Reply::Versions(vs) => {
            Frame::Array(vs.into_iter().map(|v| Frame::Integer(v as i64)).collect())
        }
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
/// Before the layout is rendered, a group whose leader this process has no
/// idea of is asked once (`Router::learn_leaders`), so the master it lists
/// is the process that answers for those slots (`shard::keyspace`).
async fn cluster_sharded(router: &Router, conn: &mut ConnState, q: ClusterQuery) -> Frame {
    if matches!(
        q,
        ClusterQuery::Slots | ClusterQuery::Shards | ClusterQuery::Nodes
    ) {
        router.learn_leaders().await;
    }
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
