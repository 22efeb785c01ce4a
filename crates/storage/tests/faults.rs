//! Fault injection: a failed write (ENOSPC, half-written) or a failed fsync poisons the
//! store, which then refuses every write; reopening recovers exactly an acknowledged
//! state, never losing what a successful `sync` covered. A full disk on a WAL record
//! write is told apart (`StorageError::NoSpace`: reopen once space is freed) from a
//! failed fsync (`StorageError::Io`: stop; fsyncgate).

use bytes::Bytes;
use raft::{Entry, HardState, MemStorage, Storage, StorageError};
use std::path::Path;
use std::sync::Arc;
use storage::fault::{FaultHandle, FaultyFs};
use storage::testkit::snap;
use storage::{DiskOptions, DiskStorage};

fn entry(term: u64, index: u64) -> Entry {
    Entry::normal(term, index, Bytes::from(vec![(index as u8) | 1; 50]))
}

fn faulty(dir: &Path, segment_max_bytes: u64) -> (DiskStorage, FaultHandle) {
    let (fs, h) = FaultyFs::new(true);
    let opts = DiskOptions {
        segment_max_bytes,
        cache_max_bytes: 300,
        fs: Arc::new(fs),
        ..DiskOptions::default()
    };
    (DiskStorage::open(dir, opts).unwrap(), h)
}

fn reopen(dir: &Path) -> DiskStorage {
    DiskStorage::open(dir, DiskOptions::default())
        .expect("a poisoned store's directory must reopen")
}

/// Every write fails, with the same kind of error as the failure that poisoned it.
fn assert_refuses_writes(s: &mut DiskStorage) {
    assert!(s.is_poisoned());
    let kind = |r: Result<(), StorageError>| match r {
        Err(StorageError::Io(_)) => "io",
        Err(StorageError::NoSpace(_)) => "no space",
        other => panic!("a poisoned store accepted a write: {other:?}"),
    };
    let next = s.last_index() + 1;
    let first = kind(s.append(&[entry(9, next)]));
    assert_eq!(kind(s.set_hard_state(HardState::default())), first);
    assert_eq!(kind(s.sync()), first);
    let (i, t) = (s.first_index(), s.term(s.first_index()).unwrap_or(0));
    match s.compact(snap(i, t)) {
        Err(StorageError::Unavailable { .. }) => {}
        r => assert_eq!(kind(r), first),
    }
}

fn same(a: &impl Storage, b: &MemStorage) -> bool {
    a.hard_state() == b.hard_state()
        && a.first_index() == b.first_index()
        && a.last_index() == b.last_index()
        && a.snapshot() == b.snapshot()
        && a.entries(b.first_index(), b.last_index() + 1, u64::MAX)
            == b.entries(b.first_index(), b.last_index() + 1, u64::MAX)
}

/// Every state a crash during one step may legitimately leave: the acknowledged state
/// plus any prefix of the step's records (entries one by one, then the hard state), each
/// with or without the step's snapshot (its file is durable before its marker record, so
/// recovery may apply it with `install_snapshot` semantics).
fn candidates(
    acked: &MemStorage,
    es: &[Entry],
    hs: HardState,
    snapshot: Option<&raft::Snapshot>,
) -> Vec<MemStorage> {
    let mut out = Vec::new();
    for j in 0..=es.len() + 1 {
        let mut m = acked.clone();
        m.append(&es[..j.min(es.len())]).unwrap();
        if j > es.len() {
            m.set_hard_state(hs).unwrap();
        }
        out.push(m.clone());
        if let Some(s) = snapshot {
            if m.install_snapshot(s.clone()).is_ok() {
                out.push(m);
            }
        }
    }
    out
}

/// A workload of appends (some overwriting), hard states, compactions and syncs.
/// Runs until the first error; then returns the states recovery may legitimately give.
fn run_until_failure(s: &mut DiskStorage) -> Option<Vec<MemStorage>> {
    let mut acked = MemStorage::new();
    for round in 1..=30u64 {
        let start = if round % 7 == 0 {
            acked.last_index().max(acked.first_index())
        } else {
            acked.last_index() + 1
        };
        let es: Vec<Entry> = (start..start + 3).map(|i| entry(round, i)).collect();
        let hs = HardState {
            term: round,
            vote: Some(1),
            commit: start,
        };
        let compact = (round % 5 == 0).then(|| snap(start + 1, round));
        let step = (|| {
            s.append(&es)?;
            s.set_hard_state(hs)?;
            if let Some(c) = &compact {
                s.compact(c.clone())?;
            }
            s.sync()
        })();
        if step.is_err() {
            return Some(candidates(&acked, &es, hs, compact.as_ref()));
        }
        acked.append(&es).unwrap();
        acked.set_hard_state(hs).unwrap();
        if let Some(c) = compact {
            acked.compact(c).unwrap();
        }
    }
    None
}

fn sweep(arm: impl Fn(&FaultHandle, i64)) {
    let mut failures = 0;
    for k in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, h) = faulty(dir.path(), 600);
        arm(&h, k);
        let Some(allowed) = run_until_failure(&mut s) else {
            break;
        };
        failures += 1;
        assert_refuses_writes(&mut s);
        drop(s);
        let r = reopen(dir.path());
        assert!(
            allowed.iter().any(|m| same(&r, m)),
            "fault {k}: recovered {r:?}, allowed {allowed:#?}"
        );
    }
    assert!(
        failures > 20,
        "the sweep must hit many distinct operations ({failures})"
    );
}

#[test]
fn failed_write_at_every_point_poisons_and_recovers() {
    sweep(|h, k| h.fail_write_after(k));
}

#[test]
fn failed_fsync_at_every_point_poisons_and_recovers() {
    sweep(|h, k| h.fail_sync_after(k));
}

#[test]
fn enospc_leaves_the_log_recoverable_and_writable_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, h) = faulty(dir.path(), 1 << 20);
    s.append(&[entry(1, 1), entry(1, 2)]).unwrap();
    s.sync().unwrap();
    h.fail_write_after(0);
    s.append(&[entry(1, 3)]).unwrap();
    assert!(matches!(s.sync(), Err(StorageError::NoSpace(msg)) if msg.contains("No space left")));
    assert_refuses_writes(&mut s);
    drop(s);
    let mut r = reopen(dir.path());
    assert_eq!(r.last_index(), 2);
    r.append(&[entry(1, 3)]).unwrap();
    r.sync().unwrap();
    drop(r);
    assert_eq!(
        reopen(dir.path()).entries(1, 4, u64::MAX).unwrap(),
        vec![entry(1, 1), entry(1, 2), entry(1, 3)]
    );
}

/// fsyncgate: a failed fsync is never reported as a full disk, even on a store whose
/// writes succeed, so a host never waits and retries after one.
#[test]
fn failed_fsync_is_io_not_no_space() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, h) = faulty(dir.path(), 1 << 20);
    s.append(&[entry(1, 1)]).unwrap();
    h.fail_sync_after(0);
    assert!(matches!(s.sync(), Err(StorageError::Io(msg)) if msg.contains("fdatasync")));
    h.heal();
    assert!(matches!(s.append(&[entry(1, 2)]), Err(StorageError::Io(_))));
}

/// Preallocation is an optimisation: a disk with no room for the WAL's zeros but room
/// for its records keeps taking writes (issue 15), durably.
#[test]
fn no_room_to_preallocate_still_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, h) = FaultyFs::new(true);
    let opts = DiskOptions {
        preallocate_bytes: 64 << 10,
        fs: Arc::new(fs),
        ..DiskOptions::default()
    };
    let mut s = DiskStorage::open(dir.path(), opts).unwrap();
    h.set_no_room_to_preallocate(true);
    for i in 1..=3 {
        s.append(&[entry(1, i)]).unwrap();
        s.sync().unwrap();
    }
    assert!(!s.is_poisoned());
    drop(s);
    let r = reopen(dir.path());
    assert!(r.recovery_report().is_clean(), "{:?}", r.recovery_report());
    assert_eq!(
        r.entries(1, 4, u64::MAX).unwrap(),
        vec![entry(1, 1), entry(1, 2), entry(1, 3)]
    );
}

/// Issue 11: a full disk while writing a snapshot file, or while creating a
/// WAL segment, is `NoSpace` (wait for space, then reopen), not `Io` (stop):
/// the half-made file is never used. Reopened once space is back, nothing
/// made durable is lost and writes work.
#[test]
fn enospc_creating_a_snapshot_or_a_segment_is_no_space() {
    for roll in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every sync rolls to a new segment.
        let (mut s, h) = faulty(dir.path(), if roll { 64 } else { 1 << 20 });
        s.append(&[entry(1, 1), entry(1, 2)]).unwrap();
        s.sync().unwrap();
        let res = if roll {
            // The sync's record write succeeds; the roll's new segment does not.
            s.append(&[entry(1, 3)]).unwrap();
            h.fail_write_after(1);
            s.sync()
        } else {
            h.set_full(true);
            s.compact(snap(2, 1))
        };
        let made = if roll {
            "create segment"
        } else {
            "write snapshot"
        };
        assert!(
            matches!(&res, Err(StorageError::NoSpace(m)) if m.contains(made)),
            "roll {roll}: {res:?}"
        );
        assert_refuses_writes(&mut s);
        drop(s);
        h.heal();
        let mut r = reopen(dir.path());
        // Entry 3 was fsynced before the failed roll.
        let next = if roll { 4 } else { 3 };
        assert_eq!(r.last_index(), next - 1);
        r.append(&[entry(1, next)]).unwrap();
        r.sync().unwrap();
    }
}

/// A sync run from another thread (`DiskStorage::sync_job`, the leader's log write in
/// flight): making it writes out what was appended before (appends only buffer), it
/// runs while the store keeps writing, reports a failed fsync as `Io` (the host stops,
/// fsyncgate), and a full active segment asks for a blocking `sync` (which rolls it)
/// instead.
#[test]
fn sync_job_runs_on_another_thread_and_reports_a_failed_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, h) = faulty(dir.path(), 1 << 20);
    s.append(&[entry(1, 1), entry(1, 2)]).unwrap();
    let job = s.sync_job().unwrap().expect("room in the active segment");
    // The store keeps writing while the job runs elsewhere.
    let ran = std::thread::spawn(move || job.run());
    s.append(&[entry(1, 3)]).unwrap();
    ran.join().unwrap().unwrap();
    // Dropped unsynced: entry 3, appended after the job was made, is lost with the
    // store's buffer; the job's entries are in the file.
    drop(s);
    let r = reopen(dir.path());
    assert_eq!(r.last_index(), 2);
    drop(r);

    let (mut s, h2) = faulty(dir.path(), 1 << 20);
    drop(h);
    s.append(&[entry(1, 3)]).unwrap();
    let job = s.sync_job().unwrap().expect("room in the active segment");
    h2.fail_sync_after(0);
    assert!(matches!(job.run(), Err(StorageError::Io(msg)) if msg.contains("fdatasync")));
    drop(s);

    // A segment that is full: only `sync` will do (it rolls).
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _h) = faulty(dir.path(), 200);
    for i in 1..=4 {
        s.append(&[entry(1, i)]).unwrap();
    }
    assert!(s.sync_job().unwrap().is_none(), "a full segment must roll");
    s.sync().unwrap();
    assert!(s.sync_job().unwrap().is_some(), "the new segment has room");
}

/// A leader that syncs only through jobs (`sync_job`, run on its sync thread) still
/// deletes the segments its snapshot covers: after a compaction the next `sync_job`
/// asks for a blocking `sync`, which deletes them once the marker is durable. Before,
/// jobs never deleted and only a full segment's roll did, so an idle leader kept a
/// whole log's worth of covered segments on disk.
#[test]
fn a_leader_syncing_through_jobs_deletes_the_segments_a_snapshot_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _h) = faulty(dir.path(), 400);
    let mut next = 1;
    while s.segment_count() < 4 {
        s.append(&[entry(1, next)]).unwrap();
        s.sync().unwrap();
        next += 1;
    }
    let segment_files = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("wal".as_ref()))
            .count()
    };
    assert_eq!(segment_files(dir.path()), 4);
    // The leader's loop: each write is followed by a job when one will do, else `sync`.
    let leader_write = |s: &mut DiskStorage, index| {
        s.append(&[entry(1, index)]).unwrap();
        match s.sync_job().unwrap() {
            Some(job) => job.run().unwrap(),
            None => s.sync().unwrap(),
        }
    };
    leader_write(&mut s, next);
    assert_eq!(
        s.segment_count(),
        4,
        "nothing covered yet: the job path deletes nothing"
    );
    s.compact(snap(next, 1)).unwrap();
    leader_write(&mut s, next + 1);
    assert_eq!(
        s.segment_count(),
        1,
        "every sealed segment is covered by the snapshot"
    );
    assert_eq!(segment_files(dir.path()), 1);
    drop(s);
    let r = reopen(dir.path());
    assert_eq!((r.first_index(), r.last_index()), (next + 1, next + 1));
}
