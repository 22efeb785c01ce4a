//! `ShardWorld`: a sharded deployment in one deterministic event loop — a
//! controller group and data groups of the real replicas (`Replica` over
//! `MemStorage`, hosting `shardctrler::Controller` and `shardkv::ShardKv`),
//! their agents, clerks, a lossy network, crashes and restarts — with every
//! client operation recorded for lincheck.
//!
//! Layout (the lab's): `controllers` processes host the controller group;
//! data group `gi` (gid `100 + gi`) lives on `servers_per_group` processes
//! of its own. Node ids: controllers `1..=C`, then the data servers.
//!
//! Invariant checked after every event: for each shard and configuration
//! number, at most one group serves it (a replica serves shard `s` in its
//! applied configuration `n` when the shard's status is Serving or Gc).
//! `end` checks the whole history for linearizability.

use std::collections::BTreeMap;

use host::ShardNode;
use raft::{MemStorage, Message, NodeId, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shardkv::ShardStatus;
use shardmeta::{GroupId, Keyspace, Member, ShardId, CONTROLLER_GROUP};

use crate::events::{EventQueue, Micros};
use crate::kv::history::History;
use crate::kv::net::{Addr, KvNet};
use crate::kv::{ClerkOp, ClerkResult, ClientId};
use crate::shard::clerk::{Effects, ShardClerk, ShardClerkConfig};
use crate::shard::ctrl_clerk::{CtrlClerk, CtrlResult};
use crate::shard::process::{CtrlMachine, Dest, Process};
use crate::shard::script::Script;
use crate::shard::wire::Packet;
use crate::{MS, SEC, TICK_US};

/// The first data group's id; group `gi` is `FIRST_GID + gi`.
pub const FIRST_GID: GroupId = 100;

#[derive(Clone, Debug)]
pub struct ShardConfig {
    pub seed: u64,
    pub unreliable: bool,
    pub controllers: usize,
    pub groups: usize,
    pub servers_per_group: usize,
    pub shards: u32,
    /// The lab's `maxraftstate` for data groups: snapshot when the persisted
    /// log reaches it (`None`: never).
    pub snapshot_threshold_bytes: Option<u64>,
    pub heartbeat_ticks: u32,
    pub election_ticks: u32,
    pub clerk: ShardClerkConfig,
    /// How often a group's leader resends an unanswered migration request.
    pub agent_resend_ms: u64,
}

impl ShardConfig {
    /// The lab's setup: 3 controllers, 3 groups of 3, 10 shards.
    pub fn lab(seed: u64) -> Self {
        ShardConfig {
            seed,
            unreliable: false,
            controllers: 3,
            groups: 3,
            servers_per_group: 3,
            shards: 10,
            snapshot_threshold_bytes: None,
            heartbeat_ticks: 10,
            election_ticks: 30,
            clerk: ShardClerkConfig {
                attempt_timeout: 100 * MS,
                backoff: 20 * MS,
                retry_deadline: 60 * SEC,
            },
            agent_resend_ms: 100,
        }
    }
}

#[derive(Debug)]
pub(super) enum Ev {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver {
        from: Addr,
        to: Addr,
        packet: Packet,
    },
    ClerkTimer {
        client: ClientId,
        gen: u64,
    },
    NextOp {
        client: ClientId,
    },
}

pub(super) enum ClerkKind {
    Data(ShardClerk),
    Ctrl(CtrlClerk),
}

pub(super) struct Actor {
    pub(super) clerk: ClerkKind,
    /// A data operation in flight, recorded in the history.
    pub(super) inflight: Option<(lincheck::OpHandle, ClerkOp)>,
    pub(super) ctrl_busy: bool,
    pub(super) last: Option<ClerkResult>,
    pub(super) last_ctrl: Option<CtrlResult>,
    pub(super) script: Option<Script>,
    pub(super) stopping: bool,
}

/// Counts for reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub events: u64,
    pub messages: u64,
}

pub struct ShardWorld {
    pub cfg: ShardConfig,
    pub rng: ChaCha8Rng,
    pub(super) now: Micros,
    pub(super) net: KvNet,
    pub(super) queue: EventQueue<Ev>,
    pub(super) keyspace: Keyspace,
    pub(super) processes: BTreeMap<NodeId, Process>,
    /// Durable state of processes that are down, per hosted group.
    pub(super) disks: BTreeMap<NodeId, BTreeMap<GroupId, MemStorage>>,
    pub(super) incarnation: BTreeMap<NodeId, u64>,
    pub(super) clients: BTreeMap<ClientId, Actor>,
    pub(super) next_client: ClientId,
    pub history: History,
    pub counters: Counters,
    /// (shard, configuration number) -> the group seen serving it.
    pub(super) served: BTreeMap<(ShardId, u64), GroupId>,
    /// The harness's own controller clerk (join/leave/move/query).
    pub(super) admin: ClientId,
}

impl ShardWorld {
    pub fn new(cfg: ShardConfig) -> Self {
        let total = cfg.controllers + cfg.groups * cfg.servers_per_group;
        let mut w = ShardWorld {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            now: 0,
            net: KvNet::new(total),
            queue: EventQueue::default(),
            keyspace: Keyspace::new(cfg.shards).expect("a valid shard count"),
            processes: BTreeMap::new(),
            disks: BTreeMap::new(),
            incarnation: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_client: 0,
            history: History::default(),
            counters: Counters::default(),
            served: BTreeMap::new(),
            admin: 0,
            cfg,
        };
        w.net.unreliable = w.cfg.unreliable;
        for id in 1..=total as NodeId {
            w.disks.insert(id, w.hosted_groups(id));
            w.start_process(id);
        }
        w.admin = w.make_ctrl_client();
        w
    }

    // ---- layout ----------------------------------------------------------------------

    pub fn controllers(&self) -> Vec<NodeId> {
        (1..=self.cfg.controllers as NodeId).collect()
    }

    /// The gid of data group `gi`.
    pub fn gid(&self, gi: usize) -> GroupId {
        FIRST_GID + gi as GroupId
    }

    /// The processes of data group `gi`.
    pub fn group_servers(&self, gi: usize) -> Vec<NodeId> {
        let first = (self.cfg.controllers + gi * self.cfg.servers_per_group) as NodeId + 1;
        (first..first + self.cfg.servers_per_group as NodeId).collect()
    }

    /// Members of data group `gi` as the controller records them.
    pub fn members(&self, gi: usize) -> Vec<Member> {
        self.group_servers(gi)
            .into_iter()
            .map(|id| Member {
                id,
                addr: format!("sim:{id}"),
            })
            .collect()
    }

    fn hosted_groups(&self, id: NodeId) -> BTreeMap<GroupId, MemStorage> {
        let mut m = BTreeMap::new();
        if id <= self.cfg.controllers as NodeId {
            m.insert(CONTROLLER_GROUP, MemStorage::new());
        } else {
            let gi = (id as usize - self.cfg.controllers - 1) / self.cfg.servers_per_group;
            m.insert(self.gid(gi), MemStorage::new());
        }
        m
    }

    fn voters(&self, group: GroupId) -> Vec<NodeId> {
        if group == CONTROLLER_GROUP {
            self.controllers()
        } else {
            self.group_servers((group - FIRST_GID) as usize)
        }
    }

    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        self.keyspace.shard_of_key(key)
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    // ---- processes -------------------------------------------------------------------

    fn replica_config(&self, id: NodeId, group: GroupId) -> replica::Config {
        let mut rc = raft::Config::new(id, self.voters(group));
        rc.heartbeat_ticks = self.cfg.heartbeat_ticks;
        rc.election_ticks = self.cfg.election_ticks;
        rc.max_append_bytes = 64 * 1024;
        rc.snapshot_chunk_bytes = 64 * 1024;
        rc.seed = self.cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ id
            ^ (group << 16)
            ^ (self.incarnation[&id] << 32);
        let mut cfg = replica::Config::new(rc);
        cfg.snapshot_threshold_bytes = if group == CONTROLLER_GROUP {
            None
        } else {
            self.cfg.snapshot_threshold_bytes
        };
        cfg.session_tick_interval_ms = Some(10_000);
        cfg
    }

    /// Boots process `id` from its durable state (the lab's `StartServer`).
    pub fn start_process(&mut self, id: NodeId) {
        let Some(disks) = self.disks.remove(&id) else {
            return;
        };
        *self.incarnation.entry(id).or_insert(0) += 1;
        let mut node = ShardNode::new(id, self.controllers(), self.cfg.agent_resend_ms);
        for (group, storage) in disks {
            let rc = self.replica_config(id, group);
            let added = if group == CONTROLLER_GROUP {
                let settings = shardctrler::Settings::with_shards(self.cfg.shards);
                node.add_controller(rc, storage, settings)
            } else {
                let settings = shardkv::Settings::new(group, self.cfg.shards);
                node.add_data_group(rc, storage, settings)
            };
            added.expect("boot from our own storage");
        }
        let p = Process::new(node);
        self.processes.insert(id, p);
        let phase = self.rng.gen_range(0..TICK_US);
        let incarnation = self.incarnation[&id];
        self.queue.push(
            self.now + phase + 1,
            Ev::Tick {
                node: id,
                incarnation,
            },
        );
    }

    /// Crashes process `id`: everything but its synced storage is lost.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(p) = self.processes.remove(&id) {
            self.disks.insert(id, p.into_storages());
        }
    }

    /// The lab's `ShutdownServer(gi, i)`: disconnect, then crash.
    pub fn shutdown_server(&mut self, gi: usize, i: usize) {
        let id = self.group_servers(gi)[i];
        self.net.disconnect(id);
        self.crash(id);
    }

    /// The lab's `StartServer(gi, i)`.
    pub fn start_server(&mut self, gi: usize, i: usize) {
        let id = self.group_servers(gi)[i];
        self.start_process(id);
        self.net.connect(id);
    }

    pub fn shutdown_group(&mut self, gi: usize) {
        for i in 0..self.cfg.servers_per_group {
            self.shutdown_server(gi, i);
        }
    }

    pub fn start_group(&mut self, gi: usize) {
        for i in 0..self.cfg.servers_per_group {
            self.start_server(gi, i);
        }
    }

    /// Crashes and restarts a controller process.
    pub fn shutdown_controller(&mut self, i: usize) {
        let id = self.controllers()[i];
        self.net.disconnect(id);
        self.crash(id);
    }

    pub fn start_controller(&mut self, i: usize) {
        let id = self.controllers()[i];
        self.start_process(id);
        self.net.connect(id);
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.processes.contains_key(&id)
    }

    pub fn set_unreliable(&mut self, on: bool) {
        self.net.unreliable = on;
    }

    pub fn set_long_reordering(&mut self, on: bool) {
        self.net.long_reordering = on;
    }

    /// Splits processes into groups (those not listed form one more).
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.net.partition(groups);
    }

    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// Every process id.
    pub fn all_processes(&self) -> Vec<NodeId> {
        let total = self.cfg.controllers + self.cfg.groups * self.cfg.servers_per_group;
        (1..=total as NodeId).collect()
    }

    // ---- running ---------------------------------------------------------------------

    pub fn run_for(&mut self, dur: Micros) {
        let until = self.now + dur;
        while self.queue.peek_time().is_some_and(|t| t <= until) {
            self.step_event();
        }
        self.now = until;
    }

    /// Runs until `pred` holds (checked after every event) or `dur` passes.
    pub fn run_until(&mut self, dur: Micros, mut pred: impl FnMut(&ShardWorld) -> bool) -> bool {
        let until = self.now + dur;
        loop {
            if pred(self) {
                return true;
            }
            match self.queue.peek_time() {
                Some(t) if t <= until => self.step_event(),
                _ => {
                    self.now = until;
                    return pred(self);
                }
            }
        }
    }

    fn step_event(&mut self) {
        let (at, ev) = self.queue.pop().expect("an event");
        self.now = at;
        self.counters.events += 1;
        match ev {
            Ev::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Ev::Deliver { from, to, packet } => self.on_deliver(from, to, packet),
            Ev::ClerkTimer { client, gen } => {
                let now = self.now;
                let actor = self.clients.get_mut(&client).expect("client");
                let fx = match &mut actor.clerk {
                    ClerkKind::Data(c) => c.on_timer(gen, now),
                    ClerkKind::Ctrl(c) => c.on_timer(gen, now),
                };
                self.apply_effects(client, fx);
            }
            Ev::NextOp { client } => self.next_scripted_op(client),
        }
    }

    fn now_ms(&self) -> u64 {
        self.now / 1000
    }

    fn on_tick(&mut self, node: NodeId, incarnation: u64) {
        if self.incarnation.get(&node) != Some(&incarnation) {
            return;
        }
        let now_ms = self.now_ms();
        let Some(p) = self.processes.get_mut(&node) else {
            return;
        };
        self.queue
            .push(self.now + TICK_US, Ev::Tick { node, incarnation });
        let out = p.tick(now_ms);
        self.route(node, out);
        self.drive(node);
    }

    fn on_deliver(&mut self, from: Addr, to: Addr, packet: Packet) {
        if !self.net.link_up(from, to) {
            return;
        }
        match to {
            Addr::Server(node) => self.deliver_to_process(from, node, packet),
            Addr::Client(client) => self.deliver_to_client(from, client, packet),
        }
    }

    fn deliver_to_process(&mut self, from: Addr, node: NodeId, packet: Packet) {
        let now_ms = self.now_ms();
        let Some(p) = self.processes.get_mut(&node) else {
            return;
        };
        let mut out = Vec::new();
        match packet {
            Packet::Raft { group, msg } => p.step(group, msg),
            Packet::Data(req) => out.extend(p.on_data_request(req, now_ms)),
            Packet::Ctrl(req) => out.extend(p.on_ctrl_request(req, now_ms)),
            Packet::ConfigQuery { group, num } => {
                let config = p.on_config_query(num);
                if let Addr::Server(back) = from {
                    out.push((Dest::Node(back), Packet::ConfigReply { group, config }));
                }
            }
            Packet::ConfigReply { group, config } => p.on_config_reply(group, config, now_ms),
            Packet::Group {
                from_group,
                to_group,
                request,
            } => {
                if let (Some(reply), Addr::Server(back)) =
                    (p.on_group_request(to_group, &request, now_ms), from)
                {
                    let packet = Packet::GroupReply {
                        to_group: from_group,
                        reply,
                    };
                    out.push((Dest::Node(back), packet));
                }
            }
            Packet::GroupReply { to_group, reply } => p.on_group_reply(to_group, reply, now_ms),
            Packet::DataReply(_) | Packet::CtrlReply(_) => {}
        }
        self.route(node, out);
        self.drive(node);
    }

    fn deliver_to_client(&mut self, from: Addr, client: ClientId, packet: Packet) {
        let Addr::Server(from) = from else {
            return;
        };
        let now = self.now;
        let Some(actor) = self.clients.get_mut(&client) else {
            return;
        };
        let fx: Effects = match (&mut actor.clerk, packet) {
            (ClerkKind::Data(c), Packet::DataReply(r)) => c.on_data_reply(from, r, now),
            (ClerkKind::Data(c), Packet::CtrlReply(r)) => c.on_ctrl_reply(r, now),
            (ClerkKind::Ctrl(c), Packet::CtrlReply(r)) => c.on_reply(from, r, now),
            _ => Effects::default(),
        };
        self.apply_effects(client, fx);
    }

    /// Runs every replica of `node` and sends what it produced.
    fn drive(&mut self, node: NodeId) {
        let Some(p) = self.processes.get_mut(&node) else {
            return;
        };
        let mut raft_out: Vec<(NodeId, GroupId, Message)> = Vec::new();
        let replies = p.drive(&mut |to, group, msg| raft_out.push((to, group, msg)));
        for (to, group, msg) in raft_out {
            self.send(
                Addr::Server(node),
                Addr::Server(to),
                Packet::Raft { group, msg },
            );
        }
        self.route(node, replies);
        self.check_served(node);
    }

    fn route(&mut self, node: NodeId, out: Vec<(Dest, Packet)>) {
        for (dest, packet) in out {
            let to = match dest {
                Dest::Node(n) => Addr::Server(n),
                Dest::Client(c) => Addr::Client(c),
            };
            self.send(Addr::Server(node), to, packet);
        }
    }

    fn send(&mut self, from: Addr, to: Addr, packet: Packet) {
        self.counters.messages += 1;
        if !self.net.link_up(from, to) {
            return;
        }
        let delays = self.net.fate(&mut self.rng);
        for d in delays {
            let packet = packet.clone();
            self.queue
                .push(self.now + d.max(1), Ev::Deliver { from, to, packet });
        }
    }

    pub(super) fn apply_effects(&mut self, client: ClientId, fx: Effects) {
        for (to, packet) in fx.sends {
            self.send(Addr::Client(client), Addr::Server(to), packet);
        }
        if let Some((at, gen)) = fx.timer {
            self.queue.push(at, Ev::ClerkTimer { client, gen });
        }
        if let Some(result) = fx.done {
            self.on_done(client, result);
        }
        if let Some(result) = fx.ctrl_done {
            self.on_ctrl_done(client, result);
        }
    }

    fn on_done(&mut self, client: ClientId, result: ClerkResult) {
        let now = self.now;
        let actor = self.clients.get_mut(&client).expect("client");
        if let ClerkKind::Ctrl(_) = actor.clerk {
            unreachable!("controller results arrive as CtrlResult");
        }
        let (handle, op) = actor.inflight.take().expect("an op was in flight");
        self.history.complete(handle, &result, now);
        actor.last = Some(result.clone());
        if let Some(script) = actor.script.as_mut() {
            script.on_result(&op, &result);
            let think = script.think();
            if !actor.stopping {
                let pause = if think == 0 {
                    0
                } else {
                    self.rng.gen_range(0..=think)
                };
                self.queue.push(now + pause, Ev::NextOp { client });
            }
        }
    }

    /// A controller clerk finished.
    fn on_ctrl_done(&mut self, client: ClientId, result: CtrlResult) {
        let actor = self.clients.get_mut(&client).expect("client");
        actor.ctrl_busy = false;
        actor.last_ctrl = Some(result);
    }

    // ---- invariants and checks -------------------------------------------------------

    /// For each shard and configuration number, at most one group serves it.
    fn check_served(&mut self, node: NodeId) {
        let Some(p) = self.processes.get(&node) else {
            return;
        };
        let data_groups: Vec<GroupId> = p
            .node
            .host()
            .groups()
            .filter(|&g| g != CONTROLLER_GROUP)
            .collect();
        for gid in data_groups {
            let sm = p.node.data(gid).expect("a data group");
            let num = sm.config().num;
            for s in 0..self.cfg.shards {
                if !matches!(sm.status(s), ShardStatus::Serving | ShardStatus::Gc) {
                    continue;
                }
                let seen = *self.served.entry((s, num)).or_insert(gid);
                assert_eq!(
                    seen, gid,
                    "shard {s} is served by groups {seen} and {gid} in configuration {num} (seed {})",
                    self.cfg.seed
                );
            }
        }
    }

    /// Whether every live data replica has applied configuration `num` (or
    /// later) and has no shard in transit.
    pub fn settled_at(&self, num: u64) -> bool {
        self.processes.values().all(|p| {
            p.node
                .host()
                .groups()
                .filter(|&g| g != CONTROLLER_GROUP)
                .all(|g| {
                    let sm = p.node.data(g).expect("a data group");
                    sm.config().num >= num && sm.is_stable()
                })
        })
    }

    /// Data-group replicas that have taken or installed a snapshot.
    pub fn snapshots_taken(&self) -> usize {
        let mut n = 0;
        for p in self.processes.values() {
            for gid in p.node.host().groups().filter(|&g| g != CONTROLLER_GROUP) {
                let r = p.node.replica(gid).expect("a hosted group");
                n += usize::from(r.status().raft.snapshot_index > 0);
            }
        }
        n
    }

    /// Persisted Raft state plus snapshot bytes over every data server.
    pub fn total_persisted_data_group_bytes(&self) -> u64 {
        let mut total = 0;
        for gi in 0..self.cfg.groups {
            let gid = self.gid(gi);
            for id in self.group_servers(gi) {
                let storage = match self.processes.get(&id) {
                    Some(p) => p.node.replica(gid).expect("hosted").storage().clone(),
                    None => self.disks[&id][&gid].clone(),
                };
                let log = crate::store::log_size_bytes(&storage);
                let snap = storage.snapshot().map(|s| s.data.len() as u64).unwrap_or(0);
                total += log + snap;
            }
        }
        total
    }

    /// The controller replica state of process `id` (tests).
    pub fn controller_state(&self, id: NodeId) -> Option<&CtrlMachine> {
        self.processes.get(&id)?.node.controller()
    }

    /// Which controller process leads, if any.
    pub fn controller_leader(&self) -> Option<NodeId> {
        self.processes
            .iter()
            .find(|(_, p)| {
                p.node
                    .replica(CONTROLLER_GROUP)
                    .is_some_and(|r| r.is_leader())
            })
            .map(|(&id, _)| id)
    }

    /// Checks the history for linearizability.
    pub fn check_linearizable(&self) -> lincheck::Stats {
        let report = lincheck::check_with(
            &lincheck::KvModel,
            self.history.ops(),
            &lincheck::CheckOptions::default(),
        );
        match report.result {
            lincheck::CheckResult::Ok => report.stats,
            lincheck::CheckResult::Illegal(v) => {
                panic!("history is not linearizable (seed {}):\n{v}", self.cfg.seed)
            }
            lincheck::CheckResult::Unknown { partitions } => panic!(
                "linearizability check ran out of budget on {partitions:?} (seed {})",
                self.cfg.seed
            ),
        }
    }

    /// Final checks: linearizability of every recorded operation.
    pub fn end(&self) -> lincheck::Stats {
        self.check_linearizable()
    }
}

impl ShardWorld {
    /// Prints every data replica's configuration and shard statuses (debugging).
    pub fn dump(&self) {
        for (id, p) in &self.processes {
            for gid in p.node.host().groups().filter(|&g| g != CONTROLLER_GROUP) {
                let sm = p.node.data(gid).expect("data");
                let r = p.node.replica(gid).expect("r");
                let st: Vec<String> = (0..self.cfg.shards)
                    .map(|s| format!("{:?}", sm.status(s)).chars().take(4).collect())
                    .collect();
                let sessions = sm.sessions().export();
                let cached: usize = sessions.values().map(|s| s.responses.len()).sum();
                let data: usize = (0..self.cfg.shards)
                    .filter_map(|s| sm.shard_data(s))
                    .flat_map(|d| d.live_strings(0))
                    .map(|(k, v)| k.len() + v.len())
                    .sum();
                eprintln!("  node {id} gid {gid} leader={} cfg={} applied={} {:?} sessions={} cached={} data={} snap={}", r.is_leader(), sm.config().num, sm.applied_index(), st, sessions.len(), cached, data, rsm::StateMachine::snapshot(sm).len());
            }
        }
    }
}
