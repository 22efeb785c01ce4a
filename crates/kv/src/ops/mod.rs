//! The meaning of every [`Op`]: one implementation, run by the single-group
//! state machine on its [`Store`] and by a sharded group on the store of the
//! key's shard.
//!
//! Owns: [`apply`] (dispatch) and [`query`] (the read-only subset, for
//! ReadIndex reads). The families live in their own files: `strings`
//! (strings and counters), `keys` (existence, deletion, expiry) and
//! `keyspace` (the key space as a whole: `TYPE`, `RENAME`, `SCAN`, ...) and
//! `transaction` (`WATCH` versions and `EXEC`) and `hashes`.
//!
//! Rules every op keeps:
//! - *determinism*: the outcome depends only on the store, the op and the
//!   [`Ctx`] (log time and log index of the entry), never on a clock;
//! - *expiry*: a key dead at `ctx.now_ms` is treated as missing by every op
//!   (see `store`), and a relative expiry is resolved against `ctx.now_ms`;
//! - *versions*: every op that changes a key stamps it with `ctx.index`;
//! - a Redis error reply ([`Reply::Error`]) changes nothing.

mod hashes;
mod keys;
mod keyspace;
mod strings;
mod transaction;

use crate::command::{Op, Reply, Response};
use crate::store::Store;

/// Where in the log an op is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// Log time: the largest leader timestamp applied so far (Unix ms).
    pub now_ms: u64,
    /// Log index of the entry (the version stamped on written keys).
    pub index: u64,
}

/// Applies `op` to `store` at `ctx`.
pub fn apply(store: &mut Store, op: &Op, ctx: Ctx) -> Response {
    if op.is_read_only() {
        return Ok(query(store, op, ctx.now_ms));
    }
    match op {
        Op::Put { key, value } => Ok(strings::put(store, key, value, ctx)),
        Op::Append { key, value } => strings::append(store, key, value, ctx),
        Op::Set {
            key,
            value,
            cond,
            ttl,
            get,
        } => Ok(strings::set(store, key, value, (*cond, *ttl, *get), ctx)),
        Op::GetDel { key } => Ok(strings::getdel(store, key, ctx)),
        Op::GetEx { key, ttl } => Ok(strings::getex(store, key, *ttl, ctx)),
        Op::MSet { pairs } => Ok(strings::mset(store, pairs, ctx)),
        Op::MSetNx { pairs } => Ok(strings::msetnx(store, pairs, ctx)),
        Op::IncrBy { key, by } => Ok(strings::incr_by(store, key, *by, ctx)),
        Op::IncrByFloat { key, by } => Ok(strings::incr_by_float(store, key, by, ctx)),
        Op::SetRange { key, offset, value } => {
            Ok(strings::setrange(store, key, *offset, value, ctx))
        }
        Op::Delete { key } => Ok(Reply::Deleted(store.remove(key, ctx.now_ms).is_some())),
        Op::Del { keys } => Ok(keys::del(store, keys, ctx)),
        Op::Expire { key, at, cond } => Ok(keys::expire(store, key, *at, *cond, ctx)),
        Op::Persist { key } => Ok(keys::persist(store, key, ctx)),
        Op::Rename { from, to, nx } => Ok(keyspace::rename(store, from, to, *nx, ctx)),
        Op::FlushAll => Ok(keyspace::flush(store)),
        Op::Exec { ops, watch } => Ok(transaction::exec(store, ops, watch, ctx)),
        Op::HSet { key, pairs } => Ok(hashes::hset(store, key, pairs, ctx)),
        Op::HSetNx { key, field, value } => Ok(hashes::hsetnx(store, key, field, value, ctx)),
        Op::HDel { key, fields } => Ok(hashes::hdel(store, key, fields, ctx)),
        Op::HIncrBy { key, field, by } => Ok(hashes::hincrby(store, key, field, *by, ctx)),
        Op::HIncrByFloat { key, field, by } => Ok(hashes::hincrbyfloat(store, key, field, by, ctx)),
        Op::Type { .. }
        | Op::Touch { .. }
        | Op::DbSize
        | Op::Keys { .. }
        | Op::Scan { .. }
        | Op::RandomKey
        | Op::Watch { .. }
        | Op::HGet { .. }
        | Op::HMGet { .. }
        | Op::HExists { .. }
        | Op::HLen { .. }
        | Op::HStrLen { .. }
        | Op::HGetAll { .. }
        | Op::HKeys { .. }
        | Op::HVals { .. }
        | Op::HScan { .. }
        | Op::Get { .. }
        | Op::MGet { .. }
        | Op::StrLen { .. }
        | Op::GetRange { .. }
        | Op::Exists { .. }
        | Op::Ttl { .. } => unreachable!("read-only ops are answered by query"),
    }
}

/// Answers a read-only op (see [`Op::is_read_only`]) from `store` at log
/// time `now_ms`, changing nothing. A write op is a caller bug; it answers
/// an error rather than panicking.
pub fn query(store: &Store, op: &Op, now_ms: u64) -> Reply {
    match op {
        Op::Get { key } => strings::get(store, key, now_ms),
        Op::MGet { keys } => strings::mget(store, keys, now_ms),
        Op::StrLen { key } => strings::strlen(store, key, now_ms),
        Op::GetRange { key, start, end } => strings::getrange(store, key, *start, *end, now_ms),
        Op::Exists { keys } => keys::exists(store, keys, now_ms),
        Op::Ttl { key, query } => keys::ttl(store, key, *query, now_ms),
        Op::Type { key } => keyspace::type_of(store, key, now_ms),
        Op::Touch { keys } => keys::exists(store, keys, now_ms),
        Op::DbSize => keyspace::dbsize(store, now_ms),
        Op::Keys { pattern } => keyspace::keys(store, pattern, now_ms),
        Op::Scan {
            cursor,
            pattern,
            count,
            kind,
        } => {
            let args = keyspace::ScanArgs {
                cursor: *cursor,
                pattern: pattern.as_deref(),
                count: *count,
                kind: kind.as_deref(),
            };
            keyspace::scan(store, args, now_ms)
        }
        Op::RandomKey => keyspace::random_key(store, now_ms),
        Op::Watch { keys } => transaction::versions(store, keys, now_ms),
        Op::HGet { key, field } => hashes::hget(store, key, field, now_ms),
        Op::HMGet { key, fields } => hashes::hmget(store, key, fields, now_ms),
        Op::HExists { key, field } => hashes::hexists(store, key, field, now_ms),
        Op::HLen { key } => hashes::hlen(store, key, now_ms),
        Op::HStrLen { key, field } => hashes::hstrlen(store, key, field, now_ms),
        Op::HGetAll { key } => hashes::hgetall(store, key, now_ms),
        Op::HKeys { key } => hashes::hkeys(store, key, now_ms),
        Op::HVals { key } => hashes::hvals(store, key, now_ms),
        Op::HScan { key, pattern } => hashes::hscan(store, key, pattern.as_deref(), now_ms),
        _ => Reply::Error(crate::CmdError::NotReadOnly),
    }
}
