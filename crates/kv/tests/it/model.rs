//! The state machine checked against dumb models (STYLE.md habit 9):
//! a `HashMap` for the data and a log of every response for exactly-once,
//! with retries, snapshots and a second replica thrown in.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kv::{
    encode_entry, Command, Config, Entry, KvError, Op, Reply, Request, Response, StateMachine,
};
use proptest::prelude::*;

const WINDOW: u64 = 3;

#[derive(Clone, Debug)]
enum Action {
    Op {
        client: usize,
        kind: u8,
        key: u8,
        value: Vec<u8>,
    },
    /// Resend one of a client's earlier seqs, `back` requests ago.
    Retry { client: usize, back: u64 },
    /// Replace replica B by a restore of replica A's snapshot.
    SnapshotRestore,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0..3usize, 0..4u8, 0..5u8, proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(client, kind, key, value)| Action::Op { client, kind, key, value }),
        3 => (0..3usize, 0..6u64).prop_map(|(client, back)| Action::Retry { client, back }),
        1 => Just(Action::SnapshotRestore),
    ]
}

fn make_op(kind: u8, key: u8, value: Vec<u8>) -> Op {
    let key = Bytes::from(vec![b'k', key]);
    match kind {
        0 => Op::Get { key },
        1 => Op::Put {
            key,
            value: Bytes::from(value),
        },
        2 => Op::Append {
            key,
            value: Bytes::from(value),
        },
        _ => Op::Delete { key },
    }
}

/// The obviously-correct meaning of an op on a `HashMap`.
fn model_apply(model: &mut HashMap<Bytes, Bytes>, op: &Op) -> Response {
    match op {
        Op::Get { key } => Ok(Reply::Value(model.get(key).cloned())),
        Op::Put { key, value } => {
            model.insert(key.clone(), value.clone());
            Ok(Reply::Done)
        }
        Op::Append { key, value } => {
            let mut joined = model.get(key).map(|v| v.to_vec()).unwrap_or_default();
            joined.extend_from_slice(value);
            let len = joined.len() as u64;
            model.insert(key.clone(), Bytes::from(joined));
            Ok(Reply::Length(len))
        }
        Op::Delete { key } => Ok(Reply::Deleted(model.remove(key).is_some())),
        other => unreachable!("this model generates no {other:?}"),
    }
}

/// Two replicas applying the same entries.
struct Pair {
    a: StateMachine,
    b: StateMachine,
    index: u64,
}

impl Pair {
    fn apply(&mut self, cmd: Command) -> Response {
        self.index += 1;
        let bytes = encode_entry(&Entry {
            timestamp_ms: self.index,
            cmd,
        });
        let ra = self.a.apply(self.index, &bytes);
        assert_eq!(
            ra,
            self.b.apply(self.index, &bytes),
            "replicas disagree at {}",
            self.index
        );
        ra
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn matches_a_hashmap_model_with_retries_and_snapshots(actions in proptest::collection::vec(action(), 1..120)) {
        let config = Config { response_window: WINDOW, ..Config::default() };
        let mut pair = Pair { a: StateMachine::new(config), b: StateMachine::new(config), index: 0 };
        let clients: Vec<u64> = (0..3)
            .map(|_| match pair.apply(Command::RegisterSession) {
                Ok(Reply::Registered { client_id }) => client_id,
                other => panic!("{other:?}"),
            })
            .collect();
        let mut model = HashMap::new();
        // Per client: every request sent, with its original response.
        let mut sent: Vec<BTreeMap<u64, (Op, Response)>> = vec![BTreeMap::new(); 3];
        for action in actions {
            match action {
                Action::Op { client, kind, key, value } => {
                    let op = make_op(kind, key, value);
                    let seq = sent[client].len() as u64 + 1;
                    let expected = model_apply(&mut model, &op);
                    let req = Request { client_id: clients[client], seq, op: op.clone() };
                    prop_assert_eq!(pair.apply(Command::Request(req)), expected.clone());
                    sent[client].insert(seq, (op, expected));
                }
                Action::Retry { client, back } => {
                    let highest = sent[client].len() as u64;
                    if back >= highest { continue; }
                    let seq = highest - back;
                    let (op, original) = sent[client][&seq].clone();
                    let expected = if back < WINDOW {
                        original
                    } else {
                        Err(KvError::StaleRequest { client_id: clients[client], seq })
                    };
                    let req = Request { client_id: clients[client], seq, op };
                    prop_assert_eq!(pair.apply(Command::Request(req)), expected);
                }
                Action::SnapshotRestore => {
                    pair.b = StateMachine::restore(&pair.a.snapshot()).expect("own snapshot");
                }
            }
            prop_assert_eq!(&pair.a, &pair.b);
        }
        prop_assert_eq!(pair.a.len(), model.len());
        for (key, value) in &model {
            let got = pair.a.get(key);
            prop_assert_eq!(got.as_ref(), Some(value));
        }
    }

    /// Exactly-once under expiry and eviction: every request appends a
    /// unique token, requests are retried at random, time jumps and the
    /// session cap throw sessions out. No token may ever appear twice, and a
    /// token is present iff some response to its request was a success.
    #[test]
    fn never_applies_twice_under_expiry_and_eviction(
        steps in proptest::collection::vec((0..4usize, any::<bool>(), 0..3u64, 0..400u64), 1..150)
    ) {
        let config = Config { session_timeout_ms: 500, max_sessions: 3, response_window: 2 };
        let mut sm = StateMachine::new(config);
        let (mut index, mut now_ms) = (0u64, 0u64);
        let mut apply = |sm: &mut StateMachine, now_ms: u64, cmd: Command| {
            index += 1;
            sm.apply(index, &encode_entry(&Entry { timestamp_ms: now_ms, cmd }))
        };
        // client slot -> (client_id, next seq)
        let mut slots: Vec<Option<(u64, u64)>> = vec![None; 4];
        let mut succeeded = std::collections::BTreeSet::new();
        for (slot, retry, back, advance_ms) in steps {
            now_ms += advance_ms;
            let (client_id, next_seq) = match slots[slot] {
                Some(s) => s,
                None => match apply(&mut sm, now_ms, Command::RegisterSession) {
                    Ok(Reply::Registered { client_id }) => (client_id, 1),
                    other => panic!("{other:?}"),
                },
            };
            let seq = if retry { next_seq.saturating_sub(1 + back).max(1) } else { next_seq };
            let token = format!("<{client_id}.{seq}>");
            let op = Op::Append { key: Bytes::from("log"), value: Bytes::from(token.clone()) };
            let resp = apply(&mut sm, now_ms, Command::Request(Request { client_id, seq, op }));
            match resp {
                Ok(Reply::Length(_)) => { succeeded.insert(token); }
                Err(KvError::SessionExpired { .. }) => { slots[slot] = None; continue; }
                Err(KvError::StaleRequest { .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
            slots[slot] = Some((client_id, next_seq.max(seq + 1)));
        }
        let log = sm.get(b"log").unwrap_or_default();
        let log = String::from_utf8(log.to_vec()).unwrap();
        for token in &succeeded {
            prop_assert_eq!(log.matches(token.as_str()).count(), 1, "token {} in {}", token, log);
        }
        let applied = log.matches('<').count();
        prop_assert_eq!(applied, succeeded.len());
        sm.check_invariants();
    }
}
