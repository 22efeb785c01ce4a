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
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: protocol negotiation
    /// (handled by the connection, which owns the protocol state).
    Hello(Option<i64>),
    /// Connection housekeeping clients send on connect (`CLIENT SETINFO`,
    /// `CLIENT SETNAME`, `SELECT 0`): acknowledged, no effect.
    Acknowledge,
    /// `CLIENT GETNAME`: no name is kept.
    NoName,
}

/// A request that cannot be executed; the reply is `-ERR ...` (or `-<code>`)
/// and the connection stays open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl CommandError {
    fn arity(name: &str) -> Self {
        CommandError(format!(
            "ERR wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        ))
    }
}

/// Turns a request frame into a [`Command`].
pub fn parse_command(frame: Frame) -> Result<Command, CommandError> {
    let args = match frame {
        Frame::Array(items) => items.into_iter().map(bulk).collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(CommandError(
                "ERR Protocol error: expected an array of bulk strings".into(),
            ))
        }
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
        ("HELLO", _) => hello(rest)?,
        ("AUTH", [_, ..]) => return Err(CommandError(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into(),
        )),
        ("SELECT", [db]) if db.as_ref() == b"0" => Command::Acknowledge,
        ("SELECT", [_]) => return Err(CommandError("ERR DB index is out of range".into())),
        ("CLIENT", [sub, ..]) => client(sub, rest)?,
        ("PING" | "GET" | "SET" | "APPEND" | "DEL" | "EXISTS" | "INFO" | "QUIT" | "AUTH" | "SELECT" | "CLIENT", _) => {
            return Err(CommandError::arity(&upper))
        }
        _ => return Err(unknown(name, rest)),
    };
    Ok(cmd)
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`. There is no
/// authentication to pass (like Redis's default user without a password, any AUTH
/// is accepted); the name is not kept.
fn hello(rest: &[Bytes]) -> Result<Command, CommandError> {
    let Some((ver, mut opts)) = rest.split_first() else {
        return Ok(Command::Hello(None));
    };
    let ver = std::str::from_utf8(ver)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            CommandError("ERR Protocol version is not an integer or out of range".into())
        })?;
    while let Some((opt, more)) = opts.split_first() {
        opts = match (
            String::from_utf8_lossy(opt).to_ascii_uppercase().as_str(),
            more,
        ) {
            ("AUTH", [_, _, tail @ ..]) => tail,
            ("SETNAME", [_, tail @ ..]) => tail,
            _ => {
                return Err(CommandError(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                )))
            }
        };
    }
    Ok(Command::Hello(Some(ver)))
}

fn client(sub: &Bytes, rest: &[Bytes]) -> Result<Command, CommandError> {
    let name = String::from_utf8_lossy(sub).to_ascii_uppercase();
    match (name.as_str(), rest.len()) {
        ("SETINFO", 3) | ("SETNAME", 2) => Ok(Command::Acknowledge),
        ("GETNAME", 1) => Ok(Command::NoName),
        ("SETINFO" | "SETNAME" | "GETNAME", _) => Err(CommandError(format!(
            "ERR wrong number of arguments for 'client|{}' command",
            name.to_ascii_lowercase()
        ))),
        _ => Err(CommandError(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        ))),
    }
}

fn bulk(frame: Frame) -> Result<Bytes, CommandError> {
    match frame {
        Frame::Bulk(b) => Ok(b),
        _ => Err(CommandError(
            "ERR Protocol error: expected bulk string".into(),
        )),
    }
}

fn key(k: &Bytes) -> Result<Bytes, CommandError> {
    if k.len() > kv::MAX_KEY_BYTES {
        return Err(CommandError(format!(
            "ERR key is longer than {} bytes",
            kv::MAX_KEY_BYTES
        )));
    }
    Ok(k.clone())
}

fn value(v: &Bytes) -> Result<Bytes, CommandError> {
    if v.len() > kv::MAX_VALUE_BYTES {
        return Err(CommandError(format!(
            "ERR value is longer than {} bytes",
            kv::MAX_VALUE_BYTES
        )));
    }
    Ok(v.clone())
}

/// Redis: `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
fn unknown(name: &[u8], rest: &[Bytes]) -> CommandError {
    let show = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned();
    let args: String = rest
        .iter()
        .take(8)
        .map(|a| format!("'{}' ", show(a)))
        .collect();
    CommandError(format!(
        "ERR unknown command '{}', with args beginning with: {args}",
        show(name)
    ))
}
