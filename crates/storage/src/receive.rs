//! The snapshot being received from a leader, chunk by chunk: `snap-recv.tmp`.
//!
//! Owns that file, the snapshot it belongs to and how many bytes it holds. The Raft core
//! keeps only a byte count; the bytes themselves come here (`Storage::write_snapshot_chunk`)
//! and are read back once, as a read-only map of the file (`Storage::received_snapshot`),
//! when the last chunk is written. So a follower never holds a whole incoming snapshot
//! on its heap.
//!
//! Invariants: the file holds exactly `len` bytes of the data of snapshot `meta`, written
//! in order. A file is never truncated or rewritten in place while it may be mapped: a
//! new transfer (offset 0) unlinks the old file and creates a new one (a new inode, so
//! any map of the old one stays valid: the soundness argument of `snapfile`). Chunks are
//! not synced: the file is garbage after a crash (`*.tmp`, removed by recovery) and the
//! leader restarts the transfer from the follower's count, 0.

use crate::fs::{FileSystem, ReadOnlyFile, Residency, WritableFile};
use bytes::Bytes;
use raft::{SnapshotMeta, StorageError, StorageResult};
use std::path::{Path, PathBuf};

pub const RECEIVE_NAME: &str = "snap-recv.tmp";

/// See the module docs.
#[derive(Default)]
pub struct Receiving {
    current: Option<Current>,
    /// The pages of the latest map handed out by `read` (see `release_pages`).
    pages: Residency,
}

struct Current {
    meta: SnapshotMeta,
    len: u64,
    file: Box<dyn WritableFile>,
}

impl Receiving {
    /// Appends `data` at `offset` of snapshot `meta`'s data; offset 0 starts afresh.
    pub fn write(
        &mut self,
        fs: &dyn FileSystem,
        dir: &Path,
        meta: SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> std::io::Result<()> {
        let path = path(dir);
        if offset == 0 {
            self.current = None;
            self.pages = Residency::default(); // views handed out keep their own map
            match fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let file = fs.create(&path)?;
            self.current = Some(Current { meta, len: 0, file });
        }
        let Some(cur) = self
            .current
            .as_mut()
            .filter(|c| c.meta == meta && c.len == offset)
        else {
            return Err(std::io::Error::other(out_of_order(meta, offset)));
        };
        cur.file.write_all(data)?;
        cur.len += data.len() as u64;
        Ok(())
    }

    /// The whole received data of snapshot `meta`, `len` bytes, as a read-only view of
    /// the file (no copy where the file system maps files).
    pub fn read(
        &mut self,
        fs: &dyn FileSystem,
        dir: &Path,
        meta: SnapshotMeta,
        len: u64,
    ) -> StorageResult<Bytes> {
        match &self.current {
            Some(c) if c.meta == meta && c.len == len => {}
            _ => return Err(StorageError::Io(out_of_order(meta, len))),
        }
        let path = path(dir);
        let file: ReadOnlyFile = fs
            .map_read(&path)
            .map_err(|e| StorageError::Io(format!("map {}: {e}", path.display())))?;
        if file.len() as u64 != len {
            return Err(StorageError::Io(format!(
                "{} holds {} bytes, {len} were written",
                path.display(),
                file.len()
            )));
        }
        self.pages = file.residency();
        Ok(file.into_bytes())
    }

    /// Whether the snapshot being received is `meta`'s.
    pub fn is_for(&self, meta: SnapshotMeta) -> bool {
        self.current.as_ref().is_some_and(|c| c.meta == meta)
    }

    /// Forgets the transfer and removes its file (it was installed: its data now lives
    /// in a snapshot file of its own). Views handed out by `read` stay valid.
    pub fn finish(&mut self, fs: &dyn FileSystem, dir: &Path) -> std::io::Result<()> {
        self.current = None;
        self.pages.release_all();
        self.pages = Residency::default();
        match fs.remove_file(&path(dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Takes the pages of `part`, if it is a part of the last view `read` handed out,
    /// from the resident set (`Residency::release_part`).
    pub fn release_part(&self, part: &[u8]) {
        self.pages.release_part(part);
    }

    /// Takes the pages of the last view `read` handed out from the resident set.
    pub fn release_pages(&self) {
        self.pages.release_all();
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(RECEIVE_NAME)
}

fn out_of_order(meta: SnapshotMeta, offset: u64) -> String {
    format!(
        "received snapshot at index {} (term {}): no data written up to byte {offset}",
        meta.index, meta.term
    )
}
