//! Snapshot files: `snap-{index:016x}-{term:016x}.snap`, one per durable snapshot.
//!
//! Layout: magic (8) ‖ format version u32 ‖ index u64 ‖ term u64 ‖ data length u64 ‖
//! CRC32C u32 (over everything before it and the data) ‖ data.
//!
//! Written to `snap.tmp`, fsync'd, renamed into place, then the directory fsync'd: a
//! snapshot file under its final name is always complete and durable. The caller removes
//! the previous snapshot only after `write` returns. Any `*.tmp` left by a crash is garbage.

use crate::error::OpenError;
use crate::fs::FileSystem;
use crate::segment::FORMAT_VERSION;
use bytes::Bytes;
use raft::{Snapshot, SnapshotMeta};
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RKVSNAP\0";
const HEADER_BYTES: usize = 40;
/// Data is written in chunks of this size so no second full copy is ever built.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
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
    Some(SnapshotMeta { index: u64::from_str_radix(i, 16).ok()?, term: u64::from_str_radix(t, 16).ok()? })
}

fn header(snap: &Snapshot) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&snap.meta.index.to_le_bytes());
    h.extend_from_slice(&snap.meta.term.to_le_bytes());
    h.extend_from_slice(&(snap.data.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h), &snap.data);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// Writes `snap` durably under its final name in `dir`; returns that path.
pub fn write(fs: &dyn FileSystem, dir: &Path, snap: &Snapshot) -> io::Result<PathBuf> {
    let tmp = dir.join(TEMP_NAME);
    let path = dir.join(file_name(snap.meta));
    let mut f = fs.create(&tmp)?;
    f.write_all(&header(snap))?;
    for chunk in snap.data.chunks(WRITE_CHUNK_BYTES) {
        f.write_all(chunk)?;
    }
    f.sync_data()?;
    drop(f);
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)?;
    Ok(path)
}

/// Reads and verifies the snapshot file at `path`, named for `meta`.
pub fn load(fs: &dyn FileSystem, path: &Path, meta: SnapshotMeta) -> Result<Snapshot, OpenError> {
    let buf = fs.read(path).map_err(OpenError::io("read snapshot", path))?;
    if buf.len() < HEADER_BYTES || &buf[0..8] != MAGIC {
        return Err(OpenError::corrupt(path, 0, "not a raftkv snapshot (short file or bad magic)"));
    }
    let version = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(OpenError::IncompatibleVersion { path: path.into(), found: version, supported: FORMAT_VERSION });
    }
    let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
    let found = SnapshotMeta { index: u64_at(12), term: u64_at(20) };
    if found != meta {
        return Err(OpenError::corrupt(path, 12, format!("header says {found:?}, file name says {meta:?}")));
    }
    let data_len = u64_at(28);
    if data_len != (buf.len() - HEADER_BYTES) as u64 {
        return Err(OpenError::corrupt(path, 28, format!("data length {data_len} but file holds {}", buf.len() - HEADER_BYTES)));
    }
    let stored = u32::from_le_bytes(buf[36..40].try_into().unwrap());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[0..36]), &buf[HEADER_BYTES..]);
    if stored != crc {
        return Err(OpenError::corrupt(path, 36, "snapshot checksum mismatch"));
    }
    let mut buf = Bytes::from(buf);
    let data = buf.split_off(HEADER_BYTES);
    Ok(Snapshot { meta, data })
}
