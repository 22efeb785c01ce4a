//! The event queue: what happens next in virtual time. Generic over the event type so
//! the Raft-level cluster (`Event`) and the KV cluster (its own events) share it.
//!
//! Invariant: events pop in (time, insertion sequence) order, so two runs with the same
//! seed and inputs see exactly the same order even for simultaneous events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use raft::{Message, NodeId};

/// Virtual time in microseconds.
pub type Micros = u64;

#[derive(Debug)]
pub enum Event {
    /// A node's periodic tick; ignored if the node was restarted since (`incarnation`).
    Tick { node: NodeId, incarnation: u64 },
    /// A message arrives at its destination.
    Deliver(Message),
    /// The host-run sync of a leader's log write (`replica::Replica::take_sync`)
    /// completes; ignored if the node was restarted since.
    Synced {
        node: NodeId,
        incarnation: u64,
        req: replica::SyncRequest,
    },
}

pub struct EventQueue<E = Event> {
    heap: BinaryHeap<Reverse<(Micros, u64, usize)>>,
    slots: Vec<Option<E>>,
    free: Vec<usize>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Micros, ev: E) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(ev);
                s
            }
            None => {
                self.slots.push(Some(ev));
                self.slots.len() - 1
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, slot)));
    }

    pub fn peek_time(&self) -> Option<Micros> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn pop(&mut self) -> Option<(Micros, E)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        let ev = self.slots[slot].take().expect("event slot filled");
        self.free.push(slot);
        Some((at, ev))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
