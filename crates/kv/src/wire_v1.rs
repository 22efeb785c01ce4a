//! Format 1 of entries, requests and responses: the hand codec raftkv
//! wrote before format 2 (`wire`). Kept to read logs and snapshots written
//! then; nothing writes it any more (its encoders exist for tests only).
//! It knows the four original ops (get, put, append, delete) and replies.
//!
//! Layout (all integers LEB128 varints, byte strings varint-length-prefixed):
//! ```text
//! entry    = VERSION timestamp_ms command
//! command  = 1 (register) | 2 request_body | 3 (tick)
//! request  = VERSION request_body
//! request_body = client_id seq op
//! op       = 1 key (get) | 2 key value (put) | 3 key value (append) | 4 key (delete)
//! response = VERSION reply_or_error
//! reply    = 1 client_id | 2 0|1 [value] | 3 | 4 length | 5 0|1
//! error    = 16 client_id | 17 client_id seq | 18 len max | 19 reason(utf-8)
//! ```
//! Invariant: decoders are strict (unknown tags, non-canonical varints and
//! trailing bytes are errors), so `decode(encode(x)) == x` and every accepted
//! input has exactly one meaning. A future version bumps `VERSION`; decoders
//! reject versions they do not know.

#[cfg(test)]
use bytes::Bytes;

#[cfg(test)]
use crate::codec::Writer;
use crate::codec::{DecodeError, Reader};
use crate::command::{Command, Entry, KvError, Op, Reply, Request, Response};
use crate::config::{MAX_KEY_BYTES, MAX_REASON_BYTES, MAX_VALUE_BYTES};

/// The format version byte of this format.
pub(crate) const WIRE_VERSION: u8 = 1;

/// Encodes a log entry payload for [`crate::StateMachine::apply`].
#[cfg(test)]
pub(crate) fn encode_entry(entry: &Entry) -> Bytes {
    let mut w = Writer::new();
    w.u8(WIRE_VERSION);
    w.varint(entry.timestamp_ms);
    match &entry.cmd {
        Command::RegisterSession => w.u8(1),
        Command::Request(req) => {
            w.u8(2);
            write_request_body(&mut w, req);
        }
        Command::Tick => w.u8(3),
    }
    w.finish()
}

/// Decodes a log entry payload; never panics.
pub(crate) fn decode_entry(input: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(input);
    read_version(&mut r)?;
    let timestamp_ms = r.varint()?;
    let cmd = match r.u8()? {
        1 => Command::RegisterSession,
        2 => Command::Request(read_request_body(&mut r)?),
        3 => Command::Tick,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "command",
                tag,
            })
        }
    };
    r.finish()?;
    Ok(Entry { timestamp_ms, cmd })
}

/// Encodes a request on its own (e.g. forwarded to the leader).
#[cfg(test)]
pub(crate) fn encode_request(req: &Request) -> Bytes {
    let mut w = Writer::new();
    w.u8(WIRE_VERSION);
    write_request_body(&mut w, req);
    w.finish()
}

/// Decodes a request; never panics.
pub(crate) fn decode_request(input: &[u8]) -> Result<Request, DecodeError> {
    let mut r = Reader::new(input);
    read_version(&mut r)?;
    let req = read_request_body(&mut r)?;
    r.finish()?;
    Ok(req)
}

/// Encodes a response for the wire.
#[cfg(test)]
pub(crate) fn encode_response(resp: &Response) -> Bytes {
    let mut w = Writer::new();
    w.u8(WIRE_VERSION);
    write_response_body(&mut w, resp);
    w.finish()
}

/// Decodes a response; never panics.
pub(crate) fn decode_response(input: &[u8]) -> Result<Response, DecodeError> {
    let mut r = Reader::new(input);
    read_version(&mut r)?;
    let resp = read_response_body(&mut r)?;
    r.finish()?;
    Ok(resp)
}

fn read_version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match r.u8()? {
        WIRE_VERSION => Ok(()),
        v => Err(DecodeError::UnsupportedVersion(v)),
    }
}

#[cfg(test)]
fn write_request_body(w: &mut Writer, req: &Request) {
    w.varint(req.client_id);
    w.varint(req.seq);
    match &req.op {
        Op::Get { key } => {
            w.u8(1);
            w.bytes(key);
        }
        Op::Put { key, value } => {
            w.u8(2);
            w.bytes(key);
            w.bytes(value);
        }
        Op::Append { key, value } => {
            w.u8(3);
            w.bytes(key);
            w.bytes(value);
        }
        Op::Delete { key } => {
            w.u8(4);
            w.bytes(key);
        }
        other => unreachable!("format 1 has no op {other:?}"),
    }
}

fn read_request_body(r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    let client_id = r.varint()?;
    let seq = r.varint()?;
    let tag = r.u8()?;
    let key = match tag {
        1..=4 => r.bytes("key", MAX_KEY_BYTES)?,
        tag => return Err(DecodeError::UnknownTag { what: "op", tag }),
    };
    let op = match tag {
        1 => Op::Get { key },
        2 => Op::Put {
            key,
            value: r.bytes("value", MAX_VALUE_BYTES)?,
        },
        3 => Op::Append {
            key,
            value: r.bytes("value", MAX_VALUE_BYTES)?,
        },
        _ => Op::Delete { key },
    };
    Ok(Request { client_id, seq, op })
}

#[cfg(test)]
pub(crate) fn write_response_body(w: &mut Writer, resp: &Response) {
    match resp {
        Ok(Reply::Registered { client_id }) => {
            w.u8(1);
            w.varint(*client_id);
        }
        Ok(Reply::Value(value)) => {
            w.u8(2);
            w.bool(value.is_some());
            if let Some(v) = value {
                w.bytes(v);
            }
        }
        Ok(Reply::Done) => w.u8(3),
        Ok(Reply::Length(len)) => {
            w.u8(4);
            w.varint(*len);
        }
        Ok(Reply::Deleted(existed)) => {
            w.u8(5);
            w.bool(*existed);
        }
        Err(err) => write_error(w, err),
        Ok(other) => unreachable!("format 1 has no reply {other:?}"),
    }
}

#[cfg(test)]
fn write_error(w: &mut Writer, err: &KvError) {
    match err {
        KvError::SessionExpired { client_id } => {
            w.u8(16);
            w.varint(*client_id);
        }
        KvError::StaleRequest { client_id, seq } => {
            w.u8(17);
            w.varint(*client_id);
            w.varint(*seq);
        }
        KvError::ValueTooLarge { len, max } => {
            w.u8(18);
            w.varint(*len);
            w.varint(*max);
        }
        KvError::Malformed { reason } => {
            w.u8(19);
            w.bytes(truncate_utf8(reason, MAX_REASON_BYTES).as_bytes());
        }
    }
}

pub(crate) fn read_response_body(r: &mut Reader<'_>) -> Result<Response, DecodeError> {
    Ok(match r.u8()? {
        1 => Ok(Reply::Registered {
            client_id: r.varint()?,
        }),
        2 => match r.bool("value presence")? {
            true => Ok(Reply::Value(Some(r.bytes("value", MAX_VALUE_BYTES)?))),
            false => Ok(Reply::Value(None)),
        },
        3 => Ok(Reply::Done),
        4 => Ok(Reply::Length(r.varint()?)),
        5 => Ok(Reply::Deleted(r.bool("deleted")?)),
        16 => Err(KvError::SessionExpired {
            client_id: r.varint()?,
        }),
        17 => Err(KvError::StaleRequest {
            client_id: r.varint()?,
            seq: r.varint()?,
        }),
        18 => Err(KvError::ValueTooLarge {
            len: r.varint()?,
            max: r.varint()?,
        }),
        19 => Err(KvError::Malformed {
            reason: r.string("reason", MAX_REASON_BYTES)?,
        }),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "response",
                tag,
            })
        }
    })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary, so an over-long reason still encodes to something decodable.
#[cfg(test)]
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn all_ops() -> Vec<Op> {
        vec![
            Op::Get { key: b("k") },
            Op::Put {
                key: b("k"),
                value: b("v"),
            },
            Op::Append {
                key: Bytes::from_static(&[0, 255, 10]),
                value: b(""),
            },
            Op::Delete { key: b("") },
        ]
    }

    #[test]
    fn every_entry_round_trips() {
        let mut cmds = vec![Command::RegisterSession, Command::Tick];
        for op in all_ops() {
            cmds.push(Command::Request(Request {
                client_id: 7,
                seq: u64::MAX,
                op,
            }));
        }
        for cmd in cmds {
            let entry = Entry {
                timestamp_ms: 1_700_000_000_000,
                cmd,
            };
            assert_eq!(decode_entry(&encode_entry(&entry)), Ok(entry));
        }
    }

    #[test]
    fn every_request_round_trips() {
        for op in all_ops() {
            let req = Request {
                client_id: 1,
                seq: 2,
                op,
            };
            assert_eq!(decode_request(&encode_request(&req)), Ok(req));
        }
    }

    #[test]
    fn every_response_round_trips() {
        let all: Vec<Response> = vec![
            Ok(Reply::Registered { client_id: 3 }),
            Ok(Reply::Value(None)),
            Ok(Reply::Value(Some(b("")))),
            Ok(Reply::Value(Some(b("xyz")))),
            Ok(Reply::Done),
            Ok(Reply::Length(12)),
            Ok(Reply::Deleted(true)),
            Ok(Reply::Deleted(false)),
            Err(KvError::SessionExpired { client_id: 4 }),
            Err(KvError::StaleRequest {
                client_id: 4,
                seq: 9,
            }),
            Err(KvError::ValueTooLarge { len: 10, max: 5 }),
            Err(KvError::Malformed {
                reason: "bad".into(),
            }),
        ];
        for resp in all {
            assert_eq!(decode_response(&encode_response(&resp)), Ok(resp));
        }
    }

    #[test]
    fn small_commands_are_compact() {
        let put = Entry {
            timestamp_ms: 1000,
            cmd: Command::Request(Request {
                client_id: 1,
                seq: 1,
                op: Op::Put {
                    key: b("k"),
                    value: b("v"),
                },
            }),
        };
        // version, ts(2), tag, client, seq, op tag, key(2), value(2)
        assert_eq!(encode_entry(&put).len(), 11);
        assert_eq!(encode_response(&Ok(Reply::Done)).len(), 2);
    }

    #[test]
    fn long_malformed_reason_is_truncated_on_a_char_boundary() {
        let reason = "é".repeat(MAX_REASON_BYTES);
        let resp: Response = Err(KvError::Malformed { reason });
        let back = decode_response(&encode_response(&resp)).unwrap();
        let Err(KvError::Malformed { reason }) = back else {
            panic!("wrong variant")
        };
        assert_eq!(reason.len(), MAX_REASON_BYTES);
    }

    #[test]
    fn strict_decoding() {
        assert_eq!(decode_entry(&[]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(
            decode_entry(&[9, 0, 3]),
            Err(DecodeError::UnsupportedVersion(9))
        );
        assert_eq!(
            decode_entry(&[WIRE_VERSION, 0, 42]),
            Err(DecodeError::UnknownTag {
                what: "command",
                tag: 42
            })
        );
        assert_eq!(
            decode_entry(&[WIRE_VERSION, 0, 3, 0]),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            decode_request(&[WIRE_VERSION, 1, 1, 9]),
            Err(DecodeError::UnknownTag { what: "op", tag: 9 })
        );
        assert_eq!(
            decode_response(&[WIRE_VERSION, 2, 2]),
            Err(DecodeError::UnknownTag {
                what: "value presence",
                tag: 2
            })
        );
    }

    #[test]
    fn oversized_key_is_rejected() {
        let req = Request {
            client_id: 1,
            seq: 1,
            op: Op::Get {
                key: Bytes::from(vec![b'k'; MAX_KEY_BYTES + 1]),
            },
        };
        let err = decode_request(&encode_request(&req)).unwrap_err();
        assert!(matches!(err, DecodeError::TooLong { what: "key", .. }));
    }
}
