//! Forwarding between nodes: the origin's table of requests it handed to a
//! leader ([`ForwardTable`]), and the leader's side that runs a forwarded
//! request on its replica and sends the answer back ([`serve`]).
//!
//! Invariants: each forwarded id is answered at most once (a reply, a
//! "not sent" when the outbound link dropped it unsent, or nothing: the
//! waiter's timeout then counts it as possibly proposed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use raft::NodeId;
use tokio::sync::oneshot;

use crate::driver::{Answer, DriverHandle};
use crate::peer::{ForwardReply, ForwardRequest, Outgoing, Peers};

/// Requests this node forwarded and awaits answers for.
#[derive(Default)]
pub struct ForwardTable {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
}

impl ForwardTable {
    /// Registers a waiter; the caller sends `Forward { id }` and awaits `rx`.
    pub fn register(&self) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("forward table").insert(id, tx);
        (id, rx)
    }

    /// The leader answered `id`.
    pub fn complete(&self, id: u64, answer: Answer) {
        if let Some(tx) = self.waiting.lock().expect("forward table").remove(&id) {
            let _ = tx.send(answer);
        }
    }

    /// `id` was dropped before it was written to any socket.
    pub fn not_sent(&self, id: u64) {
        self.complete(id, Answer::NotSent);
    }

    /// The waiter gave up (timeout): forget it.
    pub fn forget(&self, id: u64) {
        self.waiting.lock().expect("forward table").remove(&id);
    }
}

/// Leader side: runs `req` from node `from` on the local replica and queues
/// the answer back to `from`.
pub fn serve(driver: DriverHandle, peers: Peers, from: NodeId, id: u64, req: ForwardRequest) {
    tokio::spawn(async move {
        let answer = match req {
            ForwardRequest::Register => driver.propose(kv::Command::RegisterSession).await,
            ForwardRequest::Write(bytes) => match kv::decode_request(&bytes) {
                Ok(r) => driver.propose(kv::Command::Request(r)).await,
                Err(e) => {
                    tracing::warn!(from, "undecodable forwarded request: {e}");
                    return;
                }
            },
            ForwardRequest::Read { key } => driver.read(key).await,
        };
        if let Some(p) = peers.get(from) {
            p.send(Outgoing::Reply {
                id,
                reply: to_wire(answer),
            });
        }
    });
}

pub fn to_wire(a: Answer) -> ForwardReply {
    match a {
        Answer::Applied(resp) => ForwardReply::Applied(kv::encode_response(&resp)),
        Answer::Value(v) => ForwardReply::Value(v),
        Answer::NotLeader { hint } => ForwardReply::NotLeader { hint },
        Answer::Busy | Answer::NotSent => ForwardReply::Busy,
        Answer::Unknown => ForwardReply::Unknown,
        Answer::ReadAborted => ForwardReply::ReadAborted,
    }
}

/// An answer from the wire. An undecodable `Applied` is treated as unknown.
pub fn from_wire(r: ForwardReply) -> Answer {
    match r {
        ForwardReply::Applied(b) => kv::decode_response(&b)
            .map(Answer::Applied)
            .unwrap_or(Answer::Unknown),
        ForwardReply::Value(v) => Answer::Value(v),
        ForwardReply::NotLeader { hint } => Answer::NotLeader { hint },
        ForwardReply::Busy => Answer::Busy,
        ForwardReply::Unknown => Answer::Unknown,
        ForwardReply::ReadAborted => Answer::ReadAborted,
    }
}
