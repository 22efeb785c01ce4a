//! Removing the WAL segments a durable snapshot covers: [`SegmentRemoval`], a job the
//! store runs inside `sync`, or hands to its host to run on another thread
//! (`DiskOptions::defer_segment_removal`, `DiskStorage::take_segment_removal`).
//!
//! Why a job, and why not a plain unlink: a sealed segment is 64 MiB by default, and
//! freeing its blocks at once (on a file system mounted with online discard, as the
//! shared disk this was measured on is) took 100-150 ms inside the unlink, on the
//! thread that runs Raft; moved to another thread as one unlink it took 190-270 ms and
//! held every WAL fdatasync of the node for up to 140 ms meanwhile (they wait for the
//! same journal commit). So the host's job ([`SegmentRemoval::run`]) cuts each file
//! down [`CUT_STEP_BYTES`] at a time (each cut a small, separately committed free),
//! pausing between cuts, and unlinks it empty. Run inside `sync` (a store whose host
//! does not take the job), it unlinks each file whole: the caller waits for it either
//! way, and the cuts' renames and fsyncs would only add to that wait.
//!
//! Safety rule (covered segments go only after their marker is durable): a segment is
//! detached from the WAL (`Wal::detach_covered`) only by a `sync` whose fdatasync made
//! durable the snapshot marker that covers every entry in it, so whenever the job runs,
//! the files hold nothing recovery needs. Until it has run they stay on disk, no longer
//! read by the store (their entries are all at or below the snapshot).
//!
//! Safety rule (no short segment under a segment's name): before the first cut, every
//! file of the job is renamed to `NAME.tmp` and the directory fsync'd. A crash before
//! that rename is durable leaves whole segments (recovery reads them as it reads any
//! segment before a snapshot marker); after it, only `*.tmp` files, which recovery
//! deletes as leftovers. Files are renamed oldest first, each rename made durable
//! before the next, so the segments left under their names never have a gap (recovery
//! refuses a gap as a missing segment).

use crate::fs::FileSystem;
use raft::{StorageError, StorageResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How much of a segment one cut frees.
pub const CUT_STEP_BYTES: u64 = 4 << 20;
/// The pause after each cut when the host runs the job: lets the WAL's fsyncs through.
const CUT_PAUSE: Duration = Duration::from_millis(5);

/// Sealed segments to cut down and unlink (oldest first), then the directory to fsync.
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

    /// Removes the segments (module docs), pausing between cuts: for the host's own
    /// thread (blocking). An error leaves the rest on disk (harmless, see the module
    /// docs), but the host must stop the node, as after any failed storage I/O.
    pub fn run(&self) -> StorageResult<()> {
        self.cut_and_remove().map_err(StorageError::Io)
    }

    /// The removal for `sync` to run inline (module docs): each segment unlinked
    /// whole, oldest first, with the directory fsync'd after each, so a crash leaves
    /// no gap in the segments still named.
    pub(crate) fn run_inline(&self) -> Result<(), String> {
        for path in &self.paths {
            let failed = |e: std::io::Error| format!("remove {}: {e}", path.display());
            self.fs.remove_file(path).map_err(failed)?;
            self.sync_dir()?;
        }
        Ok(())
    }

    fn cut_and_remove(&self) -> Result<(), String> {
        let fs = &*self.fs;
        let doomed: Vec<PathBuf> = self
            .paths
            .iter()
            .map(|p| p.with_extension("wal.tmp"))
            .collect();
        for (path, tmp) in self.paths.iter().zip(&doomed) {
            fs.rename(path, tmp)
                .map_err(|e| format!("rename {} for removal: {e}", path.display()))?;
            // Each rename durable before the next: the segments left never have a gap.
            self.sync_dir()?;
        }
        // Safety rule (no short segment under a segment's name): only `*.tmp` from here.
        for tmp in &doomed {
            let failed = |e: std::io::Error| format!("remove {}: {e}", tmp.display());
            let mut len = fs.file_len(tmp).map_err(failed)?;
            while len > CUT_STEP_BYTES {
                len = (len - 1) / CUT_STEP_BYTES * CUT_STEP_BYTES;
                fs.truncate(tmp, len).map_err(failed)?;
                std::thread::sleep(CUT_PAUSE);
            }
            fs.remove_file(tmp).map_err(failed)?;
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), String> {
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
