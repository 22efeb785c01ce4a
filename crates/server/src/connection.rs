//! One client connection: read bytes, parse every complete request frame,
//! execute them one after another (pipelined requests are answered in
//! order, and a later command sees an earlier one's effect), write the
//! replies with one write.
//!
//! Invariants: the read buffer holds at most one partial frame beyond what
//! has been parsed, so it is bounded by the frame limits; a protocol error
//! gets `-ERR Protocol error: ...` and the connection is closed (framing is
//! lost, as in Redis); a command error keeps it open; EOF mid-request just
//! closes. Shutdown closes the connection between requests.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::exec::{self, ConnState};
use crate::resp::{parse_command, parse_frame, Command, Frame, Limits, Protocol};
use crate::service::Service;

const READ_CHUNK_BYTES: usize = 64 * 1024;

pub async fn serve(
    mut stream: TcpStream,
    node: Arc<Service>,
    mut shutdown: broadcast::Receiver<()>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let limits = Limits::default();
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut outbuf = BytesMut::new();
    let mut conn = ConnState::default();
    loop {
        inbuf.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            r = stream.read_buf(&mut inbuf) => r?,
            _ = shutdown.recv() => return Ok(()),
        };
        if n == 0 {
            return Ok(()); // EOF, possibly mid-request: nothing to answer.
        }
        let close = handle_frames(&node, &mut inbuf, &mut outbuf, &limits, &mut conn).await;
        stream.write_all(&outbuf).await?;
        outbuf.clear();
        if close {
            return Ok(());
        }
    }
}

/// Executes every complete frame in `inbuf`; true when the connection must close.
async fn handle_frames(
    node: &Service,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
    limits: &Limits,
    conn: &mut ConnState,
) -> bool {
    loop {
        let (frame, used) = match parse_frame(inbuf, limits) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return false,
            Err(e) => {
                Frame::Error(format!("ERR {e}")).encode(out);
                return true;
            }
        };
        inbuf.advance(used);
        if matches!(&frame, Frame::Array(a) if a.is_empty()) {
            continue; // an empty inline line
        }
        match parse_command(frame) {
            Ok(Command::Quit) => {
                Frame::Simple("OK".into()).encode(out);
                return true;
            }
            Ok(Command::Hello(ver)) => {
                let reply = hello(node, ver, &mut conn.proto);
                reply.encode_as(conn.proto, out)
            }
            Ok(cmd) => {
                let reply = exec::execute(node, conn, cmd).await;
                reply.encode_as(conn.proto, out)
            }
            Err(e) => Frame::Error(e.0).encode(out),
        }
    }
}

/// `HELLO [protover]`: switches the connection's reply protocol (2 or 3) and
/// describes the server, as Redis does.
fn hello(node: &Service, ver: Option<i64>, proto: &mut Protocol) -> Frame {
    match ver {
        None => {}
        Some(2) => *proto = Protocol::Resp2,
        Some(3) => *proto = Protocol::Resp3,
        Some(_) => {
            return Frame::Error("NOPROTO sorry, this protocol version is not supported.".into())
        }
    }
    let bulk = |s: &str| Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()));
    let proto_num = if *proto == Protocol::Resp3 { 3 } else { 2 };
    Frame::Map(vec![
        (bulk("server"), bulk("raftkv")),
        (bulk("version"), bulk(env!("CARGO_PKG_VERSION"))),
        (bulk("proto"), Frame::Integer(proto_num)),
        (bulk("id"), Frame::Integer(node.id() as i64)),
        (
            bulk("mode"),
            bulk(if node.is_sharded() {
                "cluster"
            } else {
                "standalone"
            }),
        ),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Frame::Array(vec![])),
    ])
}
