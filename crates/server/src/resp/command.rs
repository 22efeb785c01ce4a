//! The commands of DESIGN.md's RESP contract, parsed from a request frame,
//! with Redis's error wording for unknown commands, wrong arity and syntax.
//!
//! Invariant: a `Command` is well-formed (arity checked, keys and values
//! within kv's limits), so executing it never needs to re-validate.

use bytes::Bytes;

use super::frame::Frame;

/// A client request raftkv executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ping(Option<Bytes>),
    Get(Bytes),
    Set(Bytes, Bytes),
    Append(Bytes, Bytes),
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    Info(Option<String>),
    /// `COMMAND [...]`: redis-cli asks on connect; we answer an empty array.
    CommandDocs,
    /// `QUIT`: reply `+OK`, then close.
    Quit,
}

/// A request that cannot be executed; the reply is `-ERR ...` (or `-<code>`)
/// and the connection stays open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl CommandError {
    fn arity(name: &str) -> Self {
        CommandError(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
    }
}

/// Turns a request frame into a [`Command`].
pub fn parse_command(frame: Frame) -> Result<Command, CommandError> {
    let args = match frame {
        Frame::Array(items) => items.into_iter().map(bulk).collect::<Result<Vec<_>, _>>()?,
        _ => return Err(CommandError("ERR Protocol error: expected an array of bulk strings".into())),
    };
    let Some((name, rest)) = args.split_first() else {
        return Err(CommandError("ERR empty command".into()));
    };
    let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
    let cmd = match (upper.as_str(), rest) {
        ("PING", []) => Command::Ping(None),
        ("PING", [msg]) => Command::Ping(Some(msg.clone())),
        ("GET", [k]) => Command::Get(key(k)?),
        ("SET", [k, v]) => Command::Set(key(k)?, value(v)?),
        ("SET", [_, _, ..]) => return Err(CommandError("ERR syntax error (raftkv's SET takes no options)".into())),
        ("APPEND", [k, v]) => Command::Append(key(k)?, value(v)?),
        ("DEL", [_, ..]) => Command::Del(rest.iter().map(key).collect::<Result<_, _>>()?),
        ("EXISTS", [_, ..]) => Command::Exists(rest.iter().map(key).collect::<Result<_, _>>()?),
        ("INFO", []) => Command::Info(None),
        ("INFO", [s]) => Command::Info(Some(String::from_utf8_lossy(s).to_ascii_lowercase())),
        ("COMMAND", _) => Command::CommandDocs,
        ("QUIT", []) => Command::Quit,
        ("PING" | "GET" | "SET" | "APPEND" | "DEL" | "EXISTS" | "INFO" | "QUIT", _) => return Err(CommandError::arity(&upper)),
        _ => return Err(unknown(name, rest)),
    };
    Ok(cmd)
}

fn bulk(frame: Frame) -> Result<Bytes, CommandError> {
    match frame {
        Frame::Bulk(b) => Ok(b),
        _ => Err(CommandError("ERR Protocol error: expected bulk string".into())),
    }
}

fn key(k: &Bytes) -> Result<Bytes, CommandError> {
    if k.len() > kv::MAX_KEY_BYTES {
        return Err(CommandError(format!("ERR key is longer than {} bytes", kv::MAX_KEY_BYTES)));
    }
    Ok(k.clone())
}

fn value(v: &Bytes) -> Result<Bytes, CommandError> {
    if v.len() > kv::MAX_VALUE_BYTES {
        return Err(CommandError(format!("ERR value is longer than {} bytes", kv::MAX_VALUE_BYTES)));
    }
    Ok(v.clone())
}

/// Redis: `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
fn unknown(name: &[u8], rest: &[Bytes]) -> CommandError {
    let show = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned();
    let args: String = rest.iter().take(8).map(|a| format!("'{}' ", show(a))).collect();
    CommandError(format!("ERR unknown command '{}', with args beginning with: {args}", show(name)))
}
