//! Random-schedule sweep over the sharded store (`sim::shard::sweep`):
//! joins, leaves and moves mixed with crashes, whole groups down,
//! partitions, lossy and long-delay links, concurrent clients; after every
//! event no shard is served by two groups in one configuration, and each
//! schedule ends with a liveness phase and a linearizability check.
//!
//! `SHARD_SWEEP_SEEDS=N` runs N seeds (the default keeps CI fast), starting
//! at `SIM_SEED` (default 1); `SIM_SEED=S` alone runs just seed S. A
//! failure prints the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use sim::shard::sweep::run_schedule;

const DEFAULT_SEEDS: u64 = 12;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn shard_random_schedules() {
    let seeds: Vec<u64> = match (env_u64("SIM_SEED"), env_u64("SHARD_SWEEP_SEEDS")) {
        (Some(s), None) => vec![s],
        (start, count) => {
            let start = start.unwrap_or(1);
            (start..start + count.unwrap_or(DEFAULT_SEEDS)).collect()
        }
    };
    let started = Instant::now();
    let (mut ops, mut changes, mut unknown) = (0usize, 0u64, 0usize);
    for &seed in &seeds {
        let r = catch_unwind(AssertUnwindSafe(|| run_schedule(seed))).unwrap_or_else(|e| {
            eprintln!(
                "shard sweep failed; reproduce with: SIM_SEED={seed} cargo test -p sim --test it shard_sweep::shard_random_schedules"
            );
            std::panic::resume_unwind(e)
        });
        ops += r.operations;
        unknown += r.operations - r.completed as usize;
        changes += r.config_changes;
    }
    eprintln!(
        "shard sweep: {} seeds, {changes} configuration changes, {ops} operations ({unknown} unknown) checked in {:?}",
        seeds.len(),
        started.elapsed()
    );
}

/// A seed replays bit for bit: same events, same history.
#[test]
fn shard_schedule_replays_identically() {
    let a = run_schedule(3);
    let b = run_schedule(3);
    assert_eq!(
        (a.events, a.operations, a.completed, a.virtual_time),
        (b.events, b.operations, b.completed, b.virtual_time)
    );
}
