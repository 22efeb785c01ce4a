//! The frame every snapshot format here shares: `magic (4 bytes) | version
//! (1 byte) | body | crc32c (4 bytes, little-endian, over everything
//! before it)`. Each machine keeps its own magic, version and body; this
//! writes ([`write_frame`], streaming, or [`seal_frame`], into memory) and
//! checks ([`check_frame`], or [`check_frame_input`], releasing a mapped file's pages
//! as it goes) the frame once, for all of them.

use crate::SnapshotInput;

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

/// How much of a body [`FrameWriter`] gathers before it passes it on: the
/// whole of a frame writer's memory, however large the body.
pub const FRAME_BUFFER_BYTES: usize = 64 << 10;

/// Writes a frame to `out` as it is produced: the header, then the body
/// `write_body` writes into the [`FrameWriter`] it is given, then the
/// checksum over all of it. Nothing is held but one buffer of
/// [`FRAME_BUFFER_BYTES`], so a snapshot goes to its file without ever being
/// whole in memory. The bytes are those of [`seal_frame`] for the same body.
pub fn write_frame(
    magic: &[u8; 4],
    version: u8,
    out: &mut dyn std::io::Write,
    write_body: impl FnOnce(&mut FrameWriter<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut w = FrameWriter {
        out,
        buf: Vec::with_capacity(FRAME_BUFFER_BYTES),
        crc: 0,
        failed: None,
    };
    std::io::Write::write_all(&mut w, magic)?;
    std::io::Write::write_all(&mut w, &[version])?;
    write_body(&mut w)?;
    w.pass_on()?;
    let crc = w.crc;
    w.out.write_all(&crc.to_le_bytes())
}

/// The frame as one buffer: [`write_frame`] into memory (tests, the admin
/// backup, stores that keep snapshots in memory).
pub fn seal_frame(
    magic: &[u8; 4],
    version: u8,
    write_body: impl FnOnce(&mut FrameWriter<'_>) -> std::io::Result<()>,
) -> bytes::Bytes {
    let mut out = Vec::new();
    write_frame(magic, version, &mut out, write_body).expect("writing to a Vec cannot fail");
    bytes::Bytes::from(out)
}

/// A frame's body on its way out ([`write_frame`]): gathers writes into one
/// buffer, sums them into the checksum, passes them on when it is full.
pub struct FrameWriter<'a> {
    out: &'a mut dyn std::io::Write,
    buf: Vec<u8>,
    /// CRC32C of everything passed on so far.
    crc: u32,
    /// The first error the destination returned (see [`FrameWriter::error`]).
    failed: Option<std::io::Error>,
}

impl FrameWriter<'_> {
    /// The error to report for a serializer's failure `e`: the destination's
    /// own I/O error if it returned one (a serializer writing through
    /// `std::io::Write` keeps only that something failed: a full disk must
    /// still say so), else `e` as an I/O error.
    pub fn error(&mut self, e: impl std::fmt::Display) -> std::io::Error {
        self.failed
            .take()
            .unwrap_or_else(|| std::io::Error::other(e.to_string()))
    }

    /// Sums and passes on `bytes`; keeps a copy of a failure for `error`.
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out.write_all(bytes).inspect_err(|e| {
            self.failed
                .get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn pass_on(&mut self) -> std::io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let sent = self.send(&buf);
        self.buf = buf;
        self.buf.clear();
        sent
    }
}

impl std::io::Write for FrameWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > FRAME_BUFFER_BYTES {
            self.pass_on()?;
        }
        if data.len() >= FRAME_BUFFER_BYTES {
            self.send(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.pass_on()?;
        self.out.flush()
    }
}

/// Checks magic, checksum and version (in that order); returns the body.
pub fn check_frame<'a>(
    input: &'a [u8],
    magic: &[u8; 4],
    version: u8,
) -> Result<&'a [u8], FrameError> {
    check_frame_input(SnapshotInput::in_memory(input), magic, version)
}

/// [`check_frame`] over a [`SnapshotInput`]: the checksum pass releases the bytes it
/// has summed every [`crate::input::RELEASE_STEP`], so checking a mapped snapshot file
/// does not make all of it resident. The decoder reads the body again after (from
/// the page cache).
pub fn check_frame_input<'a>(
    input: SnapshotInput<'a>,
    magic: &[u8; 4],
    version: u8,
) -> Result<&'a [u8], FrameError> {
    let bytes = input.data();
    let header = magic.len() + 1;
    if bytes.len() < header + CRC_BYTES {
        return Err(FrameError::TooShort(bytes.len()));
    }
    if bytes[..magic.len()] != magic[..] {
        return Err(FrameError::BadMagic);
    }
    let (covered, crc_bytes) = bytes.split_at(bytes.len() - CRC_BYTES);
    let stored = u32::from_le_bytes(crc_bytes.try_into().expect("split at 4 bytes"));
    let computed = covered
        .chunks(crate::input::RELEASE_STEP)
        .fold(0, |crc, part| {
            let crc = crc32c::crc32c_append(crc, part);
            input.release(part);
            crc
        });
    if stored != computed {
        return Err(FrameError::ChecksumMismatch { stored, computed });
    }
    match bytes[magic.len()] {
        v if v == version => Ok(&covered[header..]),
        v => Err(FrameError::UnsupportedVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The frame as the format defines it, built by hand.
    fn by_hand(body: &[u8]) -> Vec<u8> {
        let mut f = b"TEST\x03".to_vec();
        f.extend_from_slice(body);
        let crc = crc32c::crc32c(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn streamed_frame_is_the_format_whatever_the_write_sizes() {
        // Bodies below, at and well over the buffer, in small and large writes.
        for len in [
            0,
            1,
            FRAME_BUFFER_BYTES - 5,
            FRAME_BUFFER_BYTES,
            3 * FRAME_BUFFER_BYTES + 7,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            for piece in [1, 1000, FRAME_BUFFER_BYTES, 2 * FRAME_BUFFER_BYTES + 1] {
                let mut out = Vec::new();
                write_frame(b"TEST", 3, &mut out, |w| {
                    body.chunks(piece).try_for_each(|c| w.write_all(c))
                })
                .unwrap();
                assert_eq!(out, by_hand(&body), "len {len}, writes of {piece}");
                assert_eq!(check_frame(&out, b"TEST", 3).unwrap(), &body[..]);
            }
        }
        let sealed = seal_frame(b"TEST", 3, |w| w.write_all(b"body"));
        assert_eq!(sealed[..], by_hand(b"body")[..]);
    }

    /// Fails every write with a full disk.
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_destinations_error_survives_a_serializer_that_drops_it() {
        let err = write_frame(b"TEST", 3, &mut Full, |w| {
            let big = vec![0u8; 2 * FRAME_BUFFER_BYTES];
            // What a serializer over `io::Write` does: reports only that it failed.
            w.write_all(&big)
                .map_err(|_| w.error("serializer: buffer full"))
        })
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    }
}
