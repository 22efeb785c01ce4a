//! `MeteredFs`: the storage's file-system seam (`storage::FileSystem`)
//! wrapped so that every write is counted and every `fdatasync` timed, into
//! one group's [`GroupMetrics`]. This is the I/O edge: the storage crate
//! itself stays free of clocks, and the simulator's disk is not wrapped.
//!
//! Invariant: every call is passed to the wrapped file system unchanged
//! (same arguments, same result); only the bookkeeping is added.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use storage::{FileSystem, ReadOnlyFile, SyncFile, WritableFile};

use super::group::GroupMetrics;

/// A `FileSystem` that measures its writers (module docs).
pub struct MeteredFs {
    inner: Arc<dyn FileSystem>,
    metrics: Arc<GroupMetrics>,
}

impl MeteredFs {
    pub fn wrap(inner: Arc<dyn FileSystem>, metrics: Arc<GroupMetrics>) -> Arc<dyn FileSystem> {
        Arc::new(MeteredFs { inner, metrics })
    }

    fn metered(&self, file: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(MeteredFile {
            inner: file,
            metrics: self.metrics.clone(),
        })
    }
}

impl std::fmt::Debug for MeteredFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredFs")
            .field("inner", &self.inner)
            .finish()
    }
}

struct MeteredFile {
    inner: Box<dyn WritableFile>,
    metrics: Arc<GroupMetrics>,
}

impl WritableFile for MeteredFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.metrics
            .disk_written_bytes
            .fetch_add(buf.len() as u64, Relaxed);
        Ok(())
    }

    fn zero_fill(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.zero_fill(offset, len)?;
        self.metrics.disk_written_bytes.fetch_add(len, Relaxed);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, buf)?;
        self.metrics
            .disk_written_bytes
            .fetch_add(buf.len() as u64, Relaxed);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let started = Instant::now();
        let res = self.inner.sync_data();
        self.metrics.fsync_latency.observe(started.elapsed());
        res
    }

    fn sync_handle(&self) -> io::Result<Arc<dyn SyncFile>> {
        Ok(Arc::new(MeteredSync {
            inner: self.inner.sync_handle()?,
            metrics: self.metrics.clone(),
        }))
    }
}

/// A [`MeteredFile`]'s sync handle (the driver's sync thread): fsyncs are timed too.
struct MeteredSync {
    inner: Arc<dyn SyncFile>,
    metrics: Arc<GroupMetrics>,
}

impl SyncFile for MeteredSync {
    fn sync_data(&self) -> io::Result<()> {
        let started = Instant::now();
        let res = self.inner.sync_data();
        self.metrics.fsync_latency.observe(started.elapsed());
        res
    }
}

impl FileSystem for MeteredFs {
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
        self.inner.map_read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read_at(path, offset, len)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.inner.create(path).map(|f| self.metered(f))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.inner.open_append(path).map(|f| self.metered(f))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.inner.truncate(path, len)
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
        self.inner.sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_counted_and_syncs_timed() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(GroupMetrics::default());
        let fs = MeteredFs::wrap(Arc::new(storage::StdFs), m.clone());
        let path = dir.path().join("f");
        let mut f = fs.create(&path).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_data().unwrap();
        drop(f);
        let mut f = fs.open_append(&path).unwrap();
        f.write_all(b"!").unwrap();
        f.sync_data().unwrap();
        assert_eq!(m.disk_written_bytes.load(Relaxed), 6);
        assert_eq!(m.fsync_latency.snapshot().count, 2);
        assert_eq!(fs.read(&path).unwrap(), b"hello!");
    }
}
