//! The server's incremental request decoder: the same frames as
//! [`super::parse_frame`], but it keeps its progress across reads, so a
//! request that arrives in many pieces costs time linear in its size (the
//! whole-buffer parser starts again from the first byte on every read: one
//! million tiny bulks followed by a trickle of bytes pegged a core).
//!
//! Every completed element leaves the read buffer at once (it is copied into
//! its frame), so the buffer holds only the element still arriving. The
//! memory a request in progress holds — the bytes of its completed elements,
//! a fixed charge per element for the frame it became, and the bytes still
//! buffered — is kept at most `query_buffer_limit`
//! (`--client-query-buffer-limit`): a bulk whose header announces more is
//! refused when the header arrives, before its bytes are buffered.
//!
//! Invariants: `bulk` is `Some` only inside an array or at the top level
//! after its header was consumed; `scanned <= buf.len()` for the buffer last
//! seen (a line end is searched for only in bytes not searched before);
//! `held` is zero between requests.

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{int, text, Frame, Limits, ParseError};

/// What one element costs beyond its wire bytes (the `Frame` it becomes).
const ELEMENT_OVERHEAD_BYTES: usize = std::mem::size_of::<Frame>();

/// Decodes request frames from a connection's read buffer, consuming them.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    query_buffer_limit: usize,
    /// Arrays being filled, outermost first: declared length, items so far.
    open: Vec<(usize, Vec<Frame>)>,
    /// A bulk whose header was consumed: its length (its bytes and CRLF follow).
    bulk: Option<usize>,
    /// Leading bytes of the buffer already searched for a line end.
    scanned: usize,
    /// Memory the request in progress holds outside the buffer.
    held: usize,
}

impl Decoder {
    pub fn new(limits: Limits, query_buffer_limit: usize) -> Self {
        Decoder {
            limits,
            query_buffer_limit,
            open: Vec::new(),
            bulk: None,
            scanned: 0,
            held: 0,
        }
    }

    /// The next complete frame at the front of `buf` (removed from it), or
    /// `None` when more bytes are needed. After an error, framing is lost:
    /// the connection must close.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ParseError> {
        loop {
            let item = match self.element(buf)? {
                Step::Need => {
                    self.check_room(buf.len())?;
                    return Ok(None);
                }
                Step::Again => continue,
                Step::Item(item) => item,
            };
            if let Some(frame) = self.place(item) {
                self.held = 0;
                return Ok(Some(frame));
            }
        }
    }

    fn element(&mut self, buf: &mut BytesMut) -> Result<Step, ParseError> {
        if let Some(len) = self.bulk {
            return self.bulk_body(buf, len);
        }
        let at_top = self.open.is_empty();
        match buf.first() {
            None => Ok(Step::Need),
            Some(b'*' | b'$' | b'+' | b'-' | b':') => self.header(buf),
            Some(_) if at_top => self.inline(buf),
            Some(_) => Err(ParseError::Invalid("expected '$', '*', '+', '-' or ':'")),
        }
    }

    fn bulk_body(&mut self, buf: &mut BytesMut, len: usize) -> Result<Step, ParseError> {
        if buf.len() < len + 2 {
            return Ok(Step::Need);
        }
        if &buf[len..len + 2] != b"\r\n" {
            return Err(ParseError::Invalid("bulk string not terminated by CRLF"));
        }
        let body = Bytes::copy_from_slice(&buf[..len]);
        self.consume(buf, len + 2);
        self.bulk = None;
        Ok(Step::Item(Frame::Bulk(body)))
    }

    /// A `$`, `*`, `+`, `-` or `:` line at the front of `buf`.
    fn header(&mut self, buf: &mut BytesMut) -> Result<Step, ParseError> {
        let Some(end) = self.line_end(buf)? else {
            return Ok(Step::Need);
        };
        let (tag, line) = (buf[0], &buf[1..end]);
        let parsed = match tag {
            b'+' => Header::Item(Frame::Simple(text(line)?)),
            b'-' => Header::Item(Frame::Error(text(line)?)),
            b':' => Header::Item(Frame::Integer(int(line)?)),
            b'$' => Header::Bulk(int(line)?),
            _ => Header::Array(int(line)?),
        };
        self.consume(buf, end + 2);
        match parsed {
            Header::Item(f) => Ok(Step::Item(f)),
            Header::Bulk(-1) => Ok(Step::Item(Frame::Null)),
            Header::Array(-1) => Ok(Step::Item(Frame::NullArray)),
            Header::Bulk(len) => self.open_bulk(len),
            Header::Array(len) => self.open_array(len),
        }
    }

    fn open_bulk(&mut self, len: i64) -> Result<Step, ParseError> {
        if len < 0 || len as u64 > self.limits.max_bulk_bytes as u64 {
            return Err(ParseError::Invalid("invalid bulk length"));
        }
        // Refused now, before any of its bytes are buffered.
        self.check_room(len as usize + 2)?;
        self.bulk = Some(len as usize);
        Ok(Step::Again)
    }

    fn open_array(&mut self, len: i64) -> Result<Step, ParseError> {
        if len < 0 || len as u64 > self.limits.max_array_len as u64 {
            return Err(ParseError::Invalid("invalid multibulk length"));
        }
        if self.open.len() >= self.limits.max_depth {
            return Err(ParseError::Invalid("arrays nested too deep"));
        }
        if len == 0 {
            return Ok(Step::Item(Frame::Array(Vec::new())));
        }
        // Do not trust `len` for the allocation; the vector grows as items come.
        let items = Vec::with_capacity((len as usize).min(1024));
        self.open.push((len as usize, items));
        Ok(Step::Again)
    }

    /// An inline command (`PING\r\n`): one line of words.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Step, ParseError> {
        let window = buf.len().min(self.limits.max_line_bytes + 1);
        let Some(nl) = buf[self.scanned.min(window)..window]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + self.scanned.min(window))
        else {
            if buf.len() > self.limits.max_line_bytes {
                return Err(ParseError::Invalid("too big inline request"));
            }
            self.scanned = window;
            return Ok(Step::Need);
        };
        let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
        let args = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| Frame::Bulk(Bytes::copy_from_slice(w)))
            .collect();
        self.consume(buf, nl + 1);
        Ok(Step::Item(Frame::Array(args)))
    }

    /// The index of the CRLF ending the line that starts after the tag at
    /// `buf[0]`, searching only bytes not searched before.
    fn line_end(&mut self, buf: &BytesMut) -> Result<Option<usize>, ParseError> {
        let window = buf.len().min(1 + self.limits.max_line_bytes + 2);
        let from = self.scanned.clamp(1, window);
        match buf[from..window].windows(2).position(|w| w == b"\r\n") {
            Some(i) => Ok(Some(from + i)),
            None if buf.len() - 1 > self.limits.max_line_bytes + 1 => {
                Err(ParseError::Invalid("line too long"))
            }
            None => {
                // A CR at the very end may be completed by the next read.
                self.scanned = window.saturating_sub(1).max(1);
                Ok(None)
            }
        }
    }

    /// Drops `n` bytes of a finished element from the buffer, charging them
    /// (and the element's frame) to the request.
    fn consume(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.scanned = 0;
        self.held += n + ELEMENT_OVERHEAD_BYTES;
    }

    fn check_room(&self, more: usize) -> Result<(), ParseError> {
        if self.held.saturating_add(more) > self.query_buffer_limit {
            return Err(ParseError::TooBig(self.query_buffer_limit));
        }
        Ok(())
    }

    /// Puts a finished element into the innermost open array; the whole
    /// frame once the outermost one (or a top-level element) is complete.
    fn place(&mut self, mut item: Frame) -> Option<Frame> {
        loop {
            let Some((len, items)) = self.open.last_mut() else {
                return Some(item);
            };
            items.push(item);
            if items.len() < *len {
                return None;
            }
            let (_, items) = self.open.pop().expect("an open array");
            item = Frame::Array(items);
        }
    }
}

enum Step {
    /// More bytes are needed.
    Need,
    /// A header opened an array or a bulk: go on decoding.
    Again,
    Item(Frame),
}

enum Header {
    Item(Frame),
    Bulk(i64),
    Array(i64),
}
