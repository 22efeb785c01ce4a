//! `CLIENT ID | INFO | LIST | SETNAME | GETNAME | SETINFO | KILL | NO-EVICT
//! | NO-TOUCH`, over the port's connection registry (`crate::clients`), with
//! Redis 7.2's replies and errors. `NO-EVICT` and `NO-TOUCH` are accepted
//! and change nothing: raftkv never evicts clients and keeps no LRU.

use std::time::Instant;

use bytes::Bytes;

use super::Ctx;
use crate::clients::{valid_attr, ClientEntry};
use crate::resp::table::CommandSpec;
use crate::resp::{CommandError, Frame};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCmd {
    Id,
    Info,
    List(ListFilter),
    /// An empty name clears it.
    SetName(Bytes),
    GetName,
    SetInfo(LibAttr, Bytes),
    Kill(Kill),
    /// `NO-EVICT` / `NO-TOUCH` `ON|OFF`.
    Accepted,
}

/// `CLIENT KILL addr` (old form: `OK` or `-ERR No such client`, may kill
/// the caller) or `CLIENT KILL filter value ...` (the count killed; the
/// caller is skipped unless `SKIPME no`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kill {
    pub old_form: bool,
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    /// `TYPE`: `Some(false)` for a type no raftkv client has.
    pub normal: Option<bool>,
    pub skipme: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFilter {
    All,
    /// `TYPE normal|master|replica|slave|pubsub`: every raftkv client is normal.
    Normal(bool),
    Ids(Vec<u64>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibAttr {
    Name,
    Version,
}

/// Redis's error for a name with spaces or control characters.
pub const BAD_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

fn syntax() -> CommandError {
    CommandError("ERR syntax error".into())
}

/// Parses the arguments after `CLIENT <sub>` (arity already checked).
pub fn parse(spec: &CommandSpec, args: &[Bytes]) -> Result<ClientCmd, CommandError> {
    let upper = |b: &Bytes| String::from_utf8_lossy(b).to_ascii_uppercase();
    Ok(match (spec.short_name(), args) {
        ("id", []) => ClientCmd::Id,
        ("info", []) => ClientCmd::Info,
        ("getname", []) => ClientCmd::GetName,
        ("setname", [name]) => {
            if !valid_attr(name) {
                return Err(CommandError(BAD_NAME.into()));
            }
            ClientCmd::SetName(name.clone())
        }
        ("setinfo", [attr, value]) => {
            let which = match upper(attr).as_str() {
                "LIB-NAME" => LibAttr::Name,
                "LIB-VER" => LibAttr::Version,
                _ => {
                    return Err(CommandError(format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(attr)
                    )))
                }
            };
            if !valid_attr(value) {
                return Err(CommandError(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(attr)
                )));
            }
            ClientCmd::SetInfo(which, value.clone())
        }
        ("kill", [addr]) => ClientCmd::Kill(Kill {
            old_form: true,
            addr: Some(String::from_utf8_lossy(addr).into_owned()),
            ..Kill::default()
        }),
        ("kill", filters) => ClientCmd::Kill(kill_filters(filters)?),
        ("no-evict" | "no-touch", [mode]) => match upper(mode).as_str() {
            "ON" | "OFF" => ClientCmd::Accepted,
            _ => return Err(syntax()),
        },
        ("list", []) => ClientCmd::List(ListFilter::All),
        ("list", [t, kind]) if upper(t) == "TYPE" => ClientCmd::List(match upper(kind).as_str() {
            "NORMAL" => ListFilter::Normal(true),
            "MASTER" | "REPLICA" | "SLAVE" | "PUBSUB" => ListFilter::Normal(false),
            _ => {
                return Err(CommandError(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(kind)
                )))
            }
        }),
        ("list", [i, ids @ ..]) if upper(i) == "ID" && !ids.is_empty() => {
            let ids = ids
                .iter()
                .map(|id| {
                    std::str::from_utf8(id)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| CommandError("ERR Invalid client ID".into()))
                })
                .collect::<Result<_, _>>()?;
            ClientCmd::List(ListFilter::Ids(ids))
        }
        _ => return Err(syntax()),
    })
}

/// The filters of `CLIENT KILL filter value [filter value ...]`.
fn kill_filters(args: &[Bytes]) -> Result<Kill, CommandError> {
    let mut k = Kill {
        skipme: true,
        ..Kill::default()
    };
    if !args.len().is_multiple_of(2) {
        return Err(syntax());
    }
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    for pair in args.chunks(2) {
        let (name, value) = (text(&pair[0]).to_ascii_uppercase(), &pair[1]);
        match name.as_str() {
            "ID" => {
                k.id = Some(
                    text(value)
                        .parse::<u64>()
                        .ok()
                        .filter(|&id| id > 0)
                        .ok_or_else(|| {
                            CommandError("ERR client-id should be greater than 0".into())
                        })?,
                )
            }
            "ADDR" => k.addr = Some(text(value)),
            "LADDR" => k.laddr = Some(text(value)),
            "TYPE" => {
                k.normal = Some(match text(value).to_ascii_uppercase().as_str() {
                    "NORMAL" => true,
                    "MASTER" | "REPLICA" | "SLAVE" | "PUBSUB" => false,
                    _ => {
                        return Err(CommandError(format!(
                            "ERR Unknown client type '{}'",
                            text(value)
                        )))
                    }
                })
            }
            "USER" if value.as_ref() == b"default" => {}
            "USER" => return Err(CommandError(format!("ERR No such user '{}'", text(value)))),
            "SKIPME" => {
                k.skipme = match text(value).to_ascii_uppercase().as_str() {
                    "YES" => true,
                    "NO" => false,
                    _ => return Err(syntax()),
                }
            }
            _ => return Err(syntax()),
        }
    }
    Ok(k)
}

/// Kills the matching connections; Redis's reply for the form used.
fn kill(ctx: &Ctx<'_>, k: &Kill) -> Frame {
    let mut killed = 0;
    for c in ctx.port.clients.all() {
        let matches = k.addr.as_ref().is_none_or(|a| *a == c.addr)
            && k.laddr.as_ref().is_none_or(|a| *a == c.laddr)
            && k.id.is_none_or(|id| id == c.id)
            && k.normal != Some(false)
            && !(k.skipme && c.id == ctx.me.id);
        if matches {
            c.kill();
            killed += 1;
        }
    }
    match (k.old_form, killed) {
        (true, 0) => Frame::error("ERR No such client"),
        (true, _) => Frame::Simple("OK".into()),
        (false, n) => Frame::Integer(n),
    }
}

pub fn execute(ctx: &Ctx<'_>, cmd: ClientCmd) -> Frame {
    let now = Instant::now();
    match cmd {
        ClientCmd::Id => Frame::Integer(ctx.me.id as i64),
        ClientCmd::Info => Frame::Verbatim(Bytes::from(format!("{}\n", ctx.me.line(now)))),
        ClientCmd::List(filter) => {
            let rows: Vec<_> = match filter {
                ListFilter::All | ListFilter::Normal(true) => ctx.port.clients.all(),
                ListFilter::Normal(false) => Vec::new(),
                ListFilter::Ids(ids) => ids
                    .into_iter()
                    .filter_map(|id| ctx.port.clients.get(id))
                    .collect(),
            };
            Frame::Verbatim(Bytes::from(list(&rows, now)))
        }
        ClientCmd::SetName(name) => {
            set_name(ctx.me, name);
            Frame::Simple("OK".into())
        }
        ClientCmd::GetName => ctx.me.state().name.map_or(Frame::Null, Frame::Bulk),
        ClientCmd::SetInfo(attr, value) => {
            let value = (!value.is_empty()).then_some(value);
            ctx.me.update(|s| match attr {
                LibAttr::Name => s.lib_name = value,
                LibAttr::Version => s.lib_ver = value,
            });
            Frame::Simple("OK".into())
        }
        ClientCmd::Kill(k) => kill(ctx, &k),
        ClientCmd::Accepted => Frame::Simple("OK".into()),
    }
}

/// Sets (or, with an empty name, clears) a connection's name; the caller
/// checked it with `valid_attr`. Also `HELLO ... SETNAME`.
pub fn set_name(me: &ClientEntry, name: Bytes) {
    let name = (!name.is_empty()).then_some(name);
    me.update(|s| s.name = name);
}

fn list(rows: &[std::sync::Arc<ClientEntry>], now: Instant) -> String {
    rows.iter().map(|c| format!("{}\n", c.line(now))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::table;

    fn p(a: &[&str]) -> Result<ClientCmd, CommandError> {
        let args: Vec<Bytes> = a
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let spec = table::check(&args)?.unwrap();
        parse(spec, &args[2..])
    }

    #[test]
    fn parses_with_redis_errors() {
        assert_eq!(p(&["client", "id"]), Ok(ClientCmd::Id));
        assert_eq!(p(&["client", "setname", "a b"]).unwrap_err().0, BAD_NAME);
        assert_eq!(
            p(&["client", "setinfo", "lib-name", "redis-py"]),
            Ok(ClientCmd::SetInfo(LibAttr::Name, Bytes::from("redis-py")))
        );
        assert_eq!(
            p(&["client", "setinfo", "color", "x"]).unwrap_err().0,
            "ERR Unrecognized option 'color'"
        );
        assert_eq!(
            p(&["client", "setinfo", "lib-ver", "1 2"]).unwrap_err().0,
            "ERR lib-ver cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            p(&["client", "list", "type", "pubsub"]),
            Ok(ClientCmd::List(ListFilter::Normal(false)))
        );
        assert_eq!(
            p(&["client", "list", "type", "odd"]).unwrap_err().0,
            "ERR Unknown client type 'odd'"
        );
        assert_eq!(
            p(&["client", "list", "id", "1", "x"]).unwrap_err().0,
            "ERR Invalid client ID"
        );
        assert_eq!(
            p(&["client", "list", "x"]).unwrap_err().0,
            "ERR syntax error"
        );
        assert_eq!(p(&["client", "no-evict", "on"]), Ok(ClientCmd::Accepted));
        assert!(matches!(
            p(&["client", "kill", "127.0.0.1:5000"]),
            Ok(ClientCmd::Kill(Kill { old_form: true, .. }))
        ));
        assert_eq!(
            p(&["client", "kill", "id", "7", "skipme", "no"]),
            Ok(ClientCmd::Kill(Kill {
                id: Some(7),
                skipme: false,
                ..Kill::default()
            }))
        );
        assert_eq!(
            p(&["client", "kill", "id", "0"]).unwrap_err().0,
            "ERR client-id should be greater than 0"
        );
        assert_eq!(
            p(&["client", "kill", "user", "bob"]).unwrap_err().0,
            "ERR No such user 'bob'"
        );
        assert_eq!(
            p(&["client", "kill", "id", "1", "skipme"]).unwrap_err().0,
            "ERR syntax error"
        );
        assert_eq!(
            p(&["client", "no-touch", "maybe"]).unwrap_err().0,
            "ERR syntax error"
        );
    }
}
