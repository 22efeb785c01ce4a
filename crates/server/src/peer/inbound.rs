//! Inbound peer connections: accept, run the acceptor's side of the
//! handshake (`super::handshake`: cluster id, node ids, proof of the shared
//! secret), then read frames and dispatch them (Raft messages to the driver,
//! forwarded requests to `forward::serve`, replies to the forward table).
//!
//! Invariants: after the handshake a connection is read-only; every failure
//! (oversized frame, undecodable bytes, a `Hello` naming an unknown node or
//! another node than us, another cluster, a missing or wrong proof, a
//! message whose `from`/`to` disagree with the `Hello`, EOF mid-frame) is
//! logged and closes that connection only. Until the handshake completes,
//! frames are capped at `wire::HANDSHAKE_MAX_FRAME_BYTES`. At most
//! [`MAX_PEER_CONNECTIONS`] are open at once, and at most
//! [`MAX_PENDING_HANDSHAKES`] of them still in their handshake: a new one
//! beyond that closes the oldest unauthenticated one (idle sockets cannot
//! lock members out). The handshake must complete
//! within `LinkTimeouts::dead_after`, and a connection on which no byte
//! arrives for that long is closed (live links carry keepalives:
//! `super::liveness`).
//! The peer's keepalives name its connection (so our reports back count the
//! bytes read on its newest one) and report what it read of ours.
//! Refusals and closes are counted in [`Rejections`] (held by `Peers`), and
//! bytes read after the handshake in the peer's `LinkState`, for `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use raft::NodeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::FramedRead;

use super::handshake::{self, HandshakeError, PeerAuth};
use super::liveness::{CountingRead, LinkTimeouts};
use super::shard_wire::ShardFrame;
use super::wire::{self, PeerFrame};
use crate::driver::DriverHandle;
use crate::forward::{self, ForwardTable};
use crate::peer::Peers;

pub const MAX_PEER_CONNECTIONS: usize = 64;
/// Most connections in their handshake at once (see `Pending`).
pub const MAX_PENDING_HANDSHAKES: usize = 16;

/// Where a sharded process takes the group-tagged frames
/// (`shard::forward::Sink`). `Err` closes the connection.
pub trait ShardSink: Send + Sync {
    fn on_frame(&self, from: NodeId, frame: ShardFrame) -> Result<(), String>;
}

/// What an inbound connection needs.
#[derive(Clone)]
pub struct Inbound {
    pub self_id: NodeId,
    pub members: Arc<BTreeMap<NodeId, String>>,
    /// The single-group driver (`None` in a sharded process).
    pub driver: Option<DriverHandle>,
    /// A sharded process's frame sink (`None` in a single-group node).
    pub shard: Option<Arc<dyn ShardSink>>,
    pub peers: Peers,
    pub forwards: Arc<ForwardTable>,
    pub timeouts: LinkTimeouts,
    /// The cluster id and secret peers must prove (`super::handshake`).
    pub auth: Arc<PeerAuth>,
}

/// Inbound connections and messages refused, counted for `/metrics`.
#[derive(Debug, Default)]
pub struct Rejections {
    /// Handshakes refused: another cluster, a wrong secret, a non-member.
    pub handshakes_refused: AtomicU64,
    /// Handshakes not completed in time.
    pub handshakes_timed_out: AtomicU64,
    /// Authenticated connections closed for what they sent (a bad or
    /// undecodable frame, a message naming the wrong sender) or for silence.
    pub connections_closed: AtomicU64,
    /// Raft messages dropped for impossible fields (never stepped).
    pub messages_dropped: AtomicU64,
}

type Frames = FramedRead<CountingRead<TcpStream>, tokio_util::codec::LengthDelimitedCodec>;

/// Accepts peer connections until the task is dropped.
pub async fn accept_loop(listener: TcpListener, ctx: Inbound) {
    let limit = Arc::new(Semaphore::new(MAX_PEER_CONNECTIONS));
    let pending = Arc::new(Pending::default());
    loop {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let guard = pending.enter();
        let seq = guard.seq;
        let task = tokio::spawn(async move {
            if let Err(e) = ctx.serve(stream, addr, guard).await {
                tracing::warn!(%addr, "peer connection closed: {e}");
            }
            drop(permit);
        });
        pending.register(seq, task.abort_handle(), addr);
    }
}

/// Connections still in their handshake, oldest first. At most
/// [`MAX_PENDING_HANDSHAKES`]: one more aborts the oldest, so idle or slow
/// unauthenticated sockets can never hold the peer port's connection slots
/// against a member that reconnects (its handshake takes one round trip).
#[derive(Default)]
struct Pending {
    next: std::sync::atomic::AtomicU64,
    list: std::sync::Mutex<std::collections::VecDeque<(u64, Option<tokio::task::AbortHandle>)>>,
}

/// Removes its connection from [`Pending`] when the handshake ends (or the
/// connection does).
struct PendingGuard {
    pending: Arc<Pending>,
    seq: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.lock().retain(|(s, _)| *s != self.seq);
    }
}

impl Pending {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::VecDeque<(u64, Option<tokio::task::AbortHandle>)>,
    > {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(self: &Arc<Self>) -> PendingGuard {
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().push_back((seq, None));
        PendingGuard {
            pending: self.clone(),
            seq,
        }
    }

    /// Attaches connection `seq`'s task (if it is still pending) and evicts
    /// the oldest pending connections beyond the cap.
    fn register(&self, seq: u64, task: tokio::task::AbortHandle, addr: SocketAddr) {
        let mut list = self.lock();
        if let Some(entry) = list.iter_mut().find(|(s, _)| *s == seq) {
            entry.1 = Some(task);
        }
        while list.len() > MAX_PENDING_HANDSHAKES {
            if let Some((_, Some(oldest))) = list.pop_front() {
                oldest.abort();
                tracing::debug!(%addr, "too many peer connections in their handshake: closed the oldest");
            }
        }
    }
}

impl Inbound {
    async fn serve(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        pending: PendingGuard,
    ) -> Result<(), String> {
        let _ = stream.set_nodelay(true);
        self.timeouts.set_tcp_keepalive(&stream);
        let mut frames = FramedRead::new(CountingRead::new(stream), wire::handshake_codec());
        let deadline = self.timeouts.dead_after;
        // A member added since start (a membership change) is known to `peers`.
        let is_member = |id| self.members.contains_key(&id) || self.peers.get(id).is_some();
        let handshake = handshake::accept(&mut frames, &self.auth, self.self_id, is_member);
        let from = match tokio::time::timeout(deadline, handshake).await {
            Ok(Ok(from)) => from,
            Ok(Err(HandshakeError::Refused(e))) => {
                count(&self.peers.rejections().handshakes_refused);
                tracing::warn!(%addr, "peer refused: {e}");
                return Ok(());
            }
            Ok(Err(HandshakeError::Io(e))) => {
                tracing::debug!(%addr, "peer connection closed: {e}");
                return Ok(());
            }
            Err(_) => {
                count(&self.peers.rejections().handshakes_timed_out);
                return Err(format!(
                    "no complete handshake within {} ms",
                    deadline.as_millis()
                ));
            }
        };
        drop(pending); // authenticated: no longer counts against the handshake cap
                       // Authenticated: full-size frames from here on.
        frames
            .decoder_mut()
            .set_max_frame_length(wire::MAX_FRAME_BYTES);
        tracing::info!(peer = from, "peer connected");
        let link = self.peers.get(from);
        let mut counted = frames.get_ref().read_bytes();
        loop {
            let next = next_live(&mut frames, deadline).await;
            if let Some(p) = &link {
                let read = frames.get_ref().read_bytes();
                let received = &p.link().received_bytes;
                received.fetch_add(read - counted, Ordering::Relaxed);
                counted = read;
            }
            let frame = match next {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    count(&self.peers.rejections().connections_closed);
                    return Err(e);
                }
            };
            if let PeerFrame::Keepalive {
                conn,
                heard_conn,
                read,
            } = frame
            {
                if let Some(p) = self.peers.get(from) {
                    p.link().note_inbound(conn, frames.get_ref().counter());
                    p.link().note_report(heard_conn, read);
                }
                continue;
            }
            if let Err(e) = self.dispatch(from, frame) {
                count(&self.peers.rejections().connections_closed);
                return Err(e);
            }
        }
        tracing::info!(peer = from, "peer disconnected");
        Ok(())
    }

    fn dispatch(&self, from: NodeId, frame: PeerFrame) -> Result<(), String> {
        match frame {
            PeerFrame::Hello { .. } | PeerFrame::Challenge { .. } | PeerFrame::Proof { .. } => {
                return Err("a handshake frame after the handshake".into())
            }
            PeerFrame::Shard(frame) => match &self.shard {
                Some(sink) => sink.on_frame(from, frame)?,
                None => return Err("a sharded frame on a single-group node".into()),
            },
            PeerFrame::Raft(_) | PeerFrame::Forward { .. } if self.driver.is_none() => {
                return Err("a single-group frame on a sharded process".into())
            }
            PeerFrame::Raft(msgs) => {
                let driver = self.driver.as_ref().expect("checked above");
                for m in msgs {
                    if m.from != from || m.to != self.self_id {
                        return Err(format!(
                            "message {}->{} on the link from {from}",
                            m.from, m.to
                        ));
                    }
                    if let Err(field) = m.check_bounds() {
                        // Corrupt or hostile (issue 10's term bomb): never
                        // stepped, so never adopted or persisted.
                        count(&self.peers.rejections().messages_dropped);
                        tracing::warn!(
                            peer = from,
                            "dropped a raft message with an impossible {field}: {}",
                            m.describe()
                        );
                        continue;
                    }
                    tracing::trace!("recv {}", m.describe());
                    driver.step(m);
                }
            }
            PeerFrame::Forward { id, req } => {
                let driver = self.driver.clone().expect("checked above");
                forward::serve(driver, self.peers.clone(), from, id, req)
            }
            PeerFrame::ForwardReply { id, reply } => {
                self.forwards
                    .complete(from, id, forward::from_wire(reply))?
            }
            PeerFrame::Keepalive { .. } => {} // handled by `serve`
        }
        Ok(())
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The next frame; an error once no byte has arrived for `silence`
/// (a large frame still arriving is progress).
async fn next_live(frames: &mut Frames, silence: Duration) -> Result<Option<PeerFrame>, String> {
    loop {
        let before = frames.get_ref().read_bytes();
        match tokio::time::timeout(silence, next(frames)).await {
            Ok(res) => return res,
            Err(_) if frames.get_ref().read_bytes() > before => continue,
            Err(_) => return Err(format!("nothing received for {} ms", silence.as_millis())),
        }
    }
}

async fn next(frames: &mut Frames) -> Result<Option<PeerFrame>, String> {
    match frames.next().await {
        None => Ok(None),
        Some(Err(e)) => Err(format!("bad frame: {e}")),
        Some(Ok(body)) => wire::decode(&body)
            .map(Some)
            .map_err(|e| format!("undecodable frame: {e}")),
    }
}
