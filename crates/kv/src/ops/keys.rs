//! Keys of any type: `DEL`/`UNLINK`, `EXISTS`, and expiry — `EXPIRE`
//! family (with `NX | XX | GT | LT`), `PERSIST`, `TTL` family — following
//! Redis 7's `expireGenericCommand` and `ttlGenericCommand`.

use bytes::Bytes;

use super::Ctx;
use crate::command::{ExpireCond, Expiry, Reply, TtlQuery};
use crate::store::Store;

/// The absolute log time (ms) `e` names when applied at `now_ms`; `None`
/// when that instant is not after `now_ms` (the key is dead at once).
pub(crate) fn resolve(e: Expiry, now_ms: u64) -> Option<u64> {
    let at = match e {
        Expiry::InMs(ms) => (now_ms as i64).saturating_add(ms),
        Expiry::AtMs(ms) => ms,
    };
    (at > now_ms as i64).then_some(at as u64)
}

pub(super) fn del(store: &mut Store, keys: &[Bytes], ctx: Ctx) -> Reply {
    let removed = keys
        .iter()
        .filter(|k| store.remove(k, ctx.now_ms).is_some())
        .count();
    Reply::Int(removed as i64)
}

pub(super) fn exists(store: &Store, keys: &[Bytes], now_ms: u64) -> Reply {
    let n = keys
        .iter()
        .filter(|k| store.live(k, now_ms).is_some())
        .count();
    Reply::Int(n as i64)
}

/// `EXPIRE key t [NX | XX | GT | LT]`: 1 if the expiry was set (or the key
/// deleted because `t` is not in the future), 0 if the key is missing or the
/// condition failed. No expiry counts as infinite for `GT` and `LT`.
pub(super) fn expire(
    store: &mut Store,
    key: &Bytes,
    at: Expiry,
    cond: ExpireCond,
    ctx: Ctx,
) -> Reply {
    let Some(item) = store.live(key, ctx.now_ms) else {
        return Reply::Int(0);
    };
    let current = item.expire_at_ms;
    let new = resolve(at, ctx.now_ms);
    // A time in the past compares as earlier than any live expiry.
    let new_cmp = new.unwrap_or(0);
    let ok = match cond {
        ExpireCond::Always => true,
        ExpireCond::IfNone => current.is_none(),
        ExpireCond::IfSome => current.is_some(),
        ExpireCond::IfGreater => current.is_some_and(|c| new_cmp > c),
        ExpireCond::IfLess => current.is_none_or(|c| new_cmp < c),
        ExpireCond::IfSomeAndLess => current.is_some_and(|c| new_cmp < c),
    };
    if !ok {
        return Reply::Int(0);
    }
    match new {
        Some(t) => drop(store.set_expiry(key, Some(t), ctx.index)),
        None => drop(store.remove(key, ctx.now_ms)),
    }
    Reply::Int(1)
}

pub(super) fn persist(store: &mut Store, key: &Bytes, ctx: Ctx) -> Reply {
    match store.live(key, ctx.now_ms).and_then(|i| i.expire_at_ms) {
        Some(_) => Reply::Int(i64::from(store.set_expiry(key, None, ctx.index))),
        None => Reply::Int(0),
    }
}

/// -2: no such key; -1: no expiry; else the remaining or absolute time.
pub(super) fn ttl(store: &Store, key: &[u8], query: TtlQuery, now_ms: u64) -> Reply {
    let Some(item) = store.live(key, now_ms) else {
        return Reply::Int(-2);
    };
    let Some(at) = item.expire_at_ms else {
        return Reply::Int(-1);
    };
    let remaining = at.saturating_sub(now_ms) as i64;
    Reply::Int(match query {
        TtlQuery::Millis => remaining,
        TtlQuery::Seconds => (remaining + 500) / 1000,
        TtlQuery::AtMillis => at as i64,
        TtlQuery::AtSeconds => (at as i64 + 500) / 1000,
    })
}
