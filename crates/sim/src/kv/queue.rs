//! A virtual-time event queue generic over the event type (the Raft-level
//! `sim::events::EventQueue` is fixed to its own events).
//!
//! Invariant: events pop in (time, insertion sequence) order, so simultaneous
//! events keep a deterministic order and a seed replays bit for bit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::events::Micros;

pub struct Queue<E> {
    heap: BinaryHeap<Reverse<(Micros, u64, usize)>>,
    slots: Vec<Option<E>>,
    free: Vec<usize>,
    seq: u64,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<E> Queue<E> {
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
