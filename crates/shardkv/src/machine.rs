//! The sharded group's replicated state machine.
//!
//! Owns: the applied configuration and the one before it, every shard's
//! status and data, the session table, the applied index and log time; and
//! the order one entry touches them: advance log time, expire sessions, run
//! the command.
//!
//! Shard status, per shard `s`, with `cur` = applied configuration, `prev`
//! = the one before it and `me` = this group:
//!
//! | status | meaning | `cur.owner(s)` | data |
//! | --- | --- | --- | --- |
//! | `Serving` | ours, data here | `me` | live |
//! | `Pulling` | ours, waiting for the previous owner's data | `me` | empty |
//! | `Gc` | ours, data installed and served; the previous owner must still be told to delete | `me` | live |
//! | `HandingOff` | was ours in `prev`, not in `cur`: frozen until the new owner has it | another group | frozen |
//! | `NotOwned` | not ours | not `me` | empty |
//!
//! Transitions, each through one applied log entry:
//! - `NewConfig(cur + 1)`, only when *stable* (every shard Serving or
//!   NotOwned): kept -> Serving; lost -> HandingOff (or dropped when the new
//!   owner is no group at all: the last group left); gained from no group
//!   (configuration 1, or a shard nobody held) -> Serving, empty; gained
//!   from a group -> Pulling; else NotOwned.
//! - `InstallShards{num = cur}`: Pulling -> Gc (data in, sessions merged).
//! - `DeleteShards{num = cur}`: HandingOff -> NotOwned (data dropped).
//! - `ConfirmGc{num = cur}`: Gc -> Serving.
//!
//! Everything else is ignored, so every command is idempotent and harmless
//! when duplicated, reordered or stale.
//!
//! Client operations mean what `kv::ops` says (one implementation for both
//! kinds of data machine), applied to the store of the key's shard at this
//! group's log time; a multi-key op must name keys of one shard (the RESP
//! layer already refuses keys of different slots with `-CROSSSLOT`).
//! Expiry is `kv`'s: a key dead at log time is invisible, and every entry
//! purges up to `kv::PURGE_PER_ENTRY` dead keys of the shards served here
//! (a HandingOff shard is frozen: it is not purged; its dead keys travel
//! and stay dead at the new owner, as their instants are absolute).
//!
//! Determinism: `apply` depends only on state and entry bytes (ordered
//! maps everywhere, time only from entry stamps).

use bytes::Bytes;
use kv::ops::Ctx;
use kv::{CmdError, KvError};
use serde::{Deserialize, Serialize};
use shardmeta::{Config, GroupId, Keyspace, ShardId, NO_GROUP};

use crate::codec::{self, SnapshotError};
use crate::command::{
    Command, Entry, Op, OpError, OpResult, Query, QueryResult, Reply, Request, Response,
    SessionExport, ShardData, WrongGroup,
};
use crate::session::{Sessions, Verdict};
use crate::settings::Settings;

/// Where a shard stands in this group (see the module docs' table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShardStatus {
    Serving,
    Pulling,
    HandingOff,
    Gc,
    NotOwned,
}

/// One shard's status and data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Shard {
    pub(crate) status: ShardStatus,
    // Invariant: empty when Pulling or NotOwned; every key maps to this shard.
    pub(crate) data: ShardData,
}

/// One replica's state of a sharded group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardKv {
    pub(crate) settings: Settings,
    pub(crate) keyspace: Keyspace,
    // Invariant: strictly increases with every apply.
    pub(crate) applied_index: u64,
    // Invariant: never decreases (the max entry stamp applied).
    pub(crate) log_time_ms: u64,
    // Invariant: prev.num + 1 == config.num, or both are configuration 0.
    pub(crate) config: Config,
    pub(crate) prev: Config,
    // Invariant: one per shard of the keyspace, statuses as the table says.
    pub(crate) shards: Vec<Shard>,
    pub(crate) sessions: Sessions,
    /// Keys removed by active expiry in this process (a statistic, not
    /// state: see [`kv::ExpiredKeys`]).
    pub(crate) expired: kv::ExpiredKeys,
}

impl ShardKv {
    /// A fresh group at configuration 0 (owning nothing). Panics if
    /// `settings` are invalid (they come from the operator, checked at start).
    pub fn new(settings: Settings) -> Self {
        if let Err(why) = settings.validate() {
            panic!("invalid shardkv settings {settings:?}: {why}");
        }
        let empty = Shard {
            status: ShardStatus::NotOwned,
            data: ShardData::new(),
        };
        ShardKv {
            settings,
            keyspace: settings.keyspace(),
            applied_index: 0,
            log_time_ms: 0,
            config: Config::initial(settings.shards),
            prev: Config::initial(settings.shards),
            shards: vec![empty; settings.shards as usize],
            sessions: Sessions::default(),
            expired: kv::ExpiredKeys::default(),
        }
    }

    /// The payload of a log entry carrying `cmd`, stamped `now_ms`.
    pub fn encode_command(&self, cmd: &Command, now_ms: u64) -> Bytes {
        codec::encode_entry(&Entry {
            timestamp_ms: now_ms,
            cmd: cmd.clone(),
        })
    }

    /// A payload that only advances log time.
    pub fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        Some(self.encode_command(&Command::Tick, now_ms))
    }

    /// Applies the committed entry at `index` (empty `data`: a Raft no-op).
    /// Undecodable bytes give [`Response::Malformed`] and change nothing
    /// else. Panics if `index <= applied_index()`.
    pub fn apply(&mut self, index: u64, data: &[u8]) -> Response {
        assert!(
            index > self.applied_index,
            "apply of index {index} at or below applied index {}",
            self.applied_index
        );
        self.applied_index = index;
        let response = match data {
            [] => Response::Done,
            bytes => match codec::decode_entry(bytes) {
                Ok(entry) => self.apply_entry(index, entry),
                Err(e) => Response::Malformed {
                    reason: e.to_string(),
                },
            },
        };
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        response
    }

    /// A ReadIndex read of `key`, answered once `applied_index()` reached
    /// the read index. Ownership is checked here, against the applied
    /// configuration — never only when the request arrived.
    pub fn query(&self, key: &[u8]) -> Result<Option<Bytes>, WrongGroup> {
        let shard = self.serving_shard_of(key)?;
        let data = &self.shards[shard as usize].data;
        Ok(data
            .live_str(key, self.log_time_ms)
            .map(Bytes::copy_from_slice))
    }

    /// A ReadIndex read of any read-only op ([`Op::is_read_only`]), judged
    /// at this state's log time, ownership checked as for [`ShardKv::query`].
    pub fn query_op(&self, op: &Op) -> Result<Reply, WrongGroup> {
        let shard = match self.shard_of_op(op)? {
            Ok(shard) => shard,
            Err(e) => return Ok(Reply::Error(e)),
        };
        let data = &self.shards[shard as usize].data;
        Ok(kv::ops::query(data, op, self.log_time_ms))
    }

    /// A ReadIndex read ([`Query`]), judged at this state's log time, with
    /// ownership checked against the applied configuration.
    pub fn query_any(&self, q: &Query) -> QueryResult {
        match q {
            Query::Op(op) => self.query_op(op),
            Query::Shards { shards, op } => self.query_shards(shards, op),
        }
    }

    /// A keyless read-only op over `shards` (see [`Query::Shards`]).
    fn query_shards(&self, shards: &[ShardId], op: &Op) -> QueryResult {
        for &shard in shards {
            let serving = matches!(self.status(shard), ShardStatus::Serving | ShardStatus::Gc);
            if !serving {
                return Err(WrongGroup {
                    shard,
                    config_num: self.config.num,
                });
            }
        }
        let now = self.log_time_ms;
        let ask = |shard: ShardId| kv::ops::query(&self.shards[shard as usize].data, op, now);
        Ok(match op {
            Op::DbSize => Reply::Int(
                shards
                    .iter()
                    .map(|&s| match ask(s) {
                        Reply::Int(n) => n,
                        _ => 0,
                    })
                    .sum(),
            ),
            Op::Keys { .. } => Reply::Array(
                shards
                    .iter()
                    .flat_map(|&s| match ask(s) {
                        Reply::Array(keys) => keys,
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            Op::RandomKey if !shards.is_empty() => {
                let start = (now % shards.len() as u64) as usize;
                let order = shards[start..].iter().chain(&shards[..start]);
                let found = order.map(|&s| ask(s)).find(|r| *r != Reply::Value(None));
                found.unwrap_or(Reply::Value(None))
            }
            Op::Scan { .. } => match shards.first() {
                Some(&s) => ask(s),
                None => Reply::Scan {
                    cursor: 0,
                    keys: Vec::new(),
                },
            },
            Op::RandomKey => Reply::Value(None),
            _ => Reply::Error(CmdError::NotReadOnly),
        })
    }

    /// Keys removed by active expiry in this process ([`kv::ExpiredKeys`]).
    pub fn expired_count(&self) -> u64 {
        self.expired.0
    }

    /// Keys with an expiry over all shards (dead ones not yet purged included).
    pub fn expiring_count(&self) -> usize {
        self.shards.iter().map(|s| s.data.expiring_len()).sum()
    }

    /// Whether a served shard holds a key dead by `leader_now_ms` (the
    /// leader then proposes a tick, which purges it).
    pub fn purge_due(&self, leader_now_ms: u64) -> bool {
        self.shards.iter().any(|s| {
            matches!(s.status, ShardStatus::Serving | ShardStatus::Gc)
                && s.data.next_expiry_ms().is_some_and(|t| t <= leader_now_ms)
        })
    }

    /// Index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Log time: the largest entry stamp applied so far.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn gid(&self) -> GroupId {
        self.settings.gid
    }

    /// The applied configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration before the applied one (where Pulling shards come
    /// from and HandingOff shards go to).
    pub fn prev_config(&self) -> &Config {
        &self.prev
    }

    /// Shard `shard`'s status (NotOwned when out of range).
    pub fn status(&self, shard: ShardId) -> ShardStatus {
        self.shards
            .get(shard as usize)
            .map_or(ShardStatus::NotOwned, |s| s.status)
    }

    /// The shards in `status`, ascending.
    pub fn shards_in(&self, status: ShardStatus) -> Vec<ShardId> {
        (0..self.shards.len() as ShardId)
            .filter(|&s| self.shards[s as usize].status == status)
            .collect()
    }

    /// Shard `shard`'s data (empty when none is held here).
    pub fn shard_data(&self, shard: ShardId) -> Option<&ShardData> {
        self.shards.get(shard as usize).map(|s| &s.data)
    }

    /// Whether the next configuration may be applied: no shard is in
    /// transit (every one Serving or NotOwned).
    pub fn is_stable(&self) -> bool {
        self.shards
            .iter()
            .all(|s| matches!(s.status, ShardStatus::Serving | ShardStatus::NotOwned))
    }

    /// The session table.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Keys held, over all shards (frozen ones and dead ones not yet
    /// purged included).
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(|s| s.data.len()).sum()
    }

    /// Serialises the whole state (see `codec` for the format).
    pub fn snapshot(&self) -> Bytes {
        codec::encode_snapshot(self)
    }

    /// [`Self::snapshot`]'s bytes, written to `out` as they are encoded
    /// (never whole in memory). The only errors are `out`'s.
    pub fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        codec::encode_snapshot_to(self, out)
    }

    /// Replaces the whole state with a snapshot's. Refuses (and leaves
    /// `self` unchanged) a snapshot of another group or shard count, and
    /// any malformed one; never panics.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        self.restore_input(rsm::SnapshotInput::in_memory(data))
    }

    /// [`Self::restore`] from an input whose parts are released as they are read
    /// (`rsm::StateMachine::replace_with_snapshot`).
    pub(crate) fn restore_input(
        &mut self,
        input: rsm::SnapshotInput<'_>,
    ) -> Result<(), SnapshotError> {
        let restored = codec::decode_snapshot_input(input)?;
        let (ours, theirs) = (self.settings, restored.settings);
        if (ours.gid, ours.shards) != (theirs.gid, theirs.shards) {
            return Err(SnapshotError::Invalid(format!(
                "snapshot of group {} with {} shards, this is group {} with {}",
                theirs.gid, theirs.shards, ours.gid, ours.shards
            )));
        }
        self.adopt(restored);
        Ok(())
    }

    /// Replaces the whole state with `restored` (a machine decoded from a snapshot of
    /// this group), keeping this process's expired-keys count (a statistic, not state).
    pub fn adopt(&mut self, restored: ShardKv) {
        let expired = self.expired;
        *self = restored;
        self.expired = expired;
    }

    /// Panics with context if an invariant is broken.
    /// Per-key checks are left to snapshot decoding (`validate(true)`):
    /// this runs after every entry in debug builds, where a pass over every
    /// key would make apply cost grow with the data.
    pub fn check_invariants(&self) {
        if let Err(why) = self.validate(false) {
            panic!(
                "shardkv group {} invariant broken at index {}: {why}",
                self.settings.gid, self.applied_index
            );
        }
    }

    /// The shard of `key` if this group serves it now.
    fn serving_shard_of(&self, key: &[u8]) -> Result<ShardId, WrongGroup> {
        let shard = self.keyspace.shard_of_key(key);
        match self.shards[shard as usize].status {
            ShardStatus::Serving | ShardStatus::Gc => Ok(shard),
            _ => Err(WrongGroup {
                shard,
                config_num: self.config.num,
            }),
        }
    }

    /// The shard every key of `op` belongs to if this group serves it;
    /// `Ok(Err(CrossSlot))` when the keys span shards.
    fn shard_of_op(&self, op: &Op) -> Result<Result<ShardId, CmdError>, WrongGroup> {
        let Some(first) = op.key() else {
            return Ok(Err(CmdError::Keyless));
        };
        let shard = self.serving_shard_of(first)?;
        let one_shard = op.keys().all(|k| self.keyspace.shard_of_key(k) == shard);
        Ok(if one_shard {
            Ok(shard)
        } else {
            Err(CmdError::CrossSlot)
        })
    }

    /// `FLUSHALL`: empties every shard served here (Serving or Gc). A shard
    /// in transit (Pulling, HandingOff) is not served, so not flushed.
    fn flush_served(&mut self) {
        for shard in &mut self.shards {
            if matches!(shard.status, ShardStatus::Serving | ShardStatus::Gc) {
                shard.data = ShardData::new();
            }
        }
    }

    /// Active expiry: removes up to `kv::PURGE_PER_ENTRY` dead keys of the
    /// shards served here.
    fn purge(&mut self) {
        let mut budget = kv::PURGE_PER_ENTRY;
        for shard in &mut self.shards {
            if budget == 0 {
                break;
            }
            if matches!(shard.status, ShardStatus::Serving | ShardStatus::Gc) {
                let purged = shard.data.purge_expired(self.log_time_ms, budget);
                self.expired.add(purged);
                budget -= purged;
            }
        }
    }

    fn apply_entry(&mut self, index: u64, entry: Entry) -> Response {
        self.log_time_ms = self.log_time_ms.max(entry.timestamp_ms);
        self.sessions
            .expire(self.log_time_ms, self.settings.session_timeout_ms);
        self.purge();
        let changed = match entry.cmd {
            Command::Request(req) => return Response::Op(self.apply_request(index, req)),
            Command::Tick => return Response::Done,
            Command::NewConfig(config) => self.apply_new_config(config),
            Command::InstallShards {
                num,
                shards,
                sessions,
            } => self.apply_install(num, shards, &sessions),
            Command::DeleteShards { num, shards } => {
                self.transition(num, &shards, ShardStatus::HandingOff, ShardStatus::NotOwned)
            }
            Command::ConfirmGc { num, shards } => {
                self.transition(num, &shards, ShardStatus::Gc, ShardStatus::Serving)
            }
        };
        Response::Control { changed }
    }

    fn apply_request(&mut self, index: u64, req: Request) -> OpResult {
        let Request { client_id, seq, op } = req;
        // `FLUSHALL` has no key: it empties every shard this group serves.
        let shard = match op {
            Op::FlushAll => None,
            _ => match self.shard_of_op(&op)? {
                Ok(shard) => Some(shard),
                Err(e) => return Ok(Reply::Error(e)),
            },
        };
        let window = self.settings.response_window;
        match self.sessions.check(client_id, seq, window) {
            Verdict::Stale => Err(OpError::StaleRequest { client_id, seq }),
            Verdict::Duplicate(response) => {
                let (now, cap) = (self.log_time_ms, self.settings.max_sessions);
                let touched = self.sessions.touch(client_id, now, cap);
                assert!(touched, "a cached response means the session exists");
                response
            }
            Verdict::New => {
                let (now, cap) = (self.log_time_ms, self.settings.max_sessions);
                if !self.sessions.touch(client_id, now, cap) {
                    return Err(OpError::SessionsFull);
                }
                let ctx = Ctx {
                    now_ms: self.log_time_ms,
                    index,
                };
                let response = match shard {
                    Some(shard) => apply_op(&mut self.shards[shard as usize].data, &op, ctx),
                    None => {
                        self.flush_served();
                        Ok(Reply::Done)
                    }
                };
                self.sessions
                    .record(client_id, seq, response.clone(), window);
                response
            }
        }
    }

    fn apply_new_config(&mut self, next: Config) -> bool {
        let fits = next.shards.len() == self.shards.len() && next.check().is_ok();
        if next.num != self.config.num + 1 || !fits || !self.is_stable() {
            return false;
        }
        let me = self.settings.gid;
        for (s, shard) in self.shards.iter_mut().enumerate() {
            let (before, after) = (self.config.shards[s], next.shards[s]);
            shard.status = match (before == me, after == me) {
                (true, true) => ShardStatus::Serving,
                (true, false) if after == NO_GROUP => ShardStatus::NotOwned,
                (true, false) => ShardStatus::HandingOff,
                (false, true) if before == NO_GROUP => ShardStatus::Serving,
                (false, true) => ShardStatus::Pulling,
                (false, false) => ShardStatus::NotOwned,
            };
            if shard.status == ShardStatus::NotOwned {
                shard.data = ShardData::new();
            }
        }
        self.prev = std::mem::replace(&mut self.config, next);
        true
    }

    fn apply_install(
        &mut self,
        num: u64,
        shards: std::collections::BTreeMap<ShardId, ShardData>,
        sessions: &SessionExport,
    ) -> bool {
        if num != self.config.num {
            return false;
        }
        let mut installed = false;
        for (s, data) in shards {
            let belongs = |k: &[u8]| self.keyspace.shard_of_key(k) == s;
            let Some(shard) = self.shards.get_mut(s as usize) else {
                continue;
            };
            if shard.status != ShardStatus::Pulling || !data.iter().all(|(k, _)| belongs(k)) {
                continue;
            }
            shard.data = data;
            shard.status = ShardStatus::Gc;
            installed = true;
        }
        if installed {
            self.sessions.merge(sessions, self.settings.response_window);
        }
        installed
    }

    /// Moves every listed shard that is `from` at configuration `num` to
    /// `to` (dropping its data when `to` is NotOwned).
    fn transition(
        &mut self,
        num: u64,
        shards: &[ShardId],
        from: ShardStatus,
        to: ShardStatus,
    ) -> bool {
        if num != self.config.num {
            return false;
        }
        let mut changed = false;
        for &s in shards {
            let Some(shard) = self.shards.get_mut(s as usize) else {
                continue;
            };
            if shard.status == from {
                shard.status = to;
                if to == ShardStatus::NotOwned {
                    shard.data = ShardData::new();
                }
                changed = true;
            }
        }
        changed
    }

    /// The invariants as a report (snapshots of unknown origin use it, with
    /// `per_key`: every key in its shard, the stores' own invariants).
    pub(crate) fn validate(&self, per_key: bool) -> Result<(), String> {
        self.settings.validate()?;
        let n = self.settings.shards as usize;
        if self.shards.len() != n || self.config.shards.len() != n || self.prev.shards.len() != n {
            return Err("shard count differs from the settings".into());
        }
        let first = self.config.num == 0 && self.prev.num == 0;
        if !first && self.prev.num + 1 != self.config.num {
            return Err("previous configuration does not precede the current one".into());
        }
        self.config.check()?;
        self.prev.check()?;
        for s in 0..n as ShardId {
            self.validate_shard(s, per_key)?;
        }
        self.sessions.validate(self.settings.response_window)?;
        Ok(())
    }

    fn validate_shard(&self, s: ShardId, per_key: bool) -> Result<(), String> {
        let shard = &self.shards[s as usize];
        let me = self.settings.gid;
        let (before, now) = (self.prev.owner(s), self.config.owner(s));
        let from_group = before != me && before != NO_GROUP;
        let ok = match shard.status {
            ShardStatus::Serving => now == me,
            ShardStatus::Pulling => now == me && from_group && shard.data.is_empty(),
            ShardStatus::Gc => now == me && from_group,
            ShardStatus::HandingOff => before == me && now != me && now != NO_GROUP,
            ShardStatus::NotOwned => now != me && shard.data.is_empty(),
        };
        if !ok {
            return Err(format!(
                "shard {s} is {:?} with owners {before} -> {now} and {} keys",
                shard.status,
                shard.data.len()
            ));
        }
        if !per_key {
            return Ok(());
        }
        for (k, _) in shard.data.iter() {
            if self.keyspace.shard_of_key(k) != s {
                return Err(format!("shard {s} holds a key of another shard"));
            }
        }
        shard
            .data
            .validate()
            .map_err(|why| format!("shard {s}: {why}"))
    }
}

/// `kv`'s semantics of one op on one shard's data (`kv::ops`, shared with
/// the single-group machine).
fn apply_op(data: &mut ShardData, op: &Op, ctx: Ctx) -> OpResult {
    match kv::ops::apply(data, op, ctx) {
        Ok(reply) => Ok(reply),
        Err(KvError::ValueTooLarge { len, max }) => Err(OpError::ValueTooLarge { len, max }),
        Err(other) => unreachable!("kv::ops answers no {other:?}"),
    }
}
