//! Inbound peer connections: accept, with `--tls-peers` run the server side
//! of mutual TLS (a client certificate signed by the cluster CA required),
//! run the acceptor's side of the handshake (`super::handshake`: cluster id,
//! node ids, the certificate naming the claimed id, proof of the shared
//! secret), then read frames and dispatch them (Raft messages to the driver,
//! forwarded requests to `forward::serve`, replies to the forward table).
//!
//! Invariants: after the handshake a connection is read-only; every failure
//! (oversized frame, undecodable bytes, a `Hello` naming an unknown node or
//! another node than us, another cluster, a failed TLS handshake, a
//! certificate that does not name the claimed node, a missing or wrong proof, a
//! message whose `from`/`to` disagree with the `Hello`, EOF mid-frame) is
//! logged and closes that connection only. Until the handshake completes,
//! frames are capped at `wire::HANDSHAKE_MAX_FRAME_BYTES`. At most
//! [`MAX_PEER_CONNECTIONS`] are open at once, and at most
//! [`MAX_PENDING_HANDSHAKES`] of them still in their handshake, at most
//! [`MAX_PENDING_PER_SOURCE`] from one address: a new one beyond that
//! closes an unauthenticated one of the busiest source (idle sockets cannot
//! lock members out, and one address cannot evict another's handshake).
//! The handshakes (TLS and ours) must complete
//! within `LinkTimeouts::dead_after`, and a connection on which no byte
//! arrives for that long is closed (live links carry keepalives:
//! `super::liveness`).
//! The peer's keepalives name its connection (so our reports back count the
//! bytes read on its newest one) and report what it read of ours.
//! Refusals and closes are counted in [`Rejections`] (held by `Peers`), and
//! bytes read after the handshake in the peer's `LinkState`, for `/metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
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
use crate::stream::Stream;

pub const MAX_PEER_CONNECTIONS: usize = 64;
/// Most connections in their handshake at once (see `Pending`).
pub const MAX_PENDING_HANDSHAKES: usize = 16;
/// Most connections in their handshake from one source address.
pub const MAX_PENDING_PER_SOURCE: usize = 8;

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

type Frames = FramedRead<CountingRead<Stream>, wire::FrameDecoder>;

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
        let guard = pending.enter(addr.ip());
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
/// [`MAX_PENDING_HANDSHAKES`] in all and [`MAX_PENDING_PER_SOURCE`] from one
/// source address: one more closes the oldest of its own source if that
/// source is at its cap, else the oldest of the source holding the most
/// (see [`victim`]). So idle or slow unauthenticated sockets can never hold
/// the peer port's connection slots against a member that reconnects (its
/// handshake takes one round trip), and one address flooding the port only
/// ever evicts its own connections, never a member's handshake from
/// another address.
#[derive(Default)]
struct Pending {
    next: std::sync::atomic::AtomicU64,
    list: std::sync::Mutex<VecDeque<PendingConn>>,
}

struct PendingConn {
    seq: u64,
    source: IpAddr,
    task: Option<tokio::task::AbortHandle>,
}

/// Removes its connection from [`Pending`] when the handshake ends (or the
/// connection does).
struct PendingGuard {
    pending: Arc<Pending>,
    seq: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.lock().retain(|c| c.seq != self.seq);
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<PendingConn>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(self: &Arc<Self>, source: IpAddr) -> PendingGuard {
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().push_back(PendingConn {
            seq,
            source,
            task: None,
        });
        PendingGuard {
            pending: self.clone(),
            seq,
        }
    }

    /// Attaches connection `seq`'s task (if it is still pending) and evicts
    /// pending connections beyond the caps.
    fn register(&self, seq: u64, task: tokio::task::AbortHandle, addr: SocketAddr) {
        let mut list = self.lock();
        if let Some(c) = list.iter_mut().find(|c| c.seq == seq) {
            c.task = Some(task);
        }
        while let Some(i) = victim(&sources_of(&list), addr.ip()) {
            let gone = list.remove(i).expect("victim is an index of the list");
            if let Some(task) = gone.task {
                task.abort();
            }
            tracing::debug!(%addr, source = %gone.source, "too many peer connections in their handshake: closed the oldest of the busiest source");
        }
    }
}

fn sources_of(list: &VecDeque<PendingConn>) -> Vec<IpAddr> {
    list.iter().map(|c| c.source).collect()
}

/// Which pending connection to close (an index into `sources`, the source
/// address of each pending connection, oldest first) after one from
/// `newest` arrived; `None` once within both caps. The oldest from `newest`
/// if that source is over [`MAX_PENDING_PER_SOURCE`]; else, while over
/// [`MAX_PENDING_HANDSHAKES`], the oldest from the source holding the most
/// (ties: the source whose oldest is oldest).
fn victim(sources: &[IpAddr], newest: IpAddr) -> Option<usize> {
    let mut count: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for s in sources {
        *count.entry(*s).or_default() += 1;
    }
    if count.get(&newest).copied().unwrap_or(0) > MAX_PENDING_PER_SOURCE {
        return sources.iter().position(|s| *s == newest);
    }
    if sources.len() <= MAX_PENDING_HANDSHAKES {
        return None;
    }
    let most = count.values().copied().max()?;
    sources.iter().position(|s| count[s] == most)
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
        let deadline = self.timeouts.dead_after;
        let handshakes = async {
            let tls = self.auth.tls.as_ref().map(|t| &t.acceptor);
            let stream = Stream::accept(stream, tls)
                .await
                .map_err(handshake::tls_failure)?;
            let cert = stream.peer_certificate();
            let mut frames = FramedRead::new(CountingRead::new(stream), wire::handshake_codec());
            // A member added since start (a membership change) is known to `peers`.
            let is_member = |id| self.members.contains_key(&id) || self.peers.get(id).is_some();
            let identity = |id| match &self.auth.tls {
                Some(tls) => tls.check_identity(cert.as_ref(), id),
                None => Ok(()),
            };
            let from =
                handshake::accept(&mut frames, &self.auth, self.self_id, is_member, identity)
                    .await?;
            Ok::<_, HandshakeError>((from, frames))
        };
        let (from, mut frames) = match tokio::time::timeout(deadline, handshakes).await {
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
        // TLS: the dialer dropped its link without a close_notify. Between
        // frames that is a plain disconnect, as EOF is on TCP (frames are
        // self-contained; a cut inside one is still an error).
        Some(Err(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof && frames.read_buffer().is_empty() =>
        {
            Ok(None)
        }
        Some(Err(e)) => Err(format!("bad frame: {e}")),
        Some(Ok(body)) => wire::decode(&body)
            .map(Some)
            .map_err(|e| format!("undecodable frame: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// One address flooding the port only ever evicts its own handshakes;
    /// with many sources, the busiest loses its oldest.
    #[test]
    fn the_busiest_source_loses_its_oldest_handshake() {
        let mut list = vec![ip(1)];
        // An attacker at .2 connects again and again.
        for _ in 0..100 {
            list.push(ip(2));
            while let Some(i) = victim(&list, ip(2)) {
                assert_eq!(list[i], ip(2), "evicted another source's handshake");
                list.remove(i);
            }
        }
        assert_eq!(
            list.iter().filter(|s| **s == ip(2)).count(),
            MAX_PENDING_PER_SOURCE
        );
        assert_eq!(list[0], ip(1), "the member's handshake stays");

        // Many sources at their per-source cap: over the global cap, the
        // source with the most (oldest first among equals) loses its oldest.
        let mut list: Vec<IpAddr> = (0..MAX_PENDING_HANDSHAKES)
            .map(|i| ip(10 + (i % 4) as u8))
            .collect();
        assert_eq!(victim(&list, ip(13)), None);
        list.push(ip(99));
        assert_eq!(
            victim(&list, ip(99)),
            Some(0),
            "the oldest of the busiest (.10)"
        );
        list.remove(0);
        assert_eq!(victim(&list, ip(99)), None);
        list.insert(0, ip(1));
        list.push(ip(14));
        let i = victim(&list, ip(14)).unwrap();
        assert_ne!(
            list[i],
            ip(1),
            "a lone member's handshake is never the busiest"
        );
    }
}
