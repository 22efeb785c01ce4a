//! When to snapshot: tracks the persisted Raft state's size against the
//! configured threshold without rescanning the log on every drive.
//!
//! The estimate only grows by the bytes of appended entries (overwrites make
//! it an over-estimate, never an under-estimate); once it crosses the check
//! point the exact size is measured from `Storage` and the estimate reset to
//! it. Invariant: `estimate >=` the true size, except right after an external
//! change (snapshot install), after which the owner calls `measure`.

use raft::{Entry, Storage};

use crate::config::HARD_STATE_BYTES;

#[derive(Debug)]
pub struct LogSize {
    threshold_bytes: Option<u64>,
    estimate_bytes: u64,
    /// Measure exactly once the estimate reaches this.
    next_check_bytes: u64,
    /// Over the threshold at the last measure, with entries up to this
    /// index not yet applied (so not yet compactable): measure again once
    /// they are applied, even if nothing more is appended.
    recheck_at_applied: Option<u64>,
}

impl LogSize {
    pub fn new(threshold_bytes: Option<u64>, storage: &impl Storage) -> Self {
        let mut s = LogSize {
            threshold_bytes,
            estimate_bytes: 0,
            next_check_bytes: 0,
            recheck_at_applied: None,
        };
        s.measure(storage);
        s
    }

    pub fn estimate_bytes(&self) -> u64 {
        self.estimate_bytes
    }

    pub fn on_appended(&mut self, entries: &[Entry]) {
        self.estimate_bytes += entries.iter().map(Entry::size_bytes).sum::<u64>();
    }

    /// Whether the log may have reached the threshold, or entries that kept
    /// an over-threshold log from being compacted are now applied (measure
    /// to be sure).
    pub fn should_check(&self, applied: u64) -> bool {
        self.threshold_bytes.is_some()
            && (self.estimate_bytes >= self.next_check_bytes
                || self.recheck_at_applied.is_some_and(|i| applied >= i))
    }

    /// Measures the exact size; returns whether it is at or over the threshold.
    pub fn measure(&mut self, storage: &impl Storage) -> bool {
        self.estimate_bytes = exact_bytes(storage);
        let Some(threshold) = self.threshold_bytes else {
            return false;
        };
        let over = self.estimate_bytes >= threshold;
        let holds_entries = storage.first_index() <= storage.last_index();
        self.recheck_at_applied = (over && holds_entries).then(|| storage.last_index());
        // Over the threshold but nothing more to compact (entries not applied
        // yet): look again after another eighth of the threshold, not at once.
        self.next_check_bytes = if over {
            self.estimate_bytes + threshold / 8 + 1
        } else {
            threshold
        };
        over
    }
}

/// Hard state plus every entry the storage holds, by `Entry::size_bytes`.
pub fn exact_bytes(storage: &impl Storage) -> u64 {
    let (first, last) = (storage.first_index(), storage.last_index());
    if first > last {
        return HARD_STATE_BYTES;
    }
    let entries = storage
        .entries(first, last + 1, u64::MAX)
        .unwrap_or_default();
    HARD_STATE_BYTES + entries.iter().map(Entry::size_bytes).sum::<u64>()
}
