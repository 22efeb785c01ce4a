//! The controller state machine: applies committed entries in order.
//!
//! Owns: the applied index, log time, the history of configurations, the
//! client sessions (kv's [`SessionTable`], shared rather than copied), and
//! the order in which one entry touches them: advance log time, expire idle
//! sessions, then run the command.
//!
//! Determinism: `apply` depends only on the state and the entry bytes
//! (ordered maps, [`rebalance`] is pure, no clock), so every replica holds
//! the same configurations and returns the same responses.
//!
//! Invariants (checked after every apply in debug builds):
//! - `configs[i].num == i`; `configs[0]` is [`Config::initial`]; every
//!   configuration has `settings.shards` shards and passes
//!   [`Config::check`]; configurations never change once created;
//! - `applied_index` strictly increases; `log_time_ms` never decreases;
//! - the session table keeps kv's invariants under `settings`.

use bytes::Bytes;
use kv::session::{SessionTable, Verdict};
use shardmeta::{Config, GroupId, Member, ShardId, NO_GROUP};
use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{self, decode_entry, encode_entry, SnapshotError};
use crate::command::{Command, CtrlError, Entry, Op, Reply, Request, Response};
use crate::rebalance::rebalance;
use crate::settings::{Settings, MAX_ADDR_BYTES, MAX_GROUPS_PER_REQUEST, MAX_MEMBERS_PER_GROUP};

/// One replica's controller state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    pub(crate) settings: Settings,
    // Invariant: strictly increases with every apply.
    pub(crate) applied_index: u64,
    // Invariant: never decreases.
    pub(crate) log_time_ms: u64,
    // Invariant: configs[i].num == i, never empty, entries immutable.
    pub(crate) configs: Vec<Config>,
    pub(crate) sessions: SessionTable<Response>,
}

impl Controller {
    /// A controller holding only configuration 0. Panics if `settings` is
    /// invalid (they come from the operator, checked at startup).
    pub fn new(settings: Settings) -> Self {
        if let Err(why) = settings.validate() {
            panic!("invalid controller settings {settings:?}: {why}");
        }
        Controller {
            settings,
            applied_index: 0,
            log_time_ms: 0,
            configs: vec![Config::initial(settings.shards)],
            sessions: SessionTable::new(),
        }
    }

    /// Applies the committed entry at `index` and returns its response.
    /// Empty bytes (a Raft no-op) only advance the index ([`Reply::Done`]);
    /// undecodable bytes reply [`CtrlError::Malformed`] and change nothing
    /// else. Panics if `index <= applied_index()`.
    pub fn apply(&mut self, index: u64, data: &[u8]) -> Response {
        assert!(
            index > self.applied_index,
            "apply of index {index} at or below applied index {}",
            self.applied_index
        );
        self.applied_index = index;
        let response = match data {
            [] => Ok(Reply::Done),
            bytes => match decode_entry(bytes) {
                Ok(entry) => self.apply_entry(index, entry),
                Err(e) => Err(CtrlError::Malformed {
                    reason: e.to_string(),
                }),
            },
        };
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        response
    }

    /// The payload of a log entry carrying `cmd`, stamped with the
    /// proposing leader's clock `now_ms`.
    pub fn encode_command(&self, cmd: &Command, now_ms: u64) -> Bytes {
        encode_entry(&Entry {
            timestamp_ms: now_ms,
            cmd: cmd.clone(),
        })
    }

    /// The payload an idle leader proposes to advance log time.
    pub fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        Some(self.encode_command(&Command::Tick, now_ms))
    }

    /// A ReadIndex read: configuration `num` (`None`, or beyond the latest:
    /// the latest). The caller waits until `applied_index()` reaches the
    /// read index. A query for an existing `num` may be answered by any
    /// replica without a read index: configurations never change.
    pub fn query(&self, num: &Option<u64>) -> Config {
        self.config(*num).clone()
    }

    /// Configuration `num`, or the latest for `None` or a `num` not yet
    /// created.
    pub fn config(&self, num: Option<u64>) -> &Config {
        let latest = self.configs.len() - 1;
        let i = num.map_or(latest, |n| n.min(latest as u64) as usize);
        &self.configs[i]
    }

    /// The latest configuration.
    pub fn latest(&self) -> &Config {
        self.configs.last().expect("configuration 0 always exists")
    }

    /// Every configuration, by number.
    pub fn configs(&self) -> &[Config] {
        &self.configs
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Log time: the largest entry timestamp applied so far.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `client_id` names a live session.
    pub fn has_session(&self, client_id: u64) -> bool {
        self.sessions.contains(client_id)
    }

    /// The whole state (see `codec` for the format).
    pub fn snapshot(&self) -> Bytes {
        codec::encode_snapshot(self)
    }

    /// [`Self::snapshot`]'s bytes, written to `out` as they are encoded
    /// (never whole in memory). The only errors are `out`'s.
    pub fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        codec::encode_snapshot_to(self, out)
    }

    /// Rebuilds a controller from [`Controller::snapshot`] bytes, adopting
    /// the settings stored in them. Never panics on bad input.
    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        codec::decode_snapshot(bytes)
    }

    /// Panics with context if an invariant is broken.
    pub fn check_invariants(&self) {
        if let Err(why) = self.validate() {
            panic!("controller invariant broken: {why}");
        }
    }

    /// The invariants as a report (the snapshot decoder runs it on
    /// untrusted input).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let s = &self.settings;
        s.validate()?;
        if self.configs.first() != Some(&Config::initial(s.shards)) {
            return Err("configuration 0 is not the initial one".into());
        }
        if self.configs.len() as u64 > self.applied_index + 1 {
            return Err("more configurations than applied entries".into());
        }
        for (i, c) in self.configs.iter().enumerate() {
            if c.num != i as u64 || c.shards.len() != s.shards as usize {
                return Err(format!(
                    "configuration at {i} has number {} or shard count {}",
                    c.num,
                    c.shards.len()
                ));
            }
            c.check()?;
        }
        self.sessions.validate(s.max_sessions, s.response_window)?;
        self.sessions.validate_against_log(
            self.applied_index,
            self.log_time_ms,
            s.session_timeout_ms,
        )?;
        Ok(())
    }

    fn apply_entry(&mut self, index: u64, entry: Entry) -> Response {
        self.log_time_ms = self.log_time_ms.max(entry.timestamp_ms);
        self.sessions
            .expire(self.log_time_ms, self.settings.session_timeout_ms);
        match entry.cmd {
            Command::RegisterSession => {
                self.sessions
                    .register(index, index, self.log_time_ms, self.settings.max_sessions);
                Ok(Reply::Registered { client_id: index })
            }
            Command::Request(req) => self.apply_request(index, req),
            Command::Query { num } => Ok(Reply::Config(self.query(&num))),
            Command::Tick => Ok(Reply::Done),
        }
    }

    fn apply_request(&mut self, index: u64, req: Request) -> Response {
        let Request { client_id, seq, op } = req;
        let window = self.settings.response_window;
        let verdict = self
            .sessions
            .admit(client_id, seq, window, index, self.log_time_ms);
        match verdict {
            Verdict::Unknown => Err(CtrlError::SessionExpired { client_id }),
            Verdict::Stale => Err(CtrlError::StaleRequest { client_id, seq }),
            Verdict::Duplicate(response) => response,
            Verdict::New => {
                let response = self.apply_op(&op);
                self.sessions
                    .record(client_id, seq, response.clone(), window);
                response
            }
        }
    }

    /// Creates the next configuration from `op`, or explains why not (and
    /// creates nothing).
    fn apply_op(&mut self, op: &Op) -> Response {
        let latest = self.latest();
        let (groups, shards) = match op {
            Op::Join { groups } => join(latest, groups)?,
            Op::Leave { gids } => leave(latest, gids)?,
            Op::Move { shard, gid } => move_shard(latest, *shard, *gid)?,
            Op::Members { gid, members } => set_members(latest, *gid, members)?,
        };
        let num = latest.num + 1;
        self.configs.push(Config {
            num,
            shards,
            groups,
        });
        Ok(Reply::NewConfig { num })
    }
}

type Next = (BTreeMap<GroupId, Vec<Member>>, Vec<GroupId>);

fn join(latest: &Config, joining: &BTreeMap<GroupId, Vec<Member>>) -> Result<Next, CtrlError> {
    check_count(joining.len())?;
    for (&gid, members) in joining {
        if gid == NO_GROUP {
            return Err(CtrlError::ReservedGroup { gid });
        }
        if latest.groups.contains_key(&gid) {
            return Err(CtrlError::GroupExists { gid });
        }
        check_members(gid, members)?;
    }
    let mut groups = latest.groups.clone();
    groups.extend(joining.iter().map(|(&g, m)| (g, m.clone())));
    let shards = rebalance(&latest.shards, &groups.keys().copied().collect());
    Ok((groups, shards))
}

fn leave(latest: &Config, gids: &BTreeSet<GroupId>) -> Result<Next, CtrlError> {
    check_count(gids.len())?;
    if let Some(&gid) = gids.iter().find(|g| !latest.groups.contains_key(g)) {
        return Err(CtrlError::UnknownGroup { gid });
    }
    let mut groups = latest.groups.clone();
    groups.retain(|g, _| !gids.contains(g));
    let shards = rebalance(&latest.shards, &groups.keys().copied().collect());
    Ok((groups, shards))
}

fn move_shard(latest: &Config, shard: ShardId, gid: GroupId) -> Result<Next, CtrlError> {
    let count = latest.shards.len() as u32;
    if shard >= count {
        return Err(CtrlError::NoSuchShard {
            shard,
            shards: count,
        });
    }
    if !latest.groups.contains_key(&gid) {
        return Err(CtrlError::UnknownGroup { gid });
    }
    let mut shards = latest.shards.clone();
    shards[shard as usize] = gid;
    Ok((latest.groups.clone(), shards))
}

fn set_members(latest: &Config, gid: GroupId, members: &[Member]) -> Result<Next, CtrlError> {
    if !latest.groups.contains_key(&gid) {
        return Err(CtrlError::UnknownGroup { gid });
    }
    check_members(gid, members)?;
    let mut groups = latest.groups.clone();
    groups.insert(gid, members.to_vec());
    Ok((groups, latest.shards.clone()))
}

fn check_count(groups: usize) -> Result<(), CtrlError> {
    if groups == 0 {
        return Err(CtrlError::EmptyRequest);
    }
    too_large("groups in one request", groups, MAX_GROUPS_PER_REQUEST)
}

fn check_members(gid: GroupId, members: &[Member]) -> Result<(), CtrlError> {
    too_large("members of a group", members.len(), MAX_MEMBERS_PER_GROUP)?;
    for m in members {
        too_large("a member address", m.addr.len(), MAX_ADDR_BYTES)?;
    }
    let distinct: BTreeSet<_> = members.iter().map(|m| m.id).collect();
    if members.is_empty() || distinct.len() != members.len() {
        return Err(CtrlError::BadMembers { gid });
    }
    Ok(())
}

fn too_large(what: &str, len: usize, max: usize) -> Result<(), CtrlError> {
    if len > max {
        return Err(CtrlError::TooLarge {
            what: what.to_string(),
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(())
}
