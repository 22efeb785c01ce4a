//! The WAL writer: buffers records, writes and fsyncs them in one go (group commit),
//! rolls to a new segment at a size bound, and detaches the segments a durable snapshot
//! covers (their files are deleted by a `removal::SegmentRemoval`).
//!
//! Invariants:
//! * Records are appended only to the last segment (`segments.last()`), whose file is
//!   `active`; `active_bytes` is the end of its records as written (not necessarily
//!   durable). Past that end the file may hold zeros up to `zeroed_to`
//!   (preallocation, below), never anything else.
//! * Preallocation: before records are written past `zeroed_to`, the next
//!   `preallocate_bytes` of the segment are zero-filled and fdatasync'd on their own (one
//!   extra fsync per chunk), never past `segment_max_bytes`; if the disk has no room for
//!   the zeros, the WAL stops preallocating (until reopened) rather than refuse writes. Records then land in blocks
//!   the file already has durably, so the fdatasync of a group commit writes only data,
//!   not the file's size and block map too (on ext4: one inode write and one I/O fewer
//!   per fsync, about half its CPU). Recovery cuts the zeros off the last segment
//!   silently (they hold no record) and reads a torn record in them as torn
//!   (`record::is_torn_tail`). A segment rolls only once its records reach
//!   `segment_max_bytes`, so a sealed segment ends with its last record, as before.
//! * Nothing is acknowledged before `sync` returns `Ok`, or a sync through
//!   `sync_job`'s handle that started after `sync_job` returned: `pending` is lost on a
//!   crash, and so may be anything written but not yet synced.
//! * A segment is fsync'd before its successor is created, the successor is durable
//!   before `WAL-HEAD` names it (so recovery can refuse a deleted newest segment), and
//!   every new segment starts
//!   with the current (durable) hard state and snapshot marker, so deleting older
//!   segments never loses either.
//! * After any failed write, fsync, creation or removal the WAL is *poisoned*: the file
//!   may hold a partial record and the kernel may have dropped dirty pages, so every
//!   later write is refused. Reopening the directory recovers (a torn tail is cut).
//!   A record write that found the disk full (ENOSPC, EDQUOT) poisons it as
//!   `StorageError::NoSpace`, everything else (notably any failed fsync: fsyncgate) as
//!   `StorageError::Io`, so a host can wait for space after the first and must stop
//!   after the second.

use crate::fs::{FileSystem, SyncFile, WritableFile};
use crate::manifest;
use crate::record::{self, Record};
use crate::removal::SegmentRemoval;
use crate::segment::{self, Loc};
use raft::{HardState, Index, SnapshotMeta, StorageError, StorageResult};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One segment file, as far as deletion needs to know.
#[derive(Clone, Copy, Debug)]
pub struct SegInfo {
    pub seq: u64,
    /// Highest entry index recorded in the segment (0 if none): once a durable snapshot
    /// covers it, no live entry lives in this file.
    pub max_index: Index,
}

pub struct Wal {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segments: Vec<SegInfo>,
    active: Box<dyn WritableFile>,
    active_bytes: u64,
    /// The active file holds durable zeros from `active_bytes` up to here (when larger).
    zeroed_to: u64,
    pending: Vec<u8>,
    segment_max_bytes: u64,
    preallocate_bytes: u64,
    write_buffer_max_bytes: usize,
    poisoned: Option<Poison>,
    /// The active segment's sync handle (`sync_job`), made on first use.
    active_sync: Option<Arc<dyn SyncFile>>,
}

/// Why the WAL refuses writes.
struct Poison {
    what: String,
    no_space: bool,
}

impl Poison {
    fn error(&self, what: String) -> StorageError {
        if self.no_space {
            StorageError::NoSpace(what)
        } else {
            StorageError::Io(what)
        }
    }
}

/// True for the errors of a write that found the medium full.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

pub struct WalConfig {
    pub segment_max_bytes: u64,
    pub write_buffer_max_bytes: usize,
    /// Zero-fill the active segment this far ahead of its records (0: never).
    pub preallocate_bytes: u64,
}

impl Wal {
    /// Takes over recovered segments; `active` is open for appending to the last one.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        segments: Vec<SegInfo>,
        active: Box<dyn WritableFile>,
        active_bytes: u64,
        cfg: WalConfig,
    ) -> Wal {
        assert!(!segments.is_empty(), "a WAL always has an active segment");
        Wal {
            fs,
            dir: dir.to_path_buf(),
            segments,
            active,
            active_bytes,
            zeroed_to: active_bytes,
            pending: Vec::new(),
            segment_max_bytes: cfg.segment_max_bytes,
            preallocate_bytes: cfg.preallocate_bytes,
            write_buffer_max_bytes: cfg.write_buffer_max_bytes,
            poisoned: None,
            active_sync: None,
        }
    }

    /// Creates segment `seq` holding its header, `hs` and a marker for the snapshot
    /// `snap`, durably (file and dir). Both must already be durable elsewhere: repeating
    /// them makes every segment self-sufficient for them, so older ones can be deleted.
    pub fn create_segment(
        fs: &dyn FileSystem,
        dir: &Path,
        seq: u64,
        hs: HardState,
        snap: SnapshotMeta,
    ) -> std::io::Result<(Box<dyn WritableFile>, u64)> {
        let path = dir.join(segment::file_name(seq));
        let mut buf = segment::encode_header(seq);
        record::encode(&Record::HardState(hs), &mut buf);
        record::encode(
            &Record::Snapshot {
                meta: snap,
                kept_tail: true,
            },
            &mut buf,
        );
        let mut f = fs.create(&path)?;
        f.write_all(&buf)?;
        f.sync_data()?;
        fs.sync_dir(dir)?;
        Ok((f, buf.len() as u64))
    }

    /// Refuses if an earlier failure poisoned the WAL.
    pub fn check(&self) -> StorageResult<()> {
        match &self.poisoned {
            Some(p) => Err(p.error(format!(
                "storage refuses writes after an earlier failure: {}",
                p.what
            ))),
            None => Ok(()),
        }
    }

    /// Poisons the WAL as failed I/O (`StorageError::Io`): the host must stop.
    pub fn poison(&mut self, what: String) -> StorageError {
        self.poison_as(what, false)
    }

    fn poison_as(&mut self, what: String, no_space: bool) -> StorageError {
        let p = self.poisoned.get_or_insert(Poison {
            what: what.clone(),
            no_space,
        });
        p.error(what)
    }

    /// Poisons the WAL after `e` while creating a new file (a segment, the
    /// manifest, a snapshot): `StorageError::NoSpace` if the disk was full
    /// (the half-made file is never used; recovery removes it), else `Io`.
    pub fn poison_io(&mut self, what: String, e: &std::io::Error) -> StorageError {
        self.poison_as(what, is_no_space(e))
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Buffers `record`; returns where its frame will live.
    pub fn push(&mut self, rec: &Record) -> StorageResult<Loc> {
        self.check()?;
        let seg = self.segments.last_mut().expect("active segment");
        let offset = self.active_bytes + self.pending.len() as u64;
        let n = record::encode(rec, &mut self.pending);
        if let Record::Entry(e) = rec {
            seg.max_index = seg.max_index.max(e.index);
        }
        let loc = Loc {
            seq: seg.seq,
            offset,
            frame_bytes: n as u32,
        };
        if self.pending.len() >= self.write_buffer_max_bytes {
            self.flush()?;
        }
        Ok(loc)
    }

    /// Writes the buffer to the active file, without fsync.
    pub fn flush(&mut self) -> StorageResult<()> {
        self.check()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        self.preallocate()?;
        if let Err(e) = self.active.write_all(&self.pending) {
            let what = format!("write to {}: {e}", self.active_path().display());
            return Err(self.poison_as(what, is_no_space(&e)));
        }
        self.active_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Group commit: one write and one fdatasync for everything buffered; then rolls to
    /// a new segment if the active one is full (`hs` and `snap` are the now-durable hard
    /// state and snapshot).
    pub fn sync(&mut self, hs: HardState, snap: SnapshotMeta) -> StorageResult<()> {
        self.flush()?;
        if let Err(e) = self.active.sync_data() {
            return Err(self.poison(format!("fdatasync {}: {e}", self.active_path().display())));
        }
        if self.active_bytes >= self.segment_max_bytes {
            self.roll(hs, snap)?;
        }
        Ok(())
    }

    /// Group commit run by someone else: writes the buffer and returns a handle that
    /// fdatasyncs the active segment from any thread; a sync through it started after
    /// this returns covers every record pushed so far. `None` when the active segment
    /// is full: only `sync` (which rolls it) will do.
    pub fn sync_job(&mut self) -> StorageResult<Option<Arc<dyn SyncFile>>> {
        self.flush()?;
        if self.active_bytes >= self.segment_max_bytes {
            return Ok(None);
        }
        if self.active_sync.is_none() {
            match self.active.sync_handle() {
                Ok(h) => self.active_sync = Some(h),
                Err(e) => {
                    let what = format!("sync handle of {}: {e}", self.active_path().display());
                    return Err(self.poison(what));
                }
            }
        }
        Ok(self.active_sync.clone())
    }

    /// Zero-fills and syncs the next chunk of the active segment if the buffered
    /// records would run past the zeros already there (module docs: preallocation).
    fn preallocate(&mut self) -> StorageResult<()> {
        let end = self.active_bytes + self.pending.len() as u64;
        if self.preallocate_bytes == 0 || end <= self.zeroed_to {
            return Ok(());
        }
        let from = self.zeroed_to.max(self.active_bytes);
        let to = (end + self.preallocate_bytes).min(self.segment_max_bytes);
        if to <= from {
            return Ok(()); // the segment is full: the last records extend it as they go
        }
        match self.active.zero_fill(from, to - from) {
            Ok(()) => {}
            // Too little space for the zeros: preallocation is only an optimisation,
            // so this WAL goes on without it (until reopened) and writes its records
            // into whatever space is left, as it would without preallocation. Zeros
            // it wrote past its records are harmless (recovery cuts them).
            Err(e) if is_no_space(&e) => {
                self.preallocate_bytes = 0;
                return Ok(());
            }
            Err(e) => {
                let what = format!("preallocate {}: {e}", self.active_path().display());
                return Err(self.poison(what));
            }
        }
        if let Err(e) = self.active.sync_data() {
            let path = self.active_path();
            return Err(self.poison(format!("fdatasync {} (preallocated): {e}", path.display())));
        }
        self.zeroed_to = to;
        Ok(())
    }

    fn roll(&mut self, hs: HardState, snap: SnapshotMeta) -> StorageResult<()> {
        let seq = self.segments.last().expect("active segment").seq + 1;
        let (f, len) = match Self::create_segment(&*self.fs, &self.dir, seq, hs, snap) {
            Ok(created) => created,
            Err(e) => {
                let what = format!("create segment {}: {e}", segment::file_name(seq));
                return Err(self.poison_io(what, &e));
            }
        };
        debug_assert!(
            self.zeroed_to <= self.active_bytes,
            "a sealed segment ends with its last record"
        );
        self.active = f;
        self.active_sync = None;
        self.active_bytes = len;
        self.zeroed_to = len;
        self.segments.push(SegInfo { seq, max_index: 0 });
        // Only now that the segment is durable may the head name it (see `manifest`).
        if let Err(e) = manifest::write(&*self.fs, &self.dir, seq) {
            return Err(self.poison_io(format!("write {}: {e}", manifest::FILE_NAME), &e));
        }
        Ok(())
    }

    /// True when `detach_covered(snapshot_index)` would detach a segment: the oldest
    /// sealed one holds no entry after that snapshot.
    pub fn has_covered(&self, snapshot_index: Index) -> bool {
        self.segments.len() > 1 && self.segments[0].max_index <= snapshot_index
    }

    /// Drops from the WAL the oldest sealed segments whose entries are all at or before
    /// `durable_snapshot_index`, and returns the job that deletes their files. Safety
    /// rule (covered segments go only after their marker is durable, see `removal`):
    /// call only when that snapshot's marker record is durable.
    pub fn detach_covered(&mut self, durable_snapshot_index: Index) -> Option<SegmentRemoval> {
        let mut n = 0;
        while self.segments.len() - n > 1 && self.segments[n].max_index <= durable_snapshot_index {
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let paths = self
            .segments
            .drain(..n)
            .map(|seg| self.dir.join(segment::file_name(seg.seq)))
            .collect();
        Some(SegmentRemoval::new(
            self.fs.clone(),
            self.dir.clone(),
            paths,
        ))
    }

    /// Number of segment files (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment::file_name(seq))
    }

    fn active_path(&self) -> PathBuf {
        self.segment_path(self.segments.last().expect("active segment").seq)
    }
}
