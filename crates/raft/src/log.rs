//! `RaftLog`: the node's view of its log, stitched from the stable `Storage` and the
//! unstable tail, plus the commit and apply cursors.
//!
//! Invariants: `applied <= committed <= last_index()`; `first_index() - 1` is the index
//! of the latest snapshot (stable or unstable). Committed entries are never overwritten
//! (Log Matching and Leader Completeness, §5.3–5.4): `maybe_append` refuses to truncate
//! at or below `committed`.

use crate::error::StorageError;
use crate::storage::{limit_size, Storage};
use crate::types::{Entry, Index, Snapshot, Term};
use crate::unstable::Unstable;

pub struct RaftLog<S: Storage> {
    pub(crate) storage: S,
    pub(crate) unstable: Unstable,
    committed: Index,
    applied: Index,
}

impl<S: Storage> RaftLog<S> {
    pub fn new(storage: S, applied: Index) -> Self {
        let first = storage.first_index();
        let last = storage.last_index();
        let committed = storage.hard_state().commit.max(first - 1).min(last);
        let applied = applied.max(first - 1).min(committed);
        RaftLog {
            unstable: Unstable::new(last + 1),
            storage,
            committed,
            applied,
        }
    }

    pub fn committed(&self) -> Index {
        self.committed
    }

    pub fn applied(&self) -> Index {
        self.applied
    }

    pub fn first_index(&self) -> Index {
        self.unstable
            .maybe_first_index()
            .unwrap_or_else(|| self.storage.first_index())
    }

    pub fn last_index(&self) -> Index {
        self.unstable
            .maybe_last_index()
            .unwrap_or_else(|| self.storage.last_index())
    }

    /// The last index that is persisted *and* still part of this log (a stable suffix
    /// that the unstable tail replaces does not count).
    pub fn persisted_index(&self) -> Index {
        if let Some(s) = &self.unstable.snapshot {
            return s
                .meta
                .index
                .saturating_sub(1)
                .min(self.storage.last_index());
        }
        self.storage.last_index().min(self.unstable.offset - 1)
    }

    pub fn term(&self, index: Index) -> Result<Term, StorageError> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted {
                index,
                first_index: dummy + 1,
            });
        }
        let last = self.last_index();
        if index > last {
            return Err(StorageError::Unavailable {
                index,
                last_index: last,
            });
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        self.storage.term(index)
    }

    pub fn last_term(&self) -> Term {
        self.term(self.last_index())
            .expect("the last index always has a term")
    }

    pub fn match_term(&self, index: Index, term: Term) -> bool {
        self.term(index).ok() == Some(term)
    }

    /// §5.4.1: a candidate's log is at least as up-to-date as ours.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        let my_term = self.last_term();
        last_term > my_term || (last_term == my_term && last_index >= self.last_index())
    }

    /// Follower side of AppendEntries (Figure 2, receiver steps 2–5). Returns the index
    /// of the last new entry, or `None` when the log does not contain `prev_index/prev_term`.
    pub fn maybe_append(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        commit: Index,
        ents: &[Entry],
    ) -> Option<Index> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + ents.len() as u64;
        let conflict = self.find_conflict(ents);
        if conflict != 0 {
            // Never overwrite a committed entry (Leader Completeness makes a correct leader
            // never ask): refuse such a message instead of corrupting the log.
            if conflict <= self.committed {
                return None;
            }
            let start = (conflict - ents[0].index) as usize;
            self.unstable.truncate_and_append(&ents[start..]);
        }
        self.commit_to(commit.min(last_new));
        Some(last_new)
    }

    /// Index of the first entry of `ents` that is missing from or conflicts with the log;
    /// 0 when all of them are already present.
    fn find_conflict(&self, ents: &[Entry]) -> Index {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// Leader side: appends new entries at the end of the log. Returns the last index.
    pub fn append(&mut self, ents: &[Entry]) -> Index {
        if let Some(first) = ents.first() {
            assert!(
                first.index > self.committed,
                "append would overwrite committed entries"
            );
            self.unstable.truncate_and_append(ents);
        }
        self.last_index()
    }

    pub fn commit_to(&mut self, index: Index) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Figure 8: a leader commits by counting replicas only entries of its own term.
    pub fn maybe_commit(&mut self, index: Index, term: Term) -> bool {
        if index > self.committed && self.term(index).ok() == Some(term) {
            self.commit_to(index);
            return true;
        }
        false
    }

    pub fn applied_to(&mut self, index: Index) {
        if index > self.applied {
            assert!(
                index <= self.committed,
                "applied {index} beyond committed {}",
                self.committed
            );
            self.applied = index;
        }
    }

    /// Entries in `lo..hi`, at least one when non-empty, within `max_bytes`.
    pub fn slice(&self, lo: Index, hi: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let first = self.first_index();
        if lo < first {
            return Err(StorageError::Compacted {
                index: lo,
                first_index: first,
            });
        }
        let last = self.last_index();
        if hi > last + 1 {
            return Err(StorageError::Unavailable {
                index: hi - 1,
                last_index: last,
            });
        }
        let offset = self.unstable.offset;
        let mut out = if lo < offset {
            self.storage.entries(lo, hi.min(offset), max_bytes)?
        } else {
            Vec::new()
        };
        let stable_complete = out.last().is_none_or(|e| e.index + 1 == hi.min(offset));
        if hi > offset && stable_complete {
            let from = lo.max(offset);
            out.extend_from_slice(self.unstable.slice(from, hi));
            out = limit_size(&out, max_bytes);
        }
        Ok(out)
    }

    /// Entries from `lo` to the end of the log, within `max_bytes`.
    pub fn entries_from(&self, lo: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.slice(lo, self.last_index() + 1, max_bytes)
    }

    /// Committed entries the application has not been handed yet.
    pub fn next_committed_entries(&self, max_bytes: u64) -> Vec<Entry> {
        let lo = (self.applied + 1).max(self.first_index());
        if self.committed < lo {
            return Vec::new();
        }
        self.slice(lo, self.committed + 1, max_bytes)
            .expect("committed entries are available")
    }

    pub fn has_next_committed_entries(&self) -> bool {
        self.committed > self.applied.max(self.first_index() - 1)
    }

    pub fn snapshot(&self) -> Result<Snapshot, StorageError> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.storage.snapshot(),
        }
    }

    /// A follower installs the leader's snapshot: the whole log is replaced.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.meta.index;
        self.unstable.restore(snapshot);
    }

    /// The first index of the run of entries with `term` that ends at `index`, not going
    /// below `floor`. Used to build a fast-backtracking hint.
    pub fn first_index_of_term(&self, index: Index, term: Term, floor: Index) -> Index {
        let mut i = index;
        while i > floor && self.term(i - 1).ok() == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index at or below `index` whose term is `term`, if any; the search stops
    /// once terms drop below `term` or the log is compacted.
    pub fn last_index_of_term(&self, index: Index, term: Term) -> Option<Index> {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Ok(t) if t == term => return Some(i),
                Ok(t) if t > term && i > 0 => i -= 1,
                _ => return None,
            }
        }
    }

    pub(crate) fn stable_to(&mut self, index: Index, term: Term) {
        self.unstable.stable_to(index, term);
    }

    pub(crate) fn stable_snapshot_to(&mut self, index: Index) {
        self.unstable.stable_snapshot_to(index);
    }
}
