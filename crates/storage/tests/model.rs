//! Model-based property test: random append / overwrite / compact / install_snapshot /
//! set_hard_state / sync / reopen / crash sequences against `MemStorage` as the model.
//!
//! After every operation the disk store must read exactly like the model. A clean
//! reopen (after `sync`) must change nothing. A crash (drop without `sync`) must come
//! back as the state at the last `sync`, except that a snapshot written since then is
//! already durable (snapshot files are fsync'd at once) and is applied with
//! `install_snapshot` semantics — exactly what `MemStorage::install_snapshot` does.
//!
//! The operations keep Raft's contract, which recovery checks (a durable commit index
//! beyond the recovered log means lost files): the hard state's commit index never
//! decreases nor exceeds the last index, and nothing at or below it is overwritten or
//! discarded.

use bytes::Bytes;
use proptest::prelude::*;
use raft::{Entry, HardState, MemStorage, Snapshot, SnapshotMeta, Storage};
use std::path::Path;
use std::sync::Arc;
use storage::fault::FaultyFs;
use storage::{DiskOptions, DiskStorage};

#[derive(Clone, Debug)]
enum Op {
    Append {
        back: u64,
        n: u64,
        term: u64,
        len: usize,
    },
    Compact {
        pick: u64,
    },
    Install {
        pick: u64,
        matching: bool,
        term: u64,
    },
    SetHardState {
        term: u64,
        vote: u64,
        commit: u64,
    },
    Sync,
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..6u64, 1..6u64, 1..20u64, 0..80usize).prop_map(|(back, n, term, len)| Op::Append { back, n, term, len }),
        2 => any::<u64>().prop_map(|pick| Op::Compact { pick }),
        1 => (any::<u64>(), any::<bool>(), 1..40u64).prop_map(|(pick, matching, term)| Op::Install { pick, matching, term }),
        2 => (0..20u64, 0..4u64, 0..50u64).prop_map(|(term, vote, commit)| Op::SetHardState { term, vote, commit }),
        3 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn data(index: u64, term: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (index as usize * 31 + term as usize * 7 + i) as u8 | 1)
        .collect::<Vec<u8>>()
        .into()
}

fn opts() -> DiskOptions {
    let (fs, _) = FaultyFs::new(true);
    DiskOptions {
        segment_max_bytes: 300,
        cache_max_bytes: 200,
        fs: Arc::new(fs),
        ..DiskOptions::default()
    }
}

fn open(dir: &Path) -> DiskStorage {
    DiskStorage::open(dir, opts()).expect("reopen")
}

fn assert_same(disk: &DiskStorage, model: &MemStorage, ctx: &str) {
    assert_eq!(disk.hard_state(), model.hard_state(), "{ctx}: hard state");
    assert_eq!(
        disk.first_index(),
        model.first_index(),
        "{ctx}: first index"
    );
    assert_eq!(disk.last_index(), model.last_index(), "{ctx}: last index");
    assert_eq!(disk.snapshot(), model.snapshot(), "{ctx}: snapshot");
    let (first, last) = (model.first_index(), model.last_index());
    for i in first.saturating_sub(2)..=last + 1 {
        assert_eq!(disk.term(i), model.term(i), "{ctx}: term({i})");
    }
    assert_eq!(
        disk.entries(first, last + 1, u64::MAX),
        model.entries(first, last + 1, u64::MAX),
        "{ctx}: entries"
    );
    assert_eq!(
        disk.entries(first, last + 1, 100),
        model.entries(first, last + 1, 100),
        "{ctx}: bounded entries"
    );
    let held: u64 = model
        .entries(first, last + 1, u64::MAX)
        .unwrap()
        .iter()
        .map(Entry::size_bytes)
        .sum();
    assert_eq!(model.entry_bytes(), held, "{ctx}: model's entry bytes");
    assert_eq!(disk.entry_bytes(), held, "{ctx}: entry bytes");
}

/// Applies `op` to both stores (and the crash bookkeeping); returns a new disk store on reopen.
struct Harness {
    dir: tempfile::TempDir,
    disk: Option<DiskStorage>,
    model: MemStorage,
    synced: MemStorage,
    durable_snapshot: Snapshot,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let disk = Some(open(dir.path()));
        Harness {
            dir,
            disk,
            model: MemStorage::new(),
            synced: MemStorage::new(),
            durable_snapshot: Snapshot::default(),
        }
    }

    fn disk(&mut self) -> &mut DiskStorage {
        self.disk.as_mut().unwrap()
    }

    fn apply(&mut self, op: &Op) {
        let (snap_index, last) = (self.model.first_index() - 1, self.model.last_index());
        let commit_now = self.model.hard_state().commit;
        match *op {
            Op::Append { back, n, term, len } => {
                let start = (last + 1 - back.min(last - snap_index)).max(commit_now + 1);
                let es: Vec<Entry> = (start..start + n)
                    .map(|i| Entry::normal(term, i, data(i, term, len)))
                    .collect();
                self.model.append(&es).unwrap();
                self.disk().append(&es).unwrap();
            }
            Op::Compact { pick } if last > snap_index => {
                let index = snap_index + 1 + pick % (last - snap_index);
                let s = Snapshot {
                    conf: None,
                    meta: SnapshotMeta {
                        index,
                        term: self.model.term(index).unwrap(),
                    },
                    data: data(index, 0, 5),
                };
                self.model.compact(s.clone()).unwrap();
                self.disk().compact(s.clone()).unwrap();
                self.durable_snapshot = s;
            }
            Op::Compact { .. } => {}
            Op::Install {
                pick,
                matching,
                term,
            } => {
                let index = (snap_index + 1 + pick % (last - snap_index + 3)).max(commit_now + 1);
                let term = if matching && index <= last {
                    self.model.term(index).unwrap()
                } else {
                    term
                };
                let s = Snapshot {
                    conf: None,
                    meta: SnapshotMeta { index, term },
                    data: data(index, term, 9),
                };
                self.model.install_snapshot(s.clone()).unwrap();
                self.disk().install_snapshot(s.clone()).unwrap();
                self.durable_snapshot = s;
            }
            Op::SetHardState { term, vote, commit } => {
                let hs = HardState {
                    term,
                    vote: (vote != 0).then_some(vote),
                    commit: commit.min(last).max(commit_now),
                };
                self.model.set_hard_state(hs).unwrap();
                self.disk().set_hard_state(hs).unwrap();
            }
            Op::Sync => self.sync(),
            Op::Reopen => {
                self.sync();
                self.disk = None;
                self.disk = Some(open(self.dir.path()));
            }
            Op::Crash => self.crash(),
        }
    }

    fn sync(&mut self) {
        self.disk().sync().unwrap();
        self.synced = self.model.clone();
    }

    fn crash(&mut self) {
        self.disk = None;
        let mut expected = self.synced.clone();
        if self.durable_snapshot.meta.index > expected.first_index() - 1 {
            expected
                .install_snapshot(self.durable_snapshot.clone())
                .unwrap();
        }
        self.model = expected.clone();
        self.synced = expected;
        self.disk = Some(open(self.dir.path()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn disk_storage_matches_mem_storage(ops in prop::collection::vec(op(), 1..80)) {
        let mut h = Harness::new();
        for (i, op) in ops.iter().enumerate() {
            h.apply(op);
            let ctx = format!("after op {i} {op:?}");
            assert_same(h.disk.as_ref().unwrap(), &h.model, &ctx);
        }
        h.apply(&Op::Reopen);
        assert_same(h.disk.as_ref().unwrap(), &h.model, "final reopen");
    }
}

#[test]
fn compaction_deletes_covered_segments() {
    let mut h = Harness::new();
    for i in 0..40 {
        h.apply(&Op::Append {
            back: 0,
            n: 5,
            term: 1 + i / 10,
            len: 60,
        });
        h.apply(&Op::Sync);
    }
    let before = h.disk().segment_count();
    assert!(before > 10, "tiny segments roll often: {before}");
    h.apply(&Op::Compact { pick: 195 }); // index 196 of 200
    h.apply(&Op::Sync);
    assert!(
        h.disk().segment_count() <= 3,
        "covered segments deleted: {} left",
        h.disk().segment_count()
    );
    h.apply(&Op::Reopen);
    assert_same(
        h.disk.as_ref().unwrap(),
        &h.model,
        "after deletion and reopen",
    );
}
