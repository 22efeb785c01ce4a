//! Opening a data directory: find the files, load the newest snapshot, replay the WAL.
//!
//! Directory contents: `snap-*.snap` (at most one after a clean open), `*.wal` segments
//! with contiguous sequence numbers, and possibly a `snap.tmp` left by a crash (deleted).
//! Recovery repairs exactly two crash artefacts: a torn record at the end of the last
//! segment (cut off), and a last segment whose header was never completely written
//! (removed). Everything else that is wrong is an [`OpenError`] naming file and offset.

use crate::error::OpenError;
use crate::fs::{FileSystem, WritableFile};
use crate::log::Log;
use crate::record::Record;
use crate::replay::Replay;
use crate::segment::{self, ScanEnd};
use crate::snapfile;
use crate::wal::{SegInfo, Wal};
use raft::{HardState, Snapshot, SnapshotMeta};
use std::path::Path;

pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub log: Log,
    pub segments: Vec<SegInfo>,
    pub active: Box<dyn WritableFile>,
    pub active_bytes: u64,
    /// A snapshot marker the WAL lacks; it must be written and synced before anything else.
    pub repair: Option<Record>,
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
    remove_temp(fs, dir, &names)?;
    let snapshot = load_newest_snapshot(fs, dir, &names)?;
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n))
        .collect();
    seqs.sort_unstable();
    check_contiguous(dir, &seqs)?;
    drop_unborn_last_segment(fs, dir, &mut seqs)?;
    if seqs.is_empty() {
        return fresh_wal(fs, dir, snapshot, cache_max_bytes);
    }
    let mut replay = Replay::new(snapshot.meta, cache_max_bytes, seqs[0] == 1);
    let mut segments = Vec::with_capacity(seqs.len());
    let mut last_len = 0;
    for (i, &seq) in seqs.iter().enumerate() {
        let (info, len) = replay_segment(fs, dir, seq, i + 1 == seqs.len(), &mut replay)?;
        segments.push(info);
        last_len = len;
    }
    let (hard_state, log, repair) = replay.finish();
    let last = dir.join(segment::file_name(*seqs.last().expect("non-empty")));
    let active = fs
        .open_append(&last)
        .map_err(OpenError::io("open for append", &last))?;
    Ok(Recovered {
        hard_state,
        snapshot,
        log,
        segments,
        active,
        active_bytes: last_len,
        repair,
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

fn remove_temp(fs: &dyn FileSystem, dir: &Path, names: &[String]) -> Result<(), OpenError> {
    for n in names.iter().filter(|n| n.ends_with(".tmp")) {
        let p = dir.join(n);
        fs.remove_file(&p)
            .map_err(OpenError::io("remove leftover", &p))?;
    }
    Ok(())
}

/// Loads the newest snapshot file and deletes older ones (the newest is durable: it was
/// renamed into place only after its fsync).
fn load_newest_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
) -> Result<Snapshot, OpenError> {
    let mut metas: Vec<SnapshotMeta> = names
        .iter()
        .filter_map(|n| snapfile::parse_file_name(n))
        .collect();
    metas.sort_by_key(|m| m.index);
    let Some(newest) = metas.pop() else {
        return Ok(Snapshot::default());
    };
    let path = dir.join(snapfile::file_name(newest));
    let snap = snapfile::load(fs, &path, newest)?;
    for old in metas {
        let p = dir.join(snapfile::file_name(old));
        fs.remove_file(&p)
            .map_err(OpenError::io("remove superseded snapshot", &p))?;
    }
    Ok(snap)
}

fn check_contiguous(dir: &Path, seqs: &[u64]) -> Result<(), OpenError> {
    for w in seqs.windows(2) {
        if w[1] != w[0] + 1 {
            let missing = dir.join(segment::file_name(w[0] + 1));
            return Err(OpenError::corrupt(missing, 0, "WAL segment is missing"));
        }
    }
    Ok(())
}

/// A crash while creating a segment can leave it shorter than its header; it never
/// held a record, so it is removed.
fn drop_unborn_last_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seqs: &mut Vec<u64>,
) -> Result<(), OpenError> {
    let Some(&seq) = seqs.last() else {
        return Ok(());
    };
    let path = dir.join(segment::file_name(seq));
    let buf = fs.read(&path).map_err(OpenError::io("read", &path))?;
    if buf.len() >= segment::HEADER_BYTES {
        return Ok(());
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
    Ok(())
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
    let log = Log::new(snapshot.meta, cache_max_bytes);
    let segments = vec![SegInfo {
        seq: 1,
        max_index: 0,
    }];
    Ok(Recovered {
        hard_state: HardState::default(),
        snapshot,
        log,
        segments,
        active,
        active_bytes,
        repair: None,
    })
}

/// Replays one segment; cuts a torn tail off the last one. Returns its info and length.
fn replay_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seq: u64,
    is_last: bool,
    replay: &mut Replay,
) -> Result<(SegInfo, u64), OpenError> {
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
    let len = match end {
        ScanEnd::Clean => buf.len() as u64,
        ScanEnd::TornAt(at) => {
            fs.truncate(&path, at)
                .map_err(OpenError::io("truncate torn tail of", &path))?;
            at
        }
    };
    Ok((info, len))
}
