//! Parsing of the data commands (strings, counters, keys, expiry) into
//! `kv::Op`, with Redis 7's argument rules and error wording: arity
//! (`wrong number of arguments for 'x' command`), `syntax error`, `value is
//! not an integer or out of range`, `value is not a valid float`,
//! `invalid expire time in 'x' command`, and the option conflicts of `SET`,
//! `GETEX` and `EXPIRE`.
//!
//! Invariant: an op returned here is within kv's limits (keys, values) and
//! its numeric arguments are valid, so the state machine only judges what
//! depends on the data (types, stored numbers, overflow).

use bytes::Bytes;
use kv::numbers::{parse_f64, parse_i64};
use kv::{ExpireCond, Expiry, GetExTtl, Op, SetCond, SetTtl, TtlQuery};

use super::command::CommandError;

/// The longest relative expiry accepted (ms): far beyond any use (about
/// 73 million years), and small enough that log time plus it never
/// overflows, so the state machine needs no overflow check.
pub const MAX_EXPIRE_MS: i64 = i64::MAX / 4;

fn err(s: &str) -> CommandError {
    CommandError(s.to_string())
}

fn syntax() -> CommandError {
    err("ERR syntax error")
}

fn not_integer() -> CommandError {
    err("ERR value is not an integer or out of range")
}

fn invalid_expire(cmd: &str) -> CommandError {
    CommandError(format!("ERR invalid expire time in '{cmd}' command"))
}

fn int(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or_else(not_integer)
}

fn key(k: &Bytes) -> Result<Bytes, CommandError> {
    key_ok(k).map(|()| k.clone())
}

fn key_ok(k: &[u8]) -> Result<(), CommandError> {
    if k.len() > kv::MAX_KEY_BYTES {
        return Err(CommandError(format!(
            "ERR key is longer than {} bytes",
            kv::MAX_KEY_BYTES
        )));
    }
    Ok(())
}

fn value(v: &Bytes) -> Result<Bytes, CommandError> {
    value_ok(v).map(|()| v.clone())
}

fn value_ok(v: &[u8]) -> Result<(), CommandError> {
    if v.len() > kv::MAX_VALUE_BYTES {
        return Err(CommandError(format!(
            "ERR value is longer than {} bytes",
            kv::MAX_VALUE_BYTES
        )));
    }
    Ok(())
}

/// `arg`, moved out of its slot once `ok` accepts it (`key_ok`, `value_ok`).
fn take(arg: &mut Bytes, ok: fn(&[u8]) -> Result<(), CommandError>) -> Result<Bytes, CommandError> {
    ok(arg)?;
    Ok(std::mem::take(arg))
}

fn keys(args: &[Bytes]) -> Result<Vec<Bytes>, CommandError> {
    args.iter().map(key).collect()
}

fn pairs(args: &[Bytes], name: &str) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(arity(name));
    }
    args.chunks(2)
        .map(|kv| Ok((key(&kv[0])?, value(&kv[1])?)))
        .collect()
}

fn arity(name: &str) -> CommandError {
    CommandError(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

/// A positive expiry argument in `unit_ms` units as an [`Expiry`]
/// (`relative`: from log time; else Unix time), with Redis's errors.
fn positive_expiry(
    arg: &[u8],
    unit_ms: i64,
    relative: bool,
    cmd: &str,
) -> Result<Expiry, CommandError> {
    let n = int(arg)?;
    if n <= 0 {
        return Err(invalid_expire(cmd));
    }
    let ms = n
        .checked_mul(unit_ms)
        .filter(|&ms| ms <= MAX_EXPIRE_MS)
        .ok_or_else(|| invalid_expire(cmd))?;
    Ok(if relative {
        Expiry::InMs(ms)
    } else {
        Expiry::AtMs(ms)
    })
}

/// An `EX | PX | EXAT | PXAT` option and its argument, if `opt` is one.
fn expiry_option(
    opt: &str,
    arg: Option<&Bytes>,
    cmd: &str,
) -> Option<Result<Expiry, CommandError>> {
    let (unit_ms, relative) = match opt {
        "EX" => (1000, true),
        "PX" => (1, true),
        "EXAT" => (1000, false),
        "PXAT" => (1, false),
        _ => return None,
    };
    Some(match arg {
        Some(a) => positive_expiry(a, unit_ms, relative, cmd),
        None => Err(syntax()),
    })
}

/// An expiry option seen so far (`EX`, `PX`, ..., `KEEPTTL`, `PERSIST`):
/// Redis refuses two different ones but lets one repeat (the last wins).
fn same_kind(seen: &mut Option<String>, opt: &str) -> Result<(), CommandError> {
    match seen {
        Some(k) if k != opt => Err(syntax()),
        _ => {
            *seen = Some(opt.to_string());
            Ok(())
        }
    }
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT t | PXAT t | KEEPTTL]`.
fn set(args: &[Bytes]) -> Result<Op, CommandError> {
    let [k, v, opts @ ..] = args else {
        return Err(arity("set"));
    };
    let (mut cond, mut ttl, mut get) = (SetCond::Always, SetTtl::Clear, false);
    let mut kind = None;
    let mut i = 0;
    while i < opts.len() {
        let opt = upper(&opts[i]);
        match opt.as_str() {
            "NX" if cond != SetCond::IfExists => cond = SetCond::IfMissing,
            "XX" if cond != SetCond::IfMissing => cond = SetCond::IfExists,
            "GET" => get = true,
            "KEEPTTL" => {
                same_kind(&mut kind, &opt)?;
                ttl = SetTtl::Keep;
            }
            o => match expiry_option(o, opts.get(i + 1), "set") {
                Some(e) => {
                    same_kind(&mut kind, o)?;
                    ttl = SetTtl::Expire(e?);
                    i += 1;
                }
                None => return Err(syntax()),
            },
        }
        i += 1;
    }
    Ok(Op::Set {
        key: key(k)?,
        value: value(v)?,
        cond,
        ttl,
        get,
    })
}

/// `GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]`.
fn getex(args: &[Bytes]) -> Result<Op, CommandError> {
    let [k, opts @ ..] = args else {
        return Err(arity("getex"));
    };
    let (mut ttl, mut kind) = (GetExTtl::Keep, None);
    let mut i = 0;
    while i < opts.len() {
        let opt = upper(&opts[i]);
        if opt == "PERSIST" {
            same_kind(&mut kind, &opt)?;
            ttl = GetExTtl::Persist;
        } else {
            let e = expiry_option(&opt, opts.get(i + 1), "getex").ok_or_else(syntax)?;
            same_kind(&mut kind, &opt)?;
            ttl = GetExTtl::Expire(e?);
            i += 1;
        }
        i += 1;
    }
    Ok(Op::GetEx { key: key(k)?, ttl })
}

/// `SETEX` / `PSETEX key time value`.
fn setex(args: &[Bytes], unit_ms: i64, cmd: &str) -> Result<Op, CommandError> {
    let [k, t, v] = args else {
        return Err(arity(cmd));
    };
    let at = positive_expiry(t, unit_ms, true, cmd)?;
    Ok(Op::Set {
        key: key(k)?,
        value: value(v)?,
        cond: SetCond::Always,
        ttl: SetTtl::Expire(at),
        get: false,
    })
}

/// `EXPIRE | PEXPIRE | EXPIREAT | PEXPIREAT key time [NX | XX | GT | LT]`.
/// Any integer time is accepted: one not in the future deletes the key.
fn expire(args: &[Bytes], unit_ms: i64, relative: bool, cmd: &str) -> Result<Op, CommandError> {
    let [k, t, opts @ ..] = args else {
        return Err(arity(cmd));
    };
    let n = int(t)?;
    let ms = n
        .checked_mul(unit_ms)
        .filter(|ms| ms.unsigned_abs() <= MAX_EXPIRE_MS as u64)
        .ok_or_else(|| invalid_expire(cmd))?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in opts {
        match upper(o).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                return Err(CommandError(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let cond = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::IfNone,
        (_, _, true, _) => ExpireCond::IfGreater,
        (_, true, _, true) => ExpireCond::IfSomeAndLess,
        (_, false, _, true) => ExpireCond::IfLess,
        (_, true, ..) => ExpireCond::IfSome,
        _ => ExpireCond::Always,
    };
    let at = if relative {
        Expiry::InMs(ms)
    } else {
        Expiry::AtMs(ms)
    };
    Ok(Op::Expire {
        key: key(k)?,
        at,
        cond,
    })
}

fn incr_by(k: &Bytes, by: i64) -> Result<Op, CommandError> {
    Ok(Op::IncrBy { key: key(k)?, by })
}

/// The data command `name` (upper case) with arguments `args`, or `None`
/// if `name` is not a data command.
///
/// The plain `GET` and `SET` (nearly every request) take their arguments out
/// of `args` instead of cloning them: a clone of a freshly decoded argument
/// allocates (`Bytes` turns it into a shared buffer), and the allocation is
/// then freed by the driver.
pub fn parse(name: &str, args: &mut [Bytes]) -> Option<Result<Op, CommandError>> {
    match (name, &mut *args) {
        ("GET", [k]) => return Some(take(k, key_ok).map(|key| Op::Get { key })),
        ("SET", [k, v]) => {
            return Some((|| {
                Ok(Op::Put {
                    key: take(k, key_ok)?,
                    value: take(v, value_ok)?,
                })
            })())
        }
        _ => {}
    }
    let args = &*args;
    Some(match (name, args) {
        ("SET", _) => set(args),
        ("SETNX", [k, v]) => pairs(&[k.clone(), v.clone()], name).map(|pairs| Op::MSetNx { pairs }),
        ("SETEX", _) => setex(args, 1000, "setex"),
        ("PSETEX", _) => setex(args, 1, "psetex"),
        ("GETSET", [k, v]) => (|| {
            Ok(Op::Set {
                key: key(k)?,
                value: value(v)?,
                cond: SetCond::Always,
                ttl: SetTtl::Clear,
                get: true,
            })
        })(),
        ("GETDEL", [k]) => key(k).map(|key| Op::GetDel { key }),
        ("GETEX", _) => getex(args),
        ("MGET", [_, ..]) => keys(args).map(|keys| Op::MGet { keys }),
        ("MSET", _) => pairs(args, name).map(|pairs| Op::MSet { pairs }),
        ("MSETNX", _) => pairs(args, name).map(|pairs| Op::MSetNx { pairs }),
        ("INCR", [k]) => incr_by(k, 1),
        ("DECR", [k]) => incr_by(k, -1),
        ("INCRBY", [k, n]) => int(n).and_then(|n| incr_by(k, n)),
        ("DECRBY", [k, n]) => int(n).and_then(|n| match n.checked_neg() {
            Some(by) => incr_by(k, by),
            None => Err(err("ERR decrement would overflow")),
        }),
        ("INCRBYFLOAT", [k, n]) => match parse_f64(n) {
            Some(_) => key(k).map(|key| Op::IncrByFloat { key, by: n.clone() }),
            None => Err(err("ERR value is not a valid float")),
        },
        ("STRLEN", [k]) => key(k).map(|key| Op::StrLen { key }),
        ("GETRANGE", [k, s, e]) => (|| {
            Ok(Op::GetRange {
                key: key(k)?,
                start: int(s)?,
                end: int(e)?,
            })
        })(),
        ("SETRANGE", [k, o, v]) => (|| {
            let offset = int(o)?;
            if offset < 0 {
                return Err(err("ERR offset is out of range"));
            }
            Ok(Op::SetRange {
                key: key(k)?,
                offset: offset as u64,
                value: value(v)?,
            })
        })(),
        ("APPEND", [k, v]) => (|| {
            Ok(Op::Append {
                key: key(k)?,
                value: value(v)?,
            })
        })(),
        ("DEL" | "UNLINK", [_, ..]) => keys(args).map(|keys| Op::Del { keys }),
        ("EXISTS", [_, ..]) => keys(args).map(|keys| Op::Exists { keys }),
        ("EXPIRE", _) => expire(args, 1000, true, "expire"),
        ("PEXPIRE", _) => expire(args, 1, true, "pexpire"),
        ("EXPIREAT", _) => expire(args, 1000, false, "expireat"),
        ("PEXPIREAT", _) => expire(args, 1, false, "pexpireat"),
        ("PERSIST", [k]) => key(k).map(|key| Op::Persist { key }),
        ("TTL", [k]) => ttl(k, TtlQuery::Seconds),
        ("PTTL", [k]) => ttl(k, TtlQuery::Millis),
        ("EXPIRETIME", [k]) => ttl(k, TtlQuery::AtSeconds),
        ("PEXPIRETIME", [k]) => ttl(k, TtlQuery::AtMillis),
        ("TYPE", [k]) => key(k).map(|key| Op::Type { key }),
        ("RENAME" | "RENAMENX", [from, to]) => (|| {
            Ok(Op::Rename {
                from: key(from)?,
                to: key(to)?,
                nx: name == "RENAMENX",
            })
        })(),
        ("TOUCH", [_, ..]) => keys(args).map(|keys| Op::Touch { keys }),
        ("DBSIZE", []) => Ok(Op::DbSize),
        ("KEYS", [p]) => Ok(Op::Keys { pattern: p.clone() }),
        ("SCAN", _) => scan(args),
        ("RANDOMKEY", []) => Ok(Op::RandomKey),
        ("FLUSHALL" | "FLUSHDB", _) => flush(args),
        ("HSET", _) => hset(args),
        ("HSETNX", [k, f, v]) => (|| {
            Ok(Op::HSetNx {
                key: key(k)?,
                field: key(f)?,
                value: value(v)?,
            })
        })(),
        ("HGET", [k, f]) => key(k).map(|key| Op::HGet {
            key,
            field: f.clone(),
        }),
        ("HMGET", [k, _, ..]) => key(k).map(|key| Op::HMGet {
            key,
            fields: args[1..].to_vec(),
        }),
        ("HDEL", [k, _, ..]) => key(k).map(|key| Op::HDel {
            key,
            fields: args[1..].to_vec(),
        }),
        ("HEXISTS", [k, f]) => key(k).map(|key| Op::HExists {
            key,
            field: f.clone(),
        }),
        ("HLEN", [k]) => key(k).map(|key| Op::HLen { key }),
        ("HSTRLEN", [k, f]) => key(k).map(|key| Op::HStrLen {
            key,
            field: f.clone(),
        }),
        ("HGETALL", [k]) => key(k).map(|key| Op::HGetAll { key }),
        ("HKEYS", [k]) => key(k).map(|key| Op::HKeys { key }),
        ("HVALS", [k]) => key(k).map(|key| Op::HVals { key }),
        ("HINCRBY", [k, f, n]) => (|| {
            Ok(Op::HIncrBy {
                key: key(k)?,
                field: key(f)?,
                by: int(n)?,
            })
        })(),
        ("HINCRBYFLOAT", [k, f, n]) => match parse_f64(n) {
            Some(_) => (|| {
                Ok(Op::HIncrByFloat {
                    key: key(k)?,
                    field: key(f)?,
                    by: n.clone(),
                })
            })(),
            None => Err(err("ERR value is not a valid float")),
        },
        ("HSCAN", _) => hscan(args),
        (
            "GET" | "SETNX" | "GETSET" | "GETDEL" | "MGET" | "INCR" | "DECR" | "INCRBY" | "DECRBY"
            | "INCRBYFLOAT" | "STRLEN" | "GETRANGE" | "SETRANGE" | "APPEND" | "DEL" | "UNLINK"
            | "EXISTS" | "PERSIST" | "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" | "TYPE"
            | "RENAME" | "RENAMENX" | "TOUCH" | "DBSIZE" | "KEYS" | "RANDOMKEY" | "HSETNX" | "HGET"
            | "HMGET" | "HDEL" | "HEXISTS" | "HLEN" | "HSTRLEN" | "HGETALL" | "HKEYS" | "HVALS"
            | "HINCRBY" | "HINCRBYFLOAT",
            _,
        ) => Err(arity(name)),
        _ => return None,
    })
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
fn scan(args: &[Bytes]) -> Result<Op, CommandError> {
    let [cursor, opts @ ..] = args else {
        return Err(arity("scan"));
    };
    // Redis reads the cursor with strtoul: a negative number wraps.
    let text = std::str::from_utf8(cursor).unwrap_or("");
    let cursor = match text.parse::<u64>() {
        Ok(c) => c,
        Err(_) => text.parse::<i64>().map_err(|_| err("ERR invalid cursor"))? as u64,
    };
    let (mut pattern, mut count, mut kind) = (None, 10, None);
    let mut i = 0;
    while i < opts.len() {
        let arg = opts.get(i + 1).ok_or_else(syntax)?;
        match upper(&opts[i]).as_str() {
            "MATCH" => pattern = Some(arg.clone()),
            "TYPE" => kind = Some(arg.clone()),
            "COUNT" => match int(arg)? {
                n if n >= 1 => count = n as u64,
                _ => return Err(syntax()),
            },
            _ => return Err(syntax()),
        }
        i += 2;
    }
    Ok(Op::Scan {
        cursor,
        pattern,
        count,
        kind,
    })
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]` (one page: every
/// matching field, cursor 0).
fn hscan(args: &[Bytes]) -> Result<Op, CommandError> {
    let [k, cursor, opts @ ..] = args else {
        return Err(arity("hscan"));
    };
    let text = std::str::from_utf8(cursor).unwrap_or("");
    if text.parse::<u64>().is_err() && text.parse::<i64>().is_err() {
        return Err(err("ERR invalid cursor"));
    }
    let mut pattern = None;
    let mut i = 0;
    while i < opts.len() {
        let arg = opts.get(i + 1).ok_or_else(syntax)?;
        match upper(&opts[i]).as_str() {
            "MATCH" => pattern = Some(arg.clone()),
            "COUNT" if int(arg)? >= 1 => {}
            _ => return Err(syntax()),
        }
        i += 2;
    }
    Ok(Op::HScan {
        key: key(k)?,
        pattern,
    })
}

/// `HSET key field value [field value ...]`.
fn hset(args: &[Bytes]) -> Result<Op, CommandError> {
    let [k, rest @ ..] = args else {
        return Err(arity("hset"));
    };
    Ok(Op::HSet {
        key: key(k)?,
        pairs: pairs(rest, "hset")?,
    })
}

/// `FLUSHALL` / `FLUSHDB [ASYNC | SYNC]` (both mean: now, through the log).
fn flush(args: &[Bytes]) -> Result<Op, CommandError> {
    match args {
        [] => Ok(Op::FlushAll),
        [m] if matches!(upper(m).as_str(), "ASYNC" | "SYNC") => Ok(Op::FlushAll),
        _ => Err(syntax()),
    }
}

fn ttl(k: &Bytes, query: TtlQuery) -> Result<Op, CommandError> {
    key(k).map(|key| Op::Ttl { key, query })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Op, String> {
        let (name, rest) = args.split_first().unwrap();
        let mut rest: Vec<Bytes> = rest
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        parse(&name.to_ascii_uppercase(), &mut rest)
            .expect("a data command")
            .map_err(|e| e.0)
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Redis 7's replies to bad arguments, word for word.
    #[test]
    fn errors_are_redis_words() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["set", "k"],
                "ERR wrong number of arguments for 'set' command",
            ),
            (&["set", "k", "v", "nx", "xx"], "ERR syntax error"),
            (&["set", "k", "v", "ex"], "ERR syntax error"),
            (&["set", "k", "v", "ex", "1", "px", "1"], "ERR syntax error"),
            (&["set", "k", "v", "keepttl", "ex", "1"], "ERR syntax error"),
            (&["set", "k", "v", "bogus"], "ERR syntax error"),
            (
                &["set", "k", "v", "ex", "x"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["set", "k", "v", "ex", "0"],
                "ERR invalid expire time in 'set' command",
            ),
            (
                &["set", "k", "v", "px", "-5"],
                "ERR invalid expire time in 'set' command",
            ),
            (
                &["set", "k", "v", "ex", "9223372036854775807"],
                "ERR invalid expire time in 'set' command",
            ),
            (
                &["setex", "k", "0", "v"],
                "ERR invalid expire time in 'setex' command",
            ),
            (
                &["psetex", "k", "-1", "v"],
                "ERR invalid expire time in 'psetex' command",
            ),
            (&["getex", "k", "persist", "ex", "1"], "ERR syntax error"),
            (&["set", "k", "v", "ex", "1", "keepttl"], "ERR syntax error"),
            (
                &["getex", "k", "ex", "0"],
                "ERR invalid expire time in 'getex' command",
            ),
            (
                &["incrby", "k", "1.5"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["incrby", "k", " 1"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["decrby", "k", "-9223372036854775808"],
                "ERR decrement would overflow",
            ),
            (
                &["incrbyfloat", "k", "abc"],
                "ERR value is not a valid float",
            ),
            (
                &["incr"],
                "ERR wrong number of arguments for 'incr' command",
            ),
            (
                &["mset", "a", "1", "b"],
                "ERR wrong number of arguments for 'mset' command",
            ),
            (
                &["msetnx"],
                "ERR wrong number of arguments for 'msetnx' command",
            ),
            (&["setrange", "k", "-1", "v"], "ERR offset is out of range"),
            (
                &["getrange", "k", "a", "1"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["expire", "k", "1", "nx", "xx"],
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ),
            (
                &["expire", "k", "1", "gt", "lt"],
                "ERR GT and LT options at the same time are not compatible",
            ),
            (&["expire", "k", "1", "foo"], "ERR Unsupported option foo"),
            (
                &["expire", "k", "x"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["expire", "k", "9223372036854775807"],
                "ERR invalid expire time in 'expire' command",
            ),
            (&["ttl"], "ERR wrong number of arguments for 'ttl' command"),
            (&["scan", "x"], "ERR invalid cursor"),
            (&["scan", "0", "count", "0"], "ERR syntax error"),
            (&["scan", "0", "foo"], "ERR syntax error"),
            (&["scan", "0", "match"], "ERR syntax error"),
            (&["flushall", "foo"], "ERR syntax error"),
            (
                &["hset", "h", "f"],
                "ERR wrong number of arguments for 'hset' command",
            ),
            (
                &["hset", "h", "f", "v", "g"],
                "ERR wrong number of arguments for 'hset' command",
            ),
            (
                &["hincrby", "h", "f", "x"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["hincrbyfloat", "h", "f", "x"],
                "ERR value is not a valid float",
            ),
            (&["hscan", "h", "x"], "ERR invalid cursor"),
        ];
        for (args, want) in cases {
            assert_eq!(p(args).unwrap_err(), *want, "{args:?}");
        }
    }

    #[test]
    fn scan_arguments() {
        assert_eq!(
            p(&["scan", "-1", "MATCH", "a*", "count", "5", "type", "string"]),
            Ok(Op::Scan {
                cursor: u64::MAX,
                pattern: Some(b("a*")),
                count: 5,
                kind: Some(b("string")),
            })
        );
        assert_eq!(p(&["flushdb", "async"]), Ok(Op::FlushAll));
    }

    #[test]
    fn options_become_ops() {
        // A repeated option is accepted, the last one wins (as in Redis).
        assert_eq!(
            p(&["set", "k", "v", "ex", "1", "ex", "2", "nx", "nx"]),
            Ok(Op::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfMissing,
                ttl: SetTtl::Expire(Expiry::InMs(2000)),
                get: false,
            })
        );
        assert_eq!(
            p(&["SET", "k", "v", "nx", "get", "PX", "1500"]),
            Ok(Op::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfMissing,
                ttl: SetTtl::Expire(Expiry::InMs(1500)),
                get: true,
            })
        );
        assert_eq!(
            p(&["set", "k", "v", "exat", "10", "xx"]),
            Ok(Op::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfExists,
                ttl: SetTtl::Expire(Expiry::AtMs(10_000)),
                get: false,
            })
        );
        assert_eq!(
            p(&["set", "k", "v"]),
            Ok(Op::Put {
                key: b("k"),
                value: b("v")
            })
        );
        assert_eq!(
            p(&["decrby", "n", "5"]),
            Ok(Op::IncrBy {
                key: b("n"),
                by: -5
            })
        );
        assert_eq!(
            p(&["expire", "k", "-3", "xx", "lt"]),
            Ok(Op::Expire {
                key: b("k"),
                at: Expiry::InMs(-3000),
                cond: ExpireCond::IfSomeAndLess
            })
        );
        assert_eq!(
            p(&["pexpireat", "k", "5", "xx", "gt"]),
            Ok(Op::Expire {
                key: b("k"),
                at: Expiry::AtMs(5),
                cond: ExpireCond::IfGreater
            })
        );
        assert_eq!(
            p(&["setnx", "k", "v"]),
            Ok(Op::MSetNx {
                pairs: vec![(b("k"), b("v"))]
            })
        );
        assert_eq!(
            p(&["getex", "k", "persist"]),
            Ok(Op::GetEx {
                key: b("k"),
                ttl: GetExTtl::Persist
            })
        );
    }
}
