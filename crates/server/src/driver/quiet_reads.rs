//! Reads left beside the driver's channel while a ReadIndex round is in
//! flight, so that sending them does not wake a parked driver ([`QuietReads`]
//! holds the rule and its invariant).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::{Answer, QUEUE_INPUTS};

/// Reads that arrived while a ReadIndex round was in flight, left here rather
/// than sent through the channel, whose send wakes a parked driver: a task
/// wake-up, and a parked worker's futex wake when the driver is not picked up
/// by the waking worker itself (when the driver was a thread, every such send
/// cost a futex wake and a context switch, about 1.2 µs of the driver's CPU
/// per read at 16 readers on this VM). They could not start a round of their own
/// before the one in flight ends (`replica::Reads`), and its end wakes the
/// driver anyway: an answer from a follower arrives as a message (or a
/// leadership loss does), and the tick wakes it regardless.
///
/// Invariant: a read is left here only while `round_out` is set, checked under
/// the lock; the driver sets `round_out` after every drive from
/// `Replica::read_round_in_flight`, and clears it and takes what is here under
/// the same lock, and it takes what is here at every wake-up. So a read waits
/// here at most until the round in flight ends, or the next tick.
#[derive(Default)]
pub(super) struct QuietReads {
    round_out: AtomicBool,
    queue: Mutex<Vec<(kv::Op, oneshot::Sender<Answer>)>>,
}

pub(super) type QuietRead = (kv::Op, oneshot::Sender<Answer>);

impl QuietReads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<QuietRead>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves the read here if a round is in flight; else gives it back.
    pub(super) fn offer(&self, read: QuietRead) -> Result<(), QuietRead> {
        if !self.round_out.load(Ordering::Relaxed) {
            return Err(read);
        }
        let mut q = self.lock();
        if !self.round_out.load(Ordering::Relaxed) || q.len() >= QUEUE_INPUTS {
            return Err(read);
        }
        q.push(read);
        Ok(())
    }

    /// What is waiting (the driver, at every wake-up).
    pub(super) fn take(&self) -> Vec<QuietRead> {
        take_all(&mut self.lock())
    }

    /// Publishes whether a round is in flight; when none is, also takes what is
    /// waiting, as nothing else will wake the driver for it.
    pub(super) fn publish(&self, round_out: bool) -> Vec<QuietRead> {
        let mut q = self.lock();
        self.round_out.store(round_out, Ordering::Relaxed);
        if round_out {
            Vec::new()
        } else {
            take_all(&mut q)
        }
    }
}

/// Empties `q`, leaving it as much room as it had: the next round's readers
/// then push without growing it step by step (a `realloc` under the lock, on
/// a connection's path).
fn take_all(q: &mut Vec<QuietRead>) -> Vec<QuietRead> {
    if q.is_empty() {
        return Vec::new();
    }
    let room = q.capacity();
    std::mem::replace(q, Vec::with_capacity(room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn read() -> QuietRead {
        let key = Bytes::from_static(b"k");
        (kv::Op::Get { key }, oneshot::channel().0)
    }

    /// A read waits beside the channel only while a round is in flight; every
    /// wake-up takes what waits, and the round's end (published as "no round")
    /// hands back whatever is left, as nothing else would wake the driver for it.
    #[test]
    fn reads_wait_beside_the_channel_only_while_a_round_is_out() {
        let q = QuietReads::default();
        assert!(q.offer(read()).is_err(), "no round: through the channel");
        assert!(q.publish(true).is_empty());
        assert!(q.offer(read()).is_ok() && q.offer(read()).is_ok());
        assert_eq!(q.take().len(), 2);
        assert!(q.offer(read()).is_ok());
        assert!(q.publish(true).is_empty(), "still out: it waits on");
        assert_eq!(q.publish(false).len(), 1, "the round's end takes it");
        assert!(q.take().is_empty());
        assert!(q.offer(read()).is_err(), "no round: through the channel");
    }
}
