//! Typed errors. [`Refused`] is an expected condition the caller acts on
//! (route elsewhere, retry); [`HostError`] is either a bad call the caller
//! made (adding a group twice) or a replica that must stop.

use replica::Rejected;
use shardmeta::{GroupId, NodeId};

/// Why the host did not take an input. Nothing was started: a refused
/// request certainly did not take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// This process hosts no replica of `group` (never added, or removed).
    #[error("group {group} is not hosted here")]
    NoSuchGroup { group: GroupId },
    /// A peer message addressed to another process.
    #[error("message for node {to} delivered to node {node}")]
    Misaddressed { to: NodeId, node: NodeId },
    /// `group` is parked: its log write found the disk full and it takes no
    /// part in Raft until it is reopened (`Host` docs).
    #[error("group {group} cannot write its log (disk full)")]
    DiskFull { group: GroupId },
    /// The group's replica refused the request (not the leader, busy).
    #[error("group {group}: {rejected}")]
    Rejected { group: GroupId, rejected: Rejected },
}

/// A call the host cannot carry out, or a replica that cannot continue.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `add_group` of a group already hosted.
    #[error("group {group} is already hosted here")]
    GroupExists { group: GroupId },
    /// `add_group` with a Raft id other than this process's node id (the
    /// replica of any group on process `p` has Raft id `p`).
    #[error("group {group}: raft id {raft_id} is not this node's id {node}")]
    WrongRaftId {
        group: GroupId,
        raft_id: NodeId,
        node: NodeId,
    },
    /// The group's replica failed (storage, snapshot): the group must stop;
    /// with a storage shared by every group, so must the process.
    #[error("group {group}: {source}")]
    Replica {
        group: GroupId,
        source: replica::ReplicaError,
    },
}
