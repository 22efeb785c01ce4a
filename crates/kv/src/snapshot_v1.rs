//! Format 1 of the snapshot body (the hand codec raftkv wrote before
//! format 2), decode only: a replica restarted from a snapshot taken then,
//! or sent one by a peer still running that version, loads it. Strings
//! only, no expiries; every key gets the applied index as its version.
//!
//! Layout (integers are LEB128 varints):
//! ```text
//! applied_index log_time_ms
//! session_timeout_ms max_sessions response_window
//! n_keys     { key value }*                       (strictly increasing keys)
//! n_sessions { client_id last_active_ms last_index highest_seq
//!              n_responses { seq response }* }*   (strictly increasing ids/seqs)
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::codec::Reader;
use crate::config::{Config, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::session::{Session, SessionTable};
use crate::snapshot::SnapshotError;
use crate::state_machine::StateMachine;
use crate::store::Store;
use crate::wire_v1::read_response_body;

/// Decodes a format-1 body (the frame is already checked).
pub(crate) fn decode_body(body: &[u8]) -> Result<StateMachine, SnapshotError> {
    let mut r = Reader::new(body);
    let applied_index = r.varint()?;
    let log_time_ms = r.varint()?;
    let config = read_config(&mut r)?;
    let store = read_store(&mut r, applied_index)?;
    let sessions = read_sessions(&mut r, &config)?;
    r.finish()?;
    Ok(StateMachine {
        config,
        applied_index,
        log_time_ms,
        store,
        sessions,
        expired: crate::ExpiredKeys::default(),
    })
}

fn read_config(r: &mut Reader<'_>) -> Result<Config, SnapshotError> {
    Ok(Config {
        session_timeout_ms: r.varint()?,
        max_sessions: r.varint()?,
        response_window: r.varint()?,
    })
}

/// Keys get version `applied_index` (see `Store::from_strings`).
fn read_store(r: &mut Reader<'_>, applied_index: u64) -> Result<Store, SnapshotError> {
    let n_keys = r.varint()?;
    let mut data = Vec::new();
    let mut previous: Option<Bytes> = None;
    for _ in 0..n_keys {
        let key = r.bytes("key", MAX_KEY_BYTES)?;
        let value = r.bytes("value", MAX_VALUE_BYTES)?;
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(SnapshotError::Invalid("keys not strictly increasing"));
        }
        previous = Some(key.clone());
        data.push((key, value));
    }
    Ok(Store::from_strings(data, applied_index))
}

fn read_sessions(r: &mut Reader<'_>, config: &Config) -> Result<SessionTable, SnapshotError> {
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
    let mut responses = BTreeMap::new();
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
    let session = Session::restored(last_active_ms, last_index, highest_seq, responses);
    Ok((id, session))
}
