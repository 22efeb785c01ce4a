//! `Cluster`: N simulated servers on a simulated network, in virtual time, with the
//! classic lab's test helpers (`one`, `check_one_leader`, ...). Each server is the real
//! `replica::Replica` — the very driver loop the server binary runs — joined to the
//! lab's applier (`node::LabApplier`); the cluster only ticks, delivers, and watches.
//!
//! What it watches, after every drive of a node: whether the node has just become
//! leader (Election Safety, Leader Completeness), the applier's journal (every entry
//! applied and snapshot installed: State Machine Safety), and the read completions
//! (a ReadIndex read is served at an index at or above everything applied anywhere
//! before it was issued). Log Matching is checked every 64 events.
//!
//! One seed drives everything (network fates, election timeouts, tick phases). A
//! failure panics with a message; the `SeedGuard` prints `SIM_SEED=<seed>` so the run
//! can be replayed bit for bit. Invariants (`invariants.rs`) are checked as the run goes.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::{
    ConfChange, Config, Index, MemStorage, Membership, Message, MessageBody, NodeId, RaftError,
    Role, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replica::Outcome;

use crate::store::{log_size_bytes, SimStore};

use crate::events::{Event, EventQueue, Micros};
use crate::invariants::Invariants;
use crate::network::{Fate, Network};
use crate::node::{LabApplier, LabEvent, SimNode};

/// Virtual time between two ticks of a node.
pub const TICK_US: Micros = 10_000;
pub const MS: Micros = 1_000;
pub const SEC: Micros = 1_000_000;
/// Longest a leader's host-run log sync takes (uniform from 0).
pub const SYNC_MAX_US: Micros = 3_000;

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub servers: usize,
    /// Extra nodes (ids after the servers) that start outside the group, knowing no
    /// membership, ready to be added by a membership change.
    pub spares: usize,
    pub seed: u64,
    pub unreliable: bool,
    /// Snapshot the applier state every this many applied entries (lab 2D), if set.
    pub snapshot_interval: Option<u64>,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Ticks: heartbeats every 100 ms, elections after 300–600 ms (the lab's bounds:
    /// at most ten heartbeats a second, a new leader within five seconds).
    pub heartbeat_ticks: u32,
    pub election_ticks: u32,
    pub snapshot_chunk_bytes: u64,
    pub max_append_bytes: u64,
}

impl ClusterConfig {
    pub fn new(servers: usize, reliable: bool) -> Self {
        ClusterConfig {
            servers,
            spares: 0,
            seed: seed_from_env(0x5eed),
            unreliable: !reliable,
            snapshot_interval: None,
            pre_vote: true,
            check_quorum: true,
            heartbeat_ticks: 10,
            election_ticks: 30,
            snapshot_chunk_bytes: 64 * 1024,
            max_append_bytes: 64 * 1024,
        }
    }

    pub fn snapshots(mut self, interval: u64) -> Self {
        self.snapshot_interval = Some(interval);
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// `SIM_SEED` from the environment, or `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Prints the seed when the test that owns it panics.
pub struct SeedGuard(pub u64, pub &'static str);
impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation failed; reproduce with: SIM_SEED={} cargo test {}",
                self.0, self.1
            );
        }
    }
}

/// Per-node message counters: requests (the lab's "RPCs"), all messages, bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub rpcs: u64,
    pub messages: u64,
    pub bytes: u64,
}

pub struct Cluster<S: SimStore = MemStorage> {
    pub cfg: ClusterConfig,
    pub rng: ChaCha8Rng,
    pub now: Micros,
    pub net: Network,
    queue: EventQueue,
    nodes: BTreeMap<NodeId, SimNode<S>>,
    /// Durable state of crashed nodes (and of live ones: the node's own storage).
    crashed: BTreeMap<NodeId, S>,
    incarnation: BTreeMap<NodeId, u64>,
    counters: BTreeMap<NodeId, Counters>,
    /// Messages sent, by kind (`MessageBody::kind`).
    pub sent_by_kind: BTreeMap<&'static str, u64>,
    pub inv: Invariants,
    /// Tokens of proposals (reads use their ctx as token, below this bit).
    next_proposal: u64,
    /// Reads answered by `read_index`: (node, ctx) -> the applied index served at.
    pub read_answers: BTreeMap<(NodeId, u64), Index>,
    /// Reads in flight: (node, ctx) -> the highest index anyone had applied when the read
    /// was issued. A linearizable read must be answered at that index or later.
    read_floors: BTreeMap<(NodeId, u64), Index>,
    pub events_processed: u64,
    /// A running digest of every event (time, kind, endpoints, message): two runs with
    /// equal digests processed the same events in the same order.
    pub trace_digest: u64,
}

impl Cluster<MemStorage> {
    /// A cluster whose nodes keep their durable state in memory.
    pub fn new(cfg: ClusterConfig) -> Cluster<MemStorage> {
        Cluster::with_stores(cfg, |_| MemStorage::new())
    }
}

impl<S: SimStore> Cluster<S> {
    /// A cluster whose node `id` starts from the (empty) store `make(id)`.
    pub fn with_stores(cfg: ClusterConfig, mut make: impl FnMut(NodeId) -> S) -> Cluster<S> {
        let mut c = Cluster {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            now: 0,
            net: Network::new(cfg.servers + cfg.spares),
            queue: EventQueue::default(),
            nodes: BTreeMap::new(),
            crashed: BTreeMap::new(),
            incarnation: BTreeMap::new(),
            counters: BTreeMap::new(),
            sent_by_kind: BTreeMap::new(),
            inv: Invariants::default(),
            next_proposal: PROPOSAL_TOKENS,
            read_answers: BTreeMap::new(),
            read_floors: BTreeMap::new(),
            events_processed: 0,
            trace_digest: 0xcbf2_9ce4_8422_2325,
            cfg,
        };
        c.net.unreliable = c.cfg.unreliable;
        for id in c.ids() {
            c.crashed.insert(id, make(id));
            c.start(id);
        }
        c
    }

    /// Every node: the initial servers, then the spares.
    pub fn ids(&self) -> Vec<NodeId> {
        (1..=(self.cfg.servers + self.cfg.spares) as NodeId).collect()
    }

    /// The group's initial voters.
    pub fn initial_voters(&self) -> Vec<NodeId> {
        (1..=self.cfg.servers as NodeId).collect()
    }

    fn replica_config(&self, id: NodeId) -> replica::Config {
        let mut cfg = replica::Config::new(self.raft_config(id));
        cfg.snapshot_threshold_bytes = None;
        cfg.snapshot_every_entries = self.cfg.snapshot_interval;
        cfg.session_tick_interval_ms = None;
        // As the server's driver: the leader's log sync runs beside it (`Event::Synced`).
        cfg.leader_sync_by_host = true;
        cfg
    }

    fn raft_config(&self, id: NodeId) -> Config {
        let voters = self.initial_voters();
        // A spare knows no group: it learns the membership from a leader that adds it.
        let peers = if voters.contains(&id) {
            voters
        } else {
            Vec::new()
        };
        let mut cfg = Config::new(id, peers);
        cfg.pre_vote = self.cfg.pre_vote;
        cfg.check_quorum = self.cfg.check_quorum;
        cfg.heartbeat_ticks = self.cfg.heartbeat_ticks;
        cfg.election_ticks = self.cfg.election_ticks;
        cfg.snapshot_chunk_bytes = self.cfg.snapshot_chunk_bytes;
        cfg.max_append_bytes = self.cfg.max_append_bytes;
        // As the server's (`server::config::MAX_INFLIGHT_APPENDS`): a lost Append stalls a
        // follower until a heartbeat reply frees the window, and these runs lose many.
        cfg.max_inflight_appends = 2;
        cfg.seed =
            self.cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id ^ (self.incarnation[&id] << 32);
        cfg
    }

    // ---- faults ------------------------------------------------------------------

    /// Boots node `id` from its durable state (the lab's `start1`).
    pub fn start(&mut self, id: NodeId) {
        let Some(storage) = self.crashed.remove(&id) else {
            return;
        };
        *self.incarnation.entry(id).or_insert(0) += 1;
        let node = SimNode::boot(self.replica_config(id), storage);
        self.nodes.insert(id, node);
        let phase = self.rng.gen_range(0..TICK_US);
        let incarnation = self.incarnation[&id];
        self.queue.push(
            self.now + phase + 1,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
    }

    /// Crashes node `id`: volatile state is lost, persisted state is kept (`crash1`).
    pub fn crash(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.remove(&id) {
            // A leader's log write whose sync has not completed may be lost.
            let unsynced_from = node.raw().unsynced_from();
            let storage = node.replica.into_storage();
            self.crashed
                .insert(id, storage.crash_and_recover(unsynced_from));
        }
    }

    /// The lab's `start1` on a running node: crash it and boot it again from disk.
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        self.start(id);
    }

    /// Crashes every node, then boots every node from its disk and reconnects it.
    pub fn crash_and_restart_all(&mut self) {
        for id in self.ids() {
            self.crash(id);
        }
        for id in self.ids() {
            self.start(id);
            self.connect(id);
        }
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    pub fn disconnect(&mut self, id: NodeId) {
        self.net.disconnect(id);
    }

    pub fn connect(&mut self, id: NodeId) {
        self.net.connect(id);
    }

    pub fn set_unreliable(&mut self, on: bool) {
        self.net.unreliable = on;
    }

    pub fn set_long_reordering(&mut self, on: bool) {
        self.net.long_reordering = on;
    }

    // ---- running -------------------------------------------------------------------

    /// Runs the simulation for `dur` of virtual time.
    pub fn run_for(&mut self, dur: Micros) {
        let until = self.now + dur;
        while self.queue.peek_time().is_some_and(|t| t <= until) {
            self.step_event();
        }
        self.now = until;
    }

    /// Runs until `pred` holds (checked after every event) or `dur` passes.
    pub fn run_until(&mut self, dur: Micros, mut pred: impl FnMut(&Cluster<S>) -> bool) -> bool {
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
        let (at, ev) = self.queue.pop().expect("event");
        self.now = at;
        self.events_processed += 1;
        self.fold_digest(at, &ev);
        match ev {
            Event::Tick { node, incarnation } => {
                if self.incarnation.get(&node) != Some(&incarnation)
                    || !self.nodes.contains_key(&node)
                {
                    return;
                }
                self.queue
                    .push(at + TICK_US, Event::Tick { node, incarnation });
                let now_ms = self.now / MS;
                self.nodes
                    .get_mut(&node)
                    .expect("node")
                    .replica
                    .tick(now_ms);
                self.drive(node);
            }
            Event::Deliver(m) => {
                let to = m.to;
                if !self.net.link_up(m.from, to) || !self.nodes.contains_key(&to) {
                    return;
                }
                self.nodes.get_mut(&to).expect("node").replica.step(m);
                self.drive(to);
            }
            Event::Synced {
                node,
                incarnation,
                req,
            } => {
                if self.incarnation.get(&node) != Some(&incarnation) {
                    return;
                }
                let Some(n) = self.nodes.get_mut(&node) else {
                    return;
                };
                raft::Storage::sync(n.replica.storage_mut()).expect("our stores do not fail");
                n.replica.synced(req);
                self.drive(node);
            }
        }
        if self.events_processed.is_multiple_of(64) {
            self.check_log_matching();
        }
    }

    fn fold_digest(&mut self, at: Micros, ev: &Event) {
        let words = match ev {
            Event::Tick { node, incarnation } => [at, 1, *node, *incarnation, 0],
            Event::Deliver(m) => [at, 2, m.from, m.to, m.term ^ m.size_bytes() << 32],
            Event::Synced { node, req, .. } => [at, 3, *node, req.index, req.term],
        };
        for w in words {
            self.trace_digest = (self.trace_digest ^ w).wrapping_mul(0x100_0000_01b3);
        }
    }

    /// Runs the replica's driver loop on node `id` (until Raft has nothing ready),
    /// then checks what it did and sends what it emitted.
    pub fn drive(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&id).expect("node");
        let done = node
            .replica
            .drive(&mut |m| out.push(m))
            .expect("our stores do not fail and our snapshots decode");
        self.observe_leader(id);
        self.observe_applier(id);
        for c in done {
            self.observe_completion(id, c.token, c.outcome);
        }
        for m in out {
            self.send(m);
        }
        // The leader's log sync, run "beside" the node: it completes after a seeded
        // delay, while the node keeps stepping acknowledgements (§10.2.1).
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(req) = node.replica.take_sync() {
            let delay = self.rng.gen_range(0..=SYNC_MAX_US);
            let incarnation = self.incarnation[&id];
            self.queue.push(
                self.now + delay + 1,
                Event::Synced {
                    node: id,
                    incarnation,
                    req,
                },
            );
        }
    }

    /// Checks a node once in each term it leads, right after the drive that made it
    /// leader (no other node acts within a drive, so this is the moment it won).
    fn observe_leader(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        let raft = node.replica.raw_node().raft();
        let leading = (raft.role() == Role::Leader).then_some(raft.term());
        if leading.is_none() || leading == node.led_term {
            node.led_term = leading;
            return;
        }
        node.led_term = leading;
        let node = &self.nodes[&id];
        let raft = node.replica.raw_node().raft();
        self.inv.on_leader(id, raft.term(), raft.log(), &self.cfg);
    }

    fn observe_applier(&mut self, id: NodeId) {
        for event in self.nodes[&id].drain_journal() {
            match event {
                LabEvent::Applied(index, payload) => self.inv.on_apply(id, index, &payload),
                LabEvent::Restored(state) => self.inv.on_snapshot_installed(id, &state),
            }
        }
    }

    fn observe_completion(&mut self, id: NodeId, token: u64, outcome: Outcome<LabApplier>) {
        match outcome {
            Outcome::Value(served) => {
                if let Some(floor) = self.read_floors.remove(&(id, token)) {
                    assert!(
                        served >= floor,
                        "stale read: node {id} served read {token} at index {served} but {floor} was applied before it was issued"
                    );
                }
                self.read_answers.insert((id, token), served);
            }
            Outcome::ReadAborted { .. } => {
                self.read_floors.remove(&(id, token));
            }
            // The lab watches proposals through what servers apply (`n_committed`).
            Outcome::Applied(_) | Outcome::Unknown { .. } => {}
        }
    }

    fn send(&mut self, m: Message) {
        let c = self.counters.entry(m.from).or_default();
        c.messages += 1;
        c.bytes += m.size_bytes();
        *self.sent_by_kind.entry(m.body.kind()).or_default() += 1;
        if is_request(&m.body) {
            c.rpcs += 1;
        }
        if !self.net.link_up(m.from, m.to) {
            return;
        }
        let is_reply = !is_request(&m.body);
        match self.net.fate(&mut self.rng, is_reply) {
            Fate::Drop => {}
            Fate::Deliver(delays) => {
                let n = delays.len();
                for (i, d) in delays.into_iter().enumerate() {
                    let _ = (i, n);
                    self.queue
                        .push(self.now + d.max(1), Event::Deliver(m.clone()));
                }
            }
        }
    }

    fn check_log_matching(&self) {
        let nodes: Vec<&SimNode<S>> = self.nodes.values().collect();
        for i in 0..nodes.len() {
            for j in i + 1..nodes.len() {
                crate::invariants::check_log_matching(nodes[i].raw(), nodes[j].raw());
            }
        }
    }

    // ---- lab helpers -------------------------------------------------------------

    pub fn node(&self, id: NodeId) -> Option<&SimNode<S>> {
        self.nodes.get(&id)
    }

    pub fn counters(&self, id: NodeId) -> Counters {
        self.counters.get(&id).copied().unwrap_or_default()
    }

    /// Sum of the lab's "RPC" count over all nodes.
    pub fn total_rpcs(&self) -> u64 {
        self.counters.values().map(|c| c.rpcs).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.counters.values().map(|c| c.bytes).sum()
    }

    pub fn total_messages(&self) -> u64 {
        self.counters.values().map(|c| c.messages).sum()
    }

    /// (term, is_leader) of a live node, as the lab's `GetState`.
    pub fn state(&self, id: NodeId) -> Option<(Term, bool)> {
        let r = self.nodes.get(&id)?.raw().raft();
        Some((r.term(), r.role() == Role::Leader))
    }

    /// The lab's `Start`: proposes on `id` if it believes it leads.
    pub fn start_cmd(&mut self, id: NodeId, cmd: Bytes) -> Option<(Index, Term)> {
        let node = self.nodes.get_mut(&id)?;
        self.next_proposal += 1;
        let now_ms = self.now / MS;
        node.replica.propose(self.next_proposal, cmd, now_ms).ok()?;
        // The proposal is the last entry of the leader's log now.
        let raft = node.replica.raw_node().raft();
        let (index, term) = (raft.log().last_index(), raft.term());
        self.drive(id);
        Some((index, term))
    }

    // ---- membership ---------------------------------------------------------------

    /// The live node leading the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raw().raft().role() == Role::Leader)
            .max_by_key(|(_, n)| n.raw().raft().term())
            .map(|(&id, _)| id)
    }

    /// The membership in force on live node `id`.
    pub fn membership(&self, id: NodeId) -> Option<Membership> {
        Some(self.nodes.get(&id)?.raw().raft().membership().clone())
    }

    /// Proposes `change` on live node `on` (which must lead to accept it) and drives it.
    pub fn change_membership_on(
        &mut self,
        on: NodeId,
        change: ConfChange,
    ) -> Result<Index, RaftError> {
        let node = self
            .nodes
            .get_mut(&on)
            .ok_or(RaftError::NotLeader { hint: None })?;
        let r = node.replica.propose_conf_change(change);
        self.drive(on);
        r
    }

    /// Proposes `change` on the current leader, if there is one.
    pub fn change_membership(&mut self, change: ConfChange) -> Result<Index, RaftError> {
        let leader = self.leader().ok_or(RaftError::NotLeader { hint: None })?;
        self.change_membership_on(leader, change)
    }

    /// Asks the current leader to hand leadership to `to`.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), RaftError> {
        let leader = self.leader().ok_or(RaftError::NotLeader { hint: None })?;
        let r = self
            .nodes
            .get_mut(&leader)
            .expect("live leader")
            .replica
            .transfer_leader(to);
        self.drive(leader);
        r
    }

    /// The lab's `checkOneLeader`: waits for exactly one leader among connected nodes.
    pub fn check_one_leader(&mut self) -> NodeId {
        for _ in 0..10 {
            let ms = self.rng.gen_range(450..550);
            self.run_for(ms * MS);
            let mut leaders: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
            for (&id, node) in &self.nodes {
                if self.net.is_connected(id) && node.raw().raft().role() == Role::Leader {
                    leaders
                        .entry(node.raw().raft().term())
                        .or_default()
                        .push(id);
                }
            }
            for (term, ids) in &leaders {
                assert!(
                    ids.len() <= 1,
                    "term {term} has {} (>1) leaders: {ids:?}",
                    ids.len()
                );
            }
            if let Some((_, ids)) = leaders.iter().next_back() {
                return ids[0];
            }
        }
        panic!("expected one leader, got none");
    }

    /// The lab's `checkTerms`: connected servers agree on the term.
    pub fn check_terms(&self) -> Term {
        let mut term = None;
        for (&id, node) in &self.nodes {
            if !self.net.is_connected(id) {
                continue;
            }
            let t = node.raw().raft().term();
            match term {
                None => term = Some(t),
                Some(x) => assert_eq!(x, t, "servers disagree on term"),
            }
        }
        term.unwrap_or(0)
    }

    /// The lab's `checkNoLeader`.
    pub fn check_no_leader(&self) {
        for (&id, node) in &self.nodes {
            if self.net.is_connected(id) {
                assert_ne!(
                    node.raw().raft().role(),
                    Role::Leader,
                    "expected no leader among connected servers, but {id} claims to be"
                );
            }
        }
    }

    /// How many servers think index is committed (have applied it), and its value.
    pub fn n_committed(&self, index: Index) -> (usize, Option<Bytes>) {
        let mut count = 0;
        let mut value: Option<Bytes> = None;
        for node in self.nodes.values() {
            if let Some(v) = node.applied().get(&index) {
                if let Some(prev) = &value {
                    assert_eq!(
                        Some(prev),
                        v.as_ref(),
                        "committed values do not match: index {index}"
                    );
                }
                count += 1;
                value = v.clone();
            }
        }
        // Crashed nodes keep what they applied in the lab (their applier log survives);
        // ours restart from a snapshot, so count only live nodes.
        (count, value)
    }

    /// The lab's `one`: submits `cmd` to a leader until `expected` servers apply it.
    pub fn one(&mut self, cmd: Bytes, expected: usize, retry: bool) -> Index {
        let deadline = self.now + 10 * SEC;
        let mut starts = self.ids().into_iter().cycle();
        while self.now < deadline {
            let mut index = None;
            for _ in 0..self.ids().len() {
                let id = starts.next().expect("cycle");
                if !self.nodes.contains_key(&id) || !self.net.is_connected(id) {
                    continue;
                }
                if let Some((i, _)) = self.start_cmd(id, cmd.clone()) {
                    index = Some(i);
                    break;
                }
            }
            if let Some(index) = index {
                let t1 = self.now;
                let ok = self.run_until(2 * SEC, |c| {
                    let (n, v) = c.n_committed(index);
                    n >= expected && v.as_ref() == Some(&cmd)
                });
                if ok {
                    return index;
                }
                let _ = t1;
                assert!(retry, "one({cmd:?}) failed to reach agreement");
            } else {
                self.run_for(50 * MS);
            }
        }
        panic!("one({cmd:?}) failed to reach agreement");
    }

    /// Several `one`s at once (the lab runs them in goroutines): every command is
    /// (re)submitted to a leader until each is applied by at least `expected` servers.
    pub fn one_concurrent(&mut self, cmds: &[Bytes], expected: usize) {
        let deadline = self.now + 10 * SEC;
        let mut submitted: BTreeMap<usize, Index> = BTreeMap::new();
        while self.now < deadline {
            let done = |c: &Cluster<S>, k: usize, sub: &BTreeMap<usize, Index>| {
                sub.get(&k).is_some_and(|&i| {
                    let (n, v) = c.n_committed(i);
                    n >= expected && v.as_ref() == Some(&cmds[k])
                })
            };
            if (0..cmds.len()).all(|k| done(self, k, &submitted)) {
                return;
            }
            for (k, command) in cmds.iter().enumerate() {
                if done(self, k, &submitted) {
                    continue;
                }
                for id in self.ids() {
                    if let Some((i, _)) = self.start_cmd(id, command.clone()) {
                        submitted.insert(k, i);
                        break;
                    }
                }
            }
            let sub = submitted.clone();
            self.run_until(2 * SEC, |c| (0..cmds.len()).all(|k| done(c, k, &sub)));
        }
        panic!(
            "one_concurrent failed to reach agreement on {} commands",
            cmds.len()
        );
    }

    /// Whether `id` is disconnected (the lab's `connected[i]`).
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.net.is_connected(id)
    }

    /// Largest persisted Raft state over all servers (the lab's `LogSize`).
    pub fn max_raft_state_size(&self) -> u64 {
        self.ids()
            .into_iter()
            .map(|id| self.raft_state_size(id))
            .max()
            .unwrap_or(0)
    }

    /// The lab's `wait`: waits for `n` servers to commit `index`; gives up (None) if a
    /// server moves past `start_term`.
    pub fn wait(&mut self, index: Index, n: usize, start_term: Option<Term>) -> Option<Bytes> {
        let mut to = 10 * MS;
        for _ in 0..30 {
            let (nd, _) = self.n_committed(index);
            if nd >= n {
                break;
            }
            self.run_for(to);
            if to < SEC {
                to *= 2;
            }
            if let Some(st) = start_term {
                if self.nodes.values().any(|nd| nd.raw().raft().term() > st) {
                    return None;
                }
            }
        }
        let (nd, v) = self.n_committed(index);
        assert!(nd >= n, "only {nd} decided for index {index}; wanted {n}");
        v
    }

    /// Issues a ReadIndex read on `id` through the replica (`ctx` is its token; it
    /// must be below 2^63 and not reused while in flight); false if refused (not the
    /// leader). When served, the applied index it was served at is checked against
    /// every index applied anywhere before now (linearizability of ReadIndex,
    /// dissertation §6.4) and recorded in `read_answers`.
    pub fn read_index(&mut self, id: NodeId, ctx: u64) -> bool {
        assert!(
            ctx < PROPOSAL_TOKENS,
            "read ctx {ctx} collides with proposal tokens"
        );
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let ok = node.replica.read(ctx, ()).is_ok();
        if ok {
            self.read_floors
                .insert((id, ctx), self.inv.max_applied_index());
        }
        self.drive(id);
        ok
    }

    /// Persisted Raft state size of a node (hard state + log), the lab's `RaftStateSize`.
    pub fn raft_state_size(&self, id: NodeId) -> u64 {
        match self.nodes.get(&id) {
            Some(n) => log_size_bytes(n.replica.storage()),
            None => log_size_bytes(&self.crashed[&id]),
        }
    }

    pub fn snapshot_index(&self, id: NodeId) -> Index {
        match self.nodes.get(&id) {
            Some(n) => n.raw().status().snapshot_index,
            None => self.crashed[&id].first_index() - 1,
        }
    }

    /// Final checks at the end of a test: invariants over every live node's log.
    pub fn end(&self) {
        self.check_log_matching();
    }
}

/// Proposal tokens start here; read tokens (the caller's ctx) stay below.
const PROPOSAL_TOKENS: u64 = 1 << 63;

fn is_request(body: &MessageBody) -> bool {
    matches!(
        body,
        MessageBody::PreVote { .. }
            | MessageBody::Vote { .. }
            | MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Snapshot { .. }
            | MessageBody::ReadIndex { .. }
            | MessageBody::TimeoutNow
    )
}

/// A command carrying a number, as the lab's integer commands.
pub fn cmd(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}
