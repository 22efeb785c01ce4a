//! The entry points: split a history into partitions, search each one
//! independently (P-compositionality), and combine the outcomes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::history::Operation;
use crate::kv::{KvModel, KvOperation};
use crate::model::Model;
use crate::search::{search, SearchOutcome};
use crate::verdict::{CheckResult, Violation};

/// Limits on a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Model steps one partition's search may take before the checker gives
    /// up on it and answers [`CheckResult::Unknown`]. Bounds the time spent
    /// on pathological histories (the problem is NP-complete) to roughly
    /// `partitions * max_steps_per_partition * (cost of a step)`.
    pub max_steps_per_partition: u64,
}

impl Default for CheckOptions {
    /// Ten million steps: a few seconds per partition at worst.
    fn default() -> Self {
        Self {
            max_steps_per_partition: 10_000_000,
        }
    }
}

/// What a check cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations in the history.
    pub operations: usize,
    /// Operations searched (unknown-outcome read-only ones are dropped).
    pub searched: usize,
    /// Partitions searched.
    pub partitions: usize,
    /// Model steps taken over all partitions.
    pub steps: u64,
    /// Wall-clock time of the check.
    pub elapsed: Duration,
}

/// A verdict with its cost.
#[derive(Debug)]
pub struct Report<M: Model> {
    pub result: CheckResult<M>,
    pub stats: Stats,
}

/// Checks `history` against `model` with default limits.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> CheckResult<M> {
    check_with(model, history, &CheckOptions::default()).result
}

/// Checks a key-value history with default limits.
pub fn check_kv(history: &[KvOperation]) -> CheckResult<KvModel> {
    check(&KvModel, history)
}

/// Checks `history` against `model`. Partitions are searched in partition
/// order; the first illegal one ends the check. Partitions that exhaust
/// their budget make the answer `Unknown` unless another one is illegal.
pub fn check_with<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Report<M> {
    let started = Instant::now();
    let partitions = partition(model, history);
    let mut stats = Stats {
        operations: history.len(),
        partitions: partitions.len(),
        ..Stats::default()
    };
    let mut exhausted = Vec::new();
    for (key, indices) in partitions {
        stats.searched += indices.len();
        let ops: Vec<_> = indices.iter().map(|&i| &history[i]).collect();
        let (outcome, steps) = search(model, &ops, options.max_steps_per_partition);
        stats.steps += steps;
        match outcome {
            SearchOutcome::Linearizable => {}
            SearchOutcome::Exhausted => exhausted.push(key),
            SearchOutcome::Illegal(dead_end) => {
                stats.elapsed = started.elapsed();
                let violation = Violation::new(key, &indices, dead_end, history);
                return Report {
                    result: CheckResult::Illegal(Box::new(violation)),
                    stats,
                };
            }
        }
    }
    stats.elapsed = started.elapsed();
    let result = if exhausted.is_empty() {
        CheckResult::Ok
    } else {
        CheckResult::Unknown {
            partitions: exhausted,
        }
    };
    Report { result, stats }
}

/// History indices per partition, in partition order, each list in history
/// order. Unknown-outcome read-only operations constrain nothing and are
/// left out.
fn partition<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> BTreeMap<M::Partition, Vec<usize>> {
    let mut parts: BTreeMap<M::Partition, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        if op.is_unknown() && model.is_read_only(&op.input) {
            continue;
        }
        parts.entry(model.partition(&op.input)).or_default().push(i);
    }
    parts
}
