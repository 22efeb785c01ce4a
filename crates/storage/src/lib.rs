//! raftkv's durable Raft storage: [`DiskStorage`], a `raft::Storage` kept in a directory
//! as a segmented, checksummed write-ahead log plus snapshot files.
//!
//! Durability contract (the trait's): writes are buffered and become durable only when
//! `sync` returns `Ok`, with one write and one fdatasync for everything since the last
//! sync (group commit). A failed write or fsync poisons the store: it refuses all later
//! writes, and reopening the directory recovers the last durable state.
//!
//! Recovery ([`DiskStorage::open`]) cuts a torn record at the end of the last segment
//! (never acknowledged) and says so in [`DiskStorage::recovery_report`] (storage does
//! not log; the host logs the report), and refuses, with an [`OpenError`], anything else
//! that is damaged (naming file and offset) or missing (naming the entry range and the
//! files: a deleted newest segment is caught by the `WAL-HEAD` file, a deleted middle one
//! by the gap in segment numbers, a log cut below the durable commit index by the hard
//! state). It never silently rewinds the log.
//!
//! Limits, on purpose: one record (entry) is at most 64 MiB; entry data kept in memory
//! is bounded by `DiskOptions::cache_max_bytes` (older entries are read back from their
//! segment), plus about 40 bytes of index per live entry. The current snapshot is never
//! copied into memory: it is written as the state machine encodes it
//! (`Storage::compact_streamed`), or from the caller's `Bytes`, through a 1 MiB buffer, and
//! afterwards (and on open, after a streaming checksum pass) held as a read-only memory
//! map of its file, handed out as `Bytes` (`snapshot()` is O(1); readers fault pages in
//! from the page cache). Snapshot files are never modified in place, only replaced by
//! rename and unlinked, which is what makes the map sound (`snapfile` has the argument).
//! One process per directory: `open` takes an exclusive advisory lock (flock) on
//! `DIR/LOCK` for the store's lifetime and refuses a directory another process holds.
//!
//! Files, one job each: `record` (frame codec), `segment` (segment files), `snapfile`
//! (snapshot files), `receive` (the snapshot being received from a leader, written to
//! `snap-recv.tmp` chunk by chunk), `manifest` (the `WAL-HEAD` file: the newest segment
//! ever made durable), `wal` (group commit, rolling, detaching covered segments),
//! `removal` (deleting them, inline or on the host's thread), `log` (in-memory index and
//! entry cache), `replay` (rebuilding the log from records), `recovery` (opening a
//! directory), `disk` (the `Storage` impl), `fs` / `fault` (the file-system seam and its
//! fault-injecting test double), `testkit` (the conformance suite every `Storage` runs).

mod disk;
mod error;
pub mod fault;
pub mod fs;
mod log;
mod manifest;
mod receive;
mod record;
mod recovery;
mod removal;
mod replay;
mod segment;
mod snapfile;
pub mod testkit;
mod wal;

pub use disk::{DiskOptions, DiskStorage, SyncJob};
pub use error::OpenError;
pub use fs::{FileSystem, ReadOnlyFile, Residency, StdFs, SyncFile, WritableFile};
pub use recovery::{RecoveryReport, Truncation};
pub use removal::SegmentRemoval;

/// Format details exposed for crash tests and tools (frame and header sizes).
pub mod format {
    pub use crate::record::HEADER_BYTES as RECORD_HEADER_BYTES;
    pub use crate::segment::{
        file_name as segment_file_name, FORMAT_VERSION, HEADER_BYTES as SEGMENT_HEADER_BYTES,
    };
}
