//! The lab's 4A catalogue at the state-machine level: one controller fed
//! entries in log order by a tiny harness, with the crate's `lab` checks.
//! "Concurrent" cases interleave several clients' requests (and duplicate
//! deliveries of them, as retries after a lost reply would) in a fixed,
//! scrambled order. The replicated versions run through Raft in
//! `tests/replicated.rs` and, later, in the simulator.

use std::collections::{BTreeMap, BTreeSet};

use shardctrler::lab::{check, check_minimal_after_join, check_minimal_after_leave};
use shardctrler::{Command, Controller, CtrlError, Op, Reply, Request, Response, Settings};
use shardmeta::{Config, GroupId, Member};

const NSHARDS: u32 = 10;

/// Feeds commands to one controller as consecutive log entries.
struct Log {
    c: Controller,
    index: u64,
    now_ms: u64,
}

/// A client: its session and next seq.
struct Clerk {
    client_id: u64,
    seq: u64,
}

impl Log {
    fn new() -> Self {
        Log {
            c: Controller::new(Settings::with_shards(NSHARDS)),
            index: 0,
            now_ms: 1_000,
        }
    }

    fn submit(&mut self, cmd: &Command) -> Response {
        self.index += 1;
        self.now_ms += 10;
        let bytes = self.c.encode_command(cmd, self.now_ms);
        self.c.apply(self.index, &bytes)
    }

    fn clerk(&mut self) -> Clerk {
        match self.submit(&Command::RegisterSession) {
            Ok(Reply::Registered { client_id }) => Clerk { client_id, seq: 0 },
            other => panic!("register: {other:?}"),
        }
    }

    /// The next request of `clerk` (not yet submitted).
    fn request(clerk: &mut Clerk, op: Op) -> Command {
        clerk.seq += 1;
        Command::Request(Request {
            client_id: clerk.client_id,
            seq: clerk.seq,
            op,
        })
    }

    fn run(&mut self, clerk: &mut Clerk, op: Op) -> Response {
        let cmd = Self::request(clerk, op);
        self.submit(&cmd)
    }

    fn query(&mut self, num: Option<u64>) -> Config {
        match self.submit(&Command::Query { num }) {
            Ok(Reply::Config(c)) => c,
            other => panic!("query: {other:?}"),
        }
    }

    fn join(&mut self, clerk: &mut Clerk, gids: &[GroupId]) {
        let r = self.run(clerk, join_op(gids));
        assert!(
            matches!(r, Ok(Reply::NewConfig { .. })),
            "join {gids:?}: {r:?}"
        );
    }

    fn leave(&mut self, clerk: &mut Clerk, gids: &[GroupId]) {
        let r = self.run(clerk, leave_op(gids));
        assert!(
            matches!(r, Ok(Reply::NewConfig { .. })),
            "leave {gids:?}: {r:?}"
        );
    }

    fn check(&mut self, gids: &[GroupId]) {
        let latest = self.query(None);
        let groups: BTreeSet<GroupId> = gids.iter().copied().collect();
        if let Err(e) = check(&groups, &latest) {
            panic!("{e}");
        }
    }
}

fn members(gid: GroupId) -> Vec<Member> {
    (0..3)
        .map(|i| Member {
            id: gid * 10 + i,
            addr: format!("x{gid}-{i}"),
        })
        .collect()
}

fn join_op(gids: &[GroupId]) -> Op {
    Op::Join {
        groups: gids.iter().map(|&g| (g, members(g))).collect(),
    }
}

fn leave_op(gids: &[GroupId]) -> Op {
    Op::Leave {
        gids: gids.iter().copied().collect(),
    }
}

/// A fixed scramble of `cmds` in which every command also appears a
/// second time later (a retry): each client's own order is kept for first
/// deliveries, clients interleave.
fn interleave(per_client: Vec<Vec<Command>>) -> Vec<Command> {
    let mut queues: Vec<std::collections::VecDeque<Command>> =
        per_client.into_iter().map(Into::into).collect();
    let mut out = Vec::new();
    let mut turn = 7usize;
    while queues.iter().any(|q| !q.is_empty()) {
        turn = (turn * 31 + 17) % 1009;
        let n = queues.len();
        let q = &mut queues[turn % n];
        if let Some(cmd) = q.pop_front() {
            out.push(cmd.clone());
            if turn.is_multiple_of(3) {
                out.push(cmd); // a duplicate delivery: must change nothing
            }
        }
    }
    out
}

#[test]
fn basic_leave_join_and_historical_queries() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    let mut history = vec![log.query(None)];
    log.check(&[]);
    log.join(&mut ck, &[1]);
    log.check(&[1]);
    history.push(log.query(None));
    log.join(&mut ck, &[2]);
    log.check(&[1, 2]);
    history.push(log.query(None));
    let latest = log.query(None);
    assert_eq!(latest.members(1), members(1).as_slice());
    assert_eq!(latest.members(2), members(2).as_slice());
    log.leave(&mut ck, &[1]);
    log.check(&[2]);
    history.push(log.query(None));
    log.leave(&mut ck, &[2]);
    log.check(&[]);
    history.push(log.query(None));

    // Historical queries: every saved configuration, by number, unchanged.
    for saved in &history {
        assert_eq!(&log.query(Some(saved.num)), saved);
    }
    assert_eq!(
        log.query(Some(10_000)),
        log.query(None),
        "future num -> latest"
    );
    assert_eq!(log.query(None).shards, vec![0; NSHARDS as usize]);
}

#[test]
fn move_pins_shards_and_increases_num() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    log.join(&mut ck, &[3]);
    log.join(&mut ck, &[4]);
    for shard in 0..NSHARDS {
        let before = log.query(None);
        let gid = if shard < NSHARDS / 2 { 3 } else { 4 };
        let r = log.run(&mut ck, Op::Move { shard, gid });
        assert_eq!(
            r,
            Ok(Reply::NewConfig {
                num: before.num + 1
            })
        );
        let after = log.query(None);
        // Exactly one shard pinned; nothing else moved.
        for s in 0..NSHARDS {
            let expect = if s == shard { gid } else { before.owner(s) };
            assert_eq!(after.owner(s), expect, "shard {s} after move of {shard}");
        }
    }
    let last = log.query(None);
    for shard in 0..NSHARDS {
        let gid = if shard < NSHARDS / 2 { 3 } else { 4 };
        assert_eq!(last.owner(shard), gid);
    }
    log.leave(&mut ck, &[3]);
    log.leave(&mut ck, &[4]);
    log.check(&[]);
}

#[test]
fn members_replaces_one_groups_list_and_moves_no_shard() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    log.join(&mut ck, &[1, 2]);
    let before = log.query(None);
    // Group 1 replaced its replica 12 by a new process 13.
    let mut new = members(1);
    new.retain(|m| m.id != 12);
    new.push(Member {
        id: 13,
        addr: "x1-3".into(),
    });
    let r = log.run(
        &mut ck,
        Op::Members {
            gid: 1,
            members: new.clone(),
        },
    );
    assert_eq!(
        r,
        Ok(Reply::NewConfig {
            num: before.num + 1
        })
    );
    let after = log.query(None);
    assert_eq!(after.shards, before.shards, "no shard moves");
    assert_eq!(after.members(1), new.as_slice());
    assert_eq!(after.members(2), before.members(2));
    log.check(&[1, 2]);
}

#[test]
fn move_is_not_rebalanced_until_the_next_join_or_leave() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    log.join(&mut ck, &[1, 2]);
    // Group 2 owns shards 5..10; give four of them to group 1.
    for shard in 5..9 {
        log.run(&mut ck, Op::Move { shard, gid: 1 }).unwrap();
    }
    let moved = log.query(None);
    assert!(shardctrler::lab::check_balanced(&moved).is_err());
    log.join(&mut ck, &[3]);
    log.check(&[1, 2, 3]);
    let rebalanced = log.query(None);
    assert!(shardctrler::lab::check_fewest(&moved, &rebalanced).is_ok());
}

/// Ten clients each join `g + 1000`, join `g`, leave `g + 1000`.
fn concurrent_leave_join(log: &mut Log, multi: bool) -> Vec<GroupId> {
    let gids: Vec<GroupId> = (1..=10).collect();
    let per_client = gids
        .iter()
        .map(|&g| {
            let mut ck = log.clerk();
            if multi {
                vec![
                    Log::request(&mut ck, join_op(&[g, g + 1000])),
                    Log::request(&mut ck, leave_op(&[g + 1000])),
                ]
            } else {
                vec![
                    Log::request(&mut ck, join_op(&[g + 1000])),
                    Log::request(&mut ck, join_op(&[g])),
                    Log::request(&mut ck, leave_op(&[g + 1000])),
                ]
            }
        })
        .collect();
    for cmd in interleave(per_client) {
        let r = log.submit(&cmd);
        assert!(matches!(r, Ok(Reply::NewConfig { .. })), "{cmd:?}: {r:?}");
    }
    log.check(&gids);
    gids
}

/// Five more groups join one by one (or at once), then leave again: no
/// shard moves between groups that stay.
fn minimal_transfers(log: &mut Log, ck: &mut Clerk, multi: bool) {
    let extra: Vec<GroupId> = (11..=15).collect();
    let c1 = log.query(None);
    if multi {
        log.join(ck, &extra);
    } else {
        for &g in &extra {
            log.join(ck, &[g]);
        }
    }
    let c2 = log.query(None);
    check_minimal_after_join(&c1, &c2).unwrap();
    if multi {
        log.leave(ck, &extra);
    } else {
        for &g in &extra {
            log.leave(ck, &[g]);
        }
    }
    let c3 = log.query(None);
    check_minimal_after_leave(&c2, &c3).unwrap();
    assert_eq!(c3.groups, c1.groups);
}

#[test]
fn concurrent_leave_join_then_minimal_transfers() {
    let mut log = Log::new();
    let gids = concurrent_leave_join(&mut log, false);
    let mut ck = log.clerk();
    minimal_transfers(&mut log, &mut ck, false);
    log.check(&gids);
}

#[test]
fn multi_group_join_leave() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    log.join(&mut ck, &[1, 2]);
    log.check(&[1, 2]);
    let latest = log.query(None);
    assert_eq!(latest.members(1), members(1).as_slice());
    assert_eq!(latest.members(2), members(2).as_slice());
    log.join(&mut ck, &[3, 4, 5]);
    log.check(&[1, 2, 3, 4, 5]);
    log.leave(&mut ck, &[1, 3]);
    log.check(&[2, 4, 5]);
    log.leave(&mut ck, &[2, 4, 5]);
    log.check(&[]);
}

#[test]
fn concurrent_multi_leave_join_then_minimal_multi_transfers() {
    let mut log = Log::new();
    let gids = concurrent_leave_join(&mut log, true);
    let mut ck = log.clerk();
    minimal_transfers(&mut log, &mut ck, true);
    log.check(&gids);
}

#[test]
fn more_groups_than_shards() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    let gids: Vec<GroupId> = (1..=13).collect();
    log.join(&mut ck, &gids);
    log.check(&gids);
    log.leave(&mut ck, &[1, 2, 3]);
    log.check(&gids[3..]);
}

#[test]
fn rejected_ops_create_no_configuration() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    log.join(&mut ck, &[1]);
    let before = log.query(None);
    let empty = BTreeMap::from([(2, vec![])]);
    let dup_member = BTreeMap::from([(2, vec![members(2)[0].clone(); 2])]);
    let cases = [
        (join_op(&[1]), CtrlError::GroupExists { gid: 1 }),
        (join_op(&[0]), CtrlError::ReservedGroup { gid: 0 }),
        (Op::Join { groups: empty }, CtrlError::BadMembers { gid: 2 }),
        (
            Op::Join { groups: dup_member },
            CtrlError::BadMembers { gid: 2 },
        ),
        (join_op(&[]), CtrlError::EmptyRequest),
        (leave_op(&[7]), CtrlError::UnknownGroup { gid: 7 }),
        (leave_op(&[1, 7]), CtrlError::UnknownGroup { gid: 7 }),
        (leave_op(&[]), CtrlError::EmptyRequest),
        (
            Op::Move {
                shard: NSHARDS,
                gid: 1,
            },
            CtrlError::NoSuchShard {
                shard: NSHARDS,
                shards: NSHARDS,
            },
        ),
        (
            Op::Move { shard: 0, gid: 9 },
            CtrlError::UnknownGroup { gid: 9 },
        ),
        (
            Op::Move { shard: 0, gid: 0 },
            CtrlError::UnknownGroup { gid: 0 },
        ),
        (
            Op::Members {
                gid: 9,
                members: members(9),
            },
            CtrlError::UnknownGroup { gid: 9 },
        ),
        (
            Op::Members {
                gid: 1,
                members: vec![],
            },
            CtrlError::BadMembers { gid: 1 },
        ),
    ];
    for (op, err) in cases {
        let cmd = Log::request(&mut ck, op.clone());
        assert_eq!(log.submit(&cmd), Err(err.clone()), "{op:?}");
        assert_eq!(log.submit(&cmd), Err(err), "{op:?} retried: cached");
    }
    assert_eq!(log.query(None), before);
    let too_many = (1..=shardctrler::MAX_GROUPS_PER_REQUEST as u64 + 1).map(|g| g + 100);
    let r = log.run(&mut ck, join_op(&too_many.collect::<Vec<_>>()));
    assert!(matches!(r, Err(CtrlError::TooLarge { .. })), "{r:?}");
    assert_eq!(log.query(None), before);
}

#[test]
fn sessions_are_exactly_once_and_expire_by_log_time() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    let join = Log::request(&mut ck, join_op(&[1]));
    assert_eq!(log.submit(&join), Ok(Reply::NewConfig { num: 1 }));
    log.join(&mut ck, &[2]);
    // A late duplicate of the first join: the cached reply, no new config.
    assert_eq!(log.submit(&join), Ok(Reply::NewConfig { num: 1 }));
    assert_eq!(log.query(None).num, 2);

    let unknown = Command::Request(Request {
        client_id: 999,
        seq: 1,
        op: leave_op(&[1]),
    });
    assert_eq!(
        log.submit(&unknown),
        Err(CtrlError::SessionExpired { client_id: 999 })
    );

    // Idle past the timeout (a Tick carries the later log time).
    log.now_ms += log.c.settings().session_timeout_ms + 1;
    assert_eq!(log.submit(&Command::Tick), Ok(Reply::Done));
    assert!(!log.c.has_session(ck.client_id));
    let r = log.run(&mut ck, leave_op(&[1]));
    assert_eq!(
        r,
        Err(CtrlError::SessionExpired {
            client_id: ck.client_id
        })
    );
    assert_eq!(log.query(None).num, 2);
}

#[test]
fn snapshot_round_trips_mid_history_and_continues_identically() {
    let mut log = Log::new();
    let mut ck = log.clerk();
    log.join(&mut ck, &[1, 2, 3]);
    log.run(&mut ck, Op::Move { shard: 0, gid: 3 }).unwrap();
    let snap = log.c.snapshot();
    let mut twin = Controller::restore(&snap).unwrap();
    assert_eq!(twin, log.c);
    // Both apply the same further entries identically.
    let next = Log::request(&mut ck, leave_op(&[2]));
    let bytes = log.c.encode_command(&next, log.now_ms + 5);
    let i = log.index + 1;
    assert_eq!(twin.apply(i, &bytes), log.c.apply(i, &bytes));
    assert_eq!(twin, log.c);
    assert_eq!(
        twin.snapshot(),
        log.c.snapshot(),
        "snapshots are deterministic"
    );
}
