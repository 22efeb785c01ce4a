//! The controller's tunables and the hard limits its decoders enforce.
//!
//! Invariant: every replica of the controller group runs with the same
//! [`Settings`] (the shard count shapes every configuration; the session
//! values decide expiry). To keep that true across snapshot installs the
//! settings travel inside the snapshot and a restored controller adopts them.

use serde::{Deserialize, Serialize};

/// Most groups one Join or Leave may name.
pub const MAX_GROUPS_PER_REQUEST: usize = 256;
/// Most members one group may list.
pub const MAX_MEMBERS_PER_GROUP: usize = 64;
/// Longest member address, in bytes.
pub const MAX_ADDR_BYTES: usize = 256;

/// Tunables that must be identical on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Shards in the keyspace (`shardmeta::Keyspace`'s count); every
    /// configuration's `shards` has this length. The lab uses 10.
    pub shards: u32,
    /// Sessions: as in `kv::Config` (idle log time before expiry, cap on
    /// live sessions, response window).
    pub session_timeout_ms: u64,
    pub max_sessions: u64,
    pub response_window: u64,
}

impl Settings {
    /// The lab's keyspace (10 shards) with kv's default session values.
    pub fn with_shards(shards: u32) -> Self {
        let kv = kv::Config::default();
        Settings {
            shards,
            session_timeout_ms: kv.session_timeout_ms,
            max_sessions: kv.max_sessions,
            response_window: kv.response_window,
        }
    }

    /// Whether the values are usable; `Err` names the first bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.shards == 0 || self.shards > shardmeta::MAX_SHARDS {
            return Err("shards must be in 1..=MAX_SHARDS");
        }
        kv::Config {
            session_timeout_ms: self.session_timeout_ms,
            max_sessions: self.max_sessions,
            response_window: self.response_window,
        }
        .validate()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::with_shards(10)
    }
}
