//! What installing a leader's snapshot costs a follower in heap: its old state is
//! dropped before the snapshot is decoded (`rsm::StateMachine::replace_with_snapshot`),
//! so the two are never held at once, and the heap grows by what the new state is
//! larger than the old, not by a whole state. Measured with a counting global allocator
//! (`counting_alloc`, this test binary's own), on a follower over `storage::DiskStorage`.
//!
//! What it proves: while the drive that installs a snapshot as large as the follower's
//! state runs, live heap never exceeds what it was before by more than a small fraction
//! of that state. What it does not: the snapshot file's pages are not heap (the storage
//! tests check they are released behind the decoder).

use bytes::Bytes;
use kv::Command;
use raft::{Message, MessageBody};
use replica::{Config, Replica};

mod counting_alloc;

const KEYS: u64 = 5_000;
const VALUE_BYTES: usize = 4_000;

/// A kv state of `KEYS` keys whose values are all `fill`, at index `KEYS + 2 + shift`,
/// as a snapshot.
fn state(fill: u8, shift: u64) -> (u64, Bytes) {
    let mut sm = kv::StateMachine::new(kv::Config::default());
    let mut index = 1 + shift;
    let _ = rsm::StateMachine::apply(&mut sm, index, &[]);
    index += 1;
    let reg = rsm::StateMachine::encode_command(&sm, &Command::RegisterSession, 0);
    let _ = rsm::StateMachine::apply(&mut sm, index, &reg);
    let client_id = index;
    for seq in 1..=KEYS {
        index += 1;
        let op = kv::Op::Put {
            key: Bytes::from(format!("key:{seq:08}")),
            value: Bytes::from(vec![fill; VALUE_BYTES]),
        };
        let cmd = Command::Request(kv::Request { client_id, seq, op });
        let data = rsm::StateMachine::encode_command(&sm, &cmd, 0);
        let _ = rsm::StateMachine::apply(&mut sm, index, &data);
    }
    (index, rsm::StateMachine::snapshot(&sm))
}

fn snapshot_msg(index: u64, data: Bytes) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::Snapshot {
            meta: raft::SnapshotMeta { index, term: 1 },
            conf: None,
            offset: 0,
            data,
            done: true,
        },
    }
}

#[test]
fn a_follower_installing_a_snapshot_never_holds_two_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage::DiskStorage::open(dir.path(), storage::DiskOptions::default()).unwrap();
    let cfg = Config::new(raft::Config::new(1, vec![1, 2, 3]));
    let machine = kv::StateMachine::new(kv::Config::default());
    let mut f = Replica::new(cfg, store, machine).unwrap();
    let mut send = |_m: raft::Message| {};

    // The follower's own state: a first snapshot from the leader.
    let before_state = counting_alloc::live();
    let (first_index, first) = state(b'a', 0);
    f.step(snapshot_msg(first_index, first));
    f.drive(&mut send).unwrap();
    assert_eq!(f.status().raft.applied, first_index);
    let state_heap = counting_alloc::live().saturating_sub(before_state);
    assert!(
        state_heap > 16 << 20,
        "the state is large: {state_heap} bytes"
    );

    // A second one, as large, replaces it.
    let (second_index, second) = state(b'b', 1_000_000);
    let msg = snapshot_msg(second_index, second.clone());
    let live = counting_alloc::reset_peak();
    f.step(msg);
    f.drive(&mut send).unwrap();
    let rise = counting_alloc::peak() - live;
    assert_eq!(f.status().raft.applied, second_index, "installed");
    assert_eq!(rsm::StateMachine::snapshot(f.state_machine()), second);
    eprintln!("state {state_heap} bytes of heap; heap rise while installing {rise} bytes");
    assert!(
        rise < state_heap / 4,
        "installing raised live heap by {rise} bytes for a state of {state_heap}"
    );

    // One that does not decode is refused, and the machine (dropped before the
    // decode) is rebuilt from the follower's own snapshot file.
    let mut garbled = second.to_vec();
    let mid = garbled.len() / 2;
    garbled[mid] ^= 0xff;
    f.step(snapshot_msg(second_index + 10, Bytes::from(garbled)));
    f.drive(&mut send).unwrap();
    let st = f.status();
    assert_eq!((st.snapshots_rejected, st.raft.applied), (1, second_index));
    assert_eq!(rsm::StateMachine::snapshot(f.state_machine()), second);
}
