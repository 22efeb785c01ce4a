//! The simulated network: which links are up, and what happens to a message in flight
//! (dropped, delayed, duplicated, reordered). Every decision draws from the cluster's
//! seeded RNG.
//!
//! Model (after the classic lab's network): reliable mode delivers everything after a
//! short delay; unreliable mode drops 10% of messages, delays others up to 27 ms and
//! duplicates 2%; long reordering (as labrpc) delays two thirds of *replies* by
//! 200 ms + rand(1 + rand(2000)) ms, so replies arrive long after newer ones.
//! A message crosses only if both ends are connected and in the same partition, and its
//! direction of the link is not silent, both when it is sent and when it arrives.
//!
//! A silent link ([`Network::silence`]) is one direction of one node pair that accepts
//! everything and delivers nothing, until [`Network::unsilence_all`] or [`Network::heal`]:
//! what a real half-open TCP connection does (a middlebox that accepted the connection
//! and swallows it, a peer whose socket never drains). The sender sees no error — in this
//! message-passing model no send ever does — so the fault differs from a partition only
//! in being per direction and per pair: one way silent and the other open is the
//! asymmetric case (a leader whose heartbeats arrive but whose acks never return).

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::events::Micros;
use raft::NodeId;

#[derive(Clone, Debug)]
pub struct Network {
    pub unreliable: bool,
    pub long_reordering: bool,
    /// Disconnected nodes (the lab's `disconnect(i)`) talk to nobody.
    connected: Vec<bool>,
    /// Partition group of each node; messages cross only within a group.
    group: Vec<u32>,
    /// Silent directions (from, to): they deliver nothing.
    silent: BTreeSet<(NodeId, NodeId)>,
}

/// What happens to one sent message.
pub enum Fate {
    Drop,
    /// Delivered after each of these delays (two entries: duplicated).
    Deliver(Vec<Micros>),
}

impl Network {
    pub fn new(n: usize) -> Self {
        Network {
            unreliable: false,
            long_reordering: false,
            connected: vec![true; n + 1],
            group: vec![0; n + 1],
            silent: BTreeSet::new(),
        }
    }

    pub fn connect(&mut self, id: NodeId) {
        self.connected[id as usize] = true;
    }

    pub fn disconnect(&mut self, id: NodeId) {
        self.connected[id as usize] = false;
    }

    pub fn is_connected(&self, id: NodeId) -> bool {
        self.connected[id as usize]
    }

    /// Splits nodes into groups; nodes not listed form one more group.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for g in self.group.iter_mut() {
            *g = u32::MAX;
        }
        for (i, members) in groups.iter().enumerate() {
            for &m in members.iter() {
                self.group[m as usize] = i as u32;
            }
        }
    }

    /// Makes the `from` → `to` direction silent (see the module docs).
    pub fn silence(&mut self, from: NodeId, to: NodeId) {
        self.silent.insert((from, to));
    }

    /// Every silent direction delivers again (partitions are left as they are).
    pub fn unsilence_all(&mut self) {
        self.silent.clear();
    }

    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.connected.iter_mut().for_each(|c| *c = true);
        self.silent.clear();
    }

    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        let (f, t) = (from as usize, to as usize);
        self.connected[f]
            && self.connected[t]
            && self.group[f] == self.group[t]
            && !self.silent.contains(&(from, to))
    }

    pub fn fate(&self, rng: &mut ChaCha8Rng, is_reply: bool) -> Fate {
        if !self.unreliable && !self.long_reordering {
            return Fate::Deliver(vec![rng.gen_range(50..500)]);
        }
        if self.unreliable && rng.gen_ratio(1, 10) {
            return Fate::Drop;
        }
        let delay = |rng: &mut ChaCha8Rng| -> Micros {
            let mut d = if self.unreliable {
                rng.gen_range(0..27_000)
            } else {
                rng.gen_range(50..500)
            };
            if self.long_reordering && is_reply && rng.gen_ratio(2, 3) {
                let spread = rng.gen_range(0..=2000u64);
                d += (200 + rng.gen_range(0..=spread)) * 1_000;
            }
            d
        };
        let first = delay(rng);
        if self.unreliable && rng.gen_ratio(1, 50) {
            let second = delay(rng);
            return Fate::Deliver(vec![first, second]);
        }
        Fate::Deliver(vec![first])
    }
}
