//! The seam between `replica` (one Raft node and its driver loop) and the
//! replicated state machines it drives: [`StateMachine`].
//!
//! Owns: the trait and [`SnapshotError`]. Nothing else: no Raft types, no
//! I/O. `kv`, the shard controller and the sharded groups implement the
//! trait; `replica::Replica<S, M: rsm::StateMachine>` hosts any of them, so
//! the simulator and the server run the same driver code for every kind of
//! group.
//!
//! # The determinism invariant
//!
//! Every replica of a group applies the same committed entries in the same
//! order, and must end in the same state with the same responses. So
//! [`StateMachine::apply`] depends only on the machine's state and the
//! entry's bytes: no clock (time enters *inside* the payload, stamped by the
//! proposing leader: [`StateMachine::encode_command`] gets `now_ms`), no
//! randomness, no iteration over unordered maps, no configuration that could
//! differ between replicas unless it travels in the snapshot. A
//! [`StateMachine::snapshot`] restored on another replica gives a machine
//! that answers every later entry and query exactly as the original would.
//! ([`StateMachine::snapshot_to`] writes the same bytes as they are produced.)
//!
//! # Who calls what
//!
//! - the leader's replica turns a client's command into a log payload with
//!   [`StateMachine::encode_command`] (and, when idle, into a log-time tick
//!   with [`StateMachine::tick_command`]);
//! - every replica calls [`StateMachine::apply`] for each committed entry in
//!   index order (a Raft no-op arrives as empty `data`);
//! - ReadIndex reads are answered by [`StateMachine::query`] once
//!   [`StateMachine::applied_index`] has reached the confirmed read index;
//! - log compaction streams [`StateMachine::snapshot_to`] into the store (a
//!   snapshot file; the whole state is never encoded in memory); booting from storage
//!   and installing a leader's snapshot call [`StateMachine::replace_with_snapshot`]
//!   (the old state is dropped before the new one is decoded; the snapshot's bytes
//!   are released as they are read, see [`SnapshotInput`]).
//!
//! ```
//! use bytes::Bytes;
//! use rsm::{SnapshotError, StateMachine};
//!
//! /// Counts the non-empty entries it applied.
//! #[derive(Default)]
//! struct Counter { applied: u64, count: u64 }
//!
//! impl StateMachine for Counter {
//!     type Command = ();
//!     type Response = u64;
//!     type Query = ();
//!     type QueryResult = u64;
//!     fn encode_command(&self, _: &(), _now_ms: u64) -> Bytes { Bytes::from_static(b"+") }
//!     fn tick_command(&self, _now_ms: u64) -> Option<Bytes> { None }
//!     fn apply(&mut self, index: u64, data: &[u8]) -> u64 {
//!         assert!(index > self.applied);
//!         self.applied = index;
//!         self.count += u64::from(!data.is_empty());
//!         self.count
//!     }
//!     fn applied_index(&self) -> u64 { self.applied }
//!     fn query(&self, _: &()) -> u64 { self.count }
//!     fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
//!         out.write_all(&self.applied.to_le_bytes())?;
//!         out.write_all(&self.count.to_le_bytes())
//!     }
//!     fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
//!         let word = |i: usize| data.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
//!         let (Some(applied), Some(count), 16) = (word(0), word(1), data.len()) else {
//!             return Err(SnapshotError::msg("not a counter snapshot"));
//!         };
//!         *self = Counter { applied, count };
//!         Ok(())
//!     }
//! }
//!
//! let mut c = Counter::default();
//! let cmd = c.encode_command(&(), 0);
//! assert_eq!(c.apply(1, &[]), 0); // a leader's no-op
//! assert_eq!(c.apply(2, &cmd), 1);
//! let mut d = Counter::default();
//! d.restore(&c.snapshot()).unwrap();
//! assert_eq!((d.applied_index(), d.query(&())), (2, 1));
//! assert!(d.restore(b"junk").is_err());
//! ```

pub mod frame;
mod input;

pub use input::{ReleasingCursor, SnapshotInput, RELEASE_STEP};

/// How often (leader clock, ms) a leader whose machine reports
/// [`StateMachine::purge_due`] proposes a tick at most.
pub const PURGE_TICK_INTERVAL_MS: u64 = 100;

use bytes::Bytes;

/// A deterministic replicated state machine driven by `replica`.
///
/// See the crate docs for the determinism invariant every implementation
/// keeps.
pub trait StateMachine {
    /// What a client proposes (decoded).
    type Command;
    /// What `apply` answers for one entry.
    type Response: Clone + std::fmt::Debug + PartialEq;
    /// A ReadIndex read.
    type Query;
    /// What `query` answers.
    type QueryResult: Clone + std::fmt::Debug + PartialEq;

    /// Encodes `cmd` as the payload of a log entry stamped with log time
    /// `now_ms` (the proposing leader's clock; the machine's own log time is
    /// then whatever it derives from applied payloads, never a clock).
    fn encode_command(&self, cmd: &Self::Command, now_ms: u64) -> Bytes;

    /// A payload that only advances log time (an idle leader proposes it);
    /// `None` if the machine keeps no log time.
    fn tick_command(&self, now_ms: u64) -> Option<Bytes>;

    /// Applies the committed entry at `index` (empty `data`: a Raft no-op,
    /// only the index moves). Deterministic: depends only on state and bytes.
    /// Undecodable bytes are a response (an error value), not a panic.
    ///
    /// Panics if `index <= self.applied_index()` (a driver bug: re-applying
    /// would break exactly-once).
    fn apply(&mut self, index: u64, data: &[u8]) -> Self::Response;

    /// Index of the last applied entry (0 before any).
    fn applied_index(&self) -> u64;

    /// Answers a read from applied state. The caller has waited until
    /// `applied_index()` reached the read's confirmed read index.
    fn query(&self, q: &Self::Query) -> Self::QueryResult;

    /// Writes the whole state to `out`, as bytes `restore` accepts (on any
    /// replica), as they are produced: a large state must not be encoded whole
    /// in memory first (log compaction streams it to the snapshot file). The
    /// only errors are `out`'s, returned as they came (a full disk
    /// must still say so).
    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;

    /// The bytes [`StateMachine::snapshot_to`] writes, in one buffer: for
    /// callers that need them whole (the admin backup, tests), never log
    /// compaction.
    fn snapshot(&self) -> Bytes {
        let mut out = Vec::new();
        self.snapshot_to(&mut out)
            .expect("writing to a Vec cannot fail");
        Bytes::from(out)
    }

    /// Replaces the whole state with a snapshot's (applied index included).
    /// On `Err`, `self` is unchanged. Never panics on bad input.
    fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError>;

    /// How many items (keys, configurations, ...) the machine holds, for
    /// status reports. Default: 0 (not counted).
    fn item_count(&self) -> usize {
        0
    }

    /// How many of those items carry an expiry time (kv: keys with a TTL;
    /// INFO's `db0:...,expires=`), for status reports. Default: 0.
    fn expiring_count(&self) -> usize {
        0
    }

    /// How many expired keys this process's active expiry has removed
    /// (INFO's `expired_keys`; a statistic, not state). Default: 0.
    fn expired_count(&self) -> u64 {
        0
    }

    /// How many client sessions are live, for status reports. Default: 0.
    fn session_count(&self) -> usize {
        0
    }

    /// Replaces the whole state with a snapshot's (applied index included), dropping
    /// the current state *first*, so that a machine and its successor are never both in
    /// memory (a follower installing a leader's snapshot as large as its own state, a
    /// node booting). Tells `input` which of its bytes it has read as it goes
    /// ([`SnapshotInput::release`]), so a snapshot file's pages can leave memory behind
    /// the decoder. Deterministic, never panics on bad input.
    ///
    /// On `Err`, the machine is either unchanged or empty, as it was made (applied
    /// index 0, its own configuration): the caller rebuilds it (the replica: from its own
    /// storage). Default: [`StateMachine::restore`] (unchanged on `Err`; both states are
    /// held while it decodes).
    fn replace_with_snapshot(&mut self, input: SnapshotInput<'_>) -> Result<(), SnapshotError> {
        self.restore(input.data())
    }

    /// Whether the machine holds state that is due for removal by log time
    /// at the leader's clock `now_ms` (e.g. expired keys): a leader then
    /// proposes [`StateMachine::tick_command`] soon (every
    /// [`PURGE_TICK_INTERVAL_MS`] at most) rather than only when idle for
    /// the session tick interval. Default: never.
    fn purge_due(&self, _now_ms: u64) -> bool {
        false
    }
}

/// Why snapshot bytes could not be restored. Wraps the machine's own error
/// (reach it with [`SnapshotError::downcast_ref`]); displays as it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SnapshotError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl SnapshotError {
    /// Wraps a machine-specific error.
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        SnapshotError(Box::new(source))
    }

    /// An error that is only a message.
    pub fn msg(message: impl Into<String>) -> Self {
        SnapshotError(message.into().into())
    }

    /// The wrapped error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::SnapshotError;

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("bad magic")]
    struct BadMagic;

    #[test]
    fn snapshot_error_displays_and_downcasts_to_its_source() {
        let e = SnapshotError::new(BadMagic);
        assert_eq!(e.to_string(), "bad magic");
        assert_eq!(e.downcast_ref::<BadMagic>(), Some(&BadMagic));
        let m = SnapshotError::msg("too short");
        assert_eq!(m.to_string(), "too short");
        assert!(m.downcast_ref::<BadMagic>().is_none());
    }
}
