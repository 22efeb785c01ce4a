//! Times the checker on synthetic 10,000-operation key-value histories
//! (10 clients, 50 keys, 1% unknown outcomes), plus a one-key variant where
//! partitioning cannot help.
//!
//! `cargo run --release -p lincheck --example bench`

use lincheck::synth::{kv_history, SynthConfig};
use lincheck::{check_with, CheckOptions, KvModel};

fn run(label: &str, cfg: &SynthConfig) {
    let history = kv_history(cfg);
    let report = check_with(&KvModel, &history, &CheckOptions::default());
    assert!(report.result.is_ok(), "{label}: {:?}", report.result);
    let s = &report.stats;
    println!(
        "{label}: {} ops ({} searched) in {} partitions: linearizable, {} steps, {:.1} ms",
        s.operations,
        s.searched,
        s.partitions,
        s.steps,
        s.elapsed.as_secs_f64() * 1e3
    );
}

fn main() {
    for seed in 1..=3 {
        run(
            &format!("seed {seed}, 10 clients, 50 keys"),
            &SynthConfig {
                seed,
                ..SynthConfig::default()
            },
        );
    }
    let one_key = SynthConfig {
        keys: 1,
        ..SynthConfig::default()
    };
    run("seed 1, 10 clients, 1 key", &one_key);
    run(
        "seed 1, 10 clients, 1 key, no unknown",
        &SynthConfig {
            unknown_per_mille: 0,
            ..one_key.clone()
        },
    );
    run(
        "seed 1, 10 clients, 1 key, 2000 ops",
        &SynthConfig {
            ops: 2000,
            ..one_key.clone()
        },
    );
}
