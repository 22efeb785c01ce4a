//! Removing the WAL segments a durable snapshot covers: [`SegmentRemoval`], a job the
//! store runs inside `sync`, or hands to its host to run on another thread
//! (`DiskOptions::defer_segment_removal`, `DiskStorage::take_segment_removal`).
//!
//! Why a job: a sealed segment is 64 MiB by default, and unlinking it frees its blocks;
//! on the shared disk that took 100-150 ms per snapshot, on the thread that runs Raft.
//!
//! Safety rule (covered segments go only after their marker is durable): a segment is
//! detached from the WAL (`Wal::detach_covered`) only by a `sync` whose fdatasync made
//! durable the snapshot marker that covers every entry in it, so whenever the job runs,
//! the files hold nothing recovery needs. Until it has run they stay on disk, no longer
//! read by the store (their entries are all at or below the snapshot). A crash before or
//! during the job leaves them, or the newest of them (they are removed oldest first, so
//! what is left never has a gap), and recovery reads them as it reads any segment before
//! a snapshot marker: the state a crash between that fdatasync and an inline deletion
//! leaves too.

use crate::fs::FileSystem;
use raft::{StorageError, StorageResult};
use std::path::PathBuf;
use std::sync::Arc;

/// Sealed segments to unlink (oldest first), then the directory to fsync.
pub struct SegmentRemoval {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    paths: Vec<PathBuf>,
}

impl SegmentRemoval {
    pub(crate) fn new(fs: Arc<dyn FileSystem>, dir: PathBuf, paths: Vec<PathBuf>) -> Self {
        SegmentRemoval { fs, dir, paths }
    }

    /// Appends `later`'s segments (detached after this one's, so newer).
    pub(crate) fn extend(&mut self, later: SegmentRemoval) {
        self.paths.extend(later.paths);
    }

    /// The segment files it removes (tests).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Unlinks the segments, oldest first, then fsyncs the directory (blocking; from any
    /// thread). An error leaves the rest on disk (harmless: see the module docs), but
    /// the host must stop the node, as after any failed storage I/O.
    pub fn run(&self) -> StorageResult<()> {
        self.run_io().map_err(StorageError::Io)
    }

    pub(crate) fn run_io(&self) -> Result<(), String> {
        for path in &self.paths {
            self.fs
                .remove_file(path)
                .map_err(|e| format!("remove {}: {e}", path.display()))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| format!("fsync directory {}: {e}", self.dir.display()))
    }
}

impl std::fmt::Debug for SegmentRemoval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentRemoval")
            .field("paths", &self.paths)
            .finish()
    }
}
