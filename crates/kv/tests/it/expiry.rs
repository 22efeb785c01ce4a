//! Deterministic session expiry and eviction, decided by log time and log
//! order only (dissertation §6.3), so every replica agrees.

use crate::common;

use bytes::Bytes;
use common::*;
use kv::{encode_entry, Command, Config, Entry, KvError, Reply, StateMachine};

fn config() -> Config {
    Config {
        session_timeout_ms: 1_000,
        max_sessions: 3,
        response_window: 2,
    }
}

#[test]
fn idle_session_expires_by_log_time_and_its_retry_is_refused() {
    let mut h = Harness::new(config());
    let c = h.register();
    assert_eq!(h.request(c, 1, append("k", "x")), Ok(Reply::Length(1)));
    h.now_ms += 1_000; // idle exactly the timeout: still alive
    assert_eq!(h.request(c, 1, append("k", "x")), Ok(Reply::Length(1)));
    h.now_ms += 1_001;
    assert_eq!(h.tick(), Ok(Reply::Done));
    assert!(!h.sm.has_session(c));
    // The retry is not re-applied: the client learns its session is gone.
    assert_eq!(
        h.request(c, 1, append("k", "x")),
        Err(KvError::SessionExpired { client_id: c })
    );
    assert_eq!(h.sm.get(b"k"), Some(b("x")));
}

#[test]
fn the_expiring_request_itself_does_not_revive_the_session() {
    let mut h = Harness::new(config());
    let c = h.register();
    h.now_ms += 5_000;
    assert_eq!(
        h.request(c, 1, put("k", "v")),
        Err(KvError::SessionExpired { client_id: c })
    );
    assert_eq!(h.sm.get(b"k"), None);
}

#[test]
fn activity_keeps_a_session_alive() {
    let mut h = Harness::new(config());
    let c = h.register();
    for seq in 1..=10 {
        h.now_ms += 900;
        assert_eq!(h.request(c, seq, put("k", "v")), Ok(Reply::Done));
    }
    assert!(h.sm.has_session(c));
}

#[test]
fn cap_evicts_the_least_recently_used_session() {
    let mut h = Harness::new(config());
    let a = h.register();
    let b_ = h.register();
    let c = h.register();
    h.request(a, 1, put("k", "a")).unwrap(); // b_ is now the least recently used
    let d = h.register();
    assert!(h.sm.has_session(a) && h.sm.has_session(c) && h.sm.has_session(d));
    assert_eq!(
        h.request(b_, 1, put("k", "b")),
        Err(KvError::SessionExpired { client_id: b_ })
    );
    assert_eq!(h.sm.session_count(), 3);
}

/// A leader-stamped entry stream with sessions coming and going.
fn entry_stream() -> Vec<Bytes> {
    let mut entries = Vec::new();
    let mut now_ms = 0;
    let mut add = |now_ms: u64, cmd: Command| {
        entries.push(encode_entry(&Entry {
            timestamp_ms: now_ms,
            cmd,
        }))
    };
    for round in 0..40u64 {
        now_ms += 37 * (round % 7) + 1;
        add(now_ms, Command::RegisterSession);
        // Requests from sessions registered in earlier rounds, some long gone.
        for back in [1u64, 3, 9] {
            let client_id = (round.saturating_sub(back)) * 3 + 1;
            let req = kv::Request {
                client_id,
                seq: round,
                op: append("k", "x"),
            };
            add(now_ms, Command::Request(req));
        }
        if round % 5 == 0 {
            now_ms += 700;
            add(now_ms, Command::Tick);
        }
    }
    entries
}

#[test]
fn two_replicas_fed_the_same_entries_agree_on_every_response_and_expiry() {
    let config = Config {
        session_timeout_ms: 300,
        max_sessions: 5,
        response_window: 2,
    };
    let mut a = StateMachine::new(config);
    let mut b = StateMachine::new(config);
    let mut expired_seen = 0;
    for (i, entry) in entry_stream().iter().enumerate() {
        let index = i as u64 + 1;
        let ra = a.apply(index, entry);
        assert_eq!(
            ra,
            b.apply(index, entry),
            "responses differ at index {index}"
        );
        assert_eq!(a, b, "states differ at index {index}");
        expired_seen += matches!(ra, Err(KvError::SessionExpired { .. })) as u32;
    }
    assert!(expired_seen > 0, "the stream should exercise expiry");
    assert!(a.session_count() <= 5);
}

#[test]
fn a_replica_restored_mid_stream_stays_in_lockstep() {
    let config = Config {
        session_timeout_ms: 300,
        max_sessions: 5,
        response_window: 2,
    };
    let entries = entry_stream();
    let mut a = StateMachine::new(config);
    let mut b = StateMachine::new(config);
    for (i, entry) in entries.iter().enumerate() {
        let index = i as u64 + 1;
        if index == 50 {
            b = StateMachine::restore(&a.snapshot()).expect("own snapshot restores");
        }
        assert_eq!(
            a.apply(index, entry),
            b.apply(index, entry),
            "index {index}"
        );
    }
    assert_eq!(a, b);
}
