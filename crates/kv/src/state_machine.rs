//! The replicated state machine: applies committed log entries in order.
//!
//! Owns: the applied index, log time, the data ([`Store`]) and the client
//! sessions ([`SessionTable`]), and the order in which one entry touches
//! them: advance log time, expire idle sessions, purge up to
//! [`PURGE_PER_ENTRY`] dead keys, then run the command (its meaning is in
//! `ops`, shared with `shardkv`).
//!
//! # Reads and expiry are linearizable
//!
//! A key's death is part of the replicated state: it is dead in the state
//! after entry `i` iff its expiry instant is at or before the log time of
//! entries `..= i` (the largest leader stamp applied). A ReadIndex read is
//! answered from the state after some applied index `a >= read index`, and
//! [`StateMachine::query`] judges expiry against *that state's* log time —
//! never a local clock. So every read returns the state after a log prefix
//! that includes every write acknowledged before the read began, as any
//! linearizable read of this log-time object does; two reads on two
//! replicas cannot disagree out of order because of their clocks.
//!
//! Why that is linearizable and not only "fresh": the object the log
//! replicates is the pair (keys, log time), and log time moves only when an
//! entry is applied. Expiry is therefore not something that happens between
//! entries; a key dies *at* the entry whose stamp passes its instant, an
//! event of the log like any write. A ReadIndex read answered at applied
//! index `a` is a pure function of the state after entries `..= a`; `a` is
//! at least the commit index when the read began (so it follows every
//! write, and every expiry, acknowledged before) and at most the commit
//! index when it is answered (so nothing it saw can be undone). Placing the
//! read right after entry `a` in the total order of the log is thus a
//! linearization point inside the read's real-time interval, the same
//! argument as for `GET`, and it holds for every read-only op
//! ([`Op::is_read_only`]: `MGET`, `EXISTS`, `TTL`, `TYPE`, `SCAN`,
//! `DBSIZE`, the hash reads, `WATCH`'s versions ...): TTL's remaining time
//! is computed from the same log time, so it is what a log entry placed
//! there would have answered. What a ReadIndex read does *not* do is
//! advance log time (a read through the log would stamp it first); it
//! never needs to, since only an entry can make a key die. The cost:
//! a key outlives its wall-clock instant until an entry stamped later is
//! applied; the leader proposes a tick soon after a key dies
//! ([`StateMachine::purge_due`], checked on every Raft tick), so that is a
//! round trip, not the idle-tick interval.
//!
//! Determinism: the outcome of `apply` depends only on the state and the
//! entry bytes (no clock, no randomness, ordered maps), so replicas fed the
//! same entries hold identical state and return identical responses.
//!
//! Invariants:
//! - `applied_index` strictly increases; `apply` panics on an index at or
//!   below it (a driver bug: re-applying would break exactly-once);
//! - `log_time_ms` never decreases (it is the max entry timestamp seen);
//! - no session has been idle longer than `config.session_timeout_ms` as of
//!   `log_time_ms`, and there are at most `config.max_sessions`.

use bytes::Bytes;

use crate::command::{Command, Entry, KvError, Op, Reply, Request, Response};
use crate::config::Config;
use crate::ops::{self, Ctx};
use crate::session::{SessionTable, Verdict};
use crate::snapshot::{self, SnapshotError};
use crate::store::Store;
use crate::wire::decode_entry;
use crate::ExpiredKeys;

/// Dead keys removed per applied entry at most (active expiry stays cheap
/// per entry; a leader with more to purge proposes ticks until done).
pub const PURGE_PER_ENTRY: usize = 128;

/// One replica's key-value state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    pub(crate) config: Config,
    // Invariant: strictly increases with every apply.
    pub(crate) applied_index: u64,
    // Invariant: never decreases.
    pub(crate) log_time_ms: u64,
    pub(crate) store: Store,
    pub(crate) sessions: SessionTable,
    /// Keys removed by active expiry in this process (a statistic, not
    /// state: see [`ExpiredKeys`]).
    pub(crate) expired: ExpiredKeys,
}

impl StateMachine {
    /// An empty state machine. Panics if `config` is invalid (a bug: the
    /// config comes from the operator's flags, checked at startup).
    pub fn new(config: Config) -> Self {
        if let Err(why) = config.validate() {
            panic!("invalid kv config {config:?}: {why}");
        }
        StateMachine {
            config,
            applied_index: 0,
            log_time_ms: 0,
            store: Store::new(),
            sessions: SessionTable::new(),
            expired: ExpiredKeys::default(),
        }
    }

    /// Applies the committed entry at `index` and returns its response.
    ///
    /// `entry_bytes` is an [`crate::encode_entry`] payload, or empty for an
    /// entry with no application data (Raft's leader no-op, a config change):
    /// that only advances the applied index and replies [`Reply::Done`].
    /// Undecodable bytes reply [`KvError::Malformed`] and change nothing else.
    ///
    /// Panics if `index <= applied_index()`.
    pub fn apply(&mut self, index: u64, entry_bytes: &[u8]) -> Response {
        assert!(
            index > self.applied_index,
            "apply of index {index} at or below applied index {}",
            self.applied_index
        );
        self.applied_index = index;
        let response = match entry_bytes {
            [] => Ok(Reply::Done),
            bytes => match decode_entry(bytes) {
                Ok(entry) => self.apply_entry(index, entry),
                Err(e) => Err(KvError::Malformed {
                    reason: e.to_string(),
                }),
            },
        };
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        response
    }

    /// A ReadIndex read: the current string value, with no log entry (a
    /// key dead at log time, or of another type, reads as missing). The
    /// caller must first wait until `applied_index()` reaches the read index.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.store
            .live_str(key, self.log_time_ms)
            .map(Bytes::copy_from_slice)
    }

    /// A ReadIndex read of any read-only op ([`Op::is_read_only`]),
    /// judged at this state's log time (see the module docs).
    pub fn query(&self, op: &Op) -> Reply {
        ops::query(&self.store, op, self.log_time_ms)
    }

    /// Whether some key is dead by `leader_now_ms` (the leader's clock) and
    /// not yet purged: the leader then proposes a tick, which advances log
    /// time and purges.
    pub fn purge_due(&self, leader_now_ms: u64) -> bool {
        self.store
            .next_expiry_ms()
            .is_some_and(|t| t <= leader_now_ms)
    }

    /// Keys holding an expiry (dead ones not yet purged included).
    pub fn expiring_len(&self) -> usize {
        self.store.expiring_len()
    }

    /// Index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Log time: the largest entry timestamp applied so far.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `client_id` names a live session.
    pub fn has_session(&self, client_id: u64) -> bool {
        self.sessions.contains(client_id)
    }

    /// Live string data in key order (dead keys and other types skipped).
    /// Sorts the keys: for tests and tools.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.store.live_strings(self.log_time_ms)
    }

    /// Serialises the whole state (see `snapshot` module for the format).
    pub fn snapshot(&self) -> Bytes {
        snapshot::encode(self)
    }

    /// [`StateMachine::snapshot`]'s bytes, written to `out` as they are
    /// encoded (never whole in memory). The only errors are `out`'s.
    pub fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        snapshot::encode_to(self, out)
    }

    /// Rebuilds a state machine from [`StateMachine::snapshot`] bytes,
    /// adopting the config stored in them. Never panics on bad input.
    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        snapshot::decode(bytes)
    }

    /// Replaces the whole state with `decoded`, keeping the expired-keys count (this
    /// process's statistic, not state).
    fn adopt(&mut self, decoded: StateMachine) {
        let expired = self.expired;
        *self = decoded;
        self.expired = expired;
    }

    /// Panics with context if an invariant is broken.
    pub fn check_invariants(&self) {
        let c = &self.config;
        self.sessions
            .check_invariants(c.max_sessions, c.response_window);
    }

    fn apply_entry(&mut self, index: u64, entry: Entry) -> Response {
        self.log_time_ms = self.log_time_ms.max(entry.timestamp_ms);
        self.sessions
            .expire(self.log_time_ms, self.config.session_timeout_ms);
        let purged = self.store.purge_expired(self.log_time_ms, PURGE_PER_ENTRY);
        self.expired.add(purged);
        match entry.cmd {
            Command::RegisterSession => {
                self.sessions
                    .register(index, index, self.log_time_ms, self.config.max_sessions);
                Ok(Reply::Registered { client_id: index })
            }
            Command::Request(req) => self.apply_request(index, req),
            Command::Tick => Ok(Reply::Done),
        }
    }

    fn apply_request(&mut self, index: u64, req: Request) -> Response {
        let Request { client_id, seq, op } = req;
        let window = self.config.response_window;
        let verdict = self
            .sessions
            .admit(client_id, seq, window, index, self.log_time_ms);
        match verdict {
            Verdict::Unknown => Err(KvError::SessionExpired { client_id }),
            Verdict::Stale => Err(KvError::StaleRequest { client_id, seq }),
            Verdict::Duplicate(response) => response,
            Verdict::New => {
                let ctx = Ctx {
                    now_ms: self.log_time_ms,
                    index,
                };
                let response = ops::apply(&mut self.store, &op, ctx);
                self.sessions
                    .record(client_id, seq, response.clone(), window);
                response
            }
        }
    }
}

/// The seam `replica` drives: a command is stamped with the proposing
/// leader's `now_ms` (log time), an idle leader's tick is a
/// [`Command::Tick`], a ReadIndex query is a read-only [`Op`] (any other op
/// answers [`crate::CmdError::NotReadOnly`]). The inherent methods of the
/// same names are these exactly; kv's users need not import the trait.
impl rsm::StateMachine for StateMachine {
    type Command = Command;
    type Response = Response;
    type Query = Op;
    type QueryResult = Reply;

    fn encode_command(&self, cmd: &Command, now_ms: u64) -> Bytes {
        crate::wire::encode_entry(&Entry {
            timestamp_ms: now_ms,
            cmd: cmd.clone(),
        })
    }

    fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        Some(self.encode_command(&Command::Tick, now_ms))
    }

    fn apply(&mut self, index: u64, data: &[u8]) -> Response {
        StateMachine::apply(self, index, data)
    }

    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn query(&self, op: &Op) -> Reply {
        StateMachine::query(self, op)
    }

    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        StateMachine::snapshot_to(self, out)
    }

    /// Adopts the snapshot's config along with its data (see `config`); the
    /// expired-keys count is this process's statistic, kept.
    fn restore(&mut self, data: &[u8]) -> Result<(), rsm::SnapshotError> {
        let decoded = StateMachine::restore(data).map_err(rsm::SnapshotError::new)?;
        self.adopt(decoded);
        Ok(())
    }

    /// As `restore`, but the current state is dropped before the snapshot is decoded
    /// (on `Err` the machine is empty, with its config), and the input's pages are
    /// released as they are read.
    fn replace_with_snapshot(
        &mut self,
        input: rsm::SnapshotInput<'_>,
    ) -> Result<(), rsm::SnapshotError> {
        *self = StateMachine {
            expired: self.expired,
            ..StateMachine::new(self.config)
        };
        let decoded = snapshot::decode_input(input).map_err(rsm::SnapshotError::new)?;
        self.adopt(decoded);
        Ok(())
    }

    fn item_count(&self) -> usize {
        self.len()
    }

    fn session_count(&self) -> usize {
        StateMachine::session_count(self)
    }

    fn purge_due(&self, now_ms: u64) -> bool {
        StateMachine::purge_due(self, now_ms)
    }

    fn expiring_count(&self) -> usize {
        self.expiring_len()
    }

    fn expired_count(&self) -> u64 {
        self.expired.0
    }
}
