//! The snapshot format: the whole state machine as one checksummed blob.
//!
//! Owns: `encode` and `decode` of a [`StateMachine`], and [`SnapshotError`].
//!
//! ```text
//! "RKVS" VERSION(u8 = 2) postcard(body) crc32c(everything before it, u32 LE)
//! body = applied_index log_time_ms
//!        session_timeout_ms max_sessions response_window
//!        store      (map key -> item {value, expire_at_ms, version}, key order)
//!        sessions   [ {client_id last_active_ms last_index highest_seq
//!                      responses: map seq -> response} ]  (client-id order)
//! ```
//! Version 2 added typed values, expiry and per-key versions. Version 1
//! bodies (strings only) still load (`snapshot_v1`); a test restores a
//! version-1 snapshot kept under `testdata/`.
//!
//! Invariants: `decode(encode(sm)) == sm`; `decode` never panics and
//! accepts maps only in strictly increasing key order (so one state has
//! one encoding, up to postcard's acceptance of non-canonical varints), and
//! it re-checks every limit and invariant (sorted, unique ids, sessions within
//! their window and consistent with the log position, the store's expiry
//! index), so a corrupt-but-checksummed snapshot is an error rather than a
//! later panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;
use crate::command::Response;
use crate::config::Config;
use crate::session::{Session, SessionTable};
use crate::state_machine::StateMachine;
use crate::store::Store;
use crate::wire::check_reply_limits;

/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"RKVS";
/// Current snapshot format version (1 is still read).
pub const SNAPSHOT_VERSION: u8 = 2;

/// Why snapshot bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {0} bytes, too short to be one")]
    TooShort(usize),
    #[error("not a kv snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u8),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("snapshot body undecodable: {0}")]
    Decode(#[from] DecodeError),
    #[error("snapshot content invalid: {0}")]
    Invalid(&'static str),
}

#[derive(Serialize, Deserialize)]
struct SessionRow {
    client_id: u64,
    last_active_ms: u64,
    last_index: u64,
    highest_seq: u64,
    /// By seq, strictly increasing (a map, written as its pairs).
    responses: Vec<(u64, Response)>,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    applied_index: u64,
    log_time_ms: u64,
    config: (u64, u64, u64),
    store: &'a Store,
    sessions: Vec<SessionRow>,
}

#[derive(Deserialize)]
struct Body {
    applied_index: u64,
    log_time_ms: u64,
    config: (u64, u64, u64),
    store: Store,
    sessions: Vec<SessionRow>,
}

/// Writes the snapshot of `sm` to `out` as it is encoded (one buffer of
/// `rsm::frame::FRAME_BUFFER_BYTES`, plus the session rows: bounded by
/// `max_sessions`, not by the data set). The only errors are `out`'s.
pub(crate) fn encode_to(sm: &StateMachine, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let c = &sm.config;
    let sessions = sm
        .sessions
        .iter()
        .map(|(&client_id, s)| SessionRow {
            client_id,
            last_active_ms: s.last_active_ms(),
            last_index: s.last_index(),
            highest_seq: s.highest_seq(),
            responses: s.responses().iter().map(|(&q, r)| (q, r.clone())).collect(),
        })
        .collect();
    let body = BodyRef {
        applied_index: sm.applied_index,
        log_time_ms: sm.log_time_ms,
        config: (c.session_timeout_ms, c.max_sessions, c.response_window),
        store: &sm.store,
        sessions,
    };
    rsm::frame::write_frame(&SNAPSHOT_MAGIC, SNAPSHOT_VERSION, out, |w| {
        postcard::to_io(&body, &mut *w)
            .map(drop)
            .map_err(|e| w.error(e))
    })
}

/// [`encode_to`] into one buffer.
pub(crate) fn encode(sm: &StateMachine) -> Bytes {
    let mut out = Vec::new();
    encode_to(sm, &mut out).expect("writing to a Vec cannot fail");
    Bytes::from(out)
}

pub(crate) fn decode(input: &[u8]) -> Result<StateMachine, SnapshotError> {
    decode_input(rsm::SnapshotInput::in_memory(input))
}

/// [`decode`], releasing the input's pages behind the checksum pass and then behind
/// the decoder (`snapshot_flavor`): a mapped snapshot file is never resident whole.
pub(crate) fn decode_input(input: rsm::SnapshotInput<'_>) -> Result<StateMachine, SnapshotError> {
    let sm = match check_frame(input, SNAPSHOT_VERSION) {
        Ok(body) => decode_body(rsm::SnapshotInput::new(body, &|part| input.release(part)))?,
        Err(SnapshotError::UnsupportedVersion(1)) => {
            crate::snapshot_v1::decode_body(check_frame(input, 1)?)?
        }
        Err(e) => return Err(e),
    };
    validate(&sm)?;
    Ok(sm)
}

fn decode_body(body: rsm::SnapshotInput<'_>) -> Result<StateMachine, SnapshotError> {
    let (b, rest): (Body, _) = crate::snapshot_flavor::take_from_input(body)
        .map_err(|e| DecodeError::Body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()).into());
    }
    let (session_timeout_ms, max_sessions, response_window) = b.config;
    let config = Config {
        session_timeout_ms,
        max_sessions,
        response_window,
    };
    config.validate().map_err(SnapshotError::Invalid)?;
    if b.sessions.len() as u64 > config.max_sessions {
        return Err(SnapshotError::Invalid("more sessions than max_sessions"));
    }
    let mut sessions = SessionTable::new();
    let mut previous_id = None;
    for row in b.sessions {
        if previous_id.is_some_and(|p| p >= row.client_id) {
            return Err(SnapshotError::Invalid(
                "session ids not strictly increasing",
            ));
        }
        previous_id = Some(row.client_id);
        if row.responses.len() as u64 > config.response_window {
            return Err(SnapshotError::Invalid(
                "more cached responses than the window",
            ));
        }
        if row
            .responses
            .iter()
            .any(|(_, r)| check_reply_limits(r).is_err())
        {
            return Err(SnapshotError::Invalid("cached response over the limits"));
        }
        if row.responses.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(SnapshotError::Invalid(
                "cached seqs not strictly increasing",
            ));
        }
        let responses: BTreeMap<u64, Response> = row.responses.into_iter().collect();
        let s = Session::restored(
            row.last_active_ms,
            row.last_index,
            row.highest_seq,
            responses,
        );
        sessions
            .insert_restored(row.client_id, s)
            .map_err(SnapshotError::Invalid)?;
    }
    Ok(StateMachine {
        config,
        applied_index: b.applied_index,
        log_time_ms: b.log_time_ms,
        store: b.store,
        sessions,
        expired: crate::ExpiredKeys::default(),
    })
}

/// The state machine's invariants, re-checked on what a snapshot held.
fn validate(sm: &StateMachine) -> Result<(), SnapshotError> {
    let c = &sm.config;
    c.validate().map_err(SnapshotError::Invalid)?;
    sm.store.validate().map_err(SnapshotError::Invalid)?;
    sm.sessions
        .validate_against_log(sm.applied_index, sm.log_time_ms, c.session_timeout_ms)
        .map_err(SnapshotError::Invalid)?;
    sm.sessions
        .validate(c.max_sessions, c.response_window)
        .map_err(SnapshotError::Invalid)
}

/// Checks magic, version and checksum (the shared `rsm::frame`, releasing the bytes
/// it has summed); returns the body.
fn check_frame<'a>(input: rsm::SnapshotInput<'a>, version: u8) -> Result<&'a [u8], SnapshotError> {
    use rsm::frame::FrameError;
    rsm::frame::check_frame_input(input, &SNAPSHOT_MAGIC, version).map_err(|e| match e {
        FrameError::TooShort(n) => SnapshotError::TooShort(n),
        FrameError::BadMagic => SnapshotError::BadMagic,
        FrameError::UnsupportedVersion(v) => SnapshotError::UnsupportedVersion(v),
        FrameError::ChecksumMismatch { stored, computed } => {
            SnapshotError::ChecksumMismatch { stored, computed }
        }
    })
}
