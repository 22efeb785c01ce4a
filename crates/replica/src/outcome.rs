//! What the replica reports back for each request it accepted: one
//! [`Completion`] per token, exactly once.
//!
//! Generic over the state machine `M`; the trait impls are written out (not
//! derived) so they ask only that `M`'s response and query-result types be
//! comparable and printable, not `M` itself.

use std::fmt;

use raft::NodeId;

/// The caller's name for a request; echoed in its [`Completion`]. The replica
/// never interprets it. Tokens of requests in flight must be distinct.
pub type Token = u64;

/// The result of one accepted request.
pub struct Completion<M: rsm::StateMachine> {
    pub token: Token,
    pub outcome: Outcome<M>,
}

/// How a request ended.
pub enum Outcome<M: rsm::StateMachine> {
    /// The proposal committed and was applied: the state machine's response
    /// (which may be the machine's own error, e.g. kv's `SessionExpired`).
    Applied(M::Response),
    /// A ReadIndex read was served: the query's answer at a linearizable point.
    Value(M::QueryResult),
    /// The proposal's fate is unknown: leadership was lost, or its log slot
    /// was taken by another entry or covered by a snapshot before this node
    /// saw it apply. It may or may not take effect; retry with the same
    /// (client id, seq) — the session makes the retry exactly-once.
    Unknown { hint: Option<NodeId> },
    /// The read could not be confirmed (leadership lost). It had no effect;
    /// retry, at `hint` if known.
    ReadAborted { hint: Option<NodeId> },
}

impl<M: rsm::StateMachine> Clone for Outcome<M> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Applied(r) => Outcome::Applied(r.clone()),
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Unknown { hint } => Outcome::Unknown { hint: *hint },
            Outcome::ReadAborted { hint } => Outcome::ReadAborted { hint: *hint },
        }
    }
}

impl<M: rsm::StateMachine> fmt::Debug for Outcome<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Applied(r) => f.debug_tuple("Applied").field(r).finish(),
            Outcome::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Outcome::Unknown { hint } => f.debug_struct("Unknown").field("hint", hint).finish(),
            Outcome::ReadAborted { hint } => {
                f.debug_struct("ReadAborted").field("hint", hint).finish()
            }
        }
    }
}

impl<M: rsm::StateMachine> PartialEq for Outcome<M> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Outcome::Applied(a), Outcome::Applied(b)) => a == b,
            (Outcome::Value(a), Outcome::Value(b)) => a == b,
            (Outcome::Unknown { hint: a }, Outcome::Unknown { hint: b }) => a == b,
            (Outcome::ReadAborted { hint: a }, Outcome::ReadAborted { hint: b }) => a == b,
            _ => false,
        }
    }
}

impl<M: rsm::StateMachine> Eq for Outcome<M>
where
    M::Response: Eq,
    M::QueryResult: Eq,
{
}

impl<M: rsm::StateMachine> Clone for Completion<M> {
    fn clone(&self) -> Self {
        Completion {
            token: self.token,
            outcome: self.outcome.clone(),
        }
    }
}

impl<M: rsm::StateMachine> fmt::Debug for Completion<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("token", &self.token)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl<M: rsm::StateMachine> PartialEq for Completion<M> {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token && self.outcome == other.outcome
    }
}

impl<M: rsm::StateMachine> Eq for Completion<M>
where
    M::Response: Eq,
    M::QueryResult: Eq,
{
}
