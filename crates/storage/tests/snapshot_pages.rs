//! A snapshot read once, front to back, through `Storage::release_read` is never
//! resident whole: the store drops the pages of its file map behind the reader (the
//! decoder of a follower installing a snapshot, or of a node booting, does this), and
//! the bytes read again afterwards are unchanged. Heap bytes given to `release_read`
//! are left alone. Measured with this process's `RssFile` (Linux), in a test binary of
//! its own so no other test maps files meanwhile.

#![cfg(target_os = "linux")]

use bytes::Bytes;
use raft::{Snapshot, SnapshotMeta, Storage};
use storage::{DiskOptions, DiskStorage};

const SNAPSHOT_BYTES: usize = 48 << 20;
const PART: usize = 1 << 20;

/// This process's resident file-backed pages, in bytes.
fn rss_file() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("RssFile:"))
        .expect("RssFile in /proc/self/status");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Reads `data` in parts (summing it), releasing each part after it if `release`;
/// returns the sum and the highest rise of `RssFile` seen after a part.
fn read_once(store: &DiskStorage, data: &[u8], release: bool) -> (u64, usize) {
    let start = rss_file();
    let mut sum = 0u64;
    let mut highest = 0;
    for part in data.chunks(PART) {
        sum = part
            .iter()
            .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(b as u64));
        if release {
            store.release_read(part);
        }
        highest = highest.max(rss_file().saturating_sub(start));
    }
    (sum, highest)
}

#[test]
fn a_snapshot_read_through_release_read_is_never_resident_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..SNAPSHOT_BYTES)
        .map(|i| (i * 7 + i / 4093) as u8)
        .collect();
    {
        let mut store = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        let meta = SnapshotMeta { index: 10, term: 1 };
        store
            .install_snapshot(Snapshot {
                meta,
                conf: None,
                data: Bytes::from(data.clone()),
            })
            .unwrap();
        store.sync().unwrap();
    }
    // As at boot: the snapshot is a map of its file.
    let store = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.data.len(), SNAPSHOT_BYTES);
    store.release_snapshot_pages();

    let (sum, released_rise) = read_once(&store, &snap.data, true);
    store.release_snapshot_pages();
    let (again, kept_rise) = read_once(&store, &snap.data, false);
    store.release_snapshot_pages();
    let (expected, _) = read_once(&store, &data, false);
    eprintln!("RssFile rise: {released_rise} bytes released behind the reader, {kept_rise} not");
    assert_eq!(
        (sum, again),
        (expected, expected),
        "the bytes are unchanged"
    );
    assert!(
        kept_rise > SNAPSHOT_BYTES / 2,
        "read without releasing, the file is resident: {kept_rise} bytes"
    );
    assert!(
        released_rise < 8 * PART,
        "released behind the reader, at most a few parts are resident: {released_rise} bytes"
    );

    // Heap bytes are never released (dropping their pages would zero them).
    let heap = data[..4 * PART].to_vec();
    store.release_read(&heap);
    assert_eq!(heap[..], data[..4 * PART]);
}
