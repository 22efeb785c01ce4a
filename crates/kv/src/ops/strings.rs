//! Strings and counters: `GET`, `SET` and its variants, `GETDEL`, `GETEX`,
//! `MGET`, `MSET`, `MSETNX`, `INCRBY` (and `INCR`/`DECR`/`DECRBY`),
//! `INCRBYFLOAT`, `STRLEN`, `GETRANGE`, `SETRANGE`, `APPEND`, with Redis 7's
//! replies. A TTL survives `APPEND`, `SETRANGE`, `INCR*` (they modify the
//! value), and is dropped by `SET` without `KEEPTTL` and by `MSET`.

use bytes::{Bytes, BytesMut};

use super::keys::resolve;
use super::Ctx;
use crate::command::{CmdError, GetExTtl, KvError, Reply, Response, SetCond, SetTtl};
use crate::config::MAX_VALUE_BYTES;
use crate::numbers::{format_f64, parse_f64, parse_i64};
use crate::store::{Item, ItemRef, Store, Value, ValueRef};

/// The live string at `key`: `Ok(None)` when missing or dead, `WrongType`
/// when it holds another type.
fn string_at<'a>(
    store: &'a Store,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<ItemRef<'a>>, CmdError> {
    match store.live(key, now_ms) {
        None => Ok(None),
        Some(
            item @ ItemRef {
                value: ValueRef::Str(_),
                ..
            },
        ) => Ok(Some(item)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The string of an item `string_at` returned.
fn str_of<'a>(item: &ItemRef<'a>) -> &'a [u8] {
    match item.value {
        ValueRef::Str(s) => s,
        ValueRef::Hash(_) => unreachable!("string_at returns strings only"),
    }
}

/// Writes `value` at `key` with expiry `expire_at_ms`, stamped `ctx.index`.
fn write(store: &mut Store, key: &Bytes, value: Bytes, expire_at_ms: Option<u64>, ctx: Ctx) {
    let item = Item {
        value: Value::Str(value),
        expire_at_ms,
        version: ctx.index,
    };
    store.put(key.clone(), item);
}

pub(super) fn get(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    match string_at(store, key, now_ms) {
        Ok(item) => Reply::Value(item.map(|i| Bytes::copy_from_slice(str_of(&i)))),
        Err(e) => Reply::Error(e),
    }
}

pub(super) fn put(store: &mut Store, key: &Bytes, value: &Bytes, ctx: Ctx) -> Reply {
    write(store, key, value.clone(), None, ctx);
    Reply::Done
}

pub(super) fn append(store: &mut Store, key: &Bytes, suffix: &Bytes, ctx: Ctx) -> Response {
    let (old, expire_at_ms) = match string_at(store, key, ctx.now_ms) {
        Ok(Some(item)) => (str_of(&item), item.expire_at_ms),
        Ok(None) => (&[][..], None),
        Err(e) => return Ok(Reply::Error(e)),
    };
    let new_len = old.len() as u64 + suffix.len() as u64;
    if new_len > MAX_VALUE_BYTES as u64 {
        return Err(KvError::ValueTooLarge {
            len: new_len,
            max: MAX_VALUE_BYTES as u64,
        });
    }
    let mut joined = BytesMut::with_capacity(new_len as usize);
    joined.extend_from_slice(old);
    joined.extend_from_slice(suffix);
    write(store, key, joined.freeze(), expire_at_ms, ctx);
    Ok(Reply::Length(new_len))
}

/// `SET key value [NX | XX] [GET] [EX | PX | EXAT | PXAT | KEEPTTL]`.
pub(super) fn set(
    store: &mut Store,
    key: &Bytes,
    value: &Bytes,
    (cond, ttl, get): (SetCond, SetTtl, bool),
    ctx: Ctx,
) -> Reply {
    // With GET the old value must be a string (WRONGTYPE otherwise);
    // without, SET overwrites a key of any type.
    let old_value = match (get, string_at(store, key, ctx.now_ms)) {
        (true, Err(e)) => return Reply::Error(e),
        (_, Ok(item)) => item.map(|i| Bytes::copy_from_slice(str_of(&i))),
        (false, Err(_)) => None,
    };
    let old = store.live(key, ctx.now_ms);
    let exists = old.is_some();
    let old_expiry = old.and_then(|i| i.expire_at_ms);
    let answer = |done: bool| match (get, done) {
        (true, _) => Reply::Value(old_value.clone()),
        (false, true) => Reply::Done,
        (false, false) => Reply::Value(None),
    };
    let go = match cond {
        SetCond::Always => true,
        SetCond::IfMissing => !exists,
        SetCond::IfExists => exists,
    };
    if !go {
        return answer(false);
    }
    let expire_at_ms = match ttl {
        SetTtl::Clear => None,
        SetTtl::Keep => old_expiry,
        SetTtl::Expire(e) => match resolve(e, ctx.now_ms) {
            Some(at) => Some(at),
            None => {
                // Already in the past: set and at once expired, i.e. gone.
                store.remove(key, ctx.now_ms);
                return answer(true);
            }
        },
    };
    write(store, key, value.clone(), expire_at_ms, ctx);
    answer(true)
}

pub(super) fn getdel(store: &mut Store, key: &Bytes, ctx: Ctx) -> Reply {
    match string_at(store, key, ctx.now_ms) {
        Ok(Some(_)) => {
            let item = store.remove(key, ctx.now_ms).expect("live");
            match item.value {
                Value::Str(s) => Reply::Value(Some(s)),
                Value::Hash(_) => unreachable!("string_at saw a string"),
            }
        }
        Ok(None) => Reply::Value(None),
        Err(e) => Reply::Error(e),
    }
}

pub(super) fn getex(store: &mut Store, key: &Bytes, ttl: GetExTtl, ctx: Ctx) -> Reply {
    let value = match string_at(store, key, ctx.now_ms) {
        Ok(Some(item)) => Bytes::copy_from_slice(str_of(&item)),
        Ok(None) => return Reply::Value(None),
        Err(e) => return Reply::Error(e),
    };
    match ttl {
        GetExTtl::Keep => {}
        GetExTtl::Persist => {
            if store
                .live(key, ctx.now_ms)
                .and_then(|i| i.expire_at_ms)
                .is_some()
            {
                store.set_expiry(key, None, ctx.index);
            }
        }
        GetExTtl::Expire(e) => match resolve(e, ctx.now_ms) {
            Some(at) => drop(store.set_expiry(key, Some(at), ctx.index)),
            None => drop(store.remove(key, ctx.now_ms)),
        },
    }
    Reply::Value(Some(value))
}

pub(super) fn mget(store: &Store, keys: &[Bytes], now_ms: u64) -> Reply {
    let values = keys
        .iter()
        .map(|k| store.live_str(k, now_ms).map(Bytes::copy_from_slice))
        .collect();
    Reply::Values(values)
}

pub(super) fn mset(store: &mut Store, pairs: &[(Bytes, Bytes)], ctx: Ctx) -> Reply {
    for (k, v) in pairs {
        write(store, k, v.clone(), None, ctx);
    }
    Reply::Done
}

pub(super) fn msetnx(store: &mut Store, pairs: &[(Bytes, Bytes)], ctx: Ctx) -> Reply {
    if pairs
        .iter()
        .any(|(k, _)| store.live(k, ctx.now_ms).is_some())
    {
        return Reply::Int(0);
    }
    mset(store, pairs, ctx);
    Reply::Int(1)
}

/// The counter at `key` and its expiry (missing = 0, no expiry).
#[allow(clippy::type_complexity)]
fn counter<'a>(
    store: &'a Store,
    key: &[u8],
    now_ms: u64,
) -> Result<(Option<&'a [u8]>, Option<u64>), CmdError> {
    Ok(match string_at(store, key, now_ms)? {
        Some(item) => (Some(str_of(&item)), item.expire_at_ms),
        None => (None, None),
    })
}

pub(super) fn incr_by(store: &mut Store, key: &Bytes, by: i64, ctx: Ctx) -> Reply {
    let (old, expire_at_ms) = match counter(store, key, ctx.now_ms) {
        Ok(c) => c,
        Err(e) => return Reply::Error(e),
    };
    let old: i64 = match old.map(parse_i64) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return Reply::Error(CmdError::NotInteger),
    };
    let Some(new) = old.checked_add(by) else {
        return Reply::Error(CmdError::Overflow);
    };
    write(store, key, Bytes::from(new.to_string()), expire_at_ms, ctx);
    Reply::Int(new)
}

pub(super) fn incr_by_float(store: &mut Store, key: &Bytes, by: &[u8], ctx: Ctx) -> Reply {
    let (old, expire_at_ms) = match counter(store, key, ctx.now_ms) {
        Ok(c) => c,
        Err(e) => return Reply::Error(e),
    };
    let old = match old.map(parse_f64) {
        None => 0.0,
        Some(Some(x)) => x,
        Some(None) => return Reply::Error(CmdError::NotFloat),
    };
    let Some(by) = parse_f64(by) else {
        return Reply::Error(CmdError::NotFloat);
    };
    let new = old + by;
    if !new.is_finite() {
        return Reply::Error(CmdError::NanOrInfinity);
    }
    let text = Bytes::from(format_f64(new));
    write(store, key, text.clone(), expire_at_ms, ctx);
    Reply::Value(Some(text))
}

pub(super) fn strlen(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    match string_at(store, key, now_ms) {
        Ok(item) => Reply::Int(item.map_or(0, |i| str_of(&i).len() as i64)),
        Err(e) => Reply::Error(e),
    }
}

/// `GETRANGE`, with Redis's clamping (`getrangeCommand`).
pub(super) fn getrange(store: &Store, key: &[u8], start: i64, end: i64, now_ms: u64) -> Reply {
    let s = match string_at(store, key, now_ms) {
        Ok(Some(item)) => str_of(&item),
        Ok(None) => return Reply::Value(Some(Bytes::new())),
        Err(e) => return Reply::Error(e),
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::Value(Some(Bytes::new()));
    }
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    if len == 0 || start > end {
        return Reply::Value(Some(Bytes::new()));
    }
    Reply::Value(Some(Bytes::copy_from_slice(
        &s[start as usize..=end as usize],
    )))
}

/// `SETRANGE` (`setrangeCommand`): an empty value changes nothing and
/// creates no key; a gap is zero-filled.
pub(super) fn setrange(
    store: &mut Store,
    key: &Bytes,
    offset: u64,
    value: &Bytes,
    ctx: Ctx,
) -> Reply {
    let (old, expire_at_ms) = match counter(store, key, ctx.now_ms) {
        Ok(c) => c,
        Err(e) => return Reply::Error(e),
    };
    let old_len = old.map_or(0, <[u8]>::len) as u64;
    if value.is_empty() {
        return Reply::Int(old_len as i64);
    }
    let end = offset.saturating_add(value.len() as u64);
    if end > MAX_VALUE_BYTES as u64 {
        return Reply::Error(CmdError::StringTooLong);
    }
    let new_len = end.max(old_len) as usize;
    let mut buf = BytesMut::zeroed(new_len);
    if let Some(old) = old {
        buf[..old.len()].copy_from_slice(old);
    }
    buf[offset as usize..end as usize].copy_from_slice(value);
    write(store, key, buf.freeze(), expire_at_ms, ctx);
    Reply::Int(new_len as i64)
}
