//! `COMMAND`, `COMMAND COUNT | LIST | INFO | DOCS | GETKEYS`, answered from
//! the command table (`resp::table`) with Redis 7's reply shapes and errors.

use bytes::Bytes;

use crate::resp::table::{self, CommandSpec, COMMANDS};
use crate::resp::{CommandError, Frame};

/// The forms of `COMMAND` raftkv answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// `COMMAND`: every command's row.
    All,
    /// `COMMAND COUNT`.
    Count,
    /// `COMMAND LIST [FILTERBY ACLCAT cat | PATTERN pat | MODULE name]`.
    List(ListFilter),
    /// `COMMAND INFO [name ...]` (no name: all).
    Info(Vec<Bytes>),
    /// `COMMAND DOCS [name ...]` (no name: all).
    Docs(Vec<Bytes>),
    /// `COMMAND GETKEYS command [arg ...]`.
    GetKeys(Vec<Bytes>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFilter {
    None,
    AclCat(String),
    Pattern(Bytes),
    /// raftkv loads no modules: always empty.
    Module,
}

/// Parses the arguments after `COMMAND` (arity already checked).
pub fn parse(rest: &[Bytes]) -> Result<CommandQuery, CommandError> {
    let Some((sub, args)) = rest.split_first() else {
        return Ok(CommandQuery::All);
    };
    let upper = |b: &Bytes| String::from_utf8_lossy(b).to_ascii_uppercase();
    Ok(match upper(sub).as_str() {
        "COUNT" => CommandQuery::Count,
        "INFO" => CommandQuery::Info(args.to_vec()),
        "DOCS" => CommandQuery::Docs(args.to_vec()),
        "GETKEYS" => CommandQuery::GetKeys(args.to_vec()),
        "LIST" => CommandQuery::List(match args {
            [] => ListFilter::None,
            [f, kind, value] if upper(f) == "FILTERBY" => match upper(kind).as_str() {
                "ACLCAT" => ListFilter::AclCat(String::from_utf8_lossy(value).to_ascii_lowercase()),
                "PATTERN" => ListFilter::Pattern(value.clone()),
                "MODULE" => ListFilter::Module,
                _ => return Err(CommandError("ERR syntax error".into())),
            },
            _ => return Err(CommandError("ERR syntax error".into())),
        }),
        // The table admits only the subcommands above (HELP is parsed
        // before this), so this is unreachable from a client.
        other => return Err(CommandError(format!("ERR unknown subcommand '{other}'"))),
    })
}

/// Every command and subcommand row, as `COMMAND LIST` names them.
fn all_rows() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
}

pub fn execute(q: CommandQuery) -> Frame {
    let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    match q {
        CommandQuery::All => Frame::Array(COMMANDS.iter().map(table::describe).collect()),
        CommandQuery::Count => Frame::Integer(COMMANDS.len() as i64),
        CommandQuery::List(filter) => Frame::Array(
            all_rows()
                .filter(|c| match &filter {
                    ListFilter::None => true,
                    ListFilter::AclCat(cat) => table::acl_categories(c)
                        .iter()
                        .any(|a| a.trim_start_matches('@') == cat.trim_start_matches('@')),
                    ListFilter::Pattern(p) => {
                        kv::glob::matches(&p.to_ascii_lowercase(), c.name.as_bytes())
                    }
                    ListFilter::Module => false,
                })
                .map(|c| bulk(c.name))
                .collect(),
        ),
        CommandQuery::Info(names) if names.is_empty() => execute(CommandQuery::All),
        CommandQuery::Info(names) => Frame::Array(
            names
                .iter()
                .map(|n| lookup_full(n).map_or(Frame::Null, table::describe))
                .collect(),
        ),
        CommandQuery::Docs(names) => {
            let rows: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| lookup_full(n)).collect()
            };
            Frame::Map(
                rows.into_iter()
                    .map(|c| (bulk(c.name), table::docs(c)))
                    .collect(),
            )
        }
        CommandQuery::GetKeys(args) => getkeys(&args),
    }
}

/// A row by full name: `get`, or `client|list` for a subcommand.
fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        None => table::lookup(name),
        Some(i) => table::lookup_sub(table::lookup(&name[..i])?, &name[i + 1..]),
    }
}

/// `COMMAND GETKEYS`, with Redis's errors.
fn getkeys(args: &[Bytes]) -> Frame {
    let spec = match args.first().and_then(|n| table::lookup(n)) {
        None => return Frame::error("ERR Invalid command specified"),
        Some(top) if !top.subcommands.is_empty() && args.len() > 1 => {
            match table::lookup_sub(top, &args[1]) {
                Some(sub) => sub,
                None => return Frame::error("ERR Invalid command specified"),
            }
        }
        Some(top) => top,
    };
    if spec.first_key <= 0 {
        return Frame::error("ERR The command has no key arguments");
    }
    if !spec.arity_ok(args.len()) {
        return Frame::error("ERR Invalid number of arguments specified for command");
    }
    Frame::Array(
        table::key_positions(args.len(), spec)
            .into_iter()
            .map(|i| Frame::Bulk(args[i].clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn getkeys_follows_the_table_with_redis_errors() {
        assert_eq!(
            getkeys(&b(&["del", "a", "b"])),
            Frame::Array(vec![Frame::Bulk("a".into()), Frame::Bulk("b".into())])
        );
        assert_eq!(
            getkeys(&b(&["nosuch", "a"])),
            Frame::error("ERR Invalid command specified")
        );
        assert_eq!(
            getkeys(&b(&["ping"])),
            Frame::error("ERR The command has no key arguments")
        );
        assert_eq!(
            getkeys(&b(&["get", "a", "b"])),
            Frame::error("ERR Invalid number of arguments specified for command")
        );
    }

    #[test]
    fn list_filters_and_info_by_full_name() {
        let Frame::Array(all) = execute(CommandQuery::List(ListFilter::None)) else {
            panic!()
        };
        assert!(all.contains(&Frame::Bulk("client|setname".into())));
        let Frame::Array(some) = execute(CommandQuery::List(ListFilter::Pattern("cl*".into())))
        else {
            panic!()
        };
        assert!(some.contains(&Frame::Bulk("client".into())));
        assert!(!some.contains(&Frame::Bulk("get".into())));
        let Frame::Array(read) = execute(CommandQuery::List(ListFilter::AclCat("read".into())))
        else {
            panic!()
        };
        assert!(read.contains(&Frame::Bulk("get".into())));
        assert!(!read.contains(&Frame::Bulk("set".into())));
        let Frame::Array(info) = execute(CommandQuery::Info(b(&["client|id", "nosuch"]))) else {
            panic!()
        };
        assert_eq!(info[1], Frame::Null);
        assert!(matches!(&info[0], Frame::Array(f) if f[0] == Frame::Bulk("client|id".into())));
        assert_eq!(
            parse(&b(&["list", "filterby", "bogus", "x"])),
            Err(CommandError("ERR syntax error".into()))
        );
    }

    #[test]
    fn docs_are_a_map_of_every_command() {
        let Frame::Map(docs) = execute(CommandQuery::Docs(vec![])) else {
            panic!()
        };
        assert_eq!(docs.len(), COMMANDS.len());
        let Frame::Map(one) = execute(CommandQuery::Docs(b(&["GET"]))) else {
            panic!()
        };
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, Frame::Bulk("get".into()));
    }
}
