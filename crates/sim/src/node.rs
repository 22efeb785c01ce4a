//! One simulated server: the real `RawNode` over a `MemStorage`, plus the lab's
//! "applier" state machine — the map index → command it has applied — that snapshots
//! itself every `snapshot_interval` entries.
//!
//! Crash model (see `store.rs`): the store only changes in `RawNode::persist`, which the driver
//! runs to completion within one event, so at a crash it holds exactly what was fsync'd.
//! Everything else (the RawNode, the applied map) is volatile and rebuilt on restart
//! from the storage's snapshot and log.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::{Config, EntryKind, Index, NodeId, RawNode, Storage};

/// What a node applied at one index: `None` for a leader's no-op.
pub type Applied = Option<Bytes>;

pub struct SimNode<S: Storage> {
    pub id: NodeId,
    pub raw: RawNode<S>,
    /// The state machine: every applied command by index (no-ops included, as `None`).
    pub applied: BTreeMap<Index, Applied>,
    pub last_applied: Index,
}

impl<S: Storage> SimNode<S> {
    pub fn boot(cfg: Config, storage: S) -> SimNode<S> {
        let snap = storage.snapshot().expect("mem snapshot");
        let applied = decode_state(&snap.data);
        let mut cfg = cfg;
        cfg.applied = snap.meta.index;
        let id = cfg.id;
        SimNode {
            id,
            raw: RawNode::new(cfg, storage).expect("valid config"),
            applied,
            last_applied: snap.meta.index,
        }
    }
}

/// Encodes the applied map as the snapshot's data: (index u64, tag u8, len u32, bytes)*.
pub fn encode_state(applied: &BTreeMap<Index, Applied>, upto: Index) -> Bytes {
    let mut b = BytesMut::new();
    for (&i, cmd) in applied.range(..=upto) {
        b.put_u64(i);
        match cmd {
            None => b.put_u8(0),
            Some(c) => {
                b.put_u8(1);
                b.put_u32(c.len() as u32);
                b.put_slice(c);
            }
        }
    }
    b.freeze()
}

pub fn decode_state(data: &Bytes) -> BTreeMap<Index, Applied> {
    let mut out = BTreeMap::new();
    let mut b = data.clone();
    while b.has_remaining() {
        let i = b.get_u64();
        let cmd = match b.get_u8() {
            0 => None,
            _ => {
                let len = b.get_u32() as usize;
                Some(b.split_to(len))
            }
        };
        out.insert(i, cmd);
    }
    out
}

pub fn entry_payload(kind: EntryKind, data: &Bytes) -> Applied {
    match kind {
        EntryKind::Noop => None,
        EntryKind::Normal => Some(data.clone()),
    }
}
