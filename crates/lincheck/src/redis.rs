//! A model of Redis's string, counter, expiry and transaction commands as
//! raftkv serves them: `GET`, `SET [EX]`, `INCRBY`, `DEL`, `EXISTS`,
//! `EXPIRE`, `PERSIST`, `TTL`, and `MULTI ... EXEC` blocks of those, checked
//! atomically. Partitioned by hash tag (`{tag}rest` is partition `tag`, as
//! Redis Cluster slots keys; a key without one is its own partition), so a
//! block or a multi-key command must name keys of one tag.
//!
//! What is modelled of expiry, and why no more: a key's death is decided by
//! log time (the leader's clock stamped on entries), which a client cannot
//! observe, so a checker cannot know *when* a TTL runs out. The model keeps
//! whether a key carries a TTL, and histories use TTLs far longer than the
//! run (so no key dies of age during it): `TTL` must answer `-2` for a
//! missing key, `-1` for a key without a TTL and a positive number for one
//! with a TTL; `EXPIRE` sets one (1 if the key exists), `PERSIST` drops it,
//! `SET` without `EX` drops it, `INCRBY` keeps it, and a `DEL` or `SET`
//! ends it. The exact remaining seconds are not checked.
//!
//! What is modelled of `WATCH`: nothing; its optimistic check compares
//! per-key versions, which the model does not keep. A history may use
//! blocks without `WATCH` (never aborted), whose effects must be atomic.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::history::Operation;
use crate::model::Model;

/// One command (also one command of a `MULTI` block).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RedisInput {
    Get {
        key: Bytes,
    },
    /// `SET key value` (`ttl`: with `EX`, a TTL longer than the run).
    Set {
        key: Bytes,
        value: Bytes,
        ttl: bool,
    },
    IncrBy {
        key: Bytes,
        by: i64,
    },
    Del {
        keys: Vec<Bytes>,
    },
    Exists {
        keys: Vec<Bytes>,
    },
    /// `EXPIRE key seconds`, seconds longer than the run.
    Expire {
        key: Bytes,
    },
    Persist {
        key: Bytes,
    },
    Ttl {
        key: Bytes,
    },
    /// `MULTI`, the commands, `EXEC` (no `WATCH`).
    Exec {
        ops: Vec<RedisInput>,
    },
}

/// What `TTL` told, as far as the model can judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlKind {
    /// `-2`.
    Missing,
    /// `-1`.
    NoExpiry,
    /// A positive number of seconds.
    Expiring,
}

impl TtlKind {
    /// The kind of a `TTL` reply (`None` for a reply `TTL` never gives).
    pub fn of(seconds: i64) -> Option<Self> {
        match seconds {
            -2 => Some(TtlKind::Missing),
            -1 => Some(TtlKind::NoExpiry),
            n if n > 0 => Some(TtlKind::Expiring),
            _ => None,
        }
    }
}

/// A reply. Its shape must fit the request's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RedisOutput {
    /// `GET`: the value, or null.
    Value(Option<Bytes>),
    /// `+OK` (`SET`).
    Ok,
    /// An integer (`INCRBY`, `DEL`, `EXISTS`, `EXPIRE`, `PERSIST`).
    Int(i64),
    /// `TTL`.
    Ttl(TtlKind),
    /// An error reply decided by the command's meaning (`INCRBY` of a
    /// value that is not an integer).
    Error,
    /// `EXEC`: one reply per queued command.
    Multi(Vec<RedisOutput>),
}

/// A history operation of this model.
pub type RedisOperation = Operation<RedisInput, RedisOutput>;

/// One key's modelled state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    pub value: Bytes,
    pub ttl: bool,
}

/// A partition's state: its keys.
pub type RedisState = BTreeMap<Bytes, Item>;

/// The sequential specification.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedisModel;

/// The partition of `key`: its hash tag if it has a non-empty one, as
/// Redis Cluster slots it, else the whole key.
pub fn tag_of(key: &[u8]) -> Bytes {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return Bytes::copy_from_slice(&key[open + 1..open + 1 + len]);
            }
        }
    }
    Bytes::copy_from_slice(key)
}

impl RedisInput {
    /// The first key the command names (a block: its first command's).
    pub fn first_key(&self) -> Option<&Bytes> {
        match self {
            RedisInput::Get { key }
            | RedisInput::Set { key, .. }
            | RedisInput::IncrBy { key, .. }
            | RedisInput::Expire { key }
            | RedisInput::Persist { key }
            | RedisInput::Ttl { key } => Some(key),
            RedisInput::Del { keys } | RedisInput::Exists { keys } => keys.first(),
            RedisInput::Exec { ops } => ops.iter().find_map(RedisInput::first_key),
        }
    }

    fn is_read_only(&self) -> bool {
        match self {
            RedisInput::Get { .. } | RedisInput::Exists { .. } | RedisInput::Ttl { .. } => true,
            RedisInput::Exec { ops } => ops.iter().all(RedisInput::is_read_only),
            _ => false,
        }
    }
}

/// Runs `input` on `state` as Redis would; the reply.
pub fn apply(state: &mut RedisState, input: &RedisInput) -> RedisOutput {
    match input {
        RedisInput::Get { key } => RedisOutput::Value(state.get(key).map(|i| i.value.clone())),
        RedisInput::Set { key, value, ttl } => {
            let item = Item {
                value: value.clone(),
                ttl: *ttl,
            };
            state.insert(key.clone(), item);
            RedisOutput::Ok
        }
        RedisInput::IncrBy { key, by } => {
            let (old, ttl) = match state.get(key) {
                None => (0, false),
                Some(item) => match parse_int(&item.value) {
                    Some(n) => (n, item.ttl),
                    None => return RedisOutput::Error,
                },
            };
            let Some(new) = old.checked_add(*by) else {
                return RedisOutput::Error;
            };
            let value = Bytes::from(new.to_string());
            state.insert(key.clone(), Item { value, ttl });
            RedisOutput::Int(new)
        }
        RedisInput::Del { keys } => {
            let n = keys.iter().filter(|k| state.remove(*k).is_some()).count();
            RedisOutput::Int(n as i64)
        }
        RedisInput::Exists { keys } => {
            RedisOutput::Int(keys.iter().filter(|k| state.contains_key(*k)).count() as i64)
        }
        RedisInput::Expire { key } => match state.get_mut(key) {
            Some(item) => {
                item.ttl = true;
                RedisOutput::Int(1)
            }
            None => RedisOutput::Int(0),
        },
        RedisInput::Persist { key } => match state.get_mut(key) {
            Some(item) if item.ttl => {
                item.ttl = false;
                RedisOutput::Int(1)
            }
            _ => RedisOutput::Int(0),
        },
        RedisInput::Ttl { key } => RedisOutput::Ttl(match state.get(key) {
            None => TtlKind::Missing,
            Some(Item { ttl: false, .. }) => TtlKind::NoExpiry,
            Some(Item { ttl: true, .. }) => TtlKind::Expiring,
        }),
        RedisInput::Exec { ops } => {
            RedisOutput::Multi(ops.iter().map(|op| apply(state, op)).collect())
        }
    }
}

/// Redis's integer rule for `INCRBY`: an optional `-`, digits, no leading
/// zero (except `0` itself), within `i64`.
fn parse_int(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && b != b"-0";
    if !canonical {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

impl Model for RedisModel {
    type Input = RedisInput;
    type Output = RedisOutput;
    type State = RedisState;
    type Partition = Bytes;

    fn init(&self) -> RedisState {
        RedisState::new()
    }

    fn step(
        &self,
        state: &RedisState,
        input: &RedisInput,
        output: Option<&RedisOutput>,
    ) -> Option<RedisState> {
        let mut next = state.clone();
        let out = apply(&mut next, input);
        match output {
            None => Some(next),
            Some(seen) if *seen == out => Some(next),
            Some(_) => None,
        }
    }

    fn partition(&self, input: &RedisInput) -> Bytes {
        input.first_key().map(|k| tag_of(k)).unwrap_or_default()
    }

    fn is_read_only(&self, input: &RedisInput) -> bool {
        input.is_read_only()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, HistoryRecorder};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn tags_partition_like_redis_cluster() {
        assert_eq!(tag_of(b"{a}x"), b("a"));
        assert_eq!(tag_of(b"y{a}"), b("a"));
        assert_eq!(tag_of(b"{}x"), b("{}x"), "an empty tag is no tag");
        assert_eq!(tag_of(b"plain"), b("plain"));
    }

    #[test]
    fn counters_expiry_and_blocks_step_as_redis() {
        let mut s = RedisState::new();
        let k = b("{a}n");
        assert_eq!(
            apply(
                &mut s,
                &RedisInput::IncrBy {
                    key: k.clone(),
                    by: 5
                }
            ),
            RedisOutput::Int(5)
        );
        assert_eq!(
            apply(&mut s, &RedisInput::Expire { key: k.clone() }),
            RedisOutput::Int(1)
        );
        assert_eq!(
            apply(
                &mut s,
                &RedisInput::IncrBy {
                    key: k.clone(),
                    by: -7
                }
            ),
            RedisOutput::Int(-2)
        );
        let ttl = RedisInput::Ttl { key: k.clone() };
        assert_eq!(
            apply(&mut s, &ttl),
            RedisOutput::Ttl(TtlKind::Expiring),
            "INCR keeps it"
        );
        let set = RedisInput::Set {
            key: k.clone(),
            value: b("x"),
            ttl: false,
        };
        let block = RedisInput::Exec {
            ops: vec![
                set,
                RedisInput::IncrBy {
                    key: k.clone(),
                    by: 1,
                },
                ttl.clone(),
            ],
        };
        assert_eq!(
            apply(&mut s, &block),
            RedisOutput::Multi(vec![
                RedisOutput::Ok,
                RedisOutput::Error,
                RedisOutput::Ttl(TtlKind::NoExpiry)
            ])
        );
        assert_eq!(parse_int(b"007"), None);
        assert_eq!(parse_int(b"-0"), None);
        assert_eq!(parse_int(b"-12"), Some(-12));
    }

    /// A block is atomic: a read that sees one of its writes must see all.
    #[test]
    fn a_torn_block_is_not_linearizable() {
        let (x, y) = (b("{t}x"), b("{t}y"));
        let mut rec = HistoryRecorder::new();
        let set = |k: &Bytes| RedisInput::Set {
            key: k.clone(),
            value: b("1"),
            ttl: false,
        };
        let block = rec.invoke(
            1,
            RedisInput::Exec {
                ops: vec![set(&x), set(&y)],
            },
            0,
        );
        rec.complete(
            block,
            RedisOutput::Multi(vec![RedisOutput::Ok, RedisOutput::Ok]),
            10,
        );
        let read = RedisInput::Exists {
            keys: vec![x.clone(), y.clone()],
        };
        let seen = rec.invoke(2, read.clone(), 2);
        rec.complete(seen, RedisOutput::Int(2), 3);
        assert!(check(&RedisModel, rec.history()).is_ok());
        let torn = rec.invoke(3, read, 4);
        rec.complete(torn, RedisOutput::Int(1), 5);
        assert!(check(&RedisModel, rec.history()).is_illegal());
    }

    /// Two INCRs acknowledged with the same value: one was lost or doubled.
    #[test]
    fn a_counter_must_count_each_increment_once() {
        let k = b("c");
        let mut rec = HistoryRecorder::new();
        for (client, at) in [(1, 0), (2, 1)] {
            let h = rec.invoke(
                client,
                RedisInput::IncrBy {
                    key: k.clone(),
                    by: 1,
                },
                at,
            );
            rec.complete(h, RedisOutput::Int(1), at + 5);
        }
        assert!(check(&RedisModel, rec.history()).is_illegal());
    }
}
