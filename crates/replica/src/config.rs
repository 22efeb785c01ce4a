//! Configuration of one replica: the Raft node's, the state machine's, and the
//! replica's own limits (snapshot threshold, session tick interval).
//!
//! Invariant: `kv` is identical on every replica of a group (it decides which
//! sessions expire); `raft.applied` is ignored (the replica sets it from the
//! snapshot it restores).

/// How a [`crate::Replica`] is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Raft node. `raft.applied` is overwritten at boot.
    pub raft: raft::Config,
    /// The state machine. Must be the same on every replica of the group.
    pub kv: kv::Config,
    /// Snapshot and compact the log once the persisted log (entries, by
    /// `raft::Entry::size_bytes`, plus hard state) reaches this many bytes.
    /// `None`: never snapshot.
    pub snapshot_threshold_bytes: Option<u64>,
    /// A leader that has proposed nothing for this long proposes a
    /// `kv::Command::Tick`, so log time advances and idle sessions expire
    /// even when no client writes (dissertation §6.3). `None`: never.
    pub session_tick_interval_ms: Option<u64>,
}

/// Bytes the replica counts for the hard state in the persisted Raft state
/// (the same constant as `raft::MemStorage::log_size_bytes`).
pub const HARD_STATE_BYTES: u64 = 32;

impl Config {
    /// Defaults for everything but the Raft membership.
    pub fn new(raft: raft::Config) -> Self {
        Config {
            raft,
            kv: kv::Config::default(),
            snapshot_threshold_bytes: Some(64 << 20),
            session_tick_interval_ms: Some(60_000),
        }
    }
}
