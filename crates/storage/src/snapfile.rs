//! Snapshot files: `snap-{index:016x}-{term:016x}.snap`, one per durable snapshot.
//!
//! Layout, version 2: magic (8) ‖ format version u32 ‖ index u64 ‖ term u64 ‖ data
//! length u64 ‖ CRC32C u32 ‖ membership length u32 ‖ membership (`raft::Membership::encode`;
//! length 0: none) ‖ data. The CRC covers everything but itself.
//! Version 1 (written before memberships were recorded) has no membership fields; it is
//! still read, as a snapshot without a membership (the node's configured peers apply).
//!
//! Written to `snap.tmp` (data first, after a placeholder header; then the header, which
//! holds the data's length and the checksum), fsync'd, renamed into place, then the
//! directory fsync'd: a snapshot file under its final name is always complete and
//! durable. The caller removes the previous snapshot only after the write returns. Any
//! `*.tmp` left by a crash is garbage.
//!
//! Memory: a snapshot is never held twice. `write_streamed` takes the data from its
//! producer (the state machine's encoder) through a 1 MiB buffer, summing it as it passes,
//! and writes the header last; `write` does the same from the caller's `Bytes`. `load` (on
//! open) and `map_written` (after a write) give the data as a read-only memory map of the
//! file wrapped in `Bytes` (`Bytes::from_owner`): no copy at all, so `Storage::snapshot()`
//! is a reference-count bump and the leader's InstallSnapshot chunks (`data.slice(..)`)
//! are read straight from the page cache.
//! `load` verifies the checksum by streaming over the map, releasing each chunk from the
//! process's resident set once it is summed, so opening a store with a large snapshot
//! costs neither heap nor resident memory in proportion to it.
//!
//! Why the map is sound (`memmap2::Mmap::map` is `unsafe` because the bytes behind a
//! `&[u8]` must not change and must not vanish): a snapshot file is never modified or
//! truncated in place. It is written only under `snap.tmp`, which `FileSystem::create`
//! makes afresh (a new inode: the previous `snap.tmp` was renamed away), and renamed into
//! place once complete; after that the store only ever unlinks it (replaced by a newer
//! snapshot, or superseded at recovery). Unlinking does not invalidate a map: Linux keeps
//! the inode and its pages alive while any map of it exists, so a `Bytes` handed out
//! before the snapshot was replaced stays readable and intact until its last clone drops,
//! and only then is the disk space freed. What this does not cover, on purpose: another
//! process writing into a live data directory's files (the store assumes it owns the
//! directory, as it does for the WAL), and platforms that refuse to unlink mapped files.

use crate::error::OpenError;
use crate::fs::{FileSystem, ReadOnlyFile, Residency, WritableFile};
use bytes::Bytes;
use raft::{Membership, Snapshot, SnapshotMeta};
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RKVSNAP\0";
/// The version this build writes.
const FORMAT_VERSION: u32 = 2;
/// The version without a membership, still read.
const FORMAT_VERSION_V1: u32 = 1;
/// The fixed header both versions share; the CRC is its last 4 bytes.
const HEADER_BYTES: usize = 40;
const CRC_AT: usize = 36;
/// Data is written in chunks of this size so no second full copy is ever built.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
/// The checksum is verified over chunks of this size, each released from the resident
/// set once summed.
const VERIFY_CHUNK_BYTES: usize = 8 << 20;
pub const TEMP_NAME: &str = "snap.tmp";

pub fn file_name(meta: SnapshotMeta) -> String {
    format!("snap-{:016x}-{:016x}.snap", meta.index, meta.term)
}

pub fn parse_file_name(name: &str) -> Option<SnapshotMeta> {
    let body = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (i, t) = body.split_once('-')?;
    if i.len() != 16 || t.len() != 16 {
        return None;
    }
    Some(SnapshotMeta {
        index: u64::from_str_radix(i, 16).ok()?,
        term: u64::from_str_radix(t, 16).ok()?,
    })
}

fn conf_bytes(conf: Option<&Membership>) -> Bytes {
    conf.map(Membership::encode).unwrap_or_default()
}

/// Everything before the data: the fixed header and the membership block, for data of
/// `data_len` bytes whose CRC32C alone is `data_crc` (combined into the file's checksum,
/// which covers header, membership and data in that order).
fn header(meta: SnapshotMeta, conf: &[u8], data_len: u64, data_crc: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES + 4 + conf.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&meta.index.to_le_bytes());
    h.extend_from_slice(&meta.term.to_le_bytes());
    h.extend_from_slice(&data_len.to_le_bytes());
    h.extend_from_slice(&[0; 4]); // the CRC, filled in below
    h.extend_from_slice(&(conf.len() as u32).to_le_bytes());
    h.extend_from_slice(conf);
    let crc = crc32c::crc32c(&h[..CRC_AT]);
    let crc = crc32c::crc32c_append(crc, &h[HEADER_BYTES..]);
    let crc = crc32c::crc32c_combine(crc, data_crc, data_len as usize);
    h[CRC_AT..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    h
}

/// How much of a snapshot's data [`write`] copies before it releases it.
const RELEASE_CHUNK_BYTES: usize = 4 << 20;

/// Writes `snap` durably under its final name in `dir`; returns that path. Each part of
/// the data, once written, goes to `release` (a follower installing a received snapshot
/// copies it from the received file's map: its pages then leave the resident set
/// behind the copy instead of all becoming resident).
pub fn write(
    fs: &dyn FileSystem,
    dir: &Path,
    snap: &Snapshot,
    release: &dyn Fn(&[u8]),
) -> io::Result<PathBuf> {
    let mut data = |w: &mut dyn io::Write| {
        snap.data.chunks(RELEASE_CHUNK_BYTES).try_for_each(|part| {
            w.write_all(part)?;
            release(part);
            Ok(())
        })
    };
    write_streamed(fs, dir, snap.meta, snap.conf.as_ref(), &mut data).map(|(path, _)| path)
}

/// Writes the snapshot `meta` (membership `conf`) durably under its final name in `dir`,
/// its data as `write_data` produces it, never whole in memory (buffers: one of
/// `WRITE_CHUNK_BYTES`); returns the path and the data's length. The header, which holds the data's length and
/// the checksum, is written last, over a placeholder, before the fsync: the file is
/// renamed into place only once complete.
pub fn write_streamed(
    fs: &dyn FileSystem,
    dir: &Path,
    meta: SnapshotMeta,
    conf: Option<&Membership>,
    write_data: &mut raft::WriteSnapshot<'_>,
) -> io::Result<(PathBuf, u64)> {
    let tmp = dir.join(TEMP_NAME);
    let path = dir.join(file_name(meta));
    let conf = conf_bytes(conf);
    let mut f = fs.create(&tmp)?;
    let placeholder = header(meta, &conf, 0, 0);
    f.write_all(&vec![0; placeholder.len()])?;
    let sink = DataSink {
        file: &mut *f,
        len: 0,
        crc: 0,
    };
    let mut buffered = io::BufWriter::with_capacity(WRITE_CHUNK_BYTES, sink);
    write_data(&mut buffered)?;
    let DataSink { len, crc, .. } = buffered.into_inner().map_err(|e| e.into_error())?;
    f.write_at(0, &header(meta, &conf, len, crc))?;
    f.sync_data()?;
    drop(f);
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)?;
    Ok((path, len))
}

/// The data part of a snapshot file on its way to the file: counted and summed as it
/// passes.
struct DataSink<'a> {
    file: &'a mut dyn WritableFile,
    len: u64,
    /// CRC32C of the data alone.
    crc: u32,
}

impl io::Write for DataSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens and verifies the snapshot file at `path`, named for `meta`. The data is a view of
/// the file (see the module docs), not a copy; the [`Residency`] releases its pages.
pub fn load(
    fs: &dyn FileSystem,
    path: &Path,
    meta: SnapshotMeta,
) -> Result<(Snapshot, Residency), OpenError> {
    let file = fs
        .map_read(path)
        .map_err(OpenError::io("read snapshot", path))?;
    if file.len() < HEADER_BYTES || &file[0..8] != MAGIC {
        return Err(OpenError::corrupt(
            path,
            0,
            "not a raftkv snapshot (short file or bad magic)",
        ));
    }
    let version = u32::from_le_bytes(file[8..12].try_into().unwrap());
    if version != FORMAT_VERSION && version != FORMAT_VERSION_V1 {
        return Err(OpenError::IncompatibleVersion {
            path: path.into(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    let found = SnapshotMeta {
        index: u64_at(12),
        term: u64_at(20),
    };
    if found != meta {
        return Err(OpenError::corrupt(
            path,
            12,
            format!("header says {found:?}, file name says {meta:?}"),
        ));
    }
    let (conf_bytes, data_at) = conf_block(&file, version)
        .map_err(|why| OpenError::corrupt(path, HEADER_BYTES as u64, why.to_string()))?;
    let data_len = u64_at(28);
    if data_len != (file.len() - data_at) as u64 {
        return Err(OpenError::corrupt(
            path,
            28,
            format!(
                "data length {data_len} but file holds {}",
                file.len() - data_at
            ),
        ));
    }
    let stored = u32::from_le_bytes(file[CRC_AT..HEADER_BYTES].try_into().unwrap());
    if stored != checksum_streaming(&file) {
        return Err(OpenError::corrupt(path, 36, "snapshot checksum mismatch"));
    }
    let conf = match conf_bytes {
        Some(b) => Some(Membership::decode(&b).ok_or_else(|| {
            OpenError::corrupt(path, HEADER_BYTES as u64 + 4, "undecodable membership")
        })?),
        None => None,
    };
    let pages = file.residency();
    let snap = Snapshot {
        meta,
        conf,
        data: data_of(file, data_at),
    };
    Ok((snap, pages))
}

/// The membership bytes (a copy: they are small) and where the data starts.
fn conf_block(file: &ReadOnlyFile, version: u32) -> Result<(Option<Vec<u8>>, usize), &'static str> {
    if version == FORMAT_VERSION_V1 {
        return Ok((None, HEADER_BYTES));
    }
    if file.len() < HEADER_BYTES + 4 {
        return Err("file too short for the membership length");
    }
    let len = u32::from_le_bytes(file[HEADER_BYTES..HEADER_BYTES + 4].try_into().unwrap()) as usize;
    let at = HEADER_BYTES + 4;
    if file.len() - at < len {
        return Err("membership runs past the end of the file");
    }
    let bytes = (len > 0).then(|| file[at..at + len].to_vec());
    Ok((bytes, at + len))
}

/// CRC32C of header (less its checksum field) and data, in chunks, each released from the
/// resident set once summed.
fn checksum_streaming(file: &ReadOnlyFile) -> u32 {
    let mut crc = crc32c::crc32c(&file[0..CRC_AT]);
    let mut at = HEADER_BYTES;
    while at < file.len() {
        let end = file.len().min(at + VERIFY_CHUNK_BYTES);
        crc = crc32c::crc32c_append(crc, &file[at..end]);
        file.release(at..end);
        at = end;
    }
    crc
}

/// The data part of a whole snapshot file (from `data_at`), sharing its storage. Empty
/// data holds nothing (not even the map of the header).
fn data_of(file: ReadOnlyFile, data_at: usize) -> Bytes {
    if file.len() <= data_at {
        return Bytes::new();
    }
    file.into_bytes().slice(data_at..)
}

/// After `write` or `write_streamed` returned `path`: the data, `data_len` bytes, as a
/// view of that file, so the store need not keep the caller's buffer alive (it may be the
/// only large heap copy, and the page cache already holds the bytes). Not re-verified:
/// this process just wrote and fsync'd it. `None` if the file cannot be read back or is
/// not the expected size.
///
/// Also returns the map's [`Residency`], so the store can drop the file's pages from the
/// resident set once they were read (restoring the state machine from them at boot, or
/// sending them to a follower, touches every page).
pub fn map_written(
    fs: &dyn FileSystem,
    path: &Path,
    conf: Option<&Membership>,
    data_len: u64,
) -> Option<(Bytes, Residency)> {
    if data_len == 0 {
        return Some((Bytes::new(), Residency::default()));
    }
    let data_at = HEADER_BYTES + 4 + conf_bytes(conf).len();
    let file = fs.map_read(path).ok()?;
    if file.len() as u64 != data_at as u64 + data_len {
        return None;
    }
    let pages = file.residency();
    Some((data_of(file, data_at), pages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;

    fn meta() -> SnapshotMeta {
        SnapshotMeta { index: 7, term: 3 }
    }

    /// A version-1 file as builds before memberships wrote it.
    fn v1_bytes(data: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&FORMAT_VERSION_V1.to_le_bytes());
        h.extend_from_slice(&7u64.to_le_bytes());
        h.extend_from_slice(&3u64.to_le_bytes());
        h.extend_from_slice(&(data.len() as u64).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&h), data);
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(data);
        h
    }

    #[test]
    fn a_version_1_file_still_loads_without_a_membership() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(meta()));
        std::fs::write(&path, v1_bytes(b"old state")).unwrap();
        let (snap, _) = load(&StdFs, &path, meta()).unwrap();
        assert_eq!(snap.conf, None);
        assert_eq!(&snap.data[..], b"old state");
    }

    #[test]
    fn version_2_keeps_the_membership_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = Membership::with_voters([1, 2, 3]);
        conf.learners.insert(4);
        conf.addrs.insert(4, "127.0.0.1:4".into());
        let snap = Snapshot {
            meta: meta(),
            conf: Some(conf),
            data: Bytes::from_static(b"state"),
        };
        let path = write(&StdFs, dir.path(), &snap, &|_| {}).unwrap();
        assert_eq!(load(&StdFs, &path, meta()).unwrap().0, snap);
        let (data, _) = map_written(&StdFs, &path, snap.conf.as_ref(), 5).unwrap();
        assert_eq!(data, snap.data);
        // A flipped bit inside the membership is caught by the checksum.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 6] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&StdFs, &path, meta()).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
