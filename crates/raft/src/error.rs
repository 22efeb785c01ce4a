//! Typed errors. Conditions a caller acts on are variants with fields, never strings.

use crate::types::{Index, NodeId, Term};

/// Errors from a `Storage` implementation.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index is covered by the snapshot: send a snapshot instead.
    #[error("log index {index} is compacted (first available index is {first_index})")]
    Compacted { index: Index, first_index: Index },
    /// The requested index is past the end of the log.
    #[error("log index {index} is unavailable (last index is {last_index})")]
    Unavailable { index: Index, last_index: Index },
    /// A snapshot older than the one held was offered.
    #[error("snapshot at index {index} is older than the current one at {current}")]
    SnapshotOutOfDate { index: Index, current: Index },
    /// The underlying medium failed; the store refuses further writes.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// A write found the medium full (ENOSPC, or a quota): it did not complete, and
    /// nothing since the last successful sync is durable. The store refuses further
    /// writes like `Io`; unlike `Io` (a failed fsync may have lost data the kernel had
    /// accepted), reopening the store once space is freed is safe.
    #[error("storage is out of space: {0}")]
    NoSpace(String),
}

/// Errors returned to the application for API misuse or expected conditions.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RaftError {
    /// Proposals are accepted only by the leader; `hint` is the leader this node knows of.
    #[error("not the leader (leader hint: {hint:?})")]
    NotLeader { hint: Option<NodeId> },
    /// The proposal was refused because too many bytes are uncommitted.
    #[error("proposal dropped: {uncommitted_bytes} uncommitted bytes exceed the limit")]
    ProposalDropped { uncommitted_bytes: u64 },
    /// `compact` was asked to cover entries the application has not applied.
    #[error("cannot compact to {index}: only {applied} is applied")]
    CompactBeyondApplied { index: Index, applied: Index },
    /// `compact` was asked for an index at or before the current snapshot.
    #[error("cannot compact to {index}: already compacted to {first_index}")]
    AlreadyCompacted { index: Index, first_index: Index },
    /// The stored hard state holds a term beyond `MAX_TERM`: written by
    /// a build that accepted impossible terms from the network. Elections
    /// could never succeed from it.
    #[error("stored term {term} is impossible (beyond the largest a group can reach); the data directory holds a corrupt or injected term")]
    ImpossibleTerm { term: Term },
    /// A membership change before this leader committed an entry of its own term (the
    /// 2015 single-server-change bug, see `membership`). Retry shortly: the no-op a new
    /// leader appends commits within a round trip.
    #[error(
        "no membership change yet: leader of term {term} has not committed an entry of its term"
    )]
    ConfChangeTooEarly { term: Term },
    /// Another membership change (at `index`) is not committed yet: one at a time.
    #[error(
        "a membership change is already in progress (log index {index}, committed {committed})"
    )]
    ConfChangePending { index: Index, committed: Index },
    /// The change makes no sense against the current membership.
    #[error("membership change for node {id} refused: {reason}")]
    InvalidConfChange { id: NodeId, reason: &'static str },
    /// A leadership transfer is under way: proposals and changes wait until it ends.
    #[error("leadership transfer to node {to} in progress")]
    TransferInProgress { to: NodeId },
    /// A leadership transfer to a node that cannot take it.
    #[error("cannot transfer leadership to node {id}: {reason}")]
    InvalidTransfer { id: NodeId, reason: &'static str },
    /// The configuration is unusable.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, RaftError>;
