//! A membership survives a reopen of the disk store, from the WAL (a `ConfChange`
//! entry) and from a snapshot file: the Raft core rebuilt on the reopened store uses it,
//! not the peers it was configured with.

use bytes::Bytes;
use raft::{ConfChange, ConfChangeEntry, Config, Entry, EntryKind, Membership, RawNode, Storage};
use storage::{DiskOptions, DiskStorage};

fn change_entry(index: u64, membership: &Membership) -> Entry {
    let data = ConfChangeEntry {
        change: ConfChange::AddLearner {
            id: 4,
            addr: "127.0.0.1:4".into(),
        },
        membership: membership.clone(),
    }
    .encode();
    Entry {
        term: 1,
        index,
        kind: EntryKind::ConfChange,
        data,
    }
}

#[test]
fn membership_from_the_wal_and_from_a_snapshot_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut with_4 = Membership::with_voters([1, 2, 3]);
    with_4.learners.insert(4);
    with_4.addrs.insert(4, "127.0.0.1:4".into());
    {
        let mut s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        s.append(&[Entry::noop(1, 1), change_entry(2, &with_4)])
            .unwrap();
        s.sync().unwrap();
    }
    let s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
    let node = RawNode::new(Config::new(1, vec![1, 2, 3]), s).unwrap();
    assert_eq!(node.raft().membership(), &with_4);
    assert_eq!(node.raft().membership_index(), 2);
    drop(node);
    // Compact past the change: the snapshot file carries the membership.
    {
        let mut s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        s.set_hard_state(raft::HardState {
            term: 1,
            vote: None,
            commit: 2,
        })
        .unwrap();
        s.sync().unwrap();
        drop(s);
        let s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        let mut node = RawNode::new(Config::new(1, vec![1, 2, 3]), s).unwrap();
        while node.has_ready() {
            let rd = node.ready();
            node.persist(&rd).unwrap();
            node.advance(rd);
        }
        node.compact(2, Bytes::from_static(b"state")).unwrap();
    }
    let s = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
    assert_eq!(s.snapshot().unwrap().conf.as_ref(), Some(&with_4));
    let node = RawNode::new(Config::new(1, vec![1, 2, 3]), s).unwrap();
    assert_eq!(node.raft().membership(), &with_4);
}
