//! Snapshot round trips, size, and rejection of corrupt bytes.

use crate::common;

use common::*;
use kv::{Config, Reply, SnapshotError, StateMachine, SNAPSHOT_MAGIC};

/// A replica with data, two sessions (one with cached responses) and an index.
fn busy_replica() -> (Harness, u64, u64) {
    let mut h = Harness::new(Config::default());
    let a = h.register();
    let c = h.register();
    h.request(a, 1, put("x", "1")).unwrap();
    h.request(a, 2, append("x", "23")).unwrap();
    h.request(c, 1, put("bin", "\0\u{1}")).unwrap();
    h.request(c, 2, delete("nope")).unwrap();
    h.now_ms += 10;
    h.tick().unwrap();
    (h, a, c)
}

#[test]
fn round_trip_keeps_data_sessions_index_and_log_time() {
    let (h, a, c) = busy_replica();
    let restored = StateMachine::restore(&h.sm.snapshot()).unwrap();
    assert_eq!(restored, h.sm);
    assert_eq!(restored.applied_index(), h.sm.applied_index());
    assert_eq!(restored.log_time_ms(), h.sm.log_time_ms());
    assert_eq!(restored.get(b"x"), Some(b("123")));
    assert!(restored.has_session(a) && restored.has_session(c));
    assert_eq!(restored.config(), h.sm.config());
}

#[test]
fn a_restored_replica_answers_duplicates_identically() {
    let (mut h, a, c) = busy_replica();
    let mut r = Harness {
        sm: StateMachine::restore(&h.sm.snapshot()).unwrap(),
        now_ms: h.now_ms,
    };
    for (client, seq, op) in [
        (a, 2, append("x", "23")),
        (c, 2, delete("nope")),
        (a, 1, put("x", "1")),
    ] {
        let original = h.request(client, seq, op.clone());
        assert_eq!(r.request(client, seq, op), original);
    }
    assert_eq!(r.sm.get(b"x"), Some(b("123")));
    assert_eq!(r.sm, h.sm);
    // New work continues identically too.
    assert_eq!(h.request(a, 3, append("x", "4")), Ok(Reply::Length(4)));
    assert_eq!(r.request(a, 3, append("x", "4")), Ok(Reply::Length(4)));
    assert_eq!(r.sm, h.sm);
}

#[test]
fn empty_state_machine_round_trips() {
    let sm = StateMachine::new(Config::default());
    assert_eq!(StateMachine::restore(&sm.snapshot()).unwrap(), sm);
}

#[test]
fn restore_adopts_the_config_in_the_snapshot() {
    let config = Config {
        session_timeout_ms: 7,
        max_sessions: 3,
        response_window: 1,
    };
    let sm = StateMachine::new(config);
    assert_eq!(
        *StateMachine::restore(&sm.snapshot()).unwrap().config(),
        config
    );
}

/// The classic lab's "snapshot size is reasonable": a few Puts on a handful
/// of keys, with the session that made them, must stay under 500 bytes.
#[test]
fn snapshot_size_is_reasonable() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    let mut seq = 0;
    for round in 0..200 {
        for key in ["a", "b", "c", "d", "e"] {
            seq += 1;
            h.now_ms += 1;
            h.request(c, seq, put(key, &format!("value-{round}")))
                .unwrap();
        }
    }
    let size = h.sm.snapshot().len();
    assert!(size < 500, "snapshot is {size} bytes");
    assert!(
        size < 150,
        "snapshot is {size} bytes; expected far below the limit"
    );
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let (h, _, _) = busy_replica();
    let snap = h.sm.snapshot();
    for i in 0..snap.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = snap.to_vec();
            bad[i] ^= flip;
            assert!(
                StateMachine::restore(&bad).is_err(),
                "flip {flip:#x} at byte {i} accepted"
            );
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let (h, _, _) = busy_replica();
    let snap = h.sm.snapshot();
    for len in 0..snap.len() {
        assert!(
            StateMachine::restore(&snap[..len]).is_err(),
            "truncated to {len} accepted"
        );
    }
    let mut longer = snap.to_vec();
    longer.push(0);
    assert!(StateMachine::restore(&longer).is_err());
}

#[test]
fn errors_name_the_problem() {
    let snap = StateMachine::new(Config::default()).snapshot();
    assert_eq!(
        StateMachine::restore(b"RKV"),
        Err(SnapshotError::TooShort(3))
    );
    let mut bad_magic = snap.to_vec();
    bad_magic[0] = b'X';
    assert_eq!(
        StateMachine::restore(&bad_magic),
        Err(SnapshotError::BadMagic)
    );
    let mut bad_crc = snap.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert!(matches!(
        StateMachine::restore(&bad_crc),
        Err(SnapshotError::ChecksumMismatch { .. })
    ));
    assert_eq!(&snap[..4], &SNAPSHOT_MAGIC);
}

#[test]
fn a_future_version_is_refused_even_with_a_valid_checksum() {
    let snap = StateMachine::new(Config::default()).snapshot();
    let mut v3 = snap[..snap.len() - 4].to_vec();
    v3[4] = 3;
    let crc = crc32c::crc32c(&v3);
    v3.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        StateMachine::restore(&v3),
        Err(SnapshotError::UnsupportedVersion(3))
    );
}

/// A checksummed snapshot that claims seq 2 was applied but lost its cached
/// response would let a retry of seq 2 apply twice: it must be refused.
#[test]
fn a_session_missing_its_latest_response_is_refused() {
    let mut h = Harness::new(Config::default());
    let c = h.register();
    h.request(c, 1, put("k", "v")).unwrap();
    let snap = h.sm.snapshot();
    // Tail of the body: ... highest_seq=1, n_responses=1, seq=1, Ok(0) Done(1) | crc
    let body = &snap[..snap.len() - 4];
    assert_eq!(&body[body.len() - 5..], &[1, 1, 1, 0, 1]);
    let mut forged = body[..body.len() - 4].to_vec();
    forged.push(0); // n_responses = 0
    let crc = crc32c::crc32c(&forged);
    forged.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        StateMachine::restore(&forged),
        Err(SnapshotError::Invalid(
            "highest applied seq has no cached response"
        ))
    );
}

/// A snapshot written by format 1 (strings only, before expiry and
/// versions), kept as bytes under `testdata/` since before the format
/// changed, still loads: same data, sessions and cached responses.
#[test]
fn a_format_1_snapshot_still_loads() {
    let old = include_bytes!("../../testdata/snapshot_v1.bin");
    assert_eq!(old[4], 1, "the fixture is format 1");
    let sm = StateMachine::restore(old).expect("format 1 loads");
    assert_eq!(sm.get(b"x"), Some(b("123")));
    assert_eq!(sm.get(b"bin"), Some(b("\0\u{1}")));
    assert_eq!(sm.len(), 2);
    assert_eq!(sm.session_count(), 2);
    // Re-encoded in today's format, it round-trips.
    let again = StateMachine::restore(&sm.snapshot()).unwrap();
    assert_eq!(again, sm);
    // A retry of a request made before the upgrade gets its cached answer
    // (session 1's seq 2 was `APPEND x 23` -> length 3) and is not re-applied.
    let mut h = Harness { sm, now_ms: 2_000 };
    let first = h.sm.iter().count();
    assert_eq!(first, 2);
    let a = 1;
    assert_eq!(h.request(a, 2, append("x", "23")), Ok(Reply::Length(3)));
    assert_eq!(h.sm.get(b"x"), Some(b("123")));
}

/// Strings, a counter, a hash, keys with and without a TTL, a renamed and a
/// deleted key, and two sessions with cached responses: every part of the
/// format-2 body.
fn mixed_replica() -> Harness {
    use kv::{Expiry, Op, SetCond, SetTtl};
    let mut h = Harness::new(Config::default());
    let a = h.register();
    let c = h.register();
    h.request(a, 1, put("plain", "value")).unwrap();
    h.request(a, 2, append("plain", "+more")).unwrap();
    let ttl = Op::Set {
        key: b("ttl"),
        value: b("soon"),
        cond: SetCond::Always,
        ttl: SetTtl::Expire(Expiry::InMs(60_000)),
        get: false,
    };
    h.request(a, 3, ttl).unwrap();
    h.request(
        c,
        1,
        Op::IncrBy {
            key: b("n"),
            by: 42,
        },
    )
    .unwrap();
    let pairs = vec![(b("f1"), b("v1")), (b("f2"), b("\0bin"))];
    h.request(c, 2, Op::HSet { key: b("h"), pairs }).unwrap();
    h.request(c, 3, put("gone", "x")).unwrap();
    h.request(c, 4, delete("gone")).unwrap();
    let rename = Op::Rename {
        from: b("n"),
        to: b("counter"),
        nx: false,
    };
    h.request(c, 5, rename).unwrap();
    h.now_ms += 10;
    h.tick().unwrap();
    h
}

/// A format-2 snapshot written by the store before its compact
/// representation (kept under `testdata/`): it loads into the same state
/// the same commands build today, and today's encoding of that state is the
/// same bytes, so the representation change left the format untouched.
#[test]
fn a_format_2_snapshot_from_before_the_compact_store_loads_and_encodes_identically() {
    let old = include_bytes!("../../testdata/snapshot_v2.bin");
    assert_eq!(old[4], 2, "the fixture is format 2");
    let sm = StateMachine::restore(old).expect("format 2 loads");
    let built = mixed_replica().sm;
    assert_eq!(sm, built);
    assert_eq!(sm.snapshot().as_ref(), old.as_slice());
    assert_eq!(built.snapshot().as_ref(), old.as_slice());
    assert_eq!(sm.get(b"plain"), Some(b("value+more")));
    assert_eq!(sm.get(b"counter"), Some(b("42")));
    assert_eq!(sm.get(b"gone"), None);
    assert_eq!(sm.len(), 4);
}

/// Accepts at most 7 bytes per `write` call: the most fragmented destination.
struct Trickle(Vec<u8>);

impl std::io::Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `snapshot_to` (what log compaction streams to the snapshot file) writes the
/// format's bytes: those of the format-2 fixture for the state it holds, and for a
/// state many times the encoder's buffer, bytes that restore to an equal machine
/// and equal `snapshot()`'s.
#[test]
fn a_streamed_snapshot_is_the_format_byte_for_byte() {
    let fixture = include_bytes!("../../testdata/snapshot_v2.bin");
    let mut out = Trickle(Vec::new());
    mixed_replica().sm.snapshot_to(&mut out).unwrap();
    assert_eq!(out.0, fixture.as_slice());

    let mut h = Harness::new(Config::default());
    let c = h.register();
    for seq in 1..=3000 {
        h.request(c, seq, put(&format!("key:{seq}"), &"v".repeat(100)))
            .unwrap();
    }
    let mut out = Trickle(Vec::new());
    h.sm.snapshot_to(&mut out).unwrap();
    assert!(out.0.len() > 4 * rsm::frame::FRAME_BUFFER_BYTES);
    assert_eq!(out.0, h.sm.snapshot().as_ref());
    assert_eq!(StateMachine::restore(&out.0).unwrap(), h.sm);
}

/// Installing a snapshot (`replace_with_snapshot`) reads it front to back and tells the
/// input every part it has read, in order, a few MiB at a time: the checksum pass, then
/// the decoder over the body. (A store whose snapshot is a file map drops those pages,
/// so the file is never resident whole.) The state is dropped first: a snapshot that
/// does not decode leaves the machine empty, with its config.
#[test]
fn installing_a_snapshot_releases_what_it_has_read_in_order() {
    let mut h = Harness::new(Config::default());
    let a = h.register();
    let value = "v".repeat(4_000);
    for seq in 1..=3_000u64 {
        h.request(a, seq, put(&format!("key:{seq:05}"), &value))
            .unwrap();
    }
    let snap = h.sm.snapshot();
    assert!(snap.len() > 2 * rsm::RELEASE_STEP);
    let base = snap.as_ptr() as usize;
    let released = std::cell::RefCell::new(Vec::new());
    let hook = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        released.borrow_mut().push(start..start + part.len());
    };
    let mut sm = StateMachine::new(Config::default());
    rsm::StateMachine::replace_with_snapshot(&mut sm, rsm::SnapshotInput::new(&snap, &hook))
        .unwrap();
    assert_eq!(sm, h.sm);
    let released = released.into_inner();
    // Two passes, each from the start to the end (the checksum's 4 bytes excepted),
    // each in order, without gaps, no part much over the step.
    let check_pass = |pass: &[std::ops::Range<usize>], from: usize| {
        assert!(pass.len() >= 2, "{pass:?}");
        assert_eq!(pass[0].start, from);
        for w in pass.windows(2) {
            assert_eq!(w[0].end, w[1].start, "in order, no gaps: {pass:?}");
        }
        assert!(pass.iter().all(|r| r.len() <= rsm::RELEASE_STEP + 8_192));
        assert_eq!(pass.last().unwrap().end, snap.len() - 4);
    };
    let body_starts = released
        .iter()
        .rposition(|r| r.start == 5)
        .expect("a body pass");
    check_pass(&released[..body_starts], 0);
    check_pass(&released[body_starts..], 5);

    let mut garbled = snap.to_vec();
    garbled[snap.len() / 2] ^= 0xff;
    assert!(rsm::StateMachine::replace_with_snapshot(
        &mut sm,
        rsm::SnapshotInput::in_memory(&garbled)
    )
    .is_err());
    assert_eq!(sm, StateMachine::new(Config::default()), "dropped first");
}
