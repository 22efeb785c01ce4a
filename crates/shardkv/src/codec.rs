//! Byte formats: log entries, inter-group messages and snapshots.
//!
//! Owns: the framing around serde/postcard bodies and the checks that make
//! decoding strict. Bytes from outside (the log, the network, a snapshot
//! file) never panic a node: every decoder returns an error instead, and
//! re-checks the limits and invariants a well-formed value keeps.
//!
//! ```text
//! entry / message = VERSION(u8) postcard(body)          (no trailing bytes)
//! snapshot        = "SKVS" VERSION(u8) postcard(body) crc32c(all before it, u32 LE)
//! ```
//! Version 2 (entries, messages, snapshots) carries shard data as `kv`'s
//! typed store (values with their expiry and version) and `kv`'s ops.
//! Version-1 log entries and snapshots (string values only) still decode
//! (`legacy`): a group restarted on a log or snapshot written then resumes.
//! Messages between groups are version 2 only (both ends run one release).
//! Why postcard rather than `kv`'s hand codec: the bodies here nest
//! configurations, whole shards and session tables; a derived codec keeps
//! them in step with the types, and postcard is compact (varints) and never
//! allocates more than its input can hold. Versions are bumped on any
//! change; a decoder refuses versions it does not know.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use shardmeta::Config;

use crate::command::{Command, Entry, Op, SessionExport, ShardData};
use crate::machine::{Shard, ShardKv};
use crate::session::Sessions;
use crate::settings::Settings;

/// The version byte leading every log entry and inter-group message.
pub const WIRE_VERSION: u8 = 2;
/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"SKVS";
/// Current snapshot format version (1 is still read).
pub const SNAPSHOT_VERSION: u8 = 2;

/// Why an entry or message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    #[error("undecodable body: {0}")]
    Body(String),
    #[error("{0} trailing bytes after the end")]
    TrailingBytes(usize),
    #[error("invalid content: {0}")]
    Invalid(&'static str),
}

/// Why snapshot bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {0} bytes, too short to be one")]
    TooShort(usize),
    #[error("not a shardkv snapshot (bad magic)")]
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

/// Decodes a log entry payload (version 1 or 2) strictly; never panics.
pub fn decode_entry(input: &[u8]) -> Result<Entry, DecodeError> {
    let entry: Entry = match input.first() {
        Some(&1) => crate::legacy::decode_entry_v1(&input[1..])?,
        _ => decode_versioned(input)?,
    };
    check_command(&entry.cmd)?;
    Ok(entry)
}

pub(crate) fn encode_versioned<T: Serialize>(value: &T) -> Bytes {
    let out =
        postcard::to_extend(value, vec![WIRE_VERSION]).expect("serialising to a Vec cannot fail");
    Bytes::from(out)
}

pub(crate) fn decode_versioned<T: DeserializeOwned>(input: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = input.split_first().ok_or(DecodeError::Empty)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    decode_body(body)
}

/// A whole postcard body, nothing after it.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Body(e.to_string()))?;
    match rest.len() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

fn check_command(cmd: &Command) -> Result<(), DecodeError> {
    match cmd {
        Command::Request(req) => check_op(&req.op),
        Command::NewConfig(config) => config
            .check()
            .map_err(|_| DecodeError::Invalid("configuration breaks its invariant")),
        Command::InstallShards {
            shards, sessions, ..
        } => {
            for data in shards.values() {
                check_shard_data(data)?;
            }
            check_sessions(sessions)
        }
        Command::DeleteShards { .. } | Command::ConfirmGc { .. } | Command::Tick => Ok(()),
    }
}

fn check_op(op: &Op) -> Result<(), DecodeError> {
    op.check_limits().map_err(DecodeError::Invalid)
}

pub(crate) fn check_shard_data(data: &ShardData) -> Result<(), DecodeError> {
    data.validate().map_err(DecodeError::Invalid)
}

pub(crate) fn check_sessions(sessions: &SessionExport) -> Result<(), DecodeError> {
    match sessions.values().all(|s| s.is_well_formed()) {
        true => Ok(()),
        false => Err(DecodeError::Invalid("malformed session")),
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    settings: &'a Settings,
    applied_index: u64,
    log_time_ms: u64,
    config: &'a Config,
    prev: &'a Config,
    shards: &'a [Shard],
    sessions: &'a SessionExport,
}

#[derive(Deserialize)]
pub(crate) struct SnapshotBody {
    pub(crate) settings: Settings,
    pub(crate) applied_index: u64,
    pub(crate) log_time_ms: u64,
    pub(crate) config: Config,
    pub(crate) prev: Config,
    pub(crate) shards: Vec<Shard>,
    pub(crate) sessions: SessionExport,
}

/// Writes the snapshot of `sm` to `out` as it is encoded (one frame buffer
/// plus the session export, bounded by the session limits; never the whole
/// state). The only errors are `out`'s.
pub(crate) fn encode_snapshot_to(
    sm: &ShardKv,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let sessions = sm.sessions.export();
    let body = SnapshotRef {
        settings: &sm.settings,
        applied_index: sm.applied_index,
        log_time_ms: sm.log_time_ms,
        config: &sm.config,
        prev: &sm.prev,
        shards: &sm.shards,
        sessions: &sessions,
    };
    rsm::frame::write_frame(&SNAPSHOT_MAGIC, SNAPSHOT_VERSION, out, |w| {
        postcard::to_io(&body, &mut *w)
            .map(drop)
            .map_err(|e| w.error(e))
    })
}

/// [`encode_snapshot_to`] into one buffer.
pub(crate) fn encode_snapshot(sm: &ShardKv) -> Bytes {
    let mut out = Vec::new();
    encode_snapshot_to(sm, &mut out).expect("writing to a Vec cannot fail");
    Bytes::from(out)
}

/// Decodes a snapshot, releasing the input's pages behind the checksum pass and then
/// behind the decoder (`kv::take_from_input`): a mapped snapshot file is never
/// resident whole. Version-1 bodies are decoded from memory.
pub(crate) fn decode_snapshot_input(
    input: rsm::SnapshotInput<'_>,
) -> Result<ShardKv, SnapshotError> {
    let b = match check_frame(input, SNAPSHOT_VERSION) {
        Ok(body) => {
            decode_released_body(rsm::SnapshotInput::new(body, &|part| input.release(part)))
        }
        Err(SnapshotError::UnsupportedVersion(1)) => {
            crate::legacy::decode_snapshot_v1(check_frame(input, 1)?)
        }
        Err(e) => return Err(e),
    }
    .map_err(|e| SnapshotError::Body(e.to_string()))?;
    b.settings
        .validate()
        .map_err(|why| SnapshotError::Invalid(why.into()))?;
    check_sessions(&b.sessions).map_err(|e| SnapshotError::Invalid(e.to_string()))?;
    let sm = ShardKv {
        keyspace: b.settings.keyspace(),
        settings: b.settings,
        applied_index: b.applied_index,
        log_time_ms: b.log_time_ms,
        config: b.config,
        prev: b.prev,
        shards: b.shards,
        sessions: Sessions::from_export(b.sessions),
        expired: kv::ExpiredKeys::default(),
    };
    sm.validate(true).map_err(SnapshotError::Invalid)?;
    Ok(sm)
}

/// The snapshot body, decoded with the input's parts released as they are read.
fn decode_released_body(body: rsm::SnapshotInput<'_>) -> Result<SnapshotBody, DecodeError> {
    let (value, rest) = kv::take_from_input(body).map_err(|e| DecodeError::Body(e.to_string()))?;
    match rest.len() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// Checks magic, version and checksum (the shared `rsm::frame`, releasing the bytes it
/// has summed); returns the body.
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
