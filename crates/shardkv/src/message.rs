//! The messages groups exchange to move shards, and their byte format.
//!
//! Owns: [`GroupRequest`] / [`GroupReply`] and their strict codec. Each
//! names the configuration number it is about, which is what makes every
//! one idempotent: a receiver acts only when the number matches its applied
//! configuration and the shard's status says the step is still to be done,
//! and otherwise answers from what it has already done.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shardmeta::{GroupId, ShardId};

use crate::codec::{self, DecodeError};
use crate::command::{SessionExport, ShardData};

/// "Send me these shards of configuration `num`": from their new owner
/// (`from`) to their owner in configuration `num - 1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullShards {
    pub from: GroupId,
    pub num: u64,
    pub shards: Vec<ShardId>,
}

/// "I have installed these shards of configuration `num`; delete your
/// copy": from the new owner (`from`) to the previous owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteShards {
    pub from: GroupId,
    pub num: u64,
    pub shards: Vec<ShardId>,
}

/// A request from one data group to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRequest {
    Pull(PullShards),
    Delete(DeleteShards),
}

/// The answer to [`PullShards`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullReply {
    /// The frozen data of the requested shards this group hands off at
    /// `num` (those it no longer holds are left out), and its whole session
    /// table.
    Shards {
        num: u64,
        shards: BTreeMap<ShardId, ShardData>,
        sessions: SessionExport,
    },
    /// This replica has not applied configuration `num` yet (it is at
    /// `current`): the shards may still change. Ask again later.
    NotReady { num: u64, current: u64 },
    /// This replica is past `num` (at `current`): the hand-off of `num` is
    /// finished, so the request is an old duplicate. Nothing to do.
    Stale { num: u64, current: u64 },
}

/// The answer to [`DeleteShards`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteReply {
    /// The shards are gone from this group (deleted by an applied entry, or
    /// never held at `num`): the requester may stop asking.
    Done { num: u64, shards: Vec<ShardId> },
    /// Not deleted yet (a deletion has been proposed if this is the
    /// leader). Ask again.
    Pending { num: u64, shards: Vec<ShardId> },
}

/// A reply from one data group to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupReply {
    Pull(PullReply),
    Delete(DeleteReply),
}

/// Encodes a request for the wire.
pub fn encode_group_request(request: &GroupRequest) -> Bytes {
    codec::encode_versioned(request)
}

/// Decodes a request strictly; never panics.
pub fn decode_group_request(input: &[u8]) -> Result<GroupRequest, DecodeError> {
    codec::decode_versioned(input)
}

/// Encodes a reply for the wire.
pub fn encode_group_reply(reply: &GroupReply) -> Bytes {
    codec::encode_versioned(reply)
}

/// Decodes a reply strictly (data within the key/value limits, sessions
/// well formed); never panics.
pub fn decode_group_reply(input: &[u8]) -> Result<GroupReply, DecodeError> {
    let reply: GroupReply = codec::decode_versioned(input)?;
    if let GroupReply::Pull(PullReply::Shards {
        shards, sessions, ..
    }) = &reply
    {
        for data in shards.values() {
            codec::check_shard_data(data)?;
        }
        codec::check_sessions(sessions)?;
    }
    Ok(reply)
}
