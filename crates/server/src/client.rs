//! A minimal async RESP client (the CLI, `raftkv bench` and tests use it):
//! send a command, read one reply frame, over TCP or TLS ([`ClientTls`]).
//! Replies are parsed with the same bounded decoder as the server's
//! requests.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{parse_frame, Frame, Limits};

/// How to reach a TLS client port: the rustls settings (trusted CA, our
/// certificate if any: `crate::tls::client_config`) and the name to verify
/// (`None`: the host of the address dialled).
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    pub sni: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    stream: Box<dyn Io>,
    inbuf: BytesMut,
    outbuf: BytesMut,
    limits: Limits,
}

impl Client {
    pub async fn connect(addr: &str) -> std::io::Result<Client> {
        Self::connect_with(addr, None).await
    }

    /// Connects to `addr`, with TLS when `tls` is given.
    pub async fn connect_with(addr: &str, tls: Option<&ClientTls>) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = crate::tls::server_name_for(addr, tls.sni.as_deref())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                Box::new(connector.connect(name, tcp).await?)
            }
        };
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
        self.stream.flush().await?;
        self.outbuf.clear();
        Ok(())
    }

    pub async fn send<B: AsRef<[u8]>>(&mut self, args: &[B]) -> std::io::Result<()> {
        self.queue(args);
        self.flush().await
    }

    /// Writes raw bytes (tests of malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
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
