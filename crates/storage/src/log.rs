//! The in-memory view of the log: every live entry's term and on-disk location, plus a
//! bounded cache holding the newest entries themselves.
//!
//! Invariants:
//! * `slots[i]` describes index `base.index + 1 + i` (contiguous, no gaps).
//! * The cache is a suffix: `cache[j]` is the entry of `slots[slots.len() - cache.len() + j]`.
//! * `held_bytes` is the sum of `Entry::size_bytes` over every live entry, cached or not
//!   (an uncached one's size follows from its frame's: `record::entry_size_bytes`).
//! * `cached_bytes` is the sum of `Entry::size_bytes` over cached entries, and exceeds
//!   `cache_max_bytes` only between an append and the next `evict` (the owner evicts only
//!   after the entries reached the file, so an evicted entry can always be read back).
//!
//! Memory: 32 bytes per live entry for term + location (the retained log after a
//! snapshot is bounded by the snapshot threshold), plus at most about `cache_max_bytes`
//! of entry data and 56 bytes per cached entry; both deques give back their spare
//! capacity once mostly empty. The cache is its own deque rather than an
//! optional entry in every slot so that an entry that left the cache costs 32 bytes, not
//! 88. The leader replicates from the tail, which is cached, so the common path never
//! reads the disk; a slow follower far behind causes reads.

use crate::record;
use crate::segment::Loc;
use raft::{Entry, Index, SnapshotMeta, StorageError, StorageResult, Term};
use std::collections::VecDeque;

#[derive(Debug)]
struct Slot {
    term: Term,
    loc: Loc,
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
    cache: VecDeque<Entry>,
    held_bytes: u64,
    cached_bytes: u64,
    cache_max_bytes: u64,
}

impl Log {
    pub fn new(base: SnapshotMeta, cache_max_bytes: u64) -> Log {
        Log {
            base,
            slots: VecDeque::new(),
            cache: VecDeque::new(),
            held_bytes: 0,
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

    /// The live entries' bytes, by `Entry::size_bytes` (kept as they come and go).
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Position in `slots` of the first cached entry.
    fn cached_from(&self) -> usize {
        self.slots.len() - self.cache.len()
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
        let at = (index - self.first_index()) as usize;
        match at.checked_sub(self.cached_from()) {
            Some(j) => Lookup::Cached(&self.cache[j]),
            None => Lookup::OnDisk(self.slots[at].loc),
        }
    }

    /// Drops every entry at or after `index` (which must be > base.index).
    pub fn truncate_from(&mut self, index: Index) {
        debug_assert!(index > self.base.index);
        let keep = ((index - self.first_index()) as usize).min(self.slots.len());
        let uncached_dropped = self.cached_from().saturating_sub(keep);
        let cache_keep = self.cache.len() - (self.slots.len() - keep - uncached_dropped);
        for e in self.cache.drain(cache_keep..) {
            self.cached_bytes -= e.size_bytes();
        }
        for s in self.slots.drain(keep..) {
            self.held_bytes -= record::entry_size_bytes(s.loc.frame_bytes);
        }
        if uncached_dropped > 0 {
            debug_assert!(self.cache.is_empty());
        }
    }

    /// Appends `entry`, which must be at `last_index() + 1`, found at `loc`.
    pub fn push(&mut self, entry: Entry, loc: Loc) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log append must be contiguous"
        );
        debug_assert_eq!(
            record::entry_size_bytes(loc.frame_bytes),
            entry.size_bytes(),
            "an entry's size follows from its frame's"
        );
        self.held_bytes += entry.size_bytes();
        self.cached_bytes += entry.size_bytes();
        self.slots.push_back(Slot {
            term: entry.term,
            loc,
        });
        self.cache.push_back(entry);
    }

    /// Moves the base to `meta`, keeping entries after it (they must exist up to it).
    pub fn compact_to(&mut self, meta: SnapshotMeta) {
        let drop = (meta.index - self.base.index) as usize;
        assert!(drop <= self.slots.len(), "compact past the end of the log");
        let cached_dropped = drop.saturating_sub(self.cached_from());
        for e in self.cache.drain(..cached_dropped) {
            self.cached_bytes -= e.size_bytes();
        }
        for s in self.slots.drain(..drop) {
            self.held_bytes -= record::entry_size_bytes(s.loc.frame_bytes);
        }
        shrink(&mut self.slots);
        self.base = meta;
    }

    /// Discards everything and moves the base to `meta`.
    pub fn reset(&mut self, meta: SnapshotMeta) {
        self.slots.clear();
        self.cache.clear();
        self.held_bytes = 0;
        self.cached_bytes = 0;
        self.base = meta;
    }

    /// Evicts the oldest cached entries until the cache is within its bound. Call only
    /// when every entry has reached its file.
    pub fn evict(&mut self) {
        while self.cached_bytes > self.cache_max_bytes {
            let Some(e) = self.cache.pop_front() else {
                break;
            };
            self.cached_bytes -= e.size_bytes();
        }
        shrink(&mut self.cache);
    }
}

/// Gives back a deque's spare capacity once it is mostly empty (after a compaction or
/// an eviction), so a burst of many small entries does not pin its peak for good.
/// Amortised: it reallocates only when less than a quarter of the capacity is used.
fn shrink<T>(d: &mut VecDeque<T>) {
    if d.capacity() > 4 * d.len() + 1024 {
        d.shrink_to(2 * d.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Where `log_of`'s entry `i` (10 bytes of data) would be written.
    fn loc(i: u64) -> Loc {
        let frame_bytes = record::entry_frame_bytes(10) as u32;
        Loc {
            seq: 1,
            offset: i * u64::from(frame_bytes),
            frame_bytes,
        }
    }

    fn log_of(n: u64, cache_max_bytes: u64) -> Log {
        let mut log = Log::new(SnapshotMeta { index: 0, term: 0 }, cache_max_bytes);
        for i in 1..=n {
            log.push(Entry::normal(1, i, Bytes::from(vec![0; 10])), loc(i));
        }
        log
    }

    /// Which indexes are answered from the cache, and the byte count against them.
    fn check(log: &Log) -> Vec<Index> {
        let cached: Vec<Index> = (log.first_index()..=log.last_index())
            .filter(|&i| match log.lookup(i) {
                Lookup::Cached(e) => {
                    assert_eq!(e.index, i);
                    true
                }
                Lookup::OnDisk(l) => {
                    assert_eq!(l, loc(i));
                    false
                }
            })
            .collect();
        let bytes: u64 = log.cache.iter().map(Entry::size_bytes).sum();
        assert_eq!(bytes, log.cached_bytes);
        let per = Entry::normal(1, 1, Bytes::from(vec![0; 10])).size_bytes();
        assert_eq!(log.held_bytes(), log.slots.len() as u64 * per, "held bytes");
        cached
    }

    #[test]
    fn the_cache_stays_a_suffix_through_evict_truncate_and_compact() {
        let per = Entry::normal(1, 1, Bytes::from(vec![0; 10])).size_bytes();
        let mut log = log_of(10, 4 * per);
        log.evict();
        assert_eq!(check(&log), vec![7, 8, 9, 10]);
        log.truncate_from(9); // inside the cache
        assert_eq!(check(&log), vec![7, 8]);
        log.truncate_from(5); // below it: the cache empties
        assert_eq!(check(&log), Vec::<Index>::new());
        assert_eq!(log.last_index(), 4);
        for i in 5..=8 {
            log.push(Entry::normal(2, i, Bytes::from(vec![0; 10])), loc(i));
        }
        log.compact_to(SnapshotMeta { index: 3, term: 1 }); // uncached part only
        assert_eq!(check(&log), vec![5, 6, 7, 8]);
        log.compact_to(SnapshotMeta { index: 6, term: 2 }); // into the cache
        assert_eq!(check(&log), vec![7, 8]);
        assert_eq!(log.term(6).unwrap(), 2);
        log.reset(SnapshotMeta { index: 20, term: 3 });
        assert_eq!(check(&log), Vec::<Index>::new());
        assert_eq!((log.first_index(), log.last_index()), (21, 20));
    }
}
