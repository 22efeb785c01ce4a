//! The conformance suite every `raft::Storage` must pass (STYLE habit 10): the in-memory
//! `MemStorage`, [`crate::DiskStorage`], and any simulated disk. It checks the trait's
//! documented semantics, with `MemStorage` as the reference, on fresh stores from `make`.
//! It panics (via `assert!`) on the first divergence, naming the case.

use bytes::Bytes;
use raft::{Entry, HardState, Snapshot, SnapshotMeta, Storage, StorageError};

/// An entry whose payload names its position, so mix-ups are visible in failures.
pub fn ent(term: u64, index: u64) -> Entry {
    Entry::normal(term, index, Bytes::from(format!("e{index}t{term}")))
}

/// A snapshot at `index`/`term` with a small recognisable payload and membership.
pub fn snap(index: u64, term: u64) -> Snapshot {
    let mut conf = raft::Membership::with_voters([1, 2, 3]);
    conf.learners.insert(100 + index);
    Snapshot {
        meta: SnapshotMeta { index, term },
        conf: Some(conf),
        data: Bytes::from(format!("snap{index}t{term}")),
    }
}

fn ents(terms_from_1: &[u64]) -> Vec<Entry> {
    terms_from_1
        .iter()
        .enumerate()
        .map(|(i, t)| ent(*t, i as u64 + 1))
        .collect()
}

/// Runs every case; `make` must return a fresh, empty store each time.
pub fn storage_conformance<S: Storage>(mut make: impl FnMut() -> S) {
    type Case<S> = (&'static str, fn(&mut S));
    let cases: [Case<S>; 9] = [
        ("fresh", fresh_store),
        ("append", append_and_read),
        ("overwrite", overwrite_suffix),
        ("hard state", hard_state_roundtrip),
        ("compact", compact),
        (
            "install, matching tail",
            install_snapshot_keeps_matching_tail,
        ),
        (
            "install, mismatching tail",
            install_snapshot_discards_mismatching_tail,
        ),
        ("install ahead", install_snapshot_ahead_of_log),
        ("received in chunks", received_snapshot_in_chunks),
    ];
    for (name, case) in cases {
        let mut s = make();
        case(&mut s);
        entry_bytes_agree(&s, name);
    }
}

/// `entry_bytes` is what the held entries add up to.
fn entry_bytes_agree<S: Storage>(s: &S, case: &str) {
    let (first, last) = (s.first_index(), s.last_index());
    let held: u64 = s
        .entries(first, last + 1, u64::MAX)
        .unwrap()
        .iter()
        .map(Entry::size_bytes)
        .sum();
    assert_eq!(s.entry_bytes(), held, "{case}: entry bytes");
}

fn fresh_store<S: Storage>(s: &mut S) {
    assert_eq!(s.hard_state(), HardState::default(), "fresh: hard state");
    assert_eq!((s.first_index(), s.last_index()), (1, 0), "fresh: bounds");
    assert_eq!(s.term(0), Ok(0), "fresh: term(0)");
    assert_eq!(
        s.term(1),
        Err(StorageError::Unavailable {
            index: 1,
            last_index: 0
        }),
        "fresh: term(1)"
    );
    assert_eq!(s.snapshot(), Ok(Snapshot::default()), "fresh: snapshot");
    assert_eq!(s.entries(1, 1, u64::MAX), Ok(vec![]), "fresh: empty range");
    assert_eq!(s.sync(), Ok(()), "fresh: sync");
}

fn append_and_read<S: Storage>(s: &mut S) {
    let all = ents(&[1, 1, 2, 2, 3]);
    s.append(&all[..2]).unwrap();
    s.append(&all[2..]).unwrap();
    s.append(&[]).unwrap();
    s.sync().unwrap();
    assert_eq!((s.first_index(), s.last_index()), (1, 5), "append: bounds");
    assert_eq!(
        s.entries(1, 6, u64::MAX),
        Ok(all.clone()),
        "append: all entries"
    );
    assert_eq!(
        s.entries(2, 4, u64::MAX),
        Ok(all[1..3].to_vec()),
        "append: middle"
    );
    assert_eq!(
        s.entries(1, 6, 0),
        Ok(all[..1].to_vec()),
        "append: max_bytes 0 gives one entry"
    );
    let two = all[0].size_bytes() + all[1].size_bytes();
    assert_eq!(
        s.entries(1, 6, two),
        Ok(all[..2].to_vec()),
        "append: max_bytes fits two"
    );
    assert_eq!(
        s.entries(1, 6, two + 1),
        Ok(all[..2].to_vec()),
        "append: max_bytes just over two"
    );
    assert_eq!(s.term(3), Ok(2), "append: term(3)");
    assert_eq!(
        s.term(6),
        Err(StorageError::Unavailable {
            index: 6,
            last_index: 5
        }),
        "append: term past end"
    );
    assert_eq!(
        s.entries(4, 7, u64::MAX),
        Err(StorageError::Unavailable {
            index: 6,
            last_index: 5
        }),
        "append: range past end"
    );
}

fn overwrite_suffix<S: Storage>(s: &mut S) {
    s.append(&ents(&[1, 1, 1, 1, 1])).unwrap();
    s.append(&[ent(2, 3), ent(2, 4)]).unwrap();
    assert_eq!(s.last_index(), 4, "overwrite: shorter tail");
    s.append(&[ent(3, 5)]).unwrap();
    s.sync().unwrap();
    let want = vec![ent(1, 1), ent(1, 2), ent(2, 3), ent(2, 4), ent(3, 5)];
    assert_eq!(s.entries(1, 6, u64::MAX), Ok(want), "overwrite: entries");
    s.append(&[ent(4, 6)]).unwrap();
    s.append(&[ent(5, 2)]).unwrap();
    assert_eq!(
        s.entries(1, 3, u64::MAX),
        Ok(vec![ent(1, 1), ent(5, 2)]),
        "overwrite: deep truncate"
    );
}

fn hard_state_roundtrip<S: Storage>(s: &mut S) {
    let hs = HardState {
        term: 7,
        vote: Some(3),
        commit: 0,
    };
    s.set_hard_state(hs).unwrap();
    s.sync().unwrap();
    assert_eq!(s.hard_state(), hs, "hard state");
    let hs2 = HardState {
        term: 8,
        vote: None,
        commit: 0,
    };
    s.set_hard_state(hs2).unwrap();
    assert_eq!(s.hard_state(), hs2, "hard state overwritten");
}

fn compact<S: Storage>(s: &mut S) {
    s.append(&ents(&[1, 1, 2, 2, 3])).unwrap();
    s.compact(snap(3, 2)).unwrap();
    s.sync().unwrap();
    assert_eq!((s.first_index(), s.last_index()), (4, 5), "compact: bounds");
    assert_eq!(s.term(3), Ok(2), "compact: term at snapshot");
    assert_eq!(
        s.term(2),
        Err(StorageError::Compacted {
            index: 2,
            first_index: 4
        }),
        "compact: term before"
    );
    assert_eq!(
        s.entries(3, 5, u64::MAX),
        Err(StorageError::Compacted {
            index: 3,
            first_index: 4
        }),
        "compact: entries before"
    );
    assert_eq!(
        s.entries(4, 6, u64::MAX),
        Ok(vec![ent(2, 4), ent(3, 5)]),
        "compact: tail kept"
    );
    assert_eq!(s.snapshot(), Ok(snap(3, 2)), "compact: snapshot");
    assert_eq!(
        s.compact(snap(3, 2)),
        Err(StorageError::SnapshotOutOfDate {
            index: 3,
            current: 3
        }),
        "compact: same again"
    );
    assert_eq!(
        s.compact(snap(6, 3)),
        Err(StorageError::Unavailable {
            index: 6,
            last_index: 5
        }),
        "compact: past end"
    );
    s.compact(snap(5, 3)).unwrap();
    assert_eq!(
        (s.first_index(), s.last_index()),
        (6, 5),
        "compact: whole log"
    );
    s.append(&[ent(4, 6)]).unwrap();
    s.sync().unwrap();
    assert_eq!(
        s.entries(6, 7, u64::MAX),
        Ok(vec![ent(4, 6)]),
        "compact: append after"
    );
}

fn install_snapshot_keeps_matching_tail<S: Storage>(s: &mut S) {
    s.append(&ents(&[1, 1, 2, 2, 3])).unwrap();
    s.install_snapshot(snap(3, 2)).unwrap();
    s.sync().unwrap();
    assert_eq!(
        (s.first_index(), s.last_index()),
        (4, 5),
        "install match: bounds"
    );
    assert_eq!(
        s.entries(4, 6, u64::MAX),
        Ok(vec![ent(2, 4), ent(3, 5)]),
        "install match: tail kept"
    );
    assert_eq!(
        s.install_snapshot(snap(2, 1)),
        Err(StorageError::SnapshotOutOfDate {
            index: 2,
            current: 3
        }),
        "install: older"
    );
}

fn install_snapshot_discards_mismatching_tail<S: Storage>(s: &mut S) {
    s.append(&ents(&[1, 1, 2, 2, 3])).unwrap();
    s.install_snapshot(snap(3, 9)).unwrap();
    s.sync().unwrap();
    assert_eq!(
        (s.first_index(), s.last_index()),
        (4, 3),
        "install mismatch: log emptied"
    );
    assert_eq!(s.term(3), Ok(9), "install mismatch: term at snapshot");
    assert_eq!(s.snapshot(), Ok(snap(3, 9)), "install mismatch: snapshot");
    s.append(&[ent(9, 4)]).unwrap();
    assert_eq!(
        s.entries(4, 5, u64::MAX),
        Ok(vec![ent(9, 4)]),
        "install mismatch: append after"
    );
}

fn install_snapshot_ahead_of_log<S: Storage>(s: &mut S) {
    s.append(&ents(&[1, 1])).unwrap();
    s.install_snapshot(snap(10, 4)).unwrap();
    s.sync().unwrap();
    assert_eq!(
        (s.first_index(), s.last_index()),
        (11, 10),
        "install ahead: bounds"
    );
    assert_eq!(s.term(10), Ok(4), "install ahead: term");
    assert_eq!(
        s.entries(11, 11, u64::MAX),
        Ok(vec![]),
        "install ahead: empty range"
    );
}

/// A snapshot received from a leader: chunks in order, read back whole, installed.
fn received_snapshot_in_chunks<S: Storage>(s: &mut S) {
    s.append(&ents(&[1, 1])).unwrap();
    let meta = SnapshotMeta { index: 10, term: 4 };
    let abandoned = SnapshotMeta { index: 9, term: 4 };
    s.write_snapshot_chunk(abandoned, 0, b"stale").unwrap();
    // A new transfer starts at offset 0 and replaces the abandoned one.
    s.write_snapshot_chunk(meta, 0, b"snap10").unwrap();
    s.write_snapshot_chunk(meta, 6, b"t4").unwrap();
    assert!(
        s.received_snapshot(abandoned, 5).is_err(),
        "received: the abandoned transfer is gone"
    );
    assert!(
        s.received_snapshot(meta, 6).is_err(),
        "received: a length other than what was written"
    );
    let data = s.received_snapshot(meta, 8).unwrap();
    assert_eq!(&data[..], b"snap10t4", "received: the chunks, in order");
    let mut received = snap(10, 4);
    received.data = data.clone();
    s.install_snapshot(received.clone()).unwrap();
    s.sync().unwrap();
    assert_eq!(s.snapshot(), Ok(received), "received: installed");
    assert_eq!(
        (s.first_index(), s.last_index()),
        (11, 10),
        "received: bounds"
    );
    assert!(
        s.received_snapshot(meta, 8).is_err(),
        "received: forgotten once installed"
    );
    assert_eq!(
        &data[..],
        b"snap10t4",
        "received: a view outlives the install"
    );
}
