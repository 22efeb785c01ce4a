//! Random schedules over the KV service: one seed picks the cluster shape,
//! the workload and a fault schedule (crashes, restarts, partitions,
//! disconnections, lossy and long-delay links); clients run throughout.
//!
//! A quarter of the schedules use short client sessions, so expiry (and the
//! clerk's "unknown outcome" path) is exercised too.
//!
//! Phases (after openraft's fuzzer): a safety phase with faults, then a
//! liveness phase — heal, restart every server, make the net reliable, and
//! require every client to finish — then the checks: lab client checks,
//! replicas at the same index agree, and the history is linearizable.

use raft::NodeId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::events::Micros;
use crate::kv::cluster::{KvCluster, KvConfig};
use crate::kv::lab::RunReport;
use crate::{MS, SEC};

/// How long the faulty phase of one schedule lasts.
pub const FAULT_PHASE: Micros = 4 * SEC;

/// Runs the schedule of `seed`; panics (with context) on any violation.
pub fn run_schedule(seed: u64) -> RunReport {
    let mut probe = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_ee9d);
    let servers = *[3usize, 5, 7].choose(&mut probe).expect("non-empty");
    let mut cfg = KvConfig::new(servers, seed);
    cfg.unreliable = probe.gen_bool(0.4);
    cfg.snapshot_threshold_bytes = *[None, Some(300), Some(1000), Some(4000)]
        .choose(&mut probe)
        .expect("non-empty");
    cfg.think_max = *[0, MS, 5 * MS, 20 * MS]
        .choose(&mut probe)
        .expect("non-empty");
    if probe.gen_bool(0.25) {
        // Short sessions: clerks stuck behind a fault lose theirs, and their
        // retries must be refused (SessionExpired), never re-applied.
        cfg.kv.session_timeout_ms = probe.gen_range(300..3_000);
    }
    let clients = probe.gen_range(1..=6);
    let random_keys = probe.gen_bool(0.6);
    let mut c = KvCluster::new(cfg);
    c.net.long_reordering = probe.gen_bool(0.2);
    let ids = c.spawn_lab_clients(clients, random_keys);

    let end = c.now + FAULT_PHASE;
    while c.now < end {
        c.run_for(probe.gen_range(20..700) * MS);
        inject_fault(&mut c, &mut probe);
    }

    c.stop_clients(&ids);
    c.connect_all();
    c.net.unreliable = false;
    c.net.long_reordering = false;
    for id in c.ids() {
        c.start_server(id);
    }
    let finished = c.wait_idle(&ids, 60 * SEC);
    assert!(
        finished,
        "liveness: clients did not finish within 60 s after healing (seed {seed})"
    );
    let check = c.end();
    RunReport {
        seed,
        operations: c.history.len(),
        completed: c.history.completed,
        virtual_time: c.now,
        events: c.counters.events,
        check,
    }
}

fn inject_fault(c: &mut KvCluster, probe: &mut ChaCha8Rng) {
    let ids = c.ids();
    let id: NodeId = *ids.choose(probe).expect("servers");
    match probe.gen_range(0..100) {
        0..=14 => c.crash(id),
        15..=29 => c.start_server(id),
        30..=39 => {
            c.crash(id);
            c.start_server(id);
        }
        40..=54 => {
            let (a, b): (Vec<NodeId>, Vec<NodeId>) = ids.iter().partition(|_| probe.gen_bool(0.5));
            c.partition(&[&a, &b]);
        }
        55..=69 => c.connect_all(),
        70..=77 => c.net.disconnect(id),
        78..=85 => c.net.connect(id),
        86..=93 => c.net.unreliable = !c.net.unreliable,
        94..=96 => c.net.long_reordering = !c.net.long_reordering,
        _ => {
            for id in c.ids() {
                c.crash(id);
            }
            for id in c.ids() {
                c.start_server(id);
            }
        }
    }
}
