//! Configuration of one replica: the Raft node's and the replica's own
//! limits (snapshot triggers, session tick interval). The state machine's
//! configuration lives in the machine the host passes to
//! [`crate::Replica::new`].
//!
//! Invariant: `raft.applied` is ignored (the replica sets it from the
//! snapshot it restores).

/// How a [`crate::Replica`] is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Raft node. `raft.applied` is overwritten at boot.
    pub raft: raft::Config,
    /// Snapshot and compact the log once the persisted log (entries, by
    /// `raft::Entry::size_bytes`, plus hard state) reaches this many bytes.
    /// `None`: no size trigger.
    pub snapshot_threshold_bytes: Option<u64>,
    /// Also snapshot once this many entries have been applied since the last
    /// snapshot (the Raft lab's "snapshot every N entries"; checked after
    /// every drive). `None`: no count trigger.
    pub snapshot_every_entries: Option<u64>,
    /// A leader that has proposed nothing for this long proposes the state
    /// machine's `tick_command` (if it has one), so log time advances and
    /// idle sessions expire even when no client writes (dissertation §6.3).
    /// `None`: never.
    pub session_tick_interval_ms: Option<u64>,
    /// The leader writes its log without syncing inside `drive` and leaves the sync to
    /// the host ([`crate::Replica::take_sync`], [`crate::Replica::synced`]), so it keeps
    /// stepping acknowledgements and proposals while its own fsync runs (dissertation
    /// §10.2.1; `raft::RawNode::write`). `false`: every Ready is synced inside `drive`.
    pub leader_sync_by_host: bool,
}

/// Bytes the replica counts for the hard state in the persisted Raft state
/// (the same constant as `raft::MemStorage::log_size_bytes`).
pub const HARD_STATE_BYTES: u64 = 32;

impl Config {
    /// Defaults for everything but the Raft membership.
    pub fn new(raft: raft::Config) -> Self {
        Config {
            raft,
            snapshot_threshold_bytes: Some(64 << 20),
            snapshot_every_entries: None,
            session_tick_interval_ms: Some(60_000),
            leader_sync_by_host: false,
        }
    }
}
