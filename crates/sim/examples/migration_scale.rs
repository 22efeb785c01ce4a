//! How long a shard migration takes in the simulator, as the data moved
//! grows, and the largest shapes simulated. Virtual time (reliable network,
//! 50–500 µs per message, 10 ms ticks); a benchmark to run by hand:
//! `cargo run --release -p sim --example migration_scale`.
//!
//! For each size: group 0 holds every shard with `keys` keys of `value`
//! bytes; group 1 joins; we time (virtual) until every replica has applied
//! the new configuration and no shard is in transit (pulled, installed and
//! garbage-collected at the old owner).

use std::time::Instant;

use sim::shard::{ShardConfig, ShardWorld};
use sim::{MS, SEC};

fn run(groups: usize, shards: u32, keys: usize, value: usize) {
    let mut cfg = ShardConfig::lab(7);
    cfg.groups = groups;
    cfg.shards = shards;
    let mut w = ShardWorld::new(cfg);
    let ck = w.make_client();
    w.join(&[0]);
    let ks = w.keys_cycling_shards(keys);
    let v = "x".repeat(value);
    for k in &ks {
        w.put(ck, k, &v);
    }
    let started_wall = Instant::now();
    let t0 = w.now();
    let gis: Vec<usize> = (1..groups).collect();
    w.join(&gis);
    let num = w.query_latest().num;
    let settled = w.run_until(600 * SEC, |w| w.settled_at(num));
    let moved_bytes = (keys * value) as f64 * (1.0 - 1.0 / groups as f64);
    println!(
        "| {groups} | {shards} | {keys} x {value} B | {:.1} MiB | {} | {:.0} ms | {:.1} s |",
        moved_bytes / (1 << 20) as f64,
        if settled { "yes" } else { "NO" },
        (w.now() - t0) as f64 / MS as f64,
        started_wall.elapsed().as_secs_f64()
    );
}

fn main() {
    println!("| groups | shards | data | moved (approx.) | settled | virtual time to settle | wall time |");
    println!("|---|---|---|---|---|---|---|");
    for (keys, value) in [
        (100, 100),
        (1_000, 1_000),
        (4_000, 1_000),
        (4_000, 4_000),
        (8_000, 4_000),
    ] {
        run(2, 10, keys, value);
    }
    run(8, 64, 2_000, 1_000);
    run(16, 256, 4_000, 1_000);
}
