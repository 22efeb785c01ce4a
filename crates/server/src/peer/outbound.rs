//! Outbound connections: one task per peer that dials it, runs the dialer's
//! side of the handshake (`super::handshake`), and writes everything queued
//! for it, batching what has piled up into as few
//! frames and writes as it can.
//!
//! Fast path: when nothing is queued or half-written for a peer, `send`
//! writes the frame to the socket itself (a non-blocking `try_write` from the
//! caller, usually the driver), so a lone Append or ack leaves without waking
//! the task: one hand-off less per hop on the write path. Whatever it cannot write at once (a full socket buffer) is
//! left for the task, which writes it before anything else.
//!
//! Invariants: bytes reach the socket in send order: the fast path is taken
//! only when the queue and the unwritten buffer are both empty, and every
//! write (fast path or task) happens under the peer's state lock. With
//! `--tls-peers` the link keeps its rustls session beside the socket and
//! frames are encrypted into records under that same lock as they are
//! appended to the unwritten buffer, so both paths keep writing plain
//! socket bytes in order (the TLS stream is only used for the handshakes). The queue
//! is bounded ([`QUEUE_ITEMS`]); `send` never blocks. While disconnected,
//! queued items are dropped (Raft retransmits; a forwarded request is failed
//! as not sent, so the client path knows it never reached a leader).
//! Reconnects back off from 10 ms to 1 s. Every link writes a `Keepalive`
//! each [`LinkTimeouts::keepalive`] and is closed and re-dialled once the
//! peer has reported no new bytes from us for [`LinkTimeouts::dead_after`]
//! (see [`super::liveness`]); dials, and then handshakes, give up after
//! [`LinkTimeouts::connect`]. A peer that refuses us (another cluster, a
//! different secret) is logged at WARN once per reason and re-dialled with
//! backoff.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use raft::{Message, NodeId};
use shardmeta::GroupId;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::handshake::{self, HandshakeError, PeerAuth};
use super::liveness::{new_conn_id, LinkState, LinkTimeouts, Progress};
use super::shard_wire::ShardFrame;
use super::wire::{
    self, ForwardReply, ForwardRequest, PeerFrame, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES,
    MAX_FRAME_BYTES,
};
use crate::forward::ForwardTable;

/// Items queued per peer before new ones are dropped.
pub const QUEUE_ITEMS: usize = 8192;
/// Most bytes the task writes in one call while holding the peer's lock.
const MAX_WRITE_BYTES: usize = 256 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One thing to send to a peer.
#[derive(Debug)]
pub enum Outgoing {
    Raft(Message),
    Forward {
        id: u64,
        req: ForwardRequest,
    },
    Reply {
        id: u64,
        reply: ForwardReply,
    },
    /// A Raft message of one group (sharded deployments): batched with the
    /// other groups' into one `ShardFrame::Raft`.
    GroupRaft(GroupId, Message),
    /// Any other sharded frame, sent as it is.
    Shard(ShardFrame),
}

/// What a peer's senders and its task share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the task: something queued, bytes left unwritten, or closed.
    wake: Notify,
    connected: AtomicBool,
    /// Liveness reports, shared with our inbound connections from the peer.
    link: LinkState,
}

#[derive(Default)]
struct State {
    /// The live connection (its `Hello` is written or in `out`); `None`
    /// while connecting, and after a fast-path write failed.
    conn: Option<Arc<TcpStream>>,
    /// With `--tls-peers`: the connection's TLS session, set and cleared
    /// with `conn`. Frames are sealed into records under this lock as they
    /// are appended to `out`, so records leave in the order they were made.
    tls: Option<rustls::ClientConnection>,
    /// Items for the task to encode and write.
    queue: VecDeque<Outgoing>,
    /// Encoded (with TLS: encrypted) bytes not yet written: the next bytes
    /// on the connection.
    out: BytesMut,
    /// Every `PeerSender` is gone: the task ends.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the peer closed when the last `PeerSender` clone is dropped.
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

/// The handle to one peer's sending task.
#[derive(Clone)]
pub struct PeerSender {
    /// The address the link dials (shared: a sender is cloned per message).
    addr: Arc<str>,
    shared: Arc<Shared>,
    _alive: Arc<Alive>,
}

impl PeerSender {
    /// Sends `item`, on this thread if the link is idle, else through the
    /// task; false if it was dropped (queue full, or the connection failed).
    pub fn send(&self, item: Outgoing) -> bool {
        let sent = self.try_send(item);
        if !sent {
            self.shared
                .link
                .dropped_sends
                .fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    fn try_send(&self, item: Outgoing) -> bool {
        let mut st = self.shared.lock();
        if st.queue.is_empty() && st.out.is_empty() && st.conn.is_some() {
            return self.send_now(st, item);
        }
        if st.queue.len() >= QUEUE_ITEMS {
            return false;
        }
        st.queue.push_back(item);
        drop(st);
        self.shared.wake.notify_one();
        true
    }

    /// The fast path: encode and write `item` now; leave a remainder to the task.
    fn send_now(&self, mut st: MutexGuard<'_, State>, item: Outgoing) -> bool {
        let frame = match item {
            Outgoing::Raft(m) => PeerFrame::Raft(vec![m]),
            Outgoing::Forward { id, req } => PeerFrame::Forward { id, req },
            Outgoing::Reply { id, reply } => PeerFrame::ForwardReply { id, reply },
            Outgoing::GroupRaft(g, m) => PeerFrame::Shard(ShardFrame::Raft(vec![(g, m)])),
            Outgoing::Shard(f) => PeerFrame::Shard(f),
        };
        let mut buf = BytesMut::new();
        if !encode_sealed(&[frame], st.tls.as_mut(), &mut buf) {
            return false;
        }
        let conn = st.conn.as_ref().expect("checked by the caller");
        let written = match conn.try_write(&buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                // Nothing of this frame was written. The task finds out on its
                // next write and reconnects; until then items queue.
                tracing::debug!("peer write failed: {e}");
                st.conn = None;
                st.tls = None;
                drop(st);
                self.shared.wake.notify_one();
                return false;
            }
        };
        self.shared
            .link
            .sent_bytes
            .fetch_add(written as u64, Ordering::Relaxed);
        if written == buf.len() {
            return true;
        }
        buf.advance(written);
        st.out = buf;
        drop(st);
        self.shared.wake.notify_one();
        true
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// The liveness reports to and from this peer.
    pub fn link(&self) -> &LinkState {
        &self.shared.link
    }
}

/// Every peer's sender, by id. Peers can be added while running (a membership
/// change brings a new member's address): every clone sees the same set.
#[derive(Clone, Default)]
pub struct Peers {
    inner: Arc<std::sync::RwLock<PeersInner>>,
    /// What our inbound side refused (counted there, exported by `/metrics`).
    rejections: Arc<super::inbound::Rejections>,
}

#[derive(Default)]
struct PeersInner {
    by_id: BTreeMap<NodeId, PeerSender>,
    /// What spawning a link needs; `None` for a `Default` (empty, fixed) set.
    spawn: Option<SpawnContext>,
}

#[derive(Clone)]
struct SpawnContext {
    self_id: NodeId,
    forwards: Arc<ForwardTable>,
    timeouts: LinkTimeouts,
    auth: Arc<PeerAuth>,
    /// Links are spawned on the runtime `Peers::start` ran on, whoever asks.
    runtime: tokio::runtime::Handle,
}

impl SpawnContext {
    fn spawn_link(&self, id: NodeId, addr: &str) -> PeerSender {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            link: LinkState::default(),
        });
        let link = Link {
            self_id: self.self_id,
            peer: id,
            addr: addr.to_string(),
            shared: shared.clone(),
            forwards: self.forwards.clone(),
            timeouts: self.timeouts,
            auth: self.auth.clone(),
        };
        self.runtime.spawn(link.run());
        PeerSender {
            _alive: Arc::new(Alive(shared.clone())),
            addr: Arc::from(addr),
            shared,
        }
    }
}

impl Peers {
    /// Spawns one sending task per peer (not `self_id`). Must be called within a
    /// tokio runtime; later links (`ensure`) are spawned on the same one.
    pub fn start(
        self_id: NodeId,
        addrs: &BTreeMap<NodeId, String>,
        forwards: Arc<ForwardTable>,
        timeouts: LinkTimeouts,
        auth: Arc<PeerAuth>,
    ) -> Peers {
        let ctx = SpawnContext {
            self_id,
            forwards,
            timeouts,
            auth,
            runtime: tokio::runtime::Handle::current(),
        };
        let by_id = addrs
            .iter()
            .filter(|(&id, _)| id != self_id)
            .map(|(&id, addr)| (id, ctx.spawn_link(id, addr)))
            .collect();
        Peers {
            inner: Arc::new(std::sync::RwLock::new(PeersInner {
                by_id,
                spawn: Some(ctx),
            })),
            rejections: Arc::default(),
        }
    }

    /// Inbound connections and messages refused so far.
    pub fn rejections(&self) -> &super::inbound::Rejections {
        &self.rejections
    }

    /// Makes sure there is a link to `id` at `addr`: adds one for a new peer, and
    /// replaces one whose address changed (its old task ends once unreferenced).
    /// Returns whether anything changed.
    pub fn ensure(&self, id: NodeId, addr: &str) -> bool {
        let mut inner = self.inner.write().expect("peers lock");
        let Some(ctx) = inner.spawn.clone() else {
            return false;
        };
        if id == ctx.self_id || inner.by_id.get(&id).is_some_and(|p| &*p.addr == addr) {
            return false;
        }
        tracing::info!(peer = id, addr, "peer address added");
        let sender = ctx.spawn_link(id, addr);
        inner.by_id.insert(id, sender);
        true
    }

    /// Every peer's id and address.
    pub fn addrs(&self) -> BTreeMap<NodeId, String> {
        let inner = self.inner.read().expect("peers lock");
        inner
            .by_id
            .iter()
            .map(|(&id, p)| (id, p.addr.to_string()))
            .collect()
    }

    pub fn get(&self, id: NodeId) -> Option<PeerSender> {
        self.inner
            .read()
            .expect("peers lock")
            .by_id
            .get(&id)
            .cloned()
    }

    /// How many peers (other nodes) there are.
    pub fn len(&self) -> usize {
        self.inner.read().expect("peers lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends group `group`'s Raft message to `msg.to` (dropped if unknown or full).
    pub fn send_group_raft(&self, group: GroupId, msg: Message) {
        match self.get(msg.to) {
            Some(p) => {
                if !p.send(Outgoing::GroupRaft(group, msg)) {
                    tracing::trace!(
                        group,
                        "peer queue full or link down: dropped a raft message"
                    );
                }
            }
            None => tracing::warn!(
                group,
                to = msg.to,
                "raft message for an unknown node dropped"
            ),
        }
    }

    /// Sends a Raft message to `msg.to` (dropped if unknown or full).
    pub fn send_raft(&self, msg: Message) {
        match self.get(msg.to) {
            Some(p) => {
                if !p.send(Outgoing::Raft(msg)) {
                    tracing::trace!("peer queue full or link down: dropped a raft message");
                }
            }
            None => tracing::warn!(to = msg.to, "raft message for an unknown node dropped"),
        }
    }
}

struct Link {
    self_id: NodeId,
    peer: NodeId,
    addr: String,
    shared: Arc<Shared>,
    forwards: Arc<ForwardTable>,
    timeouts: LinkTimeouts,
    auth: Arc<PeerAuth>,
}

impl Link {
    /// Runs until every `PeerSender` is dropped.
    async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        // The last refusal logged at WARN: a misconfigured peer is reported
        // once per distinct reason, not once per retry.
        let mut last_refusal: Option<String> = None;
        loop {
            if self.drop_queued() {
                return;
            }
            match self.open().await {
                Ok((stream, tls)) => {
                    last_refusal = None;
                    let connected_at = Instant::now();
                    tracing::info!(peer = self.peer, addr = %self.addr, "connected to peer");
                    let stream = Arc::new(stream);
                    {
                        let mut st = self.shared.lock();
                        st.out.clear();
                        st.conn = Some(stream.clone());
                        st.tls = tls;
                    }
                    self.shared.connected.store(true, Ordering::Relaxed);
                    let res = self.pump(&stream).await;
                    if connected_at.elapsed() >= BACKOFF_MAX {
                        // Back off afresh only after a connection that lasted: a
                        // middlebox accepting and closing at once is a failed dial.
                        backoff = BACKOFF_MIN;
                    }
                    {
                        let mut st = self.shared.lock();
                        st.conn = None;
                        st.tls = None;
                    }
                    self.shared.connected.store(false, Ordering::Relaxed);
                    match res {
                        Ok(()) => return,
                        Err(e) => tracing::info!(peer = self.peer, "peer connection lost: {e}"),
                    }
                }
                Err(HandshakeError::Refused(e)) if last_refusal.as_ref() != Some(&e) => {
                    tracing::warn!(peer = self.peer, addr = %self.addr, "{e}");
                    last_refusal = Some(e);
                }
                Err(e) => {
                    tracing::debug!(peer = self.peer, addr = %self.addr, "connect failed: {e}")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Dials the peer and runs the dialer's side of the handshakes (with
    /// `--tls-peers`: TLS, asking for the peer's node name, then ours
    /// inside it), each bounded by `LinkTimeouts::connect`. Returns the
    /// socket and, with TLS, the session that seals what we write on it
    /// (the acceptor writes nothing after the handshake, so nothing is
    /// left to read).
    async fn open(&self) -> Result<(TcpStream, Option<rustls::ClientConnection>), HandshakeError> {
        let bound = self.timeouts.connect;
        let late = |what| HandshakeError::Io(format!("no {what} within {bound:?}"));
        let mut stream = match tokio::time::timeout(bound, TcpStream::connect(&self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(HandshakeError::Io(e.to_string())),
            Err(_) => return Err(late("connection")),
        };
        let _ = stream.set_nodelay(true);
        self.timeouts.set_tcp_keepalive(&stream);
        let (from, to) = (self.self_id, self.peer);
        let dial = async move {
            let Some(tls) = &self.auth.tls else {
                handshake::dial(&mut stream, &self.auth, from, to).await?;
                return Ok((stream, None));
            };
            let name = tls.server_name(to).map_err(HandshakeError::Refused)?;
            let mut stream = tls
                .connector
                .connect(name, stream)
                .await
                .map_err(handshake::tls_failure)?;
            handshake::dial(&mut stream, &self.auth, from, to).await?;
            let (tcp, mut session) = stream.into_inner();
            // `encode_sealed` drains every record at once: no limit needed.
            session.set_buffer_limit(None);
            Ok((tcp, Some(session)))
        };
        match tokio::time::timeout(bound, dial).await {
            Ok(res) => res,
            Err(_) => Err(late("handshake answer")),
        }
    }

    /// Writes what is left unwritten, then what is queued (in batches), and
    /// a keepalive every tick, until the connection fails or goes silent
    /// (`Err`) or the link closes (`Ok`).
    async fn pump(&self, stream: &TcpStream) -> io::Result<()> {
        enum Wait {
            Wake,
            Writable,
        }
        let mut tick = tokio::time::interval(self.timeouts.keepalive);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let conn = new_conn_id();
        let mut heard = Progress::new(0, Instant::now());
        loop {
            let wait = {
                let mut st = self.shared.lock();
                if st.conn.is_none() {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "write failed"));
                }
                if st.out.is_empty() {
                    let State {
                        queue, out, tls, ..
                    } = &mut *st;
                    encode_sealed(&batch(queue), tls.as_mut(), out);
                }
                if st.out.is_empty() {
                    if st.closed {
                        return Ok(());
                    }
                    Wait::Wake
                } else {
                    // Bounded writes: the driver may be waiting for this lock.
                    let chunk = st.out.len().min(MAX_WRITE_BYTES);
                    match stream.try_write(&st.out[..chunk]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            st.out.advance(n);
                            let sent = &self.shared.link.sent_bytes;
                            sent.fetch_add(n as u64, Ordering::Relaxed);
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Wait::Writable,
                        Err(e) => return Err(e),
                    }
                }
            };
            let ticked = match wait {
                Wait::Wake => tokio::select! {
                    _ = self.shared.wake.notified() => false,
                    _ = tick.tick() => true,
                },
                Wait::Writable => tokio::select! {
                    r = stream.writable() => { r?; false }
                    _ = tick.tick() => true,
                },
            };
            if ticked {
                self.keepalive(conn, &mut heard)?;
            }
        }
    }

    /// Fails if the peer has reported no new bytes on connection `conn` for
    /// `dead_after`; else queues a `Keepalive` with our report to the peer.
    fn keepalive(&self, conn: u64, heard: &mut Progress) -> io::Result<()> {
        let report = self.shared.link.reported(conn);
        let still = heard.observe(report, Instant::now());
        let mut st = self.shared.lock();
        if still >= self.timeouts.dead_after {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer has read nothing from us for {} ms ({} bytes left unwritten); re-dialling",
                    still.as_millis(),
                    st.out.len()
                ),
            ));
        }
        let (heard_conn, read) = self.shared.link.inbound();
        let frame = PeerFrame::Keepalive {
            conn,
            heard_conn,
            read,
        };
        let State { out, tls, .. } = &mut *st;
        encode_sealed(&[frame], tls.as_mut(), out);
        Ok(())
    }

    /// Drops what is queued or half-written (failing forwards as not
    /// sent); true if the link is closed.
    fn drop_queued(&self) -> bool {
        let mut st = self.shared.lock();
        st.out.clear();
        for item in st.queue.drain(..) {
            if let Outgoing::Forward { id, .. } = item {
                self.forwards.not_sent(id);
            }
        }
        st.closed
    }
}

/// Appends `frame` with its 4-byte big-endian length (the peer's
/// `wire::FrameDecoder`). False, and nothing appended, if it is too large.
fn encode_into(frame: &PeerFrame, out: &mut BytesMut) -> bool {
    let hint = match frame {
        PeerFrame::Raft(msgs) => msgs.iter().map(|m| m.size_bytes() as usize).sum(),
        _ => 64,
    };
    if wire::encode_into(frame, hint, out).is_none() {
        tracing::warn!("peer frame over the size limit ({MAX_FRAME_BYTES} bytes) dropped");
        return false;
    }
    true
}

/// Appends `frames` as they go on the wire: each length-prefixed, all of
/// them sealed into TLS records when the link runs TLS. A frame over the
/// size limit is dropped (the others still go); false if nothing was
/// appended, or sealing failed (the link then fails on its next write, as
/// nothing of these frames went out).
fn encode_sealed(
    frames: &[PeerFrame],
    tls: Option<&mut rustls::ClientConnection>,
    out: &mut BytesMut,
) -> bool {
    let Some(tls) = tls else {
        return frames
            .iter()
            .fold(false, |any, f| encode_into(f, out) | any);
    };
    let mut plain = BytesMut::new();
    if !frames
        .iter()
        .fold(false, |any, f| encode_into(f, &mut plain) | any)
    {
        return false;
    }
    use std::io::Write;
    if let Err(e) = tls.writer().write_all(&plain) {
        tracing::warn!("TLS refused a peer frame: {e}");
        return false;
    }
    let mut w = out.writer();
    while tls.wants_write() {
        if let Err(e) = tls.write_tls(&mut w) {
            tracing::warn!("TLS failed to seal a peer frame: {e}");
            return false;
        }
    }
    true
}

/// Takes what is queued (up to the batch limits) and packs consecutive Raft
/// messages into one frame; frames keep the queue's order.
fn batch(queue: &mut VecDeque<Outgoing>) -> Vec<PeerFrame> {
    let mut frames = Vec::new();
    let mut raft: Vec<Message> = Vec::new();
    let mut group_raft: Vec<(GroupId, Message)> = Vec::new();
    let mut raft_bytes = 0u64;
    let mut taken = 0;
    while taken < MAX_BATCH_MESSAGES * 4 {
        let Some(item) = queue.pop_front() else { break };
        taken += 1;
        let other = match item {
            Outgoing::Raft(m) => {
                flush_groups(&mut frames, &mut group_raft);
                raft_bytes += m.size_bytes();
                raft.push(m);
                None
            }
            Outgoing::GroupRaft(g, m) => {
                flush(&mut frames, &mut raft);
                raft_bytes += m.size_bytes();
                group_raft.push((g, m));
                None
            }
            Outgoing::Forward { id, req } => Some(PeerFrame::Forward { id, req }),
            Outgoing::Reply { id, reply } => Some(PeerFrame::ForwardReply { id, reply }),
            Outgoing::Shard(f) => Some(PeerFrame::Shard(f)),
        };
        if let Some(frame) = other {
            flush(&mut frames, &mut raft);
            flush_groups(&mut frames, &mut group_raft);
            frames.push(frame);
        }
        let batched = raft.len() + group_raft.len();
        if raft_bytes >= MAX_BATCH_BYTES || batched >= MAX_BATCH_MESSAGES {
            flush(&mut frames, &mut raft);
            flush_groups(&mut frames, &mut group_raft);
        }
        if raft.is_empty() && group_raft.is_empty() {
            raft_bytes = 0;
        }
    }
    flush(&mut frames, &mut raft);
    flush_groups(&mut frames, &mut group_raft);
    frames
}

/// Closes the group-tagged Raft batch being built, if any, as the next frame.
fn flush_groups(frames: &mut Vec<PeerFrame>, batch: &mut Vec<(GroupId, Message)>) {
    if !batch.is_empty() {
        frames.push(PeerFrame::Shard(ShardFrame::Raft(std::mem::take(batch))));
    }
}

/// Closes the Raft batch being built, if any, as the next frame.
fn flush(frames: &mut Vec<PeerFrame>, raft: &mut Vec<Message>) {
    if !raft.is_empty() {
        frames.push(PeerFrame::Raft(std::mem::take(raft)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use raft::MessageBody;
    use tokio_util::codec::FramedRead;

    type Frames = FramedRead<TcpStream, wire::FrameDecoder>;

    fn start(addrs: &BTreeMap<NodeId, String>, timeouts: LinkTimeouts) -> Peers {
        let auth = Arc::new(PeerAuth::default());
        Peers::start(1, addrs, Arc::new(ForwardTable::default()), timeouts, auth)
    }

    /// Node 2's side of the handshake with node 1 on `stream`; then the
    /// frames that follow it.
    async fn handshaken(stream: TcpStream) -> Frames {
        let mut frames = FramedRead::new(stream, wire::handshake_codec());
        let from = handshake::accept(
            &mut frames,
            &PeerAuth::default(),
            2,
            |id| id == 1,
            |_| Ok(()),
        )
        .await;
        assert_eq!(from, Ok(1));
        frames.decoder_mut().set_max_frame_length(MAX_FRAME_BYTES);
        frames
    }

    fn snapshot_chunk(to: NodeId, seq: u64) -> Message {
        // A large message, so that socket buffers fill and writes go partial.
        let data = bytes::Bytes::from(vec![seq as u8; 16 * 1024]);
        let meta = raft::SnapshotMeta {
            index: seq,
            term: 1,
        };
        Message {
            from: 1,
            to,
            term: 1,
            body: MessageBody::Snapshot {
                conf: None,
                meta,
                offset: 0,
                data,
                done: false,
            },
        }
    }

    /// Fast-path writes from several threads, partial writes and queued
    /// batches interleave without reordering or tearing a frame: after the
    /// handshake the reader sees each sender's messages in its order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_arrive_whole_and_in_order_under_a_slow_reader() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let addrs: BTreeMap<NodeId, String> = [(1, "127.0.0.1:1".to_string()), (2, addr)].into();
        let timeouts = LinkTimeouts::for_election_timeout(Duration::from_millis(300));
        let peers = start(&addrs, timeouts);
        let (stream, _) = listener.accept().await.unwrap();
        let mut frames = handshaken(stream).await;
        while !peers.get(2).unwrap().is_connected() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        const PER_THREAD: u64 = 2000;
        let senders: Vec<_> = (0..2u64)
            .map(|t| {
                let peers = peers.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        // Thread t sends seq t*1e6 + i: one increasing sequence per thread.
                        peers.send_raft(snapshot_chunk(2, t * 1_000_000 + i));
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await; // let the socket fill up
        for s in senders {
            s.join().unwrap();
        }
        let mut last = [None::<u64>; 2];
        let mut got = 0;
        while got < 2 * PER_THREAD {
            let next = tokio::time::timeout(Duration::from_secs(2), frames.next()).await;
            let Ok(Some(body)) = next else { break };
            let msgs = match wire::decode(&body.unwrap()).unwrap() {
                PeerFrame::Raft(msgs) => msgs,
                PeerFrame::Keepalive { .. } => continue,
                other => panic!("not a raft frame: {other:?}"),
            };
            for m in msgs {
                let MessageBody::Snapshot { meta, data, .. } = m.body else {
                    panic!("not a snapshot chunk")
                };
                assert!(data.iter().all(|&b| b == meta.index as u8), "torn payload");
                let t = (meta.index / 1_000_000) as usize;
                assert!(
                    last[t].is_none_or(|l| meta.index > l),
                    "reordered: {} after {:?}",
                    meta.index,
                    last[t]
                );
                last[t] = Some(meta.index);
                got += 1;
            }
        }
        // Drops are allowed (bounded queue), but most must have arrived.
        assert!(got > PER_THREAD, "only {got} messages arrived");
    }

    fn heartbeat(seq: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term: seq,
            body: MessageBody::Heartbeat {
                commit: 0,
                read_round: 0,
            },
        }
    }

    /// A forwarded request queued between Raft messages goes out between
    /// them: batching packs only consecutive Raft messages.
    #[test]
    fn batch_keeps_the_queue_order() {
        let mut q: VecDeque<Outgoing> = [
            Outgoing::Raft(heartbeat(1)),
            Outgoing::Forward {
                id: 7,
                req: ForwardRequest::Register,
            },
            Outgoing::Raft(heartbeat(2)),
            Outgoing::Raft(heartbeat(3)),
        ]
        .into();
        let got: Vec<String> = batch(&mut q)
            .iter()
            .map(|f| match f {
                PeerFrame::Raft(ms) => {
                    format!("raft{:?}", ms.iter().map(|m| m.term).collect::<Vec<_>>())
                }
                PeerFrame::Forward { id, .. } => format!("forward{id}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(got, ["raft[1]", "forward7", "raft[2, 3]"]);
    }

    /// A peer that accepts the connection and then reads and discards
    /// everything (never reporting our bytes back) has the link closed and
    /// re-dialled after `dead_after`; an attentive peer keeps its link.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_whose_peer_reports_nothing_is_redialled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let addrs: BTreeMap<NodeId, String> = [(1, "127.0.0.1:1".to_string()), (2, addr)].into();
        let timeouts = LinkTimeouts {
            connect: Duration::from_secs(1),
            keepalive: Duration::from_millis(20),
            dead_after: Duration::from_millis(300),
        };
        let peers = start(&addrs, timeouts);
        let swallow = |mut frames: Frames| {
            tokio::spawn(async move { while let Some(Ok(_)) = frames.next().await {} })
        };
        let (first, _) = listener.accept().await.unwrap();
        let first = handshaken(first).await;
        let t0 = Instant::now();
        swallow(first);
        let (second, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the silent link was never re-dialled")
            .unwrap();
        let waited = t0.elapsed();
        assert!(waited >= timeouts.dead_after, "re-dialled after {waited:?}");
        // Now an attentive peer: it reports progress, so the link stays.
        let sender = peers.get(2).unwrap().clone();
        let mut frames = handshaken(second).await;
        let reporter = tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(body)) = frames.next().await {
                n += body.len() as u64;
                if let Ok(PeerFrame::Keepalive { conn, .. }) = wire::decode(&body) {
                    sender.link().note_report(conn, n);
                }
            }
        });
        let third = tokio::time::timeout(timeouts.dead_after * 4, listener.accept()).await;
        assert!(third.is_err(), "a link with a live peer was re-dialled");
        reporter.abort();
    }
}
