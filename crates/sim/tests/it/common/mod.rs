//! Shared setup for the catalogue tests.
#![allow(dead_code)]

pub mod persistence;
pub mod snapshots;

use bytes::Bytes;
use rand::Rng;
use sim::store::{disk_options, SimStore};
use sim::{cmd, Cluster, ClusterConfig, SeedGuard, MS};
use storage::DiskStorage;

pub const RAFT_ELECTION_TIMEOUT: u64 = 1000 * MS;
pub const SNAPSHOT_INTERVAL: u64 = 10;

pub fn cluster(servers: usize, reliable: bool, name: &'static str) -> (Cluster, SeedGuard) {
    let cfg = ClusterConfig::new(servers, reliable);
    let guard = SeedGuard(cfg.seed, name);
    (Cluster::new(cfg), guard)
}

pub fn snapshot_cluster(
    servers: usize,
    reliable: bool,
    name: &'static str,
) -> (Cluster, SeedGuard) {
    let cfg = ClusterConfig::new(servers, reliable).snapshots(SNAPSHOT_INTERVAL);
    let guard = SeedGuard(cfg.seed, name);
    (Cluster::new(cfg), guard)
}

/// A random command (the lab's `rand.Int()`), drawn from the cluster's seeded RNG.
pub fn rand_cmd<S: SimStore>(c: &mut Cluster<S>) -> Bytes {
    let x: u64 = c.rng.gen_range(0..1 << 62);
    cmd(x)
}

pub fn rand_ms<S: SimStore>(c: &mut Cluster<S>, max_ms: u64) -> u64 {
    c.rng.gen_range(0..max_ms.max(1)) * MS
}

/// Node id `k` positions after `base` in 1..=n (the lab's `(base + k) % servers`).
pub fn nth(base: u64, k: u64, n: u64) -> u64 {
    (base - 1 + k) % n + 1
}

/// A cluster whose nodes persist to the real disk WAL in a temporary directory; every
/// simulated crash drops the store and recovers it from its files.
pub fn disk_cluster(
    servers: usize,
    reliable: bool,
    snapshot_interval: Option<u64>,
    name: &'static str,
) -> (Cluster<DiskStorage>, SeedGuard, tempfile::TempDir) {
    let mut cfg = ClusterConfig::new(servers, reliable);
    cfg.snapshot_interval = snapshot_interval;
    let guard = SeedGuard(cfg.seed, name);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let c = Cluster::with_stores(cfg, |id| {
        DiskStorage::open(&root.join(format!("node{id}")), disk_options()).expect("open disk store")
    });
    (c, guard, dir)
}
