//! One simulated server of the Raft lab: the real `replica::Replica` over a store,
//! joined to the lab's "applier" state machine ([`LabApplier`]) — the map
//! index → command it has applied. The replica snapshots it every
//! `snapshot_interval` entries (`replica::Config::snapshot_every_entries`).
//!
//! The applier also writes what it does into a journal ([`LabEvent`]) shared with
//! the cluster, which drains it after every drive and checks the invariants against
//! it: every entry applied, every snapshot restored — exactly, in order, without the
//! replica having to expose its Ready.
//!
//! Crash model (see `store.rs`): the store only changes inside `Replica::drive`, which
//! runs to completion within one event, so at a crash it holds exactly what was
//! fsync'd. Everything else (the replica, the applied map) is volatile and rebuilt on
//! restart from the storage's snapshot and log.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::{EntryKind, Index, NodeId, RawNode, Storage, Term};
use replica::Replica;

/// What a node applied at one index: `None` for a leader's no-op.
pub type Applied = Option<Bytes>;

/// What an applier did, in order, since the cluster last looked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabEvent {
    /// The committed entry at this index was applied.
    Applied(Index, Applied),
    /// A snapshot replaced the whole state with this map.
    Restored(BTreeMap<Index, Applied>),
}

/// The journal an applier shares with its host.
pub type Journal = Rc<RefCell<Vec<LabEvent>>>;

/// The Raft lab's state machine: remembers every applied command by index (no-ops
/// included, as `None`). A proposal's response is the index it was applied at; a
/// read (`Query = ()`) answers the applied index it was served at, which the
/// cluster checks against everything applied anywhere before the read was issued.
#[derive(Debug)]
pub struct LabApplier {
    id: NodeId,
    // Invariant: holds every index 1..=last_applied (a snapshot holds all before it).
    applied: BTreeMap<Index, Applied>,
    last_applied: Index,
    journal: Journal,
}

impl LabApplier {
    pub fn new(id: NodeId, journal: Journal) -> Self {
        LabApplier {
            id,
            applied: BTreeMap::new(),
            last_applied: 0,
            journal,
        }
    }

    /// Every applied command by index.
    pub fn applied(&self) -> &BTreeMap<Index, Applied> {
        &self.applied
    }
}

impl rsm::StateMachine for LabApplier {
    type Command = Bytes;
    type Response = Index;
    type Query = ();
    type QueryResult = Index;

    fn encode_command(&self, cmd: &Bytes, _now_ms: u64) -> Bytes {
        cmd.clone()
    }

    fn tick_command(&self, _now_ms: u64) -> Option<Bytes> {
        None
    }

    fn apply(&mut self, index: Index, data: &[u8]) -> Index {
        assert_eq!(
            index,
            self.last_applied + 1,
            "server {} apply out of order: got {index} after {}",
            self.id,
            self.last_applied
        );
        let payload = (!data.is_empty()).then(|| Bytes::copy_from_slice(data));
        self.applied.insert(index, payload.clone());
        self.last_applied = index;
        self.journal
            .borrow_mut()
            .push(LabEvent::Applied(index, payload));
        index
    }

    fn applied_index(&self) -> Index {
        self.last_applied
    }

    fn query(&self, _: &()) -> Index {
        self.last_applied
    }

    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(&encode_state(&self.applied, self.last_applied))
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), rsm::SnapshotError> {
        let applied =
            decode_state(data).ok_or_else(|| rsm::SnapshotError::msg("bad lab snapshot"))?;
        self.last_applied = applied.keys().next_back().copied().unwrap_or(0);
        self.applied = applied;
        self.journal
            .borrow_mut()
            .push(LabEvent::Restored(self.applied.clone()));
        Ok(())
    }

    fn item_count(&self) -> usize {
        self.applied.len()
    }
}

/// One live server: its replica, the journal its applier writes, and the term in
/// which the cluster last saw it lead (to check each new leader once, when it wins).
pub struct SimNode<S: Storage> {
    pub id: NodeId,
    pub replica: Replica<S, LabApplier>,
    pub journal: Journal,
    pub led_term: Option<Term>,
}

impl<S: Storage> SimNode<S> {
    /// Boots from `storage` (restoring its snapshot). What the boot itself restored
    /// was checked when it was first applied, so the journal starts empty.
    pub fn boot(cfg: replica::Config, storage: S) -> SimNode<S> {
        let id = cfg.raft.id;
        let journal = Journal::default();
        let applier = LabApplier::new(id, journal.clone());
        let replica = Replica::new(cfg, storage, applier).expect("boot from our own storage");
        journal.borrow_mut().clear();
        SimNode {
            id,
            replica,
            journal,
            led_term: None,
        }
    }

    /// The Raft node (read-only: invariant checks and lab queries).
    pub fn raw(&self) -> &RawNode<S> {
        self.replica.raw_node()
    }

    /// The applier's map index → command.
    pub fn applied(&self) -> &BTreeMap<Index, Applied> {
        self.replica.state_machine().applied()
    }

    /// Takes what the applier did since the last call.
    pub fn drain_journal(&self) -> Vec<LabEvent> {
        std::mem::take(&mut *self.journal.borrow_mut())
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

/// Decodes [`encode_state`]'s bytes; `None` if they are not such bytes.
pub fn decode_state(mut b: &[u8]) -> Option<BTreeMap<Index, Applied>> {
    let mut out = BTreeMap::new();
    while b.has_remaining() {
        if b.remaining() < 9 {
            return None;
        }
        let i = b.get_u64();
        let cmd = match b.get_u8() {
            0 => None,
            1 if b.remaining() >= 4 => {
                let len = b.get_u32() as usize;
                if b.remaining() < len {
                    return None;
                }
                let (c, rest) = b.split_at(len);
                b = rest;
                Some(Bytes::copy_from_slice(c))
            }
            _ => return None,
        };
        out.insert(i, cmd);
    }
    Some(out)
}

pub fn entry_payload(kind: EntryKind, data: &Bytes) -> Applied {
    match kind {
        EntryKind::Normal if !data.is_empty() => Some(data.clone()),
        EntryKind::Normal | EntryKind::Noop | EntryKind::ConfChange => None,
    }
}
