//! The durable side of a Raft node: the `Storage` trait and an in-memory implementation.
//!
//! The core reads the stable log through this trait. The driver writes to it when it
//! persists a `Ready` (through `RawNode::persist`), in the order snapshot, entries,
//! hard state, then `sync`. Writes are durable only once `sync` returns `Ok`; a store
//! that fails a write or a sync must refuse all later writes (it is in an unknown state).
//!
//! Log shape invariant: the store holds a snapshot at `first_index() - 1` (possibly the
//! empty one at 0) and every entry in `first_index()..=last_index()`, contiguous.

use bytes::Bytes;

use crate::error::StorageError;
use crate::membership::Membership;
use crate::types::{Entry, HardState, Index, Snapshot, SnapshotMeta, Term};

pub type StorageResult<T> = std::result::Result<T, StorageError>;

/// Writes a snapshot's data into the writer it is given ([`Storage::compact_streamed`]).
/// The core performs no I/O itself: the writer is the store's.
pub type WriteSnapshot<'a> = dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()> + 'a;

pub trait Storage {
    /// The hard state as last persisted (default on a fresh store).
    fn hard_state(&self) -> HardState;
    /// Index of the first entry held; the snapshot covers everything before it.
    fn first_index(&self) -> Index;
    /// Index of the last entry held (the snapshot index when the log is empty).
    fn last_index(&self) -> Index;
    /// Term of the entry at `index`. `index == first_index() - 1` answers the snapshot's term.
    fn term(&self, index: Index) -> StorageResult<Term>;
    /// Entries in `lo..hi`, at least one if the range is non-empty, and then no more
    /// than `max_bytes` of them in total (by `Entry::size_bytes`).
    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> StorageResult<Vec<Entry>>;
    /// The latest snapshot (the empty one at index 0 on a fresh store).
    fn snapshot(&self) -> StorageResult<Snapshot>;
    /// The entries held (`first_index()..=last_index()`), in bytes by
    /// `Entry::size_bytes`. Cheap: a store keeps it as a running total, never by reading
    /// its log back (the host checks it against its snapshot threshold after every
    /// batch, with a log of up to that threshold held).
    fn entry_bytes(&self) -> u64;

    /// Appends `entries` (contiguous, first one at most `last_index() + 1`), first
    /// discarding any held entries at or after `entries[0].index` (a follower overwriting
    /// an uncommitted suffix). Appending at or before the snapshot is a logic error.
    fn append(&mut self, entries: &[Entry]) -> StorageResult<()>;
    /// Records a new hard state.
    fn set_hard_state(&mut self, hs: HardState) -> StorageResult<()>;
    /// Replaces everything with `snapshot` (a follower installing the leader's snapshot):
    /// entries up to its index are dropped; later entries are kept only if they match its term
    /// at its index (never the case in practice: the core only installs snapshots ahead of
    /// its commit index, so it discards the whole log).
    fn install_snapshot(&mut self, snapshot: Snapshot) -> StorageResult<()>;
    /// Writes `data` at `offset` of the data of the snapshot `meta` being received from the
    /// leader; offset 0 starts it afresh (dropping any other one being received). Chunks
    /// come in order, each at the end of the previous one. Need not be durable: only
    /// `install_snapshot` makes a received snapshot part of the log.
    fn write_snapshot_chunk(
        &mut self,
        meta: SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<()>;
    /// The data written so far for the snapshot `meta` being received, which must be
    /// `len` bytes long (all of it: the last chunk is written).
    fn received_snapshot(&mut self, meta: SnapshotMeta, len: u64) -> StorageResult<Bytes>;
    /// Records `snapshot` (taken by this node's state machine) and discards entries up to
    /// and including its index. Entries after it are kept.
    fn compact(&mut self, snapshot: Snapshot) -> StorageResult<()>;
    /// [`Storage::compact`], with the snapshot's data written by `write_data` into the
    /// writer the store passes it, as the store takes it in: a store that keeps snapshots
    /// in files streams the data there, so it is never whole in memory (a state machine's
    /// snapshot is as large as its state). `write_data`'s only errors are the writer's.
    /// Default: gathers the data in memory, then `compact`.
    fn compact_streamed(
        &mut self,
        meta: SnapshotMeta,
        conf: Option<Membership>,
        write_data: &mut WriteSnapshot<'_>,
    ) -> StorageResult<()> {
        let mut data = Vec::new();
        write_data(&mut data).map_err(|e| StorageError::Io(e.to_string()))?;
        self.compact(Snapshot {
            meta,
            conf,
            data: Bytes::from(data),
        })
    }
    /// Says `part`, bytes of a snapshot this store handed out ([`Storage::snapshot`],
    /// [`Storage::received_snapshot`]), has been read and is not needed again soon: a
    /// store whose snapshots are memory maps of files drops those pages from the
    /// process's resident set (a later read faults the same bytes back in). Anything
    /// else, bytes on the heap included, is left alone. Lets the driver's decoder
    /// read a snapshot as large as the state without holding all of it resident.
    /// Default: nothing.
    fn release_read(&self, _part: &[u8]) {}
    /// Makes every write so far durable.
    fn sync(&mut self) -> StorageResult<()>;
}

/// An in-memory `Storage`, used by tests and by the simulator (which keeps it across a
/// simulated crash: what was written before the crash is "on disk").
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Invariant: `entries[i].index == snapshot.meta.index + 1 + i`.
    entries: Vec<Entry>,
    /// Invariant: the sum of `Entry::size_bytes` over `entries`.
    entry_bytes: u64,
    /// A snapshot being received from the leader (`write_snapshot_chunk`).
    receiving: Option<(SnapshotMeta, Vec<u8>)>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes of the persisted Raft state (hard state, log), excluding the snapshot.
    pub fn log_size_bytes(&self) -> u64 {
        32 + self.entry_bytes
    }

    fn offset(&self) -> Index {
        self.snapshot.meta.index + 1
    }

    /// Drops the entries at positions `range`, keeping `entry_bytes`.
    fn drop_entries(&mut self, range: impl std::ops::RangeBounds<usize>) {
        for e in self.entries.drain(range) {
            self.entry_bytes -= e.size_bytes();
        }
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first_index(&self) -> Index {
        self.offset()
    }

    fn last_index(&self) -> Index {
        self.snapshot.meta.index + self.entries.len() as u64
    }

    fn term(&self, index: Index) -> StorageResult<Term> {
        let snap = self.snapshot.meta;
        if index == snap.index {
            return Ok(snap.term);
        }
        if index < snap.index {
            return Err(StorageError::Compacted {
                index,
                first_index: self.first_index(),
            });
        }
        match self.entries.get((index - self.offset()) as usize) {
            Some(e) => Ok(e.term),
            None => Err(StorageError::Unavailable {
                index,
                last_index: self.last_index(),
            }),
        }
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        check_range(lo, hi, self.first_index(), self.last_index())?;
        let from = (lo - self.offset()) as usize;
        let to = (hi - self.offset()) as usize;
        Ok(limit_size(&self.entries[from..to], max_bytes))
    }

    fn snapshot(&self) -> StorageResult<Snapshot> {
        Ok(self.snapshot.clone())
    }

    fn entry_bytes(&self) -> u64 {
        self.entry_bytes
    }

    fn append(&mut self, entries: &[Entry]) -> StorageResult<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(
            first.index > self.snapshot.meta.index && first.index <= self.last_index() + 1,
            "append at {} outside ({}, {}]",
            first.index,
            self.snapshot.meta.index,
            self.last_index() + 1
        );
        self.drop_entries((first.index - self.offset()) as usize..);
        self.entry_bytes += entries.iter().map(Entry::size_bytes).sum::<u64>();
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn set_hard_state(&mut self, hs: HardState) -> StorageResult<()> {
        self.hard_state = hs;
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> StorageResult<()> {
        let snapshot_meta = snapshot.meta;
        let SnapshotMeta { index, term } = snapshot.meta;
        if index <= self.snapshot.meta.index {
            return Err(StorageError::SnapshotOutOfDate {
                index,
                current: self.snapshot.meta.index,
            });
        }
        let keep = self.term(index).ok() == Some(term);
        if keep {
            let drop = (index + 1 - self.offset()) as usize;
            self.drop_entries(..drop);
        } else {
            self.drop_entries(..);
        }
        self.snapshot = snapshot;
        if self
            .receiving
            .as_ref()
            .is_some_and(|(m, _)| *m == snapshot_meta)
        {
            self.receiving = None;
        }
        Ok(())
    }

    fn write_snapshot_chunk(
        &mut self,
        meta: SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<()> {
        if offset == 0 {
            self.receiving = Some((meta, Vec::new()));
        }
        match &mut self.receiving {
            Some((m, buf)) if *m == meta && buf.len() as u64 == offset => {
                buf.extend_from_slice(data);
                Ok(())
            }
            _ => Err(out_of_order(meta, offset)),
        }
    }

    fn received_snapshot(&mut self, meta: SnapshotMeta, len: u64) -> StorageResult<Bytes> {
        match &self.receiving {
            Some((m, buf)) if *m == meta && buf.len() as u64 == len => {
                Ok(Bytes::copy_from_slice(buf))
            }
            _ => Err(out_of_order(meta, len)),
        }
    }

    fn compact(&mut self, snapshot: Snapshot) -> StorageResult<()> {
        let index = snapshot.meta.index;
        check_compact(self.snapshot.meta.index, self.last_index(), index)?;
        debug_assert_eq!(self.term(index).ok(), Some(snapshot.meta.term));
        let drop = (index + 1 - self.offset()) as usize;
        self.drop_entries(..drop);
        self.snapshot = snapshot;
        Ok(())
    }

    fn sync(&mut self) -> StorageResult<()> {
        Ok(())
    }
}

/// A received-snapshot call that does not follow the chunks written (a driver bug: the
/// core hands chunks out in order).
pub fn out_of_order(meta: SnapshotMeta, offset: u64) -> StorageError {
    StorageError::Io(format!(
        "received snapshot at index {} (term {}): no data written up to byte {offset}",
        meta.index, meta.term
    ))
}

/// The precondition every `Storage::entries` shares: `lo..hi` lies within the held
/// entries `first..=last`.
pub fn check_range(lo: Index, hi: Index, first: Index, last: Index) -> StorageResult<()> {
    if lo < first {
        return Err(StorageError::Compacted {
            index: lo,
            first_index: first,
        });
    }
    if hi > last + 1 {
        return Err(StorageError::Unavailable {
            index: hi - 1,
            last_index: last,
        });
    }
    Ok(())
}

/// The precondition every `Storage::compact` shares: the new snapshot must be newer
/// than the current one (`current`) and cover only entries the store holds (`last`).
pub fn check_compact(current: Index, last: Index, index: Index) -> StorageResult<()> {
    if index <= current {
        return Err(StorageError::SnapshotOutOfDate { index, current });
    }
    if index > last {
        return Err(StorageError::Unavailable {
            index,
            last_index: last,
        });
    }
    Ok(())
}

/// Returns a prefix of `entries` within `max_bytes`, but always at least one entry.
pub fn limit_size(entries: &[Entry], max_bytes: u64) -> Vec<Entry> {
    let mut total = 0u64;
    let mut n = 0;
    for e in entries {
        total += e.size_bytes();
        if n > 0 && total > max_bytes {
            break;
        }
        n += 1;
    }
    entries[..n].to_vec()
}
