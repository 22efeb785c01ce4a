//! Membership and leadership administration of a group: the `RAFT MEMBER ...`
//! / `RAFT TRANSFER ...` commands (what `raftkv member` and `raftkv leader
//! transfer` send), run on the driver against the replica. The
//! functions here take any `replica::Replica`: the single-group driver runs
//! them on its kv replica, the sharded driver on any hosted group's
//! (`RAFT GROUP GID ...`, where `shard::members` adds the controller's side).
//!
//! Protocol (raftkv's own, RESP):
//!
//! ```text
//! RAFT MEMBER LIST                      -> array of "ID ROLE PEER-ADDR" (ROLE: voter, learner;
//!                                          "(leader)" appended to the leader's line; on the
//!                                          leader, "(unreachable)" to a member it has not
//!                                          heard from for an election timeout, "(catching
//!                                          up)" to one holding < 90% of the committed log)
//! RAFT MEMBER ADD ID HOST:PORT [LEARNER] [FORCE]
//!                                       -> +OK once the change commits
//! RAFT MEMBER PROMOTE ID [FORCE]        -> +OK once committed
//! RAFT MEMBER REMOVE ID [FORCE]         -> +OK once committed
//! RAFT TRANSFER [ID]                    -> +OK once ID (default: the most
//!                                          up-to-date other voter) leads
//! RAFT SNAPSHOT                         -> [applied index (integer), state (bulk)]:
//!                                          the state machine's snapshot (its own
//!                                          checksummed frame), taken after a
//!                                          linearizable read on the leader
//! ```
//!
//! `RAFT SNAPSHOT` is consistent and linearizable: the leader first confirms a
//! ReadIndex read (so it has applied everything committed before the request
//! arrived), then copies its state machine as applied at that moment — a
//! committed prefix of the log, taken within the request's lifetime.
//!
//! Changes, transfers and snapshots run on the leader. Any node takes them: a
//! follower forwards them over the peer link to the leader it knows
//! (`Requests::admin`, the client requests' forwarding path) and relays the
//! answer; `-NOTLEADER ...` only when it knows no leader or cannot reach it.
//! `MEMBER LIST` too (the leader knows who answers), or from the node's own
//! view when the leader cannot be asked.
//!
//! Refusals carry the reason: the core's (`-ERR membership change for node 4
//! refused: already a member`, `-ERR a membership change is already in
//! progress ...`), or the guard rail's (`raft::hazard`): adding a voter
//! directly, promoting a learner that is silent or behind, or a removal that
//! leaves fewer heard voters than a quorum is refused unless `FORCE` is given.
//! A change whose leader loses leadership before it commits answers
//! `-TIMEOUT` (it may or may not take effect, as for writes).
//!
//! Invariant: every accepted admin request's reply is sent exactly once: when
//! its condition holds, when leadership is lost, or when the driver stops
//! (dropped: the waiter reports it as unknown).

use bytes::Bytes;
use raft::{ConfChange, Index, NodeId, RaftError, Role, Term};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use replica::Replica;

use crate::driver::{Answer, DriverHandle};

/// One admin request (also as forwarded to the leader).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOp {
    List,
    /// Answered by [`run_local`] (a read, then the driver's snapshot).
    Snapshot,
    /// `force`: skip the guard rail (`raft::hazard`), not the core's rules.
    Change {
        change: ConfChange,
        force: bool,
    },
    /// `None`: the most up-to-date other voter.
    Transfer(Option<NodeId>),
}

/// An admin reply: lines for `LIST`, nothing for the others; `Err` is the
/// complete error line (`NOTLEADER ...`, `ERR ...`, `TIMEOUT ...`).
pub type AdminReply = Result<Vec<String>, String>;

/// What an admin request came to: what the RESP reply is made of, and what a
/// leader sends back for a forwarded one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOutcome {
    /// `+OK` (no lines) or a listing.
    Lines(Vec<String>),
    /// `RAFT SNAPSHOT`: the applied index and the state machine's snapshot.
    Snapshot { index: u64, data: Bytes },
    /// The complete error line.
    Error(String),
}

impl From<AdminReply> for AdminOutcome {
    fn from(r: AdminReply) -> Self {
        match r {
            Ok(lines) => AdminOutcome::Lines(lines),
            Err(e) => AdminOutcome::Error(e),
        }
    }
}

/// Runs `op` on this node's replica, without forwarding: what the leader does
/// for a request it got from a client or from a follower.
pub async fn run_local(driver: &DriverHandle, op: AdminOp) -> AdminOutcome {
    match op {
        AdminOp::Snapshot => snapshot(driver).await,
        op => driver.admin(op).await.into(),
    }
}

/// `RAFT SNAPSHOT`: a ReadIndex read on this node, which must lead, then its
/// state machine's snapshot.
async fn snapshot(driver: &DriverHandle) -> AdminOutcome {
    let point = kv::Op::Get {
        key: Bytes::from_static(b"raftkv:backup-read-point"),
    };
    let refused = match driver.read(point).await {
        Answer::Value(_) => None,
        Answer::NotLeader { hint } => Some(refusal(&RaftError::NotLeader { hint })),
        other => Some(format!("TRYAGAIN read point not confirmed ({other:?})")),
    };
    if let Some(e) = refused {
        return AdminOutcome::Error(e);
    }
    match driver.snapshot().await {
        Some((index, data)) => AdminOutcome::Snapshot { index, data },
        None => AdminOutcome::Error("TRYAGAIN the node is busy or stopping".into()),
    }
}

/// Where an admin request's reply goes (the single-group driver: the
/// requester's oneshot; the sharded driver: a group answer). Sent at most
/// once; dropped unsent (the driver stopped, the group was parked), the
/// waiter reads that as "unknown".
pub struct Responder(Box<dyn FnOnce(AdminReply) + Send>);

impl Responder {
    pub fn new(f: impl FnOnce(AdminReply) + Send + 'static) -> Self {
        Responder(Box::new(f))
    }

    fn send(self, reply: AdminReply) {
        (self.0)(reply)
    }
}

impl From<oneshot::Sender<AdminReply>> for Responder {
    fn from(tx: oneshot::Sender<AdminReply>) -> Self {
        Responder::new(move |r| drop(tx.send(r)))
    }
}

/// Admin requests waiting for their change to commit or their transfer to end.
#[derive(Default)]
pub struct AdminWaits {
    changes: Vec<(Index, Term, Responder)>,
    transfers: Vec<(NodeId, Responder)>,
}

impl AdminWaits {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.transfers.is_empty()
    }
}

/// Starts `op` on `replica`; replies at once or queues the reply in `waits`.
pub fn start<S: raft::Storage, M: rsm::StateMachine>(
    replica: &mut Replica<S, M>,
    op: AdminOp,
    reply: Responder,
    waits: &mut AdminWaits,
) {
    match op {
        AdminOp::List => reply.send(Ok(list(replica))),
        AdminOp::Snapshot => reply.send(Err("ERR snapshot is not an admin op".into())),
        AdminOp::Change { change, force } => match propose(replica, change, force) {
            Ok(index) => {
                let term = replica.raw_node().raft().term();
                waits.changes.push((index, term, reply));
            }
            Err(e) => reply.send(Err(e)),
        },
        AdminOp::Transfer(to) => {
            let target = to.or_else(|| replica.raw_node().raft().best_transfer_target());
            let Some(target) = target else {
                reply.send(Err("ERR no other voter to transfer leadership to".into()));
                return;
            };
            match replica.transfer_leader(target) {
                Ok(()) => waits.transfers.push((target, reply)),
                Err(e) => reply.send(Err(refusal(&e))),
            }
        }
    }
}

/// Proposes `change` unless the guard rail finds it hazardous and `force` is off.
fn propose<S: raft::Storage, M: rsm::StateMachine>(
    replica: &mut Replica<S, M>,
    change: ConfChange,
    force: bool,
) -> Result<Index, String> {
    let hazard = replica.raw_node().raft().conf_change_hazard(&change);
    if let Some(why) = hazard.filter(|_| !force) {
        return Err(format!(
            "ERR membership change for node {} refused: {why} (to do it anyway: --force, RAFT MEMBER ... FORCE)",
            change.id()
        ));
    }
    replica.propose_conf_change(change).map_err(|e| refusal(&e))
}

/// After a drive: answers the requests whose outcome is now known.
pub fn check<S: raft::Storage, M: rsm::StateMachine>(
    replica: &Replica<S, M>,
    waits: &mut AdminWaits,
) {
    answer_changes(replica, waits);
    answer_transfers(replica, waits);
}

fn answer_transfers<S: raft::Storage, M: rsm::StateMachine>(
    replica: &Replica<S, M>,
    waits: &mut AdminWaits,
) {
    let raft = replica.raw_node().raft();
    let role = raft.role();
    let mut keep = Vec::new();
    for (target, reply) in std::mem::take(&mut waits.transfers) {
        if raft.leader() == Some(target) {
            reply.send(Ok(Vec::new()));
        } else if role == Role::Leader && raft.lead_transferee() != Some(target) {
            reply.send(Err(format!(
                "TIMEOUT leadership transfer to node {target} abandoned: it did not take over within an election timeout"
            )));
        } else if let Some(other) = raft.leader().filter(|_| role != Role::Leader) {
            reply.send(Err(format!(
                "ERR node {other} took over instead of node {target}"
            )));
        } else {
            keep.push((target, reply));
        }
    }
    waits.transfers = keep;
}

fn answer_changes<S: raft::Storage, M: rsm::StateMachine>(
    replica: &Replica<S, M>,
    waits: &mut AdminWaits,
) {
    let raft = replica.raw_node().raft();
    let (role, term, commit) = (raft.role(), raft.term(), raft.log().committed());
    let mut keep = Vec::new();
    for (index, t, reply) in std::mem::take(&mut waits.changes) {
        if commit >= index && raft.log().term(index).ok() == Some(t) {
            reply.send(Ok(Vec::new()));
        } else if role != Role::Leader || term != t {
            reply.send(Err(format!(
                "TIMEOUT leadership changed before the membership change at index {index} committed; it may or may not take effect (check the member list: raftkv member list)"
            )));
        } else {
            keep.push((index, t, reply));
        }
    }
    waits.changes = keep;
}

fn list<S: raft::Storage, M: rsm::StateMachine>(replica: &Replica<S, M>) -> Vec<String> {
    let raft = replica.raw_node().raft();
    let m = raft.membership();
    m.members()
        .into_iter()
        .map(|id| {
            let role = if m.is_voter(id) { "voter" } else { "learner" };
            let addr = m.addrs.get(&id).map_or("-", String::as_str);
            let lead = if raft.leader() == Some(id) {
                " (leader)"
            } else {
                ""
            };
            // Only the leader knows who answers and how far each member is.
            let seen = match (raft.role(), raft.lost_log(id)) {
                (Role::Leader, Some(last)) => format!(
                    " (log lost: acknowledged up to {}, now ends at {last}; remove it and add a replacement with a new id)",
                    raft.matched(id)
                ),
                (Role::Leader, None) if !raft.hears_from(id) => " (unreachable)".into(),
                (Role::Leader, None) if !raft.is_caught_up(id) => " (catching up)".into(),
                _ => String::new(),
            };
            format!("{id} {role} {addr}{lead}{seen}")
        })
        .collect()
}

fn refusal(e: &RaftError) -> String {
    match e {
        RaftError::NotLeader { hint: Some(l) } => format!("NOTLEADER leader is node {l}"),
        RaftError::NotLeader { hint: None } => "NOTLEADER no leader known".into(),
        other => format!("ERR {other}"),
    }
}
