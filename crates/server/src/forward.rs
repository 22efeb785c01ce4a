//! Forwarding between nodes: the origin's table of requests it handed to a
//! leader ([`ForwardTable`]), and the leader's side that runs a forwarded
//! request on its replica and sends the answer back ([`serve`]).
//!
//! Invariants: each forwarded id is answered at most once (a reply, a
//! "not sent" when the outbound link dropped it unsent, or nothing: the
//! waiter's timeout then counts it as possibly proposed). A reply is
//! accepted only from the node the request was sent to, for an id that was
//! issued, and only of a kind that answers that request; anything else is
//! an `Err` for the inbound connection to log (and close), and a reply of the
//! wrong kind answers the waiter `Unknown` (maybe proposed: the safe side).

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
    waiting: Mutex<HashMap<u64, Waiter>>,
}

/// What a forwarded request expects back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A proposal (register or write): `Applied` or a refusal.
    Applied,
    /// A read: `Value` or a refusal.
    Value,
    /// An admin request: `Admin` or a refusal.
    Admin,
}

struct Waiter {
    peer: NodeId,
    expect: Expect,
    tx: oneshot::Sender<Answer>,
}

impl ForwardTable {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a waiter for a request to `peer`; the caller sends
    /// `Forward { id }` and awaits `rx`.
    pub fn register(&self, peer: NodeId, expect: Expect) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, Waiter { peer, expect, tx });
        (id, rx)
    }

    /// Node `from` answered `id`. `Err` (to log) for a reply from another
    /// node than the one asked, an id never issued, or the wrong kind.
    pub fn complete(&self, from: NodeId, id: u64, answer: Answer) -> Result<(), String> {
        let mut waiting = self.waiting();
        let Some(w) = waiting.get(&id) else {
            if id == 0 || id > self.next_id.load(Ordering::Relaxed) {
                return Err(format!("reply to forwarded request {id}, never issued"));
            }
            return Ok(()); // the waiter gave up already
        };
        if w.peer != from {
            return Err(format!(
                "reply to forwarded request {id} from node {from}; it was sent to node {}",
                w.peer
            ));
        }
        let w = waiting.remove(&id).expect("just seen");
        drop(waiting);
        if !fits(w.expect, &answer) {
            let _ = w.tx.send(Answer::Unknown);
            return Err(format!(
                "reply of the wrong kind to forwarded request {id} ({:?} expected)",
                w.expect
            ));
        }
        let _ = w.tx.send(answer);
        Ok(())
    }

    /// The last id issued (ids are 1, 2, ...; 0: none yet).
    pub fn issued(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// `id` was dropped before it was written to any socket.
    pub fn not_sent(&self, id: u64) {
        if let Some(w) = self.waiting().remove(&id) {
            let _ = w.tx.send(Answer::NotSent);
        }
    }

    /// The waiter gave up (timeout): forget it.
    pub fn forget(&self, id: u64) {
        self.waiting().remove(&id);
    }
}

/// Whether `answer` can answer a request that expects `expect`.
fn fits(expect: Expect, answer: &Answer) -> bool {
    match answer {
        Answer::Applied(_) => expect == Expect::Applied,
        Answer::Value(_) | Answer::ReadAborted => expect == Expect::Value,
        Answer::Admin(_) => expect == Expect::Admin,
        Answer::NotLeader { .. }
        | Answer::Busy
        | Answer::Unknown
        | Answer::NotSent
        | Answer::NoSpace(_) => true,
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
            ForwardRequest::Read(op) => driver.read(op).await,
            ForwardRequest::Admin(op) => Answer::Admin(fit_frame(
                crate::admin::run_local(&driver, op).await,
                driver.status().raft.id,
            )),
        };
        if let Some(p) = peers.get(from) {
            p.send(Outgoing::Reply {
                id,
                reply: to_wire(answer),
            });
        }
    });
}

/// A snapshot too large for one peer frame is refused with what to do instead.
fn fit_frame(outcome: crate::admin::AdminOutcome, me: NodeId) -> crate::admin::AdminOutcome {
    use crate::admin::AdminOutcome;
    const ROOM_BYTES: usize = 64 << 10;
    match outcome {
        AdminOutcome::Snapshot { data, .. }
            if data.len() + ROOM_BYTES > crate::peer::wire::MAX_FRAME_BYTES =>
        {
            AdminOutcome::Error(format!(
                "ERR the snapshot ({} bytes) is too large to pass between nodes; ask the leader (node {me}) directly: put its client address in --endpoints",
                data.len()
            ))
        }
        other => other,
    }
}

pub fn to_wire(a: Answer) -> ForwardReply {
    match a {
        Answer::Applied(resp) => ForwardReply::Applied(kv::encode_response(&resp)),
        Answer::Value(v) => ForwardReply::Value(v),
        Answer::NotLeader { hint } => ForwardReply::NotLeader { hint },
        Answer::Busy | Answer::NotSent => ForwardReply::Busy,
        Answer::Unknown => ForwardReply::Unknown,
        Answer::ReadAborted => ForwardReply::ReadAborted,
        Answer::NoSpace(why) => ForwardReply::NoSpace(why),
        Answer::Admin(o) => ForwardReply::Admin(o),
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
        ForwardReply::NoSpace(why) => Answer::NoSpace(why),
        ForwardReply::Admin(o) => Answer::Admin(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile replies (issue 10): from a node that was not asked, for an id
    /// never issued, or of the wrong kind, are errors and never hand a
    /// waiter an answer it cannot use; a late reply is harmless.
    #[test]
    fn replies_are_checked_for_sender_id_and_kind() {
        let t = ForwardTable::default();
        let (id, mut rx) = t.register(2, Expect::Value);
        assert!(
            t.complete(3, id, Answer::Value(kv::Reply::Value(None)))
                .is_err(),
            "wrong peer"
        );
        assert!(rx.try_recv().is_err(), "the waiter must still wait");
        assert!(
            t.complete(2, id + 100, Answer::Busy).is_err(),
            "never issued"
        );
        assert!(t.complete(2, 0, Answer::Busy).is_err(), "never issued");
        t.complete(2, id, Answer::Value(kv::Reply::Value(None)))
            .unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(Answer::Value(kv::Reply::Value(None)))
        ));
        assert!(
            t.complete(2, id, Answer::Busy).is_ok(),
            "a late reply is fine"
        );

        let (id, mut rx) = t.register(2, Expect::Applied);
        assert!(
            t.complete(2, id, Answer::Value(kv::Reply::Value(None)))
                .is_err(),
            "wrong kind"
        );
        assert!(matches!(rx.try_recv(), Ok(Answer::Unknown)));
        let (id, mut rx) = t.register(2, Expect::Value);
        let applied = Answer::Applied(Ok(kv::Reply::Done));
        assert!(t.complete(2, id, applied).is_err(), "wrong kind");
        assert!(matches!(rx.try_recv(), Ok(Answer::Unknown)));
    }
}
