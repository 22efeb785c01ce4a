//! What the simulator needs of a node's durable store: the `raft::Storage` it hands the
//! core, plus what survives a crash. The in-memory store survives as it is (the driver
//! persists each Ready to completion within one event); the disk store is dropped and
//! reopened from its directory, so every simulated restart exercises WAL recovery.

use std::path::PathBuf;

use raft::{Index, MemStorage, Storage};
use storage::{DiskOptions, DiskStorage};

pub trait SimStore: Storage + Sized {
    /// The store as a restarted process would find it. `unsynced_from`: the first
    /// entry a leader wrote whose sync had not completed (`RawNode::unsynced_from`);
    /// a store that models it loses those entries.
    fn crash_and_recover(self, unsynced_from: Option<Index>) -> Self;
}

impl SimStore for MemStorage {
    /// Loses the unsynced entries (the worst a crash can do to them) and any commit
    /// index that counted them; everything else was synced.
    fn crash_and_recover(self, unsynced_from: Option<Index>) -> Self {
        let Some(from) = unsynced_from else {
            return self;
        };
        let mut s = MemStorage::new();
        let snap = self.snapshot().expect("in-memory snapshot");
        if snap.meta.index > 0 {
            s.install_snapshot(snap).expect("fresh store");
        }
        let (first, end) = (self.first_index(), from.min(self.last_index() + 1));
        if first < end {
            let kept = self.entries(first, end, u64::MAX).expect("held entries");
            s.append(&kept).expect("contiguous");
        }
        let mut hs = self.hard_state();
        hs.commit = hs.commit.min(s.last_index());
        s.set_hard_state(hs).expect("in memory");
        s
    }
}

impl SimStore for DiskStorage {
    /// Reopens the directory: what was flushed to the files survives (the OS
    /// kept it), `unsynced_from` or not.
    fn crash_and_recover(self, _unsynced_from: Option<Index>) -> Self {
        let dir: PathBuf = self.dir().to_path_buf();
        drop(self);
        DiskStorage::open(&dir, disk_options())
            .unwrap_or_else(|e| panic!("recovery of {} failed: {e}", dir.display()))
    }
}

/// Small segments so that a short simulated run rolls and deletes several.
pub fn disk_options() -> DiskOptions {
    DiskOptions {
        segment_max_bytes: 16 * 1024,
        ..DiskOptions::default()
    }
}

/// Size of the persisted Raft state (hard state and log, not the snapshot), counted the
/// same way for every store (`replica::persisted_bytes`): the lab's `RaftStateSize`.
pub fn log_size_bytes<S: Storage>(s: &S) -> u64 {
    replica::persisted_bytes(s)
}
