//! Snapshot data is a read-only map of its file, not a copy: `snapshot()` after a reopen
//! gives the same bytes without reading the file again per call, and replacing the
//! snapshot (which unlinks the old file) leaves `Bytes` of the old one readable and intact.

use bytes::Bytes;
use raft::{Entry, Snapshot, SnapshotMeta, Storage};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use storage::fault::{FaultHandle, FaultyFs};
use storage::{DiskOptions, DiskStorage, OpenError};

fn opts() -> (DiskOptions, FaultHandle) {
    let (fs, h) = FaultyFs::new(true);
    (
        DiskOptions {
            fs: Arc::new(fs),
            ..DiskOptions::default()
        },
        h,
    )
}

fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi)
        .map(|i| Entry::normal(term, i, Bytes::from(vec![i as u8; 8])))
        .collect()
}

/// `len` bytes of a pattern that differs per `seed` and per position.
fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .rotate_left(seed as u32 % 32) as u8
                ^ seed
        })
        .collect::<Vec<u8>>()
        .into()
}

fn snapshot(index: u64, term: u64, data: Bytes) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term },
        conf: Some(raft::Membership::with_voters([1, 2, 3])),
        data,
    }
}

fn snap_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    v.sort();
    v
}

/// The file behind the mapping that holds `ptr`, as /proc/self/maps names it (with a
/// " (deleted)" suffix once unlinked); None if `ptr` is not in a file mapping.
#[cfg(target_os = "linux")]
fn mapped_file(ptr: *const u8) -> Option<String> {
    let p = ptr as usize;
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .find_map(|line| {
            let mut f = line.split_whitespace();
            let (lo, hi) = f.next()?.split_once('-')?;
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            );
            if !(lo <= p && p < hi) {
                return None;
            }
            let path: Vec<&str> = f.skip(4).collect();
            path.first()
                .filter(|s| s.starts_with('/'))
                .map(|_| path.join(" "))
        })
}

#[cfg(not(target_os = "linux"))]
fn mapped_file(_: *const u8) -> Option<String> {
    None
}

fn assert_maps_file(data: &Bytes, name: &str, deleted: bool) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let first = mapped_file(data.as_ptr())
        .unwrap_or_else(|| panic!("snapshot data is not a file mapping (a heap copy?)"));
    let last = mapped_file(data[data.len() - 1..].as_ptr())
        .expect("end of snapshot data is not a file mapping");
    assert_eq!(first, last, "data spans one mapping");
    let suffix = if deleted {
        format!("/{name} (deleted)")
    } else {
        format!("/{name}")
    };
    assert!(
        first.ends_with(&suffix),
        "data maps {first}, expected …{suffix}"
    );
}

#[test]
fn snapshot_after_reopen_is_identical_and_a_view_of_the_file_not_a_copy_per_call() {
    let dir = tempfile::tempdir().unwrap();
    // Not a multiple of the verification chunk or a page, so chunk edges are exercised.
    let data = pattern(7, (9 << 20) + 4321);
    let name = "snap-0000000000000003-0000000000000001.snap";
    {
        let (o, h) = opts();
        let mut s = DiskStorage::open(dir.path(), o).unwrap();
        s.append(&entries(1, 5, 1)).unwrap();
        s.compact(snapshot(3, 1, data.clone())).unwrap();
        s.sync().unwrap();
        assert_eq!(
            h.maps(),
            1,
            "the store holds the written file's map, not the caller's buffer"
        );
        let held = s.snapshot().unwrap();
        assert_eq!(held.data, data);
        assert_ne!(
            held.data.as_ptr(),
            data.as_ptr(),
            "the caller's buffer is not kept alive"
        );
        assert_maps_file(&held.data, name, false);
    }
    let (o, h) = opts();
    let s = DiskStorage::open(dir.path(), o).unwrap();
    assert_eq!(h.maps(), 1, "open maps the snapshot file once");
    let a = s.snapshot().unwrap();
    let b = s.snapshot().unwrap();
    assert_eq!(h.maps(), 1, "snapshot() does not read the file again");
    assert_eq!(
        a,
        snapshot(3, 1, data.clone()),
        "byte-identical after reopen"
    );
    assert_eq!(
        a.data.as_ptr_range(),
        b.data.as_ptr_range(),
        "two calls share one buffer: no copy per call"
    );
    assert_maps_file(&a.data, name, false);
    // InstallSnapshot chunks are slices of the same map.
    let chunk = a.data.slice(1 << 20..2 << 20);
    assert_eq!(chunk.as_ptr(), a.data[1 << 20..].as_ptr());
    assert_eq!(&chunk[..], &data[1 << 20..2 << 20]);
    assert_eq!((s.first_index(), s.last_index()), (4, 5));
}

#[test]
fn replacing_the_snapshot_keeps_bytes_of_the_old_one_readable_and_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (a_data, b_data, c_data) = (
        pattern(1, (2 << 20) + 17),
        pattern(2, 3 << 20),
        pattern(3, 100_000),
    );
    let (a_name, b_name) = (
        "snap-0000000000000003-0000000000000001.snap",
        "snap-0000000000000006-0000000000000001.snap",
    );
    {
        let (o, _) = opts();
        let mut s = DiskStorage::open(dir.path(), o).unwrap();
        s.append(&entries(1, 10, 1)).unwrap();
        s.compact(snapshot(3, 1, a_data.clone())).unwrap();
        s.sync().unwrap();
    }
    let (o, _) = opts();
    let mut s = DiskStorage::open(dir.path(), o).unwrap();
    let old_a = s.snapshot().unwrap().data;
    assert_maps_file(&old_a, a_name, false);

    s.compact(snapshot(6, 1, b_data.clone())).unwrap();
    s.sync().unwrap();
    assert_eq!(
        snap_files(dir.path()),
        vec![b_name.to_string()],
        "the old snapshot file is unlinked"
    );
    assert_eq!(
        old_a, a_data,
        "old bytes intact after their file was unlinked"
    );
    assert_maps_file(&old_a, a_name, true);
    let old_b = s.snapshot().unwrap().data;
    assert_eq!(old_b, b_data);

    // A follower installing a snapshot beyond its log, then a reopen (recovery unlinks
    // nothing it should not, and nothing it does unlink invalidates a live map).
    s.install_snapshot(snapshot(20, 2, c_data.clone())).unwrap();
    s.sync().unwrap();
    drop(s);
    let (o, _) = opts();
    let s = DiskStorage::open(dir.path(), o).unwrap();
    assert_eq!(s.snapshot().unwrap(), snapshot(20, 2, c_data));
    assert_eq!(snap_files(dir.path()).len(), 1);
    assert_eq!(old_a, a_data, "still intact");
    assert_eq!(old_b, b_data, "still intact");
    assert_maps_file(&old_b, b_name, true);
    // Slices outlive the whole they came from.
    let tail = old_b.slice(old_b.len() - 4096..);
    drop(old_b);
    assert_eq!(tail, b_data.slice(b_data.len() - 4096..));
}

#[test]
fn empty_snapshot_data_and_empty_snapshot_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (o, _) = opts();
        let mut s = DiskStorage::open(dir.path(), o).unwrap();
        s.append(&entries(1, 4, 1)).unwrap();
        s.compact(snapshot(2, 1, Bytes::new())).unwrap();
        s.sync().unwrap();
        assert_eq!(s.snapshot().unwrap(), snapshot(2, 1, Bytes::new()));
    }
    let (o, _) = opts();
    let s = DiskStorage::open(dir.path(), o).unwrap();
    assert_eq!(
        s.snapshot().unwrap(),
        snapshot(2, 1, Bytes::new()),
        "zero-length data reopens as empty"
    );
    drop(s);
    // A snapshot file of zero bytes (cannot be mapped) is corruption, named, not an I/O error.
    let path = dir.path().join(&snap_files(dir.path())[0]);
    fs::write(&path, b"").unwrap();
    let (o, _) = opts();
    match DiskStorage::open(dir.path(), o) {
        Err(OpenError::Corrupt {
            path: p, offset: 0, ..
        }) => assert_eq!(p, path),
        other => panic!(
            "expected Corrupt at offset 0 of {}, got {other:?}",
            path.display()
        ),
    }
}

/// Releasing the snapshot's pages from the resident set (the host does it every second)
/// changes nothing anyone reads: after a reopen, after a new snapshot, and for a view
/// taken before the release.
#[test]
fn releasing_snapshot_pages_leaves_every_view_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3, (2 << 20) + 17);
    {
        let (o, _) = opts();
        let mut s = DiskStorage::open(dir.path(), o).unwrap();
        s.append(&entries(1, 5, 1)).unwrap();
        s.compact(snapshot(3, 1, data.clone())).unwrap();
        s.sync().unwrap();
        let before = s.snapshot().unwrap().data;
        s.release_snapshot_pages();
        assert_eq!(before, data);
        assert_eq!(s.snapshot().unwrap().data, data);
    }
    let (o, h) = opts();
    let mut s = DiskStorage::open(dir.path(), o).unwrap();
    assert_eq!(h.maps(), 1, "still one map of the file at open");
    let held = s.snapshot().unwrap().data;
    assert_eq!(held, data);
    s.release_snapshot_pages();
    assert_eq!(held, data);
    let newer = pattern(4, 1 << 20);
    s.compact(snapshot(5, 1, newer.clone())).unwrap();
    s.sync().unwrap();
    s.release_snapshot_pages();
    assert_eq!(s.snapshot().unwrap().data, newer);
    assert_eq!(held, data, "a view of the replaced file is untouched");
}

/// A snapshot received from a leader goes to `snap-recv.tmp` chunk by chunk and comes
/// back as a view of that file, not a copy on the heap. A new transfer (offset 0) makes
/// a new file, so a view of the previous one stays intact; installing removes the file;
/// a leftover one (a crash mid-transfer) is removed at open.
#[test]
fn a_received_snapshot_is_a_view_of_its_chunk_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3, (3 << 20) + 777);
    let meta = SnapshotMeta { index: 9, term: 2 };
    let (o, _h) = opts();
    let mut s = DiskStorage::open(dir.path(), o).unwrap();
    s.append(&entries(1, 5, 1)).unwrap();
    s.sync().unwrap();
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        s.write_snapshot_chunk(meta, (i << 20) as u64, chunk)
            .unwrap();
    }
    let received = s.received_snapshot(meta, data.len() as u64).unwrap();
    assert_eq!(received, data);
    assert_maps_file(&received, "snap-recv.tmp", false);

    // The leader restarts the transfer (another snapshot): the old view is untouched.
    let next = SnapshotMeta { index: 12, term: 2 };
    let next_data = pattern(4, 4096);
    s.write_snapshot_chunk(next, 0, &next_data).unwrap();
    assert_eq!(
        received, data,
        "a view of the abandoned transfer stays intact"
    );
    assert_maps_file(&received, "snap-recv.tmp", true);
    let received = s.received_snapshot(next, 4096).unwrap();
    s.install_snapshot(snapshot(12, 2, received.clone()))
        .unwrap();
    s.sync().unwrap();
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "snap-recv.tmp"),
        "installed: the chunk file is removed ({names:?})"
    );
    assert_eq!(s.snapshot().unwrap().data, next_data);
    assert_eq!(received, next_data, "the view outlives the install");

    // A transfer cut by a crash leaves its file; open removes it.
    s.write_snapshot_chunk(SnapshotMeta { index: 20, term: 3 }, 0, b"partial")
        .unwrap();
    drop(s);
    assert!(dir.path().join("snap-recv.tmp").exists());
    let (o, _h) = opts();
    let s = DiskStorage::open(dir.path(), o).unwrap();
    assert!(
        !dir.path().join("snap-recv.tmp").exists(),
        "open removes a leftover"
    );
    assert_eq!(s.snapshot().unwrap().data, next_data);
}

/// Writes `data` as a state machine's encoder does: many small writes.
fn in_small_writes(
    data: &Bytes,
) -> impl FnMut(&mut dyn std::io::Write) -> std::io::Result<()> + '_ {
    move |w| data.chunks(1000).try_for_each(|c| w.write_all(c))
}

/// A snapshot streamed into the store (`compact_streamed`, the leader's compaction)
/// makes the very file `compact` makes of the same data, byte for byte (the format is
/// unchanged: the header written last holds the same length and checksum), loads after
/// a reopen, and is held as a view of its file.
#[test]
fn a_streamed_snapshot_is_the_same_file_as_a_buffered_one() {
    // Over the 1 MiB write buffer, not a multiple of it; also the empty snapshot.
    for len in [0, (3 << 20) + 77] {
        let data = pattern(11, len);
        let name = "snap-0000000000000003-0000000000000001.snap";
        let (buffered, streamed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (o, _h) = opts();
        let mut s = DiskStorage::open(buffered.path(), o).unwrap();
        s.append(&entries(1, 5, 1)).unwrap();
        s.compact(snapshot(3, 1, data.clone())).unwrap();
        s.sync().unwrap();
        drop(s);
        let (o, _h) = opts();
        let mut s = DiskStorage::open(streamed.path(), o).unwrap();
        s.append(&entries(1, 5, 1)).unwrap();
        let conf = Some(raft::Membership::with_voters([1, 2, 3]));
        let meta = SnapshotMeta { index: 3, term: 1 };
        s.compact_streamed(meta, conf, &mut in_small_writes(&data))
            .unwrap();
        s.sync().unwrap();
        let held = s.snapshot().unwrap();
        assert_eq!(held, snapshot(3, 1, data.clone()));
        if len > 0 {
            assert_maps_file(&held.data, name, false);
        }
        assert_eq!(s.first_index(), 4, "the log before it is compacted");
        drop((s, held));
        let one = fs::read(buffered.path().join(name)).unwrap();
        let other = fs::read(streamed.path().join(name)).unwrap();
        assert!(
            one == other,
            "streamed and buffered files differ ({len} bytes of data)"
        );
        let (o, _h) = opts();
        let s = DiskStorage::open(streamed.path(), o).expect("the streamed file loads");
        assert_eq!(s.snapshot().unwrap(), snapshot(3, 1, data));
    }
}

/// An encoder that fails half way (here: the disk fills up) leaves no snapshot under a
/// final name: the store refuses further writes (as after any failed write), and the
/// directory reopens with the previous snapshot and the whole log.
#[test]
fn a_snapshot_stream_cut_half_way_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let old = pattern(1, 4096);
    let (o, h) = opts();
    let mut s = DiskStorage::open(dir.path(), o).unwrap();
    s.append(&entries(1, 8, 1)).unwrap();
    s.compact(snapshot(2, 1, old.clone())).unwrap();
    s.sync().unwrap();
    let data = pattern(2, 3 << 20);
    let mut written = 0;
    let mut fills_disk = |w: &mut dyn std::io::Write| {
        for c in data.chunks(64 << 10) {
            w.write_all(c)?;
            written += c.len();
            if written > (3 << 20) / 2 {
                h.set_full(true);
            }
        }
        Ok(())
    };
    let conf = Some(raft::Membership::with_voters([1, 2, 3]));
    let err = s
        .compact_streamed(SnapshotMeta { index: 6, term: 1 }, conf, &mut fills_disk)
        .unwrap_err();
    assert!(matches!(err, raft::StorageError::NoSpace(_)), "{err:?}");
    assert!(s.is_poisoned());
    assert_eq!(
        snap_files(dir.path()),
        vec!["snap-0000000000000002-0000000000000001.snap"]
    );
    drop(s);
    h.heal();
    let (o, _h) = opts();
    let s = DiskStorage::open(dir.path(), o).unwrap();
    assert_eq!(s.snapshot().unwrap(), snapshot(2, 1, old));
    assert_eq!((s.first_index(), s.last_index()), (3, 8));
}
