//! Membership and leadership administration of a single-group node: the
//! `RAFT MEMBER ...` / `RAFT TRANSFER ...` commands (what `raftkv member` and
//! `raftkv leader transfer` send), run on the driver thread against the replica.
//!
//! Protocol (raftkv's own, RESP):
//!
//! ```text
//! RAFT MEMBER LIST                      -> array of "ID ROLE PEER-ADDR" (ROLE: voter, learner;
//!                                          "(leader)" appended to the leader's line)
//! RAFT MEMBER ADD ID HOST:PORT [LEARNER] -> +OK once the change commits
//! RAFT MEMBER PROMOTE ID                -> +OK once committed
//! RAFT MEMBER REMOVE ID                 -> +OK once committed
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
//! Changes and transfers run only on the leader; any other node answers
//! `-NOTLEADER leader is node N` (or `... no leader known`), and the CLI tries
//! its next endpoint. Refusals carry the core's reason (`-ERR membership
//! change for node 4 refused: already a member`, `-ERR a membership change is
//! already in progress ...`). A change whose leader loses leadership before it
//! commits answers `-TIMEOUT` (it may or may not take effect, as for writes).
//!
//! Invariant: every accepted admin request's reply is sent exactly once: when
//! its condition holds, when leadership is lost, or when the driver stops
//! (dropped: the waiter reports it as unknown).

use raft::{ConfChange, Index, NodeId, RaftError, Role, Term};
use tokio::sync::oneshot;

use crate::driver::KvReplica;

/// One admin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminOp {
    List,
    /// Answered by `crate::exec` (a read, then the driver's snapshot).
    Snapshot,
    Change(ConfChange),
    /// `None`: the most up-to-date other voter.
    Transfer(Option<NodeId>),
}

/// An admin reply: lines for `LIST`, nothing for the others; `Err` is the
/// complete error line (`NOTLEADER ...`, `ERR ...`, `TIMEOUT ...`).
pub type AdminReply = Result<Vec<String>, String>;

/// Admin requests waiting for their change to commit or their transfer to end.
#[derive(Default)]
pub struct AdminWaits {
    changes: Vec<(Index, Term, oneshot::Sender<AdminReply>)>,
    transfers: Vec<(NodeId, oneshot::Sender<AdminReply>)>,
}

/// Starts `op` on `replica`; replies at once or queues the reply in `waits`.
pub fn start(
    replica: &mut KvReplica,
    op: AdminOp,
    reply: oneshot::Sender<AdminReply>,
    waits: &mut AdminWaits,
) {
    match op {
        AdminOp::List => drop(reply.send(Ok(list(replica)))),
        AdminOp::Snapshot => drop(reply.send(Err("ERR snapshot is not an admin op".into()))),
        AdminOp::Change(change) => match replica.propose_conf_change(change) {
            Ok(index) => {
                let term = replica.raw_node().raft().term();
                waits.changes.push((index, term, reply));
            }
            Err(e) => drop(reply.send(Err(refusal(&e)))),
        },
        AdminOp::Transfer(to) => {
            let target = to.or_else(|| replica.raw_node().raft().best_transfer_target());
            let Some(target) = target else {
                let _ = reply.send(Err("ERR no other voter to transfer leadership to".into()));
                return;
            };
            match replica.transfer_leader(target) {
                Ok(()) => waits.transfers.push((target, reply)),
                Err(e) => drop(reply.send(Err(refusal(&e)))),
            }
        }
    }
}

/// After a drive: answers the requests whose outcome is now known.
pub fn check(replica: &KvReplica, waits: &mut AdminWaits) {
    answer_changes(replica, waits);
    answer_transfers(replica, waits);
}

fn answer_transfers(replica: &KvReplica, waits: &mut AdminWaits) {
    let raft = replica.raw_node().raft();
    let role = raft.role();
    let mut keep = Vec::new();
    for (target, reply) in std::mem::take(&mut waits.transfers) {
        if raft.leader() == Some(target) {
            let _ = reply.send(Ok(Vec::new()));
        } else if role == Role::Leader && raft.lead_transferee() != Some(target) {
            let _ = reply.send(Err(format!(
                "TIMEOUT leadership transfer to node {target} abandoned: it did not take over within an election timeout"
            )));
        } else if let Some(other) = raft.leader().filter(|_| role != Role::Leader) {
            let _ = reply.send(Err(format!(
                "ERR node {other} took over instead of node {target}"
            )));
        } else {
            keep.push((target, reply));
        }
    }
    waits.transfers = keep;
}

fn answer_changes(replica: &KvReplica, waits: &mut AdminWaits) {
    let raft = replica.raw_node().raft();
    let (role, term, commit) = (raft.role(), raft.term(), raft.log().committed());
    let mut keep = Vec::new();
    for (index, t, reply) in std::mem::take(&mut waits.changes) {
        if commit >= index && raft.log().term(index).ok() == Some(t) {
            let _ = reply.send(Ok(Vec::new()));
        } else if role != Role::Leader || term != t {
            let _ = reply.send(Err(format!(
                "TIMEOUT leadership changed before the membership change at index {index} committed; it may or may not take effect (check RAFT MEMBER LIST)"
            )));
        } else {
            keep.push((index, t, reply));
        }
    }
    waits.changes = keep;
}

fn list(replica: &KvReplica) -> Vec<String> {
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
            format!("{id} {role} {addr}{lead}")
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
