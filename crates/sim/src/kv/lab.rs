//! The classic KV lab's test bodies, ported to virtual time: `GenericTest`
//! (clients running the lab's loop for 5 s, three times, with optional
//! unreliable net, partitions, crashes of every server and snapshots) and
//! `GenericTestSpeed`. Each returns what it checked, for the closing report.

use crate::events::Micros;
use crate::kv::cluster::{KvCluster, KvConfig};
use crate::kv::workload::check_client_appends;
use crate::{MS, SEC};

/// The lab's election timeout, used as a pause after heals and crashes.
pub const ELECTION_TIMEOUT: Micros = SEC;

/// One `GenericTest` configuration.
#[derive(Clone, Debug)]
pub struct GenericSpec {
    pub clients: u64,
    pub servers: usize,
    pub unreliable: bool,
    pub crash: bool,
    pub partitions: bool,
    /// The lab's `maxraftstate` (`None` = -1: no snapshots).
    pub max_raft_state: Option<u64>,
    pub random_keys: bool,
    pub iterations: u32,
    /// How long the clients run in each iteration.
    pub run_for: Micros,
}

impl GenericSpec {
    pub fn new(clients: u64, servers: usize) -> Self {
        GenericSpec {
            clients,
            servers,
            unreliable: false,
            crash: false,
            partitions: false,
            max_raft_state: None,
            random_keys: false,
            iterations: 3,
            run_for: 5 * SEC,
        }
    }
}

/// What one run did and checked.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub operations: usize,
    pub completed: u64,
    pub virtual_time: Micros,
    pub events: u64,
    pub check: lincheck::Stats,
}

impl RunReport {
    fn of(c: &KvCluster, check: lincheck::Stats) -> Self {
        RunReport {
            seed: c.cfg.seed,
            operations: c.history.len(),
            completed: c.history.completed,
            virtual_time: c.now,
            events: c.counters.events,
            check,
        }
    }
}

pub fn generic_config(spec: &GenericSpec, seed: u64) -> KvConfig {
    let mut cfg = KvConfig::new(spec.servers, seed);
    cfg.unreliable = spec.unreliable;
    cfg.snapshot_threshold_bytes = spec.max_raft_state;
    cfg
}

/// The lab's `GenericTest`.
pub fn generic_test(spec: &GenericSpec, seed: u64) -> RunReport {
    let mut c = KvCluster::new(generic_config(spec, seed));
    let checker = c.make_client();
    for _ in 0..spec.iterations {
        generic_iteration(&mut c, spec, checker);
    }
    let check = c.end();
    RunReport::of(&c, check)
}

fn generic_iteration(c: &mut KvCluster, spec: &GenericSpec, checker: u64) {
    let ids = c.spawn_lab_clients(spec.clients, spec.random_keys);
    if spec.partitions {
        c.run_for(SEC); // let the clients do some work first
        c.start_partitioner();
    }
    c.run_for(spec.run_for);
    c.stop_clients(&ids);
    c.stop_partitioner();
    if spec.partitions {
        c.connect_all();
        c.run_for(ELECTION_TIMEOUT);
    }
    if spec.crash {
        for id in c.ids() {
            c.shutdown_server(id);
        }
        c.run_for(ELECTION_TIMEOUT);
        for id in c.ids() {
            c.start_server(id);
        }
        c.connect_all();
    }
    assert!(
        c.wait_idle(&ids, 120 * SEC),
        "clients did not finish within 120 s of virtual time"
    );
    if !spec.random_keys {
        for &id in &ids {
            let lab = c.lab_client(id).clone();
            let v = c.get(checker, &lab.cli.to_string()).unwrap_or_default();
            if !lab.lost_track {
                check_client_appends(lab.cli, &v, lab.appends).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    check_sizes(c, spec.max_raft_state);
}

fn check_sizes(c: &KvCluster, max_raft_state: Option<u64>) {
    match max_raft_state {
        Some(max) => {
            let size = c.max_raft_state_bytes();
            assert!(size <= 8 * max, "logs were not trimmed ({size} > 8*{max})");
        }
        None => {
            let size = c.max_snapshot_bytes();
            assert_eq!(
                size, 0,
                "snapshot too large ({size}), should not be used when maxraftstate = -1"
            );
        }
    }
}

/// The lab's `GenericTestSpeed`: 1,000 sequential appends from one client must
/// average under a third of a heartbeat interval each (a proposal goes out at
/// once, not at the next heartbeat). Returns the average per op.
pub fn speed_test(max_raft_state: Option<u64>, seed: u64) -> (Micros, RunReport) {
    const OPS: u64 = 1000;
    let mut cfg = KvConfig::new(3, seed);
    cfg.snapshot_threshold_bytes = max_raft_state;
    let mut c = KvCluster::new(cfg);
    let ck = c.make_client();
    c.put(ck, "x", ""); // waits for a leader
    let start = c.now;
    for i in 0..OPS {
        c.append(ck, "x", &format!("x 0 {i} y"));
    }
    let per_op = (c.now - start) / OPS;
    let v = c.get(ck, "x").unwrap_or_default();
    check_client_appends(0, &v, OPS).unwrap_or_else(|e| panic!("{e}"));
    let limit = c.cfg.heartbeat() / 3;
    assert!(
        per_op < limit,
        "operations completed too slowly: {} µs/op > {} µs/op",
        per_op,
        limit
    );
    check_sizes(&c, max_raft_state);
    let check = c.end();
    let _ = MS;
    (per_op, RunReport::of(&c, check))
}
