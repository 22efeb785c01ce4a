//! Exactly-once semantics through client sessions (dissertation §6.3).

use crate::common;

use common::*;
use kv::{Config, KvError, Reply};

#[test]
fn duplicate_seq_returns_the_cached_response_without_reapplying() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    assert_eq!(h.request(c, 1, append("k", "x")), Ok(Reply::Length(1)));
    // The same request committed again (client retry after a leader change).
    assert_eq!(h.request(c, 1, append("k", "x")), Ok(Reply::Length(1)));
    assert_eq!(h.request(c, 1, append("k", "x")), Ok(Reply::Length(1)));
    assert_eq!(h.sm.get(b"k"), Some(b("x")));
}

#[test]
fn duplicate_returns_the_original_result_even_after_later_writes() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    let other = h.register();
    assert_eq!(h.request(c, 1, get("k")), Ok(Reply::Value(None)));
    h.request(other, 1, put("k", "v")).unwrap();
    // The retried Get answers what it saw when it was applied.
    assert_eq!(h.request(c, 1, get("k")), Ok(Reply::Value(None)));
    assert_eq!(h.request(c, 2, delete("k")), Ok(Reply::Deleted(true)));
    h.request(other, 2, put("k", "again")).unwrap();
    assert_eq!(h.request(c, 2, delete("k")), Ok(Reply::Deleted(true)));
    assert_eq!(h.sm.get(b"k"), Some(b("again")));
}

#[test]
fn seq_below_the_window_is_stale_and_not_applied() {
    let config = Config {
        response_window: 2,
        ..Config::default()
    };
    let mut h = Harness::new(config);
    let c = h.register();
    for seq in 1..=3 {
        h.request(c, seq, append("k", "x")).unwrap();
    }
    assert_eq!(
        h.request(c, 1, append("k", "x")),
        Err(KvError::StaleRequest {
            client_id: c,
            seq: 1
        })
    );
    assert_eq!(
        h.request(c, 0, append("k", "x")),
        Err(KvError::StaleRequest {
            client_id: c,
            seq: 0
        })
    );
    assert_eq!(h.request(c, 2, append("k", "x")), Ok(Reply::Length(2)));
    assert_eq!(h.sm.get(b"k"), Some(b("xxx")));
}

#[test]
fn pipelined_requests_may_commit_out_of_order_and_each_applies_once() {
    let config = Config {
        response_window: 4,
        ..Config::default()
    };
    let mut h = Harness::new(config);
    let c = h.register();
    // Seqs 1..=4 in flight; 2 and 4 commit first, 1 and 3 are retried later.
    assert_eq!(h.request(c, 2, append("k", "b")), Ok(Reply::Length(1)));
    assert_eq!(h.request(c, 4, append("k", "d")), Ok(Reply::Length(2)));
    assert_eq!(h.request(c, 1, append("k", "a")), Ok(Reply::Length(3)));
    assert_eq!(h.request(c, 2, append("k", "b")), Ok(Reply::Length(1)));
    assert_eq!(h.request(c, 3, append("k", "c")), Ok(Reply::Length(4)));
    assert_eq!(h.request(c, 1, append("k", "a")), Ok(Reply::Length(3)));
    assert_eq!(h.sm.get(b"k"), Some(b("bdac")));
}

#[test]
fn unknown_session_is_refused_not_created() {
    let mut h = Harness::new(Config::default());
    assert_eq!(
        h.request(99, 1, put("k", "v")),
        Err(KvError::SessionExpired { client_id: 99 })
    );
    assert_eq!(h.sm.get(b"k"), None);
    assert_eq!(h.sm.session_count(), 0);
}

#[test]
fn errors_are_cached_like_any_response() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    let huge = bytes::Bytes::from(vec![0u8; kv::MAX_VALUE_BYTES]);
    h.request(
        c,
        1,
        kv::Op::Put {
            key: b("k"),
            value: huge,
        },
    )
    .unwrap();
    let first = h.request(c, 2, append("k", "x"));
    assert!(matches!(first, Err(KvError::ValueTooLarge { .. })));
    h.request(c, 3, delete("k")).unwrap();
    assert_eq!(h.request(c, 2, append("k", "x")), first);
    assert_eq!(h.sm.get(b"k"), None);
}

#[test]
fn sessions_are_independent() {
    let mut h = Harness::new(Config::default());
    let a = h.register();
    let c = h.register();
    assert_eq!(h.request(a, 1, append("k", "a")), Ok(Reply::Length(1)));
    assert_eq!(h.request(c, 1, append("k", "c")), Ok(Reply::Length(2)));
    assert_eq!(h.sm.get(b"k"), Some(b("ac")));
}
