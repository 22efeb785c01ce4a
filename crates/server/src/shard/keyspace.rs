//! The keyless commands of a sharded process (`DBSIZE`, `KEYS`, `SCAN`,
//! `RANDOMKEY`, `FLUSHDB`/`FLUSHALL`), as Redis Cluster runs them: each
//! process answers for the slots it is the *primary* of — the groups whose
//! presumed leader it is, which is exactly what `CLUSTER SLOTS | SHARDS |
//! NODES` list it as master for (`cluster_view::Layout::members`, first
//! member). A cluster client sends them to every primary and merges
//! (redis-py's `dbsize`/`keys`/`scan_iter`, ioredis's per-master scan), so
//! every key is counted, listed and scanned once.
//!
//! Each group's part is one ReadIndex read of [`shardkv::Query::Shards`]
//! (linearizable, no log entry), which the group answers only if it serves
//! every shard named (else `WrongGroup`: the plan is made again from a newer
//! configuration). A process that is primary of several groups reads them
//! one after the other: the sum or list is not one atomic snapshot across
//! groups, as a Redis node's is (the README says so).
//!
//! `SCAN`'s cursor names a shard and a position in that shard's hash order
//! (kv's cursor), so it stays meaningful across calls and leader changes:
//! `shard << 50 | position >> 14`. The position keeps its 50 high bits; a
//! call resumes at the rounded-down position, so a key may be returned
//! twice (Redis allows that) but a key present for the whole scan is never
//! skipped. A shard this process no longer leads when the cursor reaches
//! it is skipped here (its new primary lists it): a scan that races a
//! leader change can miss keys, as one racing a Redis failover can.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use shardmeta::{GroupId, ShardId, NO_GROUP};
use tokio::time::Instant;

use super::router::Router;
use crate::cluster_view::Layout;
use crate::requests::RequestError;

/// Bits of a `SCAN` cursor that hold the position within a shard.
const POSITION_BITS: u32 = 50;
/// Low bits of a shard's hash position dropped from the cursor.
const DROPPED_BITS: u32 = 64 - POSITION_BITS;
/// `COUNT` grows up to this while a call makes no progress in the cursor.
const MAX_SCAN_COUNT: u64 = 1 << 20;

/// The shards of each group this process is the advertised primary of,
/// ascending, from the routing configuration.
pub fn primary_shards(router: &Router) -> BTreeMap<GroupId, Vec<ShardId>> {
    let (config, _) = router.driver.routing();
    let leaders = router.leaders(&config);
    let layout = Layout {
        config: &config,
        keyspace: router.keyspace,
        me: router.id,
        leaders: &leaders,
    };
    config
        .groups
        .keys()
        .filter(|&&gid| gid != NO_GROUP)
        .filter(|&&gid| layout.members(gid).first().map(|m| m.id) == Some(router.id))
        .map(|&gid| (gid, config.shards_of(gid)))
        .filter(|(_, shards)| !shards.is_empty())
        .collect()
}

/// A SCAN cursor from a shard and a position in its hash order.
pub fn encode_cursor(shard: ShardId, position: u64) -> u64 {
    (u64::from(shard) << POSITION_BITS) | (position >> DROPPED_BITS)
}

/// The shard and the (rounded-down) position a SCAN cursor names.
pub fn decode_cursor(cursor: u64) -> (ShardId, u64) {
    let shard = (cursor >> POSITION_BITS) as ShardId;
    let position = (cursor & ((1 << POSITION_BITS) - 1)) << DROPPED_BITS;
    (shard, position)
}

/// `DBSIZE`, `KEYS`, `SCAN`, `RANDOMKEY` over this process's primary slots.
pub async fn read(router: &Router, op: kv::Op) -> Result<kv::Reply, RequestError> {
    let deadline = Instant::now() + router.timeouts.request;
    loop {
        if let Some(reply) = attempt(router, &op, deadline).await? {
            return Ok(reply);
        }
        // A group no longer serves a shard of the plan: plan again once
        // the routing configuration has caught up (the driver polls).
        if Instant::now() + super::router::RETRY_PAUSE >= deadline {
            return Err(RequestError::ClusterDown);
        }
        tokio::time::sleep(super::router::RETRY_PAUSE).await;
    }
}

/// `FLUSHALL` / `FLUSHDB`: one log entry (exactly once) in each group this
/// process is the primary of; each empties the shards it serves.
pub async fn flush(router: &Router) -> Result<kv::Reply, RequestError> {
    for gid in primary_shards(router).into_keys() {
        match router.write_group(gid, kv::Op::FlushAll).await? {
            kv::Reply::Done => {}
            other => return Ok(other),
        }
    }
    Ok(kv::Reply::Done)
}

/// One plan; `None` when a group answered `WrongGroup`.
async fn attempt(
    router: &Router,
    op: &kv::Op,
    deadline: Instant,
) -> Result<Option<kv::Reply>, RequestError> {
    let plan = primary_shards(router);
    if let kv::Op::Scan { cursor, .. } = op {
        return scan(router, &plan, op, *cursor, deadline).await;
    }
    let mut groups: Vec<(GroupId, Vec<ShardId>)> = plan.into_iter().collect();
    if *op == kv::Op::RandomKey && !groups.is_empty() {
        let start = router.rr.fetch_add(1, Ordering::Relaxed) % groups.len();
        groups.rotate_left(start);
    }
    let (mut size, mut keys) = (0i64, Vec::new());
    for (gid, shards) in groups {
        let reply = match router
            .read_shards(gid, shards, op.clone(), deadline)
            .await?
        {
            Ok(reply) => reply,
            Err(_) => return Ok(None),
        };
        match reply {
            kv::Reply::Int(n) => size += n,
            kv::Reply::Array(mut k) => keys.append(&mut k),
            kv::Reply::Value(Some(key)) => return Ok(Some(kv::Reply::Value(Some(key)))),
            kv::Reply::Value(None) => {}
            other => return Ok(Some(other)), // an error reply
        }
    }
    Ok(Some(match op {
        kv::Op::DbSize => kv::Reply::Int(size),
        kv::Op::Keys { .. } => kv::Reply::Array(keys),
        _ => kv::Reply::Value(None),
    }))
}

/// One `SCAN` call: the next primary shard at or after the cursor's, from
/// the cursor's position (or its start), with `COUNT` grown until the
/// cursor advances.
async fn scan(
    router: &Router,
    plan: &BTreeMap<GroupId, Vec<ShardId>>,
    op: &kv::Op,
    cursor: u64,
    deadline: Instant,
) -> Result<Option<kv::Reply>, RequestError> {
    let (from_shard, from_pos) = decode_cursor(cursor);
    let mut shards: Vec<(ShardId, GroupId)> = plan
        .iter()
        .flat_map(|(&gid, shards)| shards.iter().map(move |&s| (s, gid)))
        .filter(|&(s, _)| s >= from_shard)
        .collect();
    shards.sort_unstable();
    let Some(&(shard, gid)) = shards.first() else {
        return Ok(Some(kv::Reply::Scan {
            cursor: 0,
            keys: Vec::new(),
        }));
    };
    let start = if shard == from_shard { from_pos } else { 0 };
    let kv::Op::Scan {
        count,
        pattern,
        kind,
        ..
    } = op.clone()
    else {
        unreachable!("scan() is called for SCAN");
    };
    let mut count = count.max(1);
    loop {
        let page = kv::Op::Scan {
            cursor: start,
            pattern: pattern.clone(),
            count,
            kind: kind.clone(),
        };
        let reply = match router.read_shards(gid, vec![shard], page, deadline).await? {
            Ok(reply) => reply,
            Err(_) => return Ok(None),
        };
        let kv::Reply::Scan { cursor: next, keys } = reply else {
            return Ok(Some(reply));
        };
        let next_cursor = if next == 0 {
            // This shard is done: the next primary shard, or the end.
            shards.get(1).map_or(0, |&(s, _)| encode_cursor(s, 0))
        } else {
            encode_cursor(shard, next)
        };
        if next == 0 || next_cursor > encode_cursor(shard, start) || count >= MAX_SCAN_COUNT {
            return Ok(Some(kv::Reply::Scan {
                cursor: next_cursor,
                keys,
            }));
        }
        // Every key visited shares the rounded-down position: ask for more
        // so the cursor moves (else a client would loop forever).
        count = (count * 4).min(MAX_SCAN_COUNT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_shard_and_round_position_down() {
        for shard in [0, 1, 9, 16383] {
            for pos in [0u64, 1 << 14, !((1u64 << 14) - 1)] {
                assert_eq!(decode_cursor(encode_cursor(shard, pos)), (shard, pos));
            }
        }
        let (s, p) = decode_cursor(encode_cursor(3, 0x1234_5678_9abc_def0));
        assert_eq!((s, p), (3, 0x1234_5678_9abc_c000), "rounded down");
        assert!(encode_cursor(1, 0) > encode_cursor(0, u64::MAX));
        assert_eq!(encode_cursor(0, 0), 0, "cursor 0 starts at shard 0");
    }
}
