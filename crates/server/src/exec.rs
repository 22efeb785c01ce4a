//! Executes one parsed RESP command against the node and builds its reply.
//! One function per command family; errors map to Redis-style replies.

use bytes::Bytes;

use crate::cluster_view::{self, CLUSTER_DISABLED};
use crate::info;
use crate::requests::{RequestError, Requests};
use crate::resp::{table, ClusterQuery, Command, CommandQuery, Frame};

/// Runs `cmd`; the reply frame to send.
pub async fn execute(node: &Requests, cmd: Command) -> Frame {
    match cmd {
        Command::Ping(None) => Frame::Simple("PONG".into()),
        Command::Ping(Some(msg)) => Frame::Bulk(msg),
        Command::Get(key) => reply(
            node.read(key)
                .await
                .map(|v| v.map_or(Frame::Null, Frame::Bulk)),
        ),
        Command::Set(key, value) => reply(
            node.write(kv::Op::Put { key, value })
                .await
                .map(|_| Frame::Simple("OK".into())),
        ),
        Command::Append(key, value) => reply(node.write(kv::Op::Append { key, value }).await.map(
            |r| match r {
                kv::Reply::Length(n) => Frame::Integer(n as i64),
                other => Frame::error(format!("ERR unexpected reply {other:?}")),
            },
        )),
        Command::Del(keys) => reply(del(node, keys).await),
        Command::Exists(keys) => reply(exists(node, keys).await),
        Command::Info(section) => Frame::Bulk(Bytes::from(info::render(node, section.as_deref()))),
        Command::CommandInfo(q) => command_info(q),
        Command::Cluster(q) => cluster(node, q),
        Command::Quit | Command::Acknowledge => Frame::Simple("OK".into()),
        Command::NoName => Frame::Null,
        Command::Hello { .. } | Command::Auth { .. } => {
            unreachable!("HELLO and AUTH are answered by the connection")
        }
    }
}

/// DEL of several keys: one logged delete per key, in order. Not atomic
/// across keys (each is linearizable on its own).
async fn del(node: &Requests, keys: Vec<Bytes>) -> Result<Frame, RequestError> {
    let mut existed = 0;
    for key in keys {
        if let kv::Reply::Deleted(true) = node.write(kv::Op::Delete { key }).await? {
            existed += 1;
        }
    }
    Ok(Frame::Integer(existed))
}

async fn exists(node: &Requests, keys: Vec<Bytes>) -> Result<Frame, RequestError> {
    let mut n = 0;
    for key in keys {
        if node.read(key).await?.is_some() {
            n += 1;
        }
    }
    Ok(Frame::Integer(n))
}

/// `COMMAND` and its subcommands, from the command table.
pub fn command_info(q: CommandQuery) -> Frame {
    match q {
        CommandQuery::All => Frame::Array(table::COMMANDS.iter().map(table::describe).collect()),
        CommandQuery::Count => Frame::Integer(table::COMMANDS.len() as i64),
        CommandQuery::List => Frame::Array(
            table::COMMANDS
                .iter()
                .map(|c| Frame::Bulk(Bytes::from_static(c.name.as_bytes())))
                .collect(),
        ),
        CommandQuery::Info(names) if names.is_empty() => command_info(CommandQuery::All),
        CommandQuery::Info(names) => Frame::Array(
            names
                .iter()
                .map(|n| table::lookup(n).map_or(Frame::Null, table::describe))
                .collect(),
        ),
        CommandQuery::Docs => Frame::Map(vec![]),
    }
}

/// `CLUSTER` on a single-group node: one group owns every slot; the
/// layout subcommands are Redis's "cluster support disabled".
fn cluster(node: &Requests, q: ClusterQuery) -> Frame {
    match q {
        ClusterQuery::KeySlot(key) => Frame::Integer(shardmeta::key_slot(&key).into()),
        ClusterQuery::Info => {
            let nodes = node.peers.len() + 1;
            Frame::Bulk(Bytes::from(cluster_view::info_text(
                u32::from(shardmeta::SLOTS),
                nodes,
                1,
                0,
            )))
        }
        ClusterQuery::Slots | ClusterQuery::Shards | ClusterQuery::Nodes | ClusterQuery::MyId => {
            Frame::Error(CLUSTER_DISABLED.into())
        }
    }
}

fn reply(r: Result<Frame, RequestError>) -> Frame {
    r.unwrap_or_else(|e| Frame::Error(e.to_string()))
}
