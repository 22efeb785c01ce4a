//! State-machine configuration and the hard limits of the codecs.
//!
//! Owns: [`Config`] (session timeout, session cap, response window) and the
//! byte limits every decoder enforces.
//!
//! Invariant: every replica of a group runs with the *same* `Config`, because
//! the config decides which sessions expire and which are evicted. To make
//! that hold across snapshot installs, the config travels inside the snapshot
//! and a restored state machine adopts it.

/// Largest key accepted by any decoder (and by the state machine).
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Largest value accepted by any decoder; an `Append` that would grow a value
/// past this fails with [`crate::KvError::ValueTooLarge`] instead.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Largest diagnostic string carried in a [`crate::KvError::Malformed`].
pub const MAX_REASON_BYTES: usize = 1024;
/// Upper bound on `Config::response_window` (keeps per-session memory bounded).
pub const MAX_RESPONSE_WINDOW: u64 = 1024;

/// Tunables that must be identical on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// A session idle for longer than this, measured in *log time* (the
    /// leader-assigned `timestamp_ms` of applied entries), is expired.
    pub session_timeout_ms: u64,
    /// At most this many live sessions; registering one more evicts the
    /// least-recently-used session.
    pub max_sessions: u64,
    /// How many of a session's most recent sequence numbers keep their
    /// response cached, i.e. how many requests one client may pipeline.
    /// `1` is the classic "one outstanding request per client" rule.
    pub response_window: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            session_timeout_ms: 5 * 60 * 1000,
            max_sessions: 10_000,
            response_window: 8,
        }
    }
}

impl Config {
    /// Whether the values are usable; `Err` names the first bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.session_timeout_ms == 0 {
            return Err("session_timeout_ms must be > 0");
        }
        if self.max_sessions == 0 {
            return Err("max_sessions must be > 0");
        }
        if self.response_window == 0 || self.response_window > MAX_RESPONSE_WINDOW {
            return Err("response_window must be in 1..=1024");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_zeroes_are_not() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = Config {
            session_timeout_ms: 0,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let bad = Config {
            max_sessions: 0,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let bad = Config {
            response_window: 0,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let bad = Config {
            response_window: MAX_RESPONSE_WINDOW + 1,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }
}
