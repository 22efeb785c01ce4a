//! A latency histogram whose `observe` is lock-free: one relaxed atomic add
//! on a bucket and one on the sum (prometheus-client's `Histogram` takes a
//! write lock per observation; this one sits on every request's path).
//!
//! Invariant: the bucket bounds are fixed and ascending ([`BOUNDS_NS`]);
//! a reader ([`Histogram::snapshot`]) derives the count from the buckets it
//! read, so the count it reports always equals their sum (the sum of
//! durations may be a few observations ahead or behind, as with any
//! lock-free histogram).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds: 100 µs to 10 s in 1-2.5-5
/// steps, then `+Inf`.
pub const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Durations observed, by bucket (see the module docs).
#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, then `+Inf`.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// What a scrape reads: per-bucket (not cumulative) counts with their upper
/// bounds in seconds, the last `f64::MAX` (`+Inf`), as prometheus-client's
/// encoder takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub sum_seconds: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let upper = BOUNDS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> = upper
            .zip(&self.buckets)
            .map(|(bound, n)| (bound, n.load(Relaxed)))
            .collect();
        Snapshot {
            sum_seconds: self.sum_ns.load(Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // on the bound: le="0.0001"
        h.observe(Duration::from_micros(101)); // le="0.00025"
        h.observe(Duration::from_secs(3)); // le="5"
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.0001), 1);
        assert_eq!(at(0.00025), 1);
        assert_eq!(at(5.0), 1);
        assert_eq!(at(f64::MAX), 1);
        assert_eq!(s.buckets.len(), BOUNDS_NS.len() + 1);
        assert!((s.sum_seconds - 63.000201).abs() < 1e-9);
    }
}
