//! The vocabulary of the state machine: operations, requests, log entries,
//! replies and errors. Plain data only; encoding lives in `wire`, behaviour
//! in `ops`, `store`, `session` and `state_machine`.
//!
//! [`Op`] is the one vocabulary of data commands for every replicated data
//! machine: the single group (this crate) and each shard of a sharded group
//! (`shardkv` ships the same `Op` and [`Reply`] inside its own entries), so
//! the meaning of a command is written once, in `ops`.
//!
//! Invariants (enforced by the decoders and by the state machine):
//! - keys are at most [`crate::MAX_KEY_BYTES`], values at most
//!   [`crate::MAX_VALUE_BYTES`] ([`Op::check_limits`]);
//! - a [`Request`]'s `client_id` names a session created by
//!   [`Command::RegisterSession`]; `seq` starts at 1 and a client allocates
//!   them consecutively.
//!
//! The serde derives define `shardkv`'s postcard encoding of these types:
//! variants are only ever *appended* (postcard numbers them in order), so
//! payloads written before a variant existed still decode.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// A condition on whether a `SET` happens (`NX` / `XX`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    #[default]
    Always,
    /// Only if the key does not exist (`NX`).
    IfMissing,
    /// Only if the key exists (`XX`).
    IfExists,
}

/// When a key expires, as a command states it. Relative times are turned
/// into absolute log time when the entry is *applied* (so every replica
/// computes the same instant); absolute ones are Unix milliseconds, the
/// unit of log time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// `EX` / `PX` / `EXPIRE` / `PEXPIRE`: this many ms after the entry's log time.
    /// Negative (EXPIRE only): already expired.
    InMs(i64),
    /// `EXAT` / `PXAT` / `EXPIREAT` / `PEXPIREAT`: at this Unix time in ms.
    AtMs(i64),
}

/// What a `SET` does to the key's time to live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTtl {
    /// No option: the key persists (an old TTL is dropped).
    #[default]
    Clear,
    /// `KEEPTTL`.
    Keep,
    /// `EX` / `PX` / `EXAT` / `PXAT`.
    Expire(Expiry),
}

/// What `GETEX` does to the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GetExTtl {
    /// No option: unchanged.
    Keep,
    /// `PERSIST`.
    Persist,
    Expire(Expiry),
}

/// `EXPIRE`'s `NX | XX | GT | LT` (a missing TTL counts as infinite for GT/LT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCond {
    #[default]
    Always,
    /// Only if the key has no TTL.
    IfNone,
    /// Only if the key has a TTL.
    IfSome,
    /// Only if the new expiry is later than the current one (`GT`).
    IfGreater,
    /// Only if the new expiry is earlier than the current one (`LT`).
    IfLess,
    /// `XX LT`: only if the key has a TTL and the new expiry is earlier.
    /// (`XX GT` is `GT`: no TTL never compares greater.)
    IfSomeAndLess,
}

/// Which TTL reading a `TTL`-family command wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlQuery {
    /// `TTL`: remaining seconds (rounded as Redis does).
    Seconds,
    /// `PTTL`: remaining milliseconds.
    Millis,
    /// `EXPIRETIME`: absolute Unix seconds.
    AtSeconds,
    /// `PEXPIRETIME`: absolute Unix milliseconds.
    AtMillis,
}

/// One data operation. Keys, values and fields are binary-safe. The
/// comment of each variant names the Redis command(s) it implements and the
/// [`Reply`] it gives; a Redis error reply is [`Reply::Error`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `GET` through the log (reads normally use ReadIndex).
    /// [`Reply::Value`].
    Get { key: Bytes },
    /// Plain `SET key value` (any type is overwritten, a TTL dropped).
    /// [`Reply::Done`].
    Put { key: Bytes, value: Bytes },
    /// `APPEND` (missing key = empty; the TTL is kept). [`Reply::Length`],
    /// or [`KvError::ValueTooLarge`].
    Append { key: Bytes, value: Bytes },
    /// Remove one key (any type). [`Reply::Deleted`].
    Delete { key: Bytes },
    /// `SET` with options, `SETEX`, `PSETEX`, `GETSET`. [`Reply::Done`], or
    /// `Value(None)` when `cond` failed; with `get`, `Value(old)`.
    Set {
        key: Bytes,
        value: Bytes,
        cond: SetCond,
        ttl: SetTtl,
        get: bool,
    },
    /// `GETDEL`. [`Reply::Value`].
    GetDel { key: Bytes },
    /// `GETEX`. [`Reply::Value`].
    GetEx { key: Bytes, ttl: GetExTtl },
    /// `MGET` (non-strings read as null). [`Reply::Values`].
    MGet { keys: Vec<Bytes> },
    /// `MSET`: all pairs at once, TTLs dropped. [`Reply::Done`].
    MSet { pairs: Vec<(Bytes, Bytes)> },
    /// `MSETNX` (and `SETNX`): all pairs if no key exists. `Int(1 | 0)`.
    MSetNx { pairs: Vec<(Bytes, Bytes)> },
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`. `Int(new value)`.
    IncrBy { key: Bytes, by: i64 },
    /// `INCRBYFLOAT`; `by` is the argument's text (checked by the parser,
    /// re-parsed at apply). `Value(Some(new value))`.
    IncrByFloat { key: Bytes, by: Bytes },
    /// `STRLEN`. `Int`.
    StrLen { key: Bytes },
    /// `GETRANGE` (inclusive, negative = from the end). `Value(Some(..))`.
    GetRange { key: Bytes, start: i64, end: i64 },
    /// `SETRANGE` (zero-padded). `Int(new length)`.
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    /// `DEL` / `UNLINK` of several keys, atomically. `Int(removed)`.
    Del { keys: Vec<Bytes> },
    /// `EXISTS` (a key named twice counts twice). `Int`.
    Exists { keys: Vec<Bytes> },
    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`. `Int(1 | 0)`.
    Expire {
        key: Bytes,
        at: Expiry,
        cond: ExpireCond,
    },
    /// `PERSIST`. `Int(1 | 0)`.
    Persist { key: Bytes },
    /// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`. `Int` (-2: no key, -1:
    /// no TTL).
    Ttl { key: Bytes, query: TtlQuery },
    /// `TYPE`. [`Reply::Status`] (`string`, `hash`, `none`).
    Type { key: Bytes },
    /// `RENAME` (`Done`) / `RENAMENX` (`nx`: `Int(1 | 0)`); the TTL moves too.
    Rename { from: Bytes, to: Bytes, nx: bool },
    /// `TOUCH`: `Int(existing)` (raftkv keeps no access times).
    Touch { keys: Vec<Bytes> },
    /// `DBSIZE`: `Int(live keys)`.
    DbSize,
    /// `KEYS pattern`: [`Reply::Array`].
    Keys { pattern: Bytes },
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: [`Reply::Scan`]
    /// (the cursor is a position in hash order, see `ops::keyspace`).
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: u64,
        kind: Option<Bytes>,
    },
    /// `RANDOMKEY`: `Value` (a live key chosen by the state, or null).
    RandomKey,
    /// `FLUSHALL` / `FLUSHDB`: `Done`.
    FlushAll,
    /// `WATCH`: the keys' current versions ([`Reply::Versions`]; 0 for a
    /// missing key), which the connection keeps for `EXEC`.
    Watch { keys: Vec<Bytes> },
    /// `EXEC` of a `MULTI` block: if every watched key still has its
    /// version, all `ops` in order, atomically, in this one entry
    /// (`Multi(Some(replies))`); else nothing (`Multi(None)`).
    Exec {
        ops: Vec<Op>,
        watch: Vec<(Bytes, u64)>,
    },
    /// `HSET key field value [field value ...]`: `Int(fields added)`.
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `HSETNX`: `Int(1 | 0)`.
    HSetNx {
        key: Bytes,
        field: Bytes,
        value: Bytes,
    },
    /// `HGET`: `Value`.
    HGet { key: Bytes, field: Bytes },
    /// `HMGET`: `Values`.
    HMGet { key: Bytes, fields: Vec<Bytes> },
    /// `HDEL`: `Int(removed)`; an emptied hash is deleted.
    HDel { key: Bytes, fields: Vec<Bytes> },
    /// `HEXISTS`: `Int(1 | 0)`.
    HExists { key: Bytes, field: Bytes },
    /// `HLEN`: `Int`.
    HLen { key: Bytes },
    /// `HSTRLEN`: `Int`.
    HStrLen { key: Bytes, field: Bytes },
    /// `HGETALL`: [`Reply::Map`].
    HGetAll { key: Bytes },
    /// `HKEYS`: `Array`.
    HKeys { key: Bytes },
    /// `HVALS`: `Array`.
    HVals { key: Bytes },
    /// `HINCRBY`: `Int(new value)`.
    HIncrBy { key: Bytes, field: Bytes, by: i64 },
    /// `HINCRBYFLOAT` (`by` as text, like `IncrByFloat`): `Value`.
    HIncrByFloat { key: Bytes, field: Bytes, by: Bytes },
    /// `HSCAN key cursor [MATCH pattern] [COUNT n]`: one page with every
    /// matching field and value (cursor 0).
    HScan { key: Bytes, pattern: Option<Bytes> },
}

/// A client's operation inside its session: the unit of exactly-once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session, as returned by [`Reply::Registered`].
    pub client_id: u64,
    /// 1, 2, 3, ... per session. A retry reuses the same number.
    pub seq: u64,
    pub op: Op,
}

/// What one log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Open a new session (dissertation §6.3). Its id is the log index of
    /// this entry, so ids are unique and never reused.
    /// Replies [`Reply::Registered`].
    RegisterSession,
    /// A client operation with its session and sequence number.
    Request(Request),
    /// Advances log time only (lets a leader expire idle sessions and keys
    /// while no client writes). Replies [`Reply::Done`].
    Tick,
}

/// The payload the state machine expects in a Raft log entry.
///
/// `timestamp_ms` is the leader's clock when it proposed the entry
/// (dissertation §6.3). The state machine's *log time* is the maximum
/// timestamp applied so far, so it never goes backwards even when a new
/// leader's clock lags the old one's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub cmd: Command,
}

/// The outcome of a command, shaped as its Redis reply.
///
/// Order matters: `shardkv` stored the first four variants (in this order)
/// before the others existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A bulk string, or null (`None`).
    Value(Option<Bytes>),
    /// `+OK`.
    Done,
    /// An integer that is a length.
    Length(u64),
    /// `Delete`: whether the key existed (an integer 1 / 0 in RESP).
    Deleted(bool),
    /// A new session: use this `client_id` in every [`Request`].
    Registered { client_id: u64 },
    /// An integer.
    Int(i64),
    /// An array of bulk strings or nulls.
    Values(Vec<Option<Bytes>>),
    /// A Redis error reply, decided by the command's semantics (and cached
    /// for a retry like any other reply).
    Error(CmdError),
    /// A simple string (`+string` for `TYPE`).
    Status(String),
    /// An array of bulk strings.
    Array(Vec<Bytes>),
    /// A `SCAN` page: the next cursor (0: done) and the keys.
    Scan { cursor: u64, keys: Vec<Bytes> },
    /// `WATCH`'s key versions, in argument order.
    Versions(Vec<u64>),
    /// `EXEC`: each queued op's reply, or `None` when a watched key changed.
    Multi(Option<Vec<Reply>>),
    /// Field-value pairs (`HGETALL`): a map in RESP3, a flat array in RESP2.
    Map(Vec<(Bytes, Bytes)>),
}

/// The Redis error replies a data command can produce. `Display` is the
/// exact Redis 7 text (after the `-`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CmdError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// A value would grow past [`crate::MAX_VALUE_BYTES`] (Redis's limit is
    /// `proto-max-bulk-len`, 512 MB by default).
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// A sharded group got keys of several shards in one command (the RESP
    /// layer refuses those earlier, as Redis Cluster does).
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    /// A command on the whole key space (`DBSIZE`, `KEYS`, `SCAN`, ...)
    /// reached a sharded group, where it has no single owner.
    #[error("ERR this command has no key to route by; a sharded raftkv does not run it")]
    Keyless,
    /// A write op reached the read-only path (a caller bug, answered rather
    /// than panicking).
    #[error("ERR internal error: a write was sent as a read")]
    NotReadOnly,
}

/// Expected failures a caller acts on. Never a sign of a bug.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// The session is unknown: never registered, expired by log time, or
    /// evicted by the session cap. The request was *not* applied; the client
    /// must register a new session. Whether its earlier requests took effect
    /// cannot be told any more.
    #[error("session {client_id} expired or unknown")]
    SessionExpired { client_id: u64 },
    /// `seq` is older than the session's response window: it may or may not
    /// have been applied, and its response is gone. Not applied now.
    #[error("request {seq} of session {client_id} is older than the response window")]
    StaleRequest { client_id: u64, seq: u64 },
    /// An `Append` would grow a value past [`crate::MAX_VALUE_BYTES`]. The
    /// value is unchanged.
    #[error("value would be {len} bytes, more than the {max} allowed")]
    ValueTooLarge { len: u64, max: u64 },
    /// The entry could not be decoded; nothing was applied.
    #[error("malformed command: {reason}")]
    Malformed { reason: String },
}

/// What applying one entry produced; also what goes on the wire.
pub type Response = Result<Reply, KvError>;

impl Op {
    /// The first key the operation touches (for routing); `None` for an op
    /// on the whole key space (`DBSIZE`, `KEYS`, `SCAN`, ...).
    pub fn key(&self) -> Option<&Bytes> {
        self.keys().next()
    }

    /// Every key the operation touches, in argument order.
    pub fn keys(&self) -> Box<dyn Iterator<Item = &Bytes> + '_> {
        match self {
            Op::Get { key }
            | Op::Put { key, .. }
            | Op::Append { key, .. }
            | Op::Delete { key }
            | Op::Set { key, .. }
            | Op::GetDel { key }
            | Op::GetEx { key, .. }
            | Op::IncrBy { key, .. }
            | Op::IncrByFloat { key, .. }
            | Op::StrLen { key }
            | Op::GetRange { key, .. }
            | Op::SetRange { key, .. }
            | Op::Expire { key, .. }
            | Op::Persist { key }
            | Op::Ttl { key, .. }
            | Op::Type { key }
            | Op::HSet { key, .. }
            | Op::HSetNx { key, .. }
            | Op::HGet { key, .. }
            | Op::HMGet { key, .. }
            | Op::HDel { key, .. }
            | Op::HExists { key, .. }
            | Op::HLen { key }
            | Op::HStrLen { key, .. }
            | Op::HGetAll { key }
            | Op::HKeys { key }
            | Op::HVals { key }
            | Op::HIncrBy { key, .. }
            | Op::HIncrByFloat { key, .. }
            | Op::HScan { key, .. } => Box::new(std::iter::once(key)),
            Op::Rename { from, to, .. } => Box::new([from, to].into_iter()),
            Op::MGet { keys }
            | Op::Del { keys }
            | Op::Exists { keys }
            | Op::Touch { keys }
            | Op::Watch { keys } => Box::new(keys.iter()),
            Op::Exec { ops, watch } => Box::new(
                ops.iter()
                    .flat_map(|o| o.keys())
                    .chain(watch.iter().map(|(k, _)| k)),
            ),
            Op::DbSize | Op::Keys { .. } | Op::Scan { .. } | Op::RandomKey | Op::FlushAll => {
                Box::new(std::iter::empty())
            }
            Op::MSet { pairs } | Op::MSetNx { pairs } => Box::new(pairs.iter().map(|(k, _)| k)),
        }
    }

    /// Every value the operation carries.
    pub fn values(&self) -> Box<dyn Iterator<Item = &Bytes> + '_> {
        match self {
            Op::Put { value, .. }
            | Op::Append { value, .. }
            | Op::Set { value, .. }
            | Op::SetRange { value, .. } => Box::new(std::iter::once(value)),
            Op::MSet { pairs } | Op::MSetNx { pairs } => Box::new(pairs.iter().map(|(_, v)| v)),
            Op::Exec { ops, .. } => Box::new(ops.iter().flat_map(|o| o.values())),
            Op::HSet { pairs, .. } => Box::new(pairs.iter().map(|(_, v)| v)),
            Op::HSetNx { value, .. } => Box::new(std::iter::once(value)),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Whether the operation only reads (so a ReadIndex query may answer it).
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Op::Get { .. }
                | Op::MGet { .. }
                | Op::StrLen { .. }
                | Op::GetRange { .. }
                | Op::Exists { .. }
                | Op::Ttl { .. }
                | Op::Type { .. }
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
        )
    }

    /// Keys, values and key counts within the limits every decoder enforces.
    pub fn check_limits(&self) -> Result<(), &'static str> {
        if self.keys().any(|k| k.len() > MAX_KEY_BYTES) {
            return Err("key over the limit");
        }
        if self.values().any(|v| v.len() > MAX_VALUE_BYTES) {
            return Err("value over the limit");
        }
        let no_keys = match self {
            Op::MGet { keys }
            | Op::Del { keys }
            | Op::Exists { keys }
            | Op::Touch { keys }
            | Op::Watch { keys } => keys.is_empty(),
            Op::HSet { pairs, .. } => pairs.is_empty(),
            Op::HMGet { fields, .. } | Op::HDel { fields, .. } => fields.is_empty(),
            Op::MSet { pairs } | Op::MSetNx { pairs } => pairs.is_empty(),
            _ => false,
        };
        if no_keys {
            return Err("a multi-key op with no key");
        }
        Ok(())
    }
}
