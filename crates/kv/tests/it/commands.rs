//! Every command through the full path: encode, apply at an index, reply.

use crate::common;

use common::*;
use kv::{Config, KvError, Reply};

#[test]
fn register_returns_the_entry_index_as_client_id() {
    let mut h = Harness::new(Config::default());
    h.apply_bytes(&[]).unwrap(); // a Raft no-op at index 1
    assert_eq!(h.register(), 2);
    assert_eq!(h.register(), 3);
    assert_eq!(h.sm.session_count(), 2);
    assert!(h.sm.has_session(2) && h.sm.has_session(3));
}

#[test]
fn get_put_append_delete() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    assert_eq!(h.request(c, 1, get("k")), Ok(Reply::Value(None)));
    assert_eq!(h.request(c, 2, put("k", "ab")), Ok(Reply::Done));
    assert_eq!(h.request(c, 3, get("k")), Ok(Reply::Value(Some(b("ab")))));
    assert_eq!(h.request(c, 4, append("k", "cde")), Ok(Reply::Length(5)));
    assert_eq!(h.sm.get(b"k"), Some(b("abcde")));
    assert_eq!(h.request(c, 5, delete("k")), Ok(Reply::Deleted(true)));
    assert_eq!(h.request(c, 6, delete("k")), Ok(Reply::Deleted(false)));
    assert_eq!(h.sm.get(b"k"), None);
    assert_eq!(h.request(c, 7, append("n", "xyz")), Ok(Reply::Length(3)));
    assert_eq!(h.sm.len(), 1);
}

#[test]
fn empty_entry_is_a_noop_that_advances_the_applied_index() {
    let mut h = Harness::new(Config::default());
    assert_eq!(h.sm.apply(5, &[]), Ok(Reply::Done));
    assert_eq!(h.sm.applied_index(), 5);
    assert_eq!(h.sm.log_time_ms(), 0);
}

#[test]
fn tick_advances_log_time_only() {
    let mut h = Harness::new(Config::default());
    h.now_ms = 42_000;
    assert_eq!(h.tick(), Ok(Reply::Done));
    assert_eq!(h.sm.log_time_ms(), 42_000);
    assert!(h.sm.is_empty());
}

#[test]
fn log_time_never_goes_backwards() {
    let mut h = Harness::new(Config::default());
    h.now_ms = 5_000;
    h.tick().unwrap();
    h.now_ms = 3_000; // a new leader whose clock lags
    h.tick().unwrap();
    assert_eq!(h.sm.log_time_ms(), 5_000);
}

#[test]
fn malformed_entry_is_an_error_response_and_changes_nothing_but_the_index() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    h.request(c, 1, put("k", "v")).unwrap();
    let before = h.sm.clone();
    let resp = h.apply_bytes(&[0xde, 0xad, 0xbe, 0xef]);
    assert!(matches!(resp, Err(KvError::Malformed { .. })), "{resp:?}");
    assert_eq!(h.sm.applied_index(), before.applied_index() + 1);
    assert_eq!(h.sm.get(b"k"), Some(b("v")));
    assert_eq!(h.sm.log_time_ms(), before.log_time_ms());
}

#[test]
#[should_panic(expected = "at or below applied index")]
fn applying_an_old_index_is_a_bug() {
    let mut h = Harness::new(Config::default());
    h.sm.apply(3, &[]).unwrap();
    h.sm.apply(3, &[]).unwrap();
}

#[test]
#[should_panic(expected = "invalid kv config")]
fn invalid_config_is_refused() {
    kv::StateMachine::new(Config {
        max_sessions: 0,
        ..Config::default()
    });
}
