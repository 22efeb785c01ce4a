//! Redis's string, counter and expiry commands against a real 3-node
//! cluster, over raw RESP: replies and error texts as Redis 7 gives them,
//! expiry decided through the log (a key with a short TTL disappears from
//! every node without a client touching it), and a counter that counts each
//! acknowledged INCR exactly once while its leader is killed.

use crate::common;

use std::time::{Duration, Instant};

use common::{bulk, call, serial, Cluster};
use server::resp::Frame;

const ELECTION: Duration = Duration::from_secs(10);
const FLAGS: &[&str] = &["--request-timeout-ms", "2000"];

fn err(s: &str) -> Option<Frame> {
    Some(Frame::Error(s.into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_counters_and_expiry_answer_as_redis_does() {
    let _g = serial();
    let c = Cluster::start(3, FLAGS);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let f = *[1, 2, 3].iter().find(|&&i| i != leader).unwrap();
    let (le, fe) = (c.endpoint(leader), c.endpoint(f));
    let ok = Some(Frame::Simple("OK".into()));
    let int = |n| Some(Frame::Integer(n));

    assert_eq!(
        call(&fe, &[b"SET", b"k", b"v", b"NX", b"EX", b"100"]).await,
        ok
    );
    assert_eq!(
        call(&fe, &[b"SET", b"k", b"w", b"NX"]).await,
        Some(Frame::Null)
    );
    assert_eq!(
        call(&le, &[b"SET", b"k", b"w", b"XX", b"GET"]).await,
        Some(bulk("v"))
    );
    assert_eq!(
        call(&fe, &[b"TTL", b"k"]).await,
        int(-1),
        "SET without KEEPTTL drops it"
    );
    assert_eq!(call(&fe, &[b"EXPIRE", b"k", b"100", b"NX"]).await, int(1));
    assert_eq!(call(&le, &[b"TTL", b"k"]).await, int(100));
    assert_eq!(call(&fe, &[b"INCR", b"n"]).await, int(1));
    assert_eq!(call(&le, &[b"INCRBY", b"n", b"41"]).await, int(42));
    assert_eq!(call(&fe, &[b"DECRBY", b"n", b"2"]).await, int(40));
    assert_eq!(
        call(&fe, &[b"INCRBYFLOAT", b"n", b"0.5"]).await,
        Some(bulk("40.5"))
    );
    assert_eq!(
        call(&fe, &[b"INCR", b"k"]).await,
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(call(&fe, &[b"MSET", b"a", b"1", b"b", b"2"]).await, ok);
    assert_eq!(
        call(&le, &[b"MGET", b"a", b"nope", b"b"]).await,
        Some(Frame::Array(vec![bulk("1"), Frame::Null, bulk("2")]))
    );
    assert_eq!(call(&fe, &[b"SETRANGE", b"a", b"3", b"xy"]).await, int(5));
    assert_eq!(
        call(&fe, &[b"GETRANGE", b"a", b"0", b"-1"]).await,
        Some(bulk("1\0\0xy"))
    );
    assert_eq!(call(&fe, &[b"STRLEN", b"a"]).await, int(5));
    assert_eq!(call(&fe, &[b"GETDEL", b"b"]).await, Some(bulk("2")));
    assert_eq!(call(&fe, &[b"UNLINK", b"a", b"b"]).await, int(1));
    assert_eq!(
        call(&fe, &[b"SET", b"k", b"v", b"EX", b"0"]).await,
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        call(&fe, &[b"GETSET", b"k"]).await,
        err("ERR wrong number of arguments for 'getset' command")
    );

    // A key with a 300 ms TTL disappears from every node through the log,
    // read by ReadIndex at each, with no client writing meanwhile.
    assert_eq!(
        call(&fe, &[b"SET", b"short", b"v", b"PX", b"300"]).await,
        ok
    );
    assert_eq!(call(&le, &[b"GET", b"short"]).await, Some(bulk("v")));
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in [1, 2, 3] {
        loop {
            let reply = call(&c.endpoint(id), &[b"GET", b"short"]).await;
            if reply == Some(Frame::Null) {
                break;
            }
            assert!(Instant::now() < deadline, "node {id}: still {reply:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(call(&fe, &[b"PTTL", b"short"]).await, int(-2));
}

/// INCRs through a follower while the leader is killed. A node retries a
/// write across the leader change with its session's seq, so the counter's
/// final value is exactly the number of INCRs that took effect: every
/// acknowledged one, plus at most the ones answered `-TIMEOUT` (may or may
/// not have). Acknowledged values strictly increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_counts_each_incr_once_across_a_killed_leader() {
    let _g = serial();
    let mut c = Cluster::start(3, FLAGS);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let f = *[1, 2, 3].iter().find(|&&i| i != leader).unwrap();
    let fe = c.endpoint(f);
    let (mut acked, mut unknown, mut last) = (0i64, 0i64, 0i64);
    let incr = |acked: &mut i64, unknown: &mut i64, last: &mut i64, r: Option<Frame>| match r {
        Some(Frame::Integer(n)) => {
            assert!(n > *last, "INCR answered {n} after {last}");
            *last = n;
            *acked += 1;
        }
        Some(Frame::Error(e)) if e.starts_with("TIMEOUT") => *unknown += 1,
        Some(Frame::Error(e)) if e.starts_with("CLUSTERDOWN") => {}
        other => panic!("INCR answered {other:?}"),
    };
    for _ in 0..50 {
        let r = call(&fe, &[b"INCR", b"counter"]).await;
        incr(&mut acked, &mut unknown, &mut last, r);
    }
    c.kill(leader);
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked < 100 {
        assert!(Instant::now() < deadline, "only {acked} INCRs acknowledged");
        let r = call(&fe, &[b"INCR", b"counter"]).await;
        incr(&mut acked, &mut unknown, &mut last, r);
    }
    c.wait_leader(&rest, ELECTION).await;
    let Some(Frame::Bulk(v)) = call(&fe, &[b"GET", b"counter"]).await else {
        panic!("no counter")
    };
    let value: i64 = String::from_utf8_lossy(&v).parse().unwrap();
    assert!(
        value >= acked && value <= acked + unknown,
        "counter {value}, {acked} acknowledged, {unknown} unknown"
    );
    assert!(value >= last, "final {value} below an acknowledged {last}");
}

/// MULTI/EXEC through a follower: queued replies, one atomic block, a
/// WATCHed key written by another client makes EXEC answer null; hashes
/// and WRONGTYPE as Redis answers them; SCAN visits every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_hashes_and_scan_answer_as_redis_does() {
    use server::client::Client;
    let _g = serial();
    let c = Cluster::start(3, FLAGS);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let f = *[1, 2, 3].iter().find(|&&i| i != leader).unwrap();
    let fe = c.endpoint(f);
    let ok = Frame::Simple("OK".into());
    let queued = Frame::Simple("QUEUED".into());
    let mut a = Client::connect(&fe).await.unwrap();
    let q = |args: &'static [&'static str]| {
        let args: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        args
    };
    assert_eq!(a.call(&q(&["MULTI"])).await.unwrap(), ok);
    assert_eq!(a.call(&q(&["INCR", "n"])).await.unwrap(), queued);
    assert_eq!(
        a.call(&q(&["HSET", "h", "f", "1", "g", "2"]))
            .await
            .unwrap(),
        queued
    );
    assert_eq!(
        a.call(&q(&["HINCRBY", "h", "f", "41"])).await.unwrap(),
        queued
    );
    assert_eq!(
        a.call(&q(&["EXEC"])).await.unwrap(),
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Integer(2),
            Frame::Integer(42)
        ])
    );
    assert_eq!(
        a.call(&q(&["EXEC"])).await.unwrap(),
        Frame::Error("ERR EXEC without MULTI".into())
    );
    // WATCH, another client writes, EXEC is null and nothing ran.
    assert_eq!(a.call(&q(&["WATCH", "n"])).await.unwrap(), ok);
    assert_eq!(
        call(&c.endpoint(leader), &[b"INCR", b"n"]).await,
        Some(Frame::Integer(2))
    );
    assert_eq!(a.call(&q(&["MULTI"])).await.unwrap(), ok);
    assert_eq!(a.call(&q(&["SET", "n", "100"])).await.unwrap(), queued);
    assert_eq!(
        a.call(&q(&["EXEC"])).await.unwrap(),
        Frame::NullArray,
        "*-1, as Redis"
    );
    assert_eq!(call(&fe, &[b"GET", b"n"]).await, Some(bulk("2")));
    // A refused command dooms the block.
    assert_eq!(a.call(&q(&["MULTI"])).await.unwrap(), ok);
    assert!(matches!(
        a.call(&q(&["INCRBY", "n"])).await.unwrap(),
        Frame::Error(_)
    ));
    assert_eq!(
        a.call(&q(&["EXEC"])).await.unwrap(),
        Frame::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    assert_eq!(
        call(&fe, &[b"GET", b"h"]).await,
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(
        call(&fe, &[b"HGETALL", b"h"]).await,
        Some(Frame::Array(vec![
            bulk("f"),
            bulk("42"),
            bulk("g"),
            bulk("2")
        ]))
    );
    assert_eq!(
        call(&fe, &[b"TYPE", b"h"]).await,
        Some(Frame::Simple("hash".into()))
    );
    for i in 0..30 {
        let k = format!("s{i}");
        assert_eq!(
            call(&fe, &[b"SET", k.as_bytes(), b"v"]).await,
            Some(ok.clone())
        );
    }
    let (mut cursor, mut seen) = ("0".to_string(), std::collections::BTreeSet::new());
    loop {
        let Some(Frame::Array(page)) = call(
            &fe,
            &[b"SCAN", cursor.as_bytes(), b"MATCH", b"s*", b"COUNT", b"5"],
        )
        .await
        else {
            panic!("SCAN")
        };
        let [Frame::Bulk(next), Frame::Array(keys)] = &page[..] else {
            panic!("SCAN page {page:?}")
        };
        seen.extend(keys.iter().map(|k| format!("{k:?}")));
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(call(&fe, &[b"DBSIZE"]).await, Some(Frame::Integer(32)));
}

/// Every pure read is served after a ReadIndex round, not as a log entry:
/// a hundred reads of every kind (through a follower, so forwarded, and
/// through the leader) leave the log where it was (give or take the
/// leader's idle ticks), and answer from the state the writes left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_every_kind_add_no_log_entries() {
    let _g = serial();
    let c = Cluster::start(3, FLAGS);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let f = *[1, 2, 3].iter().find(|&&i| i != leader).unwrap();
    let (le, fe) = (c.endpoint(leader), c.endpoint(f));
    let ok = Some(Frame::Simple("OK".into()));
    assert_eq!(
        call(&le, &[b"SET", b"s", b"hello", b"EX", b"100"]).await,
        ok
    );
    assert_eq!(
        call(&le, &[b"HSET", b"h", b"f", b"v"]).await,
        Some(Frame::Integer(1))
    );
    let reads: [&[&[u8]]; 12] = [
        &[b"GET", b"s"],
        &[b"MGET", b"s", b"nope"],
        &[b"EXISTS", b"s", b"h"],
        &[b"STRLEN", b"s"],
        &[b"GETRANGE", b"s", b"0", b"1"],
        &[b"TTL", b"h"],
        &[b"TYPE", b"h"],
        &[b"HGET", b"h", b"f"],
        &[b"HGETALL", b"h"],
        &[b"DBSIZE"],
        &[b"SCAN", b"0"],
        &[b"GET", b"h"],
    ];
    let expected = [
        Some(bulk("hello")),
        Some(Frame::Array(vec![bulk("hello"), Frame::Null])),
        Some(Frame::Integer(2)),
        Some(Frame::Integer(5)),
        Some(bulk("he")),
        Some(Frame::Integer(-1)),
        Some(Frame::Simple("hash".into())),
        Some(bulk("v")),
        Some(Frame::Array(vec![bulk("f"), bulk("v")])),
        Some(Frame::Integer(2)),
        None, // SCAN: order of the two keys is the hash order
        Some(Frame::Error(
            "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
        )),
    ];
    let last_index = |id| {
        let c = &c;
        async move { common::num(&c.info(id).await.expect("INFO"), "last_index") }
    };
    let before = last_index(leader).await;
    for round in 0..9 {
        let ep = if round % 2 == 0 { &fe } else { &le };
        for (args, want) in reads.iter().zip(&expected) {
            let got = call(ep, args).await;
            match want {
                Some(_) => assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(args[0])),
                None => assert!(matches!(got, Some(Frame::Array(_))), "SCAN: {got:?}"),
            }
        }
    }
    let after = last_index(leader).await;
    // 108 reads; through the log they would add 108 entries. The leader
    // may append a few idle ticks meanwhile.
    assert!(
        after - before < 20,
        "reads went through the log: last_index {before} -> {after}"
    );
}
