//! Connection and server commands that need no log: `ECHO`, `TIME`,
//! `SELECT`, `INFO`, `COMMAND ...` ([`introspect`]), `CLIENT ...`
//! ([`client`]), `CONFIG ...` ([`config`]) and every container's `HELP`.
//! They describe this process and this connection, so they run where they
//! arrive (never forwarded, never in the log), as in Redis.
//!
//! The dispatcher (`resp::command::parse_command`) checks arity and
//! subcommand names against the command table first, then hands a request
//! whose row is one of these to [`parse`]. Invariant: a [`ServerCmd`] is
//! well-formed; [`execute`] only reads state and this connection's entry.

pub mod client;
pub mod config;
pub mod introspect;

use bytes::Bytes;

use crate::clients::ClientEntry;
use crate::port_state::PortState;
use crate::resp::table::{self, CommandSpec};
use crate::resp::{CommandError, Frame, Protocol};
use crate::service::Service;

pub use client::ClientCmd;
pub use config::ConfigCmd;
pub use introspect::CommandQuery;

/// A connection or server command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerCmd {
    Echo(Bytes),
    Time,
    /// `SELECT 0` (raftkv has database 0 only; others are refused at parse).
    Select,
    /// `INFO [section ...]`, sections lower-cased.
    Info(Vec<String>),
    Command(CommandQuery),
    Client(ClientCmd),
    Config(ConfigCmd),
    /// `<CONTAINER> HELP`.
    Help(&'static CommandSpec),
}

/// What a server command may look at.
pub struct Ctx<'a> {
    pub port: &'a PortState,
    pub node: &'a Service,
    /// The connection running the command.
    pub me: &'a ClientEntry,
    pub proto: Protocol,
}

/// The server command of a request whose table row is `spec` (already
/// arity-checked); `None` when `spec` is not a server command.
/// `args[0]` is the command name.
pub fn parse(
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Option<Result<ServerCmd, CommandError>> {
    if spec.name.ends_with("|help") {
        let parent = table::lookup(&args[0]).expect("a subcommand's parent is in the table");
        return Some(Ok(ServerCmd::Help(parent)));
    }
    let top = spec.name.split('|').next().unwrap_or(spec.name);
    let rest = &args[1..];
    Some(match top {
        "echo" => Ok(ServerCmd::Echo(rest[0].clone())),
        "time" => Ok(ServerCmd::Time),
        "select" => select(&rest[0]),
        "info" => Ok(ServerCmd::Info(
            rest.iter()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect(),
        )),
        "command" => introspect::parse(rest).map(ServerCmd::Command),
        "client" => client::parse(spec, &rest[1..]).map(ServerCmd::Client),
        "config" => config::parse(spec, &rest[1..]).map(ServerCmd::Config),
        _ => return None,
    })
}

/// `SELECT index`: Redis's errors for a non-integer and for a database
/// other than 0 (raftkv keeps one keyspace, like Redis Cluster).
fn select(db: &Bytes) -> Result<ServerCmd, CommandError> {
    match std::str::from_utf8(db)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        None => Err(CommandError(
            "ERR value is not an integer or out of range".into(),
        )),
        Some(0) => Ok(ServerCmd::Select),
        Some(_) => Err(CommandError("ERR DB index is out of range".into())),
    }
}

/// Runs a server command; the reply.
pub fn execute(ctx: &Ctx<'_>, cmd: ServerCmd) -> Frame {
    match cmd {
        ServerCmd::Echo(msg) => Frame::Bulk(msg),
        ServerCmd::Time => time(),
        ServerCmd::Select => Frame::Simple("OK".into()),
        ServerCmd::Info(sections) => Frame::Verbatim(Bytes::from(crate::info::render(
            ctx.port, ctx.node, &sections,
        ))),
        ServerCmd::Command(q) => introspect::execute(q),
        ServerCmd::Client(c) => client::execute(ctx, c),
        ServerCmd::Config(c) => config::execute(ctx, c),
        ServerCmd::Help(spec) => table::help(spec),
    }
}

/// `TIME`: seconds and microseconds, as two bulk strings.
fn time() -> Frame {
    let us = crate::stats::unix_micros();
    let bulk = |n: u128| Frame::Bulk(Bytes::from(n.to_string()));
    Frame::Array(vec![bulk(us / 1_000_000), bulk(us % 1_000_000)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(a: &[&str]) -> Result<ServerCmd, CommandError> {
        let args: Vec<Bytes> = a
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let spec = table::check(&args)?.expect("in the table");
        parse(spec, &args).expect("a server command")
    }

    #[test]
    fn parses_simple_server_commands() {
        assert_eq!(
            parse_args(&["echo", "hi"]),
            Ok(ServerCmd::Echo(Bytes::from("hi")))
        );
        assert_eq!(parse_args(&["TIME"]), Ok(ServerCmd::Time));
        assert_eq!(parse_args(&["select", "0"]), Ok(ServerCmd::Select));
        assert_eq!(
            parse_args(&["select", "1"]).unwrap_err().0,
            "ERR DB index is out of range"
        );
        assert_eq!(
            parse_args(&["select", "x"]).unwrap_err().0,
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            parse_args(&["info", "Server", "CLIENTS"]),
            Ok(ServerCmd::Info(vec!["server".into(), "clients".into()]))
        );
        assert!(matches!(
            parse_args(&["client", "help"]),
            Ok(ServerCmd::Help(s)) if s.name == "client"
        ));
        assert_eq!(
            parse_args(&["echo"]).unwrap_err().0,
            "ERR wrong number of arguments for 'echo' command"
        );
    }

    #[test]
    fn time_is_seconds_and_microseconds() {
        let Frame::Array(parts) = time() else {
            panic!()
        };
        let n = |f: &Frame| match f {
            Frame::Bulk(b) => std::str::from_utf8(b).unwrap().parse::<u64>().unwrap(),
            _ => panic!("not a bulk"),
        };
        assert!(n(&parts[0]) > 1_600_000_000);
        assert!(n(&parts[1]) < 1_000_000);
    }
}
