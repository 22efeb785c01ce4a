//! The classic KV lab catalogue (3A: service without snapshots, 3B: with
//! snapshots) ported to the KV simulator with the same setup and checks, in
//! virtual time; every test also checks its whole client history for
//! linearizability and that replicas at the same applied index agree.
//!
//! Reproduce a failure with the printed `SIM_SEED=... cargo test -p sim --test it kv_catalogue::NAME`.

use bytes::Bytes;
use sim::kv::lab::{generic_test, speed_test, GenericSpec, RunReport, ELECTION_TIMEOUT};
use sim::kv::workload::check_client_appends;
use sim::kv::{ClerkOp, KvCluster, KvConfig};
use sim::{seed_from_env, SeedGuard, SEC};

const MAX_RAFT_STATE: u64 = 1000;

fn report(name: &str, r: &RunReport) {
    eprintln!(
        "{name}: seed {} ops {} (completed {}) virtual {:.1}s events {} check {:?} ({} partitions)",
        r.seed,
        r.operations,
        r.completed,
        r.virtual_time as f64 / 1e6,
        r.events,
        r.check.elapsed,
        r.check.partitions
    );
}

fn generic(name: &'static str, spec: GenericSpec) {
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, name);
    let r = generic_test(&spec, seed);
    report(name, &r);
}

fn spec(clients: u64, servers: usize) -> GenericSpec {
    GenericSpec::new(clients, servers)
}

// ---- 3A -------------------------------------------------------------------------------

#[test]
fn basic_3a() {
    generic("basic_3a", spec(1, 5));
}

#[test]
fn speed_3a() {
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, "speed_3a");
    let (per_op, r) = speed_test(None, seed);
    eprintln!("speed_3a: {per_op} µs of virtual time per op");
    report("speed_3a", &r);
}

#[test]
fn concurrent_3a() {
    generic("concurrent_3a", spec(5, 5));
}

#[test]
fn unreliable_3a() {
    generic(
        "unreliable_3a",
        GenericSpec {
            unreliable: true,
            ..spec(5, 5)
        },
    );
}

#[test]
fn unreliable_one_key_3a() {
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, "unreliable_one_key_3a");
    let mut cfg = KvConfig::new(5, seed);
    cfg.unreliable = true;
    let mut c = KvCluster::new(cfg);
    let ck = c.make_client();
    c.put(ck, "k", "");
    const CLIENTS: u64 = 5;
    const UPTO: u64 = 10;
    let ids: Vec<u64> = (0..CLIENTS).map(|_| c.make_client()).collect();
    let mut next = vec![0u64; CLIENTS as usize];
    loop {
        for (me, &id) in ids.iter().enumerate() {
            if c.is_idle(id) && next[me] < UPTO {
                let v = format!("x {me} {} y", next[me]);
                c.start_op(id, ClerkOp::Append(Bytes::from("k"), Bytes::from(v)));
                next[me] += 1;
            }
        }
        if next.iter().all(|&n| n == UPTO) {
            break;
        }
        let wants_more = |c: &KvCluster| {
            ids.iter()
                .zip(&next)
                .any(|(&id, &n)| n < UPTO && c.is_idle(id))
        };
        assert!(c.run_until(60 * SEC, wants_more), "appends stalled");
    }
    assert!(c.wait_idle(&ids, 60 * SEC), "appends did not finish");
    let v = c.get(ck, "k").unwrap_or_default();
    for me in 0..CLIENTS {
        check_client_appends(me, &v, UPTO).unwrap_or_else(|e| panic!("{e}"));
    }
    let stats = c.end();
    eprintln!(
        "unreliable_one_key_3a: ops {} check {:?}",
        c.history.len(),
        stats.elapsed
    );
}

/// Progress in majority; no progress in minority; completion after heal.
#[test]
fn one_partition_3a() {
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, "one_partition_3a");
    let mut c = KvCluster::new(KvConfig::new(5, seed));
    let ck = c.make_client();
    c.put(ck, "1", "13");

    // progress in majority
    let l = c.leader().expect("a leader after a completed put");
    let ring = |k: u64| (l - 1 + k) % 5 + 1;
    let p1: Vec<u64> = (0..3).map(ring).collect();
    let p2: Vec<u64> = (3..5).map(ring).collect();
    c.partition(&[&p1, &p2]);
    let ckp1 = c.make_client();
    let ckp2a = c.make_client();
    let ckp2b = c.make_client();
    c.connect_client(ckp1, &p1);
    c.connect_client(ckp2a, &p2);
    c.connect_client(ckp2b, &p2);
    c.put(ckp1, "1", "14");
    assert_eq!(c.get(ckp1, "1"), Some(Bytes::from("14")));

    // no progress in minority
    c.start_op(ckp2a, ClerkOp::Put(Bytes::from("1"), Bytes::from("15")));
    c.start_op(ckp2b, ClerkOp::Get(Bytes::from("1")));
    c.run_for(SEC);
    assert!(!c.is_idle(ckp2a), "put in minority completed");
    assert!(!c.is_idle(ckp2b), "get in minority completed");
    assert_eq!(c.get(ckp1, "1"), Some(Bytes::from("14")));
    c.put(ckp1, "1", "16");
    assert_eq!(c.get(ckp1, "1"), Some(Bytes::from("16")));

    // completion after heal
    c.connect_all();
    c.run_for(ELECTION_TIMEOUT);
    assert!(
        c.wait_idle(&[ckp2a, ckp2b], 30 * SEC),
        "minority operations did not complete after heal"
    );
    assert_eq!(c.get(ck, "1"), Some(Bytes::from("15")));
    c.end();
}

#[test]
fn many_partitions_one_client_3a() {
    generic(
        "many_partitions_one_client_3a",
        GenericSpec {
            partitions: true,
            ..spec(1, 5)
        },
    );
}

#[test]
fn many_partitions_many_clients_3a() {
    generic(
        "many_partitions_many_clients_3a",
        GenericSpec {
            partitions: true,
            ..spec(5, 5)
        },
    );
}

#[test]
fn persist_one_client_3a() {
    generic(
        "persist_one_client_3a",
        GenericSpec {
            crash: true,
            ..spec(1, 5)
        },
    );
}

#[test]
fn persist_concurrent_3a() {
    generic(
        "persist_concurrent_3a",
        GenericSpec {
            crash: true,
            ..spec(5, 5)
        },
    );
}

#[test]
fn persist_concurrent_unreliable_3a() {
    generic(
        "persist_concurrent_unreliable_3a",
        GenericSpec {
            crash: true,
            unreliable: true,
            ..spec(5, 5)
        },
    );
}

#[test]
fn persist_partition_3a() {
    generic(
        "persist_partition_3a",
        GenericSpec {
            crash: true,
            partitions: true,
            ..spec(5, 5)
        },
    );
}

#[test]
fn persist_partition_unreliable_3a() {
    let s = GenericSpec {
        crash: true,
        partitions: true,
        unreliable: true,
        ..spec(5, 5)
    };
    generic("persist_partition_unreliable_3a", s);
}

#[test]
fn persist_partition_unreliable_linearizable_3a() {
    let s = GenericSpec {
        crash: true,
        partitions: true,
        unreliable: true,
        random_keys: true,
        ..spec(15, 7)
    };
    generic("persist_partition_unreliable_linearizable_3a", s);
}

// ---- 3B -------------------------------------------------------------------------------

/// InstallSnapshot RPC: a lagging server must catch up from a snapshot.
#[test]
fn snapshot_rpc_3b() {
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, "snapshot_rpc_3b");
    let mut cfg = KvConfig::new(3, seed);
    cfg.snapshot_threshold_bytes = Some(MAX_RAFT_STATE);
    let mut c = KvCluster::new(cfg);
    let ck = c.make_client();
    c.put(ck, "a", "A");
    assert_eq!(c.get(ck, "a"), Some(Bytes::from("A")));

    // a bunch of puts into the majority partition
    c.partition(&[&[1, 2], &[3]]);
    let ck1 = c.make_client();
    c.connect_client(ck1, &[1, 2]);
    for i in 0..50 {
        c.put(ck1, &i.to_string(), &i.to_string());
    }
    c.run_for(ELECTION_TIMEOUT);
    c.put(ck1, "b", "B");
    // the majority has thrown away most of its log
    let sz = c.max_raft_state_bytes();
    assert!(
        sz <= 8 * MAX_RAFT_STATE,
        "logs were not trimmed ({sz} > 8*{MAX_RAFT_STATE})"
    );

    // a group that needs the lagging server, which must catch up via snapshot
    c.partition(&[&[1, 3], &[2]]);
    let ck1 = c.make_client();
    c.connect_client(ck1, &[1, 3]);
    c.put(ck1, "c", "C");
    c.put(ck1, "d", "D");
    assert_eq!(c.get(ck1, "a"), Some(Bytes::from("A")));
    assert_eq!(c.get(ck1, "b"), Some(Bytes::from("B")));
    assert_eq!(c.get(ck1, "1"), Some(Bytes::from("1")));
    assert_eq!(c.get(ck1, "49"), Some(Bytes::from("49")));
    assert!(
        c.server(3).unwrap().replica.status().raft.snapshot_index > 0,
        "server 3 caught up without a snapshot"
    );

    // now everybody
    c.connect_all();
    c.put(ck, "e", "E");
    assert_eq!(c.get(ck, "c"), Some(Bytes::from("C")));
    assert_eq!(c.get(ck, "e"), Some(Bytes::from("E")));
    assert_eq!(c.get(ck, "1"), Some(Bytes::from("1")));
    let sz = c.max_raft_state_bytes();
    assert!(
        sz <= 8 * MAX_RAFT_STATE,
        "logs were not trimmed ({sz} > 8*{MAX_RAFT_STATE})"
    );
    c.end();
}

/// Snapshot size is reasonable: persisted Raft state < 8x the threshold and
/// the snapshot under 500 bytes.
#[test]
fn snapshot_size_3b() {
    const MAX_SNAPSHOT_STATE: u64 = 500;
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, "snapshot_size_3b");
    let mut cfg = KvConfig::new(3, seed);
    cfg.snapshot_threshold_bytes = Some(MAX_RAFT_STATE);
    let mut c = KvCluster::new(cfg);
    let ck = c.make_client();
    for _ in 0..200 {
        c.put(ck, "x", "0");
        assert_eq!(c.get(ck, "x"), Some(Bytes::from("0")));
        c.put(ck, "x", "1");
        assert_eq!(c.get(ck, "x"), Some(Bytes::from("1")));
    }
    let sz = c.max_raft_state_bytes();
    assert!(
        sz <= 8 * MAX_RAFT_STATE,
        "logs were not trimmed ({sz} > 8*{MAX_RAFT_STATE})"
    );
    let sz = c.max_snapshot_bytes();
    assert!(sz > 0, "no snapshot was taken");
    assert!(
        sz <= MAX_SNAPSHOT_STATE,
        "snapshot too large ({sz} > {MAX_SNAPSHOT_STATE})"
    );
    eprintln!(
        "snapshot_size_3b: raft state {} B, snapshot {sz} B",
        c.max_raft_state_bytes()
    );
    c.end();
}

#[test]
fn speed_3b() {
    let seed = seed_from_env(0x6b76);
    let _g = SeedGuard(seed, "speed_3b");
    let (per_op, r) = speed_test(Some(MAX_RAFT_STATE), seed);
    eprintln!("speed_3b: {per_op} µs of virtual time per op");
    report("speed_3b", &r);
}

#[test]
fn snapshot_recover_3b() {
    generic(
        "snapshot_recover_3b",
        GenericSpec {
            crash: true,
            max_raft_state: Some(MAX_RAFT_STATE),
            ..spec(1, 5)
        },
    );
}

#[test]
fn snapshot_recover_many_clients_3b() {
    let s = GenericSpec {
        crash: true,
        max_raft_state: Some(MAX_RAFT_STATE),
        ..spec(20, 5)
    };
    generic("snapshot_recover_many_clients_3b", s);
}

#[test]
fn snapshot_unreliable_3b() {
    let s = GenericSpec {
        unreliable: true,
        max_raft_state: Some(MAX_RAFT_STATE),
        ..spec(5, 5)
    };
    generic("snapshot_unreliable_3b", s);
}

#[test]
fn snapshot_unreliable_recover_3b() {
    let s = GenericSpec {
        unreliable: true,
        crash: true,
        max_raft_state: Some(MAX_RAFT_STATE),
        ..spec(5, 5)
    };
    generic("snapshot_unreliable_recover_3b", s);
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_3b() {
    let s = GenericSpec {
        unreliable: true,
        crash: true,
        partitions: true,
        max_raft_state: Some(MAX_RAFT_STATE),
        ..spec(5, 5)
    };
    generic("snapshot_unreliable_recover_concurrent_partition_3b", s);
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_linearizable_3b() {
    let s = GenericSpec {
        unreliable: true,
        crash: true,
        partitions: true,
        random_keys: true,
        max_raft_state: Some(MAX_RAFT_STATE),
        ..spec(15, 7)
    };
    generic(
        "snapshot_unreliable_recover_concurrent_partition_linearizable_3b",
        s,
    );
}
