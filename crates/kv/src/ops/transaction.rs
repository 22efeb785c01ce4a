//! Transactions: `WATCH` reads key versions; `EXEC` applies a `MULTI`
//! block's ops in one log entry, so no other command can interleave (every
//! replica applies the entry as a whole), and only if no watched key was
//! written since its `WATCH` (optimistic concurrency, exact by versions: a
//! key's version is the log index of its last write, 0 when missing).
//!
//! As in Redis, an op that fails inside `EXEC` (say `INCR` of a non-number)
//! answers its error in its slot and the others still run: there is no
//! rollback.

use bytes::Bytes;

use super::Ctx;
use crate::command::{CmdError, KvError, Op, Reply};
use crate::store::Store;

pub(super) fn versions(store: &Store, keys: &[Bytes], now_ms: u64) -> Reply {
    Reply::Versions(keys.iter().map(|k| store.version_of(k, now_ms)).collect())
}

pub(super) fn exec(store: &mut Store, ops: &[Op], watch: &[(Bytes, u64)], ctx: Ctx) -> Reply {
    if watch
        .iter()
        .any(|(k, v)| store.version_of(k, ctx.now_ms) != *v)
    {
        return Reply::Multi(None);
    }
    let replies = ops
        .iter()
        .map(|op| match super::apply(store, op, ctx) {
            Ok(reply) => reply,
            Err(KvError::ValueTooLarge { .. }) => Reply::Error(CmdError::StringTooLong),
            Err(other) => unreachable!("ops answer no {other:?}"),
        })
        .collect();
    Reply::Multi(Some(replies))
}
