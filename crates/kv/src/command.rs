//! The vocabulary of the state machine: operations, requests, log entries,
//! replies and errors. Plain data only; encoding lives in `wire`, behaviour
//! in `store`, `session` and `state_machine`.
//!
//! Invariants (enforced by the decoders and by the state machine):
//! - keys are at most [`crate::MAX_KEY_BYTES`], values at most
//!   [`crate::MAX_VALUE_BYTES`];
//! - a [`Request`]'s `client_id` names a session created by
//!   [`Command::RegisterSession`]; `seq` starts at 1 and a client allocates
//!   them consecutively.

use bytes::Bytes;

/// One key-value operation. Keys and values are binary-safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read through the log (the fallback when ReadIndex is not used).
    /// Replies [`Reply::Value`].
    Get { key: Bytes },
    /// Set `key` to `value`. Replies [`Reply::Done`].
    Put { key: Bytes, value: Bytes },
    /// Append to the value (missing key = empty). Replies [`Reply::Length`]
    /// with the new length in bytes.
    Append { key: Bytes, value: Bytes },
    /// Remove the key. Replies [`Reply::Deleted`] with whether it existed.
    Delete { key: Bytes },
}

/// A client's operation inside its session: the unit of exactly-once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The session, as returned by [`Reply::Registered`].
    pub client_id: u64,
    /// 1, 2, 3, ... per session. A retry reuses the same number.
    pub seq: u64,
    pub op: Op,
}

/// What one log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Open a new session (dissertation §6.3). Its id is the log index of
    /// this entry, so ids are unique and never reused.
    /// Replies [`Reply::Registered`].
    RegisterSession,
    /// A client operation with its session and sequence number.
    Request(Request),
    /// Advances log time only (lets a leader expire idle sessions while no
    /// client writes). Replies [`Reply::Done`].
    Tick,
}

/// The payload the state machine expects in a Raft log entry.
///
/// `timestamp_ms` is the leader's clock when it proposed the entry
/// (dissertation §6.3). The state machine's *log time* is the maximum
/// timestamp applied so far, so it never goes backwards even when a new
/// leader's clock lags the old one's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub cmd: Command,
}

/// The successful outcome of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A new session: use this `client_id` in every [`Request`].
    Registered { client_id: u64 },
    /// `Get`: the value, or `None` if the key is missing.
    Value(Option<Bytes>),
    /// `Put`, `Tick`, and an empty (Raft no-op) entry.
    Done,
    /// `Append`: the value's new length in bytes.
    Length(u64),
    /// `Delete`: whether the key existed.
    Deleted(bool),
}

/// Expected failures a caller acts on. Never a sign of a bug.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The session is unknown: never registered, expired by log time, or
    /// evicted by the session cap. The request was *not* applied; the client
    /// must register a new session. Whether its earlier requests took effect
    /// cannot be told any more.
    #[error("session {client_id} expired or unknown")]
    SessionExpired { client_id: u64 },
    /// `seq` is older than the session's response window: it may or may not
    /// have been applied, and its response is gone. Not applied now.
    #[error("request {seq} of session {client_id} is older than the response window")]
    StaleRequest { client_id: u64, seq: u64 },
    /// An `Append` would grow a value past [`crate::MAX_VALUE_BYTES`]. The
    /// value is unchanged.
    #[error("value would be {len} bytes, more than the {max} allowed")]
    ValueTooLarge { len: u64, max: u64 },
    /// The entry could not be decoded; nothing was applied.
    #[error("malformed command: {reason}")]
    Malformed { reason: String },
}

/// What applying one entry produced; also what goes on the wire.
pub type Response = Result<Reply, KvError>;

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &Bytes {
        match self {
            Op::Get { key } | Op::Delete { key } => key,
            Op::Put { key, .. } | Op::Append { key, .. } => key,
        }
    }
}
