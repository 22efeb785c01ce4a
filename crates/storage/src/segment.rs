//! One WAL segment file: its name, its header, and scanning its records.
//!
//! A segment is `{seq:016x}.wal`: a 24-byte header (magic, format version, sequence
//! number, CRC32C of those) followed by record frames (see [`crate::record`]).
//! Sequence numbers are contiguous across the directory; a gap is refused by recovery
//! as missing log data (`OpenError::MissingLog`, naming the entries and files).
//! Invariant: only the segment with the highest sequence number is ever appended to,
//! and a segment is fsync'd before the next one is created, so only that last segment
//! can legitimately end in a torn record.

use crate::error::OpenError;
use crate::record::{self, Record};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"RKVWAL\0\0";
/// The WAL format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 24;

/// Where one frame lives: enough to read it back on a cache miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub seq: u64,
    pub offset: u64,
    pub frame_bytes: u32,
}

pub fn file_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".wal")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub fn encode_header(seq: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// Checks the header of segment `seq` (whose bytes are `buf`, at least `HEADER_BYTES`).
pub fn check_header(path: &Path, buf: &[u8], seq: u64) -> Result<(), OpenError> {
    if &buf[0..8] != MAGIC {
        return Err(OpenError::corrupt(
            path,
            0,
            "not a raftkv WAL segment (bad magic)",
        ));
    }
    let version = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(OpenError::IncompatibleVersion {
            path: path.into(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let crc = u32::from_le_bytes(buf[20..24].try_into().unwrap());
    if crc != crc32c::crc32c(&buf[0..20]) {
        return Err(OpenError::corrupt(
            path,
            0,
            "segment header checksum mismatch",
        ));
    }
    let found = u64::from_le_bytes(buf[12..20].try_into().unwrap());
    if found != seq {
        return Err(OpenError::corrupt(
            path,
            12,
            format!("header says segment {found}, file name says {seq}"),
        ));
    }
    Ok(())
}

/// How a scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte was a valid record.
    Clean,
    /// A torn record starts at `offset`; the segment must be cut there. `why` says which
    /// kind of torn write it looked like (for the recovery report).
    TornAt { offset: u64, why: &'static str },
}

/// Feeds every record of segment `seq` (file bytes `buf`) to `visit`, in order.
/// A damaged record is a torn tail only in the last segment, and only as
/// [`record::is_torn_tail`] defines it; anything else is `OpenError::Corrupt`.
pub fn scan(
    path: &Path,
    buf: &[u8],
    seq: u64,
    is_last: bool,
    mut visit: impl FnMut(Record, Loc) -> Result<(), String>,
) -> Result<ScanEnd, OpenError> {
    check_header(path, buf, seq)?;
    let mut at = HEADER_BYTES;
    while at < buf.len() {
        match record::decode(&buf[at..]) {
            Ok((rec, n)) => {
                let loc = Loc {
                    seq,
                    offset: at as u64,
                    frame_bytes: n as u32,
                };
                visit(rec, loc).map_err(|reason| OpenError::corrupt(path, at as u64, reason))?;
                at += n;
            }
            Err(e) if is_last && record::is_torn_tail(at as u64, &buf[at..], &e) => {
                return Ok(ScanEnd::TornAt {
                    offset: at as u64,
                    why: torn_kind(&buf[at..], &e),
                });
            }
            Err(e) => {
                let reason = match e {
                    record::FrameError::Incomplete => {
                        "record cut short before the end of a sealed segment".to_string()
                    }
                    record::FrameError::Damaged(r) => r,
                };
                return Err(OpenError::corrupt(path, at as u64, reason));
            }
        }
    }
    Ok(ScanEnd::Clean)
}

/// Describes a tail that [`record::is_torn_tail`] accepted as torn.
fn torn_kind(rest: &[u8], e: &record::FrameError) -> &'static str {
    if rest.iter().all(|b| *b == 0) {
        "only zero bytes from here to the end of the file (space allocated, never written)"
    } else if *e == record::FrameError::Incomplete || rest.len() < record::HEADER_BYTES {
        "the last record is incomplete: the file ends inside it"
    } else {
        "the final record fails its checksum and holds a zeroed sector (a torn write)"
    }
}
