//! Outbound connections: one task per peer that dials it, says `Hello`, and
//! writes everything queued for it, batching what has piled up into as few
//! frames and one flush.
//!
//! Invariants: the queue is bounded ([`QUEUE_ITEMS`]); `try_send` never
//! blocks the driver thread. While disconnected, queued items are dropped
//! (Raft retransmits; a forwarded request is failed as not sent, so the
//! client path knows it never reached a leader). Reconnects back off from
//! 10 ms to 1 s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use raft::{Message, NodeId};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

use super::wire::{self, ForwardReply, ForwardRequest, PeerFrame, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES};
use crate::forward::ForwardTable;

/// Items queued per peer before new ones are dropped.
pub const QUEUE_ITEMS: usize = 8192;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One thing to send to a peer.
#[derive(Debug)]
pub enum Outgoing {
    Raft(Message),
    Forward { id: u64, req: ForwardRequest },
    Reply { id: u64, reply: ForwardReply },
}

/// The handle to one peer's sending task.
#[derive(Clone)]
pub struct PeerSender {
    tx: mpsc::Sender<Outgoing>,
    connected: Arc<AtomicBool>,
}

impl PeerSender {
    /// Queues `item`; false if it was dropped (queue full or task gone).
    pub fn send(&self, item: Outgoing) -> bool {
        self.tx.try_send(item).is_ok()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// Every peer's sender, by id.
#[derive(Clone, Default)]
pub struct Peers {
    by_id: Arc<BTreeMap<NodeId, PeerSender>>,
}

impl Peers {
    /// Spawns one sending task per peer (not `self_id`).
    pub fn start(self_id: NodeId, addrs: &BTreeMap<NodeId, String>, forwards: Arc<ForwardTable>) -> Peers {
        let mut by_id = BTreeMap::new();
        for (&id, addr) in addrs.iter().filter(|(&id, _)| id != self_id) {
            let (tx, rx) = mpsc::channel(QUEUE_ITEMS);
            let connected = Arc::new(AtomicBool::new(false));
            let link = Link { self_id, peer: id, addr: addr.clone(), connected: connected.clone(), forwards: forwards.clone() };
            tokio::spawn(link.run(rx));
            by_id.insert(id, PeerSender { tx, connected });
        }
        Peers { by_id: Arc::new(by_id) }
    }

    pub fn get(&self, id: NodeId) -> Option<&PeerSender> {
        self.by_id.get(&id)
    }

    /// Queues a Raft message for `msg.to` (dropped if unknown or full).
    pub fn send_raft(&self, msg: Message) {
        match self.by_id.get(&msg.to) {
            Some(p) => {
                if !p.send(Outgoing::Raft(msg)) {
                    tracing::trace!("peer queue full: dropped a raft message");
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
    connected: Arc<AtomicBool>,
    forwards: Arc<ForwardTable>,
}

impl Link {
    /// Runs until every `PeerSender` is dropped.
    async fn run(self, mut rx: mpsc::Receiver<Outgoing>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            self.drop_queued(&mut rx);
            if rx.is_closed() {
                return;
            }
            match TcpStream::connect(&self.addr).await {
                Ok(stream) => {
                    backoff = BACKOFF_MIN;
                    let _ = stream.set_nodelay(true);
                    tracing::info!(peer = self.peer, addr = %self.addr, "connected to peer");
                    self.connected.store(true, Ordering::Relaxed);
                    let res = self.pump(stream, &mut rx).await;
                    self.connected.store(false, Ordering::Relaxed);
                    match res {
                        Ok(()) => return,
                        Err(e) => tracing::info!(peer = self.peer, "peer connection lost: {e}"),
                    }
                }
                Err(e) => tracing::debug!(peer = self.peer, addr = %self.addr, "connect failed: {e}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Writes queued items until the connection fails (`Err`) or the queue
    /// closes (`Ok`).
    async fn pump(&self, stream: TcpStream, rx: &mut mpsc::Receiver<Outgoing>) -> std::io::Result<()> {
        let mut out = FramedWrite::new(stream, wire::codec());
        out.send(wire::encode(&PeerFrame::Hello { from: self.self_id, to: self.peer })).await?;
        while let Some(first) = rx.recv().await {
            let frames = batch(first, rx);
            for f in &frames {
                out.feed(wire::encode(f)).await?;
            }
            SinkExt::<bytes::Bytes>::flush(&mut out).await?;
        }
        Ok(())
    }

    fn drop_queued(&self, rx: &mut mpsc::Receiver<Outgoing>) {
        while let Ok(item) = rx.try_recv() {
            if let Outgoing::Forward { id, .. } = item {
                self.forwards.not_sent(id);
            }
        }
    }
}

/// Takes `first` and whatever else is queued (up to the batch limits) and
/// packs consecutive Raft messages into one frame.
fn batch(first: Outgoing, rx: &mut mpsc::Receiver<Outgoing>) -> Vec<PeerFrame> {
    let mut frames = Vec::new();
    let mut raft: Vec<Message> = Vec::new();
    let mut raft_bytes = 0u64;
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(item) = next.take() {
        taken += 1;
        match item {
            Outgoing::Raft(m) => {
                raft_bytes += m.size_bytes();
                raft.push(m);
            }
            Outgoing::Forward { id, req } => frames.push(PeerFrame::Forward { id, req }),
            Outgoing::Reply { id, reply } => frames.push(PeerFrame::ForwardReply { id, reply }),
        }
        if raft_bytes >= MAX_BATCH_BYTES || raft.len() >= MAX_BATCH_MESSAGES {
            frames.push(PeerFrame::Raft(std::mem::take(&mut raft)));
            raft_bytes = 0;
        }
        if taken < MAX_BATCH_MESSAGES * 4 {
            next = rx.try_recv().ok();
        }
    }
    if !raft.is_empty() {
        frames.push(PeerFrame::Raft(raft));
    }
    frames
}
