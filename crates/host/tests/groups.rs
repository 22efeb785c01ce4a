//! Several kv groups on three hosts, envelopes delivered by hand: each group
//! elects and serves on its own, groups come and go at runtime, a group's
//! replica moves to a fourth host through membership changes, and a drive
//! runs only the groups that had input.

use std::collections::BTreeSet;

use bytes::Bytes;
use host::{Envelope, GroupCompletion, GroupId, Host, HostError, NodeId, Refused};
use kv::{Command, Op, Reply, Request};
use raft::MemStorage;
use replica::Outcome;

type KvHost = Host<MemStorage, kv::StateMachine>;

const NODES: [NodeId; 3] = [1, 2, 3];

struct World {
    hosts: Vec<KvHost>,
    inbox: Vec<Envelope>,
    done: Vec<(NodeId, GroupCompletion<kv::StateMachine>)>,
    /// Envelopes a host refused (group not hosted there).
    refused: Vec<(NodeId, Refused)>,
    /// Nodes whose traffic is dropped.
    isolated: BTreeSet<NodeId>,
    now_ms: u64,
}

fn config(node: NodeId, group: GroupId) -> replica::Config {
    let mut raft = raft::Config::new(node, NODES.to_vec());
    raft.seed = group * 1_000 + node;
    replica::Config::new(raft)
}

fn machine() -> kv::StateMachine {
    kv::StateMachine::new(kv::Config::default())
}

impl World {
    fn new(groups: &[GroupId]) -> Self {
        let mut w = World {
            hosts: NODES.iter().map(|&n| Host::new(n)).collect(),
            inbox: Vec::new(),
            done: Vec::new(),
            refused: Vec::new(),
            isolated: BTreeSet::new(),
            now_ms: 0,
        };
        for &g in groups {
            w.add_group_everywhere(g);
        }
        w
    }

    /// Every host's node id (`NODES`, and any host added later).
    fn ids(&self) -> Vec<NodeId> {
        self.hosts.iter().map(|h| h.node_id()).collect()
    }

    fn host(&mut self, node: NodeId) -> &mut KvHost {
        &mut self.hosts[node as usize - 1]
    }

    fn add_group_everywhere(&mut self, group: GroupId) {
        for node in NODES {
            self.host(node)
                .add_group(group, config(node, group), MemStorage::new(), machine())
                .unwrap();
        }
    }

    fn drive(&mut self, node: NodeId) {
        let out = self.host(node).drive().unwrap();
        self.inbox.extend(out.messages);
        self.done
            .extend(out.completions.into_iter().map(|c| (node, c)));
    }

    /// Delivers envelopes until none are left.
    fn settle(&mut self) {
        for node in self.ids() {
            self.drive(node);
        }
        while !self.inbox.is_empty() {
            for env in std::mem::take(&mut self.inbox) {
                let (from, to) = (env.msg.from, env.to());
                if self.isolated.contains(&from) || self.isolated.contains(&to) {
                    continue;
                }
                if let Err(why) = self.host(to).step(env.group, env.msg) {
                    self.refused.push((to, why));
                }
                self.drive(to);
            }
        }
    }

    fn tick(&mut self, n: usize) {
        for _ in 0..n {
            self.now_ms += 10;
            for node in self.ids() {
                let now = self.now_ms;
                self.host(node).tick(now);
            }
            self.settle();
        }
    }

    fn leader(&self, group: GroupId) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .hosts
            .iter()
            .filter(|h| !self.isolated.contains(&h.node_id()))
            .filter(|h| h.replica(group).is_some_and(|r| r.is_leader()))
            .map(|h| h.node_id())
            .collect();
        assert!(leaders.len() <= 1, "group {group} has leaders {leaders:?}");
        leaders.first().copied()
    }

    /// Ticks until `group` has a leader; returns it.
    fn await_leader(&mut self, group: GroupId) -> NodeId {
        for _ in 0..200 {
            if let Some(l) = self.leader(group) {
                self.tick(1); // commit its no-op
                return l;
            }
            self.tick(1);
        }
        panic!("group {group} elected no leader");
    }

    /// Proposes on `group`'s leader and settles; returns the response.
    fn write(&mut self, group: GroupId, token: u64, cmd: Command) -> kv::Response {
        let leader = self.await_leader(group);
        let now = self.now_ms;
        self.host(leader).propose(group, token, cmd, now).unwrap();
        self.settle();
        match self.take(group, token) {
            Outcome::Applied(r) => r,
            other => panic!("write {token} to group {group}: {other:?}"),
        }
    }

    fn read(&mut self, group: GroupId, token: u64, key: &str) -> Option<Bytes> {
        let leader = self.await_leader(group);
        self.host(leader)
            .read(
                group,
                token,
                kv::Op::Get {
                    key: Bytes::from(key.to_string()),
                },
            )
            .unwrap();
        self.tick(1);
        match self.take(group, token) {
            Outcome::Value(kv::Reply::Value(v)) => v,
            other => panic!("read {token} of group {group}: {other:?}"),
        }
    }

    fn take(&mut self, group: GroupId, token: u64) -> Outcome<kv::StateMachine> {
        let i = self
            .done
            .iter()
            .position(|(_, c)| c.group == group && c.completion.token == token)
            .unwrap_or_else(|| panic!("no completion for ({group}, {token})"));
        self.done.remove(i).1.completion.outcome
    }

    fn put(&mut self, group: GroupId, key: &str, value: &str) {
        let Ok(Reply::Registered { client_id }) = self.write(group, 1, Command::RegisterSession)
        else {
            panic!("register failed");
        };
        let op = Op::Put {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
        };
        let req = Command::Request(Request {
            client_id,
            seq: 1,
            op,
        });
        assert_eq!(self.write(group, 2, req), Ok(Reply::Done));
    }
}

#[test]
fn two_groups_on_three_hosts_both_elect_and_serve_their_own_data() {
    let mut w = World::new(&[1, 2]);
    w.await_leader(1);
    w.await_leader(2);
    w.put(1, "k", "one");
    w.put(2, "k", "two");
    assert_eq!(w.read(1, 10, "k"), Some(Bytes::from("one")));
    assert_eq!(w.read(2, 11, "k"), Some(Bytes::from("two")));
    w.tick(3);
    for h in &w.hosts {
        let g1 = h.replica(1).unwrap().state_machine();
        let g2 = h.replica(2).unwrap().state_machine();
        assert_eq!(
            g1.get(b"k"),
            Some(Bytes::from("one")),
            "node {}",
            h.node_id()
        );
        assert_eq!(
            g2.get(b"k"),
            Some(Bytes::from("two")),
            "node {}",
            h.node_id()
        );
    }
    assert!(w.refused.is_empty(), "{:?}", w.refused);
}

#[test]
fn a_group_added_at_runtime_elects_and_serves_beside_the_others() {
    let mut w = World::new(&[1]);
    w.put(1, "k", "one");
    // Node 1 starts hosting group 7 before the others: their messages are
    // refused (not hosted) until they start it too, and nothing breaks.
    w.host(1)
        .add_group(7, config(1, 7), MemStorage::new(), machine())
        .unwrap();
    w.host(1).replica_mut(7).unwrap().campaign();
    w.settle();
    assert!(w
        .refused
        .iter()
        .any(|(_, r)| *r == Refused::NoSuchGroup { group: 7 }));
    for node in [2, 3] {
        w.host(node)
            .add_group(7, config(node, 7), MemStorage::new(), machine())
            .unwrap();
    }
    w.put(7, "k", "seven");
    assert_eq!(w.read(7, 10, "k"), Some(Bytes::from("seven")));
    assert_eq!(w.read(1, 11, "k"), Some(Bytes::from("one")));
    assert_eq!(w.hosts[0].groups().collect::<Vec<_>>(), vec![1, 7]);
}

#[test]
fn a_removed_group_refuses_traffic_and_the_rest_of_it_carries_on() {
    let mut w = World::new(&[1, 2]);
    let leader = w.await_leader(2);
    let removed = w.host(leader).remove_group(2).expect("hosted");
    assert!(removed.is_leader());
    assert!(w.host(leader).replica(2).is_none());
    assert_eq!(
        w.host(leader).propose(2, 1, Command::RegisterSession, 0),
        Err(Refused::NoSuchGroup { group: 2 })
    );
    // The other two replicas of group 2 elect a new leader and serve.
    w.put(2, "k", "two");
    assert_ne!(w.leader(2), Some(leader));
    assert!(w
        .refused
        .iter()
        .all(|(n, r)| *n == leader && *r == Refused::NoSuchGroup { group: 2 }));
    // Group 1 on that node is untouched.
    w.put(1, "k", "one");
}

#[test]
fn a_drive_runs_only_the_groups_that_had_input() {
    let mut w = World::new(&[1, 2, 3]);
    let leader = w.await_leader(2);
    w.settle();
    assert_eq!(w.host(leader).groups_with_input().count(), 0);
    w.host(leader)
        .propose(2, 5, Command::RegisterSession, 0)
        .unwrap();
    assert_eq!(
        w.host(leader).groups_with_input().collect::<Vec<_>>(),
        vec![2]
    );
    let out = w.host(leader).drive().unwrap();
    assert!(out
        .messages
        .iter()
        .all(|e| e.group == 2 && e.msg.from == leader));
    assert!(!out.messages.is_empty(), "the proposal is replicated");
    assert_eq!(w.host(leader).groups_with_input().count(), 0);
    w.host(leader).tick(0);
    assert_eq!(
        w.host(leader).groups_with_input().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn bad_calls_are_refused_with_what_was_wrong() {
    let mut h = KvHost::new(1);
    h.add_group(1, config(1, 1), MemStorage::new(), machine())
        .unwrap();
    assert!(matches!(
        h.add_group(1, config(1, 1), MemStorage::new(), machine()),
        Err(HostError::GroupExists { group: 1 })
    ));
    assert!(matches!(
        h.add_group(2, config(2, 2), MemStorage::new(), machine()),
        Err(HostError::WrongRaftId {
            group: 2,
            raft_id: 2,
            node: 1
        })
    ));
    let msg = raft::Message {
        from: 1,
        to: 2,
        term: 1,
        body: raft::MessageBody::Heartbeat {
            commit: 0,
            read_round: 0,
        },
    };
    assert_eq!(
        h.step(1, msg),
        Err(Refused::Misaddressed { to: 2, node: 1 })
    );
    assert!(matches!(
        h.read(
            1,
            1,
            kv::Op::Get {
                key: Bytes::from("k")
            }
        ),
        Err(Refused::Rejected {
            group: 1,
            rejected: replica::Rejected::NotLeader { .. }
        })
    ));
}

/// The multi-group host carries a group's membership changes like any other
/// input (`replica_mut`): group 2's replica moves from host 1 to a new host
/// 4 (learner, promote, transfer, remove) while group 1 on hosts 1-3 is
/// untouched, and the data moves with it.
#[test]
fn a_groups_replica_moves_to_a_fourth_host_through_membership_changes() {
    use raft::ConfChange;
    let mut w = World::new(&[1, 2]);
    w.put(1, "k", "one");
    w.put(2, "k", "two");
    // Host 4 joins group 2: no bootstrap membership, so it never campaigns
    // until the group's log names it.
    w.hosts.push(Host::new(4));
    let mut joining = config(4, 2);
    joining.raft.peers = Vec::new();
    w.host(4)
        .add_group(2, joining, MemStorage::new(), machine())
        .unwrap();
    let change = |w: &mut World, c: ConfChange| {
        let leader = w.await_leader(2);
        w.host(leader)
            .replica_mut(2)
            .unwrap()
            .propose_conf_change(c)
            .unwrap();
        w.tick(30);
    };
    change(
        &mut w,
        ConfChange::AddLearner {
            id: 4,
            addr: "h4".into(),
        },
    );
    change(&mut w, ConfChange::Promote { id: 4 });
    let leader = w.await_leader(2);
    w.host(leader)
        .replica_mut(2)
        .unwrap()
        .transfer_leader(4)
        .unwrap();
    w.tick(30);
    assert_eq!(w.leader(2), Some(4));
    change(&mut w, ConfChange::Remove { id: 1 });
    let members = w.hosts[3]
        .replica(2)
        .unwrap()
        .raw_node()
        .raft()
        .membership()
        .members();
    assert_eq!(members.into_iter().collect::<Vec<_>>(), vec![2, 3, 4]);
    w.put(2, "k", "moved");
    assert_eq!(w.read(2, 10, "k"), Some(Bytes::from("moved")));
    assert_eq!(
        w.hosts[3].replica(2).unwrap().state_machine().get(b"k"),
        Some(Bytes::from("moved"))
    );
    // Host 1's replica of group 2 is out: it did not get the last write.
    assert_eq!(
        w.hosts[0].replica(2).unwrap().state_machine().get(b"k"),
        Some(Bytes::from("two"))
    );
    assert_eq!(w.read(1, 11, "k"), Some(Bytes::from("one")));
    assert!(w.hosts[3].replica(1).is_none());
}
