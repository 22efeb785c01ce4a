//! Primitive binary codec: LEB128 varints and length-prefixed byte strings.
//!
//! Owns: [`Writer`], [`Reader`] and [`DecodeError`]. Every higher-level format
//! in this crate (commands, responses, snapshots) is built from these few
//! primitives, so the "never panic on bytes from outside" rule is enforced in
//! one place.
//!
//! Invariants:
//! - `Reader` never indexes past its input; every read is bounds-checked and
//!   returns [`DecodeError::UnexpectedEnd`] instead.
//! - Varints are at most 10 bytes and must fit in a `u64`; lengths are checked
//!   against a caller-given maximum *before* any allocation.
//! - Varints are canonical (no redundant trailing zero groups), so every value
//!   has exactly one encoding.

use bytes::Bytes;
#[cfg(test)]
use bytes::{BufMut, BytesMut};

/// Why some bytes could not be decoded. Never produced by valid input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input")]
    UnexpectedEnd,
    #[error("varint does not fit in u64")]
    VarintOverflow,
    #[error("non-canonical varint")]
    VarintNotCanonical,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{0} trailing bytes after the end")]
    TrailingBytes(usize),
    #[error("invalid utf-8 in {0}")]
    InvalidUtf8(&'static str),
    /// A format-2 (postcard) body that does not decode.
    #[error("undecodable body: {0}")]
    Body(String),
    /// Decoded, but breaks a limit or invariant.
    #[error("invalid content: {0}")]
    Invalid(&'static str),
}

/// Appends primitives to a growable buffer (format 1's encoders are kept
/// for tests only, so this is too).
#[cfg(test)]
#[derive(Default)]
pub struct Writer {
    buf: BytesMut,
}

#[cfg(test)]
impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: BytesMut::new(),
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }

    /// A varint length followed by the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.buf.put_slice(v);
    }

    pub fn raw(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Reads primitives from a borrowed slice, never past its end.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.rest.split_first().ok_or(DecodeError::UnexpectedEnd)?;
        self.rest = rest;
        Ok(first)
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let byte = self.u8()?;
            let group = u64::from(byte & 0x7f);
            if i == 9 && group > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= group << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && group == 0 {
                    return Err(DecodeError::VarintNotCanonical);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag { what, tag }),
        }
    }

    /// Exactly `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::UnexpectedEnd);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// A length-prefixed byte string of at most `max` bytes, copied out.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<Bytes, DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::TooLong {
                what,
                len,
                max: max as u64,
            });
        }
        Ok(Bytes::copy_from_slice(self.raw(len as usize)?))
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        let raw = self.bytes(what, max)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidUtf8(what))
    }

    /// Succeeds only if all input was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn varint_bytes(v: u64) -> Bytes {
        let mut w = Writer::new();
        w.varint(v);
        w.finish()
    }

    #[test]
    fn varint_sizes() {
        assert_eq!(varint_bytes(0).len(), 1);
        assert_eq!(varint_bytes(127).len(), 1);
        assert_eq!(varint_bytes(128).len(), 2);
        assert_eq!(varint_bytes(u64::MAX).len(), 10);
    }

    #[test]
    fn varint_rejects_overflow_and_non_canonical() {
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(
            Reader::new(&too_big).varint(),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(
            Reader::new(&[0x80, 0x00]).varint(),
            Err(DecodeError::VarintNotCanonical)
        );
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    #[test]
    fn bytes_length_is_checked_before_reading() {
        let mut w = Writer::new();
        w.varint(u64::MAX);
        let buf = w.finish();
        let err = Reader::new(&buf).bytes("key", 10).unwrap_err();
        assert!(matches!(err, DecodeError::TooLong { what: "key", .. }));
        let mut w = Writer::new();
        w.varint(5);
        w.raw(b"abc");
        let buf = w.finish();
        assert_eq!(
            Reader::new(&buf).bytes("key", 10),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(2)));
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<u64>()) {
            let buf = varint_bytes(v);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.varint(), Ok(v));
            prop_assert_eq!(r.finish(), Ok(()));
        }

        #[test]
        fn reader_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&input);
            let _ = r.varint();
            let _ = r.bytes("x", 8);
            let _ = r.string("s", 8);
            let _ = r.bool("b");
        }
    }
}
