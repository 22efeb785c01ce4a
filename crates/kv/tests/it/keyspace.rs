//! The key space as a whole: `TYPE`, `RENAME`, `KEYS`, `SCAN` (a cursor
//! that survives writes, snapshots and another replica), `RANDOMKEY`,
//! `DBSIZE`, `FLUSHALL`, with Redis 7's replies.

use crate::common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::*;
use kv::{CmdError, Expiry, Op, Reply, SetCond, SetTtl, StateMachine};

impl T {
    fn put(&mut self, k: &str, v: &str) {
        self.run(Op::Put {
            key: b(k),
            value: b(v),
        });
    }

    fn scan(&mut self, cursor: u64, pattern: Option<&str>, count: u64) -> (u64, Vec<Bytes>) {
        let op = Op::Scan {
            cursor,
            pattern: pattern.map(b),
            count,
            kind: None,
        };
        match self.run(op) {
            Reply::Scan { cursor, keys } => (cursor, keys),
            other => panic!("SCAN answered {other:?}"),
        }
    }
}

#[test]
fn type_rename_and_errors() {
    let mut t = T::new();
    t.put("a", "1");
    assert_eq!(
        t.run(Op::Type { key: b("a") }),
        Reply::Status("string".into())
    );
    assert_eq!(
        t.run(Op::Type { key: b("zz") }),
        Reply::Status("none".into())
    );
    let rename = |from: &str, to: &str, nx| Op::Rename {
        from: b(from),
        to: b(to),
        nx,
    };
    assert_eq!(
        t.run(rename("zz", "b", false)),
        Reply::Error(CmdError::NoSuchKey)
    );
    assert_eq!(CmdError::NoSuchKey.to_string(), "ERR no such key");
    t.run(Op::Expire {
        key: b("a"),
        at: Expiry::InMs(5_000),
        cond: kv::ExpireCond::Always,
    });
    assert_eq!(t.run(rename("a", "b", false)), Reply::Done);
    assert_eq!(t.run(Op::Get { key: b("a") }), Reply::Value(None));
    assert!(
        matches!(
            t.run(Op::Ttl {
                key: b("b"),
                query: kv::TtlQuery::Millis
            }),
            Reply::Int(5_000)
        ),
        "the TTL moves with the value"
    );
    t.put("c", "3");
    assert_eq!(t.run(rename("b", "c", true)), Reply::Int(0));
    assert_eq!(t.run(rename("b", "b", true)), Reply::Int(0));
    assert_eq!(t.run(rename("b", "b", false)), Reply::Done);
    assert_eq!(t.run(rename("b", "d", true)), Reply::Int(1));
    assert_eq!(t.run(Op::Get { key: b("d") }), Reply::Value(Some(b("1"))));
}

#[test]
fn keys_dbsize_randomkey_and_flush() {
    let mut t = T::new();
    for k in ["hello", "hallo", "hxllo", "other"] {
        t.put(k, "v");
    }
    t.run(Op::Set {
        key: b("dying"),
        value: b("v"),
        cond: SetCond::Always,
        ttl: SetTtl::Expire(Expiry::InMs(10)),
        get: false,
    });
    assert_eq!(t.run(Op::DbSize), Reply::Int(5));
    assert_eq!(
        t.run(Op::Keys {
            pattern: b("h[ae]llo")
        }),
        Reply::Array(vec![b("hallo"), b("hello")])
    );
    t.h.now_ms += 10;
    assert_eq!(
        t.run(Op::DbSize),
        Reply::Int(4),
        "the dead key is not counted"
    );
    assert_eq!(t.run(Op::Keys { pattern: b("*ing") }), Reply::Array(vec![]));
    let Reply::Value(Some(k)) = t.run(Op::RandomKey) else {
        panic!("no random key")
    };
    assert!(["hello", "hallo", "hxllo", "other"].contains(&std::str::from_utf8(&k).unwrap()));
    assert_eq!(t.run(Op::FlushAll), Reply::Done);
    assert_eq!(t.run(Op::DbSize), Reply::Int(0));
    assert_eq!(t.run(Op::RandomKey), Reply::Value(None));
}

/// A full SCAN returns every key present for the whole scan at least once,
/// although keys are added and deleted between the calls, the cursor is
/// carried to a replica restored from a snapshot halfway, and COUNT is
/// small.
#[test]
fn scan_returns_every_key_present_throughout() {
    let mut t = T::new();
    for i in 0..200 {
        t.put(&format!("stay:{i}"), "v");
    }
    for i in 0..50 {
        t.put(&format!("gone:{i}"), "v");
    }
    let (mut cursor, mut seen, mut calls) = (0, BTreeSet::new(), 0);
    loop {
        let (next, keys) = t.scan(cursor, Some("stay:*"), 7);
        seen.extend(keys);
        calls += 1;
        // Churn between calls: new keys, deleted keys.
        t.put(&format!("new:{calls}"), "v");
        t.run(Op::Del {
            keys: vec![b(&format!("gone:{calls}"))],
        });
        if calls == 10 {
            t.h.sm = StateMachine::restore(&t.h.sm.snapshot()).unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let want: BTreeSet<Bytes> = (0..200).map(|i| b(&format!("stay:{i}"))).collect();
    assert_eq!(seen, want);
    assert!(
        calls > 200 / 7 / 2,
        "COUNT bounds the work per call ({calls} calls)"
    );
    let (_, typed) = {
        let op = Op::Scan {
            cursor: 0,
            pattern: None,
            count: 1_000,
            kind: Some(b("hash")),
        };
        match t.run(op) {
            Reply::Scan { cursor, keys } => (cursor, keys),
            other => panic!("{other:?}"),
        }
    };
    assert!(typed.is_empty(), "TYPE hash: no hashes here");
}
