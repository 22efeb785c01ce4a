//! A fault-injecting [`FileSystem`] wrapper for tests.
//!
//! [`FaultyFs`] forwards to [`StdFs`] but, when armed through its [`FaultHandle`], fails
//! a chosen future file write (after writing part of the buffer, as a full disk does:
//! ENOSPC mid-write), every write while "full", or a chosen future fsync (EIO). A
//! failed write leaves the whole 512-byte sectors of the first half of its buffer
//! (file systems allocate and copy in blocks, so a short write ends on a block
//! boundary; a byte-granular cut inside a sector would look, in the WAL's
//! preallocated zeros, like a damaged record rather than a torn one). It can
//! also skip fsync entirely, which keeps property tests fast (their crashes are modelled by dropping the store, which
//! loses exactly the unsynced in-memory buffer, so fsync itself adds nothing). It counts
//! positioned reads (entry-cache misses) and whole-file read-only views (`map_read`:
//! snapshot files), so tests can tell what the store read.

use crate::fs::{FileSystem, ReadOnlyFile, StdFs, SyncFile, WritableFile};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

#[derive(Debug, Default)]
struct Plan {
    /// Fail the write after this many more succeed; negative: never.
    writes_left: AtomicI64,
    /// Fail the fsync after this many more succeed; negative: never.
    syncs_left: AtomicI64,
    skip_sync: AtomicBool,
    /// Every write fails with ENOSPC, half-done, while set (a full disk).
    full: AtomicBool,
    /// Every `zero_fill` fails with ENOSPC while set (too little room to preallocate).
    no_room_to_preallocate: AtomicBool,
    /// Positioned reads served (cache misses of the entry cache).
    reads_at: AtomicI64,
    /// Whole-file read-only views handed out (`map_read`: snapshot files).
    maps: AtomicI64,
}

/// Arms faults on a [`FaultyFs`] (and every file it opened), from outside the store.
#[derive(Clone, Debug)]
pub struct FaultHandle(Arc<Plan>);

impl FaultHandle {
    /// The write after `n` more successful writes fails with ENOSPC, half-done.
    pub fn fail_write_after(&self, n: i64) {
        self.0.writes_left.store(n, Ordering::SeqCst);
    }
    /// The fsync (file or directory) after `n` more successful ones fails with EIO.
    pub fn fail_sync_after(&self, n: i64) {
        self.0.syncs_left.store(n, Ordering::SeqCst);
    }
    /// While `full`, every write fails with ENOSPC after writing half its buffer, as
    /// on a file system with no space left; `heal` (or `set_full(false)`) frees space.
    pub fn set_full(&self, full: bool) {
        self.0.full.store(full, Ordering::SeqCst);
    }
    /// While set, every `zero_fill` (WAL preallocation) fails with ENOSPC, writing
    /// nothing, while record writes still succeed: a disk with too little room left for
    /// the zeros but some for records.
    pub fn set_no_room_to_preallocate(&self, on: bool) {
        self.0.no_room_to_preallocate.store(on, Ordering::SeqCst);
    }
    /// How many positioned reads (`read_at`) the store has made so far.
    pub fn reads_at(&self) -> i64 {
        self.0.reads_at.load(Ordering::SeqCst)
    }
    /// How many whole files the store has opened read-only through `map_read` so far.
    pub fn maps(&self) -> i64 {
        self.0.maps.load(Ordering::SeqCst)
    }
    /// Disarms all faults.
    pub fn heal(&self) {
        self.fail_write_after(-1);
        self.fail_sync_after(-1);
        self.set_full(false);
        self.set_no_room_to_preallocate(false);
    }
}

/// Counts down; true when this call must fail.
fn trip(counter: &AtomicI64) -> bool {
    let prev = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        if v >= 0 {
            Some(v - 1)
        } else {
            None
        }
    });
    prev == Ok(0)
}

/// A [`FileSystem`] that can be told to fail.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    inner: StdFs,
    plan: Arc<Plan>,
}

impl FaultyFs {
    /// A wrapper with no faults armed. `skip_sync` turns every fsync into a no-op.
    pub fn new(skip_sync: bool) -> (FaultyFs, FaultHandle) {
        let plan = Arc::new(Plan::default());
        plan.skip_sync.store(skip_sync, Ordering::SeqCst);
        let h = FaultHandle(plan.clone());
        h.heal();
        (FaultyFs { inner: StdFs, plan }, h)
    }

    fn sync_fault(&self) -> io::Result<bool> {
        if trip(&self.plan.syncs_left) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(!self.plan.skip_sync.load(Ordering::SeqCst))
    }
}

/// Sector size of the short writes a failed write leaves.
const SECTOR_BYTES: u64 = 512;

struct FaultyFile {
    inner: Box<dyn WritableFile>,
    fs: FaultyFs,
    /// The append position (file offset of the next `write_all`).
    pos: u64,
}

impl WritableFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if trip(&self.fs.plan.writes_left) || self.fs.plan.full.load(Ordering::SeqCst) {
            // Whole sectors of the first half of the buffer.
            let half_end = self.pos + buf.len() as u64 / 2;
            let keep = (half_end / SECTOR_BYTES * SECTOR_BYTES).saturating_sub(self.pos);
            self.inner.write_all(&buf[..keep as usize])?;
            self.pos += keep;
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.inner.write_all(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
    /// Fails (ENOSPC, nothing written) while the disk is "full" or has no room to
    /// preallocate; not counted by `fail_write_after`, which counts record writes.
    fn zero_fill(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if self.fs.plan.full.load(Ordering::SeqCst)
            || self.fs.plan.no_room_to_preallocate.load(Ordering::SeqCst)
        {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.inner.zero_fill(offset, len)
    }
    /// Fails (ENOSPC, nothing written) while the disk is "full"; not counted by
    /// `fail_write_after` (a header rewritten in place allocates nothing).
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if self.fs.plan.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        self.inner.write_at(offset, buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.fs.sync_fault()? {
            self.inner.sync_data()?;
        }
        Ok(())
    }
    fn sync_handle(&self) -> io::Result<Arc<dyn SyncFile>> {
        Ok(Arc::new(FaultySync {
            inner: self.inner.sync_handle()?,
            fs: self.fs.clone(),
        }))
    }
}

/// A [`FaultyFile`]'s sync handle: the same armed fsync faults.
struct FaultySync {
    inner: Arc<dyn SyncFile>,
    fs: FaultyFs,
}

impl SyncFile for FaultySync {
    fn sync_data(&self) -> io::Result<()> {
        if self.fs.sync_fault()? {
            self.inner.sync_data()?;
        }
        Ok(())
    }
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn map_read(&self, path: &Path) -> io::Result<ReadOnlyFile> {
        self.plan.maps.fetch_add(1, Ordering::SeqCst);
        self.inner.map_read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.plan.reads_at.fetch_add(1, Ordering::SeqCst);
        self.inner.read_at(path, offset, len)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.create(path)?,
            fs: self.clone(),
            pos: 0,
        }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.open_append(path)?,
            fs: self.clone(),
            pos: std::fs::metadata(path)?.len(),
        }))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        if self.sync_fault()? {
            return self.inner.truncate(path, len);
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.sync_fault()? {
            self.inner.sync_dir(dir)?;
        }
        Ok(())
    }
}
