//! The WAL head file, `WAL-HEAD`: the sequence number of the newest segment this
//! directory has ever made durable, so recovery can tell "the newest segment was never
//! created" (a crash) from "the newest segment was deleted" (refused).
//!
//! Segment sequence numbers alone cannot tell those apart: with segments 1 and 2
//! written and 2 deleted, the directory looks exactly like one that never rolled.
//!
//! Layout (24 bytes, little endian): magic `RKVHEAD\0`, format version u32, newest
//! segment sequence number u64, CRC32C of the preceding 20 bytes.
//!
//! Invariant: the head never names a segment that is not durable. The WAL creates a
//! segment durably (file and directory fsync'd) *before* it writes the head naming it,
//! and the head is replaced atomically (temp file, fsync, rename, directory fsync), so
//! after any crash `head <= newest segment present` unless a segment was removed by
//! something other than this store. A directory without a head (written by an older
//! build) gets one on open.

use crate::error::OpenError;
use crate::fs::FileSystem;
use std::io;
use std::path::Path;

pub const FILE_NAME: &str = "WAL-HEAD";
const TEMP_NAME: &str = "WAL-HEAD.tmp";
const MAGIC: &[u8; 8] = b"RKVHEAD\0";
const VERSION: u32 = 1;
const BYTES: usize = 24;

fn encode(newest_seq: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(BYTES);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&newest_seq.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Durably records `newest_seq` as the newest segment (temp file, fsync, rename, dir fsync).
pub fn write(fs: &dyn FileSystem, dir: &Path, newest_seq: u64) -> io::Result<()> {
    let tmp = dir.join(TEMP_NAME);
    let mut f = fs.create(&tmp)?;
    f.write_all(&encode(newest_seq))?;
    f.sync_data()?;
    drop(f);
    fs.rename(&tmp, &dir.join(FILE_NAME))?;
    fs.sync_dir(dir)
}

/// The newest segment the directory has recorded, or `None` if it has no head file.
pub fn read(fs: &dyn FileSystem, dir: &Path, names: &[String]) -> Result<Option<u64>, OpenError> {
    if !names.iter().any(|n| n == FILE_NAME) {
        return Ok(None);
    }
    let path = dir.join(FILE_NAME);
    let b = fs.read(&path).map_err(OpenError::io("read", &path))?;
    if b.len() != BYTES || &b[0..8] != MAGIC {
        return Err(OpenError::corrupt(&path, 0, "not a raftkv WAL head file"));
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(OpenError::IncompatibleVersion {
            path,
            found: version,
            supported: VERSION,
        });
    }
    let crc = u32::from_le_bytes(b[20..24].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&b[0..20]) {
        return Err(OpenError::corrupt(&path, 0, "WAL head checksum mismatch"));
    }
    Ok(Some(u64::from_le_bytes(
        b[12..20].try_into().expect("8 bytes"),
    )))
}
