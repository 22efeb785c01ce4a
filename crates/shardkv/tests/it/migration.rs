//! Shard migration between groups' state machines, driven through the
//! agent's messages delivered by hand (no Raft: each group is one machine
//! whose "log" applies a proposal at once).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use shardkv::{
    respond, Agent, Command, GroupReply, GroupRequest, Op, OpError, Outbound, Reply, Request,
    Response, Settings, ShardKv, ShardStatus,
};
use shardmeta::{Config, GroupId, Keyspace, Member, ShardId};

const SHARDS: u32 = 10;
const RESEND_MS: u64 = 100;

/// One group: its machine (applied state), agent and log position.
struct Group {
    sm: ShardKv,
    agent: Agent,
    index: u64,
}

impl Group {
    fn new(gid: GroupId) -> Self {
        Group {
            sm: ShardKv::new(Settings::new(gid, SHARDS)),
            agent: Agent::new(gid, RESEND_MS),
            index: 0,
        }
    }

    /// Proposes and applies at once, checking a snapshot round-trips.
    fn apply(&mut self, cmd: &Command, now_ms: u64) -> Response {
        self.index += 1;
        let entry = self.sm.encode_command(cmd, now_ms);
        let response = self.sm.apply(self.index, &entry);
        let mut copy = ShardKv::new(*self.sm.settings());
        copy.restore(&self.sm.snapshot())
            .expect("snapshot restores");
        assert_eq!(copy, self.sm, "snapshot round trip");
        response
    }

    fn request(&mut self, client_id: u64, seq: u64, op: Op, now_ms: u64) -> Response {
        self.apply(&Command::Request(Request { client_id, seq, op }), now_ms)
    }

    fn statuses(&self) -> Vec<ShardStatus> {
        (0..SHARDS).map(|s| self.sm.status(s)).collect()
    }
}

fn members(gid: GroupId) -> Vec<Member> {
    vec![Member {
        id: gid * 10,
        addr: format!("127.0.0.1:{}", 7000 + gid),
    }]
}

/// Configuration `num` with `owners[s]` owning shard `s`.
fn config(num: u64, owners: [GroupId; SHARDS as usize]) -> Config {
    let groups = owners
        .iter()
        .filter(|&&g| g != 0)
        .map(|&g| (g, members(g)))
        .collect();
    Config {
        num,
        shards: owners.to_vec(),
        groups,
    }
}

/// A key in `shard` (found by search; deterministic).
fn key_in(shard: ShardId, n: u32) -> Bytes {
    let ks = Keyspace::new(SHARDS).unwrap();
    (0u32..)
        .map(|i| Bytes::from(format!("k{i}")))
        .filter(|k| ks.shard_of_key(k) == shard)
        .nth(n as usize)
        .unwrap()
}

fn put(key: &Bytes, value: &str) -> Op {
    Op::Put {
        key: key.clone(),
        value: Bytes::from(value.to_owned()),
    }
}

/// The cluster: groups, the controller's configurations, a clock.
struct World {
    groups: BTreeMap<GroupId, Group>,
    configs: Vec<Config>,
    now_ms: u64,
}

/// One in-flight message.
#[derive(Clone, Debug)]
enum Msg {
    Query {
        to: GroupId,
        num: u64,
    },
    Request {
        from: GroupId,
        to: GroupId,
        req: GroupRequest,
    },
    Reply {
        to: GroupId,
        reply: GroupReply,
    },
}

impl World {
    fn new(gids: &[GroupId], configs: Vec<Config>) -> Self {
        World {
            groups: gids.iter().map(|&g| (g, Group::new(g))).collect(),
            configs,
            now_ms: 1_000,
        }
    }

    fn g(&mut self, gid: GroupId) -> &mut Group {
        self.groups.get_mut(&gid).unwrap()
    }

    /// Every group's agent, polled after one resend interval.
    fn poll(&mut self) -> Vec<Msg> {
        self.now_ms += RESEND_MS;
        let now = self.now_ms;
        let mut out = Vec::new();
        for (&gid, g) in &mut self.groups {
            for o in g.agent.poll(&g.sm, now) {
                out.push(match o {
                    Outbound::QueryConfig { num } => Msg::Query { to: gid, num },
                    Outbound::Group {
                        gid: to, request, ..
                    } => Msg::Request {
                        from: gid,
                        to,
                        req: request,
                    },
                });
            }
        }
        out
    }

    /// Delivers one message; returns the messages it causes (replies).
    fn deliver(&mut self, msg: Msg) -> Vec<Msg> {
        let now = self.now_ms;
        match msg {
            Msg::Query { to, num } => {
                if let Some(c) = self.configs.get(num as usize).cloned() {
                    let g = self.g(to);
                    if let Some(cmd) = g.agent.on_config(&g.sm, c) {
                        g.apply(&cmd, now);
                    }
                }
                vec![]
            }
            Msg::Request { from, to, req } => {
                let g = self.g(to);
                let answer = respond(&g.sm, &req);
                if let Some(cmd) = &answer.propose {
                    g.apply(cmd, now);
                }
                vec![Msg::Reply {
                    to: from,
                    reply: answer.reply,
                }]
            }
            Msg::Reply { to, reply } => {
                let g = self.g(to);
                if let Some(cmd) = g.agent.on_reply(&g.sm, reply) {
                    g.apply(&cmd, now);
                }
                vec![]
            }
        }
    }

    /// Polls and delivers everything (replies too) until nothing is asked
    /// for any more or `rounds` run out.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut queue = self.poll();
            while let Some(m) = queue.pop() {
                queue.extend(self.deliver(m));
            }
        }
        self.check_single_server();
    }

    /// At every instant, each shard is served by at most one group.
    fn check_single_server(&self) {
        for s in 0..SHARDS {
            let serving: Vec<GroupId> = self
                .groups
                .iter()
                .filter(|(_, g)| matches!(g.sm.status(s), ShardStatus::Serving | ShardStatus::Gc))
                .map(|(&gid, _)| gid)
                .collect();
            assert!(serving.len() <= 1, "shard {s} served by {serving:?}");
        }
    }
}

fn is_request(m: &Msg, pull: bool) -> bool {
    match m {
        Msg::Request {
            req: GroupRequest::Pull(_),
            ..
        } => pull,
        Msg::Request {
            req: GroupRequest::Delete(_),
            ..
        } => !pull,
        _ => false,
    }
}

/// Shards 0-4 from group 1 to group 2 (config 2), with client 7 writing
/// before and retrying across the move.
#[test]
fn scripted_migration_moves_data_and_sessions_and_gcs_after_install() {
    let c1 = config(1, [1; 10]);
    let c2 = config(2, [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]);
    let mut w = World::new(&[1, 2], vec![Config::initial(SHARDS), c1, c2]);
    // Both apply config 1 only: group 1 owns everything, served at once.
    let c = w.configs.clone();
    w.g(1).apply(&Command::NewConfig(c[1].clone()), 1_000);
    w.g(2).apply(&Command::NewConfig(c[1].clone()), 1_000);
    assert_eq!(w.g(1).statuses(), vec![ShardStatus::Serving; 10]);
    let (moving, staying) = (key_in(0, 0), key_in(7, 0));
    let append = |v: &str| Op::Append {
        key: moving.clone(),
        value: Bytes::from(v.to_owned()),
    };
    assert_eq!(
        w.g(1).request(7, 1, put(&moving, "a"), 1_001),
        Response::Op(Ok(Reply::Done))
    );
    // Seq 2 is applied at group 1; its reply is "lost", so the client retries later.
    assert_eq!(
        w.g(1).request(7, 2, append("b"), 1_002),
        Response::Op(Ok(Reply::Length(2)))
    );

    // Config 2 at group 1 first: shards 0-4 frozen, 5-9 still served.
    w.g(1).apply(&Command::NewConfig(c[2].clone()), 1_010);
    assert_eq!(w.g(1).sm.status(0), ShardStatus::HandingOff);
    let wrong = w.g(1).request(7, 2, append("b"), 1_011);
    assert!(matches!(wrong, Response::Op(Err(OpError::WrongGroup(_)))));
    assert_eq!(
        w.g(1).request(8, 1, put(&staying, "s"), 1_012),
        Response::Op(Ok(Reply::Done))
    );
    // Group 1 asks for config 3 only once stable: not now.
    assert!(w
        .poll()
        .iter()
        .all(|m| !matches!(m, Msg::Query { to: 1, .. })));

    // Group 2 takes config 2: Pulling; a retry there before the data arrives is refused, not recorded.
    w.g(2).apply(&Command::NewConfig(c[2].clone()), 1_020);
    assert_eq!(w.g(2).sm.status(0), ShardStatus::Pulling);
    let early = w.g(2).request(7, 2, append("b"), 1_021);
    assert!(matches!(early, Response::Op(Err(OpError::WrongGroup(_)))));
    assert!(w.g(2).sm.sessions().get(7).is_none());
    assert_eq!(
        w.g(2).sm.query(&moving),
        Err(shardkv::WrongGroup {
            shard: 0,
            config_num: 2
        })
    );

    // Group 2 pulls; it sends no DeleteShards before it has installed.
    let msgs = w.poll();
    assert!(msgs.iter().all(|m| !is_request(m, false)));
    let pull = msgs.into_iter().find(|m| is_request(m, true)).unwrap();
    let reply = w.deliver(pull);
    assert!(w.g(1).sm.shard_data(0).is_some_and(|d| !d.is_empty()));
    w.deliver(reply.into_iter().next().unwrap());
    assert_eq!(w.g(2).sm.status(0), ShardStatus::Gc);
    // Served at once, while the old owner still holds its frozen copy.
    assert_eq!(w.g(2).sm.query(&moving), Ok(Some(Bytes::from("ab"))));
    assert_eq!(w.g(1).sm.status(0), ShardStatus::HandingOff);
    // The retry of seq 2 gets the cached answer: applied exactly once.
    assert_eq!(
        w.g(2).request(7, 2, append("b"), 1_030),
        Response::Op(Ok(Reply::Length(2)))
    );
    assert_eq!(w.g(2).sm.query(&moving), Ok(Some(Bytes::from("ab"))));
    assert_eq!(
        w.g(2).request(7, 3, append("c"), 1_031),
        Response::Op(Ok(Reply::Length(3)))
    );

    // GC: the delete request makes group 1 drop the shards; then group 2 confirms.
    let msgs = w.poll();
    let delete = msgs.into_iter().find(|m| is_request(m, false)).unwrap();
    let reply = w.deliver(delete);
    assert_eq!(w.g(1).sm.status(0), ShardStatus::NotOwned);
    assert!(w.g(1).sm.shard_data(0).unwrap().is_empty());
    let pending = matches!(
        &reply[0],
        Msg::Reply {
            reply: GroupReply::Delete(shardkv::DeleteReply::Pending { .. }),
            ..
        }
    );
    assert!(pending, "the first answer comes before the delete applied");
    w.deliver(reply.into_iter().next().unwrap());
    assert_eq!(w.g(2).sm.status(0), ShardStatus::Gc);
    w.settle(2);
    assert_eq!(w.g(2).sm.status(0), ShardStatus::Serving);
    assert!(w.g(1).sm.is_stable() && w.g(2).sm.is_stable());
    assert_eq!(w.g(1).sm.query(&staying), Ok(Some(Bytes::from("s"))));
    assert_eq!(w.g(1).sm.key_count(), 1);
}

/// Group 3 gains shards from groups 1 and 2 in one configuration; the ones
/// that arrive first are served while the others are still in transit.
#[test]
fn an_arrived_shard_is_served_before_the_rest_of_the_change() {
    let c1 = config(1, [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    let c2 = config(2, [1, 1, 1, 3, 3, 2, 2, 2, 3, 3]);
    let mut w = World::new(&[1, 2, 3], vec![Config::initial(SHARDS), c1, c2.clone()]);
    w.settle(1); // everyone at config 1
    for s in 0..SHARDS {
        let owner = w.configs[1].shards[s as usize];
        let r = w
            .g(owner)
            .request(9, u64::from(s) + 1, put(&key_in(s, 0), "v"), 2_000);
        assert_eq!(r, Response::Op(Ok(Reply::Done)));
    }
    for gid in 1..=3 {
        w.g(gid).apply(&Command::NewConfig(c2.clone()), 2_100);
    }
    // Deliver only group 1's answer to group 3.
    let pulls: Vec<Msg> = w
        .poll()
        .into_iter()
        .filter(|m| is_request(m, true))
        .collect();
    assert_eq!(pulls.len(), 2);
    let from_1 = pulls
        .into_iter()
        .find(|m| matches!(m, Msg::Request { to: 1, .. }))
        .unwrap();
    let reply = w.deliver(from_1);
    w.deliver(reply.into_iter().next().unwrap());
    assert_eq!(w.g(3).sm.query(&key_in(3, 0)), Ok(Some(Bytes::from("v"))));
    assert!(
        w.g(3).sm.query(&key_in(8, 0)).is_err(),
        "shard 8 is still Pulling"
    );
    // Unaffected shards keep serving everywhere meanwhile.
    assert_eq!(
        w.g(1).request(5, 1, put(&key_in(0, 1), "x"), 2_200),
        Response::Op(Ok(Reply::Done))
    );
    assert_eq!(w.g(2).sm.query(&key_in(5, 0)), Ok(Some(Bytes::from("v"))));
    w.settle(4);
    for gid in 1..=3 {
        assert!(w.g(gid).sm.is_stable(), "group {gid}");
    }
    assert_eq!(w.g(3).sm.query(&key_in(8, 0)), Ok(Some(Bytes::from("v"))));
    assert_eq!(w.g(3).sm.sessions().get(9).map(|s| s.highest_seq), Some(10));
}

/// A group that missed configurations catches up one at a time, in order.
#[test]
fn configurations_apply_one_at_a_time_in_order() {
    let cs = vec![
        Config::initial(SHARDS),
        config(1, [1; 10]),
        config(2, [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]),
        config(3, [2; 10]),
    ];
    let mut w = World::new(&[1, 2], cs.clone());
    // Out of order or ahead: ignored.
    assert_eq!(
        w.g(1).apply(&Command::NewConfig(cs[2].clone()), 1),
        Response::Control { changed: false }
    );
    let g1 = w.g(1);
    assert!(g1.agent.on_config(&g1.sm, cs[3].clone()).is_none());
    w.settle(12);
    for gid in [1, 2] {
        assert_eq!(w.g(gid).sm.config().num, 3);
        assert!(w.g(gid).sm.is_stable());
    }
    assert_eq!(w.g(1).sm.shards_in(ShardStatus::NotOwned).len(), 10);
    assert_eq!(w.g(2).sm.shards_in(ShardStatus::Serving).len(), 10);
}

/// Every message of a whole migration, delivered again afterwards in every
/// order and to its destination twice, changes nothing.
#[test]
fn replayed_inter_group_messages_are_harmless() {
    let cs = vec![
        Config::initial(SHARDS),
        config(1, [1; 10]),
        config(2, [1, 1, 2, 2, 2, 2, 2, 1, 1, 1]),
    ];
    let mut w = World::new(&[1, 2], cs);
    w.settle(1);
    for s in 0..SHARDS {
        w.g(1)
            .request(3, u64::from(s) + 1, put(&key_in(s, 0), "v"), 1_500);
    }
    let mut log = Vec::new();
    for _ in 0..6 {
        let mut queue = w.poll();
        while let Some(m) = queue.pop() {
            log.push(m.clone());
            let more = w.deliver(m);
            queue.extend(more);
        }
    }
    assert!(w.g(1).sm.is_stable() && w.g(2).sm.is_stable());
    let before: Vec<ShardKv> = w.groups.values().map(|g| g.sm.clone()).collect();
    for m in log.iter().rev().chain(log.iter()) {
        // Replies of the replay are delivered too.
        for r in w.deliver(m.clone()) {
            w.deliver(r);
        }
    }
    for (g, old) in w.groups.values().zip(&before) {
        assert_eq!(g.sm.config(), old.config());
        assert_eq!(
            g.sm.shards_in(ShardStatus::Serving),
            old.shards_in(ShardStatus::Serving)
        );
        for s in 0..SHARDS {
            assert_eq!(g.sm.shard_data(s), old.shard_data(s));
        }
    }
}

/// A restore into another group, and corrupt snapshots, are refused.
#[test]
fn snapshots_are_checked() {
    let mut g = Group::new(1);
    g.apply(&Command::NewConfig(config(1, [1; 10])), 5);
    g.request(1, 1, put(&key_in(2, 0), "v"), 6);
    let snap = g.sm.snapshot();
    let mut other = ShardKv::new(Settings::new(2, SHARDS));
    assert!(other.restore(&snap).is_err());
    assert_eq!(other, ShardKv::new(Settings::new(2, SHARDS)));
    for i in 0..snap.len() {
        let mut bad = snap.to_vec();
        bad[i] ^= 0x40;
        assert!(g.sm.clone().restore(&bad).is_err(), "flipped byte {i}");
    }
    for len in 0..snap.len() {
        assert!(g.sm.clone().restore(&snap[..len]).is_err());
    }
}

/// Installing a snapshot (`replace_with_snapshot`) tells the input every part it has
/// read: the checksum pass from the start, then the decoder over the whole body (a store
/// whose snapshot is a file map drops those pages behind the reader).
#[test]
fn installing_a_snapshot_releases_the_body_it_has_read() {
    let mut g = Group::new(1);
    g.apply(&Command::NewConfig(config(1, [1; 10])), 5);
    g.request(1, 1, put(&key_in(2, 0), "v"), 6);
    let snap = g.sm.snapshot();
    let base = snap.as_ptr() as usize;
    let released = std::cell::RefCell::new(Vec::new());
    let hook = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        released.borrow_mut().push(start..start + part.len());
    };
    let mut copy = ShardKv::new(Settings::new(1, SHARDS));
    rsm::StateMachine::replace_with_snapshot(&mut copy, rsm::SnapshotInput::new(&snap, &hook))
        .unwrap();
    assert_eq!(copy, g.sm);
    let released = released.into_inner();
    let end = snap.len() - 4; // the checksum is not part of the body
    assert!(
        released.contains(&(0..end)),
        "the checksum pass: {released:?}"
    );
    assert!(released.contains(&(5..end)), "the body: {released:?}");
}

/// The network of the randomized test: what may happen to a message.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Deliver,
    Duplicate,
    Drop,
    Delay,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Deliver),
        1 => Just(Fate::Duplicate),
        1 => Just(Fate::Drop),
        2 => Just(Fate::Delay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Random configurations over three groups with a lossy, duplicating,
    /// reordering network and writes meanwhile: at every step each shard is
    /// served by at most one group, every acknowledged write survives, a
    /// retried write applies at most once wherever its shard has gone, and
    /// everything converges once the network heals.
    #[test]
    fn random_moves_over_a_bad_network_lose_nothing(
        owners in proptest::collection::vec(proptest::collection::vec(1u64..=3, 10), 1..5),
        fates in proptest::collection::vec(fate(), 200),
        writes in proptest::collection::vec((0u32..SHARDS, 0u8..3, 0u64..8), 40),
    ) {
        let mut configs = vec![Config::initial(SHARDS)];
        for (i, o) in owners.iter().enumerate() {
            configs.push(config(i as u64 + 1, o.clone().try_into().unwrap()));
        }
        let last = configs.len() as u64 - 1;
        let mut w = World::new(&[1, 2, 3], configs);
        let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut delayed: Vec<Msg> = Vec::new();
        let (mut fates, mut writes) = (fates.into_iter().cycle(), writes.into_iter());
        let mut seq: u64 = 0;
        let mut sent: Vec<(Bytes, Bytes, bool)> = Vec::new();
        for _ in 0..40 {
            let mut queue = w.poll();
            queue.append(&mut delayed);
            while let Some(m) = queue.pop() {
                match fates.next().unwrap() {
                    Fate::Drop => {}
                    Fate::Delay => delayed.push(m),
                    Fate::Deliver => queue.extend(w.deliver(m)),
                    Fate::Duplicate => {
                        queue.extend(w.deliver(m.clone()));
                        queue.extend(w.deliver(m));
                    }
                }
                w.check_single_server();
            }
            let Some((shard, n, back)) = writes.next() else { continue };
            seq += 1;
            let key = key_in(shard, u32::from(n));
            sent.push((key, Bytes::from(format!("{seq}")), false));
            // The new write, then a retry of one of the last few (same seq, same op).
            for s in [seq, seq.saturating_sub(back).max(1)] {
                let (key, value, applied) = sent[s as usize - 1].clone();
                let now = w.now_ms;
                for g in w.groups.values_mut() {
                    let op = Op::Put { key: key.clone(), value: value.clone() };
                    if g.request(77, s, op, now) == Response::Op(Ok(Reply::Done)) && !applied {
                        // Applied now, for the first time.
                        model.insert(key.clone(), value.clone());
                        sent[s as usize - 1].2 = true;
                    }
                }
            }
        }
        w.settle(4 * last as usize + 4);
        let mut held: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut served = BTreeSet::new();
        for g in w.groups.values() {
            prop_assert_eq!(g.sm.config().num, last);
            prop_assert!(g.sm.is_stable());
            for s in g.sm.shards_in(ShardStatus::Serving) {
                served.insert(s);
                held.extend(
                    g.sm.shard_data(s)
                        .unwrap()
                        .live_strings(0)
                        .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))),
                );
            }
        }
        prop_assert_eq!(held, model);
        prop_assert_eq!(served.len(), SHARDS as usize);
    }
}
