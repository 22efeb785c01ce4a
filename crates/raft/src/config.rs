//! Configuration of one Raft node. Every limit has a unit in its name and a default.

use crate::error::{RaftError, Result};
use crate::types::{Index, NodeId};

#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// The group's voters at bootstrap, this node included. Used only until the log or a
    /// snapshot holds a membership (`membership`), which then wins; the group changes it
    /// through the log. Empty: this node joins an existing group and learns the
    /// membership from the leader (it never campaigns until a membership makes it a voter).
    pub peers: Vec<NodeId>,
    /// A follower campaigns after a random timeout in `[election_ticks, 2 * election_ticks)`
    /// without hearing from a leader (§5.2). Also the check-quorum period.
    pub election_ticks: u32,
    /// A leader sends heartbeats every `heartbeat_ticks`. Must be < `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Pre-vote (dissertation §9.6): a node only bumps its term after a majority says it
    /// could win, so a partitioned node rejoining does not depose a healthy leader.
    pub pre_vote: bool,
    /// Check-quorum: a leader steps down when it has not heard from a majority within an
    /// election timeout, and followers ignore votes while they hear from a live leader.
    pub check_quorum: bool,
    /// Upper bound on the entry bytes of one Append message.
    pub max_append_bytes: u64,
    /// Upper bound on Append messages in flight to one follower in pipeline mode.
    pub max_inflight_appends: usize,
    /// Bytes of one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: u64,
    /// The leader refuses proposals while this many bytes are appended but uncommitted.
    pub max_uncommitted_bytes: u64,
    /// The index the application's state machine has already applied (on restart: the
    /// index of the snapshot it restored). Entries up to it are not handed out again.
    pub applied: Index,
    /// Seed of the election-timeout RNG. Same seed, same inputs: same outputs.
    pub seed: u64,
    /// Whether the driver checks each snapshot received from a leader before anything
    /// of it is adopted. Once its last chunk is persisted, `RawNode::received_snapshot`
    /// hands it out (read back from storage), and the driver answers with
    /// `RawNode::accept_received_snapshot` (it is installed through the next `Ready`)
    /// or `RawNode::refuse_received_snapshot` (it is dropped, counted in
    /// [`crate::Raft::rejected_snapshots`], never persisted or acknowledged). `false`:
    /// every received snapshot is installed as soon as its last chunk is persisted.
    pub check_received_snapshots: bool,
}

impl Config {
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Self {
        Config {
            id,
            peers,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            max_append_bytes: 1 << 20,
            max_inflight_appends: 256,
            snapshot_chunk_bytes: 1 << 20,
            max_uncommitted_bytes: 256 << 20,
            applied: 0,
            seed: id,
            check_received_snapshots: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(RaftError::InvalidConfig(s.to_string()));
        if self.id == 0 {
            return bad("id must be non-zero");
        }
        if !self.peers.is_empty() && !self.peers.contains(&self.id) {
            return bad("peers must contain this node's id (or be empty to join a group)");
        }
        if self.peers.contains(&0) {
            return bad("peer ids must be non-zero");
        }
        let mut sorted = self.peers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.peers.len() {
            return bad("peer ids must be distinct");
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return bad("need 0 < heartbeat_ticks < election_ticks");
        }
        if self.max_inflight_appends == 0 || self.snapshot_chunk_bytes == 0 {
            return bad("max_inflight_appends and snapshot_chunk_bytes must be positive");
        }
        Ok(())
    }
}
