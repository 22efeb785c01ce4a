//! What a check answers: [`CheckResult`], and for an illegal history a
//! [`Violation`] that names the partition, the longest linearizable prefix
//! the search found, and the operation it could not place after it.

use std::fmt::{self, Debug, Display, Write as _};

use crate::history::Operation;
use crate::model::Model;
use crate::search::DeadEnd;

/// How many operations of the prefix the explanation prints (the last ones).
const PREFIX_SHOWN: usize = 10;

/// The verdict on a history.
pub enum CheckResult<M: Model> {
    /// Linearizable.
    Ok,
    /// Not linearizable.
    Illegal(Box<Violation<M>>),
    /// The step budget ran out on these partitions before an answer.
    Unknown { partitions: Vec<M::Partition> },
}

impl<M: Model> CheckResult<M> {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    pub fn is_illegal(&self) -> bool {
        matches!(self, Self::Illegal(_))
    }

    /// The violation, if illegal.
    pub fn violation(&self) -> Option<&Violation<M>> {
        match self {
            Self::Illegal(v) => Some(v),
            _ => None,
        }
    }
}

impl<M: Model> Debug for CheckResult<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("Ok"),
            Self::Illegal(v) => write!(f, "Illegal({v})"),
            Self::Unknown { partitions } => write!(f, "Unknown {{ partitions: {partitions:?} }}"),
        }
    }
}

/// Why a history is not linearizable. Operation numbers are indices into
/// the checked history.
pub struct Violation<M: Model> {
    /// The partition (for the KV model: the key) that has no linearization.
    pub partition: M::Partition,
    /// Operations in the partition.
    pub partition_len: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<usize>,
    /// The model state after `prefix`.
    pub state: M::State,
    /// The operation that returned before it could be placed after `prefix`.
    pub blocked: usize,
    /// Other operations that were pending (called, not yet linearized) when
    /// `blocked` returned, at most 16.
    pub candidates: Vec<usize>,
    explanation: String,
}

impl<M: Model> Violation<M> {
    /// Maps a partition's dead end back to history indices and renders it.
    pub(crate) fn new(
        partition: M::Partition,
        indices: &[usize],
        dead_end: DeadEnd<M::State>,
        history: &[Operation<M::Input, M::Output>],
    ) -> Self {
        let mut v = Self {
            partition,
            partition_len: indices.len(),
            prefix: dead_end.prefix.iter().map(|&i| indices[i]).collect(),
            state: dead_end.state,
            blocked: indices[dead_end.blocked],
            candidates: dead_end.candidates.iter().map(|&i| indices[i]).collect(),
            explanation: String::new(),
        };
        v.explanation = v.render(history);
        v
    }

    /// A multi-line human explanation (also what `Display` prints).
    pub fn explanation(&self) -> &str {
        &self.explanation
    }

    fn render(&self, history: &[Operation<M::Input, M::Output>]) -> String {
        let mut s = String::new();
        let (shown, n) = (self.prefix.len().min(PREFIX_SHOWN), self.prefix.len());
        let _ = writeln!(
            s,
            "not linearizable: partition {:?} ({} operations)",
            self.partition, self.partition_len
        );
        let _ = writeln!(
            s,
            "longest linearizable prefix: {n} operations; last {shown} of them:"
        );
        for &i in &self.prefix[n - shown..] {
            let _ = writeln!(s, "  {}", describe(i, &history[i]));
        }
        let _ = writeln!(s, "state after the prefix: {:?}", self.state);
        let _ = writeln!(
            s,
            "cannot place, before it returned:\n  {}",
            describe(self.blocked, &history[self.blocked])
        );
        let _ = writeln!(
            s,
            "other operations pending then (each could not go next, or led only to dead ends):"
        );
        for &i in &self.candidates {
            let _ = writeln!(s, "  {}", describe(i, &history[i]));
        }
        s
    }
}

impl<M: Model> Display for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

impl<M: Model> Debug for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Violation {{\n{}}}", self.explanation)
    }
}

/// One line per operation: `#index client c [call, ret] input -> output`.
pub fn describe<I: Debug, O: Debug>(index: usize, op: &Operation<I, O>) -> String {
    match &op.ret {
        Some(r) => format!(
            "#{index} client {} [{}, {}] {:?} -> {:?}",
            op.client, op.call, r.time, op.input, r.output
        ),
        None => format!(
            "#{index} client {} [{}, ∞) {:?} -> unknown",
            op.client, op.call, op.input
        ),
    }
}
