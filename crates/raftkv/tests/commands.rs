//! Redis's string, counter and expiry commands against a real 3-node
//! cluster, over raw RESP: replies and error texts as Redis 7 gives them,
//! expiry decided through the log (a key with a short TTL disappears from
//! every node without a client touching it), and a counter that counts each
//! acknowledged INCR exactly once while its leader is killed.

mod common;

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
