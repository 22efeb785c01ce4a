//! The [`Model`] trait: the sequential specification a history is checked
//! against, and how its operations partition into independent sub-histories.
//!
//! The checker is generic over it so that other state machines (a shard
//! controller, a lock service) can be checked with the same search; the
//! key-value model lives in [`crate::kv`].

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
///
/// The checker searches for an order of the operations, consistent with
/// their real-time intervals, in which every `step` succeeds.
pub trait Model {
    /// What a client asks.
    type Input: Clone + Debug;
    /// What a client is told.
    type Output: Clone + Debug;
    /// The state of one partition. Hashed and compared for memoisation, so
    /// keep it small and cheap to clone (e.g. `bytes::Bytes`, not `Vec<u8>`).
    type State: Clone + Eq + Hash + Debug;
    /// Which partition an input belongs to. Operations of different
    /// partitions must never affect each other (P-compositionality: a history
    /// is linearizable iff each partition's sub-history is). Use `()` for a
    /// model that cannot be partitioned.
    type Partition: Clone + Ord + Debug;

    /// The state every partition starts from.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`. `output` is what the client saw, or `None`
    /// when the outcome is unknown, in which case any output is acceptable.
    /// Returns the next state, or `None` if `output` is impossible from
    /// `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// The partition `input` belongs to.
    fn partition(&self, input: &Self::Input) -> Self::Partition;

    /// Whether `input` never changes the state. An operation that is read-only
    /// and has an unknown outcome constrains nothing, so the checker drops it
    /// before searching. The default, `false`, is always safe.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }
}
