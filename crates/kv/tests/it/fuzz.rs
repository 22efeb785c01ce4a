//! Bytes from outside never panic the state machine: garbage entries,
//! requests, responses and snapshots all decode to errors. Decoders are also
//! canonical: whatever they accept re-encodes to the very same bytes.

use bytes::Bytes;
use kv::{
    decode_entry, decode_request, decode_response, encode_entry, encode_request, encode_response,
    Config, KvError, StateMachine,
};
use proptest::prelude::*;

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..96)
}

/// Garbage that starts like the real thing, to get past the version byte.
fn versioned_garbage() -> impl Strategy<Value = Vec<u8>> {
    garbage().prop_map(|mut v| {
        v.insert(0, kv::WIRE_VERSION);
        v
    })
}

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// A snapshot with some content in every section.
fn sample_snapshot() -> Bytes {
    let mut sm = StateMachine::new(Config {
        session_timeout_ms: 1_000,
        max_sessions: 4,
        response_window: 3,
    });
    let mut index = 0;
    let mut apply = |sm: &mut StateMachine, cmd: kv::Command| {
        index += 1;
        sm.apply(
            index,
            &encode_entry(&kv::Entry {
                timestamp_ms: index * 10,
                cmd,
            }),
        )
    };
    apply(&mut sm, kv::Command::RegisterSession).unwrap();
    apply(&mut sm, kv::Command::RegisterSession).unwrap();
    for seq in 1..=4 {
        let op = kv::Op::Append {
            key: Bytes::from(format!("k{}", seq % 2)),
            value: Bytes::from("v"),
        };
        apply(
            &mut sm,
            kv::Command::Request(kv::Request {
                client_id: 1 + seq % 2,
                seq,
                op,
            }),
        )
        .unwrap();
    }
    sm.snapshot()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn garbage_entries_are_malformed_responses(bytes in prop_oneof![garbage(), versioned_garbage()]) {
        let mut sm = StateMachine::new(Config::default());
        let decoded = decode_entry(&bytes);
        let response = sm.apply(1, &bytes);
        match decoded {
            Ok(entry) => {
                let again = encode_entry(&entry);
                prop_assert_eq!(&again[..], &bytes[..]);
            }
            Err(_) => {
                let malformed = matches!(response, Err(KvError::Malformed { .. }));
                prop_assert!(bytes.is_empty() || malformed);
            }
        }
        sm.check_invariants();
    }

    #[test]
    fn garbage_requests_and_responses_never_panic(bytes in prop_oneof![garbage(), versioned_garbage()]) {
        if let Ok(req) = decode_request(&bytes) {
            let again = encode_request(&req);
            prop_assert_eq!(&again[..], &bytes[..]);
        }
        if let Ok(resp) = decode_response(&bytes) {
            let again = encode_response(&resp);
            prop_assert_eq!(&again[..], &bytes[..]);
        }
    }

    #[test]
    fn garbage_snapshots_are_errors(bytes in garbage()) {
        prop_assert!(StateMachine::restore(&bytes).is_err());
    }

    /// Random bodies behind a valid header and checksum exercise the
    /// content validation rather than the checksum.
    #[test]
    fn checksummed_garbage_never_panics(body in garbage()) {
        let mut framed = b"RKVS\x01".to_vec();
        framed.extend_from_slice(&body);
        let framed = with_crc(framed);
        if let Ok(sm) = StateMachine::restore(&framed) {
            sm.check_invariants();
            let again = sm.snapshot();
            prop_assert_eq!(&again[..], &framed[..]);
        }
    }

    /// Mutations of a real snapshot, re-checksummed so the decoder must
    /// catch them by validation (or accept a still-valid canonical state).
    #[test]
    fn mutated_checksummed_snapshots_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let snap = sample_snapshot();
        let mut body = snap[..snap.len() - 4].to_vec();
        for (at, byte) in edits {
            let i = 5 + at.index(body.len() - 5);
            body[i] = byte;
        }
        if truncate {
            body.truncate(5 + cut.index(body.len() - 5));
        }
        let framed = with_crc(body);
        if let Ok(sm) = StateMachine::restore(&framed) {
            sm.check_invariants();
            // Format 2 (postcard) reads a non-canonical varint too, so the
            // bytes may re-encode differently; the state they mean may not.
            let again = StateMachine::restore(&sm.snapshot()).expect("own snapshot");
            prop_assert_eq!(again, sm);
        }
    }

    #[test]
    fn mutated_snapshots_without_recomputed_checksum_are_errors(
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let mut snap = sample_snapshot().to_vec();
        let i = at.index(snap.len());
        snap[i] ^= xor;
        prop_assert!(StateMachine::restore(&snap).is_err());
    }
}
