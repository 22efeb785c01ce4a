//! The frame every snapshot format here shares: `magic (4 bytes) | version
//! (1 byte) | body | crc32c (4 bytes, little-endian, over everything
//! before it)`. Each machine keeps its own magic, version and body; this
//! writes ([`seal_frame`]) and checks ([`check_frame`]) the frame once, for
//! all of them.

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than magic + version + checksum.
    TooShort(usize),
    BadMagic,
    UnsupportedVersion(u8),
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
}

const CRC_BYTES: usize = 4;

/// Writes a frame: the header, then whatever `write_body` appends to the
/// buffer it is given (which already holds the header), then the checksum
/// over all of it.
pub fn seal_frame(
    magic: &[u8; 4],
    version: u8,
    write_body: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> bytes::Bytes {
    let mut header = magic.to_vec();
    header.push(version);
    let mut out = write_body(header);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    bytes::Bytes::from(out)
}

/// Checks magic, checksum and version (in that order); returns the body.
pub fn check_frame<'a>(
    input: &'a [u8],
    magic: &[u8; 4],
    version: u8,
) -> Result<&'a [u8], FrameError> {
    let header = magic.len() + 1;
    if input.len() < header + CRC_BYTES {
        return Err(FrameError::TooShort(input.len()));
    }
    if input[..magic.len()] != magic[..] {
        return Err(FrameError::BadMagic);
    }
    let (covered, crc_bytes) = input.split_at(input.len() - CRC_BYTES);
    let stored = u32::from_le_bytes(crc_bytes.try_into().expect("split at 4 bytes"));
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(FrameError::ChecksumMismatch { stored, computed });
    }
    match input[magic.len()] {
        v if v == version => Ok(&covered[header..]),
        v => Err(FrameError::UnsupportedVersion(v)),
    }
}
