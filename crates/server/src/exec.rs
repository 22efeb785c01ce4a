//! Executes one parsed RESP command against the node and builds its reply.
//! One function per command family; errors map to Redis-style replies.

use bytes::Bytes;

use crate::info;
use crate::requests::{RequestError, Requests};
use crate::resp::{Command, Frame};

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
        Command::CommandDocs => Frame::Array(vec![]),
        Command::Quit | Command::Acknowledge => Frame::Simple("OK".into()),
        Command::NoName => Frame::Null,
        Command::Hello(_) => unreachable!("HELLO is answered by the connection"),
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

fn reply(r: Result<Frame, RequestError>) -> Frame {
    r.unwrap_or_else(|e| Frame::Error(e.to_string()))
}
