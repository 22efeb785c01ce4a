//! One client connection: read bytes, decode every complete request frame,
//! execute them in order (pipelined requests are answered in order, and a
//! later command sees an earlier one's effect), write the replies. Runs of
//! consecutive plain reads or writes go as units, overlapped inside the
//! unit and answered in order (`crate::pipeline`, which holds the rules);
//! anything else waits for what came before it and runs alone.
//!
//! Limits (see [`ClientPortConfig`] for the numbers and flags):
//! - the request being received holds at most the query buffer limit, and a
//!   bulk longer than `proto-max-bulk-len` is refused when its header
//!   arrives; decoding keeps its progress across reads ([`Decoder`]), so a
//!   trickled request costs linear time;
//! - replies the client has not taken are handed to the kernel without
//!   waiting while a batch runs; past the output buffer limit the
//!   connection is closed (a client that pipelines and never reads cannot
//!   grow them without end);
//! - with an idle timeout, a connection that neither sends a byte nor takes
//!   one for that long is closed.
//!
//! A protocol error (including a limit) gets `-ERR Protocol error: ...`
//! and the connection is closed (framing is lost, as in Redis): the reply
//! is written, our side is shut down, and what the client still sends is
//! read and dropped for a moment ([`LINGER`]), so the client reads the error
//! instead of a reset. A command error keeps the connection open; EOF
//! mid-request just closes; shutdown closes between requests.
//!
//! Each connection is registered in its port's registry while it lives
//! (`CLIENT LIST`, `CLIENT KILL`, INFO's `connected_clients`), and counts
//! its commands, errors and bytes in the port's stats (INFO).
//!
//! Authentication: with a password configured, every command but `AUTH`,
//! `HELLO` and `QUIT` gets `-NOAUTH` until `AUTH` (or `HELLO ... AUTH`)
//! succeeds (see [`crate::auth`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::auth;
use crate::clients::{ClientEntry, Registered, KILLED, SHUTDOWN};
use crate::exec::{self, ConnState};
use crate::pipeline::{self, Pending, Unit};
use crate::port_state::PortState;
use crate::resp::{parse_command, table, Command, Decoder, Frame, Protocol};
use crate::servercmd::{self, client::set_name};
use crate::service::Service;
use crate::stream::Stream;

const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Pending replies beyond this are handed to the kernel before the next
/// command runs (without waiting), so the output buffer limit measures what
/// the client really left unread.
const DRAIN_AT_BYTES: usize = 64 * 1024;
/// A buffer that grew past this for one big request or reply is given back.
const SHRINK_ABOVE_BYTES: usize = 1 << 20;
/// After a closing error: how long to read and drop what the client still sends.
pub const LINGER: Duration = Duration::from_secs(5);

/// How a batch of requests left the connection.
enum End {
    /// Keep serving.
    Open,
    /// A final reply is in the buffer: flush it, then close gracefully.
    Close,
    /// The client left too many replies unread: close at once.
    OutputLimit,
}

/// A decoded request: its table name (stats), when it arrived, and the
/// command or the error it gets instead.
struct Request {
    name: Option<&'static str>,
    started: std::time::Instant,
    parsed: Result<Command, String>,
}

struct Conn {
    stream: Stream,
    node: Arc<Service>,
    port: Arc<PortState>,
    /// This connection's entry in the port's registry (`CLIENT LIST`).
    me: Registered,
    inbuf: BytesMut,
    out: BytesMut,
    decoder: Decoder,
    conn: ConnState,
    authenticated: bool,
    /// The unit being gathered (kept here to reuse its room).
    unit: Unit,
}

pub async fn serve(
    stream: Stream,
    node: Arc<Service>,
    port: Arc<PortState>,
    shutdown: broadcast::Receiver<()>,
) -> std::io::Result<()> {
    let _ = stream.tcp().set_nodelay(true);
    let me = register(&port, stream.tcp());
    let cfg = &port.settings.client;
    let mut c = Conn {
        stream,
        node,
        decoder: Decoder::new(cfg.frame_limits(), cfg.query_buffer_limit_bytes),
        authenticated: cfg.requirepass.is_none(),
        me,
        port: port.clone(),
        inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        out: BytesMut::new(),
        conn: ConnState::default(),
        unit: Unit::default(),
    };
    let _shutdown = forward_shutdown(shutdown, c.me.entry.clone());
    loop {
        c.inbuf.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            // The stop flag first: a client that never stops sending still
            // sees CLIENT KILL and shutdown.
            biased;
            _ = c.me.stopped(KILLED | SHUTDOWN) => return Ok(()),
            r = c.stream.read_buf(&mut c.inbuf) => r?,
            _ = idle(c.port.settings.client.idle_timeout) => {
                tracing::debug!("client idle timeout");
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(()); // EOF, possibly mid-request: nothing to answer.
        }
        c.port
            .stats
            .net_input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        let end = c.handle_frames().await;
        if matches!(end, End::OutputLimit) {
            tracing::warn!(
                limit = c.port.settings.client.output_buffer_limit_bytes,
                "closing a client that does not read its replies (client-output-buffer-limit)"
            );
            return Ok(());
        }
        if !c.flush().await? {
            return Ok(());
        }
        if matches!(end, End::Close) {
            c.linger().await;
            return Ok(());
        }
        c.shrink();
    }
}

/// Registers a new connection in the port's registry.
fn register(port: &Arc<PortState>, stream: &tokio::net::TcpStream) -> Registered {
    use std::os::fd::AsRawFd;
    let addr = |a: std::io::Result<std::net::SocketAddr>| {
        a.map_or_else(|_| "?:0".to_string(), |a| a.to_string())
    };
    port.clients.register(
        addr(stream.peer_addr()),
        addr(stream.local_addr()),
        i64::from(stream.as_raw_fd()),
    )
}

/// Sets `entry`'s [`SHUTDOWN`] when the node's shutdown is broadcast (or
/// its sender is gone), from a task of its own that the returned guard
/// aborts: the connection then checks one flag of its own on every wake-up
/// instead of polling the port-wide broadcast.
fn forward_shutdown(mut shutdown: broadcast::Receiver<()>, entry: Arc<ClientEntry>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let _ = shutdown.recv().await;
        entry.shut_down();
    }))
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes after `timeout`, or never.
async fn idle(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Executes every complete frame in the read buffer, in order: runs of
    /// plain reads or writes as units (`crate::pipeline`), each unit answered
    /// in full before the next command starts.
    async fn handle_frames(&mut self) -> End {
        let mut unit = std::mem::take(&mut self.unit);
        let end = self.handle_frames_with(&mut unit).await;
        self.unit = unit;
        end
    }

    async fn handle_frames_with(&mut self, unit: &mut Unit) -> End {
        loop {
            if self.out.len() >= DRAIN_AT_BYTES {
                self.drain_now();
                if self.out.len() > self.port.settings.client.output_buffer_limit_bytes {
                    return End::OutputLimit;
                }
            }
            let frame = match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    self.run_unit(unit).await;
                    return End::Open;
                }
                Err(e) => {
                    self.run_unit(unit).await;
                    tracing::debug!("client protocol error: {e}");
                    Frame::Error(format!("ERR {e}")).encode(&mut self.out);
                    return End::Close;
                }
            };
            if matches!(&frame, Frame::Array(a) if a.is_empty()) {
                continue; // an empty inline line
            }
            let request = self.prepare(frame);
            let kind = match &request.parsed {
                Ok(cmd) => pipeline::kind_of(&self.node, &self.conn, cmd),
                Err(_) => None,
            };
            match (kind, request.parsed) {
                (Some(kind), Ok(Command::Data(op))) => {
                    if !unit.accepts(kind) {
                        self.run_unit(unit).await;
                    }
                    let (name, started) = (request.name, request.started);
                    unit.push(kind, Pending { op, name, started });
                    if unit.is_full(&self.node) {
                        self.run_unit(unit).await;
                    }
                }
                (_, parsed) => {
                    self.run_unit(unit).await;
                    if self.execute(request.name, request.started, parsed).await {
                        return End::Close;
                    }
                }
            }
        }
    }

    /// Runs the gathered unit, if any, appending its replies in order.
    async fn run_unit(&mut self, unit: &mut Unit) {
        let Some(kind) = unit.kind() else {
            return;
        };
        if unit.commands.len() == 1 {
            let Pending { op, name, started } = unit.commands.pop().expect("one command");
            unit.clear();
            let reply = pipeline::run_one(&self.node, kind, op).await;
            self.done(name, started, reply);
            return;
        }
        let (ops, stats): (Vec<kv::Op>, Vec<_>) = unit
            .commands
            .drain(..)
            .map(|p| (p.op, (p.name, p.started)))
            .unzip();
        unit.clear();
        let replies = pipeline::run(&self.node, kind, ops).await;
        for (reply, (name, started)) in replies.into_iter().zip(stats) {
            self.done(name, started, reply);
        }
    }

    /// Counts a command's reply in the stats and appends it.
    fn done(&mut self, name: Option<&'static str>, started: std::time::Instant, reply: Frame) {
        self.port
            .stats
            .command_done(name, &reply, started.elapsed());
        reply.encode_as(self.conn.proto, &mut self.out);
    }

    /// Checks, names and parses one request, noting it as the connection's
    /// latest (`CLIENT LIST`).
    fn prepare(&mut self, frame: Frame) -> Request {
        let allowed = self.authenticated || is_auth_exempt(&frame);
        let name = full_name(&frame);
        let (qbuf, omem) = (self.inbuf.len(), self.out.len());
        let started = std::time::Instant::now();
        self.me.update(|s| {
            s.last_cmd = name.unwrap_or(s.last_cmd);
            s.last_active = started;
            s.qbuf = qbuf;
            s.omem = omem;
        });
        let parsed = match parse_command(frame) {
            _ if !allowed => Err(auth::NOAUTH.to_string()),
            Ok(cmd) => Ok(cmd),
            Err(e) => Err(e.0),
        };
        Request {
            name,
            started,
            parsed,
        }
    }

    /// Runs one request alone, appending its reply; true when the connection must close.
    async fn execute(
        &mut self,
        name: Option<&'static str>,
        started: std::time::Instant,
        parsed: Result<Command, String>,
    ) -> bool {
        let reply = match parsed {
            Ok(Command::Quit) => {
                Frame::Simple("OK".into()).encode(&mut self.out);
                return true;
            }
            Ok(Command::Hello {
                version,
                auth,
                setname,
            }) => self.hello(version, auth, setname),
            Ok(Command::Auth { user, password }) => self.auth(user.as_deref(), &password),
            Ok(Command::Server(_)) if self.conn.tx.in_multi() => {
                self.conn.tx.dirty = true;
                Frame::Error(exec::NOT_QUEUEABLE.into())
            }
            Ok(Command::Server(cmd)) => {
                let ctx = servercmd::Ctx {
                    port: &self.port,
                    node: &self.node,
                    me: &self.me,
                    proto: self.conn.proto,
                };
                servercmd::execute(&ctx, cmd)
            }
            Ok(cmd) => exec::execute(&self.node, &mut self.conn, cmd).await,
            Err(e) => {
                // As in Redis, a refused command inside MULTI dooms the block.
                if self.conn.tx.in_multi() {
                    self.conn.tx.dirty = true;
                }
                self.port.stats.rejected_command(name, &e);
                Frame::Error(e).encode_as(self.conn.proto, &mut self.out);
                return false;
            }
        };
        self.port
            .stats
            .command_done(name, &reply, started.elapsed());
        reply.encode_as(self.conn.proto, &mut self.out);
        false
    }

    /// `AUTH [user] password`, with Redis's replies.
    fn auth(&mut self, user: Option<&[u8]>, password: &[u8]) -> Frame {
        match (&self.port.settings.client.requirepass, user) {
            (None, None) => Frame::Error(auth::NO_PASSWORD_SET.into()),
            // The default user without a password accepts any (as in Redis).
            (None, Some(b"default")) => Frame::Simple("OK".into()),
            (None, Some(_)) => Frame::Error(auth::WRONGPASS.into()),
            (Some(pw), _) if pw.matches(user, password) => {
                self.authenticated = true;
                Frame::Simple("OK".into())
            }
            // A failed AUTH leaves an earlier success in place, as in Redis.
            (Some(_), _) => Frame::Error(auth::WRONGPASS.into()),
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: authenticates
    /// when asked, then switches the connection's reply protocol (2 or 3),
    /// sets the name and describes the server, with Redis's order of checks.
    fn hello(
        &mut self,
        version: Option<i64>,
        credentials: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    ) -> Frame {
        let proto = match version {
            None => self.conn.proto,
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => {
                return Frame::Error(
                    "NOPROTO sorry, this protocol version is not supported.".into(),
                )
            }
        };
        if let Some((user, password)) = credentials {
            if let Frame::Error(e) = self.auth(Some(&user), &password) {
                return Frame::Error(e);
            }
        }
        if !self.authenticated {
            return Frame::Error(auth::NOAUTH_HELLO.into());
        }
        self.conn.proto = proto;
        if let Some(name) = setname {
            set_name(&self.me, name);
        }
        self.me
            .update(|s| s.resp = if proto == Protocol::Resp3 { 3 } else { 2 });
        hello_reply(&self.node, self.me.id, proto)
    }

    /// Hands the kernel what it takes of the pending replies, without waiting.
    fn drain_now(&mut self) {
        while !self.out.is_empty() {
            match self.stream.try_write(&self.out) {
                Ok(0) | Err(_) => return, // WouldBlock, or an error the flush reports
                Ok(n) => {
                    self.count_output(n);
                    self.out.advance(n);
                }
            }
        }
    }

    /// Writes every pending reply; false when the connection should end
    /// without further ado (shutdown, or no progress within the idle timeout).
    async fn flush(&mut self) -> std::io::Result<bool> {
        // Usually the socket takes all of it at once: one write, no waiting.
        self.drain_now();
        while !self.out.is_empty() {
            let n = tokio::select! {
                _ = self.me.stopped(SHUTDOWN) => return Ok(false),
                r = self.stream.write(&self.out) => r?,
                _ = idle(self.port.settings.client.idle_timeout) => {
                    tracing::debug!("client idle timeout (replies not taken)");
                    return Ok(false);
                }
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.count_output(n);
            self.out.advance(n);
        }
        // TLS: what rustls still holds goes out too (plain TCP holds nothing).
        if let Stream::Tls(_) = self.stream {
            tokio::select! {
                _ = self.me.stopped(SHUTDOWN) => return Ok(false),
                r = self.stream.flush() => r?,
            }
        }
        Ok(true)
    }

    /// A graceful close after a final reply: send FIN, then read and drop
    /// what the client is still sending, up to EOF or [`LINGER`]. Closing
    /// with unread input would send a reset, and a reset can destroy the
    /// error reply before the client reads it.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let mut sink = vec![0u8; READ_CHUNK_BYTES];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(n) = self.stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    fn count_output(&self, n: usize) {
        self.port
            .stats
            .net_output_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Gives back buffers that grew for one big request or reply.
    fn shrink(&mut self) {
        if self.inbuf.is_empty() && self.inbuf.capacity() > SHRINK_ABOVE_BYTES {
            self.inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
        if self.out.capacity() > SHRINK_ABOVE_BYTES {
            self.out = BytesMut::new();
        }
    }
}

/// `AUTH`, `HELLO` and `QUIT` are answered before authentication (Redis's
/// `no-auth` commands); everything else gets `-NOAUTH`.
fn is_auth_exempt(frame: &Frame) -> bool {
    let Frame::Array(items) = frame else {
        return false;
    };
    match items.first() {
        Some(Frame::Bulk(name)) => matches!(
            name.to_ascii_uppercase().as_slice(),
            b"AUTH" | b"HELLO" | b"QUIT"
        ),
        _ => false,
    }
}

/// The table row's full name of a request (`get`, `client|list`), when
/// it names a command raftkv knows (for `CLIENT LIST`'s `cmd=` and stats).
fn full_name(frame: &Frame) -> Option<&'static str> {
    let Frame::Array(items) = frame else {
        return None;
    };
    let Some(Frame::Bulk(name)) = items.first() else {
        return None;
    };
    let top = table::lookup(name)?;
    match items.get(1) {
        Some(Frame::Bulk(sub)) if !top.subcommands.is_empty() => {
            table::lookup_sub(top, sub).map(|s| s.name)
        }
        _ => Some(top.name),
    }
}

/// Redis 7's `HELLO` map. `server` says what answers; `version` is the
/// Redis version raftkv is compatible with (libraries gate features on
/// it; raftkv's own version is INFO's `raftkv_version`); `id` is the
/// connection's client id; `role` is `master` on every node (each accepts
/// writes and linearizable reads: see INFO's replication section).
fn hello_reply(node: &Service, client_id: u64, proto: Protocol) -> Frame {
    let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let proto_num = if proto == Protocol::Resp3 { 3 } else { 2 };
    Frame::Map(vec![
        (bulk("server"), bulk("raftkv")),
        (bulk("version"), bulk(crate::info::REDIS_COMPAT_VERSION)),
        (bulk("proto"), Frame::Integer(proto_num)),
        (bulk("id"), Frame::Integer(client_id as i64)),
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
