//! A tiny synchronous network of `RawNode`s for core unit tests: drive a node's Ready
//! loop, collect its messages, deliver them through a filter. No simulator, no time.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

use raft::{Config, Entry, HardState, MemStorage, Message, NodeId, RawNode, ReadState, Storage};

pub struct Net {
    pub nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    pub queue: VecDeque<Message>,
    /// Every message that left a node, in order.
    pub sent: Vec<Message>,
    pub read_states: BTreeMap<NodeId, Vec<ReadState>>,
}

pub fn config(id: NodeId, n: u64) -> Config {
    let mut cfg = Config::new(id, (1..=n).collect());
    cfg.election_ticks = 10;
    cfg.heartbeat_ticks = 1;
    cfg
}

/// A store holding `entries` (as (index, term) pairs with empty data) and `term`.
pub fn store_with(log: &[(u64, u64)], term: u64, commit: u64) -> MemStorage {
    let mut s = MemStorage::new();
    let entries: Vec<Entry> = log
        .iter()
        .map(|&(i, t)| Entry::normal(t, i, Default::default()))
        .collect();
    s.append(&entries).unwrap();
    s.set_hard_state(HardState {
        term,
        vote: None,
        commit,
    })
    .unwrap();
    s
}

impl Net {
    pub fn new(n: u64) -> Net {
        Self::with(n, |id| (config(id, n), MemStorage::new()))
    }

    pub fn with(n: u64, mut make: impl FnMut(NodeId) -> (Config, MemStorage)) -> Net {
        let nodes = (1..=n)
            .map(|id| {
                let (cfg, s) = make(id);
                (id, RawNode::new(cfg, s).unwrap())
            })
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            sent: Vec::new(),
            read_states: BTreeMap::new(),
        }
    }

    /// Adds a fresh node `id` that knows no membership yet (it joins whatever group
    /// its leader replicates to it).
    pub fn add_joining(&mut self, id: NodeId) {
        let mut cfg = Config::new(id, Vec::new());
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 1;
        self.nodes
            .insert(id, RawNode::new(cfg, MemStorage::new()).unwrap());
    }

    /// Crashes and restarts `id` from what it persisted, with `peers` as its configured
    /// bootstrap voters.
    pub fn restart(&mut self, id: NodeId, peers: Vec<NodeId>) {
        let node = self.nodes.remove(&id).unwrap();
        let storage = node.into_storage();
        let mut cfg = Config::new(id, peers);
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 1;
        cfg.applied = storage.first_index() - 1; // the application restored the snapshot
        self.nodes.insert(id, RawNode::new(cfg, storage).unwrap());
        self.drive(id); // re-apply the committed log, as the application would
    }

    pub fn node(&mut self, id: NodeId) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Runs `id`'s Ready loop, queueing what it sends.
    pub fn drive(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        while node.has_ready() {
            let rd = node.ready();
            node.persist(&rd).unwrap();
            for m in rd.messages.iter().chain(rd.persisted_messages.iter()) {
                self.sent.push(m.clone());
                self.queue.push_back(m.clone());
            }
            self.read_states
                .entry(id)
                .or_default()
                .extend(rd.read_states.iter().copied());
            node.advance(rd);
        }
    }

    pub fn drive_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drive(id);
        }
    }

    /// Delivers queued messages (and what they cause) until quiet; `keep` filters.
    pub fn deliver(&mut self, mut keep: impl FnMut(&Message) -> bool) {
        self.drive_all();
        let mut budget = 100_000;
        while let Some(m) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if !keep(&m) || !self.nodes.contains_key(&m.to) {
                continue;
            }
            let to = m.to;
            self.node(to).step(m);
            self.drive(to);
        }
    }

    pub fn deliver_all(&mut self) {
        self.deliver(|_| true);
    }

    /// Campaigns on `id` and delivers everything: `id` should end up leader.
    pub fn elect(&mut self, id: NodeId) {
        self.node(id).campaign();
        self.deliver_all();
    }

    pub fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.node(id).tick();
            }
        }
    }

    pub fn sent_count(&self, kind: &str) -> usize {
        self.sent.iter().filter(|m| m.body.kind() == kind).count()
    }
}
