//! The binary encoding of entries, requests and responses (format 2).
//!
//! Owns: `encode_*`/`decode_*` for [`Entry`], [`Request`] and [`Response`].
//!
//! ```text
//! entry | request | response = VERSION(u8 = 2) postcard(value)   (no trailing bytes)
//! ```
//! Format 2 is the serde derive of the types in `command`, in postcard
//! (LEB128 varints, length-prefixed bytes, enum variants numbered in
//! declaration order): as compact as format 1's hand codec (a small `SET`
//! entry is 11 bytes in both), and it stays in step with the ~30 ops without
//! a hand-written case per op. `shardkv` embeds the same types in its own
//! postcard payloads, so both machines speak one op vocabulary.
//!
//! Decoders accept format 1 too (`wire_v1`), so a log written before format
//! 2 still replays. They are strict: unknown versions and variants,
//! trailing bytes, and keys or values over the limits are errors, never a
//! panic, and postcard never allocates more than its input holds.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::codec::DecodeError;
use crate::command::{Command, Entry, Reply, Request, Response};
use crate::config::MAX_VALUE_BYTES;
use crate::wire_v1;

/// The format version byte leading every entry, request and response written now.
pub const WIRE_VERSION: u8 = 2;

/// Encodes a log entry payload for [`crate::StateMachine::apply`].
pub fn encode_entry(entry: &Entry) -> Bytes {
    encode(entry)
}

/// Decodes a log entry payload (format 1 or 2); never panics.
pub fn decode_entry(input: &[u8]) -> Result<Entry, DecodeError> {
    if input.first() == Some(&wire_v1::WIRE_VERSION) {
        return wire_v1::decode_entry(input);
    }
    let entry: Entry = decode(input)?;
    if let Command::Request(req) = &entry.cmd {
        req.op.check_limits().map_err(DecodeError::Invalid)?;
    }
    Ok(entry)
}

/// Encodes a request on its own (e.g. forwarded to the leader).
pub fn encode_request(req: &Request) -> Bytes {
    encode(req)
}

/// Decodes a request (format 1 or 2); never panics.
pub fn decode_request(input: &[u8]) -> Result<Request, DecodeError> {
    if input.first() == Some(&wire_v1::WIRE_VERSION) {
        return wire_v1::decode_request(input);
    }
    let req: Request = decode(input)?;
    req.op.check_limits().map_err(DecodeError::Invalid)?;
    Ok(req)
}

/// Encodes a response for the wire.
pub fn encode_response(resp: &Response) -> Bytes {
    encode(resp)
}

/// Decodes a response (format 1 or 2); never panics.
pub fn decode_response(input: &[u8]) -> Result<Response, DecodeError> {
    if input.first() == Some(&wire_v1::WIRE_VERSION) {
        return wire_v1::decode_response(input);
    }
    let resp: Response = decode(input)?;
    check_reply_limits(&resp).map_err(DecodeError::Invalid)?;
    Ok(resp)
}

/// Values in a reply within [`MAX_VALUE_BYTES`] each.
pub(crate) fn check_reply_limits(resp: &Response) -> Result<(), &'static str> {
    let over = |v: &Option<Bytes>| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES);
    let ok = match resp {
        Ok(Reply::Value(v)) => !over(v),
        Ok(Reply::Values(vs)) => !vs.iter().any(over),
        _ => true,
    };
    ok.then_some(()).ok_or("value over the limit")
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Sized first (a pass that copies nothing), so a 300-byte entry is one
    // allocation, not a Vec grown by doubling from one byte (seven reallocs).
    let size = postcard::experimental::serialized_size(value).expect("sizing cannot fail");
    let mut out = Vec::with_capacity(1 + size);
    out.push(WIRE_VERSION);
    let out = postcard::to_extend(value, out).expect("serialising to a Vec cannot fail");
    Bytes::from(out)
}

fn decode<T: DeserializeOwned>(input: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = input.split_first().ok_or(DecodeError::UnexpectedEnd)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Body(e.to_string()))?;
    match rest.len() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{
        CmdError, ExpireCond, Expiry, GetExTtl, KvError, Op, SetCond, SetTtl, TtlQuery,
    };
    use crate::config::MAX_KEY_BYTES;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn some_ops() -> Vec<Op> {
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
            Op::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfMissing,
                ttl: SetTtl::Expire(Expiry::InMs(-5)),
                get: true,
            },
            Op::GetEx {
                key: b("k"),
                ttl: GetExTtl::Persist,
            },
            Op::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
            },
            Op::IncrBy {
                key: b("n"),
                by: i64::MIN,
            },
            Op::IncrByFloat {
                key: b("n"),
                by: b("1.5"),
            },
            Op::Expire {
                key: b("k"),
                at: Expiry::AtMs(1),
                cond: ExpireCond::IfLess,
            },
            Op::Ttl {
                key: b("k"),
                query: TtlQuery::AtSeconds,
            },
        ]
    }

    #[test]
    fn entries_requests_and_responses_round_trip() {
        for op in some_ops() {
            let req = Request {
                client_id: 7,
                seq: u64::MAX,
                op,
            };
            assert_eq!(decode_request(&encode_request(&req)), Ok(req.clone()));
            let entry = Entry {
                timestamp_ms: 1_700_000_000_000,
                cmd: Command::Request(req),
            };
            assert_eq!(decode_entry(&encode_entry(&entry)), Ok(entry));
        }
        let responses: Vec<Response> = vec![
            Ok(Reply::Registered { client_id: 3 }),
            Ok(Reply::Values(vec![None, Some(b("x"))])),
            Ok(Reply::Int(-4)),
            Ok(Reply::Error(CmdError::WrongType)),
            Err(KvError::Malformed {
                reason: "bad".into(),
            }),
        ];
        for resp in responses {
            assert_eq!(decode_response(&encode_response(&resp)), Ok(resp));
        }
    }

    #[test]
    fn format_1_still_decodes() {
        let req = Request {
            client_id: 1,
            seq: 2,
            op: Op::Put {
                key: b("k"),
                value: b("v"),
            },
        };
        let entry = Entry {
            timestamp_ms: 1000,
            cmd: Command::Request(req.clone()),
        };
        assert_eq!(decode_entry(&wire_v1::encode_entry(&entry)), Ok(entry));
        assert_eq!(decode_request(&wire_v1::encode_request(&req)), Ok(req));
        let resp: Response = Ok(Reply::Length(3));
        assert_eq!(decode_response(&wire_v1::encode_response(&resp)), Ok(resp));
    }

    #[test]
    fn small_commands_stay_compact() {
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
        // version, ts(2), command tag, client, seq, op tag, key(2), value(2)
        assert_eq!(encode_entry(&put).len(), 11);
    }

    #[test]
    fn strict_decoding() {
        assert_eq!(decode_entry(&[]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(
            decode_entry(&[9, 0, 2]),
            Err(DecodeError::UnsupportedVersion(9))
        );
        assert!(matches!(
            decode_entry(&[WIRE_VERSION, 0, 42]),
            Err(DecodeError::Body(_))
        ));
        assert_eq!(
            decode_entry(&[WIRE_VERSION, 0, 2, 0]),
            Err(DecodeError::TrailingBytes(1))
        );
        let req = Request {
            client_id: 1,
            seq: 1,
            op: Op::Get {
                key: Bytes::from(vec![b'k'; MAX_KEY_BYTES + 1]),
            },
        };
        assert_eq!(
            decode_request(&encode_request(&req)),
            Err(DecodeError::Invalid("key over the limit"))
        );
    }
}
