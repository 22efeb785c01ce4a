//! Hashes, command by command, with Redis 7's replies and errors
//! (`WRONGTYPE` both ways, `hash value is not an integer`), an emptied hash
//! deleted, the TTL kept across field writes.

use crate::common;

use common::*;
use kv::{CmdError, ExpireCond, Expiry, Op, Reply, StateMachine, TtlQuery};

impl T {
    fn hset(&mut self, k: &str, pairs: &[(&str, &str)]) -> Reply {
        let pairs = pairs.iter().map(|(f, v)| (b(f), b(v))).collect();
        self.run(Op::HSet { key: b(k), pairs })
    }
}

#[test]
fn hash_commands_as_in_redis_docs() {
    let mut t = T::new();
    assert_eq!(
        t.hset("myhash", &[("field1", "Hello"), ("field2", "World")]),
        Reply::Int(2)
    );
    assert_eq!(
        t.hset("myhash", &[("field1", "Hi"), ("field3", "!")]),
        Reply::Int(1)
    );
    let hget = |f: &str| Op::HGet {
        key: b("myhash"),
        field: b(f),
    };
    assert_eq!(t.run(hget("field1")), Reply::Value(Some(b("Hi"))));
    assert_eq!(t.run(hget("nofield")), Reply::Value(None));
    assert_eq!(
        t.run(Op::HMGet {
            key: b("myhash"),
            fields: vec![b("field2"), b("nofield")]
        }),
        Reply::Values(vec![Some(b("World")), None])
    );
    assert_eq!(t.run(Op::HLen { key: b("myhash") }), Reply::Int(3));
    assert_eq!(
        t.run(Op::HGetAll { key: b("myhash") }),
        Reply::Map(vec![
            (b("field1"), b("Hi")),
            (b("field2"), b("World")),
            (b("field3"), b("!"))
        ])
    );
    assert_eq!(
        t.run(Op::HKeys { key: b("myhash") }),
        Reply::Array(vec![b("field1"), b("field2"), b("field3")])
    );
    assert_eq!(
        t.run(Op::HStrLen {
            key: b("myhash"),
            field: b("field2")
        }),
        Reply::Int(5)
    );
    let setnx = |f: &str| Op::HSetNx {
        key: b("myhash"),
        field: b(f),
        value: b("x"),
    };
    assert_eq!(t.run(setnx("field1")), Reply::Int(0));
    assert_eq!(t.run(setnx("field4")), Reply::Int(1));
    assert_eq!(
        t.run(Op::Type { key: b("myhash") }),
        Reply::Status("hash".into())
    );
    // HDEL of every field deletes the key.
    let fields = ["field1", "field2", "field3", "field4", "nope"]
        .map(b)
        .to_vec();
    assert_eq!(
        t.run(Op::HDel {
            key: b("myhash"),
            fields
        }),
        Reply::Int(4)
    );
    assert_eq!(
        t.run(Op::Exists {
            keys: vec![b("myhash")]
        }),
        Reply::Int(0)
    );
    assert_eq!(t.run(Op::HLen { key: b("myhash") }), Reply::Int(0));
}

#[test]
fn counters_in_hashes() {
    let mut t = T::new();
    let incr = |f: &str, by| Op::HIncrBy {
        key: b("h"),
        field: b(f),
        by,
    };
    assert_eq!(t.run(incr("n", 5)), Reply::Int(5));
    assert_eq!(t.run(incr("n", -6)), Reply::Int(-1));
    t.hset("h", &[("s", "abc"), ("big", "9223372036854775807")]);
    assert_eq!(t.run(incr("s", 1)), Reply::Error(CmdError::HashNotInteger));
    assert_eq!(t.run(incr("big", 1)), Reply::Error(CmdError::Overflow));
    let float = |f: &str, by: &str| Op::HIncrByFloat {
        key: b("h"),
        field: b(f),
        by: b(by),
    };
    t.hset("h", &[("f", "10.50")]);
    assert_eq!(t.run(float("f", "0.1")), Reply::Value(Some(b("10.6"))));
    assert_eq!(t.run(float("s", "1")), Reply::Error(CmdError::HashNotFloat));
    assert_eq!(
        CmdError::HashNotInteger.to_string(),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        CmdError::HashNotFloat.to_string(),
        "ERR hash value is not a float"
    );
}

#[test]
fn wrongtype_both_ways_and_ttl_kept() {
    let mut t = T::new();
    t.run(Op::Put {
        key: b("s"),
        value: b("v"),
    });
    t.hset("h", &[("f", "v")]);
    let wrong = Reply::Error(CmdError::WrongType);
    assert_eq!(t.hset("s", &[("f", "v")]), wrong);
    assert_eq!(
        t.run(Op::HGet {
            key: b("s"),
            field: b("f")
        }),
        wrong
    );
    assert_eq!(t.run(Op::Get { key: b("h") }), wrong);
    assert_eq!(t.run(Op::IncrBy { key: b("h"), by: 1 }), wrong);
    assert_eq!(
        t.run(Op::Append {
            key: b("h"),
            value: b("x")
        }),
        wrong
    );
    assert_eq!(
        t.h.sm.get(b"h"),
        None,
        "a ReadIndex GET of a hash reads no string"
    );
    // SET overwrites any type; SET ... GET on a hash is WRONGTYPE.
    assert_eq!(
        t.run(Op::Set {
            key: b("h"),
            value: b("v"),
            cond: kv::SetCond::Always,
            ttl: kv::SetTtl::Clear,
            get: true,
        }),
        wrong
    );
    t.run(Op::Expire {
        key: b("h"),
        at: Expiry::InMs(1_000),
        cond: ExpireCond::Always,
    });
    t.hset("h", &[("g", "w")]);
    assert_eq!(
        t.run(Op::Ttl {
            key: b("h"),
            query: TtlQuery::Millis
        }),
        Reply::Int(1_000),
        "a field write keeps the key's TTL"
    );
    let restored = StateMachine::restore(&t.h.sm.snapshot()).unwrap();
    assert_eq!(restored, t.h.sm, "hashes survive a snapshot");
    assert_eq!(
        t.run(Op::HScan {
            key: b("h"),
            pattern: Some(b("g*"))
        }),
        Reply::Scan {
            cursor: 0,
            keys: vec![b("g"), b("w")]
        }
    );
}
