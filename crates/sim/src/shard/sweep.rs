//! Random schedules over the sharded store: one seed picks the shape (group
//! count, snapshot threshold, lossy links), a client workload over keys in
//! every shard, and a schedule that mixes configuration changes (joins,
//! leaves, moves) with faults (process crashes and restarts, partitions,
//! whole groups down, long-delay links).
//!
//! Phases (as the KV sweep): a safety phase with changes and faults — the
//! world checks after every event that no shard is served by two groups in
//! one configuration — then a liveness phase: heal, restart everything, a
//! reliable net, every group joined, and every client must finish; then the
//! whole history must be linearizable.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::events::Micros;
use crate::shard::ctrl_clerk::{CtrlOp, CtrlResult};
use crate::shard::world::{ShardConfig, ShardWorld};
use crate::{MS, SEC};

/// How long the faulty phase of one schedule lasts.
pub const FAULT_PHASE: Micros = 6 * SEC;

/// What one schedule did, for the sweep's report.
#[derive(Clone, Debug)]
pub struct SweepReport {
    pub seed: u64,
    pub operations: usize,
    pub completed: u64,
    pub config_changes: u64,
    pub events: u64,
    pub virtual_time: Micros,
}

/// Runs the schedule of `seed`; panics (with context) on any violation.
pub fn run_schedule(seed: u64) -> SweepReport {
    let mut probe = ChaCha8Rng::seed_from_u64(seed ^ 0x5a4d_c0de);
    let mut cfg = ShardConfig::lab(seed);
    cfg.groups = probe.gen_range(2..=4);
    cfg.shards = *[4u32, 10, 16].choose(&mut probe).expect("non-empty");
    cfg.unreliable = probe.gen_bool(0.4);
    cfg.snapshot_threshold_bytes = *[None, Some(500), Some(2000)]
        .choose(&mut probe)
        .expect("non-empty");
    let mut w = ShardWorld::new(cfg);
    w.set_long_reordering(probe.gen_bool(0.15));
    let groups = w.cfg.groups;
    let mut joined: Vec<usize> = vec![0];
    w.join(&[0]);
    let keys = w.keys_cycling_shards(2 * w.cfg.shards as usize);
    let nclients = probe.gen_range(2..=6);
    let clients = w.spawn_random_clients(&keys, nclients);
    let admin = w.make_ctrl_client();
    let mut changes = 0;

    let end = w.now() + FAULT_PHASE;
    while w.now() < end {
        w.run_for(probe.gen_range(50..600) * MS);
        if probe.gen_bool(0.5) {
            changes += change_config(&mut w, admin, &mut probe, &mut joined, groups);
        } else {
            inject_fault(&mut w, &mut probe);
        }
    }

    // Liveness: heal everything; every group joins so all shards are served.
    w.stop_clients(&clients);
    w.heal();
    w.set_unreliable(false);
    w.set_long_reordering(false);
    for id in w.all_processes() {
        if !w.is_up(id) {
            w.start_process(id);
        }
    }
    w.run_until(60 * SEC, |w| w.is_idle(admin));
    let all: Vec<usize> = (0..groups).filter(|g| !joined.contains(g)).collect();
    if !all.is_empty() {
        w.join(&all);
    }
    w.run_until_idle(&clients, 120 * SEC);
    w.end();
    SweepReport {
        seed,
        operations: w.history.len(),
        completed: w.history.completed,
        config_changes: changes,
        events: w.counters.events,
        virtual_time: w.now(),
    }
}

/// Starts a join, leave or move (without waiting); returns 1 if started.
fn change_config(
    w: &mut ShardWorld,
    admin: u64,
    probe: &mut ChaCha8Rng,
    joined: &mut Vec<usize>,
    groups: usize,
) -> u64 {
    if !w.is_idle(admin) {
        return 0;
    }
    if let Some(CtrlResult::Failed(why)) = w.last_ctrl(admin) {
        panic!("a controller change failed: {why} (seed {})", w.cfg.seed);
    }
    let out: Vec<usize> = (0..groups).filter(|g| !joined.contains(g)).collect();
    let op = match probe.gen_range(0..3) {
        0 if !out.is_empty() => {
            let gi = *out.choose(probe).expect("non-empty");
            joined.push(gi);
            CtrlOp::Join([(w.gid(gi), w.members(gi))].into_iter().collect())
        }
        1 if joined.len() > 1 => {
            let at = probe.gen_range(0..joined.len());
            let gi = joined.remove(at);
            CtrlOp::Leave(vec![w.gid(gi)])
        }
        _ if !joined.is_empty() => {
            let gi = *joined.choose(probe).expect("non-empty");
            let shard = probe.gen_range(0..w.cfg.shards);
            CtrlOp::Move(shard, w.gid(gi))
        }
        _ => return 0,
    };
    w.start_ctrl(admin, op);
    1
}

fn inject_fault(w: &mut ShardWorld, probe: &mut ChaCha8Rng) {
    let all = w.all_processes();
    let id = *all.choose(probe).expect("processes");
    match probe.gen_range(0..10) {
        0..=2 => {
            if w.is_up(id) {
                w.crash(id);
            } else {
                w.start_process(id);
            }
        }
        3 => {
            let gi = probe.gen_range(0..w.cfg.groups);
            for id in w.group_servers(gi) {
                w.crash(id);
            }
        }
        4..=5 => {
            let mut shuffled = all.clone();
            shuffled.shuffle(probe);
            let cut = probe.gen_range(1..shuffled.len());
            let (a, b) = shuffled.split_at(cut);
            w.partition(&[a, b]);
        }
        6 => w.heal(),
        7 => w.set_unreliable(probe.gen_bool(0.5)),
        _ => {
            for id in all {
                if !w.is_up(id) && probe.gen_bool(0.7) {
                    w.start_process(id);
                }
            }
        }
    }
}
