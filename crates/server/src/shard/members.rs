//! `RAFT GROUP GID ...`: membership and leadership of one group of a sharded
//! deployment (what `raftkv member ... --group GID` and `raftkv leader
//! transfer --group GID` send).
//!
//! The Raft side is the single-group mechanism (`crate::admin`: learners,
//! one change at a time, the guard rail, TimeoutNow transfers), run on the
//! group's leader wherever it is (`Router::admin` forwards it; the sharded
//! driver runs it on the hosted replica). What only a sharded deployment has
//! is a second copy of each group's membership: the controller's
//! configuration lists the group's members with their client addresses,
//! which routing (`-MOVED`, `CLUSTER SLOTS`, forwarding) and shard migration
//! use. A change keeps the two in step, in an order that never leaves a
//! process that could lead the group unknown to routing:
//!
//! - `ADD`: the controller lists the new member first
//!   (`shardctrler::Op::Members`), then the group adds it (as a learner
//!   unless forced). For a moment the controller may list a process that is
//!   not a member yet; a request routed there is answered "not leader" and
//!   retried elsewhere.
//! - `REMOVE`: the group removes the member first, then the controller drops
//!   it. A member the group no longer has is still dropped from the list, so
//!   repeating a removal whose second step failed finishes it.
//! - `PROMOTE`, `TRANSFER`, `LIST`: the group only.
//!
//! `ADD`'s address is the new process's **client** address (what the
//! controller lists; it must answer `PING`, as for `SHARDCTL JOIN`); its peer
//! address comes from `--peers`, which lists every process of a deployment.
//! The process is started with `--join-group GID` first, so it hosts an empty
//! replica of the group that waits for the leader. The controller group (0)
//! is fixed by `--controllers`: `LIST` and `TRANSFER` only.

use raft::ConfChange;
use shardmeta::{GroupId, Member, CONTROLLER_GROUP};

use super::router::Router;
use crate::admin::{AdminOp, AdminOutcome, AdminReply};

/// Runs `op` on group `gid`; the outcome is what the RESP reply is made of.
pub async fn execute(router: &Router, gid: GroupId, op: AdminOp) -> AdminOutcome {
    run(router, gid, op).await.into()
}

async fn run(router: &Router, gid: GroupId, op: AdminOp) -> AdminReply {
    match op {
        AdminOp::Snapshot => Err(
            "ERR snapshot save of a sharded deployment is not supported (back up each process's data directory while it is stopped)".into(),
        ),
        AdminOp::Change { .. } if gid == CONTROLLER_GROUP => Err(
            "ERR the controller group's members are fixed by --controllers; only LIST and TRANSFER apply to group 0".into(),
        ),
        AdminOp::Change {
            change: ConfChange::AddLearner { id, addr },
            force,
        } => add(router, gid, id, addr, true, force).await,
        AdminOp::Change {
            change: ConfChange::AddVoter { id, addr },
            force,
        } => add(router, gid, id, addr, false, force).await,
        AdminOp::Change {
            change: ConfChange::Remove { id },
            force,
        } => remove(router, gid, id, force).await,
        op => router.admin(gid, op).await,
    }
}

/// `ADD`: list process `id` (client address `client_addr`) in the
/// controller's configuration, then add it to the group with its peer
/// address from `--peers`.
async fn add(
    router: &Router,
    gid: GroupId,
    id: u64,
    client_addr: String,
    learner: bool,
    force: bool,
) -> AdminReply {
    let peer_addr = if id == router.id {
        Some(router.self_peer.clone())
    } else {
        router.peers.addrs().get(&id).cloned()
    };
    let Some(peer_addr) = peer_addr else {
        return Err(format!(
            "ERR process {id} is not in this deployment's --peers (every process, also those that join later, must be listed there); nothing changed"
        ));
    };
    super::admin::probe(router, id, &client_addr).await?;
    let config = router
        .ctrl_query(None)
        .await
        .map_err(|e| format!("{e}; nothing changed"))?;
    let Some(listed) = config.groups.get(&gid) else {
        return Err(format!(
            "ERR group {gid} is not in the controller's configuration (raftkv shard join it first); nothing changed"
        ));
    };
    if !listed.iter().any(|m| m.id == id && m.addr == client_addr) {
        let mut members: Vec<Member> = listed.iter().filter(|m| m.id != id).cloned().collect();
        members.push(Member {
            id,
            addr: client_addr.clone(),
        });
        set_members(router, gid, members)
            .await
            .map_err(|e| format!("{e}; nothing changed"))?;
    }
    let change = if learner {
        ConfChange::AddLearner {
            id,
            addr: peer_addr,
        }
    } else {
        ConfChange::AddVoter {
            id,
            addr: peer_addr,
        }
    };
    router
        .admin(gid, AdminOp::Change { change, force })
        .await
        .map_err(|e| {
            format!("{e} (the controller already lists process {id} for group {gid}: repeat the command to finish, or remove it)")
        })
}

/// `REMOVE`: take process `id` out of the group, then out of the
/// controller's list for it.
async fn remove(router: &Router, gid: GroupId, id: u64, force: bool) -> AdminReply {
    let change = ConfChange::Remove { id };
    match router.admin(gid, AdminOp::Change { change, force }).await {
        Ok(_) => {}
        // Already out of the group (a repeat): finish the controller's side.
        Err(e) if e.contains("not a member") || e.contains("was removed from the group") => {}
        Err(e) => return Err(e),
    }
    let config = router.ctrl_query(None).await.map_err(|e| {
        format!("{e}: process {id} left group {gid}, but the controller still lists it; repeat the command")
    })?;
    let Some(listed) = config.groups.get(&gid) else {
        return Ok(Vec::new());
    };
    if listed.iter().all(|m| m.id != id) {
        return Ok(Vec::new());
    }
    let members: Vec<Member> = listed.iter().filter(|m| m.id != id).cloned().collect();
    set_members(router, gid, members).await.map_err(|e| {
        format!("{e}: process {id} left group {gid}, but the controller still lists it; repeat the command")
    })?;
    Ok(Vec::new())
}

/// Replaces group `gid`'s member list in the controller's configuration.
async fn set_members(router: &Router, gid: GroupId, members: Vec<Member>) -> Result<(), String> {
    let op = shardctrler::Op::Members { gid, members };
    match router.ctrl_change(op).await.map_err(|e| e.to_string())? {
        Ok(shardctrler::Reply::NewConfig { .. }) => Ok(()),
        Ok(other) => Err(format!("ERR unexpected controller reply {other:?}")),
        Err(e) => Err(format!("ERR controller: {e}")),
    }
}
