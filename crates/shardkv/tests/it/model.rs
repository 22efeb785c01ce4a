//! One group owning every shard, checked against a dumb model: a HashMap
//! and, per client, the responses it was given. Random ops from a few
//! clients with retries (duplicates) and snapshot/restore in between; and
//! random bytes never panic a decoder.

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use shardkv::{
    decode_entry, message, Command, Op, OpError, Reply, Request, Response, Settings, ShardKv,
};
use shardmeta::{Config, Member};

const SHARDS: u32 = 10;
const WINDOW: u64 = 8;

#[derive(Clone, Debug)]
enum Step {
    /// A new request from `client` (its next seq).
    New { client: u64, op: Op },
    /// A retry of `client`'s request `back` seqs ago (0 = the last one).
    Retry { client: u64, back: u64 },
    /// Snapshot and restore the machine.
    Restore,
    /// A ReadIndex read.
    Read { key: u8 },
}

fn key(k: u8) -> Bytes {
    Bytes::from(format!("key{k}"))
}

fn op() -> impl Strategy<Value = Op> {
    let k = (0u8..6).prop_map(key);
    let v = "[a-c]{0,3}".prop_map(Bytes::from);
    prop_oneof![
        k.clone().prop_map(|key| Op::Get { key }),
        (k.clone(), v.clone()).prop_map(|(key, value)| Op::Put { key, value }),
        (k.clone(), v).prop_map(|(key, value)| Op::Append { key, value }),
        k.prop_map(|key| Op::Delete { key }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u64..4, op()).prop_map(|(client, op)| Step::New { client, op }),
        2 => (1u64..4, 0u64..12).prop_map(|(client, back)| Step::Retry { client, back }),
        1 => Just(Step::Restore),
        1 => (0u8..6).prop_map(|key| Step::Read { key }),
    ]
}

/// What the model says `op` returns on `data`, applying it.
fn model_apply(data: &mut HashMap<Bytes, Bytes>, op: &Op) -> Reply {
    match op {
        Op::Get { key } => Reply::Value(data.get(key).cloned()),
        Op::Put { key, value } => {
            data.insert(key.clone(), value.clone());
            Reply::Done
        }
        Op::Append { key, value } => {
            let v = data.entry(key.clone()).or_default();
            *v = [v.as_ref(), value.as_ref()].concat().into();
            Reply::Length(v.len() as u64)
        }
        Op::Delete { key } => Reply::Deleted(data.remove(key).is_some()),
        other => unreachable!("this model generates no {other:?}"),
    }
}

fn owning_group() -> ShardKv {
    let mut sm = ShardKv::new(Settings::new(1, SHARDS));
    let mut c = Config::initial(SHARDS);
    c.num = 1;
    c.shards = vec![1; SHARDS as usize];
    c.groups.insert(
        1,
        vec![Member {
            id: 1,
            addr: "a".into(),
        }],
    );
    let entry = sm.encode_command(&Command::NewConfig(c), 0);
    assert_eq!(sm.apply(1, &entry), Response::Control { changed: true });
    sm
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn a_single_owning_group_matches_a_hashmap(steps in proptest::collection::vec(step(), 1..120)) {
        let mut sm = owning_group();
        let mut data: HashMap<Bytes, Bytes> = HashMap::new();
        // Per client: every request sent, and the reply the model gave it.
        let mut sent: HashMap<u64, Vec<(Op, Reply)>> = HashMap::new();
        let mut index = 1;
        for (t, step) in steps.into_iter().enumerate() {
            let now_ms = 10 * t as u64;
            let (request, expected) = match step {
                Step::Restore => {
                    let mut copy = ShardKv::new(Settings::new(1, SHARDS));
                    copy.restore(&sm.snapshot()).unwrap();
                    prop_assert_eq!(&copy, &sm);
                    sm = copy;
                    continue;
                }
                Step::Read { key: k } => {
                    prop_assert_eq!(sm.query(&key(k)), Ok(data.get(&key(k)).cloned()));
                    continue;
                }
                Step::New { client, op } => {
                    let history = sent.entry(client).or_default();
                    let reply = model_apply(&mut data, &op);
                    history.push((op.clone(), reply.clone()));
                    let seq = history.len() as u64;
                    (Request { client_id: client, seq, op }, Ok(reply))
                }
                Step::Retry { client, back } => {
                    let history = sent.entry(client).or_default();
                    let len = history.len() as u64;
                    if back >= len {
                        continue;
                    }
                    let seq = len - back;
                    let (op, reply) = history[seq as usize - 1].clone();
                    // Outside the window the original answer is gone: refused, not re-applied.
                    let expected = if back >= WINDOW {
                        Err(OpError::StaleRequest { client_id: client, seq })
                    } else {
                        Ok(reply)
                    };
                    (Request { client_id: client, seq, op }, expected)
                }
            };
            index += 1;
            let entry = sm.encode_command(&Command::Request(request), now_ms);
            prop_assert_eq!(sm.apply(index, &entry), Response::Op(expected));
        }
        let mut held: HashMap<Bytes, Bytes> = HashMap::new();
        for s in 0..SHARDS {
            held.extend(
                sm.shard_data(s)
                    .unwrap()
                    .live_strings(0)
                    .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))),
            );
        }
        prop_assert_eq!(held, data);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_entry(&bytes);
        let _ = message::decode_group_request(&bytes);
        let _ = message::decode_group_reply(&bytes);
        let mut sm = owning_group();
        let before = sm.clone();
        prop_assert!(sm.restore(&bytes).is_err());
        prop_assert_eq!(&sm, &before);
        let response = sm.apply(2, &bytes);
        if !bytes.is_empty() && decode_entry(&bytes).is_err() {
            prop_assert!(matches!(response, Response::Malformed { .. }), "bad bytes are malformed");
        }
        sm.check_invariants();
    }

    #[test]
    fn versioned_entries_round_trip(op in op(), ts in any::<u64>(), seq in any::<u64>()) {
        let entry = shardkv::Entry {
            timestamp_ms: ts,
            cmd: Command::Request(Request { client_id: 5, seq, op }),
        };
        let bytes = shardkv::encode_entry(&entry);
        prop_assert_eq!(decode_entry(&bytes), Ok(entry));
        let mut longer = bytes.to_vec();
        longer.push(0);
        prop_assert!(decode_entry(&longer).is_err(), "trailing bytes are refused");
        let mut other_version = bytes.to_vec();
        other_version[0] = shardkv::WIRE_VERSION + 1;
        prop_assert!(decode_entry(&other_version).is_err());
    }
}
