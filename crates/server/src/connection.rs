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

use crate::exec;
use crate::requests::Requests;
use crate::resp::{parse_command, parse_frame, Command, Frame, Limits};

const READ_CHUNK_BYTES: usize = 64 * 1024;

pub async fn serve(mut stream: TcpStream, node: Arc<Requests>, mut shutdown: broadcast::Receiver<()>) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let limits = Limits::default();
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut outbuf = BytesMut::new();
    loop {
        inbuf.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            r = stream.read_buf(&mut inbuf) => r?,
            _ = shutdown.recv() => return Ok(()),
        };
        if n == 0 {
            return Ok(()); // EOF, possibly mid-request: nothing to answer.
        }
        let close = handle_frames(&node, &mut inbuf, &mut outbuf, &limits).await;
        stream.write_all(&outbuf).await?;
        outbuf.clear();
        if close {
            return Ok(());
        }
    }
}

/// Executes every complete frame in `inbuf`; true when the connection must close.
async fn handle_frames(node: &Requests, inbuf: &mut BytesMut, out: &mut BytesMut, limits: &Limits) -> bool {
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
            Ok(cmd) => exec::execute(node, cmd).await.encode(out),
            Err(e) => Frame::Error(e.0).encode(out),
        }
    }
}
