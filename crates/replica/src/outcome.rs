//! What the replica reports back for each request it accepted: one
//! [`Completion`] per token, exactly once.

use bytes::Bytes;
use raft::NodeId;

/// The caller's name for a request; echoed in its [`Completion`]. The replica
/// never interprets it. Tokens of requests in flight must be distinct.
pub type Token = u64;

/// The result of one accepted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub token: Token,
    pub outcome: Outcome,
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The proposal committed and was applied: the state machine's response
    /// (which may be a `kv::KvError`, e.g. `SessionExpired`).
    Applied(kv::Response),
    /// A ReadIndex read was served: the key's value at a linearizable point.
    Value(Option<Bytes>),
    /// The proposal's fate is unknown: leadership was lost, or its log slot
    /// was taken by another entry or covered by a snapshot before this node
    /// saw it apply. It may or may not take effect; retry with the same
    /// (client id, seq) — the session makes the retry exactly-once.
    Unknown { hint: Option<NodeId> },
    /// The read could not be confirmed (leadership lost). It had no effect;
    /// retry, at `hint` if known.
    ReadAborted { hint: Option<NodeId> },
}
