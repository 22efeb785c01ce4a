//! The KV simulation's network: servers and clients as endpoints, which links
//! are up, and each message's fate.
//!
//! Model (the classic KV lab's labrpc): server↔server links follow the
//! servers' partition groups and connect/disconnect state; a client reaches
//! the servers it is connected to (all, unless a test says otherwise), and
//! never loses that link to a server partition. Unreliable mode drops 10% of
//! messages, delays the rest up to 27 ms and duplicates 2%, on every link;
//! reliable mode delivers after 50–500 µs; long reordering (the sweep's)
//! makes a fifth of messages 200–2200 ms late. A message crosses only if its link
//! is up both when sent and when it arrives.

use std::collections::{BTreeMap, BTreeSet};

use raft::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::events::Micros;
use crate::network::Network;

/// A simulated client (an actor running a clerk).
pub type ClientId = u64;

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Addr {
    Server(NodeId),
    Client(ClientId),
}

#[derive(Clone, Debug)]
pub struct KvNet {
    pub unreliable: bool,
    /// A fifth of messages arrive 200–2200 ms late (stale messages and replies).
    pub long_reordering: bool,
    /// Server↔server links: connect/disconnect state and partition groups (the same
    /// model as the Raft-level simulator; its fate settings are unused here).
    servers: Network,
    /// Servers each client may reach; absent = all.
    client_links: BTreeMap<ClientId, BTreeSet<NodeId>>,
}

impl KvNet {
    pub fn new(servers: usize) -> Self {
        KvNet {
            unreliable: false,
            long_reordering: false,
            servers: Network::new(servers),
            client_links: BTreeMap::new(),
        }
    }

    pub fn connect(&mut self, id: NodeId) {
        self.servers.connect(id);
    }

    pub fn disconnect(&mut self, id: NodeId) {
        self.servers.disconnect(id);
    }

    pub fn is_connected(&self, id: NodeId) -> bool {
        self.servers.is_connected(id)
    }

    /// Splits servers into groups (servers not listed form one more group).
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.servers.partition(groups);
    }

    /// Every server connected, one group, every client reaching every server.
    pub fn heal(&mut self) {
        self.servers.heal();
        self.client_links.clear();
    }

    /// Restricts `client` to `servers` (the lab's `ConnectClient`).
    pub fn connect_client(&mut self, client: ClientId, servers: &[NodeId]) {
        self.client_links
            .insert(client, servers.iter().copied().collect());
    }

    /// Lets `client` reach every server again.
    pub fn connect_client_all(&mut self, client: ClientId) {
        self.client_links.remove(&client);
    }

    pub fn link_up(&self, from: Addr, to: Addr) -> bool {
        match (from, to) {
            (Addr::Server(a), Addr::Server(b)) => self.servers.link_up(a, b),
            (Addr::Client(c), Addr::Server(s)) | (Addr::Server(s), Addr::Client(c)) => {
                let allowed = match self.client_links.get(&c) {
                    Some(servers) => servers.contains(&s),
                    None => true,
                };
                self.is_connected(s) && allowed
            }
            (Addr::Client(_), Addr::Client(_)) => false,
        }
    }

    /// Delivery delays for one message: empty = dropped, two = duplicated.
    pub fn fate(&self, rng: &mut ChaCha8Rng) -> Vec<Micros> {
        let mut delays = self.base_fate(rng);
        if self.long_reordering {
            for d in delays.iter_mut() {
                if rng.gen_ratio(1, 5) {
                    *d += rng.gen_range(200_000..2_200_000);
                }
            }
        }
        delays
    }

    fn base_fate(&self, rng: &mut ChaCha8Rng) -> Vec<Micros> {
        if !self.unreliable {
            return vec![rng.gen_range(50..500)];
        }
        if rng.gen_ratio(1, 10) {
            return Vec::new();
        }
        let mut delays = vec![rng.gen_range(1..27_000)];
        if rng.gen_ratio(1, 50) {
            delays.push(rng.gen_range(1..27_000));
        }
        delays
    }
}
