//! The in-memory view of the log: every live entry's term and on-disk location, plus a
//! bounded cache holding the newest entries themselves.
//!
//! Invariants:
//! * `slots[i]` describes index `base.index + 1 + i` (contiguous, no gaps).
//! * Cached entries form a suffix: `slots[cached_from..]` hold `Some(entry)`, the rest `None`.
//! * `cached_bytes` is the sum of `Entry::size_bytes` over cached entries, and exceeds
//!   `cache_max_bytes` only between an append and the next `evict` (the owner evicts only
//!   after the entries reached the file, so an evicted entry can always be read back).
//!
//! Memory: 40 bytes per live entry for term + location, plus at most about
//! `cache_max_bytes` of entry data. The leader replicates from the tail, which is cached,
//! so the common path never reads the disk; a slow follower far behind causes reads.

use crate::segment::Loc;
use raft::{Entry, Index, SnapshotMeta, StorageError, StorageResult, Term};
use std::collections::VecDeque;

#[derive(Debug)]
struct Slot {
    term: Term,
    loc: Loc,
    entry: Option<Entry>,
}

/// Where to find one entry.
pub enum Lookup<'a> {
    Cached(&'a Entry),
    OnDisk(Loc),
}

#[derive(Debug)]
pub struct Log {
    base: SnapshotMeta,
    slots: VecDeque<Slot>,
    cached_from: usize,
    cached_bytes: u64,
    cache_max_bytes: u64,
}

impl Log {
    pub fn new(base: SnapshotMeta, cache_max_bytes: u64) -> Log {
        Log {
            base,
            slots: VecDeque::new(),
            cached_from: 0,
            cached_bytes: 0,
            cache_max_bytes,
        }
    }

    pub fn first_index(&self) -> Index {
        self.base.index + 1
    }

    pub fn last_index(&self) -> Index {
        self.base.index + self.slots.len() as u64
    }

    pub fn term(&self, index: Index) -> StorageResult<Term> {
        if index == self.base.index {
            return Ok(self.base.term);
        }
        if index < self.base.index {
            return Err(StorageError::Compacted {
                index,
                first_index: self.first_index(),
            });
        }
        match self.slots.get((index - self.first_index()) as usize) {
            Some(s) => Ok(s.term),
            None => Err(StorageError::Unavailable {
                index,
                last_index: self.last_index(),
            }),
        }
    }

    /// The entry at `index`, which must be in `first_index()..=last_index()`.
    pub fn lookup(&self, index: Index) -> Lookup<'_> {
        let slot = &self.slots[(index - self.first_index()) as usize];
        match &slot.entry {
            Some(e) => Lookup::Cached(e),
            None => Lookup::OnDisk(slot.loc),
        }
    }

    /// Drops every entry at or after `index` (which must be > base.index).
    pub fn truncate_from(&mut self, index: Index) {
        debug_assert!(index > self.base.index);
        let keep = ((index - self.first_index()) as usize).min(self.slots.len());
        while self.slots.len() > keep {
            let s = self.slots.pop_back().expect("len > keep");
            if let Some(e) = s.entry {
                self.cached_bytes -= e.size_bytes();
            }
        }
        self.cached_from = self.cached_from.min(self.slots.len());
    }

    /// Appends `entry`, which must be at `last_index() + 1`, found at `loc`.
    pub fn push(&mut self, entry: Entry, loc: Loc) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log append must be contiguous"
        );
        self.cached_bytes += entry.size_bytes();
        self.slots.push_back(Slot {
            term: entry.term,
            loc,
            entry: Some(entry),
        });
    }

    /// Moves the base to `meta`, keeping entries after it (they must exist up to it).
    pub fn compact_to(&mut self, meta: SnapshotMeta) {
        let drop = (meta.index - self.base.index) as usize;
        assert!(drop <= self.slots.len(), "compact past the end of the log");
        for s in self.slots.drain(..drop) {
            if let Some(e) = s.entry {
                self.cached_bytes -= e.size_bytes();
            }
        }
        self.cached_from = self.cached_from.saturating_sub(drop);
        self.base = meta;
    }

    /// Discards everything and moves the base to `meta`.
    pub fn reset(&mut self, meta: SnapshotMeta) {
        self.slots.clear();
        self.cached_from = 0;
        self.cached_bytes = 0;
        self.base = meta;
    }

    /// Evicts the oldest cached entries until the cache is within its bound. Call only
    /// when every entry has reached its file.
    pub fn evict(&mut self) {
        while self.cached_bytes > self.cache_max_bytes && self.cached_from < self.slots.len() {
            let e = self.slots[self.cached_from]
                .entry
                .take()
                .expect("cached suffix invariant");
            self.cached_bytes -= e.size_bytes();
            self.cached_from += 1;
        }
    }
}
