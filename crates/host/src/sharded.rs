//! [`ShardNode`]: one process of a sharded deployment, sans-I/O — the
//! [`Host`] of its controller and data-group replicas plus everything that
//! makes shards move: each data group's [`Agent`] (run while that group's
//! replica leads), answers to other groups' migration requests, and answers
//! to agents asking the controller for a configuration. The simulator and
//! the server both host this code; they only carry its outputs.
//!
//! The host's loop (in addition to [`Host`]'s):
//!
//! ```text
//! on timer:                 node.tick(now_ms) -> [Outbound]          // agents' requests: send them
//! on ConfigQuery{num}:      node.config(num) -> Option<Config>        // reply to the asking process
//! on ConfigReply:           node.on_config(group, config, now_ms)
//! on GroupRequest:          node.on_group_request(to_group, &req, now_ms) -> Option<GroupReply>
//! on GroupReply:            node.on_group_reply(to_group, reply, now_ms)
//! client requests:          node.propose(group, token, cmd, now_ms) / node.read(group, token, query)
//! after any of these:       node.drive(&mut send) -> completions of the caller's tokens
//! ```
//!
//! Invariants: the agents only ever propose through their own group's
//! replica and only while it leads; their proposals use tokens with
//! [`INTERNAL_TOKEN_BIT`] set, whose completions are consumed here, so the
//! caller sees exactly one completion per token it gave (below that bit).

use std::collections::BTreeMap;

use raft::{Message, Storage};
use replica::Token;
use shardkv::{Agent, GroupReply, GroupRequest, Outbound as AgentOutbound, ShardKv};
use shardmeta::{Config, GroupId, NodeId, CONTROLLER_GROUP};

use crate::error::{HostError, Refused};
use crate::host::{Envelope, GroupCompletion, Host};
use crate::machine::{GroupCommand, GroupMachine, GroupQuery};

/// Tokens with this bit set belong to the node's own proposals.
pub const INTERNAL_TOKEN_BIT: Token = 1 << 63;

/// Something a process must send to another process for its agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Ask a controller replica on process `to` for configuration `num`
    /// (for this process's data group `group`).
    ConfigQuery {
        to: NodeId,
        group: GroupId,
        num: u64,
    },
    /// A migration request from this process's `from_group` to `to_group`'s
    /// replica on process `to`.
    Group {
        to: NodeId,
        from_group: GroupId,
        to_group: GroupId,
        request: GroupRequest,
    },
}

/// The applied machine of data group `group` if this process leads it.
fn leading_data<S: Storage>(host: &Host<S, GroupMachine>, group: GroupId) -> Option<&ShardKv> {
    let r = host.replica(group)?;
    r.is_leader().then(|| r.state_machine().as_data()).flatten()
}

/// A sharded process. See the module docs.
pub struct ShardNode<S: Storage> {
    host: Host<S, GroupMachine>,
    agents: BTreeMap<GroupId, Agent>,
    controllers: Vec<NodeId>,
    agent_resend_ms: u64,
    next_internal: Token,
    /// Rotates the controller replica the agents ask.
    query_rr: usize,
}

impl<S: Storage> ShardNode<S> {
    /// A process `node_id` hosting nothing yet; `controllers` are the
    /// processes hosting the controller group.
    pub fn new(node_id: NodeId, controllers: Vec<NodeId>, agent_resend_ms: u64) -> Self {
        assert!(
            !controllers.is_empty(),
            "a sharded process needs the controller's members"
        );
        ShardNode {
            host: Host::new(node_id),
            agents: BTreeMap::new(),
            controllers,
            agent_resend_ms,
            next_internal: INTERNAL_TOKEN_BIT,
            query_rr: node_id as usize,
        }
    }

    pub fn host(&self) -> &Host<S, GroupMachine> {
        &self.host
    }

    /// Starts hosting the controller replica.
    pub fn add_controller(
        &mut self,
        cfg: replica::Config,
        storage: S,
        settings: shardctrler::Settings,
    ) -> Result<(), HostError> {
        let sm = GroupMachine::Ctrl(shardctrler::Controller::new(settings));
        self.host.add_group(CONTROLLER_GROUP, cfg, storage, sm)
    }

    /// Starts hosting a replica of data group `settings.gid`.
    pub fn add_data_group(
        &mut self,
        cfg: replica::Config,
        storage: S,
        settings: shardkv::Settings,
    ) -> Result<(), HostError> {
        let gid = settings.gid;
        let sm = GroupMachine::Data(ShardKv::new(settings));
        self.host.add_group(gid, cfg, storage, sm)?;
        self.agents
            .insert(gid, Agent::new(gid, self.agent_resend_ms));
        Ok(())
    }

    /// Stops hosting every group and hands back their storages (a crash
    /// keeps them; pending requests get no completion).
    pub fn into_storages(mut self) -> BTreeMap<GroupId, S> {
        let groups: Vec<GroupId> = self.host.groups().collect();
        groups
            .into_iter()
            .filter_map(|g| Some((g, self.host.remove_group(g)?.into_storage())))
            .collect()
    }

    /// Reopening parked `group` (disk full) at `now_ms` failed; see
    /// [`Host::reopen_failed`]. A parked group resumes through
    /// [`ShardNode::add_controller`] / [`ShardNode::add_data_group`].
    pub fn reopen_failed(&mut self, group: GroupId, now_ms: u64) {
        self.host.reopen_failed(group, now_ms);
    }

    /// The applied data-group machine hosted here, if any.
    pub fn data(&self, group: GroupId) -> Option<&ShardKv> {
        self.host.replica(group)?.state_machine().as_data()
    }

    /// The applied controller machine hosted here, if any.
    pub fn controller(&self) -> Option<&shardctrler::Controller> {
        self.host
            .replica(CONTROLLER_GROUP)?
            .state_machine()
            .as_ctrl()
    }

    pub fn replica(&self, group: GroupId) -> Option<&replica::Replica<S, GroupMachine>> {
        self.host.replica(group)
    }

    /// `group`'s replica, marked as having input ([`Host::replica_mut`]):
    /// membership changes and leadership transfers of any hosted group go
    /// through the replica itself (`propose_conf_change`, `transfer_leader`).
    pub fn replica_mut(
        &mut self,
        group: GroupId,
    ) -> Option<&mut replica::Replica<S, GroupMachine>> {
        self.host.replica_mut(group)
    }

    /// Every hosted group's storage, no group marked as having input: see
    /// [`Host::storages_mut`].
    pub fn storages_mut(&mut self) -> impl Iterator<Item = (GroupId, &mut S)> + '_ {
        self.host.storages_mut()
    }

    /// See [`Host::hand_off_leadership`]: every group led here, controller
    /// included, starts handing leadership over before a graceful stop.
    pub fn hand_off_leadership(&mut self) -> Vec<(GroupId, NodeId)> {
        self.host.hand_off_leadership()
    }

    // ---- inputs ----------------------------------------------------------------------

    /// One tick of every replica; returns what the leading groups' agents
    /// need sent now.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Outbound> {
        self.host.tick(now_ms);
        let mut out = Vec::new();
        for (&gid, agent) in self.agents.iter_mut() {
            let Some(r) = self.host.replica(gid) else {
                continue;
            };
            let Some(sm) = r.state_machine().as_data().filter(|_| r.is_leader()) else {
                continue;
            };
            for o in agent.poll(sm, now_ms) {
                match o {
                    AgentOutbound::QueryConfig { num } => {
                        self.query_rr += 1;
                        let to = self.controllers[self.query_rr % self.controllers.len()];
                        out.push(Outbound::ConfigQuery {
                            to,
                            group: gid,
                            num,
                        });
                    }
                    AgentOutbound::Group {
                        gid: to_group,
                        members,
                        attempt,
                        request,
                    } => {
                        if members.is_empty() {
                            continue;
                        }
                        let to = members[(attempt % members.len() as u64) as usize].id;
                        out.push(Outbound::Group {
                            to,
                            from_group: gid,
                            to_group,
                            request,
                        });
                    }
                }
            }
        }
        out
    }

    pub fn step(&mut self, group: GroupId, msg: Message) -> Result<(), Refused> {
        self.host.step(group, msg)
    }

    /// A client's proposal to `group`. `token` must be below
    /// [`INTERNAL_TOKEN_BIT`] and distinct among the caller's requests in flight.
    pub fn propose(
        &mut self,
        group: GroupId,
        token: Token,
        cmd: GroupCommand,
        now_ms: u64,
    ) -> Result<(), Refused> {
        assert_eq!(
            token & INTERNAL_TOKEN_BIT,
            0,
            "token {token} uses the internal bit"
        );
        if !self.kind_matches(group, matches!(cmd, GroupCommand::Ctrl(_))) {
            return Err(Refused::NoSuchGroup { group });
        }
        self.host.propose(group, token, cmd, now_ms)
    }

    /// A client's linearizable read of `group`.
    pub fn read(&mut self, group: GroupId, token: Token, query: GroupQuery) -> Result<(), Refused> {
        assert_eq!(
            token & INTERNAL_TOKEN_BIT,
            0,
            "token {token} uses the internal bit"
        );
        if !self.kind_matches(group, matches!(query, GroupQuery::Ctrl(_))) {
            return Err(Refused::NoSuchGroup { group });
        }
        self.host.read(group, token, query)
    }

    fn kind_matches(&self, group: GroupId, ctrl: bool) -> bool {
        (group == CONTROLLER_GROUP) == ctrl
    }

    /// Configuration `num` from the controller replica's applied state, if
    /// this process hosts one that has it. Configurations never change once
    /// made, so any replica may answer (no read index needed).
    pub fn config(&self, num: u64) -> Option<Config> {
        let c = self.controller()?;
        c.configs()
            .get(num as usize)
            .filter(|c| c.num == num)
            .cloned()
    }

    /// A controller's answer to this process's agent of `group`.
    pub fn on_config(&mut self, group: GroupId, config: Config, now_ms: u64) {
        let cmd = {
            let (Some(agent), Some(sm)) =
                (self.agents.get_mut(&group), leading_data(&self.host, group))
            else {
                return;
            };
            agent.on_config(sm, config)
        };
        if let Some(cmd) = cmd {
            self.propose_internal(group, cmd, now_ms);
        }
    }

    /// Another group's migration request for our `to_group`: answered from
    /// applied state by any replica; the leader also proposes what the
    /// answer says is still to be done.
    pub fn on_group_request(
        &mut self,
        to_group: GroupId,
        request: &GroupRequest,
        now_ms: u64,
    ) -> Option<GroupReply> {
        let r = self.host.replica(to_group)?;
        let leads = r.is_leader();
        let answer = shardkv::respond(r.state_machine().as_data()?, request);
        if let (Some(cmd), true) = (answer.propose, leads) {
            self.propose_internal(to_group, cmd, now_ms);
        }
        Some(answer.reply)
    }

    /// Another group's reply to our `to_group`'s agent.
    pub fn on_group_reply(&mut self, to_group: GroupId, reply: GroupReply, now_ms: u64) {
        let cmd = {
            let (Some(agent), Some(sm)) = (
                self.agents.get_mut(&to_group),
                leading_data(&self.host, to_group),
            ) else {
                return;
            };
            agent.on_reply(sm, reply)
        };
        if let Some(cmd) = cmd {
            self.propose_internal(to_group, cmd, now_ms);
        }
    }

    fn propose_internal(&mut self, group: GroupId, cmd: shardkv::Command, now_ms: u64) {
        self.next_internal += 1;
        // Refused (not the leader any more, busy): the agent asks again.
        let _ = self
            .host
            .propose(group, self.next_internal, GroupCommand::Data(cmd), now_ms);
    }

    /// Drives every replica with input. Raft messages go to `send`; the
    /// caller's requests that finished are returned (the agents' own are
    /// consumed here).
    pub fn drive(
        &mut self,
        send: &mut dyn FnMut(Envelope),
    ) -> Result<Vec<GroupCompletion<GroupMachine>>, HostError> {
        let mut done = Vec::new();
        self.host.drive_with(send, &mut |gc| {
            if gc.completion.token & INTERNAL_TOKEN_BIT == 0 {
                done.push(gc);
            }
        })?;
        Ok(done)
    }
}
