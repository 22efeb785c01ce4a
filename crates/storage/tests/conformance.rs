//! The shared `Storage` conformance suite, run on the reference `MemStorage` and on
//! `DiskStorage` (fresh directory per case), plus basic persistence across reopen.

use bytes::Bytes;
use raft::{Entry, HardState, MemStorage, Storage};
use std::sync::Arc;
use storage::fault::FaultyFs;
use storage::testkit::{ent, snap, storage_conformance};
use storage::{DiskOptions, DiskStorage};

#[test]
fn mem_storage_conforms() {
    storage_conformance(MemStorage::new);
}

#[test]
fn disk_storage_conforms() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    storage_conformance(|| {
        n += 1;
        DiskStorage::open(&root.path().join(n.to_string()), DiskOptions::default()).unwrap()
    });
}

#[test]
fn disk_storage_conforms_with_tiny_segments_and_cache() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    storage_conformance(|| {
        n += 1;
        let opts = DiskOptions {
            segment_max_bytes: 64,
            cache_max_bytes: 40,
            ..DiskOptions::default()
        };
        DiskStorage::open(&root.path().join(n.to_string()), opts).unwrap()
    });
}

#[test]
fn disk_storage_conforms_when_every_record_is_flushed_at_once() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    storage_conformance(|| {
        n += 1;
        let opts = DiskOptions {
            write_buffer_max_bytes: 1,
            cache_max_bytes: 0,
            ..DiskOptions::default()
        };
        DiskStorage::open(&root.path().join(n.to_string()), opts).unwrap()
    });
}

/// The leader replicates from the log tail: with the tail cached, that never reads the
/// disk. Entries evicted from the cache are read back correctly.
#[test]
fn recent_entries_are_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, h) = FaultyFs::new(true);
    let opts = DiskOptions {
        cache_max_bytes: 10 * (Entry::OVERHEAD_BYTES + 8),
        fs: Arc::new(fs),
        ..DiskOptions::default()
    };
    let mut s = DiskStorage::open(dir.path(), opts).unwrap();
    let all: Vec<Entry> = (1..=100)
        .map(|i| Entry::normal(1, i, Bytes::from(format!("entry{i:03}"))))
        .collect();
    for chunk in all.chunks(7) {
        s.append(chunk).unwrap();
        s.sync().unwrap();
    }
    assert_eq!(s.entries(91, 101, u64::MAX).unwrap(), all[90..].to_vec());
    assert_eq!(h.reads_at(), 0, "the cached tail must not touch the disk");
    assert_eq!(s.entries(1, 101, u64::MAX).unwrap(), all);
    assert_eq!(
        h.reads_at(),
        90,
        "evicted entries are read back, one read each"
    );
}

#[test]
fn synced_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let hs = HardState {
        term: 3,
        vote: Some(2),
        commit: 2,
    };
    {
        let mut s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        s.append(&[ent(1, 1), ent(1, 2), ent(3, 3), ent(3, 4)])
            .unwrap();
        s.set_hard_state(hs).unwrap();
        s.compact(snap(2, 1)).unwrap();
        s.sync().unwrap();
        s.append(&[ent(3, 5)]).unwrap(); // never synced: lost like a crash
    }
    let s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
    assert_eq!(s.hard_state(), hs);
    assert_eq!(s.snapshot(), Ok(snap(2, 1)));
    assert_eq!((s.first_index(), s.last_index()), (3, 4));
    assert_eq!(s.entries(3, 5, u64::MAX), Ok(vec![ent(3, 3), ent(3, 4)]));
}

#[test]
fn a_data_dir_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = storage::DiskStorage::open(dir.path(), storage::DiskOptions::default()).unwrap();
    let second = storage::DiskStorage::open(dir.path(), storage::DiskOptions::default());
    assert!(
        matches!(second, Err(storage::OpenError::Locked { .. })),
        "second open must fail: {second:?}"
    );
    drop(first);
    storage::DiskStorage::open(dir.path(), storage::DiskOptions::default())
        .expect("reopen after the first closed");
}
