//! The replica alone, driven by a tiny synchronous harness: three replicas,
//! a message list, and a set of isolated nodes whose messages are dropped.
//! Each test drives one situation and asserts the completions it produced.

use std::collections::BTreeSet;

use bytes::Bytes;
use kv::{Command, Op, Reply, Request};
use raft::{MemStorage, Message, MessageBody, NodeId, Storage};
use replica::{Config, Rejected};

type Replica = replica::Replica<MemStorage, kv::StateMachine>;
type Completion = replica::Completion<kv::StateMachine>;
type Outcome = replica::Outcome<kv::StateMachine>;

fn boot(cfg: Config, storage: MemStorage) -> Replica {
    Replica::new(cfg, storage, kv::StateMachine::new(kv::Config::default())).unwrap()
}

struct Harness {
    nodes: Vec<Replica>,
    inbox: Vec<Message>,
    isolated: BTreeSet<NodeId>,
    done: Vec<(NodeId, Completion)>,
    now_ms: u64,
    sent: Vec<Message>,
}

fn config(id: NodeId, threshold: Option<u64>) -> Config {
    let mut cfg = Config::new(raft::Config::new(id, vec![1, 2, 3]));
    cfg.snapshot_threshold_bytes = threshold;
    cfg
}

impl Harness {
    fn new(threshold: Option<u64>) -> Self {
        Self::with_configs(|id| config(id, threshold))
    }

    fn with_configs(config: impl Fn(NodeId) -> Config) -> Self {
        let nodes = (1..=3)
            .map(|id| boot(config(id), MemStorage::new()))
            .collect();
        Harness {
            nodes,
            inbox: Vec::new(),
            isolated: BTreeSet::new(),
            done: Vec::new(),
            now_ms: 0,
            sent: Vec::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Replica {
        &mut self.nodes[id as usize - 1]
    }

    fn drive(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let done = self.node(id).drive(&mut |m| out.push(m)).unwrap();
        self.done.extend(done.into_iter().map(|c| (id, c)));
        self.sent.extend(out.iter().cloned());
        self.inbox.extend(out);
    }

    /// Delivers messages until none are left (dropping isolated nodes' ones).
    fn settle(&mut self) {
        for id in 1..=3 {
            self.drive(id);
        }
        while !self.inbox.is_empty() {
            for m in std::mem::take(&mut self.inbox) {
                if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                    continue;
                }
                let to = m.to;
                self.node(to).step(m);
                self.drive(to);
            }
        }
    }

    fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            self.now_ms += 10;
            for id in 1..=3 {
                let now = self.now_ms;
                self.node(id).tick(now);
            }
            self.settle();
        }
    }

    fn elect(&mut self, id: NodeId) {
        self.node(id).campaign();
        self.settle();
        assert!(self.node(id).is_leader(), "node {id} did not win");
        self.tick_all(1); // commit the no-op everywhere
    }

    fn take_done(&mut self) -> Vec<(NodeId, Completion)> {
        std::mem::take(&mut self.done)
    }

    fn register(&mut self, leader: NodeId) -> u64 {
        let now = self.now_ms;
        self.node(leader)
            .propose(1_000, Command::RegisterSession, now)
            .unwrap();
        self.settle();
        let done = self.take_done();
        match &done[..] {
            [(
                _,
                Completion {
                    token: 1_000,
                    outcome: Outcome::Applied(Ok(Reply::Registered { client_id })),
                },
            )] => *client_id,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn put(client_id: u64, seq: u64, k: &str, v: &str) -> Command {
    Command::Request(Request {
        client_id,
        seq,
        op: Op::Put {
            key: Bytes::from(k.to_string()),
            value: Bytes::from(v.to_string()),
        },
    })
}

#[test]
fn followers_refuse_with_a_leader_hint() {
    let mut h = Harness::new(None);
    h.elect(1);
    let err = h
        .node(2)
        .propose(1, Command::RegisterSession, 0)
        .unwrap_err();
    assert_eq!(err, Rejected::NotLeader { hint: Some(1) });
    assert_eq!(
        h.node(3)
            .read(
                2,
                kv::Op::Get {
                    key: Bytes::from("k")
                }
            )
            .unwrap_err(),
        Rejected::NotLeader { hint: Some(1) }
    );
}

#[test]
fn a_write_completes_once_with_the_state_machine_response() {
    let mut h = Harness::new(None);
    h.elect(1);
    let client = h.register(1);
    h.node(1).propose(7, put(client, 1, "k", "v"), 0).unwrap();
    h.settle();
    let done = h.take_done();
    assert_eq!(
        done,
        vec![(
            1,
            Completion {
                token: 7,
                outcome: Outcome::Applied(Ok(Reply::Done))
            }
        )]
    );
    h.tick_all(2);
    for id in 1..=3 {
        assert_eq!(
            h.node(id).state_machine().get(b"k"),
            Some(Bytes::from("v")),
            "node {id}"
        );
    }
}

/// A deposed leader's proposal ends `Unknown`; its slot is then overwritten.
#[test]
fn deposed_leader_fails_its_proposals_as_unknown() {
    let mut h = Harness::new(None);
    h.elect(1);
    let client = h.register(1);
    h.isolated.insert(1);
    h.node(1)
        .propose(9, put(client, 1, "k", "lost"), 0)
        .unwrap();
    h.settle();
    assert!(h.take_done().is_empty());
    // 2 and 3 stop hearing from 1 and elect 2.
    h.tick_all(80);
    assert!(h.node(2).is_leader() || h.node(3).is_leader());
    h.isolated.clear();
    h.tick_all(5);
    let done = h.take_done();
    assert!(
        done.iter().any(|(id, c)| *id == 1
            && c.token == 9
            && matches!(c.outcome, Outcome::Unknown { .. })),
        "{done:?}"
    );
    assert_eq!(h.node(1).state_machine().get(b"k"), None);
}

/// Reads queued between two drives share one ReadIndex round (one heartbeat
/// broadcast with a read round), and see the writes before them.
#[test]
fn reads_between_drives_share_one_round() {
    let mut h = Harness::new(None);
    h.elect(1);
    let client = h.register(1);
    h.node(1).propose(5, put(client, 1, "k", "v"), 0).unwrap();
    h.settle();
    h.take_done();
    h.sent.clear();
    for token in 10..15 {
        h.node(1)
            .read(
                token,
                kv::Op::Get {
                    key: Bytes::from("k"),
                },
            )
            .unwrap();
    }
    h.settle();
    let rounds: BTreeSet<u64> = h
        .sent
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat { read_round, .. } if read_round > 0 && m.from == 1 => {
                Some(read_round)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        rounds.len(),
        1,
        "one confirmation round for the batch: {rounds:?}"
    );
    let done = h.take_done();
    assert_eq!(done.len(), 5);
    assert!(done
        .iter()
        .all(|(_, c)| c.outcome == Outcome::Value(kv::Reply::Value(Some(Bytes::from("v"))))));
    // The counters /metrics exports agree: one read round for the batch,
    // the registration and the put proposed, one leadership seen by all.
    let c = h.node(1).status().counters;
    assert_eq!(c.read_index_rounds, 1);
    assert_eq!(c.proposals, 2);
    assert_eq!(c.leader_changes, 1);
    assert_eq!(h.node(2).status().counters.leader_changes, 1);
    assert_eq!(h.node(2).status().counters.proposals, 0);
}

/// The read rounds (heartbeats carrying a read round) node 1 sent.
fn read_rounds(sent: &[Message]) -> BTreeSet<u64> {
    sent.iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat { read_round, .. } if read_round > 0 && m.from == 1 => {
                Some(read_round)
            }
            _ => None,
        })
        .collect()
}

/// One read round in flight at a time: reads queued in several drives while
/// a round is out wait for it, then share one round (started by the drive
/// that confirmed the first, without waiting for another input), and every
/// read is answered with the value written before it.
#[test]
fn reads_queued_while_a_round_is_out_share_the_next_round() {
    let mut h = Harness::new(None);
    h.elect(1);
    let client = h.register(1);
    h.node(1).propose(5, put(client, 1, "k", "v"), 0).unwrap();
    h.settle();
    h.take_done();
    h.sent.clear();
    h.node(1)
        .read(
            10,
            kv::Op::Get {
                key: Bytes::from("k"),
            },
        )
        .unwrap();
    h.drive(1); // round 1 goes out; its acks stay in the inbox for now
    assert_eq!(read_rounds(&h.sent).len(), 1);
    for token in 11..14 {
        h.node(1)
            .read(
                token,
                kv::Op::Get {
                    key: Bytes::from("k"),
                },
            )
            .unwrap();
        h.drive(1); // a round is out: these wait
    }
    assert_eq!(
        read_rounds(&h.sent).len(),
        1,
        "no second round while the first is out"
    );
    // The followers answer round 1; node 1 takes both answers in one drive,
    // which confirms round 1 and sends round 2 at once.
    for m in std::mem::take(&mut h.inbox) {
        let to = m.to;
        h.node(to).step(m);
        h.drive(to);
    }
    for m in std::mem::take(&mut h.inbox) {
        assert_eq!(m.to, 1, "{}", m.describe());
        h.node(1).step(m);
    }
    h.drive(1);
    let rounds = read_rounds(&h.sent);
    assert_eq!(rounds.len(), 2, "one more round for the three: {rounds:?}");
    h.settle();
    assert_eq!(read_rounds(&h.sent).len(), 2);
    let done = h.take_done();
    let tokens: BTreeSet<u64> = done.iter().map(|(_, c)| c.token).collect();
    assert_eq!(tokens, (10..14).collect::<BTreeSet<u64>>(), "{done:?}");
    assert!(done
        .iter()
        .all(|(_, c)| c.outcome == Outcome::Value(kv::Reply::Value(Some(Bytes::from("v"))))));
}

/// An isolated leader cannot confirm a read; it aborts it when it steps down.
#[test]
fn isolated_leader_never_serves_a_read() {
    let mut h = Harness::new(None);
    h.elect(1);
    h.isolated.insert(1);
    h.node(1)
        .read(
            3,
            kv::Op::Get {
                key: Bytes::from("k"),
            },
        )
        .unwrap();
    h.tick_all(80);
    let done = h.take_done();
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        matches!(done[0].1.outcome, Outcome::ReadAborted { .. }),
        "{done:?}"
    );
}

/// Past the threshold the replica snapshots and compacts; a restart from the
/// storage restores the state machine from that snapshot.
#[test]
fn snapshots_past_threshold_and_restores_on_boot() {
    let mut h = Harness::new(Some(600));
    h.elect(1);
    let client = h.register(1);
    for seq in 1..=40 {
        h.node(1)
            .propose(100 + seq, put(client, seq, &format!("k{seq}"), "value"), 0)
            .unwrap();
        h.settle();
    }
    h.tick_all(2);
    let status = h.node(2).status();
    assert!(status.raft.snapshot_index > 0, "no snapshot: {status:?}");
    let storage = h.nodes.remove(1).into_storage();
    assert!(
        storage.log_size_bytes() < 600 + 200,
        "log not trimmed: {}",
        storage.log_size_bytes()
    );
    assert!(storage.snapshot().unwrap().meta.index > 0);
    let before = h.nodes[0].state_machine().clone();
    let snap_index = storage.snapshot().unwrap().meta.index;
    let mut rebooted = boot(config(2, Some(600)), storage);
    assert_eq!(
        rebooted.state_machine().applied_index(),
        snap_index,
        "restored from the snapshot"
    );
    rebooted.drive(&mut |_| {}).unwrap(); // replays the committed rest of the log
    assert_eq!(rebooted.state_machine(), &before);
}

/// With `snapshot_every_entries`, every replica snapshots once that many
/// entries were applied since its last snapshot, whatever the log's size.
#[test]
fn snapshots_every_n_entries_when_asked() {
    let mut h = Harness::with_configs(|id| Config {
        snapshot_every_entries: Some(5),
        ..config(id, None)
    });
    h.elect(1);
    let client = h.register(1);
    for seq in 1..=12 {
        h.node(1)
            .propose(100 + seq, put(client, seq, &format!("k{seq}"), "v"), 0)
            .unwrap();
        h.settle();
    }
    h.tick_all(2);
    for id in 1..=3 {
        let s = h.node(id).status().raft;
        assert!(
            s.snapshot_index >= 10 && s.applied - s.snapshot_index < 5,
            "node {id}: {s:?}"
        );
    }
}

/// A leader's snapshot message carrying `data` for index `index` (term 1).
fn snapshot_msg(index: u64, data: Bytes) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::Snapshot {
            meta: raft::SnapshotMeta { index, term: 1 },
            conf: None,
            offset: 0,
            data,
            done: true,
        },
    }
}

/// Issue 10: a snapshot from the leader that does not decode is dropped by
/// Raft before anything of it is persisted or applied; the follower keeps
/// running (no `Err` from `drive`, the host does not stop) and counts it.
/// A good snapshot sent after it installs as usual. Without the check, the
/// bad one was persisted, then `restore` failed and `drive` returned `Err`
/// (the server then stops the node).
#[test]
fn an_undecodable_leader_snapshot_is_dropped_and_the_follower_keeps_running() {
    let mut f = boot(config(1, None), MemStorage::new());
    let mut good = kv::StateMachine::new(kv::Config::default());
    for i in 1..=10 {
        let _ = rsm::StateMachine::apply(&mut good, i, &[]); // no-ops: only the index moves
    }
    let good = rsm::StateMachine::snapshot(&good);
    let mut garbled = good.to_vec();
    let mid = garbled.len() / 2;
    garbled[mid] ^= 0xff;
    let bad_inputs = [Bytes::from_static(b"not a snapshot"), Bytes::from(garbled)];
    for (n, bad) in bad_inputs.into_iter().enumerate() {
        f.step(snapshot_msg(10, bad));
        let mut sent = Vec::new();
        f.drive(&mut |m| sent.push(m))
            .expect("the follower keeps running");
        let st = f.status();
        assert_eq!(st.snapshots_rejected, n as u64 + 1);
        assert_eq!(st.raft.applied, 0, "nothing of a bad snapshot is applied");
        assert_eq!(st.raft.snapshot_index, 0);
        assert!(f.storage().snapshot().unwrap().is_empty(), "nor persisted");
        assert!(
            sent.is_empty(),
            "a dropped snapshot is not acknowledged: {sent:?}"
        );
        let why = f.last_snapshot_rejection().unwrap();
        assert!(
            why.contains("snapshot at index 10") && why.contains("from node 2"),
            "{why}"
        );
    }
    f.step(snapshot_msg(10, good));
    f.drive(&mut |_| {}).unwrap();
    let st = f.status();
    assert_eq!((st.raft.applied, st.raft.snapshot_index), (10, 10));
    assert_eq!(st.snapshots_rejected, 2);
}

/// `Config::leader_sync_by_host` (dissertation §10.2.1): the leader's own log write
/// is synced by the host (`take_sync`, one at a time, then `synced`); until then it
/// does not count itself, so one follower's ack is not enough, while both
/// followers' acks commit without it.
#[test]
fn a_host_synced_leader_counts_itself_only_once_synced() {
    let mut h = Harness::with_configs(|id| {
        let mut cfg = config(id, None);
        cfg.leader_sync_by_host = id == 1;
        cfg
    });
    h.elect(1);
    // The election's writes were synced inside `drive` (a candidate persists).
    let mut syncs = Vec::new();
    while let Some(req) = h.node(1).take_sync() {
        h.node(1).synced(req);
        syncs.push(req);
        h.settle();
    }
    let client = h.register(1);
    if let Some(req) = h.node(1).take_sync() {
        h.node(1).synced(req);
    }

    // Node 3 cut off: node 2's ack plus an unsynced leader is one durable copy of two.
    h.isolated.insert(3);
    h.node(1).propose(7, put(client, 1, "k", "v"), 0).unwrap();
    h.settle();
    assert!(
        h.take_done().is_empty(),
        "answered before a majority had it durably"
    );
    let req = h
        .node(1)
        .take_sync()
        .expect("the write waits for a host sync");
    assert_eq!(h.node(1).take_sync(), None, "one host sync out at a time");
    h.node(1).synced(req);
    h.drive(1);
    let done = h.take_done();
    assert!(
        matches!(
            &done[..],
            [(
                1,
                Completion {
                    token: 7,
                    outcome: Outcome::Applied(Ok(Reply::Done))
                }
            )]
        ),
        "{done:?}"
    );

    // Both followers: committed while the leader's sync is still out.
    h.isolated.clear();
    h.node(1).propose(8, put(client, 2, "k", "w"), 0).unwrap();
    h.settle();
    assert!(
        h.node(1).take_sync().is_some(),
        "the leader's own write is not synced"
    );
    let done = h.take_done();
    assert!(
        matches!(
            &done[..],
            [(
                1,
                Completion {
                    token: 8,
                    outcome: Outcome::Applied(Ok(Reply::Done))
                }
            )]
        ),
        "{done:?}"
    );
}

/// kv's machine, counting how often snapshot bytes are decoded.
struct Counted {
    sm: kv::StateMachine,
    decodes: std::rc::Rc<std::cell::Cell<u32>>,
}

impl rsm::StateMachine for Counted {
    type Command = Command;
    type Response = kv::Response;
    type Query = Op;
    type QueryResult = Reply;
    fn encode_command(&self, cmd: &Command, now_ms: u64) -> Bytes {
        self.sm.encode_command(cmd, now_ms)
    }
    fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        self.sm.tick_command(now_ms)
    }
    fn apply(&mut self, index: u64, data: &[u8]) -> kv::Response {
        rsm::StateMachine::apply(&mut self.sm, index, data)
    }
    fn applied_index(&self) -> u64 {
        rsm::StateMachine::applied_index(&self.sm)
    }
    fn query(&self, q: &Op) -> Reply {
        rsm::StateMachine::query(&self.sm, q)
    }
    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        rsm::StateMachine::snapshot_to(&self.sm, out)
    }
    fn restore(&mut self, data: &[u8]) -> Result<(), rsm::SnapshotError> {
        self.decodes.set(self.decodes.get() + 1);
        rsm::StateMachine::restore(&mut self.sm, data)
    }
    fn replace_with_snapshot(
        &mut self,
        input: rsm::SnapshotInput<'_>,
    ) -> Result<(), rsm::SnapshotError> {
        self.decodes.set(self.decodes.get() + 1);
        rsm::StateMachine::replace_with_snapshot(&mut self.sm, input)
    }
}

/// A leader's snapshot is decoded once: the check that refuses a bad one
/// before anything is adopted is the decode whose result is installed. (It
/// was decoded twice, for the check and again to restore, with the old state
/// alive both times.)
#[test]
fn a_leader_snapshot_is_decoded_once() {
    let decodes = std::rc::Rc::new(std::cell::Cell::new(0));
    let sm = Counted {
        sm: kv::StateMachine::new(kv::Config::default()),
        decodes: decodes.clone(),
    };
    let mut f = replica::Replica::new(config(1, None), MemStorage::new(), sm).unwrap();
    let mut leader = kv::StateMachine::new(kv::Config::default());
    let _ = rsm::StateMachine::apply(&mut leader, 1, &[]);
    let reg = rsm::StateMachine::encode_command(&leader, &Command::RegisterSession, 0);
    let _ = rsm::StateMachine::apply(&mut leader, 2, &reg);
    let set = rsm::StateMachine::encode_command(&leader, &put(2, 1, "k", "v"), 0);
    let _ = rsm::StateMachine::apply(&mut leader, 3, &set);
    f.step(snapshot_msg(3, rsm::StateMachine::snapshot(&leader)));
    f.drive(&mut |_| {}).unwrap();
    let st = f.status();
    assert_eq!((st.raft.applied, st.raft.snapshot_index), (3, 3));
    assert_eq!(&f.state_machine().sm, &leader, "installed as decoded");
    assert_eq!(decodes.get(), 1, "decoded once");
}

/// An Append from the leader (node 2, term 1) after `(prev_index, term 1)`.
fn append_msg(prev_index: u64, data: Vec<Bytes>, commit: u64) -> Message {
    let entries = (prev_index + 1..)
        .zip(data)
        .map(|(index, d)| raft::Entry::normal(1, index, d))
        .collect();
    Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::Append {
            prev_index,
            prev_term: 1,
            entries,
            commit,
        },
    }
}

/// A follower holding state (its own snapshot, then log entries after it) refuses a
/// leader's snapshot that does not decode, and is left exactly as it was: the machine
/// (dropped before the decode, so that two states are never held) is rebuilt from its
/// snapshot and its log, the log is intact, and it goes on applying the leader's
/// entries. Fails if the machine is not rebuilt (it would be left empty).
#[test]
fn a_refused_snapshot_leaves_a_follower_with_state_as_it_was() {
    let mut f = boot(config(1, None), MemStorage::new());
    let mut leader = kv::StateMachine::new(kv::Config::default());
    let _ = rsm::StateMachine::apply(&mut leader, 1, &[]);
    let reg = rsm::StateMachine::encode_command(&leader, &Command::RegisterSession, 0);
    let _ = rsm::StateMachine::apply(&mut leader, 2, &reg);
    let propose = |leader: &mut kv::StateMachine, index: u64| {
        let cmd = put(2, index, &format!("k{index}"), &format!("v{index}"));
        let data = rsm::StateMachine::encode_command(leader, &cmd, index);
        let _ = rsm::StateMachine::apply(leader, index, &data);
        data
    };
    for i in 3..=5 {
        propose(&mut leader, i);
    }
    f.step(snapshot_msg(5, rsm::StateMachine::snapshot(&leader)));
    f.drive(&mut |_| {}).unwrap();
    let after_log: Vec<Bytes> = (6..=8).map(|i| propose(&mut leader, i)).collect();
    f.step(append_msg(5, after_log, 8));
    f.drive(&mut |_| {}).unwrap();
    assert_eq!(f.status().raft.applied, 8);
    assert_eq!(f.state_machine(), &leader);

    let mut ahead = leader.clone();
    for i in 9..=20 {
        propose(&mut ahead, i);
    }
    let mut garbled = rsm::StateMachine::snapshot(&ahead).to_vec();
    let mid = garbled.len() / 2;
    garbled[mid] ^= 0xff;
    f.step(snapshot_msg(20, Bytes::from(garbled)));
    f.drive(&mut |_| {}).expect("the follower keeps running");
    let st = f.status();
    assert_eq!(st.snapshots_rejected, 1);
    assert_eq!((st.raft.applied, st.raft.snapshot_index), (8, 5));
    assert_eq!(f.state_machine(), &leader, "the machine is as it was");
    let log = f.storage().entries(6, 9, u64::MAX).unwrap();
    assert_eq!(log.iter().map(|e| e.index).collect::<Vec<_>>(), [6, 7, 8]);
    assert_eq!(f.storage().snapshot().unwrap().meta.index, 5);

    let next = propose(&mut leader, 9);
    f.step(append_msg(8, vec![next], 9));
    f.drive(&mut |_| {}).unwrap();
    assert_eq!(f.status().raft.applied, 9);
    assert_eq!(f.state_machine(), &leader, "and goes on applying");
}
