//! The group's sans-I/O agent: what a group's leader asks of the controller
//! and of other groups, and how any replica answers other groups.
//!
//! Owns: the requester side ([`Agent`]: which requests are due, resend
//! timing, turning replies into commands to propose) and the responder side
//! ([`respond`]: answers from applied state, plus a command to propose when
//! a deletion is still to be done).
//!
//! The agent keeps no migration state of its own: everything it asks for is
//! derived, every poll, from the applied state machine (the applied
//! configuration and the shards' statuses). So a crash, a leader change or
//! a lost message loses nothing — the new leader's agent sees the same
//! applied state and asks again. Its only memory is when it last sent each
//! request, for the resend interval.
//!
//! How a host wires it, on each group's current leader:
//! 1. every tick, `agent.poll(sm, now_ms)` -> [`Outbound`]s: send
//!    `QueryConfig` to the controller (a `Query(num)`, answerable from any
//!    controller replica) and `Group` requests to a member of the named
//!    group (`attempt` rotates through the members);
//! 2. a controller answer with a configuration: `agent.on_config(sm, c)`;
//!    a group reply: `agent.on_reply(sm, reply)`; either may give a
//!    [`Command`] to propose through the group's log;
//! 3. an incoming [`GroupRequest`] on any replica: `respond(sm, &req)`;
//!    send back `reply`; if `propose` is set and this replica leads, propose
//!    it (a follower just answers; the requester resends).
//!
//! Followers never poll; a replica that stops leading drops its agent or
//! keeps it — stale resend times only delay a request by one interval.

use std::collections::BTreeMap;

use shardmeta::{Config, GroupId, Member, ShardId};

use crate::command::Command;
use crate::machine::{ShardKv, ShardStatus};
use crate::message::{DeleteReply, DeleteShards, GroupReply, GroupRequest, PullReply, PullShards};

/// Default interval between resends of an unanswered request.
pub const DEFAULT_RESEND_INTERVAL_MS: u64 = 100;

/// A request the host sends for the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Ask the controller for configuration `num` (`Query(num)`).
    QueryConfig { num: u64 },
    /// Send `request` to group `gid`: to `members[attempt % members.len()]`
    /// (or to its known leader).
    Group {
        gid: GroupId,
        members: Vec<Member>,
        attempt: u64,
        request: GroupRequest,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Query(u64),
    Pull { num: u64, gid: GroupId },
    Delete { num: u64, gid: GroupId },
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    at_ms: u64,
    attempts: u64,
}

/// The requester side, run on a group's leader.
#[derive(Clone, Debug)]
pub struct Agent {
    gid: GroupId,
    resend_interval_ms: u64,
    // Invariant: only keys still wanted by the last poll.
    sent: BTreeMap<Key, Sent>,
}

impl Agent {
    pub fn new(gid: GroupId, resend_interval_ms: u64) -> Self {
        assert!(resend_interval_ms > 0, "resend interval must be > 0");
        Agent {
            gid,
            resend_interval_ms,
            sent: BTreeMap::new(),
        }
    }

    /// The requests due at `now_ms`: each wanted one not sent yet, or sent
    /// at least one resend interval ago.
    pub fn poll(&mut self, sm: &ShardKv, now_ms: u64) -> Vec<Outbound> {
        assert_eq!(sm.gid(), self.gid, "agent of another group");
        let wanted = self.wanted(sm);
        self.sent.retain(|key, _| wanted.contains_key(key));
        let mut due = Vec::new();
        for (key, outbound) in wanted {
            let sent = self.sent.entry(key).or_insert(Sent {
                at_ms: 0,
                attempts: 0,
            });
            let waited_ms = now_ms.saturating_sub(sent.at_ms);
            if sent.attempts > 0 && waited_ms < self.resend_interval_ms {
                continue;
            }
            due.push(with_attempt(outbound, sent.attempts));
            sent.at_ms = now_ms;
            sent.attempts += 1;
        }
        due
    }

    /// A configuration from the controller: the command to propose if it is
    /// the next one and the group is ready for it.
    pub fn on_config(&mut self, sm: &ShardKv, config: Config) -> Option<Command> {
        let next = config.num == sm.config().num + 1;
        let fits = config.shards.len() == sm.settings().shards as usize && config.check().is_ok();
        (next && fits && sm.is_stable()).then_some(Command::NewConfig(config))
    }

    /// A reply from another group: the command to propose, if it still
    /// moves a shard forward in the applied state.
    pub fn on_reply(&mut self, sm: &ShardKv, reply: GroupReply) -> Option<Command> {
        let current = sm.config().num;
        match reply {
            GroupReply::Pull(PullReply::Shards {
                num,
                mut shards,
                sessions,
            }) if num == current => {
                shards.retain(|&s, _| sm.status(s) == ShardStatus::Pulling);
                (!shards.is_empty()).then_some(Command::InstallShards {
                    num,
                    shards,
                    sessions,
                })
            }
            GroupReply::Delete(DeleteReply::Done { num, mut shards }) if num == current => {
                shards.retain(|&s| sm.status(s) == ShardStatus::Gc);
                (!shards.is_empty()).then_some(Command::ConfirmGc { num, shards })
            }
            _ => None,
        }
    }

    /// Every request the applied state calls for, by key.
    fn wanted(&self, sm: &ShardKv) -> BTreeMap<Key, Outbound> {
        let mut wanted = BTreeMap::new();
        let num = sm.config().num;
        if sm.is_stable() {
            wanted.insert(Key::Query(num + 1), Outbound::QueryConfig { num: num + 1 });
        }
        for (gid, shards) in by_previous_owner(sm, ShardStatus::Pulling) {
            let request = GroupRequest::Pull(PullShards {
                from: self.gid,
                num,
                shards,
            });
            wanted.insert(Key::Pull { num, gid }, to_group(sm, gid, request));
        }
        for (gid, shards) in by_previous_owner(sm, ShardStatus::Gc) {
            let request = GroupRequest::Delete(DeleteShards {
                from: self.gid,
                num,
                shards,
            });
            wanted.insert(Key::Delete { num, gid }, to_group(sm, gid, request));
        }
        wanted
    }
}

/// What a replica answers another group, and what (if anything) its leader
/// should propose because of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub reply: GroupReply,
    pub propose: Option<Command>,
}

/// Answers a request from another group, from applied state only (any
/// replica may answer; frozen shards are identical on every replica that
/// applied the same configuration).
pub fn respond(sm: &ShardKv, request: &GroupRequest) -> Answer {
    match request {
        GroupRequest::Pull(pull) => Answer {
            reply: GroupReply::Pull(answer_pull(sm, pull)),
            propose: None,
        },
        GroupRequest::Delete(delete) => answer_delete(sm, delete),
    }
}

fn answer_pull(sm: &ShardKv, pull: &PullShards) -> PullReply {
    let (num, current) = (pull.num, sm.config().num);
    if current < num {
        return PullReply::NotReady { num, current };
    }
    if current > num {
        return PullReply::Stale { num, current };
    }
    let shards = handed_off_to(sm, pull.from, &pull.shards)
        .into_iter()
        .map(|s| (s, sm.shard_data(s).cloned().unwrap_or_default()))
        .collect();
    PullReply::Shards {
        num,
        shards,
        sessions: sm.sessions().export(),
    }
}

fn answer_delete(sm: &ShardKv, delete: &DeleteShards) -> Answer {
    let (num, current) = (delete.num, sm.config().num);
    let shards = delete.shards.clone();
    let pending = handed_off_to(sm, delete.from, &delete.shards);
    if current < num || (current == num && !pending.is_empty()) {
        let propose = (current == num).then_some(Command::DeleteShards {
            num,
            shards: pending,
        });
        return Answer {
            reply: GroupReply::Delete(DeleteReply::Pending { num, shards }),
            propose,
        };
    }
    // Past `num`, or at `num` with none of them still handed off: deleted.
    Answer {
        reply: GroupReply::Delete(DeleteReply::Done { num, shards }),
        propose: None,
    }
}

/// The listed shards this group is handing off to `to` in its applied
/// configuration.
fn handed_off_to(sm: &ShardKv, to: GroupId, shards: &[ShardId]) -> Vec<ShardId> {
    let mut out: Vec<ShardId> = shards
        .iter()
        .copied()
        .filter(|&s| sm.status(s) == ShardStatus::HandingOff && sm.config().owner(s) == to)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Shards in `status`, grouped by their owner in the previous configuration.
fn by_previous_owner(sm: &ShardKv, status: ShardStatus) -> BTreeMap<GroupId, Vec<ShardId>> {
    let mut groups: BTreeMap<GroupId, Vec<ShardId>> = BTreeMap::new();
    for s in sm.shards_in(status) {
        groups.entry(sm.prev_config().owner(s)).or_default().push(s);
    }
    groups
}

fn to_group(sm: &ShardKv, gid: GroupId, request: GroupRequest) -> Outbound {
    Outbound::Group {
        gid,
        members: sm.prev_config().members(gid).to_vec(),
        attempt: 0,
        request,
    }
}

fn with_attempt(outbound: Outbound, attempts: u64) -> Outbound {
    match outbound {
        Outbound::Group {
            gid,
            members,
            request,
            ..
        } => Outbound::Group {
            gid,
            members,
            attempt: attempts,
            request,
        },
        query => query,
    }
}
