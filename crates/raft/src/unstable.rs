//! The unstable tail of the log: entries (and possibly an incoming snapshot) that the
//! core has accepted but the driver has not yet persisted.
//!
//! Invariant: `entries[i].index == offset + i`; if `snapshot` is set, `offset == snapshot.index + 1`
//! or later entries follow it contiguously.

use crate::types::{Entry, Index, Snapshot, Term};

#[derive(Debug, Default)]
pub(crate) struct Unstable {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub offset: Index,
}

impl Unstable {
    pub fn new(offset: Index) -> Self {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
        }
    }

    pub fn maybe_first_index(&self) -> Option<Index> {
        self.snapshot.as_ref().map(|s| s.meta.index + 1)
    }

    pub fn maybe_last_index(&self) -> Option<Index> {
        match self.entries.last() {
            Some(e) => Some(e.index),
            None => self.snapshot.as_ref().map(|s| s.meta.index),
        }
    }

    pub fn maybe_term(&self, index: Index) -> Option<Term> {
        if index < self.offset {
            let snap = self.snapshot.as_ref()?;
            return (snap.meta.index == index).then_some(snap.meta.term);
        }
        self.entries
            .get((index - self.offset) as usize)
            .map(|e| e.term)
    }

    /// Marks entries up to `index` (with `term`) as persisted.
    pub fn stable_to(&mut self, index: Index, term: Term) {
        if index < self.offset || self.maybe_term(index) != Some(term) {
            return;
        }
        self.entries.drain(..=(index - self.offset) as usize);
        self.offset = index + 1;
    }

    pub fn stable_snapshot_to(&mut self, index: Index) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.meta.index == index)
        {
            self.snapshot = None;
        }
    }

    pub fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.meta.index + 1;
        self.entries.clear();
        self.snapshot = Some(snapshot);
    }

    /// Appends `ents`, replacing any unstable entries at or after `ents[0].index`.
    pub fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let after = first.index;
        if after == self.offset + self.entries.len() as u64 {
            self.entries.extend_from_slice(ents);
        } else if after <= self.offset {
            // Replaces the whole unstable tail and part of the stable log: the driver's
            // `Storage::append` truncates the stable suffix when it persists these.
            self.offset = after;
            self.entries = ents.to_vec();
        } else {
            self.entries.truncate((after - self.offset) as usize);
            self.entries.extend_from_slice(ents);
        }
    }

    pub fn slice(&self, lo: Index, hi: Index) -> &[Entry] {
        debug_assert!(lo >= self.offset && hi <= self.offset + self.entries.len() as u64);
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}
