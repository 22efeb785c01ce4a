//! Crash and corruption tests: what recovery must cut (a torn tail of the last segment)
//! and what it must refuse (everything else), never losing an earlier record.
//!
//! Specification under test (see `record::is_torn_tail`):
//! * the last record of the last segment cut at ANY byte offset → cut off, open succeeds;
//! * ANY single flipped bit in a complete record → `OpenError::Corrupt` at that record;
//! * a zero-filled tail, or a final record containing a zeroed sector → cut off;
//! * with preallocation: zeros after the last record → cut off, not reported; a final
//!   record whose later sectors read as zeros → cut off and reported; a flipped bit in
//!   it → `Corrupt`; sealed segments end with their last record;
//! * damage in a sealed segment, missing first segments, a bad snapshot → `Corrupt`;
//! * a missing middle or newest segment, a log cut below its commit index → `MissingLog`
//!   naming the entry range;
//! * a different format version → `IncompatibleVersion`.

use raft::{Entry, HardState, Storage};
use std::fs;
use std::path::{Path, PathBuf};
use storage::format::{segment_file_name, FORMAT_VERSION, RECORD_HEADER_BYTES};
use storage::testkit::snap;
use storage::{DiskOptions, DiskStorage, OpenError};

const N: u64 = 6;

/// Real files, no fsync: these tests damage files by hand, so fsync adds only time.
/// No preallocation: they place damage by offsets from the end of the file (the
/// `preallocated_*` tests below turn it on).
fn fast() -> DiskOptions {
    DiskOptions {
        fs: std::sync::Arc::new(storage::fault::FaultyFs::new(true).0),
        preallocate_bytes: 0,
        ..DiskOptions::default()
    }
}

/// `fast()` with the active segment zero-filled 64 KiB ahead of its records.
fn preallocating() -> DiskOptions {
    DiskOptions {
        preallocate_bytes: 64 << 10,
        ..fast()
    }
}
const HS: HardState = HardState {
    term: 2,
    vote: Some(1),
    commit: 3,
};

fn entry(index: u64, len: usize) -> Entry {
    Entry::normal(
        2,
        index,
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13) | 0x11)
            .collect::<Vec<u8>>()
            .into(),
    )
}

fn frame_bytes(len: usize) -> usize {
    RECORD_HEADER_BYTES + 17 + len
}

/// A store with entries 1..=N (entry N of `last_len` bytes, written last) in one segment.
fn build(dir: &Path, last_len: usize) -> PathBuf {
    build_with(dir, last_len, fast())
}

fn build_with(dir: &Path, last_len: usize, opts: DiskOptions) -> PathBuf {
    let mut s = DiskStorage::open(dir, opts).unwrap();
    s.set_hard_state(HS).unwrap();
    s.append(&(1..N).map(|i| entry(i, 40)).collect::<Vec<_>>())
        .unwrap();
    s.sync().unwrap();
    s.append(&[entry(N, last_len)]).unwrap();
    s.sync().unwrap();
    dir.join(segment_file_name(1))
}

/// Overwrites one byte in place (rewriting the whole file would make ext4 flush it).
fn patch_byte(path: &Path, at: usize, value: u8) {
    use std::os::unix::fs::FileExt;
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(&[value], at as u64)
        .unwrap();
}

fn assert_prefix_intact(s: &DiskStorage, last: u64) {
    assert_eq!(s.hard_state(), HS);
    assert_eq!(s.last_index(), last);
    let want: Vec<Entry> = (1..=last)
        .map(|i| if i == N { entry(i, 300) } else { entry(i, 40) })
        .collect();
    assert_eq!(s.entries(1, last + 1, u64::MAX).unwrap(), want);
}

fn expect_corrupt(r: Result<DiskStorage, OpenError>, path: &Path, offset: u64, what: &str) {
    match r {
        Err(OpenError::Corrupt {
            path: p, offset: o, ..
        }) => {
            assert_eq!((p.as_path(), o), (path, offset), "{what}");
        }
        other => panic!(
            "{what}: expected Corrupt at {} offset {offset}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn last_record_cut_at_every_offset_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 300);
    let full = fs::read(&seg).unwrap();
    let start = full.len() - frame_bytes(300);
    for cut in start..full.len() {
        fs::write(&seg, &full[..cut]).unwrap();
        let s = DiskStorage::open(dir.path(), fast()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_prefix_intact(&s, N - 1);
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            start as u64,
            "cut {cut}: torn tail removed"
        );
    }
    fs::write(&seg, &full).unwrap();
    assert_prefix_intact(&DiskStorage::open(dir.path(), fast()).unwrap(), N);
}

#[test]
fn appends_after_a_truncated_tail_survive() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 300);
    let full = fs::read(&seg).unwrap();
    fs::write(&seg, &full[..full.len() - 7]).unwrap();
    let mut s = DiskStorage::open(dir.path(), fast()).unwrap();
    s.append(&[entry(N, 300)]).unwrap();
    s.sync().unwrap();
    drop(s);
    assert_prefix_intact(&DiskStorage::open(dir.path(), fast()).unwrap(), N);
}

#[test]
fn any_bit_flip_in_the_last_record_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 300);
    let full = fs::read(&seg).unwrap();
    let start = full.len() - frame_bytes(300);
    for bit in start * 8..full.len() * 8 {
        let mut b = full.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        patch_byte(&seg, bit / 8, b[bit / 8]);
        expect_corrupt(
            DiskStorage::open(dir.path(), fast()),
            &seg,
            start as u64,
            &format!("bit {bit}"),
        );
        assert_eq!(
            fs::read(&seg).unwrap(),
            b,
            "bit {bit}: a refused open must not modify the file"
        );
        patch_byte(&seg, bit / 8, full[bit / 8]);
    }
}

#[test]
fn bit_flip_in_an_earlier_record_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 300);
    let full = fs::read(&seg).unwrap();
    // Entry N-1 ends where entry N's frame starts.
    let start = full.len() - frame_bytes(300) - frame_bytes(40);
    for bit in (start * 8..(start + frame_bytes(40)) * 8).step_by(3) {
        let mut b = full.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        fs::write(&seg, &b).unwrap();
        expect_corrupt(
            DiskStorage::open(dir.path(), fast()),
            &seg,
            start as u64,
            &format!("bit {bit}"),
        );
    }
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 300);
    let mut b = fs::read(&seg).unwrap();
    let len = b.len();
    b.extend_from_slice(&[0u8; 4096]);
    fs::write(&seg, &b).unwrap();
    assert_prefix_intact(&DiskStorage::open(dir.path(), fast()).unwrap(), N);
    assert_eq!(fs::metadata(&seg).unwrap().len(), len as u64);
}

#[test]
fn final_record_with_an_unwritten_sector_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 2000);
    let mut b = fs::read(&seg).unwrap();
    let start = b.len() - frame_bytes(2000);
    let sector = start.div_ceil(512) * 512 + 512;
    b[sector..sector + 512].fill(0);
    fs::write(&seg, &b).unwrap();
    let s = DiskStorage::open(dir.path(), fast()).unwrap();
    assert_eq!(s.last_index(), N - 1);
}

fn build_multi_segment(dir: &Path) -> DiskOptions {
    let opts = DiskOptions {
        segment_max_bytes: 200,
        ..fast()
    };
    let mut s = DiskStorage::open(dir, opts.clone()).unwrap();
    for i in 1..=12 {
        s.append(&[entry(i, 60)]).unwrap();
        s.sync().unwrap();
    }
    assert!(s.segment_count() >= 4);
    opts
}

#[test]
fn damage_in_a_sealed_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = build_multi_segment(dir.path());
    let seg = dir.path().join(segment_file_name(2));
    let full = fs::read(&seg).unwrap();
    fs::write(&seg, &full[..full.len() - 1]).unwrap();
    let start = full.len() - frame_bytes(60);
    expect_corrupt(
        DiskStorage::open(dir.path(), opts.clone()),
        &seg,
        start as u64,
        "cut sealed segment",
    );
    let mut b = full.clone();
    b.extend_from_slice(&[0u8; 64]);
    fs::write(&seg, &b).unwrap();
    expect_corrupt(
        DiskStorage::open(dir.path(), opts),
        &seg,
        full.len() as u64,
        "zeros after a sealed segment",
    );
}

/// The last index a directory holding only segments `1..=upto` of `dir` recovers.
fn last_index_of_prefix(dir: &Path, upto: u64, opts: &DiskOptions) -> u64 {
    let copy = tempfile::tempdir().unwrap();
    for seq in 1..=upto {
        fs::copy(
            dir.join(segment_file_name(seq)),
            copy.path().join(segment_file_name(seq)),
        )
        .unwrap();
    }
    DiskStorage::open(copy.path(), opts.clone())
        .unwrap()
        .last_index()
}

/// Issue 11: a deleted middle segment was refused as `Corrupt` naming the file; now it
/// is missing log data naming the entry range it held (and the file).
#[test]
fn missing_middle_segment_is_refused_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let opts = build_multi_segment(dir.path());
    let (end_of_1, end_of_2) = (
        last_index_of_prefix(dir.path(), 1, &opts),
        last_index_of_prefix(dir.path(), 2, &opts),
    );
    assert!(end_of_2 > end_of_1, "segment 2 holds entries");
    let seg = dir.path().join(segment_file_name(2));
    fs::remove_file(&seg).unwrap();
    match DiskStorage::open(dir.path(), opts.clone()) {
        Err(e @ OpenError::MissingLog { .. }) => {
            let msg = e.to_string();
            eprintln!("{msg}");
            let OpenError::MissingLog {
                first, last, files, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!((first, last), (end_of_1 + 1, Some(end_of_2)));
            assert_eq!(files, vec![seg.clone()]);
            let range = format!("log entries {}..={} are missing", end_of_1 + 1, end_of_2);
            assert!(msg.contains(&range), "{msg}");
        }
        other => panic!("a missing middle segment must be refused, got {other:?}"),
    }
    let first = dir.path().join(segment_file_name(1));
    fs::remove_file(&first).unwrap();
    match DiskStorage::open(dir.path(), opts) {
        Err(OpenError::Corrupt { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("missing first segments with no snapshot must be refused, got {other:?}"),
    }
}

#[test]
fn incompatible_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 10);
    let mut b = fs::read(&seg).unwrap();
    b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    fs::write(&seg, &b).unwrap();
    match DiskStorage::open(dir.path(), fast()) {
        Err(OpenError::IncompatibleVersion {
            path,
            found,
            supported,
        }) => {
            assert_eq!(
                (path, found, supported),
                (seg, FORMAT_VERSION + 1, FORMAT_VERSION)
            );
        }
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
}

#[test]
fn snapshot_damage_is_corruption_and_temp_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = DiskStorage::open(dir.path(), fast()).unwrap();
    s.append(&(1..=4).map(|i| entry(i, 10)).collect::<Vec<_>>())
        .unwrap();
    s.compact(snap(2, 2)).unwrap();
    s.sync().unwrap();
    drop(s);
    fs::write(dir.path().join("snap.tmp"), b"half a snapshot").unwrap();
    let s = DiskStorage::open(dir.path(), fast()).unwrap();
    assert_eq!(s.snapshot().unwrap(), snap(2, 2));
    assert!(!dir.path().join("snap.tmp").exists());
    drop(s);
    let snap_path = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap();
    let mut b = fs::read(&snap_path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 4;
    fs::write(&snap_path, &b).unwrap();
    assert!(
        matches!(DiskStorage::open(dir.path(), fast()), Err(OpenError::Corrupt { path, .. }) if path == snap_path)
    );
}

#[test]
fn unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"").unwrap();
    match DiskStorage::open(&file.join("data"), fast()) {
        Err(e @ OpenError::Io { .. }) => assert!(e.to_string().contains("not-a-dir"), "{e}"),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

/// Segments 1 and 2 with entries in both; returns the options and the last index.
fn build_two_segments(dir: &Path) -> (DiskOptions, u64) {
    let opts = DiskOptions {
        segment_max_bytes: 600,
        ..fast()
    };
    let mut s = DiskStorage::open(dir, opts.clone()).unwrap();
    let add = |s: &mut DiskStorage| {
        let i = s.last_index() + 1;
        s.append(&[entry(i, 60)]).unwrap();
        s.set_hard_state(HardState { commit: i, ..HS }).unwrap();
        s.sync().unwrap();
    };
    while s.segment_count() < 2 {
        add(&mut s);
    }
    add(&mut s);
    add(&mut s);
    assert_eq!(s.segment_count(), 2);
    (opts, s.last_index())
}

/// Issue 11: with the newest of two segments deleted, the node used to start silently
/// at the end of the first one. Now the WAL head says segment 2 existed durably.
#[test]
fn deleted_newest_segment_is_refused_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let (opts, _) = build_two_segments(dir.path());
    let first_only_last = {
        // What segment 1 alone holds: open a copy without segment 2 and without the head.
        let copy = tempfile::tempdir().unwrap();
        fs::copy(
            dir.path().join(segment_file_name(1)),
            copy.path().join(segment_file_name(1)),
        )
        .unwrap();
        DiskStorage::open(copy.path(), opts.clone())
            .unwrap()
            .last_index()
    };
    let seg2 = dir.path().join(segment_file_name(2));
    fs::remove_file(&seg2).unwrap();
    let seg1_before = fs::read(dir.path().join(segment_file_name(1))).unwrap();
    match DiskStorage::open(dir.path(), opts) {
        Err(e @ OpenError::MissingLog { .. }) => {
            let msg = e.to_string();
            eprintln!("{msg}");
            let OpenError::MissingLog {
                first, last, files, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!((first, last), (first_only_last + 1, None));
            assert_eq!(files, vec![seg2.clone()]);
            assert!(
                msg.contains(&format!("log entries from {} on", first)),
                "{msg}"
            );
            assert!(msg.contains(&seg2.display().to_string()), "{msg}");
        }
        other => panic!("a deleted newest segment must be refused, got {other:?}"),
    }
    assert_eq!(
        fs::read(dir.path().join(segment_file_name(1))).unwrap(),
        seg1_before,
        "a refused open must not modify the files"
    );
}

/// Every segment but the newest deleted, the newest freshly rolled (no entries, only the
/// hard state it repeats): replay sees no gap, but the commit index says entries existed.
#[test]
fn log_missing_below_the_commit_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DiskOptions {
        segment_max_bytes: 200,
        ..fast()
    };
    let mut s = DiskStorage::open(dir.path(), opts.clone()).unwrap();
    let mut i = 0;
    loop {
        i += 1;
        let before = s.segment_count();
        s.append(&[entry(i, 60)]).unwrap();
        s.set_hard_state(HardState { commit: i, ..HS }).unwrap();
        s.sync().unwrap();
        // The sync that rolled wrote commit = i into the new segment's header.
        if s.segment_count() > before && i >= 4 {
            break;
        }
    }
    let newest = s.segment_count() as u64;
    drop(s);
    for seq in 1..newest {
        fs::remove_file(dir.path().join(segment_file_name(seq))).unwrap();
    }
    match DiskStorage::open(dir.path(), opts) {
        Err(e @ OpenError::MissingLog { .. }) => {
            eprintln!("{e}");
            let OpenError::MissingLog {
                first, last, files, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!((first, last), (1, Some(i)));
            assert_eq!(files, vec![dir.path().join(segment_file_name(newest))]);
        }
        other => panic!("a log missing below its commit index must be refused, got {other:?}"),
    }
}

/// Issue 11: a few bytes cut off the tail recovered correctly but silently. Now the
/// recovery report names the file, the offset, the bytes cut and why.
#[test]
fn truncated_tail_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build(dir.path(), 300);
    let full = fs::read(&seg).unwrap();
    fs::write(&seg, &full[..full.len() - 5]).unwrap();
    let s = DiskStorage::open(dir.path(), fast()).unwrap();
    assert_prefix_intact(&s, N - 1);
    let start = (full.len() - frame_bytes(300)) as u64;
    let cut = s
        .recovery_report()
        .truncated
        .clone()
        .expect("a cut is reported");
    eprintln!("{cut}");
    assert_eq!(
        (
            cut.path.as_path(),
            cut.offset,
            cut.cut_bytes,
            cut.last_index
        ),
        (seg.as_path(), start, frame_bytes(300) as u64 - 5, N - 1)
    );
    assert!(cut.why.contains("incomplete"), "{}", cut.why);
    let msg = cut.to_string();
    assert!(msg.contains(&seg.display().to_string()) && msg.contains(&format!("{start}")));
    drop(s);
    let clean = DiskStorage::open(dir.path(), fast()).unwrap();
    assert!(
        clean.recovery_report().is_clean(),
        "{:?}",
        clean.recovery_report()
    );
}

/// A crash after a new segment became durable but before `WAL-HEAD` named it leaves a
/// head one behind: that is not a missing segment. A directory from a build without a
/// head file opens too. Either way open (re)writes the head.
#[test]
fn head_behind_or_absent_is_accepted_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("WAL-HEAD");
    let opts = DiskOptions {
        segment_max_bytes: 600,
        ..fast()
    };
    let mut s = DiskStorage::open(dir.path(), opts.clone()).unwrap();
    let head_at_1 = fs::read(&head).unwrap();
    let mut i = 0;
    while s.segment_count() < 2 {
        i += 1;
        s.append(&[entry(i, 60)]).unwrap();
        s.sync().unwrap();
    }
    drop(s);
    let head_at_2 = fs::read(&head).unwrap();
    assert_ne!(
        head_at_1, head_at_2,
        "rolling to segment 2 updates the head"
    );
    fs::write(&head, &head_at_1).unwrap();
    assert_eq!(
        DiskStorage::open(dir.path(), opts.clone())
            .unwrap()
            .last_index(),
        i
    );
    assert_eq!(fs::read(&head).unwrap(), head_at_2);
    fs::remove_file(&head).unwrap();
    assert_eq!(DiskStorage::open(dir.path(), opts).unwrap().last_index(), i);
    assert_eq!(fs::read(&head).unwrap(), head_at_2);
}

/// Where the records of a segment end: entry data is never zero (see `entry`), so the
/// last non-zero byte ends the last record; preallocated zeros follow.
fn records_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).unwrap() + 1
}

/// Preallocation (issue 15): the active segment carries zeros after its records. A
/// reopen cuts them without reporting a repair, and appends continue right after the
/// last record, not after the zeros.
#[test]
fn preallocated_zeros_are_cut_silently_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build_with(dir.path(), 300, preallocating());
    let b = fs::read(&seg).unwrap();
    let end = records_end(&b);
    assert!(
        b.len() >= end + (32 << 10),
        "zeros ahead: {} of {}",
        end,
        b.len()
    );
    let mut s = DiskStorage::open(dir.path(), preallocating()).unwrap();
    assert_prefix_intact(&s, N);
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    assert_eq!(fs::metadata(&seg).unwrap().len(), end as u64);
    s.append(&[entry(N + 1, 40)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = DiskStorage::open(dir.path(), preallocating()).unwrap();
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    assert_eq!(s.last_index(), N + 1);
    assert_eq!(
        s.entries(N + 1, N + 2, u64::MAX).unwrap(),
        vec![entry(N + 1, 40)]
    );
    let before: Vec<Entry> = (1..=N)
        .map(|i| if i == N { entry(i, 300) } else { entry(i, 40) })
        .collect();
    assert_eq!(s.entries(1, N + 1, u64::MAX).unwrap(), before);
}

/// A crash while writing into preallocated space: the last record's later sectors
/// still read as zeros. It is torn: cut off and reported, the records before it kept.
#[test]
fn preallocated_torn_record_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build_with(dir.path(), 2000, preallocating());
    let mut b = fs::read(&seg).unwrap();
    let end = records_end(&b);
    let start = end - frame_bytes(2000);
    let lost_from = (start + RECORD_HEADER_BYTES).div_ceil(512) * 512;
    b[lost_from..end].fill(0);
    fs::write(&seg, &b).unwrap();
    let s = DiskStorage::open(dir.path(), preallocating()).unwrap();
    assert_eq!(s.last_index(), N - 1);
    let cut = s.recovery_report().truncated.clone().expect("reported");
    assert_eq!(cut.offset, start as u64);
    assert_eq!(fs::metadata(&seg).unwrap().len(), start as u64);
}

/// Preallocated zeros after the last record do not make a flipped bit in it look torn.
#[test]
fn preallocated_flipped_bit_in_the_last_record_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let seg = build_with(dir.path(), 300, preallocating());
    let b = fs::read(&seg).unwrap();
    let end = records_end(&b);
    let start = end - frame_bytes(300);
    for at in [start + 2, start + 5, start + 8, start + 20, end - 1] {
        let mut d = b.clone();
        d[at] ^= 0x04;
        fs::write(&seg, &d).unwrap();
        expect_corrupt(
            DiskStorage::open(dir.path(), preallocating()),
            &seg,
            start as u64,
            &format!("byte {at}"),
        );
    }
}

/// With preallocation, a segment still rolls only once its records fill it: every
/// sealed segment ends with its last record (no zeros), and everything reopens.
#[test]
fn preallocated_segments_seal_without_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DiskOptions {
        segment_max_bytes: 2000,
        ..preallocating()
    };
    let mut s = DiskStorage::open(dir.path(), opts.clone()).unwrap();
    for i in 1..=40 {
        s.append(&[entry(i, 150)]).unwrap();
        s.sync().unwrap();
    }
    let segments = s.segment_count() as u64;
    assert!(segments >= 3, "{segments}");
    drop(s);
    for seq in 1..segments {
        let b = fs::read(dir.path().join(segment_file_name(seq))).unwrap();
        assert_eq!(records_end(&b), b.len(), "sealed segment {seq}");
    }
    let s = DiskStorage::open(dir.path(), opts).unwrap();
    assert!(s.recovery_report().is_clean(), "{:?}", s.recovery_report());
    assert_eq!(s.last_index(), 40);
    let want: Vec<Entry> = (1..=40).map(|i| entry(i, 150)).collect();
    assert_eq!(s.entries(1, 41, u64::MAX).unwrap(), want);
}
