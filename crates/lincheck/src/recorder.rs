//! [`HistoryRecorder`]: builds a history as a test runs, one `invoke` when a
//! client sends a request and one `complete` when it sees the reply.
//! Operations never completed are recorded with an unknown outcome.

use crate::history::{Operation, Return};

/// Names an invoked operation so it can be completed later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpHandle(usize);

/// Records a history. Single-threaded; a real-process test shares one behind
/// a `Mutex`.
#[derive(Clone, Debug)]
pub struct HistoryRecorder<I, O> {
    ops: Vec<Operation<I, O>>,
}

impl<I, O> Default for HistoryRecorder<I, O> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<I, O> HistoryRecorder<I, O> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` issued `input` at `time`.
    pub fn invoke(&mut self, client: u64, input: I, time: u64) -> OpHandle {
        self.ops.push(Operation::unknown(client, input, time));
        OpHandle(self.ops.len() - 1)
    }

    /// Records that the operation returned `output` at `time`.
    ///
    /// Panics if it was already completed or `time` is before its call:
    /// both are bugs in the test harness.
    pub fn complete(&mut self, handle: OpHandle, output: O, time: u64) {
        let op = &mut self.ops[handle.0];
        assert!(op.ret.is_none(), "operation {} completed twice", handle.0);
        assert!(
            time >= op.call,
            "operation {} returns at {time}, before its call at {}",
            handle.0,
            op.call
        );
        op.ret = Some(Return { time, output });
    }

    /// The history so far (incomplete operations have unknown outcome).
    pub fn history(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// The history, consuming the recorder.
    pub fn into_history(self) -> Vec<Operation<I, O>> {
        self.ops
    }

    /// Operations recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_operations_stay_unknown() {
        let mut r = HistoryRecorder::<&str, u8>::new();
        let a = r.invoke(1, "a", 10);
        let _b = r.invoke(2, "b", 11);
        r.complete(a, 7, 12);
        let h = r.into_history();
        assert_eq!(h[0], Operation::returned(1, "a", 10, 12, 7));
        assert_eq!(h[1], Operation::unknown(2, "b", 11));
    }

    #[test]
    #[should_panic(expected = "completed twice")]
    fn double_completion_is_a_bug() {
        let mut r = HistoryRecorder::<&str, u8>::new();
        let a = r.invoke(1, "a", 10);
        r.complete(a, 7, 12);
        r.complete(a, 7, 13);
    }
}
