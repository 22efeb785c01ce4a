//! The commands raftkv answers, described the way Redis 7's `COMMAND`
//! describes them: name, arity, flags, first key, last key, key step (plus
//! the empty ACL categories, tips, key specs and subcommands Redis 7 adds).
//! Cluster clients (redis-py's `RedisCluster`, for one) read key positions
//! from this reply to route a command by its keys' slot, so each row must
//! say where the keys really are.
//!
//! Invariant: every command `command::parse_command` accepts has a row here,
//! and the arities are Redis's (negative: "at least |n| arguments",
//! counting the command name).

use bytes::Bytes;

use super::frame::Frame;

/// One row of the command table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub first_key: i64,
    pub last_key: i64,
    pub step: i64,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
/// `MSET`-style: key, value, key, value, ...
const PAIRS: (i64, i64, i64) = (1, -1, 2);
const W_DF: &[&str] = &["write", "denyoom", "fast"];
const W_D: &[&str] = &["write", "denyoom"];
const W_F: &[&str] = &["write", "fast"];
const R_F: &[&str] = &["readonly", "fast"];

/// Every command raftkv answers, in name order.
pub const COMMANDS: &[CommandSpec] = &[
    spec("append", 3, &["write", "denyoom", "fast"], ONE_KEY),
    spec("asking", 1, &["fast"], NO_KEYS),
    spec(
        "auth",
        -2,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        NO_KEYS,
    ),
    spec("client", -2, &[], NO_KEYS),
    spec("cluster", -2, &[], NO_KEYS),
    spec("command", -1, &["loading", "stale"], NO_KEYS),
    spec("decr", 2, W_DF, ONE_KEY),
    spec("decrby", 3, W_DF, ONE_KEY),
    spec("del", -2, &["write"], ALL_KEYS),
    spec("exists", -2, &["readonly", "fast"], ALL_KEYS),
    spec("expire", -3, W_F, ONE_KEY),
    spec("expireat", -3, W_F, ONE_KEY),
    spec("expiretime", 2, R_F, ONE_KEY),
    spec("get", 2, &["readonly", "fast"], ONE_KEY),
    spec("getdel", 2, W_F, ONE_KEY),
    spec("getex", -2, W_F, ONE_KEY),
    spec("getrange", 4, &["readonly"], ONE_KEY),
    spec("getset", 3, W_DF, ONE_KEY),
    spec(
        "hello",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        NO_KEYS,
    ),
    spec("incr", 2, W_DF, ONE_KEY),
    spec("incrby", 3, W_DF, ONE_KEY),
    spec("incrbyfloat", 3, W_DF, ONE_KEY),
    spec("info", -1, &["loading", "stale"], NO_KEYS),
    spec("mget", -2, R_F, ALL_KEYS),
    spec("mset", -3, W_D, PAIRS),
    spec("msetnx", -3, W_D, PAIRS),
    spec("persist", 2, W_F, ONE_KEY),
    spec("pexpire", -3, W_F, ONE_KEY),
    spec("pexpireat", -3, W_F, ONE_KEY),
    spec("pexpiretime", 2, R_F, ONE_KEY),
    spec("ping", -1, &["fast"], NO_KEYS),
    spec("psetex", 4, W_D, ONE_KEY),
    spec("pttl", 2, R_F, ONE_KEY),
    spec(
        "quit",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        NO_KEYS,
    ),
    spec("readonly", 1, &["loading", "stale", "fast"], NO_KEYS),
    spec("readwrite", 1, &["loading", "stale", "fast"], NO_KEYS),
    spec("select", 2, &["loading", "stale", "fast"], NO_KEYS),
    spec("set", -3, &["write", "denyoom"], ONE_KEY),
    spec("setex", 4, W_D, ONE_KEY),
    spec("setnx", 3, W_DF, ONE_KEY),
    spec("setrange", 4, W_D, ONE_KEY),
    spec("shardctl", -2, &["admin"], NO_KEYS),
    spec("strlen", 2, R_F, ONE_KEY),
    spec("ttl", 2, R_F, ONE_KEY),
    spec("unlink", -2, W_F, ALL_KEYS),
];

/// The row of `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    COMMANDS.iter().find(|c| c.name == lower)
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// One command's `COMMAND INFO` entry.
pub fn describe(c: &CommandSpec) -> Frame {
    Frame::Array(vec![
        bulk(c.name),
        Frame::Integer(c.arity),
        Frame::Array(
            c.flags
                .iter()
                .map(|f| Frame::Simple(f.to_string()))
                .collect(),
        ),
        Frame::Integer(c.first_key),
        Frame::Integer(c.last_key),
        Frame::Integer(c.step),
        Frame::Array(vec![]), // ACL categories
        Frame::Array(vec![]), // tips
        Frame::Array(vec![]), // key specifications
        Frame::Array(vec![]), // subcommands
    ])
}

/// The positions of the keys in `args` (`args[0]` is the command name),
/// per the table; empty for a command without keys or not in it.
pub fn key_positions(args_len: usize, c: &CommandSpec) -> Vec<usize> {
    if c.first_key <= 0 || c.step <= 0 {
        return Vec::new();
    }
    let last = if c.last_key < 0 {
        args_len as i64 + c.last_key
    } else {
        c.last_key
    };
    (c.first_key..=last.min(args_len as i64 - 1))
        .step_by(c.step as usize)
        .map(|i| i as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_key_positions_follow_it() {
        assert!(COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        let del = lookup(b"DEL").unwrap();
        assert_eq!(key_positions(4, del), vec![1, 2, 3]);
        assert_eq!(key_positions(3, lookup(b"set").unwrap()), vec![1]);
        assert!(key_positions(2, lookup(b"ping").unwrap()).is_empty());
        assert!(lookup(b"flushall").is_none());
    }
}
