//! Property: arbitrary sequences of messages, ticks, proposals, reads and compactions
//! never make a node panic or break its own invariants (`check_invariants` runs after
//! every input in debug builds, which is how tests are built).

use bytes::Bytes;
use proptest::prelude::*;
use raft::{
    Config, Entry, EntryKind, MemStorage, Message, MessageBody, RawNode, RejectHint, SnapshotMeta,
};

#[derive(Clone, Debug)]
enum Input {
    Tick,
    Step(Message),
    Propose,
    Read(u64),
    Compact,
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    (0u64..8, 0u64..6, 0usize..4).prop_map(|(start, term, n)| {
        (0..n as u64)
            .map(|i| Entry {
                term: term + i / 2,
                index: start + 1 + i,
                kind: EntryKind::Normal,
                data: Bytes::new(),
            })
            .collect()
    })
}

fn body() -> impl Strategy<Value = MessageBody> {
    let idx = 0u64..10;
    let term = 0u64..7;
    prop_oneof![
        (idx.clone(), term.clone()).prop_map(|(last_index, last_term)| MessageBody::PreVote {
            last_index,
            last_term
        }),
        any::<bool>().prop_map(|reject| MessageBody::PreVoteResponse { reject }),
        (idx.clone(), term.clone(), any::<bool>()).prop_map(|(last_index, last_term, transfer)| {
            MessageBody::Vote {
                last_index,
                last_term,
                transfer,
            }
        }),
        Just(MessageBody::TimeoutNow),
        any::<bool>().prop_map(|reject| MessageBody::VoteResponse { reject }),
        (idx.clone(), term.clone(), entries(), idx.clone()).prop_map(
            |(prev_index, prev_term, entries, commit)| {
                let entries = entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut e)| {
                        e.index = prev_index + 1 + i as u64;
                        e
                    })
                    .collect();
                MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                }
            }
        ),
        (
            any::<bool>(),
            idx.clone(),
            proptest::option::of((proptest::option::of(term.clone()), idx.clone()))
        )
            .prop_map(|(reject, index, hint)| MessageBody::AppendResponse {
                reject,
                index,
                hint: hint.map(|(conflict_term, conflict_index)| RejectHint {
                    conflict_term,
                    conflict_index
                }),
            }),
        (idx.clone(), 0u64..4)
            .prop_map(|(commit, read_round)| MessageBody::Heartbeat { commit, read_round }),
        (0u64..4).prop_map(|read_round| MessageBody::HeartbeatResponse { read_round }),
        (
            idx.clone(),
            term.clone(),
            0u64..20,
            0usize..12,
            any::<bool>()
        )
            .prop_map(|(index, term, offset, len, done)| {
                MessageBody::Snapshot {
                    meta: SnapshotMeta { index, term },
                    conf: (len % 2 == 0)
                        .then(|| Box::new(raft::Membership::with_voters([1, 2, 3]))),
                    offset,
                    data: Bytes::from(vec![1; len]),
                    done,
                }
            }),
        (idx.clone(), 0u64..30)
            .prop_map(|(index, received)| MessageBody::SnapshotResponse { index, received }),
        (0u64..5).prop_map(|ctx| MessageBody::ReadIndex { ctx }),
        (0u64..5, proptest::option::of(idx))
            .prop_map(|(ctx, index)| MessageBody::ReadIndexResponse { ctx, index }),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => Just(Input::Tick),
        8 => (prop_oneof![Just(2u64), Just(3), Just(9)], prop_oneof![9 => Just(1u64), 1 => Just(4)], 0u64..7, body())
            .prop_map(|(from, to, term, body)| Input::Step(Message { from, to, term, body })),
        2 => Just(Input::Propose),
        1 => (0u64..5).prop_map(Input::Read),
        1 => Just(Input::Compact),
    ]
}

fn drive(node: &mut RawNode<MemStorage>) {
    let mut rounds = 0;
    while node.has_ready() {
        rounds += 1;
        assert!(rounds < 100, "Ready loop does not settle");
        let rd = node.ready();
        node.persist(&rd).unwrap();
        node.advance(rd);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_inputs_never_panic(inputs in proptest::collection::vec(input(), 1..60)) {
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.election_ticks = 3;
        cfg.heartbeat_ticks = 1;
        cfg.snapshot_chunk_bytes = 4;
        let mut node = RawNode::new(cfg, MemStorage::new()).unwrap();
        for inp in inputs {
            match inp {
                Input::Tick => node.tick(),
                Input::Step(m) => node.step(m),
                Input::Propose => { let _ = node.propose(Bytes::from_static(b"p")); }
                Input::Read(ctx) => { let _ = node.read_index(ctx); }
                Input::Compact => {
                    let applied = node.status().applied;
                    let _ = node.compact(applied, Bytes::from_static(b"snap"));
                }
            }
            drive(&mut node);
            node.raft().check_invariants();
        }
    }
}
