//! Strings, counters and expiry, command by command, with the replies and
//! error texts of Redis 7 (from its documentation and `t_string.c` /
//! `expire.c`; checked by hand against redis-server 7.0).

use crate::common;

use bytes::Bytes;
use common::*;
use kv::{
    CmdError, ExpireCond, Expiry, GetExTtl, Op, Reply, SetCond, SetTtl, StateMachine, TtlQuery,
};

impl T {
    fn wait(&mut self, ms: u64) {
        self.h.now_ms += ms;
        self.h.tick().unwrap();
    }

    fn get(&mut self, k: &str) -> Reply {
        self.run(Op::Get { key: b(k) })
    }

    fn ttl(&mut self, k: &str, query: TtlQuery) -> Reply {
        self.run(Op::Ttl { key: b(k), query })
    }
}

fn set(k: &str, v: &str, cond: SetCond, ttl: SetTtl, get: bool) -> Op {
    Op::Set {
        key: b(k),
        value: b(v),
        cond,
        ttl,
        get,
    }
}

fn val(s: &str) -> Reply {
    Reply::Value(Some(b(s)))
}

fn incr(k: &str, by: i64) -> Op {
    Op::IncrBy { key: b(k), by }
}

#[test]
fn error_texts_are_redis_7s() {
    let texts = [
        (
            CmdError::WrongType,
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            CmdError::NotInteger,
            "ERR value is not an integer or out of range",
        ),
        (
            CmdError::Overflow,
            "ERR increment or decrement would overflow",
        ),
        (CmdError::NotFloat, "ERR value is not a valid float"),
        (
            CmdError::NanOrInfinity,
            "ERR increment would produce NaN or Infinity",
        ),
        (
            CmdError::StringTooLong,
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ),
        (
            CmdError::CrossSlot,
            "CROSSSLOT Keys in request don't hash to the same slot",
        ),
    ];
    for (e, text) in texts {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn set_conditions_and_get() {
    let mut t = T::new();
    use SetCond::*;
    let clear = SetTtl::Clear;
    assert_eq!(
        t.run(set("k", "1", IfExists, clear, false)),
        Reply::Value(None)
    );
    assert_eq!(t.get("k"), Reply::Value(None));
    assert_eq!(t.run(set("k", "1", IfMissing, clear, false)), Reply::Done);
    assert_eq!(
        t.run(set("k", "2", IfMissing, clear, false)),
        Reply::Value(None)
    );
    // NX GET on an existing key: the old value, and nothing set.
    assert_eq!(t.run(set("k", "2", IfMissing, clear, true)), val("1"));
    assert_eq!(t.get("k"), val("1"));
    assert_eq!(t.run(set("k", "3", IfExists, clear, true)), val("1"));
    assert_eq!(
        t.run(set("new", "x", Always, clear, true)),
        Reply::Value(None)
    );
    assert_eq!(t.get("k"), val("3"));
}

#[test]
fn counters() {
    let mut t = T::new();
    assert_eq!(t.run(incr("n", 1)), Reply::Int(1));
    assert_eq!(t.run(incr("n", -11)), Reply::Int(-10));
    assert_eq!(t.get("n"), val("-10"));
    t.run(Op::Put {
        key: b("n"),
        value: b("9223372036854775806"),
    });
    assert_eq!(t.run(incr("n", 1)), Reply::Int(i64::MAX));
    assert_eq!(t.run(incr("n", 1)), Reply::Error(CmdError::Overflow));
    assert_eq!(t.get("n"), val("9223372036854775807"));
    for bad in ["abc", "01", "+1", " 1", "1.0", ""] {
        t.run(Op::Put {
            key: b("s"),
            value: b(bad),
        });
        assert_eq!(
            t.run(incr("s", 1)),
            Reply::Error(CmdError::NotInteger),
            "{bad:?}"
        );
    }
}

/// A retried INCR (same session and seq) is answered from the session's
/// cache: the counter moves once.
#[test]
fn a_retried_incr_counts_once() {
    let mut t = T::new();
    let c = t.client;
    assert_eq!(t.h.request(c, 1, incr("n", 5)), Ok(Reply::Int(5)));
    assert_eq!(t.h.request(c, 1, incr("n", 5)), Ok(Reply::Int(5)));
    assert_eq!(t.h.request(c, 2, incr("n", 5)), Ok(Reply::Int(10)));
    assert_eq!(t.h.sm.get(b"n"), Some(b("10")));
}

#[test]
fn incrbyfloat_as_in_redis_docs() {
    let mut t = T::new();
    let by = |k: &str, x: &str| Op::IncrByFloat {
        key: b(k),
        by: b(x),
    };
    t.run(Op::Put {
        key: b("mykey"),
        value: b("10.50"),
    });
    assert_eq!(t.run(by("mykey", "0.1")), val("10.6"));
    assert_eq!(t.run(by("mykey", "-5")), val("5.6"));
    t.run(Op::Put {
        key: b("mykey"),
        value: b("5.0e3"),
    });
    assert_eq!(t.run(by("mykey", "2.0e2")), val("5200"));
    assert_eq!(t.run(by("fresh", "3")), val("3"));
    assert_eq!(
        t.run(by("mykey", "inf")),
        Reply::Error(CmdError::NanOrInfinity)
    );
    t.run(Op::Put {
        key: b("s"),
        value: b("abc"),
    });
    assert_eq!(t.run(by("s", "1")), Reply::Error(CmdError::NotFloat));
}

#[test]
fn ranges_as_in_redis_docs() {
    let mut t = T::new();
    t.run(Op::Put {
        key: b("mykey"),
        value: b("This is a string"),
    });
    let range = |s, e| Op::GetRange {
        key: b("mykey"),
        start: s,
        end: e,
    };
    assert_eq!(t.run(range(0, 3)), val("This"));
    assert_eq!(t.run(range(-3, -1)), val("ing"));
    assert_eq!(t.run(range(0, -1)), val("This is a string"));
    assert_eq!(t.run(range(10, 100)), val("string"));
    assert_eq!(t.run(range(5, 3)), val(""));
    assert_eq!(t.run(range(-1, -5)), val(""));
    let missing = Op::GetRange {
        key: b("nope"),
        start: 0,
        end: -1,
    };
    assert_eq!(t.run(missing), val(""));

    t.run(Op::Put {
        key: b("key1"),
        value: b("Hello World"),
    });
    let setrange = |k: &str, offset, v: &str| Op::SetRange {
        key: b(k),
        offset,
        value: b(v),
    };
    assert_eq!(t.run(setrange("key1", 6, "Redis")), Reply::Int(11));
    assert_eq!(t.get("key1"), val("Hello Redis"));
    assert_eq!(t.run(setrange("key2", 6, "Redis")), Reply::Int(11));
    assert_eq!(t.get("key2"), val("\0\0\0\0\0\0Redis"));
    // An empty value creates nothing.
    assert_eq!(t.run(setrange("key3", 6, "")), Reply::Int(0));
    assert_eq!(t.get("key3"), Reply::Value(None));
    assert_eq!(
        t.run(setrange("key1", kv::MAX_VALUE_BYTES as u64, "x")),
        Reply::Error(CmdError::StringTooLong)
    );
    assert_eq!(t.run(Op::StrLen { key: b("key1") }), Reply::Int(11));
}

#[test]
fn multi_key_strings() {
    let mut t = T::new();
    let pairs = |p: &[(&str, &str)]| p.iter().map(|(k, v)| (b(k), b(v))).collect::<Vec<_>>();
    assert_eq!(
        t.run(Op::MSet {
            pairs: pairs(&[("a", "1"), ("b", "2")])
        }),
        Reply::Done
    );
    assert_eq!(
        t.run(Op::MGet {
            keys: vec![b("a"), b("nope"), b("b")]
        }),
        Reply::Values(vec![Some(b("1")), None, Some(b("2"))])
    );
    assert_eq!(
        t.run(Op::MSetNx {
            pairs: pairs(&[("c", "3"), ("a", "x")])
        }),
        Reply::Int(0)
    );
    assert_eq!(
        t.get("c"),
        Reply::Value(None),
        "MSETNX sets nothing if one key exists"
    );
    assert_eq!(
        t.run(Op::MSetNx {
            pairs: pairs(&[("c", "3"), ("d", "4")])
        }),
        Reply::Int(1)
    );
    assert_eq!(
        t.run(Op::Del {
            keys: vec![b("a"), b("a"), b("zz"), b("c")]
        }),
        Reply::Int(2)
    );
    assert_eq!(
        t.run(Op::Exists {
            keys: vec![b("b"), b("b"), b("a")]
        }),
        Reply::Int(2)
    );
    assert_eq!(t.run(Op::GetDel { key: b("b") }), val("2"));
    assert_eq!(t.run(Op::GetDel { key: b("b") }), Reply::Value(None));
}

#[test]
fn ttls_follow_log_time() {
    let mut t = T::new();
    let ex = |ms| SetTtl::Expire(Expiry::InMs(ms));
    t.run(set("k", "v", SetCond::Always, ex(10_000), false));
    assert_eq!(t.ttl("k", TtlQuery::Seconds), Reply::Int(10));
    t.wait(2_400);
    assert_eq!(
        t.ttl("k", TtlQuery::Seconds),
        Reply::Int(8),
        "7.6 s rounds to 8"
    );
    assert_eq!(t.ttl("k", TtlQuery::Millis), Reply::Int(7_600));
    let at = t.h.now_ms + 7_600;
    assert_eq!(t.ttl("k", TtlQuery::AtMillis), Reply::Int(at as i64));
    assert_eq!(t.ttl("nope", TtlQuery::Millis), Reply::Int(-2));
    t.run(Op::Put {
        key: b("p"),
        value: b("v"),
    });
    assert_eq!(t.ttl("p", TtlQuery::Millis), Reply::Int(-1));
    // APPEND and INCR keep the TTL; plain SET drops it; KEEPTTL keeps it.
    t.run(Op::Append {
        key: b("k"),
        value: b("w"),
    });
    assert!(matches!(t.ttl("k", TtlQuery::Millis), Reply::Int(n) if n > 0));
    t.run(set("k", "v2", SetCond::Always, SetTtl::Keep, false));
    assert!(matches!(t.ttl("k", TtlQuery::Millis), Reply::Int(n) if n > 0));
    t.run(Op::Put {
        key: b("k"),
        value: b("v3"),
    });
    assert_eq!(t.ttl("k", TtlQuery::Millis), Reply::Int(-1));
    // Expiry: invisible from the first entry at or after the instant.
    t.run(set("e", "v", SetCond::Always, ex(100), false));
    t.wait(99);
    assert_eq!(t.get("e"), val("v"));
    t.wait(1);
    assert_eq!(t.get("e"), Reply::Value(None));
    assert_eq!(t.run(Op::Exists { keys: vec![b("e")] }), Reply::Int(0));
    assert_eq!(t.ttl("e", TtlQuery::Millis), Reply::Int(-2));
    assert_eq!(
        t.h.sm.get(b"e"),
        None,
        "ReadIndex reads judge expiry by log time too"
    );
    // A time already past deletes at once (SET ... PXAT past, EXPIRE -1).
    let past = SetTtl::Expire(Expiry::AtMs(1));
    assert_eq!(
        t.run(set("gone", "v", SetCond::Always, past, false)),
        Reply::Done
    );
    assert_eq!(t.get("gone"), Reply::Value(None));
}

#[test]
fn expire_conditions() {
    let mut t = T::new();
    t.run(Op::Put {
        key: b("k"),
        value: b("v"),
    });
    let expire = |ms, cond| Op::Expire {
        key: b("k"),
        at: Expiry::InMs(ms),
        cond,
    };
    assert_eq!(t.run(expire(1000, ExpireCond::IfSome)), Reply::Int(0));
    assert_eq!(
        t.run(expire(1000, ExpireCond::IfGreater)),
        Reply::Int(0),
        "no TTL is infinite"
    );
    assert_eq!(t.run(expire(5000, ExpireCond::IfLess)), Reply::Int(1));
    assert_eq!(t.run(expire(1000, ExpireCond::IfNone)), Reply::Int(0));
    assert_eq!(t.run(expire(9000, ExpireCond::IfGreater)), Reply::Int(1));
    assert_eq!(t.run(expire(9500, ExpireCond::IfLess)), Reply::Int(0));
    assert_eq!(
        t.run(expire(2000, ExpireCond::IfSomeAndLess)),
        Reply::Int(1)
    );
    assert_eq!(t.run(Op::Persist { key: b("k") }), Reply::Int(1));
    assert_eq!(t.run(Op::Persist { key: b("k") }), Reply::Int(0));
    assert_eq!(t.run(expire(-1, ExpireCond::Always)), Reply::Int(1));
    assert_eq!(t.get("k"), Reply::Value(None));
    assert_eq!(
        t.run(expire(10, ExpireCond::Always)),
        Reply::Int(0),
        "no such key"
    );
    // GETEX sets, persists, or (in the past) deletes.
    t.run(Op::Put {
        key: b("g"),
        value: b("v"),
    });
    let getex = |ttl| Op::GetEx { key: b("g"), ttl };
    assert_eq!(t.run(getex(GetExTtl::Expire(Expiry::InMs(500)))), val("v"));
    assert_eq!(t.ttl("g", TtlQuery::Millis), Reply::Int(500));
    assert_eq!(t.run(getex(GetExTtl::Persist)), val("v"));
    assert_eq!(t.ttl("g", TtlQuery::Millis), Reply::Int(-1));
    assert_eq!(t.run(getex(GetExTtl::Expire(Expiry::AtMs(5)))), val("v"));
    assert_eq!(t.get("g"), Reply::Value(None));
}

/// Dead keys are removed by applied entries (active expiry), at most
/// `PURGE_PER_ENTRY` per entry, without a client touching them; expiries
/// survive a snapshot.
#[test]
fn dead_keys_are_purged_and_expiry_survives_snapshots() {
    let mut t = T::new();
    let n = kv::PURGE_PER_ENTRY + 10;
    for i in 0..n {
        let op = set(
            &format!("k{i}"),
            "v",
            SetCond::Always,
            SetTtl::Expire(Expiry::InMs(50)),
            false,
        );
        t.run(op);
    }
    t.run(set(
        "stays",
        "v",
        SetCond::Always,
        SetTtl::Expire(Expiry::InMs(60_000)),
        false,
    ));
    let restored = StateMachine::restore(&t.h.sm.snapshot()).unwrap();
    assert_eq!(restored, t.h.sm);
    assert_eq!(restored.expiring_len(), n + 1);
    assert!(!t.h.sm.purge_due(t.h.now_ms));
    assert!(
        t.h.sm.purge_due(t.h.now_ms + 50),
        "a leader would propose a tick"
    );
    t.wait(50);
    assert_eq!(t.h.sm.len(), 11, "one entry purged PURGE_PER_ENTRY keys");
    t.wait(1);
    assert_eq!(t.h.sm.len(), 1);
    assert!(!t.h.sm.purge_due(t.h.now_ms));
    assert_eq!(t.h.sm.get(b"stays"), Some(Bytes::from("v")));

    // INFO's expired_keys: every purged key counted once; a statistic of
    // this process, kept across a snapshot install and not part of equality.
    use rsm::StateMachine as _;
    assert_eq!(t.h.sm.expired_count(), n as u64);
    let snapshot = t.h.sm.snapshot();
    let mut installed = t.h.sm.clone();
    rsm::StateMachine::restore(&mut installed, &snapshot).unwrap();
    assert_eq!(installed.expired_count(), n as u64);
    let fresh = StateMachine::restore(&snapshot).unwrap();
    assert_eq!(fresh.expired_count(), 0, "never written to a snapshot");
    assert_eq!(fresh, t.h.sm);
}
