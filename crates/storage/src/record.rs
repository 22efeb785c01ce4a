//! WAL record framing: encoding, decoding, and classifying a damaged record.
//!
//! Frame layout (little endian):
//!
//! ```text
//! [len u32][crc u32][type u8][payload: len bytes]
//! ```
//!
//! * `len` is the payload length, at most [`MAX_PAYLOAD_BYTES`].
//! * `type` holds the record kind in its low nibble and a 4-bit XOR fold of `len` in its
//!   high nibble, so any single flipped bit of `len` is caught *before* `len` is trusted
//!   to decide whether a tail record is incomplete (torn) or damaged (corrupt).
//! * `crc` is CRC32C over `len ‖ type ‖ payload`.
//!
//! Invariant: `decode` never panics on any input; every byte string either decodes to a
//! record or yields a [`FrameError`] that says where and why.

use bytes::Bytes;
use raft::{Entry, EntryKind, HardState, SnapshotMeta};

/// Bytes before the payload: len (4) + crc (4) + type (1).
pub const HEADER_BYTES: usize = 9;
/// Largest payload accepted, on write and on read. A length above this is corruption.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;

/// One logical WAL operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// An entry. Replay semantics: discard every held entry at or after `index`, then
    /// hold this one (an append that overwrites a suffix needs no separate record).
    Entry(Entry),
    /// The hard state from here on.
    HardState(HardState),
    /// A snapshot became current at this point of the log. `kept_tail` says whether the
    /// entries after `meta.index` were kept (compaction, or a matching install) or all
    /// discarded (an install whose term did not match).
    Snapshot { meta: SnapshotMeta, kept_tail: bool },
}

/// Why a frame at some offset could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame runs past the end of the buffer (a header or payload cut short).
    Incomplete,
    /// The frame is complete but damaged; the string says how.
    Damaged(String),
}

fn fold4(len: u32) -> u8 {
    let mut x = len;
    let mut f = 0u32;
    for _ in 0..8 {
        f ^= x & 0xF;
        x >>= 4;
    }
    f as u8
}

/// Appends the frame for `record` to `out`; returns the frame's length in bytes.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_BYTES]);
    let kind = encode_payload(record, out);
    let len = (out.len() - start - HEADER_BYTES) as u32;
    let type_byte = kind | (fold4(len) << 4);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 8] = type_byte;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 4]), &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// Size of the frame `encode` would produce for an entry with `data_len` bytes of data.
pub fn entry_frame_bytes(data_len: usize) -> usize {
    HEADER_BYTES + 17 + data_len
}

/// `Entry::size_bytes` of the entry whose frame (`encode`) is `frame_bytes` long: the
/// inverse of [`entry_frame_bytes`], so the log can account an entry that left its cache.
pub fn entry_size_bytes(frame_bytes: u32) -> u64 {
    Entry::OVERHEAD_BYTES + (frame_bytes as usize - entry_frame_bytes(0)) as u64
}

fn encode_payload(record: &Record, out: &mut Vec<u8>) -> u8 {
    match record {
        Record::Entry(e) => {
            out.extend_from_slice(&e.term.to_le_bytes());
            out.extend_from_slice(&e.index.to_le_bytes());
            out.push(match e.kind {
                EntryKind::Normal => 0,
                EntryKind::Noop => 1,
                EntryKind::ConfChange => 2,
            });
            out.extend_from_slice(&e.data);
            KIND_ENTRY
        }
        Record::HardState(hs) => {
            out.extend_from_slice(&hs.term.to_le_bytes());
            out.extend_from_slice(&hs.vote.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&hs.commit.to_le_bytes());
            KIND_HARD_STATE
        }
        Record::Snapshot { meta, kept_tail } => {
            out.extend_from_slice(&meta.index.to_le_bytes());
            out.extend_from_slice(&meta.term.to_le_bytes());
            out.push(u8::from(*kept_tail));
            KIND_SNAPSHOT
        }
    }
}

/// Decodes the frame at the start of `buf`: the record and the frame's length.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), FrameError> {
    if buf.len() < HEADER_BYTES {
        return Err(FrameError::Incomplete);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap());
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let type_byte = buf[8];
    if type_byte >> 4 != fold4(len) {
        return Err(FrameError::Damaged(format!(
            "length check failed (len field {len})"
        )));
    }
    if len as usize > MAX_PAYLOAD_BYTES {
        return Err(FrameError::Damaged(format!(
            "record length {len} exceeds the limit"
        )));
    }
    let end = HEADER_BYTES + len as usize;
    if buf.len() < end {
        return Err(FrameError::Incomplete);
    }
    let actual = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[8..end]);
    if actual != crc {
        return Err(FrameError::Damaged(format!(
            "checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        )));
    }
    let record =
        decode_payload(type_byte & 0xF, &buf[HEADER_BYTES..end]).map_err(FrameError::Damaged)?;
    Ok((record, end))
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().unwrap())
}

fn decode_payload(kind: u8, p: &[u8]) -> Result<Record, String> {
    let need = |n: usize| {
        if p.len() < n {
            Err(format!(
                "payload of {} bytes too short for kind {kind}",
                p.len()
            ))
        } else {
            Ok(())
        }
    };
    match kind {
        KIND_ENTRY => {
            need(17)?;
            let kind = match p[16] {
                0 => EntryKind::Normal,
                1 => EntryKind::Noop,
                2 => EntryKind::ConfChange,
                k => return Err(format!("unknown entry kind {k}")),
            };
            let data = Bytes::copy_from_slice(&p[17..]);
            Ok(Record::Entry(Entry {
                term: u64_at(p, 0),
                index: u64_at(p, 8),
                kind,
                data,
            }))
        }
        KIND_HARD_STATE => {
            need(24)?;
            let vote = Some(u64_at(p, 8)).filter(|v| *v != 0);
            Ok(Record::HardState(HardState {
                term: u64_at(p, 0),
                vote,
                commit: u64_at(p, 16),
            }))
        }
        KIND_SNAPSHOT => {
            need(17)?;
            let meta = SnapshotMeta {
                index: u64_at(p, 0),
                term: u64_at(p, 8),
            };
            Ok(Record::Snapshot {
                meta,
                kept_tail: p[16] != 0,
            })
        }
        k => Err(format!("unknown record type {k}")),
    }
}

/// Size of a disk sector for torn-write detection: a crash may leave whole sectors of
/// the last write unwritten (zero) while the file length already covers them.
const SECTOR_BYTES: u64 = 512;

/// Decides whether a frame that failed to decode at file offset `offset` of the LAST
/// segment, with `rest` the bytes from there to end of file, is a torn write.
///
/// Torn (never acknowledged, safe to cut): the frame is incomplete; or everything from
/// it to the end of file is zero; or it is the final frame, ends exactly at end of file,
/// fails its checksum, and contains a whole sector of zeros; or it fails its checksum
/// and, from a sector boundary inside it, it and everything after it to the end of file
/// are zero (a write into the WAL's preallocated zeros whose later sectors never
/// reached the disk). Anything else (notably any single flipped bit in a complete final
/// frame, whether the file ends there or preallocated zeros follow) is corruption.
pub fn is_torn_tail(offset: u64, rest: &[u8], err: &FrameError) -> bool {
    if rest.iter().all(|b| *b == 0) {
        return true;
    }
    match err {
        FrameError::Incomplete => true,
        FrameError::Damaged(_) => {
            if rest.len() < HEADER_BYTES {
                return true;
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
            let frame = HEADER_BYTES + len;
            let complete_final = frame == rest.len();
            // `len` is trusted to place the frame's end only if it passes its check:
            // a flipped bit in it must not stretch the frame over zeros that follow
            // it (preallocated space) and so make it look torn.
            let len_checked = rest[8] >> 4 == fold4(len as u32);
            len_checked
                && ((complete_final && has_zero_sector(offset, rest))
                    || (frame <= rest.len() && zero_from_sector(offset, rest) < frame))
        }
    }
}

/// Where (relative to `bytes`, which start at file offset `offset`) the zeros that run
/// to the end of `bytes` begin, rounded up to a sector boundary: every byte from there
/// on is zero, as a sector never written reads.
fn zero_from_sector(offset: u64, bytes: &[u8]) -> usize {
    let written = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let boundary = (offset + written as u64).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    (boundary - offset) as usize
}

fn has_zero_sector(offset: u64, bytes: &[u8]) -> bool {
    let first = offset.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    let mut at = first;
    while at + SECTOR_BYTES <= offset + bytes.len() as u64 {
        let s = (at - offset) as usize;
        if bytes[s..s + SECTOR_BYTES as usize].iter().all(|b| *b == 0) {
            return true;
        }
        at += SECTOR_BYTES;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::Entry(Entry::normal(3, 7, Bytes::from_static(b"hello"))),
            Record::Entry(Entry::noop(4, 8)),
            Record::HardState(HardState {
                term: 4,
                vote: Some(2),
                commit: 6,
            }),
            Record::HardState(HardState::default()),
            Record::Snapshot {
                meta: SnapshotMeta { index: 5, term: 2 },
                kept_tail: true,
            },
        ]
    }

    #[test]
    fn roundtrip() {
        for r in sample() {
            let mut buf = Vec::new();
            let n = encode(&r, &mut buf);
            assert_eq!(n, buf.len());
            assert_eq!(decode(&buf), Ok((r, n)));
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        for r in sample() {
            let mut buf = Vec::new();
            encode(&r, &mut buf);
            for bit in 0..buf.len() * 8 {
                let mut b = buf.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    matches!(decode(&b), Err(FrameError::Damaged(_))),
                    "bit {bit} of {r:?}"
                );
            }
        }
    }

    fn entry_frame(data_len: usize) -> Vec<u8> {
        let mut frame = Vec::new();
        let data = Bytes::from(vec![0xAB; data_len]);
        encode(&Record::Entry(Entry::normal(3, 7, data)), &mut frame);
        frame
    }

    /// The WAL's preallocated zeros after the final frame must not make a flipped bit
    /// in it (a flipped bit of its length above all) look like a torn write.
    #[test]
    fn a_flipped_bit_before_preallocated_zeros_is_corruption() {
        let frame = entry_frame(600);
        for offset in [0u64, 100, 500] {
            for bit in 0..frame.len() * 8 {
                let mut b = frame.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                b.extend_from_slice(&[0u8; 4096]);
                let err = decode(&b).unwrap_err();
                assert!(
                    !is_torn_tail(offset, &b, &err),
                    "bit {bit} at offset {offset}"
                );
            }
        }
    }

    /// A write into preallocated zeros whose later sectors never reached the disk
    /// (they still read as zeros) is torn, whether more zeros follow or not.
    #[test]
    fn a_frame_missing_its_later_sectors_is_torn() {
        let frame = entry_frame(600);
        let offset = 100u64; // the frame spans bytes 100..735: sector 512.. is lost
        let mut b = frame.clone();
        b[(512 - offset) as usize..].fill(0);
        let err = decode(&b).unwrap_err();
        assert!(is_torn_tail(offset, &b, &err), "ends at end of file");
        b.extend_from_slice(&[0u8; 4096]);
        assert!(is_torn_tail(offset, &b, &err), "preallocated zeros follow");
    }

    #[test]
    fn every_cut_is_incomplete() {
        let mut buf = Vec::new();
        encode(&sample()[0], &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut]),
                Err(FrameError::Incomplete),
                "cut {cut}"
            );
        }
    }
}
