//! Version 1 of the log entry and snapshot bodies, decode only: shard data
//! was a map of string values (no types, expiries or versions). A group
//! restarted on a log or snapshot written then reads them here and carries
//! on in version 2 (`codec`). Ops, replies and session tables are
//! unchanged in encoding (`kv::Op` and `kv::Reply` only appended variants),
//! so only the shapes that held shard data are mirrored.
//!
//! Converted keys get no expiry; their version (for `WATCH`) is the
//! snapshot's applied index, or 0 for shards in an old `InstallShards`
//! entry (a `WATCH` spanning that upgrade may miss one change).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use shardmeta::{Config, ShardId};

use crate::codec::{decode_body, DecodeError, SnapshotBody};
use crate::command::{Command, Entry, Request, SessionExport, ShardData};
use crate::machine::{Shard, ShardStatus};
use crate::settings::Settings;

type DataV1 = BTreeMap<Bytes, Bytes>;

#[derive(Deserialize)]
enum CommandV1 {
    Request(Request),
    NewConfig(Config),
    InstallShards {
        num: u64,
        shards: BTreeMap<ShardId, DataV1>,
        sessions: SessionExport,
    },
    DeleteShards {
        num: u64,
        shards: Vec<ShardId>,
    },
    ConfirmGc {
        num: u64,
        shards: Vec<ShardId>,
    },
    Tick,
}

#[derive(Deserialize)]
struct EntryV1 {
    timestamp_ms: u64,
    cmd: CommandV1,
}

#[derive(Deserialize)]
struct ShardV1 {
    status: ShardStatus,
    data: DataV1,
}

#[derive(Deserialize)]
struct SnapshotBodyV1 {
    settings: Settings,
    applied_index: u64,
    log_time_ms: u64,
    config: Config,
    prev: Config,
    shards: Vec<ShardV1>,
    sessions: SessionExport,
}

fn convert(data: DataV1, version: u64) -> ShardData {
    ShardData::from_strings(data, version)
}

/// A version-1 entry body (after the version byte).
pub(crate) fn decode_entry_v1(body: &[u8]) -> Result<Entry, DecodeError> {
    let e: EntryV1 = decode_body(body)?;
    let cmd = match e.cmd {
        CommandV1::Request(r) => Command::Request(r),
        CommandV1::NewConfig(c) => Command::NewConfig(c),
        CommandV1::InstallShards {
            num,
            shards,
            sessions,
        } => Command::InstallShards {
            num,
            shards: shards
                .into_iter()
                .map(|(s, d)| (s, convert(d, 0)))
                .collect(),
            sessions,
        },
        CommandV1::DeleteShards { num, shards } => Command::DeleteShards { num, shards },
        CommandV1::ConfirmGc { num, shards } => Command::ConfirmGc { num, shards },
        CommandV1::Tick => Command::Tick,
    };
    Ok(Entry {
        timestamp_ms: e.timestamp_ms,
        cmd,
    })
}

/// A version-1 snapshot body (the frame already checked).
pub(crate) fn decode_snapshot_v1(body: &[u8]) -> Result<SnapshotBody, DecodeError> {
    let b: SnapshotBodyV1 = decode_body(body)?;
    let shards = b
        .shards
        .into_iter()
        .map(|s| Shard {
            status: s.status,
            data: convert(s.data, b.applied_index),
        })
        .collect();
    Ok(SnapshotBody {
        settings: b.settings,
        applied_index: b.applied_index,
        log_time_ms: b.log_time_ms,
        config: b.config,
        prev: b.prev,
        shards,
        sessions: b.sessions,
    })
}
