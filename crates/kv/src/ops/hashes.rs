//! Hashes: `HSET`, `HSETNX`, `HGET`, `HMGET`, `HDEL`, `HEXISTS`, `HLEN`,
//! `HGETALL`, `HKEYS`, `HVALS`, `HINCRBY`, `HINCRBYFLOAT`, `HSTRLEN`,
//! `HSCAN`, with Redis 7's replies. A hash left with no field is deleted,
//! as in Redis; a TTL belongs to the key and survives field writes.
//!
//! `HSCAN` answers every matching field in one call (cursor 0), which
//! Redis also does for small hashes and which its `SCAN` guarantees allow.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Ctx;
use crate::command::{CmdError, Reply};
use crate::glob;
use crate::numbers::{format_f64, parse_f64, parse_i64};
use crate::store::{Item, ItemRef, Store, Value, ValueRef};

type Fields = BTreeMap<Bytes, Bytes>;

/// The live hash at `key`: `Ok(None)` when missing or dead, `WrongType`
/// when it holds another type.
fn hash_at<'a>(store: &'a Store, key: &[u8], now_ms: u64) -> Result<Option<&'a Fields>, CmdError> {
    match store.live(key, now_ms).map(|i| i.value) {
        None => Ok(None),
        Some(ValueRef::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Applies `change` to the hash at `key` (created empty when missing),
/// keeping its TTL and stamping `ctx.index`; an emptied hash is deleted.
fn update<T>(
    store: &mut Store,
    key: &Bytes,
    ctx: Ctx,
    change: impl FnOnce(&mut Fields) -> Result<T, CmdError>,
) -> Result<T, CmdError> {
    let (mut fields, expire_at_ms) = match store.live(key, ctx.now_ms) {
        None => (Fields::new(), None),
        Some(ItemRef {
            value: ValueRef::Hash(h),
            expire_at_ms,
            ..
        }) => (h.clone(), expire_at_ms),
        Some(_) => return Err(CmdError::WrongType),
    };
    let out = change(&mut fields)?;
    if fields.is_empty() {
        store.remove(key, ctx.now_ms);
    } else {
        let item = Item {
            value: Value::Hash(fields),
            expire_at_ms,
            version: ctx.index,
        };
        store.put(key.clone(), item);
    }
    Ok(out)
}

fn reply(r: Result<Reply, CmdError>) -> Reply {
    r.unwrap_or_else(Reply::Error)
}

pub(super) fn hset(store: &mut Store, key: &Bytes, pairs: &[(Bytes, Bytes)], ctx: Ctx) -> Reply {
    reply(update(store, key, ctx, |h| {
        let added = pairs
            .iter()
            .filter(|(f, v)| h.insert(f.clone(), v.clone()).is_none())
            .count();
        Ok(Reply::Int(added as i64))
    }))
}

pub(super) fn hsetnx(
    store: &mut Store,
    key: &Bytes,
    field: &Bytes,
    value: &Bytes,
    ctx: Ctx,
) -> Reply {
    match hash_at(store, key, ctx.now_ms) {
        Err(e) => return Reply::Error(e),
        Ok(Some(h)) if h.contains_key(field) => return Reply::Int(0),
        Ok(_) => {}
    }
    hset(store, key, &[(field.clone(), value.clone())], ctx);
    Reply::Int(1)
}

pub(super) fn hdel(store: &mut Store, key: &Bytes, fields: &[Bytes], ctx: Ctx) -> Reply {
    match hash_at(store, key, ctx.now_ms) {
        Err(e) => return Reply::Error(e),
        Ok(None) => return Reply::Int(0),
        Ok(Some(_)) => {}
    }
    reply(update(store, key, ctx, |h| {
        let removed = fields.iter().filter(|f| h.remove(*f).is_some()).count();
        Ok(Reply::Int(removed as i64))
    }))
}

pub(super) fn hincrby(store: &mut Store, key: &Bytes, field: &Bytes, by: i64, ctx: Ctx) -> Reply {
    reply(update(store, key, ctx, |h| {
        let old = match h.get(field) {
            None => 0,
            Some(v) => parse_i64(v).ok_or(CmdError::HashNotInteger)?,
        };
        let new = old.checked_add(by).ok_or(CmdError::Overflow)?;
        h.insert(field.clone(), Bytes::from(new.to_string()));
        Ok(Reply::Int(new))
    }))
}

pub(super) fn hincrbyfloat(
    store: &mut Store,
    key: &Bytes,
    field: &Bytes,
    by: &[u8],
    ctx: Ctx,
) -> Reply {
    reply(update(store, key, ctx, |h| {
        let old = match h.get(field) {
            None => 0.0,
            Some(v) => parse_f64(v).ok_or(CmdError::HashNotFloat)?,
        };
        let by = parse_f64(by).ok_or(CmdError::NotFloat)?;
        let new = old + by;
        if !new.is_finite() {
            return Err(CmdError::NanOrInfinity);
        }
        let text = Bytes::from(format_f64(new));
        h.insert(field.clone(), text.clone());
        Ok(Reply::Value(Some(text)))
    }))
}

/// A read of the hash at `key` (an empty one when missing).
fn read(store: &Store, key: &[u8], now_ms: u64, f: impl FnOnce(&Fields) -> Reply) -> Reply {
    match hash_at(store, key, now_ms) {
        Ok(Some(h)) => f(h),
        Ok(None) => f(&Fields::new()),
        Err(e) => Reply::Error(e),
    }
}

pub(super) fn hget(store: &Store, key: &[u8], field: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| Reply::Value(h.get(field).cloned()))
}

pub(super) fn hmget(store: &Store, key: &[u8], fields: &[Bytes], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        Reply::Values(fields.iter().map(|f| h.get(f).cloned()).collect())
    })
}

pub(super) fn hexists(store: &Store, key: &[u8], field: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        Reply::Int(i64::from(h.contains_key(field)))
    })
}

pub(super) fn hlen(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| Reply::Int(h.len() as i64))
}

pub(super) fn hstrlen(store: &Store, key: &[u8], field: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        Reply::Int(h.get(field).map_or(0, |v| v.len() as i64))
    })
}

pub(super) fn hgetall(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        Reply::Map(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect())
    })
}

pub(super) fn hkeys(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        Reply::Array(h.keys().cloned().collect())
    })
}

pub(super) fn hvals(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        Reply::Array(h.values().cloned().collect())
    })
}

pub(super) fn hscan(store: &Store, key: &[u8], pattern: Option<&[u8]>, now_ms: u64) -> Reply {
    read(store, key, now_ms, |h| {
        let keys = h
            .iter()
            .filter(|(f, _)| pattern.is_none_or(|p| glob::matches(p, f)))
            .flat_map(|(f, v)| [f.clone(), v.clone()])
            .collect();
        Reply::Scan { cursor: 0, keys }
    })
}
