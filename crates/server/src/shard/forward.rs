//! Forwarding in a sharded deployment: the origin's table of client
//! requests it handed to another process ([`Forwards`]), the receiving
//! side that runs one on its local replica of the named group and sends the
//! answer back ([`serve`]), and the dispatch of every inbound sharded frame
//! ([`Sink`]).
//!
//! One hop only: the receiving process never forwards again; if it does not
//! host the group, or its replica does not lead, it answers `NotLeader`
//! (with the leader it knows), and the origin retries elsewhere.
//!
//! Invariants: each forwarded id is answered at most once; a reply is
//! accepted only from the process the request was sent to, for an id that
//! was issued, and of a kind that answers that request (else the waiter
//! gets `Unknown` — maybe proposed, the safe side — and the link is closed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use host::{GroupCommand, GroupQuery};
use raft::NodeId;
use shardmeta::CONTROLLER_GROUP;
use tokio::sync::oneshot;

use super::driver::{DriverHandle, Input};
use crate::peer::inbound::ShardSink;
use crate::peer::shard_wire::check;
use crate::peer::{GroupAnswer, GroupForward, Outgoing, Peers, ShardFrame};

struct Waiter {
    peer: NodeId,
    req: GroupForward,
    tx: oneshot::Sender<GroupAnswer>,
}

/// Requests this process forwarded and awaits answers for.
#[derive(Default)]
pub struct Forwards {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiter>>,
}

impl Forwards {
    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a waiter for `req` sent to `peer`.
    pub fn register(
        &self,
        peer: NodeId,
        req: GroupForward,
    ) -> (u64, oneshot::Receiver<GroupAnswer>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, Waiter { peer, req, tx });
        (id, rx)
    }

    /// Process `from` answered `id`; `Err` (to log, closing the link) for a
    /// reply from another process, an id never issued, or the wrong kind.
    pub fn complete(&self, from: NodeId, id: u64, answer: GroupAnswer) -> Result<(), String> {
        let mut waiting = self.waiting();
        let Some(w) = waiting.get(&id) else {
            if id == 0 || id > self.next_id.load(Ordering::Relaxed) {
                return Err(format!("reply to forwarded request {id}, never issued"));
            }
            return Ok(()); // the waiter gave up already
        };
        if w.peer != from {
            return Err(format!(
                "reply to forwarded request {id} from process {from}; it was sent to {}",
                w.peer
            ));
        }
        let w = waiting.remove(&id).expect("just seen");
        drop(waiting);
        if !answer.fits(&w.req) {
            let _ = w.tx.send(GroupAnswer::Unknown);
            return Err(format!("reply of the wrong kind to forwarded request {id}"));
        }
        let _ = w.tx.send(answer);
        Ok(())
    }

    /// The waiter gave up: forget it.
    pub fn forget(&self, id: u64) {
        self.waiting().remove(&id);
    }
}

/// Runs a forwarded request on the local replica of `group` and queues the
/// answer back to `from`.
pub fn serve(
    driver: DriverHandle,
    peers: Peers,
    from: NodeId,
    id: u64,
    group: u64,
    req: GroupForward,
) {
    tokio::spawn(async move {
        let answer = match req {
            GroupForward::Write(r) => {
                driver
                    .propose(group, GroupCommand::Data(shardkv::Command::Request(r)))
                    .await
            }
            GroupForward::Read(q) => driver.read(group, GroupQuery::Data(q)).await,
            GroupForward::Ctrl(cmd) if group == CONTROLLER_GROUP => {
                driver.propose(group, GroupCommand::Ctrl(cmd)).await
            }
            GroupForward::CtrlRead(num) if group == CONTROLLER_GROUP => {
                driver.read(group, GroupQuery::Ctrl(num)).await
            }
            GroupForward::Ctrl(_) | GroupForward::CtrlRead(_) => {
                GroupAnswer::NotLeader { hint: None }
            }
            GroupForward::Admin(op) => driver.admin(group, op).await,
        };
        if let Some(p) = peers.get(from) {
            p.send(Outgoing::Shard(ShardFrame::ForwardReply { id, answer }));
        }
    });
}

/// Where the inbound peer connections deliver sharded frames.
pub struct Sink {
    /// This process's id: every Raft message it reads must be addressed to it.
    pub self_id: NodeId,
    pub driver: DriverHandle,
    pub peers: Peers,
    pub forwards: std::sync::Arc<Forwards>,
}

impl ShardSink for Sink {
    fn on_frame(&self, from: NodeId, frame: ShardFrame) -> Result<(), String> {
        match frame {
            ShardFrame::Raft(msgs) => {
                for (group, m) in msgs {
                    if m.from != from || m.to != self.self_id {
                        return Err(format!(
                            "group {group} message {}->{} on the link from {from}",
                            m.from, m.to
                        ));
                    }
                    if let Err(field) = m.check_bounds() {
                        tracing::warn!(
                            peer = from,
                            group,
                            "dropped a raft message with an impossible {field}: {}",
                            m.describe()
                        );
                        continue;
                    }
                    self.driver.send(Input::Step(group, m));
                }
            }
            ShardFrame::Forward { id, group, req } => {
                check(&req)?;
                serve(
                    self.driver.clone(),
                    self.peers.clone(),
                    from,
                    id,
                    group,
                    req,
                )
            }
            ShardFrame::ForwardReply { id, answer } => self.forwards.complete(from, id, answer)?,
            other => self.driver.send(Input::Frame(from, other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Hostile or confused replies: from a process that was not asked, for
    /// an id never issued, or of the wrong kind, are errors and never hand
    /// the waiter an answer it could misread; a late reply is harmless.
    #[test]
    fn replies_are_checked_for_sender_id_and_kind() {
        let t = Forwards::default();
        let read = GroupForward::Read(shardkv::Query::Op(shardkv::Op::Get {
            key: Bytes::from("k"),
        }));
        let (id, mut rx) = t.register(2, read.clone());
        assert!(
            t.complete(3, id, GroupAnswer::Value(Ok(kv::Reply::Value(None))))
                .is_err(),
            "wrong process"
        );
        assert!(rx.try_recv().is_err(), "the waiter must still wait");
        assert!(
            t.complete(2, id + 100, GroupAnswer::Busy).is_err(),
            "never issued"
        );
        t.complete(2, id, GroupAnswer::Value(Ok(kv::Reply::Value(None))))
            .unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            GroupAnswer::Value(Ok(kv::Reply::Value(None)))
        );
        assert!(
            t.complete(2, id, GroupAnswer::Busy).is_ok(),
            "a late reply is fine"
        );

        let write = GroupForward::Write(shardkv::Request {
            client_id: 1,
            seq: 1,
            op: shardkv::Op::Delete {
                key: Bytes::from("k"),
            },
        });
        let (id, mut rx) = t.register(2, write);
        assert!(
            t.complete(2, id, GroupAnswer::Value(Ok(kv::Reply::Value(None))))
                .is_err(),
            "wrong kind"
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            GroupAnswer::Unknown,
            "maybe proposed: the safe side"
        );
    }

    #[test]
    fn oversized_forwarded_writes_are_refused() {
        let big = Bytes::from(vec![0u8; kv::MAX_VALUE_BYTES + 1]);
        let w = GroupForward::Write(shardkv::Request {
            client_id: 1,
            seq: 1,
            op: shardkv::Op::Put {
                key: Bytes::from("k"),
                value: big,
            },
        });
        assert!(check(&w).is_err());
        assert!(check(&GroupForward::CtrlRead(None)).is_ok());
    }
}
