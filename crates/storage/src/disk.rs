//! [`DiskStorage`]: the durable `raft::Storage`, joining the WAL, the snapshot files and
//! the in-memory log.
//!
//! Write path: `append` / `set_hard_state` only buffer records; `sync` writes and
//! fdatasyncs them all at once (group commit) and only then may the caller acknowledge.
//! A host that syncs on another thread uses `sync_job` instead: it writes the buffered
//! records (one write per job, however many drives buffered them), and the job's
//! fdatasync covers them.
//! `compact` / `install_snapshot` write the snapshot file durably at once (temp file,
//! fsync, rename, directory fsync), then remove the previous one, then buffer a marker
//! record; segments the snapshot covers are detached by the first `sync` after that
//! marker is durable, and their files deleted by a `SegmentRemoval` (run inside that
//! `sync`, or by the host on another thread: `DiskOptions::defer_segment_removal`,
//! see `removal`). The snapshot held in memory is a read-only map of its file, not a
//! copy (see `snapfile` for why that is sound).
//!
//! Invariants: the in-memory state (hard state, snapshot, log) is exactly what the
//! trait has been told, whether or not it is durable yet; dropping the store without
//! `sync` behaves like a crash (buffered records are lost). After any I/O failure the
//! store is poisoned: reads still work, every write returns `StorageError::Io` — or
//! `StorageError::NoSpace` if the failure was a WAL record write that found the disk
//! full (see `wal`): then reopening once space is freed is safe, whereas after `Io`
//! (a failed fsync above all) the host must stop.
//!
//! Recovery relies on Raft's contract for what the trait is told (`RawNode::persist`
//! keeps it): entries are written before a hard state whose commit index covers them,
//! and nothing at or below the commit index is ever overwritten or discarded. A
//! directory whose durable commit index is beyond its recovered log is refused as
//! missing data ([`OpenError::MissingLog`]), never clamped.

use crate::error::OpenError;
use crate::fs::{FileSystem, Residency, StdFs, SyncFile};
use crate::log::{Log, Lookup};
use crate::receive::Receiving;
use crate::record::{self, Record, MAX_PAYLOAD_BYTES};
use crate::recovery::{self, Recovered, RecoveryReport};
use crate::removal::SegmentRemoval;
use crate::segment::Loc;
use crate::snapfile;
use crate::wal::{Wal, WalConfig};
use bytes::Bytes;
use raft::{
    Entry, HardState, Index, Snapshot, SnapshotMeta, Storage, StorageError, StorageResult, Term,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tuning knobs. Defaults suit a server; tests shrink them to exercise rolling and eviction.
#[derive(Clone, Debug)]
pub struct DiskOptions {
    /// A segment is sealed and a new one started once it reaches this many bytes.
    pub segment_max_bytes: u64,
    /// Bound on entry bytes kept in memory (by `Entry::size_bytes`); older entries are
    /// read back from their segment on demand. The default (16 MiB) holds far more than a
    /// follower keeping up lags by (appends go out in batches of about 1 MiB); a
    /// follower further behind is served from the segment files.
    pub cache_max_bytes: u64,
    /// Buffered records are written to the file (not fsync'd) once they exceed this.
    pub write_buffer_max_bytes: usize,
    /// The active WAL segment is zero-filled (and synced) this far ahead of its records,
    /// so a group commit's fdatasync writes data only (see `wal`); 0 turns it off.
    pub preallocate_bytes: u64,
    /// The file-system seam; tests substitute a fault-injecting one.
    pub fs: Arc<dyn FileSystem>,
    /// When set, `sync` does not delete the segments a durable snapshot covers itself:
    /// it queues a [`SegmentRemoval`] the host takes with
    /// [`DiskStorage::take_segment_removal`] and runs (on another thread: unlinking a
    /// 64 MiB segment took 100-150 ms on a shared disk). A host that sets it and never
    /// takes the job keeps every old segment on disk.
    pub defer_segment_removal: bool,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            segment_max_bytes: 64 << 20,
            cache_max_bytes: 16 << 20,
            write_buffer_max_bytes: 4 << 20,
            preallocate_bytes: 1 << 20,
            fs: Arc::new(StdFs),
            defer_segment_removal: false,
        }
    }
}

/// A `raft::Storage` kept in a directory. See the module docs for the durability contract.
pub struct DiskStorage {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    hard_state: HardState,
    snapshot: Snapshot,
    /// The pages of `snapshot`'s file map (see `release_snapshot_pages`).
    snapshot_pages: Residency,
    /// Invariant: the log's base (the entry before `first_index`) is `snapshot.meta`.
    log: Log,
    /// The snapshot being received from a leader, if any (see `receive`).
    receiving: Receiving,
    wal: Wal,
    /// `DiskOptions::defer_segment_removal`.
    defer_removal: bool,
    /// Segments detached by `sync` whose files the host has not taken to delete yet.
    removal: Option<SegmentRemoval>,
    /// What open repaired (a torn tail cut, leftovers removed), for the host to log.
    report: RecoveryReport,
    /// Held (flock'd) for the store's lifetime: one store per data directory.
    _lock: std::fs::File,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("dir", &self.dir)
            .field("hard_state", &self.hard_state)
            .field("snapshot", &self.snapshot.meta)
            .field("first_index", &self.log.first_index())
            .field("last_index", &self.log.last_index())
            .field("poisoned", &self.wal.is_poisoned())
            .finish()
    }
}

impl DiskStorage {
    /// Opens (creating if needed) the store in `dir`, recovering whatever a crash left.
    pub fn open(dir: &Path, opts: DiskOptions) -> Result<DiskStorage, OpenError> {
        let lock = lock_dir(dir)?;
        let r: Recovered = recovery::recover(&*opts.fs, dir, opts.cache_max_bytes)?;
        let cfg = WalConfig {
            segment_max_bytes: opts.segment_max_bytes,
            write_buffer_max_bytes: opts.write_buffer_max_bytes,
            preallocate_bytes: opts.preallocate_bytes,
        };
        let mut wal = Wal::new(
            opts.fs.clone(),
            dir,
            r.segments,
            r.active,
            r.active_bytes,
            cfg,
        );
        if let Some(marker) = r.repair {
            let done = wal
                .push(&marker)
                .and_then(|_| wal.sync(r.hard_state, r.snapshot.meta));
            done.map_err(|e| OpenError::Io {
                op: "write recovered snapshot marker to",
                path: dir.into(),
                source: std::io::Error::other(e),
            })?;
        }
        Ok(DiskStorage {
            dir: dir.to_path_buf(),
            fs: opts.fs,
            hard_state: r.hard_state,
            snapshot: r.snapshot,
            snapshot_pages: r.snapshot_pages,
            log: r.log,
            receiving: Receiving::default(),
            wal,
            defer_removal: opts.defer_segment_removal,
            removal: None,
            report: r.report,
            _lock: lock,
        })
    }

    /// Takes the snapshot file's pages out of this process's resident set. Reading the
    /// snapshot (restoring the state machine from it, sending it to a follower) maps them
    /// in, and they would otherwise stay counted in the process's RSS (as file pages, a
    /// whole snapshot's worth) until the kernel needed the memory. They stay in the page
    /// cache; a later read faults them back. Cheap when nothing is resident: the host
    /// calls it every 100 ms (a leader sending this snapshot reads it that fast).
    pub fn release_snapshot_pages(&self) {
        self.snapshot_pages.release_all();
        self.receiving.release_pages();
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What [`DiskStorage::open`] repaired on disk (nothing, after a clean shutdown).
    /// Storage does not log; the host should log every repair listed here loudly.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// True once a failed write or fsync made the store refuse further writes.
    pub fn is_poisoned(&self) -> bool {
        self.wal.is_poisoned()
    }

    /// Group commit on another thread: writes every buffered record to its file and
    /// returns a job whose `run` (from any thread, while this store keeps writing)
    /// makes them durable — as `sync` would, except that it neither rolls the segment
    /// nor detaches covered segments. `None` when only `sync` will do: the active
    /// segment is full and must roll, or a snapshot covers sealed segments the WAL still
    /// holds (`sync` detaches them once its marker is durable; a host that only ever
    /// ran jobs would otherwise keep them until the next roll, which on an idle
    /// leader never comes). The host must not treat anything written as durable
    /// before a job made after it has run `Ok`.
    pub fn sync_job(&mut self) -> StorageResult<Option<SyncJob>> {
        if self.wal.has_covered(self.snapshot.meta.index) {
            return Ok(None);
        }
        let Some(file) = self.wal.sync_job()? else {
            return Ok(None);
        };
        // Every entry has reached its file (read back from there once evicted).
        self.log.evict();
        Ok(Some(SyncJob {
            file,
            dir: self.dir.clone(),
        }))
    }

    /// With `DiskOptions::defer_segment_removal`: the deletion of the segments that
    /// syncs so far found covered by a durable snapshot, for the host to run (in order:
    /// a job taken later holds newer segments). `None` when there is nothing to delete.
    pub fn take_segment_removal(&mut self) -> Option<SegmentRemoval> {
        self.removal.take()
    }

    /// Number of WAL segment files currently in use.
    pub fn segment_count(&self) -> usize {
        self.wal.segment_count()
    }

    fn read_entry(&self, loc: Loc, index: Index) -> StorageResult<Entry> {
        let path = self.wal.segment_path(loc.seq);
        let bytes = self
            .fs
            .read_at(&path, loc.offset, loc.frame_bytes as usize)
            .map_err(|e| {
                StorageError::Io(format!("read {} at {}: {e}", path.display(), loc.offset))
            })?;
        match record::decode(&bytes) {
            Ok((Record::Entry(e), _)) if e.index == index => Ok(e),
            other => Err(StorageError::Io(format!(
                "{} at offset {}: expected entry {index}, found {other:?}",
                path.display(),
                loc.offset
            ))),
        }
    }

    /// Writes `snapshot` durably and removes the previous snapshot file. Returns the
    /// snapshot to hold from now on: the same data, as a view of the new file (see
    /// `snapfile`), so the caller's buffer is not kept alive by the store.
    fn persist_snapshot(&mut self, snapshot: Snapshot) -> StorageResult<Snapshot> {
        self.wal.check()?;
        let meta = snapshot.meta;
        let receiving = &self.receiving;
        let release = |part: &[u8]| receiving.release_part(part);
        let written = snapfile::write(&*self.fs, &self.dir, &snapshot, &release);
        let path = written.map_err(|e| self.write_failed(meta, &e))?;
        self.remove_previous_snapshot()?;
        let len = snapshot.data.len() as u64;
        let data = self.map_snapshot(&path, &snapshot.conf, len);
        let data = data.unwrap_or(snapshot.data);
        Ok(Snapshot { data, ..snapshot })
    }

    /// [`DiskStorage::persist_snapshot`] with the data written by `write_data` straight
    /// to the file (`snapfile::write_streamed`): it is never whole in memory.
    fn persist_streamed(
        &mut self,
        meta: SnapshotMeta,
        conf: Option<raft::Membership>,
        write_data: &mut raft::WriteSnapshot<'_>,
    ) -> StorageResult<Snapshot> {
        self.wal.check()?;
        let written =
            snapfile::write_streamed(&*self.fs, &self.dir, meta, conf.as_ref(), write_data);
        let (path, len) = written.map_err(|e| self.write_failed(meta, &e))?;
        self.remove_previous_snapshot()?;
        let Some(data) = self.map_snapshot(&path, &conf, len) else {
            let what = format!("read back {}: not {len} bytes of data", path.display());
            return Err(self.wal.poison(what));
        };
        Ok(Snapshot { meta, conf, data })
    }

    fn write_failed(&mut self, meta: SnapshotMeta, e: &std::io::Error) -> StorageError {
        let what = format!("write snapshot {}: {e}", snapfile::file_name(meta));
        self.wal.poison_io(what, e)
    }

    /// After a new snapshot file is durable: unlinks the one it replaces.
    fn remove_previous_snapshot(&mut self) -> StorageResult<()> {
        if self.snapshot.is_empty() {
            return Ok(());
        }
        // Unlinking is safe while `Bytes` of the old file are still held elsewhere (by the
        // Raft core, a transport): their map keeps the inode alive.
        let old = self.dir.join(snapfile::file_name(self.snapshot.meta));
        match self.fs.remove_file(&old) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.wal.poison(format!("remove {}: {e}", old.display()))),
        }
    }

    /// The data of the snapshot file just written at `path`, as a view of it (its pages
    /// remembered for `release_snapshot_pages`); `None` if it cannot be read back whole.
    fn map_snapshot(
        &mut self,
        path: &Path,
        conf: &Option<raft::Membership>,
        data_len: u64,
    ) -> Option<Bytes> {
        let (data, pages) = snapfile::map_written(&*self.fs, path, conf.as_ref(), data_len)?;
        self.snapshot_pages = pages;
        Some(data)
    }

    /// A compaction's snapshot file is durable: records it and drops the entries it covers.
    fn record_compaction(&mut self, snapshot: Snapshot) -> StorageResult<()> {
        self.wal.push(&Record::Snapshot {
            meta: snapshot.meta,
            kept_tail: true,
        })?;
        self.log.compact_to(snapshot.meta);
        self.snapshot = snapshot;
        Ok(())
    }

    fn check_appendable(&self, entries: &[Entry]) -> StorageResult<()> {
        self.wal.check()?;
        let first = entries[0].index;
        assert!(
            first > self.snapshot.meta.index && first <= self.log.last_index() + 1,
            "append at {first} outside ({}, {}]",
            self.snapshot.meta.index,
            self.log.last_index() + 1
        );
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                first + i as u64,
                "appended entries must be contiguous"
            );
            if record::entry_frame_bytes(e.data.len()) > MAX_PAYLOAD_BYTES {
                return Err(StorageError::Io(format!(
                    "entry {} of {} bytes exceeds the record limit",
                    e.index,
                    e.data.len()
                )));
            }
        }
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first_index(&self) -> Index {
        self.log.first_index()
    }

    fn last_index(&self) -> Index {
        self.log.last_index()
    }

    fn term(&self, index: Index) -> StorageResult<Term> {
        self.log.term(index)
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        raft::storage::check_range(lo, hi, self.first_index(), self.last_index())?;
        let mut out = Vec::new();
        let mut total = 0u64;
        for index in lo..hi {
            let e = match self.log.lookup(index) {
                Lookup::Cached(e) => e.clone(),
                Lookup::OnDisk(loc) => self.read_entry(loc, index)?,
            };
            total += e.size_bytes();
            if !out.is_empty() && total > max_bytes {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    /// O(1): the data is a view of the snapshot file (see `snapfile`); this clones a
    /// reference to it, never the bytes.
    fn snapshot(&self) -> StorageResult<Snapshot> {
        Ok(self.snapshot.clone())
    }

    fn entry_bytes(&self) -> u64 {
        self.log.held_bytes()
    }

    fn append(&mut self, entries: &[Entry]) -> StorageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.check_appendable(entries)?;
        self.log.truncate_from(entries[0].index);
        for e in entries {
            let loc = self.wal.push(&Record::Entry(e.clone()))?;
            self.log.push(e.clone(), loc);
        }
        Ok(())
    }

    fn set_hard_state(&mut self, hs: HardState) -> StorageResult<()> {
        self.wal.push(&Record::HardState(hs))?;
        self.hard_state = hs;
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> StorageResult<()> {
        let SnapshotMeta { index, term } = snapshot.meta;
        if index <= self.snapshot.meta.index {
            return Err(StorageError::SnapshotOutOfDate {
                index,
                current: self.snapshot.meta.index,
            });
        }
        let keep = self.log.term(index).ok() == Some(term);
        let received = self.receiving.is_for(snapshot.meta);
        let snapshot = self.persist_snapshot(snapshot)?;
        if received {
            // Its data is in the snapshot file now; views of the received file stay valid.
            if let Err(e) = self.receiving.finish(&*self.fs, &self.dir) {
                let what = format!("remove {}", crate::receive::RECEIVE_NAME);
                return Err(self.wal.poison_io(what, &e));
            }
        }
        self.wal.push(&Record::Snapshot {
            meta: snapshot.meta,
            kept_tail: keep,
        })?;
        if keep {
            self.log.compact_to(snapshot.meta);
        } else {
            self.log.reset(snapshot.meta);
        }
        self.snapshot = snapshot;
        Ok(())
    }

    /// Appends to `snap-recv.tmp` (see `receive`); not synced.
    fn write_snapshot_chunk(
        &mut self,
        meta: SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<()> {
        self.wal.check()?;
        let written = self
            .receiving
            .write(&*self.fs, &self.dir, meta, offset, data);
        written.map_err(|e| {
            let what = format!("write {} at {offset}", crate::receive::RECEIVE_NAME);
            self.wal.poison_io(what, &e)
        })
    }

    /// A read-only map of `snap-recv.tmp`: no copy of the snapshot on the heap.
    fn received_snapshot(&mut self, meta: SnapshotMeta, len: u64) -> StorageResult<Bytes> {
        self.receiving.read(&*self.fs, &self.dir, meta, len)
    }

    fn compact(&mut self, snapshot: Snapshot) -> StorageResult<()> {
        let index = snapshot.meta.index;
        raft::storage::check_compact(self.snapshot.meta.index, self.last_index(), index)?;
        debug_assert_eq!(self.term(index).ok(), Some(snapshot.meta.term));
        let snapshot = self.persist_snapshot(snapshot)?;
        self.record_compaction(snapshot)
    }

    /// Streams the data to the snapshot file (`snapfile::write_streamed`): the store
    /// never holds it whole in memory, only a view of the file once it is written.
    fn compact_streamed(
        &mut self,
        meta: SnapshotMeta,
        conf: Option<raft::Membership>,
        write_data: &mut raft::WriteSnapshot<'_>,
    ) -> StorageResult<()> {
        raft::storage::check_compact(self.snapshot.meta.index, self.last_index(), meta.index)?;
        debug_assert_eq!(self.term(meta.index).ok(), Some(meta.term));
        let snapshot = self.persist_streamed(meta, conf, write_data)?;
        self.record_compaction(snapshot)
    }

    /// A part of the snapshot file's map or of the received snapshot's: its pages
    /// leave the resident set (restoring from a snapshot reads it once, front to back).
    fn release_read(&self, part: &[u8]) {
        self.snapshot_pages.release_part(part);
        self.receiving.release_part(part);
    }

    fn sync(&mut self) -> StorageResult<()> {
        self.wal.sync(self.hard_state, self.snapshot.meta)?;
        self.log.evict();
        // Safety rule (covered segments go only after their marker is durable): the
        // fdatasync above made the marker of `self.snapshot` durable.
        let Some(removal) = self.wal.detach_covered(self.snapshot.meta.index) else {
            return Ok(());
        };
        if !self.defer_removal {
            return removal.run_inline().map_err(|what| self.wal.poison(what));
        }
        match &mut self.removal {
            Some(queued) => queued.extend(removal),
            None => self.removal = Some(removal),
        }
        Ok(())
    }
}

/// A sync of the WAL that runs on another thread ([`DiskStorage::sync_job`]).
pub struct SyncJob {
    file: Arc<dyn SyncFile>,
    dir: PathBuf,
}

impl SyncJob {
    /// Runs the fdatasync (blocking). An error means the log's durability is unknown
    /// (fsyncgate): the host must stop the store's node, as after a failed `sync`.
    pub fn run(&self) -> StorageResult<()> {
        self.file.sync_data().map_err(|e| {
            StorageError::Io(format!(
                "fdatasync of the WAL in {}: {e}",
                self.dir.display()
            ))
        })
    }
}

impl std::fmt::Debug for SyncJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncJob").field("dir", &self.dir).finish()
    }
}

/// Takes an exclusive advisory lock on `dir/LOCK` (creating the directory if needed), so
/// two processes never write one log. The lock is released when the file is closed,
/// including by a crash.
fn lock_dir(dir: &Path) -> Result<std::fs::File, OpenError> {
    std::fs::create_dir_all(dir).map_err(OpenError::io("create data directory", dir))?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(OpenError::io("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(OpenError::Io {
            op: "lock",
            path,
            source: e,
        }),
    }
}
