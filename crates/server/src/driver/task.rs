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

/// A driver's next batch of inputs: with `wait`, waits for the first until
/// `tick_due` fires (without, takes only what is queued), then takes what
/// else has arrived, at most [`MAX_INPUTS_PER_DRIVE`] in all. Empty when the
/// tick came first or nothing was queued; `None` once every sender is gone
/// (the driver stops).
pub(crate) async fn next_inputs<'a, I>(
    rx: &'a mut mpsc::Receiver<I>,
    tick_due: Pin<&mut Sleep>,
    wait: bool,
) -> Option<impl Iterator<Item = I> + 'a> {
    let first = if wait {
        // `recv` first: it spends the task's cooperative budget, so a flood of
        // inputs still lets this worker's other tasks run.
        tokio::select! {
            biased;
            input = rx.recv() => Some(input?),
            () = tick_due => None,
        }
    } else {
        match rx.try_recv() {
            Ok(input) => Some(input),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => return None,
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
