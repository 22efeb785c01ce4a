//! Plain data the core and its storage exchange: ids, log entries, hard state, snapshots.
//!
//! Everything here is a value type with no behaviour beyond size accounting; the
//! rules about how these values may change live in `log.rs`, `raw_node.rs` and friends.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;

/// Identifies one member of a replica group. `0` is never a valid id ("none").
pub type NodeId = u64;
/// A Raft term (§5.1). Terms only grow on any one node.
pub type Term = u64;
/// A log index. Index 0 is the empty prefix; the first real entry has index 1.
pub type Index = u64;

/// The largest term a node ever holds, and a bound on every term a message
/// may carry. Half the `u64` range: a group electing a leader every
/// microsecond would need 290,000 years to get here, so a larger term is
/// corrupt or hostile, and accepting one would let `term + 1` wrap to 0 and
/// stop every election for good. A node at `MAX_TERM` no longer campaigns.
pub const MAX_TERM: Term = u64::MAX / 2;
/// The largest log index, and a bound on every index or byte offset a
/// message may carry; same reasoning as [`MAX_TERM`].
pub const MAX_INDEX: Index = u64::MAX / 2;

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// Application data, handed to the state machine when committed.
    Normal,
    /// The empty entry a new leader appends in its own term (§5.4.2, dissertation §6.4):
    /// it commits the previous terms' entries and gates ReadIndex. The state machine skips it.
    Noop,
    /// A membership change: `data` is an encoded `membership::ConfChangeEntry`. It takes
    /// effect when appended (see `membership`); the state machine skips it.
    ConfChange,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub kind: EntryKind,
    pub data: Bytes,
}

impl Entry {
    /// Fixed per-entry overhead used for message and cache size accounting.
    pub const OVERHEAD_BYTES: u64 = 24;

    pub fn normal(term: Term, index: Index, data: Bytes) -> Self {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data,
        }
    }

    pub fn noop(term: Term, index: Index) -> Self {
        Entry {
            term,
            index,
            kind: EntryKind::Noop,
            data: Bytes::new(),
        }
    }

    /// Approximate encoded size, used to bound messages.
    pub fn size_bytes(&self) -> u64 {
        Self::OVERHEAD_BYTES + self.data.len() as u64
    }
}

/// State that must be durable before the node answers anything that depends on it
/// (Figure 2, "Persistent state on all servers"). `commit` is kept as a hint for restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    /// The candidate this node voted for in `term`, if any. Invariant: at most one per term.
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// Where a snapshot sits in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last index the snapshot covers.
    pub index: Index,
    /// Term of the entry at `index`.
    pub term: Term,
}

/// A state-machine snapshot covering the log prefix `1..=meta.index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// The membership in force at `meta.index`. `None` only in snapshots written before
    /// memberships were recorded (and the empty one): the node's configured peers apply.
    pub conf: Option<Membership>,
    pub data: Bytes,
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.meta.index == 0
    }
}

/// A piece of a snapshot being received from the leader, for the driver to write to
/// storage (`Storage::write_snapshot_chunk`): the core keeps only how many bytes it
/// has handed out, never the bytes themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub meta: SnapshotMeta,
    /// Where `data` goes in the snapshot's data (0 starts a new transfer).
    pub offset: u64,
    pub data: Bytes,
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Volatile state the application may want to observe (who leads, in which role we are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    pub leader: Option<NodeId>,
    pub role: Role,
}

/// The answer to a `read_index` call: once the state machine has applied `index`,
/// a read identified by `ctx` may be served from it linearizably.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: Index,
}
