//! Opening a data directory: find the files, load the newest snapshot, replay the WAL,
//! and check that what was found is everything the directory knows it had.
//!
//! Directory contents: `snap-*.snap` (at most one after a clean open), `*.wal` segments
//! with contiguous sequence numbers, `WAL-HEAD` (the newest segment ever made durable;
//! see `manifest`), and possibly `*.tmp` files left by a crash (deleted).
//! Recovery repairs exactly two crash artefacts: a torn record at the end of the last
//! segment (cut off), and a last segment whose header was never completely written
//! (removed). Both are listed in the [`RecoveryReport`] so the caller can log loudly
//! what was cut and why. Zeros after the last segment's last record are the WAL's
//! preallocated space (`wal`), not a repair: they are cut off without a report. Everything else that is wrong is an [`OpenError`]:
//! damage names file and offset, and missing data ([`OpenError::MissingLog`]: a segment
//! newer than any present is recorded in `WAL-HEAD`, a segment is gone from between two
//! present ones, or the hard state's commit index is beyond the recovered log) names the
//! missing entry range and files. Invariant: open
//! never silently rewinds the log below what it had made durable.

use crate::error::OpenError;
use crate::fs::{FileSystem, Residency, WritableFile};
use crate::log::Log;
use crate::manifest;
use crate::record::Record;
use crate::replay::Replay;
use crate::segment::{self, ScanEnd};
use crate::snapfile;
use crate::wal::{SegInfo, Wal};
use raft::{HardState, Snapshot, SnapshotMeta};
use std::path::{Path, PathBuf};

pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    /// Releases the snapshot file's pages (see `DiskStorage::release_snapshot_pages`).
    pub snapshot_pages: Residency,
    pub log: Log,
    pub segments: Vec<SegInfo>,
    pub active: Box<dyn WritableFile>,
    pub active_bytes: u64,
    /// A snapshot marker the WAL lacks; it must be written and synced before anything else.
    pub repair: Option<Record>,
    pub report: RecoveryReport,
}

/// What [`crate::DiskStorage::open`] repaired. Storage does no logging itself; the
/// host logs this (the server does, at WARN, one line per repair).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn tail cut off the last segment.
    pub truncated: Option<Truncation>,
    /// A last segment shorter than its header (a crash while creating it), removed.
    pub removed_unborn_segment: Option<PathBuf>,
    /// Leftover temporary files (a crash while writing a snapshot or the WAL head), removed.
    pub removed_temp_files: Vec<PathBuf>,
}

impl RecoveryReport {
    /// True if open changed nothing on disk.
    pub fn is_clean(&self) -> bool {
        self.truncated.is_none()
            && self.removed_unborn_segment.is_none()
            && self.removed_temp_files.is_empty()
    }
}

/// A torn tail cut off the last WAL segment on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    /// The file now ends here (where the torn record started).
    pub offset: u64,
    /// Bytes removed from `offset` to the old end of file.
    pub cut_bytes: u64,
    /// Which kind of torn write it looked like.
    pub why: &'static str,
    /// The recovered log's last index after the cut.
    pub last_index: raft::Index,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cut a torn tail off {}: {} bytes from byte offset {} ({}); the log now ends at \
             index {}. A crash tears only an unacknowledged write; if this file was cut by \
             other means, entries after {} are gone here and come back from the leader",
            self.path.display(),
            self.cut_bytes,
            self.offset,
            self.why,
            self.last_index,
            self.last_index
        )
    }
}

const PROBE_NAME: &str = ".write-probe";

pub fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    cache_max_bytes: u64,
) -> Result<Recovered, OpenError> {
    fs.create_dir_all(dir)
        .map_err(OpenError::io("create data directory", dir))?;
    probe_writable(fs, dir)?;
    let names = fs
        .list_dir(dir)
        .map_err(OpenError::io("list data directory", dir))?;
    let mut report = RecoveryReport {
        removed_temp_files: remove_temp(fs, dir, &names)?,
        ..RecoveryReport::default()
    };
    let head = manifest::read(fs, dir, &names)?;
    let (snapshot, snapshot_pages) = load_newest_snapshot(fs, dir, &names)?;
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n))
        .collect();
    seqs.sort_unstable();
    report.removed_unborn_segment = drop_unborn_last_segment(fs, dir, &mut seqs)?;
    if seqs.is_empty() {
        check_head(dir, head, 0, snapshot.meta.index)?;
        let r = fresh_wal(fs, dir, snapshot, cache_max_bytes)?;
        return Ok(Recovered { report, ..r });
    }
    let mut replay = Replay::new(snapshot.meta, cache_max_bytes, seqs[0] == 1);
    let mut segments = Vec::with_capacity(seqs.len());
    let mut last_len = 0;
    let mut cut_zeros = None;
    for (i, &seq) in seqs.iter().enumerate() {
        let is_last = i + 1 == seqs.len();
        if i > 0 && seq != seqs[i - 1] + 1 {
            return Err(missing_segments(
                fs,
                dir,
                seqs[i - 1],
                seq,
                is_last,
                &replay,
            ));
        }
        let (info, len, cut) = replay_segment(fs, dir, seq, is_last, &mut replay)?;
        segments.push(info);
        last_len = len;
        match cut {
            Some(Cut::Torn(t)) => report.truncated = Some(t),
            Some(Cut::Zeros(path)) => cut_zeros = Some(path),
            None => {}
        }
    }
    let (hard_state, log, repair) = replay.finish();
    let newest = *seqs.last().expect("non-empty");
    check_head(dir, head, newest, log.last_index())?;
    check_commit(dir, newest, hard_state, &log)?;
    if let Some(t) = &mut report.truncated {
        t.last_index = log.last_index();
        fs.truncate(&t.path, t.offset)
            .map_err(OpenError::io("truncate torn tail of", &t.path))?;
    }
    if let Some(path) = &cut_zeros {
        fs.truncate(path, last_len)
            .map_err(OpenError::io("truncate preallocated zeros of", path))?;
    }
    if head.is_none_or(|h| h < newest) {
        manifest::write(fs, dir, newest).map_err(OpenError::io("write WAL head in", dir))?;
    }
    let last = dir.join(segment::file_name(newest));
    let active = fs
        .open_append(&last)
        .map_err(OpenError::io("open for append", &last))?;
    Ok(Recovered {
        hard_state,
        snapshot,
        snapshot_pages,
        log,
        segments,
        active,
        active_bytes: last_len,
        repair,
        report,
    })
}

/// Refuses if `WAL-HEAD` records a newer segment than the newest present (`newest`, 0
/// for none): that segment was made durable and then removed by something else.
/// `last_index` is the last entry recovered without it.
fn check_head(
    dir: &Path,
    head: Option<u64>,
    newest: u64,
    last_index: raft::Index,
) -> Result<(), OpenError> {
    let Some(head) = head.filter(|&h| h > newest) else {
        return Ok(());
    };
    Err(OpenError::MissingLog {
        dir: dir.to_path_buf(),
        first: last_index + 1,
        last: None,
        files: (newest + 1..=head)
            .map(|s| dir.join(segment::file_name(s)))
            .collect(),
        reason: format!(
            "{} records segment {head} as the newest WAL segment, but the newest present \
             is {}, whose log ends at index {last_index}",
            manifest::FILE_NAME,
            if newest == 0 {
                "none".to_string()
            } else {
                segment::file_name(newest)
            }
        ),
    })
}

/// Refuses a durable commit index beyond the recovered log: entries are written before
/// the hard state that commits them (`RawNode::persist`), so only lost data explains it.
fn check_commit(dir: &Path, newest: u64, hs: HardState, log: &Log) -> Result<(), OpenError> {
    let last = log.last_index();
    if hs.commit <= last {
        return Ok(());
    }
    Err(OpenError::MissingLog {
        dir: dir.to_path_buf(),
        first: last + 1,
        last: Some(hs.commit),
        files: vec![dir.join(segment::file_name(newest))],
        reason: format!(
            "the recovered hard state's commit index is {} but the log ends at index {last}",
            hs.commit
        ),
    })
}

fn probe_writable(fs: &dyn FileSystem, dir: &Path) -> Result<(), OpenError> {
    let probe = dir.join(PROBE_NAME);
    let mut f = fs
        .create(&probe)
        .map_err(OpenError::io("write to data directory", dir))?;
    f.write_all(b"x")
        .map_err(OpenError::io("write to data directory", dir))?;
    drop(f);
    fs.remove_file(&probe)
        .map_err(OpenError::io("remove", &probe))
}

fn remove_temp(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
) -> Result<Vec<PathBuf>, OpenError> {
    let mut removed = Vec::new();
    for n in names.iter().filter(|n| n.ends_with(".tmp")) {
        let p = dir.join(n);
        fs.remove_file(&p)
            .map_err(OpenError::io("remove leftover", &p))?;
        removed.push(p);
    }
    Ok(removed)
}

/// Loads the newest snapshot file and deletes older ones (the newest is durable: it was
/// renamed into place only after its fsync).
fn load_newest_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
) -> Result<(Snapshot, Residency), OpenError> {
    let mut metas: Vec<SnapshotMeta> = names
        .iter()
        .filter_map(|n| snapfile::parse_file_name(n))
        .collect();
    metas.sort_by_key(|m| m.index);
    let Some(newest) = metas.pop() else {
        return Ok((Snapshot::default(), Residency::default()));
    };
    let path = dir.join(snapfile::file_name(newest));
    let loaded = snapfile::load(fs, &path, newest)?;
    for old in metas {
        let p = dir.join(snapfile::file_name(old));
        fs.remove_file(&p)
            .map_err(OpenError::io("remove superseded snapshot", &p))?;
    }
    Ok(loaded)
}

/// Segments `before + 1 .. after` are gone from between two present ones
/// (segments are only ever deleted oldest first, once a snapshot covers them):
/// refused naming the entries they held — from the one after the last entry
/// replayed so far to the one before segment `after`'s first entry (open-ended
/// if `after` holds no entry, or cannot be read).
fn missing_segments(
    fs: &dyn FileSystem,
    dir: &Path,
    before: u64,
    after: u64,
    after_is_last: bool,
    replay: &Replay,
) -> OpenError {
    let first = replay.last_index() + 1;
    let next = first_entry_index(fs, dir, after, after_is_last);
    OpenError::MissingLog {
        dir: dir.to_path_buf(),
        first,
        last: next.filter(|&n| n > first).map(|n| n - 1),
        files: (before + 1..after)
            .map(|s| dir.join(segment::file_name(s)))
            .collect(),
        reason: format!(
            "WAL segments {} and {} are present but the {} between them {} missing; the \
             log replayed up to {} ends at index {}{}",
            segment::file_name(before),
            segment::file_name(after),
            after - before - 1,
            if after - before == 2 { "is" } else { "are" },
            segment::file_name(before),
            first - 1,
            match next {
                Some(n) => format!(" and {} starts at index {n}", segment::file_name(after)),
                None => String::new(),
            }
        ),
    }
}

/// The index of the first entry in segment `seq`, if it holds one and reads cleanly.
fn first_entry_index(fs: &dyn FileSystem, dir: &Path, seq: u64, is_last: bool) -> Option<u64> {
    let path = dir.join(segment::file_name(seq));
    let buf = fs.read(&path).ok()?;
    if buf.len() < segment::HEADER_BYTES {
        return None;
    }
    let mut first = None;
    let _ = segment::scan(&path, &buf, seq, is_last, |rec, _| {
        if let (Record::Entry(e), None) = (&rec, first) {
            first = Some(e.index);
        }
        Ok(())
    });
    first
}

/// A crash while creating a segment can leave it shorter than its header; it never
/// held a record, so it is removed.
fn drop_unborn_last_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seqs: &mut Vec<u64>,
) -> Result<Option<PathBuf>, OpenError> {
    let Some(&seq) = seqs.last() else {
        return Ok(None);
    };
    let path = dir.join(segment::file_name(seq));
    let buf = fs.read(&path).map_err(OpenError::io("read", &path))?;
    if buf.len() >= segment::HEADER_BYTES {
        return Ok(None);
    }
    let expected = segment::encode_header(seq);
    if !buf.iter().zip(&expected).all(|(a, b)| a == b || *a == 0) {
        return Err(OpenError::corrupt(
            &path,
            0,
            "segment shorter than its header and not a torn header",
        ));
    }
    fs.remove_file(&path)
        .map_err(OpenError::io("remove torn segment", &path))?;
    seqs.pop();
    Ok(Some(path))
}

fn fresh_wal(
    fs: &dyn FileSystem,
    dir: &Path,
    snapshot: Snapshot,
    cache_max_bytes: u64,
) -> Result<Recovered, OpenError> {
    if !snapshot.is_empty() {
        let p = dir.join(snapfile::file_name(snapshot.meta));
        return Err(OpenError::corrupt(
            p,
            0,
            "a snapshot exists but every WAL segment is missing",
        ));
    }
    let first = dir.join(segment::file_name(1));
    let (active, active_bytes) =
        Wal::create_segment(fs, dir, 1, HardState::default(), snapshot.meta)
            .map_err(OpenError::io("create segment", &first))?;
    manifest::write(fs, dir, 1).map_err(OpenError::io("write WAL head in", dir))?;
    let log = Log::new(snapshot.meta, cache_max_bytes);
    let segments = vec![SegInfo {
        seq: 1,
        max_index: 0,
    }];
    Ok(Recovered {
        hard_state: HardState::default(),
        snapshot,
        snapshot_pages: Residency::default(),
        log,
        segments,
        active,
        active_bytes,
        repair: None,
        report: RecoveryReport::default(),
    })
}

/// What to cut off the last segment.
enum Cut {
    /// A torn record (and whatever follows it): reported.
    Torn(Truncation),
    /// Only zeros after the last record: space the WAL preallocated and never wrote
    /// (`wal`), holding no record. Cut without a report.
    Zeros(PathBuf),
}

/// Replays one segment. Returns its info, its length once a torn tail is cut, and the
/// cut to make (the caller makes it once every check passed, so a refused open leaves
/// the files as it found them; `last_index` is filled in then too).
fn replay_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seq: u64,
    is_last: bool,
    replay: &mut Replay,
) -> Result<(SegInfo, u64, Option<Cut>), OpenError> {
    let path = dir.join(segment::file_name(seq));
    let buf = fs.read(&path).map_err(OpenError::io("read", &path))?;
    if buf.len() < segment::HEADER_BYTES {
        return Err(OpenError::corrupt(
            &path,
            0,
            "sealed segment shorter than its header",
        ));
    }
    let mut info = SegInfo { seq, max_index: 0 };
    let end = segment::scan(&path, &buf, seq, is_last, |rec, loc| {
        if let Record::Entry(e) = &rec {
            info.max_index = info.max_index.max(e.index);
        }
        replay.apply(rec, loc)
    })?;
    match end {
        ScanEnd::Clean => Ok((info, buf.len() as u64, None)),
        ScanEnd::TornAt { offset, .. } if buf[offset as usize..].iter().all(|b| *b == 0) => {
            Ok((info, offset, Some(Cut::Zeros(path))))
        }
        ScanEnd::TornAt { offset, why } => {
            let cut = Truncation {
                path,
                offset,
                cut_bytes: buf.len() as u64 - offset,
                why,
                last_index: 0,
            };
            Ok((info, offset, Some(Cut::Torn(cut))))
        }
    }
}
