//! Byte formats: log entries, replies and snapshots.
//!
//! Owns: the framing around serde/postcard bodies and the checks that make
//! decoding strict. Bytes from outside (the log, the network, a snapshot
//! file) never panic a replica; every decoder returns an error instead.
//!
//! ```text
//! entry / response = VERSION(u8) postcard(body)     (canonical, no trailing bytes)
//! snapshot         = "RSCS" VERSION(u8) postcard(body) crc32c(all before it, u32 LE)
//! ```
//! Strictness: a decoded entry or response must re-encode to exactly the
//! input bytes, which refuses trailing bytes, over-long varints and
//! unsorted or duplicated map keys at once, so every value has one
//! encoding. The snapshot decoder re-checks every invariant of the
//! [`Controller`] before returning it. Postcard never allocates more than
//! its input could hold, so a hostile length cannot exhaust memory.

use bytes::Bytes;
use kv::session::{Session, SessionTable};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use shardmeta::Config;
use std::collections::BTreeMap;

use crate::command::{Entry, Response};
use crate::machine::Controller;
use crate::settings::Settings;

/// The version byte leading every entry and response.
pub const WIRE_VERSION: u8 = 1;
/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"RSCS";
/// Current snapshot format version.
pub const SNAPSHOT_VERSION: u8 = 1;
#[cfg(test)]
const CRC_BYTES: usize = 4;

/// Why an entry or response could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    #[error("undecodable body: {0}")]
    Body(String),
    #[error("not in canonical form (trailing bytes, long varints or unsorted keys)")]
    NotCanonical,
}

/// Why snapshot bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {0} bytes, too short to be one")]
    TooShort(usize),
    #[error("not a shard-controller snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u8),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("snapshot body undecodable: {0}")]
    Body(String),
    #[error("snapshot content invalid: {0}")]
    Invalid(String),
}

/// Encodes a log entry payload.
pub fn encode_entry(entry: &Entry) -> Bytes {
    encode_versioned(entry)
}

/// Decodes a log entry payload strictly; never panics.
pub fn decode_entry(input: &[u8]) -> Result<Entry, DecodeError> {
    decode_versioned(input)
}

/// Encodes a reply for a client (what a host sends back).
pub fn encode_response(response: &Response) -> Bytes {
    encode_versioned(response)
}

/// Decodes a reply strictly; never panics.
pub fn decode_response(input: &[u8]) -> Result<Response, DecodeError> {
    decode_versioned(input)
}

fn encode_versioned<T: Serialize>(value: &T) -> Bytes {
    let out =
        postcard::to_extend(value, vec![WIRE_VERSION]).expect("serialising to a Vec cannot fail");
    Bytes::from(out)
}

fn decode_versioned<T: Serialize + DeserializeOwned>(input: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = input.split_first().ok_or(DecodeError::Empty)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let value: T = postcard::from_bytes(body).map_err(|e| DecodeError::Body(e.to_string()))?;
    if encode_versioned(&value) != input {
        return Err(DecodeError::NotCanonical);
    }
    Ok(value)
}

/// One session as the snapshot stores it.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    client_id: u64,
    last_active_ms: u64,
    last_index: u64,
    highest_seq: u64,
    responses: Vec<(u64, Response)>,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    applied_index: u64,
    log_time_ms: u64,
    settings: &'a Settings,
    configs: &'a [Config],
    sessions: Vec<SessionRecord>,
}

#[derive(Deserialize)]
struct Body {
    applied_index: u64,
    log_time_ms: u64,
    settings: Settings,
    configs: Vec<Config>,
    sessions: Vec<SessionRecord>,
}

/// Writes the snapshot of `c` to `out` as it is encoded. The only errors
/// are `out`'s.
pub(crate) fn encode_snapshot_to(
    c: &Controller,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let sessions = c
        .sessions
        .iter()
        .map(|(&client_id, s)| SessionRecord {
            client_id,
            last_active_ms: s.last_active_ms(),
            last_index: s.last_index(),
            highest_seq: s.highest_seq(),
            responses: s.responses().iter().map(|(&q, r)| (q, r.clone())).collect(),
        })
        .collect();
    let body = BodyRef {
        applied_index: c.applied_index,
        log_time_ms: c.log_time_ms,
        settings: &c.settings,
        configs: &c.configs,
        sessions,
    };
    rsm::frame::write_frame(&SNAPSHOT_MAGIC, SNAPSHOT_VERSION, out, |w| {
        postcard::to_io(&body, &mut *w)
            .map(drop)
            .map_err(|e| w.error(e))
    })
}

/// [`encode_snapshot_to`] into one buffer.
pub(crate) fn encode_snapshot(c: &Controller) -> Bytes {
    let mut out = Vec::new();
    encode_snapshot_to(c, &mut out).expect("writing to a Vec cannot fail");
    Bytes::from(out)
}

pub(crate) fn decode_snapshot(input: &[u8]) -> Result<Controller, SnapshotError> {
    let body = check_frame(input)?;
    let (body, rest): (Body, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| SnapshotError::Body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SnapshotError::Body(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    let invalid = |why: &str| SnapshotError::Invalid(why.to_string());
    body.settings.validate().map_err(invalid)?;
    let sessions = read_sessions(body.sessions, &body.settings).map_err(invalid)?;
    let controller = Controller {
        settings: body.settings,
        applied_index: body.applied_index,
        log_time_ms: body.log_time_ms,
        configs: body.configs,
        sessions,
    };
    controller.validate().map_err(SnapshotError::Invalid)?;
    Ok(controller)
}

/// Checks magic, version and checksum (the shared `rsm::frame`); returns the body.
fn check_frame(input: &[u8]) -> Result<&[u8], SnapshotError> {
    use rsm::frame::FrameError;
    rsm::frame::check_frame(input, &SNAPSHOT_MAGIC, SNAPSHOT_VERSION).map_err(|e| match e {
        FrameError::TooShort(n) => SnapshotError::TooShort(n),
        FrameError::BadMagic => SnapshotError::BadMagic,
        FrameError::UnsupportedVersion(v) => SnapshotError::UnsupportedVersion(v),
        FrameError::ChecksumMismatch { stored, computed } => {
            SnapshotError::ChecksumMismatch { stored, computed }
        }
    })
}

fn read_sessions(
    records: Vec<SessionRecord>,
    settings: &Settings,
) -> Result<SessionTable<Response>, &'static str> {
    if records.len() as u64 > settings.max_sessions {
        return Err("more sessions than max_sessions");
    }
    let mut table = SessionTable::new();
    let mut previous_id = None;
    for r in records {
        if previous_id.is_some_and(|p| p >= r.client_id) {
            return Err("session ids not strictly increasing");
        }
        previous_id = Some(r.client_id);
        if r.responses.len() as u64 > settings.response_window {
            return Err("more cached responses than the window");
        }
        if r.responses.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("cached seqs not strictly increasing");
        }
        let responses: BTreeMap<u64, Response> = r.responses.into_iter().collect();
        let session = Session::restored(r.last_active_ms, r.last_index, r.highest_seq, responses);
        table.insert_restored(r.client_id, session)?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, CtrlError, Op, Reply, Request};
    use proptest::prelude::*;
    use shardmeta::Member;
    use std::collections::BTreeSet;

    fn join_entry() -> Entry {
        let members = vec![Member {
            id: 4,
            addr: "127.0.0.1:7004".into(),
        }];
        Entry {
            timestamp_ms: 1_234,
            cmd: Command::Request(Request {
                client_id: 1,
                seq: 1,
                op: Op::Join {
                    groups: BTreeMap::from([(5, members.clone()), (6, members)]),
                },
            }),
        }
    }

    /// A controller with history and a session, built by applying entries.
    fn busy() -> Controller {
        let mut c = Controller::new(Settings::with_shards(10));
        c.apply(
            1,
            &encode_entry(&Entry {
                timestamp_ms: 1_000,
                cmd: Command::RegisterSession,
            }),
        )
        .unwrap();
        c.apply(2, &encode_entry(&join_entry())).unwrap();
        let leave = Command::Request(Request {
            client_id: 1,
            seq: 2,
            op: Op::Leave {
                gids: BTreeSet::from([9]),
            },
        });
        let r = c.apply(
            3,
            &encode_entry(&Entry {
                timestamp_ms: 1_300,
                cmd: leave,
            }),
        );
        assert_eq!(r, Err(CtrlError::UnknownGroup { gid: 9 }));
        c
    }

    #[test]
    fn entries_and_responses_round_trip() {
        let e = join_entry();
        assert_eq!(decode_entry(&encode_entry(&e)), Ok(e));
        let responses = [
            Ok(Reply::Config(busy().latest().clone())),
            Ok(Reply::NewConfig { num: 3 }),
            Err(CtrlError::NoSuchShard {
                shard: 11,
                shards: 10,
            }),
        ];
        for r in responses {
            assert_eq!(decode_response(&encode_response(&r)), Ok(r));
        }
    }

    #[test]
    fn decoding_is_strict() {
        let good = encode_entry(&join_entry()).to_vec();
        assert_eq!(decode_entry(&[]), Err(DecodeError::Empty));
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(decode_entry(&v2), Err(DecodeError::UnsupportedVersion(2)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_entry(&trailing), Err(DecodeError::NotCanonical));
        // The join entry spelled out field by field (postcard writes a map
        // as its length and the pairs, a variant as its index): in order it
        // decodes; with keys unsorted or repeated it is not canonical.
        let members = vec![Member {
            id: 4,
            addr: "127.0.0.1:7004".into(),
        }];
        let spelled = |keys: [u64; 2]| {
            let pairs: Vec<(u64, Vec<Member>)> =
                keys.iter().map(|&k| (k, members.clone())).collect();
            let fields = (1_234u64, 1u32, 1u64, 1u64, 0u32, pairs);
            postcard::to_extend(&fields, vec![WIRE_VERSION]).unwrap()
        };
        assert_eq!(spelled([5, 6]), good);
        assert_eq!(
            decode_entry(&spelled([5, 5])),
            Err(DecodeError::NotCanonical)
        );
        let unsorted = spelled([6, 5]);
        assert_eq!(decode_entry(&unsorted), Err(DecodeError::NotCanonical));
    }

    #[test]
    fn snapshot_round_trips_and_refuses_damage() {
        let c = busy();
        let snap = c.snapshot();
        assert_eq!(Controller::restore(&snap), Ok(c.clone()));
        assert_eq!(
            Controller::restore(&snap[..6]),
            Err(SnapshotError::TooShort(6))
        );
        let mut bad = snap.to_vec();
        bad[0] = b'X';
        assert_eq!(Controller::restore(&bad), Err(SnapshotError::BadMagic));
        let mut flipped = snap.to_vec();
        flipped[10] ^= 1;
        assert!(matches!(
            Controller::restore(&flipped),
            Err(SnapshotError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn snapshot_with_valid_checksum_but_broken_invariants_is_refused() {
        let mut c = busy();
        c.configs[1].num = 7;
        let err = Controller::restore(&encode_snapshot(&c)).unwrap_err();
        assert!(matches!(err, SnapshotError::Invalid(_)), "{err:?}");
        let mut c = busy();
        c.configs[1].shards[0] = 42; // a group not in the configuration
        assert!(matches!(
            Controller::restore(&encode_snapshot(&c)),
            Err(SnapshotError::Invalid(_))
        ));
        let mut c = busy();
        c.applied_index = 0; // more configurations than entries applied
        assert!(matches!(
            Controller::restore(&encode_snapshot(&c)),
            Err(SnapshotError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_entry(&input);
            let _ = decode_response(&input);
            let _ = Controller::restore(&input);
            let mut c = busy();
            let r = c.apply(4, &input);
            if !input.is_empty() && decode_entry(&input).is_err() {
                prop_assert!(matches!(r, Err(CtrlError::Malformed { .. })), "{:?}", r);
            }
        }

        #[test]
        fn mutated_entries_never_panic(pos in 0usize..64, byte in any::<u8>(), cut in 0usize..64) {
            let mut bytes = encode_entry(&join_entry()).to_vec();
            let i = pos % bytes.len();
            bytes[i] = byte;
            bytes.truncate(bytes.len() - cut % bytes.len());
            let _ = decode_entry(&bytes);
            let mut c = busy();
            let _ = c.apply(4, &bytes);
            c.check_invariants();
        }

        #[test]
        fn mutated_snapshot_bodies_never_panic(pos in 5usize..400, byte in any::<u8>()) {
            // Re-checksummed, so the decoder's content checks are what stand.
            let snap = busy().snapshot().to_vec();
            let body_end = snap.len() - CRC_BYTES;
            let mut bytes = snap[..body_end].to_vec();
            let i = 5 + (pos - 5) % (body_end - 5);
            bytes[i] = byte;
            let crc = crc32c::crc32c(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            if let Ok(c) = Controller::restore(&bytes) {
                c.check_invariants();
            }
        }
    }
}
