//! A minimal async RESP client (the CLI, `raftkv bench` and tests use it):
//! send a command, read one reply frame. Replies are parsed with the same
//! bounded decoder as the server's requests.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{parse_frame, Frame, Limits};

pub struct Client {
    stream: TcpStream,
    inbuf: BytesMut,
    outbuf: BytesMut,
    limits: Limits,
}

impl Client {
    pub async fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let limits = Limits {
            max_bulk_bytes: 512 << 20,
            ..Limits::default()
        };
        Ok(Client {
            stream,
            inbuf: BytesMut::with_capacity(16 * 1024),
            outbuf: BytesMut::new(),
            limits,
        })
    }

    /// Sends one command (`args[0]` is its name) and returns the reply.
    pub async fn call<B: AsRef<[u8]>>(&mut self, args: &[B]) -> std::io::Result<Frame> {
        self.send(args).await?;
        self.read_reply().await
    }

    /// Queues one command without flushing (pipelining); `flush` sends.
    pub fn queue<B: AsRef<[u8]>>(&mut self, args: &[B]) {
        Frame::command(args.iter().map(|a| Bytes::copy_from_slice(a.as_ref())))
            .encode(&mut self.outbuf);
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.stream.write_all(&self.outbuf).await?;
        self.outbuf.clear();
        Ok(())
    }

    pub async fn send<B: AsRef<[u8]>>(&mut self, args: &[B]) -> std::io::Result<()> {
        self.queue(args);
        self.flush().await
    }

    /// Writes raw bytes (tests of malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn read_reply(&mut self) -> std::io::Result<Frame> {
        loop {
            match parse_frame(&self.inbuf, &self.limits) {
                Ok(Some((frame, used))) => {
                    self.inbuf.advance(used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ))
                }
            }
            if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
