//! The key space as a whole: `TYPE`, `RENAME`/`RENAMENX`, `TOUCH`,
//! `DBSIZE`, `KEYS`, `SCAN`, `RANDOMKEY`, `FLUSHALL`/`FLUSHDB`.
//!
//! `SCAN`'s cursor is a position in the store's hash order (a fixed 64-bit
//! hash of each key, see `store`): a call returns the live keys whose hash
//! lies in `[cursor, next)` and answers `next` (0 at the end). The order
//! depends on the keys only, so a cursor means the same on every replica
//! and across leader changes, and a key present for the whole scan is
//! returned exactly once (its hash lies in exactly one of the contiguous
//! ranges). `COUNT` bounds the keys *visited* per call (matching or not),
//! as in Redis, except that keys sharing one hash are never split.

use bytes::Bytes;

use super::Ctx;
use crate::command::{CmdError, Reply};
use crate::glob;
use crate::store::{ItemRef, Store, ValueRef};

/// Redis's name of a value's type.
pub(crate) fn type_name(item: &ItemRef<'_>) -> &'static str {
    match item.value {
        ValueRef::Str(_) => "string",
        ValueRef::Hash(_) => "hash",
    }
}

pub(super) fn type_of(store: &Store, key: &[u8], now_ms: u64) -> Reply {
    let name = store.live(key, now_ms).map_or("none", |i| type_name(&i));
    Reply::Status(name.to_string())
}

/// `RENAME` (`nx`: `RENAMENX`): moves the value with its TTL, stamped as a
/// new write of `to`.
pub(super) fn rename(store: &mut Store, from: &Bytes, to: &Bytes, nx: bool, ctx: Ctx) -> Reply {
    if store.live(from, ctx.now_ms).is_none() {
        return Reply::Error(CmdError::NoSuchKey);
    }
    if nx && store.live(to, ctx.now_ms).is_some() {
        return Reply::Int(0);
    }
    if from != to {
        let mut item = store.remove(from, ctx.now_ms).expect("live");
        item.version = ctx.index;
        store.put(to.clone(), item);
    }
    if nx {
        Reply::Int(i64::from(from != to))
    } else {
        Reply::Done
    }
}

pub(super) fn dbsize(store: &Store, now_ms: u64) -> Reply {
    Reply::Int(store.live_len(now_ms) as i64)
}

pub(super) fn keys(store: &Store, pattern: &[u8], now_ms: u64) -> Reply {
    let mut keys: Vec<Bytes> = store
        .iter()
        .filter(|(k, item)| item.is_live(now_ms) && glob::matches(pattern, k))
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect();
    // In key order, as before the store kept hash order (Redis promises none).
    keys.sort_unstable();
    Reply::Array(keys)
}

/// What a `SCAN` call asks for.
pub(super) struct ScanArgs<'a> {
    pub cursor: u64,
    pub pattern: Option<&'a [u8]>,
    pub count: u64,
    pub kind: Option<&'a [u8]>,
}

pub(super) fn scan(store: &Store, a: ScanArgs<'_>, now_ms: u64) -> Reply {
    let (visited, next) = store.hash_range(a.cursor, a.count.max(1) as usize);
    let keys = visited
        .into_iter()
        .filter(|k| match store.live(k, now_ms) {
            None => false,
            Some(item) => {
                a.pattern.is_none_or(|p| glob::matches(p, k))
                    && a.kind
                        .is_none_or(|t| t.eq_ignore_ascii_case(type_name(&item).as_bytes()))
            }
        })
        .collect();
    Reply::Scan {
        cursor: next.unwrap_or(0),
        keys,
    }
}

/// A live key chosen by the state (not by chance: every replica answers the
/// same), spread over the key space by hashing the log time.
pub(super) fn random_key(store: &Store, now_ms: u64) -> Reply {
    let start = crate::store::key_hash(&now_ms.to_le_bytes());
    Reply::Value(store.live_key_from_hash(start, now_ms))
}

pub(super) fn flush(store: &mut Store) -> Reply {
    *store = Store::new();
    Reply::Done
}
