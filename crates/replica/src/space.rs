//! Waiting for disk space: the one policy every host follows when a
//! replica's log write finds the disk full — the single-group server driver
//! for its one replica, and `host::Host` for each group of a sharded process.
//!
//! `StorageError::NoSpace` is storage's promise that the write found no space
//! and nothing unsynced was acknowledged, and that reopening the directory
//! recovers the last durable state (the half-written record is cut as a torn
//! tail). So the host drops the replica (its pending requests end unknown, as
//! in a crash), refuses writes for it with a disk-full error, and every
//! [`DISK_FULL_RETRY_MS`] rebuilds it from its data directory, exactly as a
//! restart would, until that works. Any other storage failure — a failed
//! fsync above all, whose data may be gone from the page cache while the file
//! still reads fine (fsyncgate) — is not this: the host must stop.
//!
//! Invariant: a [`SpaceWait`] is made only from a `NoSpace` error, and two
//! reopen attempts are at least [`DISK_FULL_RETRY_MS`] apart.

use crate::ReplicaError;

/// How often a replica waiting for disk space is rebuilt from its directory.
pub const DISK_FULL_RETRY_MS: u64 = 1000;

/// Why `e` is a full disk (the storage's message), or `None` if it is
/// anything else (which stops the host).
pub fn no_space(e: &ReplicaError) -> Option<&str> {
    match e {
        ReplicaError::Storage(raft::StorageError::NoSpace(why)) => Some(why),
        _ => None,
    }
}

/// One replica waiting for disk space: why, and when to try reopening it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceWait {
    why: String,
    since_ms: u64,
    /// Invariant: `>= since_ms + DISK_FULL_RETRY_MS`.
    next_try_ms: u64,
    failed_reopens: u64,
}

impl SpaceWait {
    /// Starts waiting at `now_ms` if `e` is a full disk; `None` otherwise.
    pub fn from_error(e: &ReplicaError, now_ms: u64) -> Option<SpaceWait> {
        let why = no_space(e)?.to_string();
        Some(SpaceWait {
            why,
            since_ms: now_ms,
            next_try_ms: now_ms + DISK_FULL_RETRY_MS,
            failed_reopens: 0,
        })
    }

    /// The storage's message (what found no space).
    pub fn why(&self) -> &str {
        &self.why
    }

    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// When the next reopen is due.
    pub fn next_try_ms(&self) -> u64 {
        self.next_try_ms
    }

    /// Whether a reopen is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_try_ms
    }

    /// A reopen at `now_ms` failed (still no space): try again later.
    pub fn reopen_failed(&mut self, now_ms: u64) {
        self.failed_reopens += 1;
        self.next_try_ms = now_ms.max(self.next_try_ms) + DISK_FULL_RETRY_MS;
    }

    pub fn failed_reopens(&self) -> u64 {
        self.failed_reopens
    }

    /// The log line of a host that starts waiting (one wording everywhere).
    pub fn describe(&self) -> String {
        format!(
            "cannot write the Raft log, disk full: {}; refusing writes and retrying every \
             {DISK_FULL_RETRY_MS} ms (free space on the data directory's file system)",
            self.why
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_no_space_waits_and_retries_are_spaced() {
        let io = ReplicaError::Storage(raft::StorageError::Io("fdatasync: EIO".into()));
        assert!(SpaceWait::from_error(&io, 5).is_none(), "fsyncgate: stop");
        let full = ReplicaError::Storage(raft::StorageError::NoSpace("ENOSPC".into()));
        let mut w = SpaceWait::from_error(&full, 5).unwrap();
        assert_eq!(w.why(), "ENOSPC");
        assert!(!w.due(5 + DISK_FULL_RETRY_MS - 1));
        assert!(w.due(5 + DISK_FULL_RETRY_MS));
        w.reopen_failed(5 + DISK_FULL_RETRY_MS);
        assert!(!w.due(5 + 2 * DISK_FULL_RETRY_MS - 1));
        assert!(w.due(5 + 2 * DISK_FULL_RETRY_MS));
        assert_eq!(w.failed_reopens(), 1);
    }
}
