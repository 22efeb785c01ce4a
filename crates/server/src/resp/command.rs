//! The commands of DESIGN.md's RESP contract, parsed from a request frame,
//! with Redis's error wording for unknown commands, wrong arity and syntax.
//! Data commands (strings, counters, keys, expiry) become a `kv::Op`
//! (see `data`); this file parses the rest.
//! Arity and subcommand names are checked against the command table
//! (`table::check`) first; server commands are parsed by `crate::servercmd`.
//!
//! Invariant: a `Command` is well-formed (arity checked, keys and values
//! within kv's limits), so executing it never needs to re-validate.

use std::borrow::Cow;

use bytes::Bytes;

use super::frame::Frame;

/// A client request raftkv executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ping(Option<Bytes>),
    /// A data command: replicated through the log, or a linearizable read.
    Data(kv::Op),
    /// A connection or server command that needs no log (`ECHO`, `TIME`,
    /// `SELECT`, `INFO`, `COMMAND`, `CLIENT`, `CONFIG`, `... HELP`): see
    /// `crate::servercmd`.
    Server(crate::servercmd::ServerCmd),
    /// `CLUSTER KEYSLOT | INFO | SLOTS | SHARDS | NODES | MYID`.
    Cluster(ClusterQuery),
    /// `QUIT`: reply `+OK`, then close.
    Quit,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: protocol negotiation
    /// and optional authentication (handled by the connection, which owns
    /// the protocol and authentication state).
    Hello {
        version: Option<i64>,
        /// `AUTH username password`.
        auth: Option<(Bytes, Bytes)>,
        /// `SETNAME clientname` (checked like `CLIENT SETNAME` at parse).
        setname: Option<Bytes>,
    },
    /// `AUTH [username] password` (handled by the connection).
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    /// Redis Cluster's connection flags (`ASKING`, `READONLY`,
    /// `READWRITE`): acknowledged, no effect.
    Acknowledge,
    /// `SHARDCTL ...`: raftkv's own command to the shard controller.
    ShardCtl(ShardCtl),
    /// `RAFT MEMBER ... | RAFT TRANSFER [ID]`: membership and leadership
    /// administration of a single group (`crate::admin`); in a sharded
    /// deployment `RAFT GROUP GID ...` names the group (`group: Some`).
    Raft {
        group: Option<u64>,
        op: crate::admin::AdminOp,
    },
    /// `MULTI`, `EXEC`, `DISCARD`, `WATCH key...`, `UNWATCH` (the
    /// connection's transaction state: see `exec`).
    Multi,
    Exec,
    Discard,
    Watch(Vec<Bytes>),
    Unwatch,
}

/// `SHARDCTL QUERY [NUM] | JOIN GID=ID@HOST:PORT,... [...] | LEAVE GID [GID ...]
/// | MOVE SHARD GID` (what `raftkv shard ...` sends). A member's address is
/// its process's client (RESP) address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardCtl {
    Query(Option<u64>),
    Join(std::collections::BTreeMap<u64, Vec<(u64, String)>>),
    Leave(Vec<u64>),
    Move { shard: u32, gid: u64 },
}

/// The `CLUSTER` subcommands raftkv answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterQuery {
    KeySlot(Bytes),
    Info,
    Slots,
    Shards,
    Nodes,
    MyId,
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
    let mut args = match frame {
        // Into a vector of its own size: collecting in place into the frames'
        // (larger) allocation shrank it with a `realloc` on every request.
        Frame::Array(items) => {
            let mut args = Vec::with_capacity(items.len());
            for item in items {
                args.push(bulk(item)?);
            }
            args
        }
        _ => {
            return Err(CommandError(
                "ERR Protocol error: expected an array of bulk strings".into(),
            ))
        }
    };
    if args.is_empty() {
        return Err(CommandError("ERR empty command".into()));
    }
    // Arity and subcommand names from the command table (Redis's wording
    // for every command alike), then the server commands' own parser.
    if let Some(spec) = super::table::check(&args)? {
        if let Some(server) = crate::servercmd::parse(spec, &args) {
            return server.map(Command::Server);
        }
    }
    let mut name_buf = [0u8; NAME_BUF_BYTES];
    let upper = upper_name(&args[0], &mut name_buf);
    // The data commands may take their arguments out of `args` (`data::parse`).
    if let Some(op) = super::data::parse(&upper, &mut args[1..]) {
        return op.map(Command::Data);
    }
    let (name, rest) = (&args[0], &args[1..]);
    let cmd = match (&*upper, rest) {
        ("PING", []) => Command::Ping(None),
        ("PING", [msg]) => Command::Ping(Some(msg.clone())),
        ("CLUSTER", [sub, ..]) => cluster(sub, rest)?,
        ("SHARDCTL", [sub, ..]) => Command::ShardCtl(shardctl(sub, &rest[1..])?),
        ("RAFT", [sub, gid, tail @ ..]) if sub.eq_ignore_ascii_case(b"GROUP") => {
            let gid = std::str::from_utf8(gid)
                .ok()
                .and_then(|g| g.parse::<u64>().ok())
                .ok_or_else(|| {
                    CommandError(format!(
                        "ERR group id '{}' is not a number",
                        String::from_utf8_lossy(gid)
                    ))
                })?;
            Command::Raft {
                group: Some(gid),
                op: raft_admin(tail)?,
            }
        }
        ("RAFT", [_, ..]) => Command::Raft {
            group: None,
            op: raft_admin(rest)?,
        },
        // Redis Cluster's connection flags: accepted, no effect (every node
        // serves every key, and reads are linearizable wherever they arrive).
        ("ASKING" | "READONLY" | "READWRITE", []) => Command::Acknowledge,
        ("QUIT", []) => Command::Quit,
        ("MULTI", []) => Command::Multi,
        ("EXEC", []) => Command::Exec,
        ("DISCARD", []) => Command::Discard,
        ("UNWATCH", []) => Command::Unwatch,
        ("WATCH", [_, ..]) => Command::Watch(rest.to_vec()),
        ("HELLO", _) => hello(rest)?,
        ("AUTH", [pw]) => Command::Auth {
            user: None,
            password: pw.clone(),
        },
        ("AUTH", [user, pw]) => Command::Auth {
            user: Some(user.clone()),
            password: pw.clone(),
        },
        ("AUTH", [_, _, _, ..]) => return Err(CommandError("ERR syntax error".into())),
        (
            "PING" | "QUIT" | "AUTH" | "CLUSTER" | "SHARDCTL" | "ASKING" | "READONLY" | "READWRITE"
            | "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH",
            _,
        ) => return Err(CommandError::arity(&upper)),
        _ => return Err(unknown(name, rest)),
    };
    Ok(cmd)
}

/// Longer than any command name: a name upper-cased on the stack.
const NAME_BUF_BYTES: usize = 32;

/// `name` in upper case: in `buf` when it is short ASCII (every command
/// name is; one allocation less per request), else a string of its own.
fn upper_name<'a>(name: &[u8], buf: &'a mut [u8; NAME_BUF_BYTES]) -> Cow<'a, str> {
    match buf.get_mut(..name.len()) {
        Some(b) if name.is_ascii() => {
            b.copy_from_slice(name);
            b.make_ascii_uppercase();
            Cow::Borrowed(std::str::from_utf8(b).expect("ASCII is UTF-8"))
        }
        _ => Cow::Owned(String::from_utf8_lossy(name).to_ascii_uppercase()),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`. The
/// connection checks `AUTH` (see `crate::auth`) and sets the name.
fn hello(rest: &[Bytes]) -> Result<Command, CommandError> {
    let Some((ver, mut opts)) = rest.split_first() else {
        return Ok(Command::Hello {
            version: None,
            auth: None,
            setname: None,
        });
    };
    let ver = std::str::from_utf8(ver)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            CommandError("ERR Protocol version is not an integer or out of range".into())
        })?;
    let (mut auth, mut setname) = (None, None);
    while let Some((opt, more)) = opts.split_first() {
        opts = match (
            String::from_utf8_lossy(opt).to_ascii_uppercase().as_str(),
            more,
        ) {
            ("AUTH", [user, pw, tail @ ..]) => {
                auth = Some((user.clone(), pw.clone()));
                tail
            }
            ("SETNAME", [name, tail @ ..]) => {
                if !crate::clients::valid_attr(name) {
                    return Err(CommandError(crate::servercmd::client::BAD_NAME.into()));
                }
                setname = Some(name.clone());
                tail
            }
            _ => {
                return Err(CommandError(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                )))
            }
        };
    }
    Ok(Command::Hello {
        version: Some(ver),
        auth,
        setname,
    })
}

fn cluster(sub: &Bytes, rest: &[Bytes]) -> Result<Command, CommandError> {
    let name = String::from_utf8_lossy(sub).to_ascii_uppercase();
    let q = match (name.as_str(), &rest[1..]) {
        ("KEYSLOT", [k]) => ClusterQuery::KeySlot(k.clone()),
        ("INFO", []) => ClusterQuery::Info,
        ("SLOTS", []) => ClusterQuery::Slots,
        ("SHARDS", []) => ClusterQuery::Shards,
        ("NODES", []) => ClusterQuery::Nodes,
        ("MYID", []) => ClusterQuery::MyId,
        ("KEYSLOT" | "INFO" | "SLOTS" | "SHARDS" | "NODES" | "MYID", _) => {
            return Err(sub_arity("cluster", &name))
        }
        _ => return Err(unknown_sub("CLUSTER", sub)),
    };
    Ok(Command::Cluster(q))
}

fn shardctl(sub: &Bytes, args: &[Bytes]) -> Result<ShardCtl, CommandError> {
    let name = String::from_utf8_lossy(sub).to_ascii_uppercase();
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let num = |b: &Bytes, what: &str| {
        text(b).parse::<u64>().map_err(|_| {
            CommandError(format!(
                "ERR {what} '{}' is not a non-negative integer",
                text(b)
            ))
        })
    };
    Ok(match (name.as_str(), args) {
        ("QUERY", []) => ShardCtl::Query(None),
        ("QUERY", [n]) => ShardCtl::Query(Some(num(n, "configuration number")?)),
        ("JOIN", [_, ..]) => {
            let mut groups = std::collections::BTreeMap::new();
            for g in args {
                let (gid, members) = parse_join_group(&text(g))?;
                if groups.insert(gid, members).is_some() {
                    return Err(CommandError(format!("ERR group {gid} is named twice")));
                }
            }
            ShardCtl::Join(groups)
        }
        ("LEAVE", [_, ..]) => ShardCtl::Leave(
            args.iter()
                .map(|g| num(g, "group id"))
                .collect::<Result<_, _>>()?,
        ),
        ("MOVE", [shard, gid]) => {
            let shard = num(shard, "shard")?;
            ShardCtl::Move {
                shard: u32::try_from(shard)
                    .map_err(|_| CommandError(format!("ERR shard {shard} is out of range")))?,
                gid: num(gid, "group id")?,
            }
        }
        ("QUERY" | "JOIN" | "LEAVE" | "MOVE", _) => return Err(sub_arity("shardctl", &name)),
        _ => return Err(unknown_sub("SHARDCTL", sub)),
    })
}

/// Whether `flags` are distinct words from `known`.
fn known_flags(flags: &[&str], known: &[&str]) -> bool {
    flags.iter().all(|f| known.contains(f))
        && flags
            .iter()
            .enumerate()
            .all(|(i, f)| !flags[..i].contains(f))
}

/// `RAFT MEMBER LIST | ADD ID HOST:PORT [LEARNER] [FORCE] | PROMOTE ID [FORCE] |
/// REMOVE ID [FORCE]`, `RAFT TRANSFER [ID]`, `RAFT SNAPSHOT` (the words after
/// `RAFT` or `RAFT GROUP GID`).
fn raft_admin(args: &[Bytes]) -> Result<crate::admin::AdminOp, CommandError> {
    use crate::admin::AdminOp;
    use raft::ConfChange;
    let words: Vec<String> = args
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let id = |w: &str| {
        w.parse::<u64>()
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| CommandError(format!("ERR node id '{w}' is not a positive integer")))
    };
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    Ok(match upper.as_slice() {
        ["MEMBER", "LIST"] => AdminOp::List,
        ["SNAPSHOT"] => AdminOp::Snapshot,
        ["MEMBER", "ADD", _, _, flags @ ..] if known_flags(flags, &["LEARNER", "FORCE"]) => {
            let (id, addr) = (id(&words[2])?, words[3].clone());
            if !addr.contains(':') {
                return Err(CommandError(format!(
                    "ERR peer address '{addr}' is not HOST:PORT"
                )));
            }
            AdminOp::Change {
                change: if flags.contains(&"LEARNER") {
                    ConfChange::AddLearner { id, addr }
                } else {
                    ConfChange::AddVoter { id, addr }
                },
                force: flags.contains(&"FORCE"),
            }
        }
        ["MEMBER", "PROMOTE", _, flags @ ..] if known_flags(flags, &["FORCE"]) => AdminOp::Change {
            change: ConfChange::Promote { id: id(&words[2])? },
            force: !flags.is_empty(),
        },
        ["MEMBER", "REMOVE", _, flags @ ..] if known_flags(flags, &["FORCE"]) => AdminOp::Change {
            change: ConfChange::Remove { id: id(&words[2])? },
            force: !flags.is_empty(),
        },
        ["TRANSFER"] => AdminOp::Transfer(None),
        ["TRANSFER", _] => AdminOp::Transfer(Some(id(&words[1])?)),
        _ => {
            return Err(CommandError(
                "ERR syntax: RAFT [GROUP GID] MEMBER LIST | MEMBER ADD ID HOST:PORT [LEARNER] [FORCE] | MEMBER PROMOTE ID [FORCE] | MEMBER REMOVE ID [FORCE] | TRANSFER [ID] | SNAPSHOT".into(),
            ))
        }
    })
}

/// `GID=ID@HOST:PORT,ID@HOST:PORT,...`.
pub fn parse_join_group(s: &str) -> Result<(u64, Vec<(u64, String)>), CommandError> {
    let bad = || CommandError(format!("ERR '{s}' is not GID=ID@HOST:PORT,..."));
    let (gid, members) = s.split_once('=').ok_or_else(bad)?;
    let gid: u64 = gid.trim().parse().map_err(|_| bad())?;
    let mut out = Vec::new();
    for m in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (id, addr) = m.split_once('@').ok_or_else(bad)?;
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        if !addr.contains(':') {
            return Err(bad());
        }
        out.push((id, addr.trim().to_string()));
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok((gid, out))
}

/// Redis: `ERR wrong number of arguments for 'cluster|keyslot' command`.
fn sub_arity(cmd: &str, sub: &str) -> CommandError {
    CommandError(format!(
        "ERR wrong number of arguments for '{cmd}|{}' command",
        sub.to_ascii_lowercase()
    ))
}

/// Redis: `ERR unknown subcommand 'x'. Try CLUSTER HELP.`
fn unknown_sub(cmd: &str, sub: &[u8]) -> CommandError {
    CommandError(format!(
        "ERR unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ))
}

fn bulk(frame: Frame) -> Result<Bytes, CommandError> {
    match frame {
        Frame::Bulk(b) => Ok(b),
        _ => Err(CommandError(
            "ERR Protocol error: expected bulk string".into(),
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, CommandError> {
        let items = args
            .iter()
            .map(|a| Frame::Bulk(Bytes::copy_from_slice(a.as_bytes())))
            .collect();
        parse_command(Frame::Array(items))
    }

    #[test]
    fn names_upper_case_on_the_stack_or_off_it() {
        let mut buf = [0u8; NAME_BUF_BYTES];
        assert!(matches!(upper_name(b"sEt", &mut buf), Cow::Borrowed("SET")));
        let long = "x".repeat(NAME_BUF_BYTES + 1);
        let up = upper_name(long.as_bytes(), &mut buf);
        assert!(matches!(&up, Cow::Owned(s) if *s == long.to_ascii_uppercase()));
        assert_eq!(upper_name("gét".as_bytes(), &mut buf), "GéT");
        assert!(matches!(
            parse(&["GeT", "k"]),
            Ok(Command::Data(kv::Op::Get { .. }))
        ));
    }

    /// `RAFT GROUP GID ...` names a group; the rest parses as `RAFT ...`.
    #[test]
    fn raft_admin_with_and_without_a_group() {
        use crate::admin::AdminOp;
        use raft::ConfChange;
        assert_eq!(
            parse(&["RAFT", "MEMBER", "LIST"]),
            Ok(Command::Raft {
                group: None,
                op: AdminOp::List
            })
        );
        assert_eq!(
            parse(&["raft", "group", "2", "member", "add", "7", "h:1", "learner"]),
            Ok(Command::Raft {
                group: Some(2),
                op: AdminOp::Change {
                    change: ConfChange::AddLearner {
                        id: 7,
                        addr: "h:1".into()
                    },
                    force: false
                }
            })
        );
        assert_eq!(
            parse(&["RAFT", "GROUP", "0", "TRANSFER"]),
            Ok(Command::Raft {
                group: Some(0),
                op: AdminOp::Transfer(None)
            })
        );
        assert!(parse(&["RAFT", "GROUP", "x", "TRANSFER"])
            .unwrap_err()
            .0
            .contains("group id 'x'"));
        assert!(parse(&["RAFT", "GROUP", "1"])
            .unwrap_err()
            .0
            .starts_with("ERR syntax: RAFT [GROUP GID]"));
    }

    /// The cluster commands and their errors, in Redis's wording.
    #[test]
    fn cluster_and_command_forms() {
        assert_eq!(
            parse(&["cluster", "keyslot", "foo"]),
            Ok(Command::Cluster(ClusterQuery::KeySlot(Bytes::from("foo"))))
        );
        assert_eq!(
            parse(&["CLUSTER", "SLOTS"]),
            Ok(Command::Cluster(ClusterQuery::Slots))
        );
        assert_eq!(
            parse(&["CLUSTER", "KEYSLOT"]).unwrap_err().0,
            "ERR wrong number of arguments for 'cluster|keyslot' command"
        );
        assert_eq!(
            parse(&["CLUSTER", "MEET"]).unwrap_err().0,
            "ERR unknown subcommand 'MEET'. Try CLUSTER HELP."
        );
        assert_eq!(
            parse(&["CLUSTER"]).unwrap_err().0,
            "ERR wrong number of arguments for 'cluster' command"
        );
        assert_eq!(parse(&["READONLY"]), Ok(Command::Acknowledge));
        assert_eq!(parse(&["asking"]), Ok(Command::Acknowledge));
        assert!(matches!(
            parse(&["COMMAND", "INFO", "get"]),
            Ok(Command::Server(_))
        ));
        // Every command the parser knows has a row in the table.
        for c in super::super::table::COMMANDS {
            let data_args: Vec<&str>;
            let args: &[&str] = match c.name {
                "cluster" => &["cluster", "info"],
                "client" => &["client", "getname"],
                "select" => &["select", "0"],
                "echo" => &["echo", "x"],
                "config" => &["config", "get", "x"],
                "auth" | "quit" | "hello" => continue,
                "shardctl" => &["shardctl", "query"],
                "raft" => &["raft", "member", "list"],
                "command" | "info" | "ping" | "asking" | "readonly" | "readwrite" => &[c.name],
                // A data command: as many "1"s as its arity asks for.
                name => {
                    let n_args = c.arity.unsigned_abs() as usize - 1;
                    data_args = std::iter::once(name)
                        .chain(std::iter::repeat_n("1", n_args))
                        .collect();
                    &data_args
                }
            };
            assert!(parse(args).is_ok(), "{} does not parse", c.name);
        }
    }

    /// Redis's slots for well-known keys (CLUSTER KEYSLOT in Redis 7).
    #[test]
    fn keyslots_match_redis() {
        assert_eq!(shardmeta::key_slot(b"foo"), 12182);
        assert_eq!(shardmeta::key_slot(b"somekey"), 11058);
        assert_eq!(shardmeta::key_slot(b"{user1000}.following"), 3443);
    }
}
