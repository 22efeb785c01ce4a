//! The controller replicated by the real `replica` driver: three
//! `Replica<MemStorage, Controller>` driven by hand (a message list
//! delivered until empty, a shared virtual clock, no randomness beyond the
//! Raft config's seeded election timers). Joins, leaves, moves and queries
//! go through Raft; then the leader is killed and every surviving replica —
//! and the killed one after it reboots from its storage — must hold the
//! same configurations (the lab's "check same config on servers").

use std::collections::{BTreeMap, BTreeSet};

use raft::{MemStorage, Message, NodeId, Storage};
use replica::{Config, Outcome};
use shardctrler::lab::{check, check_same};
use shardctrler::{Command, Controller, Op, Reply, Request, Response, Settings};
use shardmeta::{Config as ShardConfig, GroupId, Member};

type Replica = replica::Replica<MemStorage, Controller>;

const IDS: [NodeId; 3] = [1, 2, 3];

fn config(id: NodeId) -> Config {
    let mut cfg = Config::new(raft::Config::new(id, IDS.to_vec()));
    // Snapshots every few entries, so a reboot restores one and replays the rest.
    cfg.snapshot_every_entries = Some(4);
    cfg
}

fn boot(id: NodeId, storage: MemStorage) -> Replica {
    Replica::new(
        config(id),
        storage,
        Controller::new(Settings::with_shards(10)),
    )
    .unwrap()
}

struct Cluster {
    // None: crashed (its storage kept in `disks`).
    nodes: BTreeMap<NodeId, Option<Replica>>,
    disks: BTreeMap<NodeId, MemStorage>,
    inbox: Vec<Message>,
    done: Vec<(u64, Outcome<Controller>)>,
    now_ms: u64,
    next_token: u64,
}

impl Cluster {
    fn new() -> Self {
        Cluster {
            nodes: IDS
                .iter()
                .map(|&id| (id, Some(boot(id, MemStorage::new()))))
                .collect(),
            disks: BTreeMap::new(),
            inbox: Vec::new(),
            done: Vec::new(),
            now_ms: 0,
            next_token: 0,
        }
    }

    fn live(&mut self) -> impl Iterator<Item = (&NodeId, &mut Replica)> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, r)| r.as_mut().map(|r| (id, r)))
    }

    fn drive(&mut self, id: NodeId) {
        let Some(Some(r)) = self.nodes.get_mut(&id) else {
            return;
        };
        let mut out = Vec::new();
        let done = r.drive(&mut |m| out.push(m)).unwrap();
        self.done
            .extend(done.into_iter().map(|c| (c.token, c.outcome)));
        self.inbox.extend(out);
    }

    /// Delivers messages until none are left; a crashed node's are dropped.
    fn settle(&mut self) {
        for id in IDS {
            self.drive(id);
        }
        let mut rounds = 0;
        while !self.inbox.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "messages never settled");
            for m in std::mem::take(&mut self.inbox) {
                let to = m.to;
                if let Some(Some(r)) = self.nodes.get_mut(&to) {
                    r.step(m);
                    self.drive(to);
                }
            }
        }
    }

    fn tick(&mut self) {
        self.now_ms += 10;
        let now = self.now_ms;
        for (_, r) in self.live() {
            r.tick(now);
        }
        self.settle();
    }

    fn leader(&mut self) -> NodeId {
        for _ in 0..1_000 {
            let leaders: Vec<NodeId> = self
                .live()
                .filter(|(_, r)| r.is_leader())
                .map(|(id, _)| *id)
                .collect();
            if let [id] = leaders[..] {
                return id;
            }
            self.tick();
        }
        panic!("no single leader after 1000 ticks");
    }

    fn node(&mut self, id: NodeId) -> &mut Replica {
        self.nodes
            .get_mut(&id)
            .unwrap()
            .as_mut()
            .expect("live node")
    }

    /// Proposes `cmd` at the leader until it is applied (a retry reuses the
    /// same command, so the session makes it exactly-once).
    fn submit(&mut self, cmd: Command) -> Response {
        for _ in 0..20 {
            let leader = self.leader();
            self.next_token += 1;
            let token = self.next_token;
            let now = self.now_ms;
            if self.node(leader).propose(token, cmd.clone(), now).is_err() {
                self.tick();
                continue;
            }
            self.settle();
            for _ in 0..50 {
                if let Some(outcome) = self.take(token) {
                    match outcome {
                        Outcome::Applied(r) => return r,
                        _ => break, // unknown: retry
                    }
                }
                self.tick();
            }
        }
        panic!("{cmd:?} never applied");
    }

    /// A linearizable ReadIndex read of configuration `num` (None: latest).
    fn read(&mut self, num: Option<u64>) -> ShardConfig {
        for _ in 0..20 {
            let leader = self.leader();
            self.next_token += 1;
            let token = self.next_token;
            if self.node(leader).read(token, num).is_err() {
                self.tick();
                continue;
            }
            self.settle();
            for _ in 0..50 {
                match self.take(token) {
                    Some(Outcome::Value(c)) => return c,
                    Some(_) => break,
                    None => self.tick(),
                }
            }
        }
        panic!("read of {num:?} never served");
    }

    fn take(&mut self, token: u64) -> Option<Outcome<Controller>> {
        let i = self.done.iter().position(|(t, _)| *t == token)?;
        Some(self.done.remove(i).1)
    }

    fn crash(&mut self, id: NodeId) {
        let r = self.nodes.insert(id, None).unwrap().expect("was live");
        self.disks.insert(id, r.into_storage());
    }

    fn restart(&mut self, id: NodeId) {
        let disk = self.disks.remove(&id).expect("crashed before");
        assert!(
            disk.first_index() > 1,
            "node {id} compacted its log into a snapshot"
        );
        self.nodes.insert(id, Some(boot(id, disk)));
    }

    /// Every live replica's whole configuration history.
    fn histories(&mut self) -> Vec<Vec<ShardConfig>> {
        self.live()
            .map(|(_, r)| r.state_machine().configs().to_vec())
            .collect()
    }
}

struct Clerk {
    client_id: u64,
    seq: u64,
}

impl Clerk {
    fn register(cluster: &mut Cluster) -> Clerk {
        match cluster.submit(Command::RegisterSession) {
            Ok(Reply::Registered { client_id }) => Clerk { client_id, seq: 0 },
            other => panic!("register: {other:?}"),
        }
    }

    fn change(&mut self, cluster: &mut Cluster, op: Op) -> u64 {
        self.seq += 1;
        let req = Request {
            client_id: self.client_id,
            seq: self.seq,
            op,
        };
        match cluster.submit(Command::Request(req)) {
            Ok(Reply::NewConfig { num }) => num,
            other => panic!("request {}: {other:?}", self.seq),
        }
    }
}

fn join(gids: &[GroupId]) -> Op {
    let groups = gids
        .iter()
        .map(|&g| {
            let members = (0..3).map(|i| Member {
                id: g * 10 + i,
                addr: format!("x{g}-{i}"),
            });
            (g, members.collect())
        })
        .collect();
    Op::Join { groups }
}

fn leave(gids: &[GroupId]) -> Op {
    Op::Leave {
        gids: gids.iter().copied().collect(),
    }
}

fn set(gids: &[GroupId]) -> BTreeSet<GroupId> {
    gids.iter().copied().collect()
}

#[test]
fn joins_leaves_and_queries_through_raft() {
    let mut cluster = Cluster::new();
    let mut ck = Clerk::register(&mut cluster);
    assert_eq!(ck.change(&mut cluster, join(&[1])), 1);
    check(&set(&[1]), &cluster.read(None)).unwrap();
    assert_eq!(ck.change(&mut cluster, join(&[2, 3])), 2);
    check(&set(&[1, 2, 3]), &cluster.read(None)).unwrap();
    assert_eq!(ck.change(&mut cluster, Op::Move { shard: 0, gid: 3 }), 3);
    assert_eq!(cluster.read(None).owner(0), 3);
    assert_eq!(ck.change(&mut cluster, leave(&[1])), 4);
    check(&set(&[2, 3]), &cluster.read(None)).unwrap();

    // Historical queries: by ReadIndex and through the log, identical.
    for num in 0..=4 {
        let by_read = cluster.read(Some(num));
        assert_eq!(by_read.num, num);
        assert_eq!(
            cluster.submit(Command::Query { num: Some(num) }),
            Ok(Reply::Config(by_read))
        );
    }
    assert_eq!(
        cluster.read(Some(99)).num,
        4,
        "a future num answers the latest"
    );
}

#[test]
fn same_configuration_on_every_replica_after_the_leader_is_killed() {
    let mut cluster = Cluster::new();
    let mut ck = Clerk::register(&mut cluster);
    ck.change(&mut cluster, join(&[1, 2]));
    ck.change(&mut cluster, join(&[3]));
    let before = cluster.read(None);

    let old_leader = cluster.leader();
    cluster.crash(old_leader);
    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader);
    // The history survived the leader: same latest configuration.
    assert_eq!(cluster.read(None), before);
    ck.change(&mut cluster, leave(&[2]));
    ck.change(&mut cluster, join(&[4, 5]));
    check(&set(&[1, 3, 4, 5]), &cluster.read(None)).unwrap();

    let histories = cluster.histories();
    assert_eq!(histories.len(), 2);
    check_same(
        &histories
            .iter()
            .map(|h| h.last().unwrap().clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(histories[0], histories[1]);

    // The old leader reboots from its storage (snapshot + log) and catches up.
    cluster.restart(old_leader);
    for _ in 0..50 {
        cluster.tick();
    }
    let histories = cluster.histories();
    assert_eq!(histories.len(), 3);
    for h in &histories[1..] {
        assert_eq!(
            h, &histories[0],
            "replicas disagree on the configuration history"
        );
    }
    assert_eq!(histories[0].len(), 5, "configurations 0..=4");
}
