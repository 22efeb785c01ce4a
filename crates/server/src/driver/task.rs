//! What both Raft drivers share as tasks on the node's tokio runtime (this
//! module's parent, the single-group driver, and `crate::shard::driver`, the
//! sharded host's): when a driver ticks ([`Ticker`]), how it waits for and
//! takes its next batch of inputs ([`next_inputs`]), and how it runs a step
//! that blocks for long ([`blocking`]).
//!
//! Invariant: a batch holds at most [`MAX_INPUTS_PER_DRIVE`] inputs, so a
//! flood of inputs cannot starve a driver's ticks; and waiting for the first
//! one ends when the driver's next tick is due.

use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Sleep;

use super::MAX_INPUTS_PER_DRIVE;

/// A driver's tick clock: when its next tick is due, and the timer that ends
/// a wait for input then ([`next_inputs`]).
pub(crate) struct Ticker {
    period: Duration,
    next: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Ticker {
    /// The first tick falls one `period` from now.
    pub(crate) fn new(period: Duration) -> Self {
        let next = Instant::now() + period;
        Ticker {
            period,
            next,
            timer: Box::pin(tokio::time::sleep_until(next.into())),
        }
    }

    /// Whether a tick is due at `now`; if so, the next falls a `period` after
    /// it, or at `now` if that is already past (ticks missed while a drive
    /// blocked are not made up in a burst).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = (self.next + self.period).max(now);
        self.timer.as_mut().reset(self.next.into());
        true
    }
}

/// A driver's next batch of inputs: the first one queued; if none is, with
/// `wait`, the first to arrive before `ticker`'s next tick (without `wait`,
/// none). Then what else has arrived, at most [`MAX_INPUTS_PER_DRIVE`] in
/// all. A busy driver yields once before it takes the rest (below). Empty
/// when the tick came first or nothing was queued; `None` once every sender
/// is gone (the driver stops).
///
/// `writes_in_flight`: the caller has more than one proposal awaiting its
/// answer (a single client never has).
pub(crate) async fn next_inputs<'a, I>(
    rx: &'a mut mpsc::Receiver<I>,
    ticker: &mut Ticker,
    wait: bool,
    writes_in_flight: bool,
) -> Option<impl Iterator<Item = I> + 'a> {
    // A busy driver yields once, so the tasks woken with its first input
    // (connections, peer links, most on this worker) send theirs and one drive
    // carries them all (group commit), as a driver thread's wake-up latency
    // used to allow. Busy: an input was already waiting as the loop came round,
    // or one woke it while several writes await commit — then the last drive's
    // answers have woken many connections, and the first to send woke the
    // driver, which tokio runs next (the worker's LIFO slot), ahead of the
    // rest. Without the yield, at 64-256 writers the single group's leader and
    // followers fsynced 25-90% more often per write (with it only for an input
    // already waiting, still ~30% more at 64 writers). Reads and one client
    // are not busy in this sense: there a yield bought no batching (a ReadIndex
    // round already covers every queued read) and cost about three more
    // context switches per read, a tenth of one reader's reads and 5-12% of
    // sixteen readers'.
    let first = match rx.try_recv() {
        Ok(input) => {
            tokio::task::yield_now().await;
            Some(input)
        }
        Err(TryRecvError::Disconnected) => return None,
        Err(TryRecvError::Empty) if !wait => None,
        Err(TryRecvError::Empty) => {
            let woke = tokio::select! {
                biased;
                input = rx.recv() => Some(input?),
                () = ticker.timer.as_mut() => None,
            };
            if woke.is_some() && writes_in_flight {
                tokio::task::yield_now().await;
            }
            woke
        }
    };
    let rest = std::iter::from_fn(move || rx.try_recv().ok());
    Some(first.into_iter().chain(rest).take(MAX_INPUTS_PER_DRIVE))
}

/// Runs `f`, which blocks for long (opening a store: its recovery; waiting on
/// the removal thread), from a driver task: on a multi-thread runtime through
/// `tokio::task::block_in_place`, so the worker's other tasks move to another
/// thread meanwhile; on a current-thread runtime (some tests) inline.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
