//! What the simulator needs of a node's durable store: the `raft::Storage` it hands the
//! core, plus what survives a crash. The in-memory store survives as it is (the driver
//! persists each Ready to completion within one event); the disk store is dropped and
//! reopened from its directory, so every simulated restart exercises WAL recovery.

use std::path::PathBuf;

use raft::{Entry, MemStorage, Storage};
use storage::{DiskOptions, DiskStorage};

pub trait SimStore: Storage + Sized {
    /// The store as a restarted process would find it.
    fn crash_and_recover(self) -> Self;
}

impl SimStore for MemStorage {
    fn crash_and_recover(self) -> Self {
        self
    }
}

impl SimStore for DiskStorage {
    fn crash_and_recover(self) -> Self {
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
/// same way for every store: the lab's `RaftStateSize`.
pub fn log_size_bytes<S: Storage>(s: &S) -> u64 {
    let (first, last) = (s.first_index(), s.last_index());
    let entries = if first <= last {
        s.entries(first, last + 1, u64::MAX).unwrap_or_default()
    } else {
        Vec::new()
    };
    32 + entries.iter().map(Entry::size_bytes).sum::<u64>()
}
