//! The file-system seam: every byte the store reads or writes goes through [`FileSystem`].
//!
//! [`StdFs`] is the real thing. Tests wrap it (see [`crate::fault`]) to inject write and
//! fsync failures, or to skip fsync for speed. The trait is deliberately small: whole-file
//! reads for recovery, read-only views of snapshot files ([`FileSystem::map_read`], a
//! memory map in [`StdFs`]), positioned reads for cache misses, append-only writers, and
//! the directory operations that make renames and creations durable.

use bytes::Bytes;
use memmap2::Mmap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

/// A whole file, read-only, from [`FileSystem::map_read`]: a memory map of it (no copy:
/// its pages come from the page cache as they are touched) or, for a file system that
/// cannot map, its bytes on the heap.
pub struct ReadOnlyFile(Inner);

enum Inner {
    Heap(Bytes),
    Mapped(Arc<Mmap>),
}

/// The owner of a mapped file's `Bytes` views (the map is shared with [`Residency`]).
struct MapOwner(Arc<Mmap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A handle on a mapped file kept beside the `Bytes` views handed out, to take its pages
/// out of this process's resident set when nobody is reading them (see
/// [`ReadOnlyFile::release`]). Empty for a file held on the heap.
#[derive(Clone, Default)]
pub struct Residency(Option<Arc<Mmap>>);

impl Residency {
    /// Drops every page of the file from the resident set; a later read faults it back
    /// in from the page cache (or the disk), unchanged.
    pub fn release_all(&self) {
        if let Some(map) = &self.0 {
            dont_need(map, 0..map.len());
        }
    }
}

impl Residency {
    /// Drops the pages of `part` from the resident set if `part` lies in this file's map
    /// (it is bytes of a view handed out of it, already read); anything else, heap bytes
    /// included, is left alone: only a file map's pages fault back in unchanged.
    pub fn release_part(&self, part: &[u8]) {
        let Some(map) = &self.0 else {
            return;
        };
        let base = map.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if start >= base && start + part.len() <= base + map.len() {
            dont_need(map, start - base..start - base + part.len());
        }
    }
}

impl Debug for Residency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.as_ref().map(|m| m.len());
        f.debug_struct("Residency")
            .field("mapped_len", &len)
            .finish()
    }
}

/// `MADV_DONTNEED` over `range` of a read-only file map.
fn dont_need(map: &Mmap, range: Range<usize>) {
    #[cfg(unix)]
    {
        let range = range.start.min(map.len())..range.end.min(map.len());
        if !range.is_empty() {
            // SAFETY: MADV_DONTNEED on a shared, read-only file mapping only drops page
            // table entries: a later read faults the same bytes back in from the file,
            // which is never modified in place (the contract of `map_read`). No
            // reference observes different bytes. A failure is only a lost hint.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
        }
    }
    #[cfg(not(unix))]
    let _ = (map, range);
}

impl ReadOnlyFile {
    /// True if this is a view of the file itself rather than a copy on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Inner::Mapped(_))
    }

    /// Says `range` has been read and is not needed again soon: a mapped file's pages in it
    /// leave this process's page tables (and so its resident set); they stay in the page
    /// cache and fault back in, unchanged, if read again. A no-op for heap bytes. Lets a
    /// pass over a large file (checksum verification) run in bounded resident memory.
    pub fn release(&self, range: Range<usize>) {
        if let Inner::Mapped(map) = &self.0 {
            dont_need(map, range);
        }
    }

    /// A handle that can release this file's pages later, after it became `Bytes`.
    pub fn residency(&self) -> Residency {
        match &self.0 {
            Inner::Heap(_) => Residency(None),
            Inner::Mapped(map) => Residency(Some(map.clone())),
        }
    }

    /// The whole file as `Bytes`, without copying: a mapped file becomes the owner of the
    /// `Bytes` (`Bytes::from_owner`) and is unmapped when the last clone or slice drops.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Inner::Heap(b) => b,
            Inner::Mapped(map) => Bytes::from_owner(MapOwner(map)),
        }
    }
}

impl From<Vec<u8>> for ReadOnlyFile {
    fn from(v: Vec<u8>) -> Self {
        ReadOnlyFile(Inner::Heap(Bytes::from(v)))
    }
}

impl Deref for ReadOnlyFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Inner::Heap(b) => b,
            Inner::Mapped(map) => map,
        }
    }
}

impl Debug for ReadOnlyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyFile")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// A file open for appending.
pub trait WritableFile: Send {
    /// Writes all of `buf` at the append position, which it advances (not yet
    /// durable). The position starts at the end of the file as opened; it is the
    /// end of the file unless `zero_fill` wrote beyond it.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Writes `len` zero bytes at byte `offset` (at or after the append position),
    /// leaving the append position where it is (not yet durable). The WAL uses it to
    /// allocate a segment's blocks ahead of its records, so that a later `sync_data`
    /// writes only data: the file's size and block map no longer change with every
    /// append (on ext4 that saves an inode write per fdatasync).
    fn zero_fill(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Writes `buf` at byte `offset`, before the append position (a header whose
    /// fields are known only once the rest is written: snapshot files), leaving the
    /// append position where it is (not yet durable).
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// A handle that fdatasyncs this file from any thread, while this one keeps
    /// writing: a sync through it covers every write that returned before it started.
    fn sync_handle(&self) -> io::Result<Arc<dyn SyncFile>>;
}

/// Syncs one file from another thread ([`WritableFile::sync_handle`]).
pub trait SyncFile: Send + Sync {
    /// `fdatasync`: everything written to the file before this call is durable.
    fn sync_data(&self) -> io::Result<()>;
}

/// File operations the store needs. Implementations must be usable from any thread.
pub trait FileSystem: Send + Sync + Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names (not paths) of the regular files in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The whole of `path`, read-only, without copying it where the implementation can
    /// ([`StdFs`] maps it; this default reads it onto the heap).
    ///
    /// Contract, which is what makes a map sound: the caller uses this only for files that
    /// nobody modifies or truncates in place for as long as any view of them lives
    /// (snapshot files: written under a temporary name and renamed, then only unlinked).
    fn map_read(&self, path: &Path) -> io::Result<ReadOnlyFile> {
        self.read(path).map(ReadOnlyFile::from)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Creates `path` (truncating any existing file) for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing `path` for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Cuts `path` to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The size of `path` in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

struct StdFile(File);

impl WritableFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn zero_fill(&mut self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        const CHUNK: u64 = 64 << 10;
        let zeros = vec![0u8; CHUNK.min(len) as usize];
        let mut at = offset;
        while at < offset + len {
            let n = CHUNK.min(offset + len - at) as usize;
            self.0.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_handle(&self) -> io::Result<Arc<dyn SyncFile>> {
        // A duplicated descriptor of the same open file: fdatasync syncs the inode.
        Ok(Arc::new(StdSync(self.0.try_clone()?)))
    }
}

struct StdSync(File);

impl SyncFile for StdSync {
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn map_read(&self, path: &Path) -> io::Result<ReadOnlyFile> {
        let f = File::open(path)?;
        if f.metadata()?.len() == 0 {
            // mmap(2) of length 0 fails with EINVAL; there is nothing to map anyway.
            return Ok(ReadOnlyFile::from(Vec::new()));
        }
        // SAFETY: a read-only shared map is sound as long as the file is not modified or
        // truncated while mapped (a write would change bytes behind `&[u8]`s, a truncation
        // would turn reads past the new end into SIGBUS). The caller promises that (the
        // trait method's contract); unlinking or renaming over the file is harmless, as the
        // inode lives on while mapped. The map does not depend on `f` staying open.
        let map = unsafe { Mmap::map(&f)? };
        Ok(ReadOnlyFile(Inner::Mapped(Arc::new(map))))
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        // Not O_APPEND: `zero_fill` may write past the append position (and Linux
        // ignores pwrite's offset on an O_APPEND file).
        let mut f = OpenOptions::new().write(true).open(path)?;
        f.seek(SeekFrom::End(0))?;
        Ok(Box::new(StdFile(f)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        fs::metadata(path).map(|m| m.len())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
