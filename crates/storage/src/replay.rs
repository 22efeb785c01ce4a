//! Rebuilding the log from WAL records: a pure state machine, no I/O.
//!
//! Replay starts from the newest durable snapshot `S` (read from its file first) and
//! folds the surviving records in order. Entries at or before `S.index` are not kept,
//! but still act as truncations (an entry at `i` discards everything at or after `i`).
//! Segments wholly covered by a snapshot may have been deleted, so the first records
//! seen may start mid-log; that is fine because deletion happens only once the covering
//! snapshot's marker record is durable, so nothing after `S` was ever in a deleted file.
//!
//! Rules that make a record sequence corrupt (never silently repaired):
//! * an entry more than one past the last known index (a gap),
//! * a snapshot marker beyond `S` (its snapshot file is missing) or at `S` with another term.
//!
//! If the crash came after `S`'s file was made durable but before its marker record was
//! synced, `finish` applies `S` with `install_snapshot` semantics (the tail is kept only
//! if the entry at `S.index` has `S.term`) and hands back the missing marker to write.

use crate::log::Log;
use crate::record::Record;
use crate::segment::Loc;
use raft::{HardState, Index, SnapshotMeta, Term};

pub struct Replay {
    snap: SnapshotMeta,
    log: Log,
    hard_state: HardState,
    /// Term of the live entry at `snap.index`, if replay has seen it (or it is the snapshot's).
    term_at_snap: Option<Term>,
    /// The log's true last index, once known (unknown while a deleted prefix is missing).
    known_last: Option<Index>,
    marker_seen: bool,
}

impl Replay {
    /// `complete_history`: the first segment ever written is present, so the log
    /// starts empty rather than at an unknown point.
    pub fn new(snap: SnapshotMeta, cache_max_bytes: u64, complete_history: bool) -> Replay {
        Replay {
            snap,
            log: Log::new(snap, cache_max_bytes),
            hard_state: HardState::default(),
            term_at_snap: (snap.index == 0).then_some(0),
            known_last: complete_history.then_some(0),
            marker_seen: snap.index == 0,
        }
    }

    /// The last index of the log replayed so far (the snapshot's if no entry followed it).
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    pub fn apply(&mut self, record: Record, loc: Loc) -> Result<(), String> {
        match record {
            Record::HardState(hs) => self.hard_state = hs,
            Record::Entry(e) => self.apply_entry(e, loc)?,
            Record::Snapshot { meta, kept_tail } => self.apply_marker(meta, kept_tail)?,
        }
        Ok(())
    }

    fn apply_entry(&mut self, e: raft::Entry, loc: Loc) -> Result<(), String> {
        if e.index == 0 {
            return Err("entry with index 0".into());
        }
        let limit = match self.known_last {
            Some(last) => last + 1,
            None if e.index > self.snap.index => self.log.last_index() + 1,
            None => e.index,
        };
        if e.index > limit {
            return Err(format!(
                "entry {} follows index {}: entries are missing",
                e.index,
                limit - 1
            ));
        }
        self.known_last = Some(e.index);
        if e.index <= self.snap.index {
            self.log.reset(self.snap);
            self.term_at_snap = (e.index == self.snap.index).then_some(e.term);
        } else {
            self.log.truncate_from(e.index);
            self.log.push(e, loc);
            self.log.evict();
        }
        Ok(())
    }

    fn apply_marker(&mut self, m: SnapshotMeta, kept_tail: bool) -> Result<(), String> {
        if m.index > self.snap.index {
            return Err(format!(
                "snapshot marker at index {} but the newest snapshot file is at {}",
                m.index, self.snap.index
            ));
        }
        if m.index == self.snap.index {
            if m.term != self.snap.term {
                return Err(format!(
                    "snapshot marker term {} differs from snapshot file term {}",
                    m.term, self.snap.term
                ));
            }
            self.marker_seen = true;
        }
        if kept_tail {
            if let Some(last) = self.known_last {
                if last < m.index {
                    return Err(format!(
                        "compaction marker at {} beyond the log end {}",
                        m.index, last
                    ));
                }
            }
            if m.index == self.snap.index {
                self.term_at_snap = Some(m.term);
            }
        } else {
            self.log.reset(self.snap);
            self.known_last = Some(m.index);
            self.term_at_snap = (m.index == self.snap.index).then_some(m.term);
        }
        Ok(())
    }

    /// The recovered hard state and log, and the marker record the WAL lacks (if the
    /// snapshot file's marker was never synced): the caller must make it durable before
    /// writing anything else, or a later append after `S` would look like a gap.
    pub fn finish(mut self) -> (HardState, Log, Option<Record>) {
        if self.marker_seen {
            return (self.hard_state, self.log, None);
        }
        let kept_tail = self.term_at_snap == Some(self.snap.term);
        if !kept_tail {
            self.log.reset(self.snap);
        }
        (
            self.hard_state,
            self.log,
            Some(Record::Snapshot {
                meta: self.snap,
                kept_tail,
            }),
        )
    }
}
