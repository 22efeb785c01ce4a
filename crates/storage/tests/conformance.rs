//! The shared `Storage` conformance suite, run on the reference `MemStorage` and on
//! `DiskStorage` (fresh directory per case), plus basic persistence across reopen.

use raft::{HardState, MemStorage, Storage};
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
        let opts = DiskOptions { segment_max_bytes: 64, cache_max_bytes: 40, ..DiskOptions::default() };
        DiskStorage::open(&root.path().join(n.to_string()), opts).unwrap()
    });
}

#[test]
fn synced_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let hs = HardState { term: 3, vote: Some(2), commit: 2 };
    {
        let mut s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        s.append(&[ent(1, 1), ent(1, 2), ent(3, 3), ent(3, 4)]).unwrap();
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
