//! The group's fixed parameters: which group it is, the keyspace's shard
//! count, and the session tunables.
//!
//! Invariant: every replica of a group runs with the same `Settings`
//! (they decide ownership, expiry and the response window), so they travel
//! inside the snapshot and a restore refuses a snapshot of another group or
//! keyspace.

use serde::{Deserialize, Serialize};
use shardmeta::{GroupId, Keyspace, NO_GROUP};

/// Tunables identical on every replica of one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// This group's id (`>= 1`).
    pub gid: GroupId,
    /// The keyspace's shard count (every configuration has this many).
    pub shards: u32,
    /// A session idle longer than this much *log time* is expired.
    pub session_timeout_ms: u64,
    /// No new session is created while this many are live (a request from
    /// a new client then gets `SessionsFull`). Sessions merged in with a
    /// shard are not refused, so the table may exceed the cap by what other
    /// groups ship; expiry brings it back.
    pub max_sessions: u64,
    /// How many of a client's most recent seqs keep their response.
    pub response_window: u64,
}

impl Settings {
    /// Defaults for group `gid` over `shards` shards.
    pub fn new(gid: GroupId, shards: u32) -> Self {
        Settings {
            gid,
            shards,
            session_timeout_ms: 5 * 60 * 1000,
            max_sessions: 10_000,
            response_window: 8,
        }
    }

    /// Whether the values are usable; `Err` names the first bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.gid == NO_GROUP {
            return Err("gid must be >= 1");
        }
        if Keyspace::new(self.shards).is_err() {
            return Err("shards must be in 1..=16384");
        }
        if self.session_timeout_ms == 0 {
            return Err("session_timeout_ms must be > 0");
        }
        if self.max_sessions == 0 {
            return Err("max_sessions must be > 0");
        }
        if self.response_window == 0 || self.response_window > kv::MAX_RESPONSE_WINDOW {
            return Err("response_window must be in 1..=1024");
        }
        Ok(())
    }

    pub(crate) fn keyspace(&self) -> Keyspace {
        Keyspace::new(self.shards).expect("validated settings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(Settings::new(1, 10).validate(), Ok(()));
        assert!(Settings::new(0, 10).validate().is_err());
        assert!(Settings::new(1, 0).validate().is_err());
        let bad = Settings {
            response_window: 0,
            ..Settings::new(1, 10)
        };
        assert!(bad.validate().is_err());
    }
}
