//! Strings, counters, expiry and renames checked against a dumb model (STYLE.md
//! habit 9): a `BTreeMap` of key -> (value, expiry instant) and a clock,
//! written from Redis's documentation independently of `kv::ops`. Random
//! command sequences with time passing run through the real state machine
//! (entries, sessions, purging, snapshots) and must answer exactly as the
//! model does, and hold the same live data afterwards.

use crate::common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::Harness;
use kv::{
    CmdError, Config, ExpireCond, Expiry, Op, Reply, SetCond, SetTtl, StateMachine, TtlQuery,
};
use proptest::prelude::*;

/// key -> (value, expires at ms)
type Model = BTreeMap<Bytes, (Bytes, Option<u64>)>;

fn key(i: u8) -> Bytes {
    Bytes::from(vec![b'k', b'0' + i])
}

fn op() -> impl Strategy<Value = Op> {
    let k = (0u8..4).prop_map(key);
    let v = prop_oneof![
        (-3i64..30).prop_map(|n| Bytes::from(n.to_string())),
        Just(Bytes::from("x")),
        Just(Bytes::from("9223372036854775807")),
    ];
    let expiry = prop_oneof![
        (-50i64..300).prop_map(Expiry::InMs),
        (900i64..1400).prop_map(Expiry::AtMs),
    ];
    let cond = prop_oneof![
        Just(SetCond::Always),
        Just(SetCond::IfMissing),
        Just(SetCond::IfExists)
    ];
    let ttl = prop_oneof![
        Just(SetTtl::Clear),
        Just(SetTtl::Keep),
        expiry.clone().prop_map(SetTtl::Expire)
    ];
    let econd = prop_oneof![
        Just(ExpireCond::Always),
        Just(ExpireCond::IfNone),
        Just(ExpireCond::IfSome),
        Just(ExpireCond::IfGreater),
        Just(ExpireCond::IfLess),
        Just(ExpireCond::IfSomeAndLess),
    ];
    let pairs = proptest::collection::vec((k.clone(), v.clone()), 1..3);
    prop_oneof![
        k.clone().prop_map(|key| Op::Get { key }),
        (k.clone(), v.clone()).prop_map(|(key, value)| Op::Put { key, value }),
        (k.clone(), v.clone(), cond, ttl, any::<bool>()).prop_map(
            |(key, value, cond, ttl, get)| {
                Op::Set {
                    key,
                    value,
                    cond,
                    ttl,
                    get,
                }
            }
        ),
        k.clone().prop_map(|key| Op::GetDel { key }),
        (k.clone(), -5i64..5).prop_map(|(key, by)| Op::IncrBy { key, by }),
        (k.clone(), v.clone()).prop_map(|(key, value)| Op::Append { key, value }),
        k.clone().prop_map(|key| Op::StrLen { key }),
        proptest::collection::vec(k.clone(), 1..3).prop_map(|keys| Op::Del { keys }),
        proptest::collection::vec(k.clone(), 1..3).prop_map(|keys| Op::Exists { keys }),
        proptest::collection::vec(k.clone(), 1..3).prop_map(|keys| Op::MGet { keys }),
        pairs.clone().prop_map(|pairs| Op::MSet { pairs }),
        pairs.prop_map(|pairs| Op::MSetNx { pairs }),
        (k.clone(), expiry, econd).prop_map(|(key, at, cond)| Op::Expire { key, at, cond }),
        k.clone().prop_map(|key| Op::Persist { key }),
        k.clone().prop_map(|key| Op::Ttl {
            key,
            query: TtlQuery::Millis
        }),
        k.clone().prop_map(|key| Op::Type { key }),
        (k.clone(), k, any::<bool>()).prop_map(|(from, to, nx)| Op::Rename { from, to, nx }),
        Just(Op::DbSize),
    ]
}

/// The live entry of `key` at `now`.
fn live(m: &Model, key: &Bytes, now: u64) -> Option<(Bytes, Option<u64>)> {
    m.get(key)
        .filter(|(_, t)| t.is_none_or(|t| now < t))
        .cloned()
}

fn instant(e: Expiry, now: u64) -> i64 {
    match e {
        Expiry::InMs(ms) => now as i64 + ms,
        Expiry::AtMs(at) => at,
    }
}

/// Stores (value, expiry), or deletes when the expiry is not in the future.
fn store(m: &mut Model, key: &Bytes, value: Bytes, at: Option<i64>, now: u64) {
    match at {
        Some(t) if t <= now as i64 => drop(m.remove(key)),
        _ => drop(m.insert(key.clone(), (value, at.map(|t| t as u64)))),
    }
}

/// Redis's documented meaning of each op.
fn model(m: &mut Model, op: &Op, now: u64) -> Reply {
    // Redis reads an integer only in canonical form: no '+', no leading zero.
    let int = |v: &Bytes| {
        let s = std::str::from_utf8(v).ok()?;
        let digits = s.strip_prefix('-').unwrap_or(s);
        let canonical = s == "0" || (!digits.starts_with('0') && !digits.starts_with('+'));
        canonical.then(|| s.parse::<i64>().ok()).flatten()
    };
    match op {
        Op::Get { key } => Reply::Value(live(m, key, now).map(|e| e.0)),
        Op::Put { key, value } => {
            store(m, key, value.clone(), None, now);
            Reply::Done
        }
        Op::Set {
            key,
            value,
            cond,
            ttl,
            get,
        } => {
            let old = live(m, key, now);
            let go = match cond {
                SetCond::Always => true,
                SetCond::IfMissing => old.is_none(),
                SetCond::IfExists => old.is_some(),
            };
            if go {
                let at = match ttl {
                    SetTtl::Clear => None,
                    SetTtl::Keep => old.as_ref().and_then(|e| e.1).map(|t| t as i64),
                    SetTtl::Expire(e) => Some(instant(*e, now)),
                };
                store(m, key, value.clone(), at, now);
            }
            match (get, go) {
                (true, _) => Reply::Value(old.map(|e| e.0)),
                (false, true) => Reply::Done,
                (false, false) => Reply::Value(None),
            }
        }
        Op::GetDel { key } => {
            let old = live(m, key, now);
            m.remove(key);
            Reply::Value(old.map(|e| e.0))
        }
        Op::IncrBy { key, by } => {
            let (old, at) = live(m, key, now).unwrap_or((Bytes::from("0"), None));
            let Some(n) = int(&old) else {
                return Reply::Error(CmdError::NotInteger);
            };
            let Some(new) = n.checked_add(*by) else {
                return Reply::Error(CmdError::Overflow);
            };
            store(
                m,
                key,
                Bytes::from(new.to_string()),
                at.map(|t| t as i64),
                now,
            );
            Reply::Int(new)
        }
        Op::Append { key, value } => {
            let (old, at) = live(m, key, now).unwrap_or_default();
            let new = Bytes::from([old.as_ref(), value.as_ref()].concat());
            let len = new.len() as u64;
            store(m, key, new, at.map(|t| t as i64), now);
            Reply::Length(len)
        }
        Op::StrLen { key } => Reply::Int(live(m, key, now).map_or(0, |e| e.0.len() as i64)),
        Op::Del { keys } => {
            let n = keys
                .iter()
                .filter(|k| live(m, k, now).is_some() && m.remove(*k).is_some());
            Reply::Int(n.count() as i64)
        }
        Op::Exists { keys } => {
            Reply::Int(keys.iter().filter(|k| live(m, k, now).is_some()).count() as i64)
        }
        Op::MGet { keys } => {
            Reply::Values(keys.iter().map(|k| live(m, k, now).map(|e| e.0)).collect())
        }
        Op::MSet { pairs } => {
            for (k, v) in pairs {
                store(m, k, v.clone(), None, now);
            }
            Reply::Done
        }
        Op::MSetNx { pairs } => {
            if pairs.iter().any(|(k, _)| live(m, k, now).is_some()) {
                return Reply::Int(0);
            }
            for (k, v) in pairs {
                store(m, k, v.clone(), None, now);
            }
            Reply::Int(1)
        }
        Op::Expire { key, at, cond } => {
            let Some((value, current)) = live(m, key, now) else {
                return Reply::Int(0);
            };
            let new = instant(*at, now);
            let cur = current.map(|t| t as i64);
            let ok = match cond {
                ExpireCond::Always => true,
                ExpireCond::IfNone => cur.is_none(),
                ExpireCond::IfSome => cur.is_some(),
                ExpireCond::IfGreater => cur.is_some_and(|c| new > c),
                ExpireCond::IfLess => cur.is_none_or(|c| new < c),
                ExpireCond::IfSomeAndLess => cur.is_some_and(|c| new < c),
            };
            if ok {
                store(m, key, value, Some(new), now);
            }
            Reply::Int(i64::from(ok))
        }
        Op::Persist { key } => match live(m, key, now) {
            Some((value, Some(_))) => {
                store(m, key, value, None, now);
                Reply::Int(1)
            }
            _ => Reply::Int(0),
        },
        Op::Ttl { key, .. } => match live(m, key, now) {
            None => Reply::Int(-2),
            Some((_, None)) => Reply::Int(-1),
            Some((_, Some(t))) => Reply::Int((t - now) as i64),
        },
        Op::Type { key } => Reply::Status(
            if live(m, key, now).is_some() {
                "string"
            } else {
                "none"
            }
            .to_string(),
        ),
        Op::Rename { from, to, nx } => {
            let Some(entry) = live(m, from, now) else {
                return Reply::Error(CmdError::NoSuchKey);
            };
            if *nx && live(m, to, now).is_some() {
                return Reply::Int(0);
            }
            m.remove(from);
            m.insert(to.clone(), entry);
            match nx {
                true => Reply::Int(i64::from(from != to)),
                false => Reply::Done,
            }
        }
        Op::DbSize => Reply::Int(m.keys().filter(|k| live(m, k, now).is_some()).count() as i64),
        other => unreachable!("not generated: {other:?}"),
    }
}

#[derive(Clone, Debug)]
enum Step {
    Op(Op),
    /// Let this much leader time pass (then a tick entry).
    Wait(u64),
    /// Replace the replica by a restore of its own snapshot.
    Restore,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => op().prop_map(Step::Op),
        2 => (1u64..200).prop_map(Step::Wait),
        1 => Just(Step::Restore),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn strings_and_expiry_match_the_model(steps in proptest::collection::vec(step(), 1..80)) {
        let mut h = Harness::new(Config::default());
        let client = h.register();
        let mut m = Model::new();
        let mut seq = 0;
        for step in steps {
            match step {
                Step::Op(op) => {
                    seq += 1;
                    h.now_ms += 1;
                    let want = model(&mut m, &op, h.now_ms);
                    let got = h.request(client, seq, op.clone());
                    prop_assert_eq!(got, Ok(want), "{:?} at {}", op, h.now_ms);
                }
                Step::Wait(ms) => {
                    h.now_ms += ms;
                    h.tick().unwrap();
                }
                Step::Restore => {
                    h.sm = StateMachine::restore(&h.sm.snapshot()).expect("own snapshot");
                }
            }
            h.sm.check_invariants();
        }
        let now = h.sm.log_time_ms();
        let held: Vec<(Bytes, Bytes)> = h
            .sm
            .iter()
            .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
            .collect();
        let want: Vec<(Bytes, Bytes)> = m
            .iter()
            .filter(|(_, (_, t))| t.is_none_or(|t| now < t))
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(held, want);
    }
}
