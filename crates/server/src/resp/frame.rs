//! RESP frames: decoding (RESP2, what clients send) with limits, and encoding in
//! RESP2 or, for a connection that said `HELLO 3`, RESP3 (null as `_`, maps as
//! `%`, sets as `~`, verbatim text as `=`).
//!
//! `parse_frame` looks at a buffer and returns `Ok(None)` when the frame is
//! not complete yet (a normal outcome: read more bytes), `Ok(Some((frame,
//! consumed)))` when it is, and `Err` when the bytes can never become a valid
//! frame or break a limit. It never allocates before a length has been
//! checked against [`Limits`], and never panics on any input (property-tested).
//!
//! Inline commands (`PING\r\n`, as typed into telnet) are accepted at the top
//! level like Redis does, as an array of bulk strings.

use bytes::{BufMut, Bytes, BytesMut};

/// One RESP2 value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// The null bulk string (`$-1`); RESP3's `_`.
    Null,
    /// The null array (`*-1`: an aborted `EXEC`); RESP3's `_`.
    NullArray,
    Array(Vec<Frame>),
    /// A map (RESP3 `%`); RESP2 clients get a flat array of key, value, ...
    Map(Vec<(Frame, Frame)>),
    /// A set (RESP3 `~`, e.g. `COMMAND`'s flags); RESP2 clients get an array.
    Set(Vec<Frame>),
    /// Text for humans (RESP3 verbatim `=` with format `txt`, as Redis
    /// answers `INFO` and `CLIENT LIST`); RESP2 clients get a bulk string.
    Verbatim(Bytes),
}

/// The reply encoding a connection negotiated (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// Bounds on what a peer may make us buffer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk string accepted.
    pub max_bulk_bytes: usize,
    /// Most elements in one array.
    pub max_array_len: usize,
    /// Deepest nesting of arrays.
    pub max_depth: usize,
    /// Longest simple line (header, simple string, inline command).
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A value may be kv::MAX_VALUE_BYTES; leave room for nothing bigger.
            max_bulk_bytes: kv::MAX_VALUE_BYTES,
            max_array_len: 1 << 20,
            max_depth: 8,
            max_line_bytes: 64 * 1024,
        }
    }
}

/// Why bytes cannot be a frame. The connection should reply `-ERR Protocol
/// error: ...` and close (as Redis does): framing is lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Protocol error: {0}")]
    Invalid(&'static str),
    /// A request (the one frame in progress, as [`super::Decoder`] counts it)
    /// would hold more than the connection's query buffer limit.
    #[error("Protocol error: too big request (over client-query-buffer-limit, {0} bytes)")]
    TooBig(usize),
}

type Parsed = Result<Option<(Frame, usize)>, ParseError>;

/// Decodes one frame from the front of `buf`.
pub fn parse_frame(buf: &[u8], limits: &Limits) -> Parsed {
    match buf.first() {
        None => Ok(None),
        Some(b'*' | b'$' | b'+' | b'-' | b':') => parse_at(buf, 0, limits, 0),
        Some(_) => parse_inline(buf, limits),
    }
}

fn parse_at(buf: &[u8], pos: usize, limits: &Limits, depth: usize) -> Parsed {
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    // A bad type byte is an error at once, before its line is complete (as
    // the incremental `Decoder` decides: they must agree).
    if !matches!(tag, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(ParseError::Invalid("expected '$', '*', '+', '-' or ':'"));
    }
    let Some((line, next)) = line_at(buf, pos + 1, limits)? else {
        return Ok(None);
    };
    match tag {
        b'+' => Ok(Some((Frame::Simple(text(line)?), next))),
        b'-' => Ok(Some((Frame::Error(text(line)?), next))),
        b':' => Ok(Some((Frame::Integer(int(line)?), next))),
        b'$' => parse_bulk(buf, int(line)?, next, limits),
        b'*' => parse_array(buf, int(line)?, next, limits, depth),
        _ => Err(ParseError::Invalid("expected '$', '*', '+', '-' or ':'")),
    }
}

fn parse_bulk(buf: &[u8], len: i64, start: usize, limits: &Limits) -> Parsed {
    if len == -1 {
        return Ok(Some((Frame::Null, start)));
    }
    if len < 0 || len as u64 > limits.max_bulk_bytes as u64 {
        return Err(ParseError::Invalid("invalid bulk length"));
    }
    let end = start + len as usize;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ParseError::Invalid("bulk string not terminated by CRLF"));
    }
    Ok(Some((
        Frame::Bulk(Bytes::copy_from_slice(&buf[start..end])),
        end + 2,
    )))
}

fn parse_array(buf: &[u8], len: i64, start: usize, limits: &Limits, depth: usize) -> Parsed {
    if len == -1 {
        return Ok(Some((Frame::NullArray, start)));
    }
    if len < 0 || len as u64 > limits.max_array_len as u64 {
        return Err(ParseError::Invalid("invalid multibulk length"));
    }
    if depth >= limits.max_depth {
        return Err(ParseError::Invalid("arrays nested too deep"));
    }
    // Do not trust `len` for the allocation: every element takes >= 3 bytes.
    let mut items = Vec::with_capacity((len as usize).min(buf.len().saturating_sub(start) / 3));
    let mut pos = start;
    for _ in 0..len {
        let Some((item, next)) = parse_at(buf, pos, limits, depth + 1)? else {
            return Ok(None);
        };
        items.push(item);
        pos = next;
    }
    Ok(Some((Frame::Array(items), pos)))
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Parsed {
    let Some(nl) = buf
        .iter()
        .take(limits.max_line_bytes + 1)
        .position(|&b| b == b'\n')
    else {
        return if buf.len() > limits.max_line_bytes {
            Err(ParseError::Invalid("too big inline request"))
        } else {
            Ok(None)
        };
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let args = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| Frame::Bulk(Bytes::copy_from_slice(w)))
        .collect();
    Ok(Some((Frame::Array(args), nl + 1)))
}

/// The line starting at `pos` (without CRLF) and the position after its CRLF.
fn line_at<'a>(
    buf: &'a [u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<(&'a [u8], usize)>, ParseError> {
    let rest = &buf[pos.min(buf.len())..];
    let window = &rest[..rest.len().min(limits.max_line_bytes + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&rest[..i], pos + i + 2))),
        None if rest.len() > limits.max_line_bytes + 1 => Err(ParseError::Invalid("line too long")),
        None => Ok(None),
    }
}

pub(super) fn text(line: &[u8]) -> Result<String, ParseError> {
    String::from_utf8(line.to_vec()).map_err(|_| ParseError::Invalid("simple string is not UTF-8"))
}

pub(super) fn int(line: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(ParseError::Invalid("invalid integer"))
}

impl Frame {
    /// Appends the RESP2 encoding of `self` to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_as(Protocol::Resp2, out)
    }

    /// Appends the encoding of `self` in `proto` to `out`.
    pub fn encode_as(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Frame::Null | Frame::NullArray if proto == Protocol::Resp3 => out.put_slice(b"_\r\n"),
            Frame::Map(pairs) if proto == Protocol::Resp3 => {
                line(out, b'%', pairs.len().to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode_as(proto, out);
                    v.encode_as(proto, out);
                }
            }
            Frame::Set(items) if proto == Protocol::Resp3 => {
                line(out, b'~', items.len().to_string().as_bytes());
                items.iter().for_each(|f| f.encode_as(proto, out));
            }
            Frame::Verbatim(text) if proto == Protocol::Resp3 => {
                line(out, b'=', (text.len() + 4).to_string().as_bytes());
                out.put_slice(b"txt:");
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Map(pairs) => {
                line(out, b'*', (2 * pairs.len()).to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode_as(proto, out);
                    v.encode_as(proto, out);
                }
            }
            Frame::Simple(s) => line(out, b'+', s.as_bytes()),
            Frame::Error(s) => line(out, b'-', s.as_bytes()),
            Frame::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Bulk(b) | Frame::Verbatim(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Frame::Array(items) | Frame::Set(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                items.iter().for_each(|f| f.encode_as(proto, out));
            }
        }
    }

    /// A command as clients send it: an array of bulk strings.
    pub fn command<I, B>(args: I) -> Frame
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Frame::Array(args.into_iter().map(|a| Frame::Bulk(a.into())).collect())
    }

    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }
}

/// Simple strings and errors must not contain CR or LF: replace them.
fn line(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.extend(
        body.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: &Frame, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        f.encode_as(proto, &mut out);
        out.to_vec()
    }

    /// An aborted `EXEC` is Redis's null array: `*-1` in RESP2, `_` in
    /// RESP3; a missing value is the null bulk `$-1` / `_`.
    #[test]
    fn null_array_and_null_bulk_as_redis_writes_them() {
        assert_eq!(encoded(&Frame::NullArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(encoded(&Frame::NullArray, Protocol::Resp3), b"_\r\n");
        assert_eq!(encoded(&Frame::Null, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(encoded(&Frame::Null, Protocol::Resp3), b"_\r\n");
        let limits = Limits::default();
        assert_eq!(
            parse_frame(b"*-1\r\n", &limits),
            Ok(Some((Frame::NullArray, 5)))
        );
    }
}
