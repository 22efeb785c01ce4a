//! `KvCluster`: N servers of the real replica (`Replica<MemStorage>`) and any
//! number of simulated clients (clerks) in one event loop, in virtual time,
//! on a simulated network; faults (crash/restart keeping only what was
//! persisted, partitions, unreliable links); every client operation recorded
//! into a lincheck history.
//!
//! One seed drives everything (message fates, tick phases, election timeouts,
//! workload choices), and every iterated map is ordered, so a run replays bit
//! for bit from its seed.
//!
//! Invariants checked here: a client-visible history is linearizable
//! (`check_linearizable`); replicas that applied the same index hold the same
//! state machine (`check_replicas_agree`).

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::{MemStorage, Message, NodeId, Role, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::events::EventQueue;
use crate::events::Micros;
use crate::kv::clerk::{Clerk, ClerkConfig, ClerkOp, ClerkResult, Effects};
use crate::kv::history::History;
use crate::kv::net::{Addr, ClientId, KvNet};
use crate::kv::server::KvServer;
use crate::kv::wire::{ClientReply, ClientRequest};
use crate::kv::workload::LabClient;
use crate::{MS, SEC, TICK_US};

#[derive(Clone, Debug)]
pub struct KvConfig {
    pub servers: usize,
    pub seed: u64,
    pub unreliable: bool,
    /// The lab's `maxraftstate`: snapshot when the persisted log reaches it.
    pub snapshot_threshold_bytes: Option<u64>,
    /// Heartbeats every 100 ms, elections after 300–600 ms (ticks of 10 ms).
    pub heartbeat_ticks: u32,
    pub election_ticks: u32,
    pub clerk: ClerkConfig,
    pub kv: kv::Config,
    /// Scripted clients pause a random 0..think_max between operations
    /// (0: none, as in the lab).
    pub think_max: Micros,
}

impl KvConfig {
    pub fn new(servers: usize, seed: u64) -> Self {
        KvConfig {
            servers,
            seed,
            unreliable: false,
            snapshot_threshold_bytes: None,
            heartbeat_ticks: 10,
            election_ticks: 30,
            clerk: ClerkConfig {
                attempt_timeout: 100 * MS,
                backoff: 20 * MS,
            },
            kv: kv::Config::default(),
            think_max: 0,
        }
    }

    /// The heartbeat interval in virtual time.
    pub fn heartbeat(&self) -> Micros {
        self.heartbeat_ticks as Micros * TICK_US
    }
}

#[derive(Debug)]
enum Packet {
    Raft(Message),
    Request(ClientRequest),
    Reply(ClientReply),
}

#[derive(Debug)]
enum Ev {
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
    Partition {
        gen: u64,
    },
    NextOp {
        client: ClientId,
    },
}

struct ClientActor {
    clerk: Clerk,
    inflight: Option<(lincheck::OpHandle, ClerkOp)>,
    last_result: Option<ClerkResult>,
    script: Option<LabClient>,
    /// Scripted clients stop after their current operation once set.
    stopping: bool,
}

/// Counts for the final report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub events: u64,
    pub messages: u64,
    pub client_requests: u64,
}

pub struct KvCluster {
    pub cfg: KvConfig,
    pub rng: ChaCha8Rng,
    pub now: Micros,
    pub net: KvNet,
    queue: EventQueue<Ev>,
    servers: BTreeMap<NodeId, KvServer>,
    /// Durable state of servers that are down.
    disks: BTreeMap<NodeId, MemStorage>,
    incarnation: BTreeMap<NodeId, u64>,
    clients: BTreeMap<ClientId, ClientActor>,
    next_client: ClientId,
    pub history: History,
    pub counters: Counters,
    /// Errors found by the lab's client-side checks (reported by `end`).
    pub client_errors: Vec<String>,
    partitioner_gen: u64,
    partitioner_on: bool,
}

impl KvCluster {
    pub fn new(cfg: KvConfig) -> Self {
        let mut c = KvCluster {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            now: 0,
            net: KvNet::new(cfg.servers),
            queue: EventQueue::default(),
            servers: BTreeMap::new(),
            disks: BTreeMap::new(),
            incarnation: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_client: 0,
            history: History::default(),
            counters: Counters::default(),
            client_errors: Vec::new(),
            partitioner_gen: 0,
            partitioner_on: false,
            cfg,
        };
        c.net.unreliable = c.cfg.unreliable;
        for id in c.ids() {
            c.disks.insert(id, MemStorage::new());
            c.start_server(id);
        }
        c
    }

    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.cfg.servers as NodeId).collect()
    }

    fn replica_config(&self, id: NodeId) -> replica::Config {
        let mut rc = raft::Config::new(id, self.ids());
        rc.heartbeat_ticks = self.cfg.heartbeat_ticks;
        rc.election_ticks = self.cfg.election_ticks;
        rc.max_append_bytes = 64 * 1024;
        rc.snapshot_chunk_bytes = 64 * 1024;
        rc.seed =
            self.cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id ^ (self.incarnation[&id] << 32);
        let mut cfg = replica::Config::new(rc);
        cfg.snapshot_threshold_bytes = self.cfg.snapshot_threshold_bytes;
        // Tick often enough that idle sessions expire close to their timeout.
        cfg.session_tick_interval_ms = Some((self.cfg.kv.session_timeout_ms / 2).clamp(1, 10_000));
        cfg
    }

    // ---- faults ----------------------------------------------------------------------

    /// Boots server `id` from its durable state (the lab's `StartServer`).
    pub fn start_server(&mut self, id: NodeId) {
        let Some(storage) = self.disks.remove(&id) else {
            return;
        };
        *self.incarnation.entry(id).or_insert(0) += 1;
        let server = KvServer::boot(self.replica_config(id), self.cfg.kv, storage)
            .expect("boot from our own storage");
        self.servers.insert(id, server);
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

    /// Crashes server `id`: everything but its synced storage is lost.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(server) = self.servers.remove(&id) {
            self.disks.insert(id, server.into_storage());
        }
    }

    /// The lab's `ShutdownServer`: disconnect, then crash.
    pub fn shutdown_server(&mut self, id: NodeId) {
        self.net.disconnect(id);
        self.crash(id);
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.servers.contains_key(&id)
    }

    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.net.partition(groups);
    }

    /// The lab's `ConnectAll`: every server connected, in one group.
    pub fn connect_all(&mut self) {
        self.net.heal();
    }

    pub fn set_unreliable(&mut self, on: bool) {
        self.net.unreliable = on;
    }

    /// Starts the lab's partitioner: every election timeout (1 s) + rand(200) ms
    /// it splits the servers into two random groups.
    pub fn start_partitioner(&mut self) {
        self.partitioner_on = true;
        self.partitioner_gen += 1;
        self.queue.push(
            self.now,
            Ev::Partition {
                gen: self.partitioner_gen,
            },
        );
    }

    pub fn stop_partitioner(&mut self) {
        self.partitioner_on = false;
        self.partitioner_gen += 1;
    }

    fn repartition(&mut self, gen: u64) {
        if !self.partitioner_on || gen != self.partitioner_gen {
            return;
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for id in self.ids() {
            if self.rng.gen_bool(0.5) {
                a.push(id)
            } else {
                b.push(id)
            }
        }
        self.net.partition(&[&a, &b]);
        let next = self.now + SEC + self.rng.gen_range(0..200) * MS;
        self.queue.push(next, Ev::Partition { gen });
    }

    // ---- clients ---------------------------------------------------------------------

    /// A new client whose clerk knows every server (`make_client(All)`).
    pub fn make_client(&mut self) -> ClientId {
        self.next_client += 1;
        let id = self.next_client;
        let clerk = Clerk::new(id, self.ids(), self.cfg.clerk);
        self.clients.insert(
            id,
            ClientActor {
                clerk,
                inflight: None,
                last_result: None,
                script: None,
                stopping: false,
            },
        );
        id
    }

    /// Restricts a client's links to `servers` (the lab's `ConnectClient`).
    pub fn connect_client(&mut self, client: ClientId, servers: &[NodeId]) {
        self.net.connect_client(client, servers);
    }

    /// Starts `op` on `client` (which must be idle) without waiting.
    pub fn start_op(&mut self, client: ClientId, op: ClerkOp) {
        let now = self.now;
        let actor = self.clients.get_mut(&client).expect("known client");
        let handle = self.history.invoke(client, &op, now);
        actor.inflight = Some((handle, op.clone()));
        actor.last_result = None;
        let fx = actor.clerk.start(op, now);
        self.apply_effects(client, fx);
    }

    pub fn is_idle(&self, client: ClientId) -> bool {
        self.clients[&client].inflight.is_none()
    }

    /// The result of the client's last finished operation.
    pub fn last_result(&self, client: ClientId) -> Option<&ClerkResult> {
        self.clients[&client].last_result.as_ref()
    }

    /// Runs `op` to completion, for at most `max` of virtual time. `None`: it
    /// has not finished (the clerk keeps trying in the background).
    pub fn call(&mut self, client: ClientId, op: ClerkOp, max: Micros) -> Option<ClerkResult> {
        self.start_op(client, op);
        self.run_until(max, |c| c.is_idle(client));
        if self.is_idle(client) {
            self.last_result(client).cloned()
        } else {
            None
        }
    }

    /// `call` that must succeed within 60 s of virtual time.
    pub fn must(&mut self, client: ClientId, op: ClerkOp) -> ClerkResult {
        let desc = format!("{op:?}");
        self.call(client, op, 60 * SEC)
            .unwrap_or_else(|| panic!("client {client}: {desc} did not finish in 60 s"))
    }

    pub fn get(&mut self, client: ClientId, key: &str) -> Option<Bytes> {
        match self.must(client, ClerkOp::Get(Bytes::copy_from_slice(key.as_bytes()))) {
            ClerkResult::Value(v) => v,
            other => panic!("get({key}) -> {other:?}"),
        }
    }

    pub fn put(&mut self, client: ClientId, key: &str, value: &str) {
        let op = ClerkOp::Put(
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
        let r = self.must(client, op);
        assert_eq!(r, ClerkResult::Done, "put({key}, {value})");
    }

    pub fn append(&mut self, client: ClientId, key: &str, value: &str) -> u64 {
        let op = ClerkOp::Append(
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
        match self.must(client, op) {
            ClerkResult::Length(n) => n,
            other => panic!("append({key}, {value}) -> {other:?}"),
        }
    }

    /// Starts `n` scripted clients running the lab's client loop.
    pub fn spawn_lab_clients(&mut self, n: u64, random_keys: bool) -> Vec<ClientId> {
        let ids: Vec<ClientId> = (0..n).map(|_| self.make_client()).collect();
        for (cli, &id) in ids.iter().enumerate() {
            self.clients.get_mut(&id).expect("client").script =
                Some(LabClient::new(cli as u64, n, random_keys));
            self.next_scripted_op(id);
        }
        ids
    }

    /// Scripted clients finish their current operation and stop.
    pub fn stop_clients(&mut self, ids: &[ClientId]) {
        for id in ids {
            self.clients.get_mut(id).expect("client").stopping = true;
        }
    }

    pub fn lab_client(&self, id: ClientId) -> &LabClient {
        self.clients[&id]
            .script
            .as_ref()
            .expect("a scripted client")
    }

    fn next_scripted_op(&mut self, client: ClientId) {
        let actor = self.clients.get_mut(&client).expect("client");
        if actor.stopping || actor.inflight.is_some() {
            return;
        }
        let Some(script) = actor.script.as_mut() else {
            return;
        };
        let op = script.next_op(&mut self.rng);
        self.start_op(client, op);
    }

    fn apply_effects(&mut self, client: ClientId, fx: Effects) {
        for (to, req) in fx.sends {
            self.counters.client_requests += 1;
            self.send(Addr::Client(client), Addr::Server(to), Packet::Request(req));
        }
        if let Some((at, gen)) = fx.timer {
            self.queue.push(at, Ev::ClerkTimer { client, gen });
        }
        if let Some(result) = fx.done {
            self.on_done(client, result);
        }
    }

    fn on_done(&mut self, client: ClientId, result: ClerkResult) {
        let now = self.now;
        let actor = self.clients.get_mut(&client).expect("client");
        let (handle, op) = actor.inflight.take().expect("an op was in flight");
        self.history.complete(handle, &result, now);
        if let Some(script) = actor.script.as_mut() {
            if let Err(e) = script.on_result(&op, &result) {
                self.client_errors.push(e);
            }
        }
        actor.last_result = Some(result);
        if self.cfg.think_max == 0 {
            self.next_scripted_op(client);
        } else {
            let pause = self.rng.gen_range(0..self.cfg.think_max);
            self.queue.push(self.now + pause, Ev::NextOp { client });
        }
    }

    // ---- running -----------------------------------------------------------------------

    pub fn run_for(&mut self, dur: Micros) {
        let until = self.now + dur;
        while self.queue.peek_time().is_some_and(|t| t <= until) {
            self.step_event();
        }
        self.now = until;
    }

    /// Runs until `pred` holds (checked after every event) or `dur` passes.
    pub fn run_until(&mut self, dur: Micros, mut pred: impl FnMut(&KvCluster) -> bool) -> bool {
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

    /// Runs until every listed client is idle, for at most `dur`.
    pub fn wait_idle(&mut self, ids: &[ClientId], dur: Micros) -> bool {
        self.run_until(dur, |c| ids.iter().all(|&id| c.is_idle(id)))
    }

    fn step_event(&mut self) {
        let (at, ev) = self.queue.pop().expect("an event");
        self.now = at;
        self.counters.events += 1;
        match ev {
            Ev::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Ev::Deliver { from, to, packet } => self.on_deliver(from, to, packet),
            Ev::ClerkTimer { client, gen } => {
                let fx = self
                    .clients
                    .get_mut(&client)
                    .expect("client")
                    .clerk
                    .on_timer(gen, at);
                self.apply_effects(client, fx);
            }
            Ev::Partition { gen } => self.repartition(gen),
            Ev::NextOp { client } => self.next_scripted_op(client),
        }
    }

    fn on_tick(&mut self, node: NodeId, incarnation: u64) {
        if self.incarnation.get(&node) != Some(&incarnation) || !self.servers.contains_key(&node) {
            return;
        }
        self.queue
            .push(self.now + TICK_US, Ev::Tick { node, incarnation });
        let now_ms = self.now / MS;
        self.servers
            .get_mut(&node)
            .expect("server")
            .replica
            .tick(now_ms);
        self.drive(node);
    }

    fn on_deliver(&mut self, from: Addr, to: Addr, packet: Packet) {
        if !self.net.link_up(from, to) {
            return;
        }
        match (to, packet) {
            (Addr::Server(id), packet) if self.servers.contains_key(&id) => {
                self.server_receives(id, packet)
            }
            (Addr::Client(c), Packet::Reply(reply)) => {
                let Addr::Server(server) = from else { return };
                let fx = self
                    .clients
                    .get_mut(&c)
                    .expect("client")
                    .clerk
                    .on_reply(server, reply, self.now);
                self.apply_effects(c, fx);
            }
            _ => {}
        }
    }

    fn server_receives(&mut self, id: NodeId, packet: Packet) {
        let now_ms = self.now / MS;
        let server = self.servers.get_mut(&id).expect("server");
        match packet {
            Packet::Raft(m) => server.replica.step(m),
            Packet::Request(req) => {
                if let Some((client, reply)) = server.on_request(req, now_ms) {
                    self.send(Addr::Server(id), Addr::Client(client), Packet::Reply(reply));
                }
            }
            Packet::Reply(_) => return,
        }
        self.drive(id);
    }

    /// The replica's driver loop; routes its messages and replies.
    fn drive(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let replies = self
            .servers
            .get_mut(&id)
            .expect("server")
            .drive(&mut |m| out.push(m));
        for m in out {
            let to = m.to;
            self.send(Addr::Server(id), Addr::Server(to), Packet::Raft(m));
        }
        for (client, reply) in replies {
            self.send(Addr::Server(id), Addr::Client(client), Packet::Reply(reply));
        }
    }

    fn send(&mut self, from: Addr, to: Addr, packet: Packet) {
        self.counters.messages += 1;
        if !self.net.link_up(from, to) {
            return;
        }
        let delays = self.net.fate(&mut self.rng);
        let n = delays.len();
        let mut packet = Some(packet);
        for (i, d) in delays.into_iter().enumerate() {
            let p = if i + 1 == n {
                packet.take().expect("packet")
            } else {
                clone_packet(packet.as_ref().expect("packet"))
            };
            self.queue.push(
                self.now + d.max(1),
                Ev::Deliver {
                    from,
                    to,
                    packet: p,
                },
            );
        }
    }

    // ---- observations -----------------------------------------------------------------

    /// The live, connected server that leads in the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.servers
            .iter()
            .filter(|(&id, s)| {
                self.net.is_connected(id) && s.replica.raw_node().raft().role() == Role::Leader
            })
            .max_by_key(|(_, s)| s.replica.raw_node().raft().term())
            .map(|(&id, _)| id)
    }

    pub fn server(&self, id: NodeId) -> Option<&KvServer> {
        self.servers.get(&id)
    }

    fn storage(&self, id: NodeId) -> &MemStorage {
        match self.servers.get(&id) {
            Some(s) => s.replica.storage(),
            None => &self.disks[&id],
        }
    }

    /// Largest persisted Raft state (hard state + log) over all servers.
    pub fn max_raft_state_bytes(&self) -> u64 {
        self.ids()
            .into_iter()
            .map(|id| self.storage(id).log_size_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Largest snapshot over all servers.
    pub fn max_snapshot_bytes(&self) -> u64 {
        self.ids()
            .into_iter()
            .map(|id| {
                self.storage(id)
                    .snapshot()
                    .expect("mem snapshot")
                    .data
                    .len() as u64
            })
            .max()
            .unwrap_or(0)
    }

    /// State machine safety: live replicas that applied the same index hold
    /// identical state (data and sessions).
    pub fn check_replicas_agree(&self) {
        let mut by_index: BTreeMap<u64, (NodeId, &kv::StateMachine)> = BTreeMap::new();
        for (&id, s) in &self.servers {
            let sm = s.replica.state_machine();
            match by_index.get(&sm.applied_index()) {
                Some((other, theirs)) => {
                    assert!(
                        *theirs == sm,
                        "servers {other} and {id} differ at applied index {}",
                        sm.applied_index()
                    )
                }
                None => {
                    by_index.insert(sm.applied_index(), (id, sm));
                }
            }
        }
    }

    /// Checks the history for linearizability; panics with the explanation
    /// if it is not (or if the checker ran out of budget).
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
            lincheck::CheckResult::Unknown { partitions } => {
                panic!(
                    "linearizability check ran out of budget on {partitions:?} (seed {})",
                    self.cfg.seed
                )
            }
        }
    }

    /// Final checks: lab client checks, replica agreement, linearizability.
    pub fn end(&self) -> lincheck::Stats {
        assert!(
            self.client_errors.is_empty(),
            "client checks failed: {:?}",
            self.client_errors
        );
        self.check_replicas_agree();
        self.check_linearizable()
    }
}

fn clone_packet(p: &Packet) -> Packet {
    match p {
        Packet::Raft(m) => Packet::Raft(m.clone()),
        Packet::Request(r) => Packet::Request(r.clone()),
        Packet::Reply(r) => Packet::Reply(r.clone()),
    }
}
