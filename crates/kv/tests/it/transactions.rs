//! `WATCH` versions and `EXEC` blocks: atomic in one entry, aborted (null)
//! when a watched key was written since its `WATCH`, no rollback of an op
//! that fails inside, and exactly once on a retry.

use crate::common;

use bytes::Bytes;
use common::*;
use kv::{CmdError, Config, Expiry, Op, Reply, SetCond, SetTtl};

fn set(k: &str, v: &str) -> Op {
    Op::Put {
        key: b(k),
        value: b(v),
    }
}

fn incr(k: &str) -> Op {
    Op::IncrBy { key: b(k), by: 1 }
}

fn versions(h: &mut Harness, c: u64, seq: u64, keys: &[&str]) -> Vec<(Bytes, u64)> {
    let keys: Vec<Bytes> = keys.iter().map(|k| b(k)).collect();
    match h.request(c, seq, Op::Watch { keys: keys.clone() }) {
        Ok(Reply::Versions(v)) => keys.into_iter().zip(v).collect(),
        other => panic!("WATCH answered {other:?}"),
    }
}

#[test]
fn exec_applies_the_block_and_answers_each_op() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    h.request(c, 1, set("s", "abc")).unwrap();
    let block = Op::Exec {
        ops: vec![incr("n"), incr("s"), incr("n"), Op::Get { key: b("n") }],
        watch: vec![],
    };
    let want = Reply::Multi(Some(vec![
        Reply::Int(1),
        Reply::Error(CmdError::NotInteger),
        Reply::Int(2),
        Reply::Value(Some(b("2"))),
    ]));
    assert_eq!(h.request(c, 2, block.clone()), Ok(want.clone()));
    // A retry of the same seq is the cached answer: the block ran once.
    assert_eq!(h.request(c, 2, block), Ok(want));
    assert_eq!(h.sm.get(b"n"), Some(b("2")));
}

#[test]
fn a_watched_key_written_since_aborts_the_block() {
    let mut h = Harness::new(Config::default());
    let (a, other) = (h.register(), h.register());
    h.request(a, 1, set("k", "1")).unwrap();
    let watched = versions(&mut h, a, 2, &["k", "missing"]);
    assert_eq!(watched[1].1, 0, "a missing key has version 0");
    let block = |watch| Op::Exec {
        ops: vec![set("k", "mine")],
        watch,
    };
    // Unchanged: the block runs.
    assert_eq!(
        h.request(a, 3, block(watched.clone())),
        Ok(Reply::Multi(Some(vec![Reply::Done])))
    );
    // Another client writes k (even the same value): the next block aborts.
    let watched = versions(&mut h, a, 4, &["k"]);
    h.request(other, 1, set("k", "mine")).unwrap();
    assert_eq!(h.request(a, 5, block(watched)), Ok(Reply::Multi(None)));
    // Creating a watched missing key aborts too; so does its expiry.
    let watched = versions(&mut h, a, 6, &["missing"]);
    h.request(other, 2, set("missing", "now")).unwrap();
    assert_eq!(h.request(a, 7, block(watched)), Ok(Reply::Multi(None)));
    h.request(
        other,
        3,
        Op::Set {
            key: b("t"),
            value: b("v"),
            cond: SetCond::Always,
            ttl: SetTtl::Expire(Expiry::InMs(10)),
            get: false,
        },
    )
    .unwrap();
    let watched = versions(&mut h, a, 8, &["t"]);
    h.now_ms += 10;
    assert_eq!(h.request(a, 9, block(watched)), Ok(Reply::Multi(None)));
    assert_eq!(h.sm.get(b"k"), Some(b("mine")));
}
