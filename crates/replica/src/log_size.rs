//! When to snapshot: the persisted Raft state's size against the configured threshold.
//!
//! The size is the store's running total (`Storage::entry_bytes`, O(1)), read after
//! every batch; nothing here reads the log back. (It once did, to measure exactly: at
//! a 64 MiB threshold that read every entry back from the segment files, 1–2 s on
//! the Raft thread, long enough to cost the leader its leadership.)
//!
//! Invariant: once a snapshot left the log over the threshold (its entries not yet
//! applied, so not compactable), the next snapshot waits until either those entries
//! are applied or the log grew by another eighth of the threshold: a log over the
//! threshold is never compacted again on every batch for a few entries each time.

use raft::Storage;

use crate::config::HARD_STATE_BYTES;

#[derive(Debug)]
pub struct LogSize {
    threshold_bytes: Option<u64>,
    /// Snapshot once the size reaches this.
    next_check_bytes: u64,
    /// Over the threshold at the last look, with entries up to this index not yet
    /// applied: snapshot again once they are applied, even if nothing more is appended.
    recheck_at_applied: Option<u64>,
}

impl LogSize {
    pub fn new(threshold_bytes: Option<u64>, storage: &impl Storage) -> Self {
        let mut s = LogSize {
            threshold_bytes,
            next_check_bytes: 0,
            recheck_at_applied: None,
        };
        s.measure(storage);
        s
    }

    /// Whether the log has reached the threshold, or entries that kept an
    /// over-threshold log from being compacted are now applied; if so, takes
    /// the new bearings (`measure`) and says whether the log is over the threshold.
    pub fn due(&mut self, storage: &impl Storage, applied: u64) -> bool {
        let look = self.threshold_bytes.is_some()
            && (persisted_bytes(storage) >= self.next_check_bytes
                || self.recheck_at_applied.is_some_and(|i| applied >= i));
        look && self.measure(storage)
    }

    /// Takes new bearings after the log changed other than by appends (a snapshot
    /// taken or installed); returns whether it is at or over the threshold.
    pub fn measure(&mut self, storage: &impl Storage) -> bool {
        let Some(threshold) = self.threshold_bytes else {
            return false;
        };
        let bytes = persisted_bytes(storage);
        let over = bytes >= threshold;
        let holds_entries = storage.first_index() <= storage.last_index();
        self.recheck_at_applied = (over && holds_entries).then(|| storage.last_index());
        // Over the threshold but nothing more to compact (entries not applied
        // yet): look again after another eighth of the threshold, not at once.
        self.next_check_bytes = if over {
            bytes + threshold / 8 + 1
        } else {
            threshold
        };
        over
    }
}

/// Hard state plus every entry the storage holds, by `Entry::size_bytes`.
pub fn persisted_bytes(storage: &impl Storage) -> u64 {
    HARD_STATE_BYTES + storage.entry_bytes()
}
