//! What both Raft drivers share as tasks on the node's tokio runtime (this
//! module's parent, the single-group driver, and `crate::shard::driver`, the
//! sharded host's): how a driver waits for and takes its next batch of
//! inputs ([`next_inputs`]), and how it runs a step that blocks for long
//! ([`blocking`]).
//!
//! Invariant: a batch holds at most [`MAX_INPUTS_PER_DRIVE`] inputs, so a
//! flood of inputs cannot starve a driver's ticks; and waiting for the first
//! one ends when the driver's next tick is due.

use std::pin::Pin;

use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Sleep;

use super::MAX_INPUTS_PER_DRIVE;

/// A driver's next batch of inputs: the first one queued, after one yield
/// (below); if none is queued, with `wait`, the first to arrive before
/// `tick_due` fires (without `wait`, none). Then what else has arrived, at
/// most [`MAX_INPUTS_PER_DRIVE`] in all. Empty when the tick came first or
/// nothing was queued; `None` once every sender is gone (the driver stops).
pub(crate) async fn next_inputs<'a, I>(
    rx: &'a mut mpsc::Receiver<I>,
    tick_due: Pin<&mut Sleep>,
    wait: bool,
) -> Option<impl Iterator<Item = I> + 'a> {
    // An input already waiting means the node is busy: more are on their way
    // from tasks woken with it (connections, peer links, most on this worker).
    // Yield once so they send theirs and one drive carries them all (group
    // commit), as a driver thread's wake-up latency used to allow; without it,
    // at 64-256 writers the single group's leader and followers fsynced 25-90%
    // more often per write. A driver that waited for its input (one client)
    // does not yield: nothing more is coming, and there a yield cost about
    // three more context switches per read and a tenth of the reads.
    let first = match rx.try_recv() {
        Ok(input) => {
            tokio::task::yield_now().await;
            Some(input)
        }
        Err(TryRecvError::Disconnected) => return None,
        Err(TryRecvError::Empty) if !wait => None,
        Err(TryRecvError::Empty) => {
            // (A flood of inputs takes the branch above, whose yield lets this
            // worker's other tasks run.)
            tokio::select! {
                biased;
                input = rx.recv() => Some(input?),
                () = tick_due => None,
            }
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
