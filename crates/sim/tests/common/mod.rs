//! Shared setup for the catalogue tests.
#![allow(dead_code)]

use bytes::Bytes;
use rand::Rng;
use sim::{cmd, Cluster, ClusterConfig, SeedGuard, MS};

pub const RAFT_ELECTION_TIMEOUT: u64 = 1000 * MS;
pub const SNAPSHOT_INTERVAL: u64 = 10;

pub fn cluster(servers: usize, reliable: bool, name: &'static str) -> (Cluster, SeedGuard) {
    let cfg = ClusterConfig::new(servers, reliable);
    let guard = SeedGuard(cfg.seed, name);
    (Cluster::new(cfg), guard)
}

pub fn snapshot_cluster(servers: usize, reliable: bool, name: &'static str) -> (Cluster, SeedGuard) {
    let cfg = ClusterConfig::new(servers, reliable).snapshots(SNAPSHOT_INTERVAL);
    let guard = SeedGuard(cfg.seed, name);
    (Cluster::new(cfg), guard)
}

/// A random command (the lab's `rand.Int()`), drawn from the cluster's seeded RNG.
pub fn rand_cmd(c: &mut Cluster) -> Bytes {
    let x: u64 = c.rng.gen_range(0..1 << 62);
    cmd(x)
}

pub fn rand_ms(c: &mut Cluster, max_ms: u64) -> u64 {
    c.rng.gen_range(0..max_ms.max(1)) * MS
}

/// Node id `k` positions after `base` in 1..=n (the lab's `(base + k) % servers`).
pub fn nth(base: u64, k: u64, n: u64) -> u64 {
    (base - 1 + k) % n + 1
}
