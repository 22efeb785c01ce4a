//! Random-schedule sweep over the KV service: many seeds of random cluster
//! shapes, workloads and faults (`sim::kv::sweep`), each ending with a
//! liveness phase and a linearizability check of the whole history.
//!
//! `KV_SWEEP_SEEDS=N` runs N seeds (the default keeps CI fast), starting at
//! `SIM_SEED` (default 1); `SIM_SEED=S` alone runs just seed S. A failure
//! prints the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use sim::kv::sweep::run_schedule;

const DEFAULT_SEEDS: u64 = 64;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn kv_random_schedules() {
    let seeds: Vec<u64> = match (env_u64("SIM_SEED"), env_u64("KV_SWEEP_SEEDS")) {
        (Some(s), None) => vec![s],
        (start, count) => {
            let start = start.unwrap_or(1);
            (start..start + count.unwrap_or(DEFAULT_SEEDS)).collect()
        }
    };
    let started = Instant::now();
    let (mut ops, mut unknown, mut slowest) = (0usize, 0usize, (Duration::ZERO, 0usize));
    for &seed in &seeds {
        let r = catch_unwind(AssertUnwindSafe(|| run_schedule(seed))).unwrap_or_else(|e| {
            eprintln!("kv sweep failed; reproduce with: SIM_SEED={seed} cargo test -p sim --test it kv_sweep::kv_random_schedules");
            std::panic::resume_unwind(e)
        });
        ops += r.operations;
        unknown += r.operations - r.completed as usize;
        if r.check.elapsed > slowest.0 {
            slowest = (r.check.elapsed, r.operations);
        }
    }
    eprintln!(
        "kv sweep: {} seeds, {ops} operations ({unknown} with unknown outcome) checked in {:?}; slowest check {:?} ({} ops)",
        seeds.len(),
        started.elapsed(),
        slowest.0,
        slowest.1
    );
}

/// A seed replays bit for bit: same events, same history.
#[test]
fn kv_schedule_replays_identically() {
    let a = run_schedule(7);
    let b = run_schedule(7);
    assert_eq!(
        (a.events, a.operations, a.completed, a.virtual_time),
        (b.events, b.operations, b.completed, b.virtual_time)
    );
}
