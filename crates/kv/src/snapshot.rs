//! The snapshot format: the whole state machine as one checksummed blob.
//!
//! Owns: `encode` and `decode` of a [`StateMachine`], and [`SnapshotError`].
//!
//! Layout (integers are LEB128 varints unless noted):
//! ```text
//! "RKVS" VERSION(u8)
//! applied_index log_time_ms
//! session_timeout_ms max_sessions response_window
//! n_keys     { key value }*                       (strictly increasing keys)
//! n_sessions { client_id last_active_ms last_index highest_seq
//!              n_responses { seq response }* }*   (strictly increasing ids/seqs)
//! crc32c(everything before it) as u32 little-endian
//! ```
//! A handful of small keys and one session take well under 100 bytes.
//!
//! Invariants: `decode(encode(sm)) == sm`; `decode` never panics and accepts
//! only canonical input (sorted, no duplicates, within every limit), and it
//! re-checks the state machine's invariants before returning, so a
//! corrupt-but-checksummed snapshot is an error rather than a later panic.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::config::{Config, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::session::{Session, SessionTable};
use crate::state_machine::StateMachine;
use crate::store::Store;
use crate::wire::{read_response_body, write_response_body};

/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"RKVS";
/// Current snapshot format version.
pub const SNAPSHOT_VERSION: u8 = 1;

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

pub(crate) fn encode(sm: &StateMachine) -> Bytes {
    let mut w = Writer::new();
    w.raw(&SNAPSHOT_MAGIC);
    w.u8(SNAPSHOT_VERSION);
    w.varint(sm.applied_index);
    w.varint(sm.log_time_ms);
    write_config(&mut w, &sm.config);
    w.varint(sm.store.len() as u64);
    for (key, value) in sm.store.iter() {
        w.bytes(key);
        w.bytes(value);
    }
    w.varint(sm.sessions.len() as u64);
    for (&id, session) in sm.sessions.iter() {
        write_session(&mut w, id, session);
    }
    let crc = crc32c::crc32c(w.as_slice());
    w.raw(&crc.to_le_bytes());
    w.finish()
}

pub(crate) fn decode(input: &[u8]) -> Result<StateMachine, SnapshotError> {
    let body = check_frame(input)?;
    let mut r = Reader::new(body);
    let applied_index = r.varint()?;
    let log_time_ms = r.varint()?;
    let config = read_config(&mut r)?;
    let store = read_store(&mut r)?;
    let sessions = read_sessions(&mut r, &config, applied_index, log_time_ms)?;
    r.finish()?;
    let sm = StateMachine {
        config,
        applied_index,
        log_time_ms,
        store,
        sessions,
    };
    sm.sessions
        .validate(config.max_sessions, config.response_window)
        .map_err(SnapshotError::Invalid)?;
    Ok(sm)
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

fn write_config(w: &mut Writer, c: &Config) {
    w.varint(c.session_timeout_ms);
    w.varint(c.max_sessions);
    w.varint(c.response_window);
}

fn read_config(r: &mut Reader<'_>) -> Result<Config, SnapshotError> {
    let config = Config {
        session_timeout_ms: r.varint()?,
        max_sessions: r.varint()?,
        response_window: r.varint()?,
    };
    config.validate().map_err(SnapshotError::Invalid)?;
    Ok(config)
}

fn read_store(r: &mut Reader<'_>) -> Result<Store, SnapshotError> {
    let n_keys = r.varint()?;
    let mut store = Store::new();
    let mut previous: Option<Bytes> = None;
    for _ in 0..n_keys {
        let key = r.bytes("key", MAX_KEY_BYTES)?;
        let value = r.bytes("value", MAX_VALUE_BYTES)?;
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(SnapshotError::Invalid("keys not strictly increasing"));
        }
        previous = Some(key.clone());
        store.insert_restored(key, value);
    }
    Ok(store)
}

fn write_session(w: &mut Writer, id: u64, s: &Session) {
    w.varint(id);
    w.varint(s.last_active_ms);
    w.varint(s.last_index);
    w.varint(s.highest_seq);
    w.varint(s.responses.len() as u64);
    for (&seq, response) in &s.responses {
        w.varint(seq);
        write_response_body(w, response);
    }
}

fn read_sessions(
    r: &mut Reader<'_>,
    config: &Config,
    applied_index: u64,
    log_time_ms: u64,
) -> Result<SessionTable, SnapshotError> {
    let n_sessions = r.varint()?;
    if n_sessions > config.max_sessions {
        return Err(SnapshotError::Invalid("more sessions than max_sessions"));
    }
    let mut table = SessionTable::new();
    let mut previous_id = None;
    for _ in 0..n_sessions {
        let (id, session) = read_session(r, config)?;
        if previous_id.is_some_and(|p| p >= id) {
            return Err(SnapshotError::Invalid(
                "session ids not strictly increasing",
            ));
        }
        previous_id = Some(id);
        table
            .insert_restored(id, session)
            .map_err(SnapshotError::Invalid)?;
    }
    table
        .validate_against_log(applied_index, log_time_ms, config.session_timeout_ms)
        .map_err(SnapshotError::Invalid)?;
    Ok(table)
}

fn read_session(r: &mut Reader<'_>, config: &Config) -> Result<(u64, Session), SnapshotError> {
    let id = r.varint()?;
    let last_active_ms = r.varint()?;
    let last_index = r.varint()?;
    let highest_seq = r.varint()?;
    let n_responses = r.varint()?;
    if n_responses > config.response_window {
        return Err(SnapshotError::Invalid(
            "more cached responses than the window",
        ));
    }
    let mut responses = std::collections::BTreeMap::new();
    let mut previous_seq = None;
    for _ in 0..n_responses {
        let seq = r.varint()?;
        if previous_seq.is_some_and(|p| p >= seq) {
            return Err(SnapshotError::Invalid(
                "cached seqs not strictly increasing",
            ));
        }
        previous_seq = Some(seq);
        responses.insert(seq, read_response_body(r)?);
    }
    Ok((
        id,
        Session {
            last_active_ms,
            last_index,
            highest_seq,
            responses,
        },
    ))
}
