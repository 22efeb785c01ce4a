//! What a leader's compaction costs in heap: the snapshot is streamed from the state
//! machine's encoder into the snapshot file (`rsm::StateMachine::snapshot_to`,
//! `raft::Storage::compact_streamed`), so the heap grows by buffers, not by a second
//! copy of the state. Measured with a counting global allocator (`counting_alloc`, this
//! test binary's own), on a single node over `storage::DiskStorage`.
//!
//! What it proves: while the drive that compacts runs, live heap never exceeds what it
//! was before by more than a small fraction of the snapshot's size. What it does not:
//! the encoder's transient key-order index (kv sorts references to its entries, 8 bytes
//! a key) is heap too and is within that bound here (it is proportional to
//! the key count, not to the data); file pages of the snapshot are not heap at all.

use bytes::Bytes;
use kv::{Command, Op, Reply, Request};
use replica::{Config, Outcome, Replica};

mod counting_alloc;

const KEYS: u64 = 5_000;
const VALUE_BYTES: usize = 4_000;

#[test]
fn compaction_streams_the_snapshot_instead_of_encoding_it_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage::DiskStorage::open(dir.path(), storage::DiskOptions::default()).unwrap();
    let mut cfg = Config::new(raft::Config::new(1, vec![1]));
    // One compaction, near the end of the load: of nearly the whole state.
    cfg.snapshot_every_entries = Some(KEYS - 100);
    let machine = kv::StateMachine::new(kv::Config::default());
    let mut r = Replica::new(cfg, store, machine).unwrap();
    let mut send = |_m: raft::Message| {};
    let mut now = 0;
    while !r.is_leader() {
        now += 10;
        r.tick(now);
        r.drive(&mut send).unwrap();
    }
    r.propose(0, Command::RegisterSession, now).unwrap();
    let done = r.drive(&mut send).unwrap();
    let Outcome::Applied(Ok(Reply::Registered { client_id })) = done[0].outcome.clone() else {
        panic!("{done:?}")
    };

    let mut rise = None;
    for seq in 1..=KEYS {
        let op = Op::Put {
            key: Bytes::from(format!("key:{seq:08}")),
            value: Bytes::from(vec![b'a' + (seq % 26) as u8; VALUE_BYTES]),
        };
        let cmd = Command::Request(Request { client_id, seq, op });
        r.propose(seq, cmd, now).unwrap();
        let before = r.status().raft.snapshot_index;
        let live = counting_alloc::reset_peak();
        r.drive(&mut send).unwrap();
        if r.status().raft.snapshot_index != before {
            assert!(rise.is_none(), "one compaction expected");
            rise = Some(counting_alloc::peak() - live);
        }
    }
    let rise = rise.expect("the load compacted the log");
    let snapshot = rsm::StateMachine::snapshot(r.state_machine()).len();
    assert!(snapshot > 16 << 20, "the state is large: {snapshot} bytes");
    assert!(
        rise < snapshot / 8,
        "the compacting drive raised live heap by {rise} bytes for a snapshot of {snapshot}"
    );
    eprintln!("snapshot {snapshot} bytes; heap rise while compacting {rise} bytes");
}
