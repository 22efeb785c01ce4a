//! What the agent emits for one input, exactly; and the machine's edges
//! (expiry, the session cap, shards given to no group, bad configurations).

use bytes::Bytes;
use shardkv::{
    respond, Agent, Answer, Command, DeleteReply, DeleteShards, GroupReply, GroupRequest, Op,
    OpError, Outbound, PullReply, PullShards, Reply, Request, Response, Settings, ShardKv,
    ShardStatus,
};
use shardmeta::{Config, GroupId, Member};

const SHARDS: u32 = 4;

fn members(gid: GroupId) -> Vec<Member> {
    vec![
        Member {
            id: gid * 10 + 1,
            addr: format!("10.0.0.{gid}:1"),
        },
        Member {
            id: gid * 10 + 2,
            addr: format!("10.0.0.{gid}:2"),
        },
    ]
}

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

struct Machine {
    sm: ShardKv,
    index: u64,
}

impl Machine {
    fn new(settings: Settings) -> Self {
        Machine {
            sm: ShardKv::new(settings),
            index: 0,
        }
    }

    fn apply(&mut self, cmd: Command, now_ms: u64) -> Response {
        self.index += 1;
        let entry = self.sm.encode_command(&cmd, now_ms);
        self.sm.apply(self.index, &entry)
    }

    fn put(&mut self, client_id: u64, seq: u64, key: &str, now_ms: u64) -> Response {
        let op = Op::Put {
            key: Bytes::from(key.to_owned()),
            value: Bytes::from("v"),
        };
        self.apply(Command::Request(Request { client_id, seq, op }), now_ms)
    }
}

/// Group 2 at config 2, pulling shards 0 and 1 from group 1 and shard 3
/// from group 3.
fn pulling_group() -> Machine {
    let mut m = Machine::new(Settings::new(2, SHARDS));
    m.apply(Command::NewConfig(config(1, [1, 1, 2, 3])), 1);
    m.apply(Command::NewConfig(config(2, [2, 2, 2, 2])), 2);
    m
}

#[test]
fn a_stable_group_asks_the_controller_for_the_next_configuration_only() {
    let m = Machine::new(Settings::new(1, SHARDS));
    let mut agent = Agent::new(1, 100);
    assert_eq!(agent.poll(&m.sm, 0), vec![Outbound::QueryConfig { num: 1 }]);
    assert_eq!(agent.poll(&m.sm, 99), vec![], "within the resend interval");
    assert_eq!(
        agent.poll(&m.sm, 100),
        vec![Outbound::QueryConfig { num: 1 }]
    );
}

#[test]
fn a_pulling_group_asks_each_previous_owner_and_rotates_members_on_resend() {
    let m = pulling_group();
    let mut agent = Agent::new(2, 100);
    let pull = |gid: GroupId, shards: Vec<u32>, attempt| Outbound::Group {
        gid,
        members: members(gid),
        attempt,
        request: GroupRequest::Pull(PullShards {
            from: 2,
            num: 2,
            shards,
        }),
    };
    let first = vec![pull(1, vec![0, 1], 0), pull(3, vec![3], 0)];
    assert_eq!(agent.poll(&m.sm, 1_000), first);
    assert_eq!(agent.poll(&m.sm, 1_050), vec![]);
    let again = vec![pull(1, vec![0, 1], 1), pull(3, vec![3], 1)];
    assert_eq!(agent.poll(&m.sm, 1_100), again);
}

#[test]
fn replies_become_commands_only_while_they_still_move_a_shard() {
    let mut m = pulling_group();
    let mut agent = Agent::new(2, 100);
    let data = shardkv::ShardData::from_strings([(Bytes::from("a"), Bytes::from("1"))], 0);
    let shards = [(2, data.clone()), (3, Default::default())].into();
    let reply = GroupReply::Pull(PullReply::Shards {
        num: 2,
        shards,
        sessions: Default::default(),
    });
    // Shard 2 was already ours: only shard 3 is installed.
    let Some(Command::InstallShards { num: 2, shards, .. }) = agent.on_reply(&m.sm, reply.clone())
    else {
        panic!("expected an install")
    };
    assert_eq!(shards.keys().copied().collect::<Vec<_>>(), vec![3]);
    let install = Command::InstallShards {
        num: 2,
        shards,
        sessions: Default::default(),
    };
    assert_eq!(
        m.apply(install.clone(), 3),
        Response::Control { changed: true }
    );
    assert_eq!(m.sm.status(3), ShardStatus::Gc);
    assert_eq!(agent.on_reply(&m.sm, reply), None, "a duplicate reply");
    assert_eq!(m.apply(install, 4), Response::Control { changed: false });
    // Now the Gc shard's deletion is asked for, alongside the remaining pull.
    let out = agent.poll(&m.sm, 0);
    assert!(out.contains(&Outbound::Group {
        gid: 3,
        members: members(3),
        attempt: 0,
        request: GroupRequest::Delete(DeleteShards {
            from: 2,
            num: 2,
            shards: vec![3]
        }),
    }));
    let done = GroupReply::Delete(DeleteReply::Done {
        num: 2,
        shards: vec![3],
    });
    let stale = GroupReply::Delete(DeleteReply::Done {
        num: 1,
        shards: vec![3],
    });
    assert_eq!(agent.on_reply(&m.sm, stale), None);
    assert_eq!(
        agent.on_reply(&m.sm, done),
        Some(Command::ConfirmGc {
            num: 2,
            shards: vec![3]
        })
    );
}

#[test]
fn the_responder_answers_by_configuration_number() {
    let mut old = Machine::new(Settings::new(1, SHARDS));
    old.apply(Command::NewConfig(config(1, [1, 1, 1, 1])), 1);
    let pull = GroupRequest::Pull(PullShards {
        from: 2,
        num: 2,
        shards: vec![0, 1],
    });
    let not_ready = respond(&old.sm, &pull).reply;
    assert_eq!(
        not_ready,
        GroupReply::Pull(PullReply::NotReady { num: 2, current: 1 })
    );
    old.apply(Command::NewConfig(config(2, [2, 1, 1, 1])), 2);
    // Only shard 0 goes to group 2; shard 1 is not handed to it.
    let GroupReply::Pull(PullReply::Shards { shards, .. }) = respond(&old.sm, &pull).reply else {
        panic!("expected shards")
    };
    assert_eq!(shards.keys().copied().collect::<Vec<_>>(), vec![0]);
    let delete = GroupRequest::Delete(DeleteShards {
        from: 2,
        num: 2,
        shards: vec![0],
    });
    let Answer { reply, propose } = respond(&old.sm, &delete);
    assert!(matches!(
        reply,
        GroupReply::Delete(DeleteReply::Pending { .. })
    ));
    old.apply(propose.unwrap(), 3);
    let Answer { reply, propose } = respond(&old.sm, &delete);
    assert!(matches!(
        reply,
        GroupReply::Delete(DeleteReply::Done { .. })
    ));
    assert_eq!(propose, None);
    // Past the configuration: the pull is an old duplicate.
    old.apply(Command::NewConfig(config(3, [2, 1, 1, 1])), 4);
    assert_eq!(
        respond(&old.sm, &pull).reply,
        GroupReply::Pull(PullReply::Stale { num: 2, current: 3 })
    );
}

#[test]
fn sessions_expire_by_log_time_and_creation_stops_at_the_cap() {
    let settings = Settings {
        session_timeout_ms: 1_000,
        max_sessions: 2,
        ..Settings::new(1, SHARDS)
    };
    let mut m = Machine::new(settings);
    m.apply(Command::NewConfig(config(1, [1; 4])), 0);
    assert_eq!(m.put(1, 1, "a", 0), Response::Op(Ok(Reply::Done)));
    assert_eq!(m.put(2, 1, "b", 500), Response::Op(Ok(Reply::Done)));
    assert_eq!(
        m.put(3, 1, "c", 500),
        Response::Op(Err(OpError::SessionsFull))
    );
    assert_eq!(m.sm.query(b"c"), Ok(None), "refused, not applied");
    m.apply(Command::Tick, 1_001);
    assert!(m.sm.sessions().get(1).is_none(), "idle 1001 ms > 1000");
    assert!(m.sm.sessions().get(2).is_some());
    assert_eq!(m.put(3, 1, "c", 1_002), Response::Op(Ok(Reply::Done)));
}

#[test]
fn a_shard_given_to_no_group_is_dropped_and_bad_configurations_are_refused() {
    let mut m = Machine::new(Settings::new(1, SHARDS));
    m.apply(Command::NewConfig(config(1, [1; 4])), 0);
    m.put(1, 1, "a", 0);
    let wrong_size = Config {
        num: 2,
        shards: vec![1; 5],
        groups: [(1, members(1))].into(),
    };
    assert_eq!(
        m.apply(Command::NewConfig(wrong_size), 1),
        Response::Control { changed: false }
    );
    assert_eq!(
        m.apply(Command::NewConfig(config(2, [0; 4])), 2),
        Response::Control { changed: true }
    );
    assert_eq!(m.sm.shards_in(ShardStatus::NotOwned).len(), 4);
    assert_eq!(m.sm.key_count(), 0);
    assert!(m.sm.is_stable());
    // Undecodable entries change nothing but the index.
    m.index += 1;
    let r = m.sm.apply(m.index, b"\x01\xff\xff");
    assert!(matches!(r, Response::Malformed { .. }));
}
