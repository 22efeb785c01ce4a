//! A snapshot read once, front to back, through `Storage::release_read` is never
//! resident whole: the store drops the pages of its file map behind the reader (the
//! decoder of a follower installing a snapshot, or of a node booting, does this), and
//! the bytes read again afterwards are unchanged. Heap bytes given to `release_read`
//! are left alone. Installing a received snapshot copies it from the received file's
//! map into a snapshot file of its own, releasing behind the copy too. Measured with
//! this process's `RssFile` (Linux), in a test binary of its own, one test at a time
//! (`ONE_AT_A_TIME`), so no other test maps files meanwhile.

#![cfg(target_os = "linux")]

use bytes::Bytes;
use raft::{Snapshot, SnapshotMeta, Storage};
use storage::{DiskOptions, DiskStorage};

const SNAPSHOT_BYTES: usize = 48 << 20;

/// Held by each test: `RssFile` is the whole process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
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
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// The highest rise of `RssFile` while `f` runs, sampled every millisecond on another
/// thread (a sample can only miss a peak, never make one up).
fn rss_file_peak_during(f: impl FnOnce()) -> usize {
    let start = rss_file();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut highest = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                highest = highest.max(rss_file().saturating_sub(start));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            highest
        });
        f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    })
}

#[test]
fn installing_a_received_snapshot_copies_it_without_making_it_resident() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..SNAPSHOT_BYTES)
        .map(|i| (i * 13 + i / 4091) as u8)
        .collect();
    let mut store = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
    let meta = SnapshotMeta { index: 10, term: 1 };
    for (n, chunk) in data.chunks(4 * PART).enumerate() {
        let offset = (n * 4 * PART) as u64;
        store.write_snapshot_chunk(meta, offset, chunk).unwrap();
    }
    let received = store
        .received_snapshot(meta, SNAPSHOT_BYTES as u64)
        .unwrap();
    assert_eq!(received[..], data[..]);
    store.release_snapshot_pages();
    let rise = rss_file_peak_during(|| {
        let snapshot = Snapshot {
            meta,
            conf: None,
            data: received,
        };
        store.install_snapshot(snapshot).unwrap();
        store.sync().unwrap();
    });
    eprintln!("RssFile rise while installing a received snapshot: {rise} bytes");
    assert!(
        rise < SNAPSHOT_BYTES / 4,
        "installing made {rise} bytes of the received file resident"
    );
    drop(store);
    let store = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
    assert_eq!(
        store.snapshot().unwrap().data[..],
        data[..],
        "installed whole"
    );
}
