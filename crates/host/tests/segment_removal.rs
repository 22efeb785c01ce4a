//! A host over disk stores that defer the deletion of covered WAL segments
//! (`storage::DiskOptions::defer_segment_removal`, what the sharded server sets):
//! after a group's snapshot, the segments it covers stay on disk until the host's
//! host runs the job it takes through `Host::storages_mut`, and the group recovers
//! every write from its directory whether the process crashes before the job ran
//! or after it.

use std::path::Path;

use bytes::Bytes;
use host::{GroupId, Host};
use kv::{Command, Op, Reply, Request};
use raft::Storage;
use replica::Outcome;
use storage::{DiskOptions, DiskStorage, SegmentRemoval};

type DiskHost = Host<DiskStorage, kv::StateMachine>;

const GROUP: GroupId = 7;
const WRITES: u64 = 150;

fn options() -> DiskOptions {
    DiskOptions {
        segment_max_bytes: 4 << 10,
        preallocate_bytes: 0,
        defer_segment_removal: true,
        ..DiskOptions::default()
    }
}

/// One process (node 1) hosting a single-voter group over the store in `dir`.
struct Proc {
    host: DiskHost,
    now_ms: u64,
    /// Removals taken from the stores so far, not run.
    taken: Vec<SegmentRemoval>,
    /// Finished requests not yet looked at: (token, outcome).
    done: Vec<(u64, Outcome<kv::StateMachine>)>,
}

impl Proc {
    fn boot(dir: &Path) -> Proc {
        let mut raft = raft::Config::new(1, vec![1]);
        raft.seed = GROUP;
        let mut cfg = replica::Config::new(raft);
        cfg.snapshot_threshold_bytes = Some(16 << 10);
        let storage = DiskStorage::open(dir, options()).unwrap();
        let machine = kv::StateMachine::new(kv::Config::default());
        let mut host = Host::new(1);
        host.add_group(GROUP, cfg, storage, machine).unwrap();
        let mut p = Proc {
            host,
            now_ms: 0,
            taken: Vec::new(),
            done: Vec::new(),
        };
        while !p.host.replica(GROUP).unwrap().is_leader() {
            p.tick();
        }
        p
    }

    fn tick(&mut self) {
        self.now_ms += 10;
        self.host.tick(self.now_ms);
        self.drive_once();
    }

    /// One drive, then what a server does after each: take the stores' removals.
    fn drive_once(&mut self) {
        let out = self.host.drive().unwrap();
        assert!(out.messages.is_empty(), "a single voter sends nothing");
        for (group, storage) in self.host.storages_mut() {
            assert_eq!(group, GROUP);
            self.taken.extend(storage.take_segment_removal());
        }
        let done = out.completions.into_iter().map(|c| c.completion);
        self.done.extend(done.map(|c| (c.token, c.outcome)));
    }

    /// Drives until request `token` completes.
    fn await_outcome(&mut self, token: u64) -> Outcome<kv::StateMachine> {
        for _ in 0..100 {
            self.drive_once();
            if let Some(i) = self.done.iter().position(|(t, _)| *t == token) {
                return self.done.remove(i).1;
            }
            self.tick();
        }
        panic!("request {token} did not complete");
    }

    fn write(&mut self, token: u64, cmd: Command) -> kv::Response {
        self.host.propose(GROUP, token, cmd, self.now_ms).unwrap();
        match self.await_outcome(token) {
            Outcome::Applied(r) => r,
            other => panic!("write {token}: {other:?}"),
        }
    }

    fn get(&mut self, token: u64, key: &str) -> Option<Bytes> {
        let key = Bytes::from(key.to_string());
        self.host.read(GROUP, token, Op::Get { key }).unwrap();
        match self.await_outcome(token) {
            Outcome::Value(Reply::Value(v)) => v,
            other => panic!("read {token}: {other:?}"),
        }
    }
}

fn value(i: u64) -> Bytes {
    Bytes::from(format!("{i:04}{}", "v".repeat(200)))
}

/// Registers a session and writes keys `k0..k{WRITES}`: several snapshots.
fn write_all(p: &mut Proc) {
    let Ok(Reply::Registered { client_id }) = p.write(1, Command::RegisterSession) else {
        panic!("register failed");
    };
    for i in 0..WRITES {
        let op = Op::Put {
            key: Bytes::from(format!("k{i}")),
            value: value(i),
        };
        let req = Command::Request(Request {
            client_id,
            seq: i + 1,
            op,
        });
        assert_eq!(p.write(i + 2, req), Ok(Reply::Done), "write {i}");
    }
}

fn read_all(p: &mut Proc) {
    for i in 0..WRITES {
        let got = p.get(10_000 + i, &format!("k{i}"));
        assert_eq!(got, Some(value(i)), "k{i} after recovery");
    }
}

fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Writes through snapshots; every covered segment is still on disk, none in the
/// store's WAL any more, and the removals taken name exactly those files.
fn write_and_take(dir: &Path) -> Vec<SegmentRemoval> {
    let mut p = Proc::boot(dir);
    write_all(&mut p);
    let snap = p.host.replica(GROUP).unwrap().storage().snapshot().unwrap();
    let snap = snap.meta.index;
    assert!(snap > 0, "the writes took a snapshot");
    let taken = std::mem::take(&mut p.taken);
    let paths: Vec<_> = taken.iter().flat_map(|r| r.paths().to_vec()).collect();
    assert!(paths.len() >= 2, "several segments covered: {paths:?}");
    for path in &paths {
        assert!(
            path.exists(),
            "{} deleted before its job ran",
            path.display()
        );
    }
    let on_disk = names(dir, ".wal").len();
    let in_wal = p.host.replica(GROUP).unwrap().storage().segment_count();
    assert_eq!(on_disk, in_wal + paths.len(), "detached, not deleted");
    drop(p); // a crash: nothing is flushed on drop
    taken
}

#[test]
fn a_crash_before_the_removal_job_ran_recovers_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let taken = write_and_take(dir.path());
    let mut p = Proc::boot(dir.path());
    read_all(&mut p);
    // The old store's job must never run now: its files are the new store's
    // segments again (a host drains its jobs before it reopens a directory).
    drop(taken);
}

#[test]
fn a_crash_after_the_removal_job_ran_recovers_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let taken = write_and_take(dir.path());
    for job in &taken {
        job.run().unwrap();
        for path in job.paths() {
            assert!(!path.exists(), "{} left after its job", path.display());
        }
    }
    assert_eq!(names(dir.path(), ".tmp"), Vec::<String>::new());
    let mut p = Proc::boot(dir.path());
    read_all(&mut p);
}
