//! Typed errors. `Rejected` is an expected condition the caller acts on (try
//! the hinted leader, back off); `ReplicaError` means the node must stop.

use raft::NodeId;

/// Why `propose` or `read` refused a request. Nothing was started: the
/// request certainly did not take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Only the leader takes requests; `hint` is the leader this node knows of.
    #[error("not the leader (leader hint: {hint:?})")]
    NotLeader { hint: Option<raft::NodeId> },
    /// The leader has too many uncommitted bytes; back off and retry.
    #[error("leader is busy ({uncommitted_bytes} uncommitted bytes)")]
    Busy { uncommitted_bytes: u64 },
}

impl Rejected {
    /// The leader hint, if any.
    pub fn hint(&self) -> Option<NodeId> {
        match self {
            Rejected::NotLeader { hint } => *hint,
            Rejected::Busy { .. } => None,
        }
    }
}

/// A condition the replica cannot continue from: the host stops the node.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Durable storage failed (it now refuses writes; restart from disk).
    #[error("storage failed: {0}")]
    Storage(#[from] raft::StorageError),
    /// The Raft core refused an operation the replica relies on.
    #[error("raft: {0}")]
    Raft(raft::RaftError),
    /// A snapshot (from storage at boot, or from the leader) did not
    /// restore into the state machine.
    #[error("snapshot at index {index} is unusable: {source}")]
    Snapshot {
        index: raft::Index,
        source: rsm::SnapshotError,
    },
    /// A snapshot's state machine was applied to another index than the
    /// snapshot claims to cover.
    #[error("snapshot at index {index} holds state applied to {applied}")]
    SnapshotIndex { index: raft::Index, applied: u64 },
}

impl From<raft::RaftError> for ReplicaError {
    fn from(e: raft::RaftError) -> Self {
        match e {
            raft::RaftError::Storage(s) => ReplicaError::Storage(s),
            other => ReplicaError::Raft(other),
        }
    }
}
