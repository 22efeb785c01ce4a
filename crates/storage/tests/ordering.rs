//! The order in which a compaction reaches the disk, watched at the file-system seam:
//! the snapshot file is durable (fsync, rename, directory fsync) before the WAL marker
//! that compacts the log is written; the previous snapshot file is removed only after
//! the new one is durable; covered segments are removed only after the marker is
//! durable — by `sync` itself, or, with `DiskOptions::defer_segment_removal`, only when
//! the host runs the `SegmentRemoval` it takes (and a crash before that recovers).

use bytes::Bytes;
use raft::{Entry, SnapshotMeta, Storage};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use storage::fs::{FileSystem, ReadOnlyFile, StdFs, SyncFile, WritableFile};
use storage::{DiskOptions, DiskStorage};

/// What reached the file system, in order: `"write NAME"`, `"fsync NAME"`,
/// `"rename FROM TO"`, `"remove NAME"`, `"dirsync"`, `"create NAME"`.
type Events = Arc<Mutex<Vec<String>>>;

#[derive(Debug, Clone, Default)]
struct RecordingFs {
    events: Events,
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

impl RecordingFs {
    fn log(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
    fn wrap(&self, path: &Path, inner: Box<dyn WritableFile>) -> Box<dyn WritableFile> {
        Box::new(RecordingFile {
            inner,
            name: name(path),
            events: self.events.clone(),
        })
    }
}

struct RecordingFile {
    inner: Box<dyn WritableFile>,
    name: String,
    events: Events,
}

impl RecordingFile {
    fn log(&self, what: &str) {
        let event = format!("{what} {}", self.name);
        self.events.lock().unwrap().push(event);
    }
}

impl WritableFile for RecordingFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.log("write");
        self.inner.write_all(buf)
    }
    fn zero_fill(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.zero_fill(offset, len)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.log("write");
        self.inner.write_at(offset, buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.log("fsync");
        self.inner.sync_data()
    }
    fn sync_handle(&self) -> io::Result<Arc<dyn SyncFile>> {
        Ok(Arc::new(RecordingSync {
            inner: self.inner.sync_handle()?,
            name: self.name.clone(),
            events: self.events.clone(),
        }))
    }
}

struct RecordingSync {
    inner: Arc<dyn SyncFile>,
    name: String,
    events: Events,
}

impl SyncFile for RecordingSync {
    fn sync_data(&self) -> io::Result<()> {
        self.events
            .lock()
            .unwrap()
            .push(format!("fsync {}", self.name));
        self.inner.sync_data()
    }
}

impl FileSystem for RecordingFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFs.read(path)
    }
    fn map_read(&self, path: &Path) -> io::Result<ReadOnlyFile> {
        StdFs.map_read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        StdFs.read_at(path, offset, len)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.log(format!("create {}", name(path)));
        Ok(self.wrap(path, StdFs.create(path)?))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(self.wrap(path, StdFs.open_append(path)?))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        StdFs.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.log(format!("rename {} {}", name(from), name(to)));
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.log(format!("remove {}", name(path)));
        StdFs.remove_file(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        StdFs.file_len(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.log("dirsync".into());
        StdFs.sync_dir(dir)
    }
}

/// Every record is written to its file as it is pushed (no buffering), so the event
/// log shows when each one, the snapshot marker above all, reached the WAL file.
fn opts(fs: &RecordingFs, defer: bool) -> DiskOptions {
    DiskOptions {
        segment_max_bytes: 2048,
        write_buffer_max_bytes: 1,
        preallocate_bytes: 0,
        defer_segment_removal: defer,
        fs: Arc::new(fs.clone()),
        ..DiskOptions::default()
    }
}

fn entry(index: u64) -> Entry {
    Entry::normal(1, index, Bytes::from(vec![index as u8; 100]))
}

/// A store holding entries 1..=200 over several segments, with a snapshot at 50.
fn build(dir: &Path, fs: &RecordingFs, defer: bool) -> DiskStorage {
    let mut s = DiskStorage::open(dir, opts(fs, defer)).unwrap();
    for lo in (1..=200).step_by(20) {
        let batch: Vec<Entry> = (lo..lo + 20).map(entry).collect();
        s.append(&batch).unwrap();
        s.sync().unwrap();
    }
    compact_at(&mut s, 50);
    s.sync().unwrap();
    assert!(s.segment_count() > 3, "entries after 150 span segments");
    s
}

fn compact_at(s: &mut DiskStorage, index: u64) {
    let meta = SnapshotMeta { index, term: 1 };
    let conf = Some(raft::Membership::with_voters([1, 2, 3]));
    let state = vec![7u8; 10_000];
    s.compact_streamed(meta, conf, &mut |w| w.write_all(&state))
        .unwrap();
}

fn snap_name(index: u64) -> String {
    format!("snap-{index:016x}-{:016x}.snap", 1)
}

fn is_segment(event: &str) -> bool {
    event.ends_with(".wal")
}

/// Position of the first event `want` at or after `from`.
fn pos(events: &[String], from: usize, want: impl Fn(&str) -> bool, what: &str) -> usize {
    let at = events[from..].iter().position(|e| want(e));
    from + at.unwrap_or_else(|| panic!("no {what} after event {from} in {events:#?}"))
}

/// The whole order of one compaction and the sync after it, with covered segments
/// removed by that sync (`defer` false) or not at all (`defer` true).
fn check_compaction_order(defer: bool) {
    let dir = tempfile::tempdir().unwrap();
    let fs = RecordingFs::default();
    let mut s = build(dir.path(), &fs, defer);
    let _ = s.take_segment_removal();
    fs.take();
    compact_at(&mut s, 180);
    s.sync().unwrap();
    let ev = fs.take();

    let tmp_fsync = pos(&ev, 0, |e| e == "fsync snap.tmp", "fsync of snap.tmp");
    let renamed = format!("rename snap.tmp {}", snap_name(180));
    let rename = pos(&ev, 0, |e| e == renamed, "rename into place");
    let dirsync = pos(&ev, rename, |e| e == "dirsync", "directory fsync");
    assert!(
        tmp_fsync < rename,
        "renamed before its data was durable: {ev:#?}"
    );
    // Safety rule: the snapshot file is durable before the marker is written.
    let first_wal_write = pos(
        &ev,
        0,
        |e| e.starts_with("write ") && is_segment(e),
        "WAL write",
    );
    assert!(
        first_wal_write > dirsync,
        "the WAL marker was written before the snapshot file was durable: {ev:#?}"
    );
    let old = format!("remove {}", snap_name(50));
    let removed_old = pos(&ev, 0, |e| e == old, "removal of the old snapshot");
    assert!(removed_old > dirsync, "old snapshot removed first: {ev:#?}");
    let marker_durable = pos(
        &ev,
        first_wal_write,
        |e| e.starts_with("fsync ") && is_segment(e),
        "WAL fsync",
    );
    // The host's removal starts by renaming the segment out of the WAL's names; the
    // inline one unlinks it (`removal`).
    let segment_removals: Vec<usize> = (0..ev.len())
        .filter(|&i| {
            let e = &ev[i];
            (e.starts_with("rename ") && e.contains(".wal "))
                || (e.starts_with("remove ") && is_segment(e))
        })
        .collect();
    if defer {
        assert!(
            segment_removals.is_empty(),
            "sync removed segments: {ev:#?}"
        );
    } else {
        assert!(
            !segment_removals.is_empty(),
            "sync removed no segment: {ev:#?}"
        );
        assert!(
            segment_removals.iter().all(|&i| i > marker_durable),
            "a covered segment was removed before the marker was durable: {ev:#?}"
        );
    }
}

#[test]
fn a_compaction_reaches_the_disk_in_safe_order() {
    check_compaction_order(false);
}

#[test]
fn a_compaction_reaches_the_disk_in_safe_order_with_deferred_removal() {
    check_compaction_order(true);
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = StdFs
        .list_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    v.sort();
    v
}

/// How far the host got with a removal job before the crash.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ran {
    Not,
    /// Crashed after renaming the oldest segment away and cutting it short.
    HalfWay,
    Whole,
}

/// The covered segments `sync` detached stay on disk until the host runs the job; a
/// crash before that (the store dropped, the job never run) or half-way through it
/// recovers the same log, and the recovered store deletes what is left itself.
#[test]
fn deferred_segment_removal_runs_only_when_the_host_runs_it_and_a_crash_before_recovers() {
    for ran in [Ran::Not, Ran::HalfWay, Ran::Whole] {
        let dir = tempfile::tempdir().unwrap();
        let fs = RecordingFs::default();
        let mut s = build(dir.path(), &fs, true);
        let first = s.take_segment_removal();
        let files_before = segment_files(dir.path());
        compact_at(&mut s, 180);
        s.sync().unwrap();
        let removal = s.take_segment_removal().expect("segments covered by 180");
        assert!(s.take_segment_removal().is_none(), "taken once");
        assert_eq!(
            segment_files(dir.path()),
            files_before,
            "nothing removed yet"
        );
        let gone: Vec<String> = removal.paths().iter().map(|p| name(p)).collect();
        assert!(gone.len() >= 2, "{gone:?}");
        assert!(gone.iter().all(|n| files_before.contains(n)));
        if ran != Ran::Not {
            // The host runs jobs in the order it took them (oldest segments first).
            if let Some(r) = first {
                r.run().unwrap();
            }
        }
        if ran == Ran::HalfWay {
            let oldest = &removal.paths()[0];
            let tmp = oldest.with_extension("wal.tmp");
            std::fs::rename(oldest, &tmp).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&tmp)
                .unwrap()
                .set_len(100)
                .unwrap();
        }
        if ran == Ran::Whole {
            removal.run().unwrap();
            let left = segment_files(dir.path());
            assert!(gone.iter().all(|n| !left.contains(n)), "{left:?}");
            assert_eq!(left.len(), s.segment_count());
        }
        drop(s); // a crash: nothing was written but what is above

        let mut s = DiskStorage::open(dir.path(), opts(&fs, false)).unwrap();
        let leftovers = s.recovery_report().removed_temp_files.len();
        assert_eq!(leftovers, usize::from(ran == Ran::HalfWay), "{ran:?}");
        assert_eq!(
            s.snapshot().unwrap().meta,
            SnapshotMeta {
                index: 180,
                term: 1
            }
        );
        assert_eq!((s.first_index(), s.last_index()), (181, 200));
        assert_eq!(
            s.entries(181, 201, u64::MAX).unwrap(),
            (181..=200).map(entry).collect::<Vec<_>>()
        );
        s.append(&[entry(201)]).unwrap();
        s.sync().unwrap();
        let left = segment_files(dir.path());
        assert_eq!(left.len(), s.segment_count(), "leftovers removed: {left:?}");
    }
}
